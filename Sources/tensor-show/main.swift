// tensor-show: a tensor stream for people (schema, counts, statistics, first samples, a PNG
// grid) and for other programs (CSV on stdout, an .npz file).

import ArgumentParser
import DataSources
import Foundation
import TensorCore
import TensorStream
import ToolSupport

struct TensorShow: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tensor-show",
        abstract: "Describe, verify or export a tensor stream.",
        discussion: """
        Reads the stream from the files named (one after another, as concatenated streams) or \
        from stdin. The whole stream is always read and verified: a cut or corrupt stream is an \
        error even when only a summary is asked for.

        Examples:
          tensor-load x=train-images-idx3-ubyte.gz y=train-labels-idx1-ubyte.gz \\
            | tensor-show
          tensor-show --count data.tns
          tensor-show --csv data.tns > data.csv
          tensor-show --npz data.npz data.tns \\
            && python3 -c 'import numpy; print(numpy.load("data.npz")["x"].shape)'
          tensor-show --png grid.png -n 36 data.tns
        """,
        version: toolVersion)

    @Flag(help: "Verify the stream and print only its sample count.")
    var count = false

    @Flag(help: "Write the stream as CSV to stdout, with a header row.")
    var csv = false

    @Option(help: ArgumentHelp("Write every field as an array into an .npz FILE (numpy.load reads it).", valueName: "file"))
    var npz: String?

    @Option(help: ArgumentHelp("Draw the first samples of an image field as a grid into a PNG FILE.", valueName: "file"))
    var png: String?

    @Option(name: .short, help: ArgumentHelp("Samples to print (default 3) or to draw with --png (default 64).", valueName: "count"))
    var n: Int?

    @Option(help: ArgumentHelp("The image field for --png (default x).", valueName: "name"))
    var field: String?

    @Argument(help: ArgumentHelp("Stream files; stdin when none or \"-\".", valueName: "file"))
    var files: [String] = []

    func validate() throws {
        let modes = [count, csv, npz != nil, png != nil].filter { $0 }.count
        if modes > 1 { throw ValidationError("choose one of --count, --csv, --npz, --png") }
        if let n, n < 0 { throw ValidationError("-n takes a count ≥ 0") }
        if n == 0 && png != nil { throw ValidationError("-n 0 draws nothing: --png takes 1 or more samples") }
        if n != nil && (count || csv || npz != nil) { throw ValidationError("-n does not go with --count, --csv or --npz, which take every sample") }
        if field != nil && png == nil { throw ValidationError("--field goes with --png") }
        try refuseStdinTwice(files.map { ("the input", $0) })
        try refuseSharedFiles(outputs: [("--npz", npz), ("--png", png)], inputs: (files.isEmpty ? ["-"] : files).map { ("the input", $0) })
    }

    func run() throws {
        Tool.run("tensor-show") {
            let sources = try openInputs(files)
            let reader = try StreamReader(sources: sources)
            if count {
                while try reader.next() != nil {}
                try printLine("\(reader.samplesRead)")
            } else if csv {
                let columns = reader.schema.fields.reduce(0) { $0 + $1.shape.count }
                guard columns <= 1 << 24 else {
                    throw ToolFailure(reader.source.name, "a sample has \(columns) values: more than the \(1 << 24) columns --csv writes")
                }
                let header = try Inspect.csvHeader(reader.schema, input: reader.source.name)
                let out = try Output.open(nil, binary: false)
                out.flushWhenWaiting(for: reader)
                try writeLine(header, to: out.sink)
                while let b = try reader.next() { try Inspect.writeCSVRows(b, schema: reader.schema, to: out.sink) }
                try out.commit()
            } else if let npz {
                guard !npz.isEmpty else { throw UsageError("an empty name for an output file", location: "--npz") }
                if namesTerminal(npz) {
                    throw UsageError("refusing to write an .npz archive to a terminal; redirect it (> data.npz) or name a file with --npz FILE", location: isStandardOutput(npz) ? "stdout" : npz)
                }
                let w = try NPZWriter(path: npz, schema: reader.schema)
                do {
                    while let b = try reader.next() { try w.add(b) }
                    try w.commit()
                } catch {
                    w.abandon()
                    throw error
                }
            } else if let png {
                let field = self.field ?? "x"
                guard let fi = reader.schema.index(of: field) else {
                    throw UsageError("the stream has no field '\(field)' (fields: \(reader.schema.fields.map(\.name).joined(separator: ", ")))", location: "--field")
                }
                let grid = try ImageGrid(field: reader.schema.fields[fi], limit: n ?? 64, input: reader.source.name)
                while let b = try reader.next() { if !grid.isFull { try grid.add(b.field(fi), count: b.count) } }
                guard reader.samplesRead > 0 else { throw ToolFailure(reader.source.name, "the stream has no samples to draw") }
                let bytes = try grid.png()
                let out = try Output.open(png, what: "a PNG image", hint: "redirect it (> grid.png) or name a file with --png FILE")
                do {
                    try bytes.withUnsafeBytes { try out.sink.write($0) }
                    try out.commit()
                } catch {
                    out.abandon()
                    throw error
                }
            } else {
                try summary(reader)
            }
        }
    }

    func printLine(_ s: String) throws {
        let out = try Output.open(nil, binary: false)
        try writeLine(s, to: out.sink)
        try out.commit()
    }

    func writeLine(_ s: String, to sink: ByteSink) throws {
        var l = s + "\n"
        try l.withUTF8 { try sink.write(UnsafeRawBufferPointer($0)) }
    }

    func summary(_ reader: StreamReader) throws {
        let schema = reader.schema
        let show = n ?? 3
        var stats = [FieldStats](repeating: FieldStats(), count: schema.fields.count)
        var firsts: [String] = []
        // Once, not per sample shown: a list of 140,000 names took 55 ms to split each time.
        let classes = schema.fields.map { schema.classes(of: $0.name) }
        while let b = try reader.next() {
            for (i, f) in schema.fields.enumerated() {
                stats[i].add(b.field(i), dtype: f.dtype)
            }
            var s = 0
            while firsts.count < show && s < b.count {
                let parts = schema.fields.enumerated().map { i, f in
                    "\(f.name)=" + Inspect.sampleText(b.field(i).baseAddress! + s * f.sampleBytes, field: f, classes: classes[i])
                }
                firsts.append("  [\(reader.samplesRead - b.count + s)] " + parts.joined(separator: "  "))
                s += 1
            }
        }
        let out = try Output.open(nil, binary: false)
        var text = "samples: \(reader.samplesRead)\n"
        text += "fields:\n"
        let width = schema.fields.map(\.name.count).max() ?? 1
        for (i, f) in schema.fields.enumerated() {
            let st = stats[i]
            var line = "  " + f.name.padding(toLength: width, withPad: " ", startingAt: 0)
            line += "  \(f.dtype)  \(f.shape)"
            line += st.text(dtype: f.dtype)
            if f.dtype.isFloatingPoint { line += "  nan \(st.nanCount)" + (st.infCount > 0 ? "  inf \(st.infCount)" : "") }
            if let c = schema.classes(of: f.name) { line += "  \(c.count) classes" }
            text += line + "\n"
        }
        if !schema.metadata.isEmpty {
            text += "metadata:\n"
            for (k, v) in schema.metadata {
                let shown = k.hasSuffix(".classes") ? displayNames(Schema.lines(v)) : escapedForDisplay(v)
                let cut = shown.count > 200 ? String(shown.prefix(200)) + "…" : shown
                text += "  \(escapedForDisplay(k)): \(cut)\n"
            }
        }
        if !firsts.isEmpty {
            text += "first samples:\n" + firsts.joined(separator: "\n") + "\n"
        }
        var t = text
        try t.withUTF8 { try out.sink.write(UnsafeRawBufferPointer($0)) }
        try out.commit()
    }
}

TensorShow.mainAsTool()
