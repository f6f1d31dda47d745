// Single-precision matrix multiply: the OpenBLAS bridge and its naive twin for tests.
// Legend: C[M×N] = alpha · op(A)[M×K] · op(B)[K×N] + beta · C, row-major, leading dimensions
// as in BLAS. The wrapper keeps BLAS's argument order.

import CBLAS

/// `C = alpha·op(A)·op(B) + beta·C`, row-major, through OpenBLAS `cblas_sgemm`.
public func sgemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
                  alpha: Float, a: UnsafePointer<Float>, lda: Int,
                  b: UnsafePointer<Float>, ldb: Int,
                  beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
    cblas_sgemm(CblasRowMajor,
                transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda), b, blasint(ldb),
                beta, c, blasint(ldc))
}

/// The reference `sgemm`: three loops, accumulating in Double, for tests only.
public func sgemmNaive(transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
                       alpha: Float, a: UnsafePointer<Float>, lda: Int,
                       b: UnsafePointer<Float>, ldb: Int,
                       beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
    for i in 0..<m {
        for j in 0..<n {
            var s = 0.0
            for p in 0..<k {
                let av = transA ? a[p * lda + i] : a[i * lda + p]
                let bv = transB ? b[j * ldb + p] : b[p * ldb + j]
                s += Double(av) * Double(bv)
            }
            let old = beta == 0 ? 0 : Double(beta) * Double(c[i * ldc + j])
            c[i * ldc + j] = Float(Double(alpha) * s + old)
        }
    }
}

/// Bounds the threads OpenBLAS uses, so its pool and ours never oversubscribe the cores.
public func setBLASThreads(_ n: Int) {
    openblas_set_num_threads(Int32(max(1, min(n, 512))))
}
