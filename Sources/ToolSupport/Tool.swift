// What every executable shares: the one place errors become `tool: where: what` and an exit
// status, output resolution (stdout or an atomic -o file), and signal handling.

import ArgumentParser
import CCPU
import Foundation
import TensorCore
import TensorStream

/// Exit statuses (sysexits.h), documented in every man page.
public enum ExitStatus {
    public static let ok: Int32 = 0
    public static let gateFailed: Int32 = 1
    public static let usage: Int32 = 64
    public static let dataError: Int32 = 65
    public static let noInput: Int32 = 66
    public static let software: Int32 = 70
    public static let ioError: Int32 = 74

    public static func of(_ kind: FailureKind) -> Int32 {
        switch kind {
        case .badData: return dataError
        case .missingInput: return noInput
        case .io: return ioError
        case .usage: return usage
        case .internal: return software
        }
    }
}

/// A mistake in how the tool was called (exit 64).
public struct UsageError: DiagnosticError {
    public let location: String
    public let problem: String
    public var kind: FailureKind { .usage }
    public init(_ problem: String, location: String = "usage") {
        self.problem = problem
        self.location = location
    }
}

/// A failure with a location and a kind, for modules and tools without their own error type.
public struct ToolFailure: DiagnosticError {
    public let location: String
    public let problem: String
    public let kind: FailureKind
    public init(_ location: String, _ problem: String, kind: FailureKind = .badData) {
        self.location = location
        self.problem = problem
        self.kind = kind
    }
}

public enum Tool {
    /// Installs handlers that remove temporary output files on SIGINT, SIGTERM and SIGHUP and then
    /// die of the same signal, so the shell sees 130/143.
    /// SIGXFSZ (a write beyond `ulimit -f`) is ignored, so that the write fails with EFBIG and
    /// the tool reports it, removes its temporary file and exits 74 instead of dying.
    public static func installSignalHandlers() {
        signal(SIGXFSZ, SIG_IGN)
        for sig in [SIGINT, SIGTERM, SIGHUP] {
            signal(sig) { s in
                // The signal is blocked while this runs; raise() delivers it again, with the
                // default action, when the handler returns. errno is the interrupted code's.
                let saved = errno
                TempFileRegistry.unlinkAll()
                signal(s, SIG_DFL)
                raise(s)
                errno = saved
            }
        }
    }

    /// A standard descriptor closed when the tool starts (`>&-`, `2>&-`, `<&-`) would be the
    /// next file the tool opens, and what was meant for stdout or stderr would land in that
    /// file: a vocabulary, a log, a spill file. Each closed one is held on /dev/null, opened the
    /// way that fails: stdin for writing only, stdout and stderr for reading only, so that
    /// reading stdin or writing stdout still fails with EBADF, as on the closed descriptor.
    public static func holdClosedStandardDescriptors() {
        for fd: Int32 in 0...2 where fcntl(fd, F_GETFD) == -1 && errno == EBADF {
            // open() returns the lowest free descriptor: this one, as the lower ones are open.
            let got = Glibc.open("/dev/null", fd == 0 ? O_WRONLY : O_RDONLY)
            if got >= 0 && got != fd { close(got) }
        }
    }

    /// Prints `tool: where: what` on stderr, one line, control characters escaped.
    public static func report(_ tool: String, _ location: String, _ problem: String) {
        var line = "\(tool): "
        if !location.isEmpty { line += escapedForDisplay(location, backslash: false) + ": " }
        line += escapedForDisplay(problem, backslash: false) + "\n"
        writeStandardError(line)
    }

    /// Prints a warning line on stderr (not an error).
    public static func warn(_ tool: String, _ message: String) {
        report(tool, "", "warning: " + message)
    }

    /// A release build whose kernels were compiled for x86-64-v3 (Package.swift), started on a
    /// CPU without it, would die of an illegal instruction somewhere in them: refuse it here,
    /// before any of that code runs (this module is compiled for any x86-64).
    static func refuseUnsupportedCPU(_ name: String) {
        #if TUNED_X86_64_V3
        if tensor_tools_cpu_has_x86_64_v3() == 0 {
            report(name, "", "this build's kernels need an x86-64-v3 CPU (AVX2, FMA: Haswell, Zen or later), which this one is not; "
                   + "build the tools on this machine, or with TENSOR_TOOLS_CPU=baseline for any x86-64")
            exit(ExitStatus.software)
        }
        #endif
    }

