// The element types layers compute in: Float for training and inference, Double for the
// finite-difference gradient checks. Each brings its BLAS GEMM and elementary functions.

import Foundation

/// A floating-point type with a BLAS GEMM and the elementary functions layers need.
public protocol Real: BinaryFloatingPoint, Sendable where Self.RawSignificand: FixedWidthInteger {
    /// `C = alpha·op(A)·op(B) + beta·C`, row-major.
    static func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
                     alpha: Self, a: UnsafePointer<Self>, lda: Int,
                     b: UnsafePointer<Self>, ldb: Int,
                     beta: Self, c: UnsafeMutablePointer<Self>, ldc: Int)
    static func exp(_ x: Self) -> Self
    static func log(_ x: Self) -> Self
    static func tanh(_ x: Self) -> Self
    static func erf(_ x: Self) -> Self
    static func sqrt(_ x: Self) -> Self
    /// x ← 1/(1 + e^−x) over `count` values (vectorized for Float).
    static func sigmoidInPlace(_ x: UnsafeMutablePointer<Self>, count: Int)
    /// x ← tanh x over `count` values (vectorized for Float).
    static func tanhInPlace(_ x: UnsafeMutablePointer<Self>, count: Int)
    /// One LSTM step of one sample (see Compute.lstmStep): gates activated in `a`, c and h.
    static func lstmStep(_ a: UnsafeMutablePointer<Self>, hidden: Int,
                         cPrev: UnsafePointer<Self>, c: UnsafeMutablePointer<Self>, h: UnsafeMutablePointer<Self>)
    /// x ← softmax x over `count` values, stable (the maximum subtracted; vectorized for Float).
    static func softmaxInPlace(_ x: UnsafeMutablePointer<Self>, count: Int)
    /// y = x·Φ(x) = x/2·(1 + erf(x/√2)), the erf GELU (vectorized for Float, with an erf within 5e-7).
    static func geluForward(_ x: UnsafePointer<Self>, _ y: UnsafeMutablePointer<Self>, count: Int)
    /// dx = dy·(Φ(x) + x·φ(x)), GELU's gradient (vectorized for Float).
    static func geluBackward(_ x: UnsafePointer<Self>, _ dy: UnsafePointer<Self>, _ dx: UnsafeMutablePointer<Self>, count: Int)
    /// The gradient of one LSTM step of one sample (see Compute.lstmStepBackward).
    static func lstmStepBackward(_ a: UnsafePointer<Self>, hidden: Int, cPrev: UnsafePointer<Self>, c: UnsafePointer<Self>,
                                 dh: UnsafeMutablePointer<Self>, dc: UnsafeMutablePointer<Self>, da: UnsafeMutablePointer<Self>)
}

extension Real {
    /// The gates one after another, as the layer computed them before the fused kernel.
    public static func lstmStep(_ a: UnsafeMutablePointer<Self>, hidden H: Int,
                                cPrev: UnsafePointer<Self>, c: UnsafeMutablePointer<Self>, h: UnsafeMutablePointer<Self>) {
        sigmoidInPlace(a, count: 2 * H)
        tanhInPlace(a + 2 * H, count: H)
        sigmoidInPlace(a + 3 * H, count: H)
        for j in 0..<H { c[j] = a[H + j] * cPrev[j] + a[j] * a[2 * H + j] }
        h.update(from: c, count: H)
        tanhInPlace(h, count: H)
        for j in 0..<H { h[j] *= a[3 * H + j] }
    }

    /// One value at a time, with the type's exp.
    public static func softmaxInPlace(_ x: UnsafeMutablePointer<Self>, count n: Int) {
        guard n > 0 else { return }
        var m = x[0]
        for j in 1..<n where x[j] > m { m = x[j] }
        var s: Self = 0
        for j in 0..<n { let e = exp(x[j] - m); x[j] = e; s += e }
        let inv = 1 / s
        for j in 0..<n { x[j] *= inv }
    }

    /// One value at a time, with the type's erf.
    public static func geluForward(_ x: UnsafePointer<Self>, _ y: UnsafeMutablePointer<Self>, count n: Int) {
        let r = Self(0.7071067811865476)
        for i in 0..<n { y[i] = x[i] * Self(0.5) * (1 + erf(x[i] * r)) }
    }

    /// One value at a time, with the type's erf and exp.
    public static func geluBackward(_ x: UnsafePointer<Self>, _ dy: UnsafePointer<Self>, _ dx: UnsafeMutablePointer<Self>, count n: Int) {
        let r = Self(0.7071067811865476), c = Self(0.3989422804014327)  // 1/√2, 1/√(2π)
        for i in 0..<n {
            let v = x[i]
            let cdf = Self(0.5) * (1 + erf(v * r))
            let pdf = c * exp(-v * v / 2)
            dx[i] = dy[i] * (cdf + v * pdf)
        }
    }

