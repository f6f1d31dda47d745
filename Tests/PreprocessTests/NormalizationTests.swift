// normalize's statistics and transforms: standardized output has mean 0 and standard
// deviation 1 per feature and per channel, min–max hits the range, the statistics equal the
// textbook (scikit-learn) definitions, records compose and round-trip, and statistics files
// refuse anything else.

import Preprocess
import TensorCore
import TensorStream
import XCTest
import _TestSupport

final class NormalizationTests: XCTestCase {
    /// A stream of `n` samples of `shape` in batches of `batch` (37), element e of sample k drawn
    /// around a mean and spread that differ per element, from a fixed-seed generator.
    func stream(_ shape: Shape, samples n: Int, dtype: DType = .f32, batch: Int = 37) throws -> (Schema, [UInt8], [[Double]]) {
        let schema = Schema(fields: [Field(name: "x", dtype: dtype, shape: shape), Field(name: "y", dtype: .i64, shape: Shape([]))])
        var rng = SplitMix(seed: 7)
        var rows: [[Double]] = []
        var batches: [(count: Int, fields: [[UInt8]])] = []
        var k = 0
        while k < n {
            let c = min(batch, n - k)
            var xs: [Double] = []
            for _ in 0..<c {
                let row = (0..<shape.count).map { e -> Double in
                    let u = rng.uniform() + rng.uniform() + rng.uniform() - 1.5
                    let v = Double(e % 5) * 20 - 30 + u * Double(e % 7 + 1) * 3
                    return dtype == .u8 ? (v + 128).rounded().clamped(0, 255) : v
                }
                rows.append(row)
                xs += row
            }
            let x: [UInt8] = dtype == .u8 ? xs.map { UInt8($0) } : xs.map { Float($0) }.withUnsafeBytes { Array($0) }
            let y = (0..<c).map { Int64($0) }.withUnsafeBytes { Array($0) }
            batches.append((c, [x, y]))
            k += c
        }
        if dtype == .f32 { rows = rows.map { $0.map { Double(Float($0)) } } }
        return (schema, try makeStream(schema, batches: batches), rows)
    }

    /// Statistics learned from `bytes` and the stream transformed by them, as f64 rows.
    func normalized(_ bytes: [UInt8], _ method: NormalizeMethod, perChannel: Bool, dtype: DType = .f32) throws -> (NormalizeSpec, [[Double]]) {
        var r = try StreamReader(source: MemorySource(bytes, name: "memory"))
        let f = r.schema.field("x")!
        let stats = FieldStatistics(shape: f.shape, perChannel: perChannel)
        while let b = try r.next() { XCTAssertNil(stats.add(b.field(0), dtype: f.dtype, count: b.count)) }
        let spec = stats.spec(method, samples: r.samplesRead)
        r = try StreamReader(source: MemorySource(bytes, name: "memory"))
        let t = try FieldTransform(schema: r.schema, steps: [("x", spec)], dtype: dtype)
        var rows: [[Double]] = []
        while let b = try r.next() {
            let (views, bad) = try t.apply(b, input: "stream")
            XCTAssertNil(bad)
            if views.count > 1 { XCTAssertEqual(Array(views[1]), Array(b.field(1)), "other fields pass through") }
            for k in 0..<b.count {
                rows.append((0..<f.shape.count).map { views[0].baseAddress!.element(k * f.shape.count + $0, dtype) })
            }
        }
        return (spec, rows)
    }

    /// Mean and population standard deviation of each slot (element or channel).
    func moments(_ rows: [[Double]], slots: Int) -> (mean: [Double], std: [Double]) {
        var sum = [Double](repeating: 0, count: slots), n = [Double](repeating: 0, count: slots)
        for r in rows { for (e, v) in r.enumerated() { sum[e % slots] += v; n[e % slots] += 1 } }
        let mean = zip(sum, n).map { $0 / $1 }
        var sq = [Double](repeating: 0, count: slots)
        for r in rows { for (e, v) in r.enumerated() { sq[e % slots] += (v - mean[e % slots]) * (v - mean[e % slots]) } }
        return (mean, zip(sq, n).map { ($0 / $1).squareRoot() })
    }

