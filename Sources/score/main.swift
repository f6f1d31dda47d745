// score: metrics of predictions against targets, as a table, JSON, gates and a picture.

import ArgumentParser
import Foundation
import Metrics
import TensorCore
import TensorStream
import ToolSupport

struct Score: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "score",
        abstract: "Compute classification or regression metrics from a stream; gate on them.",
        discussion: """
        Reads a stream with a target field and a prediction and/or probability field (by default \
        y, yhat and p, as predict writes them). Prints accuracy, top-k accuracy, per-class \
        precision, recall and F1, their macro and weighted averages, the confusion matrix and \
        the log loss; for two classes also ROC AUC and average precision; for regression MSE, \
        RMSE, MAE and R². Definitions and JSON names are scikit-learn's. A --require gate that \
        fails prints a line naming it and exits 1.

        Examples:
          predict -m fashion.model test.tns | score
          predict -m fashion.model test.tns \\
            | score --require 'accuracy>=0.9' --require 'f1_macro>=0.85'
          predict -m fashion.model test.tns \\
            | score --json --report report.html --fit-log train-log.jsonl
          predict -m fashion.model test.tns | score --value f1_macro
        """,
        version: toolVersion)

    @Option(help: ArgumentHelp("The target field (default y).", valueName: "name"))
    var target: String?

    @Option(help: ArgumentHelp("The prediction field (class index, or value for regression).", valueName: "name"))
    var pred: String?

    @Option(help: ArgumentHelp("The probability field (one column per class, or P(class 1)).", valueName: "name"))
    var prob: String?

    @Option(help: ArgumentHelp("auto, classification, binary or regression.", valueName: "task"))
    var task: String = "auto"

    @Option(help: ArgumentHelp("Binary: predict class 1 when its probability is at least X.", valueName: "x"))
    var threshold: Double?

    @Option(name: .customLong("top-k"), help: ArgumentHelp("K for top-k accuracy (default 5).", valueName: "k"))
    var topK: Int?

    @Flag(help: "Print JSON (scikit-learn's metric names) instead of the table.")
    var json = false

    @Option(help: ArgumentHelp("A gate such as 'accuracy>=0.9' (repeatable); exit 1 when one fails.", valueName: "expr"))
    var require: [String] = []

    @Option(help: ArgumentHelp("Write pictures to FILE: SVG when it ends in .svg, else an HTML page.", valueName: "file"))
    var report: String?

    @Option(name: .customLong("fit-log"), help: ArgumentHelp("Add learning curves from a fit --log FILE to the report.", valueName: "file"))
    var fitLog: String?

    @Flag(name: .customLong("no-input"), help: "Read no stream: only draw --fit-log's curves into --report.")
    var noInput = false

    @Option(name: .shortAndLong, help: ArgumentHelp("Write the table or JSON to FILE (atomically) instead of stdout.", valueName: "file"))
    var output: String?

    @Option(help: ArgumentHelp("Print only the value of one metric, named as --require names it (for scripts).", valueName: "metric"))
    var value: String?

    @Flag(name: .shortAndLong, help: "Print no table or JSON (gates and warnings still speak).")
    var quiet = false

    @Argument(help: ArgumentHelp("The input stream; stdin when none or \"-\".", valueName: "file"))
    var file: String?

    func validate() throws {
        if !["auto", "classification", "binary", "regression"].contains(task) {
            throw ValidationError("--task takes auto, classification, binary or regression")
        }
        if let t = threshold, !(t >= 0 && t <= 1) { throw ValidationError("--threshold takes a probability in [0, 1]") }
        if let topK, topK < 1 { throw ValidationError("--top-k takes a number ≥ 1") }
        try refuseSharedFiles(outputs: [("-o", output ?? (quiet || noInput ? nil : "-")), ("--report", report)], inputs: [("the input", file ?? "-"), ("--fit-log", fitLog)])
        try refuseStdinTwice([("--fit-log", fitLog), ("the input", noInput ? nil : file ?? "-")])
        for r in require where Gate(r) == nil {
            throw ValidationError("--require '\(r)' is not METRIC OP NUMBER (OP one of >= <= > < == !=), e.g. 'accuracy>=0.9'")
        }
        if noInput && (fitLog == nil || report == nil) { throw ValidationError("--no-input needs --fit-log and --report") }
        if noInput && (file != nil || !require.isEmpty) { throw ValidationError("--no-input reads no stream: no file operand or --require") }
        if quiet && output != nil { throw ValidationError("--quiet and --output exclude each other") }
        // Options that would do nothing, without a word.
        if quiet && json { throw ValidationError("--quiet and --json exclude each other") }
        if value != nil && (json || quiet) { throw ValidationError("--value prints one figure: no --json or --quiet") }
        if let v = value, v.isEmpty { throw ValidationError("--value takes a metric name, such as accuracy") }
        if fitLog != nil && report == nil { throw ValidationError("--fit-log goes with --report (the curves are drawn there)") }
        if noInput {
            let unused = [("-o", output != nil), ("--json", json), ("--quiet", quiet), ("--target", target != nil), ("--pred", pred != nil), ("--prob", prob != nil),
                          ("--threshold", threshold != nil), ("--top-k", topK != nil), ("--task", task != "auto"), ("--value", value != nil)].filter(\.1).map(\.0)
            if let o = unused.first { throw ValidationError("\(o) does not go with --no-input, which writes only the --report") }
        }
    }

    func run() throws {
        Tool.run("score") {
            // The report's file is opened first: one that cannot be written fails before -o is
            // replaced.
            let reportOut = try report.map { try Output.open($0, binary: false) }
            var tableOut: Output?
            defer {  // after a commit, nothing
                reportOut?.abandon()
                tableOut?.abandon()
            }
            let log = try fitLog.map { path -> [EpochRecord] in
                let src = try FileSource.open(path)
                let (records, warning) = try LearningLog.parse(try readWhole(src, limit: 64 << 20), name: src.name)
                if let warning { Tool.warn("score", warning) }
                return records
            }
            var result: ScoreReport?
            if !noInput {
                let reader = try StreamReader(source: try FileSource.open(file ?? "-"))
                var o = ScoreOptions()
                o.target = target ?? "y"
                if let pred { o.pred = pred; o.predGiven = true }
                if let prob { o.prob = prob; o.probGiven = true }
                o.task = task == "auto" ? nil : Metrics.Task(rawValue: task)
                o.threshold = threshold
                o.topK = topK ?? 5
                o.topKGiven = topK != nil
                let scorer = try Scorer(schema: reader.schema, input: reader.source.name, options: o)
                while let b = try reader.next() { try scorer.add(b) }
                if scorer.samples == 0 { throw ToolFailure(reader.source.name, "the stream has no samples to score") }
                let r = scorer.finish()
                for w in r.warnings { Tool.warn("score", w) }
                let keys = r.metrics.map(\.key) + ["samples"] + (r.perClass.isEmpty ? [] : ["precision[CLASS]", "recall[CLASS]", "f1[CLASS]", "support[CLASS]"])
                for (key, option) in require.map({ (Gate($0)!.key, "--require") }) + (value.map { [($0, "--value")] } ?? [])
                where r.value(of: key) == nil {
                    // A per-class metric of a class the stream does not have: the class is wrong.
                    if key.hasSuffix("]"), let open = key.firstIndex(of: "["), !r.perClass.isEmpty,
                       ["precision", "recall", "f1", "support"].contains(String(key[..<open])) {
                        let cls = String(key[key.index(after: open)..<key.index(before: key.endIndex)])
                        throw UsageError("'\(key)': no class '\(escapedForDisplay(cls))' (classes: \(displayNames(r.perClass.map(\.name).prefix(12)))\(r.perClass.count > 12 ? ", …" : ""))", location: option)
                    }
                    throw UsageError("'\(key)' is not a metric of this \(r.task.rawValue) task (metrics: \(keys.joined(separator: ", ")))", location: option)
                }
                if !quiet {
                    let out = try Output.open(output, binary: false)
                    do {
                        // --value: "nan" when the metric is not defined, as ROC AUC with one class
                        let text = value.map { key in ((r.value(of: key) ?? nil).map { ScoreReport.text(of: $0, key: key) } ?? "nan") + "\n" } ?? (json ? r.json() : r.table())
                        try out.sink.write(string: text)
                        tableOut = out
                    } catch {
                        out.abandon()
                        throw error
                    }
                }
                result = r
            }
            // The table and the report are one result: both are written and synced before
            // either replaces its file, and renamed together, so a full disk, a failed report
            // or a failed rename leaves the old pair.
            if let report, let out = reportOut {
                try out.sink.write(string: ReportDocument.render(result, log: log ?? [], title: title, svg: report.hasSuffix(".svg")))
            }
            try Output.commitTogether([tableOut, reportOut])
            if let r = result {
                let failures = require.compactMap { Gate($0)!.failure(in: r) }
                for f in failures { Tool.report("score", "", f) }
                if !failures.isEmpty { Foundation.exit(ExitStatus.gateFailed) }
            }
        }
    }

    var title: String {
        let what = noInput ? (fitLog ?? "") : (file ?? "stdin")
        return "score: " + what
    }
}

Score.mainAsTool()
