// Reads a tensor stream: header, batches, end record; then EOF or the next concatenated stream,
// in the same input or in the next of several (tensor-cat a.tns b.tns).
// Every length is checked against `Limits` before any allocation, and buffers grow only as
// bytes arrive, so a hostile length costs nothing. A stream without its end record is an error.

import Foundation
import TensorCore

/// One batch record as read: `count` samples of every field, payloads 64-byte aligned.
public struct Batch {
    public let count: Int
    /// The whole record (prefix, body, padding), for verbatim pass-through.
    public let storage: AlignedBuffer
    let offsets: [Int]
    let lengths: [Int]

    /// The payload of field `i`: `count` samples back to back.
    public func field(_ i: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: storage.base + offsets[i], count: lengths[i])
    }

    /// The record's bytes exactly as they appeared in the input.
    public var record: UnsafeRawBufferPointer { storage.bytes }
}

/// Reads batches from a byte source, validating everything. Given several sources, reads them
/// as one concatenation in which each must hold whole streams: a record cannot run on from one
/// into the next, an empty one is an error, and errors name the source with the byte offset and
/// stream number within it.
public final class StreamReader {
    /// The input being read (of several, the current one).
    public private(set) var source: ByteSource
    public let limits: Limits
    /// The schema of stream 1; concatenated streams must agree with it.
    public private(set) var schema: Schema
    /// Samples read so far, over all concatenated streams.
    public private(set) var samplesRead = 0
    /// 1-based index of the concatenated stream being read.
    public private(set) var streamIndex = 0

    private let sources: [ByteSource]
    private var sourceIndex = 0
    /// Streams and samples read from the sources before this one.
    private var streamsBefore = 0
    private var samplesBefore = 0
    private var offset: UInt64 = 0
    private var batchesInStream = 0
    private var samplesInStream = 0
    private var finished = false
    private var prefix = [UInt8](repeating: 0, count: StreamFormat.prefixBytes)
    private var spare = AlignedBuffer(capacity: 1 << 16)
    private var sampleBytes: [Int] = []

    /// Opens a stream and reads its header; throws when the input is not a valid stream.
    public convenience init(source: ByteSource, limits: Limits = .fromEnvironment) throws {
        try self.init(sources: [source], limits: limits)
    }

    /// Opens the concatenation of `sources` (at least one) and reads the first header.
    public init(sources: [ByteSource], limits: Limits = .fromEnvironment) throws {
        precondition(!sources.isEmpty, "StreamReader needs a source")  // trap-ok: callers pass openInputs(), never empty
        self.sources = sources
        self.source = sources[0]
        self.limits = limits
        self.schema = Schema(fields: [])
        // A binary stream is not typed: a terminal on stdin waited silently (gzip -d refuses
        // the same way).
        if let f = sources[0] as? FileSource, isatty(f.fd) == 1 {
            throw TerminalInput(name: f.name)
        }
        guard let s = try readHeader(first: true) else {
            throw StreamError(input: source.name, place: "", .emptyInput)
        }
        schema = s
        sampleBytes = s.fields.map(\.sampleBytes)
    }

    /// The stream's number within the current source.
    private var localStream: Int { streamIndex - streamsBefore }

    private func fail(_ p: StreamError.Problem, at recordOffset: UInt64, record: String? = nil) -> StreamError {
        var place = localStream > 1 ? "stream \(localStream), " : ""
        place += record ?? "byte \(recordOffset)"
        if record != nil { place += " at byte \(recordOffset)" }
        return StreamError(input: source.name, place: place, p)
    }

    /// Reads until `n` bytes or the end of input; before a read that would wait, runs
    /// `beforeWaiting`.
    private func readFully(_ p: UnsafeMutableRawPointer, _ n: Int) throws -> Int {
        let got = try source.readFully(into: p, count: n, beforeRead: beforeRead)
        offset += UInt64(got)
        return got
    }

