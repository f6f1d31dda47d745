// 3×3 stride-1 convolutions by Winograd's minimal filtering (Lavin and Gray,
// 2015). F(2×2, 3×3): each 2×2 block of outputs from a 4×4 input tile, with 16 element-wise
// products per channel pair instead of 36; F(4×4, 3×3): each 4×4 block from a 6×6 tile with
// 36 instead of 144. Over a chunk of T tiles that is 16 (or 36) GEMMs V_ξ[T×C] · U_ξ[C×F]
// between an input transform and an output transform (the F(2×2, 3×3) matrices below; the
// F(4×4, 3×3) ones are in Compute/Winograd.swift):
//   U = G g Gᵀ (per channel and filter),  V = Bᵀ d B (per tile and channel),  Y = Aᵀ M A,
//   G = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1],  Bᵀ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1],
//   Aᵀ = [1 1 1 0; 0 1 −1 −1].
// 2.25 (or 4) times fewer multiplications than im2col + GEMM, less the tiles' overhang at
// output sizes that are not a multiple of the block; each convolution takes whichever of the
// two needs fewer. The GEMMs have K = C, which OpenBLAS runs at about 80 % of its K = 9C rate.
// Training runs all three products this way, without im2col or col2im:
// - the forward pass as above, keeping the whole batch's V;
// - both gradients by the chain rule through the same formula, from dM = A dY Aᵀ per tile:
//   the weights' as dU_ξ = V_ξᵀ dM_ξ (36 or 16 GEMMs over all the batch's tiles) and
//   dW = Gᵀ dU G, the input's as dV_ξ = dM_ξ U_ξᵀ and dx = B dV Bᵀ added up over the
//   overlapping input tiles. (Treating dx as a convolution of dy by the turned kernels instead
//   tiles the input's larger extent: on mnist-cnn's second layer, 16 tiles of 64 channels a
//   sample against the forward pass's 9 of 32, and twice the time.)
// Tiles outside the input read zeros, so every padding works.

import Compute
import Foundation
import TensorCore

/// A stride-1 3×3 convolution as Winograd sees it: an H×W×C input, an OH×OW×F output, and
/// the padding before the first row and column (positions outside the input read zeros).
struct WinogradShape {
    let H: Int, W: Int, C: Int, OH: Int, OW: Int, F: Int, pt: Int, pl: Int

    /// The distance between the matrices U_ξ: a few cache lines more than their size, so that
    /// the weight transform's 16 or 36 stores of one kernel do not fall into one cache set
    /// (C·F·4 bytes is a multiple of 4 KiB for most layers; at exactly that the weight
    /// transforms took 4.8 % of mnist-cnn's training time, and under 1 % with the gap).
    var uStride: Int { C * F + 16 }

    /// The output block: 4 (F(4×4, 3×3)) when its 36 products per tile come to fewer than 16
    /// per 2×2 tile over the same output, else 2.
    var block: Int {
        let t2 = ((OH + 1) / 2) * ((OW + 1) / 2), t4 = ((OH + 3) / 4) * ((OW + 3) / 4)
        return 36 * t4 < 16 * t2 ? 4 : 2
    }
}

extension Conv2D {
    /// Whether this convolution runs by Winograd (forward, and the input gradient in
    /// training): Float, 3×3 kernels at stride 1, over at least 8 channels and 8 filters (one
    /// vector; a first layer's 1 or 3 channels would make the K = C GEMMs too thin to pay).
    var usesWinograd: Bool { T.self == Float.self && kh == 3 && kw == 3 && stride == 1 && C >= 8 && filters >= 8 }

    var forwardShape: WinogradShape { WinogradShape(H: H, W: W, C: C, OH: OH, OW: OW, F: filters, pt: pt, pl: pl) }

    /// The forward block (tests check that both variants are exercised).
    var winogradBlock: Int { forwardShape.block }

