// Element-wise Float kernels on SIMD8 vectors, for the hot loops the compiler will not
// vectorize on its own (a select on a comparison compiles to a branch per element).

import Foundation

/// y = max(x, 0).
public func reluForward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count n: Int) {
    let xr = UnsafeRawPointer(x), yr = UnsafeMutableRawPointer(y)
    var i = 0
    while i + 8 <= n {
        let v = xr.loadUnaligned(fromByteOffset: 4 * i, as: SIMD8<Float>.self)
        yr.storeBytes(of: v.replacing(with: 0, where: v .< 0), toByteOffset: 4 * i, as: SIMD8<Float>.self)
        i += 8
    }
    while i < n { y[i] = x[i] > 0 ? x[i] : 0; i += 1 }
}

/// dx = x > 0 ? dy : 0.
public func reluBackward(_ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, count n: Int) {
    let xr = UnsafeRawPointer(x), gr = UnsafeRawPointer(dy), dr = UnsafeMutableRawPointer(dx)
    var i = 0
    while i + 8 <= n {
        let v = xr.loadUnaligned(fromByteOffset: 4 * i, as: SIMD8<Float>.self)
        let g = gr.loadUnaligned(fromByteOffset: 4 * i, as: SIMD8<Float>.self)
        dr.storeBytes(of: g.replacing(with: 0, where: v .<= 0), toByteOffset: 4 * i, as: SIMD8<Float>.self)
        i += 8
    }
    while i < n { dx[i] = x[i] > 0 ? dy[i] : 0; i += 1 }
}

/// e^x on eight lanes: Cody–Waite range reduction x = n·ln2 + r, |r| ≤ ln2/2, a degree-6
/// polynomial for e^r (Cephes' expf coefficients), and 2^n built in the exponent bits.
/// Relative error below 2e-7 over the range; inputs are clamped to ±88.3, so e^x saturates
/// at about 2.2e38 (not ∞) and underflows to about 4.7e-39 (not 0), which is what the sigmoid
/// and tanh built on it need.
@inline(__always)
public func expSIMD(_ x: SIMD8<Float>) -> SIMD8<Float> {
    expSIMD(x, fused: fusedMultiplyAdd)
}

/// Whether expSIMD evaluates its polynomial in fused multiply-adds: in release builds for
/// x86-64-v3 (Package.swift), where an FMA is one instruction. A chain of six has half the
/// latency and instructions of the multiplies and adds: the LSTM step, five exponentials per
/// value, took 8 % less of predict's time on rows-lstm. Elsewhere the lanes' fused products
/// would be library calls. The two round differently in the last bit.
public var fusedMultiplyAdd: Bool {
    @inline(__always) get {
        #if TUNED_X86_64_V3
        return true
        #else
        return false
        #endif
    }
}

/// expSIMD with the polynomial fused or not, whatever the build: the tests check both.
@inline(__always)
public func expSIMD(_ x: SIMD8<Float>, fused: Bool) -> SIMD8<Float> {
    let lo = SIMD8<Float>(repeating: -87.3), hi = SIMD8<Float>(repeating: 88.3)
    let v = x.replacing(with: lo, where: x .< lo).replacing(with: hi, where: x .> hi)
    // n = round(v/ln2) by the 1.5·2^23 trick: adding it rounds to an integer held in the low
    // mantissa bits, so n is exact as a float and as an integer without a conversion.
    let magic = SIMD8<Float>(repeating: 12_582_912)
    let t = v * 1.442695040888963 + magic
    let n = t - magic
    var r = v - n * 0.693359375
    r = r - n * -2.12194440e-4
    var p: SIMD8<Float>
    if fused {
        p = SIMD8<Float>(repeating: 1.3981999507e-3).addingProduct(r, 1.9875691500e-4)
        p = SIMD8<Float>(repeating: 8.3334519073e-3).addingProduct(p, r)
        p = SIMD8<Float>(repeating: 4.1665795894e-2).addingProduct(p, r)
        p = SIMD8<Float>(repeating: 1.6666665459e-1).addingProduct(p, r)
        p = SIMD8<Float>(repeating: 5.0000001201e-1).addingProduct(p, r)
        p = r.addingProduct(p, r * r) + 1
    } else {
        p = SIMD8<Float>(repeating: 1.9875691500e-4)
        p = p * r + 1.3981999507e-3
        p = p * r + 8.3334519073e-3
        p = p * r + 4.1665795894e-2
        p = p * r + 1.6666665459e-1
        p = p * r + 5.0000001201e-1
        p = p * r * r + r + 1
    }
    let bits = (unsafeBitCast(t, to: SIMD8<Int32>.self) &- 0x4B40_0000 &+ 127) &<< 23
    return p * unsafeBitCast(bits, to: SIMD8<Float>.self)
}

