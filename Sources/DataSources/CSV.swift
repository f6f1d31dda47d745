// CSV and TSV with a header row. Every column but the label becomes one f32 field `x`; the label
// column (--label NAME or 1-based index) becomes `y`: integers ≥ 0 as i64 with classes "0"…,
// other numbers as an f32 regression target, text as i64 indices into the class names sorted
// by their bytes (names that differ only in Unicode composition stay two classes).
// A UTF-8 BOM and CRLF line ends are accepted; quoted cells ("a, b", "say ""hi""") too, but not
// a line break inside one.
// The class list must be known before the first batch is written, so the rows go to a spill
// file as they are read (x, and the label as a number and as an index into its distinct
// texts), and the stream is written from there: memory holds one line and at most
// `maxClasses` distinct labels, whatever the size of the file.

import Foundation
import TensorCore
import TensorStream

public final class CSVSource: SampleSource {
    public let name: String
    public private(set) var fields: [Field] = []
    public private(set) var metadata: [(key: String, value: String)] = []
    public private(set) var declaredCount: Int?

    public static let maxLineBytes = 1 << 20
    public static let maxFileBytes = 4 << 30
    /// Distinct label texts kept; a column with more is numbers (a regression target), not classes.
    public static let maxClasses = 65536

    /// How `y` is written: as the integer or float the row's label read as, or as the class
    /// index of its text (`classOf[id]`).
    private enum LabelOutput { case none, int, float, text([Int64]) }
    private var labelOutput = LabelOutput.none
    private let spill: SpillFile
    private var rows: FileSource?
    private let width: Int
    private var remaining = 0
    private var record: [UInt8] = []

    /// A spilled row: `width` f32 values, then with a label its kind (0 integer, 1 float, 2
    /// text), the number (Int64, or Float in the low 32 bits) and the index of its text.
    private var recordBytes: Int { width * 4 + (fields.count > 1 ? 13 : 0) }