    /// The forward pass by Winograd (`usesWinograd` only). In training (`keep`) the input
    /// transforms V of the whole batch stay for the weight gradient.
    func winogradForward(_ xT: UnsafePointer<T>, _ yT: UnsafeMutablePointer<T>, batch: Int, keep: Bool) {
        let w = f32(UnsafePointer(params!)), F = filters, shape = forwardShape, m = shape.block
        // The transformed weights are kept beside the weights they were made from, and made
        // again only when a weight or the block changed since the last call (every step in
        // training; once for a whole `predict`).
        let current = winoW.capacity >= K * F + 1 && winoW.pointer[K * F] == T(m) && memcmp(winoW.pointer, w, K * F * 4) == 0
        if !current {
            winoW.reserve(K * F + 1)
            f32(winoW.pointer).update(from: w, count: K * F)
            winoW.pointer[K * F] = T(m)
            winogradWeights(w, shape: shape, block: m, into: winoU)
        }
        winogradConvolve(f32(xT), f32(yT), batch: batch, shape: shape, block: m, u: f32(UnsafePointer(winoU.pointer)), bias: w + K * F, keep: keep)
    }

    /// The gradients by Winograd (`usesWinograd` only, after a forward pass that kept V and U),
    /// both from dM = A dY Aᵀ per tile (the chain rule through Y = Aᵀ [U ⊙ V] A):
    /// - dW += Gᵀ dU G, with dU_ξ = V_ξᵀ dM_ξ over all the batch's tiles (U = G g Gᵀ);
    /// - dx (written, not added to) = the sum over tiles of B dV Bᵀ, with dV_ξ = dM_ξ U_ξᵀ
    ///   (V = Bᵀ d B): the same tiles and GEMM sizes as the forward pass.
    func winogradBackward(_ dyT: UnsafePointer<T>, _ dxT: UnsafeMutablePointer<T>?, batch: Int) {
        let dy = f32(dyT), F = filters, shape = forwardShape, m = shape.block, a = m + 2, products = a * a
        let tr = (OH + m - 1) / m, tc = (OW + m - 1) / m, tiles = batch * tr * tc
        let vStride = tiles * C + 16, qStride = tiles * F + 16, uStride = shape.uStride
        winoM.reserve(products * qStride)
        winoUT.reserve(products * uStride)
        winoWT.reserve(K * F)
        let v = f32(winoV.pointer), q = f32(winoM.pointer), du = f32(winoUT.pointer), dw = f32(winoWT.pointer)
        let zero = zeros()
        let pointers = UnsafeMutablePointer<UnsafePointer<Float>>.allocate(capacity: 36)
        let outputs = UnsafeMutablePointer<UnsafeMutablePointer<Float>>.allocate(capacity: 9)
        defer { pointers.deallocate(); outputs.deallocate() }
        // dM_ξ[t][f] = (A dY Aᵀ)_ξ, dY the tile's m×m output gradients (0 past the edge).
        transformTiles(dy, count: batch, H: OH, W: OW, C: F, tiles: (tr, tc), step: m, before: (0, 0), size: m, outside: zero, into: q, pointers) {
            if m == 4 { winograd43OutputGradientTransform($0, $1, stride: qStride, count: F) } else { winogradOutputGradientTransform($0, $1, stride: qStride, count: F) }
        }
        for xi in 0..<products {
            sgemm(transA: true, transB: false, m: C, n: F, k: tiles, alpha: 1, a: v + xi * vStride, lda: C,
                  b: q + xi * qStride, ldb: F, beta: 0, c: du + xi * uStride, ldc: F)
        }
        for c in 0..<C {
            for k in 0..<9 { outputs[k] = dw + (k * C + c) * F }
            if m == 4 {
                winograd43WeightGradientTransform(du + c * F, stride: uStride, outputs, count: F)
            } else {
                winogradWeightGradientTransform(du + c * F, stride: uStride, outputs, count: F)
            }
        }
        let g = f32(grads!)
        for i in 0..<K * F { g[i] += dw[i] }
        guard let dxT else { return }
        // dV_ξ[T×C] = dM_ξ[T×F] · U_ξᵀ, into V's buffer (V is spent). U is the forward pass's:
        // the weights have not changed since.
        let u = f32(UnsafePointer(winoU.pointer))
        for xi in 0..<products {
            sgemm(transA: false, transB: true, m: tiles, n: C, k: F, alpha: 1, a: q + xi * qStride, lda: F,
                  b: u + xi * uStride, ldb: F, beta: 0, c: v + xi * vStride, ldc: C)
        }
        // dx = Σ B dV Bᵀ over the tiles' a×a windows, as the forward pass laid them; positions
        // off the input (padding, the overhang) add into a scratch row instead.
        let dx = f32(dxT)
        dx.update(repeating: 0, count: batch * H * W * C)
        transformTiles(UnsafePointer(dx), count: batch, H: H, W: W, C: C, tiles: (tr, tc), step: m, before: (pt, pl), size: a, outside: sink(),
                       into: v, pointers) { window, dvt in
            // The window's pointers were made from dx and the sink, both writable.
            let dd = UnsafeRawPointer(window).assumingMemoryBound(to: UnsafeMutablePointer<Float>.self)
            if m == 4 { winograd43InputGradientTransform(dvt, stride: vStride, dd, count: C) } else { winogradInputGradientTransform(dvt, stride: vStride, dd, count: C) }
        }
    }

