// A trained model: the network, what it was trained on (input field, dtype, shape, class
// names, normalization), the optimizer state for --resume, and provenance. Stored as a tensor
// stream with one sample (fields `params`, and `opt_m`/`opt_v` when resumable) and the rest in
// metadata, so it is checksummed, versioned, and `tensor-show` can inspect it.

import Foundation
import Compute
import TensorCore
import TensorStream

/// A model file that cannot be used: damaged, inconsistent, or not a model.
/// Work that needs more memory than the process may have (`OpenBLAS.memoryForWork`).
public struct WorkingMemoryError: DiagnosticError {
    public let location: String
    public let problem: String
    public var kind: FailureKind { .internal }
    public init(_ location: String, need: Double, perSample: Double, room: Double, advice: String) {
        self.location = location
        problem = "needs about \(byteCount(need)) of working memory (\(byteCount(perSample)) a sample), more than the \(byteCount(room)) this process may use; \(advice)"
    }
}

/// A network whose weights and gradients alone are more than the process may hold (70). The
/// tools set `location` to the architecture or model file.
public struct ParameterMemoryError: DiagnosticError {
    public var location = "network"
    public let problem: String
    public var kind: FailureKind { .internal }
    init(parameters: Int, need: Double, room: Double) {
        problem = "its \(parameters) parameters need \(byteCount(need)) for weights and gradients, more than the \(byteCount(room)) this process may use (physical memory, a container's limit or ulimit -v)"
    }
}

/// A data set read into memory (fit without --stream, a validation file) that grows past what
/// the process may hold (70). The tool may add advice.
public struct DataMemoryError: DiagnosticError {
    public let location: String
    public var problem: String
    public var kind: FailureKind { .internal }
    init(_ location: String, need: Double, samples: Int, room: Double) {
        self.location = location
        problem = "holding its samples as f32 needs \(byteCount(need)) by sample \(samples), more than the \(byteCount(room)) this process may use (physical memory, a container's limit or ulimit -v)"
    }
}

/// Bytes for people: "1.5 GB", "205 KB".
func byteCount(_ b: Double) -> String { SystemMemory.describe(b) }

public struct ModelError: DiagnosticError {
    public let location: String
    public let problem: String
    public var kind: FailureKind { .badData }
    public init(_ location: String, _ problem: String) {
        self.location = location
        self.problem = problem
    }
}

public final class Model {
    public static let formatVersion = "1"

    public let network: Network<Float>
    public let architecture: String
    public var inputField: String
    public var inputDType: DType
    public var targetField: String
    public var classes: [String]
    /// The input's normalization (its `FIELD.normalize` metadata), which predict requires again.
    public var normalization: String?
    /// The field holding each sample's sequence length, for networks that read lengths.
    public var lengthField: String?
    /// The fingerprint of the vocabulary that tokenized the input (`FIELD.vocabulary`).
    public var vocabulary: String?
    public var optimizer: Optimizer<Float>?
    public var optimizerConfig: OptimizerConfig
    public var epoch = 0
    /// The training run's random state (Trainer.randomState), which --resume continues.
    public var randomState: String?
    /// The training run's samples per step, which a resumed run keeps (model.batch).
    public var batchSize: Int?
    /// The lowest validation loss so far and the epochs since it, which a resumed run's
    /// early stopping continues from; nil when the last epoch had no validation data.
    public var earlyStopping: (best: Double, since: Int)?
    public var provenance: [(key: String, value: String)] = []

    public init(architecture: String, inputShape: [Int], inputField: String, inputDType: DType, targetField: String,
                classes: [String], task: Task, optimizer: OptimizerConfig, expectedParameters: Int? = nil,
                vocabulary: Int = 0) throws {
        let parsed = try Architecture.parseLines(architecture)
        let specs = Architecture.resolve(parsed.specs, vocabulary: vocabulary)
        do {
            network = try Network<Float>(specs: specs, inputShape: inputShape, classes: classes.count, task: task, expectedParameters: expectedParameters)
        } catch var e as ArchitectureError where e.layer != nil && architecture.contains("\n") && parsed.lines.indices.contains(e.line - 1) {
            // The network counts layers; a text of several lines is read by its lines.
            e.sourceLine = parsed.lines[e.line - 1]
            throw e
        }
        self.architecture = Architecture.text(specs)
        self.inputField = inputField
        self.inputDType = inputDType
        self.targetField = targetField
        self.classes = classes
        optimizerConfig = optimizer
    }

