// Training data held in memory as Float, the training loop (shuffled mini-batches, fused loss,
// one optimizer step per batch), evaluation, and conversion of any numeric field to Float.
// The loop allocates nothing per batch: the network owns its buffers, the trainer its batch.

import Foundation
import Compute
import TensorCore
import TensorStream

/// Converts `count` elements of `dtype` at `p` to Float; returns the index of the first
/// value that is not a finite Float (NaN, an infinity, or an f64 beyond f32's range), if any.
public func convertToFloat(_ p: UnsafeRawPointer, dtype: DType, count: Int, into out: UnsafeMutablePointer<Float>) -> Int? {
    switch dtype {
    case .u8: let s = p.assumingMemoryBound(to: UInt8.self); for i in 0..<count { out[i] = Float(s[i]) }
    case .i8, .i16, .i32, .i64: for i in 0..<count { out[i] = Float(p.element(i, dtype)) }
    case .f32:
        out.update(from: p.assumingMemoryBound(to: Float.self), count: count)
        for i in 0..<count where !out[i].isFinite { return i }
    case .f64:
        for i in 0..<count {
            let v = Float(p.loadUnaligned(fromByteOffset: 8 * i, as: Double.self))
            guard v.isFinite else { return i }  // 1e300 becomes inf
            out[i] = v
        }
    }
    return nil
}

/// Why element `i` of `dtype` at `p` was refused by `convertToFloat`, for "sample N holds …".
public func nonFiniteValue(_ p: UnsafeRawPointer, dtype: DType, at i: Int) -> String {
    guard dtype == .f64 else { return "a NaN or infinity" }
    let v = p.loadUnaligned(fromByteOffset: 8 * i, as: Double.self)
    return v.isFinite ? "\(v), beyond the range of f32 (±3.4e38)" : "a NaN or infinity"
}

func allFinite(_ p: UnsafePointer<Float>, count: Int) -> Bool {
    for i in 0..<count where !p[i].isFinite { return false }
    return true
}

/// Reads integer labels; returns the index and value of the first one outside 0..<classes.
func convertLabels(_ p: UnsafeRawPointer, dtype: DType, count: Int, classes: Int, into out: UnsafeMutablePointer<Int32>) -> (Int, Int64)? {
    for i in 0..<count {
        guard let v = p.integerElement(i, dtype) else { return (i, -1) }
        guard v >= 0, v < Int64(classes) else { return (i, v) }
        out[i] = Int32(v)
    }
    return nil
}

/// Reads sequence lengths; returns the index and value of the first one outside 0…steps.
public func convertLengths(_ p: UnsafeRawPointer, dtype: DType, count: Int, steps: Int, into out: UnsafeMutablePointer<Int32>) -> (Int, Int64)? {
    for i in 0..<count {
        guard let v = p.integerElement(i, dtype) else { return (i, -1) }
        guard v >= 0, v <= Int64(steps) else { return (i, v) }
        out[i] = Int32(v)
    }
    return nil
}

/// The index of the length field `name` in `schema`, which must hold one integer per sample.
func lengthFieldIndex(_ schema: Schema, _ name: String, source: String) throws -> Int {
    guard let i = schema.index(of: name) else {
        throw ModelError(source, "no field '\(name)', the sequence lengths the model reads (fields: \(schema.fields.map(\.name).joined(separator: ", ")))")
    }
    guard !schema.fields[i].dtype.isFloatingPoint, schema.fields[i].shape.count == 1 else {
        throw ModelError(source, "length field '\(name)' is \(schema.fields[i].dtype) \(schema.fields[i].shape); it must hold one integer per sample")
    }
    return i
}

/// Samples in memory: inputs as Float, and labels or regression targets.
public struct Dataset {
    public var count = 0
    public var inputShape: [Int]
    public var inputSize: Int { inputShape.reduce(1, *) }
    public var x: [Float] = []
    public var labels: [Int32] = []
    public var targets: [Float] = []
    /// Sequence lengths, one per sample, when the stream has a length field.
    public var lengths: [Int32] = []
    public var targetSize = 1
    /// Classification with one-hot target rows (in `targets`) instead of labels.
    public var oneHot: Bool { labels.isEmpty && !targets.isEmpty }

