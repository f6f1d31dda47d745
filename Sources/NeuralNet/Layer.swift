// The layer contract. forward caches what backward needs; backward(dy) writes the input
// gradient and adds into the layer's own parameter gradients (zeroing is the model's job).
// Parameters live in the model's one contiguous buffer; a layer is handed its slice by `bind`.
// Legend for shapes: N batch, H height, W width, C channels (channels-last), F filters.

import Compute
import TensorCore

/// One layer of a sequential network, computing in `T`.
public class Layer<T: Real> {
    /// Per-sample input and output shapes.
    public let inputShape: [Int]
    public internal(set) var outputShape: [Int]
    public var inputSize: Int { inputShape.reduce(1, *) }
    public var outputSize: Int { outputShape.reduce(1, *) }

    /// Parameters this layer owns, in the model's buffer.
    var params: UnsafeMutablePointer<T>!
    var grads: UnsafeMutablePointer<T>!

    /// Per-sample sequence lengths of the current batch (the stream's length field), set by
    /// the network before each forward; nil means every sequence fills its steps. Layers over
    /// time honour it so that padding never reaches their result.
    var lengths: UnsafePointer<Int32>?

    /// Sample `n`'s length, clamped to 0…`steps`.
    @inline(__always)
    func length(_ n: Int, steps: Int) -> Int {
        guard let lengths else { return steps }
        return min(max(Int(lengths[n]), 0), steps)
    }

    /// Whether the layer must see a whole shard at once (batch statistics, or per-step GEMMs
    /// that micro-batches would make too thin).
    var wholeBatch: Bool { false }

    init(inputShape: [Int], outputShape: [Int]) {
        self.inputShape = inputShape
        self.outputShape = outputShape
    }

    /// Number of parameters (trainable and not).
    public var parameterCount: Int { 0 }
    /// Leading parameters that the optimizer updates; the rest (running statistics) it leaves.
    public var trainableCount: Int { parameterCount }

    func bind(params: UnsafeMutablePointer<T>, grads: UnsafeMutablePointer<T>) {
        self.params = params
        self.grads = grads
    }

    func initialize(_ rng: inout SeededRandom, init scheme: InitScheme) {}

    /// Makes room in work buffers for `batch` samples.
    func reserve(batch: Int) {}

    /// About how many values the layer's own work buffers hold for `batch` samples (its output
    /// is the network's to count), for the working-memory check before any is allocated. In
    /// Double: a hostile architecture's count need not fit an Int.
    func workingValues(batch n: Double, training: Bool) -> Double { 0 }

    func forward(_ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>, batch: Int, training: Bool, rng: inout SeededRandom) {
        fatalError("forward not implemented")  // trap-ok: abstract method
    }

    /// `dx` is nil for the first layer (no input gradient needed).
    func backward(_ x: UnsafePointer<T>, _ y: UnsafePointer<T>, _ dy: UnsafePointer<T>, _ dx: UnsafeMutablePointer<T>?, batch: Int) {
        fatalError("backward not implemented")  // trap-ok: abstract method
    }
}

/// Weight initialization.
public enum InitScheme: String, Sendable {
    /// Glorot (Xavier) uniform, Keras's default: U(±√(6/(fanIn+fanOut))).
    case glorot
    /// He normal: N(0, 2/fanIn), for ReLU networks.
    case he
    /// PyTorch's default for Linear and Conv2d: weights and biases U(±1/√fanIn).
    case pytorch
}

func initWeights<T: Real>(_ p: UnsafeMutablePointer<T>, count: Int, fanIn: Int, fanOut: Int, scheme: InitScheme, rng: inout SeededRandom) {
    switch scheme {
    case .glorot:
        let limit = (6.0 / Double(fanIn + fanOut)).squareRoot()
        for i in 0..<count { p[i] = T((rng.nextUnitDouble() * 2 - 1) * limit) }
    case .he:
        let sd = (2.0 / Double(fanIn)).squareRoot()
        for i in 0..<count { p[i] = T(rng.nextGaussian() * sd) }
    case .pytorch:
        let limit = 1 / Double(fanIn).squareRoot()
        for i in 0..<count { p[i] = T((rng.nextUnitDouble() * 2 - 1) * limit) }
    }
}

/// Bias initialization: zeros, except PyTorch's U(±1/√fanIn).
func initBias<T: Real>(_ p: UnsafeMutablePointer<T>, count: Int, fanIn: Int, scheme: InitScheme, rng: inout SeededRandom) {
    if scheme == .pytorch {
        initWeights(p, count: count, fanIn: fanIn, fanOut: 0, scheme: .pytorch, rng: &rng)
    } else {
        p.update(repeating: 0, count: count)
    }
}

/// A growable scratch buffer of `T`, owned by a layer and reused across batches.
final class Scratch<T: Real> {
    private(set) var pointer: UnsafeMutablePointer<T>
    private(set) var capacity: Int

    init() {
        capacity = 1
        pointer = .allocate(capacity: 1)
    }

    deinit { pointer.deallocate() }

    func reserve(_ n: Int) {
        guard n > capacity else { return }
        pointer.deallocate()
        pointer = .allocate(capacity: n)
        capacity = n
    }
}
