// score as a cron job and a person use it: a real pipeline with gates, JSON, the report, and
// every refusal as one line with its exit status.

import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import TensorCore
import TensorStream
import XCTest
import _TestSupport

final class ScoreToolTests: XCTestCase {
    var tmp = ""

    override func setUpWithError() throws {
        tmp = try makeTempDir()
        let r = try sh("""
            tensor-load --label species \(testdata("csv/iris-small.csv")) -o iris.tns &&
            fit --model 'dense 16 relu; dense classes' --epochs 60 --batch 4 --lr 0.01 --seed 1 --threads 1 -q -o iris.model iris.tns &&
            predict -m iris.model -o pred.tns iris.tns
            """, cwd: tmp)
        XCTAssertEqual(r.status, 0, r.stderr)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: tmp) }

    func json(_ r: RunResult) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(r.stdout)) as! [String: Any]
    }

    func testGatesInARealPipeline() throws {
        // the accuracy computed independently, from the exported columns
        let awk = try sh("tensor-cat --fields y,yhat pred.tns | tensor-show --csv | awk -F, 'NR > 1 { n++; ok += ($1 == $2) } END { printf \"%.6f\", ok / n }'", cwd: tmp)
        let expected = Double(awk.stdoutText)!
        let j = try sh("predict -m iris.model iris.tns | score --json", cwd: tmp)
        XCTAssertEqual(j.status, 0, j.stderr)
        let obj = try json(j)
        XCTAssertEqual(obj["accuracy"] as! Double, expected, accuracy: 1e-6)
        XCTAssertEqual((obj["classes"] as! [String]).count, 3)

        let pass = try sh("predict -m iris.model iris.tns | score --require 'accuracy>=\(expected - 0.01)' --require 'f1_macro>0'", cwd: tmp)
        XCTAssertEqual(pass.status, 0, pass.stderr)
        XCTAssertTrue(pass.stdoutText.contains("accuracy"), "the table is printed")

        let fail = try sh("predict -m iris.model iris.tns | score -q --require 'accuracy>=\(expected + 0.001)' --require 'f1_macro>0'", cwd: tmp)
        XCTAssertEqual(fail.status, 1, "a gate not met exits 1: \(fail.stderr)")
        // The value the gate compared, every digit of it: 6 significant digits printed
        // 0.39999999999999997 as 0.4, the bound it fell short of.
        let exact = try sh("score --value accuracy pred.tns", cwd: tmp).stdoutText.trimmingCharacters(in: .newlines)
        XCTAssertEqual(fail.stderrLines, ["score: gate accuracy>=\(expected + 0.001) not met: accuracy = \(exact)"])
        XCTAssertTrue(fail.stdout.isEmpty, "-q prints no table")
    }

    /// --value prints one metric as JSON holds it, every digit, for a script to compare two
    /// models; per-class metrics by name or index; a name no metric is a usage error.
    func testValuePrintsOneMetricForScripts() throws {
        let text = try sh("score --json pred.tns", cwd: tmp).stdoutText
        let obj = try JSONSerialization.jsonObject(with: Data(text.utf8)) as! [String: Any]
        for key in ["accuracy", "log_loss", "f1_macro"] {
            let r = try sh("score --value \(key) pred.tns", cwd: tmp)
            XCTAssertEqual(r.status, 0, r.stderr)
            // The JSON's own digits (Foundation's JSON parser rounds the last one on Linux).
            XCTAssertTrue(text.contains("\"\(key)\":\(r.stdoutText.trimmingCharacters(in: .newlines)),"), "\(key): \(r.stdoutText) in \(text)")
        }
        let perClass = (obj["per_class"] as! [String: [String: Any]])["setosa"]!["recall"] as! Double
        XCTAssertEqual(try sh("score --value 'recall[setosa]' pred.tns", cwd: tmp).stdoutText, "\(perClass)\n")
        XCTAssertEqual(try sh("score --value 'recall[0]' pred.tns", cwd: tmp).stdoutText, "\(perClass)\n")
        // Counts are integers, as in the JSON (samples printed 200.0).
        XCTAssertEqual(try sh("score --value samples pred.tns", cwd: tmp).stdoutText, "\(obj["samples"] as! Int)\n")
        let support = (obj["per_class"] as! [String: [String: Any]])["setosa"]!["support"] as! Int
        XCTAssertEqual(try sh("score --value 'support[setosa]' pred.tns", cwd: tmp).stdoutText, "\(support)\n")
        assertFails(try sh("score --value roc_auc pred.tns", cwd: tmp), status: 64, prefix: "score: --value: 'roc_auc' is not a metric of this classification task")
        assertFails(try sh("score --value accuracy --json pred.tns", cwd: tmp), status: 64, prefix: "score: --value prints one figure")
        // A metric that is not defined prints nan (R² of one sample), with the warning.
        let one = Schema(fields: [Field(name: "y", dtype: .f32, shape: Shape([])), Field(name: "yhat", dtype: .f32, shape: Shape([]))])
        try Data(try makeStream(one, batches: [(1, [[0, 0, 128, 63], [0, 0, 0, 64]])])).write(to: URL(fileURLWithPath: "\(tmp)/one.tns"))
        let r2 = try sh("score --value r2 one.tns", cwd: tmp)
        XCTAssertEqual(r2.status, 0, r2.stderr)
        XCTAssertEqual(r2.stdoutText, "nan\n")
        XCTAssertEqual(r2.stderrLines, ["score: warning: R² is not defined for fewer than two samples"])
        // With a gate: the figure, and the gate's status.
        let gated = try sh("score --value accuracy --require 'accuracy>1' pred.tns", cwd: tmp)
        XCTAssertEqual(gated.status, 1)
        XCTAssertEqual(Double(gated.stdoutText.trimmingCharacters(in: .newlines)), obj["accuracy"] as? Double)
    }

    func testReportIsWellFormedAndHoldsTheConfusionMatrix() throws {
        for name in ["report.html", "report.svg"] {
            let r = try sh("score --json --report \(name) pred.tns", cwd: tmp)
            XCTAssertEqual(r.status, 0, r.stderr)
            let matrix = try json(r)["confusion_matrix"] as! [[Int]]
            let parser = XMLParser(contentsOf: URL(fileURLWithPath: "\(tmp)/\(name)"))!
            let cells = CellCollector()
            parser.delegate = cells
            XCTAssertTrue(parser.parse(), "\(name) is well-formed XML: \(String(describing: parser.parserError))")
            XCTAssertEqual(cells.cells.count, 9, name)
            for (row, col, count) in cells.cells { XCTAssertEqual(matrix[row][col], count, "\(name) cell \(row),\(col)") }
            XCTAssertEqual(cells.cells.map(\.2).reduce(0, +), matrix.joined().reduce(0, +))
            XCTAssertEqual(cells.root, name.hasSuffix(".svg") ? "svg" : "html")
        }
    }

    func testAReportThatCannotBeWrittenLeavesTheTableAndUnusedOptionsAreRefused() throws {
        try Data("old\n".utf8).write(to: URL(fileURLWithPath: "\(tmp)/t.txt"))
        let r = try sh("score -o t.txt --report nodir/r.html pred.tns", cwd: tmp)
        XCTAssertEqual(r.status, 74, r.stderr)
        XCTAssertTrue(r.stderr.hasPrefix("score: nodir/r.html: "), r.stderr)
        XCTAssertEqual(try String(contentsOfFile: "\(tmp)/t.txt", encoding: .utf8), "old\n", "-o is not replaced when the report fails")
        for (args, words) in [("--json -q pred.tns", "--quiet and --json exclude each other"),
                              ("--fit-log x.jsonl pred.tns", "--fit-log goes with --report"),
                              ("--no-input --fit-log x.jsonl --report c.svg -o t.txt", "-o does not go with --no-input"),
                              ("--no-input --fit-log x.jsonl --report c.svg --json", "--json does not go with --no-input")] {
            XCTAssertEqual(try sh("score \(args)", cwd: tmp).stderrLines.first.map { $0.hasPrefix("score: \(words)") }, true, args)
            XCTAssertEqual(try sh("score \(args)", cwd: tmp).status, 64, args)
        }
    }

    func testLearningCurvesFromTheFitLog() throws {
        let fit = try sh("fit --model 'dense 8 relu; dense classes' --epochs 3 --batch 4 --seed 1 --validation-split 0.2 -q --log log.jsonl -o m2.model iris.tns && score --no-input --fit-log log.jsonl --report curves.svg", cwd: tmp)
        XCTAssertEqual(fit.status, 0, fit.stderr)
        let parser = XMLParser(contentsOf: URL(fileURLWithPath: "\(tmp)/curves.svg"))!
        let c = CellCollector()
        parser.delegate = c
        XCTAssertTrue(parser.parse())
        XCTAssertEqual(c.series, ["training", "validation", "training", "validation"], "loss and accuracy, training and validation")
        try Data("{\"epoch\":1}\n{oops\n".utf8).write(to: URL(fileURLWithPath: "\(tmp)/bad.jsonl"))
        let bad = try sh("score --no-input --fit-log bad.jsonl --report c.svg", cwd: tmp)
        XCTAssertEqual(bad.status, 65)
        XCTAssertEqual(bad.stderrLines, ["score: bad.jsonl: line 2: not JSON (fit --log writes one JSON object per line)"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(tmp)/c.svg"))
    }

    func writeStream(_ name: String, classes: [String]?, y: [Int64], p: [Float]) throws {
        var schema = Schema(fields: [Field(name: "y", dtype: .i64, shape: Shape([])), Field(name: "p", dtype: .f32, shape: Shape([p.count / y.count]))])
        if let classes { schema.setClasses(classes, of: "y") }
        let bytes = try makeStream(schema, batches: [(y.count, [y.withUnsafeBytes { Array($0) }, p.withUnsafeBytes { Array($0) }])])
        try Data(bytes).write(to: URL(fileURLWithPath: "\(tmp)/\(name)"))
    }

    /// Writes `values` as an .npy array of `shape` (the sample axis first).
    func writeNPY<T>(_ name: String, _ values: [T], descr: String, shape: [Int]) throws {
        try Data(npyHeader(descr: descr, shape: shape) + values.withUnsafeBytes { Array($0) }).write(to: URL(fileURLWithPath: "\(tmp)/\(name)"))
    }

    /// tensor-load names the classes of unnamed integer labels "0" … the largest label it
    /// saw: such lists leave the class count open, so predictions that never reach the top
    /// class, or a p wider than the labels reach, are scored; real names must still agree.
    func testIndexClassNamesFromTensorLoadDoNotFixTheClassCount() throws {
        try writeNPY("y.npy", [Int64]([0, 1, 2, 2, 1, 0]), descr: "<i8", shape: [6])
        try writeNPY("yhat.npy", [Int64]([0, 1, 1, 1, 0, 0]), descr: "<i8", shape: [6])
        let short = try sh("tensor-load y=y.npy yhat=yhat.npy | score --json", cwd: tmp)
        XCTAssertEqual(short.status, 0, short.stderr)
        XCTAssertEqual(try json(short)["confusion_matrix"] as? [[Int]], [[2, 0, 0], [1, 1, 0], [0, 2, 0]])
        XCTAssertEqual(try json(short)["classes"] as? [String], ["0", "1", "2"])

        // p has a column for class 3, which no target reaches.
        try writeNPY("p.npy", [Float]([0.7, 0.1, 0.1, 0.1, 0.1, 0.7, 0.1, 0.1, 0.1, 0.1, 0.1, 0.7,
                                       0.1, 0.1, 0.7, 0.1, 0.1, 0.7, 0.1, 0.1, 0.7, 0.1, 0.1, 0.1]), descr: "<f4", shape: [6, 4])
        let wide = try sh("tensor-load y=y.npy p=p.npy | score --json", cwd: tmp)
        XCTAssertEqual(wide.status, 0, wide.stderr)
        XCTAssertEqual(try json(wide)["confusion_matrix"] as? [[Int]], [[2, 0, 0, 0], [0, 2, 0, 0], [0, 0, 1, 1], [0, 0, 0, 0]])

        // One class in the targets and P(class 1): two classes (this trapped, status 132).
        try writeNPY("y0.npy", [Int64]([0, 0, 0]), descr: "<i8", shape: [3])
        try writeNPY("p1.npy", [Float]([0.9, 0.2, 0.4]), descr: "<f4", shape: [3, 1])
        let one = try sh("tensor-load y=y0.npy p=p1.npy | score --json", cwd: tmp)
        XCTAssertEqual(one.status, 0, one.stderr)
        XCTAssertEqual(try json(one)["task"] as? String, "binary")
        XCTAssertEqual(try json(one)["confusion_matrix"] as? [[Int]], [[2, 1], [0, 0]])

        // Two classes grown from the labels are a binary task: precision of class 1.
        try writeNPY("y01.npy", [Int64]([0, 1, 1, 0]), descr: "<i8", shape: [4])
        try writeNPY("yhat0.npy", [Int64]([0, 1, 0, 0]), descr: "<i8", shape: [4])
        let binary = try sh("tensor-load y=y01.npy yhat=yhat0.npy | score --value recall --require 'precision>=1'", cwd: tmp)
        XCTAssertEqual(binary.status, 0, binary.stderr)
        XCTAssertEqual(binary.stdoutText, "0.5\n")

        // Names other than the indices must agree exactly.
        assertFails(try sh("tensor-load --classes cat,dog,bird y=y.npy yhat=yhat.npy | score", cwd: tmp), status: 65,
                    prefix: "score: stdin: the class names of 'y' (cat, dog, bird) and 'yhat' (0, 1) differ")
    }

    func testBadInputIsOneLineAndItsStatus() throws {
        try writeStream("nan.tns", classes: ["a", "b", "c"], y: [0, 1, 2], p: [1, 0, 0, 0, .nan, 1, 0, 0, 1])
        let nan = try sh("score --report r.html nan.tns", cwd: tmp)
        XCTAssertEqual(nan.status, 65)
        XCTAssertEqual(nan.stderrLines, ["score: nan.tns: sample 1: p is NaN in column 1"])
        XCTAssertTrue(nan.stdout.isEmpty)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(tmp)/r.html"), "no report from bad data")

        try writeStream("outside.tns", classes: ["a", "b", "c"], y: [0, 3, 2], p: [1, 0, 0, 0, 1, 0, 0, 0, 1])
        let outside = try sh("score outside.tns", cwd: tmp)
        XCTAssertEqual(outside.status, 65)
        XCTAssertEqual(outside.stderrLines, ["score: outside.tns: sample 1: y = 3 is outside the 3 classes"])

        let cut = try sh("head -c 300 pred.tns | score", cwd: tmp)
        XCTAssertEqual(cut.status, 65, cut.stderr)
        XCTAssertEqual(cut.stderrLines.count, 1)
        XCTAssertTrue(cut.stdout.isEmpty, "no metrics from half a stream")

        let syntax = try sh("score --require 'accuracy' pred.tns", cwd: tmp)
        XCTAssertEqual(syntax.status, 64)
        let unknown = try sh("score --require 'rmse<=0.5' pred.tns", cwd: tmp)
        XCTAssertEqual(unknown.status, 64)
        XCTAssertTrue(unknown.stderr.hasPrefix("score: --require: 'rmse' is not a metric of this classification task"), unknown.stderr)
        XCTAssertEqual(unknown.stderrLines.count, 1)
        // A per-class metric of a class the stream does not have names the class, not the
        // metric, which the list shows as recall[CLASS] (helper-43's review).
        assertFails(try sh("score --require 'recall[virginicaa]>=0.5' pred.tns", cwd: tmp), status: 64,
                    prefix: "score: --require: 'recall[virginicaa]': no class 'virginicaa' (classes: setosa, versicolor, virginica)")
        // A stream never predicted: the hint is predict.
        assertFails(try sh("tensor-cat --fields x,y pred.tns | score", cwd: tmp), status: 65, prefix: "score: stdin: ",
                    contains: "; run the stream through predict -m MODEL first, or choose the fields with --pred and --prob")
        // --top-k where no top-k accuracy is reported did nothing, without a word; iris has
        // 3 classes, so k 2 is reported and k 3 is not.
        XCTAssertNotNil(try json(try sh("score --json --top-k 2 pred.tns", cwd: tmp))["top_k_accuracy"])
        let k3 = try sh("score --top-k 3 pred.tns", cwd: tmp)
        XCTAssertEqual(k3.status, 65, k3.stderr)
        XCTAssertEqual(k3.stderrLines, ["score: pred.tns: --top-k 3: there are only 3 classes, so every sample is in the top 3"])
        // 65,536 classes aborted allocating a 34 GB confusion matrix (134); past 100 classes
        // the report says the matrix is too large to draw instead of writing k² cells.
        try "label,v\n65535,3\n0,0\n".write(toFile: "\(tmp)/many.csv", atomically: false, encoding: .utf8)
        let many = try sh("tensor-load --label label many.csv | score --pred x --task classification", cwd: tmp)
        XCTAssertEqual(many.status, 65, many.stderr)
        XCTAssertEqual(many.stderrLines, ["score: stdin: 65536 classes is more than the 4096 score handles (its confusion matrix takes k² counts)"])
        let names = (0..<150).map { "c\($0)" }
        try writeStream("wide.tns", classes: names, y: [0, 149], p: (0..<300).map { $0 == 0 || $0 == 299 ? 1 : 0 })
        let wide = try sh("score --report wide.svg wide.tns", cwd: tmp)
        XCTAssertEqual(wide.status, 0, wide.stderr)
        let svg = try String(contentsOfFile: "\(tmp)/wide.svg", encoding: .utf8)
        XCTAssertTrue(svg.contains("150 classes: too many to draw"), String(svg.prefix(500)))
        XCTAssertFalse(svg.contains("class=\"cell\""))
        let missing = try sh("score --target label pred.tns", cwd: tmp)
        XCTAssertEqual(missing.status, 65)
        XCTAssertTrue(missing.stderr.hasPrefix("score: pred.tns: no target field 'label'"), missing.stderr)
    }
}

/// Collects the confusion-matrix cells (data-row, data-col, data-count) and curve names.
final class CellCollector: NSObject, XMLParserDelegate {
    var cells: [(Int, Int, Int)] = []
    var series: [String] = []
    var root: String?
    func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?, attributes a: [String: String] = [:]) {
        if root == nil { root = name }
        if name == "rect", a["class"] == "cell", let r = Int(a["data-row"] ?? ""), let c = Int(a["data-col"] ?? ""), let n = Int(a["data-count"] ?? "") {
            cells.append((r, c, n))
        }
        if name == "polyline", a["class"] == "series", let s = a["data-name"] { series.append(s) }
    }
}
