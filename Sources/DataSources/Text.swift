// Text documents for `tensor-load --text`, and the stream of their token ids.
// Three layouts: `LABEL<TAB>TEXT` lines (the default); a CSV table with a header row, the
// text and the label in named or numbered columns (quoted cells may span lines); a directory
// with one sub-directory per class, each regular file one document. A UTF-8 BOM is skipped,
// CR before LF dropped, blank lines skipped; anything else malformed is a `DataError` at
// `FILE:LINE`. The documents of one input are held in memory as their UTF-8 bytes (for lines,
// the file's own buffer), and turned into ids a batch at a time as the stream is written.
// Left out: encodings other than UTF-8, unlabeled lines (use CSV without --label).

import Foundation
import TensorCore
import TensorStream

/// How to read a text input.
public struct TextInputOptions: Sendable {
    /// Read a CSV table with a header; nil: when the name ends in `.csv` (a compression
    /// suffix aside).
    public var csv: Bool?
    /// CSV: the text column, by header name or 1-based index (default: the column `text`).
    public var textColumn: String?
    /// CSV: the label column; without it the documents have no labels.
    public var label: String?
    /// CSV: the cell separator (default: comma).
    public var delimiter: UInt8?

    public init() {}
}

/// The documents of one text input: their bytes, labels and places for messages.
public final class TextCorpus {
    /// The input, for messages.
    public let name: String
    /// Whether the documents have labels.
    public let hasLabels: Bool
    /// The distinct labels, in order of first appearance.
    public private(set) var labels: [String] = []

    private var bytes: [UInt8]
    private var spans: [(start: Int, end: Int)] = []
    private var labelOf: [Int32] = []
    private var labelIndex: [ExactString: Int32] = [:]
    /// Lines and CSV: the line each document starts on. Directories: the document's file.
    private var lines: [Int] = []
    private var files: [String] = []

    public static let maxInputBytes = 4 << 30

    init(name: String, bytes: [UInt8], hasLabels: Bool) {
        self.name = name
        self.bytes = bytes
        self.hasLabels = hasLabels
    }

    /// The number of documents.
    public var count: Int { spans.count }

    /// The text of document `i`.
    public func text(_ i: Int) -> String {
        let s = spans[i]
        return bytes.withUnsafeBufferPointer { String(decoding: UnsafeBufferPointer(rebasing: $0[s.start..<s.end]), as: UTF8.self) }
    }

    /// Every document's text, decoded as it is read.
    public var texts: LazyMapSequence<Range<Int>, String> { (0..<count).lazy.map { self.text($0) } }

    /// The label of document `i`, if the documents have labels.
    public func label(_ i: Int) -> String? { labelOf[i] < 0 ? nil : labels[Int(labelOf[i])] }

    /// The index in `labels` of document `i`'s label, -1 for none.
    func labelNumber(_ i: Int) -> Int { Int(labelOf[i]) }

    /// Where document `i` is, for messages: `FILE:LINE`, or the document's file.
    public func place(_ i: Int) -> String { files.isEmpty ? "\(name):\(lines[i])" : files[i] }

