// Serving a model on a stream: schema checks against what the model was trained on, and one
// batch of inputs to probabilities (or values) and predicted classes.

import Compute
import TensorCore
import TensorStream

/// Applies a model batch by batch; owns its buffers.
public final class Predictor {
    public let model: Model
    private var x = Scratch<Float>()
    private var p = Scratch<Float>()
    /// The batch's sequence lengths, for a model that reads them; the parts read it concurrently.
    private var lens = UnsafeMutableBufferPointer<Int32>(start: nil, count: 0)
    /// The field of sequence lengths the model reads, when it reads them.
    public let lengthIndex: Int?
    private let replicas: [Network<Float>]
    /// The batch the parts of `runPart` share, set by the calling thread before `pool.run`.
    private var job = Job()
    private struct Job {
        var x: UnsafePointer<Float>?, p: UnsafeMutablePointer<Float>?, lengths: UnsafePointer<Int32>?
        var count = 0, parts = 0, chunk = 0
    }
    /// The replicas' threads: the training loop's workers (WorkerPool), one per replica.
    private lazy var pool = WorkerPool(threads: replicas.count) { [unowned self] i in self.runPart(i) }
    public let inputIndex: Int
    /// The model's normalization, when the input is raw data: apply it to each batch first.
    public let inputTransform: FieldTransform?

    /// Checks `schema` against the model: field, dtype, shape, normalization and class names.
    /// With `threads` > 1, each batch is split across network replicas run in parallel, each
    /// with a single-threaded BLAS.
    /// `modelName` names the model in an error; `memory` is the bytes the replicas' buffers may
    /// take (OpenBLAS.memoryForWork).
    public init(model: Model, schema: Schema, input name: String, threads: Int = 1, modelName: String = "model",
                memory: Double = .infinity) throws {
        self.model = model
        let t = max(threads, 1)
        let wanted = model.network.layers.contains { $0 is Recurrent<Float> } ? Predictor.sequenceChunk : Predictor.chunk
        let perSample = model.network.workingBytes(batch: 1, training: false)
        // Each replica beyond the first holds gradients of its own (Network's buffers).
        let replicaBytes = Double(t - 1) * Double(model.network.parameterCount) * 4
        let fits = ((memory - replicaBytes) / (Double(t) * perSample)).rounded(.down)
        guard fits >= 1 else {
            throw WorkingMemoryError(modelName, need: Double(t) * perSample + replicaBytes, perSample: perSample, room: memory,
                                     advice: t > 1 && perSample <= memory + Double((t - 1) * OpenBLAS.bytesPerThread)
                                        ? "try --threads 1" : "the network is too large for this machine")
        }
        samplesPerPass = fits >= Double(wanted) ? wanted : Int(fits)
        replicas = [model.network] + (1..<t).map { _ in model.network.replica() }
        let field = model.inputField
        guard let i = schema.index(of: field) else {
            throw ModelError(name, "no field '\(field)', which the model reads (fields: \(schema.fields.map(\.name).joined(separator: ", ")))")
        }
        inputIndex = i
        let f = schema.fields[i]
        let dims = f.shape.dims.isEmpty ? [1] : f.shape.dims
        let want = model.network.inputShape.map(String.init).joined(separator: "×")
        guard dims == model.network.inputShape else {
            // Token ids padded to another width: the one fix is the training's --max-len.
            let m = model.network.inputShape
            let hint = model.vocabulary != nil && dims.count == 1 && m.count == 1
                ? "; load the text with tensor-load --max-len \(want), as for training"
                // Images of the model's size and other channels: a colour photo for a gray model.
                : dims.count == 3 && m.count == 3 && dims[0] == m[0] && dims[1] == m[1]
                ? "; tensor-load --channels \(m[2]) makes images of \(m[2]) channel\(m[2] == 1 ? "" : "s")"
                // Images of another size (a photo for a 28×28 model): --resize, as PIL resizes.
                : dims.count == 3 && m.count == 3 && f.dtype == .u8
                ? "; tensor-load --resize \(m[1])x\(m[0])\(dims[2] == m[2] ? "" : " --channels \(m[2])") makes images of that shape" : ""
            throw ModelError(name, "field '\(field)' is \(f.dtype) \(f.shape) but the model was trained on \(model.inputDType) \(want)\(hint)")
        }
        let norm = schema.metadata("\(field).normalize")
        if norm == nil, let record = model.normalization, let spec = NormalizeSpec(encoded: record), spec.fits(f.shape) {
            // raw input to a model trained on normalized data: apply the training transform,
            // if the input is the same kind of raw data the transform was learned on
            guard spec.source == f.dtype else {
                throw ModelError(name, "field '\(field)' is raw \(f.dtype) but the model was trained on \(spec.source.map { "\($0) " } ?? "")data normalized as (\(spec.description))")
            }
            inputTransform = try FieldTransform(schema: schema, steps: [(field, spec)], dtype: model.inputDType)
        } else {
            inputTransform = nil
            guard f.dtype == model.inputDType else {
                let hint = f.dtype.isInteger && model.inputDType.isFloatingPoint ? "; convert it as the training data was (normalize)" : ""
                throw ModelError(name, "field '\(field)' is \(f.dtype) but the model was trained on \(model.inputDType)\(hint)")
            }
            guard norm == model.normalization else {
                throw ModelError(name, "field '\(field)' is normalized as (\(Predictor.brief(norm))) but the model was trained on data normalized as (\(Predictor.brief(model.normalization)))")
            }
        }
        if let want = model.vocabulary, schema.metadata("\(field).vocabulary") != want {
            let got = schema.metadata("\(field).vocabulary").map { "vocabulary (\($0))" } ?? "no vocabulary record"
            throw ModelError(name, "field '\(field)' has \(got) but the model was trained on tokens of vocabulary (\(want)); tokenize with the model's vocabulary (tensor-load --vocab)")
        }
        lengthIndex = try model.lengthField.map { try lengthFieldIndex(schema, $0, source: name) }
        if model.task == .classification, let c = schema.classes(of: model.targetField), !classesFit(data: c, model: model.classes) {
            throw ModelError(name, classMismatch(field: model.targetField, data: c, model: model.classes))
        }
        for out in ["p", "yhat"] where schema.index(of: out) != nil {
            throw ModelError(name, "the stream already has a field '\(out)'; drop it first (tensor-cat --fields)")
        }
    }

