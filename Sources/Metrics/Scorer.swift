// What `score` computes, usable on its own: classification, binary and regression metrics
// accumulated batch by batch from a tensor stream, with the definitions (and edge cases) of
// scikit-learn's functions of the same names.

import Foundation
import TensorCore
import TensorStream

/// The kind of problem the fields describe.
public enum Task: String, Sendable {
    case classification, binary, regression
}

/// Input data that cannot be scored (exit 65): a NaN, a label outside the class list, a field
/// of the wrong shape.
public struct ScoreError: DiagnosticError {
    public let location: String
    public let problem: String
    public var kind: FailureKind { .badData }
    public init(_ location: String, _ problem: String) {
        self.location = location
        self.problem = problem
    }
}

/// Which fields to score and how.
public struct ScoreOptions {
    public var target = "y"
    public var pred = "yhat"
    public var prob = "p"
    /// True when the user named the fields; a missing named field is then an error.
    public var predGiven = false
    public var probGiven = false
    /// nil: decided from the fields' dtypes and the class count.
    public var task: Task?
    /// Binary only: predict class 1 when p ≥ threshold (replacing the prediction field).
    public var threshold: Double?
    public var topK = 5
    /// --top-k was given: a task that reports no top-k accuracy is then an error.
    public var topKGiven = false
    /// The most classes a stream without a class list may have.
    /// The confusion matrix takes k² counts: 4096 classes are 128 MiB of them (100,000 tried
    /// to allocate 80 GB and aborted).
    public var maxClasses = 4096
    public init() {}
}

/// Accumulates one stream's metrics. Memory is constant except for the binary curve metrics,
/// which keep 8 bytes per sample.
public final class Scorer {
    /// Decided by finish() when the classes are counted from the labels.
    public private(set) var task: Task
    public let input: String
    public private(set) var classNames: [String]
    public private(set) var samples = 0

    private let options: ScoreOptions
    private let targetIndex: Int, targetField: Field
    private let predIndex: Int?, predField: Field?
    private let probIndex: Int?, probField: Field?
    /// A class list other than index names fixes the class count.
    private let classesFixed: Bool
    /// Whether a label beyond the classes seen so far grows the class set (no class list, no
    /// probability columns, no one-hot target to fix it).
    private var growable: Bool

    // classification
    private var k: Int
    /// Counts of (target, prediction), in rows of `capacity` columns. A class set grown from
    /// the labels doubles the capacity when outgrown, so labels in increasing order copy the
    /// matrix a few times, not once a class (0…1999 in order took 12.8 s).
    private var confusion: [Int] = []
    private var capacity = 0
    private var logLoss = 0.0
    private var topKHits = 0
    /// Binary: the scores of the positive and of the negative samples, for ROC and PR curves.
    /// As doubles, so that f64 scores that differ stay apart (f32 keys tied them).
    private var positiveScores: [Double] = [], negativeScores: [Double] = []

    // regression
    private var outputs = 0
    private var sumSq: [Double] = [], sumAbs: [Double] = []
    /// Welford's mean and sum of squared deviations of y − y0, y0 each output's first target:
    /// from zero, targets of 1e12 + a few units lost the spread to the mean's rounding (R²
    /// 0.9272726944 for 51/55); shifted, such targets are small integers again.
    private var yShift: [Double] = [], yMean: [Double] = [], yM2: [Double] = []

