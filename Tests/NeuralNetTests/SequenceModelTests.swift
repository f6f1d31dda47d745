// The sequence presets and architecture words, training a sequence model on a task only
// memory through time can solve, and the model file's record of lengths and vocabulary.

@testable import NeuralNet
import Compute
import TensorCore
import TensorStream
import XCTest

final class SequenceModelTests: XCTestCase {
    func net(_ text: String, _ shape: [Int], classes: Int = 4, vocabulary: Int = 0) throws -> Network<Float> {
        try Network<Float>(specs: Architecture.resolve(try Architecture.parse(text), vocabulary: vocabulary), inputShape: shape,
                           classes: classes, task: .classification)
    }

    func testPresetsBuildTheSequenceNetworks() throws {
        // rows-lstm on 28×28×1: LSTM(28→128) = 4·128·(28 + 128) + 2·4·128, dense 128·10 + 10
        let rows = try net(Architecture.presets["rows-lstm"]!, [28, 28, 1], classes: 10)
        XCTAssertEqual(rows.parameterCount, 4 * 128 * (28 + 128) + 2 * 4 * 128 + 1290)
        XCTAssertEqual(rows.outputSize, 10)
        XCTAssertTrue(rows.usesLengths)
        // lstm-text: embedding V×64, LSTM(64→128), dense 128·C + C
        let lstm = try net(Architecture.presets["lstm-text"]!, [32], classes: 5, vocabulary: 1000)
        XCTAssertEqual(lstm.parameterCount, 1000 * 64 + 4 * 128 * (64 + 128) + 2 * 4 * 128 + 128 * 5 + 5)
        XCTAssertEqual(lstm.tokenVocabulary, 1000)
        // gru-text: the same with GRU(64→128), three gates
        let gru = try net(Architecture.presets["gru-text"]!, [32], classes: 5, vocabulary: 1000)
        XCTAssertEqual(gru.parameterCount, 1000 * 64 + 3 * 128 * (64 + 128) + 2 * 3 * 128 + 128 * 5 + 5)
        // transformer-text: embedding, positions 32×64, block (2 layer norms, attention 4·64·64 + 4·64,
        // feed-forward 64·128 + 128 + 128·64 + 64), final layer norm, pooling, dense 64·5 + 5
        let tr = try net(Architecture.presets["transformer-text"]!, [32], classes: 5, vocabulary: 1000)
        let block = 2 * 128 + (4 * 64 * 64 + 4 * 64) + (64 * 128 + 128 + 128 * 64 + 64)
        XCTAssertEqual(tr.parameterCount, 1000 * 64 + 32 * 64 + block + 128 + 64 * 5 + 5)
        // the embedding's vocabulary must come from somewhere
        XCTAssertThrowsError(try net(Architecture.presets["lstm-text"]!, [32])) { e in
            XCTAssertTrue((e as? ArchitectureError)?.problem.contains("vocabulary") == true, "\(e)")
        }
    }

    func testSequenceWordsRoundTripAndRefuseNonsense() throws {
        let text = "embedding 16 vocab=300; position; gru 8 sequences bidirectional; layernorm; attention 2 causal\ntransformer 4 32; rnn 4 sequences; timepool max; dense classes"
        let specs = try Architecture.parse(text)
        XCTAssertEqual(try Architecture.parse(Architecture.text(specs)), specs)
        let n = try net(text, [10], classes: 3)
        XCTAssertEqual(n.layers.map(\.outputShape), [[10, 16], [10, 16], [10, 16], [10, 16], [10, 16], [10, 16], [10, 4], [4], [3]])
        for bad in ["lstm", "lstm 8 backwards", "gru sequences", "attention", "transformer 4", "timepool median", "embedding 8 vocab=1",
                    "embedding", "lstm 0"] {
            XCTAssertThrowsError(try Architecture.parse(bad), "'\(bad)' accepted")
        }
        for (bad, shape) in [("lstm 8", [10]), ("attention 3", [10, 8]), ("dense 4; embedding 8 vocab=9", [10]), ("timepool mean", [6]),
                             ("transformer 3 8", [5, 4])] {
            XCTAssertThrowsError(try net(bad, shape), "'\(bad)' on \(shape) accepted")
        }
    }