/// tanh on eight lanes: 1 − 2/(e^{2x} + 1) where |x| ≥ 0.625; below, where that form cancels
/// (it was 1e-3 off relative at 1e-4, so a recurrent layer of small activations was 1 % off),
/// x + x³·P(x²), P of degree 4 fitted to tanh on [0, 0.625]: within one ulp there in f32.
@inline(__always)
public func tanhSIMD(_ v: SIMD8<Float>) -> SIMD8<Float> {
    let far = 1 - 2 / (expSIMD(2 * v) + 1)
    let x2 = v * v
    var p = SIMD8<Float>(repeating: -5.709965713322163e-3)
    p = p * x2 + 2.0642254501581192e-2
    p = p * x2 - 5.3739842027425766e-2
    p = p * x2 + 1.3331419229507446e-1
    p = p * x2 - 3.3333277702331543e-1
    return far.replacing(with: v + v * x2 * p, where: x2 .< 0.390625)  // 0.625², exact; NaN stays far
}

/// x ← 1/(1 + e^−x), in place.
public func sigmoidInPlace(_ x: UnsafeMutablePointer<Float>, count n: Int) {
    let raw = UnsafeMutableRawPointer(x)
    var i = 0
    while i + 8 <= n {
        let v = raw.loadUnaligned(fromByteOffset: 4 * i, as: SIMD8<Float>.self)
        raw.storeBytes(of: 1 / (1 + expSIMD(-v)), toByteOffset: 4 * i, as: SIMD8<Float>.self)
        i += 8
    }
    while i < n { x[i] = 1 / (1 + expf(-x[i])); i += 1 }
}

/// One LSTM step of one sample: `a` holds the gates' pre-activations i, f, g, o (H each); on
/// return it holds σ(i), σ(f), tanh(g), σ(o) (the backward pass reads them), and
/// c = σ(f)·cPrev + σ(i)·tanh(g), h = σ(o)·tanh(c). The same arithmetic as sigmoidInPlace and
/// tanhInPlace over each gate in turn, in two passes instead of six.
public func lstmStep(_ a: UnsafeMutablePointer<Float>, hidden H: Int,
                     cPrev: UnsafePointer<Float>, c: UnsafeMutablePointer<Float>, h: UnsafeMutablePointer<Float>) {
    let ar = UnsafeMutableRawPointer(a)
    let pr = UnsafeRawPointer(cPrev), cr = UnsafeMutableRawPointer(c), hr = UnsafeMutableRawPointer(h)
    @inline(__always) func load(_ gate: Int, _ j: Int) -> SIMD8<Float> {
        ar.loadUnaligned(fromByteOffset: 4 * (gate * H + j), as: SIMD8<Float>.self)
    }
    var j = 0
    while j + 8 <= H {
        let i = 1 / (1 + expSIMD(-load(0, j)))
        let f = 1 / (1 + expSIMD(-load(1, j)))
        let g = tanhSIMD(load(2, j))
        let o = 1 / (1 + expSIMD(-load(3, j)))
        ar.storeBytes(of: i, toByteOffset: 4 * j, as: SIMD8<Float>.self)
        ar.storeBytes(of: f, toByteOffset: 4 * (H + j), as: SIMD8<Float>.self)
        ar.storeBytes(of: g, toByteOffset: 4 * (2 * H + j), as: SIMD8<Float>.self)
        ar.storeBytes(of: o, toByteOffset: 4 * (3 * H + j), as: SIMD8<Float>.self)
        cr.storeBytes(of: f * pr.loadUnaligned(fromByteOffset: 4 * j, as: SIMD8<Float>.self) + i * g,
                      toByteOffset: 4 * j, as: SIMD8<Float>.self)
        j += 8
    }
    // h in a second pass: the iterations of each pass are short chains that overlap, where one
    // loop's chain through the gates, c and tanh c kept the cores waiting (8 % of predict's
    // time on rows-lstm).
    var k = 0
    while k < j {
        let cj = cr.loadUnaligned(fromByteOffset: 4 * k, as: SIMD8<Float>.self)
        hr.storeBytes(of: load(3, k) * tanhSIMD(cj), toByteOffset: 4 * k, as: SIMD8<Float>.self)
        k += 8
    }
    while j < H {
        a[j] = 1 / (1 + expf(-a[j]))
        a[H + j] = 1 / (1 + expf(-a[H + j]))
        a[2 * H + j] = tanhf(a[2 * H + j])
        a[3 * H + j] = 1 / (1 + expf(-a[3 * H + j]))
        c[j] = a[H + j] * cPrev[j] + a[j] * a[2 * H + j]
        h[j] = a[3 * H + j] * tanhf(c[j])
        j += 1
    }
}

