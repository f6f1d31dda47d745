// End-to-end: the built executables in real pipelines; stdout bytes, stderr lines and exit
// statuses checked separately.

import Foundation
import TensorCore
import TensorStream
import XCTest
import _TestSupport

final class ToolTests: XCTestCase {
    var tmp = ""

    override func setUpWithError() throws {
        tmp = try makeTempDir()
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: tmp)
    }

    /// Asserts a failure: the exact status, exactly one stderr line starting with `prefix`.

    var images: String { testdata("idx/images-u8.idx.gz") }
    var labels: String { testdata("idx/labels-u8.idx") }

    func testLoadIDXPairAndShow() throws {
        let r = try sh("tensor-load x=\(images) y=\(labels) | tensor-show")
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stderr, "")
        let out = r.stdoutText
        XCTAssertTrue(out.hasPrefix("samples: 10\n"), out)
        XCTAssertTrue(out.contains("x  u8  28×28×1"), out)
        XCTAssertTrue(out.contains("y  u8  scalar  min 1  max 9"), out)
        XCTAssertTrue(out.contains("10 classes"), out)
        XCTAssertTrue(out.contains("[0] x=[0 1 2 3 4 5"), "pixel (r,c) of image 0 is r+c: \(out)")
    }

    func testCountMismatchNamesBothFiles() throws {
        let r = try sh("tensor-load x=\(images) y=\(testdata("idx/labels-9.idx"))")
        assertFails(r, status: 65, prefix: "tensor-load: ", contains: "labels-9.idx")
        XCTAssertTrue(r.stderr.contains("images-u8.idx.gz"), r.stderr)
        XCTAssertTrue(r.stdout.isEmpty || (try? readAll(r.stdout)) == nil, "no complete stream on stdout")
    }

    func testMissingInputIs66() throws {
        assertFails(try sh("tensor-load \(tmp)/nope.gz"), status: 66, prefix: "tensor-load: \(tmp)/nope.gz: ")
        assertFails(try sh("tensor-show \(tmp)/nope.tns"), status: 66, prefix: "tensor-show: \(tmp)/nope.tns: ")
        assertFails(try sh("tensor-show \(tmp)"), status: 66, prefix: "tensor-show: \(tmp): ", contains: "directory")
    }

    func testCutStreamFailsDownstreamWithoutPipefail() throws {
        let (_, bytes) = try smallStream()
        for cut in [0, 10, 100, bytes.count - 1] {
            let r = try sh("tensor-show", stdin: Array(bytes.prefix(cut)))
            assertFails(r, status: 65, prefix: "tensor-show: stdin: ")
            XCTAssertTrue(r.stdout.isEmpty, "nothing printed for a refused stream")
        }
        // The upstream dies mid-way; the last tool of the pipeline reports it.
        let r = try sh("tensor-load x=\(images) | head -c 5000 | tensor-show --count")
        assertFails(r, status: 65, prefix: "tensor-show: stdin: ", contains: "no end record after")
    }

    func testEmptyAndForeignInputs() throws {
        assertFails(try sh("tensor-show </dev/null"), status: 65, prefix: "tensor-show: stdin: empty input, no stream header")
        assertFails(try sh("tensor-show \(images)"), status: 65, prefix: "tensor-show: ", contains: "looks like gzip")
        assertFails(try sh("tensor-show \(labels)"), status: 65, prefix: "tensor-show: ", contains: "IDX")
    }

    func testTextIsCalledTextShortOrNotASCII() throws {
        // Under 16 bytes, the sniffed header's unread zeros made "hello world" unknown data; a
        // UTF-8 continuation byte (0x80–0xBF) did the same to any text beyond ASCII.
        let e = "\u{E9}"
        for text in ["hello world\n", "h\(e)llo\n", "a" + String(repeating: e, count: 200), String(repeating: "caf\(e) ", count: 100)] {
            assertFails(try sh("tensor-show", stdin: Array(text.utf8)), status: 65, prefix: "tensor-show: stdin: not a tensor stream (looks like text)")
        }
        try Data("hello world\n".utf8).write(to: URL(fileURLWithPath: "\(tmp)/t.dat"))
        assertFails(try sh("tensor-load t.dat", cwd: tmp), status: 65, prefix: "tensor-load: t.dat: cannot tell the format (looks like text)")
        // Not text: a NUL, a lone continuation byte, an overlong encoding.
        for bytes: [UInt8] in [[0x68, 0x69, 0x00, 0x0A], [0x68, 0x80, 0x69], [0x68, 0xC0, 0xA0, 0x69]] {
            assertFails(try sh("tensor-show", stdin: bytes), status: 65, prefix: "tensor-show: stdin: not a tensor stream (looks like unknown data)")
        }
    }

    func testConcatenatedStreamsAndMismatch() throws {
        try sh("tensor-load x=\(images) y=\(labels) -o \(tmp)/a.tns")
        try sh("tensor-load x=\(images) -o \(tmp)/b.tns")
        let r = try sh("cat \(tmp)/a.tns \(tmp)/a.tns | tensor-show --count")
        XCTAssertEqual(r.stdoutText, "20\n", r.stderr)
        XCTAssertEqual(try sh("tensor-show --count \(tmp)/a.tns \(tmp)/a.tns").stdoutText, "20\n")
        assertFails(try sh("cat \(tmp)/a.tns \(tmp)/b.tns | tensor-show --count"), status: 65, prefix: "tensor-show: stdin: stream 2: does not match stream 1: ", contains: "field")
    }

    func testOutputIsAtomicAndFailuresLeaveTheOldFile() throws {
        let target = "\(tmp)/out.tns"
        try Data("old contents".utf8).write(to: URL(fileURLWithPath: target))
        let r = try sh("tensor-load -o \(target) x=\(images) y=\(testdata("idx/labels-9.idx"))")
        XCTAssertEqual(r.status, 65)
        XCTAssertEqual(try String(contentsOfFile: target, encoding: .utf8), "old contents")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: tmp), ["out.tns"], "no temporary file left")
        let ok = try sh("tensor-load -o \(target) x=\(images) y=\(labels)")
        XCTAssertEqual(ok.status, 0, ok.stderr)
        XCTAssertEqual(try readAll(Array(try Data(contentsOf: URL(fileURLWithPath: target)))).1, 10)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: tmp), ["out.tns"])
    }

    func testFullDiskIsAnIOError() throws {
        let r = try sh("tensor-load x=\(images) >/dev/full")
        assertFails(r, status: 74, prefix: "tensor-load: stdout: ", contains: "No space left on device")
    }

    func testClosedStdoutIsAnIOError() throws {
        assertFails(try sh("tensor-load x=\(images) >&-"), status: 74, prefix: "tensor-load: stdout: ")
    }

    func testReaderGoingAwayIsQuiet() throws {
        let r = try sh("bash -c 'tensor-load x=\(images) | head -c 100 >/dev/null; echo ${PIPESTATUS[0]}'")
        XCTAssertEqual(r.stderr, "", "nothing on stderr when the downstream reader leaves")
        let status = Int(r.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
        XCTAssertTrue(status == 0 || status == 141, "status \(status)")
        XCTAssertNotEqual(status, 132)
    }

    func testCSVExportMatchesValues() throws {
        let r = try sh("tensor-load x=\(testdata("idx/images-f32.idx")) | tensor-show --csv")
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = r.stdoutText.split(separator: "\n")
        XCTAssertEqual(lines.first, "x_0,x_1,x_2,x_3,x_4,x_5")
        XCTAssertEqual(lines.count, 5)
        XCTAssertEqual(lines[1], "0.0,0.5,1.0,1.5,2.0,2.5")
        XCTAssertEqual(lines[4], "9.0,9.5,10.0,10.5,11.0,11.5")
    }

    func testEveryNaNIsWrittenNanWhateverItsSignOrPayload() throws {
        // Quiet, negative, signalling and payload-carrying NaNs: Swift's own description wrote
        // "-nan", "snan", "nan(0x1)", which Python's float() and numpy.loadtxt refuse.
        let a: [UInt32] = [0x7FC0_0000, 0xFFC0_0000, 0x7F80_0001, 0x7FA0_0000, 0x7FC0_0001]
        let b: [UInt64] = [0x7FF8_0000_0000_0000, 0xFFF8_0000_0000_0000, 0x7FF0_0000_0000_07A2, 0xFFF0_0000_0000_07A2]
        let schema = Schema(fields: [Field(name: "a", dtype: .f32, shape: Shape([5])), Field(name: "b", dtype: .f64, shape: Shape([4]))])
        let bytes = try makeStream(schema, batches: [(1, [a.withUnsafeBytes { Array($0) }, b.withUnsafeBytes { Array($0) }])])
        let csv = try sh("tensor-show --csv", stdin: bytes)
        XCTAssertEqual(csv.status, 0, csv.stderr)
        XCTAssertEqual(csv.stdoutText, "a_0,a_1,a_2,a_3,a_4,b_0,b_1,b_2,b_3\n" + Array(repeating: "nan", count: 9).joined(separator: ",") + "\n")
        let text = try sh("tensor-show", stdin: bytes)
        XCTAssertEqual(text.status, 0, text.stderr)
        XCTAssertTrue(text.stdoutText.contains("[0] a=[nan nan nan nan nan]  b=[nan nan nan nan]"), text.stdoutText)
    }

    func testStatisticsGiveIntegersExactlyAndNoRangeWithoutAValue() throws {
        // %g printed 123456789 as 1.23457e+08, and an all-NaN field as "min inf  max -inf".
        let a: [Int32] = [0, 16_777_217, 123_456_789]
        let c: [Int64] = [Int64.min, 9_007_199_254_740_993, 0]
        let b = [Float](repeating: .nan, count: 3), d = [Float](repeating: .infinity, count: 3)
        let schema = Schema(fields: ["a": DType.i32, "b": .f32, "c": .i64, "d": .f32].sorted { $0.key < $1.key }.map { Field(name: $0.key, dtype: $0.value, shape: Shape([])) })
        let bytes = try makeStream(schema, batches: [(3, [a.withUnsafeBytes { Array($0) }, b.withUnsafeBytes { Array($0) },
                                                          c.withUnsafeBytes { Array($0) }, d.withUnsafeBytes { Array($0) }])])
        let r = try sh("tensor-show -n 0", stdin: bytes)
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = r.stdoutText.split(separator: "\n").map(String.init)
        XCTAssertTrue(lines.contains("  a  i32  scalar  min 0  max 123456789  mean 4.67447e+07"), r.stdoutText)
        XCTAssertTrue(lines.contains("  b  f32  scalar  nan 3"), r.stdoutText)
        XCTAssertTrue(lines.contains("  c  i64  scalar  min -9223372036854775808  max 9007199254740993  mean -3.07145e+18"), r.stdoutText)
        XCTAssertTrue(lines.contains("  d  f32  scalar  min inf  max inf  nan 0  inf 3"), r.stdoutText)
    }

    func testCSVRefusesAColumnNameTwice() throws {
        // x of 2 values writes x_0,x_1; a scalar field x_0 beside it made the header x_0,x_1,x_0.
        func stream(_ scalar: String) throws -> [UInt8] {
            let schema = Schema(fields: [Field(name: "x", dtype: .i32, shape: Shape([2])), Field(name: scalar, dtype: .i32, shape: Shape([]))])
            return try makeStream(schema, batches: [(1, [[1, 0, 0, 0, 2, 0, 0, 0], [9, 0, 0, 0]])])
        }
        let r = try sh("tensor-show --csv", stdin: try stream("x_0"))
        assertFails(r, status: 65, prefix: "tensor-show: stdin: column x_0 of field x is also the name of field x_0")
        XCTAssertEqual(r.stdout, [], "no header written")
        // Names that only look alike are columns of their own.
        for name in ["x_2", "x_01", "x_", "x0"] {
            let ok = try sh("tensor-show --csv", stdin: try stream(name))
            XCTAssertEqual(ok.status, 0, ok.stderr)
            XCTAssertEqual(ok.stdoutText, "x_0,x_1,\(name)\n1,2,9\n")
        }
    }

    func testNPZExportLoadsInNumPyAndRoundTrips() throws {
        try sh("tensor-load x=\(images) y=\(labels) -o \(tmp)/a.tns")
        let r = try sh("tensor-show --npz \(tmp)/a.npz \(tmp)/a.tns")
        XCTAssertEqual(r.status, 0, r.stderr)
        let py = try sh("""
            python3 -c "import numpy as np; d = np.load('\(tmp)/a.npz'); x = d['x']; y = d['y']; \
            print(x.shape, x.dtype, y.shape, y.dtype, int(x[3, 2, 5, 0]), y.tolist())"
            """)
        XCTAssertEqual(py.status, 0, py.stderr)
        XCTAssertEqual(py.stdoutText, "(10, 28, 28, 1) uint8 (10,) uint8 28 [3, 1, 4, 1, 5, 9, 2, 6, 5, 3]\n")
        // And back through our own zip reader: the same bytes.
        let back = try sh("tensor-load \(tmp)/a.npz -o \(tmp)/b.tns")
        XCTAssertEqual(back.status, 0, back.stderr)
        let (_, na, da) = try readAll(Array(try Data(contentsOf: URL(fileURLWithPath: "\(tmp)/a.tns"))))
        let (_, nb, db) = try readAll(Array(try Data(contentsOf: URL(fileURLWithPath: "\(tmp)/b.tns"))))
        XCTAssertEqual(na, nb)
        XCTAssertEqual(da, db)
        // From a pipe that goes on after the archive (here 20 MB of zeros): refused after 16 MiB
        // of it, where reading to the end of an endless pipe would never return.
        let endless = try sh("bash -c 'set -o pipefail; cat \(tmp)/a.npz /dev/zero | head -c 20000000 | timeout 60 tensor-load - >/dev/null'")
        assertFails(endless, status: 65, prefix: "tensor-load: stdin: ", contains: "more than 16 MiB after its last member")
    }

    func testNPZSpillErrorsNameTheTemporaryDirectory() throws {
        // To stdout the spill files go to $TMPDIR; its failure was reported as "-: cannot create
        // a temporary file", naming the output.
        try sh("tensor-load x=\(images) y=\(labels) -o \(tmp)/a.tns")
        let r = try sh("TMPDIR=\(tmp)/nonexistent tensor-show --npz - \(tmp)/a.tns > /dev/null")
        assertFails(r, status: 74, prefix: "tensor-show: TMPDIR=\(tmp)/nonexistent: cannot create a temporary file: No such file or directory")
        // The other spill files are named the same way (they said "spill file in DIR").
        assertFails(try sh("TMPDIR=\(tmp)/nonexistent normalize --standardize < \(tmp)/a.tns"), status: 74,
                    prefix: "normalize: spill file in TMPDIR=\(tmp)/nonexistent: create: No such file or directory")
        let ok = try sh("TMPDIR=\(tmp) tensor-show --npz - \(tmp)/a.tns | tensor-load --format npz - | tensor-show --count")
        XCTAssertEqual(ok.stdoutText, "10\n", ok.stderr)
    }

    func testReaderOptionsForAFormatNotReadAreRefused() throws {
        // Each did nothing, silently, on input of another format.
        let cases: [(String, String)] = [
            ("--label species x=\(images) y=\(labels)", "tensor-load: --label: is for csv or tsv input, and the input is idx"),
            ("--delimiter ';' x=\(images)", "tensor-load: --delimiter: is for csv or tsv input, and the input is idx"),
            ("--split test \(testdata("images/gray-4x3.png"))", "tensor-load: --split: is for cifar10 or cifar100 input, and the input is image"),
            ("--label species --channels 3 \(testdata("csv/iris-small.csv"))", "tensor-load: --channels: is for image input, and the input is csv"),
            // refused before the CSV is parsed: its text labels said 'setosa' is not a number
            ("--channels 3 \(testdata("csv/iris-small.csv"))", "tensor-load: --channels: is for image input, and the input is csv"),
            // a single CIFAR batch is read whole: --split test returned training data
            ("--split test \(testdata("cifar/data_batch_1.bin"))", "tensor-load: --split: chooses the batches of a CIFAR archive"),
            ("--text \(testdata("text/reviews.csv")) --max-len 4 --channels 3", "tensor-load: --channels: is not for text input"),
            ("--text \(testdata("text/reviews.csv")) --max-len 4 --resize 8x8", "tensor-load: --resize: is not for text input"),
            ("--resize 8x8 x=\(images)", "tensor-load: --resize: is for image input, and the input is idx"),
            ("--resize 0x8 \(testdata("images/gray-4x3.png"))", "tensor-load: --resize takes WIDTHxHEIGHT, each 1 to 16384 (as 28x28), not '0x8'"),
            ("--resize 28 \(testdata("images/gray-4x3.png"))", "tensor-load: --resize takes WIDTHxHEIGHT, each 1 to 16384 (as 28x28), not '28'"),
            // class names for a target that has no classes, or one name twice
            ("--label target --classes a,b \(testdata("csv/regression.tsv"))", "tensor-load: --classes: field 'y' is f32"),
            ("--label species --classes a,a,b \(testdata("csv/iris-small.csv"))", "tensor-load: --classes: names 'a' twice"),
            // an empty name shifted every later class by one; '@' alone named no file
            ("--label species --classes 'a, ,b' \(testdata("csv/iris-small.csv"))", "tensor-load: --classes: name 2 of 3 is empty ('a, ,b')"),
            ("--label species --classes @ \(testdata("csv/iris-small.csv"))", "tensor-load: --classes: @ takes the name of a file"),
            // the quote opens a quoted cell: as the separator it split nothing
            ("--label species --delimiter '\"' \(testdata("csv/iris-small.csv"))", "tensor-load: --delimiter cannot be the quote or a line end"),
        ]
        for (args, message) in cases {
            assertFails(try sh("tensor-load \(args) -o \(tmp)/o.tns"), status: 64, prefix: message)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(tmp)/o.tns"))
        // Names are told apart by bytes, as labels are: é (NFC) and e + ◌́ (NFD) are two
        // classes (they were "named twice").
        try Data("\u{E9}\tone\ne\u{301}\ttwo\n".utf8).write(to: URL(fileURLWithPath: "\(tmp)/accents.tsv"))
        let accents = try sh("tensor-load --text \(tmp)/accents.tsv --max-len 2 --min-count 1 --classes '\u{E9},e\u{301}' | tensor-show --count")
        XCTAssertEqual(accents.stdoutText, "2\n", accents.stderr)
        // A class list file may begin with a byte-order mark (it stayed in the first name).
        try Data([0xEF, 0xBB, 0xBF] + Array("virginica\nsetosa\nversicolor\n".utf8)).write(to: URL(fileURLWithPath: "\(tmp)/names.txt"))
        let named = try sh("tensor-load --label species --classes @\(tmp)/names.txt \(testdata("csv/iris-small.csv")) | tensor-show -n 1")
        XCTAssertTrue(named.stdoutText.contains("y.classes: virginica, setosa, versicolor\n"), named.stdoutText + named.stderr)
        // Text labels are looked up by name, as with --text: the first sample is a setosa, now
        // class 1. By position, 'a, b, c' (or the same names in another order) renamed every
        // sample's class with status 0 (helper-43's review).
        XCTAssertTrue(named.stdoutText.contains("y=1 (setosa)"), named.stdoutText)
        assertFails(try sh("tensor-load --label species --classes a,b,c \(testdata("csv/iris-small.csv"))"), status: 65,
                    prefix: "tensor-load: \(testdata("csv/iris-small.csv")): class 'setosa' is not one --classes names")
        // Integer labels still take the names by position.
        let numbered = try sh("tensor-load x=\(testdata("idx/images-u8.idx.gz")) y=\(testdata("idx/labels-u8.idx")) --classes j,i,h,g,f,e,d,c,b,a | tensor-show")
        XCTAssertTrue(numbered.stdoutText.contains("y.classes: j, i, h, g, f, e, d, c, b, a"), numbered.stdoutText + numbered.stderr)
        // Both refusals name the file whose labels do not fit (they named the option).
        assertFails(try sh("tensor-load --classes a,b,c y=\(testdata("idx/labels-u8.idx"))"), status: 65,
                    prefix: "tensor-load: \(testdata("idx/labels-u8.idx")): labels go up to 9, but --classes names 3 classes")
        // Among several inputs, one of the option's format is enough.
        XCTAssertEqual(try sh("tensor-load --channels 3 \(testdata("images/gray-4x3.png")) | tensor-show --count").stdoutText.trimmingCharacters(in: .whitespacesAndNewlines), "1")
        XCTAssertEqual(try sh("tensor-load --split test \(testdata("cifar/cifar10-small.tar.gz")) | tensor-show --count").status, 0)
    }

    func testTensorLoadOddInputsFoundByTheReadersAudit() throws {
        let batch = testdata("cifar/data_batch_1.bin")
        // A plain batch from stdin, or from a one-character path, trapped in Foundation's
        // path code (status 132); stdin has no directory, so the standard names apply.
        try FileManager.default.copyItem(atPath: batch, toPath: "\(tmp)/b")
        for command in ["tensor-load --format cifar10 - < \(batch)", "cd \(tmp) && tensor-load --format cifar10 b"] {
            let r = try sh(command + " | tensor-show")
            XCTAssertEqual(r.status, 0, "\(command): \(r.stderr)")
            XCTAssertTrue(r.stdoutText.contains("samples: 4\n"), r.stdoutText)
            XCTAssertTrue(r.stdoutText.contains("y.classes: airplane, automobile"), r.stdoutText)
        }
        // A name list beside the batch that is a link to nothing is a missing input, not absent.
        try FileManager.default.createDirectory(atPath: "\(tmp)/c", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: batch, toPath: "\(tmp)/c/data_batch_1.bin")
        try FileManager.default.createSymbolicLink(atPath: "\(tmp)/c/batches.meta.txt", withDestinationPath: "\(tmp)/gone.txt")
        assertFails(try sh("tensor-load \(tmp)/c/data_batch_1.bin"), status: 66, prefix: "tensor-load: \(tmp)/c/batches.meta.txt: symbolic link to nothing readable")
        // ... and one that names a class twice is bad data.
        try FileManager.default.removeItem(atPath: "\(tmp)/c/batches.meta.txt")
        try String(repeating: "a\n", count: 10).write(toFile: "\(tmp)/c/batches.meta.txt", atomically: false, encoding: .utf8)
        assertFails(try sh("tensor-load \(tmp)/c/data_batch_1.bin"), status: 65, prefix: "tensor-load: \(tmp)/c/batches.meta.txt: class name list names 'a' twice")

        // --classes: labels the input named no classes for are checked (70000 and -1 passed);
        // an @file with CRLF line ends is one name a line; a name with a line break, or a file
        // that is not UTF-8, is refused.
        try "a,label\n1,0\n2,70000\n".write(toFile: "\(tmp)/big.csv", atomically: false, encoding: .utf8)
        assertFails(try sh("tensor-load --label label --classes cat,dog \(tmp)/big.csv -o \(tmp)/o.tns"), status: 65,
                    prefix: "tensor-load: \(tmp)/big.csv: sample 1: label 70000 is outside the 2 classes --classes names")
        try "a,label\n1,0\n2,2\n".write(toFile: "\(tmp)/l3.csv", atomically: false, encoding: .utf8)
        try "cat\r\ndog\r\nfish\r\n".write(toFile: "\(tmp)/crlf.txt", atomically: false, encoding: .utf8)
        XCTAssertTrue(try sh("tensor-load --label label --classes @\(tmp)/crlf.txt \(tmp)/l3.csv | tensor-show").stdoutText.contains("y.classes: cat, dog, fish\n"))
        // A name with a comma (an @file holds one a line): every name quoted, so three names
        // do not read as four.
        try "Bag, small\nShoe\nKid's top\n".write(toFile: "\(tmp)/comma.txt", atomically: false, encoding: .utf8)
        XCTAssertTrue(try sh("tensor-load --label label --classes @\(tmp)/comma.txt \(tmp)/l3.csv | tensor-show").stdoutText
            .contains("y.classes: 'Bag, small', 'Shoe', 'Kid\\'s top'\n"))
        assertFails(try sh("tensor-load --label label --classes \"$(printf 'cat\\ndog,bird,fish')\" \(tmp)/l3.csv"), status: 64,
                    prefix: "tensor-load: --classes: a name holds a line break or control character")
        try Data([0x63, 0x61, 0x74, 0x0A, 0xFF, 0x0A]).write(to: URL(fileURLWithPath: "\(tmp)/bad.txt"))
        assertFails(try sh("tensor-load --label label --classes @\(tmp)/bad.txt \(tmp)/l3.csv"), status: 65, prefix: "tensor-load: \(tmp)/bad.txt: class list is not UTF-8 text")

        // A control character is shown escaped once: the printer escaped the message's own
        // escapes again ('1\\x00junk').
        try Data(Array("a,b\n1".utf8) + [0] + Array("junk,2\n".utf8)).write(to: URL(fileURLWithPath: "\(tmp)/nul.csv"))
        XCTAssertEqual(try sh("tensor-load \(tmp)/nul.csv").stderrLines, ["tensor-load: \(tmp)/nul.csv: line 2, column 1 (a): '1\\x00junk' is not a number; a column of labels is named with --label a, and text documents load with --text"])
        // Standard input named twice; an .npz given a field name; zero samples.
        assertFails(try sh("tensor-load x=- y=- < \(labels)"), status: 64, prefix: "tensor-load: -: standard input is named twice")
        assertFails(try sh("tensor-load x=\(testdata("npz/xy.npz"))"), status: 64, prefix: "tensor-load: \(testdata("npz/xy.npz")): an .npz names its own fields")
        assertFails(try sh("tensor-load x=\(batch)"), status: 64, prefix: "tensor-load: \(batch): CIFAR data has fields x and y")
        try Data([0, 0, 8, 3, 0, 0, 0, 0, 0, 0, 0, 28, 0, 0, 0, 28]).write(to: URL(fileURLWithPath: "\(tmp)/zero.idx"))
        assertFails(try sh("tensor-load \(tmp)/zero.idx -o \(tmp)/o.tns"), status: 65, prefix: "tensor-load: \(tmp)/zero.idx: holds no samples")
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(tmp)/o.tns"))
    }

    func testPNGGridIsAValidPNGOfTheRightSize() throws {
        let r = try sh("tensor-load x=\(images) | tensor-show --png \(tmp)/g.png -n 9")
        XCTAssertEqual(r.status, 0, r.stderr)
        let back = try sh("tensor-load \(tmp)/g.png | tensor-show")
        XCTAssertEqual(back.status, 0, back.stderr)
        // 3×3 tiles of 28 pixels with 1-pixel gaps: 3·29+1 = 88.
        XCTAssertTrue(back.stdoutText.contains("x  u8  88×88×1"), back.stdoutText)
        assertFails(try sh("tensor-load x=\(labels) | tensor-show --png \(tmp)/h.png --field x"), status: 64,
                    prefix: "tensor-show: stdin: field x of shape scalar is not an image (H×W or H×W×C with C 1, 3 or 4)")
        try sh("tensor-load x=\(labels) -o \(tmp)/labels.tns")
        // --field without --png is refused even when it names the default (it was ignored).
        assertFails(try sh("tensor-show --field x labels.tns", cwd: tmp), status: 64, prefix: "tensor-show: --field goes with --png")
        assertFails(try sh("tensor-show --png h.png labels.tns", cwd: tmp), status: 64, prefix: "tensor-show: labels.tns: field x of shape scalar is not an image")
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(tmp)/h.png"))
        // To stdout with "-", and into a FIFO in place (renaming over it replaced it).
        let piped = try sh("tensor-load x=\(images) | tensor-show --png - -n 9 | head -c 8 | od -An -tx1")
        XCTAssertEqual(piped.stdoutText.split(separator: " ").joined(separator: " ").trimmingCharacters(in: .whitespacesAndNewlines), "89 50 4e 47 0d 0a 1a 0a")
        for option in ["--png", "--npz"] {
            let fifo = try sh("rm -f pipe && mkfifo pipe && { timeout 60 cat pipe > got & tensor-load x=\(images) | tensor-show \(option) pipe; s=$?; wait; exit $s; }", cwd: tmp)
            XCTAssertEqual(fifo.status, 0, fifo.stderr)
            XCTAssertEqual(try sh("test -p pipe", cwd: tmp).status, 0, "\(option): the FIFO is still a FIFO")
            XCTAssertEqual(try sh("tensor-load \(option == "--png" ? "" : "--format npz ")got | tensor-show --count", cwd: tmp).stdoutText.trimmingCharacters(in: .whitespacesAndNewlines),
                           option == "--png" ? "1" : "10", option)
        }
    }

    func testUsageErrorsAre64() throws {
        XCTAssertEqual(try sh("tensor-load --format nonsense x").status, 64)
        XCTAssertEqual(try sh("tensor-show --csv --count").status, 64)
        XCTAssertEqual(try sh("tensor-load --bogus").status, 64)
        // An unknown option is named even when a check of the options would fail too: these
        // said "choose one of --scale, …" and "give --model SPEC".
        assertFails(try sh("normalize --bogus </dev/null"), status: 64, prefix: "normalize: unknown option '--bogus' (see normalize --help)")
        assertFails(try sh("fit --bogus -o \(tmp)/m.model </dev/null"), status: 64, prefix: "fit: unknown option '--bogus' (see fit --help)")
        // -n 0 draws nothing; a PNG for a terminal is not told to pipe into tensor-show.
        assertFails(try sh("tensor-show --png \(tmp)/g.png -n 0 </dev/null"), status: 64, prefix: "tensor-show: -n 0 draws nothing")
    }

    func testHelpAndVersion() throws {
        for tool in ["tensor-load", "tensor-show"] {
            let h = try sh("\(tool) --help")
            XCTAssertEqual(h.status, 0)
            XCTAssertTrue(h.stdoutText.contains("Examples:"), "\(tool) --help has examples")
            let v = try sh("\(tool) --version")
            XCTAssertEqual(v.status, 0)
            XCTAssertFalse(v.stdoutText.isEmpty)
        }
    }

    func testTensorCatLetsOnlyProvenanceDiffer() throws {
        // tensor-cat(1) and tensor-stream(5): the key `source` and keys ending in `.source` may
        // differ between inputs (the first input's are kept); any other key may not.
        let fields = [Field(name: "y", dtype: .u8, shape: Shape([]))]
        func write(_ name: String, _ metadata: [(key: String, value: String)]) throws {
            try Data(try makeStream(Schema(fields: fields, metadata: metadata), batches: [(1, [[7]])])).write(to: URL(fileURLWithPath: "\(tmp)/\(name)"))
        }
        try write("a.tns", [("source", "A"), ("y.source", "a.idx"), ("k", "v")])
        try write("b.tns", [("k", "v"), ("y.source", "b.idx"), ("source", "B")])
        try write("c.tns", [("source", "A"), ("y.source", "a.idx"), ("k", "w")])
        let r = try sh("tensor-cat a.tns b.tns | tensor-show", cwd: tmp)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdoutText.contains("samples: 2\n") && r.stdoutText.contains("  source: A\n") && r.stdoutText.contains("  y.source: a.idx\n"), r.stdoutText)
        assertFails(try sh("tensor-cat a.tns c.tns", cwd: tmp), status: 65, prefix: "tensor-cat: ", contains: "metadata 'k'")
    }

    func testTensorCatMergesSelectsAndCuts() throws {
        try sh("tensor-load x=\(images) y=\(labels) -o \(tmp)/a.tns")
        let a = Array(try Data(contentsOf: URL(fileURLWithPath: "\(tmp)/a.tns")))
        // Two streams in, one stream out: a single header and end record, the samples of both.
        let merged = try sh("tensor-cat \(tmp)/a.tns - <\(tmp)/a.tns")
        XCTAssertEqual(merged.status, 0, merged.stderr)
        let (s, n, d) = try readAll(merged.stdout)
        XCTAssertEqual(n, 20)
        let (s1, _, d1) = try readAll(a)
        XCTAssertEqual(s, s1)
        XCTAssertEqual(d[1], d1[1] + d1[1])
        XCTAssertLessThan(merged.stdout.count, 2 * a.count, "one header, not two")
        // Pass-through without options is byte-identical.
        XCTAssertEqual(try sh("tensor-cat", stdin: a).stdout, a)
        let cut = try sh("tensor-cat --head 3 --fields y \(tmp)/a.tns")
        let (cs, cn, cd) = try readAll(cut.stdout)
        XCTAssertEqual(cs.fields.map(\.name), ["y"])
        XCTAssertNotNil(cs.classes(of: "y"))
        XCTAssertNil(cs.metadata("x.source"), "metadata of dropped fields goes too")
        XCTAssertEqual(cn, 3)
        XCTAssertEqual(cd[0], [3, 1, 4])
        assertFails(try sh("tensor-cat --fields z \(tmp)/a.tns"), status: 64, prefix: "tensor-cat: --fields z: ")
        // Options that would be ignored: -n where every sample is taken, --field without --png.
        for options in ["-n 5 --count", "-n 2 --csv", "--field y"] {
            assertFails(try sh("tensor-show \(options) \(tmp)/a.tns"), status: 64, prefix: "tensor-show: ", contains: "go")
        }
        // A field named twice is a usage error at once, naming the option (it was 65 after
        // reading the whole input, blamed on the output), in each tool that takes field lists.
        for command in ["tensor-cat --fields x,x \(tmp)/a.tns", "normalize --standardize --field x --field x \(tmp)/a.tns",
                        "augment --hflip 1 --field x --field x \(tmp)/a.tns"] {
            assertFails(try sh(command + " >/dev/null"), status: 64, prefix: "\(command.split(separator: " ")[0]): --field", contains: "names 'x' twice")
        }
        // --head still reads and verifies the whole input.
        assertFails(try sh("head -c \(a.count - 10) \(tmp)/a.tns | tensor-cat --head 1"), status: 65, prefix: "tensor-cat: stdin: ")
    }

    func testBinaryToATerminalIsRefused() throws {
        // script(1) gives the tool a pseudo-terminal as stdout.
        let r = try sh("script -qec 'tensor-load \(images)' /dev/null")
        XCTAssertEqual(r.status, 64, r.stdoutText)
        XCTAssertTrue(r.stdoutText.contains("tensor-load: stdout: refusing to write a binary stream to a terminal"), r.stdoutText)
    }
}