    /// A row of zeros as long as the channels and the filters (so the pointer stays valid
    /// from one call to the next): the input read outside the image, and the output gradient
    /// past its edge.
    private func zeros() -> UnsafePointer<Float> {
        let n = max(C, filters)
        winoZero.reserve(2 * n)
        winoZero.pointer.update(repeating: 0, count: n)
        return f32(UnsafePointer(winoZero.pointer))
    }

    /// A row as long as the channels, after `zeros()`'s, where the input gradient's positions
    /// off the input add up unread.
    private func sink() -> UnsafePointer<Float> {
        let n = max(C, filters)
        winoZero.reserve(2 * n)
        return f32(UnsafePointer(winoZero.pointer + n))
    }

    /// U_ξ[c][f] = (G g Gᵀ)_ξ, g the 3×3 kernel of channel c and filter f in w[k][c][f].
    private func winogradWeights(_ w: UnsafePointer<Float>, shape: WinogradShape, block m: Int, into scratch: Scratch<T>) {
        let C = shape.C, F = shape.F, products = (m + 2) * (m + 2), uStride = shape.uStride
        scratch.reserve(products * uStride)
        let u = f32(scratch.pointer)
        let inputs = UnsafeMutablePointer<UnsafePointer<Float>>.allocate(capacity: 9)
        let outputs = UnsafeMutablePointer<UnsafeMutablePointer<Float>>.allocate(capacity: 36)
        defer { inputs.deallocate(); outputs.deallocate() }
        for c in 0..<C {
            for k in 0..<9 { inputs[k] = w + (k * C + c) * F }
            for xi in 0..<products { outputs[xi] = u + xi * uStride + c * F }
            if m == 4 { winograd43WeightTransform(inputs, outputs, count: F) } else { winogradWeightTransform(inputs, outputs, count: F) }
        }
    }

