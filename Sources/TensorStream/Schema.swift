// The stream's schema: named fields with a dtype and a per-sample shape, plus string metadata,
// and its byte encoding inside the header record (tensor-stream(5), "Header body").

import TensorCore

/// One named field of every sample.
public struct Field: Equatable, Sendable {
    public var name: String
    public var dtype: DType
    public var shape: Shape

    public init(name: String, dtype: DType, shape: Shape) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
    }

    /// Bytes one sample of this field occupies.
    public var sampleBytes: Int { shape.count * dtype.size }
}

/// Fields and metadata: what every batch of a stream holds.
public struct Schema: Equatable, Sendable {
    public var fields: [Field]
    /// Key–value pairs in order; keys unique.
    public var metadata: [(key: String, value: String)]

    public init(fields: [Field], metadata: [(key: String, value: String)] = []) {
        self.fields = fields
        self.metadata = metadata
    }

    public static func == (a: Schema, b: Schema) -> Bool {
        a.fields == b.fields && a.metadata.map(\.key) == b.metadata.map(\.key)
            && a.metadata.map(\.value) == b.metadata.map(\.value)
    }

    public func index(of field: String) -> Int? { fields.firstIndex { $0.name == field } }
    public func field(_ name: String) -> Field? { fields.first { $0.name == name } }

    public func metadata(_ key: String) -> String? { metadata.first { $0.key == key }?.value }

    public mutating func setMetadata(_ key: String, _ value: String) {
        if let i = metadata.firstIndex(where: { $0.key == key }) {
            metadata[i].value = value
        } else {
            metadata.append((key, value))
        }
    }

    /// Class names of an integer label field (`FIELD.classes`, one per line), if recorded.
    /// Whether class names are only the labels' numbers, "0"… in order: what an input of
    /// integer labels is given when it names no classes (IDX, NPY, a CSV column of integers).
    /// They number the classes and fix neither their names nor how many there are.
    public static func areIndexNames(_ names: [String]) -> Bool {
        names.indices.allSatisfy { names[$0] == String($0) }
    }

    public func classes(of field: String) -> [String]? {
        guard let v = metadata("\(field).classes") else { return nil }
        return v.isEmpty ? [] : Schema.lines(v)
    }

    /// `text` split at each line feed, by Unicode scalars: Swift takes CR LF for one
    /// Character, so splitting Characters on "\n" joined a name ending in CR to the next.
    public static func lines(_ text: String) -> [String] {
        text.unicodeScalars.split(separator: "\n", omittingEmptySubsequences: false).map { String(String.UnicodeScalarView($0)) }
    }

    public mutating func setClasses(_ names: [String], of field: String) {
        setMetadata("\(field).classes", names.joined(separator: "\n"))
    }

    /// Why `other` cannot continue a stream with this schema, or nil when it can.
    /// Provenance (`*.source` metadata) may differ.
    public func mismatch(with other: Schema) -> String? {
        if fields.count != other.fields.count {
            return "\(other.fields.count) fields (\(other.fields.map(\.name).joined(separator: ","))) where stream 1 has \(fields.count) (\(fields.map(\.name).joined(separator: ",")))"
        }
        for (a, b) in zip(fields, other.fields) where a != b {
            if a.name != b.name { return "field '\(b.name)' where stream 1 has '\(a.name)'" }
            return "field '\(a.name)' is \(b.dtype) \(b.shape) where stream 1 has \(a.dtype) \(a.shape)"
        }
        func relevant(_ s: Schema) -> [(String, String)] {
            s.metadata.filter { !$0.key.hasSuffix(".source") && $0.key != "source" }.map { ($0.key, $0.value) }
        }
        let ma = relevant(self), mb = relevant(other)
        for (k, v) in ma {
            guard let w = mb.first(where: { $0.0 == k })?.1 else { return "metadata '\(k)' missing" }
            if v != w {
                if k.hasSuffix(".classes") {
                    return "field '\(k.dropLast(8))' has other class names"
                }
                return "metadata '\(k)' differs"
            }
        }
        for (k, _) in mb where !ma.contains(where: { $0.0 == k }) {
            return "metadata '\(k)' not in stream 1"
        }
        return nil
    }