    /// The distinct labels sorted: as numbers when all are integers, else by their bytes. A
    /// directory's classes are always sorted by their bytes, as a directory of images is (and
    /// as Keras's text_dataset_from_directory does), so that one tree of class directories
    /// gives the same class numbers read as images or as text.
    public func sortedLabels() -> [String] {
        if !files.isEmpty { return labels.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) } }
        let ints = labels.compactMap { Int($0) }
        if ints.count == labels.count {
            return zip(ints, labels).sorted { $0.0 != $1.0 ? $0.0 < $1.0 : $0.1.utf8.lexicographicallyPrecedes($1.1.utf8) }.map(\.1)
        }
        return labels.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
    }

    private func add(start: Int, end: Int, label: String?, line: Int, file: String? = nil) {
        spans.append((start, end))
        lines.append(line)
        if let file { files.append(file) }
        guard let label else { labelOf.append(-1); return }
        if let k = labelIndex[ExactString(label)] {
            labelOf.append(k)
        } else {
            let k = Int32(labels.count)
            labelIndex[ExactString(label)] = k
            labels.append(label)
            labelOf.append(k)
        }
    }

    // MARK: - Reading

    /// Reads `path` ("-": standard input; compressed input is decompressed) in the layout
    /// `options` and its name call for; a directory is read as one sub-directory per class.
    public static func read(_ path: String, options: TextInputOptions) throws -> TextCorpus {
        var isDir: ObjCBool = false
        if path != "-", FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue {
            let unused = [("--format", options.csv != nil), ("--label", options.label != nil),
                          ("--text-column", options.textColumn != nil), ("--delimiter", options.delimiter != nil)]
            if let (option, _) = unused.first(where: { $0.1 }) {
                throw DataError(option, "is for a text file; \(path) is a directory of classes", kind: .usage)
            }
            return try readDirectory(path)
        }
        let src = try openDecompressed(path)
        let bytes = try readAll(src)
        let lower = uncompressedName(path)
        if options.csv ?? lower.hasSuffix(".csv") {
            return try parseCSV(bytes, name: src.name, options: options)
        }
        if options.textColumn != nil || options.label != nil || options.delimiter != nil {
            throw DataError(src.name, "--text-column, --label and --delimiter are for CSV input (name it .csv or give --format csv)", kind: .usage)
        }
        return try parseLines(bytes, name: src.name)
    }

    static func readAll(_ source: ByteSource) throws -> [UInt8] {
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = try chunk.withUnsafeMutableBytes { try source.read(into: $0.baseAddress!, count: $0.count) }
            if n == 0 { return out }
            out += chunk[0..<n]
            if out.count > maxInputBytes { throw DataError(source.name, "text input larger than \(maxInputBytes) bytes") }
        }
    }

    /// `LABEL<TAB>TEXT` lines; the label is trimmed of blanks, the text kept as it is.
    public static func parseLines(_ bytes: [UInt8], name: String) throws -> TextCorpus {
        let corpus = TextCorpus(name: name, bytes: bytes, hasLabels: true)
        // Lines ended by CR alone (classic Mac) would read as one document.
        if bytes.contains(13), !bytes.contains(10) {
            throw DataError(name, "lines end in CR alone; LABEL<TAB>TEXT lines end in LF (or CRLF)")
        }
        var pos = hasBOM(bytes) ? 3 : 0
        var line = 0
        while pos < bytes.count {
            line += 1
            let nl = bytes[pos...].firstIndex(of: 10) ?? bytes.count
            var end = nl
            if end > pos && bytes[end - 1] == 13 { end -= 1 }
            let start = pos
            pos = nl + 1
            if bytes[start..<end].allSatisfy({ $0 == 32 }) { continue }
            // A CR inside a line: lines ended by CR alone in an LF file would merge documents.
            if let cr = bytes[start..<end].firstIndex(of: 13) {
                throw DataError("\(name):\(line)", "a carriage return inside the line (byte \(cr - start + 1)): lines ended by CR alone? LABEL<TAB>TEXT lines end in LF (or CRLF)")
            }
            if let bad = firstInvalidUTF8(bytes[start..<end]) {
                throw DataError("\(name):\(line)", "not valid UTF-8 (byte \(bad - start + 1) of the line)")
            }
            guard let tab = bytes[start..<end].firstIndex(of: 9) else {
                throw DataError("\(name):\(line)", "no tab: expected LABEL<TAB>TEXT")
            }
            let label = String(decoding: bytes[start..<tab], as: UTF8.self).trimmingCharacters(in: .whitespaces)
            guard !label.isEmpty else { throw DataError("\(name):\(line)", "empty label") }
            guard !hasControlCharacters(label) else { throw DataError("\(name):\(line)", "label with a control character") }
            guard !label.unicodeScalars.contains("\u{FEFF}") else {
                throw DataError("\(name):\(line)", "byte order mark inside the file, in the label (files joined with cat?)")
            }
            corpus.add(start: tab + 1, end: end, label: label, line: line)
        }
        if corpus.count == 0 { throw DataError(name, "no documents") }
        return corpus
    }

    /// A CSV table with a header row. Cells may be quoted with double quotes, and a quoted
    /// cell may hold delimiters, doubled quotes and line breaks.
    public static func parseCSV(_ bytes: [UInt8], name: String, options: TextInputOptions) throws -> TextCorpus {
        let delim = options.delimiter ?? 44
        var records = CSVRecords(bytes: bytes, start: hasBOM(bytes) ? 3 : 0, delimiter: delim, name: name)
        guard let (headerLine, headerCells) = try records.next() else { throw DataError(name, "empty file, no header row") }
        var header: [String] = []
        for c in headerCells {
            guard firstInvalidUTF8(c[...]) == nil else { throw DataError("\(name):\(headerLine)", "header is not valid UTF-8") }
            header.append(String(decoding: c, as: UTF8.self))
        }
        func column(_ spec: String, _ option: String) throws -> Int {
            if let i = header.firstIndex(of: spec) {
                guard header.lastIndex(of: spec) == i else {
                    throw DataError(name, "\(option): the header names two columns '\(escapedForDisplay(spec))'; give its 1-based index", kind: .usage)
                }
                return i
            }
            if let k = Int(spec), k >= 1, k <= header.count { return k - 1 }
            throw DataError(name, "\(option): no column '\(escapedForDisplay(spec))' (columns: \(header.map { escapedForDisplay($0) }.joined(separator: ", ")))", kind: .usage)
        }
        let labelColumn = try options.label.map { try column($0, "--label") }
        let textColumn: Int
        if let t = options.textColumn {
            textColumn = try column(t, "--text-column")
        } else if header.contains("text") {
            textColumn = try column("text", "--text-column")
        } else {
            throw DataError(name, "no column 'text'; name the text column with --text-column (columns: \(header.map { escapedForDisplay($0) }.joined(separator: ", ")))", kind: .usage)
        }
        if textColumn == labelColumn { throw DataError(name, "the text and the label are the same column", kind: .usage) }

        var text: [UInt8] = []
        var found: [(start: Int, end: Int, label: String?, line: Int)] = []
        while let (line, cells) = try records.next() {
            guard cells.count == header.count else {
                throw DataError("\(name):\(line)", "\(cells.count) cells where the header has \(header.count)")
            }
            let t = cells[textColumn]
            if let bad = firstInvalidUTF8(t[...]) {
                let within = t[..<bad].filter { $0 == 10 }.count
                throw DataError("\(name):\(line + within)", "text is not valid UTF-8")
            }
            var label: String?
            if let lc = labelColumn {
                guard firstInvalidUTF8(cells[lc][...]) == nil else { throw DataError("\(name):\(line)", "label is not valid UTF-8") }
                let l = String(decoding: cells[lc], as: UTF8.self).trimmingCharacters(in: .whitespaces)
                guard !l.isEmpty else { throw DataError("\(name):\(line)", "empty label") }
                guard !l.contains(where: { $0.isNewline }) else { throw DataError("\(name):\(line)", "label with a line break") }
                guard !hasControlCharacters(l) else { throw DataError("\(name):\(line)", "label with a control character") }
                label = l
            }
            found.append((text.count, text.count + t.count, label, line))
            text += t
        }
        let corpus = TextCorpus(name: name, bytes: text, hasLabels: labelColumn != nil)
        for d in found { corpus.add(start: d.start, end: d.end, label: d.label, line: d.line) }
        if corpus.count == 0 { throw DataError(name, "no data rows after the header") }
        return corpus
    }

    /// One sub-directory per class (sorted, names starting with a dot skipped), each regular
    /// file in it one document.
    public static func readDirectory(_ path: String) throws -> TextCorpus {
        let classes = try classDirectories(path)
        var text: [UInt8] = []
        var found: [(start: Int, end: Int, label: String, file: String)] = []
        var seen: [[UInt64]: String] = [:]
        for c in classes {
            let before = found.count
            for f in try filesUnder(c, seen: &seen) {
                let full = f.path
                guard f.kind == .file else { throw DataError(full, "not a regular file (a device, socket or pipe)") }
                let b = try readAll(try FileSource.open(full))
                let start = hasBOM(b) ? 3 : 0
                if let bad = firstInvalidUTF8(b[start...]) {
                    throw DataError("\(full):\(b[..<bad].filter { $0 == 10 }.count + 1)", "not valid UTF-8")
                }
                found.append((text.count, text.count + b.count - start, c.name, full))
                text += b[start...]
                if text.count > maxInputBytes { throw DataError(path, "text input larger than \(maxInputBytes) bytes") }
            }
            // An empty class was left out of the class list, renumbering the ones after it.
            guard found.count > before else { throw DataError(c.path, "class directory holds no files") }
        }
        let corpus = TextCorpus(name: path, bytes: text, hasLabels: true)
        for d in found { corpus.add(start: d.start, end: d.end, label: d.label, line: 1, file: d.file) }
        if corpus.count == 0 { throw DataError(path, "no files in the class directories") }
        return corpus
    }

    static func hasBOM(_ b: [UInt8]) -> Bool { b.count >= 3 && b[0] == 0xEF && b[1] == 0xBB && b[2] == 0xBF }
}