    public init(source: ByteSource, label: String?, delimiter: UInt8?, field: String?) throws {
        name = source.name
        var lines = CSVLines(source, name: name)
        // Blank lines before the header are skipped, as between rows (Python's csv does too).
        var first = try lines.next()
        while let (_, l) = first, l.isEmpty || (l.count == 1 && l[0] == 13) { first = try lines.next() }
        guard let headerLine = first else { throw DataError(name, "empty file, no header row") }
        // Old Mac line ends: the whole file is one line, and "no data rows" would say nothing.
        if let cr = headerLine.1.firstIndex(of: 13), cr < headerLine.1.count - 1 {
            throw DataError(name, "lines end in a carriage return alone; make them newlines (tr '\\r' '\\n')", at: "line \(headerLine.0)")
        }
        let delim = delimiter ?? (headerLine.1.contains(9) && !headerLine.1.contains(44) ? 9 : 44)
        var cells = CSVCells()
        try cells.split(headerLine.1, delim, name: name, line: headerLine.0)
        let header = (0..<cells.count).map { cells.string($0) }
        guard !header.isEmpty else { throw DataError(name, "empty header row") }
        var labelIndex: Int?
        if let label {
            if let i = header.firstIndex(of: label) {
                if header.lastIndex(of: label) != i {
                    throw DataError(name, "the header names two columns '\(shown(label))'; give --label by its 1-based index", kind: .usage)
                }
                labelIndex = i
            } else if let k = Int(label), k >= 1, k <= header.count {
                labelIndex = k - 1
            } else if let k = header.firstIndex(where: { trimmed($0) == label }) {
                // A header "a, b" names its second column " b", as Python's csv reads it.
                throw DataError(name, "no column '\(shown(label))', but column \(k + 1) is '\(shown(header[k]))' with blanks; give --label \(k + 1)", kind: .usage)
            } else {
                let listed = header.prefix(20).map { shown($0) }.joined(separator: ", ") + (header.count > 20 ? ", … (\(header.count) in all)" : "")
                throw DataError(name, "no column '\(shown(label))' (columns: \(listed))", kind: .usage)
            }
        }
        width = header.count - (labelIndex == nil ? 0 : 1)
        guard width >= 1 else { throw DataError(name, "no feature columns besides the label") }
        spill = try SpillFile()
        let out = spill.sink()
        var labels = LabelColumn()
        // One row's bytes, written in place (an array's uniqueness check a cell was a tenth of
        // the time).
        let row = UnsafeMutableRawBufferPointer.allocate(byteCount: width * 4 + (labelIndex == nil ? 0 : 13), alignment: 8)
        row.initializeMemory(as: UInt8.self, repeating: 0)
        defer { row.deallocate() }
        var count = 0
        while let (lineNo, line) = try lines.next() {
            if line.isEmpty || (line.count == 1 && line[0] == 13) { continue }
            try cells.split(line, delim, name: name, line: lineNo)
            guard cells.count == header.count else {
                throw DataError(name, "\(cells.count) columns where the header has \(header.count)", at: "line \(lineNo)")
            }
            var x = 0
            for c in 0..<cells.count {
                // Made only for a message: built for every cell, it cost a fifth of the time.
                func place() -> String { "line \(lineNo), column \(c + 1) (\(shown(header[c])))" }
                if c == labelIndex {
                    let text = trimmed(cells.string(c))
                    // An empty label turned every label into text and renumbered them all.
                    guard !text.isEmpty else { throw DataError(name, "empty label", at: place()) }
                    // A class name is one line of the class list: "a\r" joined the next name.
                    guard !hasControlCharacters(text) else { throw DataError(name, "label with a control character", at: place()) }
                    try labels.add(text, line: lineNo, into: row, at: width * 4, name: name)
                    continue
                }
                // Most cells are plain decimals, read from their bytes; the rest, and every
                // cell that is not a number, take the String path that words the error.
                let v: Float
                if let fast = cells.withCell(c, CSVSource.plainDecimal) {
                    v = fast
                } else {
                    let cell = cells.string(c)
                    let text = trimmed(cell)
                    guard let parsed = CSVSource.decimal(text) else {
                        // Without --label every column is a feature: the usual cause of text here.
                        let hint = labelIndex == nil ? "; a column of labels is named with --label \(shown(header[c])), and text documents load with --text" : ""
                        throw DataError(name, "'\(shown(cell))' is not a number\(hint)", at: place())
                    }
                    guard parsed.isFinite else { throw DataError(name, "'\(shown(cell))' \(CSVSource.notFinite(text))", at: place()) }
                    v = parsed
                }
                row.storeBytes(of: v, toByteOffset: 4 * x, as: Float.self)
                x += 1
            }
            try out.write(UnsafeRawBufferPointer(row))
            count += 1
        }
        try out.flush()
        if count == 0 { throw DataError(name, "no data rows after the header") }

        let xname = field ?? "x"
        var fs = [Field(name: xname, dtype: .f32, shape: Shape([width]))]
        var meta: [(key: String, value: String)] = [("\(xname).columns", header.enumerated().filter { $0.offset != labelIndex }.map(\.element).joined(separator: "\n"))]
        if let labelIndex {
            let place = { (line: Int) in "line \(line), column \(labelIndex + 1) (\(shown(header[labelIndex])))" }
            if labels.allIntegers && labels.smallest >= 0 {
                // Integer labels stay integers; class names only for a list of reasonable length.
                fs.append(Field(name: "y", dtype: .i64, shape: Shape([])))
                labelOutput = .int
                if labels.largest < 65536 { meta.append(("y.classes", numericClassNames(maxLabel: Int(labels.largest)).joined(separator: "\n"))) }
            } else if labels.firstText == nil {
                // Numbers all, one of them nan or out of f32's range: not text classes.
                if let (line, text) = labels.firstNonFinite {
                    throw DataError(name, "label '\(shown(text))' \(CSVSource.notFinite(text))", at: place(line))
                }
                fs.append(Field(name: "y", dtype: .f32, shape: Shape([])))
                labelOutput = .float
            } else {
                guard !labels.overflowed else {
                    let (line, text) = labels.firstText!
                    throw DataError(name, "more than \(CSVSource.maxClasses) distinct labels, and '\(shown(text))' is not a number: is this column the label?", at: place(line))
                }
                // Class indices in the order of the names' bytes.
                let order = labels.texts.indices.sorted { labels.texts[$0].lexicographicallyPrecedes(labels.texts[$1]) }
                var classOf = [Int64](repeating: 0, count: order.count)
                for (rank, id) in order.enumerated() { classOf[id] = Int64(rank) }
                fs.append(Field(name: "y", dtype: .i64, shape: Shape([])))
                labelOutput = .text(classOf)
                meta.append(("y.classes", order.map { String(decoding: labels.texts[$0], as: UTF8.self) }.joined(separator: "\n")))
            }
        }
        meta.append(("\(xname).source", name))
        if labelIndex != nil { meta.append(("y.source", name)) }
        fields = fs
        metadata = meta
        declaredCount = count
        remaining = count
        rows = try spill.rewound()
    }

