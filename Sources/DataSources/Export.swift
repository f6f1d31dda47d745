// What tensor-show computes and writes: per-field statistics, samples as text, CSV rows, NPZ
// archives (stored zip of .npy members, spilled to temporary files so memory stays flat), and a
// PNG grid of image samples.

import Foundation
import TensorCore
import TensorStream

/// Reads element `i` of a payload as Double.
@inline(__always)
func element(_ p: UnsafeRawPointer, _ i: Int, _ t: DType) -> Double { p.element(i, t) }

/// Element text: integers exactly, floats in the shortest form that round-trips, NaNs as `nan`.
func elementText(_ p: UnsafeRawPointer, _ i: Int, _ t: DType) -> String {
    switch t {
    case .i64: return String(p.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self))
    case .f32: return decimalText(p.loadUnaligned(fromByteOffset: 4 * i, as: Float.self))
    case .f64: return decimalText(p.loadUnaligned(fromByteOffset: 8 * i, as: Double.self))
    default: return String(Int(element(p, i, t)))
    }
}

/// Min, max, mean and NaN count of one field, accumulated batch by batch. Integer fields keep
/// their min and max as Int64, exact where a Double loses digits past 2^53.
public struct FieldStats {
    public private(set) var min = Double.infinity
    public private(set) var max = -Double.infinity
    public private(set) var integerMin = Int64.max
    public private(set) var integerMax = Int64.min
    public private(set) var sum = 0.0
    /// Finite values, which the mean is over.
    public private(set) var count = 0
    public private(set) var nanCount = 0
    public private(set) var infCount = 0

    public init() {}

    public var mean: Double { count > 0 ? sum / Double(count) : .nan }

    public mutating func add(_ payload: UnsafeRawBufferPointer, dtype: DType) {
        let n = payload.count / dtype.size
        guard let p = payload.baseAddress, n > 0 else { return }
        if dtype == .u8 {
            var lo: UInt8 = 255, hi: UInt8 = 0, s = 0
            let b = p.assumingMemoryBound(to: UInt8.self)
            for i in 0..<n { let v = b[i]; lo = Swift.min(lo, v); hi = Swift.max(hi, v); s += Int(v) }
            integerMin = Swift.min(integerMin, Int64(lo))
            integerMax = Swift.max(integerMax, Int64(hi))
            sum += Double(s)
            count += n
            return
        }
        if dtype.isInteger {
            for i in 0..<n {
                let v = p.integerElement(i, dtype)!
                integerMin = Swift.min(integerMin, v)
                integerMax = Swift.max(integerMax, v)
                sum += Double(v)
            }
            count += n
            return
        }
        for i in 0..<n {
            let v = element(p, i, dtype)
            if v.isNaN { nanCount += 1; continue }
            if v.isInfinite { infCount += 1 }
            min = Swift.min(min, v)
            max = Swift.max(max, v)
            if v.isFinite { sum += v; count += 1 }
        }
    }

    /// "  min A  max B  mean C" for the text view: an integer field's min and max exactly, the
    /// rest to 6 significant digits; without min and max when every value is a NaN (or there
    /// is none), without the mean when no value is finite.
    public func text(dtype: DType) -> String {
        var s = ""
        if dtype.isInteger {
            guard count > 0 else { return "" }
            s = "  min \(integerMin)  max \(integerMax)"
        } else {
            guard count + infCount > 0 else { return "" }
            s = String(format: "  min %g  max %g", min, max)
        }
        if count > 0 { s += String(format: "  mean %.6g", mean) }
        return s
    }
}

