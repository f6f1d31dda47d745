// 2-D convolution, channels-last, as im2col + one GEMM with the batch folded into M (and for
// 3×3 stride-1 kernels over 8 or more channels, Winograd F(4×4, 3×3) or F(2×2, 3×3) for the
// forward pass and both gradients: Winograd.swift):
//   col[N·OH·OW × KH·KW·C + 1] gathered from x[N×H×W×C] with a 1 at the end of each row, and
//   y[N·OH·OW × F] = col · [W; b] (the parameters are W[KH·KW·C × F] and then b, one matrix), so
//   the GEMM adds the bias in the forward pass and sums its gradient in the backward.
// Channels-last makes each im2col step a copy of C contiguous values. Padding "same" follows
// TensorFlow (extra row/column at the bottom/right). Parameters: W then b.

import Compute
import TensorCore

public enum Padding: String, Sendable { case valid, same }

/// Output size and leading padding of one spatial axis.
func convGeometry(size: Int, kernel: Int, stride: Int, padding: Padding) -> (out: Int, padBefore: Int) {
    switch padding {
    case .valid:
        return ((size - kernel) / stride + 1, 0)
    case .same:
        let out = (size + stride - 1) / stride
        let total = max((out - 1) * stride + kernel - size, 0)
        return (out, total / 2)
    }
}

public final class Conv2D<T: Real>: Layer<T> {
    public let filters: Int, kh: Int, kw: Int, stride: Int, padding: Padding
    let H: Int, W: Int, C: Int, OH: Int, OW: Int, pt: Int, pl: Int
    private let col = Scratch<T>()
    private let dcol = Scratch<T>()
    /// Winograd (Winograd.swift): transformed weights, inputs and products, a row of zeros for
    /// tiles that overhang the image (and after it a row where the input gradient's positions
    /// off the image add up), and the weights U was made from; for the weight gradient, dU and
    /// dW before they are added into the gradients.
    let winoU = Scratch<T>(), winoV = Scratch<T>(), winoM = Scratch<T>(), winoZero = Scratch<T>(), winoW = Scratch<T>()
    let winoWT = Scratch<T>(), winoUT = Scratch<T>()

    init(inputShape: [Int], filters: Int, kernel: (Int, Int), stride: Int, padding: Padding) {
        self.filters = filters
        (kh, kw) = kernel
        self.stride = stride
        self.padding = padding
        (H, W, C) = (inputShape[0], inputShape[1], inputShape[2])
        (OH, pt) = convGeometry(size: H, kernel: kh, stride: stride, padding: padding)
        (OW, pl) = convGeometry(size: W, kernel: kw, stride: stride, padding: padding)
        super.init(inputShape: inputShape, outputShape: [OH, OW, filters])
    }

    var K: Int { kh * kw * C }
    public override var parameterCount: Int { K * filters + filters }

    @_specialize(where T == Float)
    override func initialize(_ rng: inout SeededRandom, init scheme: InitScheme) {
        initWeights(params, count: K * filters, fanIn: K, fanOut: kh * kw * filters, scheme: scheme, rng: &rng)
        initBias(params + K * filters, count: filters, fanIn: K, scheme: scheme, rng: &rng)
    }

    @_specialize(where T == Float)
    /// The larger of the two paths: im2col's rows (and their gradient's, in training), or
    /// Winograd's transformed inputs and products (at most kh·kw values per output position).
    override func workingValues(batch n: Double, training: Bool) -> Double {
        let positions = n * Double(OH * OW)
        return positions * (Double(K + 1) * (training ? 2 : 1) + Double(kh * kw * filters))
    }

    override func reserve(batch: Int) {
        if !usesWinograd { col.reserve(batch * OH * OW * (K + 1)) }  // Winograd keeps transforms instead
    }