    public init(inputShape: [Int]) { self.inputShape = inputShape }

    /// Reads every batch of `reader`: field `input` as inputs, `target` as labels (integer,
    /// checked against `classes`) or, for regression, as Float targets.
    public static func read(_ reader: StreamReader, input: String, target: String, task: Task, classes: Int,
                            length: String? = nil, tokens: Int? = nil) throws -> Dataset {
        let s = try DatasetStream(reader, input: input, target: target, task: task, classes: classes, length: length, tokens: tokens)
        var d = s.empty
        _ = try s.next(Int.max, into: &d)
        return d
    }

    /// Removes every sample, keeping the memory.
    public mutating func removeAll() {
        count = 0
        x.removeAll(keepingCapacity: true)
        labels.removeAll(keepingCapacity: true)
        targets.removeAll(keepingCapacity: true)
        lengths.removeAll(keepingCapacity: true)
    }

    /// Moves the samples from `cut` on into a data set of their own (a validation split) and
    /// keeps the first `cut` here, in place: copying both halves held the data set twice.
    public mutating func splitOff(at cut: Int) -> Dataset {
        var d = Dataset(inputShape: inputShape)
        d.targetSize = targetSize
        d.count = count - cut
        d.x = Array(x[(cut * inputSize)...])
        x.removeLast(x.count - cut * inputSize)
        if !labels.isEmpty { d.labels = Array(labels[cut...]); labels.removeLast(labels.count - cut) }
        if !lengths.isEmpty { d.lengths = Array(lengths[cut...]); lengths.removeLast(lengths.count - cut) }
        if !targets.isEmpty {
            d.targets = Array(targets[(cut * targetSize)...])
            targets.removeLast(targets.count - cut * targetSize)
        }
        count = cut
        return d
    }
}

/// A stream's samples read in order, a few at a time: what fit --stream trains on without
/// ever holding the data set.
public final class DatasetStream {
    public let reader: StreamReader
    let xi: Int, yi: Int
    let xf: Field, yf: Field
    let task: Task, classes: Int, oneHot: Bool
    let input: String, target: String
    /// The length field's index and name, and the steps it may count up to.
    let li: Int?, length: String?, steps: Int
    /// The embedding's vocabulary size when the input is token ids.
    let tokens: Int?
    private var pending: Batch?
    private var used = 0
    /// Samples handed out so far.
    public private(set) var delivered = 0

    /// `length` names the field of sequence lengths (integers, 0 … the input's first axis);
    /// `tokens` the vocabulary size when the input must be token ids below it.
    public init(_ reader: StreamReader, input: String, target: String, task: Task, classes: Int,
                length: String? = nil, tokens: Int? = nil) throws {
        let s = reader.schema
        let name = reader.source.name
        li = try length.map { try lengthFieldIndex(s, $0, source: name) }
        self.length = length
        self.tokens = tokens
        steps = s.field(input)?.shape.dims.first ?? 1
        guard let xi = s.index(of: input) else {
            throw ModelError(name, "no field '\(input)' (fields: \(s.fields.map(\.name).joined(separator: ", ")))")
        }
        guard let yi = s.index(of: target) else {
            throw ModelError(name, "no target field '\(target)' (fields: \(s.fields.map(\.name).joined(separator: ", "))); fit needs labels or targets")
        }
        let xf = s.fields[xi], yf = s.fields[yi]
        // One-hot targets: a float vector with one entry per class.
        let oneHot = task == .classification && yf.dtype.isFloatingPoint && yf.shape.count == classes && classes >= 2
        if task != .regression && !oneHot && (yf.dtype.isFloatingPoint || yf.shape.count != 1) {
            throw ModelError(name, "target field '\(target)' is \(yf.dtype) \(yf.shape); classification needs one integer label per sample, or one-hot rows of \(classes) values")
        }
        self.reader = reader
        (self.xi, self.yi, self.xf, self.yf) = (xi, yi, xf, yf)
        (self.task, self.classes, self.oneHot, self.input, self.target) = (task, classes, oneHot, input, target)
    }