/// The offset of the first byte of `b` that does not start a valid UTF-8 sequence, or nil.
func firstInvalidUTF8(_ b: ArraySlice<UInt8>) -> Int? {
    var i = b.startIndex
    // ASCII runs first: most text is mostly ASCII.
    while i < b.endIndex && b[i] < 0x80 { i += 1 }
    if i == b.endIndex { return nil }
    var it = b[i...].makeIterator()
    var parser = Unicode.UTF8.ForwardParser()
    while true {
        switch parser.parseScalar(from: &it) {
        case .valid(let e): i += e.count
        case .emptyInput: return nil
        case .error: return i
        }
    }
}

/// The records of a CSV buffer: each the line it starts on and its cells (quotes removed).
struct CSVRecords {
    let bytes: [UInt8]
    var pos: Int
    let delimiter: UInt8
    let name: String
    var line = 1

    init(bytes: [UInt8], start: Int, delimiter: UInt8, name: String) {
        self.bytes = bytes
        pos = start
        self.delimiter = delimiter
        self.name = name
    }

    /// The next non-blank record, or nil at the end.
    mutating func next() throws -> (Int, [[UInt8]])? {
        while pos < bytes.count {
            let first = line
            var cells: [[UInt8]] = []
            var cur: [UInt8] = []
            var quoted = false, wasQuoted = false
            var endsInCR = false  // the last byte taken was a CR outside quotes
            while pos < bytes.count {
                let c = bytes[pos]
                pos += 1
                if quoted {
                    if c == 34 {
                        if pos < bytes.count && bytes[pos] == 34 { cur.append(34); pos += 1 } else { quoted = false }
                    } else {
                        if c == 10 { line += 1 }
                        cur.append(c)
                    }
                    endsInCR = false
                } else if c == 34 && cur.isEmpty && !wasQuoted {
                    quoted = true
                    wasQuoted = true
                    endsInCR = false
                } else if c == delimiter {
                    cells.append(cur)
                    cur = []
                    wasQuoted = false
                    endsInCR = false
                } else if c == 10 {
                    line += 1
                    break
                } else {
                    cur.append(c)
                    endsInCR = c == 13
                }
            }
            if quoted { throw DataError("\(name):\(first)", "unterminated quoted cell") }
            if endsInCR { cur.removeLast() }
            if cells.isEmpty && cur.isEmpty && !wasQuoted { continue }  // a blank line
            cells.append(cur)
            return (first, cells)
        }
        return nil
    }
}

