// Metrics against scikit-learn: every expected value below was computed with scikit-learn 1.9.1
// (the call is named beside it) on the same vectors, and is hard-coded here.

import Foundation
import XCTest
@testable import Metrics
import TensorCore
import TensorStream
import _TestSupport

final class ScorerTests: XCTestCase {
    func bytes<T>(_ a: [T]) -> [UInt8] { a.withUnsafeBytes { Array($0) } }

    /// Scores an in-memory stream of the given fields, split into batches of 5 samples so that
    /// accumulation across batches is exercised.
    func score(_ fields: [(String, DType, [Int], [UInt8])], classes: [String]? = nil, count: Int,
               options: ScoreOptions = ScoreOptions()) throws -> ScoreReport {
        var schema = Schema(fields: fields.map { Field(name: $0.0, dtype: $0.1, shape: Shape($0.2)) })
        if let classes { schema.setClasses(classes, of: "y") }
        var batches: [(count: Int, fields: [[UInt8]])] = []
        var start = 0
        while start < count {
            let n = min(5, count - start)
            batches.append((n, fields.map { f in
                let per = f.3.count / count
                return Array(f.3[start * per ..< (start + n) * per])
            }))
            start += n
        }
        let stream = try makeStream(schema, batches: batches)
        let reader = try StreamReader(source: MemorySource(stream, name: "test.tns"))
        let s = try Scorer(schema: reader.schema, input: "test.tns", options: options)
        while let b = try reader.next() { try s.add(b) }
        return s.finish()
    }

    func value(_ r: ScoreReport, _ key: String) -> Double? { r.value(of: key) ?? nil }

    // y, p (float32) and yhat = argmax(p) of the multiclass case.
    let y: [Int64] = [0, 1, 2, 2, 1, 0, 2, 1, 0, 2, 1, 1]
    let p: [Float] = [0.7, 0.2, 0.1, 0.1, 0.6, 0.3, 0.2, 0.3, 0.5, 0.1, 0.1, 0.8, 0.5, 0.4, 0.1, 0.6, 0.3, 0.1,
                      0.3, 0.4, 0.3, 0.2, 0.7, 0.1, 0.4, 0.35, 0.25, 0.25, 0.15, 0.6, 0.15, 0.45, 0.4, 0.3, 0.3, 0.4]
    let yhat: [Int64] = [0, 1, 2, 2, 0, 0, 1, 1, 0, 2, 1, 2]

    func testMulticlassMatchesScikitLearn() throws {
        var o = ScoreOptions()
        o.topK = 2
        let r = try score([("y", .i64, [], bytes(y)), ("p", .f32, [3], bytes(p)), ("yhat", .i64, [], bytes(yhat))],
                          classes: ["a", "b", "c"], count: 12, options: o)
        XCTAssertEqual(r.task, .classification)
        XCTAssertEqual(value(r, "accuracy")!, 0.75, accuracy: 1e-12)                   // accuracy_score(y, yhat)
        // precision_recall_fscore_support(y, yhat, average="macro" / "weighted")
        XCTAssertEqual(value(r, "precision_macro")!, 0.75, accuracy: 1e-12)
        XCTAssertEqual(value(r, "recall_macro")!, 0.7833333333333333, accuracy: 1e-12)
        XCTAssertEqual(value(r, "f1_macro")!, 0.7579365079365079, accuracy: 1e-12)
        XCTAssertEqual(value(r, "precision_weighted")!, 0.75, accuracy: 1e-12)
        XCTAssertEqual(value(r, "recall_weighted")!, 0.75, accuracy: 1e-12)
        XCTAssertEqual(value(r, "f1_weighted")!, 0.7420634920634921, accuracy: 1e-12)
        // precision_recall_fscore_support(y, yhat, average=None)
        XCTAssertEqual(r.perClass.map(\.recall), [1, 0.6, 0.75])
        XCTAssertEqual(r.perClass[0].f1, 0.8571428571428571, accuracy: 1e-12)
        XCTAssertEqual(r.perClass[1].f1, 0.6666666666666666, accuracy: 1e-12)
        XCTAssertEqual(r.perClass.map(\.support), [3, 5, 4])
        XCTAssertEqual(r.confusion, [[3, 0, 0], [1, 3, 1], [0, 1, 3]])         // confusion_matrix(y, yhat)
        XCTAssertEqual(value(r, "log_loss")!, 0.6834293007850647, accuracy: 1e-6) // log_loss(y, p), p float32
        XCTAssertEqual(value(r, "top_k_accuracy")!, 1.0)                          // top_k_accuracy_score(y, p, k=2)
        XCTAssertTrue(r.warnings.isEmpty)
        XCTAssertEqual(r.value(of: "recall[b]")!, 0.6)
        XCTAssertEqual(r.value(of: "recall[1]")!, 0.6)
        XCTAssertNil(r.value(of: "recall[zz]"))
        XCTAssertNil(r.value(of: "roc_auc"))
    }

