// Chooses the reader for an input (by content first, then extension, or as told) and combines
// several inputs into the fields of one stream, checking that their sample counts agree.

import Foundation
import TensorCore
import TensorStream

/// Formats tensor-load reads.
public enum InputFormat: String, CaseIterable, Sendable {
    case idx, csv, tsv, npy, npz, cifar10, cifar100, image
}

/// How to read the inputs: options shared by the readers.
public struct LoadOptions: Sendable {
    public var format: InputFormat?
    /// CSV label column: a header name or a 1-based index.
    public var label: String?
    public var delimiter: UInt8?
    /// CIFAR: "train" (the default) or "test".
    public var split: String?
    /// Images: force 1, 3 or 4 channels.
    public var channels: Int?
    /// Images: resample each to this size.
    public var resize: ImageSize?

    public init() {}
}

/// One operand: `[name=]path`.
public struct InputSpec: Sendable {
    public var field: String?
    public var path: String

    /// Parses `name=path`; a `=` that does not follow a valid field name is part of the path.
    public init(_ operand: String) {
        if let eq = operand.firstIndex(of: "="), Schema.isValidName(String(operand[..<eq])) {
            field = String(operand[..<eq])
            path = String(operand[operand.index(after: eq)...])
        } else {
            field = nil
            path = operand
        }
    }
}

public enum Loader {
    /// Opens one input with the reader its content, extension or `options.format` calls for.
    public static func open(_ spec: InputSpec, options: LoadOptions) throws -> SampleSource {
        try openDetecting(spec, options: options).source
    }

    /// Opens every input. An option for a format that none of them is (--label on IDX
    /// images, --split on a PNG) would do nothing: it is a usage error naming the formats read.
    public static func openAll(_ specs: [InputSpec], options: LoadOptions) throws -> [SampleSource] {
        if specs.filter({ $0.path == "-" }).count > 1 {
            throw DataError("-", "standard input is named twice; it can be read once", kind: .usage)
        }
        // Formats first, from the first bytes and names: an option no input takes is refused
        // before any input is parsed (--channels on a CSV said its text was not a number).
        let detected = try specs.map { ($0, try detectFormat($0, options: options)) }
        let formats = Set(detected.map(\.1.format))
        let applies: [(String, Bool, Set<InputFormat>)] = [("--label", options.label != nil, [.csv, .tsv]),
                                                            ("--delimiter", options.delimiter != nil, [.csv, .tsv]),
                                                            ("--split", options.split != nil, [.cifar10, .cifar100]),
                                                            ("--channels", options.channels != nil, [.image]),
                                                            ("--resize", options.resize != nil, [.image])]
        for (option, given, kinds) in applies where given && formats.isDisjoint(with: kinds) {
            let read = formats.map(\.rawValue).sorted().joined(separator: ", ")
            throw DataError(option, "is for \(kinds.map(\.rawValue).sorted().joined(separator: " or ")) input, and the input is \(read)", kind: .usage)
        }
        return try detected.map { spec, d in try open(spec, d, options: options) }
    }

    static func openDetecting(_ spec: InputSpec, options: LoadOptions) throws -> (source: SampleSource, format: InputFormat) {
        let d = try detectFormat(spec, options: options)
        return (try open(spec, d, options: options), d.format)
    }

    /// The input's format, and its opened bytes (nil for a directory of images).
    static func detectFormat(_ spec: InputSpec, options: LoadOptions) throws -> (src: PeekableSource?, format: InputFormat) {
        var isDir: ObjCBool = false
        if spec.path != "-", FileManager.default.fileExists(atPath: spec.path, isDirectory: &isDir), isDir.boolValue {
            guard options.format == nil || options.format == .image else {
                throw DataError(spec.path, "is a directory (only --format image reads directories)")
            }
            return (nil, .image)
        }
        let src = try openDecompressed(spec.path)
        return (src, try options.format ?? detect(src, path: spec.path))
    }

    static func open(_ spec: InputSpec, _ d: (src: PeekableSource?, format: InputFormat), options: LoadOptions) throws -> SampleSource {
        guard let src = d.src else { return try ImageFolderSource(path: spec.path, field: spec.field ?? "x", channels: options.channels, size: options.resize) }
        return try open(src, format: d.format, spec: spec, options: options)
    }

