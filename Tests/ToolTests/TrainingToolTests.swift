// fit, predict and normalize as a user runs them: pipelines, outputs, refusals, atomicity.

import Foundation
import TensorCore
import TensorStream
import XCTest
import _TestSupport

final class TrainingToolTests: XCTestCase {
    var tmp = ""
    var images: String { testdata("idx/images-u8.idx.gz") }
    var labels: String { testdata("idx/labels-u8.idx") }

    override func setUpWithError() throws {
        tmp = try makeTempDir()
        let r = try sh("tensor-load x=\(images) y=\(labels) | normalize --scale 255 -o \(tmp)/train.tns")
        XCTAssertEqual(r.status, 0, r.stderr)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: tmp) }

    func data(_ path: String) throws -> [UInt8] { Array(try Data(contentsOf: URL(fileURLWithPath: path))) }

    func testNormalizeScalesAndRecordsTheTransform() throws {
        let (s, n, d) = try readAll(try data("\(tmp)/train.tns"))
        XCTAssertEqual(n, 10)
        XCTAssertEqual(s.field("x")?.dtype, .f32)
        XCTAssertEqual(s.metadata("x.normalize"), "scale 255; shift 0; mul 0.00392156862745098; from u8")
        let xs = d[0].withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        XCTAssertEqual(xs[3 * 784 + 2 * 28 + 5], Float(28) / 255, accuracy: 1e-7)
        XCTAssertEqual(d[1], [3, 1, 4, 1, 5, 9, 2, 6, 5, 3], "other fields pass through")
        assertFails(try sh("normalize --scale 255 --field z \(tmp)/train.tns"), status: 64, prefix: "normalize: --field: ")
    }

    func testFitPredictPipelineOnImages() throws {
        let fit = try sh("fit --model mnist-cnn --epochs 2 --batch 4 --seed 3 -o \(tmp)/m.model \(tmp)/train.tns")
        XCTAssertEqual(fit.status, 0, fit.stderr)
        XCTAssertEqual(fit.stderrLines.count, 2, "one line per epoch when stderr is not a terminal")
        XCTAssertTrue(fit.stderrLines[0].hasPrefix("fit: epoch 1: loss "), fit.stderr)
        XCTAssertTrue(fit.stderrLines[0].contains("accuracy"), fit.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(tmp)/m.model.ckpt"), "checkpoint removed after a good finish")
        let pred = try sh("predict -m \(tmp)/m.model \(tmp)/train.tns")
        XCTAssertEqual(pred.status, 0, pred.stderr)
        let (s, n, d) = try readAll(pred.stdout)
        XCTAssertEqual(n, 10)
        XCTAssertEqual(s.fields.map(\.name), ["x", "y", "p", "yhat"])
        XCTAssertEqual(s.field("p")?.shape.dims, [10])
        XCTAssertEqual(s.field("yhat")?.dtype, .i64)
        XCTAssertEqual(s.classes(of: "yhat")?.count, 10)
        let p = d[2].withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        for k in 0..<10 { XCTAssertEqual(p[k * 10..<k * 10 + 10].reduce(0, +), 1, accuracy: 1e-5, "probabilities sum to 1") }
        let yhat = d[3].withUnsafeBytes { Array($0.bindMemory(to: Int64.self)) }
        for k in 0..<10 { XCTAssertEqual(Int(yhat[k]), p[k * 10..<k * 10 + 10].indices.max { p[$0] < p[$1] }! - k * 10, "yhat is the argmax of p") }
        // Each batch is split across the threads' network replicas (10 samples: parts of 5 and
        // 5, or 3, 3 and 4). The parts' GEMMs have other shapes, so the last bits may differ
        // from one thread's; at a fixed thread count the output is the same bytes every run.
        for t in [2, 3] {
            let runs = try (0..<2).map { _ in try sh("predict --threads \(t) -m \(tmp)/m.model \(tmp)/train.tns") }
            XCTAssertEqual(runs[0].status, 0, runs[0].stderr)
            XCTAssertTrue(runs[0].stdout == runs[1].stdout, "predict --threads \(t) twice gives the same bytes")
            let (_, m, e) = try readAll(runs[0].stdout)
            XCTAssertEqual(m, 10)
            let q = e[2].withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
            for i in p.indices { XCTAssertEqual(q[i], p[i], accuracy: 1e-6, "predict --threads \(t): p of sample \(i / 10), class \(i % 10)") }
        }
    }

    func testFitPredictPipelineLearnsIris() throws {
        XCTAssertEqual(try sh("tensor-load --label species \(testdata("csv/iris-small.csv")) -o \(tmp)/iris.tns").status, 0)
        let fit = try sh("fit --model 'dense 16 relu; dense classes' --epochs 150 --batch 4 --lr 0.01 --seed 3 --threads 1 -o \(tmp)/m.model --log \(tmp)/log.jsonl \(tmp)/iris.tns")
        XCTAssertEqual(fit.status, 0, fit.stderr)
        let log = try String(contentsOfFile: "\(tmp)/log.jsonl", encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(log.count, 150)
        let last = try JSONSerialization.jsonObject(with: Data(log.last!.utf8)) as! [String: Any]
        XCTAssertEqual(last["epoch"] as? Int, 150)
        XCTAssertEqual(last["accuracy"] as? Double, 1.0, "an MLP fits 12 iris flowers")
        let pred = try sh("predict -m \(tmp)/m.model \(tmp)/iris.tns | tensor-cat --fields y,yhat | tensor-show --csv")
        XCTAssertEqual(pred.status, 0, pred.stderr)
        let rows = pred.stdoutText.split(separator: "\n").dropFirst()
        XCTAssertEqual(rows.count, 12)
        for r in rows { let c = r.split(separator: ","); XCTAssertEqual(c[0], c[1], "y,yhat \(r)") }
        let text = try sh("predict -m \(tmp)/m.model --format text \(tmp)/iris.tns")
        XCTAssertTrue(text.stdoutText.hasPrefix("0\tsetosa\t"), text.stdoutText)
        // Integer input for a model trained on floats with no normalization record: a hint.
        let u8 = try makeStream(Schema(fields: [Field(name: "x", dtype: .u8, shape: Shape([4]))]), batches: [(1, [[5, 3, 1, 0]])])
        assertFails(try sh("predict -m \(tmp)/m.model", stdin: u8), status: 65, prefix: "predict: stdin: ",
                    contains: "is u8 but the model was trained on f32; convert it as the training data was (normalize)")
        let csv = try sh("predict -m \(tmp)/m.model --format csv \(tmp)/iris.tns")
        XCTAssertTrue(csv.stdoutText.hasPrefix("p_0,p_1,p_2,yhat\n"), csv.stdoutText)
        XCTAssertEqual(csv.stdoutText.split(separator: "\n").count, 13)
    }

    func testTiesGoToTheLowestClassAndHalfToClassOne() throws {
        // Untrained networks (zero biases) on zero input: three equal probabilities, and a
        // sigmoid of exactly 0.5. predict(1) says yhat is then 0 (numpy.argmax's choice) and 1.
        let x = [Float](repeating: 0, count: 12).withUnsafeBytes { Array($0) }
        for (name, labels, model) in [("c", [0, 1, 2], "--model 'dense 8 relu; dense classes'"), ("b", [0, 1, 1], "--loss bce --model 'dense 8 relu; dense 1 sigmoid'")] {
            let y = labels.map(Int64.init).withUnsafeBytes { Array($0) }
            var s = Schema(fields: [Field(name: "x", dtype: .f32, shape: Shape([4])), Field(name: "y", dtype: .i64, shape: Shape([]))])
            s.setClasses(name == "c" ? ["0", "1", "2"] : ["0", "1"], of: "y")
            try Data(try makeStream(s, batches: [(3, [x, y])])).write(to: URL(fileURLWithPath: "\(tmp)/\(name).tns"))
            let fit = try sh("fit \(model) --epochs 0 --seed 1 -q -o \(name).model \(name).tns", cwd: tmp)
            XCTAssertEqual(fit.status, 0, fit.stderr)
        }
        XCTAssertEqual(try sh("predict -m c.model --format csv c.tns", cwd: tmp).stdoutText,
                       "p_0,p_1,p_2,yhat\n" + String(repeating: "0.33333334,0.33333334,0.33333334,0\n", count: 3))
        XCTAssertEqual(try sh("predict -m b.model --format text b.tns", cwd: tmp).stdoutText, "0\t1\t0.5000\n1\t1\t0.5000\n2\t1\t0.5000\n")
    }

    func testPredictsCSVNamesColumnsAsTensorShowDoes() throws {
        // A binary model's p has shape 1: tensor-show --csv names its column p_0 (a scalar only
        // is named plainly); predict --format csv called it p.
        var s = Schema(fields: [Field(name: "x", dtype: .f32, shape: Shape([4])), Field(name: "y", dtype: .i64, shape: Shape([]))])
        s.setClasses(["0", "1"], of: "y")
        let x = (0..<16).map { Float($0 % 5) }.withUnsafeBytes { Array($0) }
        let y = [Int64]([0, 1, 1, 0]).withUnsafeBytes { Array($0) }
        try Data(try makeStream(s, batches: [(4, [x, y])])).write(to: URL(fileURLWithPath: "\(tmp)/b.tns"))
        let r = Schema(fields: [Field(name: "x", dtype: .f32, shape: Shape([4])), Field(name: "y", dtype: .f32, shape: Shape([2]))])
        try Data(try makeStream(r, batches: [(2, [Array(x.prefix(32)), Array(x.prefix(16))])])).write(to: URL(fileURLWithPath: "\(tmp)/r.tns"))
        for (data, model) in [("b.tns", "--loss bce --model 'dense 1 sigmoid'"), ("train.tns", "--model 'dense classes'"), ("r.tns", "--loss mse --model 'dense 2'")] {
            let fit = try sh("fit \(model) --epochs 1 --seed 1 -q -o m.model \(data)", cwd: tmp)
            XCTAssertEqual(fit.status, 0, fit.stderr)
            let csv = try sh("predict -m m.model --format csv \(data)", cwd: tmp)
            let shown = try sh("predict -m m.model \(data) | tensor-cat --fields \(data == "r.tns" ? "yhat" : "p,yhat") | tensor-show --csv", cwd: tmp)
            XCTAssertEqual(csv.status, 0, csv.stderr)
            XCTAssertEqual(shown.status, 0, shown.stderr)
            XCTAssertEqual(csv.stdoutText.split(separator: "\n").first, shown.stdoutText.split(separator: "\n").first, data)
            XCTAssertEqual(csv.stdoutText, shown.stdoutText, "\(data): the same values too")
        }
    }

    func testACutStreamHasHadTheRowsBeforeTheCutWritten() throws {
        // predict(1): --format csv|text to stdout writes as the input is read, so a stream cut
        // short exits 65 after whole rows of the batches before the cut have gone out.
        let n = 120_000, per = 1000
        var s = Schema(fields: [Field(name: "x", dtype: .f32, shape: Shape([4])), Field(name: "y", dtype: .i64, shape: Shape([]))])
        s.setClasses(["0", "1", "2"], of: "y")
        let x = [Float](repeating: 0, count: 4 * per).withUnsafeBytes { Array($0) }
        let y = (0..<per).map { Int64($0 % 3) }.withUnsafeBytes { Array($0) }
        let bytes = try makeStream(s, batches: Array(repeating: (per, [x, y]), count: n / per))
        try Data(bytes.prefix(bytes.count - 100)).write(to: URL(fileURLWithPath: "\(tmp)/cut.tns"))
        try Data(bytes).write(to: URL(fileURLWithPath: "\(tmp)/whole.tns"))
        XCTAssertEqual(try sh("fit --model 'dense classes' --epochs 0 -q -o m.model whole.tns", cwd: tmp).status, 0)
        for format in ["csv", "text"] {
            let r = try sh("predict -m m.model --format \(format) cut.tns", cwd: tmp)
            assertFails(r, status: 65, prefix: "predict: cut.tns: ", contains: "no end record")
            let rows = r.stdoutText.split(separator: "\n", omittingEmptySubsequences: false)
            XCTAssertEqual(rows.last, "", "\(format): whole rows")
            XCTAssertTrue(rows.count > 1000 && rows.count < n, "\(format): \(rows.count - 1) rows of \(n) written before the cut was found")
            XCTAssertTrue(rows.dropLast().allSatisfy { $0.split(separator: format == "csv" ? "," : "\t").count == (format == "csv" ? 4 : 3) }, format)
        }
    }

    func testSameSeedGivesAByteIdenticalModel() throws {
        for name in ["a", "b"] {
            let r = try sh("fit --model 'conv 4 3x3 relu; maxpool 2; dropout 0.2; dense classes' --epochs 2 --batch 4 --seed 9 --threads 1 -q -o \(tmp)/\(name).model \(tmp)/train.tns")
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertEqual(r.stderr, "", "--quiet")
        }
        XCTAssertEqual(try data("\(tmp)/a.model"), try data("\(tmp)/b.model"))
        let c = try sh("fit --model 'conv 4 3x3 relu; maxpool 2; dropout 0.2; dense classes' --epochs 2 --batch 4 --seed 10 --threads 1 -q -o \(tmp)/c.model \(tmp)/train.tns")
        XCTAssertEqual(c.status, 0, c.stderr)
        XCTAssertNotEqual(try data("\(tmp)/a.model"), try data("\(tmp)/c.model"), "another seed, another model")
    }

    /// A network with BatchNorm trains on every thread (its replicas share the batch's
    /// statistics: KernelTests) and, like any other, gives the same model for the same seed and
    /// --threads.
    func testBatchNormTrainsReproduciblyOnThreads() throws {
        for name in ["a", "b"] {
            let r = try sh("fit --model 'conv 4 3x3; batchnorm; relu; flatten; dense 8; batchnorm; relu; dense classes' --epochs 2 --batch 4 --seed 3 --threads 4 -q -o \(tmp)/bn-\(name).model \(tmp)/train.tns")
            XCTAssertEqual(r.status, 0, r.stderr)
        }
        XCTAssertEqual(try data("\(tmp)/bn-a.model"), try data("\(tmp)/bn-b.model"))
    }

    func testResumeContinuesFromTheSavedEpoch() throws {
        XCTAssertEqual(try sh("fit --model mlp --epochs 2 --batch 5 -q -o \(tmp)/m.model \(tmp)/train.tns").status, 0)
        let r = try sh("fit --resume \(tmp)/m.model --epochs 1 --batch 5 -o \(tmp)/m2.model \(tmp)/train.tns")
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.hasPrefix("fit: epoch 3: "), r.stderr)
        func optimizer(_ path: String) throws -> String? { try readAll(try data(path)).0.metadata("model.optimizer") }
        XCTAssertTrue(try optimizer("\(tmp)/m2.model")?.hasPrefix("adam lr=0.001 ") == true, "the model's learning rate is kept")
        XCTAssertEqual(try sh("fit --resume \(tmp)/m.model --lr 0.25 --epochs 1 -q -o \(tmp)/m3.model \(tmp)/train.tns").status, 0)
        XCTAssertTrue(try optimizer("\(tmp)/m3.model")?.hasPrefix("adam lr=0.25 ") == true, "--lr overrides it")
        // More training must see the data as the model saw it.
        let raw = try sh("tensor-load x=\(images) y=\(labels) | fit --resume \(tmp)/m.model --epochs 1 -o \(tmp)/m4.model")
        assertFails(raw, status: 65, prefix: "fit: stdin: ", contains: "is u8 normalized as (raw) but \(tmp)/m.model was trained on f32 normalized as (scale 255)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(tmp)/m4.model"))
    }

    /// Trains for 3 epochs, and for 1 and then 2 more by --resume (with `resume`'s options),
    /// and asserts that the two models are one to the byte.
    func assertOnePlusTwoIsThree(_ options: String, resume: String, _ message: String, file: StaticString = #filePath, line: UInt = #line) throws {
        XCTAssertEqual(try sh("fit \(options) --epochs 3 -o \(tmp)/whole.model \(tmp)/train.tns").status, 0, file: file, line: line)
        XCTAssertEqual(try sh("fit \(options) --epochs 1 -o \(tmp)/one.model \(tmp)/train.tns").status, 0, file: file, line: line)
        let resumed = try sh("fit --resume \(tmp)/one.model --epochs 2 \(resume) -o \(tmp)/more.model \(tmp)/train.tns")
        XCTAssertEqual(resumed.status, 0, resumed.stderr, file: file, line: line)
        XCTAssertTrue(try data("\(tmp)/whole.model") == data("\(tmp)/more.model"), message, file: file, line: line)
    }

    func testPredictWritesAWideOutputInBatchesAReaderTakes() throws {
        // 3000 classes on 3000 scalars: 12 KB of output a sample, 36 MB for the input's one
        // batch, which predict held and wrote as one batch, past what a reader allowing 34 MB
        // a batch takes (and a model of 65536 outputs on a million scalars wanted 256 GB;
        // helper-44's review). Now slices of about 32 MiB of output, the same predictions.
        let make = """
            /usr/bin/python3 -c 'import numpy as np; n = 3000; np.save("x.npy", (np.arange(n) % 251).astype(np.uint8)); np.save("y.npy", np.arange(n))'
            tensor-load x=x.npy y=y.npy -o wide.tns && fit --model 'dense classes' --epochs 1 --batch 500 -q --no-checkpoint -o wide.model wide.tns
            """
        XCTAssertEqual(try sh(make, cwd: tmp).status, 0)
        XCTAssertEqual(try sh("predict -m wide.model wide.tns | TENSOR_MAX_BATCH_BYTES=34000000 tensor-show --count", cwd: tmp).stdoutText, "3000\n")
        let whole = try sh("predict -m wide.model wide.tns | tensor-cat --fields p,yhat -o whole.tns && tensor-show --count whole.tns && tensor-show --npz whole.npz whole.tns", cwd: tmp)
        XCTAssertEqual(whole.stdoutText, "3000\n", whole.stderr)
        XCTAssertEqual(try sh("tensor-cat --head 2000 wide.tns | predict -m wide.model | tensor-cat --fields p,yhat | tensor-show --npz first.npz", cwd: tmp).status, 0)
        let same = try sh("""
            /usr/bin/python3 -c 'import numpy as np; w = np.load("whole.npz"); f = np.load("first.npz"); print(all((w[k][:2000] == f[k]).all() for k in ("p", "yhat")))'
            """, cwd: tmp)
        XCTAssertEqual(same.stdoutText, "True\n", "the same predictions, in order: \(same.stderr)")
    }

    func testResumingIsTheUninterruptedRun() throws {
        // Three epochs, or one and two more from its model or its checkpoint, are one model to
        // the byte: the shuffling and the dropout masks continue where the run stopped (a
        // resumed epoch 2 drew epoch 1's order again, from the seed), and BatchNorm's running
        // statistics are the model's.
        for threads in [1, 2] {
            let common = "--batch 3 --threads \(threads) -q"
            try assertOnePlusTwoIsThree("--model 'dense 32; batchnorm; relu; dropout 0.3; dense classes' --seed 7 \(common)", resume: common, "\(threads) threads: 1 + 2 epochs is 3")
        }
        // Every generator of a run (the shuffler, each replica's dropout) is a stream of its
        // own, also across seeds: replica k was seeded seed + k, so seed 1's second replica drew
        // the dropout masks of seed 2's first (helper-45's review).
        var groups: [String] = []
        for seed in 1...3 {
            XCTAssertEqual(try sh("fit --model 'dense 8; dropout 0.5; dense classes' --seed \(seed) --threads 2 --batch 4 --epochs 1 -q -o \(tmp)/s\(seed).model \(tmp)/train.tns").status, 0)
            let words = try XCTUnwrap(try readAll(try data("\(tmp)/s\(seed).model")).0.metadata("model.random")).split(separator: " ")
            XCTAssertEqual(words.count, 12, "a shuffler and two replicas")
            groups += stride(from: 0, to: words.count, by: 4).map { words[$0..<$0 + 4].joined(separator: " ") }
        }
        XCTAssertEqual(Set(groups).count, groups.count, "no two generators in one state: \(groups)")
        // The batch size is the model's too: resumed without --batch, it went back to 32
        // (helper-45's review).
        try assertOnePlusTwoIsThree("--model 'dense 16 relu; dense classes' --seed 2 --batch 3 --threads 1 -q", resume: "--threads 1 -q", "the model's batch size is kept")
        XCTAssertEqual(try readAll(try data("\(tmp)/more.model")).0.metadata("model.batch"), "3")
        // The random state is the model's: a --seed beside --resume would be ignored.
        assertFails(try sh("fit --resume \(tmp)/one.model --seed 3 -o \(tmp)/x.model \(tmp)/train.tns"), status: 64,
                    prefix: "fit: --seed does not go with --resume")
        XCTAssertNotNil(try readAll(try data("\(tmp)/whole.model")).0.metadata("model.random"))
        // A hand-edited random state is bad data, named, not a trap or a silent reseed.
        let (schema, n, fields) = try readAll(try data("\(tmp)/one.model"))
        for bad in ["zz", "0 0 0 0", "1 2 3"] {
            var s = schema
            s.setMetadata("model.random", bad)
            try Data(try makeStream(s, batches: [(n, fields)])).write(to: URL(fileURLWithPath: "\(tmp)/edited.model"))
            assertFails(try sh("fit --resume \(tmp)/edited.model --epochs 1 -q -o \(tmp)/x.model \(tmp)/train.tns"), status: 65,
                        prefix: "fit: \(tmp)/edited.model: model.random is not a random state")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(tmp)/x.model"))
    }

    func testTwoFitsOfOneCheckpointAreRefused() throws {
        // A second fit of the same -o replaced the first one's checkpoint, then removed it at
        // its end. flock(1) holds the lock here as a running fit would.
        let r = try sh("flock \(tmp)/.m.model.ckpt.lock fit --model mlp --epochs 1 -q -o \(tmp)/m.model \(tmp)/train.tns")
        assertFails(r, status: 64, prefix: "fit: \(tmp)/m.model.ckpt: another fit is writing this checkpoint (it holds \(tmp)/.m.model.ckpt.lock)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(tmp)/m.model"))
        // Alone, it trains, and leaves neither the checkpoint nor its lock behind.
        XCTAssertEqual(try sh("fit --model mlp --epochs 1 -q -o \(tmp)/m.model \(tmp)/train.tns").status, 0)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: tmp).filter { $0.contains("m.model") }, ["m.model"])
    }

    /// predict sizes its batches by what inference holds; a recurrent layer reserved its
    /// training buffers all the same (here the embedded inputs again, time-major: 131 MB),
    /// and under `ulimit -v` OpenBLAS then failed to map its buffer and retried forever.
    func testRecurrentInferenceFitsTheAddressSpaceLimit() throws {
        let letters = Array("abcdefgh ")
        var text: [String] = []
        for n in 0..<16 {
            var line = n % 2 == 0 ? "neg\t" : "pos\t"
            for i in 0..<4000 { line.append(letters[(i * 7 + n * 3 + i / 5) % 9]) }
            text.append(line)
        }
        try (text.joined(separator: "\n") + "\n").write(toFile: "\(tmp)/long.tsv", atomically: true, encoding: .utf8)
        XCTAssertEqual(try sh("tensor-load --text long.tsv --tokenizer char --max-len 4000 -o long.tns && fit --model 'embedding 512; lstm 8; dense classes' --epochs 0 -q -o l.model long.tns", cwd: tmp).status, 0)
        let r = try sh("ulimit -v 450000 && timeout 30 predict -m l.model --threads 1 long.tns | tensor-show --count", cwd: tmp)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdoutText, "16\n")
    }

    func testAddressSpaceLimitsAreAnErrorNotAHang() throws {
        // OpenBLAS retries a failed buffer mapping forever; under `ulimit -v` fit and predict
        // use the threads that fit, or say the limit is too small.
        let tight = try sh("ulimit -v 200000 && timeout 60 fit --model mlp --epochs 1 -o \(tmp)/m.model \(tmp)/train.tns")
        assertFails(tight, status: 70, prefix: "fit: ulimit -v: ", contains: "too little room for OpenBLAS")
        let some = try sh("ulimit -v 450000 && timeout 60 fit --model mlp --epochs 1 --threads 2 -o \(tmp)/m.model \(tmp)/train.tns")
        XCTAssertEqual(some.status, 0, some.stderr)
        XCTAssertEqual(some.stderrLines.first, "fit: warning: ulimit -v leaves room for 1 of 2 threads")
        let p = try sh("ulimit -v 200000 && timeout 60 predict -m \(tmp)/m.model \(tmp)/train.tns")
        assertFails(p, status: 70, prefix: "predict: ulimit -v: ")
        // A batch whose buffers the limit cannot hold: refused before allocating (a trap before).
        // Each sample held takes 3 KB (784 inputs and its targets): a million are 3.2 GB.
        let big = try sh("ulimit -v 3000000 && timeout 60 fit --model mlp --epochs 1 --batch 1000000 -o \(tmp)/big.model \(tmp)/train.tns")
        assertFails(big, status: 70, prefix: "fit: --batch 1000000: needs about 3.2 GB of working memory", contains: "lower --batch or --threads")
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(tmp)/big.model"))
        // A network whose one sample does not fit: named, whatever the batch (attention over
        // 32768 steps holds 32768² scores a sample).
        var schema = Schema(fields: [Field(name: "x", dtype: .f32, shape: Shape([32768, 1])), Field(name: "y", dtype: .u8, shape: Shape([]))])
        schema.setClasses(["a", "b"], of: "y")
        let long = try makeStream(schema, batches: [(2, [[UInt8](repeating: 0, count: 2 * 32768 * 4), [0, 1]])])
        try Data(long).write(to: URL(fileURLWithPath: "\(tmp)/long.tns"))
        let arch = "attention 1; timepool mean; dense classes"
        assertFails(try sh("ulimit -v 3000000 && timeout 60 fit --model '\(arch)' --batch 1 --threads 1 -o \(tmp)/long.model \(tmp)/long.tns"), status: 70,
                    prefix: "fit: \(arch): needs about", contains: "even one sample is too many for this network")
    }

    func testLogToStandardOutput() throws {
        // --log - writes its JSON lines to stdout (fit(1)), one per epoch.
        let r = try sh("fit --model mlp --epochs 2 -q --log - -o \(tmp)/m.model \(tmp)/train.tns")
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = r.stdoutText.split(separator: "\n")
        XCTAssertEqual(lines.count, 2, r.stdoutText)
        for (i, l) in lines.enumerated() {
            let o = try JSONSerialization.jsonObject(with: Data(l.utf8)) as? [String: Any]
            XCTAssertEqual(o?["epoch"] as? Int, i + 1)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(tmp)/-"), "no file named '-'")
    }

    /// The log is opened before the data is read (an unwritable path fails at once), but a log
    /// that run created stays only if it holds a record or the run ended well; a log that was
    /// there keeps what it had.
    func testAFailedRunLeavesNoEmptyLogBehind() throws {
        try Data("not a stream".utf8).write(to: URL(fileURLWithPath: "\(tmp)/bad.tns"))
        assertFails(try sh("fit --model mlp --log \(tmp)/new.jsonl -o \(tmp)/m.model \(tmp)/bad.tns"), status: 65, prefix: "fit: \(tmp)/bad.tns: ")
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(tmp)/new.jsonl"), "an empty log created by a run that failed")
        // through a symbolic link to nothing: the file created is the link's target
        try FileManager.default.createSymbolicLink(atPath: "\(tmp)/link.jsonl", withDestinationPath: "nowhere.jsonl")
        assertFails(try sh("fit --model mlp --log \(tmp)/link.jsonl -o \(tmp)/m.model \(tmp)/bad.tns"), status: 65, prefix: "fit: \(tmp)/bad.tns: ")
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(tmp)/nowhere.jsonl"), "the link's target, created by a run that failed")
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: "\(tmp)/link.jsonl"), "nowhere.jsonl")
        // SIGTERM while fit waits for its data (the header came, the batches have not): the log
        // it opened is there during the run and gone after.
        let term = try sh("""
            mkfifo in.fifo
            fit --model mlp --log sig.jsonl -o s.model - <in.fifo 2>/dev/null & p=$!
            exec 3>in.fifo; head -c 4096 train.tns >&3
            for i in $(seq 300); do test -e sig.jsonl && break; sleep 0.1; done
            test -e sig.jsonl && echo during; kill -TERM $p; wait $p; echo $?; exec 3>&-; test -e sig.jsonl && echo after; true
            """, cwd: tmp)
        XCTAssertEqual(term.stdoutText, "during\n143\n", term.stderr)
        try Data("{\"epoch\":1}\n".utf8).write(to: URL(fileURLWithPath: "\(tmp)/old.jsonl"))
        assertFails(try sh("fit --model mlp --log \(tmp)/old.jsonl -o \(tmp)/m.model \(tmp)/bad.tns"), status: 65, prefix: "fit: \(tmp)/bad.tns: ")
        XCTAssertEqual(try String(contentsOfFile: "\(tmp)/old.jsonl", encoding: .utf8), "{\"epoch\":1}\n")
        assertFails(try sh("fit --model mlp --log \(tmp)/no/such/dir/log.jsonl -o \(tmp)/m.model \(tmp)/train.tns"), status: 74, prefix: "fit: \(tmp)/no/such/dir/log.jsonl: ")
        XCTAssertEqual(try sh("fit --model mlp --epochs 0 --log \(tmp)/zero.jsonl -o \(tmp)/m.model \(tmp)/train.tns").status, 0)
        XCTAssertEqual(try data("\(tmp)/zero.jsonl"), [], "--epochs 0 ends well: its log is kept, empty")
    }

    func testLearningRateDecaysEveryEpoch() throws {
        let r = try sh("fit --model mlp --epochs 3 --lr 0.01 --lr-decay 0.5 -q --log \(tmp)/log.jsonl -o \(tmp)/m.model \(tmp)/train.tns")
        XCTAssertEqual(r.status, 0, r.stderr)
        let lrs = try String(contentsOfFile: "\(tmp)/log.jsonl", encoding: .utf8).split(separator: "\n").map {
            (try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any])["lr"] as? Double
        }
        XCTAssertEqual(lrs, [0.01, 0.005, 0.0025])
        let optimizer = try readAll(try data("\(tmp)/m.model")).0.metadata("model.optimizer")
        XCTAssertTrue(optimizer?.hasPrefix("adam lr=0.00125 ") == true, "the decayed rate is saved for --resume: \(optimizer ?? "")")
        XCTAssertTrue(optimizer?.hasSuffix(" lr_decay=0.5") == true, "and the factor: \(optimizer ?? "")")
        XCTAssertEqual(try sh("fit --model mlp --lr-decay 1.5 -o \(tmp)/m.model \(tmp)/train.tns").status, 64)
        // A rate decayed below f32's normal numbers trains nothing, and saved as 0 it resumed to
        // nothing: refused before training, or (--stream, epochs unknown) when it gets there.
        assertFails(try sh("fit --model mlp --lr-decay 1e-20 --epochs 3 -o \(tmp)/u.model \(tmp)/train.tns"), status: 64,
                    prefix: "fit: --lr-decay: after 3 epochs the learning rate is 1e-63, below what f32 holds as a normal number")
        assertFails(try sh("fit --model mlp --lr-decay 1e-20 --stream --epoch-size 4 -q -o \(tmp)/u.model < \(tmp)/train.tns"), status: 64,
                    prefix: "fit: --lr-decay: after 2 epochs the learning rate is 1e-43, below what f32 holds as a normal number")
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(tmp)/u.model"))
        // A resumed run goes on decaying (it trained at a constant rate unless --lr-decay was
        // given again): 1 + 2 epochs are the 3-epoch model to the byte; --lr-decay 1 stops it.
        try assertOnePlusTwoIsThree("--model mlp --lr-decay 0.5 --batch 5 --threads 1 -q --seed 3",
                                    resume: "--batch 5 --threads 1 -q --log \(tmp)/resumed.jsonl", "1 + 2 decaying epochs are 3")
        XCTAssertTrue(try String(contentsOfFile: "\(tmp)/resumed.jsonl", encoding: .utf8).contains("\"lr\":0.00025,"))
        XCTAssertEqual(try sh("fit --resume \(tmp)/one.model --lr-decay 1 --epochs 2 --batch 5 --threads 1 -q -o \(tmp)/flat.model \(tmp)/train.tns").status, 0)
        let flat = try readAll(try data("\(tmp)/flat.model")).0.metadata("model.optimizer") ?? ""
        XCTAssertTrue(flat.hasPrefix("adam lr=0.0005 ") && !flat.contains("lr_decay"), flat)
        // A factor outside (0, 1] in a model file is bad data, named.
        var (schema, n, fields) = try readAll(try data("\(tmp)/one.model"))
        schema.setMetadata("model.optimizer", "adam lr=0.001 lr_decay=2")
        try Data(try makeStream(schema, batches: [(n, fields)])).write(to: URL(fileURLWithPath: "\(tmp)/edited.model"))
        assertFails(try sh("fit --resume \(tmp)/edited.model --epochs 1 -q -o \(tmp)/x.model \(tmp)/train.tns"), status: 65,
                    prefix: "fit: \(tmp)/edited.model: optimizer setting lr_decay '2' is not a factor in (0, 1]")
    }

    func testRefusals() throws {
        try sh("tensor-load x=\(images) -o \(tmp)/nolabels.tns")
        assertFails(try sh("normalize --scale 255 \(tmp)/nolabels.tns | fit --model mlp -o \(tmp)/m.model"), status: 65, prefix: "fit: stdin: ", contains: "no target field 'y'")
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(tmp)/m.model"))
        assertFails(try sh("fit --model nosuchpreset -o \(tmp)/m.model \(tmp)/train.tns"), status: 66, prefix: "fit: nosuchpreset: ")
        assertFails(try sh("fit --model 'dense 10 relu; frob 3' -o \(tmp)/m.model \(tmp)/train.tns"), status: 65, prefix: "fit: ", contains: "unknown layer 'frob'")
        assertFails(try sh("fit --model mlp -o \(tmp)/m.model </dev/null"), status: 65, prefix: "fit: stdin: empty input")
        XCTAssertEqual(try sh("fit -o \(tmp)/m.model \(tmp)/train.tns").status, 64, "no --model")
        // A directory that cannot take the model is an error before training, not after it
        // (a million epochs would take hours; the timeout would say 124).
        assertFails(try sh("timeout 60 fit --model mlp --epochs 1000000 -o \(tmp)/no/such/m.model \(tmp)/train.tns"), status: 74,
                    prefix: "fit: \(tmp)/no/such/m.model: cannot write into \(tmp)/no/such: No such file or directory")
        assertFails(try sh("fit --model mlp --epochs 1 -q -o \(tmp)/train.tns/m.model \(tmp)/train.tns"), status: 74,
                    prefix: "fit: \(tmp)/train.tns/m.model: cannot write into \(tmp)/train.tns: Not a directory")
        assertFails(try sh("timeout 60 fit --model mlp --epochs 1000000 --checkpoint \(tmp)/no/c.ckpt -o \(tmp)/m.model \(tmp)/train.tns"), status: 74,
                    prefix: "fit: \(tmp)/no/c.ckpt: cannot write into \(tmp)/no: ")
        // Upstream cut mid-stream: no model.
        assertFails(try sh("head -c 9000 \(tmp)/train.tns | fit --model mlp -o \(tmp)/m.model"), status: 65, prefix: "fit: stdin: ", contains: "no end record")
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(tmp)/m.model"))
    }

    func testTargetsMustFitTheNetworksOutputs() throws {
        // Regression: one target value per output. A wider target once overran the training
        // buffer (a crash), a narrower one read past it (a false "diverged", or nonsense).
        func regression(_ width: Int) throws -> String {
            let floats = (0..<8 * (4 + width)).map { Float($0 % 7) / 7 }
            let bytes = floats.withUnsafeBytes { Array($0) }
            let path = "\(tmp)/reg\(width).tns"
            try Data(try makeStream(Schema(fields: [Field(name: "x", dtype: .f32, shape: Shape([4])), Field(name: "y", dtype: .f32, shape: Shape([width]))]),
                                    batches: [(8, [Array(bytes[..<(8 * 16)]), Array(bytes[(8 * 16)...])])])).write(to: URL(fileURLWithPath: path))
            return path
        }
        let reg3 = try regression(3), reg1 = try regression(1)
        for n in [1, 5] {
            assertFails(try sh("fit --model 'dense \(n)' -q -o \(tmp)/r.model \(reg3)"), status: 65, prefix: "fit: \(reg3): ",
                        contains: "target field 'y' (f32 3) holds 3 values a sample but the network predicts \(n); end it with 'dense 3'")
        }
        XCTAssertEqual(try sh("fit --model 'dense 3' --epochs 1 -q -o \(tmp)/r.model \(reg3)").status, 0)
        // predict's CSV names a column for each of the three values
        let csv = try sh("predict -m \(tmp)/r.model --format csv \(reg3)").stdoutText.split(separator: "\n")
        XCTAssertEqual(csv.first, "yhat_0,yhat_1,yhat_2")
        XCTAssertEqual(csv.count, 9)
        for row in csv.dropFirst() { XCTAssertEqual(row.split(separator: ",").compactMap { Float($0) }.count, 3, String(row)) }
        assertFails(try sh("fit --model 'dense 3' --validation \(reg1) -q -o \(tmp)/other.model \(reg3)"), status: 65, prefix: "fit: \(reg1): ",
                    contains: "holds 1 value a sample but the network predicts 3")
        assertFails(try sh("fit --resume \(tmp)/r.model -q -o \(tmp)/other.model \(reg1)"), status: 65, prefix: "fit: \(reg1): ",
                    contains: "holds 1 value a sample but the network predicts 3")
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(tmp)/other.model"))
        // Integer targets past the class-name limit (a price in dollars) stay integers with
        // no class list: fit says how to train them either way, and --loss mse does.
        let prices = "a,b,price\n" + (0..<8).map { "\($0),\($0 % 3),\(100_000 + 2_500 * $0)\n" }.joined()
        try prices.write(toFile: "\(tmp)/prices.csv", atomically: false, encoding: .utf8)
        XCTAssertEqual(try sh("tensor-load --label price \(tmp)/prices.csv | normalize --standardize -o \(tmp)/prices.tns").status, 0)
        assertFails(try sh("fit --model 'dense 1' -q -o \(tmp)/p.model \(tmp)/prices.tns"), status: 65, prefix: "fit: \(tmp)/prices.tns: ",
                    contains: "field 'y' has no class list (y.classes); name the classes with tensor-load --classes, or fit a regression with --loss mse")
        let mse = try sh("fit --model 'dense 1' --loss mse --epochs 1 -q -o \(tmp)/p.model \(tmp)/prices.tns")
        XCTAssertEqual(mse.status, 0, mse.stderr)
        // Classification: one output per class, or labels index past the outputs.
        for n in [5, 11] {
            assertFails(try sh("fit --model 'dense \(n)' -o \(tmp)/m.model \(tmp)/train.tns"), status: 65, prefix: "fit: dense \(n): layer 'dense \(n)': ",
                        contains: "the network ends in \(n) outputs but the data has 10 classes; end it with 'dense classes'")
        }
        // A shape error names the layer as written, not a line that holds several or none.
        assertFails(try sh("fit --model 'dense 8 relu; conv 4 3x3; dense classes' -o \(tmp)/m.model \(tmp)/train.tns"), status: 65,
                    prefix: "fit: dense 8 relu; conv 4 3x3; dense classes: layer 'conv 4 3x3': conv needs an H×W×C input, got 8")
        // In a file it also names the line (comments and blank lines counted), which the
        // message left the user to find; a preset's lines are not the user's, and stay out.
        try "# a net\ndense 8 relu\n\nconv 4 3x3 # here\ndense classes\n".write(toFile: "\(tmp)/net.arch", atomically: false, encoding: .utf8)
        assertFails(try sh("fit --model \(tmp)/net.arch -o \(tmp)/m.model \(tmp)/train.tns"), status: 65,
                    prefix: "fit: \(tmp)/net.arch: architecture line 4, layer 'conv 4 3x3': conv needs an H×W×C input, got 8")
        XCTAssertEqual(try sh("tensor-load --label species \(testdata("csv/iris-small.csv")) -o \(tmp)/iris.tns").status, 0)
        // Images and labels loaded the wrong way round: the labels are images, said so
        // (it said "no class list", and suggested --classes; helper-43's review).
        assertFails(try sh("tensor-load y=\(images) x=\(testdata("idx/labels-u8.idx")) | fit --model mlp -o \(tmp)/m.model"), status: 65,
                    prefix: "fit: stdin: target field 'y' is u8 28×28×1, not one label a sample; are the input and the labels swapped")
        // A colour image for a gray model: predict names --channels.
        XCTAssertEqual(try sh("fit --model mlp --epochs 1 -q -o \(tmp)/gray.model \(tmp)/train.tns").status, 0)
        assertFails(try sh("tensor-load --channels 3 --resize 28x28 \(testdata("images/gray-4x3.png")) | predict -m \(tmp)/gray.model"), status: 65,
                    prefix: "predict: stdin: field 'x' is u8 28×28×3 but the model was trained on", contains: "; tensor-load --channels 1 makes images of 1 channel")
        // A photo of another size: --resize (and --channels when they differ too).
        assertFails(try sh("tensor-load \(testdata("images/gray-4x3.png")) | predict -m \(tmp)/gray.model"), status: 65,
                    prefix: "predict: stdin: field 'x' is u8 3×4×1 but the model was trained on", contains: "; tensor-load --resize 28x28 makes images of that shape")
        assertFails(try sh("tensor-load --channels 3 \(testdata("images/gray-4x3.png")) | predict -m \(tmp)/gray.model"), status: 65,
                    prefix: "predict: stdin: field 'x' is u8 3×4×3 but the model was trained on", contains: "; tensor-load --resize 28x28 --channels 1 makes images of that shape")
        for name in ["mnist-cnn", "MNIST-CNN"] {  // preset names are case-insensitive, as the text's words are
            assertFails(try sh("fit --model \(name) -o \(tmp)/m.model \(tmp)/iris.tns"), status: 65,
                        prefix: "fit: \(name): layer 'conv 32 3x3': conv needs an H×W×C input, got 4")
        }
    }

    func testOptionsThatWouldBeIgnoredOrCollideAreUsageErrors() throws {
        XCTAssertEqual(try sh("fit --model mlp --epochs 1 -q -o \(tmp)/m.model \(tmp)/train.tns").status, 0)
        let before = try data("\(tmp)/m.model")
        try FileManager.default.createSymbolicLink(atPath: "\(tmp)/link.tns", withDestinationPath: "\(tmp)/train.tns")
        let cases: [(String, String)] = [
            // silently ignored before: the resumed model keeps its optimizer, loss and fields
            ("--resume \(tmp)/m.model --optimizer sgd -o \(tmp)/n.model", "--optimizer does not go with --resume"),
            ("--resume \(tmp)/m.model --loss mse -o \(tmp)/n.model", "--loss does not go with --resume"),
            ("--resume \(tmp)/m.model --input z -o \(tmp)/n.model", "--input does not go with --resume"),
            ("--model mlp --momentum 0.9 -o \(tmp)/n.model", "--momentum and --nesterov go with --optimizer sgd"),
            ("--model mlp --optimizer sgd --nesterov -o \(tmp)/n.model", "--nesterov needs a --momentum above 0"),
            ("--model mlp --patience 2 -o \(tmp)/n.model", "--patience needs validation data"),
            ("--model mlp --validation \(tmp)/train.tns --validation-split 0.5 -o \(tmp)/n.model", "--validation and --validation-split exclude each other"),
            ("--model mlp --checkpoint \(tmp)/c --no-checkpoint -o \(tmp)/n.model", "--checkpoint and --no-checkpoint exclude each other"),
            // one file in two roles: the checkpoint's removal deleted the model; -o replaced the data
            ("--model mlp -o ''", "-o takes a file name, not an empty string"),
            ("--model mlp --checkpoint \(tmp)/m.model -o \(tmp)/m.model", "-o and --checkpoint name the same file"),
            ("--model mlp -o \(tmp)/train.tns", "-o and the training data name the same file"),
            ("--model mlp -o \(tmp)/link.tns", "-o and the training data name the same file"),
            ("--model mlp --log \(tmp)/train.tns -o \(tmp)/n.model", "--log and the training data name the same file"),
            // ArgumentParser's own errors, on one line like every other
            ("--model mlp --batch -1 -o \(tmp)/n.model", "--batch takes 1…1048576"),
            // getopt_long reads "--output=" as an empty value; ArgumentParser took the next word
            // for it, and the model replaced the training data.
            ("--model mlp --output=", "-o takes a file name, not an empty string"),
            ("--model= -o \(tmp)/n.model", "--model takes a preset, a file or the text of an architecture, not an empty string"),
            // one network, one field: trained on its own answers
            ("--model mlp --input y -o \(tmp)/n.model", "--input and --target name the same field, 'y'"),
            // named as the checkpoint it is, not as an option that was not given
            ("--model mlp --log \(tmp)/n.model.ckpt -o \(tmp)/n.model", "the checkpoint and --log name the same file"),
            ("--model mlp --frob -o \(tmp)/n.model", "unknown option '--frob'"),
            // a fraction below Double's range reads as 0, which trained with no validation
            ("--model mlp --validation-split 1e-400 -o \(tmp)/n.model", "1e-400 is too small to hold out a sample"),
        ]
        for (args, words) in cases {
            assertFails(try sh("fit \(args) \(tmp)/train.tns"), status: 64, prefix: "fit: ", contains: words)
        }
        // Standard input for two inputs: the second found it empty and blamed the data.
        for (args, words) in [("--model -", "the training data and --model cannot both be stdin (-)"),
                              ("--resume -", "the training data and --resume cannot both be stdin (-)")] {
            assertFails(try sh("fit \(args) -o \(tmp)/n.model < \(tmp)/train.tns"), status: 64, prefix: "fit: \(words)")
        }
        XCTAssertEqual(try data("\(tmp)/m.model"), before)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(tmp)/n.model"))
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: "\(tmp)/link.tns"), "\(tmp)/train.tns")
        // Resuming from the checkpoint that the run goes on writing is the documented recovery.
        XCTAssertEqual(try sh("cp \(tmp)/m.model \(tmp)/n.model.ckpt && fit --resume \(tmp)/n.model.ckpt --epochs 1 -q -o \(tmp)/n.model \(tmp)/train.tns").status, 0)
    }

    func testTheModelGoesThroughALinkAndIntoADevice() throws {
        // A link is followed: the file it names is replaced, the link stays.
        XCTAssertEqual(try sh("fit --model mlp --epochs 1 -q -o \(tmp)/v1.model \(tmp)/train.tns").status, 0)
        try FileManager.default.createSymbolicLink(atPath: "\(tmp)/current.model", withDestinationPath: "v1.model")
        let r = try sh("fit --model mlp --epochs 1 --seed 2 -q -o \(tmp)/current.model \(tmp)/train.tns && fit --model mlp --epochs 1 --seed 2 -q -o \(tmp)/v2.model \(tmp)/train.tns")
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: "\(tmp)/current.model"), "v1.model")
        XCTAssertEqual(try data("\(tmp)/v1.model"), try data("\(tmp)/v2.model"), "the seed-2 model went into the link's file")
        // A FIFO (as a device such as /dev/null) is written in place, the model and the
        // checkpoints alike; renaming a file over it replaced it.
        let fifo = try sh("mkfifo pipe && { timeout 60 cat pipe > got & fit --model mlp --epochs 1 -q --checkpoint pipe.ckpt -o pipe train.tns; s=$?; wait; exit $s; }", cwd: tmp)
        XCTAssertEqual(fifo.status, 0, fifo.stderr)
        XCTAssertEqual(try sh("test -p pipe", cwd: tmp).status, 0, "the FIFO is still a FIFO")
        XCTAssertEqual(try sh("predict -m got train.tns | tensor-show --count", cwd: tmp).stdoutText.trimmingCharacters(in: .whitespacesAndNewlines), "10")
    }

    func testOutputsThroughLinksAndStdoutAndFilesInTwoRoles() throws {
        let fit = "fit --model mlp --epochs 1 -q"
        XCTAssertEqual(try sh("\(fit) -o r.model train.tns", cwd: tmp).status, 0)
        // Resuming with the checkpoint on the resumed model keeps it at the end; a log onto it
        // would have appended JSON to a model.
        XCTAssertEqual(try sh("fit --resume r.model --epochs 1 -q --checkpoint r.model -o out.model train.tns", cwd: tmp).status, 0)
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(tmp)/r.model"), "the resumed model is not removed as a checkpoint")
        assertFails(try sh("fit --resume r.model --log r.model -o o2.model train.tns", cwd: tmp), status: 64, prefix: "fit: --log and --resume name the same file")
        let model = try data("\(tmp)/r.model")
        // A dangling link names the file to create; the link stays.
        try FileManager.default.createSymbolicLink(atPath: "\(tmp)/d.model", withDestinationPath: "new.model")
        XCTAssertEqual(try sh("\(fit) -o d.model train.tns", cwd: tmp).status, 0)
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: "\(tmp)/d.model"), "new.model")
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(tmp)/new.model"))
        // One file by two names: through a linked directory, or as the stdin redirected from it.
        try FileManager.default.createDirectory(atPath: "\(tmp)/real", withIntermediateDirectories: false)
        try FileManager.default.createSymbolicLink(atPath: "\(tmp)/linkdir", withDestinationPath: "real")
        assertFails(try sh("\(fit) -o linkdir/x.model --checkpoint real/x.model train.tns", cwd: tmp), status: 64, prefix: "fit: -o and --checkpoint name the same file")
        assertFails(try sh("\(fit) -o r.model < r.model", cwd: tmp), status: 64, prefix: "fit: -o and the training data name the same file")
        XCTAssertTrue(try data("\(tmp)/r.model") == model, "r.model untouched by the refused runs")
        // A directory as -o: an error before training, not after it.
        assertFails(try sh("timeout 60 fit --model mlp --epochs 1000000 -o real train.tns", cwd: tmp), status: 74, prefix: "fit: real: Is a directory")
        assertFails(try sh("\(fit) -o - train.tns", cwd: tmp), status: 64, prefix: "fit: -o -: the model goes to a file")
        // /dev/stdout is the standard output, not the file the shell redirected it to: appending
        // keeps what was there.
        try Data("kept\n".utf8).write(to: URL(fileURLWithPath: "\(tmp)/app.out"))
        XCTAssertEqual(try sh("tensor-cat -o /dev/stdout train.tns >> app.out", cwd: tmp).status, 0)
        let out = try data("\(tmp)/app.out")
        XCTAssertEqual(Array(out.prefix(5)), Array("kept\n".utf8))
        XCTAssertTrue(Array(out.dropFirst(5)) == (try data("\(tmp)/train.tns")), "the stream appended after the earlier content")
    }

    /// README's tutorial trains with --classes; predict(1)'s first example loads the test set
    /// without them. predict refused it ("differ at class 0"), and a test set holding only
    /// some of the classes too, though score takes such labels (helper-43's review).
    func testLabelsTheInputOnlyNumberedArePredictedAndScoredUnderTheModelsNames() throws {
        let names = "T-shirt,Trouser,Pullover,Dress,Coat,Sandal,Shirt,Sneaker,Bag,Boot"
        let load = "x=\(images) y=\(testdata("idx/labels-u8.idx"))"
        XCTAssertEqual(try sh("tensor-load --classes \(names) \(load) | normalize --scale 255 | fit --model mlp --epochs 1 -q -o \(tmp)/named.model").status, 0)
        let r = try sh("tensor-load \(load) | normalize --scale 255 | predict -m \(tmp)/named.model -o \(tmp)/p.tns")
        XCTAssertEqual(r.status, 0, r.stderr)
        let schema = try readAll(try data("\(tmp)/p.tns")).0
        XCTAssertEqual(schema.classes(of: "y"), names.split(separator: ",").map(String.init), "y takes the model's names")
        XCTAssertEqual(schema.classes(of: "yhat"), schema.classes(of: "y"))
        let score = try sh("score \(tmp)/p.tns")
        XCTAssertEqual(score.status, 0, score.stderr)
        XCTAssertTrue(score.stdoutText.contains("\nSandal "), score.stdoutText)
        // fit takes such data to validate on, and to resume on.
        let v = try sh("tensor-load \(load) | normalize --scale 255 -o \(tmp)/v.tns && fit --resume \(tmp)/named.model --epochs 2 -q --validation \(tmp)/v.tns -o \(tmp)/r.model \(tmp)/v.tns")
        XCTAssertEqual(v.status, 0, v.stderr)
        // A test set of integer labels holding two of three classes.
        try "a,b,y\n1,2,0\n3,4,1\n5,6,2\n".write(toFile: "\(tmp)/full.csv", atomically: false, encoding: .utf8)
        try "a,b,y\n1,2,0\n3,4,1\n".write(toFile: "\(tmp)/part.csv", atomically: false, encoding: .utf8)
        try "a,b,y\n1,2,0\n3,4,3\n".write(toFile: "\(tmp)/more.csv", atomically: false, encoding: .utf8)
        XCTAssertEqual(try sh("tensor-load --label y \(tmp)/full.csv | fit --model 'dense classes' --epochs 1 -q -o \(tmp)/three.model").status, 0)
        let part = try sh("tensor-load --label y \(tmp)/part.csv | predict -m \(tmp)/three.model | score")
        XCTAssertEqual(part.status, 0, part.stderr)
        // More classes than the model, or names that are not the model's, are still refused,
        // and the message says how to number the labels as the model does.
        assertFails(try sh("tensor-load --label y \(tmp)/more.csv | predict -m \(tmp)/three.model"), status: 65, prefix: "predict: stdin: ",
                    contains: "class names of 'y' differ from the model's at class 3: the data has (…, 3; 4 classes), the model (nothing more; 3 classes)")
        assertFails(try sh("tensor-load --classes a,b,c --label y \(tmp)/part.csv | predict -m \(tmp)/three.model"), status: 65, prefix: "predict: stdin: ",
                    contains: "; tensor-load --classes with the model's names, in its order, numbers the labels as the model does")
    }

    func testPredictRefusesMismatchedInputAndBadModels() throws {
        XCTAssertEqual(try sh("fit --model mlp --epochs 1 -q -o \(tmp)/m.model \(tmp)/train.tns").status, 0)
        // A table over its own input replaced the data set; a stream over it adds p and yhat.
        try FileManager.default.copyItem(atPath: "\(tmp)/train.tns", toPath: "\(tmp)/own.tns")
        assertFails(try sh("predict -m \(tmp)/m.model --format csv -o \(tmp)/own.tns \(tmp)/own.tns"), status: 64,
                    prefix: "predict: -o and the input name the same file")
        XCTAssertTrue(try data("\(tmp)/own.tns") == data("\(tmp)/train.tns"))
        XCTAssertEqual(try sh("predict -m \(tmp)/m.model -o \(tmp)/own.tns \(tmp)/own.tns").status, 0)
        XCTAssertEqual(try readAll(try data("\(tmp)/own.tns")).0.fields.map(\.name), ["x", "y", "p", "yhat"])
        // Raw input gets the model's own transform: the same probabilities as normalized input.
        let raw = try sh("tensor-load x=\(images) | predict -m \(tmp)/m.model | tensor-cat --fields p")
        XCTAssertEqual(raw.status, 0, raw.stderr)
        let normalized = try sh("predict -m \(tmp)/m.model \(tmp)/train.tns | tensor-cat --fields p")
        XCTAssertEqual(try readAll(raw.stdout).2, try readAll(normalized.stdout).2)
        assertFails(try sh("tensor-load x=\(images) | normalize --scale 100 | predict -m \(tmp)/m.model"), status: 65, prefix: "predict: stdin: ",
                    contains: "normalized as (scale 100) but the model was trained on data normalized as (scale 255)")
        let rawF32 = try makeStream(Schema(fields: [Field(name: "x", dtype: .f32, shape: Shape([28, 28, 1]))]),
                                    batches: [(1, [[UInt8](repeating: 0, count: 784 * 4)])])
        assertFails(try sh("predict -m \(tmp)/m.model", stdin: rawF32), status: 65, prefix: "predict: stdin: ",
                    contains: "is raw f32 but the model was trained on u8 data normalized as (scale 255)")
        assertFails(try sh("predict -m \(tmp)/missing.model \(tmp)/train.tns"), status: 66, prefix: "predict: \(tmp)/missing.model: ")
        assertFails(try sh("predict -m \(tmp)/m.model -o '' \(tmp)/train.tns"), status: 64, prefix: "predict: '': an empty name for an output file")
        assertFails(try sh("fit --model mlp --validation '' -o \(tmp)/v.model \(tmp)/train.tns"), status: 66, prefix: "fit: '': an empty file name")
        assertFails(try sh("predict -m \(tmp)/m.model -o \(tmp)/m.model \(tmp)/train.tns"), status: 64, prefix: "predict: -o and -m name the same file")
        var model = try data("\(tmp)/m.model")
        model[model.count / 2] ^= 0x01
        try Data(model).write(to: URL(fileURLWithPath: "\(tmp)/bad.model"))
        assertFails(try sh("predict -m \(tmp)/bad.model \(tmp)/train.tns"), status: 65, prefix: "predict: \(tmp)/bad.model: ", contains: "checksum")
        assertFails(try sh("predict -m \(tmp)/train.tns \(tmp)/train.tns"), status: 65, prefix: "predict: \(tmp)/train.tns: ", contains: "not a model file")
    }

    func testDivergedTrainingLeavesTheOldModel() throws {
        XCTAssertEqual(try sh("fit --model mlp --epochs 1 -q -o \(tmp)/m.model \(tmp)/train.tns").status, 0)
        let before = try data("\(tmp)/m.model")
        let r = try sh("fit --model 'dense 64 relu; dense 64 relu; dense classes' --optimizer sgd --lr 1e30 --epochs 3 -q -o \(tmp)/m.model \(tmp)/train.tns")
        assertFails(r, status: 65, prefix: "fit: epoch ", contains: "diverged")
        XCTAssertEqual(try data("\(tmp)/m.model"), before)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: tmp).filter { $0.hasPrefix(".") }, [], "no temporary file left")
    }

    func testFiftyKillsWhileWritingTheModel() throws {
        // fit runs for a moment and writes -o at its end; kill -9 it at 50 moments spread over
        // its run. The target is always the old model or a complete new one predict loads;
        // anything left behind is a temporary file of the documented pattern.
        XCTAssertEqual(try sh("fit --model mlp --epochs 1 -q --no-checkpoint -o \(tmp)/m.model \(tmp)/train.tns").status, 0)
        let old = try data("\(tmp)/m.model")
        let start = Date()
        XCTAssertEqual(try sh("fit --model mlp --epochs 3 --seed 2 -q --no-checkpoint -o \(tmp)/timing.model \(tmp)/train.tns").status, 0)
        let runtime = Date().timeIntervalSince(start)
        var outcomes: [String: Int] = [:]
        let temp = try NSRegularExpression(pattern: #"^\.m\.model\.[A-Za-z0-9]{6}$"#)
        for k in 0..<50 {
            let delay = runtime * 1.3 * Double(k) / 50
            try sh("fit --model mlp --epochs 3 --seed \(k + 3) -q --no-checkpoint -o \(tmp)/m.model \(tmp)/train.tns & pid=$!; sleep \(String(format: "%.3f", delay)); kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null; true")
            let now = try data("\(tmp)/m.model")
            if now == old {
                outcomes["old", default: 0] += 1
            } else {
                let p = try sh("predict -m \(tmp)/m.model \(tmp)/train.tns | tensor-show --count")
                XCTAssertEqual(p.stdoutText, "10\n", "kill \(k) at \(delay)s: a new model that loads: \(p.stderr)")
                outcomes["new", default: 0] += 1
                try Data(old).write(to: URL(fileURLWithPath: "\(tmp)/m.model"))
            }
            for f in try FileManager.default.contentsOfDirectory(atPath: tmp) where f.hasPrefix(".") {
                XCTAssertNotNil(temp.firstMatch(in: f, range: NSRange(f.startIndex..., in: f)), "leftover \(f)")
                try FileManager.default.removeItem(atPath: "\(tmp)/\(f)")
            }
        }
        XCTAssertEqual(outcomes.values.reduce(0, +), 50)
        XCTAssertGreaterThan(outcomes["old"] ?? 0, 0, "some kills land before the model is written: \(outcomes)")
        XCTAssertGreaterThan(outcomes["new"] ?? 0, 0, "and some after: \(outcomes)")
    }

    func testKilledFitLeavesAWholeModel() throws {
        XCTAssertEqual(try sh("fit --model mlp --epochs 1 -q -o \(tmp)/m.model \(tmp)/train.tns").status, 0)
        let old = try data("\(tmp)/m.model")
        // Kill fit at several moments while it checkpoints every epoch: the target stays the
        // old model, and the checkpoint, when there is one, is a complete model predict loads.
        for delay in ["0.05", "0.15", "0.3"] {
            try sh("fit --model mlp --epochs 100000 --batch 2 -q -o \(tmp)/m.model \(tmp)/train.tns & pid=$!; sleep \(delay); kill -9 $pid; wait $pid 2>/dev/null; true")
            XCTAssertEqual(try data("\(tmp)/m.model"), old, "after kill at \(delay)s")
            if FileManager.default.fileExists(atPath: "\(tmp)/m.model.ckpt") {
                let p = try sh("predict -m \(tmp)/m.model.ckpt \(tmp)/train.tns | tensor-show --count")
                XCTAssertEqual(p.stdoutText, "10\n", "checkpoint after kill at \(delay)s: \(p.stderr)")
            }
        }
    }

    func testValidationAndEarlyStopping() throws {
        XCTAssertEqual(try sh("tensor-load --label species \(testdata("csv/iris-small.csv")) -o \(tmp)/iris.tns").status, 0)
        let r = try sh("fit --model 'dense 16 relu; dense classes' --epochs 500 --batch 4 --lr 0.05 --validation-split 0.25 --patience 1 --log \(tmp)/log.jsonl -o \(tmp)/m.model \(tmp)/iris.tns")
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("val_loss"), r.stderr)
        XCTAssertTrue(r.stderrLines.last?.hasPrefix("fit: stopping early") == true, r.stderr)
        let log = try String(contentsOfFile: "\(tmp)/log.jsonl", encoding: .utf8).split(separator: "\n")
        XCTAssertLessThan(log.count, 500)
        let first = try JSONSerialization.jsonObject(with: Data(log[0].utf8)) as! [String: Any]
        XCTAssertNotNil(first["val_accuracy"])
        // A separate validation stream is checked against the model like training data.
        let v = try sh("fit --model 'dense 4; dense classes' --epochs 1 --validation \(tmp)/train.tns -o \(tmp)/m2.model \(tmp)/iris.tns")
        XCTAssertEqual(v.status, 65, v.stderr)
        XCTAssertTrue(v.stderr.hasPrefix("fit: \(tmp)/train.tns: "), v.stderr)
        // No validation samples: an error, not a val_loss of 0 that stops training early.
        assertFails(try sh("fit --model mlp --epochs 3 --validation-split 1e-17 --patience 1 -o \(tmp)/m3.model \(tmp)/train.tns"), status: 65,
                    prefix: "fit: \(tmp)/train.tns: ", contains: "--validation-split 1e-17 of 10 samples holds out none")
        // 0.95 of 10 holds out n − ⌊0.5⌋ = all 10: said so, not "no training samples".
        assertFails(try sh("fit --model mlp --epochs 1 --validation-split 0.95 -o \(tmp)/m3.model \(tmp)/train.tns"), status: 65,
                    prefix: "fit: \(tmp)/train.tns: --validation-split 0.95 of 10 samples holds out all of them (n − ⌊n·(1 − f)⌋, as Keras counts), leaving none to train on")
        // Keras's count: the last n − ⌊n·(1 − f)⌋ samples, so 10 at 0.25 train on 7 and 10 at 0.05 on 9.
        for (f, trained) in [("0.25", 7), ("0.05", 9)] {
            let split = try sh("fit --model mlp --epochs 1 --validation-split \(f) -q --log - -o \(tmp)/m4.model \(tmp)/train.tns")
            XCTAssertEqual(split.status, 0, split.stderr)
            let record = try JSONSerialization.jsonObject(with: Data(split.stdout)) as! [String: Any]
            XCTAssertEqual(record["samples"] as? Int, trained, "--validation-split \(f)")
        }
        // The split trains and validates as the same samples given as two files do (the split
        // is made in place now, not by copying both halves).
        let (irisSchema, irisCount, irisFields) = try readAll(try data("\(tmp)/iris.tns"))
        let cut = Int((Double(irisCount) * 0.75).rounded(.down))
        for (name, range) in [("head", 0..<cut), ("tail", cut..<irisCount)] {
            let part = zip(irisSchema.fields, irisFields).map { f, bytes in Array(bytes[range.lowerBound * f.sampleBytes..<range.upperBound * f.sampleBytes]) }
            try Data(try makeStream(irisSchema, batches: [(range.count, part)])).write(to: URL(fileURLWithPath: "\(tmp)/\(name).tns"))
        }
        let byFlag = try sh("fit --model 'dense 8 relu; dense classes' --epochs 3 --batch 4 --seed 3 --threads 1 --validation-split 0.25 -q --log - -o \(tmp)/s1.model \(tmp)/iris.tns")
        let byFiles = try sh("fit --model 'dense 8 relu; dense classes' --epochs 3 --batch 4 --seed 3 --threads 1 --validation \(tmp)/tail.tns -q --log - -o \(tmp)/s2.model \(tmp)/head.tns")
        func figures(_ r: RunResult) throws -> [[Double]] {
            try r.stdoutText.split(separator: "\n").map { line in
                let o = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
                return ["samples", "loss", "accuracy", "val_loss", "val_accuracy"].compactMap { (o[$0] as? NSNumber)?.doubleValue }
            }
        }
        XCTAssertEqual(try figures(byFlag).count, 3, byFlag.stderr)
        XCTAssertEqual(try figures(byFlag).first?.count, 5, byFlag.stdoutText)
        XCTAssertEqual(try figures(byFlag), try figures(byFiles), byFiles.stderr)
        try Data(try makeStream(Schema(fields: [Field(name: "x", dtype: .f32, shape: Shape([4])), Field(name: "y", dtype: .u8, shape: Shape([]))]), batches: []))
            .write(to: URL(fileURLWithPath: "\(tmp)/none.tns"))
        assertFails(try sh("fit --model 'dense classes' --epochs 3 --validation \(tmp)/none.tns -o \(tmp)/m3.model \(tmp)/iris.tns"), status: 65,
                    prefix: "fit: \(tmp)/none.tns: ", contains: "no samples to validate on")
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(tmp)/m3.model"))
        // Validation data must be normalized as the training data is (it was scored raw).
        XCTAssertEqual(try sh("tensor-load x=\(images) y=\(labels) -o \(tmp)/raw.tns").status, 0)
        assertFails(try sh("fit --model mlp --epochs 1 --validation \(tmp)/raw.tns -o \(tmp)/m3.model \(tmp)/train.tns"), status: 65,
                    prefix: "fit: \(tmp)/raw.tns: field 'x' is normalized as (raw) but the training data as (scale 255")
        // ... and be of its dtype: raw u8 against f32 (both unnormalized) was scored, status 0.
        for dtype in [DType.u8, .f32] {
            var s = Schema(fields: [Field(name: "x", dtype: dtype, shape: Shape([2])), Field(name: "y", dtype: .i64, shape: Shape([]))])
            s.setClasses(["a", "b"], of: "y")
            let xs: [UInt8] = dtype == .u8 ? [1, 200, 30, 4] : [Float](arrayLiteral: 0.01, 0.8, 0.1, 0.02).withUnsafeBytes { Array($0) }
            let ys: [Int64] = [0, 1]
            try Data(try makeStream(s, batches: [(2, [xs, ys.withUnsafeBytes { Array($0) }])])).write(to: URL(fileURLWithPath: "\(tmp)/\(dtype).tns"))
        }
        assertFails(try sh("fit --model 'dense classes' --epochs 1 --validation \(tmp)/f32.tns -o \(tmp)/m3.model \(tmp)/u8.tns"), status: 65,
                    prefix: "fit: \(tmp)/f32.tns: field 'x' is f32 but the training data's is u8")
        assertFails(try sh("fit --model mlp --epochs 1 --validation - -o \(tmp)/m3.model < \(tmp)/train.tns"), status: 64,
                    prefix: "fit: the training data and --validation cannot both be stdin (-)")
    }

    /// The best validation loss and the epochs since it are the model's: a run resumed one epoch
    /// before early stopping stops where the uninterrupted run did, with its model to the byte
    /// (it counted again from scratch and trained on).
    func testEarlyStoppingResumesWhereItWas() throws {
        XCTAssertEqual(try sh("tensor-load --label species \(testdata("csv/iris-small.csv")) -o \(tmp)/iris.tns").status, 0)
        let options = "--batch 4 --lr 0.05 --threads 1 -q --validation-split 0.25 --patience 2"
        let straight = try sh("fit --model 'dense 16 relu; dense classes' \(options) --epochs 500 --log \(tmp)/straight.jsonl -o \(tmp)/straight.model \(tmp)/iris.tns")
        XCTAssertEqual(straight.status, 0, straight.stderr)
        let stopped = try String(contentsOfFile: "\(tmp)/straight.jsonl", encoding: .utf8).split(separator: "\n").count
        XCTAssertLessThan(stopped, 500, "early stopping stopped the straight run")
        XCTAssertGreaterThan(stopped, 3)
        let state = try readAll(try data("\(tmp)/straight.model")).0.metadata("model.early-stopping") ?? ""
        XCTAssertTrue(state.hasPrefix("best ") && state.hasSuffix(" since 2"), state)
        XCTAssertEqual(try sh("fit --model 'dense 16 relu; dense classes' \(options) --epochs \(stopped - 1) -o \(tmp)/part.model \(tmp)/iris.tns").status, 0)
        let resumed = try sh("fit --resume \(tmp)/part.model \(options) --epochs 500 --log \(tmp)/resumed.jsonl -o \(tmp)/resumed.model \(tmp)/iris.tns")
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertEqual(try String(contentsOfFile: "\(tmp)/resumed.jsonl", encoding: .utf8).split(separator: "\n").count, 1)
        XCTAssertTrue(try data("\(tmp)/straight.model") == data("\(tmp)/resumed.model"))
        // A hand-edited state is bad data, named.
        let (schema, n, fields) = try readAll(try data("\(tmp)/part.model"))
        for bad in ["best -1 since 0", "best 0.5", "best 0x1p-1 since 1", "best nan since 1", "best 1e999 since 1", "best 0.5 since many"] {
            var s = schema
            s.setMetadata("model.early-stopping", bad)
            try Data(try makeStream(s, batches: [(n, fields)])).write(to: URL(fileURLWithPath: "\(tmp)/edited.model"))
            assertFails(try sh("fit --resume \(tmp)/edited.model --epochs 1 -q -o \(tmp)/x.model \(tmp)/iris.tns"), status: 65,
                        prefix: "fit: \(tmp)/edited.model: model.early-stopping is not 'best LOSS since EPOCHS'")
        }
    }

    /// A model file's classes and optimizer state edited into what fit never writes: a class
    /// named twice, classes on a regression, three on a binary task, and a negative mean of
    /// squares in opt_v (resumed, its square root made the first step NaN, reported as
    /// divergence). Each is damage, named.
    func testAModelFileWithImpossibleClassesOrMomentsIsRefused() throws {
        XCTAssertEqual(try sh("tensor-load --label species \(testdata("csv/iris-small.csv")) -o \(tmp)/iris.tns").status, 0)
        XCTAssertEqual(try sh("fit --model 'dense 8 relu; dense classes' --epochs 1 -q --no-checkpoint -o \(tmp)/m.model \(tmp)/iris.tns").status, 0)
        let (schema, n, fields) = try readAll(try data("\(tmp)/m.model"))
        let classes = schema.metadata("model.classes") ?? ""
        XCTAssertEqual(classes.split(separator: "\n").count, 3)
        func edited(_ edit: (inout Schema, inout [[UInt8]]) -> Void) throws -> String {
            var (s, f) = (schema, fields)
            edit(&s, &f)
            try Data(try makeStream(s, batches: [(n, f)])).write(to: URL(fileURLWithPath: "\(tmp)/edited.model"))
            return "\(tmp)/edited.model"
        }
        let cases: [(String, (inout Schema, inout [[UInt8]]) -> Void)] = [
            ("model.classes names 'setosa' twice", { s, _ in s.setMetadata("model.classes", "setosa\nsetosa\nvirginica") }),
            ("a regression model names 3 classes (model.classes)", { s, _ in s.setMetadata("model.task", "regression") }),
            ("a binary model names 3 classes, not 2 (model.classes)", { s, _ in s.setMetadata("model.task", "binary") }),
            // predict applied the record into a buffer of the integer's width: a crash (u8),
            // or wrong predictions (i32; helper-44's review).
            ("the input is u8 but has a normalization record (model.input.normalize); normalized data is f32 or f64", { s, _ in
                s.setMetadata("model.input.dtype", "u8")
                s.setMetadata("model.input.normalize", "scale 255; shift 0; mul 0.00392156862745098; from u8")
            }),
            ("opt_v[0] is -1.0, a mean of squares below 0: the model is damaged", { s, f in
                let v = s.index(of: "opt_v")!
                f[v].replaceSubrange(0..<4, with: withUnsafeBytes(of: Float(-1)) { Array($0) })
            }),
        ]
        // fit itself writes two classes for a binary task, whatever labels it saw: labels all
        // 0 were named ["0"], a model the check above then refused. Named labels must be two.
        try "a,y\n1,0\n2,0\n".write(toFile: "\(tmp)/zeros.csv", atomically: false, encoding: .utf8)
        XCTAssertEqual(try sh("tensor-load --label y \(tmp)/zeros.csv | fit --model 'dense 1' --loss bce --epochs 1 -q -o \(tmp)/z.model").status, 0)
        XCTAssertEqual(try sh("tensor-load --label y \(tmp)/zeros.csv | predict -m \(tmp)/z.model | tensor-show --count").stdoutText, "2\n")
        try "a,y\n1,spam\n2,spam\n".write(toFile: "\(tmp)/spam.csv", atomically: false, encoding: .utf8)
        assertFails(try sh("tensor-load --label y \(tmp)/spam.csv | fit --model 'dense 1' --loss bce --epochs 1 -q -o \(tmp)/s.model"), status: 65,
                    prefix: "fit: stdin: field 'y' names 1 class (spam) but a binary task (--loss bce) has 2; name both with tensor-load --classes")
        for (problem, edit) in cases {
            let model = try edited(edit)
            assertFails(try sh("predict -m \(model) \(tmp)/iris.tns"), status: 65, prefix: "predict: \(model): \(problem)")
            assertFails(try sh("fit --resume \(model) --epochs 1 -q -o \(tmp)/x.model \(tmp)/iris.tns"), status: 65, prefix: "fit: \(model): \(problem)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(tmp)/x.model"))
        // fit wrote such a model from u8 data whose metadata said it was normalized (no
        // stream normalize writes); it refuses the data now.
        XCTAssertEqual(try sh("tensor-load x=\(testdata("idx/images-u8.idx.gz")) y=\(testdata("idx/labels-u8.idx")) -o \(tmp)/u8.tns").status, 0)
        var (u8Schema, u8Count, u8Fields) = try readAll(try data("\(tmp)/u8.tns"))
        u8Schema.setMetadata("x.normalize", "scale 255; shift 0; mul 0.00392156862745098; from u8")
        try Data(try makeStream(u8Schema, batches: [(u8Count, u8Fields)])).write(to: URL(fileURLWithPath: "\(tmp)/u8norm.tns"))
        assertFails(try sh("fit --model 'dense classes' --epochs 1 -q -o \(tmp)/x.model \(tmp)/u8norm.tns"), status: 65,
                    prefix: "fit: \(tmp)/u8norm.tns: field 'x' is u8 but its metadata says it was normalized (x.normalize)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(tmp)/x.model"))
        assertFails(try sh("normalize --scale 255 \(tmp)/u8norm.tns"), status: 65,
                    prefix: "normalize: \(tmp)/u8norm.tns: field 'x' is u8 but has a normalization record, which only f32 or f64 data has")
    }

    /// How --model is read (helper-42's review): words separated only by commas or tabs were
    /// taken for a file name (66); a directory was "no such preset or file"; an error echoed
    /// the whole of a long inline text.
    func testModelOptionReadsTextFilesPresetsAndSaysWhatIsWrong() throws {
        XCTAssertEqual(try sh("tensor-load --label species \(testdata("csv/iris-small.csv")) -o \(tmp)/iris.tns").status, 0)
        let run = "--epochs 1 -q --no-checkpoint -o \(tmp)/m.model \(tmp)/iris.tns"
        for text in ["dense,classes", "dense\tclasses", "dense,8,relu;dense classes"] {
            let r = try sh("fit --model \"$(printf '\(text)')\" \(run)")
            XCTAssertEqual(r.status, 0, "\(text): \(r.stderr)")
        }
        try FileManager.default.createDirectory(atPath: "\(tmp)/arch", withIntermediateDirectories: true)
        assertFails(try sh("fit --model \(tmp)/arch \(run)"), status: 66, prefix: "fit: \(tmp)/arch: ", contains: "directory")
        assertFails(try sh("fit --model nosuch \(run)"), status: 66, prefix: "fit: nosuch: no such preset (")
        let long = String(repeating: "dense 8; ", count: 30) + "bogus"
        let r = try sh("fit --model '\(long)' \(run)")
        assertFails(r, status: 65, prefix: "fit: \(long.prefix(60))…: architecture line 1: unknown layer 'bogus'")
        XCTAssertLessThan(r.stderr.count, 200)
    }

    /// A model too large for one batch of a stream (its weights and the optimizer's two
    /// moments are one sample) was refused when written, after every epoch was trained; now
    /// before the first, with the number of parameters that fits.
    func testAModelTooLargeToWriteIsRefusedBeforeTraining() throws {
        XCTAssertEqual(try sh("tensor-load --label species \(testdata("csv/iris-small.csv")) -o \(tmp)/iris.tns").status, 0)
        // 4·4096 + 4096 + 4096·3 + 3 = 32771 parameters: 3 × 131,136 bytes, over a 300,000 limit.
        let r = try sh("TENSOR_MAX_BATCH_BYTES=300000 fit --model 'dense 4096; dense classes' --epochs 100000 --log \(tmp)/log.jsonl -o \(tmp)/m.model \(tmp)/iris.tns")
        assertFails(r, status: 65, prefix: "fit: dense 4096; dense classes: its 32771 parameters, with the optimizer's state, make a model of 393 KB, more than the 300000 bytes",
                    contains: "at most 24996 parameters")
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(tmp)/m.model"))
        XCTAssertEqual((try? String(contentsOfFile: "\(tmp)/log.jsonl", encoding: .utf8)) ?? "", "", "no epoch was trained")
        // Under the limit it trains and writes.
        XCTAssertEqual(try sh("TENSOR_MAX_BATCH_BYTES=400000 fit --model 'dense 4096; dense classes' --epochs 1 -q -o \(tmp)/m.model \(tmp)/iris.tns").status, 0)
    }

    /// Cross-entropy against rows that are not class probabilities (regression targets given
    /// to a classifier, halved one-hot rows) trained with status 0 and a wrong gradient.
    func testOneHotRowsMustBeClassProbabilities() throws {
        let schema = Schema(fields: [Field(name: "x", dtype: .f32, shape: Shape([2])), Field(name: "y", dtype: .f32, shape: Shape([2]))])
        func stream(_ name: String, _ ys: [Float]) throws -> String {
            let xs: [Float] = [1, 2, 3, 4, 5, 6]
            try Data(try makeStream(schema, batches: [(3, [xs.withUnsafeBytes { Array($0) }, ys.withUnsafeBytes { Array($0) }])]))
                .write(to: URL(fileURLWithPath: "\(tmp)/\(name).tns"))
            return "\(tmp)/\(name).tns"
        }
        let good = try stream("good", [1, 0, 0.25, 0.75, 0.5, 0.5])
        XCTAssertEqual(try sh("fit --model 'dense classes' --loss ce -q -o \(tmp)/m.model \(good)").status, 0)
        for (name, ys, what) in [("half", [Float](arrayLiteral: 1, 0, 0.5, 0, 0, 1), "sample 1: a one-hot or soft target row must be class probabilities (no value below 0, summing to 1), but it sums to 0.5"),
                                 ("negative", [0, 1, 1, 0, 1.5, -0.5], "sample 2: a one-hot or soft target row must be class probabilities (no value below 0, summing to 1), but value 1 is -0.5"),
                                 ("zero", [0, 0, 1, 0, 0, 1], "sample 0: a one-hot or soft target row must be class probabilities (no value below 0, summing to 1), but it sums to 0")] {
            let path = try stream(name, ys)
            assertFails(try sh("fit --model 'dense classes' --loss ce -o \(tmp)/\(name).model \(path)"), status: 65,
                        prefix: "fit: \(path): field 'y' \(what)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: "\(tmp)/\(name).model"))
        }
    }

    func testNaNInputsAndOutOfRangeLabelsAreNamed() throws {
        var schema = Schema(fields: [Field(name: "x", dtype: .f32, shape: Shape([2])), Field(name: "y", dtype: .i64, shape: Shape([]))])
        schema.setClasses(["a", "b"], of: "y")
        func stream(_ xs: [Float], _ ys: [Int64]) throws -> String {
            let path = "\(tmp)/s\(xs.count)-\(ys.map(String.init).joined()).tns"
            let b = try makeStream(schema, batches: [(ys.count, [xs.withUnsafeBytes { Array($0) }, ys.withUnsafeBytes { Array($0) }])])
            try Data(b).write(to: URL(fileURLWithPath: path))
            return path
        }
        let nan = try stream([1, 2, 3, .nan, 5, 6], [0, 1, 0])
        assertFails(try sh("fit --model 'dense classes' -o \(tmp)/m.model \(nan)"), status: 65, prefix: "fit: \(nan): ", contains: "field 'x' sample 1")
        // Downstream, the cut stream is refused too: the pipeline's last status is 65.
        let piped = try sh("normalize --scale 2 \(nan) | tensor-show --count")
        XCTAssertEqual(piped.status, 65)
        XCTAssertTrue(piped.stderrLines.last?.hasPrefix("tensor-show: stdin: ") == true, piped.stderr)
        let n2 = try sh("normalize --scale 2 \(nan) >/dev/null")
        assertFails(n2, status: 65, prefix: "normalize: \(nan): ", contains: "field 'x' sample 1")
        let bad = try stream([1, 2, 3, 4, 5, 6], [0, 2, 1])
        assertFails(try sh("fit --model 'dense classes' -o \(tmp)/m.model \(bad)"), status: 65, prefix: "fit: \(bad): ", contains: "sample 1: label 2 outside")
        let good = try stream([1, 2, 3, 4, 5, 6], [0, 1, 1])
        XCTAssertEqual(try sh("fit --model 'dense classes' -q -o \(tmp)/m.model \(good)").status, 0)
        assertFails(try sh("predict -m \(tmp)/m.model \(nan) >/dev/null"), status: 65, prefix: "predict: \(nan): ", contains: "field 'x' sample 1")
    }

    /// An f64 beyond f32's range became an infinity: predict wrote -nan with status 0, and fit
    /// called it divergence.
    func testAnF64BeyondF32IsNamed() throws {
        var schema = Schema(fields: [Field(name: "x", dtype: .f64, shape: Shape([2])), Field(name: "y", dtype: .i64, shape: Shape([]))])
        schema.setClasses(["a", "b"], of: "y")
        func stream(_ name: String, _ xs: [Double]) throws -> String {
            let ys: [Int64] = [0, 1, 0]
            let b = try makeStream(schema, batches: [(3, [xs.withUnsafeBytes { Array($0) }, ys.withUnsafeBytes { Array($0) }])])
            try Data(b).write(to: URL(fileURLWithPath: "\(tmp)/\(name)"))
            return "\(tmp)/\(name)"
        }
        let good = try stream("good.tns", [1, 2, 3, 4, 5, 6]), big = try stream("big.tns", [1, 2, 3, 1e300, 5, 6])
        XCTAssertEqual(try sh("fit --model 'dense classes' -q -o \(tmp)/m.model \(good)").status, 0)
        assertFails(try sh("predict -m \(tmp)/m.model \(big) >/dev/null"), status: 65, prefix: "predict: \(big): ",
                    contains: "field 'x' sample 1 holds 1e+300, beyond the range of f32")
        assertFails(try sh("fit --model 'dense classes' -q -o \(tmp)/m2.model \(big)"), status: 65, prefix: "fit: \(big): ",
                    contains: "field 'x' sample 1 holds 1e+300, beyond the range of f32")
    }

    /// Finite inputs of 1e30 keep the loss finite but overflow Adam's second moment: fit wrote a
    /// model that predict then refused ("optimizer state holds a NaN or infinity").
    func testAnOverflowedOptimizerStateIsDivergence() throws {
        var schema = Schema(fields: [Field(name: "x", dtype: .f32, shape: Shape([2])), Field(name: "y", dtype: .i64, shape: Shape([]))])
        schema.setClasses(["a", "b"], of: "y")
        let xs: [Float] = [1e30, -1e30, -1e30, 1e30, 1e30, 1e30], ys: [Int64] = [0, 1, 1]
        let b = try makeStream(schema, batches: [(3, [xs.withUnsafeBytes { Array($0) }, ys.withUnsafeBytes { Array($0) }])])
        try Data(b).write(to: URL(fileURLWithPath: "\(tmp)/huge.tns"))
        let r = try sh("fit --model 'dense classes' --epochs 2 -q -o \(tmp)/m.model \(tmp)/huge.tns")
        assertFails(r, status: 65, prefix: "fit: epoch 1, batch 1: ", contains: "is not a number: training diverged")
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(tmp)/m.model"))
    }
}
