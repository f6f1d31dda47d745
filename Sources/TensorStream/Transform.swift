// Normalization as the stream records it: every transform normalize applies is affine per
// element, y = (x − shift) · mul, with shift and mul given once (a constant), per channel (the
// last axis) or per feature (every element of a sample). The record in `FIELD.normalize` is
// the composition of every transform applied since the raw data, so it says exactly how to
// turn raw input into what a model was trained on — predict applies it to raw input, and
// refuses input normalized any other way.

import TensorCore

/// One affine transform of a field, raw values to normalized values.
public struct NormalizeSpec: Equatable {
    /// What was done, for people ("scale 255", "standardize per-channel").
    public var description: String
    public var shift: [Double]
    public var mul: [Double]
    /// The dtype of the raw data the transform starts from, once it has been applied to a field.
    public var source: DType?

    public init(description: String, shift: [Double], mul: [Double], source: DType? = nil) {
        self.description = description
        self.shift = shift
        self.mul = mul
        self.source = source
    }

    /// Division by a constant.
    public static func scale(_ divisor: Double) -> NormalizeSpec {
        NormalizeSpec(description: "scale \(shortest(divisor))", shift: [0], mul: [1 / divisor])
    }

    /// The record's text: `DESCRIPTION; shift V,V,…; mul V,V,…[; from DTYPE]` with shortest
    /// round-trip numbers.
    public var encoded: String {
        let s = "\(description); shift \(shift.map(NormalizeSpec.shortest).joined(separator: ",")); mul \(mul.map(NormalizeSpec.shortest).joined(separator: ","))"
        return source.map { s + "; from \($0)" } ?? s
    }

    static func shortest(_ v: Double) -> String {
        v == v.rounded() && abs(v) < 1e15 ? String(Int64(v)) : "\(v)"
    }

    /// Parses a record; nil when it is not one.
    public init?(encoded s: String) {
        let parts = s.components(separatedBy: "; ")
        guard parts.count == 3 || parts.count == 4, parts[1].hasPrefix("shift "), parts[2].hasPrefix("mul ") else { return nil }
        var source: DType?
        if parts.count == 4 {
            guard parts[3].hasPrefix("from "), let t = DType(name: String(parts[3].dropFirst(5))) else { return nil }
            source = t
        }
        func numbers(_ p: String) -> [Double]? {
            guard let space = p.firstIndex(of: " ") else { return nil }
            // Decimal numbers only, as `encoded` writes them.
            let v = p[p.index(after: space)...].split(separator: ",", omittingEmptySubsequences: false).map(decimalNumber)
            guard !v.isEmpty, v.allSatisfy({ $0 != nil }) else { return nil }
            return v.map { $0! }
        }
        guard let sh = numbers(parts[1]), let mu = numbers(parts[2]), sh.count == mu.count,
              mu.allSatisfy({ $0 != 0 }) else { return nil }
        self.init(description: parts[0], shift: sh, mul: mu, source: source)
    }

    /// Whether the parameters fit a field of this shape: one value, one per channel (the last
    /// axis), or one per element.
    public func fits(_ shape: Shape) -> Bool {
        shift.count == 1 || shift.count == shape.count || shift.count == (shape.dims.last ?? 1)
    }

    /// The parameters repeated to `n` values (a constant to n, per-channel to per-element).
    func repeated(to n: Int) -> NormalizeSpec {
        let c = shift.count
        if c == n { return self }
        return NormalizeSpec(description: description, shift: (0..<n).map { shift[$0 % c] }, mul: (0..<n).map { mul[$0 % c] }, source: source)
    }

    /// The parameters repeated to a tile that a sample of `shape` is cut into: one value per
    /// element when there are as many, otherwise whole runs of the parameters (a constant, or
    /// one per channel) up to about 4096 values, so that an image of 8192×8192 does not cost
    /// two f64 arrays of its size.
    func tiled(for shape: Shape) -> NormalizeSpec {
        let c = shift.count, per = shape.count
        if c == per { return self }
        return repeated(to: max(1, min(per, c * max(1, 4096 / c))))
    }

