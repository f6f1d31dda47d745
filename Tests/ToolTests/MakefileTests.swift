// scripts/fashion-mnist.mk, the experiment a user copies, run on ten images named like
// Fashion-MNIST's files: it builds everything, a second make does nothing, a changed variable
// retrains without reloading, make -n and -q with other variables write nothing, touched
// training data reruns exactly what depends on it, a failed gate fails make without leaving a
// score.json behind (its scores go to score-failed.json), and clean leaves nothing of ours.

import Foundation
import XCTest
import _TestSupport

final class MakefileTests: XCTestCase {
    func testTheExperimentIsIncremental() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let setup = """
            set -e
            mkdir data
            cp \(testdata("idx/images-u8.idx.gz")) data/train-images-idx3-ubyte.gz
            cp \(testdata("idx/labels-u8.idx")) data/train-labels-idx1-ubyte
            gzip data/train-labels-idx1-ubyte
            cp data/train-images-idx3-ubyte.gz data/t10k-images-idx3-ubyte.gz
            cp data/train-labels-idx1-ubyte.gz data/t10k-labels-idx1-ubyte.gz
            cp \(packageRoot().path)/scripts/fashion-mnist.mk .
            """
        XCTAssertEqual(try sh(setup, cwd: dir).status, 0)
        let vars = "D=data EPOCHS=2 EPOCH_SIZE=10 BATCH=5 THREADS=1 GATE='accuracy>=0' ARCH='conv 4 3x3; batchnorm; relu; maxpool 2; dense classes'"
        let make = "make -f fashion-mnist.mk \(vars)"

        let first = try sh("\(make) -j2", cwd: dir)  // parallel make is safe: one rule per output
        XCTAssertEqual(first.status, 0, first.stdoutText + first.stderr)
        for f in ["train-raw.tns", "train.stats", "train.tns", "test.tns", "fashion.model", "train-log.jsonl", "predictions.tns", "score.json", "report.html"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: "\(dir)/\(f)"), f)
        }
        XCTAssertEqual(try String(contentsOfFile: "\(dir)/train-log.jsonl", encoding: .utf8).split(separator: "\n").count, 2, "two augmented epochs")
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(dir)/score.json"))) as? [String: Any]
        XCTAssertEqual(json?["samples"] as? Int, 10)

        XCTAssertEqual(try sh("\(make) -q", cwd: dir).status, 0, "a second make has nothing to do")
        let again = try sh(make, cwd: dir)
        XCTAssertFalse(again.stdoutText.contains("fit ") || again.stdoutText.contains("tensor-load"), again.stdoutText)

        // make -n and make -q with other variables show the change and write nothing: the next
        // make with the first variables still has nothing to do.
        let other = "make -f fashion-mnist.mk \(vars.replacingOccurrences(of: "EPOCHS=2", with: "EPOCHS=7")) NORM='--standardize'"
        let dry = try sh("\(other) -n", cwd: dir)
        XCTAssertEqual(dry.status, 0, dry.stderr)
        XCTAssertTrue(dry.stdoutText.contains("normalize --standardize --save") && dry.stdoutText.contains("fit --stream"), dry.stdoutText)
        XCTAssertEqual(try sh("\(other) -q", cwd: dir).status, 1, "make -q sees the other variables")
        XCTAssertEqual(try sh("\(make) -q", cwd: dir).status, 0, "the dry runs changed nothing")
        // THREADS defaults to nproc (which follows OMP_NUM_THREADS), capped at fit's 256.
        let many = try sh("OMP_NUM_THREADS=300 \(make.replacingOccurrences(of: " THREADS=1", with: "")) EPOCHS=7 -n", cwd: dir)
        XCTAssertTrue(many.stdoutText.contains("--threads 256 "), many.stdoutText)

        // Another EPOCHS retrains, and does not reload the data.
        let more = try sh("make -f fashion-mnist.mk \(vars.replacingOccurrences(of: "EPOCHS=2", with: "EPOCHS=3"))", cwd: dir)
        XCTAssertEqual(more.status, 0, more.stderr)
        XCTAssertTrue(more.stdoutText.contains("fit --stream"), more.stdoutText)
        XCTAssertFalse(more.stdoutText.contains("tensor-load"), more.stdoutText)

        // New training images: train.tns and everything after it, but not test.tns.
        XCTAssertEqual(try sh("sleep 1; touch data/train-images-idx3-ubyte.gz", cwd: dir).status, 0)
        let touched = try sh("make -f fashion-mnist.mk \(vars.replacingOccurrences(of: "EPOCHS=2", with: "EPOCHS=3"))", cwd: dir)
        XCTAssertEqual(touched.status, 0, touched.stderr)
        let ran = touched.stdoutText
        XCTAssertTrue(ran.contains("train-images-idx3-ubyte.gz y=") && ran.contains("fit --stream") && ran.contains("predict "), ran)
        XCTAssertFalse(ran.contains("t10k-images"), "test.tns is not remade: \(ran)")

        // Other statistics: normalized again (the test data with the training statistics) and
        // retrained, nothing reloaded.
        let norm = try sh("make -f fashion-mnist.mk \(vars.replacingOccurrences(of: "EPOCHS=2", with: "EPOCHS=3")) NORM='--standardize --per-channel'", cwd: dir)
        XCTAssertEqual(norm.status, 0, norm.stderr)
        XCTAssertTrue(norm.stdoutText.contains("normalize --standardize --per-channel --save train.stats") && norm.stdoutText.contains("normalize --load train.stats")
                      && norm.stdoutText.contains("fit --stream"), norm.stdoutText)
        XCTAssertFalse(norm.stdoutText.contains("tensor-load"), norm.stdoutText)

        // A gate that fails fails make, and leaves no score.json to look up to date, but its
        // scores in score-failed.json and the report, drawn before the gate.
        XCTAssertEqual(try sh("rm report.html", cwd: dir).status, 0)
        let gate = try sh("make -f fashion-mnist.mk \(vars.replacingOccurrences(of: "accuracy>=0", with: "accuracy>=1.01").replacingOccurrences(of: "EPOCHS=2", with: "EPOCHS=3")) NORM='--standardize --per-channel'", cwd: dir)
        XCTAssertNotEqual(gate.status, 0)
        XCTAssertTrue(gate.stderr.contains("score: gate accuracy>=1.01 not met"), gate.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(dir)/score.json"))
        let failed = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(dir)/score-failed.json"))) as? [String: Any]
        XCTAssertEqual(failed?["samples"] as? Int, 10)
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(dir)/report.html"))

        // clean removes the products, the params, and what a SIGKILLed tool leaves: temporary
        // files named .NAME.XXXXXX beside its outputs and fit's checkpoint lock; nothing else.
        XCTAssertEqual(try sh("touch .train.tns.Ab12Cd .fashion.model.ckpt.Ef34Gh .fashion.model.ckpt.lock .other.tns.Ij56Kl", cwd: dir).status, 0)
        let clean = try sh("make -f fashion-mnist.mk clean", cwd: dir)
        XCTAssertEqual(clean.status, 0, clean.stderr)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir).sorted(), [".other.tns.Ij56Kl", "data", "fashion-mnist.mk"])
    }
}