    /// An empty dataset of this stream's shapes.
    public var empty: Dataset {
        var d = Dataset(inputShape: xf.shape.dims.isEmpty ? [1] : xf.shape.dims)
        d.targetSize = yf.shape.count
        return d
    }

    /// Appends up to `n` samples to `d`; false when the stream had none left.
    public func next(_ n: Int, into d: inout Dataset) throws -> Bool {
        var want = n
        var got = false
        while want > 0 {
            if pending == nil {
                guard let b = try reader.next() else { break }
                pending = b
                used = 0
            }
            let b = pending!
            let k = min(want, b.count - used)
            if k > 0 {
                try append(b, from: used, count: k, to: &d)
                used += k
                want -= k
                got = true
            }
            if used == b.count { pending = nil }
        }
        return got
    }

    /// Appends `n` zeros to `a`, refusing (70) when the larger buffer it may take is more than
    /// the process may hold: a data set beyond memory trapped in the allocation.
    private func grow(_ a: inout [Float], by n: Int, name: String, samples: Int) throws {
        if a.count + n > a.capacity {
            var capacity = max(a.count + n, 2 * a.capacity)  // as the array would grow
            if Double(capacity) * 4 > Double(64 << 20) {
                // Near the limit, less than double: three quarters of the room, or what is
                // needed (growing by only what each batch needs would copy the array every time).
                let room = SystemMemory.available()
                if Double(capacity) * 4 > room { capacity = max(a.count + n, min(capacity, Int(room * 0.75 / 4))) }
                if Double(capacity) * 4 > room { throw DataMemoryError(name, need: Double(capacity) * 4, samples: samples, room: room) }
            }
            a.reserveCapacity(capacity)
        }
        a.append(contentsOf: repeatElement(0, count: n))
    }

    private func append(_ b: Batch, from: Int, count n: Int, to d: inout Dataset) throws {
        let name = reader.source.name
        let base = d.count, first = delivered
        let xs = xf.shape.count
        try grow(&d.x, by: n * xs, name: name, samples: base + n)
        let xsrc = b.field(xi).baseAddress! + from * xf.sampleBytes
        if let bad = d.x.withUnsafeMutableBufferPointer({ convertToFloat(xsrc, dtype: xf.dtype, count: n * xs, into: $0.baseAddress! + base * xs) }) {
            throw ModelError(name, "field '\(input)' sample \(first + bad / xs) holds \(nonFiniteValue(xsrc, dtype: xf.dtype, at: bad))")
        }
        if let v = tokens, let bad = d.x.withUnsafeBufferPointer({ firstInvalidToken($0.baseAddress! + base * xs, count: n * xs, vocabulary: v) }) {
            throw ModelError(name, "field '\(input)' sample \(first + bad / xs): \(elementText(xsrc, bad, dtype: xf.dtype)) is not a token id of the model's vocabulary of \(v)")
        }
        if let li {
            d.lengths.append(contentsOf: repeatElement(0, count: n))
            let lsrc = b.field(li).baseAddress! + from * reader.schema.fields[li].sampleBytes
            if let (i, v) = d.lengths.withUnsafeMutableBufferPointer({ convertLengths(lsrc, dtype: reader.schema.fields[li].dtype, count: n, steps: steps, into: $0.baseAddress! + base) }) {
                throw ModelError(name, "field '\(length!)' sample \(first + i): length \(v) outside 0…\(steps), the steps of '\(input)'")
            }
        }
        let ysrc = b.field(yi).baseAddress! + from * yf.sampleBytes
        if task == .regression || oneHot {
            try grow(&d.targets, by: n * d.targetSize, name: name, samples: base + n)
            if let bad = d.targets.withUnsafeMutableBufferPointer({ convertToFloat(ysrc, dtype: yf.dtype, count: n * d.targetSize, into: $0.baseAddress! + base * d.targetSize) }) {
                throw ModelError(name, "field '\(target)' sample \(first + bad / d.targetSize) holds \(nonFiniteValue(ysrc, dtype: yf.dtype, at: bad))")
            }
            if oneHot, let (i, what) = d.targets.withUnsafeBufferPointer({ firstNonDistribution($0.baseAddress! + base * d.targetSize, rows: n, classes: d.targetSize) }) {
                throw ModelError(name, "field '\(target)' sample \(first + i): a one-hot or soft target row must be class probabilities (no value below 0, summing to 1), but \(what)")
            }
        } else {
            d.labels.append(contentsOf: repeatElement(0, count: n))
            let k = task == .binary ? 2 : classes
            if let (i, v) = d.labels.withUnsafeMutableBufferPointer({ convertLabels(ysrc, dtype: yf.dtype, count: n, classes: k, into: $0.baseAddress! + base) }) {
                throw ModelError(name, "field '\(target)' sample \(first + i): label \(v) outside the \(k) classes 0…\(k - 1)")
            }
        }
        d.count += n
        delivered += n
    }
}

