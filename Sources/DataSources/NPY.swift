// NumPy .npy arrays and .npz archives of them. The header is a Python dict literal; we parse
// only its three keys with a small scanner and never evaluate anything. Object arrays (pickles)
// are refused; big-endian data is swapped; Fortran-order arrays are transposed to C order.
// An .npy streams when it is C-ordered; .npz members are read whole (a zip yields one member
// after another, and every field must be ready for every batch).

import CArchive
import TensorCore
import TensorStream

public enum NPYReader {
    public static let maxHeaderBytes = 10_000

    struct Header {
        var dtype: DType
        var bigEndian: Bool
        var fortran: Bool
        var shape: [Int]
        /// b1: NumPy takes every byte other than 0 for True; read as u8 0 and 1.
        var bool = false
    }

    /// Reads and checks an .npy header from `src`.
    static func readHeader(_ src: ByteSource, name: String) throws -> Header {
        var pre = [UInt8](repeating: 0, count: 10)
        let got = try pre.withUnsafeMutableBytes { try src.readFully(into: $0.baseAddress!, count: 10) }
        guard got == 10, pre[0] == 0x93, Array(pre[1..<6]) == Array("NUMPY".utf8) else {
            throw DataError(name, got == 0 ? "empty file, no .npy header" : "not a .npy file (bad magic)")
        }
        let major = pre[6]
        var headerLen: Int
        switch major {
        case 1:
            headerLen = Int(pre[8]) | Int(pre[9]) << 8
        case 2, 3:
            var two = [UInt8](repeating: 0, count: 2)
            guard try two.withUnsafeMutableBytes({ try src.readFully(into: $0.baseAddress!, count: 2) }) == 2 else {
                throw DataError(name, ".npy header cut short")
            }
            headerLen = Int(pre[8]) | Int(pre[9]) << 8 | Int(two[0]) << 16 | Int(two[1]) << 24
        default:
            throw DataError(name, ".npy format version \(major) unsupported (reads 1–3)")
        }
        guard headerLen <= maxHeaderBytes else {
            throw DataError(name, ".npy header length \(headerLen) exceeds \(maxHeaderBytes) bytes")
        }
        var hb = [UInt8](repeating: 0, count: headerLen)
        guard try hb.withUnsafeMutableBytes({ try src.readFully(into: $0.baseAddress!, count: headerLen) }) == headerLen else {
            throw DataError(name, ".npy header cut short")
        }
        guard let text = String(validating: hb, as: UTF8.self) else { throw DataError(name, ".npy header is not text") }
        return try parseDict(text, name: name)
    }

    /// The header's Python dict literal, read as numpy reads it: exactly the keys `descr`,
    /// `fortran_order` and `shape`, each once; a string, True or False, and a tuple of sizes
    /// (`(3,)`, `(2, 3)`; `(3)` is a number, not a tuple). Anything else is refused rather than
    /// read another way than numpy would (a second 'descr' won there, the first here).
    static func parseDict(_ text: String, name: String) throws -> Header {
        var p = HeaderScanner(Array(text.utf8), name: name)
        var entries: [String: HeaderScanner.Value] = [:]
        try p.expect("{")
        while !p.take("}") {
            let key = try p.string()
            guard ["descr", "fortran_order", "shape"].contains(key) else {
                throw DataError(name, ".npy header has the key '\(shown(key))', which is not descr, fortran_order or shape")
            }
            guard entries[key] == nil else { throw DataError(name, ".npy header gives '\(key)' twice") }
            try p.expect(":")
            entries[key] = try p.value()
            if !p.take(",") { try p.expect("}"); break }
        }
        try p.end()
        guard case .string(let descr)? = entries["descr"] else {
            throw DataError(name, ".npy header has no 'descr' string (structured dtypes are not supported)")
        }
        if descr.contains("O") { throw DataError(name, ".npy holds Python objects: pickled arrays refused") }
        guard descr.count == 3, let order = descr.first, "<>|=".contains(order) else {
            throw DataError(name, ".npy dtype '\(shown(descr))' unsupported (u1 i1 i2 i4 i8 f4 f8 b1, with its byte order)")
        }
        let dtype: DType
        switch descr.dropFirst() {
        case "u1", "b1": dtype = .u8
        case "i1": dtype = .i8
        case "i2": dtype = .i16
        case "i4": dtype = .i32
        case "i8": dtype = .i64
        case "f4": dtype = .f32
        case "f8": dtype = .f64
        default: throw DataError(name, ".npy dtype '\(shown(descr))' unsupported (u1 i1 i2 i4 i8 f4 f8 b1)")
        }
        guard case .bool(let fortran)? = entries["fortran_order"] else {
            throw DataError(name, ".npy 'fortran_order' is missing, or not True or False")
        }
        guard case .tuple(let shape)? = entries["shape"] else { throw DataError(name, ".npy header has no 'shape' tuple") }
        return Header(dtype: dtype, bigEndian: order == ">", fortran: fortran, shape: shape, bool: descr.hasSuffix("b1"))
    }

