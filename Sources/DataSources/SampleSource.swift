// What every format reader gives tensor-load: fields, metadata, and samples on demand.

import TensorCore
import TensorStream

/// A reader of one input that yields samples of one or more fields.
public protocol SampleSource: AnyObject {
    /// The input's name, for messages.
    var name: String { get }
    /// The fields this input provides, in order.
    var fields: [Field] { get }
    /// Metadata the input knows (class names, provenance).
    var metadata: [(key: String, value: String)] { get }
    /// The sample count when the format declares it up front.
    var declaredCount: Int? { get }
    /// Reads up to `max` samples, field i into `into[i]` (room for `max` samples each);
    /// returns how many were read, 0 at the end.
    func read(max: Int, into: [UnsafeMutableRawPointer]) throws -> Int
    /// What was skipped in samples read whole ("PATH: what"), for the tool to warn of.
    var notices: [String] { get }
}

extension SampleSource {
    public var notices: [String] { [] }
}

/// Class names "0", "1", … for integer labels whose largest value is `maxLabel`.
func numericClassNames(maxLabel: Int) -> [String] {
    (0...maxLabel).map(String.init)
}

/// The largest value of non-negative integer labels, or nil when one is negative.
func maxLabel(_ p: UnsafeRawPointer, count: Int, dtype: DType) -> Int? {
    var m: Int64 = -1
    for i in 0..<count {
        guard let v = p.integerElement(i, dtype), v >= 0 else { return nil }
        m = max(m, v)
    }
    return m < 0 || m > Int64(Int32.max) ? nil : Int(m)
}

/// Serves samples held in memory (formats that must be read whole: NPZ, CSV, CIFAR archives).
public final class MemorySamples: SampleSource {
    public let name: String
    public let fields: [Field]
    public var metadata: [(key: String, value: String)]
    public let count: Int
    let data: [[UInt8]]
    private var position = 0

    public init(name: String, fields: [Field], metadata: [(key: String, value: String)] = [], count: Int, data: [[UInt8]]) {
        self.name = name
        self.fields = fields
        self.metadata = metadata
        self.count = count
        self.data = data
    }

    public var declaredCount: Int? { count }

    public func read(max: Int, into: [UnsafeMutableRawPointer]) throws -> Int {
        let n = min(max, count - position)
        guard n > 0 else { return 0 }
        for (i, f) in fields.enumerated() {
            let sb = f.sampleBytes
            data[i].withUnsafeBytes { into[i].copyMemory(from: $0.baseAddress! + position * sb, byteCount: n * sb) }
        }
        position += n
        return n
    }
}

/// Swaps the bytes of `count` elements of `size` bytes in place (big-endian inputs).
func byteSwap(_ p: UnsafeMutableRawPointer, count: Int, size: Int) {
    switch size {
    case 2:
        for i in 0..<count { p.storeBytes(of: p.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self).byteSwapped, toByteOffset: 2 * i, as: UInt16.self) }
    case 4:
        for i in 0..<count { p.storeBytes(of: p.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self).byteSwapped, toByteOffset: 4 * i, as: UInt32.self) }
    case 8:
        for i in 0..<count { p.storeBytes(of: p.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self).byteSwapped, toByteOffset: 8 * i, as: UInt64.self) }
    default:
        break
    }
}

/// Reads exactly `count` bytes, or fewer at end of input, growing the buffer only as bytes
/// arrive: a header that declares a huge size costs nothing until the data is really there.
func readGrowing(_ source: ByteSource, count: Int) throws -> [UInt8] {
    var out: [UInt8] = []
    let chunk = 1 << 20
    while out.count < count {
        let want = min(chunk, count - out.count)
        let start = out.count
        try makeRoom(&out, total: count, name: source.name)
        out.append(contentsOf: repeatElement(0, count: want))
        let got = try out.withUnsafeMutableBytes { try source.readFully(into: $0.baseAddress! + start, count: want) }
        if got < want {
            out.removeLast(want - got)
            break
        }
    }
    return out
}

/// Once `buffer` holds 64 MiB of an input of `total` bytes (so the data is really there, not
/// only declared), makes room for all of it at once, or refuses when the process may not have
/// that much memory: growing it further would trap when an allocation fails (`ulimit -v`, a
/// container's limit), and doubling it on the way would need half as much again.
func makeRoom(_ buffer: inout [UInt8], total: Int, name: String) throws {
    guard buffer.count >= 64 << 20, buffer.capacity < total else { return }
    try refuseUnlessRoom(Double(total), name: name, for: "to read")
    buffer.reserveCapacity(total)
}

/// Refuses (70, naming `name`) work that needs `bytes` when the process may not have them.
func refuseUnlessRoom(_ bytes: Double, name: String, for purpose: String) throws {
    try SystemMemory.refuseUnlessRoom(bytes, location: name, for: purpose)
}
