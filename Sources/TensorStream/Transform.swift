// Field conversions applied batch by batch: scaling to f32 (normalize --scale). The transform
// is recorded in the output's metadata as `FIELD.normalize`, so a model trained on it can
// refuse data that was not prepared the same way.

import TensorCore

/// Divides the chosen fields by `divisor`, converting them to f32; other fields pass through.
public final class ScaleTransform {
    public let input: Schema
    public let output: Schema
    public let indices: [Int]
    public let divisor: Double
    private var buffers: [Int: AlignedBuffer] = [:]

    /// Throws a description of the problem when a field is missing.
    public init(schema: Schema, fields: [String], divisor: Double) throws {
        input = schema
        self.divisor = divisor
        var out = schema
        var idx: [Int] = []
        for f in fields {
            guard let i = schema.index(of: f) else {
                throw StreamError(input: "--field", place: "", .malformed("no field '\(f)' (fields: \(schema.fields.map(\.name).joined(separator: ", ")))"))
            }
            idx.append(i)
            out.fields[i].dtype = .f32
            let previous = schema.metadata("\(f).normalize")
            let text = "scale \(divisor)"
            out.setMetadata("\(f).normalize", previous.map { $0 + "; " + text } ?? text)
        }
        indices = idx
        output = out
    }

    /// The payloads of `batch` after the transform; returns the index of a field and sample
    /// holding a NaN or infinity, if any.
    public func apply(_ batch: Batch) -> (views: [UnsafeRawBufferPointer], bad: (field: Int, sample: Int)?) {
        var views = (0..<input.fields.count).map { batch.field($0) }
        let inv = Float(1 / divisor)
        for i in indices {
            let f = input.fields[i]
            let n = batch.count * f.shape.count
            let buf = buffers[i] ?? AlignedBuffer(capacity: n * 4)
            buffers[i] = buf
            buf.reserve(n * 4)
            buf.count = n * 4
            let out = buf.base.assumingMemoryBound(to: Float.self)
            let src = batch.field(i).baseAddress!
            switch f.dtype {
            case .u8:
                let s = src.assumingMemoryBound(to: UInt8.self)
                for k in 0..<n { out[k] = Float(s[k]) * inv }
            case .f32:
                let s = src.assumingMemoryBound(to: Float.self)
                for k in 0..<n {
                    let v = s[k]
                    guard v.isFinite else { return (views, (i, k / f.shape.count)) }
                    out[k] = v * inv
                }
            default:
                for k in 0..<n {
                    let v = UnsafeRawPointer(src).element(k, f.dtype)
                    guard v.isFinite else { return (views, (i, k / f.shape.count)) }
                    out[k] = Float(v / divisor)
                }
            }
            views[i] = UnsafeRawBufferPointer(start: buf.base, count: n * 4)
        }
        return (views, nil)
    }
}