    /// This transform applied after `first`: one affine map from `first`'s input.
    /// m2·(m1·(x − s1) − s2) = m1·m2·(x − (s1 + s2/m1)).
    public func after(_ first: NormalizeSpec, shape: Shape) -> NormalizeSpec {
        var a = first, b = self
        if a.shift.count != b.shift.count {
            let n = a.shift.count == 1 || b.shift.count == 1 ? max(a.shift.count, b.shift.count) : shape.count
            a = a.repeated(to: n)
            b = b.repeated(to: n)
        }
        let shift = zip(zip(a.shift, a.mul), b.shift).map { $0.0 + $1 / $0.1 }
        let mul = zip(a.mul, b.mul).map { $0 * $1 }
        return NormalizeSpec(description: first.description + ", then " + description, shift: shift, mul: mul, source: first.source)
    }
}

/// Applies normalization to chosen fields batch by batch, converting them to f32 or f64, and
/// records the composed transform in the output's metadata. Other fields pass through.
public final class FieldTransform {
    public let input: Schema
    public let output: Schema
    public let indices: [Int]
    /// Per field: the spec as given, and its shift and mul repeated to the tile a sample is
    /// worked through in (`NormalizeSpec.tiled`), made when the first batch comes.
    private let specs: [(spec: NormalizeSpec, shape: Shape)]
    private var shift64: [[Double]] = [], mul64: [[Double]] = []
    private var buffers: [Int: AlignedBuffer] = [:]

    /// `steps` maps field names to the transform to apply to them as they are now.
    /// Throws a `StreamError` naming `--field` when a field is missing or does not fit.
    public init(schema: Schema, steps: [(field: String, spec: NormalizeSpec)], dtype: DType = .f32) throws {
        // apply() writes Float or Double: an integer output would overrun its buffer.
        guard dtype == .f32 || dtype == .f64 else {
            throw StreamError(input: "--field", place: "", .malformed("normalized data is f32 or f64, not \(dtype)"))
        }
        input = schema
        var out = schema
        var idx: [Int] = [], specs: [(spec: NormalizeSpec, shape: Shape)] = []
        for (f, spec) in steps {
            guard let i = schema.index(of: f) else {
                throw StreamError(input: "--field", place: "", .malformed("no field '\(f)' (fields: \(schema.fields.map(\.name).joined(separator: ", ")))"))
            }
            let field = schema.fields[i]
            guard spec.fits(field.shape) else {
                throw StreamError(input: "--field", place: "", .malformed("field '\(f)' is \(field.shape), which \(spec.shift.count) parameters do not fit"))
            }
            idx.append(i)
            specs.append((spec, field.shape))
            out.fields[i].dtype = dtype
            var record = spec
            record.source = field.dtype
            if let previous = schema.metadata("\(f).normalize") {
                guard field.dtype.isFloatingPoint else {
                    throw StreamError(input: "--field", place: "", .malformed("field '\(f)' is \(field.dtype) but has a normalization record, which only f32 or f64 data has: the record belongs to other data"))
                }
                guard let p = NormalizeSpec(encoded: previous), p.fits(field.shape) else {
                    throw StreamError(input: "--field", place: "", .malformed("field '\(f)' has a normalization record normalize cannot read: \(previous.prefix(60))"))
                }
                record = spec.after(p, shape: field.shape)
            }
            if dtype == .f32, let tiny = spec.mul.first(where: { Float($0) == 0 }) {
                throw StreamError(input: "--field", place: "", .malformed("field '\(f)': its multiplier \(tiny) underflows f32, which would make every value 0; use --dtype f64"))
            }
            let text = record.encoded
            guard text.utf8.count <= Limits().maxValueBytes else {
                throw StreamError(input: "--field", place: "", .malformed("field '\(f)': its normalization record of \(record.shift.count) features would take \(text.utf8.count) bytes, more than the \(Limits().maxValueBytes) a stream's metadata value holds; normalize it per channel"))
            }
            out.setMetadata("\(f).normalize", text)
        }
        indices = idx
        self.specs = specs
        output = out
    }

    private func expand() {
        let tiles = specs.map { $0.spec.tiled(for: $0.shape) }
        shift64 = tiles.map(\.shift)
        mul64 = tiles.map(\.mul)
    }