    /// col[(n·OH + oh)·OW + ow][(i·KW + j)·C + c] = x[n][oh·S + i − pt][ow·S + j − pl][c], or 0
    /// outside; col[…][K] = 1 (rows of K + 1).
    @_specialize(where T == Float)
    func im2col(_ x: UnsafePointer<T>, _ col: UnsafeMutablePointer<T>, batch: Int) {
        var r = col
        // Every window inside: no leading padding, and none trailing either ('same' can pad
        // only after: 3x3 stride 2 on 28 columns reads column 28, which is not there).
        if C == 1 && pt == 0 && pl == 0 && (OH - 1) * stride + kh <= H && (OW - 1) * stride + kw <= W {
            // One channel without padding (a first layer): every window is inside, and each
            // kernel row is kw values; unchecked index arithmetic lets the copies run tight
            // (this path was 15 % of mnist-cnn inference through the general one).
            let s = stride
            for n in 0..<batch {
                let xn = x + n &* H &* W
                for oh in 0..<OH {
                    for ow in 0..<OW {
                        var src = xn + ((oh &* s) &* W &+ ow &* s)
                        for _ in 0..<kh {
                            for j in 0..<kw { r[j] = src[j] }
                            r += kw
                            src += W
                        }
                        r[0] = 1
                        r += 1
                    }
                }
            }
            return
        }
        for n in 0..<batch {
            let xn = x + n * H * W * C
            for oh in 0..<OH {
                for ow in 0..<OW {
                    for i in 0..<kh {
                        let ih = oh * stride + i - pt
                        let rowInside = ih >= 0 && ih < H
                        // The kernel row's KW·C values are contiguous in x when all inside:
                        // one inline copy (a memmove call per row costs more than the copy).
                        let iw0 = ow * stride - pl
                        if rowInside && iw0 >= 0 && iw0 + kw <= W {
                            let src = xn + (ih * W + iw0) * C
                            let n = kw * C
                            for e in 0..<n { r[e] = src[e] }
                            r += n
                            continue
                        }
                        for j in 0..<kw {
                            let iw = iw0 + j
                            if rowInside && iw >= 0 && iw < W {
                                let src = xn + (ih * W + iw) * C
                                for c in 0..<C { r[c] = src[c] }
                            } else {
                                for c in 0..<C { r[c] = 0 }
                            }
                            r += C
                        }
                    }
                    r[0] = 1
                    r += 1
                }
            }
        }
    }

    /// The adjoint of im2col: adds each column entry back into dx (`col` without the ones: rows
    /// of K).
    @_specialize(where T == Float)
    func col2im(_ col: UnsafePointer<T>, _ dx: UnsafeMutablePointer<T>, batch: Int) {
        dx.update(repeating: 0, count: batch * H * W * C)
        var r = col
        for n in 0..<batch {
            let dn = dx + n * H * W * C
            for oh in 0..<OH {
                for ow in 0..<OW {
                    for i in 0..<kh {
                        let ih = oh * stride + i - pt
                        for j in 0..<kw {
                            let iw = ow * stride + j - pl
                            if ih >= 0 && ih < H && iw >= 0 && iw < W {
                                let d = dn + (ih * W + iw) * C
                                for c in 0..<C { d[c] += r[c] }
                            }
                            r += C
                        }
                    }
                }
            }
        }
    }

    /// Samples per im2col/GEMM step: about 1 MiB of columns, so each GEMM reads its columns
    /// while they are still in cache.
    var chunk: Int { max(1, (1 << 18) / max(OH * OW * (K + 1), 1)) }

    @_specialize(where T == Float)
    override func forward(_ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>, batch: Int, training: Bool, rng: inout SeededRandom) {
        if usesWinograd {
            winogradForward(x, y, batch: batch, keep: training)
            return
        }
        let F = filters, rows = OH * OW
        var n0 = 0
        while n0 < batch {
            let n = min(chunk, batch - n0)
            // Training keeps the whole batch's columns for backward; inference reuses the first
            // chunk's, which stay in cache between im2col and the GEMM.
            let c = col.pointer + (training ? n0 * rows * (K + 1) : 0), out = y + n0 * rows * F
            im2col(x + n0 * H * W * C, c, batch: n)
            T.gemm(transA: false, transB: false, m: n * rows, n: F, k: K + 1, alpha: 1, a: c, lda: K + 1, b: params, ldb: F, beta: 0, c: out, ldc: F)
            n0 += n
        }
    }

    @_specialize(where T == Float)
    override func backward(_ x: UnsafePointer<T>, _ y: UnsafePointer<T>, _ dy: UnsafePointer<T>, _ dx: UnsafeMutablePointer<T>?, batch: Int) {
        let M = batch * OH * OW, F = filters, rows = OH * OW
        if usesWinograd {
            let db = grads + K * F
            for m in 0..<M {
                let r = dy + m * F
                for f in 0..<F { db[f] += r[f] }
            }
            // The forward pass kept its input and weight transforms.
            winogradBackward(dy, dx, batch: batch)
            return
        }
        // col still holds this batch's im2col from forward; its ones column sums the bias's
        // gradient into the row after dW.
        T.gemm(transA: true, transB: false, m: K + 1, n: F, k: M, alpha: 1, a: col.pointer, lda: K + 1, b: dy, ldb: F, beta: 1, c: grads, ldc: F)
        guard let dx else { return }
        dcol.reserve(min(chunk, batch) * rows * K)  // first backward only: inference never needs it
        var n0 = 0
        while n0 < batch {
            let n = min(chunk, batch - n0)
            T.gemm(transA: false, transB: true, m: n * rows, n: K, k: F, alpha: 1, a: dy + n0 * rows * F, lda: F, b: params, ldb: F,
                   beta: 0, c: dcol.pointer, ldc: K)
            col2im(dcol.pointer, dx + n0 * H * W * C, batch: n)
            n0 += n
        }
    }
}