    public func read(max: Int, into: [UnsafeMutableRawPointer]) throws -> Int {
        let n = min(max, remaining)
        guard n > 0, let rows else { return 0 }
        let rb = recordBytes
        if record.count < n * rb { record = [UInt8](repeating: 0, count: n * rb) }
        try record.withUnsafeMutableBytes { buf in
            guard try rows.readFully(into: buf.baseAddress!, count: n * rb) == n * rb else {
                throw IOError(name: spill.name, operation: "read", code: EIO)
            }
            for i in 0..<n {
                let r = buf.baseAddress! + i * rb
                (into[0] + i * width * 4).copyMemory(from: r, byteCount: width * 4)
                // The label's number follows the values only when there is a label: a row
                // without one is just its values (reading it anyway ran past the last row).
                func number() -> Int64 { r.loadUnaligned(fromByteOffset: width * 4 + 1, as: Int64.self) }
                switch labelOutput {
                case .none: break
                case .int: into[1].storeBytes(of: number(), toByteOffset: 8 * i, as: Int64.self)
                case .float:
                    // An integer label is a float here as Float(text) would read it.
                    let v = r.load(fromByteOffset: width * 4, as: UInt8.self) == 0 ? Float(number()) : Float(bitPattern: UInt32(truncatingIfNeeded: number()))
                    into[1].storeBytes(of: v, toByteOffset: 4 * i, as: Float.self)
                case .text(let classOf):
                    let id = r.loadUnaligned(fromByteOffset: width * 4 + 9, as: UInt32.self)
                    into[1].storeBytes(of: classOf[Int(id)], toByteOffset: 8 * i, as: Int64.self)
                }
            }
        }
        remaining -= n
        return n
    }

    /// A number as people write one in a table: Swift's parser also reads hexadecimal
    /// (`0x10` is 16), which no spreadsheet or numpy means by that cell.
    /// A NUL ends the parse early ("1\0junk" was 1): refused too.
    /// Why a number that parsed is not a finite f32: written as NaN or infinity, or too large
    /// (3.5e38 and 1e400 are numbers, and were called "not finite").
    static func notFinite(_ s: String) -> String {
        let t = s.lowercased()
        return t.contains("nan") || t.contains("inf") ? "is not a finite number" : "is beyond the range of f32 (±3.4e38)"
    }

    static func decimal(_ s: String) -> Float? {
        s.utf8.contains(where: { $0 == UInt8(ascii: "x") || $0 == UInt8(ascii: "X") || $0 == 0 }) ? nil : Float(s)
    }

    /// Powers of ten that a Double holds exactly.
    private static let exactPowers: [Double] = (0...22).map { e in (0..<e).reduce(1.0) { r, _ in r * 10 } }

