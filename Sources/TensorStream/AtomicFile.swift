// Atomic replacement of an output file: write a temporary file in the target's directory,
// fsync it, rename it over the target, fsync the directory (git's lockfile, PostgreSQL's
// durable rename). A reader of the target sees the old file or the complete new one, never a
// part. Temporary files are removed on error and, through `TempFileRegistry`, on SIGINT/SIGTERM.

import Foundation

/// Paths of temporary files (and fit's checkpoint lock) to unlink if a termination signal
/// arrives. Signal-safe to read:
/// fixed slots of C strings, written only outside signal handlers.
public enum TempFileRegistry {
    static let slots = 32
    nonisolated(unsafe) static let paths: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?> = {
        let p = UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>.allocate(capacity: slots)
        p.initialize(repeating: nil, count: slots)
        return p
    }()

    public static func add(_ path: String) {
        for i in 0..<slots where paths[i] == nil {
            paths[i] = strdup(path)
            return
        }
    }

    public static func remove(_ path: String) {
        for i in 0..<slots {
            if let p = paths[i], String(cString: p) == path {
                paths[i] = nil
                free(p)
            }
        }
    }

    /// Unlinks every registered temporary file. Called from signal handlers: only unlink(2).
    public static func unlinkAll() {
        for i in 0..<slots {
            if let p = paths[i] { unlink(p) }
        }
    }
}

/// A file written under a temporary name and renamed over `path` by `commit()`.
public final class AtomicFile: ByteSink {
    public let path: String
    public let name: String
    public let tempPath: String
    private let sink: FileSink
    private var done = false
    private var synced = false

    /// Creates the temporary file `.NAME.XXXXXX.tmp` beside `path`. A symbolic link is
    /// followed: the file it names is replaced, and the link stays.
    public init(path: String) throws {
        self.name = path
        let path = followingLinks(path)
        self.path = path
        let url = URL(fileURLWithPath: path)
        let dir = url.deletingLastPathComponent().path
        let base = url.lastPathComponent
        var template = Array("\(dir)/.\(base).XXXXXX".utf8CString)
        // SIGINT/SIGTERM/SIGHUP wait until the file is registered: a signal between mkstemp
        // and the registration would leave it behind.
        let (fd, code, temp) = withTerminationSignalsBlocked { () -> (Int32, Int32, String) in
            let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
            let code = errno
            guard fd >= 0 else { return (fd, code, "") }
            let temp = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            TempFileRegistry.add(temp)
            return (fd, code, temp)
        }
        tempPath = temp
        guard fd >= 0 else { throw IOError(name: path, operation: "cannot create a temporary file", code: code) }
        // Keep the mode of the file being replaced; a new file gets 0666 less the umask.
        var st = stat()
        if stat(path, &st) == 0 {
            fchmod(fd, st.st_mode & 0o7777)
        } else {
            let mask = umask(0)
            umask(mask)
            fchmod(fd, 0o666 & ~mask)
        }
        sink = FileSink(fd: fd, name: path, owns: true)
    }

    deinit { if !done { abandon() } }

    public func write(_ bytes: UnsafeRawBufferPointer) throws { try sink.write(bytes) }
    public func flush() throws { try sink.flush() }

    /// Flushes, fsyncs and renames the temporary file over the target, then fsyncs the directory.
    public func commit() throws {
        try sync()
        try publish()
    }

    /// Flushes and fsyncs the temporary file: what can fail for want of space or a disk error
    /// fails here, before any target is replaced (publishTogether syncs every file of a set
    /// before it renames any). On failure the temporary file is removed.
    public func sync() throws {
        guard !synced else { return }
        do {
            try sink.flush()
            if FaultInjection.fails("fsync") { throw IOError(name: path, operation: "fsync", code: EIO) }
            guard fsync(sink.fd) == 0 else { throw IOError(name: path, operation: "fsync", code: errno) }
        } catch {
            abandon()
            throw error
        }
        synced = true
    }

    /// Renames the synced temporary file over the target and fsyncs the directory.
    public func publish() throws {
        try sync()
        try renameIntoPlace()
        fsyncDirectory()
    }

    /// Renames the synced temporary file over the target; on failure removes it.
    private func renameIntoPlace() throws {
        do {
            if FaultInjection.fails("rename") { throw IOError(name: path, operation: "rename", code: EIO) }
            guard rename(tempPath, path) == 0 else { throw IOError(name: path, operation: "rename", code: errno) }
        } catch {
            abandon()
            throw error
        }
        done = true
        TempFileRegistry.remove(tempPath)
    }

    private var directory: String { URL(fileURLWithPath: path).deletingLastPathComponent().path }

    private static func fsyncDirectory(_ dir: String) {
        let dfd = open(dir, O_RDONLY | O_DIRECTORY)
        if dfd >= 0 {
            fsync(dfd)
            close(dfd)
        }
    }

    private func fsyncDirectory() { AtomicFile.fsyncDirectory(directory) }