    /// An .npy file as one field.
    public static func source(_ src: ByteSource, field: String) throws -> SampleSource {
        let h = try readHeader(src, name: src.name)
        guard let n = h.shape.first else {
            throw DataError(src.name, ".npy holds a 0-d array (a scalar): no sample axis")
        }
        let sampleDims = Array(h.shape.dropFirst())
        let limits = Limits()
        guard n > 0 else { throw DataError(src.name, ".npy array has no samples (first dimension 0)") }
        for d in sampleDims where d < 1 || d > limits.maxDim {
            throw DataError(src.name, ".npy dimension \(d) outside 1…\(limits.maxDim)")
        }
        guard checkedProduct(sampleDims + [h.dtype.size], limit: limits.maxSampleBytes) != nil,
              checkedProduct(h.shape + [h.dtype.size]) != nil else {
            throw DataError(src.name, ".npy shape \(h.shape) overflows")
        }
        let f = Field(name: field, dtype: h.dtype, shape: Shape(sampleDims))
        if h.fortran || (sampleDims.isEmpty && h.dtype.isInteger) {
            let data = try readAll(src, header: h, name: src.name)
            var meta: [(key: String, value: String)] = [("\(field).source", src.name)]
            if sampleDims.isEmpty, h.dtype.isInteger,
               let m = data.withUnsafeBytes({ maxLabel($0.baseAddress!, count: n, dtype: h.dtype) }), m < 65536 {
                meta.insert(("\(field).classes", numericClassNames(maxLabel: m).joined(separator: "\n")), at: 0)
            }
            return MemorySamples(name: src.name, fields: [f], metadata: meta, count: n, data: [data])
        }
        return NPYStreamSource(src: src, field: f, count: n, bigEndian: h.bigEndian, bool: h.bool)
    }

    /// The whole payload of an array in C order, little-endian.
    /// In an .npz (`zipped`), a stored member written with a data descriptor has no length
    /// of its own: libarchive ends it at a descriptor whose CRC-32 matches what it read, so a
    /// damaged byte runs the member on past its array.
    static func readAll(_ src: ByteSource, header h: Header, name: String, zipped: Bool = false) throws -> [UInt8] {
        let total = checkedProduct(h.shape + [h.dtype.size])!
        var data = try readGrowing(src, count: total)
        let got = data.count
        guard got == total else { throw DataError(name, ".npy data short: \(got) of \(total) bytes") }
        var extra: UInt8 = 0
        guard try src.read(into: &extra, count: 1) == 0 else {
            throw DataError(name, zipped ? "member runs on past the array its .npy header describes: damaged (CRC-32 or length does not match)"
                                         : ".npy has bytes after its data")
        }
        if h.bigEndian { data.withUnsafeMutableBytes { byteSwap($0.baseAddress!, count: total / h.dtype.size, size: h.dtype.size) } }
        if h.bool { for i in data.indices where data[i] > 1 { data[i] = 1 } }
        if h.fortran && h.shape.count > 1 { data = transposeFortran(data, shape: h.shape, size: h.dtype.size) }
        return data
    }

    /// Column-major to row-major.
    static func transposeFortran(_ data: [UInt8], shape: [Int], size: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: data.count)
        let rank = shape.count
        var fStride = [Int](repeating: 1, count: rank)
        for i in 1..<rank { fStride[i] = fStride[i - 1] * shape[i - 1] }
        var idx = [Int](repeating: 0, count: rank)
        let total = data.count / size
        data.withUnsafeBytes { src in
            out.withUnsafeMutableBytes { dst in
                for c in 0..<total {
                    var f = 0
                    for i in 0..<rank { f += idx[i] * fStride[i] }
                    dst.baseAddress!.advanced(by: c * size).copyMemory(from: src.baseAddress!.advanced(by: f * size), byteCount: size)
                    var i = rank - 1
                    while i >= 0 { idx[i] += 1; if idx[i] < shape[i] { break }; idx[i] = 0; i -= 1 }
                }
            }
        }
        return out
    }
}

