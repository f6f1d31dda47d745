// A sequential network: layers built from specs and a per-sample input shape, all parameters
// in one contiguous buffer (gradients in a second of the same layout), activations in buffers
// owned by the network and reused for every batch of up to `capacity` samples.

import Compute
import Foundation
import TensorCore

/// What the network's output means, and so which loss trains it.
public enum Task: String, Sendable {
    /// Class scores → softmax cross-entropy; the output head is softmax.
    case classification
    /// One score → sigmoid binary cross-entropy.
    case binary
    /// Values → mean squared error.
    case regression
}

public final class Network<T: Real> {
    public let specs: [LayerSpec]
    public let layers: [Layer<T>]
    public let inputShape: [Int]
    public let task: Task
    public let parameterCount: Int
    /// (start, trainable count) of each layer's slice.
    let slices: [(start: Int, trainable: Int)]
    public let params: UnsafeMutablePointer<T>
    public let grads: UnsafeMutablePointer<T>
    private var outputs: [Scratch<T>]
    /// Per layer: a ReLU that the max pooling right after it computes instead, in training as
    /// in inference. ReLU then max pooling equals max pooling then ReLU (ReLU is monotone), the
    /// ReLU then runs over a quarter of the values (2×2), and the gradient is the same to the
    /// bit: the pooling routes it to the same position, and it passes where the pooled value is
    /// positive, that is where that position's input is.
    private let reluInPooling: [Bool]
    private let deltaA = Scratch<T>(), deltaB = Scratch<T>()
    /// Room the backward pass needs in each delta buffer; allocated on the first backward.
    private var deltaSize = 0
    public private(set) var capacity = 0

    public var inputSize: Int { inputShape.reduce(1, *) }
    public var outputSize: Int { layers.last.map(\.outputSize) ?? inputSize }

    /// Builds the layers. A trailing softmax (classification) or sigmoid (binary) is the output
    /// head: the loss applies it, fused; `classes` replaces "dense classes".
    private let ownsParameters: Bool
    public let classCount: Int

    /// With `expectedParameters`, a network of another size is refused (`ParameterCountMismatch`)
    /// before its buffers are allocated: a model file's weights are checked against its
    /// architecture without trusting the architecture's size.
    public convenience init(specs: [LayerSpec], inputShape: [Int], classes: Int, task: Task, expectedParameters: Int? = nil) throws {
        try self.init(specs: specs, inputShape: inputShape, classes: classes, task: task, sharing: nil, expectedParameters: expectedParameters)
    }

    /// Whether a layer reads the per-sample sequence lengths (the stream's length field).
    public var usesLengths: Bool {
        layers.contains { $0 is Recurrent<T> || $0 is SelfAttention<T> || $0 is TransformerBlock<T> || $0 is TimePool<T> }
    }

    /// The vocabulary size of the first layer when it is an embedding (its input is token ids).
    public var tokenVocabulary: Int? { (layers.first as? Embedding<T>)?.vocabulary }

    /// Index of the first input value that is not a token id of the embedding's vocabulary.
    public func invalidToken(_ x: UnsafePointer<Float>, count: Int) -> Int? {
        guard let v = tokenVocabulary else { return nil }
        return firstInvalidToken(x, count: count, vocabulary: v)
    }

    /// A replica for data-parallel training: the same layers over the same parameters
    /// (shared, not copied), with gradients and activations of its own.
    public func replica() -> Network<T> {
        // The specs were valid for this network, so they are for its replica.
        try! Network(specs: specs, inputShape: inputShape, classes: classCount, task: task, sharing: params)  // trap-ok: same specs
    }

