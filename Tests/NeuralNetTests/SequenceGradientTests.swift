// The sequence layers' backward against finite differences through time (Double), with and
// without sequence lengths; and the promise behind lengths: what a layer returns for a sample
// does not depend on its padded steps.

@testable import NeuralNet
import TensorCore
import XCTest

extension GradientTests {
    func testEmbeddingGradientReachesTheRowsOfItsTokens() {
        let e = Embedding<Double>(inputShape: [5], vocabulary: 7, dim: 3)
        check(e, input: { Double($0.next() % 7) }, inputGradient: false)
    }

    func testPositionEmbeddingAndLayerNorm() {
        check(PositionEmbedding<Double>(inputShape: [4, 3]))
        check(LayerNorm<Double>(inputShape: [4, 5]))
        check(LayerNorm<Double>(inputShape: [6]))
    }

    func testRecurrentCellsThroughTime() {
        for kind in CellKind.allCases {
            for seq in [false, true] {
                for bi in [false, true] {
                    check(Recurrent<Double>(inputShape: [5, 3], kind: kind, units: 4, sequences: seq, bidirectional: bi))
                }
            }
        }
    }

    func testRecurrentCellsWithLengths() {
        // lengths 5 (full), 2, 0 (empty) and 1
        for kind in CellKind.allCases {
            for (seq, bi) in [(false, false), (true, false), (false, true), (true, true)] {
                check(Recurrent<Double>(inputShape: [5, 3], kind: kind, units: 3, sequences: seq, bidirectional: bi),
                      batch: 4, lengths: [5, 2, 0, 1])
            }
        }
    }

    func testRecurrentOnImageRows() {
        // 4 rows of 3×2 pixels: the trailing axes are the features
        check(Recurrent<Double>(inputShape: [4, 3, 2], kind: .lstm, units: 3, sequences: false, bidirectional: false))
    }

    func testSelfAttention() {
        check(SelfAttention<Double>(inputShape: [5, 4], heads: 2, causal: false))
        check(SelfAttention<Double>(inputShape: [5, 4], heads: 2, causal: true))
        check(SelfAttention<Double>(inputShape: [5, 6], heads: 3, causal: false), batch: 3, lengths: [5, 3, 0])
        check(SelfAttention<Double>(inputShape: [4, 4], heads: 1, causal: true), batch: 2, lengths: [2, 4])
    }

    func testTransformerBlock() {
        check(TransformerBlock<Double>(inputShape: [4, 4], heads: 2, hidden: 6, causal: false))
        check(TransformerBlock<Double>(inputShape: [5, 4], heads: 2, hidden: 3, causal: true), batch: 2, lengths: [5, 2])
    }

    func testTimePooling() {
        for kind in TimePoolKind.allCases {
            check(TimePool<Double>(inputShape: [5, 3], kind: kind))
            check(TimePool<Double>(inputShape: [5, 3], kind: kind), batch: 3, lengths: [5, 2, 0])
        }
    }
}

