// The assertion every tool test makes about a refusal: the exit status, exactly one stderr
// line, its `tool: where:` prefix, and what it says.

import XCTest
import _TestSupport

extension XCTestCase {
    func assertFails(_ r: RunResult, status: Int32, prefix: String, contains: String? = nil, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(r.status, status, "stderr: \(r.stderr)", file: file, line: line)
        XCTAssertEqual(r.stderrLines.count, 1, "exactly one stderr line, got: \(r.stderr)", file: file, line: line)
        XCTAssertTrue(r.stderr.hasPrefix(prefix), "stderr \(r.stderr) should start with \(prefix)", file: file, line: line)
        if let contains { XCTAssertTrue(r.stderr.contains(contains), "stderr \(r.stderr) should contain \(contains)", file: file, line: line) }
    }
}
