// Element types a tensor (and a tensor stream field) can hold, with their stream codes.
// Leaves out: half precision and bool, which no reader produces yet.

/// An element type, with the one-byte code the tensor stream stores.
public enum DType: UInt8, CaseIterable, Sendable, CustomStringConvertible {
    case u8 = 1, i8 = 2, i16 = 3, i32 = 4, i64 = 5, f32 = 6, f64 = 7

    /// Bytes per element.
    public var size: Int {
        switch self {
        case .u8, .i8: return 1
        case .i16: return 2
        case .i32, .f32: return 4
        case .i64, .f64: return 8
        }
    }

    public var isFloatingPoint: Bool { self == .f32 || self == .f64 }
    public var isInteger: Bool { !isFloatingPoint }

    /// The largest integer the type holds (exactly, for the floating point types).
    public var largestInteger: Int64 {
        switch self {
        case .u8: return Int64(UInt8.max)
        case .i8: return Int64(Int8.max)
        case .i16: return Int64(Int16.max)
        case .i32: return Int64(Int32.max)
        case .i64: return .max
        case .f32: return 1 << 24
        case .f64: return 1 << 53
        }
    }

    public var description: String {
        switch self {
        case .u8: return "u8"
        case .i8: return "i8"
        case .i16: return "i16"
        case .i32: return "i32"
        case .i64: return "i64"
        case .f32: return "f32"
        case .f64: return "f64"
        }
    }

    /// Parses the names `description` prints ("u8", "f32", …).
    public init?(name: String) {
        guard let t = DType.allCases.first(where: { $0.description == name }) else { return nil }
        self = t
    }
}

/// A floating point value as text that Python's `float()` and `numpy.loadtxt` read back: the
/// shortest digits that round-trip, `inf` and `-inf`, and every NaN as `nan` (Swift's own
/// description writes a NaN's sign and payload: `-nan`, `snan`, `nan(0x1)`).
public func decimalText<F: BinaryFloatingPoint & LosslessStringConvertible>(_ v: F) -> String {
    v.isNaN ? "nan" : v.description
}

/// The value of `s` when it is a decimal number as `decimalText` writes a finite one (digits,
/// a sign, a point, an exponent), nil otherwise: the readers of records this project writes use
/// it because `Double("0x1p3")` reads hex, and `Double("nan")` NaN.
public func decimalNumber<S: StringProtocol>(_ s: S) -> Double? {
    guard !s.isEmpty, s.allSatisfy({ "0123456789+-.e".contains($0) }), let v = Double(String(s)), v.isFinite else { return nil }
    return v
}

/// The value of `s` when it is a count written in ASCII digits alone (no sign, blank or
/// underscore, which `Int("+8")` would take), nil otherwise.
public func digitsNumber<S: StringProtocol>(_ s: S) -> Int? {
    guard !s.isEmpty, s.utf8.allSatisfy({ (48...57).contains($0) }) else { return nil }
    return Int(s)
}

extension UnsafeRawPointer {
    /// Element `i` of an array of `dtype` starting here, as Double (little-endian, unaligned).
    @inline(__always)
    public func element(_ i: Int, _ dtype: DType) -> Double {
        switch dtype {
        case .u8: return Double(load(fromByteOffset: i, as: UInt8.self))
        case .i8: return Double(load(fromByteOffset: i, as: Int8.self))
        case .i16: return Double(loadUnaligned(fromByteOffset: 2 * i, as: Int16.self))
        case .i32: return Double(loadUnaligned(fromByteOffset: 4 * i, as: Int32.self))
        case .i64: return Double(loadUnaligned(fromByteOffset: 8 * i, as: Int64.self))
        case .f32: return Double(loadUnaligned(fromByteOffset: 4 * i, as: Float.self))
        case .f64: return loadUnaligned(fromByteOffset: 8 * i, as: Double.self)
        }
    }

    /// Element `i` of an integer array of `dtype` starting here; nil for floating point types.
    @inline(__always)
    public func integerElement(_ i: Int, _ dtype: DType) -> Int64? {
        switch dtype {
        case .u8: return Int64(load(fromByteOffset: i, as: UInt8.self))
        case .i8: return Int64(load(fromByteOffset: i, as: Int8.self))
        case .i16: return Int64(loadUnaligned(fromByteOffset: 2 * i, as: Int16.self))
        case .i32: return Int64(loadUnaligned(fromByteOffset: 4 * i, as: Int32.self))
        case .i64: return loadUnaligned(fromByteOffset: 8 * i, as: Int64.self)
        case .f32, .f64: return nil
        }
    }
}

extension UnsafeMutableRawPointer {
    /// Stores `v` as element `i` of an integer array of `dtype` starting here (the caller
    /// keeps it within the type's range); floating point types take it as a number.
    @inline(__always)
    public func storeInteger(_ v: Int64, at i: Int, _ dtype: DType) {
        switch dtype {
        case .u8: storeBytes(of: UInt8(truncatingIfNeeded: v), toByteOffset: i, as: UInt8.self)
        case .i8: storeBytes(of: Int8(truncatingIfNeeded: v), toByteOffset: i, as: Int8.self)
        case .i16: storeBytes(of: Int16(truncatingIfNeeded: v), toByteOffset: 2 * i, as: Int16.self)
        case .i32: storeBytes(of: Int32(truncatingIfNeeded: v), toByteOffset: 4 * i, as: Int32.self)
        case .i64: storeBytes(of: v, toByteOffset: 8 * i, as: Int64.self)
        case .f32: storeBytes(of: Float(v), toByteOffset: 4 * i, as: Float.self)
        case .f64: storeBytes(of: Double(v), toByteOffset: 8 * i, as: Double.self)
        }
    }
}