    func testTopKGivenForATaskWithoutOneIsRefused() throws {
        var o = ScoreOptions()
        o.topKGiven = true
        o.topK = 2
        let reg: [Float] = [0.5, 1.5, 2.5]
        XCTAssertThrowsError(try score([("y", .f32, [], bytes(reg)), ("yhat", .f32, [], bytes(reg))], count: 3, options: o)) { e in
            XCTAssertEqual((e as? ScoreError)?.problem, "--top-k applies to classification; this is a regression")
        }
        // --threshold on a regression was ignored, with status 0 (helper-46's review).
        var t = ScoreOptions()
        t.threshold = 0.5
        XCTAssertThrowsError(try score([("y", .f32, [], bytes(reg)), ("yhat", .f32, [], bytes(reg))], count: 3, options: t)) { e in
            XCTAssertEqual((e as? ScoreError)?.problem, "--threshold applies to binary tasks; this is a regression")
        }
        XCTAssertThrowsError(try score([("y", .i64, [], bytes(y)), ("yhat", .i64, [], bytes(yhat))], classes: ["a", "b", "c"], count: 12, options: o)) { e in
            XCTAssertEqual((e as? ScoreError)?.problem, "--top-k needs a probability field with a column per class ('p' is missing)")
        }
        let r = try score([("y", .i64, [], bytes(y)), ("p", .f32, [3], bytes(p))], classes: ["a", "b", "c"], count: 12, options: o)
        XCTAssertEqual(value(r, "top_k_accuracy")!, 1.0)
    }

    func testPredictionsFromProbabilitiesWhenNoPredictionField() throws {
        let r = try score([("y", .i64, [], bytes(y)), ("p", .f32, [3], bytes(p))], count: 12)
        XCTAssertEqual(r.confusion, [[3, 0, 0], [1, 3, 1], [0, 1, 3]])
        XCTAssertEqual(r.classNames, ["0", "1", "2"])
    }

    func testClassNeverPredictedGivesZeroPrecisionAndAWarning() throws {
        // y2, yh2 as in: precision_recall_fscore_support(y2, yh2, average=None / "macro"),
        // f1_score(y2, yh2, average="weighted")
        let y2: [Int32] = [0, 1, 2, 2, 1, 0, 2, 1]
        let yh2: [Int32] = [0, 1, 1, 0, 1, 0, 1, 1]
        let r = try score([("y", .i32, [], bytes(y2)), ("yhat", .i32, [], bytes(yh2))], classes: ["a", "b", "c"], count: 8)
        XCTAssertEqual(r.perClass[0].precision, 0.6666666666666666, accuracy: 1e-12)
        XCTAssertEqual(r.perClass[1].precision, 0.6, accuracy: 1e-12)
        XCTAssertEqual(r.perClass[2].precision, 0)
        XCTAssertEqual(r.perClass.map(\.f1)[0], 0.8, accuracy: 1e-12)
        XCTAssertEqual(value(r, "precision_macro")!, 0.4222222222222222, accuracy: 1e-12)
        XCTAssertEqual(value(r, "recall_macro")!, 0.6666666666666666, accuracy: 1e-12)
        XCTAssertEqual(value(r, "f1_macro")!, 0.5166666666666667, accuracy: 1e-12)
        XCTAssertEqual(value(r, "f1_weighted")!, 0.48125, accuracy: 1e-12)
        XCTAssertEqual(r.warnings.count, 1)
        XCTAssertEqual(r.warnings[0], "precision is ill-defined and set to 0, as scikit-learn does, for class 'c' never predicted")
    }

