// swift-tools-version:5.9
// The package: C libraries at the bottom, one compute core, format and data modules over it,
// and one thin executable per tool on top. Dependencies point one way only.
import Foundation
import PackageDescription

// Release builds of the modules with the numeric loops (Compute, NeuralNet, Preprocess) are
// compiled for x86-64-v3 (AVX2 and FMA: Haswell, Zen and later) when the machine building them
// has it, as OpenBLAS built from source is for its build machine: our SIMD8 kernels then run as
// one 8-lane instruction instead of two 4-lane ones (mnist-cnn training takes about 10 % less
// CPU). Swift does not fuse a·b + c on its own, so results are the same bits as a baseline
// build's except where TUNED_X86_64_V3 asks for fused multiply-adds: the exponential of the
// recurrent layers' vectorized sigmoid and tanh (Compute.expSIMD), which then differs in the last
// bit. The tools refuse to run, naming the reason, on a CPU without it. TENSOR_TOOLS_CPU=baseline
// builds for any x86-64 instead (for binaries that move between machines).
func tunedCPU() -> String? {
    #if os(Linux) && arch(x86_64)
    if ProcessInfo.processInfo.environment["TENSOR_TOOLS_CPU"] == "baseline" { return nil }
    guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
          let line = info.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return nil }
    let flags = Set(line.split(separator: " ").map(String.init))
    // The same list as TensorCoreTests.testCPUCheckAgreesWithTheKernelsFlags (a manifest shares
    // no code): change both, and Sources/CCPU/shim.h's CPUID check with them.
    let v3 = ["avx", "avx2", "fma", "f16c", "movbe", "popcnt", "bmi1", "bmi2", "abm", "xsave"]
    return v3.allSatisfy(flags.contains) ? "haswell" : nil
    #else
    return nil
    #endif
}
let tuned = tunedCPU()
let kernelSettings: [SwiftSetting] = tuned.map { [.unsafeFlags(["-target-cpu", $0], .when(configuration: .release)), .define("TUNED_X86_64_V3", .when(configuration: .release))] } ?? []
let guardSettings: [SwiftSetting] = tuned == nil ? [] : [.define("TUNED_X86_64_V3", .when(configuration: .release))]

let package = Package(
    name: "tensor-tools",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "tensor-load", targets: ["tensor-load"]),
        .executable(name: "tensor-show", targets: ["tensor-show"]),
        .executable(name: "tensor-cat", targets: ["tensor-cat"]),
        .executable(name: "normalize", targets: ["normalize"]),
        .executable(name: "augment", targets: ["augment"]),
        .executable(name: "fit", targets: ["fit"]),
        .executable(name: "predict", targets: ["predict"]),
        .executable(name: "score", targets: ["score"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // MARK: - C libraries (Debian -dev packages; a modulemap and a header each)
        .systemLibrary(name: "CArchive", path: "Sources/CArchive", pkgConfig: "libarchive"),
        .systemLibrary(name: "CZlib", path: "Sources/CZlib", pkgConfig: "zlib"),
        .systemLibrary(name: "CPNG", path: "Sources/CPNG", pkgConfig: "libpng"),
        .systemLibrary(name: "CTurboJPEG", path: "Sources/CTurboJPEG", pkgConfig: "libturbojpeg"),
        .systemLibrary(name: "CCPU", path: "Sources/CCPU"),  // header only: CPUID

        // MARK: - Core
        .target(name: "TensorCore", dependencies: ["CZlib"]),
        // The OpenBLAS bridge (loaded with dlopen, single-threaded: see GEMM.swift) and the
        // kernels over it; only the tools that compute use it.
        .target(name: "Compute", dependencies: ["TensorCore"], swiftSettings: kernelSettings, linkerSettings: [.linkedLibrary("dl")]),

        // MARK: - Modules
        .target(name: "TensorStream", dependencies: ["TensorCore"]),
        .target(name: "NeuralNet", dependencies: ["TensorCore", "Compute", "TensorStream"], swiftSettings: kernelSettings),
        .target(name: "DataSources",
                dependencies: ["TensorCore", "TensorStream", "CArchive", "CZlib", "CPNG", "CTurboJPEG"]),
        .target(name: "Metrics", dependencies: ["TensorCore", "TensorStream"]),
        .target(name: "Preprocess", dependencies: ["TensorCore", "TensorStream"], swiftSettings: kernelSettings),
        // Compiled for any x86-64, so that it can refuse a CPU the kernels were not built for.
        .target(name: "ToolSupport",
                dependencies: ["TensorCore", "TensorStream", "DataSources", "CCPU",
                               .product(name: "ArgumentParser", package: "swift-argument-parser")],
                swiftSettings: guardSettings),

        // MARK: - Executables (parse options, call modules)
        .executableTarget(name: "tensor-load",
                          dependencies: ["ToolSupport", "DataSources", "TensorStream",
                                         .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .executableTarget(name: "tensor-show",
                          dependencies: ["ToolSupport", "DataSources", "TensorStream", "TensorCore",
                                         .product(name: "ArgumentParser", package: "swift-argument-parser")]),

        .executableTarget(name: "tensor-cat",
                          dependencies: ["ToolSupport", "TensorStream",
                                         .product(name: "ArgumentParser", package: "swift-argument-parser")]),

        .executableTarget(name: "normalize",
                          dependencies: ["ToolSupport", "Preprocess", "TensorStream", "TensorCore",
                                         .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .executableTarget(name: "augment",
                          dependencies: ["ToolSupport", "Preprocess", "TensorStream", "TensorCore",
                                         .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .executableTarget(name: "fit",
                          dependencies: ["ToolSupport", "NeuralNet", "Compute", "TensorStream", "TensorCore",
                                         .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .executableTarget(name: "predict",
                          dependencies: ["ToolSupport", "NeuralNet", "Compute", "TensorStream", "TensorCore",
                                         .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .executableTarget(name: "score",
                          dependencies: ["ToolSupport", "Metrics", "TensorStream",
                                         .product(name: "ArgumentParser", package: "swift-argument-parser")]),

        // MARK: - Fuzzing (scripts/fuzz builds it with --sanitize=fuzzer; not installed)
        .executableTarget(name: "tensor-fuzz", dependencies: ["DataSources", "NeuralNet", "TensorStream", "TensorCore"]),

        // MARK: - Tests
        .target(name: "_TestSupport", dependencies: ["TensorCore", "TensorStream"], path: "Tests/_TestSupport"),
        .testTarget(name: "TensorCoreTests", dependencies: ["TensorCore", "Compute", "CCPU", "_TestSupport"]),
        .testTarget(name: "TensorStreamTests", dependencies: ["TensorStream", "TensorCore", "_TestSupport"]),
        .testTarget(name: "DataSourcesTests", dependencies: ["DataSources", "TensorStream", "TensorCore", "_TestSupport"]),
        .testTarget(name: "NeuralNetTests", dependencies: ["NeuralNet", "Compute", "TensorCore"]),
        .testTarget(name: "PreprocessTests", dependencies: ["Preprocess", "TensorStream", "TensorCore", "_TestSupport"]),
        .testTarget(name: "MetricsTests", dependencies: ["Metrics", "TensorStream", "TensorCore", "_TestSupport"]),
        .testTarget(name: "ToolTests", dependencies: ["_TestSupport", "ToolSupport", "TensorStream", "TensorCore"]),
    ]
)
