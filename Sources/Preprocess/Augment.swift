// What augment does to one image: flips, an integer shift with padding (torchvision's
// RandomCrop(size, padding=k)), rotation and zoom resampled bilinearly, brightness and
// contrast, Gaussian noise and cutout (random erasing), each with a probability. Images are
// channels-last, H×W or H×W×C, of any dtype; the work is done in Double, so moves by whole
// pixels (flips, shifts, rotations by multiples of 90°) are exact, and integer dtypes are
// rounded and clamped to their range at the end.
//
// Every sample draws from its own generator, seeded by (seed, pass, sample index): the
// output does not depend on how the input was cut into batches.

import Foundation
import TensorCore
import TensorStream

/// The operations and their parameters. An operation with its amount at zero (or nil) is off.
public struct AugmentConfig: Equatable {
    /// Probabilities of a horizontal (left–right) and a vertical (top–bottom) flip.
    public var hflip = 0.0
    public var vflip = 0.0
    /// Maximum shift in pixels along each axis, drawn uniformly from −k…k.
    public var shift = 0
    /// Rotation in degrees, drawn uniformly from this range; positive is counter-clockwise.
    public var rotate: ClosedRange<Double>?
    /// Zoom factor, drawn uniformly from this range (> 1 enlarges).
    public var zoom: ClosedRange<Double>?
    /// Brightness: values multiplied by a factor from 1−b…1+b (torchvision's ColorJitter).
    public var brightness = 0.0
    /// Contrast: distance from the image's mean multiplied by a factor from 1−c…1+c.
    public var contrast = 0.0
    /// Standard deviation of additive Gaussian noise, in the data's units.
    public var noise = 0.0
    /// Side of the square cutout (random erasing), in pixels.
    public var cutout = 0
    /// The value of pixels shifted, rotated or zoomed in from outside, and of the cutout.
    public var fill = 0.0
    /// Probability of each operation other than the flips; 1 unless set.
    public var probability: [Operation: Double] = [:]

    public enum Operation: String, CaseIterable {
        case shift, rotate, zoom, brightness, contrast, noise, cutout
    }

    public init() {}

    public func p(_ op: Operation) -> Double { probability[op] ?? 1 }

    /// Whether any operation is on.
    public var isIdentity: Bool {
        hflip == 0 && vflip == 0 && shift == 0 && rotate == nil && zoom == nil && brightness == 0
            && contrast == 0 && noise == 0 && cutout == 0
    }

    /// A one-line account, for the stream's metadata.
    public var description: String {
        var parts: [String] = []
        // 15 significant digits: the range of --zoom 0.7 is 1 − 0.7 = 0.30000000000000004…1.7 in
        // binary, which the record shows as the 0.3 the user gave.
        func num(_ v: Double) -> String { String(format: "%.15g", v) }
        func pr(_ op: Operation) -> String { p(op) == 1 ? "" : " p=\(num(p(op)))" }
        if hflip > 0 { parts.append("hflip p=\(num(hflip))") }
        if vflip > 0 { parts.append("vflip p=\(num(vflip))") }
        if shift > 0 { parts.append("shift \(shift)" + pr(.shift)) }
        if let r = rotate { parts.append("rotate \(num(r.lowerBound))…\(num(r.upperBound))" + pr(.rotate)) }
        if let z = zoom { parts.append("zoom \(num(z.lowerBound))…\(num(z.upperBound))" + pr(.zoom)) }
        if brightness > 0 { parts.append("brightness \(num(brightness))" + pr(.brightness)) }
        if contrast > 0 { parts.append("contrast \(num(contrast))" + pr(.contrast)) }
        if noise > 0 { parts.append("noise \(num(noise))" + pr(.noise)) }
        if cutout > 0 { parts.append("cutout \(cutout)" + pr(.cutout)) }
        if fill != 0 { parts.append("fill \(num(fill))") }
        return parts.isEmpty ? "none" : parts.joined(separator: ", ")
    }
}

/// The geometry of an image field.
public struct ImageShape: Equatable {
    public let height: Int, width: Int, channels: Int
    public var count: Int { height * width * channels }