    // The binary case with tied scores.
    let yb: [UInt8] = [0, 0, 1, 1, 0, 1, 0, 1, 1, 0]
    let sb: [Float] = [0.1, 0.4, 0.35, 0.8, 0.4, 0.4, 0.2, 0.9, 0.35, 0.6]

    func testBinaryWithTiedScoresMatchesScikitLearn() throws {
        let yhb: [Int64] = sb.map { $0 >= 0.5 ? 1 : 0 }
        let r = try score([("y", .u8, [], bytes(yb)), ("p", .f32, [1], bytes(sb)), ("yhat", .i64, [], bytes(yhb))], count: 10)
        XCTAssertEqual(r.task, .binary)
        XCTAssertEqual(value(r, "roc_auc")!, 0.68, accuracy: 1e-12)              // roc_auc_score(yb, sb)
        XCTAssertEqual(value(r, "average_precision")!, 0.75, accuracy: 1e-12)    // average_precision_score(yb, sb)
        XCTAssertEqual(value(r, "f1")!, 0.5, accuracy: 1e-12)                     // f1_score(yb, sb >= 0.5)
        XCTAssertEqual(value(r, "precision")!, 0.6666666666666666, accuracy: 1e-12)
        XCTAssertEqual(value(r, "recall")!, 0.4, accuracy: 1e-12)
        XCTAssertEqual(value(r, "accuracy")!, 0.6, accuracy: 1e-12)
        XCTAssertEqual(value(r, "log_loss")!, 0.561088502407074, accuracy: 1e-6)  // log_loss(yb, sb)
        XCTAssertEqual(r.roc.first, CurvePoint(x: 0, y: 0))
        XCTAssertEqual(r.roc.last, CurvePoint(x: 1, y: 1))
        XCTAssertEqual(r.roc.count, 8)  // (0,0) and one point per distinct score: ties are one threshold
    }

    func testThresholdReplacesThePredictions() throws {
        var o = ScoreOptions()
        o.threshold = 0.35
        let wrong: [Int64] = Array(repeating: 0, count: 10)
        let r = try score([("y", .u8, [], bytes(yb)), ("p", .f32, [1], bytes(sb)), ("yhat", .i64, [], bytes(wrong))], count: 10, options: o)
        XCTAssertEqual(value(r, "f1")!, 0.7692307692307693, accuracy: 1e-12)    // f1_score(yb, sb >= 0.35)
        XCTAssertEqual(value(r, "accuracy")!, 0.7, accuracy: 1e-12)
    }

    func testSingleClassPresentLeavesROCAUCUndefined() throws {
        // roc_auc_score([1,1,1,1], …) warns "Only one class is present in y_true" and returns nan
        let ys: [Int64] = [1, 1, 1, 1]
        let ss: [Float] = [0.9, 0.8, 0.3, 0.6]
        let r = try score([("y", .i64, [], bytes(ys)), ("p", .f32, [1], bytes(ss))], count: 4)
        XCTAssertEqual(value(r, "accuracy")!, 0.75)
        XCTAssertEqual(r.value(of: "roc_auc"), .some(nil))
        XCTAssertTrue(r.warnings.contains { $0.contains("ROC AUC is not defined") }, "\(r.warnings)")
        XCTAssertEqual(Gate("roc_auc>=0.5")!.failure(in: r), "gate roc_auc>=0.5 not met: roc_auc is not defined")
    }

    func testRegressionMatchesScikitLearn() throws {
        let yr: [Double] = [3.0, -0.5, 2.0, 7.0, 4.25]
        let pr: [Float] = [2.5, 0.0, 2.0, 8.0, 3.5]
        let r = try score([("y", .f64, [], bytes(yr)), ("yhat", .f32, [], bytes(pr))], count: 5)
        XCTAssertEqual(r.task, .regression)
        XCTAssertEqual(value(r, "mse")!, 0.4125, accuracy: 1e-12)                // mean_squared_error
        XCTAssertEqual(value(r, "rmse")!, 0.6422616289332564, accuracy: 1e-12)  // root_mean_squared_error
        XCTAssertEqual(value(r, "mae")!, 0.55, accuracy: 1e-12)                  // mean_absolute_error
        XCTAssertEqual(value(r, "r2")!, 0.9328175895765473, accuracy: 1e-12)   // r2_score
        // two outputs, uniform average over outputs (scikit-learn's default multioutput)
        let y2: [Float] = [0.5, 1, -1, 1, 7, -6, 2, 3]
        let p2: [Float] = [0, 2, -1, 2, 8, -5, 2.5, 2.5]
        let r2 = try score([("y", .f32, [2], bytes(y2)), ("yhat", .f32, [2], bytes(p2))], count: 4)
        XCTAssertEqual(value(r2, "mse")!, 0.59375, accuracy: 1e-12)
        XCTAssertEqual(value(r2, "rmse")!, 0.7568801272808958, accuracy: 1e-12)
        XCTAssertEqual(value(r2, "mae")!, 0.6875, accuracy: 1e-12)
        XCTAssertEqual(value(r2, "r2")!, 0.9445152531101937, accuracy: 1e-12)
    }