/// A C-ordered .npy read sample by sample.
final class NPYStreamSource: SampleSource {
    let src: ByteSource
    let fields: [Field]
    let count: Int
    let bigEndian: Bool, bool: Bool
    var position = 0
    var name: String { src.name }
    var metadata: [(key: String, value: String)] { [("\(fields[0].name).source", src.name)] }
    var declaredCount: Int? { count }

    init(src: ByteSource, field: Field, count: Int, bigEndian: Bool, bool: Bool) {
        self.src = src
        fields = [field]
        self.count = count
        self.bigEndian = bigEndian
        self.bool = bool
    }

    func read(max: Int, into: [UnsafeMutableRawPointer]) throws -> Int {
        let n = min(max, count - position)
        guard n > 0 else { return 0 }
        let sb = fields[0].sampleBytes
        let got = try src.readFully(into: into[0], count: n * sb)
        guard got == n * sb else { throw DataError(name, ".npy data short: \(position + got / sb) of \(count) samples") }
        if bigEndian { byteSwap(into[0], count: n * sb / fields[0].dtype.size, size: fields[0].dtype.size) }
        if bool {
            let bytes = into[0].assumingMemoryBound(to: UInt8.self)
            for i in 0..<n * sb where bytes[i] > 1 { bytes[i] = 1 }
        }
        position += n
        if position == count {
            var extra: UInt8 = 0
            guard try src.read(into: &extra, count: 1) == 0 else { throw DataError(name, ".npy has bytes after its data") }
        }
        return n
    }
}

/// Reads the members of a zip archive through libarchive (zip and nothing else enabled).
final class ZipMembers {
    let archive: OpaquePointer
    let client: ArchiveClient
    let name: String

    init(_ source: ByteSource) throws {
        name = source.name
        client = ArchiveClient(source)
        client.keepTail = true
        archive = archive_read_new()
        archive_read_support_format_zip_streamable(archive)
        // Every property is set: a throw from here on runs deinit, which frees the archive
        // (freeing it here too was a double free, abort 134, found by scripts/fuzz).
        if client.open(archive) != ARCHIVE_OK {
            throw client.error ?? DataError(name, ArchiveClient.message(archive))
        }
    }

    deinit { archive_read_free(archive) }

    /// The next member's path, or nil at the end of the archive.
    func next() throws -> String? {
        var entry: OpaquePointer?
        let r = archive_read_next_header(archive, &entry)
        if r == ARCHIVE_EOF {
            try checkEnd()
            return nil
        }
        guard r == ARCHIVE_OK || r == ARCHIVE_WARN, let entry else {
            throw client.error ?? DataError(name, "archive damaged or cut short: " + ArchiveClient.message(archive))
        }
        let path = archive_entry_pathname(entry).map { String(cString: $0) }
        if let path { read.append(path) }
        guard archive_entry_filetype(entry) == UInt32(0o100000) /* AE_IFREG */, let path else { return try next() }
        return path
    }

    /// The members read, in order, from their local headers.
    private var read: [String] = []

    /// The streaming reader stops at the central directory's first record, so a file cut
    /// inside the directory, or with other bytes after it, read as whole. The archive must end
    /// with its end-of-central-directory record (signature PK 5 6, 22 bytes and the comment
    /// whose length it gives).
    private func checkEnd() throws {
        // What is left is the central directory: under 400 bytes a member, and a stream has at
        // most a few thousand fields. More than 16 MiB is something else.
        guard try client.drain(limit: 16 << 20) != nil else {
            throw DataError(name, "zip archive followed by other bytes: more than 16 MiB after its last member")
        }
        let t = client.tail
        var p = t.count - 22
        while p >= 0 {
            if t[p] == 0x50, t[p + 1] == 0x4B, t[p + 2] == 0x05, t[p + 3] == 0x06,
               p + 22 + Int(t[p + 20]) + Int(t[p + 21]) << 8 == t.count {
                try checkDirectory(t, end: p)
                return
            }
            p -= 1
        }
        throw DataError(name, "zip archive cut short or followed by other bytes: it does not end with its end-of-central-directory record")
    }