    /// The payloads of `batch` after the transform; returns the index of a field and sample
    /// holding a NaN or infinity, if any.
    /// `bad` is the first sample that holds a NaN or infinity, or (`overflow`) that the
    /// transform takes out of the output type's range (normalize --scale 1e-320).
    /// Throws a `MemoryRoomError` naming `input` and the field when the converted batch is more
    /// than the process may hold.
    public func apply(_ batch: Batch, input name: String) throws -> (views: [UnsafeRawBufferPointer], bad: (field: Int, sample: Int, overflow: Bool)?) {
        var views = (0..<input.fields.count).map { batch.field($0) }
        if shift64.count < specs.count { expand() }
        for (j, i) in indices.enumerated() {
            let f = input.fields[i]
            let per = f.shape.count
            let n = batch.count * per
            let size = output.fields[i].dtype.size
            if n * size > (buffers[i]?.capacity ?? 0) {
                try SystemMemory.refuseUnlessRoom(Double(n * size), location: "\(name): field '\(f.name)'",
                                                  for: "to hold \(batch.count == 1 ? "a sample" : "a batch of \(batch.count) samples") as \(output.fields[i].dtype)")
            }
            let buf = buffers[i] ?? AlignedBuffer(capacity: n * size)
            buffers[i] = buf
            buf.reserve(n * size)
            buf.count = n * size
            let src = batch.field(i).baseAddress!
            let bad = shift64[j].withUnsafeBufferPointer { s in mul64[j].withUnsafeBufferPointer { m in
                size == 4
                    ? FieldTransform.run(src, f.dtype, batch.count, per, s, m, buf.base.assumingMemoryBound(to: Float.self))
                    : FieldTransform.run(src, f.dtype, batch.count, per, s, m, buf.base.assumingMemoryBound(to: Double.self))
            } }
            if let bad { return (views, (i, bad.0, bad.1)) }
            views[i] = UnsafeRawBufferPointer(start: buf.base, count: n * size)
        }
        return (views, nil)
    }

    /// out = (x − shift) · mul element by element, sample by sample and tile by tile (`s` and
    /// `m` hold one tile: a sample is their length at a time, the last piece shorter), computed
    /// in f64 and rounded once to T: an f32 output of i64 timestamps or of f64 values far from
    /// zero keeps their spread (x, shift and mul each rounded to f32 first would cancel to 0).
    /// Returns the first sample holding a non-finite value, or (true) whose output is not
    /// finite in T.
    @inline(__always)
    static func run<T: BinaryFloatingPoint>(_ src: UnsafeRawPointer, _ dtype: DType, _ samples: Int, _ per: Int,
                                            _ shift: UnsafeBufferPointer<Double>, _ mul: UnsafeBufferPointer<Double>, _ out: UnsafeMutablePointer<T>) -> (Int, Bool)? {
        let tile = shift.count, s = shift.baseAddress!, m = mul.baseAddress!
        // x · 0 is 0 for finite x and NaN otherwise: one test per sample, not per element.
        for k in 0..<samples {
            var probe: Float = 0
            for start in stride(from: 0, to: per, by: tile) {
                let len = min(tile, per - start), first = k * per + start
                let o = out + first
                switch dtype {
                case .u8:
                    let xs = src.assumingMemoryBound(to: UInt8.self) + first
                    for e in 0..<len { o[e] = T((Double(xs[e]) - s[e]) * m[e]) }
                case .f32:
                    let xs = src.assumingMemoryBound(to: Float.self) + first
                    for e in 0..<len {
                        let v = xs[e]
                        probe += v * 0
                        o[e] = T((Double(v) - s[e]) * m[e])
                    }
                default:
                    for e in 0..<len {
                        let v = src.element(first + e, dtype)
                        guard v.isFinite else { return (k, false) }
                        o[e] = T((v - s[e]) * m[e])
                    }
                }
            }
            if !probe.isFinite { return (k, false) }
            let o = out + k * per
            var out: T = 0
            for e in 0..<per { out += o[e] * 0 }
            if !out.isFinite { return (k, true) }
        }
        return nil
    }
}
