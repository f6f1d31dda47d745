// Transparent decompression of inputs. gzip is inflated with zlib, which checks the trailer's
// CRC-32 and length (libarchive's gzip reader does not, and lets corrupt data through);
// bzip2, xz and zstd go through libarchive's raw format with only those filters enabled, so no
// external decompressor program is ever started. lrzip, lzop and friends are refused.

import CArchive
import CZlib
import Foundation
import TensorStream

/// Opens `path` ("-" for stdin) and returns its decompressed bytes as a source.
public func openDecompressed(_ path: String) throws -> PeekableSource {
    let raw = PeekableSource(try FileSource.open(path))
    return try decompressing(raw)
}

/// Wraps `source` in the decompressor its first bytes call for; plain data passes through.
public func decompressing(_ source: PeekableSource) throws -> PeekableSource {
    let m = try source.peek(6)
    func starts(_ s: [UInt8]) -> Bool { m.count >= s.count && Array(m.prefix(s.count)) == s }
    if starts([0x1F, 0x8B]) { return PeekableSource(GzipSource(source)) }
    if starts([0x42, 0x5A, 0x68]) || starts([0xFD, 0x37, 0x7A, 0x58, 0x5A, 0x00]) || starts([0x28, 0xB5, 0x2F, 0xFD]) {
        return PeekableSource(try ArchiveRawSource(source))
    }
    if starts(Array("LRZI".utf8)) || starts([0x89, 0x4C, 0x5A, 0x4F]) || starts(Array("GRZip".utf8)) || starts([0x1F, 0x9D]) {
        throw DataError(source.name, "compression format not supported (lrzip/lzop/grzip/compress); decompress it first")
    }
    return source
}

/// Inflates gzip data (one or more members) with zlib, verifying each member's CRC-32 and size.
public final class GzipSource: ByteSource {
    private let input: ByteSource
    private var zs = z_stream()
    private var inBuf: UnsafeMutablePointer<UInt8>
    private let inCap = 1 << 18
    private var inputEnded = false
    private var memberEnded = false
    private var finished = false
    private var compressedOffset = 0

    public var name: String { input.name }

    public init(_ input: ByteSource) {
        self.input = input
        inBuf = .allocate(capacity: inCap)
        inflateInit2_(&zs, 16 + MAX_WBITS, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
    }

    deinit {
        inflateEnd(&zs)
        inBuf.deallocate()
    }

    private func fill() throws {
        if zs.avail_in == 0 && !inputEnded {
            let n = try input.read(into: inBuf, count: inCap)
            if n == 0 { inputEnded = true }
            zs.next_in = inBuf
            zs.avail_in = uInt(n)
            compressedOffset += n
        }
    }

    public func read(into buffer: UnsafeMutableRawPointer, count: Int) throws -> Int {
        if finished || count == 0 { return 0 }
        zs.next_out = buffer.assumingMemoryBound(to: UInt8.self)
        zs.avail_out = uInt(min(count, 1 << 30))
        let want = zs.avail_out
        while zs.avail_out == want {
            if memberEnded {
                // After a member: end of input, another member, or garbage.
                try fill()
                if zs.avail_in == 0 && inputEnded { finished = true; return 0 }
                if zs.next_in[0] != 0x1F {
                    throw DataError(name, "garbage after the end of the gzip data", at: "compressed byte \(compressedOffset - Int(zs.avail_in))")
                }
                inflateReset(&zs)
                memberEnded = false
            }
            try fill()
            if zs.avail_in == 0 && inputEnded {
                throw DataError(name, "gzip data cut short (no trailer after \(compressedOffset) compressed bytes)")
            }
            let r = inflate(&zs, Z_NO_FLUSH)
            switch r {
            case Z_OK, Z_BUF_ERROR:
                break
            case Z_STREAM_END:
                memberEnded = true
            default:
                let msg = zs.msg.map { String(cString: $0) } ?? "error \(r)"
                let what = msg.contains("check") ? "gzip \(msg) (data corrupted)" : "corrupt gzip data: \(msg)"
                throw DataError(name, what, at: "compressed byte \(compressedOffset - Int(zs.avail_in))")
            }
        }
        return Int(want - zs.avail_out)
    }
}

/// Shared plumbing for reading through libarchive from a `ByteSource`.
final class ArchiveClient {
    let source: ByteSource
    let buffer: UnsafeMutableRawPointer
    static let bufferSize = 1 << 18
    var error: Error?
    /// Bytes handed to libarchive so far.
    var delivered = 0
    /// With `keepTail`, the last `tailSize` bytes read from the source (a zip's end record).
    var keepTail = false
    private(set) var tail: [UInt8] = []
    static let tailSize = 22 + 65535  // the end-of-central-directory record with its longest comment

