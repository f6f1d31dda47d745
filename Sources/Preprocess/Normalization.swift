// What normalize learns and saves: per-feature or per-channel statistics accumulated batch by
// batch (Welford's method in f64), the affine transform they define, the statistics file that
// carries it to test data, and the spill file that lets a stream larger than memory be
// normalized by statistics of its own.

import Foundation
import TensorCore
import TensorStream

/// How normalize maps values.
public enum NormalizeMethod: Equatable {
    /// Divide by a constant.
    case scale(Double)
    /// Subtract the mean, divide by the population standard deviation (scikit-learn's
    /// StandardScaler; a constant feature is only centred).
    case standardize
    /// Map [min, max] to [lo, hi] (scikit-learn's MinMaxScaler; a constant feature maps to lo).
    case minmax(lo: Double, hi: Double)

    public var needsStatistics: Bool {
        if case .scale = self { return false }
        return true
    }
}

/// Running statistics of a field, per element of a sample or per channel (the last axis).
/// Samples are taken a chunk at a time: the chunk's sums and squared deviations from its own
/// mean (two passes over a few hundred samples in cache), merged into the running moments with
/// Chan's formula, so that the loops vectorize and the result stays accurate over billions of
/// values. The moments are of each value less the slot's first value, so that data far from
/// zero (timestamps, 1e12 + noise) keeps its spread: summed raw, a chunk's mean would carry
/// the rounding of sums of 1e14.
public final class FieldStatistics {
    public let shape: Shape
    public let perChannel: Bool
    public let slots: Int
    private var counts: [Int]
    /// The first value of each slot, from which the moments are taken.
    private var origin: [Double]
    private var shiftedMean: [Double]
    private var m2: [Double]
    private var minimum: [Double]
    private var maximum: [Double]
    /// A chunk of `chunk` lines in f64, of which `filled` are taken, and per-slot scratch. A
    /// line is one value a slot: a sample is one line per feature, or a line a pixel per
    /// channel. Chunks are filled across samples and batches, so the statistics do not depend
    /// on where the stream's batches end (the same samples as one batch or two gave shifts an
    /// ulp apart), and an image of 8192×8192 is taken per channel in 2 MiB pieces, not copied
    /// whole.
    private let chunk: Int
    private var filled = 0
    private let rows: UnsafeMutablePointer<Double>
    private let sum: UnsafeMutablePointer<Double>, dev: UnsafeMutablePointer<Double>
    private let lo: UnsafeMutablePointer<Double>, hi: UnsafeMutablePointer<Double>

    public init(shape: Shape, perChannel: Bool) {
        self.shape = shape
        self.perChannel = perChannel
        slots = perChannel ? (shape.dims.last ?? 1) : shape.count
        counts = Array(repeating: 0, count: slots)
        origin = Array(repeating: 0, count: slots)
        shiftedMean = origin
        m2 = origin
        minimum = Array(repeating: .infinity, count: slots)
        maximum = Array(repeating: -.infinity, count: slots)
        // 256 samples, or as many as make 2 MiB of f64, in whole lines
        let lines = max(1, shape.count / max(1, slots))
        chunk = max(1, min(256 * lines, (1 << 18) / max(1, slots)))
        rows = .allocate(capacity: chunk * max(1, slots))
        sum = .allocate(capacity: slots)
        dev = .allocate(capacity: slots)
        lo = .allocate(capacity: slots)
        hi = .allocate(capacity: slots)
    }

    deinit {
        rows.deallocate()
        sum.deallocate()
        dev.deallocate()
        lo.deallocate()
        hi.deallocate()
    }

    /// Adds `count` samples; returns the index of the first sample holding a NaN or infinity.
    public func add(_ payload: UnsafeRawBufferPointer, dtype: DType, count: Int) -> Int? {
        let per = shape.count, width = slots
        guard per > 0 else { return nil }
        let base = payload.baseAddress!
        for k in 0..<count {
            // f64 copies of the sample's values, as many whole lines at a time as the chunk has
            // room for, the sample checked for non-finite values
            var probe = 0.0, done = 0
            while done < per {
                let n = min((chunk - filled) * width, per - done)
                let row = rows + filled * width, first = k * per + done
                switch dtype {
                case .u8:
                    let x = base.assumingMemoryBound(to: UInt8.self) + first
                    for e in 0..<n { row[e] = Double(x[e]) }
                case .f32:
                    let x = base.assumingMemoryBound(to: Float.self) + first
                    for e in 0..<n { row[e] = Double(x[e]); probe += row[e] * 0 }
                default:
                    for e in 0..<n { row[e] = base.element(first + e, dtype); probe += row[e] * 0 }
                }
                filled += n / width
                done += n
                if filled == chunk { flush() }
            }
            if !probe.isFinite { return k }
        }
        return nil
    }

    /// Merges the lines taken into the current chunk.
    private func flush() {
        guard filled > 0 else { return }
        merge(lines: filled)
        filled = 0
    }

    /// The most features per-feature statistics can have: the record that carries them
    /// (`FIELD.normalize`) is one metadata value holding two numbers a feature, each up to 24
    /// characters and a comma.
    public static var maxFeatures: Int { Limits().maxValueBytes / 50 }

    /// Means.
    public var mean: [Double] {
        flush()
        return (0..<slots).map { origin[$0] + shiftedMean[$0] }
    }