    /// The members are read from their local headers, as they come; NumPy (and every zip
    /// tool) lists them from the central directory. A member the directory does not list
    /// (left by an edit that rewrote only the directory) would be a field NumPy does not
    /// see, and one it lists but the file lacks a field missing: both are refused. The
    /// directory is checked when it is within the tail kept (64 KiB, some hundreds of
    /// members) and not ZIP64 (whose counts the end record leaves at 0xFFFF).
    private func checkDirectory(_ t: [UInt8], end p: Int) throws {
        func le16(_ i: Int) -> Int { Int(t[i]) | Int(t[i + 1]) << 8 }
        func le32(_ i: Int) -> Int { le16(i) | le16(i + 2) << 16 }
        let entries = le16(p + 10), size = le32(p + 12)
        guard entries != 0xFFFF, size != 0xFFFF_FFFF, size <= p else { return }
        var listed: [String] = []
        var i = p - size
        for _ in 0..<entries {
            guard i + 46 <= p, t[i] == 0x50, t[i + 1] == 0x4B, t[i + 2] == 0x01, t[i + 3] == 0x02 else {
                throw DataError(name, "zip archive's central directory is damaged: it does not hold the \(entries) members its end record counts")
            }
            let n = le16(i + 28), next = i + 46 + n + le16(i + 30) + le16(i + 32)
            guard next <= p else { throw DataError(name, "zip archive's central directory is damaged: a member's record runs past it") }
            listed.append(String(decoding: t[(i + 46)..<(i + 46 + n)], as: UTF8.self))
            i = next
        }
        guard listed.sorted() == read.sorted() else {
            let extra = read.first { !listed.contains($0) }, missing = listed.first { !read.contains($0) }
            let what = extra.map { "member '\(escapedForDisplay($0))' is not listed in it" } ?? "it lists '\(escapedForDisplay(missing ?? ""))', which the archive does not hold"
            throw DataError(name, "zip archive's central directory disagrees with its members (\(what)); NumPy reads the directory: rewrite the file with np.savez")
        }
    }

    /// The current member's bytes as a source.
    /// The current member's bytes; `name` (the archive and the member) names it in errors.
    func data(_ name: String) -> ByteSource { MemberSource(self, name: name) }

    final class MemberSource: ByteSource {
        let z: ZipMembers
        let name: String
        init(_ z: ZipMembers, name: String) { (self.z, self.name) = (z, name) }
        func read(into buffer: UnsafeMutableRawPointer, count: Int) throws -> Int {
            let n = archive_read_data(z.archive, buffer, count)
            if n < 0 { throw z.client.error ?? DataError(name, "archive damaged or cut short: " + ArchiveClient.message(z.archive)) }
            return n
        }
    }
}

public enum NPZReader {
    /// Every array of an .npz, one field each, named after the member (`x.npy` → `x`).
    public static func source(_ src: ByteSource) throws -> SampleSource {
        let zip = try ZipMembers(src)
        var fields: [Field] = []
        var data: [[UInt8]] = []
        var meta: [(key: String, value: String)] = []
        var count: Int?
        var first = ""
        while let path = try zip.next() {
            // np.savez names every member NAME.npy; anything else is not an array of ours.
            guard path.hasSuffix(".npy") else {
                throw DataError(src.name, "member '\(escapedForDisplay(path))' is not an .npy array (an .npz holds only NAME.npy members)")
            }
            let fname = String(path.dropLast(4))
            guard Schema.isValidName(fname) else { throw DataError(src.name, "array name '\(escapedForDisplay(fname))' is not a valid field name") }
            let where_ = "\(src.name): \(path)"
            let member = zip.data(where_)
            let h = try NPYReader.readHeader(member, name: where_)
            guard let n = h.shape.first else { throw DataError(where_, "0-d array: no sample axis") }
            if let c = count, c != n { throw DataError(where_, "has \(n) samples but \(first) has \(c)") }
            count = n
            if first.isEmpty { first = fname }
            let sampleDims = Array(h.shape.dropFirst())
            for d in sampleDims where d < 1 || d > Limits().maxDim { throw DataError(where_, "dimension \(d) outside 1…\(Limits().maxDim)") }
            guard checkedProduct(h.shape + [h.dtype.size], limit: 1 << 34) != nil else { throw DataError(where_, "shape \(h.shape) too large") }
            let bytes = try NPYReader.readAll(member, header: h, name: where_, zipped: true)
            if sampleDims.isEmpty, h.dtype.isInteger,
               let m = bytes.withUnsafeBytes({ maxLabel($0.baseAddress!, count: n, dtype: h.dtype) }), m < 65536 {
                meta.append(("\(fname).classes", numericClassNames(maxLabel: m).joined(separator: "\n")))
            }
            meta.append(("\(fname).source", src.name))
            fields.append(Field(name: fname, dtype: h.dtype, shape: Shape(sampleDims)))
            data.append(bytes)
        }
        guard let n = count else { throw DataError(src.name, "no .npy arrays in the archive") }
        return MemorySamples(name: src.name, fields: fields, metadata: meta, count: n, data: data)
    }
}