    public init(schema: Schema, input: String, options: ScoreOptions) throws {
        self.input = input
        self.options = options
        func find(_ name: String, what: String) throws -> (Int, Field) {
            guard let i = schema.index(of: name) else {
                throw ScoreError(input, "no \(what) field '\(name)' (fields: \(schema.fields.map(\.name).joined(separator: ", ")))")
            }
            return (i, schema.fields[i])
        }
        (targetIndex, targetField) = try find(options.target, what: "target")
        if options.predGiven || schema.index(of: options.pred) != nil {
            let (i, f) = try find(options.pred, what: "prediction")
            (predIndex, predField) = (i, f)
        } else {
            (predIndex, predField) = (nil, nil)
        }
        if options.probGiven || schema.index(of: options.prob) != nil {
            let (i, f) = try find(options.prob, what: "probability")
            (probIndex, probField) = (i, f)
        } else {
            (probIndex, probField) = (nil, nil)
        }
        if predField == nil && probField == nil {
            throw ScoreError(input, "no prediction field '\(options.pred)' or probability field '\(options.prob)'; run the stream through predict -m MODEL first, or choose the fields with --pred and --prob")
        }

        // Class names: the target's, else the prediction's; if both are given they must agree.
        // tensor-load names unnamed integer labels "0" … up to the largest label in its input,
        // which need not be the largest class: the predictions may never reach it, p may have
        // more columns. Such index names fix no class count: two lists of them agree (the
        // longer is taken), and p or larger labels may add classes.
        func classes(of field: String) throws -> [String]? {
            guard let names = schema.classes(of: field) else { return nil }
            // a name given twice would be two keys of one name in per_class, and recall[name]
            // could reach only the first
            var seen = Set<String>()
            for n in names where !seen.insert(n).inserted {
                throw ScoreError(input, "\(field).classes names '\(n)' twice")
            }
            return names
        }
        let tc = try classes(of: options.target)
        let pc = try classes(of: options.pred)
        if let tc, let pc, tc != pc, !(Scorer.indexNames(tc) && Scorer.indexNames(pc)) {
            throw ScoreError(input, "the class names of '\(options.target)' (\(Scorer.preview(tc))) and '\(options.pred)' (\(Scorer.preview(pc))) differ")
        }
        classNames = [tc, pc].compactMap { $0 }.max { $0.count < $1.count } ?? []
        classesFixed = !Scorer.indexNames(classNames)
        growable = !classesFixed && probField == nil && targetField.shape.count == 1

        let regressionLike = (predField?.dtype.isFloatingPoint ?? false)
            || (predField == nil && probField == nil && targetField.dtype.isFloatingPoint)
        var task = options.task ?? (regressionLike && classNames.isEmpty ? .regression : .classification)
        k = classNames.count
        if task != .regression {
            // A one-hot target fixes the class count before the probabilities are checked
            // against it: checked after, a target wider than p indexed past p's rows (a trap).
            if targetField.shape.count != 1 {
                // one-hot or soft targets: the class is the row's largest entry
                if !classesFixed { k = max(k, targetField.shape.count) }
                guard targetField.shape.count == k else {
                    throw ScoreError(input, "target field '\(targetField.name)' has \(targetField.shape.count) values per sample but there are \(k) classes")
                }
            }
            if let pf = probField {
                guard pf.dtype.isFloatingPoint else {
                    throw ScoreError(input, "probability field '\(pf.name)' is \(pf.dtype); expected f32 or f64")
                }
                let width = pf.shape.count
                if width == 1 {
                    // P(class 1): two classes, even when the targets hold one (k 1 let a
                    // prediction of class 1 index past the confusion matrix)
                    if !classesFixed { k = max(k, 2) }
                    guard k == 2 else {
                        throw ScoreError(input, "probability field '\(pf.name)' has one column, the probability of class 1, but there \(k == 1 ? "is 1 class" : "are \(k) classes")")
                    }
                } else {
                    if !classesFixed { k = max(k, width) }
                    guard width == k else {
                        throw ScoreError(input, "probability field '\(pf.name)' has \(width) columns but there are \(k) classes")
                    }
                }
            }
            if let f = predField, f.shape.count != 1 {
                throw ScoreError(input, "prediction field '\(f.name)' has \(f.shape.count) values per sample; expected one class index")
            }
            if let f = predField, f.dtype.isFloatingPoint, options.task == nil {
                // Floats beside class names: a regression's output, or class numbers stored as
                // floats; which one only the user knows.
                throw ScoreError(input, "prediction field '\(f.name)' is \(f.dtype), not a class index; --task classification reads whole numbers as class indexes, --task regression scores the values as numbers")
            }
            // a class set that grows with the labels is decided in finish()
            if options.task == nil && k == 2 && !growable { task = .binary }
            if task == .binary {
                if !classesFixed { k = max(k, 2) }
                guard k == 2 else { throw ScoreError(input, "a binary task needs 2 classes; there are \(k)") }
                growable = false
            }
            if options.threshold != nil && task != .binary {
                throw ScoreError(input, "--threshold applies to binary tasks; this one has \(k == 0 ? "an unknown number of" : String(k)) classes")
            }
            if options.threshold != nil && probField == nil {
                throw ScoreError(input, "--threshold needs a probability field ('\(options.prob)' is missing)")
            }
            if options.topKGiven {
                let width = probField?.shape.count ?? 0
                if width <= 1 {
                    throw ScoreError(input, "--top-k needs a probability field with a column per class (\(probField == nil ? "'\(options.prob)' is missing" : "'\(options.prob)' has one"))")
                }
                if k <= options.topK {
                    throw ScoreError(input, "--top-k \(options.topK): there are only \(k) classes, so every sample is in the top \(options.topK)")
                }
            }
            if k > options.maxClasses {
                throw ScoreError(input, "\(k) classes is more than the \(options.maxClasses) score handles (its confusion matrix takes k² counts)")
            }
            confusion = [Int](repeating: 0, count: k * k)
            capacity = k
        } else {
            if options.topKGiven { throw ScoreError(input, "--top-k applies to classification; this is a regression") }
            if options.threshold != nil { throw ScoreError(input, "--threshold applies to binary tasks; this is a regression") }
            guard let pf = predField else {
                throw ScoreError(input, "regression needs a prediction field ('\(options.pred)' is missing)")
            }
            // One shape, a scalar being one value: 2×2 targets against 4 predictions were
            // paired by position alone.
            func shape(_ f: Field) -> Shape { f.shape.dims.isEmpty ? Shape([1]) : f.shape }
            guard shape(pf) == shape(targetField) else {
                throw ScoreError(input, "prediction field '\(pf.name)' has shape \(shape(pf)) but target '\(targetField.name)' has shape \(shape(targetField))")
            }
            outputs = pf.shape.count
            sumSq = [Double](repeating: 0, count: outputs)
            sumAbs = sumSq; yShift = sumSq; yMean = sumSq; yM2 = sumSq
        }
        self.task = task
    }