    /// Sequences of ±1 noise in which class = the sign of the FIRST step: a network must carry
    /// it through every later step. Lengths vary; the padding is large noise the network must
    /// ignore.
    func memoryTask(n: Int, steps: Int, seed: UInt64) -> Dataset {
        var rng = SeededRandom(seed: seed)
        var d = Dataset(inputShape: [steps, 2])
        for _ in 0..<n {
            let k: Int32 = rng.next() & 1 == 0 ? 0 : 1
            let len = 3 + Int(rng.next() % UInt64(steps - 2))
            for t in 0..<steps {
                if t >= len { d.x += [Float(rng.nextGaussian() * 5), Float(rng.nextGaussian() * 5)]; continue }
                d.x += [t == 0 ? (k == 0 ? -1 : 1) : Float(rng.nextGaussian() * 0.5), 1]
            }
            d.labels.append(k)
            d.lengths.append(Int32(len))
        }
        d.count = n
        return d
    }

    func testRecurrentNetworksRememberTheFirstStep() throws {
        for cell in ["lstm 16", "gru 16", "rnn 16", "lstm 8 bidirectional"] {
            let m = try Model(architecture: "\(cell)\ndense classes", inputShape: [8, 2], inputField: "x", inputDType: .f32,
                              targetField: "y", classes: ["neg", "pos"], task: .classification, optimizer: OptimizerConfig())
            m.optimizerConfig.learningRate = 0.01
            m.network.initialize(seed: 5)
            let t = Trainer(model: m, batchSize: 32, seed: 5, threads: 2)
            let train = memoryTask(n: 512, steps: 8, seed: 1)
            for e in 1...12 { _ = try t.trainEpoch(train, epoch: e) }
            let acc = t.evaluate(memoryTask(n: 256, steps: 8, seed: 2)).accuracy ?? 0
            XCTAssertGreaterThan(acc, 0.95, cell)
        }
    }

    func testAttentionPoolsTheRealStepsOnly() throws {
        // mean pooling over real steps: the class is the sign of the first step's feature, which
        // attention + pooling can read; with padding (noise of sd 5) leaking in it would drown.
        XCTAssertThrowsError(try Network<Float>(specs: try Architecture.parse("dense 8; attention 2"), inputShape: [8, 2], classes: 2, task: .classification),
                             "dense flattens: attention after it has no sequence")
        let seq = try Model(architecture: "transformer 2 16; timepool mean; dense classes", inputShape: [8, 2], inputField: "x", inputDType: .f32,
                            targetField: "y", classes: ["neg", "pos"], task: .classification, optimizer: OptimizerConfig())
        seq.optimizerConfig.learningRate = 0.01
        seq.network.initialize(seed: 5)
        let t = Trainer(model: seq, batchSize: 32, seed: 5, threads: 2)
        let train = memoryTask(n: 512, steps: 8, seed: 1)
        for e in 1...15 { _ = try t.trainEpoch(train, epoch: e) }
        XCTAssertGreaterThan(t.evaluate(memoryTask(n: 256, steps: 8, seed: 2)).accuracy ?? 0, 0.9)
    }

    func testModelFileKeepsTheLengthFieldAndVocabulary() throws {
        let m = try Model(architecture: "embedding 8; lstm 4; dense classes", inputShape: [6], inputField: "x", inputDType: .i32,
                          targetField: "y", classes: ["a", "b"], task: .classification, optimizer: OptimizerConfig(), vocabulary: 50)
        XCTAssertEqual(m.architecture, "embedding 8 vocab=50\nlstm 4\ndense classes", "the vocabulary size is written into the architecture")
        m.lengthField = "len"
        m.vocabulary = "word 50 crc32 0badc0de"
        m.network.initialize(seed: 1)
        let sink = MemorySink()
        try m.write(to: sink)
        let back = try Model.load(from: MemorySource(sink.data, name: "m.model"))
        XCTAssertEqual(back.lengthField, "len")
        XCTAssertEqual(back.vocabulary, "word 50 crc32 0badc0de")
        XCTAssertEqual(back.network.tokenVocabulary, 50)
        var x: [Float] = [2, 3, 49, 0, 0, 0, 1, 50, 0, 0, 0, 0]
        XCTAssertEqual(back.network.invalidToken(&x, count: x.count), 7, "50 is outside a vocabulary of 50")
        x[7] = 2.5
        XCTAssertEqual(back.network.invalidToken(&x, count: x.count), 7, "ids are integers")
        x[7] = 4
        XCTAssertNil(back.network.invalidToken(&x, count: x.count))
    }

