// How a ScoreReport is shown: an aligned table for people, JSON with scikit-learn's names for
// programs, and the gates (`accuracy>=0.9`) that let a cron job fail loudly.

import Foundation
import TensorCore

extension ScoreReport {
    /// The aligned table `score` prints by default.
    public func table() -> String {
        var out = "task      \(task.rawValue)\nsamples   \(samples)\n"
        let display = displayedNames()
        let positive = classNames.count > 1 ? display[1] : "1"
        let labels = [
            "accuracy": "accuracy",
            "top_k_accuracy": "top-\(topK) accuracy",
            "log_loss": "log loss",
            "roc_auc": "ROC AUC",
            "average_precision": "average precision",
            "precision": "precision (class \(positive))",
            "recall": "recall (class \(positive))",
            "f1": "F1 (class \(positive))",
            "mse": "MSE", "rmse": "RMSE", "mae": "MAE", "r2": "R²",
        ]
        let shown = metrics.filter { labels[$0.key] != nil }
        let w = shown.map { labels[$0.key]!.count }.max() ?? 0
        for m in shown {
            out += pad(labels[m.key]!, w) + "  " + number(m.value) + "\n"
        }
        if !perClass.isEmpty {
            let names = perClass.indices.map { display[$0] } + ["macro avg", "weighted avg"]
            let cw = max(names.map(\.count).max()!, 5)
            out += "\n" + pad("class", cw) + "  precision     recall         f1    support\n"
            for (i, c) in perClass.enumerated() {
                out += pad(display[i], cw) + "  " + cells([c.precision, c.recall, c.f1]) + lpad(String(c.support), 11) + "\n"
            }
            func avg(_ suffix: String) -> [Double?] {
                ["precision", "recall", "f1"].map { key in metrics.first { $0.key == key + suffix }?.value ?? nil }
            }
            out += pad("macro avg", cw) + "  " + cells(avg("_macro")) + lpad(String(samples), 11) + "\n"
            out += pad("weighted avg", cw) + "  " + cells(avg("_weighted")) + lpad(String(samples), 11) + "\n"
            // Rows carry the column number of their class, so that a column is found without
            // counting rows.
            out += "\nconfusion matrix (rows: target, columns: prediction)\n"
            let iw = String(confusion.count - 1).count
            let width = max(confusion.flatMap { $0 }.map { String($0).count }.max() ?? 1, iw)
            let rw = iw + 1 + cw
            out += pad("", rw) + " " + (0..<confusion.count).map { " " + lpad(String($0), width) }.joined() + "\n"
            for (i, row) in confusion.enumerated() {
                out += pad(lpad(String(i), iw) + " " + display[i], rw) + " " + row.map { " " + lpad(String($0), width) }.joined() + "\n"
            }
        }
        return out
    }

    /// The class names as the table shows them: escaped (control and bidi characters cannot
    /// reach the terminal), and all quoted when one could be misread: empty, with a space at
    /// either end, or named like a row or heading of the table.
    private func displayedNames() -> [String] {
        let shown = classNames.map { escapedForDisplay($0) }
        let misread = shown.contains { n in
            n.isEmpty || n.first!.isWhitespace || n.last!.isWhitespace || ["macro avg", "weighted avg", "class"].contains(n)
        }
        return misread ? shown.map(quoted) : shown
    }
    private func pad(_ s: String, _ w: Int) -> String { s + String(repeating: " ", count: max(0, w - s.count)) }
    private func lpad(_ s: String, _ w: Int) -> String { String(repeating: " ", count: max(0, w - s.count)) + s }
    private func number(_ v: Double?) -> String { v.map { String(format: "%.4f", $0) } ?? "undefined" }
    private func cells(_ vs: [Double?]) -> String { vs.map { lpad(number($0), 9) + "  " }.joined() }

    /// How --value prints a metric and a failed gate quotes it: a count (samples, support[C])
    /// as an integer, as JSON has it; anything else with every digit that tells it from the
    /// neighbouring doubles, since a gate compares the double itself (six digits printed
    /// 0.39999999999999997 as 0.4, the very bound it fell short of).
    public static func text(of value: Double, key: String) -> String {
        if key == "samples" || key.hasPrefix("support["), let n = Int(exactly: value) { return String(n) }
        return "\(value)"
    }

