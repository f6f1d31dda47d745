// Directory listings for the readers of class directories (images, text: one sub-directory per
// class). Listed with readdir(3) rather than FileManager, so that a name that is not UTF-8 is
// refused by name instead of being dropped or mangled, and a symbolic link that leads nowhere
// is an error instead of a file that silently is not there.

import Foundation
import TensorCore

struct DirectoryEntry {
    enum Kind { case directory, file, other }
    let name: String
    let path: String
    /// What the entry is, through symbolic links.
    let kind: Kind
}

/// The entries of the directory `path`, in the byte order of their names; names that begin
/// with a dot are left out.
func listDirectory(_ path: String) throws -> [DirectoryEntry] {
    guard let dir = opendir(path) else {
        throw DataError(path, "cannot list directory: \(String(cString: strerror(errno)))", kind: .missingInput)
    }
    defer { closedir(dir) }
    var out: [DirectoryEntry] = []
    while true {
        errno = 0
        guard let e = readdir(dir) else {
            if errno != 0 { throw DataError(path, "cannot list directory: \(String(cString: strerror(errno)))", kind: .io) }
            break
        }
        let bytes = withUnsafeBytes(of: e.pointee.d_name) { Array($0.prefix(while: { $0 != 0 })) }
        if bytes.first == UInt8(ascii: ".") { continue }
        guard let name = String(validating: bytes, as: UTF8.self) else {
            throw DataError(path, "holds the name '\(hexEscaped(bytes))', which is not UTF-8; rename it")
        }
        let full = (path.hasSuffix("/") ? path : path + "/") + name  // 'dir/' gave 'dir//a.png' in messages
        var st = stat()
        let kind: DirectoryEntry.Kind
        if stat(full, &st) == 0 {
            let type = st.st_mode & S_IFMT
            kind = type == S_IFDIR ? .directory : type == S_IFREG ? .file : .other
        } else {
            let reason = String(cString: strerror(errno))
            if lstat(full, &st) == 0, st.st_mode & S_IFMT == S_IFLNK {
                throw DataError(full, "symbolic link to nothing readable (\(reason))", kind: .missingInput)
            }
            throw DataError(full, "cannot read: \(reason)", kind: .missingInput)
        }
        out.append(DirectoryEntry(name: name, path: full, kind: kind))
    }
    return out.sorted { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }
}

/// The sub-directories of `path`, one per class, each name checked to be a class name.
func classDirectories(_ path: String) throws -> [DirectoryEntry] {
    let classes = try listDirectory(path).filter { $0.kind == .directory }
    guard !classes.isEmpty else { throw DataError(path, "no class sub-directories") }
    for c in classes where hasControlCharacters(c.name) {
        throw DataError(c.path, "class directory name has control characters")
    }
    return classes
}

/// The files under class directory `dir` and its sub-directories (as torchvision's
/// ImageFolder and Keras's image_dataset_from_directory read them), depth first in name order.
/// A directory reached twice, through a link loop, two links or a link from one class to
/// another, is an error: `seen` (device and inode → the path read) spans every class.
func filesUnder(_ dir: DirectoryEntry, seen: inout [[UInt64]: String]) throws -> [DirectoryEntry] {
    var out: [DirectoryEntry] = []
    func walk(_ path: String) throws {
        var st = stat()
        guard stat(path, &st) == 0 else { throw DataError(path, "cannot read: \(String(cString: strerror(errno)))", kind: .missingInput) }
        let id = [UInt64(st.st_dev), UInt64(st.st_ino)]
        if let first = seen[id] {
            throw DataError(path, "is the directory \(escapedForDisplay(first)), already read (through a symbolic link)")
        }
        seen[id] = path
        for e in try listDirectory(path) {
            if e.kind == .directory { try walk(e.path) } else { out.append(e) }
        }
    }
    try walk(dir.path)
    return out
}

/// Whether `s` holds a C0 or C1 control character or DEL: not in a class name, which
/// tensor-stream(5) keeps one a line.
public func hasControlCharacters(_ s: String) -> Bool {
    s.unicodeScalars.contains { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) }
}

/// The last component of `path` ("a/b.csv" → "b.csv"). Plain string work: Foundation's
/// NSString path methods trapped on a one-character path on Linux.
func baseName(_ path: String) -> String {
    guard let slash = path.lastIndex(of: "/") else { return path }
    return String(path[path.index(after: slash)...])
}

/// The last component of `path`, lower-cased, without the suffix of a compression the readers
/// undo ("Train.CSV.gz" → "train.csv"): what a format is told by.
func uncompressedName(_ path: String) -> String {
    var name = baseName(path).lowercased()
    for ext in [".gz", ".bz2", ".xz", ".zst"] where name.hasSuffix(ext) { name = String(name.dropLast(ext.count)) }
    return name
}

/// The directory of `path`: "." when it has none, "/" for a file at the root.
func directoryName(_ path: String) -> String {
    guard let slash = path.lastIndex(of: "/") else { return "." }
    return slash == path.startIndex ? "/" : String(path[..<slash])
}

/// Printable ASCII as itself, every other byte as \xNN, as escapedForDisplay shows control
/// characters.
func hexEscaped(_ bytes: [UInt8]) -> String {
    bytes.map { (0x20..<0x7F).contains($0) ? String(UnicodeScalar($0)) : "\\x" + ($0 < 16 ? "0" : "") + String($0, radix: 16) }
        .joined()
}