    func testStandardizedOutputHasMeanZeroAndStdOnePerFeature() throws {
        let (_, bytes, rows) = try stream(Shape([3, 4]), samples: 1000)
        let (spec, out) = try normalized(bytes, .standardize, perChannel: false)
        let (mean, std) = moments(out, slots: 12)
        for e in 0..<12 {
            XCTAssertEqual(mean[e], 0, accuracy: 1e-5, "feature \(e)")
            XCTAssertEqual(std[e], 1, accuracy: 1e-5, "feature \(e)")
        }
        // The learned parameters are the textbook ones: mean and population std (ddof 0), as
        // sklearn.preprocessing.StandardScaler().fit(X) gives in mean_ and scale_.
        let (m, s) = moments(rows, slots: 12)
        for e in 0..<12 {
            XCTAssertEqual(spec.shift[e], m[e], accuracy: 1e-9 * max(1, abs(m[e])))
            XCTAssertEqual(1 / spec.mul[e], s[e], accuracy: 1e-9 * s[e])
        }
        XCTAssertTrue(spec.description.hasPrefix("standardize per-feature over 1000 samples"), spec.description)
    }

    func testStandardizedOutputHasMeanZeroAndStdOnePerChannel() throws {
        for dtype in [DType.f32, .u8] {
            let (_, bytes, _) = try stream(Shape([5, 4, 3]), samples: 300, dtype: dtype)
            let (spec, out) = try normalized(bytes, .standardize, perChannel: true)
            XCTAssertEqual(spec.shift.count, 3, "one parameter per channel")
            let (mean, std) = moments(out, slots: 3)
            for c in 0..<3 {
                XCTAssertEqual(mean[c], 0, accuracy: 1e-5, "\(dtype) channel \(c)")
                XCTAssertEqual(std[c], 1, accuracy: 1e-5, "\(dtype) channel \(c)")
            }
        }
    }

    func testMinMaxMapsEachFeatureOntoTheRange() throws {
        let (_, bytes, _) = try stream(Shape([6]), samples: 400)
        for (lo, hi) in [(0.0, 1.0), (-1.0, 1.0)] {
            let (_, out) = try normalized(bytes, .minmax(lo: lo, hi: hi), perChannel: false, dtype: .f64)
            for e in 0..<6 {
                let col = out.map { $0[e] }
                XCTAssertEqual(col.min()!, lo, accuracy: 1e-12)
                XCTAssertEqual(col.max()!, hi, accuracy: 1e-12)
            }
        }
    }

    func testConstantFeaturesAreCentredNotDividedByZero() throws {
        let schema = Schema(fields: [Field(name: "x", dtype: .f32, shape: Shape([2]))])
        let xs: [Float] = [5, 1, 5, 2, 5, 3]
        let bytes = try makeStream(schema, batches: [(3, [xs.withUnsafeBytes { Array($0) }])])
        let (std, a) = try normalized(bytes, .standardize, perChannel: false)
        XCTAssertEqual(std.mul[0], 1, "a constant feature is only centred (StandardScaler's scale_ = 1)")
        XCTAssertEqual(a.map { $0[0] }, [0, 0, 0])
        let (mm, b) = try normalized(bytes, .minmax(lo: -1, hi: 1), perChannel: false)
        XCTAssertEqual(b.map { $0[0] }, [-1, -1, -1], "a constant feature maps to the range's low end")
        XCTAssertEqual(mm.mul[1], 1)
    }