    init(_ source: ByteSource) {
        self.source = source
        buffer = .allocate(byteCount: ArchiveClient.bufferSize, alignment: 64)
    }

    deinit { buffer.deallocate() }

    /// Opens `archive` over this client's source.
    func open(_ archive: OpaquePointer) -> Int32 {
        let ptr = Unmanaged.passUnretained(self).toOpaque()
        return archive_read_open(archive, ptr, nil, { _, client, out in
            let c = Unmanaged<ArchiveClient>.fromOpaque(client!).takeUnretainedValue()
            do {
                let n = try c.source.read(into: c.buffer, count: ArchiveClient.bufferSize)
                c.delivered += n
                c.remember(n)
                out?.pointee = UnsafeRawPointer(c.buffer)
                return la_ssize_t(n)
            } catch {
                c.error = error
                return -1
            }
        }, nil)
    }

    /// Keeps the tail of the `n` bytes just read into `buffer`.
    private func remember(_ n: Int) {
        guard keepTail, n > 0 else { return }
        let keep = min(n, ArchiveClient.tailSize)
        tail.append(contentsOf: UnsafeRawBufferPointer(start: buffer + (n - keep), count: keep))
        if tail.count > ArchiveClient.tailSize { tail.removeFirst(tail.count - ArchiveClient.tailSize) }
    }

    /// Reads what libarchive left of the source (it stops at the end of what its format
    /// needs), keeping the tail, up to `limit` bytes; returns the number of bytes, or nil when
    /// the source holds more (an endless pipe must not hang the reader).
    func drain(limit: Int) throws -> Int? {
        var total = 0
        while true {
            let n = try source.read(into: buffer, count: ArchiveClient.bufferSize)
            if n == 0 { return total }
            remember(n)
            total += n
            if total > limit { return nil }
        }
    }

    /// libarchive's message for `a`, which may be NULL.
    /// Its words one space apart ("Lzma library error:  No progress is possible").
    static func message(_ a: OpaquePointer?) -> String {
        guard let a, let m = archive_error_string(a) else { return "archive data damaged or cut short" }
        return String(cString: m).split(whereSeparator: \.isWhitespace).joined(separator: " ")
    }
}

/// bzip2/xz/zstd data decompressed by libarchive's raw reader.
public final class ArchiveRawSource: ByteSource {
    private let archive: OpaquePointer
    private let client: ArchiveClient
    public var name: String { client.source.name }

    public init(_ source: ByteSource) throws {
        client = ArchiveClient(source)
        archive = archive_read_new()
        archive_read_support_filter_bzip2(archive)
        archive_read_support_filter_xz(archive)
        archive_read_support_filter_zstd(archive)
        archive_read_support_format_raw(archive)
        var r = client.open(archive)
        var entry: OpaquePointer?
        if r == ARCHIVE_OK { r = archive_read_next_header(archive, &entry) }
        // A throw from a fully initialized object runs deinit, which frees the archive (freeing
        // it here too was a double free, abort 134, found by scripts/fuzz).
        if r != ARCHIVE_OK {
            throw client.error ?? DataError(source.name, "compressed data damaged or cut short: " + ArchiveClient.message(archive))
        }
    }

    deinit { archive_read_free(archive) }

    public func read(into buffer: UnsafeMutableRawPointer, count: Int) throws -> Int {
        let n = archive_read_data(archive, buffer, count)
        if n < 0 { throw client.error ?? DataError(name, "compressed data damaged or cut short: " + ArchiveClient.message(archive)) }
        if n == 0 && count > 0 && !checkedEnd {
            checkedEnd = true
            try checkNothingFollows()
        }
        return n
    }

    private var checkedEnd = false

    /// libarchive's bzip2 reader ends where the last bzip2 stream does and ignores what follows
    /// (as bzip2(1) does, with a warning); its xz and zstd readers refuse it, and so do we.
    private func checkNothingFollows() throws {
        guard archive_filter_code(archive, 0) == ARCHIVE_FILTER_BZIP2 else { return }
        let used = Int(archive_filter_bytes(archive, -1))
        var more = client.delivered - used
        if more == 0 {
            var byte: UInt8 = 0
            more = try client.source.read(into: &byte, count: 1)
        }
        if more > 0 { throw DataError(name, "garbage after the end of the bzip2 data", at: "compressed byte \(used)") }
    }
}
