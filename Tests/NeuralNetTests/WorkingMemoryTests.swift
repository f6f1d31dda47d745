// The working-memory estimates that fit and predict check before allocating: a network or batch
// the machine cannot hold is refused with a message (an allocation failure was a trap), and
// predict runs fewer samples a pass when the memory is short.

@testable import NeuralNet
import Compute
import TensorCore
import TensorStream
import XCTest

final class WorkingMemoryTests: XCTestCase {
    override func setUp() {
        XCTAssertNil(OpenBLAS.load())
    }

    func model(_ preset: String = "mnist-cnn") throws -> Model {
        let m = try Model(architecture: Architecture.presets[preset]!, inputShape: [28, 28, 1], inputField: "x", inputDType: .f32,
                          targetField: "y", classes: (0..<10).map(String.init), task: .classification, optimizer: OptimizerConfig())
        m.network.initialize(seed: 1)
        return m
    }

    func testPredictionRunsFewerSamplesAPassWhenMemoryIsShortAndRefusesWhenOneDoesNotFit() throws {
        let m = try model()
        let schema = Schema(fields: [Field(name: "x", dtype: .f32, shape: Shape([28, 28, 1]))])
        let one = m.network.workingBytes(batch: 1, training: false)
        // conv1's output alone is 26·26·32 values a sample
        XCTAssertGreaterThan(one, Double(26 * 26 * 32 * 4))
        XCTAssertThrowsError(try Predictor(model: m, schema: schema, input: "data", modelName: "m.model", memory: one * 0.9)) { e in
            let d = e as? WorkingMemoryError
            XCTAssertEqual(d?.location, "m.model")
            XCTAssertEqual(d?.kind, .internal)
            XCTAssertTrue(d?.problem.contains("of working memory") == true, "\(String(describing: d?.problem))")
        }
        XCTAssertThrowsError(try Predictor(model: m, schema: schema, input: "data", threads: 2, memory: one * 1.5), "two replicas need two samples' room")
        // and the second replica's gradients (a replica is made only once its room is asked for)
        let grads = Double(m.network.parameterCount) * 4
        XCTAssertThrowsError(try Predictor(model: m, schema: schema, input: "data", threads: 2, memory: 2 * one + grads * 0.9), "a replica's gradients")
        XCTAssertNoThrow(try Predictor(model: m, schema: schema, input: "data", threads: 2, memory: 2 * one + grads * 1.1))
        let roomy = try Predictor(model: m, schema: schema, input: "data")
        let tight = try Predictor(model: m, schema: schema, input: "data", memory: one * 1.5)
        XCTAssertEqual(roomy.samplesPerPass, Predictor.chunk)
        XCTAssertEqual(tight.samplesPerPass, 1)
        // The same probabilities, a sample at a time.
        let n = 20
        var rng = SeededRandom(seed: 3)
        let x = (0..<n * 784).map { _ in rng.nextUnitFloat() }
        var yhat = [Int64](repeating: 0, count: n)
        func run(_ p: Predictor) throws -> [Float] {
            try x.withUnsafeBytes { xb in
                try yhat.withUnsafeMutableBytes { yb in
                    let out = try p.run(xb, dtype: .f32, count: n, firstSample: 0, name: "data", yhat: yb.baseAddress!)
                    return Array(UnsafeBufferPointer(start: out, count: n * 10))
                }
            }
        }
        let a = try run(roomy), b = try run(tight)
        for i in a.indices { XCTAssertEqual(a[i], b[i], accuracy: 1e-6, "sample \(i / 10)") }
    }

    func testTrainingNeedsGrowWithTheBatchAndThePassNotTheWholeBatchOfActivations() throws {
        let m = try model()
        let net = m.network
        let small = Trainer.workingBytes(model: m, batchSize: 32, threads: 1)
        let large = Trainer.workingBytes(model: m, batchSize: 60_000, threads: 1)
        // Each sample is held (784 inputs and its targets); activations only for a pass of 8.
        XCTAssertEqual(large - small, Double(60_000 - 32) * Double(784 + 2 * 10 + 2) * 4, accuracy: 1)
        // Beyond them: one pass's buffers, and the optimizer's two moments (not yet made).
        let moments = Double(net.parameterCount) * 4 * 2
        XCTAssertEqual(small - Double(32) * Double(784 + 2 * 10 + 2) * 4 - moments, net.workingBytes(batch: Shard.microBatch, training: true), accuracy: 1)
        // Two threads: two replicas, each with its pass.
        XCTAssertGreaterThan(Trainer.workingBytes(model: m, batchSize: 32, threads: 2), small)
        // Training holds more than inference: gradients.
        XCTAssertGreaterThan(net.workingBytes(batch: 8, training: true), net.workingBytes(batch: 8, training: false))
    }

    func testAnAttentionLayerCountsItsScoresPerHead() throws {
        let seq = { (heads: Int) in
            try Network<Float>(specs: Architecture.resolve(try Architecture.parse("attention \(heads); timepool mean; dense classes"), vocabulary: 0),
                               inputShape: [4096, 8], classes: 2, task: .classification)
        }
        let one = try seq(1).workingBytes(batch: 1, training: false), two = try seq(2).workingBytes(batch: 1, training: false)
        XCTAssertEqual(two - one, 4096 * 4096 * 4, accuracy: 1, "a head's S×S scores")
    }
}