final class SequenceMaskTests: XCTestCase {
    /// Runs `layer` on a batch of 2 identical samples of length `length`, the second with its
    /// padded steps replaced by noise; returns both outputs, restricted to the real steps.
    func outputs(_ layer: Layer<Double>, length: Int, steps: Int, features: Int, realOutputRows: Bool, useLengths: Bool = true,
                 training: Bool = false) -> ([Double], [Double]) {
        var rng = SeededRandom(seed: 3)
        let P = layer.parameterCount
        let params = UnsafeMutablePointer<Double>.allocate(capacity: max(P, 1))
        let grads = UnsafeMutablePointer<Double>.allocate(capacity: max(P, 1))
        defer { params.deallocate(); grads.deallocate() }
        layer.bind(params: params, grads: grads)
        layer.initialize(&rng, init: .glorot)
        layer.reserve(batch: 2)
        var x = (0..<steps * features).map { _ in rng.nextGaussian() }
        var noisy = x
        for i in length * features..<steps * features { noisy[i] = rng.nextGaussian() * 10 }
        x += noisy
        let lens: [Int32] = [Int32(length), Int32(length)]
        var y = [Double](repeating: 0, count: 2 * layer.outputSize)
        lens.withUnsafeBufferPointer { lp in
            layer.lengths = useLengths ? lp.baseAddress : nil
            x.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer { yp in
                layer.forward(xp.baseAddress!, yp.baseAddress!, batch: 2, training: training, rng: &rng) } }
        }
        let per = layer.outputSize
        let keep = realOutputRows ? length * (per / steps) : per
        return (Array(y[0..<keep]), Array(y[per..<per + keep]))
    }

    func testPaddingDoesNotLeakIntoRecurrentStates() {
        // Both passes: inference has its own loop (Recurrent.inferDirection).
        for kind in CellKind.allCases {
            for bi in [false, true] {
                for training in [false, true] {
                    let last = outputs(Recurrent(inputShape: [6, 2], kind: kind, units: 3, sequences: false, bidirectional: bi),
                                       length: 4, steps: 6, features: 2, realOutputRows: false, training: training)
                    XCTAssertEqual(last.0, last.1, "\(kind) bidirectional=\(bi) training=\(training): last state")
                    let seq = outputs(Recurrent(inputShape: [6, 2], kind: kind, units: 3, sequences: true, bidirectional: bi),
                                      length: 4, steps: 6, features: 2, realOutputRows: true, training: training)
                    XCTAssertEqual(seq.0, seq.1, "\(kind) bidirectional=\(bi) training=\(training): sequence")
                }
            }
        }
    }

    /// Inference (its own loop: one or two GEMMs a step, no kept activations) computes what the
    /// training pass does, to rounding: every cell, both directions, sequences or the last
    /// state, samples of different lengths, padded steps' outputs 0.
    func testInferenceIsTheTrainingForwardPass() {
        for kind in CellKind.allCases {
            for bi in [false, true] {
                for seqs in [false, true] {
                    let l = Recurrent<Double>(inputShape: [5, 3], kind: kind, units: 9, sequences: seqs, bidirectional: bi)
                    var rng = SeededRandom(seed: 11)
                    let p = UnsafeMutablePointer<Double>.allocate(capacity: l.parameterCount)
                    let g = UnsafeMutablePointer<Double>.allocate(capacity: l.parameterCount)
                    defer { p.deallocate(); g.deallocate() }
                    l.bind(params: p, grads: g)
                    l.initialize(&rng, init: .pytorch)
                    let N = 3
                    let x = (0..<N * 5 * 3).map { _ in rng.nextGaussian() }
                    let lens: [Int32] = [5, 2, 4]
                    func run(_ training: Bool) -> [Double] {
                        var y = [Double](repeating: .nan, count: N * l.outputSize)
                        lens.withUnsafeBufferPointer { lp in
                            l.lengths = lp.baseAddress
                            x.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer { yp in
                                l.forward(xp.baseAddress!, yp.baseAddress!, batch: N, training: training, rng: &rng) } }
                        }
                        return y
                    }
                    let inferred = run(false), trained = run(true)
                    let worst = zip(inferred, trained).map { abs($0 - $1) }.max() ?? .nan
                    XCTAssertLessThan(worst, 1e-12, "\(kind) bidirectional=\(bi) sequences=\(seqs)")
                    XCTAssertTrue(inferred.allSatisfy(\.isFinite), "\(kind): every output written")
                    XCTAssertGreaterThan(inferred.map(abs).max() ?? 0, 0.01, "\(kind): not all zero")
                }
            }
        }
    }

    func testPaddingDoesNotLeakIntoAttentionOrPooling() {
        let a = outputs(SelfAttention(inputShape: [6, 4], heads: 2, causal: false), length: 3, steps: 6, features: 4, realOutputRows: true)
        XCTAssertEqual(a.0, a.1)
        let t = outputs(TransformerBlock(inputShape: [6, 4], heads: 2, hidden: 5, causal: false), length: 3, steps: 6, features: 4, realOutputRows: true)
        XCTAssertEqual(t.0, t.1)
        for kind in TimePoolKind.allCases {
            let p = outputs(TimePool(inputShape: [6, 4], kind: kind), length: 3, steps: 6, features: 4, realOutputRows: false)
            XCTAssertEqual(p.0, p.1, "timepool \(kind)")
        }
    }

    func testWithoutLengthsThePaddingIsRead() {
        // the control: without lengths the same noise must change the result
        let r = outputs(Recurrent(inputShape: [6, 2], kind: .lstm, units: 3, sequences: false, bidirectional: false),
                        length: 4, steps: 6, features: 2, realOutputRows: false, useLengths: false)
        XCTAssertNotEqual(r.0, r.1)
        let p = outputs(TimePool(inputShape: [6, 4], kind: .mean), length: 3, steps: 6, features: 4, realOutputRows: false, useLengths: false)
        XCTAssertNotEqual(p.0, p.1)
    }

    func testLSTMStepMatchesHandComputation() {
        // one unit, one feature, one step: every weight 0.5 except biases (0.1 each)
        let l = Recurrent<Double>(inputShape: [1, 1], kind: .lstm, units: 1, sequences: false, bidirectional: false)
        let p = UnsafeMutablePointer<Double>.allocate(capacity: l.parameterCount)
        let g = UnsafeMutablePointer<Double>.allocate(capacity: l.parameterCount)
        defer { p.deallocate(); g.deallocate() }
        // Wx[1×4], Wh[1×4], bx[4], bh[4]
        for i in 0..<8 { p[i] = 0.5 }
        for i in 8..<16 { p[i] = 0.1 }
        l.bind(params: p, grads: g)
        var rng = SeededRandom(seed: 1)
        var x = [2.0], y = [0.0]
        x.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer { yp in
            l.forward(xp.baseAddress!, yp.baseAddress!, batch: 1, training: false, rng: &rng) } }
        // pre-activation of every gate: 0.5·2 + 0.5·0 + 0.1 + 0.1 = 1.2
        let s = 1 / (1 + exp(-1.2)), c = s * tanh(1.2)
        XCTAssertEqual(y[0], s * tanh(c), accuracy: 1e-12)
    }
}