/// A text input as a stream: `x` (i32 ids, padded), `y` (i64 class index, when the
/// documents have labels) and `len` (i32, the number of real tokens in `x`).
public final class TextSource: SampleSource {
    public let name: String
    public let fields: [Field]
    public let metadata: [(key: String, value: String)]
    public var declaredCount: Int? { corpus.count }

    private let corpus: TextCorpus
    private let vocabulary: Vocabulary
    private let maxLength: Int
    private var classOf: [Int64] = []
    private var position = 0
    private var row: [Int32]
    /// Tokens written, and those the vocabulary knows: no token at all is a data set of
    /// nothing (an error); none known, with --vocab, is most likely another text's vocabulary,
    /// but one short document of new words is real input too, so the tool warns.
    private var tokens = 0, known = 0

    /// After the last sample: every token written was the unknown id.
    public var knewNoToken: Bool { tokens > 0 && known == 0 }

    /// `classesFrom` names where the class list came from, for the message about a label
    /// that is not in it.
    public init(corpus: TextCorpus, vocabulary: Vocabulary, maxLength: Int, classesFrom: String) throws {
        name = corpus.name
        self.corpus = corpus
        self.vocabulary = vocabulary
        self.maxLength = maxLength
        row = [Int32](repeating: 0, count: maxLength)
        var fs = [Field(name: "x", dtype: .i32, shape: Shape([maxLength]))]
        var meta: [(key: String, value: String)] = [
            ("x.vocab-size", String(vocabulary.size)),
            ("x.tokenizer", vocabulary.kind.rawValue),
            ("x.vocabulary", vocabulary.fingerprint),
            ("x.source", corpus.name),
        ]
        if corpus.hasLabels {
            var index: [ExactString: Int64] = [:]
            for (k, c) in vocabulary.classes.enumerated() { index[ExactString(c)] = Int64(k) }
            let mapped = corpus.labels.map { index[ExactString($0)] }
            classOf.reserveCapacity(corpus.count)
            for i in 0..<corpus.count {
                guard let k = mapped[corpus.labelNumber(i)] else {
                    throw DataError(corpus.place(i), "label '\(escapedForDisplay(corpus.label(i) ?? ""))' is not one of the \(vocabulary.classes.count) classes of \(classesFrom)")
                }
                classOf.append(k)
            }
            fs.append(Field(name: "y", dtype: .i64, shape: Shape([])))
            meta.append(("y.classes", vocabulary.classes.joined(separator: "\n")))
            meta.append(("y.source", corpus.name))
        }
        fs.append(Field(name: "len", dtype: .i32, shape: Shape([])))
        meta.append(("len.source", corpus.name))
        fields = fs
        metadata = meta
    }

    public func read(max: Int, into: [UnsafeMutableRawPointer]) throws -> Int {
        let n = min(max, corpus.count - position)
        guard n > 0 else {
            let ended = position == corpus.count && position > 0
            if ended && tokens == 0 { throw DataError(name, "no document holds a token: every one is empty") }
            return 0
        }
        let lenField = into[corpus.hasLabels ? 2 : 1]
        for k in 0..<n {
            let d = position + k
            let got = row.withUnsafeMutableBufferPointer { p -> Int in
                let got = vocabulary.encode(corpus.text(d), into: p.baseAddress!, max: maxLength)
                for j in got..<maxLength { p[j] = Vocabulary.padding }
                for j in 0..<got where p[j] != Vocabulary.unknown { known += 1 }
                return got
            }
            row.withUnsafeBytes { into[0].advanced(by: k * maxLength * 4).copyMemory(from: $0.baseAddress!, byteCount: maxLength * 4) }
            if corpus.hasLabels { into[1].storeBytes(of: classOf[d], toByteOffset: 8 * k, as: Int64.self) }
            lenField.storeBytes(of: Int32(got), toByteOffset: 4 * k, as: Int32.self)
            tokens += got
        }
        position += n
        return n
    }
}