    func testNaNProbabilityIsAnErrorNamingTheSample() throws {
        var bad = p
        bad[7 * 3 + 1] = .nan
        XCTAssertThrowsError(try score([("y", .i64, [], bytes(y)), ("p", .f32, [3], bytes(bad))], count: 12)) { e in
            let d = e as! ScoreError
            XCTAssertEqual(d.location, "test.tns: sample 7")
            XCTAssertTrue(d.problem.contains("NaN"), d.problem)
        }
    }

    func testLabelOutsideTheClassListNamesTheSample() throws {
        var bad = y
        bad[9] = 3
        XCTAssertThrowsError(try score([("y", .i64, [], bytes(bad)), ("yhat", .i64, [], bytes(yhat))], classes: ["a", "b", "c"], count: 12)) { e in
            let d = e as! ScoreError
            XCTAssertEqual(d.location, "test.tns: sample 9")
            XCTAssertEqual(d.problem, "y = 3 is outside the 3 classes")
        }
        bad[9] = -1
        XCTAssertThrowsError(try score([("y", .i64, [], bytes(bad)), ("yhat", .i64, [], bytes(yhat))], count: 12)) { e in
            XCTAssertEqual((e as! ScoreError).location, "test.tns: sample 9")
            XCTAssertEqual((e as! ScoreError).problem, "y = -1 is not a class index (negative)")
        }
    }

    func testMissingFieldsAndDisagreeingClassNamesAreRefused() throws {
        let schema = Schema(fields: [Field(name: "y", dtype: .i64, shape: Shape([]))])
        XCTAssertThrowsError(try Scorer(schema: schema, input: "t", options: ScoreOptions())) { e in
            XCTAssertTrue((e as! ScoreError).problem.contains("no prediction field 'yhat'"))
        }
        var s2 = Schema(fields: [Field(name: "y", dtype: .i64, shape: Shape([])), Field(name: "yhat", dtype: .i64, shape: Shape([]))])
        s2.setClasses(["cat", "dog"], of: "y")
        s2.setClasses(["dog", "cat"], of: "yhat")
        XCTAssertThrowsError(try Scorer(schema: s2, input: "t", options: ScoreOptions())) { e in
            XCTAssertTrue((e as! ScoreError).problem.contains("differ"))
        }
    }

    func testGatesParseAndCompare() throws {
        let g = Gate("f1[T-shirt/top] >= 0.8")!
        XCTAssertEqual(g.key, "f1[T-shirt/top]")
        XCTAssertEqual(g.comparison, .ge)
        XCTAssertEqual(g.bound, 0.8)
        XCTAssertEqual(Gate("rmse<=0.5")!.comparison, .le)
        XCTAssertEqual(Gate("a[x>=1]<2")!.key, "a[x>=1]")
        XCTAssertNil(Gate("accuracy"))
        XCTAssertNil(Gate(">=0.9"))
        XCTAssertNil(Gate("accuracy>=high"))
        XCTAssertTrue(Gate("accuracy>=0.75")!.holds(for: 0.75))
        XCTAssertFalse(Gate("accuracy>0.75")!.holds(for: 0.75))
    }

