// Everything that can be wrong with a tensor stream, one case each, and I/O failures.

import TensorCore
import Foundation

/// A tensor stream that is malformed, truncated, corrupt or mismatched.
public struct StreamError: DiagnosticError, CustomStringConvertible {
    public enum Problem: Equatable {
        case emptyInput
        case notAStream(looksLike: String)
        case unsupportedVersion(UInt32)
        case damagedSignature
        case truncated(samples: Int, inside: String)
        case checksumMismatch
        case nonzeroPadding
        case unknownRecord(String)
        /// `setting`: the environment variable that sets the limit, when one does.
        case recordTooLarge(length: UInt64, limit: Int, setting: String? = nil)
        case malformed(String)
        /// `reference`: the stream it must match ("stream 1", or "stream 1 of a.tns").
        case schemaMismatch(reference: String, detail: String)
        case countMismatch(String)
        case trailingGarbage
        /// A record larger than the memory the process may still fill (bytes).
        case outOfMemory(need: Double, room: Double)
    }

    public let input: String
    /// Where in the input: "stream 2, batch 3 at byte 4096".
    public let place: String
    public let what: Problem

    public init(input: String, place: String, _ what: Problem) {
        self.input = input
        self.place = place
        self.what = what
    }

    public var kind: FailureKind {
        if case .outOfMemory = what { return .internal }
        return .badData
    }
    public var location: String { place.isEmpty ? input : "\(input): \(place)" }

    public var problem: String {
        switch what {
        case .emptyInput: return "empty input, no stream header"
        case .notAStream(let k): return "not a tensor stream (looks like \(k))"
        case .unsupportedVersion(let v): return "format version \(v) unsupported (reads ≤ \(StreamFormat.version))"
        case .damagedSignature: return "stream signature damaged (line endings converted in transfer?)"
        case .truncated(let n, let inside): return "no end record after \(n) samples (input ends \(inside))"
        case .checksumMismatch: return "checksum mismatch (data corrupted)"
        case .nonzeroPadding: return "nonzero padding (data corrupted)"
        case .unknownRecord(let t): return "unknown record tag \(t)"
        case .recordTooLarge(let l, let lim, let setting): return "record length \(l) exceeds the limit \(lim)" + (setting.map { " (\($0))" } ?? "")
        case .malformed(let s): return s
        case .schemaMismatch(let r, let d): return "does not match \(r): \(d)"  // the place names the stream
        case .countMismatch(let s): return s
        case .trailingGarbage: return "garbage after end record"
        case .outOfMemory(let need, let room):
            return "needs \(SystemMemory.describe(need)) of memory to read a record, more than the \(SystemMemory.describe(room)) this process may use (physical memory, a container's limit or ulimit -v)"
        }
    }

    public var description: String { "\(location): \(problem)" }
}

/// A binary stream to be read from a terminal (a usage error).
public struct TerminalInput: DiagnosticError {
    public let name: String
    public var location: String { name }
    public var problem: String { "refusing to read a binary stream from a terminal; pipe one in (tensor-load FILE | …) or name a file" }
    public var kind: FailureKind { .usage }
}

/// An input that is the file the standard output is redirected to (a usage error).
public struct InputIsOutput: DiagnosticError {
    public let name: String
    public var location: String { name }
    public var problem: String { "is also the standard output (redirected with > or >>): it would be written over as it is read; send the output to another file" }
    public var kind: FailureKind { .usage }
}

/// A failed system call on a named input or output.
public struct IOError: DiagnosticError, CustomStringConvertible {
    public let name: String
    public let operation: String
    public let code: Int32
    public let missing: Bool

    public init(name: String, operation: String, code: Int32, missing: Bool = false) {
        self.name = name
        self.operation = operation
        self.code = code
        self.missing = missing
    }

    public var isBrokenPipe: Bool { code == EPIPE }
    public var kind: FailureKind { missing ? .missingInput : .io }
    public var location: String { name }
    public var problem: String {
        let msg = String(cString: strerror(code))
        return operation.isEmpty ? msg : "\(operation): \(msg)"
    }
    public var description: String { "\(location): \(problem)" }
}
