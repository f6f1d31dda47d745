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
        FileHandle.standardError.write(line.data(using: .utf8)!)
    }

    /// Clears the bar's line.
    public func finish() {
        guard enabled else { return }
        FileHandle.standardError.write("\r\u{1B}[K".data(using: .utf8)!)
    }
}

/// Writes a line to stderr.
public func logLine(_ s: String) {
    FileHandle.standardError.write((s + "\n").data(using: .utf8)!)
}
