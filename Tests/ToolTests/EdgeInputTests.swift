// Inputs at the edges of what the stream format allows, from the tenth adversarial review:
// parts of a concatenation that are empty or damaged, a header-only stream whose sample is
// gigabytes, integers that double precision cannot hold, overflowing statistics and metrics,
// names built to be misread, logs that are not fit's, and options that were one check short.

import Foundation
import TensorCore
import TensorStream
import XCTest
import _TestSupport

final class EdgeInputTests: XCTestCase {
    var tmp = ""

    override func setUpWithError() throws { tmp = try makeTempDir() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: tmp) }

    func write(_ b: [UInt8], _ name: String) throws { try Data(b).write(to: URL(fileURLWithPath: "\(tmp)/\(name)")) }
    func bytes<T: Numeric>(_ a: [T]) -> [UInt8] { a.withUnsafeBytes { Array($0) } }

    /// A stream of one field `x` (dtype, per-sample shape) with the given samples' values.
    func stream<T: Numeric>(_ name: String, _ dtype: DType, _ shape: [Int], _ values: [T], count: Int) throws {
        let schema = Schema(fields: [Field(name: "x", dtype: dtype, shape: Shape(shape))])
        try write(try makeStream(schema, batches: count == 0 ? [] : [(count, [bytes(values)])]), name)
    }

    func testAnEmptyPartOfAConcatenationIsAnErrorNamingIt() throws {
        // A producer that died before its header leaves an empty part file; it was skipped
        // without a word unless it came first.
        try stream("a.tns", .f32, [2], [Float(1), 2, 3, 4], count: 2)
        try write([], "empty.tns")
        for cmd in ["tensor-cat a.tns empty.tns -o out.tns", "tensor-show --count a.tns empty.tns", "tensor-cat a.tns empty.tns a.tns -o out.tns"] {
            assertFails(try sh(cmd, cwd: tmp), status: 65, prefix: "\(cmd.prefix { $0 != " " }): empty.tns: empty input, no stream header")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(tmp)/far.tns"))
        // stdin named twice: the second read found it at its end and called it empty.
        assertFails(try sh("tensor-cat - - < a.tns > out.tns", cwd: tmp), status: 64, prefix: "tensor-cat: the input names stdin (-) twice")
        XCTAssertEqual(try sh("tensor-show --count a.tns a.tns", cwd: tmp).stdoutText, "4\n")
    }

    /// A stream `name` of `count` samples: x, f32 [2], and y, u8 labels of classes a, b and c.
    func labelled(_ name: String, count: Int = 30) throws {
        var schema = Schema(fields: [Field(name: "x", dtype: .f32, shape: Shape([2])), Field(name: "y", dtype: .u8, shape: Shape([]))])
        schema.setMetadata("y.classes", "a\nb\nc")
        let x = (0..<2 * count).map { Float($0 % 7) }
        try write(try makeStream(schema, batches: [(count, [bytes(x), (0..<count).map { UInt8($0 % 3) }])]), name)
    }

    func testAnErrorInALaterPartNamesThatFileWithItsOwnOffsets() throws {
        // Parts were read as one byte sequence: an error in b.tns gave the byte offset and
        // stream number within the joined input, and a part cut short ran on into the next.
        try stream("a.tns", .f32, [2], [Float(1), 2, 3, 4], count: 2)
        var bad = Array(try Data(contentsOf: URL(fileURLWithPath: "\(tmp)/a.tns")))
        bad[bad.count - 100] ^= 1  // a payload byte of its one batch
        try write(bad, "bad.tns")
        let alone = try sh("tensor-cat bad.tns -o out.tns", cwd: tmp)
        XCTAssertEqual(alone.status, 65)
        XCTAssertTrue(alone.stderr.hasPrefix("tensor-cat: bad.tns: batch 1 at byte "), alone.stderr)
        for cmd in ["tensor-cat a.tns bad.tns -o out.tns", "tensor-cat a.tns a.tns bad.tns a.tns -o out.tns"] {
            let r = try sh(cmd, cwd: tmp)
            XCTAssertEqual(r.status, 65, cmd)
            XCTAssertEqual(r.stderr, alone.stderr, cmd)
        }
        // A file of two streams keeps its own stream numbers.
        XCTAssertEqual(try sh("cat a.tns bad.tns > two.tns", cwd: tmp).status, 0)
        let two = try sh("tensor-show --count a.tns two.tns", cwd: tmp)
        XCTAssertEqual(two.status, 65)
        XCTAssertTrue(two.stderr.hasPrefix("tensor-show: two.tns: stream 2, batch 1 at byte "), two.stderr)
        // A part that ends inside a record is cut short, not continued by the next file.
        let good = Array(try Data(contentsOf: URL(fileURLWithPath: "\(tmp)/a.tns")))
        try write(Array(good.prefix(good.count - 100)), "cut.tns")
        assertFails(try sh("tensor-cat cut.tns a.tns -o out.tns", cwd: tmp), status: 65,
                    prefix: "tensor-cat: cut.tns: batch 1 at byte ", contains: "no end record after 0 samples (input ends inside batch 1)")
        // A later part that is no stream, or another schema, is named with what it is.
        try write(Array("id,x\n1,2\n".utf8), "rows.csv")
        assertFails(try sh("tensor-show --count a.tns rows.csv", cwd: tmp), status: 65, prefix: "tensor-show: rows.csv: not a tensor stream (looks like")
        try stream("i.tns", .i32, [2], [Int32(1), 2], count: 1)
        assertFails(try sh("tensor-show --count a.tns i.tns", cwd: tmp), status: 65, prefix: "tensor-show: i.tns: stream 1: does not match stream 1 of a.tns: ")
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(tmp)/far.tns"))
    }

    func testAShortOptionTakesItsValueAttachedAsGetoptReadsIt() throws {
        try stream("a.tns", .f32, [2], [Float(1), 2, 3, 4], count: 2)
        // `-n1` got "unknown option '-n1'; or: Missing value for '-n <count>'".
        let attached = try sh("tensor-show -n1 a.tns", cwd: tmp)
        XCTAssertEqual(attached.status, 0, attached.stderr)
        XCTAssertEqual(attached.stdoutText, try sh("tensor-show -n 1 a.tns", cwd: tmp).stdoutText)
        XCTAssertEqual(try sh("tensor-cat -oout.tns a.tns && tensor-show --count out.tns", cwd: tmp).stdoutText, "2\n")
        assertFails(try sh("tensor-show -n-1 a.tns", cwd: tmp), status: 64, prefix: "tensor-show: -n -1: a negative number is not a value of -n")
        // Given twice, a one-value option takes the last (README, Conventions), in any form.
        XCTAssertEqual(try sh("tensor-show -n 2 -n1 a.tns", cwd: tmp).stdoutText, attached.stdoutText)
        XCTAssertEqual(try sh("tensor-cat --head=1 --head 2 a.tns | tensor-show --count", cwd: tmp).stdoutText, "2\n")
        // A flag's letter is no option that takes a value: -q stays -q.
        assertFails(try sh("score -qx a.tns", cwd: tmp), status: 64, prefix: "score: ")
        // An option that takes a value takes the next word, or the rest of its own, even when
        // it begins with a dash; flags may come first (-qo). ArgumentParser said "missing
        // value" for all three.
        try labelled("three.tns")
        let dashes = try sh("tensor-cat -o -dash.tns a.tns && tensor-cat -o-attached.tns a.tns && fit -qo-m.model --model 'dense classes' --epochs 1 three.tns", cwd: tmp)
        XCTAssertEqual(dashes.status, 0, dashes.stderr)
        for f in ["-dash.tns", "-attached.tns", "-m.model"] { XCTAssertTrue(FileManager.default.fileExists(atPath: "\(tmp)/\(f)"), f) }
        // …unless the word is one of the tool's options: then the value is missing.
        assertFails(try sh("tensor-cat -o --head 1 a.tns", cwd: tmp), status: 64, prefix: "tensor-cat: missing value for '-o <file>'")
        // A negative number is a value, checked as the option checks it; a range that starts
        // below 0 needed --range=-1,1.
        assertFails(try sh("tensor-cat --head -3 a.tns", cwd: tmp), status: 64, prefix: "tensor-cat: --head takes a count ≥ 0")
        let range = try sh("normalize --minmax --range -1,1 a.tns | tensor-show --csv", cwd: tmp)
        XCTAssertEqual(range.stdoutText, "x_0,x_1\n-1.0,-1.0\n1.0,1.0\n", range.stderr)
    }

    func testAnEmptyValueAfterAnEqualsSignIsEmptyNotTheNextWord() throws {
        // `--output=` (an unset variable in a script) took the next word for the output, and
        // an input was replaced: by another's copy, by predictions, by an archive.
        try stream("a.tns", .f32, [2, 1], [Float(1), 2, 3, 4], count: 2)
        try stream("b.tns", .f32, [2, 1], [Float(5), 6], count: 1)
        let before = Array(try Data(contentsOf: URL(fileURLWithPath: "\(tmp)/a.tns")))
        for cmd in ["tensor-cat --output= a.tns b.tns", "tensor-show --npz= a.tns < b.tns", "normalize --scale 2 --output= a.tns < b.tns",
                    "augment --hflip 1 --output= a.tns < b.tns"] {
            assertFails(try sh(cmd, cwd: tmp), status: 64, prefix: "\(cmd.prefix { $0 != " " }): ", contains: "an empty name for an output file")
        }
        XCTAssertEqual(Array(try Data(contentsOf: URL(fileURLWithPath: "\(tmp)/a.tns"))), before)
        // Every other option gets the empty value and says what it takes.
        assertFails(try sh("tensor-cat --fields= a.tns", cwd: tmp), status: 64, prefix: "tensor-cat: --fields takes a comma-separated list of names")
        // …and a list with an empty name in it was taken without that name.
        assertFails(try sh("tensor-cat --fields x, a.tns", cwd: tmp), status: 64, prefix: "tensor-cat: --fields 'x,' has an empty name")
    }

    func testStandardInputNamedForTwoInputsIsAUsageError() throws {
        // The first reader took all of stdin and the second blamed valid data: "empty input",
        // "architecture file larger than 64 KiB", "not a model file".
        try labelled("a.tns")
        let fit = try sh("fit --model 'dense classes' --epochs 1 -q -o m.model a.tns", cwd: tmp)
        XCTAssertEqual(fit.status, 0, fit.stderr)
        let cases = [("predict -m - < m.model", "predict: -m and the input cannot both be stdin (-)"),
                     ("normalize --load - < a.tns", "normalize: --load and the input cannot both be stdin (-)"),
                     ("score --fit-log - --report r.svg < a.tns", "score: --fit-log and the input cannot both be stdin (-)"),
                     ("tensor-show - a.tns - < a.tns", "tensor-show: the input names stdin (-) twice")]
        for (cmd, message) in cases {
            assertFails(try sh(cmd, cwd: tmp), status: 64, prefix: message)
        }
    }

    func testPNGOfNoSamplesNamesTheInput() throws {
        try stream("img.tns", .u8, [2, 2], [UInt8](), count: 0)
        assertFails(try sh("tensor-show --png g.png img.tns", cwd: tmp), status: 65, prefix: "tensor-show: img.tns: the stream has no samples to draw")
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(tmp)/g.png"))
    }

    func testALogThatIsNotFitsIsRefusedSayingWhy() throws {
        // A number beyond a double read as "not a JSON object"; true was drawn as 1; a string
        // where a figure belongs vanished from the curve.
        let logs = [("{\"epoch\":1,\"loss\":1e400}", "line 1: 1e400 is beyond the range of a number"),
                    ("{\"epoch\":1,\"loss\":0.5}\n{\"epoch\":2,\"loss\":true}", "line 2: \"loss\" is not a number"),
                    ("{\"epoch\":1,\"loss\":0.5,\"val_accuracy\":\"0.9\"}", "line 1: \"val_accuracy\" is not a number"),
                    ("{\"epoch\":true,\"loss\":0.5}", "line 1: no integer \"epoch\""),
                    ("{\"epoch\":1,", "line 1: not JSON (fit --log"), ("[1]", "line 1: not a JSON object"),
                    ("1", "line 1: not a JSON object")]
        for (text, why) in logs {
            try write(Array((text + "\n").utf8), "log.jsonl")
            assertFails(try sh("score --no-input --fit-log log.jsonl --report r.svg", cwd: tmp), status: 65, prefix: "score: log.jsonl: \(why)")
        }
        // fit writes null for a NaN, and keys it does not draw may hold anything.
        try write(Array("{\"epoch\":1,\"loss\":null,\"accuracy\":0.5,\"note\":\"x\"}\n".utf8), "log.jsonl")
        XCTAssertEqual(try sh("score --no-input --fit-log log.jsonl --report r.svg", cwd: tmp).status, 0)
        // --target, like the other options about the stream, does not go with --no-input.
        assertFails(try sh("score --no-input --target z --fit-log log.jsonl --report r.svg", cwd: tmp), status: 64,
                    prefix: "score: --target does not go with --no-input")
    }

    func testOutputsThatCouldNotBeWhatWasMeantAreRefused() throws {
        // A softmax over the one output of a binary classifier is always 1: every prediction
        // was p = 0.73, with status 0. A sigmoid (or tanh) before a classifier's softmax kept
        // every probability under 0.23 for ten classes.
        let v = (0..<80).map { Float($0 % 5) }
        let schema = Schema(fields: [Field(name: "x", dtype: .f32, shape: Shape([2])), Field(name: "y", dtype: .u8, shape: Shape([]))])
        try write(try makeStream(schema, batches: [(40, [bytes(v), (0..<40).map { UInt8($0 % 2) }])]), "bin.tns")
        try labelled("three.tns")
        let cases = [("--loss bce --model 'dense 8 relu; dense 1 softmax' bin.tns", "layer 'softmax': a softmax over one value is always 1"),
                     ("--loss bce --model 'dense 8 relu; dense 1 tanh' bin.tns", "layer 'tanh': tanh before the loss's own sigmoid bounds the outputs"),
                     ("--model 'dense 8 relu; dense classes sigmoid' three.tns", "layer 'sigmoid': sigmoid before the loss's own softmax bounds the outputs"),
                     ("--model 'lstm 4 sequences sequences; dense classes' three.tns", "'sequences' given twice for lstm")]
        for (args, words) in cases {
            assertFails(try sh("fit --epochs 1 -q -o m.model \(args)", cwd: tmp), status: 65, prefix: "fit: ", contains: words)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(tmp)/m.model"))
        // What the task fuses is still taken, and a regression may end in anything.
        for args in ["--loss bce --model 'dense 8 relu; dense 1 sigmoid' bin.tns", "--model 'dense 8 relu; dense classes softmax' three.tns",
                     "--loss mse --model 'dense 8 relu; dense 1 sigmoid' bin.tns"] {
            let r = try sh("fit --epochs 1 -q -o m.model \(args)", cwd: tmp)
            XCTAssertEqual(r.status, 0, "\(args): \(r.stderr)")
        }
        // An architecture file saved with a byte-order mark reads as without it.
        try write([0xEF, 0xBB, 0xBF] + Array("dense 8 relu\ndense classes\n".utf8), "arch.txt")
        let bom = try sh("fit --model arch.txt --epochs 1 -q -o m.model three.tns", cwd: tmp)
        XCTAssertEqual(bom.status, 0, bom.stderr)
    }

    func testAnArrayLargerThanTheMemoryLimitIsRefusedNotATrap() throws {
        // A 300 MiB array in a 300 KB .npy.gz: under a 400 MB address-space limit the reader
        // grew its buffer until an allocation failed, and Swift trapped (134, "Fatal error").
        // Now the room is checked (once 64 MiB have arrived, and before the batch buffers are
        // made): one line, status 70, no output.
        // (Left out by scripts/sanitize: sanitizers cannot live under `ulimit -v`.)
        let n = 300 << 20
        try Data(npyHeader(descr: "|u1", shape: [1, n])).write(to: URL(fileURLWithPath: "\(tmp)/h.npy"))
        XCTAssertEqual(try sh("(cat h.npy; head -c \(n) /dev/zero) | gzip -1 > big.npy.gz", cwd: tmp).status, 0)
        let r = try sh("ulimit -v 400000 && timeout 60 tensor-load -o big.tns big.npy.gz", cwd: tmp)
        // The array fits; the batch to write it through, beside it, does not.
        assertFails(r, status: 70, prefix: "tensor-load: big.npy.gz: needs 315 MB of memory", contains: "this process may use")
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(tmp)/big.tns"))
        // Without the limit it reads.
        XCTAssertEqual(try sh("tensor-load big.npy.gz | tensor-show --count", cwd: tmp).stdoutText, "1\n")
    }

    func testAResizeLargerThanTheMemoryLimitIsRefusedNotATrap() throws {
        // A gray PNG one pixel wide and 100000 tall (a few hundred bytes) grown to 16384×16384:
        // between the passes, 100000 rows of 16384 (1.6 GB). Under a 1 GB address-space limit
        // that was an allocation trap; now one line and 70.
        // (Left out by scripts/sanitize: sanitizers cannot live under `ulimit -v`.)
        let make = """
            python3 -c 'import struct, sys, zlib
            def chunk(k, d): return struct.pack(">I", len(d)) + k + d + struct.pack(">I", zlib.crc32(k + d))
            raw = b"\\x00\\x80" * 100000
            sys.stdout.buffer.write(b"\\x89PNG\\r\\n\\x1a\\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 100000, 8, 0, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))' > tall.png
            """
        XCTAssertEqual(try sh(make, cwd: tmp).status, 0)
        XCTAssertEqual(try sh("tensor-load tall.png | tensor-show", cwd: tmp).stdoutText.contains("100000×1×1"), true)
        let r = try sh("ulimit -v 1000000 && timeout 60 tensor-load --resize 16384x16384 -o big.tns tall.png", cwd: tmp)
        assertFails(r, status: 70, prefix: "tensor-load: tall.png: needs 1.9 GB of memory to resize 1×100000 to 16384×16384", contains: "this process may use")
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(tmp)/big.tns"))
    }

    func testAnImageLargerThanTheMemoryLimitIsRefusedNotATrap() throws {
        // A valid 8192×8192 gray PNG (64 MiB of pixels in 65 KB) and a JPEG of 6000×6000:
        // under a 200 MB address-space limit the decoders' buffers failed to allocate and Swift
        // trapped (134, "Fatal error"); the resize path already said 70. Now decoding asks too.
        // (Left out by scripts/sanitize: sanitizers cannot live under `ulimit -v`.)
        let make = """
            python3 -c 'import struct, sys, zlib
            def chunk(k, d): return struct.pack(">I", len(d)) + k + d + struct.pack(">I", zlib.crc32(k + d))
            raw = (b"\\x00" + b"\\x80" * 8192) * 8192
            sys.stdout.buffer.write(b"\\x89PNG\\r\\n\\x1a\\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 8192, 8192, 8, 0, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))' > big.png
            /usr/bin/python3 -c 'from PIL import Image; Image.new("RGB", (6000, 6000), (10, 200, 30)).save("big.jpg", quality=90)'
            """
        XCTAssertEqual(try sh(make, cwd: tmp).status, 0)
        for (file, size) in [("big.png", "8192×8192"), ("big.jpg", "6000×6000")] {
            let r = try sh("ulimit -v 200000 && timeout 60 tensor-load -o big.tns \(file)", cwd: tmp)
            assertFails(r, status: 70, prefix: "tensor-load: \(file): needs ", contains: "of memory to decode a \(size) image, more than the ")
            XCTAssertFalse(FileManager.default.fileExists(atPath: "\(tmp)/big.tns"))
        }
        // Without the limit they load.
        XCTAssertTrue(try sh("tensor-load big.png | tensor-show -n 0", cwd: tmp).stdoutText.contains("x  u8  8192×8192×1"))
    }

    func testJPEGsWithStrayBytesBeforeTheirEndAreLoadedWithOneWarning() throws {
        // A photo folder where some files carry bytes after their last scan (as some cameras
        // leave them) was refused whole, though PIL reads them: now they load, and one line
        // after the stream names the first and counts the others.
        let make = """
            mkdir -p pets/cats pets/dogs && cp \(testdata("images/saturated-16x16.jpg")) pets/cats/0.jpg
            /usr/bin/python3 -c 'import sys; d = open(sys.argv[1], "rb").read(); [open(p, "wb").write(d[:-2] + b"*" * 16 + d[-2:]) for p in sys.argv[2:]]' pets/cats/0.jpg pets/cats/1.jpg pets/dogs/0.jpg pets/dogs/1.jpg
            """
        XCTAssertEqual(try sh(make, cwd: tmp).status, 0)
        let r = try sh("tensor-load -o pets.tns pets; echo $?; tensor-show --count pets.tns", cwd: tmp)
        XCTAssertEqual(r.stdoutText, "0\n4\n")
        XCTAssertEqual(r.stderrLines.count, 1, r.stderr)
        XCTAssertTrue(r.stderr.hasPrefix("tensor-load: warning: pets/cats/1.jpg: Corrupt JPEG data: "), r.stderr)
        XCTAssertTrue(r.stderr.hasSuffix("extraneous bytes before marker 0xd9, skipped as Pillow skips them (and 2 more images like it)\n"), r.stderr)
        // The same pixels as the file without them, and one file alone warns too.
        let one = try sh("tensor-load pets/cats/1.jpg | tensor-show --csv", cwd: tmp)
        XCTAssertEqual(one.stdoutText, try sh("tensor-load pets/cats/0.jpg | tensor-show --csv", cwd: tmp).stdoutText)
        XCTAssertEqual(one.stderrLines.count, 1, one.stderr)
        XCTAssertTrue(one.stderr.hasPrefix("tensor-load: warning: pets/cats/1.jpg: Corrupt JPEG data: ") && one.stderr.hasSuffix("skipped as Pillow skips them\n"), one.stderr)
        // A file cut short is refused as before, and nothing is written.
        XCTAssertEqual(try sh("head -c 400 pets/cats/0.jpg > pets/cats/2.jpg", cwd: tmp).status, 0)
        assertFails(try sh("tensor-load -o cut.tns pets", cwd: tmp), status: 65, prefix: "tensor-load: pets/cats/2.jpg: bad JPEG: ")
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(tmp)/cut.tns"))
    }

    func testAPNGThatCannotHoldItsPixelsIsRefusedBeforeAllocatingThem() throws {
        // 69 bytes declaring 8192×8192 16-bit RGBA: 512 MiB were allocated and zeroed before
        // the missing data was noticed. Deflate shrinks at most 1032 times, so such a file is
        // damaged on its face (65).
        let make = """
            python3 -c 'import struct, sys, zlib
            def chunk(k, d): return struct.pack(">I", len(d)) + k + d + struct.pack(">I", zlib.crc32(k + d))
            sys.stdout.buffer.write(b"\\x89PNG\\r\\n\\x1a\\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 8192, 8192, 16, 6, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(b"\\x00" * 64)) + chunk(b"IEND", b""))' > lie.png
            """
        XCTAssertEqual(try sh(make, cwd: tmp).status, 0)
        assertFails(try sh("tensor-load -o lie.tns lie.png", cwd: tmp), status: 65,
                    prefix: "tensor-load: lie.png: PNG of 8192×8192 pixels cannot be held in ", contains: "truncated or damaged")
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(tmp)/lie.tns"))
    }

    func testDamageAfterOrBesideThePixelsOfAPNGIsRefused() throws {
        // A tRNS chunk failing its CRC was dropped with a warning no one saw (a palette image
        // with transparency read as RGB, status 0); so were a damaged gAMA, and everything after
        // the pixels: a file cut before IEND loaded. Pillow refuses the first two as well.
        let make = """
            python3 -c 'import struct, sys, zlib
            def chunk(k, d, bad=False): return struct.pack(">I", len(d)) + k + d + struct.pack(">I", zlib.crc32(k + d) ^ (1 if bad else 0))
            head = b"\\x89PNG\\r\\n\\x1a\\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 1, 8, 3, 0, 0, 0)) + chunk(b"PLTE", bytes([255, 0, 0, 0, 0, 255]))
            pixels = chunk(b"IDAT", zlib.compress(b"\\x00\\x00\\x01")) + chunk(b"IEND", b"")
            open("ok.png", "wb").write(head + chunk(b"tRNS", bytes([128, 255])) + pixels)
            open("trns.png", "wb").write(head + chunk(b"tRNS", bytes([128, 255]), bad=True) + pixels)
            open("gama.png", "wb").write(head + chunk(b"gAMA", struct.pack(">I", 45455), bad=True) + pixels)
            open("cut.png", "wb").write((head + pixels)[:-6])'
            """
        XCTAssertEqual(try sh(make, cwd: tmp).status, 0)
        XCTAssertTrue(try sh("tensor-load ok.png | tensor-show -n 0", cwd: tmp).stdoutText.contains("x  u8  1×2×4"))
        for (file, problem) in [("trns.png", "bad PNG: tRNS: CRC error"), ("gama.png", "bad PNG: gAMA: CRC error"), ("cut.png", "bad PNG: ")] {
            assertFails(try sh("tensor-load -o out.tns \(file)", cwd: tmp), status: 65, prefix: "tensor-load: \(file): \(problem)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: "\(tmp)/far.tns"))
        }
    }

    func testAPNGGridTakesAboutTwiceTheBytesItDraws() throws {
        // 64 tiles of 512×512×4 u8 (64 MiB, random so the PNG does not shrink): each sample was
        // kept as Doubles and copied again for the min/max, 1.15 GB at the peak, an allocation
        // trap (134) under a 500 MB address-space limit. Now each sample is kept as its bytes,
        // let go as its pixels are laid out, and the PNG is not copied: about 160 MB.
        // (Left out by scripts/sanitize: sanitizers cannot live under `ulimit -v`.)
        let make = "python3 -c \"import numpy as np; np.save('t.npy', np.random.default_rng(0).integers(0, 256, (64, 512, 512, 4), dtype=np.uint8))\" && tensor-load t.npy -o t.tns"
        XCTAssertEqual(try sh(make, cwd: tmp).status, 0)
        let r = try sh("ulimit -v 500000 && timeout 120 tensor-show --png g.png t.tns", cwd: tmp)
        XCTAssertEqual(r.status, 0, r.stderr)
        // 8×8 tiles of 512 with 1-pixel gaps: 8·513+1 = 4105.
        XCTAssertTrue(try sh("tensor-load g.png | tensor-show -n 0", cwd: tmp).stdoutText.contains("x  u8  4105×4105×4"))
        // With too little memory for the grid, a refusal naming the need (it trapped, 134), and
        // no file; more tiles than a grid holds (1 GiB of pixels) are a usage error.
        let low = try sh("ulimit -v 200000 && timeout 120 tensor-show --png low.png t.tns", cwd: tmp)
        assertFails(low, status: 70, prefix: "tensor-show: t.tns: needs ", contains: "this process may use")
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(tmp)/low.png"))
        assertFails(try sh("tensor-show --png many.png -n 2000 t.tns", cwd: tmp), status: 64,
                    prefix: "tensor-show: -n: 2000 tiles of 512×512×4 are more than a grid holds (1 GiB of pixels)")
    }

    func testAnArgumentThatIsNotUTF8IsRefused() throws {
        // Arguments were decoded with U+FFFD: an input of such a name was "No such file" (66),
        // and -o o\xff.tns wrote o\u{FFFD}.tns, another file, with status 0.
        try write(try makeStream(Schema(fields: [Field(name: "x", dtype: .f32, shape: Shape([1]))]), batches: [(1, [[UInt8](repeating: 0, count: 4)])]), "in.tns")
        assertFails(try sh("tensor-load --text \"$(printf 'n\\377.tsv')\"", cwd: tmp), status: 64,
                    prefix: "tensor-load: argument 2 'n\\xff.tsv' is not valid UTF-8; the tools take UTF-8 names")
        assertFails(try sh("normalize --scale 2 -o \"$(printf 'o\\377.tns')\" in.tns", cwd: tmp), status: 64,
                    prefix: "normalize: argument 4 'o\\xff.tns' is not valid UTF-8")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: tmp), ["in.tns"], "no file written")
        // Valid UTF-8 beyond ASCII is a name like any other.
        XCTAssertEqual(try sh("normalize --scale 2 -o 'é.tns' in.tns && tensor-show --count 'é.tns'", cwd: tmp).stdoutText, "1\n")
    }

    func testARecordLargerThanTheMemoryLeftIsRefusedNotATrap() throws {
        // One batch of 160 MiB under a 200 MB address-space limit: the reader's buffer could
        // not grow, and the allocation trapped (134).
        // (Left out by scripts/sanitize: sanitizers cannot live under `ulimit -v`.)
        let schema = Schema(fields: [Field(name: "x", dtype: .u8, shape: Shape([1024, 1024]))])
        try Data(try makeStream(schema, batches: [(160, [[UInt8](repeating: 7, count: 160 << 20)])]))
            .write(to: URL(fileURLWithPath: "\(tmp)/one.tns"))
        let r = try sh("ulimit -v 200000 && tensor-show --count one.tns", cwd: tmp)
        assertFails(r, status: 70, prefix: "tensor-show: one.tns: ", contains: "of memory to read a record, more than the")
        XCTAssertEqual(try sh("tensor-show --count one.tns", cwd: tmp).stdoutText, "160\n")
    }

    func testAHeaderOnlyStreamOfAHugeSampleAllocatesNothing() throws {
        // A valid stream of no samples whose sample is 46340×46340 bytes (2 GiB): augment,
        // normalize and tensor-show --csv allocated (and zero-filled) 16–34 GiB before any data
        // came, and trapped (134) under an address-space limit.
        // (Left out by scripts/sanitize: sanitizers cannot live under `ulimit -v`.)
        try stream("huge.tns", .u8, [46340, 46340], [UInt8](), count: 0)
        func limited(_ cmd: String) throws -> RunResult { try sh("ulimit -v 4000000 && timeout 60 \(cmd)", cwd: tmp) }
        let a = try limited("augment --hflip 1 huge.tns -o out.tns")
        XCTAssertEqual(a.status, 0, a.stderr)
        XCTAssertEqual(try sh("tensor-show --count out.tns", cwd: tmp).stdoutText, "0\n")
        assertFails(try limited("normalize --standardize --per-channel huge.tns -o n.tns"), status: 65,
                    prefix: "normalize: huge.tns: no samples to learn statistics from")
        // Per feature, such a sample is refused before anything is read (NormalizeToolTests).
        assertFails(try limited("normalize --standardize huge.tns -o n.tns"), status: 64, prefix: "normalize: --standardize: field 'x' has 2147395600 values")
        assertFails(try limited("tensor-show --csv huge.tns"), status: 65,
                    prefix: "tensor-show: huge.tns: a sample has 2147395600 values: more than the 16777216 columns --csv writes")
        // A 256 MiB sample whose f32 output fits the format: --scale's per-element shift and
        // mul (6 GiB in f32 and f64) are made with the first batch, so none are made.
        try stream("wide.tns", .u8, [16384, 16384], [UInt8](), count: 0)
        let n = try limited("normalize --scale 255 wide.tns -o n.tns")
        XCTAssertEqual(n.status, 0, n.stderr)
        XCTAssertEqual(try sh("tensor-show --count n.tns", cwd: tmp).stdoutText, "0\n")
    }

    func testAugmentRefusesWhatDoublePrecisionCannotCarryAndNamesNaNInTheInput() throws {
        // i64 went through Double: a flip changed 2^63 − 1 and 2^53 + 1, with status 0.
        try stream("big.tns", .i64, [1, 2], [5, (1 << 53) + 1] as [Int64], count: 1)
        assertFails(try sh("augment --hflip 1 big.tns -o out.tns", cwd: tmp), status: 65,
                    prefix: "augment: big.tns: field 'x' sample 0: i64 value 9007199254740993 is beyond ±2^53")
        try stream("ok.tns", .i64, [1, 2], [-(1 << 53), 1 << 53] as [Int64], count: 1)
        let ok = try sh("augment --hflip 1 ok.tns | tensor-show --csv", cwd: tmp)
        XCTAssertEqual(ok.stdoutText, "x_0,x_1\n9007199254740992,-9007199254740992\n", ok.stderr)
        // Integers are clamped to i64's own range (it was ±9.2e18): a brightness factor in the
        // thousands takes ±2^53 past it.
        let clamped = try sh("augment --brightness 1e6 --seed 1 ok.tns | tensor-show --csv", cwd: tmp)
        XCTAssertEqual(clamped.stdoutText, "x_0,x_1\n-9223372036854775808,9223372036854774784\n", clamped.stderr)
        // A NaN in the input was blamed on --brightness, --contrast or --noise, none given.
        try stream("nan.tns", .f32, [1, 2], [1, 2, .nan, 4] as [Float], count: 2)
        assertFails(try sh("augment --hflip 1 nan.tns -o out.tns", cwd: tmp), status: 65,
                    prefix: "augment: nan.tns: field 'x' sample 1: holds a NaN or infinity, which augment does not take")
    }

    func testNormalizeCentresConstantFeaturesAndRefusesOverflowAndUnderflow() throws {
        // Constant f64 columns: summing in chunks left a variance of ~1e-33, and
        // --standardize multiplied it into values near ±1 instead of only centring them.
        var v: [Double] = []
        for i in 0..<1000 { v += [0.1, 0.7, 1.0 / 3, Double(i)] }
        try stream("const.tns", .f64, [4], v, count: 1000)
        let s = try sh("normalize --standardize --dtype f64 const.tns | tensor-show --csv", cwd: tmp)
        XCTAssertEqual(s.status, 0, s.stderr)
        for row in s.stdoutText.split(separator: "\n").dropFirst() {
            let x = row.split(separator: ",").compactMap { Double($0) }
            XCTAssertEqual(x.count, 4)
            for c in 0..<3 { XCTAssertLessThan(abs(x[c]), 1e-12, "\(row)") }
        }
        // A variance that overflows (±1e308) was taken for a constant feature, with status 0.
        try stream("huge.tns", .f64, [1], [1e308, -1e308, 1e308], count: 3)
        // It is named as the variance (or the range) that overflows, not as a sample.
        assertFails(try sh("normalize --standardize --dtype f64 huge.tns -o out.tns", cwd: tmp), status: 65,
                    prefix: "normalize: huge.tns: field 'x': its variance overflows f64 (values beyond about ±1.3e154)")
        assertFails(try sh("normalize --minmax --dtype f64 huge.tns -o out.tns", cwd: tmp), status: 65,
                    prefix: "normalize: huge.tns: field 'x': its range overflows f64 (values beyond about ±9e307)")
        // --scale whose reciprocal is 0 in f32 made every value 0, with status 0.
        try stream("small.tns", .f32, [1], [Float(1), 2], count: 2)
        assertFails(try sh("normalize --scale 1e300 small.tns -o out.tns", cwd: tmp), status: 64,
                    prefix: "normalize: --scale 1e+300: every value would become 0 in f32 (1/1e+300 underflows); use --dtype f64")
        XCTAssertEqual(try sh("normalize --scale 1e300 --dtype f64 small.tns -o out.tns", cwd: tmp).status, 0)
        // A negative scale reads as a number, not as an option.
        let neg = try sh("normalize --scale -2 small.tns | tensor-show --csv", cwd: tmp)
        XCTAssertEqual(neg.stdoutText, "x_0\n-0.5\n-1.0\n", neg.stderr)
        // --range: a trailing comma, or a width that overflows, is a usage error.
        for r in ["0,1,", "-1e308,1e308"] {
            assertFails(try sh("normalize --minmax --range=\(r) small.tns", cwd: tmp), status: 64, prefix: "normalize: --range takes LO,HI with LO < HI")
        }
        // A range far from zero maps in f64. The shift was computed as lo · range first, which
        // overflowed, and the data were blamed: "its range overflows f64" for values 1 and 2.
        let far = try sh("normalize --minmax --range 1e307,1.0000001e307 --dtype f64 small.tns | tensor-show --csv", cwd: tmp)
        XCTAssertEqual(far.status, 0, far.stderr)
        let mapped = far.stdoutText.split(separator: "\n").dropFirst().compactMap { Double($0) }
        XCTAssertEqual(mapped.count, 2)
        XCTAssertEqual(mapped[0], 1e307, accuracy: 1e293)
        XCTAssertEqual(mapped[1], 1.0000001e307, accuracy: 1e293)
        // In f32 the same values are out of range, and that is what is said.
        assertFails(try sh("normalize --minmax --range 1e307,1.0000001e307 small.tns -o far.tns", cwd: tmp), status: 65,
                    prefix: "normalize: small.tns: field 'x' sample 0 becomes a NaN or infinity under the transform, out of f32's range")
        // A range too narrow for a wide --range needs a multiplier past f64.
        try stream("narrow.tns", .f64, [1], [0, 1e-300], count: 2)
        assertFails(try sh("normalize --minmax --range 0,1e300 --dtype f64 narrow.tns -o far.tns", cwd: tmp), status: 65,
                    prefix: "normalize: narrow.tns: field 'x': mapping its range onto --range 0,1e300 takes a multiplier beyond f64")
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(tmp)/far.tns"))
    }

    func testAnOverflowingMetricIsUndefinedAndFailsEveryGate() throws {
        // Targets and predictions of ±1e308: r2 was NaN, printed "-nan", and `r2!=0` passed.
        let schema = Schema(fields: [Field(name: "y", dtype: .f64, shape: Shape([])), Field(name: "yhat", dtype: .f64, shape: Shape([]))])
        try write(try makeStream(schema, batches: [(2, [bytes([1e308, -1e308]), bytes([-1e308, 1e308])])]), "reg.tns")
        let r = try sh("score --require 'r2!=0' reg.tns", cwd: tmp)
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("score: warning: r2 is not defined: it overflows double precision"), r.stderr)
        XCTAssertTrue(r.stderr.contains("score: gate r2!=0 not met: r2 is not defined"), r.stderr)
        XCTAssertTrue(r.stdoutText.contains("R²    undefined"), r.stdoutText)
        XCTAssertFalse(r.stdoutText.contains("nan"), r.stdoutText)
        let json = try sh("score --json reg.tns 2>/dev/null", cwd: tmp).stdoutText
        XCTAssertTrue(json.contains("\"mse\":null") && json.contains("\"r2\":null"), json)
    }

    func testOptionsOneCheckShort() throws {
        try stream("a.tns", .f32, [2], [Float(1), 2], count: 1)
        // "x, x" names x twice once the spaces are trimmed: a usage error, not bad data (65).
        assertFails(try sh("tensor-cat --fields 'x, x' a.tns", cwd: tmp), status: 64, prefix: "tensor-cat: --fields names 'x' twice")
        // An empty --npz name wrote the archive to a temporary file beside the directory and
        // failed to rename it (74).
        assertFails(try sh("tensor-show --npz '' a.tns", cwd: tmp), status: 64, prefix: "tensor-show: --npz: an empty name for an output file")
        // Binary outputs to a terminal: the archive and the statistics file (whose metadata
        // can hold escape sequences) are refused like a stream.
        for (cmd, what) in [("tensor-show --npz - a.tns", "an .npz archive"), ("normalize --scale 2 --save - -o out.tns a.tns", "a statistics file")] {
            let r = try sh("script -qec '\(cmd)' /dev/null", cwd: tmp)
            XCTAssertEqual(r.status, 64, "\(cmd): \(r.stdoutText)")
            XCTAssertTrue(r.stdoutText.contains("stdout: refusing to write \(what) to a terminal"), r.stdoutText)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(tmp)/far.tns"))
    }
}
