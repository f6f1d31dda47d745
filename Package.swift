// swift-tools-version:5.9
// The package: C libraries at the bottom, one compute core, format and data modules over it,
// and one thin executable per tool on top. Dependencies point one way only.
import PackageDescription

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

        // MARK: - Core
        .target(name: "TensorCore", dependencies: ["CZlib"]),
        // The OpenBLAS bridge (loaded with dlopen, single-threaded: see GEMM.swift) and the
        // kernels over it; only the tools that compute use it.
        .target(name: "Compute", dependencies: ["TensorCore"], linkerSettings: [.linkedLibrary("dl")]),

        // MARK: - Modules
        .target(name: "TensorStream", dependencies: ["TensorCore"]),
        .target(name: "NeuralNet", dependencies: ["TensorCore", "Compute", "TensorStream"]),
        .target(name: "DataSources",
                dependencies: ["TensorCore", "TensorStream", "CArchive", "CZlib", "CPNG", "CTurboJPEG"]),
        .target(name: "Metrics", dependencies: ["TensorCore", "TensorStream"]),
        .target(name: "Preprocess", dependencies: ["TensorCore", "TensorStream"]),
        .target(name: "ToolSupport",
                dependencies: ["TensorCore", "TensorStream", "DataSources",
                               .product(name: "ArgumentParser", package: "swift-argument-parser")]),

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
        .testTarget(name: "TensorCoreTests", dependencies: ["TensorCore", "Compute", "_TestSupport"]),
        .testTarget(name: "TensorStreamTests", dependencies: ["TensorStream", "TensorCore", "_TestSupport"]),
        .testTarget(name: "DataSourcesTests", dependencies: ["DataSources", "TensorStream", "TensorCore", "_TestSupport"]),
        .testTarget(name: "NeuralNetTests", dependencies: ["NeuralNet", "Compute", "TensorCore"]),
        .testTarget(name: "PreprocessTests", dependencies: ["Preprocess", "TensorStream", "TensorCore", "_TestSupport"]),
        .testTarget(name: "MetricsTests", dependencies: ["Metrics", "TensorStream", "TensorCore", "_TestSupport"]),
        .testTarget(name: "ToolTests", dependencies: ["_TestSupport", "TensorStream", "TensorCore"]),
    ]
)
