import CCPU
import Compute
import Foundation
import TensorCore
import XCTest

final class TensorCoreTests: XCTestCase {
    func testCRC32MatchesZlibReferenceValue() {
        // zlib.crc32(b"123456789") == 0xCBF43926, the CRC-32 check value.
        let v = Array("123456789".utf8).withUnsafeBytes { CRC32.checksum($0) }
        XCTAssertEqual(v, 0xCBF4_3926)
        var c = CRC32()
        c.update(Array("1234".utf8))
        c.update(Array("56789".utf8))
        XCTAssertEqual(c.value, 0xCBF4_3926, "incremental updates equal one pass")
    }

    func testCheckedArithmeticRefusesOverflow() {
        XCTAssertNil(checkedProduct([1 << 32, 1 << 32, 2]))
        XCTAssertNil(checkedProduct([1 << 61, 8]))
        XCTAssertNil(checkedProduct([-1, 2]))
        XCTAssertEqual(checkedProduct([28, 28, 1]), 784)
        XCTAssertNil(checkedProduct([1 << 20, 1 << 20], limit: 1 << 31))
        XCTAssertEqual(roundUp(65, to: 64), 128)
        XCTAssertNil(roundUp(Int.max - 3, to: 64))
    }

    func testSgemmAgreesWithNaiveReferenceForAllTransposes() {
        var rng = SystemRandomNumberGenerator()
        for (m, n, k) in [(1, 1, 1), (3, 5, 7), (17, 9, 33), (64, 10, 784)] {
            for ta in [false, true] {
                for tb in [false, true] {
                    let a = (0..<m * k).map { _ in Float.random(in: -1...1, using: &rng) }
                    let b = (0..<k * n).map { _ in Float.random(in: -1...1, using: &rng) }
                    var c1 = (0..<m * n).map { _ in Float.random(in: -1...1, using: &rng) }
                    var c2 = c1
                    let lda = ta ? m : k, ldb = tb ? k : n
                    sgemm(transA: ta, transB: tb, m: m, n: n, k: k, alpha: 0.5, a: a, lda: lda, b: b, ldb: ldb, beta: 2, c: &c1, ldc: n)
                    sgemmNaive(transA: ta, transB: tb, m: m, n: n, k: k, alpha: 0.5, a: a, lda: lda, b: b, ldb: ldb, beta: 2, c: &c2, ldc: n)
                    let diff = zip(c1, c2).map { abs($0 - $1) }.max()!
                    XCTAssertLessThan(diff, 1e-4, "m\(m) n\(n) k\(k) ta\(ta) tb\(tb)")
                }
            }
        }
    }

    func testCPUCheckAgreesWithTheKernelsFlags() throws {
        // A release build tuned for x86-64-v3 refuses to start when CPUID says the CPU lacks
        // it; Package.swift decides to tune from /proc/cpuinfo's flags. The two must agree, or
        // a build would refuse the very machine it was tuned on (or run where it cannot).
        #if os(Linux) && arch(x86_64)
        let info = try String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)
        let line = try XCTUnwrap(info.split(separator: "\n").first { $0.hasPrefix("flags") })
        let flags = Set(line.split(separator: " ").map(String.init))
        let v3 = ["avx", "avx2", "fma", "f16c", "movbe", "popcnt", "bmi1", "bmi2", "abm", "xsave"].allSatisfy(flags.contains)
        XCTAssertEqual(tensor_tools_cpu_has_x86_64_v3() == 1, v3, "CPUID and /proc/cpuinfo disagree about x86-64-v3")
        #endif
    }

    func testEscapingRemovesControlBytes() {
        XCTAssertEqual(escapedForDisplay("a\u{1B}[31mb\nc"), "a\\x1b[31mb\\nc")
        // Invisible characters are shown (a byte order mark read as 'neg' in a message), and the
        // printer leaves the backslashes of escapes already made alone.
        XCTAssertEqual(escapedForDisplay("\u{FEFF}neg\u{202E}"), "\\u{FEFF}neg\\u{202E}")
        XCTAssertEqual(escapedForDisplay("'1\\x00junk'\u{1}", backslash: false), "'1\\x00junk'\\x01")
        XCTAssertEqual(escapedForDisplay("a\\b"), "a\\\\b")
        // Every other mark that reorders or hides text: the Arabic letter mark, the soft hyphen,
        // word joiner, Mongolian vowel separator, combining grapheme joiner, a tag character,
        // the line separator; letters, accents and emoji stay.
        XCTAssertEqual(escapedForDisplay("a\u{061C}b\u{00AD}c\u{2060}d\u{180E}e\u{034F}f\u{E0041}g\u{2028}h"),
                       "a\\u{61C}b\\u{AD}c\\u{2060}d\\u{180E}e\\u{34F}f\\u{E0041}g\\u{2028}h")
        XCTAssertEqual(escapedForDisplay("café ΟΔΟΣ 日本 e\u{301} 👍🏽"), "café ΟΔΟΣ 日本 e\u{301} 👍🏽")
        XCTAssertFalse(escapedForDisplay("\u{7F}\u{9B}").unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F || $0.value == 0x9B })
    }
}