public enum Inspect {
    /// One sample of a field as text: scalars plain (with the class name when known), larger
    /// samples as a bracketed list cut after `limit` elements.
    public static func sampleText(_ p: UnsafeRawPointer, field: Field, classes: [String]?, limit: Int = 16) -> String {
        let n = field.shape.count
        if n == 1 && field.shape.rank == 0 {
            let s = elementText(p, 0, field.dtype)
            if let classes, let k = Int(s), k >= 0, k < classes.count { return "\(s) (\(escapedForDisplay(classes[k])))" }
            return s
        }
        let shown = (0..<Swift.min(n, limit)).map { elementText(p, $0, field.dtype) }
        return "[" + shown.joined(separator: " ") + (n > limit ? " … (\(n) values)]" : "]")
    }

    /// CSV header columns: `f` for a scalar field, `f_0`, `f_1`, … otherwise. Throws when a
    /// scalar field's name is also a column of another field (`x_0` beside an `x` of 2 values):
    /// a header with a name twice would be read back as one column. Only that can clash, since
    /// a name ends in one `_i` at most once: `f_i` and `g_j` are one name only when f is g.
    public static func csvHeader(_ schema: Schema, input: String) throws -> String {
        let split = Dictionary(uniqueKeysWithValues: schema.fields.filter { $0.shape.rank > 0 }.map { ($0.name, $0.shape.count) })
        for f in schema.fields where f.shape.rank == 0 {
            guard let u = f.name.lastIndex(of: "_") else { continue }
            let owner = String(f.name[..<u]), index = f.name[f.name.index(after: u)...]
            if let n = split[owner], let i = Int(index), String(i) == index, i < n {
                throw DataError(input, "column \(f.name) of field \(owner) is also the name of field \(f.name): --csv would write it twice")
            }
        }
        return schema.fields.flatMap { f in
            f.shape.rank == 0 ? [f.name] : (0..<f.shape.count).map { "\(f.name)_\($0)" }
        }.joined(separator: ",")
    }

    /// Writes the batch's samples as CSV rows.
    public static func writeCSVRows(_ batch: Batch, schema: Schema, to sink: ByteSink) throws {
        var line = ""
        for s in 0..<batch.count {
            line.removeAll(keepingCapacity: true)
            for (fi, f) in schema.fields.enumerated() {
                let p = batch.field(fi).baseAddress! + s * f.sampleBytes
                for e in 0..<f.shape.count {
                    if fi > 0 || e > 0 { line += "," }
                    line += elementText(p, e, f.dtype)
                }
            }
            line += "\n"
            var l = line
            try l.withUTF8 { try sink.write(UnsafeRawBufferPointer($0)) }
        }
    }

    /// The .npy header for an array of `count` samples of `field`.
    static func npyHeader(_ field: Field, count: Int) -> [UInt8] {
        let descr: String
        switch field.dtype {
        case .u8: descr = "|u1"
        case .i8: descr = "|i1"
        case .i16: descr = "<i2"
        case .i32: descr = "<i4"
        case .i64: descr = "<i8"
        case .f32: descr = "<f4"
        case .f64: descr = "<f8"
        }
        let dims = [count] + field.shape.dims
        let shape = dims.count == 1 ? "(\(dims[0]),)" : "(" + dims.map(String.init).joined(separator: ", ") + ")"
        var dict = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shape), }"
        let total = 10 + dict.utf8.count + 1
        dict += String(repeating: " ", count: (64 - total % 64) % 64) + "\n"
        var h: [UInt8] = [0x93] + Array("NUMPY".utf8) + [1, 0]
        let len = dict.utf8.count
        h += [UInt8(len & 0xFF), UInt8(len >> 8)]
        h += Array(dict.utf8)
        return h
    }
}

/// Writes an .npz (a stored zip of one .npy per field) from batches, with constant memory: each
/// field's payload is spilled to a temporary file beside the target (for stdout or a device, in
/// $TMPDIR or /tmp), then copied into the zip.
public final class NPZWriter {
    let schema: Schema
    let target: ByteSink
    let atomic: AtomicFile?
    /// Where the spill files are, for errors: the output file, `TMPDIR=dir` or `/tmp`.
    let spillName: String
    var spills: [(fd: Int32, path: String, crc: CRC32, bytes: Int)] = []
    var count = 0