/// The gradient of one LSTM step of one sample, on SIMD8 vectors. `a` holds the step's
/// activated gates σ(i), σ(f), tanh(g), σ(o), `cPrev` and `c` its cells; `dh` and `dc` hold
/// the loss's gradient with respect to the step's h and c. On return `da` holds the gradient
/// with respect to the gates' pre-activations, `dc` that with respect to cPrev through the cell
/// (the part through h comes from da by the caller's GEMM), and `dh` is 0, ready for it.
/// tanh c is computed again, as tanhInPlace would (the forward pass does not keep it).
public func lstmStepBackward(_ a: UnsafePointer<Float>, hidden H: Int, cPrev: UnsafePointer<Float>, c: UnsafePointer<Float>,
                             dh: UnsafeMutablePointer<Float>, dc: UnsafeMutablePointer<Float>, da: UnsafeMutablePointer<Float>) {
    let ar = UnsafeRawPointer(a), pr = UnsafeRawPointer(cPrev), cr = UnsafeRawPointer(c)
    let hr = UnsafeMutableRawPointer(dh), dcr = UnsafeMutableRawPointer(dc), dr = UnsafeMutableRawPointer(da)
    @inline(__always) func load(_ p: UnsafeRawPointer, _ j: Int) -> SIMD8<Float> {
        p.loadUnaligned(fromByteOffset: 4 * j, as: SIMD8<Float>.self)
    }
    var j = 0
    while j + 8 <= H {
        let i = load(ar, j), f = load(ar, H + j), g = load(ar, 2 * H + j), o = load(ar, 3 * H + j)
        let tc = tanhSIMD(load(cr, j))
        let dhv = load(hr, j)
        let dcn = load(dcr, j) + dhv * o * (1 - tc * tc)
        dr.storeBytes(of: dcn * g * i * (1 - i), toByteOffset: 4 * j, as: SIMD8<Float>.self)
        dr.storeBytes(of: dcn * load(pr, j) * f * (1 - f), toByteOffset: 4 * (H + j), as: SIMD8<Float>.self)
        dr.storeBytes(of: dcn * i * (1 - g * g), toByteOffset: 4 * (2 * H + j), as: SIMD8<Float>.self)
        dr.storeBytes(of: dhv * tc * o * (1 - o), toByteOffset: 4 * (3 * H + j), as: SIMD8<Float>.self)
        dcr.storeBytes(of: dcn * f, toByteOffset: 4 * j, as: SIMD8<Float>.self)
        hr.storeBytes(of: SIMD8<Float>(), toByteOffset: 4 * j, as: SIMD8<Float>.self)
        j += 8
    }
    while j < H {
        lstmGradient(at: j, tanhC: tanhf(c[j]), a, hidden: H, cPrev: cPrev, dh: dh, dc: dc, da: da)
        j += 1
    }
}

/// erf on eight lanes: Abramowitz and Stegun 7.1.26, erf |x| = 1 − t·P(t)·e^(−x²) with
/// t = 1/(1 + 0.3275911·|x|), absolute error below 1.5e-7 (5e-7 in Float arithmetic).
@inline(__always)
public func erfSIMD(_ x: SIMD8<Float>) -> SIMD8<Float> {
    let a = x.replacing(with: -x, where: x .< 0)
    let t = 1 / (1 + 0.3275911 * a)
    var p = SIMD8<Float>(repeating: 1.061405429)
    p = p * t - 1.453152027
    p = p * t + 1.421413741
    p = p * t - 0.284496736
    p = p * t + 0.254829592
    let e = 1 - p * t * expSIMD(-a * a)
    return e.replacing(with: -e, where: x .< 0)
}

/// y = x/2·(1 + erf(x/√2)), exact GELU, on SIMD8 vectors (libm's erff a value at a time was
/// a fifth of transformer-text's inference).
public func geluForward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count n: Int) {
    let xr = UnsafeRawPointer(x), yr = UnsafeMutableRawPointer(y)
    var i = 0
    while i + 8 <= n {
        let v = xr.loadUnaligned(fromByteOffset: 4 * i, as: SIMD8<Float>.self)
        yr.storeBytes(of: v * 0.5 * (1 + erfSIMD(v * 0.70710678)), toByteOffset: 4 * i, as: SIMD8<Float>.self)
        i += 8
    }
    while i < n { y[i] = x[i] * 0.5 * (1 + erff(x[i] * 0.70710678)); i += 1 }
}