    deinit { lens.deallocate() }

    /// A normalization record for messages: its transform, or "raw".
    public static func brief(_ record: String?) -> String {
        guard let r = record else { return "raw" }
        return NormalizeSpec(encoded: r)?.description ?? String(r.prefix(40))
    }

    public var outputs: Int { model.network.outputSize }
    /// Samples per forward pass of one replica.
    static let chunk = 16
    /// Recurrent layers run one GEMM per step over the chunk: 16 rows are too thin for it.
    static let sequenceChunk = 128
    /// Samples per forward pass: the chunk above, or fewer when the machine cannot hold it.
    let samplesPerPass: Int

    /// The output fields `p` and `yhat` for this model.
    public var outputFields: [Field] {
        switch model.task {
        case .classification:
            return [Field(name: "p", dtype: .f32, shape: Shape([outputs])), Field(name: "yhat", dtype: .i64, shape: Shape([]))]
        case .binary:
            return [Field(name: "p", dtype: .f32, shape: Shape([1])), Field(name: "yhat", dtype: .i64, shape: Shape([]))]
        case .regression:
            return [Field(name: "yhat", dtype: .f32, shape: Shape(outputs == 1 ? [] : [outputs]))]
        }
    }

    /// Runs `count` samples of the input payload; returns (p, yhat) buffers as raw bytes views.
    /// `firstSample` numbers samples in errors.
    /// `lengths` is the length field's payload and dtype, for a model that reads lengths.
    public func run(_ payload: UnsafeRawBufferPointer, dtype: DType, count: Int, firstSample: Int, name: String,
                    lengths: (UnsafeRawBufferPointer, DType)? = nil,
                    yhat: UnsafeMutableRawPointer) throws -> UnsafePointer<Float> {
        let net = model.network
        let s = net.inputSize, outputs = self.outputs  // once: the loops below read it per element
        x.reserve(count * s)
        p.reserve(count * max(outputs, 1))
        if let bad = convertToFloat(payload.baseAddress!, dtype: dtype, count: count * s, into: x.pointer) {
            throw ModelError(name, "field '\(model.inputField)' sample \(firstSample + bad / s) holds \(nonFiniteValue(payload.baseAddress!, dtype: dtype, at: bad))")
        }
        if let v = net.tokenVocabulary, let bad = firstInvalidToken(x.pointer, count: count * s, vocabulary: v) {
            throw ModelError(name, "field '\(model.inputField)' sample \(firstSample + bad / s): \(elementText(payload.baseAddress!, bad, dtype: dtype)) is not a token id of the model's vocabulary of \(v)")
        }
        if let (payload, ldtype) = lengths {
            if lens.count < count {
                lens.deallocate()
                lens = .allocate(capacity: count)
            }
            let steps = net.inputShape[0]
            if let (i, v) = convertLengths(payload.baseAddress!, dtype: ldtype, count: count, steps: steps, into: lens.baseAddress!) {
                throw ModelError(name, "field '\(model.lengthField ?? "")' sample \(firstSample + i): length \(v) outside 0…\(steps), the steps of '\(model.inputField)'")
            }
        }
        let lp = lengths == nil ? nil : UnsafePointer(lens.baseAddress)
        let pp = p.pointer
        job = Job(x: UnsafePointer(x.pointer), p: pp, lengths: lp, count: count, parts: min(replicas.count, count), chunk: samplesPerPass)
        pool.run(job.parts)
        job = Job()
        switch model.task {
        case .classification:
            for n in 0..<count {
                var best = 0
                for j in 1..<outputs where pp[n * outputs + j] > pp[n * outputs + best] { best = j }
                yhat.storeBytes(of: Int64(best), toByteOffset: 8 * n, as: Int64.self)
            }
        case .binary:
            for n in 0..<count { yhat.storeBytes(of: Int64(pp[n] >= 0.5 ? 1 : 0), toByteOffset: 8 * n, as: Int64.self) }
        case .regression:
            yhat.copyMemory(from: pp, byteCount: count * outputs * 4)
        }
        return UnsafePointer(pp)
    }

