// Writes a tensor stream: the header at construction, batch records, and the end record on
// `finish()`. A writer that is never finished leaves a stream every reader refuses, which is
// the point: a producer that dies mid-way cannot pass for a complete one.

import TensorCore

/// Writes batches of a fixed schema to a sink.
public final class StreamWriter {
    public let sink: ByteSink
    public let schema: Schema
    public private(set) var samplesWritten = 0
    public private(set) var batchesWritten = 0
    private let sampleBytes: [Int]
    /// The largest batch record readers accept (`TENSOR_MAX_BATCH_BYTES`): larger batches are
    /// written as several records.
    private let maxBatchBytes = Limits.fromEnvironment.maxBatchBytes
    private static let zeros = [UInt8](repeating: 0, count: 64)

    /// Validates `schema` and writes the header record.
    public init(sink: ByteSink, schema: Schema) throws {
        if let why = schema.validationProblem() {
            throw StreamError(input: sink.name, place: "", .malformed("cannot write schema: \(why)"))
        }
        self.sink = sink
        self.schema = schema
        sampleBytes = schema.fields.map(\.sampleBytes)
        let body = schema.encodedHeaderBody()
        try writeRecord(tag: StreamFormat.headerTag, segments: [body])
    }

    private func writeRecord(tag: [UInt8], segments: [[UInt8]]) throws {
        let length = segments.reduce(0) { $0 + $1.count }
        var lenBytes: [UInt8] = []
        lenBytes.appendLE(UInt64(length))
        var crc = CRC32()
        crc.update(lenBytes)
        for s in segments { s.withUnsafeBytes { crc.update($0) } }
        var prefix = tag
        prefix.appendLE(crc.value)
        prefix += lenBytes
        try prefix.withUnsafeBytes { try sink.write($0) }
        for s in segments { try s.withUnsafeBytes { try sink.write($0) } }
        let pad = (64 - (16 + length) % 64) % 64
        try StreamWriter.zeros.withUnsafeBytes { try sink.write(UnsafeRawBufferPointer(rebasing: $0[0..<pad])) }
    }

    /// Writes one batch of `count` samples; `fields[i]` holds `count` samples of field i.
    public func write(count: Int, fields: [UnsafeRawBufferPointer]) throws {
        guard count > 0 else { return }
        precondition(fields.count == sampleBytes.count, "one buffer per field")  // trap-ok: caller bug
        var length = StreamFormat.batchHeaderBytes
        var pads: [Int] = []
        for (i, sb) in sampleBytes.enumerated() {
            let bytes = count * sb
            precondition(fields[i].count >= bytes, "field buffer too short")  // trap-ok: caller bug
            let padded = (bytes + 63) & ~63
            pads.append(padded - bytes)
            length += padded
        }
        // A batch holds at least one sample: one whose record passes the limit every reader
        // keeps would make a stream that no reader accepts. (A stream of no samples is fine.)
        if length > maxBatchBytes && count == 1 {
            throw StreamError(input: sink.name, place: "", .malformed(
                "cannot write samples of \(sampleBytes.reduce(0, +)) bytes: a batch of one would pass the \(maxBatchBytes)-byte limit of every reader (TENSOR_MAX_BATCH_BYTES)"))
        }
        if length > maxBatchBytes {
            let half = count / 2
            try write(count: half, fields: fields)
            try write(count: count - half, fields: zip(fields, sampleBytes).map { UnsafeRawBufferPointer(rebasing: $0[(half * $1)...]) })
            return
        }
        var header: [UInt8] = []
        header.appendLE(UInt64(count))
        header += [UInt8](repeating: 0, count: 40)
        var lenBytes: [UInt8] = []
        lenBytes.appendLE(UInt64(length))
        var crc = CRC32()
        crc.update(lenBytes)
        crc.update(header)
        for (i, sb) in sampleBytes.enumerated() {
            crc.update(UnsafeRawBufferPointer(rebasing: fields[i][0..<count * sb]))
            StreamWriter.zeros.withUnsafeBytes { crc.update(UnsafeRawBufferPointer(rebasing: $0[0..<pads[i]])) }
        }
        var prefix = StreamFormat.batchTag
        prefix.appendLE(crc.value)
        prefix += lenBytes
        try (prefix + header).withUnsafeBytes { try sink.write($0) }
        for (i, sb) in sampleBytes.enumerated() {
            try sink.write(UnsafeRawBufferPointer(rebasing: fields[i][0..<count * sb]))
            try StreamWriter.zeros.withUnsafeBytes { try sink.write(UnsafeRawBufferPointer(rebasing: $0[0..<pads[i]])) }
        }
        samplesWritten += count
        batchesWritten += 1
    }

    /// Writes a batch exactly as a `StreamReader` read it (same schema): no re-encoding.
    public func write(_ batch: Batch) throws {
        try sink.write(batch.record)
        samplesWritten += batch.count
        batchesWritten += 1
    }

    /// Writes the end record and flushes the sink.
    public func finish() throws {
        var body: [UInt8] = []
        body.appendLE(UInt64(samplesWritten))
        body.appendLE(UInt64(batchesWritten))
        try writeRecord(tag: StreamFormat.endTag, segments: [body])
        try sink.flush()
    }
}

/// Accumulates samples field by field and writes a batch whenever about 1 MiB has gathered.
public final class BatchBuilder {
    public let writer: StreamWriter
    public let capacity: Int
    /// Made with the first sample: a stream of no samples whose sample is a few GiB
    /// allocates nothing.
    private lazy var buffers: [AlignedBuffer] = sampleBytes.map { AlignedBuffer(capacity: max(64, $0 * capacity)) }
    private let sampleBytes: [Int]
    public private(set) var pending = 0

    public init(writer: StreamWriter, samplesPerBatch: Int? = nil) {
        self.writer = writer
        let sb = writer.schema.fields.map(\.sampleBytes)
        let total = max(1, sb.reduce(0, +))
        let cap = samplesPerBatch ?? StreamFormat.samplesPerBatch(sampleBytes: total)
        sampleBytes = sb
        capacity = cap
    }

    /// Room for the next sample of field `i` (`sampleBytes[i]` bytes); call `commitSample()` after
    /// filling every field.
    public func slot(_ i: Int) -> UnsafeMutableRawPointer {
        buffers[i].base + pending * sampleBytes[i]
    }

    /// Room for `n` samples of field `i`, starting at the first pending one.
    public var freeSamples: Int { capacity - pending }

    /// Marks `n` samples (already written to every field's slot) as added; writes a full batch.
    public func commit(_ n: Int = 1) throws {
        pending += n
        if pending >= capacity { try flush() }
    }

    public func flush() throws {
        guard pending > 0 else { return }
        let views = zip(buffers, sampleBytes).map { UnsafeRawBufferPointer(start: $0.base, count: pending * $1) }
        try writer.write(count: pending, fields: views)
        pending = 0
    }

    /// Flushes and writes the end record.
    public func finish() throws {
        try flush()
        try writer.finish()
    }
}
