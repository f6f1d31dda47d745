// Byte sources and sinks: POSIX descriptors with large reads and writes, memory for tests, and
// atomic file replacement (temporary file in the target's directory, fsync, rename, fsync dir).

import Foundation

/// Something bytes are read from.
public protocol ByteSource: AnyObject {
    /// The input's name in messages ("stdin", a path).
    var name: String { get }
    /// Reads up to `count` bytes; returns 0 only at end of input.
    func read(into buffer: UnsafeMutableRawPointer, count: Int) throws -> Int
}

/// Something bytes are written to.
public protocol ByteSink: AnyObject {
    var name: String { get }
    func write(_ bytes: UnsafeRawBufferPointer) throws
    /// Pushes buffered bytes to the descriptor.
    func flush() throws
}

extension ByteSource {
    /// Reads until `count` bytes or end of input; returns how many arrived. `beforeRead` runs
    /// before each read(2)-sized step (StreamReader's flush when the input would wait).
    public func readFully(into buffer: UnsafeMutableRawPointer, count: Int, beforeRead: (() throws -> Void)? = nil) throws -> Int {
        var got = 0
        while got < count {
            try beforeRead?()
            let n = try read(into: buffer + got, count: count - got)
            if n == 0 { break }
            got += n
        }
        return got
    }
}

/// Enlarges a pipe's kernel buffer to 1 MiB (Linux), which roughly triples pipe throughput.
/// Harmless on other descriptors and where the call is refused.
public func enlargePipe(_ fd: Int32) {
    #if os(Linux)
    var st = stat()
    if fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFIFO {
        _ = fcntl(fd, 1031 /* F_SETPIPE_SZ */, 1 << 20)
    }
    #endif
}

/// A test hook for I/O-error sweeps (SQLite's technique): with `TENSOR_FAULT=OP:N` in the
/// environment, the Nth operation of kind OP — `read`, `write`, `fsync` or `rename`, counted
/// over the whole process — fails with EIO, as a failing disk would; `thread` refuses the Nth
/// worker thread (EAGAIN). Inert when unset.
public enum FaultInjection {
    static let plan: (op: String, n: Int)? = {
        guard let v = ProcessInfo.processInfo.environment["TENSOR_FAULT"] else { return nil }
        let p = v.split(separator: ":")
        guard p.count == 2, let n = Int(p[1]), n >= 1 else { return nil }
        return (String(p[0]), n)
    }()
    static let lock = NSLock()
    nonisolated(unsafe) static var seen = 0

    /// Whether this operation of kind `op` is the one to fail.
    public static func fails(_ op: String) -> Bool {
        guard let plan, plan.op == op else { return false }
        lock.lock()
        defer { lock.unlock() }
        seen += 1
        return seen == plan.n
    }
}

/// Reads a file descriptor.
public final class FileSource: ByteSource {
    public let name: String
    public let fd: Int32
    private let owns: Bool

    /// Whether a read can wait at all: not on a regular file or a block device.
    private lazy var canWait: Bool = {
        var st = stat()
        guard fstat(fd, &st) == 0 else { return true }
        let kind = st.st_mode & S_IFMT
        return kind != S_IFREG && kind != S_IFBLK
    }()

    public init(fd: Int32, name: String, owns: Bool) {
        self.fd = fd
        self.name = name
        self.owns = owns
    }

    deinit { if owns { close(fd) } }

    /// Bytes known to be readable without waiting: FIONREAD's count, less what was read since.
    private var readyBytes = 0

    /// Whether a read now would wait: a pipe, socket or terminal with nothing to read yet (no
    /// data, no end of input, no error to report). A system call only once the bytes known to
    /// be waiting are used up, so asking before every read costs little.
    public var isIdle: Bool {
        guard canWait, readyBytes == 0 else { return false }
        var n: Int32 = 0
        if ioctl(fd, UInt(FIONREAD), &n) == 0, n > 0 {
            readyBytes = Int(n)
            return false
        }
        // Nothing buffered: no data yet, or the end of input, which poll(2) reports as ready.
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        return poll(&p, 1, 0) == 0
    }

