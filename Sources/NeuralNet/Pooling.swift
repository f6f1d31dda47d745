// Pooling over channels-last images: max and average over P×P windows with stride S (valid
// padding), and global average pooling (H×W×C → C).

import Compute
import TensorCore

public final class Pool2D<T: Real>: Layer<T> {
    public enum Kind: String, Sendable { case max, average }
    public let kind: Kind, size: Int, stride: Int
    let H: Int, W: Int, C: Int, OH: Int, OW: Int
    /// Per channel: whether the window's gradient has been routed (max pooling backward).
    private let routed = Scratch<T>()
    /// Max pooling that also computes the ReLU before it (set by the network, which then skips
    /// that layer): the output is ReLU'd, and the gradient passes only where it is positive.
    var reluAfter = false

    init(inputShape: [Int], kind: Kind, size: Int, stride: Int) {
        self.kind = kind
        self.size = size
        self.stride = stride
        (H, W, C) = (inputShape[0], inputShape[1], inputShape[2])
        OH = (H - size) / stride + 1
        OW = (W - size) / stride + 1
        super.init(inputShape: inputShape, outputShape: [OH, OW, C])
    }


    @_specialize(where T == Float)
    override func reserve(batch: Int) { routed.reserve(C) }

    // Channels are innermost, so every step below runs over C contiguous values.
    @_specialize(where T == Float)
    override func forward(_ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>, batch: Int, training: Bool, rng: inout SeededRandom) {
        let inv = 1 / T(size * size)
        if kind == .max && size == 2 && stride == 2 {
            // The common case, as four loads and three maxima over C contiguous channels (a
            // copy per window, as below, costs a memmove call per output pixel).
            for n in 0..<batch {
                let xn = x + n * H * W * C
                for oh in 0..<OH {
                    for ow in 0..<OW {
                        let o = y + ((n * OH + oh) * OW + ow) * C
                        let p0 = xn + ((2 * oh) * W + 2 * ow) * C, p1 = p0 + W * C
                        if T.self == Float.self {
                            maxPool2x2Window(f32(p0), f32(p0 + C), f32(p1), f32(p1 + C), f32(o), count: C)
                            continue
                        }
                        for c in 0..<C {
                            let a = p0[c] > p0[c + C] ? p0[c] : p0[c + C]
                            let b = p1[c] > p1[c + C] ? p1[c] : p1[c + C]
                            o[c] = a > b ? a : b
                        }
                    }
                }
            }
            if reluAfter { reluInPlace(y, count: batch * outputSize) }
            return
        }
        for n in 0..<batch {
            let xn = x + n * H * W * C
            for oh in 0..<OH {
                for ow in 0..<OW {
                    let o = y + ((n * OH + oh) * OW + ow) * C
                    o.update(from: xn + ((oh * stride) * W + ow * stride) * C, count: C)
                    for i in 0..<size {
                        for j in 0..<size where i != 0 || j != 0 {
                            let p = xn + ((oh * stride + i) * W + ow * stride + j) * C
                            if kind == .max {
                                for c in 0..<C { o[c] = p[c] > o[c] ? p[c] : o[c] }
                            } else {
                                for c in 0..<C { o[c] += p[c] }
                            }
                        }
                    }
                    if kind == .average { for c in 0..<C { o[c] *= inv } }
                }
            }
        }
        if reluAfter { reluInPlace(y, count: batch * outputSize) }
    }

