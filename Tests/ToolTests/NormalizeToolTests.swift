// normalize as a user runs it: statistics learned on training data and applied to other data
// exactly, a stream larger than the process's memory limit, refusals, and the model applying
// its own transform to raw input.

import Foundation
import TensorCore
import TensorStream
import XCTest
import _TestSupport

final class NormalizeToolTests: XCTestCase {
    var tmp = ""
    var images: String { testdata("idx/images-u8.idx.gz") }
    var labels: String { testdata("idx/labels-u8.idx") }

    override func setUpWithError() throws {
        tmp = try makeTempDir()
        let r = try sh("tensor-load x=\(images) y=\(labels) -o \(tmp)/data.tns")
        XCTAssertEqual(r.status, 0, r.stderr)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: tmp) }

    func bytes(_ path: String) throws -> [UInt8] { Array(try Data(contentsOf: URL(fileURLWithPath: path))) }
    func exists(_ path: String) -> Bool { FileManager.default.fileExists(atPath: path) }

    /// The transform a statistics file holds for x.
    func step(_ path: String) throws -> NormalizeSpec {
        let s = try readAll(try bytes(path)).0
        return try XCTUnwrap(NormalizeSpec(encoded: try XCTUnwrap(s.metadata("x.normalize.step"))))
    }

    func floats(_ path: String) throws -> [Float] {
        try readAll(try bytes(path)).2[0].withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    }

    func testLoadAppliesTheTrainingStatisticsToOtherDataExactly() throws {
        // "Training" data: the first 6 images; "test" data: the last 4.
        XCTAssertEqual(try sh("tensor-cat --head 6 -o \(tmp)/train.tns \(tmp)/data.tns").status, 0)
        let (schema0, _, all) = try readAll(try bytes("\(tmp)/data.tns"))
        let lastX: [UInt8] = Array(all[0][(6 * 784)...]), lastY: [UInt8] = Array(all[1][(6 * schema0.fields[1].dtype.size)...])
        try Data(try makeStream(schema0, batches: [(4, [lastX, lastY])])).write(to: URL(fileURLWithPath: "\(tmp)/test.tns"))
        let save = try sh("normalize --standardize --save \(tmp)/s.stats -o \(tmp)/train-std.tns \(tmp)/train.tns")
        XCTAssertEqual(save.status, 0, save.stderr)
        let load = try sh("normalize --load \(tmp)/s.stats -o \(tmp)/test-std.tns \(tmp)/test.tns")
        XCTAssertEqual(load.status, 0, load.stderr)

        // The expected transform, computed here from the raw training pixels: population mean
        // and standard deviation per feature, a constant feature only centred.
        let raw = try readAll(try bytes("\(tmp)/data.tns")).2[0]
        var mean = [Double](repeating: 0, count: 784), std = mean
        for e in 0..<784 {
            let col = (0..<6).map { Double(raw[$0 * 784 + e]) }
            mean[e] = col.reduce(0, +) / 6
            std[e] = (col.map { ($0 - mean[e]) * ($0 - mean[e]) }.reduce(0, +) / 6).squareRoot()
        }
        let test = try floats("\(tmp)/test-std.tns")
        XCTAssertEqual(test.count, 4 * 784)
        for k in 0..<4 {
            for e in 0..<784 {
                let want = (Double(raw[(6 + k) * 784 + e]) - mean[e]) / (std[e] > 0 ? std[e] : 1)
                XCTAssertEqual(Double(test[k * 784 + e]), want, accuracy: 1e-5 * max(1, abs(want)), "sample \(k) feature \(e)")
            }
        }
        // --load on the training data gives the very bytes --save's run wrote.
        XCTAssertEqual(try sh("normalize --load \(tmp)/s.stats -o \(tmp)/again.tns \(tmp)/train.tns").status, 0)
        XCTAssertEqual(try bytes("\(tmp)/again.tns"), try bytes("\(tmp)/train-std.tns"))
        // Labels pass through; the record says what was done, from which raw dtype.
        let (schema, _, fields) = try readAll(try bytes("\(tmp)/test-std.tns"))
        XCTAssertEqual(fields[1], try readAll(try bytes("\(tmp)/test.tns")).2[1])
        let record = try XCTUnwrap(NormalizeSpec(encoded: try XCTUnwrap(schema.metadata("x.normalize"))))
        XCTAssertTrue(record.description.hasPrefix("standardize per-feature over 6 samples"), record.description)
        XCTAssertEqual(record.source, .u8)
    }

    func testPerChannelStatisticsAndMinMax() throws {
        let r = try sh("normalize --minmax --range=-1,1 --per-channel --dtype f64 --save \(tmp)/m.stats -o \(tmp)/m.tns \(tmp)/data.tns")
        XCTAssertEqual(r.status, 0, r.stderr)
        let (schema, n, fields) = try readAll(try bytes("\(tmp)/m.tns"))
        XCTAssertEqual(schema.field("x")?.dtype, .f64)
        let xs = fields[0].withUnsafeBytes { Array($0.bindMemory(to: Double.self)) }
        XCTAssertEqual(xs.count, n * 784)
        XCTAssertEqual(xs.min()!, -1, accuracy: 1e-12)
        XCTAssertEqual(xs.max()!, 1, accuracy: 1e-12)
        XCTAssertEqual(try step("\(tmp)/m.stats").shift.count, 1, "one channel, one parameter")
    }

    func testSaveOnAStreamLargerThanTheMemoryLimit() throws {
        // 27,000 samples of 784 f64 values: 169 MB of stream, for a process limited to 146 MiB
        // of address space. Statistics and the reference come from NumPy.
        let gen = """
            import numpy as np
            rng = np.random.default_rng(1)
            e = np.arange(784)
            x = rng.normal(loc=(e % 7) * 10.0, scale=1.0 + e % 5, size=(27000, 784))
            np.save("big.npy", x)
            np.savetxt("ref.txt", np.stack([x.mean(0), x.std(0)]))
            """
        let g = try sh("python3 -c '\(gen)' && tensor-load x=big.npy -o big.tns && rm big.npy", cwd: tmp)
        XCTAssertEqual(g.status, 0, g.stderr)
        let limitKiB = 150_000
        let size = try XCTUnwrap(try FileManager.default.attributesOfItem(atPath: "\(tmp)/big.tns")[.size] as? Int)
        XCTAssertGreaterThan(size, limitKiB * 1024, "the stream is larger than the memory limit")
        try FileManager.default.createDirectory(atPath: "\(tmp)/spill", withIntermediateDirectories: false)

        let r = try sh("cat big.tns | (ulimit -v \(limitKiB) && TMPDIR=\(tmp)/spill exec normalize --standardize --save s.stats) | wc -c", cwd: tmp)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stderr, "")
        XCTAssertGreaterThan(Int(r.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0, 27000 * 784 * 4, "every sample written")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: "\(tmp)/spill"), [], "no spill file left")
        let ref = try String(contentsOfFile: "\(tmp)/ref.txt", encoding: .utf8).split(separator: "\n")
            .map { $0.split(separator: " ").map { Double($0)! } }
        let s = try step("\(tmp)/s.stats")
        for e in 0..<784 {
            XCTAssertEqual(s.shift[e], ref[0][e], accuracy: 1e-9 * max(1, abs(ref[0][e])), "mean of feature \(e)")
            XCTAssertEqual(1 / s.mul[e], ref[1][e], accuracy: 1e-9 * ref[1][e], "std of feature \(e)")
        }

        // Cut off half way: an error, no statistics file, and still nothing in TMPDIR.
        let cut = try sh("head -c 90000000 big.tns | (ulimit -v \(limitKiB) && TMPDIR=\(tmp)/spill exec normalize --standardize --save cut.stats) >/dev/null", cwd: tmp)
        assertFails(cut, status: 65, prefix: "normalize: stdin: ")
        XCTAssertFalse(exists("\(tmp)/cut.stats"))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: "\(tmp)/spill"), [], "no spill file left after an error")
    }

    func testRefusals() throws {
        XCTAssertEqual(try sh("normalize --standardize --save \(tmp)/s.stats \(tmp)/data.tns >/dev/null").status, 0)
        // Data of another shape, or already normalized otherwise than the statistics' data.
        assertFails(try sh("tensor-load x=\(testdata("npy/f32-2x3x4.npy")) | normalize --load \(tmp)/s.stats"), status: 65,
                    prefix: "normalize: stdin: ", contains: "was learned on u8 28×28×1")
        assertFails(try sh("normalize --scale 255 \(tmp)/data.tns | normalize --load \(tmp)/s.stats"), status: 65,
                    prefix: "normalize: stdin: ", contains: "is f32 28×28×1 but \(tmp)/s.stats was learned on u8")
        assertFails(try sh("normalize --load \(tmp)/data.tns \(tmp)/data.tns"), status: 65,
                    prefix: "normalize: \(tmp)/data.tns: ", contains: "not a statistics file")
        assertFails(try sh("normalize --load \(tmp)/missing.stats \(tmp)/data.tns"), status: 66, prefix: "normalize: \(tmp)/missing.stats: ")
        // Usage.
        for bad in ["--scale 255 --standardize", "", "--scale 0", "--minmax --range 1,0", "--scale 2 --per-channel",
                    "--load \(tmp)/s.stats --field x", "--standardize --dtype u8", "--scale 2 --range 0,2"] {
            XCTAssertEqual(try sh("normalize \(bad) \(tmp)/data.tns >/dev/null").status, 64, bad)
        }
        assertFails(try sh("normalize --scale 255 --field z \(tmp)/data.tns"), status: 64, prefix: "normalize: --field: ")
        // A NaN: exit 65 naming the sample; neither output nor statistics written.
        let xs: [Float] = [1, 2, 3, .nan, 5, 6]
        let nan = try makeStream(Schema(fields: [Field(name: "x", dtype: .f32, shape: Shape([2]))]), batches: [(3, [xs.withUnsafeBytes { Array($0) }])])
        let r = try sh("normalize --standardize --save \(tmp)/n.stats -o \(tmp)/n.tns", stdin: nan)
        assertFails(r, status: 65, prefix: "normalize: stdin: ", contains: "field 'x' sample 1 holds a NaN")
        XCTAssertFalse(exists("\(tmp)/n.stats"))
        XCTAssertFalse(exists("\(tmp)/n.tns"))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: tmp).filter { $0.hasPrefix(".") }, [], "no temporary file left")
        assertFails(try sh("tensor-cat --head 0 \(tmp)/data.tns | normalize --minmax"), status: 65, prefix: "normalize: stdin: ", contains: "no samples")
        // A transform that overflows f32 is refused, not written as infinities. (A --range
        // whose width overflows is refused before reading: EdgeInputTests.)
        assertFails(try sh("normalize --scale 1e-320 -o \(tmp)/o.tns \(tmp)/data.tns"), status: 65, prefix: "normalize: \(tmp)/data.tns: ",
                    contains: "becomes a NaN or infinity under the transform, out of f32's range")
        XCTAssertFalse(exists("\(tmp)/o.tns"))
        // Statistics whose multiplier underflows f32 (learned with --dtype f64) would make every
        // value 0: refused, as --scale 1e300 is.
        XCTAssertEqual(try sh("normalize --scale 1e300 --dtype f64 --save \(tmp)/tiny.stats \(tmp)/data.tns >/dev/null").status, 0)
        assertFails(try sh("normalize --load \(tmp)/tiny.stats -o \(tmp)/o.tns \(tmp)/data.tns"), status: 65,
                    prefix: "normalize: \(tmp)/data.tns: ", contains: "its multiplier 1e-300 underflows f32")
        XCTAssertFalse(exists("\(tmp)/o.tns"))
        // Per-feature statistics of more features than a normalization record holds are refused
        // before the stream is read, pointing at --per-channel (they failed after the whole pass,
        // "cannot write schema").
        let shape = Shape([96, 96, 3])
        let wide = try makeStream(Schema(fields: [Field(name: "x", dtype: .u8, shape: shape)]),
                                  batches: [(2, [(0..<2 * shape.count).map { UInt8($0 % 251) }])])
        for method in ["--standardize", "--minmax"] {
            assertFails(try sh("normalize \(method) -o \(tmp)/o.tns", stdin: wide), status: 64, prefix: "normalize: \(method): ",
                        contains: "field 'x' has 27648 values a sample, and per-feature statistics of more than 20971 do not fit a normalization record; use --per-channel")
            XCTAssertEqual(try sh("normalize \(method) --per-channel -o \(tmp)/o.tns", stdin: wide).status, 0)
        }
    }

    func testDevicesAreWrittenInPlace() throws {
        // -o /dev/null must not rename a file over the device.
        XCTAssertEqual(try sh("normalize --scale 255 -o /dev/null \(tmp)/data.tns").status, 0)
        var st = stat()
        XCTAssertEqual(stat("/dev/null", &st), 0)
        XCTAssertEqual(st.st_mode & S_IFMT, S_IFCHR, "/dev/null is still a device")
        assertFails(try sh("normalize --scale 255 -o \(tmp) \(tmp)/data.tns"), status: 74, prefix: "normalize: \(tmp): ", contains: "directory")
    }

    func testPredictAppliesTheModelsTransformToRawInput() throws {
        XCTAssertEqual(try sh("normalize --standardize --per-channel --save \(tmp)/s.stats -o \(tmp)/std.tns \(tmp)/data.tns").status, 0)
        let fit = try sh("fit --model 'conv 4 3x3 relu; maxpool 2; dense classes' --epochs 1 --batch 5 --seed 1 -q -o \(tmp)/m.model \(tmp)/std.tns")
        XCTAssertEqual(fit.status, 0, fit.stderr)
        let raw = try sh("predict -m \(tmp)/m.model \(tmp)/data.tns | tensor-cat --fields p")
        XCTAssertEqual(raw.status, 0, raw.stderr)
        let loaded = try sh("normalize --load \(tmp)/s.stats \(tmp)/data.tns | predict -m \(tmp)/m.model | tensor-cat --fields p")
        XCTAssertEqual(loaded.status, 0, loaded.stderr)
        XCTAssertEqual(try readAll(raw.stdout).2, try readAll(loaded.stdout).2, "raw input gets exactly the training transform")
        let photo = try sh("tensor-load \(testdata("images/gray-4x3.png")) | predict -m \(tmp)/m.model")
        assertFails(photo, status: 65, prefix: "predict: stdin: ", contains: "the model was trained on")
    }
}
