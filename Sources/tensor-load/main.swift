// tensor-load: turns data files (IDX, CSV/TSV, NPY/NPZ, CIFAR, PNG/JPEG) into a tensor stream.

import ArgumentParser
import DataSources
import Foundation
import ToolSupport

struct TensorLoad: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tensor-load",
        abstract: "Read data files and write one tensor stream.",
        discussion: """
        Each operand is FILE or NAME=FILE; NAME renames the field of a single-field input. Several \
        inputs become the fields of one stream and must hold the same number of samples. "-" is \
        standard input. Compressed inputs (.gz, verified; .bz2, .xz, .zst) are read directly.

        Examples:
          tensor-load x=train-images-idx3-ubyte.gz y=train-labels-idx1-ubyte.gz \\
            | tensor-show
          tensor-load --label species iris.csv -o iris.tns
          tensor-load --split test cifar-10-binary.tar.gz | tensor-show --png grid.png
          tensor-load photos/ | tensor-show        # one sub-directory per class
        """,
        version: toolVersion)

    @Option(name: .shortAndLong, help: ArgumentHelp("Write the stream to FILE (atomically) instead of stdout.", valueName: "file"))
    var output: String?

    @Option(help: ArgumentHelp("Input format: idx, csv, tsv, npy, npz, cifar10, cifar100, image (default: from content, then name).", valueName: "fmt"))
    var format: String?

    @Option(help: ArgumentHelp("CSV/TSV: the label column, by header name or 1-based index; it becomes field y.", valueName: "column"))
    var label: String?

    @Option(help: ArgumentHelp("Class names for field y: comma-separated, or @FILE with one per line.", valueName: "list"))
    var classes: String?

    @Option(help: ArgumentHelp("CSV: the cell separator (default: comma, or tab for .tsv).", valueName: "c"))
    var delimiter: String?

    @Option(help: ArgumentHelp("CIFAR archives: train (data_batch_1..5) or test (test_batch).", valueName: "split"))
    var split: String = "train"

    @Option(help: ArgumentHelp("Images: convert to 1, 3 or 4 channels.", valueName: "n"))
    var channels: Int?

    @Argument(help: ArgumentHelp("Inputs, [NAME=]FILE; stdin when none.", valueName: "file"))
    var inputs: [String] = []

    func validate() throws {
        if let f = format, InputFormat(rawValue: f) == nil {
            throw ValidationError("unknown --format '\(f)' (idx, csv, tsv, npy, npz, cifar10, cifar100, image)")
        }
        if let d = delimiter, d.utf8.count != 1 && d != "\\t" { throw ValidationError("--delimiter takes one character") }
        if let c = channels, ![1, 3, 4].contains(c) { throw ValidationError("--channels takes 1, 3 or 4") }
        if split != "train" && split != "test" { throw ValidationError("--split takes train or test") }
    }

    func run() throws {
        Tool.run("tensor-load") {
            var opts = LoadOptions()
            opts.format = format.flatMap(InputFormat.init(rawValue:))
            opts.label = label
            opts.delimiter = delimiter.map { $0 == "\\t" ? 9 : $0.utf8.first! }
            opts.split = split
            opts.channels = channels
            let names = try classes.map(parseClasses)
            let specs = (inputs.isEmpty ? ["-"] : inputs).map(InputSpec.init)
            let sources = try specs.map { try Loader.open($0, options: opts) }
            let out = try Output.open(output)
            do {
                try Loader.writeStream(sources, classes: names, to: out.sink)
                try out.commit()
            } catch {
                out.abandon()
                throw error
            }
        }
    }

    func parseClasses(_ s: String) throws -> [String] {
        if s.hasPrefix("@") {
            let path = String(s.dropFirst())
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw ToolFailure(path, "cannot read the class list", kind: .missingInput)
            }
            return text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }
        return s.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
    }
}

TensorLoad.main()
