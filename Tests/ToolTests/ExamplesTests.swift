// Every shell example in README.md and in the EXAMPLES sections of the man pages is run here,
// against testdata/ (and Debian's Fashion-MNIST, which scripts/test installs), so a changed
// option breaks the build of the docs, not the user.

import Foundation
import XCTest
import _TestSupport

final class ExamplesTests: XCTestCase {
    /// Runs `script` with bash (errexit, pipefail) in a scratch directory holding a link to
    /// testdata/, and asserts success with nothing on stderr.
    func runExample(_ script: String, from source: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createSymbolicLink(atPath: dir + "/testdata", withDestinationPath: packageRoot().path + "/testdata")
        let r = try sh("bash -c 'set -eo pipefail\n\(script.replacingOccurrences(of: "'", with: "'\\''"))'", cwd: dir)
        XCTAssertEqual(r.status, 0, "\(source) example failed:\n\(script)\nstderr: \(r.stderr)", file: file, line: line)
        XCTAssertEqual(r.stderr, "", "\(source) example wrote to stderr:\n\(script)", file: file, line: line)
    }

    func testREADMEExamplesRun() throws {
        let text = try String(contentsOfFile: packageRoot().path + "/README.md", encoding: .utf8)
        var blocks: [[String]] = [[]]
        for l in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if l.hasPrefix("    ") { blocks[blocks.count - 1].append(String(l.dropFirst(4))) } else if !blocks.last!.isEmpty { blocks.append([]) }
        }
        // The tutorial block trains on Fashion-MNIST for a minute: scripts/demo runs it. Blocks
        // of scripts/ commands and crontab lines are run by their own tests (WorkflowTests,
        // MakefileTests).
        let crontab = try NSRegularExpression(pattern: #"^[0-9*@]"#)
        let runnable = blocks.filter { b in
            b.contains { $0.contains("tensor-") } && !b.contains { $0.hasPrefix("scripts/") || $0.hasPrefix("sudo scripts/") }
                && b.first?.hasPrefix("# tutorial:") != true
                && !b.contains { crontab.firstMatch(in: $0, range: NSRange($0.startIndex..., in: $0)) != nil }
        }
        XCTAssertFalse(runnable.isEmpty, "README has runnable examples")
        for b in runnable { try runExample(b.joined(separator: "\n"), from: "README.md") }
    }
}