    /// A cell that is a plain decimal (blanks around it, a sign, at most 15 significant digits,
    /// a point, an exponent, and a power of ten within 10^±22 in all) as `decimal` reads it:
    /// nil for any other cell, which then goes the slow way.
    /// The digits and the power of ten are exact Doubles, so one multiplication or division
    /// rounds their value correctly to a Double (Clinger's fast path); rounding that Double to
    /// a Float again gives the correctly rounded Float unless it lies exactly halfway between
    /// two Floats, and those are left to the slow way too.
    static func plainDecimal(_ cell: UnsafeBufferPointer<UInt8>) -> Float? {
        var i = 0, end = cell.count
        while i < end, cell[i] == 32 || cell[i] == 9 { i += 1 }
        while end > i, cell[end - 1] == 32 || cell[end - 1] == 9 { end -= 1 }
        guard i < end else { return nil }
        let negative = cell[i] == 45
        if cell[i] == 45 || cell[i] == 43 { i += 1 }
        var m: UInt64 = 0, significant = 0, digits = 0, scale = 0
        while i < end, cell[i] &- 48 < 10 {
            m = m &* 10 &+ UInt64(cell[i] &- 48)
            if m != 0 { significant += 1 }
            digits += 1
            i += 1
        }
        if i < end, cell[i] == 46 {
            i += 1
            while i < end, cell[i] &- 48 < 10 {
                m = m &* 10 &+ UInt64(cell[i] &- 48)
                if m != 0 { significant += 1 }
                digits += 1
                scale -= 1
                i += 1
            }
        }
        guard digits > 0, significant <= 15 else { return nil }
        if i < end, cell[i] | 0x20 == 101 {
            i += 1
            var minus = false
            if i < end, cell[i] == 45 || cell[i] == 43 { minus = cell[i] == 45; i += 1 }
            // An exponent is read up to 99,999; a longer one (after as many digits behind the
            // point, it could come back within 10^±22) is left to the slow way.
            var e = 0, exponentDigits = 0, tooLong = false
            while i < end, cell[i] &- 48 < 10 {
                if e < 10_000 { e = e * 10 + Int(cell[i] &- 48) } else { tooLong = true }
                exponentDigits += 1
                i += 1
            }
            guard exponentDigits > 0, !tooLong else { return nil }
            scale += minus ? -e : e
        }
        guard i == end else { return nil }
        if m == 0 { return negative ? -0.0 : 0 }
        guard scale >= -22, scale <= 22 else { return nil }
        // 1 ≤ m < 10^15 and 10^±22 keep d within 1e-22…1e37, where Floats are normal.
        let d = scale >= 0 ? Double(m) * exactPowers[scale] : Double(m) / exactPowers[-scale]
        guard d.bitPattern & 0x1FFF_FFFF != 0x1000_0000 else { return nil }
        return negative ? -Float(d) : Float(d)
    }
}

/// One line's cells: their bytes one after another (a quoted cell without its quotes, `""`
/// inside it as one `"`), and where each ends. Kept from line to line, so a row costs no
/// allocation.
struct CSVCells {
    private var bytes: [UInt8] = []
    private var ends: [Int] = []

    var count: Int { ends.count }

    /// Splits one line (a final CR dropped) into cells, honouring double quotes; refuses an
    /// unterminated quote and a cell that is not UTF-8.
    mutating func split(_ line: [UInt8], _ delim: UInt8, name: String, line no: Int) throws {
        var n = line.count
        if n > 0, line[n - 1] == 13 { n -= 1 }
        if bytes.count < n { bytes = [UInt8](repeating: 0, count: Swift.max(n, 2 * bytes.count)) }
        var found: [Int] = []
        swap(&found, &ends)
        found.removeAll(keepingCapacity: true)
        var high: UInt8 = 0
        let quoted = line.withUnsafeBufferPointer { l in
            bytes.withUnsafeMutableBufferPointer { b in
                var w = 0, cellStart = 0, quoted = false, i = 0
                while i < n {
                    let c = l[i]
                    high |= c
                    if quoted {
                        if c == 34 {
                            if i + 1 < n, l[i + 1] == 34 { b[w] = 34; w += 1; i += 1 } else { quoted = false }
                        } else {
                            b[w] = c; w += 1
                        }
                    } else if c == 34 && w == cellStart {
                        quoted = true
                    } else if c == delim {
                        found.append(w)
                        cellStart = w
                    } else {
                        b[w] = c; w += 1
                    }
                    i += 1
                }
                found.append(w)
                return quoted
            }
        }
        swap(&found, &ends)
        if quoted { throw DataError(name, "unterminated quoted cell", at: "line \(no)") }
        // A line all ASCII is valid UTF-8.
        if high >= 0x80 {
            for c in 0..<count where withCell(c, { String(validating: $0, as: UTF8.self) }) == nil {
                throw DataError(name, "cell is not valid UTF-8", at: "line \(no)")
            }
        }
    }

    func withCell<R>(_ c: Int, _ body: (UnsafeBufferPointer<UInt8>) throws -> R) rethrows -> R {
        let start = c == 0 ? 0 : ends[c - 1]
        return try bytes.withUnsafeBufferPointer { try body(UnsafeBufferPointer(rebasing: $0[start..<ends[c]])) }
    }

    /// Cell `c` as text (validated by `split`).
    func string(_ c: Int) -> String { withCell(c) { String(decoding: $0, as: UTF8.self) } }
}

/// A cell without the blanks around it. Most cells have none, and are returned as they are
/// without Foundation's trimming, the slowest step of reading a CSV.
func trimmed(_ s: String) -> String {
    if let f = s.utf8.first, let l = s.utf8.last, f > 0x20, f < 0x80, l > 0x20, l < 0x80 { return s }
    return s.trimmingCharacters(in: .whitespaces)
}