    /// H×W or H×W×C; nil for any other shape.
    public init?(_ shape: Shape) {
        let d = shape.dims
        guard d.count == 2 || d.count == 3, d.allSatisfy({ $0 > 0 }) else { return nil }
        height = d[0]
        width = d[1]
        channels = d.count == 3 ? d[2] : 1
    }
}

/// Augments samples of one image field.
public final class Augmenter {
    public let config: AugmentConfig
    public let image: ImageShape
    public let dtype: DType
    /// The image being worked on, and room for the next step's result (raw buffers: arrays in
    /// a class pay an exclusivity check per access).
    private var a: UnsafeMutablePointer<Double>
    private var b: UnsafeMutablePointer<Double>

    /// Throws a `MemoryRoomError` naming `location` when the two working copies (16 bytes a
    /// value) are more than the process may hold. A configuration that changes nothing
    /// (`--shuffle` or `--repeat` alone) copies samples as they are, and has no working copies.
    public init(config: AugmentConfig, image: ImageShape, dtype: DType, location: String = "image") throws {
        let values = config.isIdentity ? 0 : image.count
        if values > 0 {
            try SystemMemory.refuseUnlessRoom(16 * Double(values), location: location,
                                              for: "to augment an image of \(image.height)×\(image.width)×\(image.channels) (two copies in f64)")
        }
        self.config = config
        self.image = image
        self.dtype = dtype
        a = .allocate(capacity: values)
        a.initialize(repeating: 0, count: values)
        b = .allocate(capacity: values)
        b.initialize(repeating: 0, count: values)
    }

    deinit {
        a.deallocate()
        b.deallocate()
    }

    /// The generator of one sample's random choices.
    public static func generator(seed: UInt64, pass: Int, sample: Int) -> SeededRandom {
        SeededRandom(seed: seed ^ (UInt64(truncatingIfNeeded: pass) &* 0xD1B5_4A32_D192_ED03)
                          ^ (UInt64(truncatingIfNeeded: sample) &* 0x9E37_79B9_7F4A_7C15))
    }

    /// Augments the sample at `src` into `dst` (both `image.count` elements of `dtype`); false
    /// when the input holds a NaN or infinity (refused whether or not a shift or a cutout would
    /// have hidden it), or a value came out NaN or infinite (huge --brightness, --contrast or
    /// --noise on floats), for the caller to refuse.
    @discardableResult
    public func apply(_ src: UnsafeRawPointer, to dst: UnsafeMutableRawPointer, rng: inout SeededRandom) -> Bool {
        let n = image.count, c = config
        // The choices up to the noise are drawn first, in the order they always were; the
        // noise's values, and the cutout's choice after them, as the work reaches them. A
        // sample nothing happens to (the unflipped half under --hflip 0.5, every sample under
        // --shuffle alone) is then copied as it is, not taken through f64 and back.
        let hflip = c.hflip > 0 && rng.nextUnitDouble() < c.hflip
        let vflip = c.vflip > 0 && rng.nextUnitDouble() < c.vflip
        var move: (dy: Int, dx: Int)?
        if c.shift > 0, rng.nextUnitDouble() < c.p(.shift) {
            let span = UInt64(2 * c.shift + 1)
            let dy = Int(rng.next() % span) - c.shift
            move = (dy, Int(rng.next() % span) - c.shift)
        }
        var angle = 0.0, scale = 1.0
        if let r = c.rotate, rng.nextUnitDouble() < c.p(.rotate) { angle = draw(r, &rng) }
        if let z = c.zoom, rng.nextUnitDouble() < c.p(.zoom) { scale = draw(z, &rng) }
        var brightness: Double?, contrast: Double?
        if c.brightness > 0, rng.nextUnitDouble() < c.p(.brightness) { brightness = draw(max(0, 1 - c.brightness)...(1 + c.brightness), &rng) }
        if c.contrast > 0, rng.nextUnitDouble() < c.p(.contrast) { contrast = draw(max(0, 1 - c.contrast)...(1 + c.contrast), &rng) }
        let noise = c.noise > 0 && rng.nextUnitDouble() < c.p(.noise)
        var cutout = noise ? nil : drawCutout(&rng)
        if !hflip && !vflip && move == nil && angle == 0 && scale == 1 && brightness == nil && contrast == nil && !noise && cutout == nil {
            guard allFinite(src) else { return false }
            dst.copyMemory(from: src, byteCount: n * dtype.size)
            return true
        }
        load(src)
        if dtype == .f32 || dtype == .f64 {
            var probe = 0.0
            for i in 0..<n { probe += a[i] * 0 }
            if !probe.isFinite { return false }
        }
        if hflip { flip(horizontal: true) }
        if vflip { flip(horizontal: false) }
        if let m = move { shift(dy: m.dy, dx: m.dx) }
        if angle != 0 || scale != 1 { resample(degrees: angle, scale: scale) }
        if let f = brightness {
            let a = self.a
            for i in 0..<n { a[i] *= f }
        }
        if let f = contrast {
            var mean = 0.0
            let a = self.a
            for i in 0..<n { mean += a[i] }
            mean /= Double(n)
            for i in 0..<n { a[i] = mean + (a[i] - mean) * f }
        }
        if noise {
            let a = self.a
            var i = 0
            while i < n {
                let (g0, g1) = rng.nextGaussianPair()
                a[i] += c.noise * g0
                if i + 1 < n { a[i + 1] += c.noise * g1 }
                i += 2
            }
            cutout = drawCutout(&rng)
        }
        if let (top, left) = cutout { erase(top: top, left: left, side: c.cutout) }
        return store(dst)
    }

