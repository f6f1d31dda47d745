import TensorCore
import TensorStream
import XCTest
import _TestSupport

final class StreamFormatTests: XCTestCase {
    func problem(_ bytes: [UInt8]) -> StreamError.Problem? {
        do {
            _ = try readAll(bytes)
            return nil
        } catch let e as StreamError {
            return e.what
        } catch {
            XCTFail("unexpected error type \(error)")
            return nil
        }
    }

    func testRoundTripEveryDTypeAndSeveralShapes() throws {
        let shapes: [[Int]] = [[], [1], [3], [2, 3], [4, 1, 5], [2, 2, 2, 3]]
        for dtype in DType.allCases {
            for dims in shapes {
                let shape = Shape(dims)
                let s = Schema(fields: [Field(name: "v", dtype: dtype, shape: shape), Field(name: "k", dtype: .u8, shape: Shape([]))],
                               metadata: [("note", "ünïcode ✓")])
                var batches: [(count: Int, fields: [[UInt8]])] = []
                var expected = [UInt8]()
                for n in [1, 5, 2] {
                    let bytes = (0..<n * shape.count * dtype.size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ n) }
                    expected += bytes
                    batches.append((n, [bytes, [UInt8](repeating: 7, count: n)]))
                }
                let stream = try makeStream(s, batches: batches)
                XCTAssertEqual(stream.count % 64, 0, "records fill whole 64-byte blocks")
                let (schema, count, data) = try readAll(stream)
                XCTAssertEqual(schema, s)
                XCTAssertEqual(count, 8)
                XCTAssertEqual(data[0], expected, "\(dtype) \(shape)")
            }
        }
    }

    func testClassNamesAreLinesOfScalars() throws {
        // A name ending in CR joined the next one: Swift's Characters take CR LF for one.
        var s = Schema(fields: [Field(name: "y", dtype: .i64, shape: Shape([]))])
        s.setClasses(["a\r", "b", "", "c"], of: "y")
        XCTAssertEqual(s.classes(of: "y"), ["a\r", "b", "", "c"])
    }

    /// Field names may hold dots: with fields y and y.classes, the key y.classes is y's class
    /// list and y.classes.source is the field y.classes's. Keeping only y.classes (tensor-cat
    /// --fields) dropped its source with y's keys, and keeping y kept the other's source.
    func testMetadataGoesWithTheFieldWhoseNameIsTheLongestPrefix() throws {
        let s = Schema(fields: [Field(name: "y", dtype: .i64, shape: Shape([])), Field(name: "y.classes", dtype: .f32, shape: Shape([2]))],
                       metadata: [("y.classes", "a\nb"), ("y.source", "a.csv"), ("y.classes.source", "b.csv"), ("provenance.cmd", "tensor-load")])
        XCTAssertEqual(s.owner(ofKey: "y.classes"), "y")
        XCTAssertEqual(s.owner(ofKey: "y.classes.source"), "y.classes")
        XCTAssertNil(s.owner(ofKey: "provenance.cmd"))
        let (only, idx) = try XCTUnwrap(s.selecting(["y.classes"]))
        XCTAssertEqual(idx, [1])
        XCTAssertEqual(only.metadata.map(\.key), ["y.classes.source", "provenance.cmd"])
        XCTAssertNil(only.classes(of: "y"))
        let (justY, _) = try XCTUnwrap(s.selecting(["y"]))
        XCTAssertEqual(justY.metadata.map(\.key), ["y.classes", "y.source", "provenance.cmd"])
    }

    func testPayloadsAre64ByteAligned() throws {
        let (_, bytes) = try smallStream()
        let r = try StreamReader(source: MemorySource(bytes))
        while let b = try r.next() {
            for i in 0..<2 { XCTAssertEqual(Int(bitPattern: b.field(i).baseAddress!) % 64, 0) }
        }
        // In the byte stream: the first batch record starts after the header at a multiple of 64
        // and its first payload 64 bytes further in.
        let firstBatch = try XCTUnwrap((0..<bytes.count / 64).map { $0 * 64 }.first { Array(bytes[$0..<$0 + 4]) == Array("TBAT".utf8) })
        XCTAssertEqual(firstBatch % 64, 0)
    }

    func testZeroSampleStreamIsValid() throws {
        let s = Schema(fields: [Field(name: "x", dtype: .u8, shape: Shape([2]))])
        let (schema, count, _) = try readAll(try makeStream(s, batches: []))
        XCTAssertEqual(schema, s)
        XCTAssertEqual(count, 0)
    }

    func testEveryPrefixIsRefused() throws {
        let (_, bytes) = try smallStream()
        XCTAssertEqual(problem([]), .emptyInput)
        for cut in 1..<bytes.count {
            let p = problem(Array(bytes[0..<cut]))
            XCTAssertNotNil(p, "a stream cut at byte \(cut) of \(bytes.count) was accepted")
            if case .truncated = p {} else { XCTFail("cut at \(cut): \(String(describing: p)), expected truncated") }
        }
    }

    func testEveryFlippedByteIsRefused() throws {
        let (_, bytes) = try smallStream()
        for i in 0..<bytes.count {
            var b = bytes
            b[i] ^= 0x01
            XCTAssertNotNil(problem(b), "flipping byte \(i) went unnoticed")
            b[i] ^= 0x81
            XCTAssertNotNil(problem(b), "flipping byte \(i) (0x80) went unnoticed")
        }
    }

    func testConcatenatedEqualSchemasReadAsOne() throws {
        let (s, bytes) = try smallStream()
        let (schema, count, data) = try readAll(bytes + bytes)
        XCTAssertEqual(schema, s)
        XCTAssertEqual(count, 14)
        let (_, _, once) = try readAll(bytes)
        XCTAssertEqual(data[1], once[1] + once[1])
    }

    func testConcatenationToleratesDifferentProvenanceOnly() throws {
        var a = Schema(fields: [Field(name: "x", dtype: .u8, shape: Shape([1]))])
        a.setMetadata("x.source", "a.gz")
        var b = a
        b.setMetadata("x.source", "b.gz")
        let sa = try makeStream(a, batches: [(1, [[1]])]), sb = try makeStream(b, batches: [(1, [[2]])])
        XCTAssertEqual(try readAll(sa + sb).1, 2)
    }

    func testConcatenatedMismatchNamesStreamAndField() throws {
        let (s, bytes) = try smallStream()
        var other = s
        other.fields[0].shape = Shape([3, 2])
        let b2 = try makeStream(other, batches: [(1, [[UInt8](repeating: 0, count: 24), [UInt8](repeating: 0, count: 8)])])
        XCTAssertThrowsError(try readAll(bytes + b2)) { e in
            let d = e as! StreamError
            XCTAssertTrue(d.description.contains("stream 2"), d.description)
            XCTAssertTrue(d.description.contains("'x'"), d.description)
        }
        var renamed = s
        renamed.setClasses(["cat", "dog", "fish"], of: "y")
        let b3 = try makeStream(renamed, batches: [])
        XCTAssertThrowsError(try readAll(bytes + b3)) { e in
            XCTAssertTrue("\(e)".contains("class names"), "\(e)")
        }
    }

    func testGarbageAfterEndRecordIsRefused() throws {
        let (_, bytes) = try smallStream()
        XCTAssertEqual(problem(bytes + [0x0A]), .trailingGarbage)
        XCTAssertEqual(problem(bytes + Array("hello world, and more text...".utf8)), .trailingGarbage)
    }

    func testWrongMagicSaysWhatTheInputLooksLike() {
        let cases: [([UInt8], String)] = [
            ([0x1F, 0x8B, 8, 0] + [UInt8](repeating: 0, count: 20), "gzip"),
            ([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + [UInt8](repeating: 0, count: 20), "PNG"),
            ([0x00, 0x00, 0x08, 0x03, 0, 0, 0, 1] + [UInt8](repeating: 0, count: 20), "IDX"),
            ([0x93] + Array("NUMPY".utf8) + [1, 0] + [UInt8](repeating: 32, count: 20), "NumPy"),
        ]
        for (b, word) in cases {
            guard case .notAStream(let k)? = problem(b) else { XCTFail("\(word) accepted"); continue }
            XCTAssertTrue(k.contains(word), "\(k) should mention \(word)")
        }
    }

    /// A header record with `body` (signature and version included) and a correct CRC.
    func headerRecord(_ body: [UInt8]) -> [UInt8] {
        var len: [UInt8] = []
        withUnsafeBytes(of: UInt64(body.count).littleEndian) { len += $0 }
        var c = CRC32()
        c.update(len + body)
        var r = StreamFormat.headerTag
        withUnsafeBytes(of: c.value.littleEndian) { r += $0 }
        r += len + body
        r += [UInt8](repeating: 0, count: (64 - r.count % 64) % 64)
        return r
    }

    func le32(_ v: UInt32) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }
    func le64(_ v: UInt64) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }

    func testNewerVersionIsRefusedByNumber() {
        let body = StreamFormat.headerSignatureTail + le32(2) + le32(1) + le32(0) + [1, 0x78, 1, 0]
        XCTAssertEqual(problem(headerRecord(body)), .unsupportedVersion(2))
        let msg = StreamError(input: "f", place: "", .unsupportedVersion(2)).problem
        XCTAssertEqual(msg, "format version 2 unsupported (reads ≤ 1)")
    }

    func testHugeLengthsAreRefusedWithoutAllocating() {
        for len: UInt64 in [1 << 40, UInt64.max] {
            var prefix = StreamFormat.headerTag + [0, 0, 0, 0] + le64(len)
            prefix += [UInt8](repeating: 0, count: 64)
            guard case .recordTooLarge? = problem(prefix) else { XCTFail("header length \(len) accepted"); continue }
            // A batch record claiming 2^40 bytes after a valid header.
            let s = Schema(fields: [Field(name: "x", dtype: .u8, shape: Shape([1]))])
            var head = try! makeStream(s, batches: [])
            head.removeLast(64)  // drop the end record
            let batch = Array("TBAT".utf8) + [0, 0, 0, 0] + le64(len) + [UInt8](repeating: 0, count: 48)
            guard case .recordTooLarge? = problem(head + batch) else { XCTFail("batch length \(len) accepted"); continue }
        }
    }

    func testHostileSchemasAreRefused() {
        func schemaBody(_ fields: [[UInt8]], meta: [[UInt8]] = [], nf: UInt32? = nil) -> [UInt8] {
            StreamFormat.headerSignatureTail + le32(1) + le32(nf ?? UInt32(fields.count)) + le32(UInt32(meta.count)) + fields.joined() + meta.joined()
        }
        func field(_ name: String, _ dtype: UInt8, _ dims: [UInt64]) -> [UInt8] {
            [UInt8(name.utf8.count)] + Array(name.utf8) + [dtype, UInt8(dims.count)] + dims.flatMap { le64($0) }
        }
        let cases: [(String, [UInt8])] = [
            ("shape overflow", schemaBody([field("x", 6, [1 << 32, 1 << 32, 2])])),
            ("bytes overflow", schemaBody([field("x", 7, [1 << 61])])),
            ("zero dim", schemaBody([field("x", 1, [3, 0])])),
            ("negative dim", schemaBody([field("x", 1, [UInt64(bitPattern: -5)])])),
            ("rank 9", schemaBody([field("x", 1, [UInt64](repeating: 1, count: 9))])),
            ("unknown dtype", schemaBody([field("x", 99, [1])])),
            ("duplicate field", schemaBody([field("x", 1, [1]), field("x", 1, [1])])),
            ("too many fields", schemaBody([field("x", 1, [1])], nf: 100_000)),
            ("bad name", schemaBody([field("x\u{1B}", 1, [1])])),
            ("invalid utf8 value", schemaBody([field("x", 1, [1])], meta: [[1, 0x6B] + le32(2) + [0xC3, 0x28]])),
            ("trailing bytes", schemaBody([field("x", 1, [1])]) + [0]),
            ("no fields", schemaBody([])),
        ]
        for (what, body) in cases {
            guard case .malformed? = problem(headerRecord(body)) else { XCTFail("\(what): \(String(describing: problem(headerRecord(body))))"); continue }
        }
    }

    func testEndRecordCountMismatchIsRefused() throws {
        let (_, bytes) = try smallStream()
        // Replace the end record with one claiming 8 samples (CRC recomputed).
        var b = Array(bytes.dropLast(64))
        let body = le64(8) + le64(3)
        var c = CRC32()
        c.update(le64(16) + body)
        b += StreamFormat.endTag + le32(c.value) + le64(16) + body + [UInt8](repeating: 0, count: 32)
        guard case .countMismatch? = problem(b) else { XCTFail("wrong end count accepted"); return }
    }

    func testBatchLimitComesFromLimits() throws {
        let (_, bytes) = try smallStream()
        var l = Limits()
        l.maxBatchBytes = 64
        let r = try StreamReader(source: MemorySource(bytes), limits: l)
        XCTAssertThrowsError(try r.next()) { e in
            guard case .recordTooLarge? = (e as? StreamError)?.what else { return XCTFail("\(e)") }
        }
    }

    func testMessagesNamePlaceAndSampleCount() throws {
        let (_, bytes) = try smallStream()
        let cut = Array(bytes.prefix(bytes.count - 70))
        XCTAssertThrowsError(try readAll(cut, name: "train.tns")) { e in
            let s = "\(e)"
            XCTAssertTrue(s.hasPrefix("train.tns: batch 3 at byte"), s)
            XCTAssertTrue(s.contains("no end record after 5 samples"), s)
        }
    }
}