    public init(path: String, schema: Schema) throws {
        self.schema = schema
        (target, atomic) = try openOutputFile(path)
        // Spill beside the file it becomes; for stdout or a device, in the temporary directory.
        let dir: String
        if let atomic {
            dir = URL(fileURLWithPath: atomic.path).deletingLastPathComponent().path
            spillName = path
        } else if let t = ProcessInfo.processInfo.environment["TMPDIR"], !t.isEmpty {
            (dir, spillName) = (t, "TMPDIR=\(t)")
        } else {
            (dir, spillName) = ("/tmp", "/tmp")
        }
        for _ in schema.fields {
            var t = Array("\(dir)/.npz-spill.XXXXXX".utf8CString)
            let fd = t.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
            guard fd >= 0 else { throw IOError(name: spillName, operation: "cannot create a temporary file", code: errno) }
            let p = t.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            unlink(p)  // anonymous: vanishes with the process, whatever happens
            spills.append((fd, p, CRC32(), 0))
        }
    }

    deinit { for s in spills { close(s.fd) } }

    public func add(_ batch: Batch) throws {
        for i in spills.indices {
            let b = batch.field(i)
            spills[i].crc.update(b)
            spills[i].bytes += b.count
            var done = 0
            while done < b.count {
                let n = write(spills[i].fd, b.baseAddress! + done, b.count - done)
                if n < 0 { if errno == EINTR { continue }; throw IOError(name: spillName, operation: "write temporary", code: errno) }
                done += n
            }
        }
        count += batch.count
    }

    /// Members and archives at or past this many bytes get ZIP64 records (as Python's zipfile
    /// writes them); lowered by tests to exercise them without writing 4 GiB.
    static var zip64Limit = 0xFFFF_FFFF