    /// JSON with scikit-learn's names; per-class entries as classification_report(output_dict=True)
    /// spells them.
    public func json() -> String {
        var parts = ["\"task\":\"\(task.rawValue)\"", "\"samples\":\(samples)"]
        for m in metrics { parts.append("\"\(m.key)\":\(jsonNumber(m.value))") }
        if topK > 0 { parts.append("\"top_k\":\(topK)") }
        if !perClass.isEmpty {
            parts.append("\"classes\":[" + perClass.map { jsonString($0.name) }.joined(separator: ",") + "]")
            let rows = perClass.map {
                jsonString($0.name) + ":{\"precision\":\(jsonNumber($0.precision)),\"recall\":\(jsonNumber($0.recall)),\"f1-score\":\(jsonNumber($0.f1)),\"support\":\($0.support)}"
            }
            parts.append("\"per_class\":{" + rows.joined(separator: ",") + "}")
            parts.append("\"confusion_matrix\":[" + confusion.map { "[" + $0.map(String.init).joined(separator: ",") + "]" }.joined(separator: ",") + "]")
        }
        return "{" + parts.joined(separator: ",") + "}\n"
    }
}

func jsonNumber(_ v: Double?) -> String {
    guard let v, v.isFinite else { return "null" }
    return "\(v)"  // the shortest text that reads back as the same Double
}

func jsonString(_ s: String) -> String {
    var out = "\""
    for u in s.unicodeScalars {
        switch u {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\t": out += "\\t"
        case "\r": out += "\\r"
        default:
            if u.value < 0x20 || u.value == 0x7F { out += String(format: "\\u%04x", u.value) } else { out.unicodeScalars.append(u) }
        }
    }
    return out + "\""
}

/// A `--require` condition: a metric, a comparison and a number.
public struct Gate: Equatable {
    public enum Comparison: String, CaseIterable { case ge = ">=", le = "<=", eq = "==", ne = "!=", gt = ">", lt = "<" }
    public let text: String
    public let key: String
    public let comparison: Comparison
    public let bound: Double

    /// Parses `KEY OP NUMBER` (spaces allowed); KEY may name a class in brackets: `recall[Shirt]`.
    public init?(_ text: String) {
        self.text = text
        let s = Array(text.unicodeScalars)
        // the operator is searched after any bracketed class name, which may hold any character
        let start = s.lastIndex(of: "]").map { $0 + 1 } ?? 0
        var found: (Int, Comparison)?
        var i = start
        while i < s.count && found == nil {
            for c in Comparison.allCases {
                let op = Array(c.rawValue.unicodeScalars)
                if i + op.count <= s.count && Array(s[i..<i + op.count]) == op { found = (i, c); break }
            }
            i += 1
        }
        guard let (at, c) = found else { return nil }
        var k = String(String.UnicodeScalarView(s[0..<at]))
        var v = String(String.UnicodeScalarView(s[(at + c.rawValue.unicodeScalars.count)...]))
        k = k.trimmingCharacters(in: .whitespaces)
        v = v.trimmingCharacters(in: .whitespaces)
        guard !k.isEmpty, let b = Double(v), b.isFinite else { return nil }
        key = k
        comparison = c
        bound = b
    }

    public func holds(for value: Double) -> Bool {
        switch comparison {
        case .ge: return value >= bound
        case .le: return value <= bound
        case .eq: return value == bound
        case .ne: return value != bound
        case .gt: return value > bound
        case .lt: return value < bound
        }
    }

    /// Why the gate fails on `report`, or nil when it holds. A metric that is not defined fails.
    public func failure(in report: ScoreReport) -> String? {
        guard let v = report.value(of: key) else { return "\(key) is not a metric of this \(report.task.rawValue) task" }
        guard let value = v else { return "gate \(text) not met: \(key) is not defined" }
        return holds(for: value) ? nil : "gate \(text) not met: \(key) = " + ScoreReport.text(of: value, key: key)
    }
}