    /// Whether `names` are "0", "1", … in order, as tensor-load writes for unnamed labels.
    static func indexNames(_ names: [String]) -> Bool { Schema.areIndexNames(names) }

    static func classList(_ names: [String]) -> String {
        (names.count == 1 ? "class " : "\(names.count) classes (") + preview(names.map { "'\($0)'" }) + (names.count == 1 ? "" : ")")
    }

    static func preview(_ names: [String]) -> String {
        let head = names.prefix(4).joined(separator: ", ")
        return names.count > 4 ? head + ", …" : head
    }

    /// Adds one batch of samples.
    public func add(_ batch: Batch) throws {
        if task == .regression {
            try addRegression(batch)
        } else {
            try addClassification(batch)
        }
        samples += batch.count
    }

    private func place(_ n: Int) -> String { "\(input): sample \(samples + n)" }

    private func label(_ base: UnsafeRawPointer, _ f: Field, _ n: Int) throws -> Int {
        let width = f.shape.count
        if width == 1 {
            guard let v = base.integerElement(n, f.dtype) else {
                let x = base.element(n, f.dtype)
                guard x.isFinite, x == x.rounded(), abs(x) < 1e15 else {
                    throw ScoreError(place(n), "\(f.name) = \(x) is not a class index")
                }
                return try checked(Int(x), f, n)
            }
            return try checked(Int(v), f, n)
        }
        // one-hot or soft row: the largest entry, which must be positive (a row of zeros was
        // class 0, and inf a class, without a word)
        var best = 0, bestValue = -Double.infinity
        for j in 0..<width {
            let x = base.element(n * width + j, f.dtype)
            guard x.isFinite else { throw ScoreError(place(n), "\(f.name) = \(x) in column \(j) is not finite") }
            if x > bestValue { best = j; bestValue = x }
        }
        guard bestValue > 0 else { throw ScoreError(place(n), "\(f.name) has no positive entry, so no class") }
        return best
    }

    private func checked(_ v: Int, _ f: Field, _ n: Int) throws -> Int {
        if v >= 0 && v < k { return v }
        guard v >= 0 else { throw ScoreError(place(n), "\(f.name) = \(v) is not a class index (negative)") }
        if growable && v < options.maxClasses {
            grow(to: v + 1)
            return v
        }
        throw ScoreError(place(n), "\(f.name) = \(v) is outside " + (growable ? "the \(options.maxClasses) classes score handles" : "the \(k) classes"))
    }

