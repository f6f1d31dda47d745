// The three transforms of Winograd F(2×2, 3×3) and F(4×4, 3×3) (Lavin and Gray, 2015) on
// SIMD8 vectors, each over a run of `count` ≥ 8 contiguous channels or filters. A run that is not a multiple
// of 8 ends with one vector that overlaps the one before: every output is a pure function of
// its inputs, so computing a lane twice writes the same value twice.
//   U = G g Gᵀ,  G = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1]
//   V = Bᵀ d B,  Bᵀ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1]
//   Y = Aᵀ M A,  Aᵀ = [1 1 1 0; 0 1 −1 −1]   (F(2×2, 3×3); F(4×4, 3×3)'s matrices are below)
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

// F(4×4, 3×3): 6×6 tiles, 4×4 outputs, 36 products per channel pair for 16 outputs (2.25 per
// output, against 4 for F(2×2, 3×3) and 9 directly), at the price of larger transforms and
// rounding errors about ten times F(2×2, 3×3)'s (still near 1e-6 relative in single precision
// for 3×3 kernels, Lavin and Gray's Table 4):
//   G  = [¼ 0 0; −⅙ −⅙ −⅙; −⅙ ⅙ −⅙; 1⁄24 1⁄12 ⅙; 1⁄24 −1⁄12 ⅙; 0 0 1]
//   Bᵀ = [4 0 −5 0 1 0; 0 −4 −4 1 1 0; 0 4 −4 −1 1 0; 0 −2 −1 2 1 0; 0 2 −1 −2 1 0; 0 4 0 −5 0 1]
//   Aᵀ = [1 1 1 1 1 0; 0 1 −1 2 −2 0; 0 1 1 4 4 0; 0 1 −1 8 −8 1]
// ξ = 6·row + column.

typealias Six = (F8, F8, F8, F8, F8, F8)

@inline(__always) private func gt(_ a: F8, _ b: F8, _ c: F8) -> Six {
    let s = a + c
    return (a * 0.25, (s + b) * (-1.0 / 6), (s - b) * (-1.0 / 6),
            a * (1.0 / 24) + b * (1.0 / 12) + c * (1.0 / 6), a * (1.0 / 24) - b * (1.0 / 12) + c * (1.0 / 6), c)
}

@inline(__always) private func bt(_ d: Six) -> Six {
    let (d0, d1, d2, d3, d4, d5) = d
    return (d0 * 4 - d2 * 5 + d4, d3 + d4 - (d1 + d2) * 4, (d1 - d2) * 4 - d3 + d4,
            (d3 - d1) * 2 - d2 + d4, (d1 - d3) * 2 - d2 + d4, d1 * 4 - d3 * 5 + d5)
}

@inline(__always) private func at(_ m: Six) -> (F8, F8, F8, F8) {
    let (m0, m1, m2, m3, m4, m5) = m
    let p12 = m1 + m2, d12 = m1 - m2, p34 = m3 + m4, d34 = m3 - m4
    return (m0 + p12 + p34, d12 + d34 * 2, p12 + p34 * 4, d12 + d34 * 8 + m5)
}

/// Weights for F(4×4, 3×3): as `winogradWeightTransform`, with 36 outputs `u[ξ]`.
public func winograd43WeightTransform(_ g: UnsafePointer<UnsafePointer<Float>>, _ u: UnsafePointer<UnsafeMutablePointer<Float>>, count: Int) {
    precondition(count >= 8)  // trap-ok: callers choose Winograd only for ≥ 8 filters
    vectors(count) { f in
        @inline(__always) func w(_ k: Int) -> F8 { load(g[k], f) }
        // G g: columns j = 0, 1, 2 of the 6×3 product.
        let c0 = gt(w(0), w(3), w(6)), c1 = gt(w(1), w(4), w(7)), c2 = gt(w(2), w(5), w(8))
        // (G g) Gᵀ: row a of G g, (c0.a, c1.a, c2.a), to six.
        @inline(__always) func row(_ a: Int, _ r: Six) {
            store(r.0, u[6 &* a], f); store(r.1, u[6 &* a &+ 1], f); store(r.2, u[6 &* a &+ 2], f)
            store(r.3, u[6 &* a &+ 3], f); store(r.4, u[6 &* a &+ 4], f); store(r.5, u[6 &* a &+ 5], f)
        }
        row(0, gt(c0.0, c1.0, c2.0))
        row(1, gt(c0.1, c1.1, c2.1))
        row(2, gt(c0.2, c1.2, c2.2))
        row(3, gt(c0.3, c1.3, c2.3))
        row(4, gt(c0.4, c1.4, c2.4))
        row(5, gt(c0.5, c1.5, c2.5))
    }
}