    func testLabelsTheInputOnlyNumberedFitTheModelsClasses() {
        // An IDX test set loaded without --classes beside a model trained with them (README's
        // tutorial), or a test set holding some of the classes, was refused as a mismatch.
        XCTAssertTrue(classesFit(data: ["0", "1", "2"], model: ["cat", "dog", "eel"]))
        XCTAssertTrue(classesFit(data: ["0", "1"], model: ["0", "1", "2"]))
        XCTAssertTrue(classesFit(data: ["cat", "dog"], model: ["cat", "dog"]))
        XCTAssertFalse(classesFit(data: ["0", "1", "2", "3"], model: ["cat", "dog", "eel"]), "more classes than the model")
        XCTAssertFalse(classesFit(data: ["cat", "dog"], model: ["cat", "dog", "eel"]), "names fix their classes")
        XCTAssertFalse(classesFit(data: ["dog", "cat"], model: ["cat", "dog"]))
        XCTAssertFalse(classesFit(data: ["1", "0"], model: ["0", "1"]))
    }

    func testClassMismatchNamesBothListsFromTheFirstDifference() {
        // fit --resume and predict refuse data whose classes differ; a swap deep in a long list
        // must be visible in the one line.
        let model = (0..<20).map { "c\($0)" }
        var data = model
        data.swapAt(11, 12)
        XCTAssertEqual(classMismatch(field: "y", data: data, model: model),
                       "class names of 'y' differ from the model's at class 11: the data has (…, c12, c11, c13, c14, …; 20 classes), the model (…, c11, c12, c13, c14, …; 20 classes); tensor-load --classes with the model's names, in its order, numbers the labels as the model does")
        XCTAssertEqual(classMismatch(field: "y", data: ["a", "b"], model: ["a", "b", "c"]),
                       "class names of 'y' differ from the model's at class 2: the data has (nothing more; 2 classes), the model (…, c; 3 classes); tensor-load --classes with the model's names, in its order, numbers the labels as the model does")
        // Names with a comma are quoted, all of them: two names, not three.
        XCTAssertEqual(classMismatch(field: "y", data: ["Bag, small", "Shoe"], model: ["Bag", "small", "Shoe"]),
                       "class names of 'y' differ from the model's at class 0: the data has ('Bag, small', 'Shoe'; 2 classes), the model (Bag, small, Shoe; 3 classes); tensor-load --classes with the model's names, in its order, numbers the labels as the model does")
    }
}

final class OrthogonalInitTests: XCTestCase {
    func testRecurrentKernelRowsAreOrthonormal() {
        var rng = SeededRandom(seed: 9)
        let rows = 6, cols = 24
        let m = UnsafeMutablePointer<Double>.allocate(capacity: rows * cols)
        defer { m.deallocate() }
        orthogonalRows(m, rows: rows, cols: cols, rng: &rng)
        for a in 0..<rows {
            for b in 0..<rows {
                var dot = 0.0
                for j in 0..<cols { dot += m[a * cols + j] * m[b * cols + j] }
                XCTAssertEqual(dot, a == b ? 1 : 0, accuracy: 1e-12, "rows \(a), \(b)")
            }
        }
    }
}