    /// Merges the chunk's first `lines` lines into the running moments.
    private func merge(lines: Int) {
        let s = slots
        if counts.first == 0 { origin = Array(UnsafeBufferPointer(start: rows, count: s)) }
        sum.update(repeating: 0, count: s)
        dev.update(repeating: 0, count: s)
        lo.update(repeating: .infinity, count: s)
        hi.update(repeating: -.infinity, count: s)
        for l in 0..<lines {
            let row = rows + l * s
            for e in 0..<s {
                let v = row[e]
                sum[e] += v - origin[e]
                lo[e] = Swift.min(lo[e], v)
                hi[e] = Swift.max(hi[e], v)
            }
        }
        let nb = Double(lines)
        for e in 0..<s { sum[e] /= nb }  // now the chunk's mean, less the origin
        for l in 0..<lines {
            let row = rows + l * s
            for e in 0..<s {
                let d = (row[e] - origin[e]) - sum[e]
                dev[e] += d * d
            }
        }
        for e in 0..<s {
            let na = Double(counts[e]), total = na + nb
            let delta = sum[e] - shiftedMean[e]
            shiftedMean[e] += delta * nb / total
            m2[e] += dev[e] + delta * delta * na * nb / total
            counts[e] += lines
            minimum[e] = Swift.min(minimum[e], lo[e])
            maximum[e] = Swift.max(maximum[e], hi[e])
        }
    }

    /// Population standard deviations.
    public var std: [Double] {
        flush()
        return (0..<slots).map { counts[$0] > 0 ? (m2[$0] / Double(counts[$0])).squareRoot() : 0 }
    }

    /// The transform `method` defines with these statistics.
    public func spec(_ method: NormalizeMethod, samples: Int) -> NormalizeSpec {
        flush()
        let how = perChannel ? "per-channel" : "per-feature"
        switch method {
        case .scale(let d):
            return .scale(d)
        case .standardize:
            // A feature is constant, and only centred, when its variance is within what summing
            // in double precision leaves of a constant (scikit-learn's _is_constant_feature
            // bound): 0.1 a thousand times has a variance of 1e-33, not 0. A variance that
            // overflows gives a mul of NaN, which the transform refuses.
            let mean = self.mean
            let mul = (0..<slots).map { j -> Double in
                let n = Double(counts[j])
                guard n > 0 else { return 1 }
                let v = m2[j] / n
                guard v.isFinite else { return .nan }
                let e = Double.ulpOfOne
                return v <= n * e * v + (n * mean[j] * e) * (n * mean[j] * e) ? 1 : 1 / v.squareRoot()
            }
            return NormalizeSpec(description: "standardize \(how) over \(samples) samples", shift: mean, mul: mul)
        case .minmax(let lo, let hi):
            let ranges = (0..<slots).map { maximum[$0] > minimum[$0] ? maximum[$0] - minimum[$0] : 1 }
            return NormalizeSpec(description: "minmax \(how) to \(lo)…\(hi) over \(samples) samples",
                                 // lo · (range / (hi − lo)), not (lo · range) / (hi − lo), which
                                 // overflows for --range 1e307,1.0000001e307
                                 shift: (0..<slots).map { minimum[$0] - lo * (ranges[$0] / (hi - lo)) },
                                 mul: ranges.map { (hi - lo) / $0 })
        }
    }
}

/// A statistics file: a tensor stream with no samples whose schema lists the normalized fields
/// as they were (name, dtype, shape) and whose metadata holds, per field, the transform
/// (`FIELD.normalize.step`) and the normalization the input already had
/// (`FIELD.normalize.input`, absent for raw data).
public struct StatisticsFile {
    public struct Entry: Equatable {
        public var field: Field
        public var input: String?
        public var step: NormalizeSpec
        public init(field: Field, input: String?, step: NormalizeSpec) {
            self.field = field
            self.input = input
            self.step = step
        }
    }
    public var entries: [Entry]

    public init(entries: [Entry]) { self.entries = entries }

    public func write(to sink: ByteSink) throws {
        var schema = Schema(fields: entries.map(\.field))
        schema.setMetadata("normalize.version", "1")
        for e in entries {
            schema.setMetadata("\(e.field.name).normalize.step", e.step.encoded)
            if let i = e.input { schema.setMetadata("\(e.field.name).normalize.input", i) }
        }
        let w = try StreamWriter(sink: sink, schema: schema)
        try w.finish()
    }

    /// Reads and checks a statistics file; errors name `source`.
    public static func read(_ source: ByteSource) throws -> StatisticsFile {
        let reader = try StreamReader(source: source)
        while try reader.next() != nil {}
        let s = reader.schema
        func bad(_ why: String) -> StreamError { StreamError(input: source.name, place: "", .malformed("not a statistics file: " + why)) }
        guard s.metadata("normalize.version") == "1" else { throw bad("no normalize.version 1") }
        guard reader.samplesRead == 0, !s.fields.isEmpty else { throw bad("it holds samples or no fields") }
        var entries: [Entry] = []
        for f in s.fields {
            guard let text = s.metadata("\(f.name).normalize.step"), let step = NormalizeSpec(encoded: text), step.fits(f.shape) else {
                throw bad("field '\(f.name)' has no valid transform")
            }
            entries.append(Entry(field: f, input: s.metadata("\(f.name).normalize.input"), step: step))
        }
        return StatisticsFile(entries: entries)
    }
}