/// The first of `rows` target rows that is not a distribution over `classes` (a value below 0,
/// or a sum off 1 by more than 1e-3, room for rows rounded to f32 or written with a few
/// digits), and what is wrong with it.
/// Cross-entropy against such a row is a mistake (regression targets given to a classifier),
/// and its loss is not a cross-entropy.
func firstNonDistribution(_ t: UnsafePointer<Float>, rows: Int, classes: Int) -> (row: Int, what: String)? {
    for r in 0..<rows {
        let row = t + r * classes
        var sum = 0.0
        for j in 0..<classes {
            if row[j] < 0 { return (r, "value \(j) is \(decimalText(row[j]))") }
            sum += Double(row[j])
        }
        if abs(sum - 1) > 1e-3 { return (r, "it sums to \(String(format: "%.6g", sum))") }
    }
    return nil
}

/// Loss, a parameter or the optimizer's state turned NaN or infinite: training diverged.
public struct DivergedError: DiagnosticError {
    public let epoch: Int, batch: Int
    public var what = "loss is not a number"
    public var location: String { "epoch \(epoch), batch \(batch)" }
    public var problem: String { "\(what): training diverged (lower the learning rate?); no model written" }
    public var kind: FailureKind { .badData }
}

public struct EpochResult {
    public var loss: Double
    public var accuracy: Double?
    public var samples: Int
    public init(loss: Double, accuracy: Double?, samples: Int) {
        self.loss = loss
        self.accuracy = accuracy
        self.samples = samples
    }
}

/// One data-parallel worker: a network replica and its batch buffers.
final class Shard {
    let net: Network<Float>
    let x: UnsafeMutablePointer<Float>
    let labels: UnsafeMutablePointer<Int32>
    let targets: UnsafeMutablePointer<Float>
    let grad: UnsafeMutablePointer<Float>
    let lengths: UnsafeMutablePointer<Int32>
    var hasLengths = false
    var rng: SeededRandom
    var loss = 0.0, correct = 0, count = 0
    var soft = false

    init(net: Network<Float>, capacity: Int, seed: UInt64, stream: UInt64) {
        self.net = net
        x = .allocate(capacity: max(capacity * net.inputSize, 1))
        labels = .allocate(capacity: max(capacity, 1))
        targets = .allocate(capacity: max(capacity * net.outputSize, 1))
        grad = .allocate(capacity: max(capacity * net.outputSize, 1))
        lengths = .allocate(capacity: max(capacity, 1))
        rng = SeededRandom(seed: seed, stream: stream)
        net.reserve(batch: Shard.passSize(net, capacity))
    }

    /// Samples in one forward and backward pass over a shard of `capacity`.
    static func passSize(_ net: Network<Float>, _ capacity: Int) -> Int {
        max(1, net.layers.contains { $0.wholeBatch } ? capacity : min(capacity, microBatch))
    }

    deinit {
        x.deallocate()
        labels.deallocate()
        targets.deallocate()
        grad.deallocate()
        lengths.deallocate()
    }

