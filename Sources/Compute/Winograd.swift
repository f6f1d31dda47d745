// The three transforms of Winograd F(2×2, 3×3) (Lavin and Gray, 2015) on SIMD8 vectors,
// each over a run of `count` ≥ 8 contiguous channels or filters. A run that is not a multiple
// of 8 ends with one vector that overlaps the one before: every output is a pure function of
// its inputs, so computing a lane twice writes the same value twice.
//   U = G g Gᵀ,  G = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1]
//   V = Bᵀ d B,  Bᵀ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1]
//   Y = Aᵀ M A,  Aᵀ = [1 1 1 0; 0 1 −1 −1]
// ξ = 4·row + column numbers the 16 elements of a 4×4 tile.

typealias F8 = SIMD8<Float>

@inline(__always) private func load(_ p: UnsafePointer<Float>, _ i: Int) -> F8 {
    UnsafeRawPointer(p + i).loadUnaligned(as: F8.self)
}

@inline(__always) private func store(_ v: F8, _ p: UnsafeMutablePointer<Float>, _ i: Int) {
    UnsafeMutableRawPointer(p + i).storeBytes(of: v, as: F8.self)
}

/// Runs `body` at offsets 0, 8, … and last at `count − 8` (overlapping), for `count` ≥ 8.
@inline(__always) private func vectors(_ count: Int, _ body: (Int) -> Void) {
    var i = 0
    while i &+ 8 <= count { body(i); i &+= 8 }
    if i < count { body(count &- 8) }
}

/// Weights: `g[k]` (k = 3·i + j) points at the 3×3 kernel's element (i, j) for `count`
/// filters; `u[ξ]` receives (G g Gᵀ)_ξ for the same filters.
public func winogradWeightTransform(_ g: UnsafePointer<UnsafePointer<Float>>, _ u: UnsafePointer<UnsafeMutablePointer<Float>>, count: Int) {
    precondition(count >= 8)  // trap-ok: callers choose Winograd only for ≥ 8 filters
    vectors(count) { f in
        // G g: four rows of three.
        let g0 = load(g[0], f), g1 = load(g[1], f), g2 = load(g[2], f)
        let g3 = load(g[3], f), g4 = load(g[4], f), g5 = load(g[5], f)
        let g6 = load(g[6], f), g7 = load(g[7], f), g8 = load(g[8], f)
        // (G g) Gᵀ: each row to four.
        @inline(__always) func row(_ a: Int, _ r0: F8, _ r1: F8, _ r2: F8) {
            store(r0, u[4 &* a], f)
            store((r0 + r1 + r2) * 0.5, u[4 &* a &+ 1], f)
            store((r0 - r1 + r2) * 0.5, u[4 &* a &+ 2], f)
            store(r2, u[4 &* a &+ 3], f)
        }
        row(0, g0, g1, g2)
        row(1, (g0 + g3 + g6) * 0.5, (g1 + g4 + g7) * 0.5, (g2 + g5 + g8) * 0.5)
        row(2, (g0 - g3 + g6) * 0.5, (g1 - g4 + g7) * 0.5, (g2 - g5 + g8) * 0.5)
        row(3, g6, g7, g8)
    }
}

/// Inputs: `d[ξ]` points at the tile's position ξ for `count` channels (a row of zeros where
/// the tile overhangs the image); element ξ of Bᵀ d B goes to `v + ξ·stride`.
public func winogradInputTransform(_ d: UnsafePointer<UnsafePointer<Float>>, _ v: UnsafeMutablePointer<Float>, stride: Int, count: Int) {
    precondition(count >= 8)  // trap-ok: callers choose Winograd only for ≥ 8 channels
    vectors(count) { c in
        @inline(__always) func x(_ k: Int) -> F8 { load(d[k], c) }
        @inline(__always) func put(_ k: Int, _ e: F8) { store(e, v + k &* stride, c) }
        // Bᵀ d, by rows; then each row times B.
        @inline(__always) func row(_ a: Int, _ r0: F8, _ r1: F8, _ r2: F8, _ r3: F8) {
            put(4 &* a, r0 - r2)
            put(4 &* a &+ 1, r1 + r2)
            put(4 &* a &+ 2, r2 - r1)
            put(4 &* a &+ 3, r1 - r3)
        }
        row(0, x(0) - x(8), x(1) - x(9), x(2) - x(10), x(3) - x(11))
        row(1, x(4) + x(8), x(5) + x(9), x(6) + x(10), x(7) + x(11))
        row(2, x(8) - x(4), x(9) - x(5), x(10) - x(6), x(11) - x(7))
        row(3, x(4) - x(12), x(5) - x(13), x(6) - x(14), x(7) - x(15))
    }
}

/// Outputs: element ξ of the tile's products M at `m + ξ·stride` for `count` filters; the
/// 2×2 block Aᵀ M A plus `bias` goes to y00, y01, y10, y11 (row-major), written in the order
/// y11, y10, y01, y00, so that a caller may alias a clipped position to y00.
public func winogradOutputTransform(_ m: UnsafePointer<Float>, stride: Int, bias: UnsafePointer<Float>,
                                    _ y00: UnsafeMutablePointer<Float>, _ y01: UnsafeMutablePointer<Float>,
                                    _ y10: UnsafeMutablePointer<Float>, _ y11: UnsafeMutablePointer<Float>, count: Int) {
    precondition(count >= 8)  // trap-ok: callers choose Winograd only for ≥ 8 filters
    vectors(count) { f in
        @inline(__always) func q(_ k: Int) -> F8 { load(m + k &* stride, f) }
        let b = load(bias, f)
        // Aᵀ M: two rows of four; then each row times A.
        let s0 = q(0) + q(4) + q(8), s1 = q(1) + q(5) + q(9), s2 = q(2) + q(6) + q(10), s3 = q(3) + q(7) + q(11)
        let r0 = q(4) - q(8) - q(12), r1 = q(5) - q(9) - q(13), r2 = q(6) - q(10) - q(14), r3 = q(7) - q(11) - q(15)
        store(r1 - r2 - r3 + b, y11, f)
        store(r0 + r1 + r2 + b, y10, f)
        store(s1 - s2 - s3 + b, y01, f)
        store(s0 + s1 + s2 + b, y00, f)
    }
}
