// I/O-error sweeps (SQLite's anomaly testing): TENSOR_FAULT=OP:N makes the Nth read, write,
// fsync or rename of a tool fail with EIO. For every N until the run gets through, the tool
// must exit 74 with one line naming the file, leave the previous output byte-identical and
// leave no temporary file.

import Foundation
import XCTest
import _TestSupport

final class FaultInjectionTests: XCTestCase {
    var tmp = ""

    override func setUpWithError() throws {
        tmp = try makeTempDir()
        let r = try sh("tensor-load x=\(testdata("idx/images-u8.idx.gz")) y=\(testdata("idx/labels-u8.idx")) | normalize --scale 255 -o \(tmp)/train.tns")
        XCTAssertEqual(r.status, 0, r.stderr)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: tmp) }

    func bytes(_ path: String) -> [UInt8]? { (try? Data(contentsOf: URL(fileURLWithPath: path))).map { Array($0) } }

    /// Runs `command` with the Nth operation of each kind failing, N = 1, 2, … until it succeeds;
    /// `output` must keep the bytes it had before each failing run.
    func sweep(_ command: String, output: String, file: StaticString = #filePath, line: UInt = #line) throws {
        for op in ["read", "write", "fsync", "rename"] {
            var n = 1
            while n <= 200 {
                let before = bytes(output)
                let r = try sh("TENSOR_FAULT=\(op):\(n) \(command)", cwd: tmp)
                if r.status == 0 { break }
                XCTAssertEqual(r.status, 74, "\(op):\(n): \(r.stderr)", file: file, line: line)
                XCTAssertEqual(r.stderrLines.count, 1, "\(op):\(n): one line: \(r.stderr)", file: file, line: line)
                XCTAssertTrue(r.stderr.contains("Input/output error"), "\(op):\(n): \(r.stderr)", file: file, line: line)
                XCTAssertEqual(bytes(output), before, "\(op):\(n): \(output) untouched", file: file, line: line)
                let left = try FileManager.default.contentsOfDirectory(atPath: tmp).filter { $0.hasPrefix(".") }
                XCTAssertEqual(left, [], "\(op):\(n): no temporary file left", file: file, line: line)
                n += 1
            }
            XCTAssertGreaterThan(n, 1, "\(command) does at least one \(op)", file: file, line: line)
            XCTAssertLessThan(n, 200, "\(op) sweep ended", file: file, line: line)
        }
    }

    func testFitSurvivesEveryIOError() throws {
        // An old model to protect, and a run with a checkpoint and a final model to write.
        XCTAssertEqual(try sh("fit --model mlp --epochs 1 -q -o m.model train.tns", cwd: tmp).status, 0)
        try sweep("fit --model mlp --epochs 2 -q --no-checkpoint -o m.model train.tns", output: "\(tmp)/m.model")
        try sweep("fit --model mlp --epochs 2 -q -o m.model train.tns", output: "\(tmp)/m.model")
    }

    func testNormalizeSaveSurvivesEveryIOError() throws {
        // The statistics of a previous run are protected; the stream goes to stdout. (With -o
        // as well, the two are replaced together; see below.)
        XCTAssertEqual(try sh("normalize --standardize --save s.stats train.tns >/dev/null", cwd: tmp).status, 0)
        try sweep("normalize --minmax --save s.stats train.tns >/dev/null", output: "\(tmp)/s.stats")
    }

    /// Runs `command` with its Nth fsync, then its Nth rename, failing, N = 1, 2, … until it
    /// succeeds: each failing run must leave every one of `files` as it was (they start as
    /// "old NAME", or absent) and no temporary file, and the run that gets through must
    /// replace them all. (A failed second rename left the first file new beside the second
    /// one old; helper-45's review.)
    func assertReplacedTogether(_ command: String, files: [String], file: StaticString = #filePath, line: UInt = #line) throws {
        for (op, existing) in [("fsync", true), ("rename", true), ("rename", false)] {
            for f in files {
                try? FileManager.default.removeItem(atPath: "\(tmp)/\(f)")
                if existing { try Data("old \(f)\n".utf8).write(to: URL(fileURLWithPath: "\(tmp)/\(f)")) }
            }
            let old = files.map { existing ? Array("old \($0)\n".utf8) : nil }
            var n = 1
            while n <= 10 {
                let r = try sh("TENSOR_FAULT=\(op):\(n) \(command)", cwd: tmp)
                if r.status == 0 { break }
                XCTAssertEqual(r.status, 74, "\(op):\(n): \(r.stderr)", file: file, line: line)
                for (f, before) in zip(files, old) {
                    XCTAssertTrue(bytes("\(tmp)/\(f)") == before, "\(op):\(n): \(f) as it was", file: file, line: line)
                }
                let left = try FileManager.default.contentsOfDirectory(atPath: tmp).filter { $0.hasPrefix(".") }
                XCTAssertEqual(left, [], "\(op):\(n): no temporary file left", file: file, line: line)
                n += 1
            }
            XCTAssertEqual(n, files.count + 1, "one \(op) for each file", file: file, line: line)
            for (f, before) in zip(files, old) {
                XCTAssertNotNil(bytes("\(tmp)/\(f)"), "\(f) written", file: file, line: line)
                XCTAssertFalse(bytes("\(tmp)/\(f)") == before, "\(f) replaced", file: file, line: line)
            }
        }
    }

    /// score's table (-o) and report (--report) are one result: an fsync failing on either
    /// leaves both files as they were (the table was renamed into place before the report was
    /// written, so a failing report left a new table beside an old report).
    func testScoresTableAndReportAreReplacedTogether() throws {
        XCTAssertEqual(try sh("fit --model mlp --epochs 1 -q -o m.model train.tns && predict -m m.model train.tns > p.tns", cwd: tmp).status, 0)
        try assertReplacedTogether("score -o t.txt --report r.html p.tns", files: ["t.txt", "r.html"])
        XCTAssertTrue(String(decoding: bytes("\(tmp)/t.txt") ?? [], as: UTF8.self).contains("accuracy"))
        XCTAssertTrue(String(decoding: bytes("\(tmp)/r.html") ?? [], as: UTF8.self).contains("<html"))
    }

    /// A stream and the statistics or vocabulary that go with it are replaced together: a
    /// stream normalized with new statistics beside the old statistics file would be applied
    /// to test data with the wrong ones.
    func testAStreamAndItsStatisticsOrVocabularyAreReplacedTogether() throws {
        try assertReplacedTogether("normalize --standardize --save s.stats -o o.tns train.tns", files: ["o.tns", "s.stats"])
        XCTAssertEqual(try sh("normalize --load s.stats train.tns | cmp - o.tns", cwd: tmp).status, 0)
        try assertReplacedTogether("tensor-load --text \(testdata("text/reviews-train.tsv")) --max-len 16 --save-vocab v.vocab -o t.tns",
                                   files: ["t.tns", "v.vocab"])
        XCTAssertEqual(try sh("tensor-load --text \(testdata("text/reviews-train.tsv")) --max-len 16 --vocab v.vocab | cmp - t.tns", cwd: tmp).status, 0)
    }

    func testAFileSizeLimitIsAnIOError() throws {
        // `ulimit -f`: the write fails (SIGXFSZ is ignored), the tool says so, exits 74, and the
        // old model and the directory are as they were.
        XCTAssertEqual(try sh("fit --model mlp --epochs 1 -q -o m.model train.tns", cwd: tmp).status, 0)
        let old = bytes("\(tmp)/m.model")
        for extra in ["", "--no-checkpoint"] {
            let r = try sh("ulimit -f 200 && fit --model mlp --epochs 1 --seed 5 -q \(extra) -o m.model train.tns", cwd: tmp)
            XCTAssertEqual(r.status, 74, r.stderr)
            XCTAssertEqual(r.stderrLines.count, 1, r.stderr)
            XCTAssertTrue(r.stderr.contains("File too large"), r.stderr)
            XCTAssertEqual(bytes("\(tmp)/m.model"), old)
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: tmp).filter { $0.hasPrefix(".") }, [])
        }
    }

    func testTensorShowNPZSurvivesEveryIOError() throws {
        XCTAssertEqual(try sh("tensor-show --npz data.npz train.tns", cwd: tmp).status, 0)
        try sweep("tensor-show --npz data.npz train.tns", output: "\(tmp)/data.npz")
    }

    /// A side file (--save, --save-vocab) failing beside a stream on stdout: the stream was
    /// complete (its end record written) before the side file was committed, so a pipeline
    /// without pipefail went on and succeeded on it. The side file is now committed before the
    /// end record, and the reader downstream fails on the stream cut short.
    func testASideFileThatFailsBesideAStreamOnStdoutCutsTheStream() throws {
        let text = testdata("text/reviews-train.tsv")
        for (command, side) in [("normalize --standardize --save s.stats train.tns", "s.stats"),
                                ("tensor-load --text \(text) --max-len 8 --save-vocab v.vocab", "v.vocab")] {
            XCTAssertEqual(try sh("\(command) | tensor-show --count", cwd: tmp).status, 0)
            let good = bytes("\(tmp)/\(side)")
            // The pipe has no fsync: the first is the side file's.
            let r = try sh("TENSOR_FAULT=fsync:1 \(command) | tensor-show --count", cwd: tmp)
            XCTAssertEqual(r.status, 65, "the reader fails: \(r.stderr)")
            XCTAssertTrue(r.stderr.contains("\(side): fsync: Input/output error"), r.stderr)
            XCTAssertTrue(r.stderr.contains("tensor-show: stdin: "), r.stderr)
            XCTAssertEqual(bytes("\(tmp)/\(side)"), good, "\(side) untouched")
        }
    }

    func testARefusedThreadChangesNothingButSpeed() throws {
        // TENSOR_FAULT=thread:1 refuses the first worker thread, as a system at its process
        // limit does. The calling thread then runs the parts that worker would have: the model
        // and the predictions are those of an unrefused run at the same --threads.
        let fit = "fit --threads 2 --batch 16 --epochs 1 --seed 1 -q --no-checkpoint train.tns"
        for f in ["", "TENSOR_FAULT=thread:1 "] {
            XCTAssertEqual(try sh("\(f)\(fit) --model mlp -o 'mlp\(f.isEmpty ? "" : "-refused").model'", cwd: tmp).status, 0)
        }
        XCTAssertEqual(bytes("\(tmp)/mlp-refused.model"), bytes("\(tmp)/mlp.model"))
        let p = try sh("predict --threads 2 -m mlp.model --format csv train.tns", cwd: tmp)
        XCTAssertEqual(p.status, 0, p.stderr)
        XCTAssertEqual(try sh("TENSOR_FAULT=thread:1 predict --threads 2 -m mlp.model --format csv train.tns", cwd: tmp).stdout, p.stdout)
        // BatchNorm's replicas meet at a barrier, so each needs a thread: with one refused,
        // one replica takes the batch, which is the run at --threads 1. Without that clamp the
        // second replica never came and training hung.
        let bn = "--model 'dense 16; batchnorm; relu; dense classes'"
        let refused = try sh("TENSOR_FAULT=thread:1 timeout 60 \(fit) \(bn) -o bn-refused.model", cwd: tmp)
        XCTAssertEqual(refused.status, 0, refused.stderr)
        XCTAssertEqual(try sh("\(fit.replacingOccurrences(of: "--threads 2", with: "--threads 1")) \(bn) -o bn1.model", cwd: tmp).status, 0)
        XCTAssertEqual(bytes("\(tmp)/bn-refused.model"), bytes("\(tmp)/bn1.model"))
    }
}