    private func grow(to newK: Int) {
        if newK > capacity {
            // no more than maxClasses, whose k² counts are the most score(1) promises to take
            let c = min(max(newK, 2 * capacity), options.maxClasses)
            var m = [Int](repeating: 0, count: c * c)
            for i in 0..<k { for j in 0..<k { m[i * c + j] = confusion[i * capacity + j] } }
            confusion = m
            capacity = c
        }
        k = newK
    }

    private func count(_ target: Int, _ prediction: Int) -> Int { confusion[target * capacity + prediction] }

    private func addClassification(_ b: Batch) throws {
        let t = b.field(targetIndex).baseAddress!
        let pr = predIndex.map { b.field($0).baseAddress! }
        let pb = probIndex.map { b.field($0).baseAddress! }
        let width = probField?.shape.count ?? 0
        var row = [Double](repeating: 0, count: width)
        let eps = probField?.dtype == .f32 ? Double(Float.ulpOfOne) : Double.ulpOfOne
        for n in 0..<b.count {
            let y = try label(t, targetField, n)
            if let pb {
                for j in 0..<width {
                    row[j] = pb.element(n * width + j, probField!.dtype)
                    guard !row[j].isNaN else {
                        throw ScoreError(place(n), "\(probField!.name) is NaN in column \(j)")
                    }
                    guard row[j] >= 0 && row[j] <= 1 else {
                        throw ScoreError(place(n), "\(probField!.name) = \(row[j]) in column \(j) is not a probability")
                    }
                }
            }
            var yhat: Int
            if let th = options.threshold {
                // compared in the field's precision, so 0.35 means the f32 nearest 0.35
                let s = row[width - 1]
                yhat = (probField!.dtype == .f32 ? Float(s) >= Float(th) : s >= th) ? 1 : 0
            } else if let pr {
                yhat = try label(pr, predField!, n)
            } else {
                yhat = width == 1 ? (row[0] >= 0.5 ? 1 : 0) : row.indices.max { row[$0] < row[$1] || (row[$0] == row[$1] && $0 > $1) }!
            }
            confusion[y * capacity + yhat] += 1
            if pb != nil {
                let py = width == 1 ? (y == 1 ? row[0] : 1 - row[0]) : row[y]
                logLoss -= log(min(max(py, eps), 1 - eps))
                if width > 1 {
                    var above = 0
                    for j in 0..<width where row[j] > row[y] { above += 1 }
                    if above < options.topK { topKHits += 1 }
                }
                if task == .binary {
                    if y == 1 { positiveScores.append(row[width - 1]) } else { negativeScores.append(row[width - 1]) }
                }
            }
        }
    }

    private func addRegression(_ b: Batch) throws {
        let t = b.field(targetIndex).baseAddress!
        let p = b.field(predIndex!).baseAddress!
        for n in 0..<b.count {
            let count = Double(samples + n + 1)
            for j in 0..<outputs {
                let y = t.element(n * outputs + j, targetField.dtype)
                let yhat = p.element(n * outputs + j, predField!.dtype)
                guard y.isFinite else { throw ScoreError(place(n), "\(targetField.name) = \(y) in column \(j)") }
                guard yhat.isFinite else { throw ScoreError(place(n), "\(predField!.name) = \(yhat) in column \(j)") }
                let e = yhat - y
                sumSq[j] += e * e
                sumAbs[j] += abs(e)
                if samples + n == 0 { yShift[j] = y }
                let shifted = y - yShift[j]
                let d = shifted - yMean[j]
                yMean[j] += d / count
                yM2[j] += d * (shifted - yMean[j])
            }
        }
    }

    /// The metrics of everything added so far.
    public func finish() -> ScoreReport {
        if options.task == nil && growable && k == 2 { task = .binary }
        var r = ScoreReport(task: task, samples: samples)
        if samples == 0 {
            r.warnings.append("the stream has no samples; nothing to score")
            return r
        }
        if task == .regression {
            finishRegression(&r)
        } else {
            finishClassification(&r)
        }
        return r
    }