final class VectorActivationTests: XCTestCase {
    /// expSIMD, sigmoidInPlace and tanhInPlace (the recurrent layers' Float kernels) against
    /// libm over [-100, 100] in steps of 0.001, lengths that leave a scalar tail.
    func testVectorExpSigmoidAndTanhAgreeWithLibm() {
        var xs: [Float] = []
        var v: Float = -100
        while v <= 100 { xs.append(v); v += 0.001 }
        xs.append(contentsOf: [0, -0, 1e-30, -1e-30])
        // Both forms of the polynomial, whichever this build's expSIMD uses (fused in release
        // builds for x86-64-v3, which the tests do not run).
        for fused in [false, true] {
            var worstExp: Float = 0
            for i in stride(from: 0, to: xs.count - 8, by: 8) {
                let e = expSIMD(SIMD8(xs[i..<i + 8]), fused: fused)
                for k in 0..<8 {
                    let want = expf(xs[i + k])
                    guard xs[i + k] >= -87.3, xs[i + k] <= 88.3 else {
                        // clamped: saturates, stays finite and positive
                        XCTAssertTrue(e[k].isFinite && e[k] > 0)
                        continue
                    }
                    worstExp = max(worstExp, abs(e[k] - want) / want)
                }
            }
            XCTAssertLessThan(worstExp, 3e-7, "relative error of e^x, fused \(fused)")
        }
        XCTAssertTrue(expSIMD(SIMD8(repeating: 0.3)) == expSIMD(SIMD8(repeating: 0.3), fused: fusedMultiplyAdd))
        var s = xs, t = xs
        sigmoidInPlace(&s, count: s.count - 3)  // the last three go through the scalar tail
        tanhInPlace(&t, count: t.count - 3)
        var worstS: Float = 0, worstT: Float = 0
        for i in 0..<xs.count - 3 {
            worstS = max(worstS, abs(s[i] - 1 / (1 + expf(-xs[i]))))
            worstT = max(worstT, abs(t[i] - tanhf(xs[i])))
        }
        XCTAssertLessThan(worstS, 2e-7)
        XCTAssertLessThan(worstT, 3e-7)
        // Relative error near 0, where 1 − 2/(e^{2x} + 1) cancels (1e-3 off at 1e-4), and on
        // both sides of the switch to the polynomial.
        var small: [Float] = []
        var u: Float = 1e-30
        while u < 3 { small.append(u); small.append(-u); u *= 1.01 }
        small += [0.625, -0.625, 0.62499994, 0.62500006]
        var tanhs = small
        tanhInPlace(&tanhs, count: tanhs.count)
        var worstRelative: Float = 0
        for (x, y) in zip(small, tanhs) { worstRelative = max(worstRelative, abs(y - tanhf(x)) / abs(tanhf(x))) }
        XCTAssertLessThan(worstRelative, 5e-7, "relative error of tanh")
        XCTAssertEqual(t[0], -1, "tanh saturates exactly")
        XCTAssertEqual(s[0], 0, accuracy: 1e-37)
        XCTAssertEqual(Array(s.suffix(3)), Array(xs.suffix(3)), "count is respected")
    }

    /// An architecture file written on Windows read as one line ("dense takes 1 value, got 3").
    func testArchitectureTextWithCRLFLineEnds() throws {
        XCTAssertEqual(try Architecture.parse("dense 16 relu\r\ndense classes\r\n"), try Architecture.parse("dense 16 relu\ndense classes\n"))
    }

    /// The transformer's Float kernels against libm: erf over [-10, 10] (absolute error),
    /// GELU and its gradient, and an attention row's softmax, with lengths that leave a tail.
    func testVectorErfGeluAndSoftmaxAgreeWithLibm() {
        var xs: [Float] = []
        var v: Float = -10
        while v <= 10 { xs.append(v); v += 0.0007 }
        xs += [0, -0, 1e-30, -1e-30, 30, -30, 200, -200]
        var worstErf: Float = 0
        for i in stride(from: 0, through: xs.count - 8, by: 8) {
            let e = erfSIMD(SIMD8(xs[i..<i + 8]))
            for k in 0..<8 { worstErf = max(worstErf, abs(e[k] - erff(xs[i + k]))) }
        }
        XCTAssertLessThan(worstErf, 5e-7, "absolute error of erf")
        let n = xs.count - 5  // a tail through the scalar loop
        var y = [Float](repeating: .nan, count: n), dx = y
        let dy = (0..<n).map { Float(($0 % 7) - 3) / 3 }
        geluForward(xs, &y, count: n)
        geluBackward(xs, dy, &dx, count: n)
        var worstY: Float = 0, worstD: Float = 0
        for i in 0..<n {
            let x = Double(xs[i])
            let cdf = 0.5 * (1 + erf(x / 2.0.squareRoot())), pdf = exp(-x * x / 2) / (2 * Double.pi).squareRoot()
            worstY = max(worstY, Float(abs(Double(y[i]) - x * cdf) / max(1, abs(x))))
            worstD = max(worstD, Float(abs(Double(dx[i]) - Double(dy[i]) * (cdf + x * pdf))))
        }
        XCTAssertLessThan(worstY, 4e-7, "GELU, relative to max(1, |x|)")
        XCTAssertLessThan(worstD, 1e-6, "GELU's gradient")
        var rng = SeededRandom(seed: 4)
        for count in [1, 7, 8, 13, 64] {
            let row = (0..<count).map { _ in Float(rng.nextGaussian() * 8) }
            var got = row
            softmaxInPlace(&got, count: count)
            let m = Double(row.max()!)
            let e = row.map { exp(Double($0) - m) }, total = e.reduce(0, +)
            for j in 0..<count { XCTAssertEqual(Double(got[j]), e[j] / total, accuracy: 1e-6, "softmax of \(count), \(j)") }
            XCTAssertEqual(Double(got.reduce(0, +)), 1, accuracy: 1e-5)
        }
    }

