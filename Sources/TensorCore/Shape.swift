// Per-sample shapes and the checked arithmetic every size computation goes through.
// Sizes come from untrusted input, so nothing here multiplies without an overflow check.

/// Multiplies non-negative sizes, returning nil on overflow or when the product exceeds `limit`.
@inlinable
public func checkedProduct<S: Sequence>(_ values: S, limit: Int = Int.max) -> Int? where S.Element == Int {
    var p = 1
    for v in values {
        guard v >= 0 else { return nil }
        let (r, o) = p.multipliedReportingOverflow(by: v)
        guard !o, r <= limit else { return nil }
        p = r
    }
    return p
}

/// `a * b` or nil on overflow.
@inlinable
public func checkedMultiply(_ a: Int, _ b: Int) -> Int? {
    let (r, o) = a.multipliedReportingOverflow(by: b)
    return o ? nil : r
}

/// `a + b` or nil on overflow.
@inlinable
public func checkedAdd(_ a: Int, _ b: Int) -> Int? {
    let (r, o) = a.addingReportingOverflow(b)
    return o ? nil : r
}

/// Rounds `n` up to a multiple of `alignment` (a power of two), or nil on overflow.
@inlinable
public func roundUp(_ n: Int, to alignment: Int) -> Int? {
    guard let s = checkedAdd(n, alignment - 1) else { return nil }
    return s & ~(alignment - 1)
}

/// The shape of one sample: dimensions, row-major, the sample (batch) axis excluded.
public struct Shape: Equatable, Hashable, Sendable, CustomStringConvertible {
    public let dims: [Int]

    public init(_ dims: [Int]) { self.dims = dims }

    public var rank: Int { dims.count }

    /// Elements per sample; 1 for a scalar. Callers validate dims before building a Shape
    /// from input, so this product is known not to overflow (see `TensorStream.Limits`).
    public var count: Int { dims.reduce(1, *) }

    /// "28×28×1", or "scalar" for rank 0.
    public var description: String {
        dims.isEmpty ? "scalar" : dims.map(String.init).joined(separator: "×")
    }
}