    /// Data far from zero keeps its spread: the statistics are taken from the first value, and
    /// the transform is computed in f64 and rounded once to the f32 output.
    func testValuesFarFromZeroKeepTheirSpread() throws {
        // Unix timestamps as i64: rounded to f32 before subtracting, all four were 0.
        let schema = Schema(fields: [Field(name: "x", dtype: .i64, shape: Shape([]))])
        let stamps: [Int64] = [1_700_000_000, 1_700_000_010, 1_700_000_020, 1_700_000_030]
        let bytes = try makeStream(schema, batches: [(4, [stamps.withUnsafeBytes { Array($0) }])])
        let (_, std) = try normalized(bytes, .standardize, perChannel: false)
        XCTAssertEqual(std.map { $0[0] }, [-1.3416408, -0.4472136, 0.4472136, 1.3416408].map { Double(Float($0)) })
        let (_, mm) = try normalized(bytes, .minmax(lo: 0, hi: 1), perChannel: false)
        XCTAssertEqual(mm.map { $0[0] }, [0.0, 1.0 / 3, 2.0 / 3, 1].map { Double(Float($0)) })

        // f64 values of 1e39 standardize to f32 (they were refused as out of f32's range).
        let huge = Schema(fields: [Field(name: "x", dtype: .f64, shape: Shape([]))])
        let big = try makeStream(huge, batches: [(3, [[1e39, 2e39, 3e39].withUnsafeBytes { Array($0) }])])
        XCTAssertEqual(try normalized(big, .standardize, perChannel: false).1.map { $0[0] },
                       [-1.5.squareRoot(), 0, 1.5.squareRoot()].map { Double(Float($0)) })

        // 1e12 + noise in chunks: the learned deviation is the textbook one to 1e-12 (summed
        // raw, a chunk's mean carried the rounding of sums near 1e14: an error of 1.6e-5).
        var rng = SplitMix(seed: 3)
        let noise = (0..<1000).map { _ in rng.uniform() + rng.uniform() + rng.uniform() - 1.5 }
        let offset = Schema(fields: [Field(name: "x", dtype: .f64, shape: Shape([]))])
        let values = noise.map { 1e12 + $0 }
        let data = try makeStream(offset, batches: stride(from: 0, to: 1000, by: 37).map { k in
            let part = Array(values[k..<min(k + 37, 1000)])
            return (part.count, [part.withUnsafeBytes { Array($0) }])
        })
        // The differences from 1e12 are exact (Sterbenz), so the reference needs no care.
        let d = values.map { $0 - 1e12 }
        let m = d.reduce(0, +) / 1000
        let sd = (d.map { ($0 - m) * ($0 - m) }.reduce(0, +) / 1000).squareRoot()
        let spec = try normalized(data, .standardize, perChannel: false).0
        XCTAssertEqual(spec.shift[0], 1e12 + m, accuracy: 1e-3)
        XCTAssertEqual(1 / spec.mul[0], sd, accuracy: 1e-12 * sd)
    }

    /// The same samples give the same statistics to the bit however the stream is cut into
    /// batches (`cat a.tns b.tns` against one file): chunks were cut at every batch, and the
    /// shifts came out an ulp apart (helper-45's review).
    func testStatisticsDoNotDependOnWhereBatchesEnd() throws {
        for perChannel in [false, true] {
            for method in [NormalizeMethod.standardize, .minmax(lo: 0, hi: 1)] {
                let specs = try [37, 150, 1000].map { batch in
                    try normalized(try stream(Shape([3, 4]), samples: 1000, batch: batch).1, method, perChannel: perChannel).0
                }
                for s in specs.dropFirst() {
                    XCTAssertEqual(s.shift, specs[0].shift, "\(method), per-channel \(perChannel)")
                    XCTAssertEqual(s.mul, specs[0].mul, "\(method), per-channel \(perChannel)")
                }
            }
        }
    }