    /// Runs a tool's body; turns every error into one stderr line and its exit status. A write
    /// to a reader that went away ends the process quietly, as SIGPIPE would.
    public static func run(_ name: String, _ body: () throws -> Void) -> Never {
        refuseUnsupportedCPU(name)
        if let problem = Limits.environmentProblem {
            report(name, "TENSOR_MAX_BATCH_BYTES", problem)
            exit(ExitStatus.usage)
        }
        installSignalHandlers()
        do {
            try body()
            exit(ExitStatus.ok)
        } catch let e as IOError where e.isBrokenPipe {
            TempFileRegistry.unlinkAll()
            signal(SIGPIPE, SIG_DFL)
            raise(SIGPIPE)
            exit(141)
        } catch let e as DiagnosticError {
            TempFileRegistry.unlinkAll()
            report(name, e.location, e.problem)
            exit(ExitStatus.of(e.kind))
        } catch {
            TempFileRegistry.unlinkAll()
            report(name, "", "internal error: \(error)")
            exit(ExitStatus.software)
        }
    }
}

/// Where a tool's product goes: stdout, or a file replaced atomically on `commit()`.
public final class Output {
    public let sink: ByteSink
    private let atomic: AtomicFile?

    private init(sink: ByteSink, atomic: AtomicFile?) {
        self.sink = sink
        self.atomic = atomic
    }

    /// Opens `-o path` (atomic) or stdout when `path` is nil or "-". Binary output to a terminal
    /// is refused with a hint (`what` names the output, `hint` the way to a file); a closed
    /// stdout is an I/O error.
    public static func open(_ path: String?, binary: Bool = true, what: String = "a binary stream",
                            hint: String = "pipe it into a tool (| tensor-show) or use -o FILE") throws -> Output {
        let p = path ?? "-"
        guard !p.isEmpty else { throw UsageError("an empty name for an output file", location: "''") }
        if binary && namesTerminal(p) {
            // A terminal named as the file: the hint's way to a file is what was not taken.
            throw UsageError("refusing to write \(what) to a terminal; \(isStandardOutput(p) ? hint : "name a file")", location: isStandardOutput(p) ? "stdout" : p)
        }
        let (sink, atomic) = try openOutputFile(p)
        return Output(sink: sink, atomic: atomic)
    }

    private var committed = false

    /// Flushes; for a file, fsyncs and renames it into place. Once done, a no-op.
    public func commit() throws {
        guard !committed else { return }
        if let a = atomic { try a.commit() } else { try sink.flush() }
        committed = true
    }

    /// Commits outputs that are one result (a stream and its statistics): stdout flushed, the
    /// files synced and renamed together (AtomicFile.publishTogether), so an error leaves every
    /// file as it was. Outputs committed already (a side file of a stream on stdout) are done.
    public static func commitTogether(_ outputs: [Output?]) throws {
        let pending = outputs.compactMap { $0 }.filter { !$0.committed }
        for o in pending where o.atomic == nil { try o.sink.flush() }
        try AtomicFile.publishTogether(pending.compactMap(\.atomic))
        for o in pending { o.committed = true }
    }

    /// Pushes what this output holds to its reader whenever `input` would wait for more
    /// (StreamReader.beforeWaiting), so `producer | predict | consumer` answers each sample when
    /// it arrives, not when 1 MiB has gathered or the input ends. A file output is left to its
    /// commit, since nobody reads it before the rename.
    public func flushWhenWaiting(for input: StreamReader) {
        guard atomic == nil else { return }
        let sink = self.sink
        input.beforeWaiting = { try sink.flush() }
    }

    /// Discards a file output; the target stays as it was.
    public func abandon() { atomic?.abandon() }

    /// Whether the output is a file (committed by rename), not stdout.
    public var isFile: Bool { atomic != nil }

    /// Commits `side`, a file that goes with a stream on this output, at the right moment: a
    /// stream on stdout cannot be taken back, so its side file is committed before the stream's
    /// end record (a reader downstream of a failed side file then sees a stream cut short and
    /// fails, instead of succeeding on it); beside a file, nothing yet (the two are synced and
    /// committed together after the end record). Call it just before writing the end record.
    public func commitBeforeEnd(_ side: Output?) throws {
        guard !isFile, let side else { return }
        // The samples are out first: a stdout that fails takes the side file with it, and only
        // the end record, a few bytes, is written after the side file is in place.
        try sink.flush()
        try side.commit()
    }
}

