// IDX files (MNIST, Fashion-MNIST), plain or compressed. Layout: 0x00 0x00, a dtype byte, a rank
// byte, rank big-endian u32 dimensions, then big-endian data. The first dimension counts
// samples. N×H×W images become H×W×1 (channels-last); a rank-1 file becomes a scalar field,
// and when its values are non-negative integers, class names "0"… go into the metadata.
// Images stream in constant memory; a label file (rank 1) is read whole to learn its classes.

import TensorCore
import TensorStream

/// Reads an IDX file as one field.
public final class IDXSource: SampleSource {
    public let name: String
    public let fields: [Field]
    public private(set) var metadata: [(key: String, value: String)] = []
    public let declaredCount: Int?
    private let source: ByteSource
    private let count: Int
    private var position = 0
    private let elementSize: Int
    private var held: [UInt8]?

    public static let headerLimitSampleBytes = 1 << 30

    /// Reads the header of the IDX data in `source`; the field is called `field`.
    public init(source: ByteSource, field: String) throws {
        self.source = source
        name = source.name
        var head = [UInt8](repeating: 0, count: 4)
        let got = try head.withUnsafeMutableBytes { try source.readFully(into: $0.baseAddress!, count: 4) }
        guard got == 4, head[0] == 0, head[1] == 0 else {
            throw DataError(name, got == 0 ? "empty file, no IDX header" : "not an IDX file (bad magic)")
        }
        let dtype: DType
        switch head[2] {
        case 0x08: dtype = .u8
        case 0x09: dtype = .i8
        case 0x0B: dtype = .i16
        case 0x0C: dtype = .i32
        case 0x0D: dtype = .f32
        case 0x0E: dtype = .f64
        default: throw DataError(name, "unknown IDX type code 0x\(String(head[2], radix: 16))")
        }
        let rank = Int(head[3])
        guard rank >= 1, rank <= 4 else { throw DataError(name, "IDX rank \(rank) outside 1…4") }
        var dimBytes = [UInt8](repeating: 0, count: 4 * rank)
        let g2 = try dimBytes.withUnsafeMutableBytes { try source.readFully(into: $0.baseAddress!, count: 4 * rank) }
        guard g2 == 4 * rank else { throw DataError(name, "IDX header cut short") }
        var dims: [Int] = []
        for i in 0..<rank {
            let d = Int(dimBytes[4 * i]) << 24 | Int(dimBytes[4 * i + 1]) << 16 | Int(dimBytes[4 * i + 2]) << 8 | Int(dimBytes[4 * i + 3])
            dims.append(d)
        }
        let limits = Limits()
        var sampleDims = Array(dims.dropFirst())
        if sampleDims.count == 2 { sampleDims.append(1) }  // N×H×W → H×W×1
        for d in sampleDims where d < 1 || d > limits.maxDim {
            throw DataError(name, "IDX dimension \(d) outside 1…\(limits.maxDim)")
        }
        guard checkedProduct(sampleDims + [dtype.size], limit: limits.maxSampleBytes) != nil,
              checkedProduct(dims + [dtype.size]) != nil else {
            throw DataError(name, "IDX dimensions \(dims.map(String.init).joined(separator: "×")) overflow")
        }
        count = dims[0]
        declaredCount = dims[0]
        elementSize = dtype.size
        fields = [Field(name: field, dtype: dtype, shape: Shape(sampleDims))]
        if rank == 1 && dtype.isInteger {
            // Labels: read them whole (one element per sample) to learn the classes.
            var all = try readGrowing(source, count: count * dtype.size)
            let n = all.count
            guard n == count * dtype.size else {
                throw DataError(name, "IDX payload short: header declares \(count) samples, file holds \(n / dtype.size)")
            }
            try checkNoTrailingBytes()
            all.withUnsafeMutableBytes { byteSwap($0.baseAddress!, count: count, size: dtype.size) }
            if let m = all.withUnsafeBytes({ maxLabel($0.baseAddress!, count: count, dtype: dtype) }), m < 65536 {
                metadata.append(("\(field).classes", numericClassNames(maxLabel: m).joined(separator: "\n")))
            }
            held = all
        }
        metadata.append(("\(field).source", name))
    }

    private func checkNoTrailingBytes() throws {
        var extra: UInt8 = 0
        if try source.read(into: &extra, count: 1) != 0 {
            throw DataError(name, "IDX payload longer than the \(count) samples its header declares")
        }
    }

    public func read(max: Int, into: [UnsafeMutableRawPointer]) throws -> Int {
        let n = min(max, count - position)
        guard n > 0 else { return 0 }
        let sb = fields[0].sampleBytes
        if let held {
            held.withUnsafeBytes { into[0].copyMemory(from: $0.baseAddress! + position * sb, byteCount: n * sb) }
        } else {
            let got = try source.readFully(into: into[0], count: n * sb)
            guard got == n * sb else {
                throw DataError(name, "IDX payload short: header declares \(count) samples, file holds \(position + got / sb)")
            }
            byteSwap(into[0], count: n * sb / elementSize, size: elementSize)
        }
        position += n
        if position == count && held == nil { try checkNoTrailingBytes() }
        return n
    }
}
