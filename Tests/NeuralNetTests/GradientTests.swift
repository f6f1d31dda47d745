// Every layer's backward against central finite differences, in Double: shape first, then
// values; on failure the first elements and the largest difference are printed.

@testable import NeuralNet
import TensorCore
import XCTest

final class GradientTests: XCTestCase {
    /// Checks ∂L/∂x and ∂L/∂θ of `layer` for L = Σ w ⊙ layer(x), w random.
    /// `lengths` (one per sample) are the sequence lengths the layer is given; `input` makes
    /// the inputs (default Gaussian); `inputGradient: false` skips ∂L/∂x (token ids).
    func check(_ layer: Layer<Double>, batch: Int = 3, training: Bool = true, seed: UInt64 = 1, tolerance: Double = 1e-6,
               lengths: [Int32]? = nil, input: ((inout SeededRandom) -> Double)? = nil, inputGradient: Bool = true,
               file: StaticString = #filePath, line: UInt = #line) {
        let lens = UnsafeMutablePointer<Int32>.allocate(capacity: max(lengths?.count ?? 1, 1))
        defer { lens.deallocate() }
        if let lengths {
            precondition(lengths.count == batch)
            lens.update(from: lengths, count: batch)
            layer.lengths = UnsafePointer(lens)
        }
        var rng = SeededRandom(seed: seed)
        let P = layer.parameterCount
        let params = UnsafeMutablePointer<Double>.allocate(capacity: max(P, 1))
        let grads = UnsafeMutablePointer<Double>.allocate(capacity: max(P, 1))
        defer { params.deallocate(); grads.deallocate() }
        layer.bind(params: params, grads: grads)
        layer.initialize(&rng, init: .glorot)
        // Perturb the trainable parameters away from their init so biases and gammas matter.
        for i in 0..<layer.trainableCount { params[i] += rng.nextGaussian() * 0.3 }
        layer.reserve(batch: batch)
        let nIn = batch * layer.inputSize, nOut = batch * layer.outputSize
        var x = (0..<nIn).map { _ in input?(&rng) ?? rng.nextGaussian() }
        let w = (0..<nOut).map { _ in rng.nextGaussian() }
        var y = [Double](repeating: 0, count: nOut)
        var dx = [Double](repeating: 0, count: nIn)
        func loss() -> Double {
            var r = SeededRandom(seed: 99)  // the same dropout mask every time
            x.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer { yp in
                layer.forward(xp.baseAddress!, yp.baseAddress!, batch: batch, training: training, rng: &r) } }
            return zip(y, w).reduce(0) { $0 + $1.0 * $1.1 }
        }
        _ = loss()
        grads.update(repeating: 0, count: max(P, 1))
        x.withUnsafeBufferPointer { xp in y.withUnsafeBufferPointer { yp in w.withUnsafeBufferPointer { wp in dx.withUnsafeMutableBufferPointer { dxp in
            layer.backward(xp.baseAddress!, yp.baseAddress!, wp.baseAddress!, dxp.baseAddress!, batch: batch) } } } }
        XCTAssertEqual(dx.count, nIn, "input gradient shape", file: file, line: line)
        let h = 1e-5
        var worst = 0.0, worstAt = ""
        func compare(_ analytic: Double, _ numeric: Double, _ what: String) {
            let d = abs(analytic - numeric) / max(1, abs(numeric))
            if d > worst { worst = d; worstAt = "\(what): analytic \(analytic), numeric \(numeric)" }
        }
        for i in 0..<nIn where inputGradient {
            let old = x[i]
            x[i] = old + h; let lp = loss()
            x[i] = old - h; let lm = loss()
            x[i] = old
            compare(dx[i], (lp - lm) / (2 * h), "dx[\(i)]")
        }
        for i in 0..<layer.trainableCount {
            let old = params[i]
            params[i] = old + h; let lp = loss()
            params[i] = old - h; let lm = loss()
            params[i] = old
            compare(grads[i], (lp - lm) / (2 * h), "dθ[\(i)]")
        }
        XCTAssertLessThan(worst, tolerance, "\(type(of: layer)): largest relative difference at \(worstAt); dx[0..<4] = \(Array(dx.prefix(4)))", file: file, line: line)
    }

    func testDense() { check(Dense<Double>(inputShape: [7], units: 5)) }
    func testDenseOnImageInput() { check(Dense<Double>(inputShape: [3, 2, 2], units: 4)) }

    func testConv2DValidAndSameAndStrided() {
        check(Conv2D<Double>(inputShape: [5, 6, 2], filters: 3, kernel: (3, 3), stride: 1, padding: .valid))
        check(Conv2D<Double>(inputShape: [5, 6, 2], filters: 3, kernel: (3, 3), stride: 1, padding: .same))
        check(Conv2D<Double>(inputShape: [7, 6, 1], filters: 2, kernel: (3, 2), stride: 2, padding: .same))
        // One channel, padded after only: 'same' 3×3 stride 2 on 8×8, and 2×2 on 5×5.
        check(Conv2D<Double>(inputShape: [8, 8, 1], filters: 2, kernel: (3, 3), stride: 2, padding: .same))
        check(Conv2D<Double>(inputShape: [5, 5, 1], filters: 2, kernel: (2, 2), stride: 1, padding: .same))
        check(Conv2D<Double>(inputShape: [7, 7, 3], filters: 4, kernel: (1, 1), stride: 1, padding: .valid))
    }

    func testPooling() {
        check(Pool2D<Double>(inputShape: [6, 6, 2], kind: .max, size: 2, stride: 2))
        check(Pool2D<Double>(inputShape: [7, 5, 3], kind: .max, size: 2, stride: 2))  // a row and a column no window covers
        check(Pool2D<Double>(inputShape: [7, 5, 3], kind: .max, size: 3, stride: 2))
        check(Pool2D<Double>(inputShape: [6, 4, 2], kind: .average, size: 2, stride: 2))
        check(GlobalAveragePool<Double>(inputShape: [4, 3, 5]))
    }

    func testFlattenAndDropout() {
        check(Flatten<Double>(inputShape: [2, 3, 2]))
        check(Dropout<Double>(inputShape: [20], rate: 0.5))
        check(Dropout<Double>(inputShape: [20], rate: 0.3), training: false)
    }

    func testBatchNorm() {
        check(BatchNorm<Double>(inputShape: [4]), batch: 6)
        check(BatchNorm<Double>(inputShape: [3, 3, 2]), batch: 2)
        check(BatchNorm<Double>(inputShape: [5]), batch: 4, training: false)
    }

    func testActivations() {
        for k in ActivationKind.allCases {
            check(Activation<Double>(inputShape: [3, 4], kind: k, alpha: 0.1))
        }
    }

    func testLossGradientsAgainstFiniteDifferences() {
        var rng = SeededRandom(seed: 5)
        for task in [Task.classification, .binary, .regression] {
            let batch = 4, outs = task == .binary ? 1 : 3
            var z = (0..<batch * outs).map { _ in rng.nextGaussian() }
            let labels: [Int32] = task == .binary ? [0, 1, 1, 0] : [2, 0, 1, 2]
            let targets = (0..<batch * outs).map { _ in rng.nextGaussian() }
            var g = [Double](repeating: 0, count: z.count)
            func L() -> Double {
                var tmp = [Double](repeating: 0, count: z.count)
                return z.withUnsafeBufferPointer { zp in labels.withUnsafeBufferPointer { lp in targets.withUnsafeBufferPointer { tp in tmp.withUnsafeMutableBufferPointer { gp in
                    Loss.compute(task: task, output: zp.baseAddress!, batch: batch, outputs: outs, labels: lp.baseAddress!, targets: tp.baseAddress!, grad: gp.baseAddress!).loss } } } }
            }
            _ = z.withUnsafeBufferPointer { zp in labels.withUnsafeBufferPointer { lp in targets.withUnsafeBufferPointer { tp in g.withUnsafeMutableBufferPointer { gp in
                Loss.compute(task: task, output: zp.baseAddress!, batch: batch, outputs: outs, labels: lp.baseAddress!, targets: tp.baseAddress!, grad: gp.baseAddress!) } } } }
            for i in 0..<z.count {
                let old = z[i]
                z[i] = old + 1e-6; let lp = L()
                z[i] = old - 1e-6; let lm = L()
                z[i] = old
                XCTAssertEqual(g[i], (lp - lm) / 2e-6, accuracy: 1e-6, "\(task) dz[\(i)]")
            }
        }
        // Soft targets (no labels): rows summing to 1, to a little less and more, and one-hot.
        let batch = 4, outs = 3
        var z = (0..<batch * outs).map { _ in rng.nextGaussian() }
        let targets: [Double] = [0.2, 0.3, 0.5, 0.1, 0.2, 0.6995, 0, 0, 1, 0.4, 0.4, 0.2008]
        func L(_ grad: inout [Double]) -> Double {
            Loss.compute(task: .classification, output: z, batch: batch, outputs: outs, labels: nil, targets: targets, grad: &grad).loss
        }
        var g = [Double](repeating: 0, count: z.count), scratch = g
        _ = L(&g)
        for i in 0..<z.count {
            let old = z[i]
            z[i] = old + 1e-6; let lp = L(&scratch)
            z[i] = old - 1e-6; let lm = L(&scratch)
            z[i] = old
            XCTAssertEqual(g[i], (lp - lm) / 2e-6, accuracy: 1e-7, "soft targets dz[\(i)]")
        }
    }

    func testCrossEntropyValueMatchesHandComputation() {
        // logits (1, 2, 3), label 2: −log(e³ / (e + e² + e³)) = 0.40760596444…
        let z: [Double] = [1, 2, 3]
        var g = [Double](repeating: 0, count: 3)
        let labels: [Int32] = [2]
        let (loss, correct) = Loss.compute(task: .classification, output: z, batch: 1, outputs: 3, labels: labels, targets: nil, grad: &g)
        XCTAssertEqual(loss, 0.4076059644443803, accuracy: 1e-12)
        XCTAssertEqual(correct, 1)
    }

    /// A sample whose true class is far below the best counts its whole loss, as PyTorch's
    /// cross_entropy does: log p was capped at log(FLT_MIN), so every such sample counted 87.3.
    func testCrossEntropyOfAFarWrongSampleIsNotCapped() {
        let z: [Float] = [300, 0, -16, 1, 2, 3]  // labels 1 and 0: losses 300 and 2.41
        var g = [Float](repeating: 0, count: 6)
        let sparse = Loss.compute(task: .classification, output: z, batch: 2, outputs: 3, labels: [1, 0], targets: nil, grad: &g)
        let second = 1 - 3 - Foundation.log(Foundation.exp(-2.0) + Foundation.exp(-1.0) + 1)
        XCTAssertEqual(sparse.loss, (300 - second) / 2, accuracy: 1e-4)
        let onehot = Loss.compute(task: .classification, output: z, batch: 2, outputs: 3, labels: nil, targets: [0, 1, 0, 1, 0, 0], grad: &g)
        XCTAssertEqual(onehot.loss, sparse.loss, accuracy: 1e-4)
        // The gradient is softmax − one-hot, as before.
        XCTAssertEqual(g[0], 0.5, accuracy: 1e-6)
        XCTAssertEqual(g[1], -0.5, accuracy: 1e-6)
    }
}
