// CIFAR-10 and CIFAR-100 binary batches, as plain .bin files or inside the original .tar.gz,
// read through libarchive (tar only) without extracting anything to disk. A record is a label
// byte (CIFAR-100: coarse, then fine) and 3072 bytes of 32×32 red, green and blue planes; we
// emit x as u8 32×32×3 channels-last, y as u8 (the fine label for CIFAR-100, whose coarse label
// becomes y_coarse). Archive members arrive in the archive's order, so the members of the split
// are held in memory (150 MB for CIFAR-10's training split) and emitted in their canonical order.

import CArchive
import Foundation
import TensorCore
import TensorStream

public enum CIFARReader {
    public static let cifar10Classes = ["airplane", "automobile", "bird", "cat", "deer",
                                        "dog", "frog", "horse", "ship", "truck"]
    static let maxMemberBytes = 1 << 30

    /// CIFAR-10 or -100, guessed from a file or archive name.
    public static func variantFromName(_ path: String) -> InputFormat? {
        let n = baseName(path).lowercased()
        if n.contains("cifar-100") || n.contains("cifar100") || n == "train.bin" || n == "test.bin" { return .cifar100 }
        if n.contains("cifar-10") || n.contains("cifar10") || n.hasPrefix("data_batch") || n.hasPrefix("test_batch") { return .cifar10 }
        return nil
    }

    /// `split` (nil: train) chooses an archive's batches; a single batch file is what it is.
    public static func source(_ src: PeekableSource, path: String, variant: InputFormat, split given: String?) throws -> SampleSource {
        let split = given ?? "train"
        guard split == "train" || split == "test" else {
            throw DataError("--split", "'\(split)' is neither train nor test", kind: .usage)
        }
        let head = try src.peek(512)
        let isTar = head.count >= 262 && Array(head[257..<262]) == Array("ustar".utf8)
        if !isTar, let given {
            throw DataError("--split", "chooses the batches of a CIFAR archive; \(path) is one batch file, read whole (not --split \(given))", kind: .usage)
        }
        return isTar ? try fromArchive(src, variant: variant, split: split) : try fromBatchFile(src, path: path, variant: variant)
    }

    static func fromBatchFile(_ src: PeekableSource, path: String, variant: InputFormat) throws -> SampleSource {
        let rec = variant == .cifar100 ? 3074 : 3073
        var count: Int?
        if let size = ((src.base as? GzipSource) == nil ? (src.base as? FileSource)?.regularFileSize : nil) {
            guard size % rec == 0 else {
                throw DataError(src.name, "size \(size) is not a multiple of the \(rec)-byte CIFAR record (cut short, or not \(variant == .cifar100 ? "CIFAR-100" : "CIFAR-10")?)")
            }
            count = size / rec
        }
        // The name lists beside the batch file, as the archive unpacks them; absent, the
        // standard CIFAR-10 names or the label numbers.
        // Standard input has no directory: its names are the standard ones.
        func names(_ file: String) throws -> [String]? {
            guard path != "-" else { return nil }
            let p = directoryName(path) + "/" + file
            var st = stat()
            guard lstat(p, &st) == 0 else { return nil }
            guard let d = FileManager.default.contents(atPath: p) else {
                throw DataError(p, st.st_mode & S_IFMT == S_IFLNK ? "symbolic link to nothing readable" : "cannot read", kind: .missingInput)
            }
            return try classNames([UInt8](d), in: p)
        }
        let classes = variant == .cifar10 ? try names("batches.meta.txt") ?? cifar10Classes
                                          : try names("fine_label_names.txt") ?? (0..<100).map(String.init)
        let coarse = variant == .cifar100 ? try names("coarse_label_names.txt") ?? (0..<20).map(String.init) : nil
        return CIFARRecords(source: src, name: src.name, variant: variant, count: count, classes: classes, coarse: coarse)
    }

