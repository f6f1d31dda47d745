// normalize: scale, standardize or min–max fields, learning the statistics from the stream
// (--save) or applying saved ones (--load); records the transform in the stream's metadata.

import ArgumentParser
import Foundation
import Preprocess
import TensorCore
import TensorStream
import ToolSupport

struct Normalize: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "normalize",
        abstract: "Scale, standardize or min-max fields of a tensor stream; save and reuse the statistics.",
        discussion: """
        Transforms the chosen fields (default x) and writes them as f32 (or --dtype f64); other \
        fields pass through. --standardize and --minmax learn per-feature (or --per-channel) \
        statistics from the stream itself, spilling it to a temporary file so that it may be \
        larger than memory; --save keeps them and --load applies them to other data, exactly. \
        The transform from the raw data is recorded as FIELD.normalize; fit stores it in the \
        model, and predict applies it to raw input and refuses input normalized differently.

        Examples:
          tensor-load x=train-images-idx3-ubyte.gz y=train-labels-idx1-ubyte.gz \\
            | normalize --scale 255 | tensor-show
          normalize --standardize --save train.stats -o train-std.tns train.tns
          normalize --load train.stats -o test-std.tns test.tns
        """,
        version: toolVersion)

    @Option(parsing: .unconditional, help: ArgumentHelp("Divide by this number (255 maps u8 pixels to 0…1).", valueName: "x"))
    var scale: Double?

    @Flag(help: "Subtract the mean and divide by the standard deviation.")
    var standardize = false

    @Flag(help: "Map each feature's minimum and maximum to --range.")
    var minmax = false

    @Option(parsing: .unconditional, help: ArgumentHelp("The target range of --minmax (default 0,1).", valueName: "lo,hi"))
    var range: String?

    @Flag(name: .customLong("per-channel"), help: "Statistics per channel (the last axis) instead of per feature.")
    var perChannel = false

    @Option(help: ArgumentHelp("Write the learned transform to FILE (atomically) for --load.", valueName: "file"))
    var save: String?

    @Option(help: ArgumentHelp("Apply the transform saved in FILE by --save.", valueName: "file"))
    var load: String?

    @Option(name: .customLong("field"), help: ArgumentHelp("A field to transform (repeatable; default x).", valueName: "name"))
    var fields: [String] = []

    @Option(help: ArgumentHelp("Output dtype of the transformed fields: f32 or f64.", valueName: "dtype"))
    var dtype: String = "f32"

    @Option(name: .shortAndLong, help: ArgumentHelp("Write the stream to FILE (atomically) instead of stdout.", valueName: "file"))
    var output: String?

    @Argument(help: ArgumentHelp("The input stream; stdin when none or \"-\".", valueName: "file"))
    var file: String?

    var bounds: (Double, Double)? {
        let p = (range ?? "0,1").split(separator: ",", omittingEmptySubsequences: false).map { Double($0.trimmingCharacters(in: .whitespaces)) }
        guard p.count == 2, let lo = p[0], let hi = p[1], lo.isFinite, hi.isFinite, lo < hi, (hi - lo).isFinite else { return nil }
        return (lo, hi)
    }

    func validate() throws {
        let methods = [scale != nil, standardize, minmax, load != nil].filter { $0 }.count
        if methods != 1 { throw ValidationError("choose one of --scale, --standardize, --minmax, --load") }
        if let s = scale, !(s.isFinite && s != 0) { throw ValidationError("--scale takes a finite, nonzero number") }
        if let s = scale, dtype != "f64", Float(1 / s) == 0 {
            throw ValidationError("--scale \(s): every value would become 0 in f32 (1/\(s) underflows); use --dtype f64")
        }
        if bounds == nil { throw ValidationError("--range takes LO,HI with LO < HI, both finite and HI − LO too") }
        if range != nil && !minmax { throw ValidationError("--range goes with --minmax") }
        if load != nil && (save != nil || perChannel || !fields.isEmpty) {
            throw ValidationError("--load takes its fields and transform from the file: no --save, --per-channel or --field")
        }
        try refuseRepeatedNames(fields, option: "--field")
        try refuseStdinTwice([("--load", load), ("the input", file ?? "-")])
        if perChannel && !(standardize || minmax) { throw ValidationError("--per-channel goes with --standardize or --minmax") }
        if dtype != "f32" && dtype != "f64" { throw ValidationError("--dtype takes f32 or f64") }
        try refuseSharedFiles(outputs: [("-o", output ?? "-"), ("--save", save)], inputs: [("the input", file ?? "-"), ("--load", load)], inPlace: "-o")
    }

    var method: NormalizeMethod {
        if let scale { return .scale(scale) }
        if standardize { return .standardize }
        let (lo, hi) = bounds!
        return .minmax(lo: lo, hi: hi)
    }

    func run() throws {
        Tool.run("normalize") {
            var reader = try StreamReader(source: try FileSource.open(file ?? "-"))
            let names = fields.isEmpty ? ["x"] : fields
            var steps: [(field: String, spec: NormalizeSpec)] = []
            var saved: [StatisticsFile.Entry] = []
            var spill: SpillFile?
            // Token ids are indices into a vocabulary: scaled, they are ids of nothing.
            // Named classes likewise: scaled, they kept their class list as f32 fractions, and
            // fit blamed the network ("'dense classes' needs a class count"). Labels only
            // numbered ("0"…, a CSV column of small integers) may be a regression's target,
            // and are normalized; fit then asks which task is meant.
            func refuseIndices(_ name: String) throws {
                if reader.schema.metadata("\(name).vocabulary") != nil {
                    throw ToolFailure(reader.source.name, "field '\(name)' holds token ids (\(name).vocabulary), which normalizing would make into other numbers")
                }
                if let c = reader.schema.classes(of: name), !Schema.areIndexNames(c) {
                    throw ToolFailure(reader.source.name, "field '\(name)' holds class labels (\(name).classes), which normalizing would make into other numbers; normalize the input field")
                }
            }
            for name in names where load == nil { try refuseIndices(name) }

            if let load {
                let stats = try StatisticsFile.read(try FileSource.open(load))
                for e in stats.entries {
                    let name = e.field.name
                    guard let f = reader.schema.field(name) else {
                        throw ToolFailure(reader.source.name, "no field '\(name)', which \(load) normalizes")
                    }
                    try refuseIndices(name)
                    guard f.dtype == e.field.dtype, f.shape == e.field.shape else {
                        throw ToolFailure(reader.source.name, "field '\(name)' is \(f.dtype) \(f.shape) but \(load) was learned on \(e.field.dtype) \(e.field.shape)")
                    }
                    let has = reader.schema.metadata("\(name).normalize")
                    guard has == e.input else {
                        throw ToolFailure(reader.source.name, "field '\(name)' is normalized as (\(brief(has))) but \(load) was learned on data normalized as (\(brief(e.input)))")
                    }
                    steps.append((name, e.step))
                }
            } else {
                for name in names where reader.schema.field(name) == nil {
                    throw UsageError("the stream has no field '\(name)' (fields: \(reader.schema.fields.map(\.name).joined(separator: ", ")))", location: "--field")
                }
                let fs = names.map { reader.schema.field($0)! }
                if method.needsStatistics {
                    if !perChannel, let big = fs.first(where: { $0.shape.count > FieldStatistics.maxFeatures }) {
                        throw UsageError("field '\(big.name)' has \(big.shape.count) values a sample, and per-feature statistics of more than \(FieldStatistics.maxFeatures) do not fit a normalization record; use --per-channel",
                                         location: standardize ? "--standardize" : "--minmax")
                    }
                    // Made with the first batch: a stream of no samples allocates nothing.
                    var stats: [FieldStatistics] = []
                    // Pass 1: statistics, with the stream copied to a spill file for pass 2.
                    let s = try SpillFile()
                    let copy = try StreamWriter(sink: s.sink(), schema: reader.schema)
                    while let b = try reader.next() {
                        if stats.isEmpty { stats = fs.map { FieldStatistics(shape: $0.shape, perChannel: perChannel) } }
                        for (j, name) in names.enumerated() {
                            let i = reader.schema.index(of: name)!
                            if let bad = stats[j].add(b.field(i), dtype: fs[j].dtype, count: b.count) {
                                throw ToolFailure(reader.source.name, "field '\(name)' sample \(reader.samplesRead - b.count + bad) holds a NaN or infinity")
                            }
                        }
                        try copy.write(b)
                    }
                    try copy.finish()
                    let samples = reader.samplesRead
                    if samples == 0 { throw ToolFailure(reader.source.name, "no samples to learn statistics from") }
                    reader = try StreamReader(source: try s.rewound())
                    spill = s
                    steps = names.enumerated().map { ($0.element, stats[$0.offset].spec(method, samples: samples)) }
                    // A variance or range beyond f64 gives a multiplier of NaN or 0; a range
                    // too narrow for a wide --range, one of infinity.
                    if let (name, spec) = steps.first(where: { !$0.spec.mul.allSatisfy { $0.isFinite && $0 != 0 } || !$0.spec.shift.allSatisfy(\.isFinite) }) {
                        let what = standardize ? "variance" : "range"
                        if spec.mul.contains(where: { $0.isInfinite }) {
                            throw ToolFailure(file ?? "stdin", "field '\(name)': mapping its range onto --range \(range ?? "0,1") takes a multiplier beyond f64")
                        }
                        if spec.mul.allSatisfy({ $0.isFinite && $0 != 0 }) {
                            throw ToolFailure(file ?? "stdin", "field '\(name)': mapping it onto --range \(range ?? "0,1") takes a shift beyond f64")
                        }
                        throw ToolFailure(file ?? "stdin", "field '\(name)': its \(what) overflows f64 (values beyond about ±\(standardize ? "1.3e154" : "9e307"))")
                    }
                } else {
                    steps = names.map { ($0, method.spec) }
                }
                saved = zip(fs, steps).map { StatisticsFile.Entry(field: $0, input: reader.schema.metadata("\($0.name).normalize"), step: $1.spec) }
            }

            let t: FieldTransform
            do {
                t = try FieldTransform(schema: reader.schema, steps: steps, dtype: dtype == "f64" ? .f64 : .f32)
            } catch let e as StreamError {
                throw ToolFailure(file ?? "stdin", e.problem)
            }
            let out = try Output.open(output)
            // Statistics are learned from the whole input first; a scaling streams.
            if spill == nil { out.flushWhenWaiting(for: reader) }
            let statsOut = try save.map { try Output.open($0, what: "a statistics file", hint: "name a file with --save FILE") }
            do {
                let writer = try StreamWriter(sink: out.sink, schema: t.output)
                while let b = try reader.next() {
                    let (views, bad) = try t.apply(b, input: file ?? "stdin")
                    if let bad {
                        let what = bad.overflow ? "becomes a NaN or infinity under the transform, out of \(t.output.fields[bad.field].dtype)'s range" : "holds a NaN or infinity"
                        throw ToolFailure(file ?? "stdin", "field '\(t.input.fields[bad.field].name)' sample \(reader.samplesRead - b.count + bad.sample) \(what)")
                    }
                    try writer.write(count: b.count, fields: views)
                }
                if let statsOut { try StatisticsFile(entries: saved).write(to: statsOut.sink) }
                try out.commitBeforeEnd(statsOut)
                try writer.finish()
                // The stream and its statistics are one result: both synced before either
                // replaces its file, and renamed together, so an error leaves the old pair.
                try Output.commitTogether([out, statsOut])
            } catch {
                out.abandon()
                statsOut?.abandon()
                throw error
            }
            withExtendedLifetime(spill) {}
        }
    }

    func brief(_ record: String?) -> String {
        guard let r = record else { return "raw" }
        return NormalizeSpec(encoded: r)?.description ?? String(r.prefix(40))
    }
}

extension NormalizeMethod {
    /// The transform of a method that needs no statistics.
    var spec: NormalizeSpec {
        if case .scale(let d) = self { return .scale(d) }
        preconditionFailure("statistics needed")  // trap-ok: callers check needsStatistics first
    }
}

Normalize.mainAsTool()