    /// Copies the samples at `idx` into this shard's buffers.
    func gather(_ d: Dataset, _ idx: ArraySlice<Int>) {
        let s = d.inputSize
        d.x.withUnsafeBufferPointer { xp in
            for (k, i) in idx.enumerated() { (x + k * s).update(from: xp.baseAddress! + i * s, count: s) }
        }
        if !d.labels.isEmpty { for (k, i) in idx.enumerated() { labels[k] = d.labels[i] } }
        hasLengths = !d.lengths.isEmpty
        if hasLengths { for (k, i) in idx.enumerated() { lengths[k] = d.lengths[i] } }
        if !d.targets.isEmpty {
            let t = d.targetSize
            d.targets.withUnsafeBufferPointer { tp in
                for (k, i) in idx.enumerated() { (targets + k * t).update(from: tp.baseAddress! + i * t, count: t) }
            }
        }
        soft = d.oneHot
        count = idx.count
    }

    /// Forward and loss; with `train`, backward too, its gradient weighted by `weight`
    /// (this shard's share of the batch), so that shard gradients sum to the batch mean's.
    func step(train: Bool, weight: Float) {
        // Micro-batches keep each one's activations in cache between its forward and its
        // backward; gradients accumulate across them (layers add into their gradients).
        let micro = Shard.passSize(net, count)
        let outs = net.outputSize, inSize = net.inputSize
        if train { net.zeroGradients() }
        var lossSum = 0.0
        var right = 0
        var a = 0
        while a < count {
            let m = min(micro, count - a)
            let xs = x + a * inSize
            let out = net.forward(xs, batch: m, training: train, rng: &rng, lengths: hasLengths ? UnsafePointer(lengths + a) : nil)
            let (l, c) = Loss.compute(task: net.task, output: out, batch: m, outputs: outs,
                                      labels: soft ? nil : labels + a, targets: targets + a * outs, grad: grad + a * outs)
            lossSum += l * Double(m)
            right += c
            if train {
                // Loss.compute averaged over this micro-batch; weight it by its share of the batch.
                let w = weight * Float(m) / Float(count)
                if w != 1 { for i in 0..<m * outs { grad[a * outs + i] *= w } }
                net.backward(xs, dOut: grad + a * outs, batch: m)
            }
            a += m
        }
        loss = lossSum / Double(max(count, 1))
        correct = right
    }

    /// Samples per forward/backward pass within a worker (measured with perf stat on
    /// mnist-cnn: 8 and 16 take 15% less CPU than whole shards at batch 128).
    static let microBatch = 8
    /// BatchNorm normalizes over what one pass sees, and recurrent layers run one thin GEMM per
    /// step: networks with either run whole shards (`passSize`). For BatchNorm this is also what
    /// keeps its replicas in step: each makes exactly one pass a batch, so each reaches every
    /// barrier of ReplicaStatistics once; two passes in one replica would meet the others' one.
}

/// Runs mini-batch training of a model on a dataset. With `threads` > 1 every batch is split
/// across network replicas that share the parameters (data parallelism), each calling a
/// single-threaded BLAS: on small convolution shapes that beats a multi-threaded BLAS. Results
/// are reproducible for a fixed seed and thread count.
public final class Trainer {
    public let model: Model
    public let batchSize: Int
    public private(set) var threads: Int
    private var shards: [Shard] = []
    /// Where the replicas' BatchNorm layers meet (ReplicaStatistics).
    private let barrier = ReplicaBarrier()
    public var rng: SeededRandom
    /// The trainable ranges of the parameters, for the optimizer.
    private let ranges: [Range<Int>]
    /// The job the shards' threads run (`perform`): a batch's shards, or the update's slices;
    /// and what it reads, set by the calling thread before each `pool.run`.
    private enum Phase { case shards(train: Bool), update }
    private var phase = Phase.update
    private var jobData: Dataset?
    private var jobSlices: [ArraySlice<Int>] = []
    private var jobSamples = 0
    private var jobOthers: [UnsafeMutablePointer<Float>] = []
    private lazy var pool = WorkerPool(threads: threads) { [unowned self] k in self.perform(k) }

