// Every reader on the small files of testdata/ (made by scripts/make-testdata), and each
// reader's malformed cases: the right values in, a named error out.

@testable import DataSources
import Foundation
import TensorCore
import TensorStream
import XCTest
import _TestSupport

final class LoaderTests: XCTestCase {
    func load(_ operands: [String], _ configure: (inout LoadOptions) -> Void = { _ in }, classes: [String]? = nil) throws -> (Schema, Int, [[UInt8]]) {
        var o = LoadOptions()
        configure(&o)
        let sources = try operands.map { op -> SampleSource in
            var spec = InputSpec(op)
            if spec.path.hasPrefix("testdata:") { spec.path = testdata(String(spec.path.dropFirst(9))) }
            return try Loader.open(spec, options: o)
        }
        let sink = MemorySink()
        try Loader.writeStream(sources, classes: classes, to: sink)
        return try readAll(sink.data)
    }

    /// Asserts that loading fails with a DataError whose message contains `words`.
    func assertRefused(_ operands: [String], _ words: String..., configure: (inout LoadOptions) -> Void = { _ in }, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try load(operands, configure), file: file, line: line) { e in
            guard let d = e as? DiagnosticError else { return XCTFail("not a diagnostic: \(e)", file: file, line: line) }
            let text = "\(d.location): \(d.problem)"
            XCTAssertEqual(d.kind, .badData, text, file: file, line: line)
            for w in words { XCTAssertTrue(text.contains(w), "'\(text)' should contain '\(w)'", file: file, line: line) }
        }
    }

    func floats(_ b: [UInt8]) -> [Float] { b.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) } }
    func int64s(_ b: [UInt8]) -> [Int64] { b.withUnsafeBytes { Array($0.bindMemory(to: Int64.self)) } }

    // MARK: IDX

    func testIDXPlainAndGzipAgree() throws {
        let (s1, n1, d1) = try load(["x=testdata:idx/images-u8.idx", "y=testdata:idx/labels-u8.idx"])
        let (s2, n2, d2) = try load(["x=testdata:idx/images-u8.idx.gz", "y=testdata:idx/labels-u8.idx.gz"])
        XCTAssertEqual(n1, 10)
        XCTAssertEqual(n2, 10)
        XCTAssertEqual(d1, d2)
        XCTAssertEqual(s1.fields, s2.fields)
        XCTAssertEqual(s1.fields[0], Field(name: "x", dtype: .u8, shape: Shape([28, 28, 1])))
        XCTAssertEqual(s1.fields[1], Field(name: "y", dtype: .u8, shape: Shape([])))
        XCTAssertEqual(d1[1], [3, 1, 4, 1, 5, 9, 2, 6, 5, 3])
        XCTAssertEqual(s1.classes(of: "y"), (0...9).map(String.init))
        // Image i, row r, column c holds (7i + r + c) % 256.
        XCTAssertEqual(d1[0][3 * 784 + 2 * 28 + 5], UInt8((21 + 2 + 5) % 256))
    }

    func testIDXDefaultFieldNamesAndClassNames() throws {
        let (s, _, _) = try load(["testdata:idx/images-u8.idx", "testdata:idx/labels-u8.idx"], classes: ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"])
        XCTAssertEqual(s.fields.map(\.name), ["x", "y"])
        XCTAssertEqual(s.classes(of: "y")?.last, "j")
        XCTAssertThrowsError(try load(["testdata:idx/images-u8.idx", "testdata:idx/labels-u8.idx"], classes: ["a", "b"]))
    }

    func testIDXBigEndianTypesConvert() throws {
        let (s, n, d) = try load(["testdata:idx/images-f32.idx"])
        XCTAssertEqual(n, 4)
        XCTAssertEqual(s.fields[0].shape, Shape([3, 2, 1]))
        XCTAssertEqual(floats(d[0]), (0..<24).map { Float($0) * 0.5 })
        let (s2, _, d2) = try load(["v=testdata:idx/values-i32.idx"])
        XCTAssertEqual(s2.fields[0].dtype, .i32)
        XCTAssertEqual(d2[0].withUnsafeBytes { Array($0.bindMemory(to: Int32.self)) }, [-2, 0, 7, Int32.max])
        XCTAssertNil(s2.classes(of: "v"), "negative labels get no class list")
    }

    func testIDXMalformed() {
        assertRefused(["x=testdata:idx/images-short.idx"], "images-short.idx", "short")
        assertRefused(["x=testdata:idx/images-long.idx"], "images-long.idx", "longer")
        assertRefused(["x=testdata:idx/overflow.idx"], "overflow.idx")
        assertRefused(["x=testdata:idx/images-u8.idx", "y=testdata:idx/labels-9.idx"], "labels-9.idx", "9", "images-u8.idx", "10")
    }

    func testGzipTrailerAndDamageAreCaught() {
        assertRefused(["x=testdata:idx/images-u8-badcrc.idx.gz"], "images-u8-badcrc.idx.gz", "data check")
        assertRefused(["x=testdata:idx/images-u8-badsize.idx.gz"], "images-u8-badsize.idx.gz", "length check")
        assertRefused(["x=testdata:idx/images-u8-cut.idx.gz"], "images-u8-cut.idx.gz", "cut short")
        assertRefused(["x=testdata:idx/images-u8-flipped.idx.gz"], "images-u8-flipped.idx.gz")
    }

    func testBzip2AndXzLikeThePlainFile() throws {
        let plain = try load(["testdata:csv/iris-small.csv"]) { $0.label = "species" }
        for packed in ["csv/iris-small.csv.bz2", "csv/iris-small.csv.xz"] {
            let (s, n, d) = try load(["testdata:" + packed]) { $0.label = "species" }
            XCTAssertEqual(n, plain.1, packed)
            XCTAssertEqual(d, plain.2, packed)
            XCTAssertEqual(s.fields, plain.0.fields, packed)
        }
        // Bytes after the bzip2 data were ignored (libarchive, like bzip2(1), stops at the
        // last stream); gzip, xz and zstd data with a tail are refused, and so is this.
        assertRefused(["testdata:csv/iris-garbage.csv.bz2"], "iris-garbage.csv.bz2", "garbage after the end of the bzip2 data") { $0.label = "species" }
        // Cut short: libarchive's words, one space apart, after what they mean.
        let xz = Array(try Data(contentsOf: URL(fileURLWithPath: testdata("csv/iris-small.csv.xz"))))
        let cut = FileManager.default.temporaryDirectory.appendingPathComponent("cut-\(UUID().uuidString).csv.xz").path
        try Data(xz.prefix(xz.count / 2)).write(to: URL(fileURLWithPath: cut))
        defer { try? FileManager.default.removeItem(atPath: cut) }
        XCTAssertThrowsError(try load([cut]) { $0.label = "species" }) { e in
            let problem = (e as? DiagnosticError)?.problem ?? ""
            XCTAssertTrue(problem.hasPrefix("compressed data damaged or cut short: "), problem)
            XCTAssertFalse(problem.contains("  "), problem)
        }
    }

    func testGzipPrefixSweepIsAlwaysRefused() throws {
        let gz = Array(try Data(contentsOf: URL(fileURLWithPath: testdata("idx/labels-u8.idx.gz"))))
        for cut in 1..<gz.count {
            let src = PeekableSource(MemorySource(Array(gz.prefix(cut)), name: "cut.gz"))
            XCTAssertThrowsError(try {
                let d = try decompressing(src)
                let s = try IDXSource(source: d, field: "y")
                var buf = [UInt8](repeating: 0, count: 64)
                _ = try buf.withUnsafeMutableBytes { try s.read(max: 10, into: [$0.baseAddress!]) }
            }(), "gzip cut at \(cut) of \(gz.count) accepted")
        }
    }

    func testHugeDeclaredSizesAllocateNothingUpFront() throws {
        // IDX labels claiming 2^32−16 samples, NPY claiming 2^40 int64 labels: refused as
        // short, without allocating what the header claims (the process would abort).
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Data([0, 0, 0x08, 1, 0xFF, 0xFF, 0xFF, 0xF0, 1, 2, 3]).write(to: URL(fileURLWithPath: dir + "/labels.idx"))
        assertRefused([dir + "/labels.idx"], "labels.idx", "short")
        var npy: [UInt8] = [0x93] + Array("NUMPY".utf8) + [1, 0]
        var dict = "{'descr': '<i8', 'fortran_order': False, 'shape': (1099511627776,), }"
        dict += String(repeating: " ", count: (64 - (10 + dict.utf8.count + 1) % 64) % 64) + "\n"
        npy += [UInt8(dict.utf8.count & 0xFF), UInt8(dict.utf8.count >> 8)] + Array(dict.utf8) + [1, 0, 0, 0, 0, 0, 0, 0]
        try Data(npy).write(to: URL(fileURLWithPath: dir + "/labels.npy"))
        assertRefused([dir + "/labels.npy"], "labels.npy", "short")
    }

    func testGzipBombStopsAfterTheDeclaredSamples() {
        // 10 images declared, 50 MB of zeros behind them: refused without inflating it all.
        assertRefused(["x=testdata:idx/bomb.idx.gz"], "bomb.idx.gz", "longer")
    }

    // MARK: CSV

    func testCSVWithTextLabels() throws {
        let (s, n, d) = try load(["testdata:csv/iris-small.csv"]) { $0.label = "species" }
        XCTAssertEqual(n, 12)
        XCTAssertEqual(s.fields[0], Field(name: "x", dtype: .f32, shape: Shape([4])))
        XCTAssertEqual(s.fields[1], Field(name: "y", dtype: .i64, shape: Shape([])))
        XCTAssertEqual(s.classes(of: "y"), ["setosa", "versicolor", "virginica"])
        XCTAssertEqual(Set(int64s(d[1])), [0, 1, 2])
        XCTAssertEqual(int64s(d[1]).filter { $0 == 2 }.count, 4)
    }

    func testCSVNumericLabelByIndexAndCRLFBOM() throws {
        let (s, n, d) = try load(["testdata:csv/numeric-label.csv"]) { $0.label = "1" }
        XCTAssertEqual(n, 6)
        XCTAssertEqual(s.fields[0].shape, Shape([3]))
        XCTAssertEqual(s.classes(of: "y"), ["0", "1", "2"])
        let (s2, n2, d2) = try load(["testdata:csv/crlf-bom.csv"]) { $0.label = "label" }
        XCTAssertEqual(n2, n)
        XCTAssertEqual(d2, d, "a BOM and CRLF line ends read the same as plain LF")
        XCTAssertEqual(s2.fields, s.fields)
    }

    func testTSVRegressionTarget() throws {
        let (s, n, _) = try load(["testdata:csv/regression.tsv"]) { $0.label = "target" }
        XCTAssertEqual(n, 5)
        XCTAssertEqual(s.fields[1].dtype, .f32, "non-integer targets are a regression field")
        XCTAssertNil(s.classes(of: "y"))
    }

    func testCSVMalformedNamesLineAndColumn() {
        assertRefused(["testdata:csv/ragged.csv"], "ragged.csv", "line 4", "columns")
        assertRefused(["testdata:csv/non-numeric.csv"], "non-numeric.csv", "line 3", "column 2", "abc")
        assertRefused(["testdata:csv/nan.csv"], "nan.csv", "line 5", "column 3")
        assertRefused(["testdata:csv/long-line.csv"], "long-line.csv", "line 2", "longer")
        // Found by scripts/fuzz (testdata/fuzz/csv-crashes/): a one-byte line after the header
        // indexed its slice from 0 and trapped.
        for bytes in [[1, 10, 108], [97, 10, 13, 10, 120]] as [[UInt8]] {
            XCTAssertThrowsError(try CSVSource(source: MemorySource(bytes, name: "f.csv"), label: nil, delimiter: nil, field: nil)) { e in
                XCTAssertEqual((e as? DiagnosticError)?.kind, .badData, "\(e)")
            }
        }
        let cr = try? CSVSource(source: MemorySource(Array("a\n\r\n1\n".utf8), name: "f.csv"), label: nil, delimiter: nil, field: nil)
        XCTAssertEqual(cr?.declaredCount, 1, "a line holding only CR is skipped: one row")
    }

    func testCSVNumbersAreDecimalAndIntegerLabelsStayIntegers() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func csv(_ text: String) throws -> String {
            let p = dir + "/t\(UUID().uuidString).csv"
            try text.write(toFile: p, atomically: false, encoding: .utf8)
            return p
        }
        // Quoted, blank-padded, signed, exponent, a non-ASCII blank (the slow way), and
        // 2^24 + 1, halfway between two Floats: each as Swift's parser reads it.
        let (_, _, q) = try load([try csv("a,b,c,d,e,f\n\"3.5\", 2 ,-1e-3,\"+7\",\u{A0}4\u{A0},16777217\r\n")])
        XCTAssertEqual(floats(q[0]), [3.5, 2, -1e-3, 7, 4, 16_777_216])
        // Swift's parser reads 0x10 as 16; no table means that.
        assertRefused([try csv("a,b\n1,0x10\n")], "line 2", "column 2", "'0x10' is not a number")
        // Text in a column without --label: the usual cause is named (helper-43's review).
        assertRefused([try csv("a,species\n1,setosa\n")], "line 2", "column 2 (species): 'setosa' is not a number; a column of labels is named with --label species, and text documents load with --text")
        // Labels past 65535 stay i64 (they were an f32 regression target, rounding past 2^24),
        // with no class list, as an .npz's do.
        let (s, _, d) = try load([try csv("a,label\n1,70000\n2,16777217\n")]) { $0.label = "label" }
        XCTAssertEqual(s.fields[1], Field(name: "y", dtype: .i64, shape: Shape([])))
        XCTAssertEqual(int64s(d[1]), [70000, 16_777_217])
        XCTAssertNil(s.classes(of: "y"))
        XCTAssertEqual(s.metadata.first { $0.key == "y.source" }?.value, s.metadata.first { $0.key == "x.source" }?.value)
        XCTAssertNotNil(s.metadata.first { $0.key == "y.source" }, "the label field names its file, as x does")
        // A NUL ended the number ("1\0junk" was 1); an empty label turned every label into
        // text, renumbering them; nan among numbers made text classes of a regression target;
        // --label naming one of two columns of one name picked the first.
        assertRefused([try csv("a,b\n1\u{0}junk,2\n")], "line 2", "column 1", "is not a number")
        assertRefused([try csv("a,label\n1,0\n2,\n3,10\n")], "line 3, column 2 (label): empty label") { $0.label = "label" }
        assertRefused([try csv("a,label\n1,1.5\n2,nan\n")], "line 3, column 2 (label): label 'nan' is not a finite number") { $0.label = "label" }
        // A number too large for f32 is named as such, not as "not a finite number".
        assertRefused([try csv("a,b\n1,3.5e38\n")], "line 2, column 2 (b): '3.5e38' is beyond the range of f32 (±3.4e38)")
        assertRefused([try csv("a,b\n1,-inf\n")], "line 2, column 2 (b): '-inf' is not a finite number")
        assertRefused([try csv("a,label\n1,1.5\n2,1e39\n")], "line 3, column 2 (label): label '1e39' is beyond the range of f32") { $0.label = "label" }
        assertRefused([try csv("v,label\n1,\"a\r\"\n0,b\n")], "line 2, column 2 (label): label with a control character") { $0.label = "label" }
        XCTAssertThrowsError(try load([try csv("a,a,b\n1,2,3\n")]) { $0.label = "a" }) { e in
            XCTAssertEqual((e as? DiagnosticError)?.kind, .usage)
            XCTAssertTrue((e as? DiagnosticError)?.problem.contains("names two columns 'a'") == true, "\(e)")
        }
        // Hexadecimal labels are names, not numbers.
        let (h, _, hd) = try load([try csv("a,label\n1,0x10\n2,0x2\n")]) { $0.label = "label" }
        XCTAssertEqual(h.classes(of: "y"), ["0x10", "0x2"])
        XCTAssertEqual(int64s(hd[1]), [0, 1])
        // Names that differ only in Unicode composition are two classes (Swift's String
        // equality merged "café" with "cafe" and a combining accent), in the order of bytes.
        let (u, _, ud) = try load([try csv("a,label\n1,caf\u{E9}\n2,cafe\u{301}\n3,caf\u{E9}\n")]) { $0.label = "label" }
        XCTAssertEqual(u.classes(of: "y")?.map { Array($0.utf8) }, [Array("cafe\u{301}".utf8), Array("caf\u{E9}".utf8)])
        XCTAssertEqual(int64s(ud[1]), [1, 0, 1])
        // Integers with a negative one, and integers among decimals, are a regression target,
        // each value as its text reads.
        let (r, _, rd) = try load([try csv("a,t\n1,-3\n2,16777217\n3,0.5\n")]) { $0.label = "t" }
        XCTAssertEqual(r.fields[1].dtype, .f32)
        XCTAssertEqual(floats(rd[1]), [-3, 16_777_216, 0.5])
        // A file with old Mac line ends is one line: said so, not "no data rows".
        assertRefused([try csv("a,b\r1,2\r3,4\r")], "line 1", "carriage return alone")
        // A megabyte cell is shown by its start: an error is one short line.
        let long = String(repeating: "9", count: 100_000) + "e99"
        XCTAssertThrowsError(try load([try csv("a,b\n1,\(long)\n")])) { e in
            let d = e as? DiagnosticError
            XCTAssertTrue(d?.problem.hasSuffix("…' is beyond the range of f32 (±3.4e38)") == true, "\(e)")
            XCTAssertLessThan(d?.problem.count ?? .max, 100)
        }
    }

    /// Plain decimals are read from a cell's bytes without making a String: every cell that
    /// way gives the bits `decimal` (Swift's own parser) gives, and the common forms take it.
    func testCSVFastDecimalsAgreeWithTheStringParser() {
        func fast(_ s: String) -> Float? { Array(s.utf8).withUnsafeBufferPointer { CSVSource.plainDecimal($0) } }
        func slow(_ s: String) -> Float? { CSVSource.decimal(trimmed(s)) }
        var checked = 0, taken = 0
        func check(_ s: String, line: UInt = #line) {
            checked += 1
            guard let f = fast(s) else { return }
            taken += 1
            XCTAssertEqual(f.bitPattern, slow(s)?.bitPattern, "'\(s)'", line: line)
        }
        // Forms a table holds, each of which must take the fast way.
        for s in ["0", "255", "-0", "+7", " 12 ", "\t3.5", "0.0039215689", "-1.5e-3", "1E+05", "2.e3",
                  ".5", "-.25", "3.14159", "100000000000000", "0.000000000000000000001", "7e-20"] {
            XCTAssertNotNil(fast(s), "'\(s)' is a plain decimal")
            check(s)
        }
        XCTAssertEqual(fast("-0")?.sign, .minus)
        // Not plain, or not numbers at all: the slow way decides.
        for s in ["", " ", "-", "+", ".", "e5", "1e", "1e+", "--1", "+-1", "1.2.3", "1,5", "0x10", "1_000",
                  "nan", "inf", "-infinity", "1e39", "3.5e38", "1e-46", "12345678901234567", "1 2", "١"] {
            XCTAssertNil(fast(s), "'\(s)' is left to the slow way")
            check(s)
        }
        // Exponents of six digits after thousands of zeros (helper-48's review: the exponent
        // was cut to five digits and 1e22 came out where the slow way says beyond f32).
        for s in ["." + String(repeating: "0", count: 9977) + "1e100000", "0." + String(repeating: "0", count: 9999) + "1e100000",
                  "0." + String(repeating: "0", count: 99998) + "1e999999"] {
            XCTAssertNil(fast(s))
            XCTAssertEqual(slow(s), .infinity)
        }
        XCTAssertEqual(fast("0." + String(repeating: "0", count: 9999) + "1e10005"), 1e5)
        // Exactly halfway between two Floats: 2^24 + 1 rounds to even, 16777216.
        XCTAssertNil(fast("16777217"))
        XCTAssertEqual(slow("16777217"), 16_777_216)
        // Many random numbers as people and programs print them, and near-halfway cases.
        var rng = SeededRandom(seed: 11)
        for _ in 0..<40_000 {
            let magnitude = rng.nextUnitDouble() * 60 - 30
            let v = (rng.nextUnitDouble() < 0.5 ? -1 : 1) * rng.nextUnitDouble() * pow(10, magnitude)
            let digits = 1 + Int(rng.nextUnitDouble() * 17)
            check(String(format: "%.\(digits)g", v))
            check(String(format: "%.\(min(digits, 12))f", v))
            let f = Float(v)
            if f.isFinite, f != 0 {
                let half = (Double(f) + Double(f.nextUp)) / 2
                check(String(format: "%.\(digits)g", half))
                check(String(format: "%.15g", half))
            }
            // Strings of the characters a decimal is made of, in any order.
            let chars = Array("0123456789.eE+- ")
            check(String((0..<(1 + Int(rng.nextUnitDouble() * 8))).map { _ in chars[Int(rng.nextUnitDouble() * Double(chars.count)) % chars.count] }))
        }
        XCTAssertGreaterThan(taken, checked / 3, "the fast way takes most printed numbers")
    }

    /// Rows go through a spill file, not memory: a file of many rows reads back exactly, in
    /// batches, with labels of every kind.
    func testCSVOfManyRowsReadsBackExactly() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var text = "a,b,label\n"
        for i in 0..<50_000 { text += "\(i),\(Float(i) / 4),\(["cat", "dog", "émeu"][i % 3])\n" }
        let p = dir + "/many.csv"
        try text.write(toFile: p, atomically: false, encoding: .utf8)
        let (s, n, d) = try load([p]) { $0.label = "label" }
        XCTAssertEqual(n, 50_000)
        XCTAssertEqual(s.classes(of: "y"), ["cat", "dog", "émeu"])
        let x = floats(d[0]), y = int64s(d[1])
        for i in stride(from: 0, to: 50_000, by: 997) {
            XCTAssertEqual(x[2 * i], Float(i))
            XCTAssertEqual(x[2 * i + 1], Float(i) / 4)
            XCTAssertEqual(y[i], Int64(i % 3))
        }
    }

    func testCSVUnknownLabelColumnIsAUsageError() {
        XCTAssertThrowsError(try load(["testdata:csv/iris-small.csv"]) { $0.label = "colour" }) { e in
            XCTAssertEqual((e as? DiagnosticError)?.kind, .usage)
        }
    }

    // MARK: NPY / NPZ

    func testNPYDtypesAndLayouts() throws {
        let (s, n, d) = try load(["testdata:npy/f32-2x3x4.npy"])
        XCTAssertEqual(n, 2)
        XCTAssertEqual(s.fields[0], Field(name: "x", dtype: .f32, shape: Shape([3, 4])))
        XCTAssertEqual(floats(d[0]), (0..<24).map { Float($0) / 4 })
        XCTAssertEqual(try load(["testdata:npy/u8-5x2.npy"]).0.fields[0].dtype, .u8)
        let (s3, _, d3) = try load(["y=testdata:npy/i64-7.npy"])
        XCTAssertEqual(s3.fields[0].dtype, .i64)
        XCTAssertEqual(int64s(d3[0]), [-3, -2, -1, 0, 1, 2, 3])
        XCTAssertEqual(try load(["testdata:npy/f64-3x2.npy"]).0.fields[0].dtype, .f64)
        XCTAssertEqual(try load(["testdata:npy/i32-4.npy"]).0.fields[0].dtype, .i32)
        let (_, _, be) = try load(["testdata:npy/f32-bigendian.npy"])
        XCTAssertEqual(floats(be[0]), (0..<6).map(Float.init), "'>f4' is swapped to little-endian")
        let (fs, _, fo) = try load(["testdata:npy/f32-fortran.npy"])
        XCTAssertEqual(fs.fields[0].shape, Shape([3]))
        XCTAssertEqual(floats(fo[0]), (0..<6).map(Float.init), "Fortran order is transposed to C order")
    }

    func testNPYMalformed() {
        assertRefused(["testdata:npy/object.npy"], "object.npy", "pickled arrays refused")
        assertRefused(["testdata:npy/huge-header.npy"], "huge-header.npy")
        assertRefused(["testdata:npy/npy-v2-header-4gib.npy"], "npy-v2-header-4gib.npy", "header length")
        assertRefused(["testdata:npy/short.npy"], "short.npy", "short")
        assertRefused(["testdata:npy/scalar.npy"], "scalar.npy", "0-d")
    }

    /// The header dict is read as numpy reads it, or refused: a second 'descr' (numpy takes
    /// the last, this reader took the first: i4 values became tiny floats), a key named inside
    /// a string, `(2)` for a shape, `Truely`, an unknown byte order.
    func testNPYHeaderIsReadAsNumpyReadsIt() throws {
        XCTAssertEqual(try NPYReader.parseDict("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }          \n", name: "a").shape, [2, 3])
        XCTAssertEqual(try NPYReader.parseDict("{'shape':(3,),'fortran_order':True,'descr':'>i2'}", name: "a").bigEndian, true)
        XCTAssertEqual(try NPYReader.parseDict("{'descr': '|u1', 'fortran_order': False, 'shape': ()}", name: "a").shape, [])
        XCTAssertEqual(try NPYReader.parseDict("{'descr': '<i8', 'fortran_order': False, 'shape': (4L, 2L)}", name: "a").shape, [4, 2])
        for (dict, words) in [("{'descr': '<f4', 'descr': '<i4', 'fortran_order': False, 'shape': (2,)}", "gives 'descr' twice"),
                              ("{'note': 'descr': x, 'descr': '<f4', 'fortran_order': False, 'shape': (2,)}", "the key 'note'"),
                              ("{'descr': '<f4', 'fortran_order': False, 'shape': (2)}", "without its comma"),
                              ("{'descr': '<f4', 'fortran_order': False, 'shape': (2,,3)}", "a size expected"),
                              ("{'descr': '<f4', 'fortran_order': Truely, 'shape': (2,)}", "an unknown word"),
                              ("{'descr': 'xf4', 'fortran_order': False, 'shape': (2,)}", "dtype 'xf4' unsupported"),
                              ("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,)}", "structured dtype"),
                              ("{'descr': '<f4', 'fortran_order': False}", "no 'shape' tuple"),
                              ("{'descr': '<f4', 'fortran_order': False, 'shape': (2,)} x", "text after the dict")] {
            XCTAssertThrowsError(try NPYReader.parseDict(dict, name: "a.npy")) { e in
                XCTAssertTrue("\(e)".contains(words), "\(dict): \(e)")
                XCTAssertEqual((e as? DiagnosticError)?.kind, .badData)
            }
        }
    }

    func testNPZPlainAndCompressed() throws {
        let (s, n, d) = try load(["testdata:npz/xy.npz"])
        XCTAssertEqual(n, 5)
        XCTAssertEqual(s.fields.map(\.name), ["x", "y"])
        XCTAssertEqual(s.fields[0].shape, Shape([3, 4]))
        XCTAssertEqual(floats(d[0]), (0..<60).map { Float($0) / 10 })
        XCTAssertEqual(int64s(d[1]), [0, 1, 2, 1, 0])
        XCTAssertEqual(s.classes(of: "y"), ["0", "1", "2"])
        let (_, _, dc) = try load(["testdata:npz/xy-compressed.npz"])
        XCTAssertEqual(dc, d)
        // Written to a pipe: each member's lengths come after its data.
        let (ss, ns, ds) = try load(["testdata:npz/xy-streamed.npz"])
        XCTAssertEqual(ss.fields, s.fields)
        XCTAssertEqual(ns, 5)
        XCTAssertEqual(ds, d)
    }

    func testNPZWriterUsesZIP64RecordsAndNumPyAndWeReadThem() throws {
        // A member of 4 GiB or more, or an archive whose directory starts past 4 GiB, needs
        // ZIP64 records; without them the 32-bit offsets wrapped. The limit lowered to 0 puts
        // every record in that form without writing 4 GiB.
        let saved = NPZWriter.zip64Limit
        NPZWriter.zip64Limit = 0
        defer { NPZWriter.zip64Limit = saved }
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let schema = Schema(fields: [Field(name: "x", dtype: .f32, shape: Shape([2, 3])), Field(name: "y", dtype: .i64, shape: Shape([]))])
        let xs = (0..<30).map { Float($0) / 4 }, ys = (0..<5).map { Int64($0) * 1_000_000_007 }
        let stream = try makeStream(schema, batches: [(3, [xs.prefix(18).withUnsafeBytes { Array($0) }, ys.prefix(3).withUnsafeBytes { Array($0) }]),
                                                      (2, [xs.suffix(12).withUnsafeBytes { Array($0) }, ys.suffix(2).withUnsafeBytes { Array($0) }])])
        let path = dir + "/z64.npz"
        let reader = try StreamReader(source: MemorySource(stream, name: "memory"))
        let w = try NPZWriter(path: path, schema: schema)
        while let b = try reader.next() { try w.add(b) }
        try w.commit()
        let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        XCTAssertTrue((0..<bytes.count - 4).contains { bytes[$0..<$0 + 4] == [0x50, 0x4B, 6, 6] }, "no ZIP64 end record")
        // Python's zipfile finds the ZIP64 extra fields and checks every CRC; numpy reads the
        // arrays.
        let py = """
        import numpy as np, sys, zipfile
        z = zipfile.ZipFile(sys.argv[1])
        assert z.testzip() is None
        assert all(i.extra[:2] == b"\\x01\\x00" and i.header_offset < 4096 for i in z.infolist()), [i.extra for i in z.infolist()]
        a = np.load(sys.argv[1])
        print(a["x"].shape, a["x"].dtype, a["x"].sum(), a["y"].tolist())
        """
        let r = try sh("python3 -c '\(py)' \(path)")
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdoutText, "(5, 2, 3) float32 108.75 [0, 1000000007, 2000000014, 3000000021, 4000000028]\n")
        let (s, n, d) = try load([path])
        XCTAssertEqual(s.fields.map(\.name), ["x", "y"])
        XCTAssertEqual(n, 5)
        XCTAssertEqual(floats(d[0]), xs)
        XCTAssertEqual(int64s(d[1]), ys)
    }

    /// helper-38's review against NumPy and Python's csv: each case loaded wrongly or was refused
    /// with a misleading message.
    func testLoaderCasesFromTheNumPyReview() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func file(_ name: String, _ bytes: [UInt8]) throws -> String {
            try Data(bytes).write(to: URL(fileURLWithPath: "\(dir)/\(name)"))
            return "\(dir)/\(name)"
        }
        // A blank line before the header was taken for the header ("2 columns where the header has 1").
        let blank = try file("blank.csv", Array("\n\r\na,b\n1,2\n".utf8))
        let (bs, bn, bd) = try load([blank])
        XCTAssertEqual(bn, 1)
        XCTAssertEqual(bs.metadata("x.columns"), "a\nb")
        XCTAssertEqual(floats(bd[0]), [1, 2])
        // A label's blanks are trimmed before the control-character check, as the page says.
        let tab = try file("tab.csv", Array("v,lab\n1,cat\t\n2,dog\n".utf8))
        XCTAssertEqual(try load([tab]) { $0.label = "lab" }.0.classes(of: "y"), ["cat", "dog"])
        // NumPy's bool is any byte but 0 for True: read as 1, by both the whole-array reader
        // (labels) and the streaming one.
        func npy(_ shape: String, _ data: [UInt8]) -> [UInt8] {
            var dict = Array("{'descr': '|b1', 'fortran_order': False, 'shape': \(shape), }".utf8)
            while (10 + dict.count + 1) % 64 != 0 { dict.append(0x20) }
            dict.append(0x0A)
            return [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(dict.count & 0xFF), UInt8(dict.count >> 8)] + dict + data
        }
        XCTAssertEqual(try load([try file("b1.npy", npy("(3,)", [0, 1, 2]))]).2[0], [0, 1, 1])
        XCTAssertEqual(try load([try file("b2.npy", npy("(2, 2)", [0, 7, 255, 1]))]).2[0], [0, 1, 1, 1])
        // An empty .npz (np.savez with no arrays) starts PK 5 6: "cannot tell the format".
        assertRefused([try file("empty.npz", Array("PK".utf8) + [5, 6] + [UInt8](repeating: 0, count: 18))], "no .npy arrays in the archive")
        // A header "v, lab" names " lab": the message says so and how to give it.
        let spaced = try file("spaced.csv", Array("v, lab\n1,cat\n".utf8))
        XCTAssertThrowsError(try load([spaced]) { $0.label = "lab" }) { e in
            XCTAssertEqual((e as? DiagnosticError)?.problem, "no column 'lab', but column 2 is ' lab' with blanks; give --label 2", "\(e)")
        }
        // y= on a labelled CSV named two fields y: the command's clash, not the file's.
        XCTAssertThrowsError(try load(["y=\(tab)"]) { $0.label = "lab" }) { e in
            let d = e as? DiagnosticError
            XCTAssertEqual(d?.kind, .usage, "\(e)")
            XCTAssertTrue(d?.problem.contains("with --label the labels are field y") == true, "\(e)")
        }
    }

    func testNPZMalformed() throws {
        assertRefused(["testdata:npz/mismatch.npz"], "mismatch.npz", "4", "5")
        assertRefused(["testdata:npz/cut.npz"], "cut.npz")
        // Two members of one name: bad data (65), not advice to rename an operand.
        assertRefused(["testdata:npz/dup-member.npz"], "dup-member.npz", "holds field 'x' twice")
        // The same file named twice is the command's mistake, not the file's.
        XCTAssertThrowsError(try load(["testdata:npz/xy.npz", "testdata:npz/xy.npz"])) { e in
            let d = e as? DiagnosticError
            XCTAssertEqual(d?.kind, .usage, "\(e)")
            XCTAssertTrue(d?.problem.contains("also comes from \(testdata("npz/xy.npz")) (the same file given twice)") == true, "\(e)")
        }
        // A member that is not NAME.npy was skipped without a word.
        assertRefused(["testdata:npz/extra-member.npz"], "extra-member.npz", "'README.txt' is not an .npy array")
        // A flipped payload byte in x's data (200 bytes past its .npy magic), written to a
        // temporary file whose name starts with `name`.
        func flipped(_ rel: String, _ name: String) throws -> String {
            var b = Array(try Data(contentsOf: URL(fileURLWithPath: testdata(rel))))
            let at = try XCTUnwrap((0..<b.count - 5).first { b[$0] == 0x93 && b[$0 + 1] == 0x4E }) + 200
            b[at] ^= 1
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("\(name)\(UUID().uuidString).npz").path
            try Data(b).write(to: URL(fileURLWithPath: path))
            return path
        }
        // In a stored member, libarchive reports the CRC only when the reader asks past the
        // member's end, which ours does.
        let path = try flipped("npz/xy.npz", "flip-")
        defer { try? FileManager.default.removeItem(atPath: path) }
        assertRefused([path], "flip-", ".npz: x.npy: ", "bad CRC")  // the member, not only the archive
        // Where the lengths follow the data, libarchive looks for a descriptor whose CRC-32
        // matches, finds none, and runs the member on; the array ends first.
        let path2 = try flipped("npz/xy-streamed.npz", "flip-streamed-")
        defer { try? FileManager.default.removeItem(atPath: path2) }
        assertRefused([path2], "flip-streamed-", "x.npy: member runs on past the array its .npy header describes: damaged (CRC-32")
        // Cut inside the central directory, or followed by other bytes: every member is whole,
        // and the streaming reader stops at the directory, so both loaded without a word.
        let whole = Array(try Data(contentsOf: URL(fileURLWithPath: testdata("npz/xy.npz"))))
        for (bytes, what) in [(Array(whole.dropLast(1)), "cut"), (Array(whole.dropLast(30)), "cut2"), (whole + Array("junk\n".utf8), "junk")] {
            let p = FileManager.default.temporaryDirectory.appendingPathComponent("\(what)-\(UUID().uuidString).npz").path
            try Data(bytes).write(to: URL(fileURLWithPath: p))
            defer { try? FileManager.default.removeItem(atPath: p) }
            assertRefused([p], what, "does not end with its end-of-central-directory record")
        }
    }

    func testNPZWhoseCentralDirectoryDisagreesWithItsMembersIsRefused() throws {
        // Members are read from their local headers; NumPy lists them from the central
        // directory. A member the directory leaves out was loaded as a field NumPy does not
        // see (and one it lists but the file lacks went unnoticed): both are refused now.
        let whole = Array(try Data(contentsOf: URL(fileURLWithPath: testdata("npz/xy.npz"))))
        func le(_ i: Int, _ n: Int) -> Int { (0..<n).reduce(0) { $0 | Int(whole[i + $1]) << (8 * $1) } }
        let end = try XCTUnwrap((0...(whole.count - 22)).last { whole[$0] == 0x50 && whole[$0 + 1] == 0x4B && whole[$0 + 2] == 5 && whole[$0 + 3] == 6 })
        let (count, size, offset) = (le(end + 10, 2), le(end + 12, 4), le(end + 16, 4))
        XCTAssertEqual(count, 2)
        var entries: [[UInt8]] = [], i = offset
        while i < offset + size {
            let n = 46 + le(i + 28, 2) + le(i + 30, 2) + le(i + 32, 2)
            entries.append(Array(whole[i..<(i + n)]))
            i += n
        }
        func rebuilt(_ list: [[UInt8]]) -> [UInt8] {
            let cd = list.flatMap { $0 }
            var tail = Array(whole[end...])
            for at in [8, 10] { tail[at] = UInt8(list.count & 0xFF); tail[at + 1] = UInt8(list.count >> 8) }
            for k in 0..<4 { tail[12 + k] = UInt8((cd.count >> (8 * k)) & 0xFF) }
            return Array(whole[..<offset]) + cd + tail
        }
        var renamed = entries[1]
        renamed[46] = UInt8(ascii: "z")  // 'y.npy' listed as 'z.npy'
        let cases: [([UInt8], String)] = [
            (rebuilt([entries[0]]), "member 'y.npy' is not listed in it"),
            (rebuilt(entries + [renamed]), "it lists 'z.npy', which the archive does not hold"),
        ]
        for (k, (bytes, what)) in cases.enumerated() {
            let p = FileManager.default.temporaryDirectory.appendingPathComponent("dir\(k)-\(UUID().uuidString).npz").path
            try Data(bytes).write(to: URL(fileURLWithPath: p))
            defer { try? FileManager.default.removeItem(atPath: p) }
            assertRefused([p], "dir\(k)-", "zip archive's central directory disagrees with its members (\(what)); NumPy reads the directory")
        }
        // Rebuilt whole, it loads: the check reads the directory as written.
        let p = FileManager.default.temporaryDirectory.appendingPathComponent("dir-whole-\(UUID().uuidString).npz").path
        try Data(rebuilt(entries)).write(to: URL(fileURLWithPath: p))
        defer { try? FileManager.default.removeItem(atPath: p) }
        XCTAssertEqual(try load([p]).0.fields.map(\.name), ["x", "y"])
    }

    func testDataLibarchiveCannotOpenIsAnErrorNotADoubleFree() {
        // Found by scripts/fuzz (testdata/fuzz/npz-crashes/, load-crashes/): when libarchive
        // could not open the data, the zip and bzip2/xz/zstd readers freed the archive and threw,
        // and their deinit freed it again (abort, status 134).
        let inputs: [([UInt8], String)] = [([], "e.npz"), (Array("BZh91AY&SYgarbage".utf8), "g.bz2"),
                                           ([0xFD, 0x37, 0x7A, 0x58, 0x5A, 0x00, 1, 2, 3], "g.xz"), ([0x28, 0xB5, 0x2F, 0xFD, 1, 2, 3], "g.zst")]
        for (bytes, name) in inputs {
            XCTAssertThrowsError(try NPZReader.source(try decompressing(PeekableSource(MemorySource(bytes, name: name)))), name) { e in
                XCTAssertEqual((e as? DiagnosticError)?.kind, .badData, "\(name): \(e)")
            }
        }
    }

    // MARK: CIFAR

    func testCIFAR10ArchiveTrainAndTest() throws {
        let (s, n, d) = try load(["testdata:cifar/cifar10-small.tar.gz"])
        XCTAssertEqual(n, 20)
        XCTAssertEqual(s.fields[0], Field(name: "x", dtype: .u8, shape: Shape([32, 32, 3])))
        XCTAssertEqual(s.classes(of: "y")?.first, "airplane")
        XCTAssertEqual(s.classes(of: "y")?.count, 10)
        // Record j of batch k: label (4k + j) % 10 — batches 1…5 in order.
        XCTAssertEqual(d[1], (0..<20).map { UInt8((4 + $0) % 10) })
        // Channel ch at (r, c) = (40k + 10j + 3ch + r + c) % 256; channels-last.
        let k = 2, j = 1, r = 5, c = 7, ch = 2
        let sample = (k - 1) * 4 + j
        XCTAssertEqual(d[0][sample * 3072 + (r * 32 + c) * 3 + ch], UInt8((40 * k + 10 * j + 3 * ch + r + c) % 256))
        let (_, nt, _) = try load(["testdata:cifar/cifar10-small.tar.gz"]) { $0.split = "test" }
        XCTAssertEqual(nt, 3)
    }

    func testCIFAR10PlainBatchMatchesArchive() throws {
        let (s, n, d) = try load(["testdata:cifar/data_batch_1.bin"])
        XCTAssertEqual(n, 4)
        XCTAssertEqual(s.classes(of: "y")?.count, 10)
        let (_, _, a) = try load(["testdata:cifar/cifar10-small.tar.gz"])
        XCTAssertEqual(d[0], Array(a[0].prefix(4 * 3072)))
        // By name before content: a batch whose first label is 0 and first red pixels 0, 8
        // looked like IDX; a compressed CIFAR-100 train.bin.gz was not recognised at all.
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let record = [0, 0, 8, 1] + [UInt8](repeating: 7, count: 3069)
        try Data(record + record).write(to: URL(fileURLWithPath: dir + "/data_batch_1.bin"))
        let (_, n2, d2) = try load([dir + "/data_batch_1.bin"])
        XCTAssertEqual(n2, 2)
        XCTAssertEqual([d2[0][0], d2[0][3], d2[0][6]], [0, 8, 1], "the first red pixels, as H×W×C")
        XCTAssertEqual(d2[1], [0, 0], "labels 0")
        let hundred = [1, 5] + [UInt8](repeating: 9, count: 3072)
        let gz = try sh("gzip -c > \(dir)/train.bin.gz", stdin: hundred + hundred + hundred)
        XCTAssertEqual(gz.status, 0)
        let (s3, n3, _) = try load([dir + "/train.bin.gz"])
        XCTAssertEqual(n3, 3)
        XCTAssertNotNil(s3.field("y_coarse"), "CIFAR-100: a coarse label beside the fine one")
    }

    func testCIFAR100Archive() throws {
        let (s, n, d) = try load(["testdata:cifar/cifar100-small.tar.gz"])
        XCTAssertEqual(n, 6)
        XCTAssertEqual(s.fields.map(\.name), ["x", "y", "y_coarse"])
        for f in ["x", "y", "y_coarse"] { XCTAssertEqual(s.metadata("\(f).source"), testdata("cifar/cifar100-small.tar.gz"), f) }
        XCTAssertEqual(s.classes(of: "y")?.count, 100)
        XCTAssertEqual(s.classes(of: "y_coarse")?.count, 20)
        XCTAssertEqual(d[1], (0..<6).map { UInt8(($0 * 17) % 100) })
        XCTAssertEqual(d[2], (0..<6).map { UInt8($0 % 20) })
    }

    func testCIFARArchiveCutAtMemberBoundary() {
        assertRefused(["testdata:cifar/cifar10-cut.tar.gz"], "cifar10-cut.tar.gz", "data_batch_4", "missing")
    }

    func testCIFARArchivesWrongInOneWayAreRefused() {
        // Each of these loaded without a word: the second data_batch_5 replaced the first, the
        // empty batch gave 16 samples, and the gzip CRC past the tar's end was never read.
        assertRefused(["testdata:cifar/cifar10-dup.tar.gz"], "cifar10-dup.tar.gz", "data_batch_5.bin twice", "other/data_batch_5.bin")
        assertRefused(["testdata:cifar/cifar10-empty.tar.gz"], "cifar10-empty.tar.gz", "data_batch_3.bin is empty")
        assertRefused(["testdata:cifar/cifar10-badmeta.tar.gz"], "cifar10-badmeta.tar.gz", "batches.meta.txt", "not UTF-8")
        assertRefused(["testdata:cifar/cifar10-badcrc.tar.gz"], "cifar10-badcrc.tar.gz", "data corrupted")
        // The test split is refused too: the damage is checked whichever batches are read.
        assertRefused(["testdata:cifar/cifar10-badcrc.tar.gz"], "data corrupted") { $0.split = "test" }
    }

    func testCIFARBatchFileNameListBesideIt() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.copyItem(atPath: testdata("cifar/data_batch_1.bin"), toPath: dir + "/data_batch_1.bin")
        try Data((0..<10).map { "c\($0)\n" }.joined().utf8).write(to: URL(fileURLWithPath: dir + "/batches.meta.txt"))
        XCTAssertEqual(try load([dir + "/data_batch_1.bin"]).0.classes(of: "y"), (0..<10).map { "c\($0)" })
        // CRLF line ends: one name a line (Swift's Characters took the list for one line).
        try Data((0..<10).map { "c\($0)\r\n" }.joined().utf8).write(to: URL(fileURLWithPath: dir + "/batches.meta.txt"))
        XCTAssertEqual(try load([dir + "/data_batch_1.bin"]).0.classes(of: "y"), (0..<10).map { "c\($0)" })
        // A list that cannot be read as text was ignored for the standard names.
        try Data([0x61, 0xFF, 0x0A]).write(to: URL(fileURLWithPath: dir + "/batches.meta.txt"))
        assertRefused([dir + "/data_batch_1.bin"], "batches.meta.txt", "not UTF-8")
        // A control character (an escape sequence, a NUL) would go into the stream's class
        // list, which every other source of names refuses.
        try Data(("c0\u{1B}[31m\n" + (1..<10).map { "c\($0)\n" }.joined()).utf8).write(to: URL(fileURLWithPath: dir + "/batches.meta.txt"))
        assertRefused([dir + "/data_batch_1.bin"], "batches.meta.txt", "class name 'c0\\x1b[31m' holds a control character")
    }

    // MARK: Images

    func testPNGGrayAndRGB() throws {
        let (s, n, d) = try load(["testdata:images/gray-4x3.png"])
        XCTAssertEqual(n, 1)
        XCTAssertEqual(s.fields[0].shape, Shape([3, 4, 1]))
        XCTAssertEqual(d[0], (0..<3).flatMap { r in (0..<4).map { c in UInt8(r * 60 + c * 10) } })
        let (s2, _, d2) = try load(["testdata:images/rgb-5x4.png"])
        XCTAssertEqual(s2.fields[0].shape, Shape([4, 5, 3]))
        XCTAssertEqual(Array(d2[0][(2 * 5 + 3) * 3..<(2 * 5 + 3) * 3 + 3]), [100, 120, 200])
        XCTAssertEqual(try load(["testdata:images/rgba-2x2.png"]).0.fields[0].shape, Shape([2, 2, 4]))
        XCTAssertEqual(try load(["testdata:images/rgb-5x4.png"]) { $0.channels = 1 }.0.fields[0].shape, Shape([4, 5, 1]))
    }

    func testPNGValuesAreTheStoredOnes() throws {
        // 16-bit samples scale to 8 bits; libpng's simplified API took them for linear light
        // and gamma-encoded them (0x8000 became 186).
        XCTAssertEqual(try load(["testdata:images/gray16-3x1.png"]).2[0], [128, 255, 64])
        // Gray with alpha keeps its alpha (4 channels), the gray value as stored even where
        // transparent; it was composited onto black into 1 channel.
        let (s, _, d) = try load(["testdata:images/gray-alpha-2x1.png"])
        XCTAssertEqual(s.fields[0].shape, Shape([1, 2, 4]))
        XCTAssertEqual(d[0], [200, 200, 200, 0, 10, 10, 10, 255])
        // Fewer channels drop alpha, as PIL's convert does, rather than composite: RGBA's
        // half-transparent green stays 255 green, and gray is ITU-R 601 luma.
        XCTAssertEqual(try load(["testdata:images/rgba-2x2.png"]) { $0.channels = 3 }.2[0], [255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255])
        XCTAssertEqual(try load(["testdata:images/rgba-2x2.png"]) { $0.channels = 1 }.2[0], [76, 150, 29, 255])
        XCTAssertEqual(try load(["testdata:images/gray-alpha-2x1.png"]) { $0.channels = 1 }.2[0], [200, 10])
        // Gray from colour is PIL's to the last value: (0, 0, 250) is 28 in PIL's fixed point,
        // 29 in the rounded decimal formula.
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let blue = try ImageCodec.encodePNG(width: 2, height: 1, channels: 3, pixels: [0, 0, 250, 10, 20, 30])
        try Data(blue).write(to: URL(fileURLWithPath: dir + "/blue.png"))
        XCTAssertEqual(try load([dir + "/blue.png"]) { $0.channels = 1 }.2[0], [28, 18])
        // A gAMA chunk does not change the values: gAMA 1.0 turned a stored 0x8000 into 186.
        let gray16 = Array(try Data(contentsOf: URL(fileURLWithPath: testdata("images/gray16-3x1.png"))))
        try Data(withGamma(gray16)).write(to: URL(fileURLWithPath: dir + "/gamma.png"))
        XCTAssertEqual(try load([dir + "/gamma.png"]).2[0], [128, 255, 64])
        // Nor on an image of some size: the copy without gAMA was freed while libpng still read
        // from it, so a 300×300 image of noise was "IDAT: unknown compression method" or a crash.
        var rng = SeededRandom(seed: 14)
        let noise = (0..<300 * 300 * 3).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        try Data(withGamma(try ImageCodec.encodePNG(width: 300, height: 300, channels: 3, pixels: noise)))
            .write(to: URL(fileURLWithPath: dir + "/noise.png"))
        XCTAssertEqual(try load([dir + "/noise.png"]).2[0], noise)
    }

    /// The PNG with a gAMA chunk of gamma 1.0 after its IHDR.
    func withGamma(_ png: [UInt8]) -> [UInt8] {
        let gama: [UInt8] = Array("gAMA".utf8) + [0, 1, 0x86, 0xA0]  // 100000: gamma 1.0
        var crc = CRC32()
        crc.update(gama)
        var out = png
        out.insert(contentsOf: [0, 0, 0, 4] + gama + withUnsafeBytes(of: crc.value.bigEndian) { Array($0) }, at: 33)  // after the signature and IHDR
        return out
    }

    /// 16-bit samples become v·255/65535 rounded, interlaced or not: Debian's libpng decoded
    /// interlaced 16-bit images through its simplified API with rows repeated and row 0 garbage.
    func testSixteenBitPNGsInterlacedOrNot() throws {
        let plain = try load(["testdata:images/gray16-8x8.png"]).2[0]
        let stored = (0..<64).map { i -> Int in ((i % 8) * 4099 + (i / 8) * 7919) % 65536 }
        XCTAssertEqual(plain, stored.map { v in UInt8((v * 255 + 32767) / 65535) })
        XCTAssertEqual(try load(["testdata:images/gray16-interlaced-8x8.png"]).2[0], plain)
        let rgba = try load(["testdata:images/rgba16-5x3.png"]).2[0]
        XCTAssertEqual(Array(rgba[(1 * 5 + 2) * 4..<(1 * 5 + 3) * 4]), [102, 85, 35, 185])  // (26214, 21845, 9007, 47535)
        XCTAssertEqual(try load(["testdata:images/rgba16-interlaced-5x3.png"]).2[0], rgba)
        XCTAssertEqual(try load(["testdata:images/rgba16-interlaced-5x3.png"]) { $0.channels = 3 }.2[0],
                       try load(["testdata:images/rgba16-5x3.png"]) { $0.channels = 3 }.2[0])
    }

    func testJPEG() throws {
        let (s, _, d) = try load(["testdata:images/rgb-8x8.jpg"])
        XCTAssertEqual(s.fields[0].shape, Shape([8, 8, 3]))
        // A flat (10, 200, 30) image at quality 100 decodes within a few levels.
        for p in 0..<64 {
            XCTAssertLessThanOrEqual(abs(Int(d[0][3 * p]) - 10), 4)
            XCTAssertLessThanOrEqual(abs(Int(d[0][3 * p + 1]) - 200), 4)
            XCTAssertLessThanOrEqual(abs(Int(d[0][3 * p + 2]) - 30), 4)
        }
        // One channel is PIL's luma of the decoded RGB (Image.convert("L")), not the decoder's
        // Y, which differs where saturated colours were clamped.
        let rgb = try load(["testdata:images/saturated-16x16.jpg"]).2[0]
        let gray = try load(["testdata:images/saturated-16x16.jpg"]) { $0.channels = 1 }.2[0]
        XCTAssertEqual(gray, (0..<256).map { i in ImageCodec.luma(rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2]) })
        // CMYK (Pillow's, Adobe-inverted) and YCCK (TurboJPEG's) JPEGs give Pillow's
        // convert("RGB") to the byte, its luma at one channel, and an opaque alpha at four.
        for stem in ["cmyk-16x16", "ycck-16x16"] {
            let pillow = try load(["testdata:images/\(stem).pillow.png"]).2[0]
            var luma: [UInt8] = [], rgba: [UInt8] = []
            for i in stride(from: 0, to: pillow.count, by: 3) {
                luma.append(ImageCodec.luma(pillow[i], pillow[i + 1], pillow[i + 2]))
                rgba += pillow[i..<i + 3] + [255]
            }
            XCTAssertEqual(try load(["testdata:images/\(stem).jpg"]).2[0], pillow, stem)
            XCTAssertEqual(try load(["testdata:images/\(stem).jpg"]) { $0.channels = 1 }.2[0], luma, stem)
            XCTAssertEqual(try load(["testdata:images/\(stem).jpg"]) { $0.channels = 4 }.2[0], rgba, stem)
        }
    }

    /// --resize gives what Pillow's Image.resize(size, BILINEAR) gives, to the byte: shrinking
    /// (antialiased), growing, one axis only, and to a single pixel.
    func testResizeMatchesPillow() throws {
        for (source, outs) in [("rgb-37x23", ["9x5", "80x50", "37x11"]), ("gray-31x17", ["8x8", "31x40", "1x1"])] {
            for o in outs {
                let size = try XCTUnwrap(ImageSize(parsing: o))
                let (s, _, got) = try load(["testdata:images/resize/\(source).png"]) { $0.resize = size }
                let (_, _, want) = try load(["testdata:images/resize/\(source)-to-\(o).png"])
                XCTAssertEqual(s.fields[0].shape, Shape([size.height, size.width, source.hasPrefix("rgb") ? 3 : 1]), o)
                XCTAssertEqual(got[0], want[0], "\(source) to \(o)")
            }
        }
        // The size it has already: the pixels as they are.
        XCTAssertEqual(try load(["testdata:images/resize/gray-31x17.png"]) { $0.resize = ImageSize(width: 31, height: 17) }.2[0],
                       try load(["testdata:images/resize/gray-31x17.png"]).2[0])
    }

    func testResizeMakesAFolderOfMixedSizesOneShape() throws {
        let root = try makeTempDir()
        defer { try? FileManager.default.removeItem(atPath: root) }
        for (c, f) in [("a", "rgb-37x23.png"), ("b", "rgb-37x23-to-80x50.png")] {
            try FileManager.default.createDirectory(atPath: root + "/" + c, withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: testdata("images/resize/" + f), toPath: root + "/" + c + "/1.png")
        }
        assertRefused([root], "b/1.png", "image is 50×80×3", "give --resize WxH")
        let (s, n, d) = try load([root]) { $0.resize = ImageSize(width: 9, height: 5) }
        XCTAssertEqual(n, 2)
        XCTAssertEqual(s.fields[0].shape, Shape([5, 9, 3]))
        XCTAssertEqual(Array(d[0][0..<135]), try load(["testdata:images/resize/rgb-37x23-to-9x5.png"]).2[0])
        // Not for other inputs.
        var o = LoadOptions()
        o.resize = ImageSize(width: 9, height: 5)
        XCTAssertThrowsError(try Loader.openAll([InputSpec(testdata("idx/images-u8.idx.gz"))], options: o)) { e in
            XCTAssertEqual((e as? DiagnosticError)?.kind, .usage)
            XCTAssertTrue("\(e)".contains("--resize"), "\(e)")
        }
    }

    func testResizeSizesAreParsed() {
        XCTAssertEqual(ImageSize(parsing: "28x28"), ImageSize(width: 28, height: 28))
        XCTAssertEqual(ImageSize(parsing: "640×480"), ImageSize(width: 640, height: 480))
        for bad in ["28", "28x", "x28", "0x28", "28x-1", "16385x1", "28x28x3", " 28x28", "2e1x28", "28X28", ""] {
            XCTAssertNil(ImageSize(parsing: bad), bad)
        }
    }

    /// Stray bytes between the last scan and the end marker (cameras and editors leave them;
    /// PIL reads such files) were refused with the decoder's warning. The image is read whole,
    /// with a notice; every other warning still refuses it.
    func testAJPEGWithStrayBytesBeforeItsEndMarkerIsReadWhole() throws {
        let plain = try [UInt8](Data(contentsOf: URL(fileURLWithPath: testdata("images/saturated-16x16.jpg"))))
        XCTAssertEqual(Array(plain.suffix(2)), [0xFF, 0xD9])
        let stray: [UInt8] = Array(plain[..<(plain.count - 2)]) + [UInt8](repeating: 0x2A, count: 16) + [0xFF, 0xD9]
        let want = try ImageCodec.decode(plain, name: "plain.jpg", channels: nil)
        XCTAssertNil(want.notice)
        let got = try ImageCodec.decode(stray, name: "stray.jpg", channels: nil)
        XCTAssertEqual(got.pixels, want.pixels)
        XCTAssertEqual(got.notice?.hasSuffix("extraneous bytes before marker 0xd9"), true, "\(got.notice ?? "no notice")")
        // Through --resize too.
        XCTAssertNotNil(try got.resized(to: ImageSize(width: 4, height: 4), name: "stray.jpg").notice)
        // Stray bytes before the scan, and a file cut inside it, are still bad data.
        let sos = try XCTUnwrap((0..<plain.count - 1).last { plain[$0] == 0xFF && plain[$0 + 1] == 0xDA })
        let beforeScan: [UInt8] = Array(plain[..<sos]) + [0x2A, 0x2A] + Array(plain[sos...])
        let cut = Array(plain[..<((sos + plain.count) / 2)])
        for (bytes, problem) in [(beforeScan, "extraneous bytes before marker 0xda"), (cut, "Premature end of JPEG file")] {
            XCTAssertThrowsError(try ImageCodec.decode(bytes, name: "bad.jpg", channels: nil)) { e in
                XCTAssertEqual((e as? DiagnosticError)?.kind, .badData, "\(e)")
                XCTAssertTrue("\(e)".contains(problem), "\(e)")
            }
        }
    }

    /// A progressive JPEG's cost grows with its scans, not its size: a 1.4 MB file of repeated
    /// scans took 32 s of CPU. More than 500 scans, and a scan out of sequence, are refused.
    func testJPEGScanBombsAreRefused() throws {
        assertRefused(["testdata:images/scans-694.jpg"], "scans-694.jpg", "bad JPEG", "more than 500 scans")
        assertRefused(["testdata:images/repeated-scan.jpg"], "repeated-scan.jpg", "bad JPEG", "Inconsistent progression sequence")
    }

    func testClassFolderTree() throws {
        let (s, n, d) = try load(["testdata:images/classes"]) 
        XCTAssertEqual(n, 6)
        XCTAssertEqual(s.classes(of: "y"), ["bird", "cat", "dog"])
        XCTAssertEqual(s.metadata("y.source"), testdata("images/classes"), "every field names its input")
        XCTAssertEqual(d[1], [0, 1, 1, 1, 2, 2])
        XCTAssertEqual(s.fields[0].shape, Shape([6, 6, 3]))
    }

    func testClassFolderProblemsAreNamed() throws {
        let root = try makeTempDir()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let png = testdata("images/classes/bird/0.png")
        // A class name in any script is a class name (it was refused as "control characters").
        for c in ["café", "dog"] {
            try FileManager.default.createDirectory(atPath: root + "/" + c, withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: png, toPath: root + "/" + c + "/1.png")
        }
        XCTAssertEqual(try load([root]).0.classes(of: "y"), ["café", "dog"])
        // A link to nothing was skipped as if it were not there.
        XCTAssertEqual(symlink("/nonexistent/2.png", root + "/dog/2.png"), 0)
        XCTAssertThrowsError(try load([root])) { e in
            let d = e as? DiagnosticError
            XCTAssertEqual(d?.kind, .missingInput, "\(e)")
            XCTAssertEqual(d?.location, root + "/dog/2.png")
            XCTAssertTrue(d?.problem.contains("symbolic link to nothing") == true, "\(e)")
        }
        XCTAssertEqual(unlink(root + "/dog/2.png"), 0)
        // Images in sub-directories of a class belong to it, as in torchvision and Keras
        // (they were skipped); an empty class, and an image outside every class, are errors.
        try FileManager.default.createDirectory(atPath: root + "/dog/more", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: png, toPath: root + "/dog/more/2.png")
        let (_, n, d) = try load([root])
        XCTAssertEqual(n, 3)
        XCTAssertEqual(d[1], [0, 1, 1])
        XCTAssertEqual(symlink(root + "/dog", root + "/dog/more/loop"), 0)
        assertRefused([root], root + "/dog/more/loop", "is the directory \(root)/dog, already read")
        XCTAssertEqual(unlink(root + "/dog/more/loop"), 0)
        // A class that is a link to another class: its images under two labels.
        XCTAssertEqual(symlink("café", root + "/zebra"), 0)
        assertRefused([root], root + "/zebra", "is the directory \(root)/café, already read")
        XCTAssertEqual(unlink(root + "/zebra"), 0)
        try FileManager.default.createDirectory(atPath: root + "/empty", withIntermediateDirectories: true)
        assertRefused([root], root + "/empty", "class directory holds no .png or .jpg files")
        try FileManager.default.removeItem(atPath: root + "/empty")
        try FileManager.default.copyItem(atPath: png, toPath: root + "/stray.png")
        assertRefused([root], root + "/stray.png", "in no class")
        try FileManager.default.removeItem(atPath: root + "/stray.png")
        // A size that differs is not fixed by --channels: the hint says so.
        try FileManager.default.copyItem(atPath: testdata("images/gray-4x3.png"), toPath: root + "/dog/3.png")
        assertRefused([root], root + "/dog/3.png", "all images must match (give --resize WxH and --channels)")
        // Named 'root/', the operand's slash is not doubled in the message (it read 'root//dog').
        assertRefused([root + "/"], root + "/dog/3.png: ")
        try FileManager.default.removeItem(atPath: root + "/dog/3.png")
        // A name that is not UTF-8 was dropped by the directory listing, with its images.
        let bad = Array("\(root)/ca".utf8) + [0xE9, 0]
        XCTAssertEqual(bad.withUnsafeBufferPointer { b in b.baseAddress!.withMemoryRebound(to: CChar.self, capacity: b.count) { mkdir($0, 0o755) } }, 0)
        assertRefused([root], root, "'ca\\xe9'", "not UTF-8")
    }

    func testBadImages() {
        assertRefused(["testdata:images/truncated.png"], "truncated.png", "PNG")
        assertRefused(["x=testdata:images/not-really.png"], "not-really.png")
    }
}
