// tensor-load --text end to end: learning and saving a vocabulary, applying it, the three
// layouts and stdin, determinism across runs, and every refusal with its exit status, its one
// stderr line, and no VOCAB or -o file left behind.

import Foundation
import TensorCore
import TensorStream
import XCTest
import _TestSupport

final class TextToolTests: XCTestCase {
    var tmp = ""

    override func setUpWithError() throws {
        tmp = try makeTempDir()
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: tmp)
    }

    var train: String { testdata("text/reviews-train.tsv") }
    var test: String { testdata("text/reviews-test.tsv") }

    func file(_ name: String) throws -> [UInt8] { Array(try Data(contentsOf: URL(fileURLWithPath: "\(tmp)/\(name)"))) }
    func files() throws -> [String] { try FileManager.default.contentsOfDirectory(atPath: tmp).sorted() }
    func int32s(_ b: [UInt8]) -> [Int32] { b.withUnsafeBytes { Array($0.bindMemory(to: Int32.self)) } }
    func int64s(_ b: [UInt8]) -> [Int64] { b.withUnsafeBytes { Array($0.bindMemory(to: Int64.self)) } }

    func testLearnSaveAndApply() throws {
        for kind in ["char", "word", "bpe"] {
            let learn = try sh("tensor-load --text \(train) --tokenizer \(kind) --max-len 12 --save-vocab \(tmp)/\(kind).vocab -o \(tmp)/\(kind)-train.tns")
            XCTAssertEqual(learn.status, 0, learn.stderr)
            XCTAssertEqual(learn.stderr, "")
            let vocab = String(decoding: try file("\(kind).vocab"), as: UTF8.self)
            XCTAssertTrue(vocab.hasPrefix("tensor-vocab 1 \(kind)\nclasses 3\nneg\nneutral\npos\ntokens "), vocab)
            let (s, n, d) = try readAll(try file("\(kind)-train.tns"))
            XCTAssertEqual(n, 8)
            XCTAssertEqual(s.fields, [Field(name: "x", dtype: .i32, shape: Shape([12])), Field(name: "y", dtype: .i64, shape: Shape([])),
                                      Field(name: "len", dtype: .i32, shape: Shape([]))])
            XCTAssertEqual(s.metadata("x.tokenizer"), kind)
            XCTAssertEqual(s.classes(of: "y"), ["neg", "neutral", "pos"])
            XCTAssertEqual(int64s(d[1]), [2, 0, 1, 2, 0, 1, 2, 0])
            let size = Int(s.metadata("x.vocab-size") ?? "") ?? -1
            XCTAssertTrue(s.metadata("x.vocabulary")?.hasPrefix("\(kind) \(size) crc32 ") ?? false, s.metadata("x.vocabulary") ?? "")
            XCTAssertTrue(int32s(d[0]).allSatisfy { $0 >= 0 && $0 < size })
            XCTAssertTrue(int32s(d[2]).allSatisfy { $0 >= 0 && $0 <= 12 })

            // Applying the saved vocabulary to the same text gives the same stream, byte for byte.
            let again = try sh("tensor-load --text \(train) --vocab \(tmp)/\(kind).vocab --max-len 12")
            XCTAssertEqual(again.status, 0, again.stderr)
            XCTAssertEqual(again.stdout, try file("\(kind)-train.tns"))
            // A vocabulary kept compressed is read as the input is.
            try sh("gzip -c \(tmp)/\(kind).vocab > \(tmp)/\(kind).vocab.gz")
            let gz = try sh("tensor-load --text \(train) --vocab \(tmp)/\(kind).vocab.gz --max-len 12")
            XCTAssertEqual(gz.status, 0, gz.stderr)
            XCTAssertEqual(gz.stdout, try file("\(kind)-train.tns"))

            // Test data without the class neutral: the saved class list and fingerprint.
            let apply = try sh("tensor-load --text \(test) --tokenizer \(kind) --vocab \(tmp)/\(kind).vocab --max-len 12")
            XCTAssertEqual(apply.status, 0, apply.stderr)
            let (ts, tn, td) = try readAll(apply.stdout)
            XCTAssertEqual(tn, 2)
            XCTAssertEqual(ts.classes(of: "y"), ["neg", "neutral", "pos"])
            XCTAssertEqual(int64s(td[1]), [2, 0])
            XCTAssertEqual(ts.metadata("x.vocabulary"), s.metadata("x.vocabulary"))
        }
        // Word ids: "a great story!" with the words of the training data; "!" was seen once,
        // fewer than --min-count 2 times, so it is unknown.
        let (_, _, d) = try readAll(try sh("tensor-load --text \(test) --vocab \(tmp)/word.vocab --max-len 12").stdout)
        let vocab = String(decoding: try file("word.vocab"), as: UTF8.self).split(separator: "\n").map(String.init)
        let tokens = Array(vocab[vocab.firstIndex(where: { $0.hasPrefix("tokens ") })! + 1 ..< vocab.count])
        func id(_ t: String) -> Int32 { Int32(tokens.firstIndex(of: t)! + 2) }
        XCTAssertEqual(Array(int32s(d[0]).prefix(12)), [id("a"), id("great"), id("story"), 1, 0, 0, 0, 0, 0, 0, 0, 0])
        XCTAssertEqual(int32s(d[2]), [4, 6], "a great story ! / terrible acting , awful film .")
    }

    func testVocabularyIsDeterministicAcrossRuns() throws {
        for kind in ["char", "word", "bpe"] {
            for run in 1...2 {
                let r = try sh("tensor-load --text \(train) --tokenizer \(kind) --min-count 1 --max-len 20 --save-vocab \(tmp)/\(kind)\(run).vocab -o \(tmp)/\(kind)\(run).tns")
                XCTAssertEqual(r.status, 0, r.stderr)
            }
            XCTAssertEqual(try file("\(kind)1.vocab"), try file("\(kind)2.vocab"), kind)
            XCTAssertEqual(try file("\(kind)1.tns"), try file("\(kind)2.tns"), kind)
        }
    }

    func testStdinCSVAndDirectoryInputs() throws {
        let piped = try sh("tensor-load --text - --max-len 6 --save-vocab \(tmp)/v <\(train)")
        XCTAssertEqual(piped.status, 0, piped.stderr)
        XCTAssertEqual(try readAll(piped.stdout).0.metadata("x.source"), "stdin")
        let gz = try sh("gzip -c \(train) >\(tmp)/t.tsv.gz && tensor-load --text \(tmp)/t.tsv.gz --vocab \(tmp)/v --max-len 6")
        XCTAssertEqual(gz.status, 0, gz.stderr)
        XCTAssertEqual(try readAll(gz.stdout).2, try readAll(piped.stdout).2, "compressed input reads the same")

        let csv = try sh("tensor-load --text \(testdata("text/reviews.csv")) --label label --text-column text --max-len 8")
        XCTAssertEqual(csv.status, 0, csv.stderr)
        let (cs, cn, cd) = try readAll(csv.stdout)
        XCTAssertEqual(cn, 3)
        XCTAssertEqual(cs.classes(of: "y"), ["neg", "pos"])
        XCTAssertEqual(int32s(cd[2]), [5, 5, 3], "great film , great cast / terrible : boring and long / a great story")
        let unlabeled = try sh("tensor-load --text \(testdata("text/reviews.csv")) --format csv --max-len 8")
        XCTAssertEqual(try readAll(unlabeled.stdout).0.fields.map(\.name), ["x", "len"])

        let dir = try sh("tensor-load --text \(testdata("text/classes")) --tokenizer char --max-len 30")
        XCTAssertEqual(dir.status, 0, dir.stderr)
        let (ds, dn, dd) = try readAll(dir.stdout)
        XCTAssertEqual(dn, 3)
        XCTAssertEqual(ds.classes(of: "y"), ["neg", "pos"])
        XCTAssertEqual(int64s(dd[1]), [0, 0, 1])
        XCTAssertEqual(int32s(dd[2]), [21, 10, 7], "characters, the final newline included")
    }

    /// Integer class directory names ("1", "2", "10"): read as text they were sorted as
    /// numbers, read as images by their bytes, so the same class directories gave "10" class 2
    /// as text and 1 as images. Both now sort by bytes, as torchvision and Keras do.
    func testOneTreeOfClassDirectoriesGivesTheSameClassesAsTextAndAsImages() throws {
        for c in ["1", "2", "10"] {
            for tree in ["text", "images"] {
                try FileManager.default.createDirectory(atPath: "\(tmp)/\(tree)/\(c)", withIntermediateDirectories: true)
            }
            try "class \(c) words\n".write(toFile: "\(tmp)/text/\(c)/a.txt", atomically: false, encoding: .utf8)
            try FileManager.default.copyItem(atPath: testdata("images/rgb-5x4.png"), toPath: "\(tmp)/images/\(c)/a.png")
        }
        let text = try sh("tensor-load --text \(tmp)/text --min-count 1 --max-len 4")
        XCTAssertEqual(text.status, 0, text.stderr)
        let images = try sh("tensor-load \(tmp)/images")
        XCTAssertEqual(images.status, 0, images.stderr)
        let (ts, _, td) = try readAll(text.stdout)
        let (imageSchema, _, imageFields) = try readAll(images.stdout)
        XCTAssertEqual(imageSchema.classes(of: "y"), ["1", "10", "2"])
        XCTAssertEqual(ts.classes(of: "y"), imageSchema.classes(of: "y"))
        XCTAssertEqual(int64s(td[1]), [0, 1, 2], "the documents of 1, 10 and 2, in that order")
        XCTAssertEqual(imageFields[1], [0, 1, 2], "u8 labels of the images of 1, 10 and 2")
    }

    /// Each refusal: status, one line, its place; and neither VOCAB nor -o (nor a temporary
    /// file) left in the directory.
    func testRefusals() throws {
        try sh("tensor-load --text \(train) --tokenizer word --max-len 8 --save-vocab \(tmp)/good.vocab -o \(tmp)/good.tns")
        let before = try files()
        XCTAssertEqual(before, ["good.tns", "good.vocab"])
        let out = "--max-len 8 --save-vocab \(tmp)/new.vocab -o \(tmp)/new.tns"
        let apply = "--max-len 8 --vocab \(tmp)/good.vocab -o \(tmp)/new.tns"
        let cases: [(String, Int32, String)] = [
            ("--text \(testdata("text/no-tab.tsv")) \(out)", 65, "\(testdata("text/no-tab.tsv")):3: no tab: expected LABEL<TAB>TEXT"),
            ("--text \(testdata("text/bad-utf8.tsv")) \(out)", 65, "\(testdata("text/bad-utf8.tsv")):2: not valid UTF-8"),
            ("--text \(testdata("text/empty-label.tsv")) \(out)", 65, "\(testdata("text/empty-label.tsv")):4: empty label"),
            ("--text \(testdata("text/reviews-unknown.tsv")) \(apply)", 65,
             "\(testdata("text/reviews-unknown.tsv")):2: label 'angry' is not one of the 3 classes of \(tmp)/good.vocab"),
            ("--text \(testdata("text/reviews-unknown.tsv")) --classes neg,pos --min-count 1 \(out)", 65,
             "\(testdata("text/reviews-unknown.tsv")):2: label 'angry' is not one of the 2 classes of --classes"),
            ("--text \(train) --tokenizer bpe \(apply)", 64, "--tokenizer bpe: \(tmp)/good.vocab is a word vocabulary"),
            ("--text \(train) --vocab \(tmp)/good.vocab \(out)", 64, "--vocab: "),
            ("--text \(train) --vocab-size 100 \(apply)", 64, "--vocab-size: only applies when learning"),
            ("--text \(train) --max-len 8 --vocab \(tmp)/missing.vocab -o \(tmp)/new.tns", 66, "\(tmp)/missing.vocab: "),
            ("--text \(tmp)/missing.tsv \(out)", 66, "\(tmp)/missing.tsv: "),
            ("--text \(train) --save-vocab \(tmp)/new.vocab", 64, "--text: text input needs --max-len N"),
            ("--text \(train) --tokenizer sentencepiece \(out)", 64, "--tokenizer sentencepiece: "),
            ("--text \(train) --format npy \(out)", 64, "--format npy: "),
            ("--text \(train) \(out) \(train)", 64, "--text: "),
            ("--tokenizer word \(train)", 64, "--tokenizer: is for text input"),
            ("--text \(train) --label 2 \(out)", 64, "\(train): --text-column, --label and --delimiter are for CSV input"),
            ("--text \(testdata("text/reviews.csv")) --text-column body \(out)", 64, "\(testdata("text/reviews.csv")): --text-column: no column 'body'"),
        ]
        for (args, status, message) in cases {
            let r = try sh("tensor-load \(args)")
            assertFails(r, status: status, prefix: "tensor-load: " + message)
            XCTAssertTrue(r.stdout.isEmpty, args)
            XCTAssertEqual(try files(), before, "nothing left behind by: \(args)")
        }

        // Malformed VOCAB files: 65, naming the file and line.
        let good = try file("good.vocab")
        let lines = good.split(separator: 10, omittingEmptySubsequences: false)
        let variants: [(String, [UInt8], String)] = [
            ("cut.vocab", Array(good.dropLast()), ":\(lines.count - 1): truncated"),
            ("short.vocab", Array(lines.prefix(8).joined(separator: [10])) + [10], ": truncated"),
            ("magic.vocab", Array("hello\n".utf8) + good, ":1: not a vocabulary file"),
        ]
        for (name, bytes, message) in variants {
            try Data(bytes).write(to: URL(fileURLWithPath: "\(tmp)/\(name)"))
            let r = try sh("tensor-load --text \(test) --vocab \(tmp)/\(name) --max-len 8 -o \(tmp)/new.tns")
            assertFails(r, status: 65, prefix: "tensor-load: \(tmp)/\(name)", contains: message)
            XCTAssertFalse(FileManager.default.fileExists(atPath: "\(tmp)/new.tns"))
            try FileManager.default.removeItem(atPath: "\(tmp)/\(name)")
        }
    }

    func testWriteFailureLeavesNoVocabulary() throws {
        let r = try sh("tensor-load --text \(train) --max-len 8 --save-vocab \(tmp)/v.vocab >/dev/full")
        assertFails(r, status: 74, prefix: "tensor-load: stdout: ")
        XCTAssertEqual(try files(), [], "no VOCAB and no temporary file")
        // An existing VOCAB stays as it was.
        try Data("old".utf8).write(to: URL(fileURLWithPath: "\(tmp)/v.vocab"))
        assertFails(try sh("tensor-load --text \(train) --max-len 8 --save-vocab \(tmp)/v.vocab -o /dev/full"), status: 74, prefix: "tensor-load: /dev/full: ")
        XCTAssertEqual(try file("v.vocab"), Array("old".utf8))
        XCTAssertEqual(try files(), ["v.vocab"])
    }

    func testHelpShowsTextLoading() throws {
        let h = try sh("tensor-load --help")
        XCTAssertTrue(h.stdoutText.contains("tensor-load --text train.tsv --tokenizer bpe"), h.stdoutText)
        XCTAssertTrue(h.stdoutText.contains("--save-vocab"), h.stdoutText)
    }
}
