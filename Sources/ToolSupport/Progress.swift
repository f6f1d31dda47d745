// Progress on stderr: a redrawn bar with ETA when stderr is a terminal, otherwise nothing
// (tools print one line per epoch instead). --quiet silences both.

import Foundation

public final class Progress {
    public let enabled: Bool
    private let label: String
    private let total: Int
    private let start = Date()
    private var lastDraw = Date.distantPast

    public init(label: String, total: Int, quiet: Bool) {
        self.label = label
        self.total = total
        enabled = !quiet && isatty(2) == 1
    }

    public func update(_ done: Int) {
        guard enabled, Date().timeIntervalSince(lastDraw) > 0.1 || done == total else { return }
        lastDraw = Date()
        let f = total > 0 ? Double(done) / Double(total) : 1
        let width = 30
        let filled = Int(f * Double(width))
        let elapsed = Date().timeIntervalSince(start)
        let eta = f > 0 ? elapsed / f - elapsed : 0
        let bar = String(repeating: "=", count: filled) + String(repeating: " ", count: width - filled)
        let line = String(format: "\r%@ [%@] %3d%%  %d/%d  ETA %ds ", label, bar, Int(f * 100), done, total, Int(eta))
        writeStandardError(line)
    }

    /// Clears the bar's line.
    public func finish() {
        guard enabled else { return }
        writeStandardError("\r\u{1B}[K")
    }
}

/// Writes a line to stderr.
public func logLine(_ s: String) {
    writeStandardError(s + "\n")
}

/// Writes to stderr with write(2), ignoring failure: a closed or broken stderr must not stop a
/// tool (FileHandle.write traps on it).
public func writeStandardError(_ s: String) {
    var bytes = Array(s.utf8)
    var done = 0
    while done < bytes.count {
        let n = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress! + done, $0.count - done) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { return }
        done += n
    }
}