    private func finishRegression(_ r: inout ScoreReport) {
        let n = Double(samples)
        let mse = (0..<outputs).map { sumSq[$0] / n }
        r.set("mse", mse.reduce(0, +) / Double(outputs))
        r.set("rmse", mse.map { $0.squareRoot() }.reduce(0, +) / Double(outputs))
        r.set("mae", sumAbs.reduce(0, +) / n / Double(outputs))
        if samples < 2 {
            r.warnings.append("R² is not defined for fewer than two samples")
            r.set("r2", nil)
        } else {
            // scikit-learn's force_finite: a constant target gives 1 for a perfect fit, else 0
            let r2 = (0..<outputs).map { j -> Double in
                yM2[j] == 0 ? (sumSq[j] == 0 ? 1 : 0) : 1 - sumSq[j] / yM2[j]
            }
            r.set("r2", r2.reduce(0, +) / Double(outputs))
        }
    }

    private func finishClassification(_ r: inout ScoreReport) {
        let n = Double(samples)
        if classNames.count < k { classNames += (classNames.count..<k).map(String.init) }
        r.classNames = classNames
        r.confusion = (0..<k).map { Array(confusion[$0 * capacity ..< $0 * capacity + k]) }
        var trace = 0
        for c in 0..<k { trace += count(c, c) }
        r.set("accuracy", Double(trace) / n)
        let width = probField?.shape.count ?? 0
        if width > 1 && k > options.topK {
            r.set("top_k_accuracy", Double(topKHits) / n)
            r.topK = options.topK
        }

        var present: [Int] = [], neverPredicted: [String] = [], neverTrue: [String] = []
        for c in 0..<k {
            var tp = 0, support = 0, predicted = 0
            for j in 0..<k { support += count(c, j); predicted += count(j, c) }
            tp = count(c, c)
            let fp = predicted - tp, fn = support - tp
            var m = ClassMetrics(name: classNames[c], precision: 0, recall: 0, f1: 0, support: support)
            if predicted > 0 { m.precision = Double(tp) / Double(predicted) }
            if support > 0 { m.recall = Double(tp) / Double(support) }
            if 2 * tp + fp + fn > 0 { m.f1 = Double(2 * tp) / Double(2 * tp + fp + fn) }
            r.perClass.append(m)
            if support > 0 || predicted > 0 {
                present.append(c)
                if predicted == 0 { neverPredicted.append(classNames[c]) }
                if support == 0 { neverTrue.append(classNames[c]) }
            }
        }
        if !neverPredicted.isEmpty {
            r.warnings.append("precision is ill-defined and set to 0, as scikit-learn does, for \(Scorer.classList(neverPredicted)) never predicted")
        }
        if !neverTrue.isEmpty {
            r.warnings.append("recall is ill-defined and set to 0, as scikit-learn does, for \(Scorer.classList(neverTrue)) without true samples")
        }
        // scikit-learn's default label set: the classes present in the target or the prediction
        let m = Double(present.count)
        r.set("precision_macro", present.map { r.perClass[$0].precision }.reduce(0, +) / m)
        r.set("recall_macro", present.map { r.perClass[$0].recall }.reduce(0, +) / m)
        r.set("f1_macro", present.map { r.perClass[$0].f1 }.reduce(0, +) / m)
        r.set("precision_weighted", r.perClass.map { $0.precision * Double($0.support) }.reduce(0, +) / n)
        r.set("recall_weighted", r.perClass.map { $0.recall * Double($0.support) }.reduce(0, +) / n)
        r.set("f1_weighted", r.perClass.map { $0.f1 * Double($0.support) }.reduce(0, +) / n)
        if task == .binary && k == 2 {
            r.set("precision", r.perClass[1].precision)
            r.set("recall", r.perClass[1].recall)
            r.set("f1", r.perClass[1].f1)
        }
        if probField != nil { r.set("log_loss", logLoss / n) }
        if task == .binary && probField != nil { finishCurves(&r) }
    }

