// Pictures for people: the confusion matrix as a heat map, ROC and PR curves for binary tasks,
// and learning curves from `fit --log`, as one standalone SVG or an HTML page of inline SVGs.
// The output is well-formed XML either way, so programs can read the cells back.

import Foundation

/// One epoch of a `fit --log` file.
public struct EpochRecord: Equatable {
    public var epoch: Int
    public var values: [String: Double]
}

public enum LearningLog {
    /// The figures drawn as learning curves.
    static let drawnKeys = ["loss", "accuracy", "val_loss", "val_accuracy"]

    /// Parses JSON lines as `fit --log` writes them; each line must be an object with an integer
    /// "epoch". `name` is used in errors. fit appends to its log, so a log may hold several
    /// runs: an epoch that does not follow the one before starts a new run, and only the last
    /// run is returned, with a warning that says so.
    public static func parse(_ bytes: [UInt8], name: String) throws -> (records: [EpochRecord], warning: String?) {
        var records: [EpochRecord] = []
        var runs = 1, lastStart = 0
        var lineNo = 0
        for line in bytes.split(separator: 10, omittingEmptySubsequences: false) {
            lineNo += 1
            if line.allSatisfy({ $0 == 32 || $0 == 9 || $0 == 13 }) { continue }
            let parsed: Any
            do {
                parsed = try JSONSerialization.jsonObject(with: Data(line), options: [.fragmentsAllowed])
            } catch {
                // Foundation says why in its debug description ("Number 1e400 is not
                // representable in Swift."); a number beyond a double's range is the one a log
                // could plausibly hold.
                let why = ((error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String) ?? ""
                if why.hasPrefix("Number "), why.contains("not representable") {
                    throw ScoreError("\(name): line \(lineNo)", "\(why.dropFirst(7).prefix { $0 != " " }) is beyond the range of a number")
                }
                throw ScoreError("\(name): line \(lineNo)", "not JSON (fit --log writes one JSON object per line)")
            }
            guard let obj = parsed as? [String: Any] else { throw ScoreError("\(name): line \(lineNo)", "not a JSON object") }
            guard let e = obj["epoch"] as? NSNumber, String(cString: e.objCType) != "c", e.doubleValue == e.doubleValue.rounded(), e.doubleValue >= 0, e.doubleValue < 1e9 else {
                throw ScoreError("\(name): line \(lineNo)", "no integer \"epoch\"")
            }
            var values: [String: Double] = [:]
            for (k, v) in obj where k != "epoch" {
                // A figure that is drawn must be a number, or null (fit's NaN); true would read
                // as 1 (NSNumber), a string would vanish from the curve.
                let isBool = (v as? NSNumber).map { String(cString: $0.objCType) == "c" } ?? false
                if drawnKeys.contains(k), !(v is NSNull), !(v is NSNumber) || isBool {
                    throw ScoreError("\(name): line \(lineNo)", "\"\(k)\" is not a number")
                }
                guard let n = v as? NSNumber, !isBool, n.doubleValue.isFinite else { continue }
                // fit's figures come from f32: a larger one is no log of fit's (and 1e308
                // made the curve's range infinite, and its coordinates NaN).
                guard abs(n.doubleValue) <= Double(Float.greatestFiniteMagnitude) else { throw ScoreError("\(name): line \(lineNo)", "\"\(k)\" is \(n.doubleValue), beyond any figure fit writes") }
                values[k] = n.doubleValue
            }
            let epoch = Int(e.doubleValue)
            if let last = records.last, epoch <= last.epoch {
                runs += 1
                lastStart = records.count
            }
            records.append(EpochRecord(epoch: epoch, values: values))
        }
        if records.isEmpty { throw ScoreError(name, "no epochs in the log") }
        let last = Array(records[lastStart...])
        let curves = last.contains { r in drawnKeys.contains { r.values[$0] != nil } }
        guard curves else { throw ScoreError(name, "no loss or accuracy to draw in the \(runs > 1 ? "last run's epochs" : "log")") }
        let warning = runs > 1 ? "\(name) holds \(runs) runs (fit --log appends; an epoch that does not follow the one before starts a run): drawing the last, epochs \(last.first!.epoch)–\(last.last!.epoch)" : nil
        return (last, warning)
    }
}

public enum ReportDocument {
    /// The most classes whose confusion matrix is drawn cell by cell.
    public static let maxDrawnClasses = 100

    /// An HTML page (inline SVG), or with `svg` one SVG document, with every picture that
    /// applies: confusion matrix, ROC and PR curves, learning curves.
    public static func render(_ report: ScoreReport?, log: [EpochRecord], title: String, svg: Bool) -> String {
        var panels: [(title: String, body: String, width: Int, height: Int)] = []
        if let r = report, !r.confusion.isEmpty {
            // Past 100 classes the cells are too small to read, and the page grows by k².
            panels.append(r.confusion.count <= maxDrawnClasses ? confusionPanel(r)
                          : ("Confusion matrix", "<text x=\"10\" y=\"20\">\(r.confusion.count) classes: too many to draw; see the table or --json's confusion_matrix</text>\n", 520, 30))
        }
        if let r = report, !r.roc.isEmpty {
            panels.append(("ROC curve (AUC " + metric(r, "roc_auc") + ")",
                           curve([(r.roc, "#1f77b4", "ROC")], xLabel: "false positive rate", yLabel: "true positive rate", diagonal: true, yRange: (0, 1)), 360, 360))
        }
        if let r = report, !r.pr.isEmpty {
            panels.append(("Precision–recall curve (AP " + metric(r, "average_precision") + ")",
                           curve([(r.pr, "#d62728", "PR")], xLabel: "recall", yLabel: "precision", diagonal: false, yRange: (0, 1)), 360, 360))
        }
        if !log.isEmpty {
            for (key, label) in [("loss", "loss"), ("accuracy", "accuracy")] {
                let train = log.compactMap { r in r.values[key].map { CurvePoint(x: Double(r.epoch), y: $0) } }
                let val = log.compactMap { r in r.values["val_" + key].map { CurvePoint(x: Double(r.epoch), y: $0) } }
                if train.isEmpty && val.isEmpty { continue }
                let all = (train + val).map(\.y)
                var lo = all.min()!, hi = all.max()!
                if hi - lo < 1e-9 { lo -= 0.5; hi += 0.5 }
                let pad = (hi - lo) * 0.05
                var series: [([CurvePoint], String, String)] = []
                if !train.isEmpty { series.append((train, "#1f77b4", "training")) }
                if !val.isEmpty { series.append((val, "#ff7f0e", "validation")) }
                panels.append(("Learning curve: \(label)",
                               curve(series, xLabel: "epoch", yLabel: label, diagonal: false, yRange: (lo - pad, hi + pad), markers: true), 360, 360))
            }
        }
        if svg {
            let width = panels.map(\.width).max() ?? 200
            let height = panels.map { $0.height + 30 }.reduce(40, +)
            var out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            out += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(width + 20)\" height=\"\(height)\" viewBox=\"0 0 \(width + 20) \(height)\" font-family=\"sans-serif\" font-size=\"12\">\n"
            out += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
            out += "<text x=\"10\" y=\"24\" font-size=\"16\" font-weight=\"bold\">\(escape(title))</text>\n"
            var y = 40
            for p in panels {
                out += "<text x=\"10\" y=\"\(y + 16)\" font-size=\"14\">\(escape(p.title))</text>\n"
                out += "<svg x=\"10\" y=\"\(y + 24)\" width=\"\(p.width)\" height=\"\(p.height)\">\n\(p.body)</svg>\n"
                y += p.height + 30
            }
            return out + "</svg>\n"
        }
        var out = "<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n"
        out += "<title>\(escape(title))</title>\n"
        out += "<style>body{font-family:sans-serif;margin:2em;color:#222}section{display:inline-block;vertical-align:top;margin:0 2em 2em 0}table{border-collapse:collapse}td,th{padding:2px 10px;text-align:right}th:first-child,td:first-child{text-align:left}</style>\n"
        out += "</head>\n<body>\n<h1>\(escape(title))</h1>\n"
        if let r = report {
            out += "<table>\n<tr><th>metric</th><th>value</th></tr>\n<tr><td>samples</td><td>\(r.samples)</td></tr>\n"
            for m in r.metrics {
                out += "<tr><td>\(m.key)</td><td>\(m.value.map { String(format: "%.4f", $0) } ?? "undefined")</td></tr>\n"
            }
            out += "</table>\n"
        }
        for p in panels {
            out += "<section>\n<h2>\(escape(p.title))</h2>\n"
            out += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(p.width)\" height=\"\(p.height)\" viewBox=\"0 0 \(p.width) \(p.height)\" font-family=\"sans-serif\" font-size=\"12\">\n\(p.body)</svg>\n</section>\n"
        }
        return out + "</body>\n</html>\n"
    }

    static func metric(_ r: ScoreReport, _ key: String) -> String {
        guard case .some(.some(let v)) = r.value(of: key) else { return "undefined" }
        return String(format: "%.4f", v)
    }

    /// Cells shaded by the row's share (recall), each with its count; attributes data-row,
    /// data-col and data-count carry the numbers for programs.
    static func confusionPanel(_ r: ScoreReport) -> (String, String, Int, Int) {
        let k = r.confusion.count
        let cell = k <= 12 ? 40 : max(8, 480 / k)
        let showText = cell >= 24
        let names = r.classNames.map { $0.count > 14 ? String($0.prefix(13)) + "…" : $0 }
        let longest = names.map(\.count).max() ?? 1
        let left = 36 + 7 * longest
        let top = 34 + 6 * longest
        var s = ""
        s += "<text x=\"\(left + k * cell / 2)\" y=\"12\" text-anchor=\"middle\">prediction</text>\n"
        s += "<text x=\"12\" y=\"\(top + k * cell / 2)\" text-anchor=\"middle\" transform=\"rotate(-90 12 \(top + k * cell / 2))\">target</text>\n"
        for (j, n) in names.enumerated() {
            let x = left + j * cell + cell / 2 + 4
            s += "<text x=\"\(x)\" y=\"\(top - 6)\" transform=\"rotate(-60 \(x) \(top - 6))\">\(escape(n))</text>\n"
        }
        for (i, row) in r.confusion.enumerated() {
            let total = max(row.reduce(0, +), 1)
            s += "<text x=\"\(left - 6)\" y=\"\(top + i * cell + cell / 2 + 4)\" text-anchor=\"end\">\(escape(names[i]))</text>\n"
            for (j, n) in row.enumerated() {
                let share = Double(n) / Double(total)
                let x = left + j * cell, y = top + i * cell
                // off the diagonal small shares matter: a square root makes 5 % visible
                let tone = i == j ? share : share.squareRoot()
                s += "<rect class=\"cell\" data-row=\"\(i)\" data-col=\"\(j)\" data-count=\"\(n)\" x=\"\(x)\" y=\"\(y)\" width=\"\(cell)\" height=\"\(cell)\" fill=\"\(shade(tone, diagonal: i == j))\" stroke=\"#fff\">"
                s += "<title>\(escape(r.classNames[i])) → \(escape(r.classNames[j])): \(n)</title></rect>\n"
                if showText && n > 0 {
                    s += "<text x=\"\(x + cell / 2)\" y=\"\(y + cell / 2 + 4)\" text-anchor=\"middle\" font-size=\"\(cell >= 36 ? 11 : 9)\" fill=\"\(tone > 0.5 ? "#fff" : "#000")\">\(n)</text>\n"
                }
            }
        }
        return ("Confusion matrix (\(r.samples) samples; shade: share of the row)", s, left + k * cell + top, top + k * cell + 10)
    }

    static func shade(_ share: Double, diagonal: Bool) -> String {
        // white → blue on the diagonal, white → red elsewhere
        let t = min(max(share, 0), 1)
        let (r, g, b) = diagonal ? (8.0, 48.0, 107.0) : (165.0, 15.0, 21.0)
        func mix(_ c: Double) -> Int { Int((255 - (255 - c) * t).rounded()) }
        return String(format: "#%02x%02x%02x", mix(r), mix(g), mix(b))
    }

    /// A line plot of one or more series in a 300×300 area with axes, ticks and a legend.
    static func curve(_ series: [([CurvePoint], String, String)], xLabel: String, yLabel: String, diagonal: Bool,
                      yRange: (Double, Double), markers: Bool = false) -> String {
        let (ox, oy, size) = (50.0, 10.0, 290.0)
        let xs = series.flatMap { $0.0.map(\.x) }
        let xlo = diagonal || !markers ? 0.0 : (xs.min() ?? 0)
        var xhi = diagonal || !markers ? 1.0 : (xs.max() ?? 1)
        if xhi <= xlo { xhi = xlo + 1 }
        let (ylo, yhi) = yRange
        func px(_ x: Double) -> Double { ox + (x - xlo) / (xhi - xlo) * size }
        func py(_ y: Double) -> Double { oy + size - (y - ylo) / (yhi - ylo) * size }
        var s = "<rect x=\"\(ox)\" y=\"\(oy)\" width=\"\(size)\" height=\"\(size)\" fill=\"none\" stroke=\"#888\"/>\n"
        // epochs are whole numbers: ticks on integers, at most about six of them
        let xticks = markers
            ? stride(from: xlo, through: xhi, by: max(1, ((xhi - xlo) / 5).rounded(.up))).map { $0 }
            : (0...4).map { xlo + (xhi - xlo) * Double($0) / 4 }
        for fx in xticks {
            s += "<line x1=\"\(px(fx))\" y1=\"\(oy + size)\" x2=\"\(px(fx))\" y2=\"\(oy + size + 4)\" stroke=\"#888\"/>"
            s += "<text x=\"\(px(fx))\" y=\"\(oy + size + 16)\" text-anchor=\"middle\">\(tick(fx))</text>\n"
        }
        for t in 0...4 {
            let fy = ylo + (yhi - ylo) * Double(t) / 4
            s += "<line x1=\"\(ox - 4)\" y1=\"\(py(fy))\" x2=\"\(ox)\" y2=\"\(py(fy))\" stroke=\"#888\"/>"
            s += "<text x=\"\(ox - 6)\" y=\"\(py(fy) + 4)\" text-anchor=\"end\">\(tick(fy))</text>\n"
        }
        s += "<text x=\"\(ox + size / 2)\" y=\"\(oy + size + 32)\" text-anchor=\"middle\">\(escape(xLabel))</text>\n"
        s += "<text x=\"12\" y=\"\(oy + size / 2)\" text-anchor=\"middle\" transform=\"rotate(-90 12 \(oy + size / 2))\">\(escape(yLabel))</text>\n"
        if diagonal {
            s += "<line x1=\"\(px(0))\" y1=\"\(py(0))\" x2=\"\(px(1))\" y2=\"\(py(1))\" stroke=\"#bbb\" stroke-dasharray=\"4 4\"/>\n"
        }
        for (n, (points, color, name)) in series.enumerated() {
            let kept = thin(points, to: 2000)
            let coords = kept.map { String(format: "%.2f,%.2f", px($0.x), py($0.y)) }.joined(separator: " ")
            s += "<polyline class=\"series\" data-name=\"\(escape(name))\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\" points=\"\(coords)\"/>\n"
            if markers {
                for p in kept { s += String(format: "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"3\" fill=\"%@\"/>", px(p.x), py(p.y), color) }
                s += "\n"
            }
            if series.count > 1 {
                let ly = oy + 14 + Double(n) * 16
                s += "<line x1=\"\(ox + size - 90)\" y1=\"\(ly - 4)\" x2=\"\(ox + size - 70)\" y2=\"\(ly - 4)\" stroke=\"\(color)\" stroke-width=\"2\"/>"
                s += "<text x=\"\(ox + size - 64)\" y=\"\(ly)\">\(escape(name))</text>\n"
            }
        }
        return s
    }

    static func tick(_ v: Double) -> String {
        let s = String(format: "%.3g", v)
        return s == "-0" ? "0" : s
    }

    /// At most `n` points, always keeping the first and the last.
    static func thin(_ p: [CurvePoint], to n: Int) -> [CurvePoint] {
        guard p.count > n else { return p }
        let step = Double(p.count - 1) / Double(n - 1)
        return (0..<n).map { p[Int((Double($0) * step).rounded())] }
    }

    static func escape(_ s: String) -> String {
        var out = ""
        for u in s.unicodeScalars {
            switch u {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            default:
                // XML 1.0 allows no control characters but tab, newline and return
                if u.value < 0x20 && u != "\t" && u != "\n" && u != "\r" || u.value == 0xFFFE || u.value == 0xFFFF {
                    out += "?"
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        return out
    }
}