    func testSamplesLargerThanAChunkOrATileAreTakenWhole() throws {
        // A sample of 200×200×3 is more values than a chunk of statistics (2 MiB of f64) and
        // than the tile its transform is worked through in (4095 values). Both were one copy
        // of the whole sample, in f64: 1.1 GB of parameters for an image of 8192×8192×1.
        let (_, bytes, rows) = try stream(Shape([200, 200, 3]), samples: 5, batch: 2)
        let (spec, out) = try normalized(bytes, .standardize, perChannel: true)
        let (mean, std) = moments(rows, slots: 3)
        XCTAssertEqual(spec.shift.count, 3)
        for c in 0..<3 {
            XCTAssertEqual(spec.shift[c], mean[c], accuracy: 1e-9 * abs(mean[c]) + 1e-12, "channel \(c)")
            XCTAssertEqual(1 / spec.mul[c], std[c], accuracy: 1e-9 * std[c], "channel \(c)")
        }
        // every element, the last tile's included, by its own channel's parameters
        for (k, row) in out.enumerated() {
            let want = rows[k].enumerated().map { e, x in Double(Float((x - spec.shift[e % 3]) * spec.mul[e % 3])) }
            XCTAssertEqual(row, want, "sample \(k)")
        }
        // a constant over 70×70 (4900 values: a tile and a part)
        let (_, small, values) = try stream(Shape([70, 70]), samples: 3)
        let scaled = try normalized(small, .scale(4), perChannel: false).1
        XCTAssertEqual(scaled, values.map { $0.map { Double(Float($0 / 4)) } })
        // A NaN at the end of the second sample is that sample's, past a chunk's flush.
        let stats = FieldStatistics(shape: Shape([200, 200, 3]), perChannel: true)
        var xs = [Float](repeating: 1, count: 2 * 120_000)
        xs[xs.count - 1] = .nan
        xs.withUnsafeBytes { XCTAssertEqual(stats.add($0, dtype: .f32, count: 2), 1) }
    }

    func testNaNIsReportedWithItsSample() throws {
        let stats = FieldStatistics(shape: Shape([2]), perChannel: false)
        let xs: [Float] = [1, 2, 3, .nan, 5, 6]
        xs.withUnsafeBytes { XCTAssertEqual(stats.add($0, dtype: .f32, count: 3), 1) }
        let inf: [Float] = [1, 2, .infinity, 4]
        let t = try FieldTransform(schema: Schema(fields: [Field(name: "x", dtype: .f32, shape: Shape([2]))]), steps: [("x", .scale(2))])
        let bytes = try makeStream(t.input, batches: [(2, [inf.withUnsafeBytes { Array($0) }])])
        let r = try StreamReader(source: MemorySource(bytes, name: "memory"))
        let bad = try t.apply(try r.next()!, input: "stream").bad
        XCTAssertEqual(bad?.field, 0)
        XCTAssertEqual(bad?.sample, 1)
    }

    func testRecordsComposeIntoOneTransformFromTheRawData() throws {
        let shape = Shape([2, 3])
        let first = NormalizeSpec.scale(255)
        let second = NormalizeSpec(description: "standardize per-channel", shift: [0.1, 0.2, 0.3], mul: [2, 4, 8])
        let both = second.after(first, shape: shape)
        XCTAssertEqual(both.description, "scale 255, then standardize per-channel")
        for x in [0.0, 17, 128, 255] {
            for c in 0..<3 {
                let stepwise = (x * (1.0 / 255) - second.shift[c]) * second.mul[c]
                XCTAssertEqual((x - both.shift[c]) * both.mul[c], stepwise, accuracy: 1e-12)
            }
        }
        // Through the stream: normalize twice, and the record says how to get from u8.
        var schema = Schema(fields: [Field(name: "x", dtype: .u8, shape: shape)])
        let t1 = try FieldTransform(schema: schema, steps: [("x", first)])
        XCTAssertEqual(t1.output.metadata("x.normalize"), "scale 255; shift 0; mul 0.00392156862745098; from u8")
        let t2 = try FieldTransform(schema: t1.output, steps: [("x", second)])
        let record = NormalizeSpec(encoded: t2.output.metadata("x.normalize")!)
        XCTAssertEqual(record?.source, .u8)
        XCTAssertEqual(record?.description, both.description)
        XCTAssertEqual(record?.shift, both.shift)
        XCTAssertEqual(record?.mul, both.mul)
        schema.setMetadata("x.normalize", "something else")
        XCTAssertThrowsError(try FieldTransform(schema: schema, steps: [("x", first)]), "an unreadable record is not silently replaced")
    }

