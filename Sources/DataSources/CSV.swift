// CSV and TSV with a header row. Every column but the label becomes one f32 field `x`; the label
// column (--label NAME or 1-based index) becomes `y`: integers ≥ 0 as i64 with classes "0"…,
// other numbers as an f32 regression target, text as i64 indices into the sorted class names.
// A UTF-8 BOM and CRLF line ends are accepted; quoted cells ("a, b", "say ""hi""") too.
// The file is read whole: the class list must be known before the first batch is written.

import Foundation
import TensorCore
import TensorStream

public final class CSVSource: SampleSource {
    public let name: String
    public private(set) var fields: [Field] = []
    public private(set) var metadata: [(key: String, value: String)] = []
    private var inner: MemorySamples!
    public var declaredCount: Int? { inner.count }

    public static let maxLineBytes = 1 << 20
    public static let maxFileBytes = 4 << 30

    public init(source: ByteSource, label: String?, delimiter: UInt8?, field: String?) throws {
        name = source.name
        let bytes = try CSVSource.readAll(source)
        var lines = CSVLines(bytes, name: name)
        guard let headerLine = try lines.next() else { throw DataError(name, "empty file, no header row") }
        let delim = delimiter ?? (headerLine.1.contains(9) && !headerLine.1.contains(44) ? 9 : 44)
        let header = try CSVSource.split(headerLine.1, delim, name: name, line: headerLine.0)
        guard !header.isEmpty else { throw DataError(name, "empty header row") }
        var labelIndex: Int?
        if let label {
            if let i = header.firstIndex(of: label) {
                if header.lastIndex(of: label) != i {
                    throw DataError(name, "the header names two columns '\(escapedForDisplay(label))'; give --label by its 1-based index", kind: .usage)
                }
                labelIndex = i
            } else if let k = Int(label), k >= 1, k <= header.count {
                labelIndex = k - 1
            } else {
                throw DataError(name, "no column '\(escapedForDisplay(label))' (columns: \(header.map { escapedForDisplay($0) }.joined(separator: ", ")))", kind: .usage)
            }
        }
        let width = header.count - (labelIndex == nil ? 0 : 1)
        guard width >= 1 else { throw DataError(name, "no feature columns besides the label") }
        var values: [Float] = []
        var labels: [String] = []
        var labelLines: [Int] = []
        var rows = 0
        while let (lineNo, line) = try lines.next() {
            if line.isEmpty || (line.count == 1 && line.first == 13) { continue }  // a slice: index 0 is not its start
            let cells = try CSVSource.split(line, delim, name: name, line: lineNo)
            guard cells.count == header.count else {
                throw DataError(name, "\(cells.count) columns where the header has \(header.count)", at: "line \(lineNo)")
            }
            for (c, cell) in cells.enumerated() {
                if c == labelIndex {
                    // An empty label turned every label into text and renumbered them all.
                    guard !cell.trimmingCharacters(in: .whitespaces).isEmpty else {
                        throw DataError(name, "empty label", at: "line \(lineNo), column \(c + 1) (\(escapedForDisplay(header[c])))")
                    }
                    // A class name is one line of the class list: "a\r" joined the next name.
                    guard !hasControlCharacters(cell) else {
                        throw DataError(name, "label with a control character", at: "line \(lineNo), column \(c + 1) (\(escapedForDisplay(header[c])))")
                    }
                    labels.append(cell)
                    labelLines.append(lineNo)
                    continue
                }
                guard let v = CSVSource.decimal(cell.trimmingCharacters(in: .whitespaces)) else {
                    throw DataError(name, "'\(escapedForDisplay(String(cell.prefix(40))))' is not a number", at: "line \(lineNo), column \(c + 1) (\(escapedForDisplay(header[c])))")
                }
                guard v.isFinite else {
                    throw DataError(name, "'\(escapedForDisplay(cell))' is not a finite number", at: "line \(lineNo), column \(c + 1) (\(escapedForDisplay(header[c])))")
                }
                values.append(v)
            }
            rows += 1
        }
        let xname = field ?? "x"
        var fs = [Field(name: xname, dtype: .f32, shape: Shape([width]))]
        var data: [[UInt8]] = [values.withUnsafeBytes { Array($0) }]
        var meta: [(key: String, value: String)] = [("\(xname).columns", header.enumerated().filter { $0.offset != labelIndex }.map(\.element).joined(separator: "\n"))]
        if labelIndex != nil {
            let trimmed = labels.map { $0.trimmingCharacters(in: .whitespaces) }
            if let ints = CSVSource.allInts(trimmed), let m = ints.max(), ints.allSatisfy({ $0 >= 0 }) {
                // Integer labels stay integers; class names only for a list of reasonable length.
                fs.append(Field(name: "y", dtype: .i64, shape: Shape([])))
                data.append(ints.map { Int64($0) }.withUnsafeBytes { Array($0) })
                if m < 65536 { meta.append(("y.classes", numericClassNames(maxLabel: m).joined(separator: "\n"))) }
            } else if let nums = CSVSource.allFloats(trimmed) {
                // Numbers all, one of them nan or out of f32's range: not text classes.
                if let bad = nums.firstIndex(where: { !$0.isFinite }) {
                    throw DataError(name, "label '\(escapedForDisplay(trimmed[bad]))' is not a finite number", at: "line \(labelLines[bad]), column \(labelIndex! + 1) (\(escapedForDisplay(header[labelIndex!])))")
                }
                fs.append(Field(name: "y", dtype: .f32, shape: Shape([])))
                data.append(nums.withUnsafeBytes { Array($0) })
            } else {
                let classes = Array(Set(trimmed)).sorted()
                let index = Dictionary(uniqueKeysWithValues: classes.enumerated().map { ($1, Int64($0)) })
                fs.append(Field(name: "y", dtype: .i64, shape: Shape([])))
                data.append(trimmed.map { index[$0]! }.withUnsafeBytes { Array($0) })
                meta.append(("y.classes", classes.joined(separator: "\n")))
            }
        }
        meta.append(("\(xname).source", name))
        if labelIndex != nil { meta.append(("y.source", name)) }
        fields = fs
        metadata = meta
        inner = MemorySamples(name: name, fields: fs, metadata: meta, count: rows, data: data)
        if rows == 0 { throw DataError(name, "no data rows after the header") }
    }

