// Element-wise Float kernels on SIMD8 vectors, for the hot loops the compiler will not
// vectorize on its own (a select on a comparison compiles to a branch per element).

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