    /// One value at a time, with the type's tanh.
    public static func lstmStepBackward(_ a: UnsafePointer<Self>, hidden H: Int, cPrev: UnsafePointer<Self>, c: UnsafePointer<Self>,
                                        dh: UnsafeMutablePointer<Self>, dc: UnsafeMutablePointer<Self>, da: UnsafeMutablePointer<Self>) {
        for j in 0..<H { lstmGradient(at: j, tanhC: tanh(c[j]), a, hidden: H, cPrev: cPrev, dh: dh, dc: dc, da: da) }
    }
}

/// The LSTM step's gradient at unit j, given tanh of its cell (see Compute.lstmStepBackward).
@inline(__always)
func lstmGradient<T: Real>(at j: Int, tanhC tc: T, _ a: UnsafePointer<T>, hidden H: Int, cPrev: UnsafePointer<T>,
                           dh: UnsafeMutablePointer<T>, dc: UnsafeMutablePointer<T>, da: UnsafeMutablePointer<T>) {
    let i = a[j], f = a[H + j], g = a[2 * H + j], o = a[3 * H + j]
    let dcn = dc[j] + dh[j] * o * (1 - tc * tc)
    da[j] = dcn * g * i * (1 - i)
    da[H + j] = dcn * cPrev[j] * f * (1 - f)
    da[2 * H + j] = dcn * i * (1 - g * g)
    da[3 * H + j] = dh[j] * tc * o * (1 - o)
    dc[j] = dcn * f
    dh[j] = 0
}

extension Float: Real {
    @inline(__always)
    public static func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float, a: UnsafePointer<Float>, lda: Int,
                            b: UnsafePointer<Float>, ldb: Int, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
    }
    @inline(__always) public static func exp(_ x: Float) -> Float { Foundation.expf(x) }
    @inline(__always) public static func log(_ x: Float) -> Float { Foundation.logf(x) }
    @inline(__always) public static func tanh(_ x: Float) -> Float { Foundation.tanhf(x) }
    @inline(__always) public static func erf(_ x: Float) -> Float { Foundation.erff(x) }
    @inlinable @inline(__always) public static func sqrt(_ x: Float) -> Float { x.squareRoot() }  // inlined: Adam calls it per weight
    @inline(__always) public static func sigmoidInPlace(_ x: UnsafeMutablePointer<Float>, count: Int) { Compute.sigmoidInPlace(x, count: count) }
    @inline(__always) public static func tanhInPlace(_ x: UnsafeMutablePointer<Float>, count: Int) { Compute.tanhInPlace(x, count: count) }
    @inline(__always)
    public static func lstmStep(_ a: UnsafeMutablePointer<Float>, hidden: Int,
                                cPrev: UnsafePointer<Float>, c: UnsafeMutablePointer<Float>, h: UnsafeMutablePointer<Float>) {
        Compute.lstmStep(a, hidden: hidden, cPrev: cPrev, c: c, h: h)
    }
    @inline(__always) public static func softmaxInPlace(_ x: UnsafeMutablePointer<Float>, count: Int) { Compute.softmaxInPlace(x, count: count) }
    @inline(__always) public static func geluForward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
        Compute.geluForward(x, y, count: count)
    }
    @inline(__always) public static func geluBackward(_ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, count: Int) {
        Compute.geluBackward(x, dy, dx, count: count)
    }
    @inline(__always)
    public static func lstmStepBackward(_ a: UnsafePointer<Float>, hidden: Int, cPrev: UnsafePointer<Float>, c: UnsafePointer<Float>,
                                        dh: UnsafeMutablePointer<Float>, dc: UnsafeMutablePointer<Float>, da: UnsafeMutablePointer<Float>) {
        Compute.lstmStepBackward(a, hidden: hidden, cPrev: cPrev, c: c, dh: dh, dc: dc, da: da)
    }
}

extension Double: Real {
    @inline(__always)
    public static func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Double, a: UnsafePointer<Double>, lda: Int,
                            b: UnsafePointer<Double>, ldb: Int, beta: Double, c: UnsafeMutablePointer<Double>, ldc: Int) {
        guard m > 0, n > 0 else { return }
        dgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: max(lda, 1), b: b, ldb: max(ldb, 1),
              beta: beta, c: c, ldc: max(ldc, 1))
    }
    @inline(__always) public static func exp(_ x: Double) -> Double { Foundation.exp(x) }
    @inline(__always) public static func log(_ x: Double) -> Double { Foundation.log(x) }
    @inline(__always) public static func tanh(_ x: Double) -> Double { Foundation.tanh(x) }
    @inline(__always) public static func erf(_ x: Double) -> Double { Foundation.erf(x) }
    @inlinable @inline(__always) public static func sqrt(_ x: Double) -> Double { x.squareRoot() }
    public static func sigmoidInPlace(_ x: UnsafeMutablePointer<Double>, count: Int) {
        for i in 0..<count { x[i] = 1 / (1 + Foundation.exp(-x[i])) }
    }
    public static func tanhInPlace(_ x: UnsafeMutablePointer<Double>, count: Int) {
        for i in 0..<count { x[i] = Foundation.tanh(x[i]) }
    }
}
