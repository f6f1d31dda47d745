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

    /// Bytes for people: "1.5 GB", "205 KB".
    public static func describe(_ b: Double) -> String {
        let units = ["bytes", "KB", "MB", "GB", "TB", "PB"]
        var v = b, i = 0
        while v >= 1000 && i < units.count - 1 { v /= 1000; i += 1 }
        return i == 0 ? "\(Int(v)) bytes" : String(format: v < 10 ? "%.1f" : "%.0f", v) + " " + units[i]
    }
}