    /// About how many bytes training at `batchSize` on `threads` takes beyond the network's
    /// weights and gradients: each shard's samples and its network's buffers for one pass, each
    /// replica's gradients, and the optimizer's two moments. `fit` checks it against
    /// OpenBLAS.memoryForWork before the Trainer allocates any of it.
    public static func workingBytes(model: Model, batchSize: Int, threads: Int) -> Double {
        let t = shardCount(batchSize: batchSize, threads: threads), per = (batchSize + t - 1) / t
        let net = model.network
        let samples = Double(per) * Double(net.inputSize + 2 * net.outputSize + 2) * 4
        let parameters = Double(net.parameterCount) * 4 * Double(t - 1 + (model.optimizer == nil ? 2 : 0))
        return Double(t) * (samples + net.workingBytes(batch: Shard.passSize(net, per), training: true)) + parameters
    }

    public init(model: Model, batchSize: Int, seed: UInt64, threads: Int = 1) {
        self.model = model
        self.batchSize = batchSize
        let net = model.network
        self.threads = Self.shardCount(batchSize: batchSize, threads: threads)
        rng = SeededRandom(seed: seed &+ 0x5EED)
        ranges = net.trainableRanges
        // Replicas that meet at a barrier (BatchNorm's) must each have a thread: should the
        // system refuse one, fewer replicas share the batch.
        let norms = net.layers.indices.filter { net.layers[$0] is BatchNorm<Float> }
        if !norms.isEmpty { self.threads = min(self.threads, pool.concurrency) }
        let t = self.threads, per = (batchSize + t - 1) / t
        // Each replica's dropout masks come from a stream of its own, apart from the shuffling
        // (replica 0's generator started in the shuffler's state; helper-45's review).
        shards = (0..<t).map { k in Shard(net: k == 0 ? net : net.replica(), capacity: per, seed: seed, stream: UInt64(k) + 1) }
        if t > 1 {
            for i in norms {
                let s = ReplicaStatistics<Float>(replicas: t, channels: (net.layers[i] as! BatchNorm<Float>).C, barrier: barrier)  // trap-ok: filtered above
                for (k, shard) in shards.enumerated() { (shard.net.layers[i] as! BatchNorm<Float>).share(s, rank: k) }  // trap-ok: replicas have the same layers
            }
        }
        if model.optimizer == nil { model.optimizer = Optimizer<Float>(config: model.optimizerConfig, count: net.parameterCount) }
    }

    /// How many replicas share a batch: one a thread, no more than the batch has samples.
    static func shardCount(batchSize: Int, threads: Int) -> Int {
        max(1, min(threads, batchSize))
    }

    /// The random generators' states (shuffling, then each shard's dropout), as hex words: saved
    /// in checkpoints, so that a resumed run draws what the uninterrupted one would have.
    public var randomState: String {
        ([rng] + shards.map(\.rng)).flatMap(\.state).map { w in
            let hex = String(w, radix: 16)
            return String(repeating: "0", count: 16 - hex.count) + hex  // fixed width: a model's size does not vary with it
        }.joined(separator: " ")
    }

    /// Restores `randomState`; false when the text is not one. A run with other thread counts
    /// restores what it has shards for (its results differ anyway: fit(1), --threads).
    public func restoreRandomState(_ text: String) -> Bool {
        let words = text.split(separator: " ").map { UInt64($0, radix: 16) }
        guard words.count >= 4, words.count % 4 == 0, !words.contains(nil) else { return false }
        let gens = stride(from: 0, to: words.count, by: 4).map { SeededRandom(state: words[$0..<$0 + 4].map { $0! }) }
        guard !gens.contains(where: { $0 == nil }) else { return false }
        rng = gens[0]!
        for (shard, g) in zip(shards, gens.dropFirst()) { shard.rng = g! }
        return true
    }

    /// Splits `idx` across the shards and runs them; returns the shards used.
    private func run(_ data: Dataset, _ idx: ArraySlice<Int>, train: Bool) -> ArraySlice<Shard> {
        let n = idx.count
        let used = min(threads, n)
        jobSlices.removeAll(keepingCapacity: true)
        var start = idx.startIndex
        for k in 0..<used {
            let size = n / used + (k < n % used ? 1 : 0)
            jobSlices.append(idx[start..<start + size])
            start += size
        }
        // Each worker gathers its own samples too: nothing serial between batches but the
        // optimizer's (itself parallel) update.
        jobData = data
        jobSamples = n
        barrier.parties = used
        phase = .shards(train: train)
        pool.run(used)
        jobData = nil  // no second reference to the caller's arrays (a --stream batch is refilled in place)
        return shards[0..<used]
    }