    /// Whether the cutout is made, and where its square's top left corner is.
    func drawCutout(_ rng: inout SeededRandom) -> (Int, Int)? {
        let c = config
        guard c.cutout > 0, rng.nextUnitDouble() < c.p(.cutout) else { return nil }
        let cy = Int(rng.next() % UInt64(image.height)), cx = Int(rng.next() % UInt64(image.width))
        return (cy - c.cutout / 2, cx - c.cutout / 2)
    }

    /// Whether a sample holds no NaN or infinity (integers always do).
    func allFinite(_ src: UnsafeRawPointer) -> Bool {
        switch dtype {
        case .f32: return Augmenter.allFinite(src, image.count, as: SIMD8<Float>.self)
        case .f64: return Augmenter.allFinite(src, image.count, as: SIMD4<Double>.self)
        default: return true
        }
    }

    /// x · 0 is 0 for finite x and NaN otherwise: `n` values summed so, a vector at a time.
    @inline(__always)
    static func allFinite<V: SIMD>(_ src: UnsafeRawPointer, _ n: Int, as: V.Type) -> Bool where V.Scalar: BinaryFloatingPoint {
        let size = MemoryLayout<V.Scalar>.size
        var lanes = V(), i = 0
        while i + V.scalarCount <= n {
            lanes += src.loadUnaligned(fromByteOffset: size * i, as: V.self) * 0
            i += V.scalarCount
        }
        var probe = lanes.sum()
        while i < n {
            probe += src.loadUnaligned(fromByteOffset: size * i, as: V.Scalar.self) * 0
            i += 1
        }
        return probe.isFinite
    }

    func load(_ src: UnsafeRawPointer) {
        let n = image.count, a = self.a
        switch dtype {
        case .u8:
            let x = src.assumingMemoryBound(to: UInt8.self)
            for i in 0..<n { a[i] = Double(x[i]) }
        case .f32:
            let x = src.assumingMemoryBound(to: Float.self)
            for i in 0..<n { a[i] = Double(x[i]) }
        default:
            for i in 0..<n { a[i] = src.element(i, dtype) }
        }
    }

    func draw(_ r: ClosedRange<Double>, _ rng: inout SeededRandom) -> Double {
        r.lowerBound + (r.upperBound - r.lowerBound) * rng.nextUnitDouble()
    }

    func flip(horizontal: Bool) {
        let (h, w, ch) = (image.height, image.width, image.channels)
        let a = self.a, b = self.b
        for y in 0..<h {
            for x in 0..<w {
                let (sy, sx) = horizontal ? (y, w - 1 - x) : (h - 1 - y, x)
                for k in 0..<ch { b[(y * w + x) * ch + k] = a[(sy * w + sx) * ch + k] }
            }
        }
        swap(&self.a, &self.b)
    }

