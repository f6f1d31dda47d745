// Single-precision matrix multiply: the OpenBLAS bridge and its naive twin for tests.
// Legend: C[M×N] = alpha · op(A)[M×K] · op(B)[K×N] + beta · C, row-major, leading dimensions
// as in BLAS. The wrapper keeps BLAS's argument order.
//
// OpenBLAS is loaded with dlopen on first use, after OPENBLAS_NUM_THREADS=1 is set: linked the
// usual way, its constructor starts a thread pool before main runs, and under a tight
// `ulimit -v` those threads spin forever failing to map their buffers (the tool then hangs at
// exit). The tools never use OpenBLAS's threads anyway: they split batches across replicas,
// each calling a single-threaded GEMM. Tools that do no linear algebra never load it.
//
// OpenBLAS picks its kernels by CPU model, and a release older than the CPU falls back to
// AVX2: Debian's 0.3.21 runs Haswell kernels on AMD Zen 5 (family 1Ah), half the speed of its
// AVX-512 ones there (scripts/bench-train measures both: 226–241 vs 443–467 GFLOP/s at 2048³
// on 2 threads; by hand, 1 thread, mnist-cnn's conv2 shape: 112 vs 203). So when the CPU and kernel offer AVX-512 (F, CD, BW, DQ, VL, the
// set OpenBLAS's SkylakeX kernels use) and the user has not chosen, the tools ask for those.

import Foundation
import TensorCore

/// The three OpenBLAS entry points the tools use, resolved at first use.
public enum OpenBLAS {
    typealias SGEMM = @convention(c) (Int32, Int32, Int32, Int32, Int32, Int32, Float, UnsafePointer<Float>?, Int32,
                                      UnsafePointer<Float>?, Int32, Float, UnsafeMutablePointer<Float>?, Int32) -> Void
    typealias DGEMM = @convention(c) (Int32, Int32, Int32, Int32, Int32, Int32, Double, UnsafePointer<Double>?, Int32,
                                      UnsafePointer<Double>?, Int32, Double, UnsafeMutablePointer<Double>?, Int32) -> Void
    static let rowMajor: Int32 = 101, noTrans: Int32 = 111, trans: Int32 = 112

    /// The library's name, as `dlopen` looks it up.
    public static let library = "libopenblas.so.0"

    static let loaded: (sgemm: SGEMM, dgemm: DGEMM, core: String)? = {
        setenv("OPENBLAS_NUM_THREADS", "1", 1)
        if getenv("OPENBLAS_CORETYPE") == nil,
           let core = preferredCore(cpuFlags: FileHandle(forReadingAtPath: "/proc/cpuinfo")
                                        .flatMap { try? $0.readToEnd() }.map { String(decoding: $0, as: UTF8.self) } ?? "") {
            setenv("OPENBLAS_CORETYPE", core, 1)
        }
        guard let h = dlopen(library, RTLD_NOW | RTLD_LOCAL),
              let s = dlsym(h, "cblas_sgemm"), let d = dlsym(h, "cblas_dgemm") else { return nil }
        typealias CoreName = @convention(c) () -> UnsafePointer<CChar>?
        let name = dlsym(h, "openblas_get_corename").flatMap { unsafeBitCast($0, to: CoreName.self)() }.map { String(cString: $0) }
        return (unsafeBitCast(s, to: SGEMM.self), unsafeBitCast(d, to: DGEMM.self), name ?? "unknown")
    }()

    /// The OpenBLAS core type to request for a CPU whose `/proc/cpuinfo` text is given: the
    /// AVX-512 kernels when the CPU has what they use (the kernel lists a flag only when it
    /// saves that state), else nil, leaving OpenBLAS's own choice.
    public static func preferredCore(cpuFlags cpuinfo: String) -> String? {
        guard let line = cpuinfo.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return nil }
        let flags = Set(line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == ":" }))
        let needed: [Substring] = ["avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"]
        return needed.allSatisfy(flags.contains) ? "SKYLAKEX" : nil
    }

    /// The kernel set OpenBLAS runs (as `openblas_get_corename` names it), once loaded.
    public static var coreName: String? { loaded?.core }

    /// Loads OpenBLAS now; a tool calls this at start so that a missing library is an error
    /// message, not a crash in the middle of training. Returns the loader's complaint on failure.
    public static func load() -> String? {
        if loaded != nil { return nil }
        // dlerror's text begins with the library's name, which the caller puts first already.
        return dlerror().map { text in
            let s = String(cString: text)
            return s.hasPrefix(library + ": ") ? String(s.dropFirst(library.count + 2)) : s
        } ?? "cannot load \(library)"
    }

    /// Bytes of memory the process may fill with work buffers: the machine's physical memory,
    /// or less under a cgroup's memory limit (a container) or `ulimit -v` (less what is mapped
    /// already and OpenBLAS's buffers for `threads`). A batch beyond it would fail to allocate
    /// (a trap) or drive the machine into swap, so the tools refuse it first.
    public static func memoryForWork(threads: Int) -> Double {
        SystemMemory.available(reserve: Double(threads * bytesPerThread))
    }

    /// Address space OpenBLAS maps for each thread that calls it (a 64 MiB buffer and its
    /// guard regions, measured: `fit --threads 1` needs 300 MB of `ulimit -v`, 2 threads 500).
    public static let bytesPerThread = 128 << 20

    /// How many threads can call OpenBLAS under the process's address-space limit
    /// (`ulimit -v`), keeping `reserve` bytes for everything else; `wanted` when unlimited.
    /// OpenBLAS retries a failed buffer mapping forever, so a tool must not exceed this.
    public static func threadsWithinAddressLimit(_ wanted: Int, reserve: Int = 64 << 20) -> Int {
        var lim = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_AS.rawValue), &lim) == 0, lim.rlim_cur != rlim_t.max else { return wanted }
        // VmSize: the first number of /proc/self/statm, in pages
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8),
              let pages = text.split(separator: " ").first.flatMap({ Int($0) }) else { return wanted }
        let used = pages * Int(sysconf(Int32(_SC_PAGESIZE)))
        let room = Int(clamping: lim.rlim_cur) - used - reserve
        return max(0, min(wanted, room / bytesPerThread))
    }

    @inline(__always)
    static var functions: (sgemm: SGEMM, dgemm: DGEMM, core: String) {
        guard let f = loaded else {
            // Reached only when a tool skipped load(): an installation fault, not bad data.
            fatalError("\(library) is not loaded")  // trap-ok: tools check load() at start
        }
        return f
    }
}

/// `C = alpha·op(A)·op(B) + beta·C`, row-major, through OpenBLAS `cblas_sgemm`.
public func sgemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
                  alpha: Float, a: UnsafePointer<Float>, lda: Int,
                  b: UnsafePointer<Float>, ldb: Int,
                  beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
    OpenBLAS.functions.sgemm(OpenBLAS.rowMajor, transA ? OpenBLAS.trans : OpenBLAS.noTrans, transB ? OpenBLAS.trans : OpenBLAS.noTrans,
                             Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
}

/// `C = alpha·op(A)·op(B) + beta·C` in double precision (the gradient checks).
public func dgemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
                  alpha: Double, a: UnsafePointer<Double>, lda: Int,
                  b: UnsafePointer<Double>, ldb: Int,
                  beta: Double, c: UnsafeMutablePointer<Double>, ldc: Int) {
    OpenBLAS.functions.dgemm(OpenBLAS.rowMajor, transA ? OpenBLAS.trans : OpenBLAS.noTrans, transB ? OpenBLAS.trans : OpenBLAS.noTrans,
                             Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
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