    /// Max pooling routes each window's gradient to the first position holding the maximum
    /// (found again by comparing with the output, rather than storing indices in forward).
    @_specialize(where T == Float)
    override func backward(_ x: UnsafePointer<T>, _ y: UnsafePointer<T>, _ dy: UnsafePointer<T>, _ dx: UnsafeMutablePointer<T>?, batch: Int) {
        guard let dx else { return }
        let inv = 1 / T(size * size)
        let done = routed.pointer
        // The common case in Float: each window's four gradients written at once, on vectors.
        let fast = T.self == Float.self && kind == .max && size == 2 && stride == 2
        if fast {
            // The windows write every position they cover: zero only a last row and column
            // that no window covers (odd H or W).
            for n in 0..<batch {
                let dn = dx + n * H * W * C
                if H > 2 * OH { (dn + 2 * OH * W * C).update(repeating: 0, count: (H - 2 * OH) * W * C) }
                if W > 2 * OW { for h in 0..<2 * OH { (dn + (h * W + 2 * OW) * C).update(repeating: 0, count: (W - 2 * OW) * C) } }
            }
        } else {
            dx.update(repeating: 0, count: batch * H * W * C)
        }
        for n in 0..<batch {
            let xn = x + n * H * W * C, dn = dx + n * H * W * C
            for oh in 0..<OH {
                for ow in 0..<OW {
                    let o = ((n * OH + oh) * OW + ow) * C
                    let yo = y + o, g = dy + o
                    if fast {
                        let k = ((2 * oh) * W + 2 * ow) * C
                        let p0 = xn + k, p1 = p0 + W * C, d0 = dn + k, d1 = d0 + W * C
                        maxPool2x2WindowBackward(f32(p0), f32(p0 + C), f32(p1), f32(p1 + C), max: f32(yo), grad: f32(g),
                                                 f32(d0), f32(d0 + C), f32(d1), f32(d1 + C), count: C, positiveOnly: reluAfter)
                        continue
                    }
                    if kind == .max { done.update(repeating: 0, count: C) }
                    for i in 0..<size {
                        for j in 0..<size {
                            let k = ((oh * stride + i) * W + ow * stride + j) * C
                            let p = xn + k, d = dn + k
                            if kind == .max {
                                // Branch-free, so the loop vectorizes.
                                for c in 0..<C {
                                    let hit: T = (p[c] == yo[c] ? 1 : 0) * (1 - done[c]) * (reluAfter && !(yo[c] > 0) ? 0 : 1)
                                    d[c] += hit * g[c]
                                    done[c] += hit
                                }
                            } else {
                                for c in 0..<C { d[c] += g[c] * inv }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A pointer of a generic layer as the Float pointer it is (callers check `T.self == Float.self`).
@inline(__always) func f32<T>(_ p: UnsafePointer<T>) -> UnsafePointer<Float> { UnsafeRawPointer(p).assumingMemoryBound(to: Float.self) }
@inline(__always) func f32<T>(_ p: UnsafeMutablePointer<T>) -> UnsafeMutablePointer<Float> { UnsafeMutableRawPointer(p).assumingMemoryBound(to: Float.self) }

public final class GlobalAveragePool<T: Real>: Layer<T> {
    init(inputShape: [Int]) {
        super.init(inputShape: inputShape, outputShape: [inputShape.last!])
    }

    var positions: Int { inputSize / outputSize }

    @_specialize(where T == Float)
    override func forward(_ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>, batch: Int, training: Bool, rng: inout SeededRandom) {
        let C = outputSize, P = positions, inv = 1 / T(P)
        for n in 0..<batch {
            let yn = y + n * C
            yn.update(repeating: 0, count: C)
            for p in 0..<P {
                let xr = x + (n * P + p) * C
                for c in 0..<C { yn[c] += xr[c] }
            }
            for c in 0..<C { yn[c] *= inv }
        }
    }

    @_specialize(where T == Float)
    override func backward(_ x: UnsafePointer<T>, _ y: UnsafePointer<T>, _ dy: UnsafePointer<T>, _ dx: UnsafeMutablePointer<T>?, batch: Int) {
        guard let dx else { return }
        let C = outputSize, P = positions, inv = 1 / T(P)
        for n in 0..<batch {
            for p in 0..<P {
                let d = dx + (n * P + p) * C
                for c in 0..<C { d[c] = dy[n * C + c] * inv }
            }
        }
    }
}
