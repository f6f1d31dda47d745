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
