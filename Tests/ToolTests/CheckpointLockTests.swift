// fit's checkpoint lock, in-process: the interleavings two fit processes cannot be made to
// take on demand.

import Foundation
import ToolSupport
import XCTest
import _TestSupport

final class CheckpointLockTests: XCTestCase {
    var tmp = ""
    override func setUpWithError() throws { tmp = try makeTempDir() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: tmp) }

    func testASecondHolderIsRefusedAndTheFileGoesWithTheLast() throws {
        let ckpt = "\(tmp)/m.model.ckpt"
        let a = try CheckpointLock(ckpt)
        XCTAssertEqual(a.path, "\(tmp)/.m.model.ckpt.lock")
        XCTAssertThrowsError(try CheckpointLock(ckpt)) { e in
            XCTAssertTrue("\(e)".contains("another fit is writing this checkpoint"), "\(e)")
        }
        a.release()
        XCTAssertFalse(FileManager.default.fileExists(atPath: a.path))
        let b = try CheckpointLock(ckpt)
        b.release()
    }

    /// A run opens the lock file, the holder lets go (removing it), and only then does the run
    /// lock: it must not hold the removed file while a third run locks a new one.
    func testALockTakenOnAFileTheHolderRemovedIsTakenAgain() throws {
        let ckpt = "\(tmp)/m.model.ckpt"
        let a = try CheckpointLock(ckpt)
        let b = try CheckpointLock(ckpt, beforeLocking: { attempt in if attempt == 1 { a.release() } })
        XCTAssertTrue(FileManager.default.fileExists(atPath: b.path), "b holds a file no longer in the directory")
        XCTAssertThrowsError(try CheckpointLock(ckpt), "a third run took the lock b holds") { e in
            XCTAssertTrue("\(e)".contains("another fit is writing this checkpoint"), "\(e)")
        }
        b.release()
    }

    /// A file system where the path never names the file just locked (here: it is removed
    /// before every lock) would loop for ever; after 100 attempts it is an I/O error naming it.
    func testALockFileThatKeepsChangingGivesUpAfter100Attempts() throws {
        let ckpt = "\(tmp)/m.model.ckpt"
        var attempts = 0
        XCTAssertThrowsError(try CheckpointLock(ckpt, beforeLocking: { n in
            attempts = n
            // Past 1,000 the file stays, so that a lock without the bound takes it and this
            // test fails instead of hanging.
            if n <= 1000 { unlink("\(self.tmp)/.m.model.ckpt.lock") }
        })) { e in
            XCTAssertTrue("\(e)".contains("lock (the file changed under each of 100 attempts)"), "\(e)")
            XCTAssertTrue("\(e)".contains(".m.model.ckpt.lock"), "\(e)")
        }
        XCTAssertEqual(attempts, 100)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(tmp)/.m.model.ckpt.lock"))
    }
}