/// dx = dy·(Φ(x) + x·φ(x)), GELU's gradient, on SIMD8 vectors.
public func geluBackward(_ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, count n: Int) {
    let xr = UnsafeRawPointer(x), gr = UnsafeRawPointer(dy), dr = UnsafeMutableRawPointer(dx)
    var i = 0
    while i + 8 <= n {
        let v = xr.loadUnaligned(fromByteOffset: 4 * i, as: SIMD8<Float>.self)
        let cdf = 0.5 * (1 + erfSIMD(v * 0.70710678))
        let pdf = 0.39894228 * expSIMD(-v * v * 0.5)
        dr.storeBytes(of: gr.loadUnaligned(fromByteOffset: 4 * i, as: SIMD8<Float>.self) * (cdf + v * pdf),
                      toByteOffset: 4 * i, as: SIMD8<Float>.self)
        i += 8
    }
    while i < n {
        let v = x[i]
        dx[i] = dy[i] * (0.5 * (1 + erff(v * 0.70710678)) + v * 0.39894228 * expf(-v * v * 0.5))
        i += 1
    }
}

/// x ← softmax x, stable (the maximum subtracted), on SIMD8 vectors: an attention row.
public func softmaxInPlace(_ x: UnsafeMutablePointer<Float>, count n: Int) {
    guard n > 0 else { return }
    let raw = UnsafeMutableRawPointer(x)
    @inline(__always) func load(_ i: Int) -> SIMD8<Float> { raw.loadUnaligned(fromByteOffset: 4 * i, as: SIMD8<Float>.self) }
    var m = x[0]
    var i = 0
    if n >= 8 {
        var mv = load(0)
        i = 8
        while i + 8 <= n { let v = load(i); mv = mv.replacing(with: v, where: v .> mv); i += 8 }
        m = mv.max()
    }
    while i < n { if x[i] > m { m = x[i] }; i += 1 }
    var sv = SIMD8<Float>()
    var s: Float = 0
    i = 0
    while i + 8 <= n {
        let e = expSIMD(load(i) - m)
        raw.storeBytes(of: e, toByteOffset: 4 * i, as: SIMD8<Float>.self)
        sv += e
        i += 8
    }
    while i < n { let e = expf(x[i] - m); x[i] = e; s += e; i += 1 }
    let inv = 1 / (sv.sum() + s)
    i = 0
    while i + 8 <= n { raw.storeBytes(of: load(i) * inv, toByteOffset: 4 * i, as: SIMD8<Float>.self); i += 8 }
    while i < n { x[i] *= inv; i += 1 }
}

/// x ← tanh x, in place (tanhSIMD; libm's tanhf for the tail).
public func tanhInPlace(_ x: UnsafeMutablePointer<Float>, count n: Int) {
    let raw = UnsafeMutableRawPointer(x)
    var i = 0
    while i + 8 <= n {
        let v = raw.loadUnaligned(fromByteOffset: 4 * i, as: SIMD8<Float>.self)
        raw.storeBytes(of: tanhSIMD(v), toByteOffset: 4 * i, as: SIMD8<Float>.self)
        i += 8
    }
    while i < n { x[i] = tanhf(x[i]); i += 1 }
}

/// One 2×2 max-pooling window over `n` channels: y = max(a, b, c, d), the window's four
/// positions (row-major), each `n` contiguous values.
@inline(__always)
public func maxPool2x2Window(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafePointer<Float>, _ d: UnsafePointer<Float>,
                             _ y: UnsafeMutablePointer<Float>, count n: Int) {
    var i = 0
    while i + 8 <= n {
        let o = 4 * i
        // A select on a comparison: the standard library's generic pointwiseMax is not
        // specialized here and costs a call per vector.
        let va = UnsafeRawPointer(a).loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self)
        let vb = UnsafeRawPointer(b).loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self)
        let vc = UnsafeRawPointer(c).loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self)
        let vd = UnsafeRawPointer(d).loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self)
        let ab = va.replacing(with: vb, where: va .< vb), cd = vc.replacing(with: vd, where: vc .< vd)
        UnsafeMutableRawPointer(y).storeBytes(of: ab.replacing(with: cd, where: ab .< cd), toByteOffset: o, as: SIMD8<Float>.self)
        i &+= 8
    }
    while i < n {
        let ab = a[i] > b[i] ? a[i] : b[i], cd = c[i] > d[i] ? c[i] : d[i]
        y[i] = ab > cd ? ab : cd
        i &+= 1
    }
}