/// Inputs for F(4×4, 3×3): `d[ξ]` the 36 positions of a 6×6 tile; element ξ of Bᵀ d B goes to
/// `v + ξ·stride`.
public func winograd43InputTransform(_ d: UnsafePointer<UnsafePointer<Float>>, _ v: UnsafeMutablePointer<Float>, stride: Int, count: Int) {
    precondition(count >= 8)  // trap-ok: callers choose Winograd only for ≥ 8 channels
    vectors(count) { c in
        @inline(__always) func col(_ j: Int) -> Six {
            (load(d[j], c), load(d[6 &+ j], c), load(d[12 &+ j], c), load(d[18 &+ j], c), load(d[24 &+ j], c), load(d[30 &+ j], c))
        }
        // Bᵀ d, column by column: t_j = Bᵀ (column j of d).
        let t0 = bt(col(0)), t1 = bt(col(1)), t2 = bt(col(2)), t3 = bt(col(3)), t4 = bt(col(4)), t5 = bt(col(5))
        // (Bᵀ d) B: row a of Bᵀ d is (t0.a, …, t5.a).
        @inline(__always) func row(_ a: Int, _ r: Six) {
            let e = bt(r), o = v + 6 &* a &* stride
            store(e.0, o, c); store(e.1, o + stride, c); store(e.2, o + 2 &* stride, c)
            store(e.3, o + 3 &* stride, c); store(e.4, o + 4 &* stride, c); store(e.5, o + 5 &* stride, c)
        }
        row(0, (t0.0, t1.0, t2.0, t3.0, t4.0, t5.0))
        row(1, (t0.1, t1.1, t2.1, t3.1, t4.1, t5.1))
        row(2, (t0.2, t1.2, t2.2, t3.2, t4.2, t5.2))
        row(3, (t0.3, t1.3, t2.3, t3.3, t4.3, t5.3))
        row(4, (t0.4, t1.4, t2.4, t3.4, t4.4, t5.4))
        row(5, (t0.5, t1.5, t2.5, t3.5, t4.5, t5.5))
    }
}

/// Outputs for F(4×4, 3×3): element ξ of the products at `m + ξ·stride`; the 4×4 block
/// Aᵀ M A plus `bias` goes to `y[4·i + j]`, written with y[0] last, so that a caller may alias
/// positions past the output's edge to y[0].
public func winograd43OutputTransform(_ m: UnsafePointer<Float>, stride: Int, bias: UnsafePointer<Float>,
                                      _ y: UnsafePointer<UnsafeMutablePointer<Float>>, count: Int) {
    precondition(count >= 8)  // trap-ok: callers choose Winograd only for ≥ 8 filters
    vectors(count) { f in
        @inline(__always) func col(_ j: Int) -> Six {
            (load(m + j &* stride, f), load(m + (6 &+ j) &* stride, f), load(m + (12 &+ j) &* stride, f),
             load(m + (18 &+ j) &* stride, f), load(m + (24 &+ j) &* stride, f), load(m + (30 &+ j) &* stride, f))
        }
        // Aᵀ M, column by column; then each of its four rows times A.
        let t0 = at(col(0)), t1 = at(col(1)), t2 = at(col(2)), t3 = at(col(3)), t4 = at(col(4)), t5 = at(col(5))
        let b = load(bias, f)
        let r0 = at((t0.0, t1.0, t2.0, t3.0, t4.0, t5.0)), r1 = at((t0.1, t1.1, t2.1, t3.1, t4.1, t5.1))
        let r2 = at((t0.2, t1.2, t2.2, t3.2, t4.2, t5.2)), r3 = at((t0.3, t1.3, t2.3, t3.3, t4.3, t5.3))
        store(r3.3 + b, y[15], f); store(r3.2 + b, y[14], f); store(r3.1 + b, y[13], f); store(r3.0 + b, y[12], f)
        store(r2.3 + b, y[11], f); store(r2.2 + b, y[10], f); store(r2.1 + b, y[9], f); store(r2.0 + b, y[8], f)
        store(r1.3 + b, y[7], f); store(r1.2 + b, y[6], f); store(r1.1 + b, y[5], f); store(r1.0 + b, y[4], f)
        store(r0.3 + b, y[3], f); store(r0.2 + b, y[2], f); store(r0.1 + b, y[1], f); store(r0.0 + b, y[0], f)
    }
}

// The weight gradient by the same transforms (the chain rule through Y = Aᵀ [U ⊙ V] A and
// U = G g Gᵀ): with dM = A dY Aᵀ per tile and filter, dU_ξ[c][f] = Σ_t V_ξ[t][c] · dM_ξ[t][f]
// (a GEMM over the tiles), and dg = Gᵀ dU G per channel and filter.