    /// Sums the shards' gradients into the primary's and applies the optimizer, both split
    /// over the parameters across the threads (each slice is summed in a fixed order, so the
    /// result does not depend on scheduling).
    private func reduceAndUpdate(shards used: Int, optimizer opt: Optimizer<Float>) {
        jobOthers.removeAll(keepingCapacity: true)
        for s in shards[1..<used] { jobOthers.append(s.net.grads) }
        opt.beginStep()
        phase = .update
        pool.run(threads)
    }

    /// Part `k` of the current job, on whichever thread runs it.
    private func perform(_ k: Int) {
        switch phase {
        case .shards(let train):
            let s = shards[k]
            s.gather(jobData!, jobSlices[k])
            s.step(train: train, weight: Float(s.count) / Float(jobSamples))
        case .update:
            let net = model.network, opt = model.optimizer!
            let P = net.parameterCount, g = net.grads, p = net.params
            let lo = P * k / threads, hi = P * (k + 1) / threads
            for h in jobOthers { for i in lo..<hi { g[i] += h[i] } }
            for r in ranges {
                let a = max(r.lowerBound, lo), b = min(r.upperBound, hi)
                if a < b { opt.apply(params: p, grads: g, range: a..<b) }
            }
        }
    }

    /// One pass over `data` in a freshly shuffled order (or in order, without `shuffle`);
    /// `progress(samplesDone)` after each batch. Divergence is reported as in batch
    /// `firstBatch` + 1 onwards of `epoch`.
    public func trainEpoch(_ data: Dataset, epoch: Int, shuffle: Bool = true, firstBatch: Int = 0,
                           progress: (Int) -> Void = { _ in }) throws -> EpochResult {
        var order = Array(0..<data.count)
        if shuffle { rng.shuffle(&order) }
        let net = model.network, opt = model.optimizer!
        var lossSum = 0.0, correct = 0, done = 0, batchNo = firstBatch
        while done < data.count {
            let n = min(batchSize, data.count - done)
            let used = run(data, order[done..<done + n], train: true)
            batchNo += 1
            let l = used.reduce(0.0) { $0 + $1.loss * Double($1.count) }
            guard l.isFinite else { throw DivergedError(epoch: epoch, batch: batchNo) }
            reduceAndUpdate(shards: used.count, optimizer: opt)
            lossSum += l
            correct += used.reduce(0) { $0 + $1.correct }
            done += n
            progress(done)
        }
        // A finite loss does not make the weights finite: Adam's second moment overflows first
        // (a gradient beyond 1.8e19). The model file would be refused by every reader.
        let P = net.parameterCount
        for (values, what) in [(net.params, "a parameter is not a number"), (opt.m, "the optimizer's state is not a number"),
                               (opt.v, "the optimizer's state is not a number")] where !allFinite(values, count: P) {
            throw DivergedError(epoch: epoch, batch: batchNo, what: what)
        }
        return EpochResult(loss: lossSum / Double(max(data.count, 1)),
                           accuracy: net.task == .regression ? nil : Double(correct) / Double(max(data.count, 1)), samples: data.count)
    }

    /// Loss and accuracy on `data` in inference mode.
    public func evaluate(_ data: Dataset) -> EpochResult {
        var lossSum = 0.0, correct = 0, done = 0
        let all = Array(0..<data.count)
        while done < data.count {
            let n = min(batchSize, data.count - done)
            let used = run(data, all[done..<done + n], train: false)
            lossSum += used.reduce(0.0) { $0 + $1.loss * Double($1.count) }
            correct += used.reduce(0) { $0 + $1.correct }
            done += n
        }
        return EpochResult(loss: lossSum / Double(max(data.count, 1)),
                           accuracy: model.task == .regression ? nil : Double(correct) / Double(max(data.count, 1)), samples: data.count)
    }
}