    init(specs: [LayerSpec], inputShape: [Int], classes: Int, task: Task, sharing: UnsafeMutablePointer<T>?, expectedParameters: Int? = nil) throws {
        self.specs = specs
        classCount = classes
        self.inputShape = inputShape
        self.task = task
        var body = specs
        if let last = body.last, case .activation(let a, _) = last, (a == .softmax && task == .classification) || (a == .sigmoid && task == .binary) {
            body.removeLast()
        }
        // A network being designed (not one read back from a model file, which trained as it
        // is, nor a replica) is also refused outputs that could not be what was meant.
        let designing = expectedParameters == nil && sharing == nil
        var shape = inputShape
        var ls: [Layer<T>] = []
        var line = 0
        var current = body.first
        func fail(_ m: String) -> ArchitectureError {
            ArchitectureError(line: line, message: m, layer: current.map { Architecture.text([$0]).trimmingCharacters(in: .newlines) })
        }
        for s in body {
            line += 1
            current = s
            let l: Layer<T>
            switch s {
            case .dense(let u):
                l = Dense(inputShape: shape, units: u)
            case .denseClasses:
                guard classes > 0 else { throw fail("'dense classes' needs a class count from the data") }
                l = Dense(inputShape: shape, units: classes)
            case .conv(let f, let kh, let kw, let st, let p):
                guard shape.count == 3 else { throw fail("conv needs an H×W×C input, got \(shape.map(String.init).joined(separator: "×"))") }
                guard p == .same || (kh <= shape[0] && kw <= shape[1]) else { throw fail("kernel \(kh)x\(kw) larger than its \(shape[0])×\(shape[1]) input") }
                l = Conv2D(inputShape: shape, filters: f, kernel: (kh, kw), stride: st, padding: p)
            case .pool(let k, let size, let st):
                guard shape.count == 3 else { throw fail("pooling needs an H×W×C input") }
                guard size <= shape[0], size <= shape[1] else { throw fail("pool \(size) larger than its \(shape[0])×\(shape[1]) input") }
                l = Pool2D(inputShape: shape, kind: k == "max" ? .max : .average, size: size, stride: st)
            case .globalAveragePool:
                guard shape.count == 3 else { throw fail("globalavgpool needs an H×W×C input") }
                l = GlobalAveragePool(inputShape: shape)
            case .flatten:
                l = Flatten(inputShape: shape)
            case .dropout(let r):
                l = Dropout(inputShape: shape, rate: r)
            case .batchNorm:
                l = BatchNorm(inputShape: shape)
            case .activation(let a, let alpha):
                if designing && a == .softmax && shape.last == 1 {
                    throw fail("a softmax over one value is always 1" + (task == .binary ? "; a binary classifier ends in 'dense 1' (its sigmoid is the loss's)" : ""))
                }
                // Squashed before the loss's own softmax or sigmoid, the outputs are bounded, and
                // no probability could come near 1 (ten classes after a sigmoid: at most 0.23).
                if designing && line == body.count && task != .regression && [.sigmoid, .tanh, .softmax].contains(a) {
                    let own = task == .binary ? "sigmoid" : "softmax"
                    throw fail("\(a.rawValue) before the loss's own \(own) bounds the outputs, so no probability could come near 1; end the network in its dense layer" + (task == .classification ? " (or 'softmax')" : " (or 'sigmoid')"))
                }
                l = Activation(inputShape: shape, kind: a, alpha: alpha)
            case .embedding(let v, let d):
                guard let v else { throw fail("embedding needs a vocabulary size: vocab=V, or token data from tensor-load --text") }
                guard line == 1 else { throw fail("embedding must be the first layer (its input is token ids)") }
                l = Embedding(inputShape: shape, vocabulary: v, dim: d)
            case .position:
                l = PositionEmbedding(inputShape: shape)
            case .recurrent(let k, let u, let seq, let bi):
                guard shape.count >= 2 else { throw fail("\(k.rawValue) needs a sequence input (steps × features), got \(shape.map(String.init).joined(separator: "×"))") }
                l = Recurrent(inputShape: shape, kind: k, units: u, sequences: seq, bidirectional: bi)
            case .layerNorm:
                l = LayerNorm(inputShape: shape)
            case .attention(let h, let c):
                guard shape.count >= 2 else { throw fail("attention needs a sequence input (steps × features), got \(shape.map(String.init).joined(separator: "×"))") }
                let d = shape.dropFirst().reduce(1, *)
                guard d % h == 0 else { throw fail("attention: \(d) features do not split into \(h) heads") }
                l = SelfAttention(inputShape: shape, heads: h, causal: c)
            case .transformer(let h, let f, let c):
                guard shape.count >= 2 else { throw fail("transformer needs a sequence input (steps × features), got \(shape.map(String.init).joined(separator: "×"))") }
                let d = shape.dropFirst().reduce(1, *)
                guard d % h == 0 else { throw fail("transformer: \(d) features do not split into \(h) heads") }
                l = TransformerBlock(inputShape: shape, heads: h, hidden: f, causal: c)
            case .timePool(let k):
                guard shape.count >= 2 else { throw fail("timepool needs a sequence input (steps × features), got \(shape.map(String.init).joined(separator: "×"))") }
                l = TimePool(inputShape: shape, kind: k)
            }
            guard checkedProduct(l.outputShape, limit: 1 << 28) != nil else { throw fail("output of \(l.outputShape) values per sample is too large") }
            shape = l.outputShape
            ls.append(l)
        }
        layers = ls
        reluInPooling = ls.indices.map { i in
            guard i + 1 < ls.count, let a = ls[i] as? Activation<T>, a.kind == .relu, let p = ls[i + 1] as? Pool2D<T>, p.kind == .max else { return false }
            p.reluAfter = true
            return true
        }
        let out = ls.last?.outputSize ?? inputShape.reduce(1, *)
        switch task {
        case .classification:
            if out < 2 { throw fail("a classifier needs at least 2 outputs, this network has \(out)") }
            // Each label indexes an output: one per class, no more and no fewer.
            if classes > 0, out != classes { throw fail("the network ends in \(out) outputs but the data has \(classes) classes; end it with 'dense classes'") }
        case .binary: if out != 1 { throw fail("a binary classifier needs 1 output, this network has \(out)") }
        case .regression: break
        }
        var total = 0
        var sl: [(Int, Int)] = []
        for (i, l) in ls.enumerated() {
            if ls.count == body.count { (current, line) = (body[i], i + 1) }  // name the layer that overflows
            sl.append((total, l.trainableCount))
            guard let t = checkedAdd(total, l.parameterCount), t <= 1 << 30 else { throw fail("more than 2^30 parameters") }
            total = t
        }
        if let e = expectedParameters, e != max(total, 1) { throw ParameterCountMismatch(architecture: total) }
        // The weights and gradients are asked for before they are allocated: a network within
        // the 2^30 bound can still be more than the process may hold, and a failed allocation
        // traps. A replica's gradients are counted by its maker (Trainer.workingBytes,
        // Predictor), which asks before making it: replica() cannot fail.
        let own = Double(max(total, 1)) * Double(MemoryLayout<T>.stride) * 2
        if sharing == nil, own > Double(64 << 20) {
            let room = SystemMemory.available()
            if own > room { throw ParameterMemoryError(parameters: total, need: own, room: room) }
        }
        slices = sl
        parameterCount = total
        ownsParameters = sharing == nil
        // calloc: zeroed pages the kernel maps on first write, so a network refused before
        // it is initialized (fit's working-memory check) has cost no time writing them.
        params = sharing ?? Self.zeroed(max(total, 1))
        grads = Self.zeroed(max(total, 1))
        for (l, s) in zip(ls, sl) {
            l.bind(params: params + s.0, grads: grads + s.0)
            (l as? BatchNorm<T>)?.updatesRunningStatistics = sharing == nil
        }
        outputs = ls.map { _ in Scratch<T>() }
    }