    /// Opens `path` for reading; "-" is standard input. A missing, unreadable or directory path
    /// is a missing input.
    public static func open(_ path: String) throws -> FileSource {
        if path == "-" {
            // Closed (`<&-`), or open for writing only: how a tool holds a closed stdin
            // (Tool.holdClosedStandardDescriptors).
            let flags = fcntl(0, F_GETFL)
            guard flags != -1, flags & O_ACCMODE != O_WRONLY else {
                throw IOError(name: "stdin", operation: "cannot read", code: EBADF, missing: true)
            }
            var st = stat()
            // `tool < dir`: read(2) would fail with EISDIR (74); as an operand it is 66.
            if fstat(0, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR {
                throw IOError(name: "stdin", operation: "", code: EISDIR, missing: true)
            }
            try refuseReadingStandardOutput(st, name: "stdin")
            enlargePipe(0)
            return FileSource(fd: 0, name: "stdin", owns: false)
        }
        // An empty name (--vocab '') is named as such: "tool: : No such file" named nothing.
        guard !path.isEmpty else { throw IOError(name: "''", operation: "an empty file name", code: ENOENT, missing: true) }
        let fd = Foundation.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw IOError(name: path, operation: "", code: errno, missing: true) }
        var st = stat()
        if fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR {
            close(fd)
            throw IOError(name: path, operation: "", code: EISDIR, missing: true)
        }
        do { try refuseReadingStandardOutput(st, name: path) } catch { close(fd); throw error }
        return FileSource(fd: fd, name: path, owns: true)
    }

    /// An input that is also the file the standard output goes to (`tool x.tns >> x.tns`, or
    /// `tool < x.tns > x.tns`) would be read while the output is appended to it, or was
    /// emptied by the shell before the tool started: a usage error, as cat(1) has it.
    private static func refuseReadingStandardOutput(_ input: stat, name: String) throws {
        var out = stat()
        guard (input.st_mode & S_IFMT) == S_IFREG, fstat(1, &out) == 0, (out.st_mode & S_IFMT) == S_IFREG,
              out.st_dev == input.st_dev, out.st_ino == input.st_ino else { return }
        throw InputIsOutput(name: name)
    }

    public func read(into buffer: UnsafeMutableRawPointer, count: Int) throws -> Int {
        if FaultInjection.fails("read") { throw IOError(name: name, operation: "read", code: EIO) }
        while true {
            let n = Foundation.read(fd, buffer, min(count, 1 << 30))
            if n >= 0 {
                readyBytes = max(0, readyBytes - n)
                return n
            }
            if errno == EINTR { continue }
            throw IOError(name: name, operation: "read", code: errno)
        }
    }

    /// A source reading the same open file from its start (a file renamed over the path
    /// since is not read).
    public func rewound() throws -> FileSource {
        guard lseek(fd, 0, SEEK_SET) == 0 else { throw IOError(name: name, operation: "seek", code: errno) }
        return FileSource(fd: fd, name: name, owns: false)
    }

    /// The file's size and modification time, to tell whether it was written to since.
    public var version: (size: Int, seconds: Int, nanoseconds: Int)? {
        var st = stat()
        guard fstat(fd, &st) == 0 else { return nil }
        return (Int(st.st_size), Int(st.st_mtim.tv_sec), Int(st.st_mtim.tv_nsec))
    }

    /// The file's size when it is a regular file.
    public var regularFileSize: Int? {
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return nil }
        return Int(st.st_size)
    }
}

/// Reads from bytes in memory (tests, and inputs already decoded).
public final class MemorySource: ByteSource {
    public let name: String
    private let data: [UInt8]
    private var position = 0

    public init(_ data: [UInt8], name: String = "memory") {
        self.data = data
        self.name = name
    }

    public func read(into buffer: UnsafeMutableRawPointer, count: Int) throws -> Int {
        let n = min(count, data.count - position)
        guard n > 0 else { return 0 }
        data.withUnsafeBytes { buffer.copyMemory(from: $0.baseAddress! + position, byteCount: n) }
        position += n
        return n
    }
}

/// Writes a descriptor through a 1 MiB buffer; large writes go straight through.
public final class FileSink: ByteSink {
    public let name: String
    public let fd: Int32
    private let buffer: UnsafeMutableRawPointer
    private let capacity = 1 << 20
    private var used = 0
    private let owns: Bool

