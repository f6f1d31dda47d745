// The contract between module errors and the one place (ToolSupport) that prints them.
// Modules throw; only tools print and exit.

/// What kind of failure an error is; ToolSupport maps each to its exit status.
public enum FailureKind: Sendable {
    /// Input data that is malformed, truncated, mismatched or hostile (exit 65).
    case badData
    /// An input that does not exist or cannot be opened (exit 66).
    case missingInput
    /// A read or write that the operating system failed (exit 74).
    case io
    /// A combination of options or operands the user got wrong (exit 64).
    case usage
    /// A bug or an impossible state (exit 70).
    case `internal`
}

/// An error that knows where it happened and what went wrong, to print as `tool: where: what`.
public protocol DiagnosticError: Error {
    /// The input (file name, "stdin") and, when known, the place in it.
    var location: String { get }
    /// What went wrong, one line.
    var problem: String { get }
    var kind: FailureKind { get }
}

/// Escapes control characters, DEL, invisible characters (`isInvisible`: a byte order mark,
/// bidi controls, zero-width and tag characters) and backslash so untrusted text prints as one safe, visible line.
/// `backslash: false` leaves backslashes as they are: for a line whose parts were escaped
/// already (the diagnostic printer), so that `\x01` does not come out as `\\x01`.
public func escapedForDisplay(_ s: String, backslash: Bool = true) -> String {
    var out = ""
    out.reserveCapacity(s.utf8.count)
    for u in s.unicodeScalars {
        switch u {
        case "\\" where backslash: out += "\\\\"
        case "\n": out += "\\n"
        case "\t": out += "\\t"
        case "\r": out += "\\r"
        default:
            if u.value < 0x20 || u.value == 0x7F || (0x80...0x9F).contains(u.value) {
                out += "\\x" + String(u.value, radix: 16).leftPadded(to: 2)
            } else if u.value >= 0x80 && isInvisible(u) {
                out += "\\u{" + String(u.value, radix: 16, uppercase: true) + "}"
            } else {
                out.unicodeScalars.append(u)
            }
        }
    }
    return out
}

/// Format characters (bidi marks and overrides, zero-width characters, the soft hyphen, tags,
/// the byte order mark), line and paragraph separators, and characters that show as nothing
/// (the combining grapheme joiner, the Hangul fillers): escaped, so a name cannot hide,
/// reorder or break what is printed around it.
func isInvisible(_ u: Unicode.Scalar) -> Bool {
    switch u.properties.generalCategory {
    case .format, .lineSeparator, .paragraphSeparator: return true
    default: return [0x034F, 0x115F, 0x1160, 0x3164, 0xFFA0].contains(u.value)
    }
}

/// Class names (or other names) for display in one line, separated by ", ", each escaped.
/// When a name could be misread in such a list (empty, with a comma, a semicolon, an ellipsis,
/// or a space at either end), every name is quoted, with \' for a quote inside: 'a, b', 'c'
/// is two names, not three.
public func displayNames<S: Sequence>(_ names: S) -> String where S.Element == String {
    let shown = names.map { escapedForDisplay($0) }
    let quote = shown.contains { n in
        n.isEmpty || n.contains(",") || n.contains(";") || n.contains("…") || n.first!.isWhitespace || n.last!.isWhitespace
    }
    return (quote ? shown.map(quoted) : shown).joined(separator: ", ")
}

/// An escaped name in single quotes, with \' for a quote inside.
public func quoted(_ escaped: String) -> String {
    "'" + escaped.map { $0 == "'" ? "\\'" : String($0) }.joined() + "'"
}

/// Decodes bytes as UTF-8 for display, replacing invalid sequences, then escapes them.
public func displayString<C: Collection>(bytes: C) -> String where C.Element == UInt8 {
    escapedForDisplay(String(decoding: Array(bytes), as: UTF8.self))
}

extension String {
    func leftPadded(to n: Int) -> String {
        count >= n ? self : String(repeating: "0", count: n - count) + self
    }
}