    func testJSONUsesScikitLearnNamesAndParses() throws {
        let r = try score([("y", .i64, [], bytes(y)), ("p", .f32, [3], bytes(p)), ("yhat", .i64, [], bytes(yhat))],
                          classes: ["a", "b \"quoted\"", "c"], count: 12)
        let obj = try JSONSerialization.jsonObject(with: Data(r.json().utf8)) as! [String: Any]
        XCTAssertEqual(obj["accuracy"] as? Double, 0.75)
        XCTAssertEqual(obj["confusion_matrix"] as? [[Int]], [[3, 0, 0], [1, 3, 1], [0, 1, 3]])
        let perClass = obj["per_class"] as! [String: [String: Any]]
        XCTAssertEqual(perClass["b \"quoted\""]?["recall"] as? Double, 0.6)
        XCTAssertEqual(perClass["a"]?["support"] as? Int, 3)
        for key in ["precision_macro", "recall_macro", "f1_macro", "f1_weighted", "log_loss"] { XCTAssertNotNil(obj[key], key) }
    }

    func testLearningLogParsesFitLinesAndRefusesGarbage() throws {
        let log = "{\"epoch\":1,\"loss\":0.5,\"accuracy\":0.8}\n{\"epoch\":2,\"loss\":0.4,\"val_loss\":null}\n"
        let (r, warning) = try LearningLog.parse(Array(log.utf8), name: "log")
        XCTAssertEqual(r.count, 2)
        XCTAssertEqual(r[1].values["loss"], 0.4)
        XCTAssertNil(r[1].values["val_loss"])
        XCTAssertNil(warning)
        XCTAssertThrowsError(try LearningLog.parse(Array("{\"epoch\":1}\nnot json\n".utf8), name: "log")) { e in
            XCTAssertEqual((e as! ScoreError).location, "log: line 2")
        }
        // fit --log appends: two runs in one log were drawn as one zigzag curve.
        let (twice, said) = try LearningLog.parse(Array((log + log.replacingOccurrences(of: "0.5", with: "0.7")).utf8), name: "log")
        XCTAssertEqual(twice.map(\.epoch), [1, 2])
        XCTAssertEqual(twice[0].values["loss"], 0.7, "the last run")
        XCTAssertEqual(said, "log holds 2 runs (fit --log appends; an epoch that does not follow the one before starts a run): drawing the last, epochs 1–2")
        // 1e308 made the range infinite and the SVG coordinates NaN; a log of no curve drew nothing.
        XCTAssertThrowsError(try LearningLog.parse(Array("{\"epoch\":1,\"loss\":1e308}\n".utf8), name: "log")) { e in
            XCTAssertEqual((e as! ScoreError).problem, "\"loss\" is 1e+308, beyond any figure fit writes")
        }
        // The bound is f32's largest value: 3.45e38 was drawn.
        XCTAssertThrowsError(try LearningLog.parse(Array("{\"epoch\":1,\"loss\":3.45e38}\n".utf8), name: "log")) { e in
            XCTAssertEqual((e as! ScoreError).problem, "\"loss\" is 3.45e+38, beyond any figure fit writes")
        }
        XCTAssertEqual(try LearningLog.parse(Array("{\"epoch\":1,\"loss\":3.4028234e38}\n".utf8), name: "log").0.count, 1)
        XCTAssertThrowsError(try LearningLog.parse(Array("{\"epoch\":1}\n".utf8), name: "log")) { e in
            XCTAssertEqual((e as! ScoreError).problem, "no loss or accuracy to draw in the log")
        }
    }
}