/// The tokens of an .npy header's dict literal, blanks between them skipped.
struct HeaderScanner {
    enum Value { case string(String), bool(Bool), tuple([Int]) }
    let b: [UInt8]
    let name: String
    var i = 0

    init(_ bytes: [UInt8], name: String) {
        b = bytes
        self.name = name
    }

    func fail(_ what: String) -> DataError {
        DataError(name, ".npy header is not a dict numpy writes: \(what) at byte \(i)")
    }

    mutating func skipBlanks() { while i < b.count, b[i] == 0x20 || b[i] == 0x0A || b[i] == 0x09 { i += 1 } }

    /// Takes `c` (after blanks) when it is next.
    mutating func take(_ c: Character) -> Bool {
        skipBlanks()
        guard i < b.count, b[i] == c.asciiValue! else { return false }
        i += 1
        return true
    }

    mutating func expect(_ c: Character) throws { guard take(c) else { throw fail("'\(c)' expected") } }

    mutating func string() throws -> String {
        skipBlanks()
        guard i < b.count, b[i] == 0x27 || b[i] == 0x22 else { throw fail("a quoted string expected") }
        let quote = b[i]
        let start = i + 1
        guard let end = b[start...].firstIndex(of: quote) else { throw fail("an unterminated string") }
        let text = b[start..<end]
        guard !text.contains(0x5C) else { throw fail("an escape in a string") }
        i = end + 1
        return String(decoding: text, as: UTF8.self)
    }

    mutating func value() throws -> Value {
        skipBlanks()
        guard i < b.count else { throw fail("a value expected") }
        if b[i] == 0x27 || b[i] == 0x22 { return .string(try string()) }
        if b[i] == UInt8(ascii: "[") { throw DataError(name, ".npy holds a structured dtype (a list of fields): not supported") }
        for (word, v) in [("True", true), ("False", false)] where b[i...].starts(with: word.utf8) {
            i += word.utf8.count
            // `Truely` is no Python literal.
            guard i == b.count || !(isLetterOrDigit(b[i])) else { throw fail("an unknown word") }
            return .bool(v)
        }
        try expect("(")
        var sizes: [Int] = []
        var comma = false
        while !take(")") {
            sizes.append(try size())
            comma = take(",")
            if !comma { try expect(")"); break }
        }
        // (3) is the number 3 in Python, not a tuple: numpy refuses it as a shape.
        guard sizes.count != 1 || comma else { throw fail("a one-size shape without its comma, (n,)") }
        return .tuple(sizes)
    }

    mutating func size() throws -> Int {
        skipBlanks()
        let start = i
        while i < b.count, (0x30...0x39).contains(b[i]) { i += 1 }
        guard i > start, let v = Int(String(decoding: b[start..<i], as: UTF8.self)) else { throw fail("a size expected") }
        if i < b.count, b[i] == UInt8(ascii: "L") { i += 1 }  // Python 2's long integers
        return v
    }

    /// Only blanks may follow the dict (numpy pads with spaces to a newline).
    mutating func end() throws {
        skipBlanks()
        guard i == b.count else { throw fail("text after the dict") }
    }

    func isLetterOrDigit(_ c: UInt8) -> Bool { (0x30...0x39).contains(c) || (0x41...0x5A).contains(c) || (0x61...0x7A).contains(c) || c == 0x5F }
}