    static func open(_ src: PeekableSource, format: InputFormat, spec: InputSpec, options: LoadOptions) throws -> SampleSource {
        let single = spec.field
        switch format {
        case .idx:
            return try IDXSource(source: src, field: single ?? defaultIDXField(src))
        case .csv, .tsv:
            let delim = options.delimiter ?? (format == .tsv || spec.path.hasSuffix(".tsv") || spec.path.hasSuffix(".tsv.gz") ? 9 : nil)
            if single == "y" && options.label != nil {
                throw DataError(spec.path, "with --label the labels are field y; give the other columns another name than 'y=' (or none: x)", kind: .usage)
            }
            return try CSVSource(source: src, label: options.label, delimiter: delim, field: single)
        case .npy:
            return try NPYReader.source(src, field: single ?? "x")
        case .npz:
            if single != nil { throw DataError(spec.path, "an .npz names its own fields; drop the '\(single!)=' prefix", kind: .usage) }
            return try NPZReader.source(src)
        case .cifar10, .cifar100:
            if single != nil { throw DataError(spec.path, "CIFAR data has fields x and y; drop the '\(single!)=' prefix", kind: .usage) }
            return try CIFARReader.source(src, path: spec.path, variant: format, split: options.split)
        case .image:
            return try ImageFileSource(source: src, field: single ?? "x", channels: options.channels, size: options.resize)
        }
    }

    /// IDX: a rank-1 file is labels (`y`), anything else inputs (`x`).
    static func defaultIDXField(_ src: PeekableSource) throws -> String {
        let h = try src.peek(4)
        return h.count == 4 && h[3] == 1 ? "y" : "x"
    }

    /// Tells the format from the first bytes, then from the file name.
    static func detect(_ src: PeekableSource, path: String) throws -> InputFormat {
        let b = try src.peek(512)
        func starts(_ m: [UInt8]) -> Bool { b.count >= m.count && Array(b.prefix(m.count)) == m }
        if b.isEmpty { throw DataError(src.name, "empty input") }
        let name = uncompressedName(path)
        // A CIFAR batch by its name first: its first bytes (a label, then red pixels) can be
        // 0, 0, 8 as an IDX file's are.
        let cifarBatch = name.hasSuffix(".bin") ? CIFARReader.variantFromName(name) : nil
        if let v = cifarBatch, !starts(StreamFormat.headerTag) { return v }
        if b.count >= 4, b[0] == 0, b[1] == 0, [0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E].contains(b[2]) { return .idx }
        if starts([0x93] + Array("NUMPY".utf8)) { return .npy }
        if starts(Array("PK".utf8) + [3, 4]) || starts(Array("PK".utf8) + [5, 6]) { return .npz }  // [5, 6]: an empty archive
        if starts([0x89, 0x50, 0x4E, 0x47]) || starts([0xFF, 0xD8, 0xFF]) { return .image }
        if b.count >= 262, Array(b[257..<262]) == Array("ustar".utf8) {
            return CIFARReader.variantFromName(path) ?? .cifar10
        }
        if starts(StreamFormat.headerTag) {
            throw DataError(src.name, "already a tensor stream; read it with tensor-show or pipe it on")
        }
        if name.hasSuffix(".csv") || name.hasSuffix(".txt") { return .csv }
        if name.hasSuffix(".tsv") { return .tsv }
        throw DataError(src.name, "cannot tell the format (looks like \(describeMagic(b))); name it with --format")
    }