extension ScorerTests {
    /// The table people read: every line of a small report, and class names that could be
    /// misread kept apart from the table's own rows.
    func testTheTableLaysOutMetricsClassesAndTheConfusionMatrix() throws {
        let fields: [(String, DType, [Int], [UInt8])] = [("y", .i64, [], bytes(y)), ("p", .f32, [3], bytes(p)), ("yhat", .i64, [], bytes(yhat))]
        let t = try score(fields, classes: ["cat", "dog", "bird"], count: 12).table()
        XCTAssertEqual(t, """
            task      classification
            samples   12
            accuracy  0.7500
            log loss  0.6834

            class         precision     recall         f1    support
            cat              0.7500     1.0000     0.8571            3
            dog              0.7500     0.6000     0.6667            5
            bird             0.7500     0.7500     0.7500            4
            macro avg        0.7500     0.7833     0.7579           12
            weighted avg     0.7500     0.7500     0.7421           12

            confusion matrix (rows: target, columns: prediction)
                            0 1 2
            0 cat           3 0 0
            1 dog           1 3 1
            2 bird          0 1 3

            """)
        // A class named like a summary row, one with a bidi override (which would reorder the
        // terminal's line), one with a leading space: all quoted, the override escaped.
        let odd = try score(fields, classes: ["macro avg", "x\u{202E}y", " pad"], count: 12).table()
        let lines = odd.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        XCTAssertEqual(Array(lines[6...10]), [
            "'macro avg'      0.7500     1.0000     0.8571            3",
            "'x\\u{202E}y'     0.7500     0.6000     0.6667            5",
            "' pad'           0.7500     0.7500     0.7500            4",
            "macro avg        0.7500     0.7833     0.7579           12",
            "weighted avg     0.7500     0.7500     0.7421           12",
        ])
        XCTAssertEqual(lines[15], "1 'x\\u{202E}y'  1 3 1")
        XCTAssertFalse(odd.unicodeScalars.contains("\u{202E}"))
        // Binary: the positive class names the one-class metrics, escaped like the rows.
        let yb: [Int64] = [0, 1, 1, 0], yhb: [Int64] = [0, 1, 0, 0]
        let bin = try score([("y", .i64, [], bytes(yb)), ("yhat", .i64, [], bytes(yhb))], classes: ["ok", "b\tad"], count: 4).table()
        XCTAssertTrue(bin.contains("\nprecision (class b\\tad)  1.0000\n"), bin)
    }
}

/// Defects a differential review against scikit-learn found; each test failed before its fix.
extension ScorerTests {
    func testAOneColumnProbabilityIsABinaryTask() throws {
        // P(class 1) in one column is a binary task, even when the targets hold one class.
        let y0: [Int64] = [0, 0, 0]
        let p1: [Float] = [0.9, 0.2, 0.4]
        let r = try score([("y", .i64, [], bytes(y0)), ("p", .f32, [1], bytes(p1))], count: 3)
        XCTAssertEqual(r.task, .binary)
        XCTAssertEqual(r.confusion, [[2, 1], [0, 0]])
        // A class list of one name let k be 1, and a prediction of class 1 index past the
        // confusion matrix (a trap, SIGILL): it cannot go with one column.
        XCTAssertThrowsError(try score([("y", .i64, [], bytes(y0)), ("p", .f32, [1], bytes(p1))], classes: ["c0"], count: 3)) { e in
            XCTAssertEqual((e as? ScoreError)?.problem, "probability field 'p' has one column, the probability of class 1, but there is 1 class")
        }
    }

    func testCurvesKeepDoubleScoresApart() throws {
        // roc_auc_score / average_precision_score([0, 1, 1, 0], [.5, .50000001, .5, .3]):
        // rounded to f32, .50000001 tied with .5 (0.75 and 0.6667).
        let y4: [Int64] = [0, 1, 1, 0]
        let s4: [Double] = [0.5, 0.50000001, 0.5, 0.3]
        let r = try score([("y", .i64, [], bytes(y4)), ("p", .f64, [1], bytes(s4))], count: 4)
        XCTAssertEqual(value(r, "roc_auc")!, 0.875, accuracy: 1e-12)
        XCTAssertEqual(value(r, "average_precision")!, 0.8333333333333333, accuracy: 1e-12)
        XCTAssertEqual(r.roc.count, 4, "(0,0) and three distinct scores")
    }

    func testTwoClassesGrownFromTheLabelsAreABinaryTask() throws {
        let y4: [Int64] = [0, 1, 1, 0, 1], yh4: [Int64] = [0, 1, 0, 0, 1]
        let r = try score([("y", .i64, [], bytes(y4)), ("yhat", .i64, [], bytes(yh4))], count: 5)
        XCTAssertEqual(r.task, .binary)
        XCTAssertEqual(value(r, "precision"), 1)                          // precision_score(y4, yh4)
        XCTAssertEqual(value(r, "recall") ?? 0, 0.6666666666666666, accuracy: 1e-12)
        XCTAssertNil(Gate("recall>=0.6")!.failure(in: r))
        // --task classification keeps it one, and three classes are not binary.
        var o = ScoreOptions()
        o.task = .classification
        XCTAssertNil(try score([("y", .i64, [], bytes(y4)), ("yhat", .i64, [], bytes(yh4))], count: 5, options: o).value(of: "precision"))
        let y3: [Int64] = [0, 1, 2, 0, 1]
        XCTAssertEqual(try score([("y", .i64, [], bytes(y3)), ("yhat", .i64, [], bytes(yh4))], count: 5).task, .classification)
    }

