// predict: applies a model to a stream; passes every field through and adds p and yhat.

import ArgumentParser
import Foundation
import NeuralNet
import Compute
import TensorCore
import TensorStream
import ToolSupport

struct Predict: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "predict",
        abstract: "Apply a model to a tensor stream: add class probabilities p and predictions yhat.",
        discussion: """
        Streams in constant memory. Every input field is passed through; p (f32, one per class) \
        and yhat (the predicted class, i64: the most probable, the lowest-numbered on a tie, or \
        for a binary model 1 when p ≥ 0.5; for regression the predicted value, f32) are added, \
        the names score reads by default. Raw input gets the model's own normalization (the \
        transform its training data had); an input that does not match what the model was \
        trained on (field, dtype, shape, normalization, class names) is refused, naming both.

        Examples:
          tensor-load x=t10k-images-idx3-ubyte.gz y=t10k-labels-idx1-ubyte.gz \\
            | normalize --scale 255 | predict -m fashion.model | tensor-show
          tensor-load photo.png | predict -m fashion.model --format text
        """,
        version: toolVersion)

    @Option(name: .shortAndLong, help: ArgumentHelp("The model file.", valueName: "file"))
    var model: String

    @Option(name: .shortAndLong, help: ArgumentHelp("Write the stream to FILE (atomically) instead of stdout.", valueName: "file"))
    var output: String?

    @Option(help: ArgumentHelp("stream, csv or text.", valueName: "fmt"))
    var format: String = "stream"

    @Option(help: "Threads for the math (default: all cores).")
    var threads: Int?

    @Argument(help: ArgumentHelp("The input stream; stdin when none or \"-\".", valueName: "file"))
    var file: String?

    func validate() throws {
        if !["stream", "csv", "text"].contains(format) { throw ValidationError("--format takes stream, csv or text") }
        if let t = threads, t < 1 || t > 256 { throw ValidationError("--threads takes 1…256") }
        try refuseStdinTwice([("-m", model), ("the input", file ?? "-")])
        if let o = output, sameFile(o, model) { throw ValidationError("-o and -m name the same file, \(o): the predictions would replace the model") }
        // A stream written over its input is an in-place edit (the fields, and p and yhat);
        // a CSV or text table over it would lose the data set.
        if format != "stream" { try refuseSharedFiles(outputs: [("-o", output ?? "-")], inputs: [("the input", file ?? "-")]) }
    }

    func run() throws {
        Tool.run("predict") {
            if let problem = OpenBLAS.load() { throw ToolFailure(OpenBLAS.library, problem, kind: .internal) }
            // Each thread that calls OpenBLAS maps a large buffer, and OpenBLAS retries a failed
            // mapping forever: under `ulimit -v`, use only the threads that fit, or stop here.
            let wanted = threads ?? ProcessInfo.processInfo.activeProcessorCount
            let usable = OpenBLAS.threadsWithinAddressLimit(wanted)
            guard usable >= 1 else {
                throw ToolFailure("ulimit -v", "the address-space limit leaves too little room for OpenBLAS (about \(OpenBLAS.bytesPerThread >> 20) MiB per thread); raise it", kind: .internal)
            }
            if usable < wanted { Tool.warn("predict", "ulimit -v leaves room for \(usable) of \(wanted) threads") }
            let m = try Model.load(from: try FileSource.open(model))
            let reader = try StreamReader(source: try FileSource.open(file ?? "-"))
            let name = reader.source.name
            let predictor = try Predictor(model: m, schema: reader.schema, input: name, threads: usable, modelName: model,
                                          memory: OpenBLAS.memoryForWork(threads: usable))
            var schema = reader.schema
            schema.fields += predictor.outputFields
            if !m.classes.isEmpty && m.task != .regression { schema.setClasses(m.classes, of: "yhat") }
            // Labels the input only numbered are the model's classes: named as the model names
            // them, so that score finds one class list in y and yhat.
            if m.task == .classification, let c = schema.classes(of: m.targetField), c != m.classes, classesFit(data: c, model: m.classes) {
                schema.setClasses(m.classes, of: m.targetField)
            }
            let out = try Output.open(output, binary: format == "stream")
            out.flushWhenWaiting(for: reader)
            do {
                let writer = format == "stream" ? try StreamWriter(sink: out.sink, schema: schema) : nil
                if format == "csv" {
                    // The columns tensor-show --csv names the stream's p and yhat: p_0… (a
                    // class's probability; binary: p_0, class 1's, p being of shape 1), then
                    // yhat, or yhat_0… for a regression with several outputs.
                    let k = predictor.outputs
                    let cols: [String]
                    switch m.task {
                    case .classification, .binary: cols = (0..<k).map { "p_\($0)" } + ["yhat"]
                    case .regression: cols = k == 1 ? ["yhat"] : (0..<k).map { "yhat_\($0)" }
                    }
                    try write(cols.joined(separator: ",") + "\n", to: out.sink)
                }
                var yhat = [UInt8](repeating: 0, count: 8)
                var done = 0
                // An input batch is predicted, and written, in slices of about 32 MiB of output:
                // its outputs (a model of 65536 of them on a batch of a million scalars) were
                // held, and written as one batch, whatever their size.
                let outBytes = schema.fields.reduce(0) { $0 + $1.sampleBytes }
                let slice = max(1, (32 << 20) / max(1, outBytes))
                while let b = try reader.next() {
                    let xf = reader.schema.fields[predictor.inputIndex]
                    let k = predictor.outputs
                    var input = b.field(predictor.inputIndex), dtype = xf.dtype
                    if let t = predictor.inputTransform {
                        let (views, bad) = try t.apply(b, input: name)
                        if let bad {
                            throw ToolFailure(name, "field '\(xf.name)' sample \(done + bad.sample) \(bad.overflow ? "becomes a NaN or infinity under the model's normalization" : "holds a NaN or infinity")")
                        }
                        input = views[predictor.inputIndex]
                        dtype = t.output.fields[predictor.inputIndex].dtype
                    }
                    /// Samples `r` of a field's payload, `bytes` a sample.
                    func part(_ v: UnsafeRawBufferPointer, _ r: Range<Int>, _ bytes: Int) -> UnsafeRawBufferPointer {
                        UnsafeRawBufferPointer(rebasing: v[r.lowerBound * bytes..<r.upperBound * bytes])
                    }
                    for start in stride(from: 0, to: b.count, by: slice) {
                        let r = start..<min(b.count, start + slice), n = r.count
                        let ybytes = m.task == .regression ? n * k * 4 : n * 8
                        if yhat.count < ybytes { yhat = [UInt8](repeating: 0, count: ybytes) }
                        try yhat.withUnsafeMutableBytes { yb in
                            let lengths = predictor.lengthIndex.map { (part(b.field($0), r, reader.schema.fields[$0].sampleBytes), reader.schema.fields[$0].dtype) }
                            let p = try predictor.run(part(input, r, xf.shape.count * dtype.size), dtype: dtype, count: n, firstSample: done + start,
                                                      name: name, lengths: lengths, yhat: yb.baseAddress!)
                            if let writer {
                                var views = reader.schema.fields.indices.map { part(b.field($0), r, reader.schema.fields[$0].sampleBytes) }
                                if m.task != .regression { views.append(UnsafeRawBufferPointer(start: p, count: n * k * 4)) }
                                views.append(UnsafeRawBufferPointer(start: yb.baseAddress!, count: ybytes))
                                try writer.write(count: n, fields: views)
                            } else {
                                try writeText(p: p, yhat: yb.baseAddress!, count: n, first: done + start, model: m, k: k, sink: out.sink)
                            }
                        }
                    }
                    done += b.count
                }
                try writer?.finish()
                try out.commit()
            } catch {
                out.abandon()
                throw error
            }
        }
    }

    func write(_ s: String, to sink: ByteSink) throws {
        var t = s
        try t.withUTF8 { try sink.write(UnsafeRawBufferPointer($0)) }
    }

    func writeText(p: UnsafePointer<Float>, yhat: UnsafeRawPointer, count: Int, first: Int, model m: Model, k: Int, sink: ByteSink) throws {
        var s = ""
        for n in 0..<count {
            if m.task == .regression {
                let v = (0..<k).map { decimalText(yhat.load(fromByteOffset: 4 * (n * k + $0), as: Float.self)) }
                s += format == "csv" ? v.joined(separator: ",") + "\n" : "\(first + n)\t" + v.joined(separator: " ") + "\n"
                continue
            }
            let c = Int(yhat.load(fromByteOffset: 8 * n, as: Int64.self))
            if format == "csv" {
                s += (0..<k).map { decimalText(p[n * k + $0]) }.joined(separator: ",") + ",\(c)\n"
            } else {
                let pc = m.task == .binary ? (c == 1 ? p[n] : 1 - p[n]) : p[n * k + c]
                let label = c < m.classes.count ? escapedForDisplay(m.classes[c]) : String(c)
                s += "\(first + n)\t\(label)\t" + (pc.isNaN ? "nan" : String(format: "%.4f", pc)) + "\n"
            }
        }
        try write(s, to: sink)
    }
}

Predict.mainAsTool()
