// normalize: scales fields to f32 and records the transform in the stream's metadata.

import ArgumentParser
import Foundation
import TensorStream
import ToolSupport

struct Normalize: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "normalize",
        abstract: "Scale fields of a tensor stream to f32 and record the transform.",
        discussion: """
        Divides the chosen fields (default x) by a constant and writes them as f32; other fields \
        pass through. The transform is recorded as FIELD.normalize in the metadata; fit stores \
        it in the model and predict refuses input normalized differently. Streams in constant \
        memory.

        Examples:
          tensor-load x=train-images-idx3-ubyte.gz y=train-labels-idx1-ubyte.gz \\
            | normalize --scale 255 | tensor-show
          normalize --scale 255 --field x -o train-f32.tns train.tns
        """,
        version: toolVersion)

    @Option(help: ArgumentHelp("Divide by this number (255 maps u8 pixels to 0…1).", valueName: "x"))
    var scale: Double

    @Option(name: .customLong("field"), help: ArgumentHelp("A field to scale (repeatable; default x).", valueName: "name"))
    var fields: [String] = []

    @Option(name: .shortAndLong, help: ArgumentHelp("Write the stream to FILE (atomically) instead of stdout.", valueName: "file"))
    var output: String?

    @Argument(help: ArgumentHelp("The input stream; stdin when none or \"-\".", valueName: "file"))
    var file: String?

    func validate() throws {
        if !(scale.isFinite && scale != 0) { throw ValidationError("--scale takes a finite, nonzero number") }
    }

    func run() throws {
        Tool.run("normalize") {
            let reader = try StreamReader(source: try FileSource.open(file ?? "-"))
            let t: ScaleTransform
            do {
                t = try ScaleTransform(schema: reader.schema, fields: fields.isEmpty ? ["x"] : fields, divisor: scale)
            } catch let e as StreamError {
                throw UsageError(e.problem, location: "--field")
            }
            let out = try Output.open(output)
            do {
                let writer = try StreamWriter(sink: out.sink, schema: t.output)
                while let b = try reader.next() {
                    let (views, bad) = t.apply(b)
                    if let bad {
                        throw ToolFailure(reader.source.name, "field '\(t.input.fields[bad.field].name)' sample \(reader.samplesRead - b.count + bad.sample) holds a NaN or infinity")
                    }
                    try writer.write(count: b.count, fields: views)
                }
                try writer.finish()
                try out.commit()
            } catch {
                out.abandon()
                throw error
            }
        }
    }
}

Normalize.main()