    deinit {
        if ownsParameters { free(params) }
        free(grads)
    }

    private static func zeroed(_ n: Int) -> UnsafeMutablePointer<T> {
        // The size was asked for above (own > room) when large; `allocate`, used before, trapped
        // on a failure the same way.
        guard let raw = calloc(n, MemoryLayout<T>.stride) else { fatalError("calloc of \(n) parameters failed") }  // trap-ok: room asked for first
        return raw.bindMemory(to: T.self, capacity: n)
    }

    /// Initializes every parameter from `seed`.
    public func initialize(seed: UInt64, scheme: InitScheme = .glorot) {
        var rng = SeededRandom(seed: seed)
        for l in layers { l.initialize(&rng, init: scheme) }
    }

    /// About how many bytes the buffers of batches of `n` take: every layer's output, the two
    /// gradient buffers of the backward pass, and the layers' own work buffers.
    public func workingBytes(batch n: Int, training: Bool) -> Double {
        let b = Double(n)
        var values = 0.0, widest = Double(inputSize)
        for (i, l) in layers.enumerated() {
            if !reluInPooling[i] { values += b * Double(l.outputSize) }
            values += l.workingValues(batch: b, training: training)
            widest = max(widest, Double(l.outputSize))
        }
        if training { values += 2 * b * widest }
        return values * Double(MemoryLayout<T>.stride)
    }

