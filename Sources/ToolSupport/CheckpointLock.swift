// fit's checkpoint lock: `.NAME.lock` beside the checkpoint, held with flock(2) while one run
// writes it, and removed when the run ends.

import Foundation
import TensorStream

/// An exclusive lock on `.NAME.lock` beside a checkpoint, held while one fit writes it.
///
/// The file is removed when the holder lets go, so a run that opened it just before may lock
/// a file no longer in the directory while a third run creates and locks a new one: two holders.
/// After locking, the lock is kept only if the path still names the locked file; otherwise it
/// is opened again (as lockfile(1) and Postfix's dot-lock do).
public final class CheckpointLock {
    public let path: String
    let fd: Int32

    /// `beforeLocking` runs between opening and locking, with the attempt's number from 1 (tests
    /// use it to let a holder go there, or to remove the file every time).
    public init(_ checkpoint: String, beforeLocking: (Int) -> Void = { _ in }) throws {
        // Beside the checkpoint, named as the user named it (no absolute path in messages).
        let slash = checkpoint.lastIndex(of: "/")
        let dir = slash.map { String(checkpoint[...$0]) } ?? ""
        path = dir + "." + String(checkpoint[(slash.map { checkpoint.index(after: $0) } ?? checkpoint.startIndex)...]) + ".lock"
        fd = try Self.lock(path, checkpoint: checkpoint, beforeLocking: beforeLocking)
        TempFileRegistry.add(path)  // removed on SIGINT or SIGTERM too
    }

    static func lock(_ path: String, checkpoint: String, beforeLocking: (Int) -> Void) throws -> Int32 {
        for attempt in 1... {
            let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
            guard fd >= 0 else { throw IOError(name: path, operation: "create the checkpoint's lock", code: errno) }
            beforeLocking(attempt)
            guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
                let e = errno
                close(fd)
                if e == EWOULDBLOCK { throw UsageError("another fit is writing this checkpoint (it holds \(path)); give this run another -o or --checkpoint", location: checkpoint) }
                throw IOError(name: path, operation: "lock", code: e)
            }
            var held = stat(), named = stat()
            if fstat(fd, &held) == 0 && stat(path, &named) == 0 && held.st_dev == named.st_dev && held.st_ino == named.st_ino {
                return fd
            }
            close(fd)  // the holder removed it while this run waited to lock: open the new one
            // A file system that never gives the same identity twice would loop for ever.
            guard attempt < 100 else { break }
        }
        throw IOError(name: path, operation: "lock (the file changed under each of 100 attempts)", code: EAGAIN)
    }

    /// Removes the lock file, then lets go of the lock (in this order: see the type's comment).
    public func release() {
        TempFileRegistry.remove(path)
        unlink(path)
        close(fd)
    }
}
