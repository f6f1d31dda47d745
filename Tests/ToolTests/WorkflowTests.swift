// The workflows around the tools: scripts/install and scripts/uninstall into a temporary
// prefix, the man pages' section order and lint, and scripts/cron-retrain's gate, its
// comparison with the served model and its refusals.

import Foundation
import XCTest
import _TestSupport

final class WorkflowTests: XCTestCase {
    var tmp = ""
    override func setUpWithError() throws { tmp = try makeTempDir() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: tmp) }

    func files(under dir: String) -> [String] {
        (FileManager.default.enumerator(atPath: dir)?.allObjects as? [String] ?? []).sorted()
    }

    func testInstallThenUninstallLeavesThePrefixAsItWas() throws {
        let root = packageRoot().path
        let prefix = "\(tmp)/usr"
        // What was there before stays: an existing, empty man5 directory and a foreign file.
        try FileManager.default.createDirectory(atPath: "\(prefix)/share/man/man5", withIntermediateDirectories: true)
        try "keep me\n".write(toFile: "\(prefix)/share/man/other.txt", atomically: true, encoding: .utf8)
        let before = files(under: tmp)
        // The executables this test run built (scripts/install builds release ones itself).
        let r = try sh("TT_BIN=\(productsDirectory().path) \(root)/scripts/install \(prefix)")
        XCTAssertEqual(r.status, 0, r.stderr)
        let tools = try installedTools()
        XCTAssertGreaterThanOrEqual(tools.count, 8)
        XCTAssertFalse(tools.contains("tensor-fuzz"), "the fuzz driver is not installed")
        for t in tools {
            // Run from the installed copy, not the build: PATH has only the prefix and the system.
            let v = try sh("PATH=\(prefix)/bin:/usr/bin:/bin; export PATH; command -v \(t) && \(t) --version")
            XCTAssertEqual(v.status, 0, "\(t): \(v.stderr)")
            XCTAssertTrue(v.stdoutText.hasPrefix("\(prefix)/bin/\(t)\n"), v.stdoutText)
            XCTAssertTrue(FileManager.default.fileExists(atPath: "\(prefix)/share/bash-completion/completions/\(t)"))
            XCTAssertTrue(FileManager.default.fileExists(atPath: "\(prefix)/share/zsh/site-functions/_\(t)"))
        }
        XCTAssertEqual(try sh("\(prefix)/share/tensor-tools/cron-retrain").status, 64, "the cron workflow is installed (and asks for DIR)")
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(prefix)/share/tensor-tools/fashion-mnist.mk"))
        let man = try sh("MANPAGER=cat MANWIDTH=80 man -M \(prefix)/share/man fit")
        XCTAssertEqual(man.status, 0, man.stderr)
        XCTAssertTrue(man.stdoutText.contains("SYNOPSIS") && man.stdoutText.contains("--stream"), String(man.stdoutText.prefix(300)))
        let stream = try sh("MANPAGER=cat man -M \(prefix)/share/man 5 tensor-stream")
        XCTAssertEqual(stream.status, 0, stream.stderr)
        let completion = try sh("bash -c 'source \(prefix)/share/bash-completion/completions/fit && complete -p fit'")
        XCTAssertEqual(completion.status, 0, completion.stderr)

        // Installing again is harmless; uninstall removes exactly what install added.
        XCTAssertEqual(try sh("TT_BIN=\(productsDirectory().path) \(root)/scripts/install \(prefix)").status, 0)
        let u = try sh("\(root)/scripts/uninstall \(prefix)")
        XCTAssertEqual(u.status, 0, u.stderr)
        XCTAssertEqual(files(under: tmp), before)
        XCTAssertEqual(try sh("\(root)/scripts/uninstall \(prefix)").status, 66, "nothing installed there any more")
    }

    /// The executable products of Package.swift: what scripts/install puts in bin.
    func installedTools() throws -> [String] {
        let text = try String(contentsOfFile: packageRoot().path + "/Package.swift", encoding: .utf8)
        let re = try NSRegularExpression(pattern: #"\.executable\(name: "([^"]+)""#)
        return re.matches(in: text, range: NSRange(text.startIndex..., in: text)).map { String(text[Range($0.range(at: 1), in: text)!]) }
    }

    func testManPagesAreLintCleanAndInMdocOrder() throws {
        let order = ["NAME", "LIBRARY", "SYNOPSIS", "DESCRIPTION", "ENVIRONMENT", "FILES", "EXIT STATUS", "EXAMPLES",
                     "DIAGNOSTICS", "SEE ALSO", "STANDARDS", "HISTORY", "AUTHORS", "CAVEATS", "BUGS"]
        let dir = packageRoot().path + "/man"
        for page in try FileManager.default.contentsOfDirectory(atPath: dir).sorted() {
            let text = try String(contentsOfFile: "\(dir)/\(page)", encoding: .utf8)
            let sections = text.split(separator: "\n").filter { $0.hasPrefix(".Sh ") }.map { String($0.dropFirst(4)) }
            let positions = sections.map { order.firstIndex(of: $0) ?? -1 }
            XCTAssertFalse(positions.contains(-1), "\(page): unknown section in \(sections)")
            XCTAssertEqual(positions, positions.sorted(), "\(page): sections out of mdoc order: \(sections)")
            var required = ["NAME", "DESCRIPTION", "EXAMPLES", "SEE ALSO"]
            if page.hasSuffix(".1") { required += ["SYNOPSIS", "EXIT STATUS"] }
            for s in required { XCTAssertTrue(sections.contains(s), "\(page) has no \(s)") }
            let lint = try sh("mandoc -T lint -W warning \(dir)/\(page)")
            XCTAssertEqual(lint.stdoutText + lint.stderr, "", "\(page): mandoc -T lint")
        }
    }

    /// Every line of a cron-retrain log is `YYYY-MM-DDTHH:MM:SSZ cron-retrain: `…, and there is one.
    func timeStamped(_ log: String) -> Bool {
        !log.isEmpty && log.split(separator: "\n").allSatisfy { $0.range(of: #"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ cron-retrain: "#, options: .regularExpression) != nil }
    }

    func testCronRetrainReplacesTheServedModelOnlyWhenTheGatePasses() throws {
        let script = packageRoot().path + "/scripts/cron-retrain"
        let data = "tensor-load --label species \(testdata("csv/iris-small.csv"))"
        XCTAssertEqual(try sh("\(data) -o \(tmp)/train.tns && cp \(tmp)/train.tns \(tmp)/test.tns").status, 0)
        let env = "MODEL='dense 16 relu; dense classes' EPOCHS=150 BATCH=4 LR=0.01 THREADS=1"

        let good = try sh("\(env) GATE='accuracy>=0.9' \(script) \(tmp)")
        XCTAssertEqual(good.status, 0, good.stdoutText + good.stderr)
        XCTAssertTrue(good.stdoutText.contains("served.model replaced"), good.stdoutText)
        XCTAssertTrue(timeStamped(good.stdoutText), "every line time-stamped: \(good.stdoutText)")
        XCTAssertEqual(good.stdoutText.split(separator: "\n").count, 4, "a line per step (fit, predict, score) and the outcome: \(good.stdoutText)")
        let served = try Data(contentsOf: URL(fileURLWithPath: "\(tmp)/served.model"))
        XCTAssertEqual(try sh("predict -m \(tmp)/served.model \(tmp)/test.tns | tensor-show --count").stdoutText, "12\n")

        let bad = try sh("\(env) GATE='accuracy>=1.01' \(script) \(tmp)")
        XCTAssertEqual(bad.status, 1, bad.stdoutText + bad.stderr)
        XCTAssertTrue(bad.stderr.contains("score: gate accuracy>=1.01 not met: accuracy = "), bad.stderr)
        XCTAssertTrue(bad.stdoutText.contains("not met; served.model kept"), bad.stdoutText)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: "\(tmp)/served.model")), served, "the served model is untouched")

        // A candidate that passes its gate but scores worse than the served model on the same
        // test.tns (one epoch at a tiny rate: about chance) is not served: higher is better for
        // accuracy, lower for log_loss; the figures on one line; several conditions in GATE.
        let weak = "\(env) EPOCHS=1 LR=0.00001"
        let worse = try sh("\(weak) GATE='accuracy>=0 recall[setosa]>=0' \(script) \(tmp)")
        XCTAssertEqual(worse.status, 1, worse.stdoutText + worse.stderr)
        XCTAssertTrue(timeStamped(worse.stdoutText), worse.stdoutText)
        XCTAssertTrue(worse.stdoutText.contains("accuracy: candidate ") && worse.stdoutText.contains(", served.model ") && worse.stdoutText.contains("; served.model scores better and is kept"), worse.stdoutText)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: "\(tmp)/served.model")), served, "the better served model stays")
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(tmp)/served.json"), "the served model's scores are left to look at")
        let worseLoss = try sh("\(weak) GATE='log_loss<=100' \(script) \(tmp)")
        XCTAssertEqual(worseLoss.status, 1, worseLoss.stdoutText + worseLoss.stderr)
        XCTAssertTrue(worseLoss.stdoutText.contains("log_loss: candidate ") && worseLoss.stdoutText.contains("served.model scores better and is kept"), worseLoss.stdoutText)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: "\(tmp)/served.model")), served)

        // A broken training set: fit's error, its status, the served model kept.
        XCTAssertEqual(try sh("head -c 500 \(tmp)/test.tns > \(tmp)/train.tns").status, 0)
        let broken = try sh("\(env) \(script) \(tmp)")
        XCTAssertEqual(broken.status, 65, broken.stdoutText + broken.stderr)
        XCTAssertTrue(broken.stderr.hasPrefix("fit: train.tns: "), broken.stderr)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: "\(tmp)/served.model")), served)

        // Another run in progress: nothing done.
        let locked = try sh("flock \(tmp)/.retrain.lock \(script) \(tmp)")
        XCTAssertEqual(locked.status, 75, locked.stdoutText + locked.stderr)

        // A lock that cannot be opened for writing (an unwritable DIR; a directory in the lock's
        // place stops root too): 74, one time-stamped line, nothing from the shell.
        XCTAssertEqual(try sh("mkdir -p \(tmp)/unwritable/.retrain.lock").status, 0)
        let unwritable = try sh("\(env) \(script) \(tmp)/unwritable")
        XCTAssertEqual(unwritable.status, 74, unwritable.stdoutText + unwritable.stderr)
        XCTAssertTrue(timeStamped(unwritable.stdoutText) && unwritable.stdoutText.contains("cannot open \(tmp)/unwritable/.retrain.lock"), unwritable.stdoutText)
        XCTAssertEqual(unwritable.stdoutText.split(separator: "\n").count, 1, unwritable.stdoutText)
        XCTAssertEqual(unwritable.stderr, "")

        // No flock on PATH (only date, for the log, and the tools): 69, said, not "held".
        XCTAssertEqual(try sh("mkdir \(tmp)/path && ln -s \"$(command -v date)\" \(tmp)/path/date").status, 0)
        let noFlock = try sh("PATH=\(tmp)/path:\(productsDirectory().path) \(env) \(script) \(tmp)")
        XCTAssertEqual(noFlock.status, 69, noFlock.stdoutText + noFlock.stderr)
        XCTAssertTrue(timeStamped(noFlock.stdoutText) && noFlock.stdoutText.contains("flock is not on PATH"), noFlock.stdoutText)

        // A served model that cannot be scored on test.tns (here damaged) is said so, and the
        // candidate is judged by the gate alone.
        XCTAssertEqual(try sh("cp \(tmp)/test.tns \(tmp)/train.tns && printf 'not a model' > \(tmp)/served.model").status, 0)
        let unscored = try sh("\(env) GATE='accuracy>=0.9' \(script) \(tmp)")
        XCTAssertEqual(unscored.status, 0, unscored.stdoutText + unscored.stderr)
        XCTAssertTrue(unscored.stdoutText.contains("served.model cannot be scored on test.tns (status 65)") && unscored.stdoutText.contains("served.model replaced"), unscored.stdoutText)
        XCTAssertEqual(try sh("predict -m \(tmp)/served.model \(tmp)/test.tns | tensor-show --count").stdoutText, "12\n")

        // THREADS defaults to nproc, which follows OMP_NUM_THREADS and exceeds fit's bound of
        // 256 on large machines: fit refused it (64) and no model was ever served.
        let many = try sh("OMP_NUM_THREADS=300 MODEL='dense 16 relu; dense classes' EPOCHS=150 BATCH=4 LR=0.01 GATE='accuracy>=0.9' \(script) \(tmp)")
        XCTAssertEqual(many.status, 0, many.stdoutText + many.stderr)

        // A served.model that is a directory: mv moved the candidate into it and logged
        // "replaced" (0). Now 74, said.
        let dir = "\(tmp)/dir"
        XCTAssertEqual(try sh("mkdir -p \(dir)/served.model && cp \(tmp)/test.tns \(tmp)/train.tns \(dir)/").status, 0)
        let intoDir = try sh("\(env) GATE='accuracy>=0.9' \(script) \(dir)")
        XCTAssertEqual(intoDir.status, 74, intoDir.stdoutText + intoDir.stderr)
        XCTAssertTrue(intoDir.stdoutText.contains("cannot replace served.model"), intoDir.stdoutText)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: "\(dir)/served.model"), [])

        // A DIR that cannot be entered: one time-stamped line, nothing from the shell.
        let missing = try sh("\(script) \(tmp)/nowhere")
        XCTAssertEqual(missing.status, 66)
        XCTAssertTrue(timeStamped(missing.stdoutText) && missing.stdoutText.contains("cannot enter \(tmp)/nowhere"), missing.stdoutText)
        XCTAssertEqual(missing.stderr, "")

        // Stopped by a signal while fit trains (sent to the script and its child, as timeout(1)
        // and a shutdown send it to the process group): the log still ends with a line, and the
        // status is the signal's.
        let served2 = try Data(contentsOf: URL(fileURLWithPath: "\(tmp)/served.model"))
        let stopped = try sh("MODEL='dense 16 relu; dense classes' EPOCHS=100000 BATCH=4 THREADS=1 \(script) \(tmp) & pid=$!; sleep 2; kill -TERM $pid; pkill -TERM -P $pid; wait $pid")
        XCTAssertEqual(stopped.status, 143, stopped.stdoutText + stopped.stderr)
        XCTAssertTrue(timeStamped(stopped.stdoutText), stopped.stdoutText)
        XCTAssertTrue(stopped.stdoutText.hasSuffix("stopped by SIGTERM before the run ended; served.model kept\n"), stopped.stdoutText)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: "\(tmp)/served.model")), served2)
    }
}