    /// Part `i` of the current batch: its share of the samples, through replica `i`.
    private func runPart(_ i: Int) {
        let j = job, s = model.network.inputSize, k = outputs, task = model.task
        let lo = j.count * i / j.parts, hi = j.count * (i + 1) / j.parts
        var rng = SeededRandom(seed: 0)  // inference draws no random numbers
        // At most `chunk` samples per forward, to bound the activations' memory.
        var a = lo
        while a < hi {
            let n = min(j.chunk, hi - a)
            let out = replicas[i].forward(j.x! + a * s, batch: n, training: false, rng: &rng, lengths: j.lengths.map { $0 + a })
            Loss.head(task: task, output: out, batch: n, outputs: k, into: j.p! + a * k)
            a += n
        }
    }
}

/// Whether labels of classes named `data` are labels of the model's classes: the same names,
/// or labels the input only numbered ("0"…, an IDX file loaded without --classes, a test set
/// holding some of the classes), within the model's count. Those take the model's names.
public func classesFit(data: [String], model: [String]) -> Bool {
    data == model || (Schema.areIndexNames(data) && data.count <= model.count)
}

/// The message for data whose class names differ from a model's: both lists, from their
/// first difference, so that a reordered or renamed class is visible in one line.
public func classMismatch(field: String, data: [String], model: [String]) -> String {
    let first = (0..<min(data.count, model.count)).first { data[$0] != model[$0] } ?? min(data.count, model.count)
    func list(_ names: [String]) -> String {
        let shown = names.dropFirst(first).prefix(4)
        let head = (first > 0 ? "…, " : "") + displayNames(shown)
        let more = names.count - first - shown.count
        return (shown.isEmpty ? "nothing more" : head + (more > 0 ? ", …" : "")) + "; \(names.count) classes"
    }
    return "class names of '\(field)' differ from the model's at class \(first): the data has (\(list(data))), the model (\(list(model)))"
        + (data.count <= model.count ? "; tensor-load --classes with the model's names, in its order, numbers the labels as the model does" : "")
}