/// Output gradients for F(2×2, 3×3): `dy[2·i + j]` points at the gradient of the block's
/// output (i, j) for `count` filters (a row of zeros past the output's edge); element ξ of
/// A dY Aᵀ goes to `q + ξ·stride`.
public func winogradOutputGradientTransform(_ dy: UnsafePointer<UnsafePointer<Float>>, _ q: UnsafeMutablePointer<Float>, stride: Int, count: Int) {
    precondition(count >= 8)  // trap-ok: callers choose Winograd only for ≥ 8 filters
    vectors(count) { f in
        // A (d0, d1) = (d0, d0 + d1, d0 − d1, −d1), down both columns, then along each row.
        @inline(__always) func a(_ d0: F8, _ d1: F8) -> (F8, F8, F8, F8) { (d0, d0 + d1, d0 - d1, -d1) }
        let c0 = a(load(dy[0], f), load(dy[2], f)), c1 = a(load(dy[1], f), load(dy[3], f))
        @inline(__always) func row(_ r: Int, _ e: (F8, F8, F8, F8)) {
            let o = q + 4 &* r &* stride
            store(e.0, o, f); store(e.1, o + stride, f); store(e.2, o + 2 &* stride, f); store(e.3, o + 3 &* stride, f)
        }
        row(0, a(c0.0, c1.0))
        row(1, a(c0.1, c1.1))
        row(2, a(c0.2, c1.2))
        row(3, a(c0.3, c1.3))
    }
}

/// Weight gradients for F(2×2, 3×3): element ξ of dU at `du + ξ·stride` for `count` filters;
/// Gᵀ dU G goes to `dg[3·i + j]`, the gradient of the kernel's element (i, j) (written, not
/// added to: the overlapping last vector computes some lanes twice).
public func winogradWeightGradientTransform(_ du: UnsafePointer<Float>, stride: Int, _ dg: UnsafePointer<UnsafeMutablePointer<Float>>, count: Int) {
    precondition(count >= 8)  // trap-ok: callers choose Winograd only for ≥ 8 filters
    vectors(count) { f in
        // Gᵀ (u0, u1, u2, u3) = (u0 + (u1 + u2)/2, (u1 − u2)/2, (u1 + u2)/2 + u3).
        @inline(__always) func h(_ u0: F8, _ u1: F8, _ u2: F8, _ u3: F8) -> (F8, F8, F8) {
            let s = (u1 + u2) * 0.5
            return (u0 + s, (u1 - u2) * 0.5, s + u3)
        }
        @inline(__always) func u(_ k: Int) -> F8 { load(du + k &* stride, f) }
        let c0 = h(u(0), u(4), u(8), u(12)), c1 = h(u(1), u(5), u(9), u(13))
        let c2 = h(u(2), u(6), u(10), u(14)), c3 = h(u(3), u(7), u(11), u(15))
        @inline(__always) func put(_ i: Int, _ e: (F8, F8, F8)) {
            store(e.0, dg[3 &* i], f); store(e.1, dg[3 &* i &+ 1], f); store(e.2, dg[3 &* i &+ 2], f)
        }
        put(0, h(c0.0, c1.0, c2.0, c3.0))
        put(1, h(c0.1, c1.1, c2.1, c3.1))
        put(2, h(c0.2, c1.2, c2.2, c3.2))
    }
}

/// A (d0, d1, d2, d3) for F(4×4, 3×3): Aᵀ's columns.
@inline(__always) private func a43(_ d0: F8, _ d1: F8, _ d2: F8, _ d3: F8) -> Six {
    let p02 = d0 + d2, p13 = d1 + d3, q02 = d0 + d2 * 4, q13 = (d1 + d3 * 4) * 2
    return (d0, p02 + p13, p02 - p13, q02 + q13, q02 - q13, d3)
}

/// Gᵀ (u0, …, u5) for F(4×4, 3×3): G's columns.
@inline(__always) private func g43(_ u: Six) -> (F8, F8, F8) {
    let (u0, u1, u2, u3, u4, u5) = u
    let p12 = u1 + u2, p34 = u3 + u4
    return (u0 * 0.25 - p12 * (1.0 / 6) + p34 * (1.0 / 24), (u2 - u1) * (1.0 / 6) + (u3 - u4) * (1.0 / 12), (p34 - p12) * (1.0 / 6) + u5)
}