    /// ROC AUC and average precision over every distinct score, ties counted as one threshold.
    private func finishCurves(_ r: inout ScoreReport) {
        positiveScores.sort(by: >)
        negativeScores.sort(by: >)
        let positives = positiveScores.count, negatives = negativeScores.count
        // tp and fp count the samples scored at or above each threshold, highest first
        var tp = 0, fp = 0, auc = 0.0, ap = 0.0
        var roc: [CurvePoint] = [CurvePoint(x: 0, y: 0)]
        var pr: [CurvePoint] = []
        while tp < positives || fp < negatives {
            // scores are probabilities, so -1 is below all of them
            let threshold = max(tp < positives ? positiveScores[tp] : -1, fp < negatives ? negativeScores[fp] : -1)
            let (tp0, fp0) = (tp, fp)
            while tp < positives && positiveScores[tp] == threshold { tp += 1 }
            while fp < negatives && negativeScores[fp] == threshold { fp += 1 }
            auc += Double(fp - fp0) * Double(tp + tp0) / 2
            if positives > 0 {
                let precision = Double(tp) / Double(tp + fp)
                ap += Double(tp - tp0) / Double(positives) * precision
                pr.append(CurvePoint(x: Double(tp) / Double(positives), y: precision))
            }
            roc.append(CurvePoint(x: negatives > 0 ? Double(fp) / Double(negatives) : 0,
                                  y: positives > 0 ? Double(tp) / Double(positives) : 0))
        }
        if positives == 0 || negatives == 0 {
            let only = positives == 0 ? r.classNames[0] : r.classNames[1]
            r.warnings.append("only one class (\(only)) is present in \(options.target); ROC AUC is not defined")
            r.set("roc_auc", nil)
        } else {
            r.set("roc_auc", auc / (Double(positives) * Double(negatives)))
            r.roc = roc
        }
        if positives == 0 {
            r.warnings.append("no positive samples in \(options.target); average precision is not defined")
            r.set("average_precision", nil)
        } else {
            r.set("average_precision", ap)
            r.pr = [CurvePoint(x: 0, y: 1)] + pr
        }
        positiveScores = []
        negativeScores = []
    }
}

/// One class's row of the report.
public struct ClassMetrics: Equatable {
    public var name: String
    public var precision: Double
    public var recall: Double
    public var f1: Double
    public var support: Int
}

public struct CurvePoint: Equatable {
    public var x: Double
    public var y: Double
}

/// The result: named metrics in a fixed order (nil when not defined), per-class rows, the
/// confusion matrix (rows: target, columns: prediction), curves, and warnings to show.
public struct ScoreReport {
    public let task: Task
    public let samples: Int
    public private(set) var metrics: [(key: String, value: Double?)] = []
    public var classNames: [String] = []
    public var perClass: [ClassMetrics] = []
    public var confusion: [[Int]] = []
    public var roc: [CurvePoint] = []
    public var pr: [CurvePoint] = []
    public var topK = 0
    public var warnings: [String] = []

    public init(task: Task, samples: Int) {
        self.task = task
        self.samples = samples
    }

    /// A value that is not finite (sums of squares of ±1e308 overflow) is not defined: null in
    /// JSON, "undefined" in the table, and a gate on it fails, `!=` included.
    mutating func set(_ key: String, _ value: Double?) {
        if let v = value, !v.isFinite {
            warnings.append("\(key) is not defined: it overflows double precision")
            metrics.append((key, nil))
            return
        }
        metrics.append((key, value))
    }

    /// A metric by name: a scalar key, or `precision[C]`, `recall[C]`, `f1[C]`, `support[C]` for
    /// class C (its name or index). The outer nil means no such metric; the inner, not defined.
    public func value(of key: String) -> Double?? {
        if let m = metrics.first(where: { $0.key == key }) { return .some(m.value) }
        if key == "samples" { return .some(Double(samples)) }
        guard key.hasSuffix("]"), let open = key.firstIndex(of: "[") else { return nil }
        let metric = key[..<open]
        let cls = String(key[key.index(after: open)..<key.index(before: key.endIndex)])
        guard let c = perClass.firstIndex(where: { $0.name == cls }) ?? Int(cls).flatMap({ $0 >= 0 && $0 < perClass.count ? $0 : nil }) else {
            return nil
        }
        switch metric {
        case "precision": return .some(perClass[c].precision)
        case "recall": return .some(perClass[c].recall)
        case "f1": return .some(perClass[c].f1)
        case "support": return .some(Double(perClass[c].support))
        default: return nil
        }
    }
}