    /// The record travels in one metadata value (1 MiB): a per-feature transform too long for it
    /// is refused where it is made, naming the field and the way out, not when the schema is written.
    func testARecordTooLongForTheStreamIsRefusedWithTheField() throws {
        let n = 30_000
        let values = (0..<n).map { 1 / 3.0 + Double($0) * 1e-9 }  // 17 or 18 digits each
        let spec = NormalizeSpec(description: "standardize per-feature", shift: values, mul: values.map { 1 / $0 })
        let schema = Schema(fields: [Field(name: "x", dtype: .f32, shape: Shape([n]))])
        XCTAssertThrowsError(try FieldTransform(schema: schema, steps: [("x", spec)])) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("field 'x': its normalization record of 30000 features would take"), text)
            XCTAssertTrue(text.contains("normalize it per channel"), text)
        }
        // The same field with short numbers fits, and the record is written.
        let short = NormalizeSpec(description: "standardize per-feature", shift: [Double](repeating: 0.5, count: n),
                                  mul: [Double](repeating: 2, count: n))
        let t = try FieldTransform(schema: schema, steps: [("x", short)])
        XCTAssertEqual(NormalizeSpec(encoded: t.output.metadata("x.normalize")!)?.shift.count, n)
    }

    func testRecordTextRoundTripsExactlyAndRefusesNonsense() {
        let spec = NormalizeSpec(description: "standardize per-feature over 3 samples",
                                 shift: [0.1, -3.25e-7, 1e300, 42], mul: [1 / 3.0, 7, 0.5, 1e-300], source: .f32)
        XCTAssertEqual(NormalizeSpec(encoded: spec.encoded), spec, spec.encoded)
        for bad in ["", "scale 255", "scale 255; shift 0", "scale 255; shift 0; mul 0", "x; shift nan; mul 1",
                    "x; shift 1,2; mul 1", "x; shift 1; mul inf", "x; shift 1; mul 1; from q9", "x; mul 1; shift 1",
                    "x; shift ; mul 1", "x; shift 1; mul 1; from u8; more",
                    // Swift's Double(_:) reads these; a record holds decimal numbers only.
                    "x; shift 0x1p3; mul 1", "x; shift 1; mul 0x10", "x; shift 1; mul 0X1.8P1"] {
            XCTAssertNil(NormalizeSpec(encoded: bad), bad)
        }
    }

    func testStatisticsFileRoundTripsAndRefusesOtherStreams() throws {
        let entry = StatisticsFile.Entry(field: Field(name: "x", dtype: .u8, shape: Shape([2, 2, 3])), input: nil,
                                         step: NormalizeSpec(description: "standardize per-channel over 9 samples", shift: [1, 2, 3], mul: [0.5, 0.25, 2]))
        let sink = MemorySink()
        try StatisticsFile(entries: [entry]).write(to: sink)
        XCTAssertEqual(try StatisticsFile.read(MemorySource(sink.data, name: "s")).entries, [entry])

        let (_, data) = try smallStream()
        XCTAssertThrowsError(try StatisticsFile.read(MemorySource(data, name: "data.tns"))) { e in
            XCTAssertTrue("\(e)".contains("data.tns"), "\(e)")
            XCTAssertTrue("\(e)".contains("not a statistics file"), "\(e)")
        }
        // Parameters that do not fit the field: 2 for 3 channels.
        var s = Schema(fields: [entry.field])
        s.setMetadata("normalize.version", "1")
        s.setMetadata("x.normalize.step", "x; shift 1,2; mul 1,1")
        XCTAssertThrowsError(try StatisticsFile.read(MemorySource(try makeStream(s, batches: []), name: "s")))
    }

    func testSpillFileReadsBackWhatWasWrittenAndLeavesNoName() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        setenv("TMPDIR", dir, 1)
        defer { unsetenv("TMPDIR") }
        let spill = try SpillFile()
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), [], "unlinked at once")
        let (_, data) = try smallStream()
        let w = spill.sink()
        try data.withUnsafeBytes { try w.write($0) }
        try w.flush()
        let (schema, n, _) = try readAll(data)
        let r = try StreamReader(source: try spill.rewound())
        XCTAssertEqual(r.schema, schema)
        while try r.next() != nil {}
        XCTAssertEqual(r.samplesRead, n)
    }
}

/// A small deterministic generator for test data.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func uniform() -> Double { Double(next() >> 11) / Double(1 << 53) }
}

extension Double {
    func clamped(_ lo: Double, _ hi: Double) -> Double { Swift.min(Swift.max(self, lo), hi) }
}