    /// Moves the image by (dy, dx) pixels; what comes in from outside is `fill`.
    func shift(dy: Int, dx: Int) {
        let (h, w, ch) = (image.height, image.width, image.channels)
        let a = self.a, b = self.b, fill = config.fill
        for y in 0..<h {
            for x in 0..<w {
                let sy = y - dy, sx = x - dx
                let inside = sy >= 0 && sy < h && sx >= 0 && sx < w
                for k in 0..<ch { b[(y * w + x) * ch + k] = inside ? a[(sy * w + sx) * ch + k] : fill }
            }
        }
        swap(&self.a, &self.b)
    }

    /// Rotates counter-clockwise by `degrees` and zooms by `scale` about the image's centre,
    /// sampling bilinearly; multiples of 90° use exact sines, so they move whole pixels.
    func resample(degrees: Double, scale: Double) {
        let (h, w, ch) = (image.height, image.width, image.channels)
        let degrees = degrees.truncatingRemainder(dividingBy: 360)  // exact; any finite angle
        var cosA = Foundation.cos(degrees * .pi / 180), sinA = Foundation.sin(degrees * .pi / 180)
        if degrees.truncatingRemainder(dividingBy: 90) == 0 {
            let q = ((Int(degrees / 90) % 4) + 4) % 4
            (cosA, sinA) = [(1.0, 0.0), (0, 1), (-1, 0), (0, -1)][q]
        }
        let cy = Double(h - 1) / 2, cx = Double(w - 1) / 2
        let a = self.a, b = self.b, fill = config.fill
        // The inverse rotation, unzoomed, as one matrix: a multiplication a term instead of a
        // division a pixel.
        let c = cosA / scale, s = sinA / scale
        for y in 0..<h {
            let v = cy - Double(y)
            for x in 0..<w {
                // the source of (x, y): the inverse rotation, in y-up coordinates, then unzoom
                let u = Double(x) - cx
                let sx = cx + (u * c + v * s), sy = cy - (v * c - u * s)
                let out = b + (y &* w &+ x) &* ch
                // A source off the image (far off, under a tiny zoom) is the fill: in range of
                // Int before it is converted.
                guard sx > -2, sy > -2, sx < Double(w) + 1, sy < Double(h) + 1 else {
                    for k in 0..<ch { out[k] = fill }
                    continue
                }
                let x0 = Int(sx.rounded(.down)), y0 = Int(sy.rounded(.down))
                let fx = sx - Double(x0), fy = sy - Double(y0)
                if fx == 0 && fy == 0 && x0 >= 0 && y0 >= 0 && x0 < w && y0 < h {
                    let p = a + (y0 &* w &+ x0) &* ch
                    for k in 0..<ch { out[k] = p[k] }
                } else if x0 >= 0 && y0 >= 0 && x0 &+ 1 < w && y0 &+ 1 < h {
                    // all four taps inside: no checks
                    let p00 = a + (y0 &* w &+ x0) &* ch, p01 = p00 + ch, p10 = p00 + w &* ch, p11 = p10 + ch
                    for k in 0..<ch {
                        out[k] = (1 - fy) * ((1 - fx) * p00[k] + fx * p01[k]) + fy * ((1 - fx) * p10[k] + fx * p11[k])
                    }
                } else {
                    for k in 0..<ch {
                        func at(_ yy: Int, _ xx: Int) -> Double {
                            yy >= 0 && yy < h && xx >= 0 && xx < w ? a[(yy * w + xx) * ch + k] : fill
                        }
                        out[k] = fx == 0 && fy == 0 ? at(y0, x0)
                            : (1 - fy) * ((1 - fx) * at(y0, x0) + fx * at(y0, x0 + 1))
                              + fy * ((1 - fx) * at(y0 + 1, x0) + fx * at(y0 + 1, x0 + 1))
                    }
                }
            }
        }
        swap(&self.a, &self.b)
    }

    /// Sets a side×side square (clipped to the image) to `fill`, in every channel.
    func erase(top: Int, left: Int, side: Int) {
        let (h, w, ch) = (image.height, image.width, image.channels)
        let a = self.a
        for y in max(0, top)..<max(max(0, top), min(h, top + side)) {
            for x in max(0, left)..<max(max(0, left), min(w, left + side)) {
                for k in 0..<ch { a[(y * w + x) * ch + k] = config.fill }
            }
        }
    }