    /// Whether `s` is a valid field name or metadata key: `[A-Za-z_][A-Za-z0-9_.-]*`, ≤ 255 bytes.
    public static func isValidName(_ s: String) -> Bool {
        let u = Array(s.utf8)
        guard !u.isEmpty, u.count <= 255 else { return false }
        func letter(_ c: UInt8) -> Bool { (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c == 95 }
        guard letter(u[0]) else { return false }
        return u.dropFirst().allSatisfy { letter($0) || ($0 >= 48 && $0 <= 57) || $0 == 46 || $0 == 45 }
    }

    /// Checks names, uniqueness and sizes against `limits`; returns the first problem.
    public func validationProblem(limits: Limits = Limits()) -> String? {
        if fields.isEmpty { return "no fields" }
        if fields.count > limits.maxFields { return "\(fields.count) fields exceed the limit \(limits.maxFields)" }
        if metadata.count > limits.maxMetadata { return "\(metadata.count) metadata entries exceed the limit \(limits.maxMetadata)" }
        var seen = Set<String>()
        for f in fields {
            if !Schema.isValidName(f.name) { return "invalid field name '\(escapedForDisplay(f.name))'" }
            if !seen.insert(f.name).inserted { return "duplicate field name '\(f.name)'" }
            if f.shape.rank > limits.maxRank { return "field '\(f.name)' has rank \(f.shape.rank), limit \(limits.maxRank)" }
            for d in f.shape.dims where d < 1 || d > limits.maxDim {
                return "field '\(f.name)' has dimension \(d) outside 1…\(limits.maxDim)"
            }
            guard let n = checkedProduct(f.shape.dims + [f.dtype.size], limit: limits.maxSampleBytes) else {
                return "field '\(f.name)' sample size overflows the limit \(limits.maxSampleBytes) bytes"
            }
            _ = n
        }
        var keys = Set<String>()
        for (k, v) in metadata {
            if !Schema.isValidName(k) { return "invalid metadata key '\(escapedForDisplay(k))'" }
            if !keys.insert(k).inserted { return "duplicate metadata key '\(k)'" }
            if v.utf8.count > limits.maxValueBytes { return "metadata '\(k)' longer than \(limits.maxValueBytes) bytes" }
        }
        return nil
    }

    // MARK: - Encoding

    /// The header body: signature tail, version, counts, field descriptors, metadata.
    public func encodedHeaderBody() -> [UInt8] {
        var b: [UInt8] = StreamFormat.headerSignatureTail
        b.appendLE(StreamFormat.version)
        b.appendLE(UInt32(fields.count))
        b.appendLE(UInt32(metadata.count))
        for f in fields {
            let n = Array(f.name.utf8)
            b.append(UInt8(n.count))
            b += n
            b.append(f.dtype.rawValue)
            b.append(UInt8(f.shape.rank))
            for d in f.shape.dims { b.appendLE(UInt64(d)) }
        }
        for (k, v) in metadata {
            let kb = Array(k.utf8), vb = Array(v.utf8)
            b.append(UInt8(kb.count))
            b += kb
            b.appendLE(UInt32(vb.count))
            b += vb
        }
        return b
    }

    /// Parses a header body whose signature, version and checksum were already checked.
    /// Returns the schema or a description of the first problem.
    public static func decode(headerBody body: UnsafeRawBufferPointer, limits: Limits) -> Result<Schema, DecodeFailure> {
        var r = LEReader(body)
        r.position = 8
        guard let nf = r.u32(), let nm = r.u32() else { return .failure(.init("header too short")) }
        guard nf >= 1, Int(nf) <= limits.maxFields else { return .failure(.init("field count \(nf) outside 1…\(limits.maxFields)")) }
        guard Int(nm) <= limits.maxMetadata else { return .failure(.init("metadata count \(nm) exceeds the limit \(limits.maxMetadata)")) }
        var fields: [Field] = []
        for i in 0..<Int(nf) {
            guard let nlen = r.u8(), nlen > 0, let nameBytes = r.bytes(Int(nlen)) else {
                return .failure(.init("field \(i + 1): name missing or cut"))
            }
            guard let name = String(validating: nameBytes, as: UTF8.self), isValidName(name) else {
                return .failure(.init("field \(i + 1): invalid name '\(displayString(bytes: nameBytes))'"))
            }
            guard let code = r.u8() else { return .failure(.init("field '\(name)': dtype missing")) }
            guard let dtype = DType(rawValue: code) else { return .failure(.init("field '\(name)': unknown dtype code \(code)")) }
            guard let rank = r.u8() else { return .failure(.init("field '\(name)': rank missing")) }
            guard Int(rank) <= limits.maxRank else { return .failure(.init("field '\(name)': rank \(rank) exceeds the limit \(limits.maxRank)")) }
            var dims: [Int] = []
            for _ in 0..<Int(rank) {
                guard let d = r.u64() else { return .failure(.init("field '\(name)': shape cut")) }
                guard d >= 1, d <= UInt64(limits.maxDim) else {
                    let shown = d >= 1 << 63 ? "\(Int64(bitPattern: d))" : "\(d)"
                    return .failure(.init("field '\(name)': dimension \(shown) outside 1…\(limits.maxDim)"))
                }
                dims.append(Int(d))
            }
            guard checkedProduct(dims + [dtype.size], limit: limits.maxSampleBytes) != nil else {
                return .failure(.init("field '\(name)': sample size \(dims.map(String.init).joined(separator: "×")) × \(dtype.size) bytes overflows the limit \(limits.maxSampleBytes)"))
            }
            if fields.contains(where: { $0.name == name }) { return .failure(.init("duplicate field name '\(name)'")) }
            fields.append(Field(name: name, dtype: dtype, shape: Shape(dims)))
        }
        var meta: [(key: String, value: String)] = []
        for i in 0..<Int(nm) {
            guard let klen = r.u8(), klen > 0, let kb = r.bytes(Int(klen)) else {
                return .failure(.init("metadata entry \(i + 1): key missing or cut"))
            }
            guard let key = String(validating: kb, as: UTF8.self), isValidName(key) else {
                return .failure(.init("metadata entry \(i + 1): invalid key '\(displayString(bytes: kb))'"))
            }
            guard let vlen = r.u32() else { return .failure(.init("metadata '\(key)': value length missing")) }
            guard Int(vlen) <= limits.maxValueBytes else { return .failure(.init("metadata '\(key)': value length \(vlen) exceeds the limit \(limits.maxValueBytes)")) }
            guard let vb = r.bytes(Int(vlen)) else { return .failure(.init("metadata '\(key)': value cut")) }
            guard let value = String(validating: vb, as: UTF8.self) else {
                return .failure(.init("metadata '\(key)': value is not valid UTF-8"))
            }
            if meta.contains(where: { $0.key == key }) { return .failure(.init("duplicate metadata key '\(key)'")) }
            meta.append((key, value))
        }
        guard r.position == body.count else {
            return .failure(.init("\(body.count - r.position) unexpected bytes after the schema"))
        }
        return .success(Schema(fields: fields, metadata: meta))
    }

    public struct DecodeFailure: Error {
        public let message: String
        init(_ m: String) { message = m }
    }
}

/// Bounds-checked little-endian reads from untrusted bytes; nil when the bytes run out.
struct LEReader {
    let buf: UnsafeRawBufferPointer
    var position = 0

    init(_ b: UnsafeRawBufferPointer) { buf = b }

    mutating func bytes(_ n: Int) -> UnsafeRawBufferPointer? {
        guard n >= 0, n <= buf.count - position else { return nil }
        defer { position += n }
        return UnsafeRawBufferPointer(rebasing: buf[position..<position + n])
    }

    mutating func u8() -> UInt8? { bytes(1).map { $0[0] } }
    mutating func u32() -> UInt32? { bytes(4).map { UInt32(littleEndian: $0.loadUnaligned(as: UInt32.self)) } }
    mutating func u64() -> UInt64? { bytes(8).map { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) } }
}

extension Array where Element == UInt8 {
    mutating func appendLE<T: FixedWidthInteger>(_ v: T) {
        Swift.withUnsafeBytes(of: v.littleEndian) { append(contentsOf: $0) }
    }
}
