// Helpers shared by the test targets: building streams in memory, reading them back, and
// running the built executables with both pipes drained while the child runs.

import Foundation
import TensorCore
import TensorStream

/// Bytes of a stream with `schema` holding `batches` (each: per-field payloads).
public func makeStream(_ schema: Schema, batches: [(count: Int, fields: [[UInt8]])]) throws -> [UInt8] {
    let sink = MemorySink()
    let w = try StreamWriter(sink: sink, schema: schema)
    for b in batches {
        let ptrs = b.fields.map { f in f.withUnsafeBytes { Array($0) } }
        try withRawPointers(ptrs) { try w.write(count: b.count, fields: $0) }
    }
    try w.finish()
    return sink.data
}

func withRawPointers<R>(_ arrays: [[UInt8]], _ body: ([UnsafeRawBufferPointer]) throws -> R) rethrows -> R {
    var ptrs: [UnsafeRawBufferPointer] = []
    var copies: [UnsafeMutableRawBufferPointer] = []
    for a in arrays {
        let m = UnsafeMutableRawBufferPointer.allocate(byteCount: max(a.count, 1), alignment: 64)
        a.withUnsafeBytes { if $0.count > 0 { m.baseAddress!.copyMemory(from: $0.baseAddress!, byteCount: $0.count) } }
        copies.append(m)
        ptrs.append(UnsafeRawBufferPointer(start: m.baseAddress, count: a.count))
    }
    defer { copies.forEach { $0.deallocate() } }
    return try body(ptrs)
}

/// The header of a version 1 .npy file holding a C-order array of `shape`, `descr` such as
/// "<i8", "<f4" or "|u1"; the little-endian elements follow it.
public func npyHeader(descr: String, shape: [Int]) -> [UInt8] {
    let dims = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
    var dict = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(dims), }"
    while (10 + dict.utf8.count + 1) % 64 != 0 { dict += " " }
    dict += "\n"
    return [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(dict.utf8.count & 0xFF), UInt8(dict.utf8.count >> 8)] + Array(dict.utf8)
}

/// A small three-batch stream: x f32 2×3, y i64 scalar with 3 classes; 7 samples.
public func smallStream() throws -> (Schema, [UInt8]) {
    var s = Schema(fields: [Field(name: "x", dtype: .f32, shape: Shape([2, 3])),
                            Field(name: "y", dtype: .i64, shape: Shape([]))])
    s.setClasses(["cat", "dog", "bird"], of: "y")
    var batches: [(Int, [[UInt8]])] = []
    var k = 0
    for n in [3, 2, 2] {
        let xs = (0..<n * 6).map { Float(k * 6 + $0) * 0.5 }
        let ys = (0..<n).map { Int64((k + $0) % 3) }
        batches.append((n, [xs.withUnsafeBytes { Array($0) }, ys.withUnsafeBytes { Array($0) }]))
        k += n
    }
    return (s, try makeStream(s, batches: batches))
}

/// Reads every batch of `bytes`; returns the schema, total count, and each field's bytes.
public func readAll(_ bytes: [UInt8], name: String = "memory") throws -> (Schema, Int, [[UInt8]]) {
    let r = try StreamReader(source: MemorySource(bytes, name: name))
    var data = [[UInt8]](repeating: [], count: r.schema.fields.count)
    while let b = try r.next() {
        for i in data.indices { data[i] += b.field(i) }
    }
    return (r.schema, r.samplesRead, data)
}

/// The result of running a process.
public struct RunResult {
    public let status: Int32
    public let stdout: [UInt8]
    public let stderr: String
    public var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
    public var stderrLines: [String] { stderr.split(separator: "\n").map(String.init) }
}

/// The directory holding the built executables (beside the test bundle).
public func productsDirectory() -> URL {
    let bundle = Bundle(for: _Marker.self).bundleURL
    return bundle.pathExtension == "xctest" ? bundle.deletingLastPathComponent() : bundle
}
final class _Marker {}

/// The package's top directory.
public func packageRoot() -> URL {
    var u = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { u.deleteLastPathComponent() }
    return u
}

public func testdata(_ path: String) -> String { packageRoot().appendingPathComponent("testdata/" + path).path }

/// Runs `/bin/sh -c script` with the built tools first on PATH, feeding `stdin`, draining both
/// pipes concurrently (reading only after exit deadlocks once output exceeds a pipe buffer).
@discardableResult
public func sh(_ script: String, stdin: [UInt8] = [], cwd: String? = nil) throws -> RunResult {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/bin/sh")
    p.arguments = ["-c", script]
    var env = ProcessInfo.processInfo.environment
    env["PATH"] = productsDirectory().path + ":" + (env["PATH"] ?? "/usr/bin:/bin")
    p.environment = env
    if let cwd { p.currentDirectoryURL = URL(fileURLWithPath: cwd) }
    let inPipe = Pipe(), outPipe = Pipe(), errPipe = Pipe()
    p.standardInput = inPipe
    p.standardOutput = outPipe
    p.standardError = errPipe
    try p.run()
    let group = DispatchGroup()
    let out = DataBox(), err = DataBox()
    DispatchQueue.global().async(group: group) { out.data = outPipe.fileHandleForReading.readDataToEndOfFile() }
    DispatchQueue.global().async(group: group) { err.data = errPipe.fileHandleForReading.readDataToEndOfFile() }
    DispatchQueue.global().async(group: group) {
        try? inPipe.fileHandleForWriting.write(contentsOf: Data(stdin))
        try? inPipe.fileHandleForWriting.close()
    }
    p.waitUntilExit()
    group.wait()
    let status = p.terminationReason == .uncaughtSignal ? 128 + p.terminationStatus : p.terminationStatus
    return RunResult(status: status, stdout: [UInt8](out.data), stderr: String(decoding: err.data, as: UTF8.self))
}

final class DataBox: @unchecked Sendable { var data = Data() }

/// A fresh temporary directory.
public func makeTempDir() throws -> String {
    let d = FileManager.default.temporaryDirectory.appendingPathComponent("tt-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
    return d.path
}