    /// Makes every buffer large enough for batches of `n`.
    @_specialize(where T == Float)
    public func reserve(batch n: Int) {
        guard n > capacity else { return }
        var maxSize = inputSize
        for (i, l) in layers.enumerated() {
            if !reluInPooling[i] { outputs[i].reserve(n * l.outputSize) }
            l.reserve(batch: n)
            maxSize = max(maxSize, l.outputSize)
        }
        deltaSize = n * maxSize
        capacity = n
    }

    /// Runs the layers; returns the pre-head output (logits for classifiers), `batch × outputSize`.
    @discardableResult
    @_specialize(where T == Float)
    public func forward(_ x: UnsafePointer<T>, batch: Int, training: Bool, rng: inout SeededRandom,
                        lengths: UnsafePointer<Int32>? = nil) -> UnsafePointer<T> {
        reserve(batch: batch)
        var input = x
        var i = 0
        while i < layers.count {
            let l = layers[i]
            l.lengths = lengths
            if reluInPooling[i] { i += 1; continue }  // the pooling's input is this ReLU's
            l.forward(input, outputs[i].pointer, batch: batch, training: training, rng: &rng)
            input = UnsafePointer(outputs[i].pointer)
            i += 1
        }
        return input
    }

    @_specialize(where T == Float)
    public func zeroGradients() { grads.update(repeating: 0, count: parameterCount) }

    /// Backpropagates `dOut` (∂L/∂output of the last forward) and accumulates parameter gradients.
    @_specialize(where T == Float)
    public func backward(_ x: UnsafePointer<T>, dOut: UnsafePointer<T>, batch: Int) {
        deltaA.reserve(deltaSize)
        deltaB.reserve(deltaSize)
        var dy = dOut
        var useA = true
        for i in stride(from: layers.count - 1, through: 0, by: -1) where !reluInPooling[i] {
            let l = layers[i]
            let below = i > 0 && reluInPooling[i - 1] ? i - 2 : i - 1  // the layer whose output this one read
            let input = below < 0 ? x : UnsafePointer(outputs[below].pointer)
            let dx: UnsafeMutablePointer<T>? = below < 0 ? nil : (useA ? deltaA.pointer : deltaB.pointer)
            l.backward(input, UnsafePointer(outputs[i].pointer), dy, dx, batch: batch)
            if let dx { dy = UnsafePointer(dx) }
            useA.toggle()
        }
    }

    /// Ranges of trainable parameters, for the optimizer.
    public var trainableRanges: [Range<Int>] { slices.map { $0.start..<$0.start + $0.trainable } }
}

/// The loss of a batch and its gradient with respect to the network's output.
public enum Loss {
    /// log softmax(z)[j], given p = softmax(z)[j]: log p while p is a normal float, else from
    /// the logits (log p was capped at log(FLT_MIN) = −87.3, so a sample far wrong counted 87).
    @inline(__always)
    static func logProbability<T: Real>(_ z: UnsafePointer<T>, _ j: Int, cols: Int, p: T) -> Double {
        if p > T(1e-30) { return Double(T.log(p)) }
        var m = z[0]
        for i in 1..<cols where z[i] > m { m = z[i] }
        var s: T = 0
        for i in 0..<cols { s += T.exp(z[i] - m) }
        return Double(z[j] - m) - Double(T.log(s))
    }