    func testDuplicateClassNamesAreRefused() throws {
        XCTAssertThrowsError(try score([("y", .i64, [], bytes(y)), ("yhat", .i64, [], bytes(yhat))], classes: ["a", "b", "a"], count: 12)) { e in
            XCTAssertEqual((e as? ScoreError)?.problem, "y.classes names 'a' twice")
        }
    }

    func testAFailedGateQuotesTheValueItCompared() throws {
        // 0.39999999999999997 printed as 0.4 made "recall_macro>=0.4 not met: … = 0.4" read as a bug.
        var r = ScoreReport(task: .classification, samples: 10)
        r.set("recall_macro", 0.39999999999999997)
        XCTAssertEqual(Gate("recall_macro>=0.4")!.failure(in: r), "gate recall_macro>=0.4 not met: recall_macro = 0.39999999999999997")
        XCTAssertEqual(Gate("samples>10")!.failure(in: r), "gate samples>10 not met: samples = 10")
    }

    func testRSquaredOfTargetsFarFromZero() throws {
        // y = 1e12 + i mod 10, yhat = y + a residual of period 10: R² is 1 − 600/8250 = 51/55
        // exactly (r2_score gives 0.9272727272727272); Welford from zero gave 0.9272726944. At
        // 1e14 r2_score itself drifts (0.9272748794), so the exact value is the reference.
        let residual: [Double] = [1, -1, 0, 1, 0, -1, 1, 0, 0, 1]
        for offset in [1e12, 1e14] {
            let yr = (0..<1000).map { offset + Double($0 % 10) }
            let pr = (0..<1000).map { yr[$0] + residual[$0 % 10] }
            let r = try score([("y", .f64, [], bytes(yr)), ("yhat", .f64, [], bytes(pr))], count: 1000)
            XCTAssertEqual(value(r, "r2")!, 51.0 / 55.0, accuracy: 1e-15, "offset \(offset)")
        }
    }

    func testClassesGrownOneByOneKeepTheirCounts() throws {
        // Labels in increasing order grow the matrix one class at a time, a prediction ahead of
        // its target grows it too; every count must land in its cell.
        let n = 300
        let up = (0..<n).map { Int64($0) }
        let pred = up.map { ($0 * 7) % Int64(n) }
        let r = try score([("y", .i64, [], bytes(up)), ("yhat", .i64, [], bytes(pred))], count: n)
        XCTAssertEqual(r.confusion.count, n)
        for i in 0..<n {
            XCTAssertEqual(r.confusion[i], (0..<n).map { $0 == (i * 7) % n ? 1 : 0 }, "row \(i)")
        }
        // The same samples in reverse order grow it to 300 classes at once: the same report.
        let down = try score([("y", .i64, [], bytes(Array(up.reversed()))), ("yhat", .i64, [], bytes(Array(pred.reversed())))], count: n)
        XCTAssertEqual(down.confusion, r.confusion)
        XCTAssertEqual(down.json(), r.json())
    }

    func testOneHotTargetRowsMustHaveAClass() throws {
        // An all-zero row was silently class 0; inf was taken as the largest entry.
        let yh: [Int64] = [0, 1, 1]
        for (row, problem) in [([Float](repeating: 0, count: 2), "y has no positive entry, so no class"),
                               ([Float.infinity, 0], "y = inf in column 0 is not finite")] {
            let t: [Float] = [1, 0, 0, 1] + row
            XCTAssertThrowsError(try score([("y", .f32, [2], bytes(t)), ("yhat", .i64, [], bytes(yh))], count: 3)) { e in
                XCTAssertEqual((e as? ScoreError)?.location, "test.tns: sample 2")
                XCTAssertEqual((e as? ScoreError)?.problem, problem)
            }
        }
        let soft: [Float] = [0.7, 0.3, 0.2, 0.8, 0.4, 0.6]
        XCTAssertEqual(try score([("y", .f32, [2], bytes(soft)), ("yhat", .i64, [], bytes(yh))], count: 3).confusion, [[1, 0], [0, 2]])
    }