/// Whether two path operands name one regular file: the same inode (through links, or "-" as
/// a stdin redirected from the file), or, when one does not exist yet, the same path once
/// links and the directory are resolved. Devices such as /dev/null are no such file.
public func sameFile(_ a: String, _ b: String) -> Bool {
    func identity(_ p: String) -> stat? {
        var st = stat()
        let found = p == "-" ? fstat(0, &st) == 0 : stat(p, &st) == 0
        return found ? st : nil
    }
    func canonical(_ p: String) -> String {
        let url = URL(fileURLWithPath: followingLinks(p))
        guard let dir = realpath(url.deletingLastPathComponent().path, nil) else { return url.standardizedFileURL.path }
        defer { free(dir) }
        return String(cString: dir) + "/" + url.lastPathComponent
    }
    let sa = identity(a), sb = identity(b)
    for s in [sa, sb] where s.map({ $0.st_mode & S_IFMT != S_IFREG }) ?? false { return false }
    if let sa, let sb { return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino }
    guard a != "-", b != "-" else { return false }
    return canonical(a) == canonical(b)
}

/// Refuses a list of field names that names one twice (the output would have two fields of
/// one name, refused only when written).
public func refuseRepeatedNames(_ names: [String], option: String) throws {
    var seen = Set<String>()
    for n in names where !seen.insert(n).inserted { throw ValidationError("\(option) names '\(n)' twice") }
}

/// Refuses one file in two roles where one of them would be lost (a usage error): two outputs
/// that name one file, or both the standard output ("-", the default of -o); or an output that
/// is also an input, unless it is `inPlace`, the stream output that may replace its own input
/// (read from the file it was, the new one renamed over it: tensor-cat -o a.tns a.tns).
/// Inputs use "-" for stdin, which is the file it was redirected from.
public func refuseSharedFiles(outputs: [(String, String?)], inputs: [(String, String?)], inPlace: String? = nil) throws {
    let outs = outputs.compactMap { n, p in p.map { (n, $0) } }
    let ins = inputs.compactMap { n, p in p.map { (n, $0) } }
    for (i, (n, p)) in outs.enumerated() {
        for (m, q) in outs[(i + 1)...] {
            let same = isStandardOutput(p) || isStandardOutput(q) ? isStandardOutput(p) && isStandardOutput(q) : sameFile(p, q)
            if same { throw ValidationError(isStandardOutput(p) ? "\(n) and \(m) both write to the standard output" : "\(n) and \(m) name the same file, \(p)") }
        }
        guard n != inPlace, !isStandardOutput(p) else { continue }
        for (m, q) in ins where sameFile(p, q) { throw ValidationError("\(n) and \(m) name the same file, \(p)") }
    }
}

/// Refuses standard input ("-") named for two inputs (a usage error): the first would read it
/// all, and the second would find it empty and blame valid data ("empty input").
public func refuseStdinTwice(_ inputs: [(String, String?)]) throws {
    let onStdin = inputs.filter { $0.1 == "-" }.map(\.0)
    guard onStdin.count > 1 else { return }
    if Set(onStdin).count == 1 { throw ValidationError("\(onStdin[0]) names stdin (-) twice") }
    throw ValidationError("\(onStdin[0]) and \(onStdin[1]) cannot both be stdin (-)")
}

/// Opens the stream operands (stdin when none) as one reader each, in order.
public func openInputs(_ paths: [String]) throws -> [FileSource] {
    let ps = paths.isEmpty ? ["-"] : paths
    return try ps.map { try FileSource.open($0) }
}

extension ByteSink {
    /// Writes a string's UTF-8 bytes.
    public func write(string s: String) throws {
        var t = s
        try t.withUTF8 { try write(UnsafeRawBufferPointer($0)) }
    }
}

/// Reads a whole small input (a log, a statistics file) into memory; more than `limit` bytes is
/// an error naming the input.
public func readWhole(_ source: ByteSource, limit: Int) throws -> [UInt8] {
    var out: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let n = try chunk.withUnsafeMutableBytes { try source.read(into: $0.baseAddress!, count: $0.count) }
        if n == 0 { return out }
        out += chunk[0..<n]
        if out.count > limit { throw ToolFailure(source.name, "larger than \(limit) bytes; is it the right file?") }
    }
}