    /// Reads `src` to its end, for the checks its decompressor makes there.
    static func drain(_ src: ByteSource) throws {
        let buf = UnsafeMutableRawPointer.allocate(byteCount: 1 << 16, alignment: 16)
        defer { buf.deallocate() }
        while try src.read(into: buf, count: 1 << 16) > 0 {}
    }

    /// The class names of a name list (batches.meta.txt and the like), one a line.
    static func classNames(_ bytes: [UInt8], in name: String) throws -> [String] {
        guard let text = String(validating: bytes, as: UTF8.self) else { throw DataError(name, "class name list is not UTF-8 text") }
        let names = Schema.lines(text).map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }.filter { !$0.isEmpty }  // LF or CRLF
        guard !names.isEmpty else { throw DataError(name, "class name list names no classes") }
        // A class name is one line of the stream's class list: no CR, ESC, NUL or the like.
        if let bad = names.first(where: hasControlCharacters) {
            throw DataError(name, "class name '\(shown(bad))' holds a control character")
        }
        var seen = Set<String>()
        for n in names where !seen.insert(n).inserted {
            throw DataError(name, "class name list names '\(n)' twice")
        }
        return names
    }

    static func fromArchive(_ src: ByteSource, variant: InputFormat, split: String) throws -> SampleSource {
        let client = ArchiveClient(src)
        let a = archive_read_new()!
        defer { archive_read_free(a) }
        archive_read_support_format_tar(a)
        guard client.open(a) == ARCHIVE_OK else { throw client.error ?? DataError(src.name, ArchiveClient.message(a)) }
        let wanted: [String]
        let metaNames: [String]
        if variant == .cifar10 {
            wanted = split == "train" ? (1...5).map { "data_batch_\($0).bin" } : ["test_batch.bin"]
            metaNames = ["batches.meta.txt"]
        } else {
            wanted = [split == "train" ? "train.bin" : "test.bin"]
            metaNames = ["fine_label_names.txt", "coarse_label_names.txt"]
        }
        var members: [String: [UInt8]] = [:]
        var paths: [String: String] = [:]
        while true {
            var entry: OpaquePointer?
            let r = archive_read_next_header(a, &entry)
            if r == ARCHIVE_EOF {
                // The tar ends before its compressed stream does: read on to the end, so that
                // gzip's CRC and length are checked and trailing garbage is seen.
                try drain(src)
                break
            }
            guard r == ARCHIVE_OK || r == ARCHIVE_WARN, let entry else {
                throw client.error ?? DataError(src.name, "archive damaged or cut short: " + ArchiveClient.message(a))
            }
            // Only regular files are read; links, devices and odd paths are skipped, and
            // nothing is ever written to disk.
            guard archive_entry_filetype(entry) == UInt32(0o100000) /* AE_IFREG */, let p = archive_entry_pathname(entry) else { continue }
            let path = String(cString: p)
            let base = baseName(path)
            guard wanted.contains(base) || metaNames.contains(base) else { continue }
            if let other = paths[base] {
                throw DataError(src.name, "holds \(base) twice (\(escapedForDisplay(other)) and \(escapedForDisplay(path)))")
            }
            paths[base] = path
            let size = Int(archive_entry_size(entry))
            guard size >= 0, size <= maxMemberBytes else { throw DataError(src.name, "member \(base) size \(size) out of range") }
            // Grown as the member's bytes arrive, not sized from its (untrusted) header.
            var data: [UInt8] = []
            var buf = [UInt8](repeating: 0, count: 1 << 16)
            while data.count < size {
                try makeRoom(&data, total: size, name: "\(src.name): \(base)")
                let n = buf.withUnsafeMutableBytes { archive_read_data(a, $0.baseAddress!, min($0.count, size - data.count)) }
                if n < 0 { throw client.error ?? DataError(src.name, "member \(base) damaged: " + ArchiveClient.message(a)) }
                if n == 0 { break }
                data += buf.prefix(n)
            }
            let got = data.count
            guard got == size else { throw DataError(src.name, "member \(base) cut short (\(got) of \(size) bytes)") }
            members[base] = data
        }
        let rec = variant == .cifar100 ? 3074 : 3073
        var sources: [ByteSource] = []
        var count = 0
        for w in wanted {
            guard let d = members[w] else {
                throw DataError(src.name, "member \(w) missing (archive cut short, or not the \(variant == .cifar100 ? "CIFAR-100" : "CIFAR-10") binary archive?)")
            }
            guard d.count % rec == 0 else { throw DataError(src.name, "member \(w) size \(d.count) is not a multiple of \(rec)") }
            guard !d.isEmpty else { throw DataError(src.name, "member \(w) is empty") }
            count += d.count / rec
            sources.append(MemorySource(d, name: "\(src.name): \(w)"))
        }
        func names(_ member: String) throws -> [String]? {
            try members[member].map { try classNames($0, in: "\(src.name): \(member)") }
        }
        let classes: [String]
        var coarse: [String]?
        if variant == .cifar10 {
            classes = try names("batches.meta.txt") ?? cifar10Classes
        } else {
            classes = try names("fine_label_names.txt") ?? (0..<100).map(String.init)
            coarse = try names("coarse_label_names.txt") ?? (0..<20).map(String.init)
        }
        return CIFARRecords(source: ConcatSource(sources), name: src.name, variant: variant, count: count, classes: classes, coarse: coarse)
    }
}