    /// Writes the values as `dtype` (integers rounded and clamped); false if one is NaN (stored
    /// as 0 in an integer type, where converting it would trap) or, for floats, not finite.
    func store(_ dst: UnsafeMutableRawPointer) -> Bool {
        let n = image.count, a = self.a
        var finite = true
        func clamp(_ v: Double, _ lo: Double, _ hi: Double) -> Double {
            guard !v.isNaN else { finite = false; return 0 }
            return Swift.min(Swift.max(v.rounded(), lo), hi)
        }
        if dtype == .f32 { for i in 0..<n where !Float(a[i]).isFinite { finite = false; break } }
        if dtype == .f64 { for i in 0..<n where !a[i].isFinite { finite = false; break } }
        switch dtype {
        case .u8: for i in 0..<n { dst.storeBytes(of: UInt8(clamp(a[i], 0, 255)), toByteOffset: i, as: UInt8.self) }
        case .i8: for i in 0..<n { dst.storeBytes(of: Int8(clamp(a[i], -128, 127)), toByteOffset: i, as: Int8.self) }
        case .i16: for i in 0..<n { dst.storeBytes(of: Int16(clamp(a[i], -32768, 32767)), toByteOffset: 2 * i, as: Int16.self) }
        case .i32: for i in 0..<n { dst.storeBytes(of: Int32(clamp(a[i], -2_147_483_648, 2_147_483_647)), toByteOffset: 4 * i, as: Int32.self) }
        case .i64: for i in 0..<n { dst.storeBytes(of: Int64(clamp(a[i], -9_223_372_036_854_775_808, 9_223_372_036_854_774_784)), toByteOffset: 8 * i, as: Int64.self) }
        case .f32: for i in 0..<n { dst.storeBytes(of: Float(a[i]), toByteOffset: 4 * i, as: Float.self) }
        case .f64: for i in 0..<n { dst.storeBytes(of: a[i], toByteOffset: 8 * i, as: Double.self) }
        }
        return finite
    }
}

/// A bounded shuffle buffer of whole samples (every field's bytes, back to back): holds up to
/// `capacity` samples; once full, each new sample replaces one drawn at random, which goes out.
public final class ShuffleBuffer {
    public let capacity: Int
    public let sampleBytes: Int
    private var rows: [UInt8]
    public private(set) var count = 0
    private var rng: SeededRandom

    public init(capacity: Int, sampleBytes: Int, seed: UInt64) {
        self.capacity = max(1, capacity)
        self.sampleBytes = sampleBytes
        rows = []
        rng = SeededRandom(seed: seed ^ 0x5348_5546_464C_4521)
    }

    /// Adds the sample `fill` writes into the given row; `emit` gets a sample that leaves.
    public func add(_ fill: (UnsafeMutableRawPointer) -> Void, emit: (UnsafeRawPointer) throws -> Void) rethrows {
        if count < capacity {
            // grow in steps, so a small stream never costs the whole capacity
            if rows.count < (count + 1) * sampleBytes {
                rows.append(contentsOf: repeatElement(0, count: max(sampleBytes, min(rows.count, (capacity - count) * sampleBytes))))
            }
            rows.withUnsafeMutableBytes { fill($0.baseAddress! + count * sampleBytes) }
            count += 1
            return
        }
        let j = Int(rng.next() % UInt64(capacity))
        try rows.withUnsafeMutableBytes { r in
            let row = r.baseAddress! + j * sampleBytes
            try emit(UnsafeRawPointer(row))
            fill(row)
        }
    }

    /// Emits what is left, in random order, and empties the buffer.
    public func drain(_ emit: (UnsafeRawPointer) throws -> Void) rethrows {
        while count > 0 {
            let j = Int(rng.next() % UInt64(count))
            try rows.withUnsafeMutableBytes { r in
                let base = r.baseAddress!
                try emit(UnsafeRawPointer(base + j * sampleBytes))
                // the last row takes the emitted one's place
                if j != count - 1 { (base + j * sampleBytes).copyMemory(from: base + (count - 1) * sampleBytes, byteCount: sampleBytes) }
            }
            count -= 1
        }
    }
}
