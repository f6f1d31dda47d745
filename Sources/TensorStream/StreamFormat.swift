// Constants of the tensor stream format, version 1 (tensor-stream(5)).

/// Tags, sizes and the version of the tensor stream format.
public enum StreamFormat {
    public static let version: UInt32 = 1
    /// Records start and end on multiples of this many bytes.
    public static let alignment = 64
    /// tag (4) + CRC-32 (4) + body length (8).
    public static let prefixBytes = 16
    /// Sample count (8) + reserved (40): payloads start 64 bytes into a batch record.
    public static let batchHeaderBytes = 48
    public static let endBodyBytes = 16

    /// The header record's tag, the first four bytes of every stream: 89 'T' 'N' 'S'.
    public static let headerTag: [UInt8] = [0x89, 0x54, 0x4E, 0x53]
    public static let batchTag: [UInt8] = Array("TBAT".utf8)
    public static let endTag: [UInt8] = Array("TEND".utf8)
    /// First bytes of the header body: CR LF SUB LF, which line-ending conversion damages.
    public static let headerSignatureTail: [UInt8] = [0x0D, 0x0A, 0x1A, 0x0A]

    /// Payload bytes per batch that writers aim for.
    public static let targetBatchBytes = 1 << 20

    /// Samples per batch so that a batch holds about `targetBatchBytes` of payload.
    public static func samplesPerBatch(sampleBytes: Int) -> Int {
        max(1, min(targetBatchBytes / max(sampleBytes, 1), 1 << 20))
    }
}

/// Guesses what a non-stream input is from its first bytes, for error messages.
public func describeMagic(_ b: [UInt8]) -> String {
    func starts(_ m: [UInt8]) -> Bool { b.count >= m.count && Array(b.prefix(m.count)) == m }
    if starts(StreamFormat.headerTag) { return "a tensor stream" }
    if starts([0x1F, 0x8B]) { return "gzip data" }
    if starts([0x89, 0x50, 0x4E, 0x47]) { return "a PNG image" }
    if starts([0xFF, 0xD8, 0xFF]) { return "a JPEG image" }
    if starts([0x93] + Array("NUMPY".utf8)) { return "a NumPy .npy file" }
    if starts(Array("PK".utf8) + [3, 4]) { return "a zip archive or .npz" }
    if starts([0x42, 0x5A, 0x68]) { return "bzip2 data" }
    if starts([0xFD, 0x37, 0x7A, 0x58, 0x5A, 0x00]) { return "xz data" }
    if starts([0x28, 0xB5, 0x2F, 0xFD]) { return "zstd data" }
    if b.count >= 4, b[0] == 0, b[1] == 0, [0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E].contains(b[2]), (1...4).contains(b[3]) {
        return "an IDX file"
    }
    if b.count >= 262, Array(b[257..<262]) == Array("ustar".utf8) { return "a tar archive" }
    if isText(b) { return "text" }
    return "unknown data"
}

/// Printable ASCII, tab, line ends and valid UTF-8 (a sequence cut by the end of `b` allowed):
/// the first bytes of a text file.
func isText(_ b: [UInt8]) -> Bool {
    guard !b.isEmpty, b.allSatisfy({ $0 == 9 || $0 == 10 || $0 == 13 || (32...126).contains($0) || $0 >= 0x80 }) else { return false }
    // Drop a multi-byte sequence the sniff cut short: up to 3 continuation bytes and their lead.
    var end = b.count
    var k = 0
    while k < 3, end > 0, b[end - 1] & 0xC0 == 0x80 { end -= 1; k += 1 }
    if end > 0, b[end - 1] >= 0xC0 {
        let need = b[end - 1] >= 0xF0 ? 3 : b[end - 1] >= 0xE0 ? 2 : 1
        if k < need { end -= 1 } else { end += k }
    } else {
        end += k
    }
    let body = Array(b[0..<end])
    return !body.isEmpty && Array(String(decoding: body, as: UTF8.self).utf8) == body
}