    public func commit() throws {
        var central: [UInt8] = []
        var offset = 0
        var anyZIP64 = false
        func le16(_ v: Int) -> [UInt8] { [UInt8(v & 0xFF), UInt8((v >> 8) & 0xFF)] }
        func le32(_ v: Int) -> [UInt8] { (0..<4).map { UInt8((v >> (8 * $0)) & 0xFF) } }
        func le64(_ v: Int) -> [UInt8] { (0..<8).map { UInt8((v >> (8 * $0)) & 0xFF) } }
        let buf = UnsafeMutableRawPointer.allocate(byteCount: 1 << 20, alignment: 64)
        defer { buf.deallocate() }
        do {
            for (i, f) in schema.fields.enumerated() {
                let header = Inspect.npyHeader(f, count: count)
                var crc = CRC32()
                crc.update(header)
                let combined = crc32Combine(crc.value, spills[i].crc.value, spills[i].bytes)
                let size = header.count + spills[i].bytes
                let name = Array("\(f.name).npy".utf8)
                // A member of 4 GiB or more, or one that starts past 4 GiB, has its sizes and
                // offset in a ZIP64 extra field, the 32-bit ones set to 0xFFFFFFFF.
                let zip64 = size >= NPZWriter.zip64Limit || offset >= NPZWriter.zip64Limit
                anyZIP64 = anyZIP64 || zip64
                let version = zip64 ? 45 : 20
                let size32 = zip64 ? 0xFFFF_FFFF : size, offset32 = zip64 ? 0xFFFF_FFFF : offset
                let localExtra = zip64 ? le16(1) + le16(16) + le64(size) + le64(size) : []
                let centralExtra = zip64 ? le16(1) + le16(24) + le64(size) + le64(size) + le64(offset) : []
                var local: [UInt8] = le32(0x04034B50) + le16(version) + le16(0) + le16(0) + le16(0) + le16(0x21)
                local += le32(Int(combined)) + le32(size32) + le32(size32) + le16(name.count) + le16(localExtra.count) + name + localExtra
                var cent: [UInt8] = le32(0x02014B50) + le16(version) + le16(version) + le16(0) + le16(0) + le16(0) + le16(0x21)
                cent += le32(Int(combined)) + le32(size32) + le32(size32) + le16(name.count) + le16(centralExtra.count) + le16(0)
                cent += le16(0) + le16(0) + le32(0) + le32(offset32) + name + centralExtra
                central += cent
                try (local + header).withUnsafeBytes { try target.write($0) }
                guard lseek(spills[i].fd, 0, SEEK_SET) == 0 else { throw IOError(name: spillName, operation: "seek", code: errno) }
                var left = spills[i].bytes
                while left > 0 {
                    let n = read(spills[i].fd, buf, min(left, 1 << 20))
                    if n < 0 { if errno == EINTR { continue }; throw IOError(name: spillName, operation: "read temporary", code: errno) }
                    if n == 0 { throw IOError(name: spillName, operation: "temporary file shrank", code: EIO) }
                    try target.write(UnsafeRawBufferPointer(start: buf, count: n))
                    left -= n
                }
                offset += local.count + size
            }
            // The central directory; past 4 GiB (or after a ZIP64 member) preceded by the ZIP64
            // end record and its locator, the classic end record's fields set to their maximum.
            let n = schema.fields.count
            var end: [UInt8] = []
            let zip64End = anyZIP64 || offset >= NPZWriter.zip64Limit || central.count >= NPZWriter.zip64Limit
            if zip64End {
                let at = offset + central.count
                end += le32(0x06064B50) + le64(44) + le16(45) + le16(45) + le32(0) + le32(0)
                end += le64(n) + le64(n) + le64(central.count) + le64(offset)
                end += le32(0x07064B50) + le32(0) + le64(at) + le32(1)
            }
            func field32(_ v: Int) -> Int { v >= NPZWriter.zip64Limit ? 0xFFFF_FFFF : v }
            end += le32(0x06054B50) + le16(0) + le16(0) + le16(n) + le16(n) + le32(field32(central.count)) + le32(field32(offset)) + le16(0)
            try (central + end).withUnsafeBytes { try target.write($0) }
            if let atomic { try atomic.commit() } else { try target.flush() }
        } catch {
            atomic?.abandon()
            throw error
        }
    }

    public func abandon() { atomic?.abandon() }
}

import CZlib
func crc32Combine(_ a: UInt32, _ b: UInt32, _ lenB: Int) -> UInt32 {
    UInt32(truncatingIfNeeded: crc32_combine(UInt(a), UInt(b), off_t(lenB)))
}

/// Collects the first samples of an image field and lays them out as a grid.
/// Memory: each sample kept as its own bytes (one byte per byte drawn; a Double per element
/// took 8 per u8 byte, and the min/max scan copied them all again), then the grid's pixels
/// and the PNG.
public final class ImageGrid {
    public let field: Field
    public let limit: Int
    /// The samples drawn, as the stream holds them (h·w·c elements of `field.dtype` each).
    private var samples: [[UInt8]] = []
    let h: Int, w: Int, c: Int
    let input: String
    /// The most bytes of tiles a grid holds (64 of the largest tile, 2048×2048×4).
    public static let maxGridBytes = 1 << 30
    private var roomChecked = false

    /// Throws when `field` is not H×W or H×W×C with C 1, 3 or 4; `input` names the stream.
    public init(field: Field, limit: Int, input: String) throws {
        self.field = field
        self.limit = limit
        self.input = input
        let d = field.shape.dims
        if d.count == 2 { (h, w, c) = (d[0], d[1], 1) } else if d.count == 3, [1, 3, 4].contains(d[2]) { (h, w, c) = (d[0], d[1], d[2]) } else {
            throw DataError(input, "field \(field.name) of shape \(field.shape) is not an image (H×W or H×W×C with C 1, 3 or 4)", kind: .usage)
        }
        guard h * w <= 1 << 22 else { throw DataError(input, "field \(field.name): images of \(h)×\(w) too large for a grid", kind: .usage) }
        guard Double(limit) * Double(h * w * c) <= Double(ImageGrid.maxGridBytes) else {
            throw DataError("-n", "\(limit) tiles of \(h)×\(w)×\(c) are more than a grid holds (1 GiB of pixels); draw fewer", kind: .usage)
        }
    }

