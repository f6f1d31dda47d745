// Sequence models as a user runs them: text through tensor-load, fit and predict with the
// text presets, images read as rows, and the refusals that keep a text model from reading
// tokens of another vocabulary or sequences without their lengths.

import Foundation
import TensorCore
import TensorStream
import XCTest
import _TestSupport

final class SequenceToolTests: XCTestCase {
    var tmp = ""
    var train: String { testdata("text/reviews-train.tsv") }
    var test: String { testdata("text/reviews-test.tsv") }

    override func setUpWithError() throws {
        tmp = try makeTempDir()
        let r = try sh("tensor-load --text \(train) --tokenizer word --max-len 12 --save-vocab \(tmp)/v.vocab -o \(tmp)/train.tns")
        XCTAssertEqual(r.status, 0, r.stderr)
        let t = try sh("tensor-load --text \(test) --vocab \(tmp)/v.vocab --max-len 12 -o \(tmp)/test.tns")
        XCTAssertEqual(t.status, 0, t.stderr)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: tmp) }

    func testTextPresetsLearnTheTrainingSetAndPredictTestText() throws {
        for preset in ["lstm-text", "gru-text", "transformer-text"] {
            let fit = try sh("fit --model \(preset) --epochs 40 --batch 4 --lr 0.01 --seed 2 --threads 1 -q -o \(tmp)/\(preset).model \(tmp)/train.tns")
            XCTAssertEqual(fit.status, 0, fit.stderr)
            // the model records what its input needs
            let show = try sh("tensor-show -n 0 \(tmp)/\(preset).model")
            XCTAssertTrue(show.stdoutText.contains("model.input.length: len"), show.stdoutText)
            XCTAssertTrue(show.stdoutText.contains("model.input.vocabulary: word "), show.stdoutText)
            XCTAssertTrue(show.stdoutText.contains("embedding 64 vocab="), show.stdoutText)
            // it has learnt its eight training sentences
            let self_ = try sh("predict -m \(tmp)/\(preset).model \(tmp)/train.tns | score --json")
            XCTAssertEqual(self_.status, 0, self_.stderr)
            let acc = try XCTUnwrap((try JSONSerialization.jsonObject(with: Data(self_.stdout)) as? [String: Any])?["accuracy"] as? Double)
            XCTAssertEqual(acc, 1, "\(preset) on its training set")
            // and predicts test text tokenized with its vocabulary
            let p = try sh("predict -m \(tmp)/\(preset).model \(tmp)/test.tns")
            XCTAssertEqual(p.status, 0, p.stderr)
            let (s, n, _) = try readAll(p.stdout)
            XCTAssertEqual(n, 2)
            XCTAssertEqual(s.fields.map(\.name), ["x", "y", "len", "p", "yhat"])
            XCTAssertEqual(s.classes(of: "yhat"), ["neg", "neutral", "pos"])
        }
    }

    func testPredictRefusesTokensOfAnotherVocabulary() throws {
        XCTAssertEqual(try sh("fit --model lstm-text --epochs 1 -q -o \(tmp)/m.model \(tmp)/train.tns").status, 0)
        // the test text tokenized with a vocabulary learnt from itself: same shapes, other ids
        XCTAssertEqual(try sh("tensor-load --text \(test) --max-len 12 --min-count 1 --save-vocab \(tmp)/other.vocab -o \(tmp)/other.tns").status, 0)
        assertFails(try sh("predict -m \(tmp)/m.model \(tmp)/other.tns"), status: 65, prefix: "predict: \(tmp)/other.tns: field 'x' has vocabulary (word ")
        // and input with no vocabulary record at all
        XCTAssertEqual(try sh("tensor-cat --fields x,y,len \(tmp)/test.tns | tensor-show --npz \(tmp)/t.npz && tensor-load \(tmp)/t.npz -o \(tmp)/bare.tns").status, 0)
        assertFails(try sh("predict -m \(tmp)/m.model \(tmp)/bare.tns"), status: 65, prefix: "predict: \(tmp)/bare.tns: field 'x' has no vocabulary record")
        // fit --resume refuses them too
        assertFails(try sh("fit --resume \(tmp)/m.model --epochs 1 -o \(tmp)/m2.model \(tmp)/other.tns"), status: 65, prefix: "fit: \(tmp)/other.tns: field 'x' has vocabulary (word ")
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(tmp)/m2.model"))
    }

    /// Text loaded with another --max-len than the training's is refused, and the message
    /// gives the width to load it with.
    func testTextOfAnotherWidthIsRefusedWithTheWidthToUse() throws {
        XCTAssertEqual(try sh("fit --model gru-text --epochs 1 -q -o \(tmp)/m.model \(tmp)/train.tns").status, 0)
        assertFails(try sh("tensor-load --text \(test) --vocab \(tmp)/v.vocab --max-len 20 | predict -m \(tmp)/m.model"), status: 65,
                    prefix: "predict: stdin: field 'x' is i32 20 but the model was trained on i32 12; load the text with tensor-load --max-len 12, as for training")
        // the hint is for token ids: images of another size get none
        assertFails(try sh("tensor-load \(testdata("images/classes")) | predict -m \(tmp)/m.model"), status: 65,
                    prefix: "predict: stdin: field 'x' is u8 6×6×3 but the model was trained on i32 12")
        XCTAssertFalse(try sh("tensor-load \(testdata("images/classes")) | predict -m \(tmp)/m.model").stderr.contains("--max-len"))
    }

    func testPredictNeedsTheLengthField() throws {
        XCTAssertEqual(try sh("fit --model lstm-text --epochs 1 -q -o \(tmp)/m.model \(tmp)/train.tns").status, 0)
        assertFails(try sh("tensor-cat --fields x,y \(tmp)/test.tns | predict -m \(tmp)/m.model"), status: 65,
                    prefix: "predict: stdin: no field 'len', the sequence lengths the model reads")
    }

    func testTokenIdsOutsideTheVocabularyAndBadLengthsAreNamed() throws {
        // an embedding of 5 ids cannot read this vocabulary's ids (up to 14)
        let fit = try sh("fit --model 'embedding 8 vocab=5; lstm 4; dense classes' --epochs 1 -q -o \(tmp)/m.model \(tmp)/train.tns")
        assertFails(fit, status: 65, prefix: "fit: \(tmp)/train.tns: field 'x' sample 0: ")
        XCTAssertTrue(fit.stderr.contains("is not a token id of the model's vocabulary of 5"), fit.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(tmp)/m.model"))
        // a length past the 12 steps
        let py = """
        import numpy as np
        d = np.load('\(tmp)/t.npz'); x = d['x']; y = d['y']; n = d['len'].copy(); n[1] = 13
        np.savez('\(tmp)/bad.npz', x=x, y=y, len=n)
        """
        XCTAssertEqual(try sh("tensor-show --npz \(tmp)/t.npz \(tmp)/train.tns && python3 -c \"\(py)\" && tensor-load \(tmp)/bad.npz -o \(tmp)/bad.tns").status, 0)
        assertFails(try sh("fit --model 'embedding 8 vocab=20; lstm 4; dense classes' --epochs 1 -q -o \(tmp)/m.model \(tmp)/bad.tns"), status: 65,
                    prefix: "fit: \(tmp)/bad.tns: field 'len' sample 1: length 13 outside 0…12")
        // --length on a network without a layer over time is a usage error
        assertFails(try sh("fit --model 'embedding 8; dense classes' --length len --epochs 1 -q -o \(tmp)/m.model \(tmp)/train.tns"), status: 64,
                    prefix: "fit: embedding 8; dense classes: --length: this network has no layer over time")
    }

    func testTextPipelineMistakesFoundByTheAudit() throws {
        // A network that takes token ids for quantities trains on nothing, and would take any
        // vocabulary's ids at predict time.
        assertFails(try sh("fit --model 'dense 16 relu; dense classes' --epochs 1 -q -o \(tmp)/m.model \(tmp)/train.tns"), status: 65,
                    prefix: "fit: dense 16 relu; dense classes: field 'x' holds token ids (x.vocabulary); start the network with 'embedding N'")
        // The label as the sequence lengths: perfect "predictions" of the label.
        assertFails(try sh("fit --model lstm-text --length y --epochs 1 -q -o \(tmp)/m.model \(tmp)/train.tns"), status: 64,
                    prefix: "fit: --length: 'y' is the target field, not sequence lengths")
        // A hand-edited vocabulary size overflowed the embedding's size (a trap, 132).
        let (schema, _, data) = try readAll(Array(try Data(contentsOf: URL(fileURLWithPath: "\(tmp)/train.tns"))))
        var meta = schema.metadata.filter { $0.key != "x.vocab-size" }
        meta.append(("x.vocab-size", "9223372036854775807"))
        try Data(try makeStream(Schema(fields: schema.fields, metadata: meta), batches: [(8, data)])).write(to: URL(fileURLWithPath: "\(tmp)/huge.tns"))
        assertFails(try sh("fit --model lstm-text --epochs 1 -q -o \(tmp)/m.model \(tmp)/huge.tns"), status: 65,
                    prefix: "fit: \(tmp)/huge.tns: x.vocab-size '9223372036854775807' is not a vocabulary size (2…16777216)")
        // A layer too large is named, not the last layer.
        assertFails(try sh("fit --model 'embedding 65536 vocab=65536; lstm 4; dense classes' --epochs 1 -q -o \(tmp)/m.model \(tmp)/train.tns"), status: 65,
                    prefix: "fit: embedding 65536 vocab=65536; lstm 4; dense classes: layer 'embedding 65536 vocab=65536': more than 2^30 parameters")
        // An option given twice in the architecture: the last one won.
        assertFails(try sh("fit --model 'embedding 4 vocab=28 vocab=29; lstm 4; dense classes' -q -o \(tmp)/m.model \(tmp)/train.tns"), status: 65,
                    prefix: "fit: ", contains: "option 'vocab' given twice for embedding")
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(tmp)/m.model"))
        // A token id is shown as the data holds it (2147483647, not 2.1474836e+09).
        var x = data[0]
        x.withUnsafeMutableBytes { $0.storeBytes(of: Int32.max, toByteOffset: 0, as: Int32.self) }
        try Data(try makeStream(schema, batches: [(8, [x] + data.dropFirst())])).write(to: URL(fileURLWithPath: "\(tmp)/big-id.tns"))
        XCTAssertEqual(try sh("fit --model lstm-text --epochs 1 -q -o \(tmp)/m.model \(tmp)/train.tns").status, 0)
        assertFails(try sh("predict -m \(tmp)/m.model \(tmp)/big-id.tns"), status: 65,
                    prefix: "predict: \(tmp)/big-id.tns: field 'x' sample 0: 2147483647 is not a token id of the model's vocabulary of ")
        // normalize made token ids into fractions that still claimed the vocabulary.
        assertFails(try sh("normalize --standardize \(tmp)/train.tns"), status: 65,
                    prefix: "normalize: \(tmp)/train.tns: field 'x' holds token ids (x.vocabulary)")
        // A stream given for the vocabulary, or read as an image, is named a tensor stream
        // ("not valid UTF-8", "looks like unknown data"; helper-43's review).
        assertFails(try sh("tensor-load --text \(train) --max-len 12 --vocab \(tmp)/train.tns"), status: 65,
                    prefix: "tensor-load: \(tmp)/train.tns: not a vocabulary file (looks like a tensor stream)")
        assertFails(try sh("tensor-load --format image \(tmp)/train.tns"), status: 65, prefix: "tensor-load: \(tmp)/train.tns: ",
                    contains: "(looks like a tensor stream)")
        // Class labels too: they became f32 fractions that kept their class list, and fit then
        // blamed the network (helper-43's review).
        assertFails(try sh("normalize --scale 255 --field y \(tmp)/train.tns"), status: 65,
                    prefix: "normalize: \(tmp)/train.tns: field 'y' holds class labels (y.classes), which normalizing would make into other numbers; normalize the input field")
        // Labels only numbered may be a regression's target (a CSV column of small integers):
        // normalized, and fit asks for --loss mse before it takes them for one.
        try "a,y\n1,3\n2,5\n3,4\n".write(toFile: "\(tmp)/rating.csv", atomically: false, encoding: .utf8)
        XCTAssertEqual(try sh("tensor-load --label y \(tmp)/rating.csv | normalize --standardize --field y -o \(tmp)/rating.tns").status, 0)
        assertFails(try sh("fit --model 'dense 1' --epochs 1 -q -o \(tmp)/r.model \(tmp)/rating.tns"), status: 65,
                    prefix: "fit: \(tmp)/rating.tns: field 'y' is f32 but names classes (y.classes)", contains: "fit a regression with --loss mse")
        XCTAssertEqual(try sh("fit --model 'dense 1' --loss mse --epochs 1 -q -o \(tmp)/r.model \(tmp)/rating.tns").status, 0)
        var floatLabels = Schema(fields: [Field(name: "x", dtype: .f32, shape: Shape([2])), Field(name: "y", dtype: .f32, shape: Shape([]))])
        floatLabels.setClasses(["a", "b"], of: "y")
        let fl: [Float] = [0, 1, 1, 0, 0, 1]
        try Data(try makeStream(floatLabels, batches: [(3, [fl.withUnsafeBytes { Array($0) }, fl.prefix(3).withUnsafeBytes { Array($0) }])])).write(to: URL(fileURLWithPath: "\(tmp)/fl.tns"))
        assertFails(try sh("fit --model mlp --epochs 1 -q -o \(tmp)/fl.model \(tmp)/fl.tns"), status: 65,
                    prefix: "fit: \(tmp)/fl.tns: field 'y' is f32 but names classes (y.classes): class labels are integers (were they normalized?)")
        // A vocabulary of nothing, and documents of nothing.
        assertFails(try sh("tensor-load --text \(train) --max-len 12 --min-count 100000 -o \(tmp)/o.tns"), status: 65,
                    prefix: "tensor-load: \(train): learned no tokens: no word occurs 100000 times (--min-count)")
        try "pos\t\nneg\t   \n".write(toFile: "\(tmp)/empty.tsv", atomically: false, encoding: .utf8)
        for (kind, what) in [("word", "word"), ("bpe", "symbol")] {
            assertFails(try sh("tensor-load --text \(tmp)/empty.tsv --tokenizer \(kind) --min-count 1 --max-len 12 -o \(tmp)/o.tns"), status: 65,
                        prefix: "tensor-load: \(tmp)/empty.tsv: learned no tokens: no \(what) occurs once (--min-count)")
        }
        assertFails(try sh("tensor-load --text \(tmp)/empty.tsv --vocab \(tmp)/v.vocab --max-len 12 -o \(tmp)/o.tns"), status: 65,
                    prefix: "tensor-load: \(tmp)/empty.tsv: no document holds a token")
        try "pos\tzzzz qqqq\n".write(toFile: "\(tmp)/unknown.tsv", atomically: false, encoding: .utf8)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(tmp)/o.tns"))
        // Words the vocabulary has never seen: maybe another text's vocabulary, maybe one short
        // review of new words. The stream is written, with one warning line.
        let unknown = try sh("tensor-load --text \(tmp)/unknown.tsv --vocab \(tmp)/v.vocab --max-len 12 -o \(tmp)/o.tns")
        XCTAssertEqual(unknown.status, 0, unknown.stderr)
        XCTAssertEqual(unknown.stderrLines, ["tensor-load: warning: \(tmp)/unknown.tsv: no token of the text is in the vocabulary, every id is 'unknown' (the vocabulary of another text?)"])
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(tmp)/o.tns"))
        XCTAssertEqual(try sh("tensor-load --text \(test) --vocab \(tmp)/v.vocab --max-len 12 -o \(tmp)/o.tns").stderr, "", "known words: no warning")
        let v = try String(contentsOfFile: "\(tmp)/v.vocab", encoding: .utf8)
        let none = v[..<v.range(of: "\ntokens ")!.lowerBound] + "\ntokens 0\n"
        try none.write(toFile: "\(tmp)/none.vocab", atomically: false, encoding: .utf8)
        assertFails(try sh("tensor-load --text \(test) --vocab \(tmp)/none.vocab --max-len 12 -o \(tmp)/o.tns"), status: 65,
                    prefix: "tensor-load: \(tmp)/none.vocab: the vocabulary holds no tokens")
    }

    func testImagesReadAsRows() throws {
        let images = testdata("idx/images-u8.idx.gz"), labels = testdata("idx/labels-u8.idx")
        let r = try sh("tensor-load x=\(images) y=\(labels) | normalize --scale 255 | fit --model rows-lstm --epochs 2 --batch 4 -q -o \(tmp)/rows.model")
        XCTAssertEqual(r.status, 0, r.stderr)
        // raw u8 images straight from tensor-load: the model applies its own normalization
        let p = try sh("tensor-load x=\(images) y=\(labels) | predict -m \(tmp)/rows.model --format text")
        XCTAssertEqual(p.status, 0, p.stderr)
        XCTAssertEqual(p.stdoutText.split(separator: "\n").count, 10)
    }
}