/// Output gradients for F(4×4, 3×3): `dy[4·i + j]` the 16 positions of the block (a row of
/// zeros past the output's edge); element ξ of A dY Aᵀ goes to `q + ξ·stride`.
public func winograd43OutputGradientTransform(_ dy: UnsafePointer<UnsafePointer<Float>>, _ q: UnsafeMutablePointer<Float>, stride: Int, count: Int) {
    precondition(count >= 8)  // trap-ok: callers choose Winograd only for ≥ 8 filters
    vectors(count) { f in
        @inline(__always) func col(_ j: Int) -> Six { a43(load(dy[j], f), load(dy[4 &+ j], f), load(dy[8 &+ j], f), load(dy[12 &+ j], f)) }
        let c0 = col(0), c1 = col(1), c2 = col(2), c3 = col(3)
        @inline(__always) func row(_ r: Int, _ e: Six) {
            let o = q + 6 &* r &* stride
            store(e.0, o, f); store(e.1, o + stride, f); store(e.2, o + 2 &* stride, f)
            store(e.3, o + 3 &* stride, f); store(e.4, o + 4 &* stride, f); store(e.5, o + 5 &* stride, f)
        }
        row(0, a43(c0.0, c1.0, c2.0, c3.0))
        row(1, a43(c0.1, c1.1, c2.1, c3.1))
        row(2, a43(c0.2, c1.2, c2.2, c3.2))
        row(3, a43(c0.3, c1.3, c2.3, c3.3))
        row(4, a43(c0.4, c1.4, c2.4, c3.4))
        row(5, a43(c0.5, c1.5, c2.5, c3.5))
    }
}

/// Weight gradients for F(4×4, 3×3): element ξ of dU at `du + ξ·stride`; Gᵀ dU G goes to
/// `dg[3·i + j]`.
public func winograd43WeightGradientTransform(_ du: UnsafePointer<Float>, stride: Int, _ dg: UnsafePointer<UnsafeMutablePointer<Float>>, count: Int) {
    precondition(count >= 8)  // trap-ok: callers choose Winograd only for ≥ 8 filters
    vectors(count) { f in
        @inline(__always) func col(_ j: Int) -> (F8, F8, F8) {
            g43((load(du + j &* stride, f), load(du + (6 &+ j) &* stride, f), load(du + (12 &+ j) &* stride, f),
                 load(du + (18 &+ j) &* stride, f), load(du + (24 &+ j) &* stride, f), load(du + (30 &+ j) &* stride, f)))
        }
        let c0 = col(0), c1 = col(1), c2 = col(2), c3 = col(3), c4 = col(4), c5 = col(5)
        @inline(__always) func put(_ i: Int, _ e: (F8, F8, F8)) {
            store(e.0, dg[3 &* i], f); store(e.1, dg[3 &* i &+ 1], f); store(e.2, dg[3 &* i &+ 2], f)
        }
        put(0, g43((c0.0, c1.0, c2.0, c3.0, c4.0, c5.0)))
        put(1, g43((c0.1, c1.1, c2.1, c3.1, c4.1, c5.1)))
        put(2, g43((c0.2, c1.2, c2.2, c3.2, c4.2, c5.2)))
    }
}

// The input gradient by the same transforms (the chain rule through Y = Aᵀ [U ⊙ V] A and
// V = Bᵀ d B): dV_ξ[t][c] = Σ_f dM_ξ[t][f] · U_ξ[c][f] (a GEMM), and dd = B dV Bᵀ per tile
// and channel, added into the tile's window of the input gradient (neighbouring windows
// overlap by two rows or columns, so each tile adds rather than writes).

/// As `vectors`, for kernels that add into their outputs: `body(i, fresh)`, with `fresh` the
/// lanes that no earlier vector added (all of them but on an overlapping last vector).
@inline(__always) private func accumulatingVectors(_ count: Int, _ body: (Int, SIMDMask<SIMD8<Int32>>) -> Void) {
    var i = 0
    while i &+ 8 <= count { body(i, SIMDMask(repeating: true)); i &+= 8 }
    if i < count {
        let start = count &- 8
        body(start, SIMD8<Int32>(0, 1, 2, 3, 4, 5, 6, 7) .>= SIMD8(repeating: Int32(truncatingIfNeeded: i &- start)))
    }
}

/// Adds the `fresh` lanes of `v` into the 8 floats at `p + i`.
@inline(__always) private func add(_ v: F8, _ p: UnsafeMutablePointer<Float>, _ i: Int, _ fresh: SIMDMask<SIMD8<Int32>>) {
    store(load(p, i) + F8(repeating: 0).replacing(with: v, where: fresh), p, i)
}