    public var task: Task { network.task }

    /// Reads `model.early-stopping`: "best LOSS since EPOCHS", LOSS a decimal number ≥ 0 or
    /// inf (no finite validation loss yet), EPOCHS a count up to model.epoch's bound.
    static func earlyStopping(_ text: String) -> (best: Double, since: Int)? {
        let parts = text.split(separator: " ", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == "best", parts[2] == "since",
              let best = parts[1] == "inf" ? Double.infinity : decimalNumber(parts[1]), best >= 0,
              parts[3].allSatisfy(\.isASCII), let since = Int(parts[3]), (0...1_000_000_000).contains(since) else { return nil }
        return (best, since)
    }

    // MARK: - Writing

    /// Writes the model (with optimizer state when present) to `sink` as a tensor stream.
    public func write(to sink: ByteSink) throws {
        let P = network.parameterCount
        var fields = [Field(name: "params", dtype: .f32, shape: Shape([max(P, 1)]))]
        if optimizer != nil {
            fields.append(Field(name: "opt_m", dtype: .f32, shape: Shape([max(P, 1)])))
            fields.append(Field(name: "opt_v", dtype: .f32, shape: Shape([max(P, 1)])))
        }
        var meta: [(key: String, value: String)] = [
            ("model.version", Model.formatVersion),
            ("model.architecture", architecture),
            ("model.task", task.rawValue),
            ("model.input", inputField),
            ("model.input.dtype", inputDType.description),
            ("model.input.shape", network.inputShape.map(String.init).joined(separator: "x")),
            ("model.target", targetField),
            ("model.optimizer", optimizerConfig.text),
            ("model.step", String(optimizer?.step ?? 0)),
            ("model.epoch", String(epoch)),
        ]
        if let batchSize { meta.append(("model.batch", String(batchSize))) }
        if !classes.isEmpty { meta.append(("model.classes", classes.joined(separator: "\n"))) }
        if let normalization { meta.append(("model.input.normalize", normalization)) }
        if let lengthField { meta.append(("model.input.length", lengthField)) }
        if let vocabulary { meta.append(("model.input.vocabulary", vocabulary)) }
        if let randomState { meta.append(("model.random", randomState)) }
        if let (best, since) = earlyStopping { meta.append(("model.early-stopping", "best \(decimalText(best)) since \(since)")) }
        meta += provenance
        let writer = try StreamWriter(sink: sink, schema: Schema(fields: fields, metadata: meta))
        var views = [UnsafeRawBufferPointer(start: network.params, count: max(P, 1) * 4)]
        if let o = optimizer {
            views.append(UnsafeRawBufferPointer(start: o.m, count: max(P, 1) * 4))
            views.append(UnsafeRawBufferPointer(start: o.v, count: max(P, 1) * 4))
        }
        try writer.write(count: 1, fields: views)
        try writer.finish()
    }

    /// Writes the model to `path`: atomically to a file (through a symbolic link to the file it
    /// names), in place to a device such as /dev/null.
    public func save(to path: String) throws {
        let (sink, atomic) = try openOutputFile(path)
        do {
            try write(to: sink)
            if let atomic { try atomic.commit() } else { try sink.flush() }
        } catch {
            atomic?.abandon()
            throw error
        }
    }

    // MARK: - Reading

    /// Reads and checks a model from `source` (named in errors).
    public static func load(from source: ByteSource) throws -> Model {
        let name = source.name
        let reader: StreamReader
        do {
            reader = try StreamReader(source: source)
        } catch let e as StreamError {
            if case .notAStream = e.what { throw ModelError(name, "not a model file (\(e.problem))") }
            throw e
        }
        let s = reader.schema
        func need(_ k: String) throws -> String {
            guard let v = s.metadata(k) else { throw ModelError(name, "not a model file (no \(k))") }
            return v
        }
        guard try need("model.version") == formatVersion else {
            throw ModelError(name, "model format version \(s.metadata("model.version")!) unsupported (reads \(formatVersion))")
        }
        guard let task = Task(rawValue: try need("model.task")) else { throw ModelError(name, "unknown model.task") }
        guard let dtype = DType(name: try need("model.input.dtype")) else { throw ModelError(name, "unknown model.input.dtype") }
        let shapeText = try need("model.input.shape")
        // Dimensions of digits joined by single x's: '28x28x1x', 'x28' and '+28' are not.
        let parts = shapeText.split(separator: "x", omittingEmptySubsequences: false)
        let dims = parts.compactMap(digitsNumber)
        guard !dims.isEmpty, dims.count == parts.count, dims.allSatisfy({ $0 >= 1 && $0 <= 1 << 20 }),
              checkedProduct(dims, limit: 1 << 28) != nil else {
            throw ModelError(name, "model.input.shape '\(escapedForDisplay(shapeText))' invalid")
        }
        let classes = s.classes(of: "model") ?? (s.metadata("model.classes").map(Schema.lines) ?? [])
        // fit writes each class once, two for a binary task and none for a regression; a file
        // that says otherwise was edited or damaged, and predict would name outputs wrongly.
        var seen = Set<String>()
        if let twice = classes.first(where: { !seen.insert($0).inserted }) {
            throw ModelError(name, "model.classes names '\(escapedForDisplay(String(twice.prefix(60))))' twice")
        }
        if task == .regression, !classes.isEmpty { throw ModelError(name, "a regression model names \(classes.count) classes (model.classes)") }
        if task == .binary, !classes.isEmpty, classes.count != 2 { throw ModelError(name, "a binary model names \(classes.count) classes, not 2 (model.classes)") }
        let opt = try parseOptimizer(try need("model.optimizer"), name: name)
        // The weights must be one f32 vector; its length is checked against the architecture
        // before the network's buffers are allocated.
        let weights = s.field("params")
        func misfit(_ P: Int) -> ModelError {
            ModelError(name, "weights (\(weights.map { "\($0.dtype) \($0.shape)" } ?? "none")) do not fit the architecture, which has \(P) parameters")
        }
        guard let w = weights, w.dtype == .f32, w.shape.dims.count == 1 else {
            throw ModelError(name, "weights (\(weights.map { "\($0.dtype) \($0.shape)" } ?? "none")) are not one f32 vector")
        }
        // The weights are read before the network's buffers are allocated: the reader grows
        // its buffer only as data arrives, so a small file whose header declares gigabytes of
        // weights is refused as truncated instead of making the tool allocate them first.
        guard let batch = try reader.next() else { throw ModelError(name, "model file holds no weights") }
        guard batch.count == 1 else { throw ModelError(name, "model file holds \(batch.count) samples, expected 1") }
        let model: Model
        do {
            model = try Model(architecture: try need("model.architecture"), inputShape: dims, inputField: try need("model.input"),
                              inputDType: dtype, targetField: try need("model.target"), classes: classes, task: task, optimizer: opt,
                              expectedParameters: w.shape.count)
        } catch let e as ArchitectureError {
            throw ModelError(name, "\(e.location): \(e.problem)")
        } catch var e as ParameterMemoryError {
            e.location = name
            throw e
        } catch let e as ParameterCountMismatch {
            throw misfit(e.architecture)
        }
        model.normalization = s.metadata("model.input.normalize")
        // normalize writes f32 or f64: integers that say they were normalized are no input fit
        // trained on (and predict would apply the record into a buffer of their width).
        if model.normalization != nil, !dtype.isFloatingPoint {
            throw ModelError(name, "the input is \(dtype) but has a normalization record (model.input.normalize); normalized data is f32 or f64")
        }
        model.lengthField = s.metadata("model.input.length")
        model.vocabulary = s.metadata("model.input.vocabulary")
        guard let epoch = Int(s.metadata("model.epoch") ?? "0"), (0...1_000_000_000).contains(epoch),
              let step = Int(s.metadata("model.step") ?? "0"), (0...Int(Int32.max) * 1024).contains(step) else {
            throw ModelError(name, "model.epoch or model.step is not a count in range")
        }
        model.epoch = epoch
        if let text = s.metadata("model.batch") {
            guard let b = Int(text), (1...(1 << 20)).contains(b) else {
                throw ModelError(name, "model.batch is not a batch size in 1…1048576: \(escapedForDisplay(String(text.prefix(20))))")
            }
            model.batchSize = b
        }
        model.randomState = s.metadata("model.random")
        if let text = s.metadata("model.early-stopping") {
            guard let state = Model.earlyStopping(text) else {
                throw ModelError(name, "model.early-stopping is not 'best LOSS since EPOCHS': \(escapedForDisplay(String(text.prefix(60))))")
            }
            model.earlyStopping = state
        }
        model.provenance = s.metadata.filter { $0.key.hasPrefix("provenance.") }
        let P = model.network.parameterCount
        guard let pi = s.index(of: "params"), s.fields[pi].dtype == .f32, s.fields[pi].shape == Shape([max(P, 1)]) else { throw misfit(P) }
        let mi = s.index(of: "opt_m"), vi = s.index(of: "opt_v")
        // Optimizer state, when present, is two more vectors of exactly the weights' kind.
        for i in [mi, vi].compactMap({ $0 }) where s.fields[i].dtype != .f32 || s.fields[i].shape != Shape([max(P, 1)]) {
            throw ModelError(name, "optimizer state '\(s.fields[i].name)' (\(s.fields[i].dtype) \(s.fields[i].shape)) does not fit the \(P) parameters")
        }
        guard (mi == nil) == (vi == nil) else { throw ModelError(name, "optimizer state incomplete: opt_m and opt_v go together") }
        batch.field(pi).withMemoryRebound(to: Float.self) { model.network.params.update(from: $0.baseAddress!, count: P) }
        if let bad = (0..<P).first(where: { !model.network.params[$0].isFinite }) {
            throw ModelError(name, "parameter \(bad) is \(model.network.params[bad]): the model is damaged or diverged")
        }
        if let mi, let vi {
            let o = Optimizer<Float>(config: opt, count: P)
            batch.field(mi).withMemoryRebound(to: Float.self) { o.m.update(from: $0.baseAddress!, count: P) }
            batch.field(vi).withMemoryRebound(to: Float.self) { o.v.update(from: $0.baseAddress!, count: P) }
            if (0..<P).contains(where: { !o.m[$0].isFinite || !o.v[$0].isFinite }) {
                throw ModelError(name, "optimizer state holds a NaN or infinity: the model is damaged or diverged")
            }
            // A mean of squared gradients: a negative one is damage, not divergence (resumed,
            // its square root made the first step NaN).
            if let bad = (0..<P).first(where: { o.v[$0] < 0 }) {
                throw ModelError(name, "opt_v[\(bad)] is \(o.v[bad]), a mean of squares below 0: the model is damaged")
            }
            o.step = step
            model.optimizer = o
        }
        if let more = try reader.next() {
            throw ModelError(name, "model file holds \(1 + more.count) samples, expected 1")
        }
        return model
    }

    /// Parses the `model.optimizer` text.
    public static func parseOptimizer(_ text: String, name: String) throws -> OptimizerConfig {
        let words = text.split(separator: " ")
        var c = OptimizerConfig()
        guard let k = words.first.flatMap({ OptimizerConfig.Kind(rawValue: String($0)) }) else {
            throw ModelError(name, "unknown optimizer '\(escapedForDisplay(text))'")
        }
        c.kind = k
        for w in words.dropFirst() {
            let kv = w.split(separator: "=", maxSplits: 1).map(String.init)
            guard kv.count == 2 else { throw ModelError(name, "optimizer setting '\(escapedForDisplay(String(w)))' invalid") }
            switch kv[0] {
            case "lr": c.learningRate = Double(kv[1]) ?? .nan
            case "momentum": c.momentum = Double(kv[1]) ?? .nan
            case "nesterov": c.nesterov = kv[1] == "true"
            case "beta1": c.beta1 = Double(kv[1]) ?? .nan
            case "beta2": c.beta2 = Double(kv[1]) ?? .nan
            case "eps": c.epsilon = Double(kv[1]) ?? .nan
            case "weight_decay": c.weightDecay = Double(kv[1]) ?? .nan
            case "lr_decay":
                c.lrDecay = Double(kv[1]) ?? .nan
                guard c.lrDecay > 0 && c.lrDecay <= 1 else { throw ModelError(name, "optimizer setting lr_decay '\(escapedForDisplay(kv[1]))' is not a factor in (0, 1]") }
            default: throw ModelError(name, "unknown optimizer setting '\(escapedForDisplay(kv[0]))'")
            }
        }
        for v in [c.learningRate, c.momentum, c.beta1, c.beta2, c.epsilon, c.weightDecay] where !v.isFinite {
            throw ModelError(name, "optimizer setting not a number in '\(escapedForDisplay(text))'")
        }
        return c
    }
}