    /// Writes the samples of `sources`, side by side as fields of one stream, to `sink`.
    /// `classes`, when given, names the classes of field `y`.
    /// `beforeEnd` runs after the last sample is written and before the end record.
    public static func writeStream(_ sources: [SampleSource], classes: [String]?, to sink: ByteSink,
                                   beforeEnd: () throws -> Void = {}) throws {
        var fields: [Field] = []
        var meta: [(key: String, value: String)] = []
        var owner: [String: Int] = [:]
        for (k, s) in sources.enumerated() {
            for f in s.fields {
                if let other = owner[f.name] {
                    // Two of one archive's members: the data, not the command, is at fault.
                    guard other != k else { throw DataError(s.name, "holds field '\(f.name)' twice") }
                    let same = sources[other].name == s.name ? " (the same file given twice)" : ""
                    throw DataError(s.name, "field '\(f.name)' also comes from \(sources[other].name)\(same); rename one with NAME=FILE", kind: .usage)
                }
                owner[f.name] = k
                fields.append(f)
            }
            meta += s.metadata
        }
        var schema = Schema(fields: fields, metadata: meta)
        // Labels that the input named no classes for are checked against --classes as they go.
        var checkLabels: (field: Int, dtype: DType, classes: Int)?
        // Labels of classes the input named, renumbered in the order --classes gives.
        var remapLabels: (field: Int, dtype: DType, table: [Int64])?
        let labelSource = owner["y"].map { sources[$0].name } ?? "input"
        if let classes {
            guard let y = schema.field("y") else {
                throw DataError("--classes", "the stream has no field 'y' to name classes for", kind: .usage)
            }
            guard y.dtype.isInteger, y.shape.count == 1 else {
                throw DataError("--classes", "field 'y' is \(y.dtype) \(y.shape), not one integer label a sample: there are no classes to name", kind: .usage)
            }
            if let existing = schema.classes(of: "y"), !Schema.areIndexNames(existing) {
                // Names the input gave (text labels, class directories): --classes orders them,
                // looked up by name as with --text; renaming them by position gave samples
                // another class's name.
                var table: [Int64] = []
                for name in existing {
                    guard let k = classes.firstIndex(of: name) else {
                        throw DataError(labelSource, "class '\(escapedForDisplay(name))' is not one --classes names", kind: .badData)
                    }
                    table.append(Int64(k))
                }
                guard Int64(classes.count - 1) <= y.dtype.largestInteger else {
                    throw DataError("--classes", "\(classes.count) names are more than field 'y' (\(y.dtype)) can number", kind: .usage)
                }
                remapLabels = (schema.index(of: "y")!, y.dtype, table)
            } else if let existing = schema.classes(of: "y") {
                // Integer labels, named "0"… by the input: named by position.
                if existing.count > classes.count {
                    throw DataError(labelSource, "labels go up to \(existing.count - 1), but --classes names \(classes.count) classes", kind: .badData)
                }
            } else {
                checkLabels = (schema.index(of: "y")!, y.dtype, classes.count)
            }
            schema.setClasses(classes, of: "y")
        }
        // Declared counts must agree before anything is written.
        let declared = sources.compactMap { s in s.declaredCount.map { (s, $0) } }
        if let (a, na) = declared.first, let (b, nb) = declared.first(where: { $0.1 != na }) {
            throw DataError(b.name, "has \(nb) samples but \(a.name) has \(na)")
        }
        if let why = schema.validationProblem() { throw DataError(sources.first?.name ?? "input", why) }

        let writer = try StreamWriter(sink: sink, schema: schema)
        let builder = BatchBuilder(writer: writer)
        // The batch buffers are made with the first sample; beside an array read whole they can
        // pass what the process may use, and a failed allocation traps: refused first.
        let batchBytes = Double(builder.capacity) * Double(schema.fields.reduce(0) { $0 + $1.sampleBytes })
        try refuseUnlessRoom(batchBytes, name: sources.first?.name ?? "input", for: "for a batch")
        var fieldBase: [Int] = []
        var k = 0
        for s in sources { fieldBase.append(k); k += s.fields.count }
        var total = 0
        while true {
            let want = builder.freeSamples
            var got: [Int] = []
            for (si, s) in sources.enumerated() {
                let ptrs = (0..<s.fields.count).map { builder.slot(fieldBase[si] + $0) }
                got.append(try s.read(max: want, into: ptrs))
            }
            let n = got.min() ?? 0
            if let mx = got.max(), mx != n {
                let short = sources[got.firstIndex(of: n)!], long = sources[got.firstIndex(of: mx)!]
                throw DataError(short.name, "ends after \(total + n) samples but \(long.name) has more")
            }
            if n == 0 { break }
            if let (f, dtype, k) = checkLabels {
                let labels = UnsafeRawPointer(builder.slot(f))
                for i in 0..<n {
                    let v = labels.integerElement(i, dtype) ?? -1
                    guard v >= 0, v < k else {
                        throw DataError(labelSource, "sample \(total + i): label \(v) is outside the \(k) classes --classes names")
                    }
                }
            }
            if let (f, dtype, table) = remapLabels {
                let labels = builder.slot(f)
                for i in 0..<n {
                    // A reader's labels index its own names; a stream's need not (hostile input).
                    let v = UnsafeRawPointer(labels).integerElement(i, dtype) ?? -1
                    guard v >= 0, v < table.count else {
                        throw DataError(labelSource, "sample \(total + i): label \(v) is outside the \(table.count) classes the input names")
                    }
                    labels.storeInteger(table[Int(v)], at: i, dtype)
                }
            }
            total += n
            try builder.commit(n)
        }
        // An empty data set is a mistake upstream (a header with nothing after it), not data.
        if total == 0 { throw DataError(sources.first?.name ?? "input", "holds no samples") }
        try builder.flush()
        try beforeEnd()
        try builder.finish()
    }
}
