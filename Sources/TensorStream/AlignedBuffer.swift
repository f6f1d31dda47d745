// A growable byte buffer whose start is 64-byte aligned, so batch payloads read into it keep
// the alignment the stream format promises. Owned by readers and writers and reused between
// batches; nothing in the steady state allocates.

/// A heap buffer aligned to 64 bytes that grows on demand and keeps its contents when it does.
public final class AlignedBuffer {
    public private(set) var base: UnsafeMutableRawPointer
    public private(set) var capacity: Int
    /// Bytes in use; callers set it.
    public var count: Int = 0

    public static let alignment = 64

    public init(capacity: Int = 0) {
        self.capacity = max(capacity, AlignedBuffer.alignment)
        base = UnsafeMutableRawPointer.allocate(byteCount: self.capacity, alignment: AlignedBuffer.alignment)
    }

    deinit { base.deallocate() }

    /// The capacity `reserve(n)` would allocate, or 0 when it would not allocate.
    public func growth(for n: Int) -> Int {
        guard n > capacity else { return 0 }
        var c = capacity
        while c < n { c = c > Int.max / 2 ? n : max(c * 2, n) }
        return c
    }

    /// Makes room for at least `n` bytes, keeping the first `count` bytes.
    public func reserve(_ n: Int) {
        let c = growth(for: n)
        guard c > 0 else { return }
        let p = UnsafeMutableRawPointer.allocate(byteCount: c, alignment: AlignedBuffer.alignment)
        if count > 0 { p.copyMemory(from: base, byteCount: count) }
        base.deallocate()
        base = p
        capacity = c
    }

    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }
}