    func testAOneHotTargetWiderOrNarrowerThanTheProbabilitiesIsRefused() throws {
        // A 4-column one-hot target beside 3 columns of p: the class count came from p, the
        // target raised it after p was checked, and row[y] read past p's row (a trap, 132).
        let eye4: [UInt8] = (0..<16).map { $0 % 5 == 0 ? 1 : 0 }
        let p3: [Float] = [0.7, 0.2, 0.1, 0.1, 0.8, 0.1, 0.1, 0.1, 0.8, 0.3, 0.3, 0.4]
        XCTAssertThrowsError(try score([("y", .u8, [4], eye4), ("p", .f32, [3], bytes(p3))], count: 4)) { e in
            XCTAssertEqual((e as? ScoreError)?.problem, "probability field 'p' has 3 columns but there are 4 classes")
        }
        // A 3-column one-hot target beside one column of p (binary) was scored as 3 classes
        // with 1 − p for two of them.
        let eye3: [UInt8] = [1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 1, 0]
        let p1: [Float] = [0.2, 0.9, 0.6, 0.4]
        XCTAssertThrowsError(try score([("y", .u8, [3], eye3), ("p", .f32, [1], bytes(p1))], count: 4)) { e in
            XCTAssertEqual((e as? ScoreError)?.problem, "probability field 'p' has one column, the probability of class 1, but there are 3 classes")
        }
        // As wide as p, it scores.
        let eye3p: [Float] = [0.7, 0.2, 0.1, 0.1, 0.8, 0.1, 0.1, 0.1, 0.8, 0.3, 0.4, 0.3]
        XCTAssertEqual(try score([("y", .u8, [3], eye3), ("p", .f32, [3], bytes(eye3p))], count: 4).confusion, [[1, 0, 0], [0, 2, 0], [0, 0, 1]])
    }

    func testFloatPredictionsBesideClassNamesSayWhichTaskToGive() throws {
        // Float yhat beside a target with class names: refused as before, and the message now
        // names both ways out, each of which then scores.
        let y: [Int64] = [0, 1, 1, 0], yhat: [Float] = [0, 1, 0, 0]
        let fields: [(String, DType, [Int], [UInt8])] = [("y", .i64, [], bytes(y)), ("yhat", .f32, [], bytes(yhat))]
        XCTAssertThrowsError(try score(fields, classes: ["cat", "dog"], count: 4)) { e in
            XCTAssertEqual((e as? ScoreError)?.problem, "prediction field 'yhat' is f32, not a class index; --task classification reads whole numbers as class indexes, --task regression scores the values as numbers")
        }
        var o = ScoreOptions()
        o.task = .classification
        XCTAssertEqual(try score(fields, classes: ["cat", "dog"], count: 4, options: o).confusion, [[2, 0], [1, 1]])
        o.task = .regression
        XCTAssertEqual(value(try score(fields, classes: ["cat", "dog"], count: 4, options: o), "mae"), 0.25)
    }

    func testRegressionFieldsMustHaveOneShape() throws {
        let four: [Float] = [1, 2, 3, 4]
        XCTAssertThrowsError(try score([("y", .f32, [2, 2], bytes(four)), ("yhat", .f32, [4], bytes(four))], count: 1)) { e in
            XCTAssertEqual((e as? ScoreError)?.problem, "prediction field 'yhat' has shape 4 but target 'y' has shape 2×2")
        }
        // a scalar and one value per sample are the same thing
        XCTAssertEqual(value(try score([("y", .f32, [], bytes(four)), ("yhat", .f32, [1], bytes(four))], count: 4), "r2"), 1)
    }

    func testAClassNameIsLookedUpBeforeAnIndex() throws {
        // as score(1) documents: recall[1] is the class named "1" (index 2) when there is one
        let r = try score([("y", .i64, [], bytes(y)), ("yhat", .i64, [], bytes(yhat))], classes: ["x", "0", "1"], count: 12)
        XCTAssertEqual(r.value(of: "recall[1]"), .some(r.perClass[2].recall))
        XCTAssertEqual(r.value(of: "recall[x]"), .some(r.perClass[0].recall))
        XCTAssertNotEqual(r.perClass[2].recall, r.perClass[1].recall)
    }
}
