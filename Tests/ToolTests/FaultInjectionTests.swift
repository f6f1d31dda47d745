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
        // as well, a failure of the second rename leaves one file new and the other old.)
        XCTAssertEqual(try sh("normalize --standardize --save s.stats train.tns >/dev/null", cwd: tmp).status, 0)
        try sweep("normalize --minmax --save s.stats train.tns >/dev/null", output: "\(tmp)/s.stats")
    }

    /// score's table (-o) and report (--report) are one result: an fsync failing on either
    /// leaves both files as they were (the table was renamed into place before the report was
    /// written, so a failing report left a new table beside an old report).
    func testScoresTableAndReportAreReplacedTogether() throws {
        XCTAssertEqual(try sh("fit --model mlp --epochs 1 -q -o m.model train.tns && predict -m m.model train.tns > p.tns", cwd: tmp).status, 0)
        try Data("old table\n".utf8).write(to: URL(fileURLWithPath: "\(tmp)/t.txt"))
        try Data("old report\n".utf8).write(to: URL(fileURLWithPath: "\(tmp)/r.html"))
        var n = 1
        while n <= 10 {
            let r = try sh("TENSOR_FAULT=fsync:\(n) score -o t.txt --report r.html p.tns", cwd: tmp)
            if r.status == 0 { break }
            XCTAssertEqual(r.status, 74, "fsync:\(n): \(r.stderr)")
            XCTAssertEqual(bytes("\(tmp)/t.txt"), Array("old table\n".utf8), "fsync:\(n): the table untouched")
            XCTAssertEqual(bytes("\(tmp)/r.html"), Array("old report\n".utf8), "fsync:\(n): the report untouched")
            n += 1
        }
        XCTAssertEqual(n, 3, "two files, two fsyncs")
        XCTAssertTrue(String(decoding: bytes("\(tmp)/t.txt") ?? [], as: UTF8.self).contains("accuracy"))
        XCTAssertTrue(String(decoding: bytes("\(tmp)/r.html") ?? [], as: UTF8.self).contains("<html"))
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
}
