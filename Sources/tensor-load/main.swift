// tensor-load: turns data files (IDX, CSV/TSV, NPY/NPZ, CIFAR, PNG/JPEG, text) into a tensor stream.

import ArgumentParser
import DataSources
import TensorCore
import Foundation
import TensorStream
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
          tensor-load --resize 28x28 --channels 1 photo.png | normalize --scale 255 \\
            | predict -m fashion.model --format text

        Text (--text): documents as LABEL<TAB>TEXT lines, a CSV table (--text-column, --label) \
        or a directory with one sub-directory per class become x (i32 token ids, padded with 0 \
        to --max-len), y (the class) and len (the number of real tokens). Id 1 is any unknown \
        token. A vocabulary is learned from the input (saved with --save-vocab), or a saved one \
        is applied with --vocab, which also fixes the class list:
          tensor-load --text train.tsv --tokenizer bpe --max-len 200 \\
            --save-vocab reviews.vocab -o train.tns
          tensor-load --text test.tsv --vocab reviews.vocab --max-len 200 -o test.tns
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

    @Option(help: ArgumentHelp("CSV: the cell separator (default: comma; tab for .tsv, and for a header row with tabs but no commas).", valueName: "c"))
    var delimiter: String?

    @Option(help: ArgumentHelp("CIFAR archives: train (data_batch_1..5, the default) or test (test_batch).", valueName: "split"))
    var split: String?

    @Option(help: ArgumentHelp("Images: convert to 1, 3 or 4 channels.", valueName: "n"))
    var channels: Int?

    @Option(help: ArgumentHelp("Images: resample each to WIDTHxHEIGHT pixels (Pillow's bilinear filter, antialiased when shrinking; the aspect ratio is not kept).", valueName: "WxH"))
    var resize: String?

    @Option(help: ArgumentHelp("Text: read documents from FILE (LABEL<TAB>TEXT lines, a CSV table, or a directory of class sub-directories) instead of operands.", valueName: "file"))
    var text: String?

    @Option(help: ArgumentHelp("Text: char, word or bpe (default: the one in --vocab, else word).", valueName: "kind"))
    var tokenizer: String?

    @Option(help: ArgumentHelp("Text: tokens per document; longer ones are cut, shorter ones padded with id 0.", valueName: "n"))
    var maxLen: Int?

    @Option(help: ArgumentHelp("Text: learn the vocabulary from the input and save it to FILE (atomically).", valueName: "file"))
    var saveVocab: String?

    @Option(help: ArgumentHelp("Text: apply the vocabulary and class list saved in FILE instead of learning one.", valueName: "file"))
    var vocab: String?

    @Option(help: ArgumentHelp("Text: the most ids to learn, the 2 reserved included (default: char 1000, word 20000, bpe 8000).", valueName: "n"))
    var vocabSize: Int?

    @Option(help: ArgumentHelp("Text: how often a token (bpe: a starting character, and a pair to merge) must occur to be learned (default: char 1, word and bpe 2).", valueName: "n"))
    var minCount: Int?

    @Option(help: ArgumentHelp("Text, CSV: the text column, by header name or 1-based index (default: 'text').", valueName: "column"))
    var textColumn: String?

    @Argument(help: ArgumentHelp("Inputs, [NAME=]FILE; stdin when none.", valueName: "file"))
    var inputs: [String] = []

    func validate() throws {
        if let f = format, InputFormat(rawValue: f) == nil {
            throw ValidationError("unknown --format '\(f)' (idx, csv, tsv, npy, npz, cifar10, cifar100, image)")
        }
        if let d = delimiter, d.utf8.count != 1 && d != "\\t" { throw ValidationError("--delimiter takes one character") }
        if let d = delimiter, ["\"", "\n", "\r"].contains(d) { throw ValidationError("--delimiter cannot be the quote or a line end") }
        if let c = channels, ![1, 3, 4].contains(c) { throw ValidationError("--channels takes 1, 3 or 4") }
        if let r = resize, ImageSize(parsing: r) == nil {
            throw ValidationError("--resize takes WIDTHxHEIGHT, each 1 to \(ImageSize.maxSide) (as 28x28), not '\(escapedForDisplay(String(r.prefix(40))))'")
        }
        if let split, split != "train" && split != "test" { throw ValidationError("--split takes train or test") }
        // An operand is PATH or FIELD=PATH.
        let paths = inputs.map { InputSpec($0).path }  // as the loader reads them: a "=" after no field name is the path's
        try refuseSharedFiles(outputs: [("-o", output ?? "-"), ("--save-vocab", saveVocab)],
                              inputs: paths.map { ("the input", $0) } + [("--text", text), ("--vocab", vocab)])
    }

    func run() throws {
        Tool.run("tensor-load") {
            if let text {
                try runText(text)
                return
            }
            let textOnly: [(String, Bool)] = [("--tokenizer", tokenizer != nil), ("--max-len", maxLen != nil),
                                              ("--save-vocab", saveVocab != nil), ("--vocab", vocab != nil),
                                              ("--vocab-size", vocabSize != nil), ("--min-count", minCount != nil),
                                              ("--text-column", textColumn != nil)]
            if let (option, _) = textOnly.first(where: { $0.1 }) {
                throw UsageError("is for text input: name the documents with --text FILE", location: option)
            }
            var opts = LoadOptions()
            opts.format = format.flatMap(InputFormat.init(rawValue:))
            opts.label = label
            opts.delimiter = delimiter.map { $0 == "\\t" ? 9 : $0.utf8.first! }
            opts.split = split
            opts.channels = channels
            opts.resize = resize.flatMap(ImageSize.init(parsing:))
            let names = try classes.map(classList)
            let specs = (inputs.isEmpty ? ["-"] : inputs).map(InputSpec.init)
            let sources = try Loader.openAll(specs, options: opts)
            let out = try Output.open(output)
            do {
                try Loader.writeStream(sources, classes: names, to: out.sink)
                try out.commit()
            } catch {
                out.abandon()
                throw error
            }
            let notices = sources.flatMap(\.notices)
            if let first = notices.first {
                let more = notices.count == 1 ? "" : " (and \(notices.count - 1) more image\(notices.count == 2 ? "" : "s") like it)"
                Tool.warn("tensor-load", "\(escapedForDisplay(first)), skipped as Pillow skips them\(more)")
            }
        }
    }

    /// --text: reads the documents, learns or reads the vocabulary, writes VOCAB and the stream.
    func runText(_ path: String) throws {
        guard inputs.isEmpty else {
            throw UsageError("reads its one input from --text; drop the operands (\(inputs.joined(separator: " ")))", location: "--text")
        }
        for (option, given) in [("--split", split != nil), ("--channels", channels != nil), ("--resize", resize != nil)] where given {
            throw UsageError("is not for text input", location: option)
        }
        if vocab != nil && saveVocab != nil {
            throw UsageError("--vocab applies a saved vocabulary, --save-vocab learns one: give one of them", location: "--vocab")
        }
        guard let maxLen else { throw UsageError("text input needs --max-len N", location: "--text") }
        guard (1...(1 << 20)).contains(maxLen) else { throw UsageError("takes 1 to \(1 << 20)", location: "--max-len") }
        var kind: TokenizerKind?
        if let t = tokenizer {
            guard let k = TokenizerKind(rawValue: t) else { throw UsageError("takes char, word or bpe", location: "--tokenizer \(t)") }
            kind = k
        }
        if let n = vocabSize, !(3...(Vocabulary.maxTokens + 2)).contains(n) {
            throw UsageError("takes 3 to \(Vocabulary.maxTokens + 2)", location: "--vocab-size")
        }
        if let n = minCount, n < 1 { throw UsageError("takes 1 or more", location: "--min-count") }
        var topts = TextInputOptions()
        switch format {
        case nil: break
        case "csv": topts.csv = true
        case "tsv": topts.csv = false
        default: throw UsageError("text input is LABEL<TAB>TEXT lines (tsv) or a table with a header (csv)", location: "--format \(format!)")
        }
        topts.textColumn = textColumn
        topts.label = label
        topts.delimiter = delimiter.map { $0 == "\\t" ? 9 : $0.utf8.first! }
        if saveVocab == "-" { throw UsageError("the stream goes to stdout; name a file", location: "--save-vocab") }
        if vocab == "-" && path == "-" { throw UsageError("stdin cannot be both the text and the vocabulary", location: "--vocab") }

        let vocabulary: Vocabulary
        let corpus: TextCorpus
        let classesFrom: String
        if let vocab {
            for (option, given) in [("--vocab-size", vocabSize != nil), ("--min-count", minCount != nil), ("--classes", classes != nil)] where given {
                throw UsageError("only applies when learning; with --vocab the vocabulary and the classes come from \(vocab)", location: option)
            }
            vocabulary = try Vocabulary.read(try openDecompressed(vocab), name: vocab == "-" ? "stdin" : vocab)
            if let kind, kind != vocabulary.kind {
                throw UsageError("\(vocab) is a \(vocabulary.kind.rawValue) vocabulary; drop --tokenizer or make it \(vocabulary.kind.rawValue)", location: "--tokenizer \(kind.rawValue)")
            }
            corpus = try TextCorpus.read(path, options: topts)
            classesFrom = vocab
        } else {
            corpus = try TextCorpus.read(path, options: topts)
            var names = corpus.sortedLabels()
            classesFrom = classes == nil ? corpus.name : "--classes"
            if let c = classes {
                guard corpus.hasLabels else { throw UsageError("the documents have no labels (give --label)", location: "--classes") }
                names = try classList(c)
                if names.isEmpty || names.contains(where: \.isEmpty) { throw UsageError("takes non-empty names", location: "--classes") }
            }
            let k = kind ?? .word
            let least = minCount ?? k.defaultMinCount
            vocabulary = Vocabulary.learn(k, texts: corpus.texts, classes: names,
                                          maxSize: vocabSize ?? k.defaultVocabSize, minCount: least)
            if vocabulary.size <= 2 {
                throw ToolFailure(corpus.name, "learned no tokens: no \(k == .bpe ? "symbol" : k == .char ? "character" : "word") occurs \(least == 1 ? "once" : "\(least) times") (--min-count)")
            }
        }
        let source = try TextSource(corpus: corpus, vocabulary: vocabulary, maxLength: maxLen, classesFrom: classesFrom)

        // VOCAB is written first, but renamed into place only after the whole stream is out
        // (with -o; on stdout, just before the end record): an error on the way leaves
        // neither file behind.
        let vocabOut = try saveVocab.map { try Output.open($0, binary: false) }
        let out: Output
        do {
            if let v = vocabOut {
                try vocabulary.serialized().withUnsafeBytes { try v.sink.write($0) }
            }
            out = try Output.open(output)
        } catch {
            vocabOut?.abandon()
            throw error
        }
        do {
            try Loader.writeStream([source], classes: nil, to: out.sink, beforeEnd: { try out.commitBeforeEnd(vocabOut) })
            try Output.commitTogether([out, vocabOut])
            if source.knewNoToken {
                Tool.warn("tensor-load", "\(corpus.name): no token of the text is in the vocabulary, every id is 'unknown' (the vocabulary of another text?)")
            }
        } catch {
            out.abandon()
            vocabOut?.abandon()
            throw error
        }
    }

    func parseClasses(_ s: String) throws -> [String] {
        if s.hasPrefix("@") {
            let path = String(s.dropFirst())
            guard !path.isEmpty else { throw UsageError("@ takes the name of a file of class names, as in @classes.txt", location: "--classes") }
            guard let data = FileManager.default.contents(atPath: path) else {
                throw ToolFailure(path, "cannot read the class list", kind: .missingInput)
            }
            guard var text = String(validating: data, as: UTF8.self) else { throw ToolFailure(path, "class list is not UTF-8 text") }
            if text.unicodeScalars.first == "\u{FEFF}" { text.unicodeScalars.removeFirst() }  // a byte-order mark
            // By scalars: Swift takes CRLF for one Character, which splitting on "\n" misses.
            return try checked(text.unicodeScalars.split(whereSeparator: { $0 == "\n" || $0 == "\r" })
                .map { String(String.UnicodeScalarView($0)).trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty })
        }
        // An empty name between commas would shift every later class by one: refused.
        let names = s.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        if names.count > 1, let k = names.firstIndex(of: "") {
            throw UsageError("name \(k + 1) of \(names.count) is empty ('\(escapedForDisplay(s))')", location: "--classes")
        }
        return try checked(names)
    }

    func checked(_ names: [String]) throws -> [String] {
        if names.contains(where: hasControlCharacters) {
            throw UsageError("a name holds a line break or control character", location: "--classes")
        }
        return names
    }

    /// The class list, each name once (a label could not tell two of one name apart).
    func classList(_ s: String) throws -> [String] {
        let names = try parseClasses(s)
        guard !names.isEmpty else { throw UsageError("names no class", location: "--classes") }
        // By bytes, as labels are matched: é (NFC) and e + ◌́ (NFD) are two labels.
        var seen = Set<ExactString>()
        for n in names where !seen.insert(ExactString(n)).inserted { throw UsageError("names '\(n)' twice", location: "--classes") }
        return names
    }
}

TensorLoad.mainAsTool()
