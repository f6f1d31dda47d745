// fit: trains a network on a tensor stream and writes the model file.

import ArgumentParser
import Foundation
import NeuralNet
import Compute
import TensorCore
import TensorStream
import ToolSupport

struct Fit: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fit",
        abstract: "Train a network on a tensor stream and write a model file.",
        discussion: """
        The architecture is a preset (mlp, mnist-cnn, cifar-cnn, rows-lstm, lstm-text, \
        gru-text, transformer-text), a file, or inline text with \
        one layer per line or ";" between layers (see fit(1)). Input shape and class count come \
        from the stream. The model is written to -o atomically only when training ends well; \
        after each epoch a checkpoint (-o's name with .ckpt appended) is written, so a killed \
        or diverged fit leaves the previous model intact and --resume continues from the \
        checkpoint.

        Examples:
          tensor-load x=train-images-idx3-ubyte.gz y=train-labels-idx1-ubyte.gz \\
            | normalize --scale 255 | fit --model mnist-cnn -o fashion.model
          fit --model 'dense 64 relu; dense classes' --lr 0.01 --optimizer sgd \\
            -o m.model < train.tns
          fit --resume fashion.model --epochs 2 -o fashion.model < train.tns
          tensor-load --text train.tsv --max-len 16 --save-vocab v.vocab \\
            | fit --model lstm-text --epochs 3 -o text.model
        """,
        version: toolVersion)

    @Option(name: .shortAndLong, help: ArgumentHelp("Write the model to FILE (atomically) when training ends.", valueName: "file"))
    var output: String

    @Option(help: ArgumentHelp("Write a checkpoint after every epoch to FILE (default: the -o file with .ckpt appended; removed when training ends well).", valueName: "file"))
    var checkpoint: String?

    @Flag(name: .customLong("no-checkpoint"), help: "Write no per-epoch checkpoint.")
    var noCheckpoint = false

    @Option(help: ArgumentHelp("Architecture: a preset (mlp, mnist-cnn, cifar-cnn, rows-lstm, lstm-text, gru-text, transformer-text), a file, or inline text.", valueName: "spec"))
    var model: String?

    @Option(help: ArgumentHelp("Continue training MODEL (its weights and optimizer state).", valueName: "model"))
    var resume: String?

    @Option(help: "Passes over the training data (default 5).")
    var epochs: Int?

    @Flag(help: "Train on batches as they arrive, in one pass over the input (augment --repeat N | fit --stream).")
    var stream = false

    @Option(name: .customLong("epoch-size"), help: ArgumentHelp("With --stream: samples per epoch, after which a line, a log record, a checkpoint and validation (default 10000).", valueName: "n"))
    var epochSize: Int?

    @Option(help: "Samples per gradient step (default 32; with --resume, the model's).")
    var batch: Int?

    @Option(help: "Learning rate (default 0.001; with --resume, the model's).")
    var lr: Double?

    @Option(name: .customLong("lr-decay"), help: ArgumentHelp("Multiply the learning rate by F after every epoch (exponential decay).", valueName: "f"))
    var lrDecay: Double?

    @Option(help: ArgumentHelp("sgd, adam or adamw (default adam).", valueName: "name"))
    var optimizer: String?

    @Option(help: "SGD momentum (default 0).")
    var momentum: Double?

    @Flag(help: "SGD: Nesterov momentum.")
    var nesterov = false

    @Option(name: .customLong("weight-decay"), help: "Weight decay (L2 for sgd and adam, decoupled for adamw; default 0).")
    var weightDecay: Double?

    @Option(help: ArgumentHelp("Weight initialization: glorot (Keras's default), he, or pytorch (PyTorch's default).", valueName: "scheme"))
    var initialization: String?

    @Option(help: ArgumentHelp("Loss: ce (integer labels, or one-hot rows), bce (0/1 labels, one output), mse (float targets).", valueName: "loss"))
    var loss: String?

    @Option(help: ArgumentHelp("The input field (default x).", valueName: "name"))
    var input: String?

    @Option(help: ArgumentHelp("The target field (default y).", valueName: "name"))
    var target: String?

    @Option(help: ArgumentHelp("The field of sequence lengths, for networks over sequences (default: len, when the stream has it).", valueName: "name"))
    var length: String?

    @Option(name: .customLong("validation-split"), help: ArgumentHelp("Hold out this fraction (the last samples) for validation.", valueName: "f"),
            transform: Fit.fraction)
    var validationSplit: Double = 0

    @Option(help: ArgumentHelp("A stream file to validate on after each epoch.", valueName: "file"))
    var validation: String?

    @Option(help: ArgumentHelp("Stop when validation loss has not improved for N epochs.", valueName: "n"))
    var patience: Int?

    @Option(help: "Seed for initialization, shuffling and dropout of a new model (default 1; not with --resume, which continues the model's random state).")
    var seed: UInt64?

    @Option(help: "Threads for the math (default: all cores).")
    var threads: Int?

    @Option(help: ArgumentHelp("Append one JSON object per epoch to FILE (stdout for -).", valueName: "file"))
    var log: String?

    @Flag(name: .shortAndLong, help: "No progress bar and no per-epoch lines.")
    var quiet = false

    @Argument(help: ArgumentHelp("The training stream; stdin when none or \"-\".", valueName: "file"))
    var file: String?

    /// --validation-split's value as Double reads it, except that a figure too small for a
    /// Double, which it reads as 0 (1e-400), is refused: 0 means no validation at all.
    @Sendable static func fraction(_ text: String) throws -> Double {
        guard let v = Double(text) else { throw ValidationError("'\(text)' is not a number") }
        let mantissa = text.prefix { $0 != "e" && $0 != "E" && $0 != "p" && $0 != "P" }
        if v == 0 && mantissa.contains(where: { ("1"..."9").contains($0) }) {
            throw ValidationError("\(text) is too small to hold out a sample (it reads as 0, which means no validation)")
        }
        return v
    }

    func validate() throws {
        if model == nil && resume == nil { throw ValidationError("give --model SPEC (or --resume MODEL)") }
        if model != nil && resume != nil { throw ValidationError("--model and --resume exclude each other") }
        if let e = epochs, e < 0 || e > 1_000_000 { throw ValidationError("--epochs takes 0…1000000") }
        if stream && epochs != nil { throw ValidationError("--epochs does not go with --stream: the stream's length decides (augment --repeat N)") }
        if stream && validationSplit > 0 { throw ValidationError("--validation-split does not go with --stream: give a --validation file") }
        if epochSize != nil && !stream { throw ValidationError("--epoch-size goes with --stream") }
        if let n = epochSize, n < 1 { throw ValidationError("--epoch-size takes a count ≥ 1") }
        if let batch, batch < 1 || batch > 1 << 20 { throw ValidationError("--batch takes 1…1048576") }
        if let lr, !(lr > 0 && lr.isFinite) { throw ValidationError("--lr takes a positive number") }
        if let d = lrDecay, !(d > 0 && d <= 1) { throw ValidationError("--lr-decay takes a factor in (0, 1]") }
        if let o = optimizer, OptimizerConfig.Kind(rawValue: o) == nil { throw ValidationError("--optimizer takes sgd, adam or adamw") }
        if let i = initialization, InitScheme(rawValue: i) == nil { throw ValidationError("--initialization takes glorot, he or pytorch") }
        if let l = loss, !["ce", "bce", "mse"].contains(l) { throw ValidationError("--loss takes ce, bce or mse") }
        if !(validationSplit >= 0 && validationSplit < 1) { throw ValidationError("--validation-split takes a fraction in [0, 1)") }
        if let t = threads, t < 1 || t > 256 { throw ValidationError("--threads takes 1…256") }
        if let p = patience, p < 1 { throw ValidationError("--patience takes a count ≥ 1") }
        if let m = momentum, !(m >= 0 && m < 1) { throw ValidationError("--momentum takes [0, 1)") }
        if let w = weightDecay, !(w >= 0 && w.isFinite) { throw ValidationError("--weight-decay takes a number ≥ 0") }
        // Options that would otherwise be ignored without a word.
        if resume != nil {
            let kept = [("--optimizer", optimizer != nil), ("--momentum", momentum != nil), ("--nesterov", nesterov),
                        ("--weight-decay", weightDecay != nil), ("--initialization", initialization != nil), ("--loss", loss != nil),
                        ("--input", input != nil), ("--target", target != nil), ("--seed", seed != nil)].filter(\.1).map(\.0)
            if let o = kept.first { throw ValidationError("\(o) does not go with --resume: the model keeps its own (of its optimizer settings, --lr and --lr-decay change; it continues its run's random sequence)") }
        }
        if (momentum != nil || nesterov) && (optimizer ?? "adam") != "sgd" { throw ValidationError("--momentum and --nesterov go with --optimizer sgd") }
        if nesterov && (momentum ?? 0) == 0 { throw ValidationError("--nesterov needs a --momentum above 0") }
        if patience != nil && validation == nil && validationSplit == 0 { throw ValidationError("--patience needs validation data (--validation or --validation-split)") }
        if validation != nil && validationSplit > 0 { throw ValidationError("--validation and --validation-split exclude each other") }
        try refuseStdinTwice([("the training data", file ?? "-"), ("--validation", validation), ("--resume", resume),
                              ("--model", model.flatMap { Architecture.presets[$0] == nil ? $0 : nil })])
        if model == "" { throw ValidationError("--model takes a preset, a file or the text of an architecture, not an empty string") }
        if resume == nil && (input ?? "x") == (target ?? "y") { throw ValidationError("--input and --target name the same field, '\(input ?? "x")': the network would be given its answers") }
        if checkpoint != nil && noCheckpoint { throw ValidationError("--checkpoint and --no-checkpoint exclude each other") }
        for (name, path) in [("-o", output), ("--checkpoint", checkpoint), ("--log", log)] {
            if path == "" { throw ValidationError("\(name) takes a file name, not an empty string") }
            if name != "--log", let p = path, isStandardOutput(p) { throw ValidationError("\(name) \(p): the model goes to a file, not the standard output") }
        }
        // Two roles for one file would lose one of them (the model replacing its data, the
        // checkpoint's removal deleting the model). Resuming from the model or checkpoint that
        // the run goes on to write is the way to continue training (the checkpoint is then kept).
        try refuseSharedFiles(outputs: [("-o", output), (checkpoint != nil ? "--checkpoint" : "the checkpoint", ckptPath), ("--log", log)],
                              inputs: [("the training data", file ?? "-"), ("--validation", validation),
                                       ("--model", model.flatMap { Architecture.presets[$0] == nil ? $0 : nil })])
        if let log, let resume, !isStandardOutput(log), sameFile(log, resume) { throw ValidationError("--log and --resume name the same file, \(log)") }
    }

    /// Where the per-epoch checkpoint goes, if anywhere: by default beside a model file, and
    /// nowhere when the model goes to a device (-o /dev/null: no /dev/null.ckpt).
    var ckptPath: String? {
        if noCheckpoint { return nil }
        if let checkpoint { return checkpoint }
        var st = stat()
        return stat(output, &st) == 0 && st.st_mode & S_IFMT != S_IFREG ? nil : output + ".ckpt"
    }

    /// The model named in messages: --model's preset, file or text (a long text cut to its
    /// first 60 characters, not echoed whole), or --resume's file.
    var modelName: String {
        guard let spec = model else { return resume! }
        return spec.count <= 80 ? spec : String(spec.prefix(60)) + "…"
    }

    func architectureText() throws -> String {
        let spec = model!
        if let p = Architecture.presets[spec] { return p }
        if spec.contains(";") || spec.contains("\n") || spec.contains(" ") { return spec }
        let src: FileSource
        do {
            src = try FileSource.open(spec)
        } catch {
            var st = stat()
            // An existing file that cannot be read (a directory) says why.
            if stat(spec, &st) == 0 { throw error }
            // Words separated only by commas or tabs, as fit(1) allows, are a text too.
            if spec.contains(",") || spec.contains("\t") { return spec }
            // Case-insensitive, as the text's words are ('MNIST-CNN'), when no file has the name.
            if let p = Architecture.presets[spec.lowercased()] { return p }
            throw ToolFailure(spec, "no such preset (\(Architecture.presets.keys.sorted().joined(separator: ", "))) or file", kind: .missingInput)
        }
        var buf = [UInt8](repeating: 0, count: 65_537)
        let n = try buf.withUnsafeMutableBytes { try src.readFully(into: $0.baseAddress!, count: $0.count) }
        guard n <= 65_536 else { throw ToolFailure(spec, "architecture file larger than 64 KiB") }
        guard let text = String(validating: buf.prefix(n), as: UTF8.self) else { throw ToolFailure(spec, "architecture file is not UTF-8 text") }
        return text.hasPrefix("\u{FEFF}") ? String(text.dropFirst()) : text  // a byte-order mark, as some editors write
    }

    /// The learning rate `rate` that `epochs` epochs of --lr-decay leave, below f32's normal range.
    func decayedAway(_ rate: Double, epochs: Int) -> UsageError {
        UsageError("after \(epochs) epoch\(epochs == 1 ? "" : "s") the learning rate is \(String(format: "%.3g", rate)), below what f32 holds as a normal number (training would stop moving); give a factor nearer 1 or fewer epochs",
                   location: "--lr-decay")
    }

    func run() throws {
        Tool.run("fit") {
            if let problem = OpenBLAS.load() { throw ToolFailure(OpenBLAS.library, problem, kind: .internal) }
            // Each thread that calls OpenBLAS maps a large buffer, and OpenBLAS retries a failed
            // mapping forever: under `ulimit -v`, use only the threads that fit, or stop here.
            let wanted = threads ?? ProcessInfo.processInfo.activeProcessorCount
            let usable = OpenBLAS.threadsWithinAddressLimit(wanted)
            guard usable >= 1 else {
                throw ToolFailure("ulimit -v", "the address-space limit leaves too little room for OpenBLAS (about \(OpenBLAS.bytesPerThread >> 20) MiB per thread); raise it", kind: .internal)
            }
            if usable < wanted { Tool.warn("fit", "ulimit -v leaves room for \(usable) of \(wanted) threads") }
            var opt = OptimizerConfig()
            opt.kind = OptimizerConfig.Kind(rawValue: optimizer ?? "adam")!
            opt.learningRate = lr ?? 0.001
            opt.momentum = momentum ?? 0
            opt.nesterov = nesterov
            opt.weightDecay = weightDecay ?? 0
            opt.lrDecay = lrDecay ?? 1
            let arch = try resume == nil ? architectureText() : ""
            let reader = try StreamReader(source: try FileSource.open(file ?? "-"))
            let schema = reader.schema
            let m: Model
            if let resume {
                m = try Model.load(from: try FileSource.open(resume))
                if let lr {
                    m.optimizerConfig.learningRate = lr
                    m.optimizer?.config.learningRate = lr
                }
                if let lrDecay {
                    m.optimizerConfig.lrDecay = lrDecay
                    m.optimizer?.config.lrDecay = lrDecay
                }
            } else {
                let input = self.input ?? "x", target = self.target ?? "y"
                guard let xf = schema.field(input) else {
                    throw ToolFailure(reader.source.name, "no input field '\(input)' (fields: \(schema.fields.map(\.name).joined(separator: ", ")))")
                }
                guard let yf = schema.field(target) else {
                    throw ToolFailure(reader.source.name, "no target field '\(target)'; fit needs labels (tensor-load x=… y=…)")
                }
                let task: Task = loss == "mse" || (loss == nil && yf.dtype.isFloatingPoint) ? .regression : loss == "bce" ? .binary : .classification
                // Float labels that keep a class list were integers once (normalize --field y);
                // taken for a regression, the network's 'dense classes' was blamed.
                if loss == nil, yf.dtype.isFloatingPoint, yf.shape.count == 1, schema.classes(of: target) != nil {
                    throw ToolFailure(reader.source.name, "field '\(target)' is \(yf.dtype) but names classes (\(target).classes): class labels are integers (were they normalized?); load them again, or fit a regression with --loss mse")
                }
                var classes = schema.classes(of: target) ?? []
                if task == .classification && classes.isEmpty && yf.dtype.isFloatingPoint && yf.shape.count >= 2 {
                    classes = (0..<yf.shape.count).map(String.init)  // one-hot rows name their classes by index
                }
                // Labels that are images: x and y loaded the wrong way round.
                if task == .classification && yf.shape.dims.count >= 2 {
                    throw ToolFailure(reader.source.name, "target field '\(target)' is \(yf.dtype) \(yf.shape), not one label a sample; are the input and the labels swapped (tensor-load x=IMAGES y=LABELS)?")
                }
                if task == .classification && classes.isEmpty {
                    throw ToolFailure(reader.source.name, "field '\(target)' has no class list (\(target).classes); name the classes with tensor-load --classes, or fit a regression with --loss mse")
                }
                if task == .regression { classes = [] }
                if task == .binary {
                    // Two classes, always: labels all 0 were named ["0"], a model predict then
                    // refused ("a binary model names 1 classes"). Numbered labels are 0 and 1.
                    let named = schema.classes(of: target).flatMap { Schema.areIndexNames($0) ? nil : $0 }
                    classes = named ?? ["0", "1"]
                    guard classes.count == 2 else {
                        throw ToolFailure(reader.source.name, "field '\(target)' names \(classes.count) class\(classes.count == 1 ? "" : "es") (\(displayNames(classes.prefix(4)))\(classes.count > 4 ? ", …" : "")) but a binary task (--loss bce) has 2; name both with tensor-load --classes")
                    }
                }
                do {
                    var vocabulary = 0
                    if let v = schema.metadata("\(input).vocab-size") {
                        // The same range as the architecture's vocab=; a hand-edited value overflowed.
                        guard let n = Int(v), (2...(1 << 24)).contains(n) else {
                            throw ToolFailure(reader.source.name, "\(input).vocab-size '\(v)' is not a vocabulary size (2…16777216)")
                        }
                        vocabulary = n
                    }
                    m = try Model(architecture: arch, inputShape: xf.shape.dims.isEmpty ? [1] : xf.shape.dims, inputField: input,
                                  inputDType: xf.dtype, targetField: target, classes: classes, task: task, optimizer: opt,
                                  vocabulary: vocabulary)
                } catch var e as ArchitectureError {
                    if arch == Architecture.presets[model!.lowercased()] { e.sourceLine = nil }  // a preset's lines are not the user's
                    throw ToolFailure(modelName, "\(e.location): \(e.problem)")
                } catch var e as ParameterMemoryError {
                    e.location = modelName
                    throw e
                }
                // Token ids are indices, not quantities: a network that takes them for numbers
                // trains on nothing (and would take any vocabulary's ids at predict time).
                if m.network.tokenVocabulary == nil, schema.metadata("\(input).vocabulary") != nil || schema.metadata("\(input).vocab-size") != nil {
                    throw ToolFailure(modelName, "field '\(input)' holds token ids (\(input).vocabulary); start the network with 'embedding N'")
                }
                if let length, length == input || length == target {
                    throw UsageError("'\(length)' is the \(length == input ? "input" : "target") field, not sequence lengths", location: "--length")
                }
                m.vocabulary = m.network.tokenVocabulary == nil ? nil : schema.metadata("\(input).vocabulary")
                // Sequence lengths: the named field, or `len` when the stream has one.
                if m.network.usesLengths, let l = length ?? (schema.field("len") != nil ? "len" : nil) { m.lengthField = l }
            }
            // A resumed run keeps the model's batch size unless told otherwise: the next epochs
            // then take the steps the uninterrupted run would have taken.
            let batch = self.batch ?? m.batchSize ?? 32
            m.batchSize = batch
            if let length, m.lengthField != length {
                throw ToolFailure(modelName, m.network.usesLengths ? "the model reads lengths from '\(m.lengthField ?? "")', not '\(length)'"
                                  : "--length: this network has no layer over time that reads lengths", kind: .usage)
            }
            try checkSchema(m, schema, name: reader.source.name)
            let record = schema.metadata("\(m.inputField).normalize")
            if record != nil, let dtype = schema.field(m.inputField)?.dtype, !dtype.isFloatingPoint {
                throw ToolFailure(reader.source.name, "field '\(m.inputField)' is \(dtype) but its metadata says it was normalized (\(m.inputField).normalize); normalize writes f32 or f64, so the record belongs to other data")
            }
            if resume != nil {
                // More training must see the data as the model has seen it.
                guard schema.field(m.inputField)?.dtype == m.inputDType, record == m.normalization else {
                    throw ToolFailure(reader.source.name, "field '\(m.inputField)' is \(schema.field(m.inputField)!.dtype) normalized as (\(Predictor.brief(record))) but \(resume!) was trained on \(m.inputDType) normalized as (\(Predictor.brief(m.normalization)))")
                }
            }
            m.normalization = record
            var val: Dataset?
            if let v = validation {
                let vr = try StreamReader(source: try FileSource.open(v))
                try checkSchema(m, vr.schema, name: v)
                // Validation data normalized otherwise than the training data would be scored
                // on other inputs (predict refuses it too).
                let vrecord = vr.schema.metadata("\(m.inputField).normalize")
                guard vrecord == record else {
                    throw ToolFailure(v, "field '\(m.inputField)' is normalized as (\(Predictor.brief(vrecord))) but the training data as (\(Predictor.brief(record)))")
                }
                // Of another dtype it would be other numbers (u8 pixels against f32 fractions);
                // predict refuses it too.
                if let vf = vr.schema.field(m.inputField), vf.dtype != m.inputDType {
                    throw ToolFailure(v, "field '\(m.inputField)' is \(vf.dtype) but the training data's is \(m.inputDType)")
                }
                val = try Dataset.read(vr, input: m.inputField, target: m.targetField, task: m.task, classes: m.classes.count,
                                       length: m.lengthField, tokens: m.network.tokenVocabulary)
                // No samples would be reported as a loss and accuracy of 0, and stop training early.
                guard val!.count > 0 else { throw ToolFailure(v, "no samples to validate on") }
            }
            let samples = try DatasetStream(reader, input: m.inputField, target: m.targetField, task: m.task, classes: m.classes.count,
                                            length: m.lengthField, tokens: m.network.tokenVocabulary)
            // A batch the machine cannot hold is refused before any of it is allocated (the
            // allocation would trap, or the machine swap).
            let need = Trainer.workingBytes(model: m, batchSize: batch, threads: usable)
            let room = OpenBLAS.memoryForWork(threads: usable)
            if need > room {
                let one = Trainer.workingBytes(model: m, batchSize: 1, threads: 1)
                if one > room {
                    throw WorkingMemoryError(modelName, need: need, perSample: one, room: room, advice: "even one sample is too many for this network")
                }
                throw WorkingMemoryError("--batch \(batch)", need: need, perSample: one, room: room, advice: "lower --batch or --threads")
            }
            // The model file is one sample: the weights and the optimizer's two moments. One
            // larger than a stream's batch may be could not be written, and was refused only
            // after the epochs were trained.
            let vectorBytes = (max(m.network.parameterCount, 1) * 4 + 63) / 64 * 64
            let limit = Limits.fromEnvironment.maxBatchBytes
            guard StreamFormat.batchHeaderBytes + 3 * vectorBytes <= limit else {
                throw ToolFailure(modelName, "its \(m.network.parameterCount) parameters, with the optimizer's state, make a model of \(SystemMemory.describe(Double(3 * vectorBytes))), more than the \(limit) bytes a stream's batch may hold (TENSOR_MAX_BATCH_BYTES); at most \((limit - StreamFormat.batchHeaderBytes) / 12) parameters")
            }
            // Initialized only now: the refusals above cost no time writing weights (seconds
            // for a network of half a billion).
            if resume == nil { m.network.initialize(seed: seed ?? 1, scheme: InitScheme(rawValue: initialization ?? "glorot")!) }
            let trainer = Trainer(model: m, batchSize: batch, seed: seed ?? 1, threads: usable)
            // A learning rate decayed below f32's normal numbers trains nothing (and a model
            // with a rate of 0 resumes to nothing): refused now, not after the epochs.
            if !stream, m.optimizerConfig.lrDecay != 1 {
                var rate = m.optimizerConfig.learningRate
                for _ in 0..<(epochs ?? 5) { rate *= m.optimizerConfig.lrDecay }
                if !Float(rate).isNormal { throw decayedAway(rate, epochs: epochs ?? 5) }
            }
            // A resumed run continues the random sequence of the run it resumes: N epochs and
            // M more are then the model of N + M epochs (at one thread count).
            if resume != nil, let r = m.randomState, !trainer.restoreRandomState(r) {
                throw ToolFailure(resume!, "model.random is not a random state")
            }
            // The model and checkpoint are written after an epoch, maybe hours from now: a
            // directory that cannot take them is an error now, not then.
            for path in [output, ckptPath].compactMap({ $0 }) {
                if namesTerminal(path) { throw UsageError("refusing to write a model to a terminal; name a file with -o FILE", location: isStandardOutput(path) ? "stdout" : path) }
                var st = stat()
                if stat(path, &st) == 0 && st.st_mode & S_IFMT == S_IFDIR { throw IOError(name: path, operation: "", code: EISDIR) }
                if stat(path, &st) == 0 && st.st_mode & S_IFMT != S_IFREG { continue }  // a device: written in place
                let dir = URL(fileURLWithPath: path).deletingLastPathComponent().path
                // A file where the directory should be is that, not a permission (access(2)
                // says EACCES for the X_OK a regular file lacks).
                if stat(dir, &st) == 0 && st.st_mode & S_IFMT != S_IFDIR { throw IOError(name: path, operation: "cannot write into \(dir)", code: ENOTDIR) }
                guard access(dir, W_OK | X_OK) == 0 else { throw IOError(name: path, operation: "cannot write into \(dir)", code: errno) }
            }
            var logSink: LogFile? = nil
            if let log { logSink = try LogFile(path: log) }
            let ckpt = ckptPath
            // One run a checkpoint: a second fit of the same -o replaced the first one's
            // checkpoint with its own, then removed it when it ended (the first run's progress
            // gone). The lock dies with the process; its file is removed when fit ends or is
            // interrupted (after SIGKILL a later fit takes it over).
            var ckst = stat()
            let lock = try ckpt.flatMap { stat($0, &ckst) == 0 && ckst.st_mode & S_IFMT != S_IFREG ? nil : try CheckpointLock($0) }  // none beside a device
            defer { lock?.release() }
            // The checkpoint file this run wrote last (each save is a new file, renamed in): the
            // only one it may remove at the end, not one another fit of the same -o wrote since.
            var written: (UInt64, UInt64)?
            // Early stopping's state (the best validation loss and the epochs since it) is the
            // model's, so a resumed run stops where the uninterrupted one would.
            let firstEpoch = m.epoch + 1
            var (best, since) = resume != nil ? m.earlyStopping ?? (.infinity, 0) : (.infinity, 0)

            /// Validates, checkpoints and reports epoch `e`; true when early stopping says stop.
            func endEpoch(_ e: Int, _ r: EpochResult, seconds secs: Double) throws -> Bool {
                let v = val.map { trainer.evaluate($0) }
                let lrUsed = m.optimizer?.config.learningRate ?? m.optimizerConfig.learningRate
                m.epoch = e
                let d = m.optimizerConfig.lrDecay
                if d != 1 {
                    m.optimizerConfig.learningRate *= d
                    m.optimizer?.config.learningRate *= d
                    if !Float(m.optimizerConfig.learningRate).isNormal { throw decayedAway(m.optimizerConfig.learningRate, epochs: e - firstEpoch + 1) }
                }
                m.randomState = trainer.randomState
                if let v {
                    if v.loss < best { best = v.loss; since = 0 } else { since += 1 }
                }
                m.earlyStopping = v == nil ? nil : (best, since)
                if let ckpt {
                    try m.save(to: ckpt)
                    var st = stat()
                    if lstat(ckpt, &st) == 0 { written = (UInt64(st.st_dev), UInt64(st.st_ino)) }
                }
                var line = String(format: "epoch %d: loss %.4f", e, r.loss)
                var json = "{\"epoch\":\(e),\"loss\":\(jsonNumber(r.loss))"
                if let a = r.accuracy { line += String(format: "  accuracy %.4f", a); json += ",\"accuracy\":\(jsonNumber(a))" }
                if let v {
                    line += String(format: "  val_loss %.4f", v.loss)
                    json += ",\"val_loss\":\(jsonNumber(v.loss))"
                    if let a = v.accuracy { line += String(format: "  val_accuracy %.4f", a); json += ",\"val_accuracy\":\(jsonNumber(a))" }
                }
                let rate = Double(r.samples) / max(secs, 1e-9)
                line += String(format: "  %.0f samples/s", rate)
                json += ",\"lr\":\(jsonNumber(lrUsed)),\"samples\":\(r.samples),\"samples_per_second\":\(jsonNumber(rate)),\"seconds\":\(jsonNumber(secs))}"
                if !quiet { logLine("fit: " + line) }
                try logSink?.append(json)
                if let p = patience, v != nil {
                    if since >= p {
                        if !quiet { logLine("fit: stopping early: validation loss has not improved for \(p) epochs") }
                        return true
                    }
                }
                return false
            }

            if stream {
                // One pass: read a few batches at a time and train on them in order.
                let size = epochSize ?? 10_000
                var chunk = samples.empty
                var e = firstEpoch, inEpoch = 0, batches = 0, lossSum = 0.0, correct = 0.0
                var bar = Progress(label: "epoch \(e)", total: size, quiet: quiet)
                var t0 = Date()
                func close() throws -> Bool {
                    bar.finish()
                    let r = EpochResult(loss: lossSum / Double(inEpoch), accuracy: m.task == .regression ? nil : correct / Double(inEpoch), samples: inEpoch)
                    let stop = try endEpoch(e, r, seconds: Date().timeIntervalSince(t0))
                    e += 1
                    (inEpoch, batches, lossSum, correct) = (0, 0, 0, 0)
                    bar = Progress(label: "epoch \(e)", total: size, quiet: quiet)
                    t0 = Date()
                    return stop
                }
                while true {
                    chunk.removeAll()
                    guard try samples.next(min(batch * 16, size - inEpoch), into: &chunk) else { break }
                    let done = inEpoch
                    let r = try trainer.trainEpoch(chunk, epoch: e, shuffle: false, firstBatch: batches) { bar.update(done + $0) }
                    batches += (chunk.count + batch - 1) / batch
                    lossSum += r.loss * Double(chunk.count)
                    correct += (r.accuracy ?? 0) * Double(chunk.count)
                    inEpoch += chunk.count
                    if inEpoch == size, try close() { break }
                }
                guard samples.delivered > 0 else { throw ToolFailure(reader.source.name, "no training samples") }
                if inEpoch > 0 { _ = try close() }
            } else {
                var data = samples.empty
                do {
                    _ = try samples.next(Int.max, into: &data)
                } catch var e as DataMemoryError {
                    e.problem += "; --stream trains on the data as it comes, one batch at a time"
                    throw e
                }
                if val == nil && validationSplit > 0 {
                    // The last n − ⌊n·(1 − f)⌋ samples, as Keras holds out.
                    let cut = Int((Double(data.count) * (1 - validationSplit)).rounded(.down))
                    guard cut < data.count else {
                        throw ToolFailure(reader.source.name, "--validation-split \(validationSplit) of \(data.count) sample\(data.count == 1 ? "" : "s") holds out none; give a larger fraction or a --validation file")
                    }
                    guard cut > 0 else {
                        throw ToolFailure(reader.source.name, "--validation-split \(validationSplit) of \(data.count) sample\(data.count == 1 ? "" : "s") holds out all of them (n − ⌊n·(1 − f)⌋, as Keras counts), leaving none to train on; give a smaller fraction or a --validation file")
                    }
                    val = data.splitOff(at: cut)
                }
                guard data.count > 0 else { throw ToolFailure(reader.source.name, "no training samples") }
                for e in firstEpoch..<firstEpoch + (epochs ?? 5) {
                    let bar = Progress(label: "epoch \(e)", total: data.count, quiet: quiet)
                    let t0 = Date()
                    let r = try trainer.trainEpoch(data, epoch: e) { bar.update($0) }
                    bar.finish()
                    if try endEpoch(e, r, seconds: Date().timeIntervalSince(t0)) { break }
                }
            }
            try m.save(to: output)
            logSink?.keep()
            // The checkpoint goes when training ends well: the file this run wrote, not a device,
            // a link, another run's, or the model this run resumed from (whose loss the user did
            // not ask for).
            var st = stat()
            if let ckpt, let (dev, ino) = written, lstat(ckpt, &st) == 0, st.st_mode & S_IFMT == S_IFREG,
               UInt64(st.st_dev) == dev, UInt64(st.st_ino) == ino, !(resume.map { sameFile(ckpt, $0) } ?? false) { unlink(ckpt) }
        }
    }

    func checkSchema(_ m: Model, _ s: Schema, name: String) throws {
        guard let f = s.field(m.inputField) else { throw ToolFailure(name, "no input field '\(m.inputField)'") }
        let dims = f.shape.dims.isEmpty ? [1] : f.shape.dims
        guard dims == m.network.inputShape else {
            throw ToolFailure(name, "field '\(m.inputField)' is \(f.shape) but the model takes \(m.network.inputShape.map(String.init).joined(separator: "×"))")
        }
        if let want = m.vocabulary, s.metadata("\(m.inputField).vocabulary") != want {
            let got = s.metadata("\(m.inputField).vocabulary").map { "vocabulary (\($0))" } ?? "no vocabulary record"
            throw ToolFailure(name, "field '\(m.inputField)' has \(got) but the model's tokens are of vocabulary (\(want)); tokenize with the same vocabulary (tensor-load --vocab)")
        }
        if m.task == .classification, let c = s.classes(of: m.targetField), !classesFit(data: c, model: m.classes) {
            throw ToolFailure(name, classMismatch(field: m.targetField, data: c, model: m.classes))
        }
        // A regression target holds one value per output.
        if m.task == .regression, let t = s.field(m.targetField), t.shape.count != m.network.outputSize {
            let n = m.network.outputSize
            throw ToolFailure(name, "target field '\(m.targetField)' (\(t.dtype) \(t.shape)) holds \(t.shape.count) value\(t.shape.count == 1 ? "" : "s") a sample but the network predicts \(n)\(resume == nil ? "; end it with 'dense \(t.shape.count)'" : "")")
        }
    }

    func jsonNumber(_ v: Double) -> String { v.isFinite ? String(format: "%.6g", v) : "null" }
}