    /// The vectorized LSTM step gradient against the layer's loop before it (tanh c by
    /// tanhInPlace, then one value at a time), which the Double gradient checks cover: bit for
    /// bit, with hidden sizes that leave a tail; dh is left 0 for the GEMM that adds into it.
    func testVectorLSTMStepGradientIsTheScalarLoop() {
        var rng = SeededRandom(seed: 9)
        func draw(_ n: Int, _ lo: Double, _ hi: Double) -> [Float] { (0..<n).map { _ in Float(lo + rng.nextUnitDouble() * (hi - lo)) } }
        for H in [1, 8, 13, 128] {
            let a = draw(2 * H, 0, 1) + draw(H, -1, 1) + draw(H, 0, 1)  // σ(i), σ(f), tanh(g), σ(o)
            let cPrev = draw(H, -3, 3), c = draw(H, -3, 3), dh0 = draw(H, -1, 1), dc0 = draw(H, -1, 1)
            var dh = dh0, dc = dc0, da = [Float](repeating: .nan, count: 4 * H)
            Float.lstmStepBackward(a, hidden: H, cPrev: cPrev, c: c, dh: &dh, dc: &dc, da: &da)
            var tc = c
            tanhInPlace(&tc, count: H)
            var rdc = dc0, rda = [Float](repeating: 0, count: 4 * H)
            for j in 0..<H {
                let i = a[j], f = a[H + j], g = a[2 * H + j], o = a[3 * H + j]
                let dcn = rdc[j] + dh0[j] * o * (1 - tc[j] * tc[j])
                rda[j] = dcn * g * i * (1 - i)
                rda[H + j] = dcn * cPrev[j] * f * (1 - f)
                rda[2 * H + j] = dcn * i * (1 - g * g)
                rda[3 * H + j] = dh0[j] * tc[j] * o * (1 - o)
                rdc[j] = dcn * f
            }
            XCTAssertEqual(da, rda, "gate gradients, H \(H)")
            XCTAssertEqual(dc, rdc, "cell gradient, H \(H)")
            XCTAssertEqual(dh, [Float](repeating: 0, count: H), "dh cleared, H \(H)")
        }
    }

    /// The fused LSTM step (two passes over the gates) against the gates one after another,
    /// which the gradient checks cover: bit for bit, with hidden sizes that leave a tail.
    func testFusedLSTMStepIsTheGatesOneAfterAnother() {
        var rng = SeededRandom(seed: 5)
        for H in [1, 8, 13, 128] {
            // pre-activations as the sum of an input and a recurrent part, each in ±6
            let ax = (0..<4 * H).map { _ in Float(rng.nextUnitDouble() * 12 - 6) }
            let a0 = zip(ax, (0..<4 * H).map { _ in Float(rng.nextUnitDouble() * 12 - 6) }).map { $0 + $1 }
            let cPrev = (0..<H).map { _ in Float(rng.nextUnitDouble() * 4 - 2) }
            var fa = a0, fc = [Float](repeating: 0, count: H), fh = fc
            Float.lstmStep(&fa, hidden: H, cPrev: cPrev, c: &fc, h: &fh)
            // The reference: the protocol's generic default, which Double uses.
            var ra = a0, rc = [Float](repeating: 0, count: H), rh = rc
            sigmoidInPlace(&ra, count: 2 * H)
            ra.withUnsafeMutableBufferPointer { tanhInPlace($0.baseAddress! + 2 * H, count: H); sigmoidInPlace($0.baseAddress! + 3 * H, count: H) }
            for j in 0..<H { rc[j] = ra[H + j] * cPrev[j] + ra[j] * ra[2 * H + j] }
            rh = rc
            tanhInPlace(&rh, count: H)
            for j in 0..<H { rh[j] *= ra[3 * H + j] }
            XCTAssertEqual(fa, ra, "gates, H \(H)")
            XCTAssertEqual(fc, rc, "c, H \(H)")
            XCTAssertEqual(fh, rh, "h, H \(H)")
        }
    }
}