    /// y = x ⊛ w + bias over `batch` samples, with U the transformed weights for `block`; with
    /// `keep`, V holds every tile of the batch at the end (`winogradBackward`'s layout),
    /// else only the last chunk's.
    private func winogradConvolve(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, batch: Int, shape: WinogradShape, block m: Int,
                                  u: UnsafePointer<Float>, bias b: UnsafePointer<Float>, keep: Bool) {
        let (H, W, C, OH, OW, F, pt, pl) = (shape.H, shape.W, shape.C, shape.OH, shape.OW, shape.F, shape.pt, shape.pl)
        let a = m + 2, products = a * a
        let tr = (OH + m - 1) / m, tc = (OW + m - 1) / m
        let chunk = max(1, 256 / (tr * tc))  // samples per step: about 256 tiles
        // The 16 or 36 matrices of V and M lie a few cache lines more than their size apart:
        // at exactly their size (a multiple of 4 KiB here and there) the transforms' loads of
        // one tile's elements fall into the same few cache sets.
        let vStride = (keep ? batch : chunk) * tr * tc * C + 16, mStride = chunk * tr * tc * F + 16
        winoV.reserve(products * vStride)
        winoM.reserve(products * mStride)
        let v = f32(winoV.pointer), mm = f32(winoM.pointer), zero = zeros()
        let inputs = UnsafeMutablePointer<UnsafePointer<Float>>.allocate(capacity: 36)
        let outputs = UnsafeMutablePointer<UnsafeMutablePointer<Float>>.allocate(capacity: 36)
        defer { inputs.deallocate(); outputs.deallocate() }
        var n0 = 0
        while n0 < batch {
            let n = min(chunk, batch - n0)
            let tiles = n * tr * tc, first = keep ? n0 * tr * tc : 0  // this chunk's first row of V
            // V_ξ[t][c] = (Bᵀ d B)_ξ, d the a×a input tile t of channel c.
            transformTiles(x + n0 * H * W * C, count: n, H: H, W: W, C: C, tiles: (tr, tc), step: m, before: (pt, pl), size: a, outside: zero,
                           into: v + first * C, inputs) {
                if m == 4 { winograd43InputTransform($0, $1, stride: vStride, count: C) } else { winogradInputTransform($0, $1, stride: vStride, count: C) }
            }
            // The products: M_ξ[T×F] = V_ξ[T×C] · U_ξ[C×F].
            for xi in 0..<products {
                sgemm(transA: false, transB: false, m: tiles, n: F, k: C, alpha: 1, a: v + xi * vStride + first * C, lda: C,
                      b: u + xi * shape.uStride, ldb: F, beta: 0, c: mm + xi * mStride, ldc: F)
            }
            // Y = Aᵀ M A + bias, the tile's m×m outputs; a position past the output's edge (when
            // OH or OW is not a multiple of m) is aliased to the block's first, written last.
            var t = 0
            for s in 0..<n {
                let ys = y + (n0 + s) * OH * OW * F
                for ty in 0..<tr {
                    for tx in 0..<tc {
                        let oy = m * ty, ox = m * tx
                        let first = ys + (oy * OW + ox) * F
                        for i in 0..<m {
                            for j in 0..<m {
                                outputs[m * i + j] = oy + i < OH && ox + j < OW ? first + (i * OW + j) * F : first
                            }
                        }
                        if m == 4 {
                            winograd43OutputTransform(mm + t * F, stride: mStride, bias: b, outputs, count: F)
                        } else {
                            winogradOutputTransform(mm + t * F, stride: mStride, bias: b, outputs[0], outputs[1], outputs[2], outputs[3], count: F)
                        }
                        t += 1
                    }
                }
            }
            n0 += n
        }
    }
}

/// Runs `transform(pointers, out + t·C)` over the tr×tc tiles t of each of `count` H×W×C
/// images, in order: tile (ty, tx) is the size×size window at (m·ty − before.0, m·tx − before.1),
/// and `pointers` point at its positions (`outside` off the image). The forward pass's input
/// tiles, and the weight gradient's blocks of output gradients.
@inline(__always) private func transformTiles(_ images: UnsafePointer<Float>, count: Int, H: Int, W: Int, C: Int, tiles: (tr: Int, tc: Int), step m: Int,
                                              before: (Int, Int), size: Int, outside: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>,
                                              _ pointers: UnsafeMutablePointer<UnsafePointer<Float>>,
                                              _ transform: (UnsafePointer<UnsafePointer<Float>>, UnsafeMutablePointer<Float>) -> Void) {
    let (tr, tc) = tiles
    var t = 0
    for s in 0..<count {
        let image = images + s * H * W * C
        for ty in 0..<tr {
            for tx in 0..<tc {
                window(pointers, image, H: H, W: W, C: C, y0: m * ty - before.0, x0: m * tx - before.1, size: size, outside: outside)
                transform(pointers, out + t * C)
                t += 1
            }
        }
    }
}

/// Points `p[size·i + j]` at position (y0 + i, x0 + j) of the H×W image of C channels at
/// `image`, or at `outside` (a row of zeros) where that position is off the image: an input
/// tile, or a block of output gradients.
@inline(__always) private func window(_ p: UnsafeMutablePointer<UnsafePointer<Float>>, _ image: UnsafePointer<Float>, H: Int, W: Int, C: Int,
                                      y0: Int, x0: Int, size: Int, outside: UnsafePointer<Float>) {
    for i in 0..<size {
        let y = y0 + i
        for j in 0..<size {
            let x = x0 + j
            p[size * i + j] = y >= 0 && y < H && x >= 0 && x < W ? image + (y * W + x) * C : outside
        }
    }
}
