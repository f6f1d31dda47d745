// augment and fit --stream as a user runs them: same seed same bytes whatever the batching,
// labels travel with their images, --repeat passes differ and are shuffled, stdin and files
// give the same output, refusals; augment --repeat N | fit --stream trains N epochs.

import Foundation
import TensorCore
import TensorStream
import XCTest
import _TestSupport

final class AugmentToolTests: XCTestCase {
    var tmp = ""

    override func setUpWithError() throws {
        tmp = try makeTempDir()
        let r = try sh("tensor-load x=\(testdata("idx/images-u8.idx.gz")) y=\(testdata("idx/labels-u8.idx")) -o \(tmp)/data.tns")
        XCTAssertEqual(r.status, 0, r.stderr)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: tmp) }

    func bytes(_ path: String) throws -> [UInt8] { Array(try Data(contentsOf: URL(fileURLWithPath: path))) }

    let ops = "--hflip 0.5 --vflip 0.2 --shift 3 --rotate 20 --zoom 0.1 --brightness 0.3 --contrast 0.3 --noise 4 --cutout 6 --prob cutout=0.5"

    func testSameSeedSameBytesWhateverTheBatching() throws {
        let a = try sh("augment \(ops) --seed 7 \(tmp)/data.tns")
        XCTAssertEqual(a.status, 0, a.stderr)
        XCTAssertEqual(try sh("augment \(ops) --seed 7 \(tmp)/data.tns").stdout, a.stdout)
        XCTAssertNotEqual(try sh("augment \(ops) --seed 8 \(tmp)/data.tns").stdout, a.stdout, "another seed, other images")
        // The same samples cut into batches of 3, 3 and 4: the same output samples.
        let (schema, _, f) = try readAll(try bytes("\(tmp)/data.tns"))
        let px = 784
        var parts: [(count: Int, fields: [[UInt8]])] = []
        for (lo, hi) in [(0, 3), (3, 6), (6, 10)] {
            let x: [UInt8] = Array(f[0][lo * px..<hi * px]), y: [UInt8] = Array(f[1][lo..<hi])
            parts.append((hi - lo, [x, y]))
        }
        let rebatched = try makeStream(schema, batches: parts)
        let b = try sh("augment \(ops) --seed 7", stdin: rebatched)
        XCTAssertEqual(try readAll(b.stdout).2, try readAll(a.stdout).2)

        let (out, n, g) = try readAll(a.stdout)
        XCTAssertEqual(n, 10)
        XCTAssertEqual(out.fields, schema.fields, "same fields, dtypes and shapes")
        XCTAssertEqual(g[1], f[1], "labels pass through, in order")
        XCTAssertNotEqual(g[0], f[0])
        XCTAssertTrue(out.metadata("augment")?.hasPrefix("hflip p=0.5, vflip p=0.2, shift 3, rotate -20…20") == true, out.metadata("augment") ?? "")
    }

    func testRepeatEmitsFreshShuffledPassesFromFilesAndPipes() throws {
        let file = try sh("augment --shift 2 --repeat 3 --seed 2 \(tmp)/data.tns")
        XCTAssertEqual(file.status, 0, file.stderr)
        let pipe = try sh("cat \(tmp)/data.tns | augment --shift 2 --repeat 3 --seed 2")
        XCTAssertEqual(pipe.status, 0, pipe.stderr)
        XCTAssertEqual(pipe.stdout, file.stdout, "a pipe is spilled and read again: the same output")
        let (_, n, g) = try readAll(file.stdout)
        XCTAssertEqual(n, 30)
        let labels = try readAll(try bytes("\(tmp)/data.tns")).2[1]
        XCTAssertEqual(g[1].sorted(), (labels + labels + labels).sorted(), "every sample three times")
        XCTAssertNotEqual(g[1], labels + labels + labels, "shuffled (a 10000-sample buffer by default with --repeat)")
        // Images differ between passes: the 30 outputs are not 10 images three times over.
        let images = Set((0..<30).map { Array(g[0][$0 * 784..<($0 + 1) * 784]) })
        XCTAssertGreaterThan(images.count, 20)
        // --shuffle 0 keeps the order: pass after pass.
        let ordered = try sh("augment --repeat 2 --shuffle 0 \(tmp)/data.tns")
        XCTAssertEqual(try readAll(ordered.stdout).2[1], labels + labels)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: tmp), ["data.tns"], "nothing left beside the input")
    }

    func testRefusals() throws {
        assertFails(try sh("tensor-load --label species \(testdata("csv/iris-small.csv")) | augment --hflip 0.5"), status: 65,
                    prefix: "augment: stdin: ", contains: "field 'x' is 4: augment needs channels-last images")
        assertFails(try sh("augment --field z \(tmp)/data.tns"), status: 64, prefix: "augment: --field: ")
        for bad in ["--hflip 2", "--prob warp=0.5", "--prob shift=1.5", "--rotate 10,5", "--zoom 0,1", "--noise -1", "--repeat 0", "--shift -1",
                    "--prob rotate=0.5", "--fill 3 --hflip 1"] {
            XCTAssertEqual(try sh("augment \(bad) \(tmp)/data.tns >/dev/null").status, 64, bad)
        }
        // One factor f is the range 1-f…1+f: 1.5 is refused saying f must be below 1.
        assertFails(try sh("augment --zoom 1.5 \(tmp)/data.tns"), status: 64, prefix: "augment: --zoom factors must be > 0: a single f, the range 1-f…1+f, takes f below 1")
        let cut = try sh("head -c 5000 \(tmp)/data.tns | augment --hflip 1 --repeat 2 -o \(tmp)/out.tns")
        assertFails(cut, status: 65, prefix: "augment: stdin: ")
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(tmp)/out.tns"), "no partial output")
        // Extreme but finite angles and zooms are images, not a trap converting to Int: a
        // vanishing zoom samples far off the image, which is the fill.
        for extreme in ["--rotate 1e307", "--zoom 1e300,1e300", "--zoom 1e-18,1e-18"] {
            let r = try sh("augment \(extreme) --fill 7 --seed 1 -o \(tmp)/x.tns \(tmp)/data.tns")
            XCTAssertEqual(r.status, 0, "\(extreme): \(r.stderr)")
        }
        let (_, _, d) = try readAll(try bytes("\(tmp)/x.tns"))
        XCTAssertEqual(Set(d[0]), [7], "--zoom 1e-18: the whole image is the fill")
        // Values pushed past f32's range are refused, not written as infinities.
        for huge in ["--noise 1e308", "--brightness 1e308"] {
            assertFails(try sh("normalize --scale 255 \(tmp)/data.tns | augment \(huge) -o \(tmp)/h.tns"), status: 65, prefix: "augment: stdin: ",
                        contains: "field 'x' sample 0: the augmentation makes a NaN or infinity")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(tmp)/h.tns"))
        // A fill that f32 cannot hold is named as the cause; it was blamed on --brightness.
        assertFails(try sh("normalize --scale 255 \(tmp)/data.tns | augment --fill 1e308 --shift 1 -o \(tmp)/h.tns"), status: 65,
                    prefix: "augment: stdin: field 'x' is f32, which cannot hold --fill 1e+308")
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(tmp)/h.tns"))
        // In an integer field the fill is clamped, as every value is.
        let clamped = try sh("augment --fill 1e308 --shift 1 --seed 3 -o \(tmp)/h.tns \(tmp)/data.tns")
        XCTAssertEqual(clamped.status, 0, clamped.stderr)
        // A range wider than a double holds drew infinite angles: every image was the fill,
        // with status 0.
        for wide in ["--rotate 1e308", "--rotate=-1e308,1e308", "--zoom 1e308"] {
            assertFails(try sh("augment \(wide) \(tmp)/data.tns"), status: 64, prefix: "augment: ", contains: "the range is wider than a double holds")
        }
        // A NaN is refused wherever it is: a cutout that covered it, or a shift that moved it
        // off the image, let it through with status 0.
        let nan = try makeStream(Schema(fields: [Field(name: "x", dtype: .f32, shape: Shape([2, 2]))]),
                                 batches: [(1, [[Float.nan, 1, 2, 3].withUnsafeBytes { Array($0) }])])
        // So it is when nothing happens to the sample, which is copied as it is.
        for op in ["--cutout 4096", "--shift 1 --seed 2", "--hflip 1", "--shuffle 4", "--cutout 3 --prob cutout=0"] {
            assertFails(try sh("augment \(op)", stdin: nan), status: 65, prefix: "augment: stdin: ",
                        contains: "field 'x' sample 0: holds a NaN or infinity, which augment does not take")
        }
    }

    /// --repeat reads a file again through the descriptor it opened: a file renamed over the
    /// path between passes (a Makefile rebuilding it) is not read. It was: the second pass
    /// gave the new file's samples, with status 0.
    func testRepeatReadsTheFileItOpened() throws {
        // 16 MiB of samples: the first pass cannot finish into a pipe nobody reads.
        let schema = Schema(fields: [Field(name: "x", dtype: .u8, shape: Shape([64, 64])), Field(name: "y", dtype: .u8, shape: Shape([]))])
        let n = 4096
        try Data(try makeStream(schema, batches: [(n, [[UInt8](repeating: 9, count: n * 4096), [UInt8](repeating: 1, count: n)])]))
            .write(to: URL(fileURLWithPath: "\(tmp)/big.tns"))
        try Data(try makeStream(schema, batches: [(10, [[UInt8](repeating: 3, count: 10 * 4096), [UInt8](repeating: 2, count: 10)])]))
            .write(to: URL(fileURLWithPath: "\(tmp)/small.tns"))
        let r = try sh("""
            { augment --repeat 2 --shuffle 0 big.tns; echo $? >status; } | { head -c 65536 >part1; mv small.tns big.tns; cat >part2; }
            cat status; cat part1 part2 | tensor-show --count
            """, cwd: tmp)
        XCTAssertEqual(r.stdoutText, "0\n\(2 * n)\n", r.stderr)
    }

    func testAugmentRepeatIntoFitStream() throws {
        XCTAssertEqual(try sh("normalize --scale 255 -o \(tmp)/train.tns \(tmp)/data.tns").status, 0)
        let r = try sh("augment --hflip 0.5 --shift 2 --repeat 3 \(tmp)/train.tns | fit --stream --epoch-size 10 --batch 4 --model mlp --seed 1 --log \(tmp)/log.jsonl -o \(tmp)/m.model")
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stderrLines.count, 3, "a line per 10 samples: \(r.stderr)")
        XCTAssertTrue(r.stderrLines[2].hasPrefix("fit: epoch 3: loss "), r.stderr)
        let log = try String(contentsOfFile: "\(tmp)/log.jsonl", encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(log.count, 3)
        XCTAssertTrue(log[0].contains("\"samples\":10"), String(log[0]))
        let (model, _, _) = try readAll(try bytes("\(tmp)/m.model"))
        XCTAssertEqual(model.metadata("model.epoch"), "3")
        XCTAssertEqual(model.metadata("model.input.normalize"), "scale 255; shift 0; mul 0.00392156862745098; from u8", "the record travels through augment")
        XCTAssertEqual(try sh("predict -m \(tmp)/m.model \(tmp)/data.tns | tensor-show --count").stdoutText, "10\n", "and predict applies it to raw data")
        // A remainder makes a short last epoch.
        let short = try sh("augment --repeat 2 \(tmp)/train.tns | fit --stream --epoch-size 15 --model mlp -o \(tmp)/m2.model")
        XCTAssertEqual(short.stderrLines.count, 2, short.stderr)

        // Options that need the data set in memory are refused; a cut stream writes no model.
        for bad in ["--epochs 2", "--validation-split 0.2"] {
            XCTAssertEqual(try sh("fit --stream \(bad) --model mlp -o \(tmp)/x.model < \(tmp)/train.tns").status, 64, bad)
        }
        XCTAssertEqual(try sh("fit --epoch-size 5 --model mlp -o \(tmp)/x.model < \(tmp)/train.tns").status, 64)
        assertFails(try sh("head -c 20000 \(tmp)/train.tns | fit --stream --model mlp -q -o \(tmp)/x.model"), status: 65, prefix: "fit: stdin: ")
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(tmp)/x.model"))
        assertFails(try sh("tensor-cat --head 0 \(tmp)/train.tns | fit --stream --model mlp -o \(tmp)/x.model"), status: 65, prefix: "fit: stdin: ", contains: "no training samples")
    }
}