    public var count: Int { samples.count }
    public var isFull: Bool { samples.count >= limit }

    /// Keeps the first samples of a batch, up to the limit. Refuses (70), once the samples
    /// kept pass 16 MiB, if the process may not have room for the rest of them: an allocation
    /// that fails traps.
    public func add(_ payload: UnsafeRawBufferPointer, count: Int) throws {
        let bytes = h * w * c * field.dtype.size
        for s in 0..<count where samples.count < limit {
            if !roomChecked, (samples.count + 1) * bytes > 16 << 20 {
                roomChecked = true
                try refuseUnlessRoom(Double(limit - samples.count) * Double(bytes), name: input, for: "to draw \(limit) samples of \(h)×\(w)×\(c)")
            }
            samples.append(Array(UnsafeRawBufferPointer(rebasing: payload[s * bytes..<(s + 1) * bytes])))
        }
    }

    /// The grid as PNG bytes: tiles with a 1-pixel gap, floats scaled from their min…max.
    /// Draws once: the samples are let go as their pixels are laid out.
    public func png() throws -> [UInt8] {
        guard !samples.isEmpty else { throw DataError(field.name, "no samples to draw") }
        let cols = Int(Double(samples.count).squareRoot().rounded(.up))
        let rows = (samples.count + cols - 1) / cols
        // One sample is written as itself, so it can be read back as an input image.
        let gap = samples.count == 1 ? 0 : 1
        let W = cols * (w + gap) + gap, H = rows * (h + gap) + gap
        let n = h * w * c, t = field.dtype
        var lo = 0.0, hi = 255.0
        if t != .u8 {
            var l = Double.infinity, u = -Double.infinity
            for s in samples {
                s.withUnsafeBytes { b in
                    for i in 0..<n { let v = element(b.baseAddress!, i, t); if v.isFinite { l = Swift.min(l, v); u = Swift.max(u, v) } }
                }
            }
            (lo, hi) = l <= u ? (l, u) : (0, 1)
        }
        let scale = hi > lo ? 255 / (hi - lo) : 0
        // The pixels beside the samples, then the PNG of about as many bytes, for which the
        // samples let go as their pixels are laid out make room.
        let kept = Double(samples.count * h * w * c * field.dtype.size), grid = Double(W * H * c)
        try refuseUnlessRoom(grid + max(0, grid - kept), name: input, for: "to draw a grid of \(W)×\(H)×\(c)")
        var out = [UInt8](repeating: 64, count: W * H * c)
        out.withUnsafeMutableBufferPointer { o in
            for k in samples.indices {
                let oy = (k / cols) * (h + gap) + gap, ox = (k % cols) * (w + gap) + gap
                samples[k].withUnsafeBytes { b in
                    let p = b.baseAddress!
                    for y in 0..<h {
                        let row = o.baseAddress! + ((oy + y) * W + ox) * c
                        if t == .u8 { row.update(from: p.assumingMemoryBound(to: UInt8.self) + y * w * c, count: w * c); continue }
                        for i in 0..<w * c {
                            let v = element(p, y * w * c + i, t)
                            row[i] = v.isFinite ? UInt8(Swift.max(0, Swift.min(255, ((v - lo) * scale).rounded()))) : 255
                        }
                    }
                }
                samples[k] = []
            }
        }
        samples = []
        return try ImageCodec.encodePNG(width: W, height: H, channels: c, pixels: out)
    }
}