/// CIFAR records from a byte source, converted to channels-last as they are read.
final class CIFARRecords: SampleSource {
    let source: ByteSource
    let name: String
    let fields: [Field]
    let metadata: [(key: String, value: String)]
    let declaredCount: Int?
    let labelBytes: Int
    let classCount: Int
    let coarseCount: Int
    var record = [UInt8](repeating: 0, count: 3074)
    var position = 0

    init(source: ByteSource, name: String, variant: InputFormat, count: Int?, classes: [String], coarse: [String]?) {
        self.source = source
        self.name = name
        declaredCount = count
        labelBytes = variant == .cifar100 ? 2 : 1
        var f = [Field(name: "x", dtype: .u8, shape: Shape([32, 32, 3])), Field(name: "y", dtype: .u8, shape: Shape([]))]
        var m: [(key: String, value: String)] = [("y.classes", classes.joined(separator: "\n"))]
        if let coarse {
            f.append(Field(name: "y_coarse", dtype: .u8, shape: Shape([])))
            m.append(("y_coarse.classes", coarse.joined(separator: "\n")))
        }
        // Every field names the input it came from.
        for field in f { m.append(("\(field.name).source", name)) }
        fields = f
        metadata = m
        classCount = classes.count
        coarseCount = coarse?.count ?? 0
    }

    func read(max: Int, into: [UnsafeMutableRawPointer]) throws -> Int {
        let rec = 3072 + labelBytes
        var n = 0
        while n < max {
            let got = try record.withUnsafeMutableBytes { try source.readFully(into: $0.baseAddress!, count: rec) }
            if got == 0 { break }
            guard got == rec else { throw DataError(name, "cut inside record \(position + 1) (\(got) of \(rec) bytes)") }
            let fine = Int(record[labelBytes - 1])
            guard fine < classCount else {
                throw DataError(name, "record \(position + 1): label \(fine) but only \(classCount) class names")
            }
            into[1].storeBytes(of: UInt8(fine), toByteOffset: n, as: UInt8.self)
            if labelBytes == 2 {
                let c = Int(record[0])
                guard c < coarseCount else { throw DataError(name, "record \(position + 1): coarse label \(c) but only \(coarseCount) names") }
                into[2].storeBytes(of: UInt8(c), toByteOffset: n, as: UInt8.self)
            }
            let out = into[0] + n * 3072
            record.withUnsafeBytes { r in
                let px = r.baseAddress! + labelBytes
                for ch in 0..<3 {
                    for i in 0..<1024 {
                        out.storeBytes(of: px.load(fromByteOffset: ch * 1024 + i, as: UInt8.self), toByteOffset: i * 3 + ch, as: UInt8.self)
                    }
                }
            }
            n += 1
            position += 1
        }
        return n
    }
}