    /// Run before a read that would wait for input (FileSource.isIdle), between records or
    /// inside one. A filter pushes its buffered output downstream here, as stdio flushes
    /// standard output before it reads a terminal: a producer that sends a sample now and then,
    /// in whatever pieces, gets each answer as soon as it is computed, while an input that
    /// keeps up never pauses and the output keeps its large writes. Set it only where the
    /// thread that reads is the one that writes.
    public var beforeWaiting: (() throws -> Void)? {
        didSet {
            beforeRead = beforeWaiting.map { flush in
                { [unowned self] in if let f = self.source as? FileSource, f.isIdle { try flush() } }
            }
        }
    }
    /// `beforeWaiting` behind the check that the current input would wait, made once.
    private var beforeRead: (() throws -> Void)?

    /// Reads the 16-byte prefix; returns how many bytes arrived (16, or fewer at end of input).
    private func readPrefixBytes() throws -> Int {
        try prefix.withUnsafeMutableBytes { try readFully($0.baseAddress!, 16) }
    }

    /// Reads the 16-byte prefix of `record`; returns false at a clean end of input (0 bytes).
    private func readPrefix(record: String) throws -> Bool {
        let start = offset
        let got = try readPrefixBytes()
        if got == 0 { return false }
        if got < 16 {
            throw fail(.truncated(samples: samplesRead - samplesBefore, inside: "inside \(record)"), at: start, record: record)
        }
        return true
    }

