// Inference for 3×3 stride-1 convolutions as Winograd F(2×2, 3×3) (Lavin and Gray, 2015):
// each 2×2 block of outputs from a 4×4 input tile, with 16 element-wise products per channel
// pair instead of 36. Over a chunk of T tiles that is 16 GEMMs V_ξ[T×C] · U_ξ[C×F], ξ = 0…15,
// between an input transform and an output transform:
//   U = G g Gᵀ (per channel and filter),  V = Bᵀ d B (per tile and channel),  Y = Aᵀ M A,
//   G = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1],  Bᵀ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1],
//   Aᵀ = [1 1 1 0; 0 1 −1 −1].
// 2.25 times fewer multiplications than im2col + GEMM (less the tiles' overhang at odd output
// sizes), on GEMMs with K = C, which OpenBLAS runs at about 80 % of its K = 9C rate. Training
// keeps im2col: its backward needs the columns. Tiles outside the input read zeros, so both
// paddings work.

import Compute
import TensorCore

extension Conv2D {
    /// Whether inference runs this convolution as Winograd F(2×2, 3×3): Float, 3×3 kernels at
    /// stride 1, over at least 8 channels and 8 filters (one vector; a first layer's 1 or 3
    /// channels would make the K = C GEMMs too thin to pay).
    var usesWinograd: Bool { T.self == Float.self && kh == 3 && kw == 3 && stride == 1 && C >= 8 && filters >= 8 }

    /// Tiles per sample: ⌈OH/2⌉ × ⌈OW/2⌉.
    var winogradTiles: (rows: Int, cols: Int) { ((OH + 1) / 2, (OW + 1) / 2) }

    /// Samples per transform–GEMM–transform step: about 256 tiles.
    var winogradChunk: Int { max(1, 256 / max(winogradTiles.rows * winogradTiles.cols, 1)) }

    /// The forward pass for inference by Winograd (`usesWinograd` only). The weights are
    /// transformed on each call (about 1 % of the work at 16 samples), so they are never stale.
    func winogradForward(_ xT: UnsafePointer<T>, _ yT: UnsafeMutablePointer<T>, batch: Int) {
        let x = f32(xT), y = f32(yT), w = f32(UnsafePointer(params!))
        let F = filters
        let (tr, tc) = winogradTiles
        let chunk = winogradChunk
        winoU.reserve(16 * C * F)
        winoV.reserve(16 * chunk * tr * tc * C)
        winoM.reserve(16 * chunk * tr * tc * F)
        winoZero.reserve(C)
        winoZero.pointer.update(repeating: 0, count: C)
        let u = f32(winoU.pointer), v = f32(winoV.pointer), m = f32(winoM.pointer), zero = f32(UnsafePointer(winoZero.pointer))
        let b = w + K * F
        let inputs = UnsafeMutablePointer<UnsafePointer<Float>>.allocate(capacity: 16)
        let outputs = UnsafeMutablePointer<UnsafeMutablePointer<Float>>.allocate(capacity: 16)
        defer { inputs.deallocate(); outputs.deallocate() }

        // U_ξ[c][f] = (G g Gᵀ)_ξ, g the 3×3 kernel of channel c and filter f.
        for c in 0..<C {
            for k in 0..<9 { inputs[k] = w + (k * C + c) * F }
            for xi in 0..<16 { outputs[xi] = u + (xi * C + c) * F }
            winogradWeightTransform(inputs, outputs, count: F)
        }
        var n0 = 0
        while n0 < batch {
            let n = min(chunk, batch - n0)
            let tiles = n * tr * tc
            // V_ξ[t][c] = (Bᵀ d B)_ξ, d the 4×4 input tile t of channel c.
            var t = 0
            for s in 0..<n {
                let xs = x + (n0 + s) * H * W * C
                for ty in 0..<tr {
                    for tx in 0..<tc {
                        let iy0 = 2 * ty - pt, ix0 = 2 * tx - pl
                        for i in 0..<4 {
                            let iy = iy0 + i
                            for j in 0..<4 {
                                let ix = ix0 + j
                                inputs[4 * i + j] = iy >= 0 && iy < H && ix >= 0 && ix < W ? xs + (iy * W + ix) * C : zero
                            }
                        }
                        winogradInputTransform(inputs, v + t * C, stride: tiles * C, count: C)
                        t += 1
                    }
                }
            }
            // The 16 products: M_ξ[T×F] = V_ξ[T×C] · U_ξ[C×F].
            for xi in 0..<16 {
                sgemm(transA: false, transB: false, m: tiles, n: F, k: C, alpha: 1, a: v + xi * tiles * C, lda: C,
                      b: u + xi * C * F, ldb: F, beta: 0, c: m + xi * tiles * F, ldc: F)
            }
            // Y = Aᵀ M A + bias, the tile's 2×2 outputs; a position past the output's edge (odd
            // OH or OW) is aliased to the block's first, which the transform writes last.
            t = 0
            for s in 0..<n {
                let ys = y + (n0 + s) * OH * OW * F
                for ty in 0..<tr {
                    for tx in 0..<tc {
                        let oy = 2 * ty, ox = 2 * tx
                        let right = ox + 1 < OW, below = oy + 1 < OH
                        let y00 = ys + (oy * OW + ox) * F
                        winogradOutputTransform(m + t * F, stride: tiles * F, bias: b, y00, right ? y00 + F : y00,
                                                below ? y00 + OW * F : y00, right && below ? y00 + (OW + 1) * F : y00, count: F)
                        t += 1
                    }
                }
            }
            n0 += n
        }
    }
}