/// `--log`: JSON lines appended to a file, each written at once (a killed fit keeps its log).
/// It is opened before training, so that a path that cannot be written fails at once, not
/// after the first epoch; a file it had to create is removed again if the run fails (an
/// error, SIGINT, SIGTERM) before the first record.
final class LogFile {
    let fd: Int32
    let path: String
    /// The file this run created (through a symbolic link to nothing, the link's target),
    /// while it is still empty: removed at the end.
    private var created: String?
    init(path: String) throws {
        self.path = path
        if isStandardOutput(path) {
            fd = dup(1)
        } else {
            var d = open(path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0o666)
            if d >= 0 {
                created = path
            } else if errno == EEXIST {
                d = open(path, O_WRONLY | O_APPEND | O_CLOEXEC)
                if d < 0 && errno == ENOENT {  // a symbolic link to nothing: create what it names
                    let target = followingLinks(path)
                    d = open(target, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0o666)
                    if d >= 0 { created = target }
                }
            }
            fd = d
        }
        guard fd >= 0 else { throw IOError(name: path, operation: "", code: errno) }
        if let created { TempFileRegistry.add(created) }
    }
    deinit {
        close(fd)
        if let created {
            TempFileRegistry.remove(created)
            unlink(created)
        }
    }
    /// The run ended well: keep the file, records or not (`--epochs 0`).
    func keep() {
        if let created { TempFileRegistry.remove(created) }
        created = nil
    }
    func append(_ line: String) throws {
        let b = Array((line + "\n").utf8)
        let n = b.withUnsafeBytes { write(fd, $0.baseAddress!, $0.count) }
        guard n == b.count else { throw IOError(name: path, operation: "write", code: n < 0 ? errno : EIO) }
        keep()
    }
}

Fit.mainAsTool()