    /// Mean loss over the batch; writes ∂L/∂output into `grad` and counts correct predictions.
    /// `labels` holds class indices (classification, binary as 0/1) and `targets` values
    /// (regression, `batch × outputs`); a classifier given no labels but targets reads them as
    /// one-hot (or soft) class distributions.
    @_specialize(where T == Float)
    public static func compute<T: Real>(task: Task, output: UnsafePointer<T>, batch: Int, outputs: Int,
                                        labels: UnsafePointer<Int32>?, targets: UnsafePointer<T>?,
                                        grad: UnsafeMutablePointer<T>) -> (loss: Double, correct: Int) {
        let invN = 1 / T(batch)
        var loss = 0.0, correct = 0
        switch task {
        case .classification:
            softmaxRows(output, grad, rows: batch, cols: outputs)
            if labels == nil, let t = targets {
                // One-hot (or soft) targets: L = −Σ t·log p, ∂L/∂z = p·Σt − t (p − t when the
                // row sums to 1, as fit requires to within 1e-3; exact for any row, as PyTorch).
                for n in 0..<batch {
                    let row = grad + n * outputs, tr = t + n * outputs
                    var best = 0, truth = 0
                    var sum: T = 0
                    for j in 0..<outputs {
                        if row[j] > row[best] { best = j }
                        if tr[j] > tr[truth] { truth = j }
                        sum += tr[j]
                        if tr[j] != 0 { loss -= Double(tr[j]) * logProbability(output + n * outputs, j, cols: outputs, p: row[j]) }
                    }
                    if best == truth { correct += 1 }
                    for j in 0..<outputs { row[j] = (row[j] * sum - tr[j]) * invN }
                }
                return (loss / Double(batch), correct)
            }
            for n in 0..<batch {
                let row = grad + n * outputs
                let k = Int(labels![n])
                var best = 0
                for j in 1..<outputs where row[j] > row[best] { best = j }
                if best == k { correct += 1 }
                loss -= logProbability(output + n * outputs, k, cols: outputs, p: row[k])
                row[k] -= 1
                for j in 0..<outputs { row[j] *= invN }
            }
        case .binary:
            for n in 0..<batch {
                let z = output[n], y = T(labels![n])
                // Stable BCE with logits: max(z,0) − z·y + log(1 + e^−|z|).
                loss += Double(max(z, 0) - z * y + T.log(1 + T.exp(-abs(z))))
                let p = sigmoid(z)
                if (p >= T(0.5)) == (labels![n] == 1) { correct += 1 }
                grad[n] = (p - y) * invN
            }
        case .regression:
            let m = batch * outputs
            for i in 0..<m {
                let d = output[i] - targets![i]
                loss += Double(d * d)
                grad[i] = 2 * d / T(m)
            }
            return (loss / Double(m), 0)
        }
        return (loss / Double(batch), correct)
    }

    /// The served output: probabilities for classifiers, values for regression.
    @_specialize(where T == Float)
    public static func head<T: Real>(task: Task, output: UnsafePointer<T>, batch: Int, outputs: Int, into p: UnsafeMutablePointer<T>) {
        switch task {
        case .classification: softmaxRows(output, p, rows: batch, cols: outputs)
        case .binary: for n in 0..<batch { p[n] = sigmoid(output[n]) }
        case .regression: p.update(from: output, count: batch * outputs)
        }
    }
}

/// Index of the first value that is not an integer in 0..<vocabulary.
public func firstInvalidToken(_ x: UnsafePointer<Float>, count: Int, vocabulary v: Int) -> Int? {
    for i in 0..<count {
        let t = x[i]
        if !(t >= 0 && t < Float(v)) || t.rounded(.towardZero) != t { return i }
    }
    return nil
}

/// Element `i` of a payload as the data holds it, for a message: an integer as an integer
/// (its f32 copy printed 28 as 28.0, and 2147483647 as 2.1474836e+09).
public func elementText(_ p: UnsafeRawPointer, _ i: Int, dtype: DType) -> String {
    if let v = p.integerElement(i, dtype) { return String(v) }
    return dtype == .f64 ? decimalText(p.loadUnaligned(fromByteOffset: 8 * i, as: Double.self)) : decimalText(p.loadUnaligned(fromByteOffset: 4 * i, as: Float.self))
}

/// The weights of a model file do not fit its architecture, which has this many parameters.
public struct ParameterCountMismatch: Error {
    public let architecture: Int
}