/// Input-tile gradients for F(2×2, 3×3): element ξ of dV at `dv + ξ·stride` for `count`
/// channels; B dV Bᵀ is added into `dd[4·i + j]`, the gradient of the tile's position (i, j)
/// (a caller may point positions off the image at one scratch row, whose sum it ignores).
public func winogradInputGradientTransform(_ dv: UnsafePointer<Float>, stride: Int, _ dd: UnsafePointer<UnsafeMutablePointer<Float>>, count: Int) {
    precondition(count >= 8)  // trap-ok: callers choose Winograd only for ≥ 8 channels
    accumulatingVectors(count) { c, fresh in
        // B (v0, v1, v2, v3) = (v0, v1 − v2 + v3, v1 + v2 − v0, −v3): Bᵀ's columns.
        @inline(__always) func b(_ v0: F8, _ v1: F8, _ v2: F8, _ v3: F8) -> (F8, F8, F8, F8) { (v0, v1 - v2 + v3, v1 + v2 - v0, -v3) }
        @inline(__always) func col(_ j: Int) -> (F8, F8, F8, F8) {
            b(load(dv + j &* stride, c), load(dv + (4 &+ j) &* stride, c), load(dv + (8 &+ j) &* stride, c), load(dv + (12 &+ j) &* stride, c))
        }
        let c0 = col(0), c1 = col(1), c2 = col(2), c3 = col(3)
        @inline(__always) func row(_ i: Int, _ e: (F8, F8, F8, F8)) {
            add(e.0, dd[4 &* i], c, fresh); add(e.1, dd[4 &* i &+ 1], c, fresh)
            add(e.2, dd[4 &* i &+ 2], c, fresh); add(e.3, dd[4 &* i &+ 3], c, fresh)
        }
        row(0, b(c0.0, c1.0, c2.0, c3.0))
        row(1, b(c0.1, c1.1, c2.1, c3.1))
        row(2, b(c0.2, c1.2, c2.2, c3.2))
        row(3, b(c0.3, c1.3, c2.3, c3.3))
    }
}

/// B (v0, …, v5) for F(4×4, 3×3): Bᵀ's columns.
@inline(__always) private func b43(_ v: Six) -> Six {
    let (v0, v1, v2, v3, v4, v5) = v
    let p12 = v1 + v2, d12 = v1 - v2, p34 = v3 + v4, d34 = v3 - v4
    return (v0 * 4, (v5 - d12) * 4 - d34 * 2, v0 * -5 - p12 * 4 - p34, d12 + d34 * 2 - v5 * 5, v0 + p12 + p34, v5)
}

/// Input-tile gradients for F(4×4, 3×3): element ξ of dV at `dv + ξ·stride`; B dV Bᵀ is added
/// into `dd[6·i + j]`.
public func winograd43InputGradientTransform(_ dv: UnsafePointer<Float>, stride: Int, _ dd: UnsafePointer<UnsafeMutablePointer<Float>>, count: Int) {
    precondition(count >= 8)  // trap-ok: callers choose Winograd only for ≥ 8 channels
    accumulatingVectors(count) { c, fresh in
        @inline(__always) func col(_ j: Int) -> Six {
            b43((load(dv + j &* stride, c), load(dv + (6 &+ j) &* stride, c), load(dv + (12 &+ j) &* stride, c),
                 load(dv + (18 &+ j) &* stride, c), load(dv + (24 &+ j) &* stride, c), load(dv + (30 &+ j) &* stride, c)))
        }
        let c0 = col(0), c1 = col(1), c2 = col(2), c3 = col(3), c4 = col(4), c5 = col(5)
        @inline(__always) func row(_ i: Int, _ e: Six) {
            add(e.0, dd[6 &* i], c, fresh); add(e.1, dd[6 &* i &+ 1], c, fresh); add(e.2, dd[6 &* i &+ 2], c, fresh)
            add(e.3, dd[6 &* i &+ 3], c, fresh); add(e.4, dd[6 &* i &+ 4], c, fresh); add(e.5, dd[6 &* i &+ 5], c, fresh)
        }
        row(0, b43((c0.0, c1.0, c2.0, c3.0, c4.0, c5.0)))
        row(1, b43((c0.1, c1.1, c2.1, c3.1, c4.1, c5.1)))
        row(2, b43((c0.2, c1.2, c2.2, c3.2, c4.2, c5.2)))
        row(3, b43((c0.3, c1.3, c2.3, c3.3, c4.3, c5.3)))
        row(4, b43((c0.4, c1.4, c2.4, c3.4, c4.4, c5.4)))
        row(5, b43((c0.5, c1.5, c2.5, c3.5, c4.5, c5.5)))
    }
}