/// A cell or name as an error message shows it: escaped, and its first 40 characters only (a
/// message is one line, not a megabyte of someone's cell).
func shown(_ s: String) -> String {
    s.count <= 40 ? escapedForDisplay(s) : escapedForDisplay(String(s.prefix(40))) + "…"
}

/// What the label column has held so far: whether every label was an integer, or a number,
/// and the distinct texts (by bytes) while there are at most `CSVSource.maxClasses`.
struct LabelColumn {
    var allIntegers = true
    var smallest = Int64.max, largest = Int64.min
    var firstText: (Int, String)?
    var firstNonFinite: (Int, String)?
    var texts: [[UInt8]] = []
    var ids: [[UInt8]: UInt32] = [:]
    var overflowed = false

    /// Notes `text`, and writes its kind, number and text index at `offset` of the row.
    mutating func add(_ text: String, line: Int, into row: UnsafeMutableRawBufferPointer, at offset: Int, name: String) throws {
        var kind: UInt8 = 2, number: Int64 = 0
        if let i = Int64(text) {
            kind = 0
            number = i
            smallest = min(smallest, i)
            largest = max(largest, i)
        } else if let f = CSVSource.decimal(text) {
            kind = 1
            number = Int64(f.bitPattern)
            if !f.isFinite && firstNonFinite == nil { firstNonFinite = (line, text) }
        } else if firstText == nil {
            firstText = (line, text)
        }
        if kind != 0 { allIntegers = false }
        var id = UInt32.max
        if !overflowed {
            let key = Array(text.utf8)
            if let known = ids[key] {
                id = known
            } else if texts.count < CSVSource.maxClasses {
                id = UInt32(texts.count)
                ids[key] = id
                texts.append(key)
            } else {
                // More distinct labels than classes: numbers, or an error if text turns up.
                overflowed = true
                ids = [:]
                texts = []
            }
        }
        row.storeBytes(of: kind, toByteOffset: offset, as: UInt8.self)
        row.storeBytes(of: number, toByteOffset: offset + 1, as: Int64.self)
        row.storeBytes(of: id, toByteOffset: offset + 9, as: UInt32.self)
    }
}

/// The lines of a source, read a chunk at a time, BOM skipped; a line longer than
/// `CSVSource.maxLineBytes` is refused as soon as that many bytes arrived without a newline,
/// and the input as soon as it passes `CSVSource.maxFileBytes`.
struct CSVLines {
    let source: ByteSource
    let name: String
    private var buffer: [UInt8] = []
    private var chunk = [UInt8](repeating: 0, count: 1 << 18)  // what one read brings
    private var start = 0      // the next line's first byte
    private var searched = 0   // bytes after `start` known to hold no newline
    private var atEnd = false
    private var bytesRead = 0
    private var lineNo = 0

    init(_ source: ByteSource, name: String) {
        self.source = source
        self.name = name
    }

    mutating func next() throws -> (Int, [UInt8])? {
        while true {
            if let nl = buffer[(start + searched)...].firstIndex(of: 10) {
                let line = Array(buffer[start..<nl])
                start = nl + 1
                searched = 0
                lineNo += 1
                if lineNo == 1, line.starts(with: [0xEF, 0xBB, 0xBF]) { return (1, Array(line.dropFirst(3))) }
                return (lineNo, line)
            }
            searched = buffer.count - start
            // The limit with room for a BOM and a CR.
            if searched > CSVSource.maxLineBytes + 4 {
                throw DataError(name, "line longer than \(CSVSource.maxLineBytes) bytes", at: "line \(lineNo + 1)")
            }
            if atEnd {
                guard start < buffer.count else { return nil }
                let line = Array(buffer[start...])
                start = buffer.count
                searched = 0
                lineNo += 1
                if lineNo == 1, line.starts(with: [0xEF, 0xBB, 0xBF]) { return (1, Array(line.dropFirst(3))) }
                return (lineNo, line)
            }
            if start > 0 {
                buffer.removeSubrange(0..<start)
                start = 0
            }
            let n = try chunk.withUnsafeMutableBytes { try source.read(into: $0.baseAddress!, count: $0.count) }
            buffer += chunk[0..<n]
            if n == 0 { atEnd = true }
            bytesRead += n
            if bytesRead > CSVSource.maxFileBytes { throw DataError(name, "CSV larger than \(CSVSource.maxFileBytes) bytes") }
        }
    }
}