    public init(fd: Int32, name: String, owns: Bool = false) {
        self.fd = fd
        self.name = name
        self.owns = owns
        buffer = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 64)
    }

    deinit {
        buffer.deallocate()
        if owns { close(fd) }
    }

    /// Standard output, with its pipe buffer enlarged.
    public static func standardOutput() -> FileSink {
        enlargePipe(1)
        return FileSink(fd: 1, name: "stdout")
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard let p = bytes.baseAddress, bytes.count > 0 else { return }
        if used + bytes.count <= capacity {
            (buffer + used).copyMemory(from: p, byteCount: bytes.count)
            used += bytes.count
            return
        }
        try flush()
        if bytes.count >= capacity / 4 {
            try writeAll(p, bytes.count)
        } else {
            buffer.copyMemory(from: p, byteCount: bytes.count)
            used = bytes.count
        }
    }

    public func flush() throws {
        guard used > 0 else { return }
        let n = used
        used = 0
        try writeAll(buffer, n)
    }

    private func writeAll(_ p: UnsafeRawPointer, _ count: Int) throws {
        if FaultInjection.fails("write") { throw IOError(name: name, operation: "", code: EIO) }
        var done = 0
        while done < count {
            let n = Foundation.write(fd, p + done, min(count - done, 1 << 30))
            if n < 0 {
                if errno == EINTR { continue }
                throw IOError(name: name, operation: "", code: errno)
            }
            done += n
        }
    }
}

/// Collects written bytes in memory (tests).
public final class MemorySink: ByteSink {
    public let name: String
    public private(set) var data: [UInt8] = []

    public init(name: String = "memory") { self.name = name }

    public func write(_ bytes: UnsafeRawBufferPointer) throws { data.append(contentsOf: bytes) }
    public func flush() throws {}
}

/// Reads several sources one after another as one byte sequence (CIFAR's batch files); `name`
/// is the current source's. Stream files are joined by StreamReader(sources:), which keeps
/// their records and their errors apart.
public final class ConcatSource: ByteSource {
    private let sources: [ByteSource]
    private var index = 0

    public init(_ sources: [ByteSource]) { self.sources = sources }

    public var name: String { sources.isEmpty ? "stdin" : sources[min(index, sources.count - 1)].name }

    public func read(into buffer: UnsafeMutableRawPointer, count: Int) throws -> Int {
        while index < sources.count {
            let n = try sources[index].read(into: buffer, count: count)
            if n > 0 { return n }
            index += 1
        }
        return 0
    }
}

/// A source whose first bytes can be looked at before they are read.
public final class PeekableSource: ByteSource {
    public let base: ByteSource
    private var head: [UInt8] = []
    private var headPos = 0

    public init(_ base: ByteSource) { self.base = base }
    public var name: String { base.name }

    /// Up to `n` first bytes (fewer at end of input), without consuming them.
    public func peek(_ n: Int) throws -> [UInt8] {
        if head.count - headPos < n {
            var more = [UInt8](repeating: 0, count: n - (head.count - headPos))
            let got = try more.withUnsafeMutableBytes { try base.readFully(into: $0.baseAddress!, count: $0.count) }
            head = Array(head[headPos...]) + more.prefix(got)
            headPos = 0
        }
        return Array(head[headPos..<min(head.count, headPos + n)])
    }

    public func read(into buffer: UnsafeMutableRawPointer, count: Int) throws -> Int {
        if headPos < head.count {
            let n = min(count, head.count - headPos)
            head.withUnsafeBytes { buffer.copyMemory(from: $0.baseAddress! + headPos, byteCount: n) }
            headPos += n
            return n
        }
        return try base.read(into: buffer, count: count)
    }
}

/// A temporary file for a stream that must be read twice, unlinked as soon as it is created so
/// that nothing is left behind, whatever happens to the process. In `$TMPDIR` (default /tmp).
public final class SpillFile {
    public let fd: Int32
    public let name: String

    public init() throws {
        let tmpdir = ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 }
        let dir = tmpdir ?? "/tmp"
        var template = Array((dir + "/tensor-spill-XXXXXX").utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        // Named as tensor-show --npz names its spill files: the variable, when it chose.
        name = "spill file in " + (tmpdir.map { "TMPDIR=\($0)" } ?? dir)
        guard fd >= 0 else { throw IOError(name: name, operation: "create", code: errno) }
        let path = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        unlink(path)
        self.fd = fd
    }

    deinit { close(fd) }

    public func sink() -> FileSink { FileSink(fd: fd, name: name, owns: false) }

    /// A source reading the file from its start.
    public func rewound() throws -> FileSource {
        guard lseek(fd, 0, SEEK_SET) == 0 else { throw IOError(name: name, operation: "seek", code: errno) }
        return FileSource(fd: fd, name: name, owns: false)
    }
}