/// The backward of one 2×2 max-pooling window over `n` channels: each channel's gradient `g`
/// goes to the first of a, b, c, d (row-major) equal to its maximum `y`; the other three get 0.
/// Every one of the four gradient rows is written. With `positiveOnly` (a ReLU fused after
/// the pooling), a channel whose maximum is not positive passes no gradient.
@inline(__always)
public func maxPool2x2WindowBackward(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafePointer<Float>, _ d: UnsafePointer<Float>,
                                     max y: UnsafePointer<Float>, grad g: UnsafePointer<Float>,
                                     _ da: UnsafeMutablePointer<Float>, _ db: UnsafeMutablePointer<Float>,
                                     _ dc: UnsafeMutablePointer<Float>, _ dd: UnsafeMutablePointer<Float>, count n: Int,
                                     positiveOnly: Bool = false) {
    var i = 0
    let zero = SIMD8<Float>()
    while i + 8 <= n {
        let o = 4 * i
        let m = UnsafeRawPointer(y).loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self)
        let g8 = UnsafeRawPointer(g).loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self)
        let v = positiveOnly ? zero.replacing(with: g8, where: m .> zero) : g8
        let ha = UnsafeRawPointer(a).loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self) .== m
        let hb = UnsafeRawPointer(b).loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self) .== m .& .!ha
        var taken = ha .| hb
        let hc = UnsafeRawPointer(c).loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self) .== m .& .!taken
        taken = taken .| hc
        UnsafeMutableRawPointer(da).storeBytes(of: zero.replacing(with: v, where: ha), toByteOffset: o, as: SIMD8<Float>.self)
        UnsafeMutableRawPointer(db).storeBytes(of: zero.replacing(with: v, where: hb), toByteOffset: o, as: SIMD8<Float>.self)
        UnsafeMutableRawPointer(dc).storeBytes(of: zero.replacing(with: v, where: hc), toByteOffset: o, as: SIMD8<Float>.self)
        UnsafeMutableRawPointer(dd).storeBytes(of: v.replacing(with: 0, where: taken), toByteOffset: o, as: SIMD8<Float>.self)
        i &+= 8
    }
    while i < n {
        let m = y[i], v = positiveOnly && !(m > 0) ? 0 : g[i]
        let ha = a[i] == m, hb = !ha && b[i] == m, hc = !ha && !hb && c[i] == m
        da[i] = ha ? v : 0
        db[i] = hb ? v : 0
        dc[i] = hc ? v : 0
        dd[i] = ha || hb || hc ? 0 : v
        i &+= 1
    }
}

/// One Adam step over `count` weights (L2 decay `wd` added to the gradient; AdamW's decoupled
/// decay is the caller's): m ← β₁m + (1 − β₁)d, v ← β₂v + (1 − β₂)d², p ← p − s·m/(√(v·c) + ε),
/// with `s` the learning rate over the first moment's bias correction and `c` the inverse of
/// the second's. Each lane computes what the scalar loop does, operation for operation, so the
/// weights are the same bits either way.
public func adamStep(_ p: UnsafeMutablePointer<Float>, _ g: UnsafePointer<Float>, _ m: UnsafeMutablePointer<Float>, _ v: UnsafeMutablePointer<Float>,
                     count n: Int, beta1 b1: Float, beta2 b2: Float, step s: Float, inverseCorrection c: Float, epsilon eps: Float, decay wd: Float) {
    typealias V = SIMD8<Float>
    @inline(__always) func at(_ q: UnsafePointer<Float>, _ i: Int) -> V { UnsafeRawPointer(q + i).loadUnaligned(as: V.self) }
    @inline(__always) func put(_ x: V, _ q: UnsafeMutablePointer<Float>, _ i: Int) { UnsafeMutableRawPointer(q + i).storeBytes(of: x, as: V.self) }
    let a1 = 1 - b1, a2 = 1 - b2
    var i = 0
    while i + 8 <= n {
        let pi = at(p, i), d = at(g, i) + wd * pi
        let mi = b1 * at(m, i) + a1 * d
        let vi = b2 * at(v, i) + a2 * d * d
        put(mi, m, i)
        put(vi, v, i)
        put(pi - s * mi / ((vi * c).squareRoot() + eps), p, i)
        i += 8
    }
    while i < n {
        let d = g[i] + wd * p[i]
        let mi = b1 * m[i] + a1 * d
        let vi = b2 * v[i] + a2 * d * d
        m[i] = mi
        v[i] = vi
        p[i] -= s * mi / ((vi * c).squareRoot() + eps)
        i += 1
    }
}
