// CRC-32 (zlib's, ISO-HDLC), the checksum of the tensor stream and of gzip members.

import CZlib

/// Running CRC-32, identical to zlib's `crc32` and Python's `zlib.crc32`.
public struct CRC32: Sendable {
    public private(set) var value: UInt32 = 0

    public init() {}

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard var p = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return }
        var left = bytes.count
        var c = UInt(value)
        // zlib takes a uInt length: feed at most 1 GiB at a time.
        while left > 0 {
            let n = min(left, 1 << 30)
            c = crc32(c, p, uInt(n))
            p += n
            left -= n
        }
        value = UInt32(truncatingIfNeeded: c)
    }

    public mutating func update<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        let a = Array(bytes)
        a.withUnsafeBytes { update($0) }
    }

    public static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        var c = CRC32()
        c.update(bytes)
        return c.value
    }
}
