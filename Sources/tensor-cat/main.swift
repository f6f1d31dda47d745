// tensor-cat: concatenates streams into one, optionally keeping some fields or samples.

import ArgumentParser
import Foundation
import TensorStream
import ToolSupport

struct TensorCat: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tensor-cat",
        abstract: "Concatenate tensor streams into one, keeping chosen fields or the first samples.",
        discussion: """
        Reads the streams named (stdin when none or "-"), which must have equal schemas, checks \
        every record, and writes one stream with a single header and end record. Batches pass \
        through byte for byte unless --fields or --head changes them.

        Examples:
          tensor-cat part1.tns part2.tns -o all.tns
          tensor-cat --fields x < train.tns | tensor-show
          tensor-load x=images.gz y=labels.gz | tensor-cat --head 100 \\
            | tensor-show --png first.png -n 100
        """,
        version: toolVersion)

    @Option(name: .shortAndLong, help: ArgumentHelp("Write the stream to FILE (atomically) instead of stdout.", valueName: "file"))
    var output: String?

    @Option(help: ArgumentHelp("Keep only these fields, comma-separated, in this order.", valueName: "list"))
    var fields: String?

    @Option(help: ArgumentHelp("Keep only the first N samples (the input is still read and verified to its end).", valueName: "n"))
    var head: Int?

    @Argument(help: ArgumentHelp("Stream files; stdin when none or \"-\".", valueName: "file"))
    var files: [String] = []

    func validate() throws {
        if let head, head < 0 { throw ValidationError("--head takes a count ≥ 0") }
        if let f = fields, f.split(separator: ",", omittingEmptySubsequences: false).contains(where: { $0.allSatisfy(\.isWhitespace) }) {
            throw ValidationError(f.contains(",") ? "--fields '\(f)' has an empty name" : "--fields takes a comma-separated list of names")
        }
        try refuseStdinTwice(files.map { ("the input", $0) })
        if let f = fields { try refuseRepeatedNames(f.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }, option: "--fields") }
    }

    func run() throws {
        Tool.run("tensor-cat") {
            let sources = try openInputs(files)
            let reader = try StreamReader(sources: sources)
            var schema = reader.schema
            var indices: [Int]?
            if let f = fields {
                let names = f.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
                guard let (s, idx) = schema.selecting(names) else {
                    throw UsageError("no such field among \(schema.fields.map(\.name).joined(separator: ", "))", location: "--fields \(f)")
                }
                schema = s
                indices = idx
            }
            let out = try Output.open(output)
            out.flushWhenWaiting(for: reader)
            do {
                let writer = try StreamWriter(sink: out.sink, schema: schema)
                try copyStream(from: reader, to: writer, fieldIndices: indices, limit: head)
                try out.commit()
            } catch {
                out.abandon()
                throw error
            }
        }
    }
}

TensorCat.mainAsTool()
