// How much memory the process may still fill: what decides whether a large buffer can be
// allocated at all. Swift traps when an allocation fails, so a reader or a trainer that would
// pass this refuses the work first, with a message, instead of dying in the middle of it.

import Foundation

public enum SystemMemory {
    /// Bytes the process may still allocate: the machine's physical memory, or less under a
    /// cgroup's memory limit (a container) or `ulimit -v` (less what is mapped already and
    /// `reserve`).
    public static func available(reserve: Double = 0) -> Double {
        var room = Double(sysconf(Int32(_SC_PHYS_PAGES))) * Double(sysconf(Int32(_SC_PAGESIZE)))
        for path in ["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"] {
            if let text = try? String(contentsOfFile: path, encoding: .utf8),
               let limit = Double(text.trimmingCharacters(in: .whitespacesAndNewlines)) { room = min(room, limit) }
        }
        var lim = rlimit()
        if getrlimit(__rlimit_resource_t(RLIMIT_AS.rawValue), &lim) == 0, lim.rlim_cur != rlim_t.max,
           let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8),
           let pages = text.split(separator: " ").first.flatMap({ Double($0) }) {
            let mapped = pages * Double(sysconf(Int32(_SC_PAGESIZE)))
            room = min(room, Double(lim.rlim_cur) - mapped - reserve)
        }
        return max(room, 0)
    }

    /// Refuses (70, naming `location`) work that needs `bytes` when the process may not have
    /// them: the allocation would trap instead. Below 64 MiB it is not asked (reading the
    /// limits costs).
    public static func refuseUnlessRoom(_ bytes: Double, location: String, for purpose: String) throws {
        guard bytes > Double(64 << 20) else { return }
        let room = available()
        guard bytes <= room else { throw MemoryRoomError(location: location, need: bytes, room: room, purpose: purpose) }
    }

    /// Bytes for people: "1.5 GB", "205 KB".
    public static func describe(_ b: Double) -> String {
        let units = ["bytes", "KB", "MB", "GB", "TB", "PB"]
        var v = b, i = 0
        while v >= 1000 && i < units.count - 1 { v /= 1000; i += 1 }
        return i == 0 ? "\(Int(v)) bytes" : String(format: v < 10 ? "%.1f" : "%.0f", v) + " " + units[i]
    }
}

/// Work that needs more memory than the process may have (70).
public struct MemoryRoomError: DiagnosticError {
    public let location: String
    public let problem: String
    public var kind: FailureKind { .internal }
    public init(location: String, need: Double, room: Double, purpose: String) {
        self.location = location
        problem = "needs \(SystemMemory.describe(need)) of memory \(purpose), more than the \(SystemMemory.describe(room)) this process may use (physical memory, a container's limit or ulimit -v)"
    }
}