    /// Syncs `files`, then renames them over their targets as one result (a stream and its
    /// statistics): SIGINT, SIGTERM and SIGHUP wait until every rename is done, and when one
    /// fails the targets already replaced get their previous files back (kept as hard links
    /// until the last rename; a target that did not exist is removed again), so an error
    /// leaves the previous set. Where a previous file cannot be linked (a file system without
    /// hard links) it cannot be given back. On failure every temporary file is removed.
    public static func publishTogether(_ files: [AtomicFile]) throws {
        do {
            for f in files { try f.sync() }
        } catch {
            for f in files { f.abandon() }
            throw error
        }
        try withTerminationSignalsBlocked { try renameTogether(files) }
    }

    private static func renameTogether(_ files: [AtomicFile]) throws {
        enum Before { case none, kept(String), lost }
        var replaced: [(file: AtomicFile, before: Before)] = []
        do {
            for f in files {
                var st = stat()
                let backup = f.tempPath + ".old"
                let before: Before = lstat(f.path, &st) != 0 ? .none : link(f.path, backup) == 0 ? .kept(backup) : .lost
                do {
                    try f.renameIntoPlace()
                } catch {
                    if case .kept(let b) = before { unlink(b) }
                    throw error
                }
                replaced.append((f, before))
            }
        } catch {
            for f in files { f.abandon() }
            for (f, before) in replaced.reversed() {
                switch before {
                case .none: unlink(f.path)
                case .kept(let b): rename(b, f.path)
                case .lost: break
                }
            }
            for dir in Set(replaced.map(\.file.directory)) { fsyncDirectory(dir) }
            throw error
        }
        for case (_, .kept(let b)) in replaced { unlink(b) }
        for dir in Set(files.map(\.directory)) { fsyncDirectory(dir) }
    }

    /// Removes the temporary file; the target is untouched.
    public func abandon() {
        guard !done else { return }
        done = true
        unlink(tempPath)
        TempFileRegistry.remove(tempPath)
    }
}

/// Runs `body` with SIGINT, SIGTERM and SIGHUP held until it returns: a temporary file made
/// but not yet registered, or one of a set of renames done, must not be cut off by them.
private func withTerminationSignalsBlocked<T>(_ body: () throws -> T) rethrows -> T {
    var block = sigset_t(), previous = sigset_t()
    sigemptyset(&block)
    for sig in [SIGINT, SIGTERM, SIGHUP] { sigaddset(&block, sig) }
    pthread_sigmask(SIG_BLOCK, &block, &previous)
    defer { pthread_sigmask(SIG_SETMASK, &previous, nil) }
    return try body()
}

/// `path` with symbolic links followed to the file they name, which need not exist yet (a
/// dangling link names the file to create).
public func followingLinks(_ path: String) -> String {
    var p = path
    for _ in 0..<40 {
        var st = stat()
        guard lstat(p, &st) == 0, st.st_mode & S_IFMT == S_IFLNK else { return p }
        var buf = [UInt8](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = buf.withUnsafeMutableBufferPointer { b in b.baseAddress!.withMemoryRebound(to: CChar.self, capacity: b.count) { readlink(p, $0, b.count - 1) } }
        guard n > 0 else { return p }
        let target = String(decoding: buf[..<n], as: UTF8.self)
        p = target.hasPrefix("/") ? target : URL(fileURLWithPath: p).deletingLastPathComponent().appendingPathComponent(target).path
    }
    return p
}

/// Whether an output path names the standard output: "-", /dev/stdout or file descriptor 1
/// by its /dev/fd or /proc name. Replacing what those lead to (a file the shell redirected
/// stdout to, perhaps for appending) would lose it.
public func isStandardOutput(_ path: String) -> Bool {
    ["-", "/dev/stdout", "/dev/fd/1", "/proc/self/fd/1"].contains(path)
}

/// Whether an output path leads to a terminal: the standard output when it is one, or a
/// terminal device named as a file (-o /dev/tty), which is written in place.
public func namesTerminal(_ path: String) -> Bool {
    if isStandardOutput(path) { return isatty(1) == 1 }
    var st = stat()
    guard stat(path, &st) == 0 && st.st_mode & S_IFMT == S_IFCHR else { return false }
    let fd = open(path, O_WRONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    return isatty(fd) == 1
}

/// Where an output named on the command line goes: the standard output (`isStandardOutput`);
/// a regular or new file, replaced atomically (`atomic`, to commit or abandon; through a
/// symbolic link, the file it names); or a device, FIFO or socket (-o /dev/null, -o >(…)),
/// written in place, since renaming a file over it would replace it. A directory is refused.
public func openOutputFile(_ path: String) throws -> (sink: ByteSink, atomic: AtomicFile?) {
    if isStandardOutput(path) {
        guard fcntl(1, F_GETFD) != -1 else { throw IOError(name: "stdout", operation: "", code: EBADF) }
        return (FileSink.standardOutput(), nil)
    }
    var st = stat()
    if stat(path, &st) == 0 && st.st_mode & S_IFMT != S_IFREG {
        guard st.st_mode & S_IFMT != S_IFDIR else { throw IOError(name: path, operation: "open", code: EISDIR) }
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw IOError(name: path, operation: "open", code: errno) }
        return (FileSink(fd: fd, name: path, owns: true), nil)
    }
    let a = try AtomicFile(path: path)
    return (a, a)
}