    public func read(max: Int, into: [UnsafeMutableRawPointer]) throws -> Int {
        try inner.read(max: max, into: into)
    }

    static func allInts(_ s: [String]) -> [Int]? {
        var out: [Int] = []
        out.reserveCapacity(s.count)
        for v in s { guard let i = Int(v) else { return nil }; out.append(i) }
        return out
    }

    static func allFloats(_ s: [String]) -> [Float]? {
        var out: [Float] = []
        for v in s { guard let f = decimal(v) else { return nil }; out.append(f) }
        return out
    }

    /// A number as people write one in a table: Swift's parser also reads hexadecimal
    /// (`0x10` is 16), which no spreadsheet or numpy means by that cell.
    /// A NUL ends the parse early ("1\0junk" was 1): refused too.
    static func decimal(_ s: String) -> Float? {
        s.utf8.contains(where: { $0 == UInt8(ascii: "x") || $0 == UInt8(ascii: "X") || $0 == 0 }) ? nil : Float(s)
    }

    static func readAll(_ source: ByteSource) throws -> [UInt8] {
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = try chunk.withUnsafeMutableBytes { try source.read(into: $0.baseAddress!, count: $0.count) }
            if n == 0 { break }
            out += chunk.prefix(n)
            if out.count > maxFileBytes { throw DataError(source.name, "CSV larger than \(maxFileBytes) bytes") }
        }
        return out
    }

    /// Splits one line into cells, honouring double quotes.
    static func split(_ line: ArraySlice<UInt8>, _ delim: UInt8, name: String, line no: Int) throws -> [String] {
        var cells: [String] = []
        var cur: [UInt8] = []
        var quoted = false
        var i = line.startIndex
        var end = line.endIndex
        if end > i, line[end - 1] == 13 { end -= 1 }
        while i < end {
            let c = line[i]
            if quoted {
                if c == 34 {
                    if i + 1 < end, line[i + 1] == 34 { cur.append(34); i += 1 } else { quoted = false }
                } else {
                    cur.append(c)
                }
            } else if c == 34 && cur.isEmpty {
                quoted = true
            } else if c == delim {
                cells.append(try cell(cur, name: name, line: no))
                cur = []
            } else {
                cur.append(c)
            }
            i += 1
        }
        if quoted { throw DataError(name, "unterminated quoted cell", at: "line \(no)") }
        cells.append(try cell(cur, name: name, line: no))
        return cells
    }

    static func cell(_ b: [UInt8], name: String, line: Int) throws -> String {
        guard let s = String(validating: b, as: UTF8.self) else { throw DataError(name, "cell is not valid UTF-8", at: "line \(line)") }
        return s
    }
}

/// Lines of a byte buffer, BOM skipped, each at most `CSVSource.maxLineBytes`.
struct CSVLines {
    let bytes: [UInt8]
    let name: String
    var pos = 0
    var lineNo = 0

    init(_ b: [UInt8], name: String) {
        bytes = b
        self.name = name
        if b.count >= 3, b[0] == 0xEF, b[1] == 0xBB, b[2] == 0xBF { pos = 3 }
    }

    mutating func next() throws -> (Int, ArraySlice<UInt8>)? {
        guard pos < bytes.count else { return nil }
        lineNo += 1
        let start = pos
        let limit = min(bytes.count, start + CSVSource.maxLineBytes + 2)
        var i = start
        while i < limit && bytes[i] != 10 { i += 1 }
        if i == limit && i < bytes.count {
            throw DataError(name, "line longer than \(CSVSource.maxLineBytes) bytes", at: "line \(lineNo)")
        }
        pos = i + 1
        return (lineNo, bytes[start..<i])
    }
}