    private var prefixLength: UInt64 {
        prefix.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: 8, as: UInt64.self)) }
    }
    private var prefixCRC: UInt32 {
        prefix.withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: 4, as: UInt32.self)) }
    }
    private var prefixTag: [UInt8] { Array(prefix[0..<4]) }

    /// Reads `n` body bytes into `buf` after its first `buf.count` bytes, growing it as data arrives.
    private func readBody(into buf: AlignedBuffer, _ n: Int, record: String, recordStart: UInt64) throws {
        var left = n
        while left > 0 {
            let chunk = min(left, 16 << 20)
            // A failed allocation traps: past 64 MiB, a buffer that cannot grow is refused (70).
            let grown = buf.growth(for: buf.count + chunk)
            if grown > 64 << 20 {
                let room = SystemMemory.available()
                if Double(grown) > room { throw fail(.outOfMemory(need: Double(grown), room: room), at: recordStart, record: record) }
            }
            buf.reserve(buf.count + chunk)
            let got = try readFully(buf.base + buf.count, chunk)
            buf.count += got
            left -= got
            if got < chunk { throw fail(.truncated(samples: samplesRead - samplesBefore, inside: "inside \(record)"), at: recordStart, record: record) }
        }
    }

    /// Reads and checks the zero padding after a record of `size` bytes.
    private func readPadding(recordSize: Int, into buf: AlignedBuffer, record: String, recordStart: UInt64) throws {
        let pad = (StreamFormat.alignment - recordSize % StreamFormat.alignment) % StreamFormat.alignment
        guard pad > 0 else { return }
        let before = buf.count
        try readBody(into: buf, pad, record: record, recordStart: recordStart)
        for i in before..<buf.count where buf.base.load(fromByteOffset: i, as: UInt8.self) != 0 {
            throw fail(.nonzeroPadding, at: recordStart, record: record)
        }
    }

    private func checkCRC(_ buf: AlignedBuffer, bodyStart: Int, bodyLength: Int, at start: UInt64, record: String) throws {
        var c = CRC32()
        prefix.withUnsafeBytes { c.update(UnsafeRawBufferPointer(rebasing: $0[8..<16])) }
        c.update(UnsafeRawBufferPointer(start: buf.base + bodyStart, count: bodyLength))
        if c.value != prefixCRC { throw fail(.checksumMismatch, at: start, record: record) }
    }

    /// Reads a header record; nil at a clean end of input.
    private func readHeader(first: Bool) throws -> Schema? {
        let start = offset
        let inside = "header"
        let got = try readPrefixBytes()
        if got == 0 { return nil }
        streamIndex += 1
        if Array(prefix[0..<min(got, 4)]) != Array(StreamFormat.headerTag[0..<min(got, 4)]) || (got < 4 && !first) {
            if first {
                // Only the bytes read: the prefix's unread rest is zeros, which no text holds.
                var sniff = Array(prefix[0..<got])
                var more = [UInt8](repeating: 0, count: 300)
                let n = try more.withUnsafeMutableBytes { try readFully($0.baseAddress!, 300) }
                sniff += more.prefix(n)
                throw StreamError(input: source.name, place: "", .notAStream(looksLike: describeMagic(sniff)))
            }
            streamIndex -= 1
            throw fail(.trailingGarbage, at: start)
        }
        if got < 16 { throw fail(.truncated(samples: samplesRead - samplesBefore, inside: "inside the header"), at: start, record: "header") }
        let length = prefixLength
        guard length >= 16, length <= UInt64(limits.maxHeaderBytes) else {
            if length < 16 { throw fail(.malformed("header length \(length) too short"), at: start, record: "header") }
            throw fail(.recordTooLarge(length: length, limit: limits.maxHeaderBytes), at: start, record: "header")
        }
        let buf = AlignedBuffer(capacity: 1024)
        try readBody(into: buf, Int(length), record: inside, recordStart: start)
        let body = buf.bytes
        if Array(body[0..<4]) != StreamFormat.headerSignatureTail { throw fail(.damagedSignature, at: start, record: "header") }
        let version = UInt32(littleEndian: body.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
        if version != StreamFormat.version { throw fail(.unsupportedVersion(version), at: start, record: "header") }
        try checkCRC(buf, bodyStart: 0, bodyLength: Int(length), at: start, record: "header")
        try readPadding(recordSize: 16 + Int(length), into: buf, record: inside, recordStart: start)
        let schema: Schema
        switch Schema.decode(headerBody: UnsafeRawBufferPointer(rebasing: buf.bytes[0..<Int(length)]), limits: limits) {
        case .success(let s): schema = s
        case .failure(let f): throw fail(.malformed(f.message), at: start, record: "header")
        }
        batchesInStream = 0
        samplesInStream = 0
        return schema
    }

    /// The next batch, or nil after the last end record at the end of input.
    public func next() throws -> Batch? {
        while true {
            if finished { return nil }
            let start = offset
            let recordName = "batch \(batchesInStream + 1)"
            guard try readPrefix(record: recordName) else {
                throw fail(.truncated(samples: samplesRead - samplesBefore, inside: batchesInStream == 0 ? "after the header" : "after batch \(batchesInStream)"), at: start)
            }
            let tag = prefixTag
            let length = prefixLength
            if tag == StreamFormat.endTag {
                try readEnd(length: length, start: start)
                // Next: the next concatenated stream in this source, or the first of the next
                // source, or the end.
                var header = try readHeader(first: false)
                if header == nil && sourceIndex + 1 < sources.count {
                    sourceIndex += 1
                    source = sources[sourceIndex]
                    offset = 0
                    streamsBefore = streamIndex
                    samplesBefore = samplesRead
                    guard let s = try readHeader(first: true) else { throw StreamError(input: source.name, place: "", .emptyInput) }
                    header = s
                }
                guard let s = header else {
                    finished = true
                    return nil
                }
                if let why = schema.mismatch(with: s) {
                    let reference = sourceIndex == 0 ? "stream 1" : "stream 1 of \(sources[0].name)"
                    throw StreamError(input: source.name, place: "stream \(localStream)", .schemaMismatch(reference: reference, detail: why))
                }
                continue
            }
            guard tag == StreamFormat.batchTag else {
                if tag == StreamFormat.headerTag {
                    throw fail(.malformed("header record inside a stream (stream \(localStream) has no end record)"), at: start)
                }
                throw fail(.unknownRecord(tagDescription(tag)), at: start)
            }
            return try readBatch(length: length, start: start, name: recordName)
        }
    }

    private func tagDescription(_ t: [UInt8]) -> String {
        t.map { $0 >= 32 && $0 < 127 ? String(UnicodeScalar($0)) : "\\x" + String($0, radix: 16) }.joined()
    }

    private func readBatch(length: UInt64, start: UInt64, name: String) throws -> Batch {
        guard length >= UInt64(StreamFormat.batchHeaderBytes) else {
            throw fail(.malformed("batch length \(length) shorter than its header"), at: start, record: name)
        }
        guard length <= UInt64(limits.maxBatchBytes) else {
            throw fail(.recordTooLarge(length: length, limit: limits.maxBatchBytes, setting: "TENSOR_MAX_BATCH_BYTES"), at: start, record: name)
        }
        let buf: AlignedBuffer
        if isKnownUniquelyReferenced(&spare) { buf = spare } else { buf = AlignedBuffer(capacity: 1 << 16); spare = buf }
        buf.count = 0
        buf.reserve(64)
        prefix.withUnsafeBytes { buf.base.copyMemory(from: $0.baseAddress!, byteCount: 16) }
        buf.count = 16
        try readBody(into: buf, StreamFormat.batchHeaderBytes, record: name, recordStart: start)
        let n64 = UInt64(littleEndian: buf.base.loadUnaligned(fromByteOffset: 16, as: UInt64.self))
        guard n64 >= 1, n64 <= UInt64(limits.maxSamplesPerBatch) else {
            throw fail(.malformed("batch sample count \(n64) outside 1…\(limits.maxSamplesPerBatch)"), at: start, record: name)
        }
        for i in 24..<64 where buf.base.load(fromByteOffset: i, as: UInt8.self) != 0 {
            throw fail(.malformed("reserved bytes not zero"), at: start, record: name)
        }
        let n = Int(n64)
        var expected = StreamFormat.batchHeaderBytes
        var offsets: [Int] = []
        var lengths: [Int] = []
        offsets.reserveCapacity(sampleBytes.count)
        lengths.reserveCapacity(sampleBytes.count)
        for sb in sampleBytes {
            guard let bytes = checkedMultiply(n, sb), let padded = roundUp(bytes, to: 64),
                  let e = checkedAdd(expected, padded) else {
                throw fail(.malformed("batch of \(n) samples overflows"), at: start, record: name)
            }
            offsets.append(16 + expected)
            lengths.append(bytes)
            expected = e
        }
        guard UInt64(expected) == length else {
            throw fail(.malformed("batch length \(length) does not match \(n) samples (expected \(expected))"), at: start, record: name)
        }
        try readBody(into: buf, Int(length) - StreamFormat.batchHeaderBytes, record: name, recordStart: start)
        try checkCRC(buf, bodyStart: 16, bodyLength: Int(length), at: start, record: name)
        // Padding between payloads must be zero: it is covered by the CRC, but a writer that
        // leaked memory there would otherwise pass.
        for (o, l) in zip(offsets, lengths) {
            let padEnd = (o + l + 63) & ~63
            var i = o + l
            while i < padEnd {
                if buf.base.load(fromByteOffset: i, as: UInt8.self) != 0 {
                    throw fail(.nonzeroPadding, at: start, record: name)
                }
                i += 1
            }
        }
        batchesInStream += 1
        samplesInStream += n
        samplesRead += n
        return Batch(count: n, storage: buf, offsets: offsets, lengths: lengths)
    }

    private func readEnd(length: UInt64, start: UInt64) throws {
        let name = "end record"
        guard length == UInt64(StreamFormat.endBodyBytes) else {
            throw fail(.malformed("end record length \(length), expected 16"), at: start, record: name)
        }
        let buf = AlignedBuffer(capacity: 64)
        try readBody(into: buf, 16, record: name, recordStart: start)
        try checkCRC(buf, bodyStart: 0, bodyLength: 16, at: start, record: name)
        try readPadding(recordSize: 32, into: buf, record: name, recordStart: start)
        let samples = buf.base.loadUnaligned(fromByteOffset: 0, as: UInt64.self).littleEndian
        let batches = buf.base.loadUnaligned(fromByteOffset: 8, as: UInt64.self).littleEndian
        if samples != UInt64(samplesInStream) || batches != UInt64(batchesInStream) {
            throw fail(.countMismatch("end record says \(samples) samples in \(batches) batches, stream had \(samplesInStream) in \(batchesInStream)"), at: start, record: name)
        }
    }
}
