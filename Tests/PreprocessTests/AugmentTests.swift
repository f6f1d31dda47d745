// augment's geometry on known images: two flips are the identity, a shift by k moves a marked
// pixel by k, rotation by 90° is a transpose and a flip, zoom 1 changes nothing; cutout erases
// a square; the shuffle buffer loses and duplicates nothing.

@testable import Preprocess
import TensorCore
import TensorStream
import XCTest

final class AugmentTests: XCTestCase {
    /// A random image of `dtype`, as bytes, and the generator's values as Doubles.
    func image(_ shape: ImageShape, _ dtype: DType, seed: UInt64 = 3) -> [UInt8] {
        var rng = SeededRandom(seed: seed)
        var bytes = [UInt8](repeating: 0, count: shape.count * dtype.size)
        bytes.withUnsafeMutableBytes { p in
            for i in 0..<shape.count {
                let v = Double(rng.next() % 256)
                switch dtype {
                case .u8: p.storeBytes(of: UInt8(v), toByteOffset: i, as: UInt8.self)
                case .f32: p.storeBytes(of: Float(v) / 7, toByteOffset: 4 * i, as: Float.self)
                default: p.storeBytes(of: v / 7, toByteOffset: 8 * i, as: Double.self)
                }
            }
        }
        return bytes
    }

    func augment(_ src: [UInt8], _ config: AugmentConfig, _ shape: ImageShape, _ dtype: DType, seed: UInt64 = 1) throws -> [UInt8] {
        let a = try Augmenter(config: config, image: shape, dtype: dtype)
        var out = [UInt8](repeating: 0, count: src.count)
        var rng = SeededRandom(seed: seed)
        src.withUnsafeBytes { s in out.withUnsafeMutableBytes { a.apply(s.baseAddress!, to: $0.baseAddress!, rng: &rng) } }
        return out
    }

    /// The image with `map(y, x) -> (sy, sx)` giving each output pixel's source.
    func remap(_ src: [UInt8], _ s: ImageShape, _ dtype: DType, _ map: (Int, Int) -> (Int, Int)) -> [UInt8] {
        var out = src
        let px = s.channels * dtype.size
        for y in 0..<s.height {
            for x in 0..<s.width {
                let (sy, sx) = map(y, x)
                for b in 0..<px { out[(y * s.width + x) * px + b] = src[(sy * s.width + sx) * px + b] }
            }
        }
        return out
    }

    func testTwoFlipsAreTheIdentity() throws {
        let s = ImageShape(Shape([5, 7, 3]))!
        for dtype in [DType.u8, .f32, .f64] {
            let img = image(s, dtype)
            for flips in [(1.0, 0.0), (0.0, 1.0)] {
                var c = AugmentConfig()
                (c.hflip, c.vflip) = flips
                let once = try augment(img, c, s, dtype)
                XCTAssertNotEqual(once, img, "one flip changes a random image")
                XCTAssertEqual(try augment(once, c, s, dtype), img, "\(dtype) \(flips)")
            }
            var h = AugmentConfig()
            h.hflip = 1
            XCTAssertEqual(try augment(img, h, s, dtype), remap(img, s, dtype) { ($0, s.width - 1 - $1) }, "hflip mirrors left and right")
        }
    }

    func testShiftMovesAMarkedPixelByK() throws {
        let s = ImageShape(Shape([9, 8]))!
        var img = [UInt8](repeating: 0, count: s.count)
        img[4 * 8 + 3] = 200
        var moves = AugmentConfig()
        moves.shift = 4
        let a = try Augmenter(config: moves, image: s, dtype: .u8)
        for (dy, dx) in [(2, -3), (0, 1), (-4, 0), (3, 4)] {
            var out = [UInt8](repeating: 0, count: s.count)
            img.withUnsafeBytes { a.load($0.baseAddress!) }
            a.shift(dy: dy, dx: dx)
            out.withUnsafeMutableBytes { a.store($0.baseAddress!) }
            var want = [UInt8](repeating: 0, count: s.count)
            want[(4 + dy) * 8 + 3 + dx] = 200
            XCTAssertEqual(out, want, "shift (\(dy), \(dx))")
        }
        // Random shifts of at most k: the pixel moves by −k…k on each axis, every offset occurs.
        var c = AugmentConfig()
        c.shift = 2
        var seen = Set<[Int]>()
        for seed in 0..<400 {
            let out = try augment(img, c, s, .u8, seed: UInt64(seed))
            let at = out.firstIndex(of: 200)!
            XCTAssertEqual(out.filter { $0 != 0 }.count, 1)
            let (dy, dx) = (at / 8 - 4, at % 8 - 3)
            XCTAssertTrue(abs(dy) <= 2 && abs(dx) <= 2, "moved by (\(dy), \(dx))")
            seen.insert([dy, dx])
        }
        XCTAssertEqual(seen.count, 25, "every offset in −2…2 × −2…2 drawn")
    }

    func testRotationBy90IsATransposeAndAFlip() throws {
        let s = ImageShape(Shape([6, 6, 2]))!
        for dtype in [DType.u8, .f32] {
            let img = image(s, dtype)
            var c = AugmentConfig()
            c.rotate = 90...90
            // counter-clockwise: the transpose flipped top to bottom
            XCTAssertEqual(try augment(img, c, s, dtype), remap(img, s, dtype) { (y, x) in (x, s.height - 1 - y) }, "\(dtype) +90°")
            c.rotate = -90 ... -90
            XCTAssertEqual(try augment(img, c, s, dtype), remap(img, s, dtype) { (y, x) in (s.width - 1 - x, y) }, "\(dtype) −90°")
            c.rotate = 180...180
            XCTAssertEqual(try augment(img, c, s, dtype), remap(img, s, dtype) { (y, x) in (s.height - 1 - y, s.width - 1 - x) }, "\(dtype) 180°")
            var z = AugmentConfig()
            z.zoom = 1...1
            z.rotate = 0...0
            XCTAssertEqual(try augment(img, z, s, dtype), img, "no rotation and zoom 1 change nothing")
        }
    }

    func testBilinearRotationOfAConstantImageIsConstantInside() throws {
        // A constant image rotated by 45° stays that constant wherever the source lies inside.
        let s = ImageShape(Shape([9, 9]))!
        let img = [Float](repeating: 2.5, count: 81).withUnsafeBytes { Array($0) }
        var c = AugmentConfig()
        c.rotate = 45...45
        let out = try augment(img, c, s, .f32).withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        XCTAssertEqual(out[4 * 9 + 4], 2.5, accuracy: 1e-6, "the centre")
        XCTAssertEqual(out[4 * 9 + 2], 2.5, accuracy: 1e-6)
        XCTAssertLessThan(out[0], 2.5, "a corner comes from outside the image, partly fill")
    }

    func testRotationAndZoomAreBilinearSamplingOfTheInverseMap() throws {
        // Against a plain reference of the documented map: output pixel (x, y) samples the
        // input at the inverse rotation of its offset from the centre, divided by the zoom,
        // bilinearly, with the fill outside. The fast path (four taps inside, unchecked) and
        // the border path both answer; f64 so no rounding hides a wrong tap.
        let s = ImageShape(Shape([11, 8, 3]))!
        var rng = SeededRandom(seed: 5)
        let x = (0..<s.count).map { _ in rng.nextUnitDouble() * 100 }
        let img = x.withUnsafeBytes { Array($0) }
        for (degrees, zoom) in [(15.0, 1.0), (-33.0, 0.8), (70.0, 1.3), (0.0, 0.6)] {
            var c = AugmentConfig()
            c.rotate = degrees...degrees
            c.zoom = zoom...zoom
            c.fill = -7
            let out = try augment(img, c, s, .f64).withUnsafeBytes { Array($0.bindMemory(to: Double.self)) }
            let (h, w, ch) = (s.height, s.width, s.channels)
            let t = degrees * .pi / 180, cy = Double(h - 1) / 2, cx = Double(w - 1) / 2
            func at(_ yy: Int, _ xx: Int, _ k: Int) -> Double { yy >= 0 && yy < h && xx >= 0 && xx < w ? x[(yy * w + xx) * ch + k] : -7 }
            for yy in 0..<h {
                for xx in 0..<w {
                    let u = Double(xx) - cx, v = cy - Double(yy)
                    let sx = cx + (u * cos(t) + v * sin(t)) / zoom, sy = cy - (-u * sin(t) + v * cos(t)) / zoom
                    let x0 = Int(sx.rounded(.down)), y0 = Int(sy.rounded(.down)), fx = sx - Double(x0), fy = sy - Double(y0)
                    for k in 0..<ch {
                        let want = (1 - fy) * ((1 - fx) * at(y0, x0, k) + fx * at(y0, x0 + 1, k)) + fy * ((1 - fx) * at(y0 + 1, x0, k) + fx * at(y0 + 1, x0 + 1, k))
                        XCTAssertEqual(out[(yy * w + xx) * ch + k], want, accuracy: 1e-9, "\(degrees)° zoom \(zoom) at (\(xx), \(yy), \(k))")
                    }
                }
            }
        }
    }

    func testNoiseIsGaussianWithTheStandardDeviationGiven() throws {
        // --noise σ adds independent N(0, σ²) values: mean, spread, the share within 1σ and
        // 2σ, and neighbours (which come from the same draw of a pair) uncorrelated.
        let s = ImageShape(Shape([100, 101]))!
        let img = [Double](repeating: 10, count: s.count).withUnsafeBytes { Array($0) }
        var c = AugmentConfig()
        c.noise = 2
        var e: [Double] = []
        for seed in 0..<4 {
            e += try augment(img, c, s, .f64, seed: UInt64(seed)).withUnsafeBytes { $0.bindMemory(to: Double.self).map { $0 - 10 } }
        }
        let n = Double(e.count)
        let mean = e.reduce(0, +) / n
        let sd = (e.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / n).squareRoot()
        XCTAssertEqual(mean, 0, accuracy: 4 * 2 / n.squareRoot())
        XCTAssertEqual(sd, 2, accuracy: 0.02)
        XCTAssertEqual(Double(e.filter { abs($0) < 2 }.count) / n, 0.6827, accuracy: 0.01)
        XCTAssertEqual(Double(e.filter { abs($0) < 4 }.count) / n, 0.9545, accuracy: 0.005)
        let lag = zip(e.dropLast(), e.dropFirst()).map { $0 * $1 }.reduce(0, +) / (n - 1) / (sd * sd)
        XCTAssertEqual(lag, 0, accuracy: 0.02)
    }

    func testCutoutErasesOneClippedSquare() throws {
        let s = ImageShape(Shape([10, 10]))!
        let img = [UInt8](repeating: 9, count: 100)
        var c = AugmentConfig()
        c.cutout = 4
        var sizes = Set<Int>()
        for seed in 0..<200 {
            let out = try augment(img, c, s, .u8, seed: UInt64(seed))
            let erased = out.indices.filter { out[$0] == 0 }
            XCTAssertTrue(out.allSatisfy { $0 == 0 || $0 == 9 })
            XCTAssertTrue((4...16).contains(erased.count), "\(erased.count) pixels erased")
            let rows = Set(erased.map { $0 / 10 }), cols = Set(erased.map { $0 % 10 })
            XCTAssertEqual(rows.count * cols.count, erased.count, "a rectangle")
            sizes.insert(erased.count)
        }
        XCTAssertTrue(sizes.contains(16), "whole squares inside the image")
        XCTAssertTrue(sizes.count > 1, "squares clipped at the edges too")
    }

    func testIntegerImagesAreRoundedAndClamped() throws {
        let s = ImageShape(Shape([4, 4]))!
        let img: [UInt8] = Array(repeating: 250, count: 8) + Array(repeating: 3, count: 8)
        var c = AugmentConfig()
        c.noise = 50
        let out = try augment(img, c, s, .u8)
        XCTAssertTrue(out.contains(255) && out.contains(0), "clamped to 0…255, not wrapped: \(out)")
    }

    func testBrightnessContrastZoomFillAndProbabilities() throws {
        let s = ImageShape(Shape([6, 6]))!
        let img = (0..<36).map { Float($0 % 7) + 1 }.withUnsafeBytes { Array($0) }
        func floats(_ b: [UInt8]) -> [Double] { b.withUnsafeBytes { $0.bindMemory(to: Float.self).map(Double.init) } }
        let x = floats(img)
        for seed in 0..<20 {
            // brightness: every value times one factor from 1−b…1+b
            var c = AugmentConfig()
            c.brightness = 0.3
            let b = floats(try augment(img, c, s, .f32, seed: UInt64(seed)))
            let f = b[0] / x[0]
            XCTAssertTrue((0.7...1.3).contains(f), "factor \(f)")
            for i in 0..<36 { XCTAssertEqual(b[i], x[i] * f, accuracy: 1e-5) }
            // contrast: the mean kept, distances from it times one factor from 1−c…1+c
            c = AugmentConfig()
            c.contrast = 0.5
            let k = floats(try augment(img, c, s, .f32, seed: UInt64(seed)))
            let m = x.reduce(0, +) / 36
            let g = (k[0] - m) / (x[0] - m)
            XCTAssertTrue((0.5...1.5).contains(g), "factor \(g)")
            XCTAssertEqual(k.reduce(0, +) / 36, m, accuracy: 1e-4)
            for i in 0..<36 { XCTAssertEqual(k[i] - m, (x[i] - m) * g, accuracy: 1e-4) }
        }
        // zoom 0.5 shrinks the image about its centre: the border comes from outside (fill)
        var z = AugmentConfig()
        z.zoom = 0.5...0.5
        z.fill = -1
        let zoomed = floats(try augment(img, z, s, .f32))
        XCTAssertEqual(zoomed[0], -1, "a corner is fill")
        XCTAssertTrue(zoomed[2 * 6 + 2] > 0, "the centre is image")
        // shift fills with --fill; probability 0 turns an operation off
        var sh = AugmentConfig()
        sh.shift = 3
        sh.fill = 9
        var filled = 0
        for seed in 0..<20 { filled += floats(try augment(img, sh, s, .f32, seed: UInt64(seed))).filter { $0 == 9 }.count }
        XCTAssertGreaterThan(filled, 0, "pixels shifted in take the fill value")
        sh.probability[.shift] = 0
        for seed in 0..<20 { XCTAssertEqual(try augment(img, sh, s, .f32, seed: UInt64(seed)), img, "p=0: never applied") }
    }

    func testTheRecordShowsTheNumbersGiven() {
        var c = AugmentConfig()
        c.zoom = (1 - 0.7)...(1 + 0.7)
        c.rotate = -12.5...12.5
        c.hflip = 0.5
        c.brightness = 0.1
        c.shift = 2
        c.fill = 1e-20
        XCTAssertEqual(c.description, "hflip p=0.5, shift 2, rotate -12.5…12.5, zoom 0.3…1.7, brightness 0.1, fill 1e-20")
    }

    /// The working copies are made only for a configuration that changes something: an image
    /// far beyond memory can be shuffled (`--shuffle` alone copies), not flipped.
    func testOnlyAnAugmenterThatChangesImagesNeedsRoomForThem() throws {
        let huge = ImageShape(Shape([100_000, 100_000, 3]))!
        XCTAssertNoThrow(try Augmenter(config: AugmentConfig(), image: huge, dtype: .u8))
        var flip = AugmentConfig()
        flip.hflip = 0.5
        XCTAssertThrowsError(try Augmenter(config: flip, image: huge, dtype: .u8, location: "big.tns: field 'x'")) { e in
            XCTAssertTrue("\(e)".contains("to augment an image of 100000×100000×3"), "\(e)")
        }
        // Without working copies, a sample is copied as it is, and a NaN still refused.
        let s = ImageShape(Shape([3, 5]))!
        let img: [Float] = (0..<15).map { Float($0) - 7.5 }
        let a = try Augmenter(config: AugmentConfig(), image: s, dtype: .f32)
        var out = [Float](repeating: 0, count: 15), rng = SeededRandom(seed: 3)
        XCTAssertTrue(img.withUnsafeBytes { i in out.withUnsafeMutableBytes { a.apply(i.baseAddress!, to: $0.baseAddress!, rng: &rng) } })
        XCTAssertEqual(out, img)
        var bad = img
        bad[7] = .nan
        XCTAssertFalse(bad.withUnsafeBytes { i in out.withUnsafeMutableBytes { a.apply(i.baseAddress!, to: $0.baseAddress!, rng: &rng) } })
    }

    func testShuffleBufferEmitsEverySampleOnce() throws {
        let b = ShuffleBuffer(capacity: 16, sampleBytes: 8, seed: 5)
        var out: [Int64] = []
        let emit = { (p: UnsafeRawPointer) in out.append(p.load(as: Int64.self)) }
        for i in 0..<100 { b.add({ $0.storeBytes(of: Int64(i), as: Int64.self) }, emit: emit) }
        XCTAssertEqual(out.count, 100 - 16)
        b.drain(emit)
        XCTAssertEqual(out.sorted(), (0..<100).map(Int64.init))
        XCTAssertNotEqual(out, (0..<100).map(Int64.init), "shuffled")
        // A buffer of 16 moves a sample back by at most 16 places before it leaves… not
        // forward: nothing comes out before it went in.
        for (pos, v) in out.enumerated() { XCTAssertLessThanOrEqual(Int(v), pos + 16) }
    }

    func testShapesThatAreNotImagesAreRefused() {
        XCTAssertNil(ImageShape(Shape([784])))
        XCTAssertNil(ImageShape(Shape([])))
        XCTAssertNil(ImageShape(Shape([2, 3, 4, 5])))
        XCTAssertEqual(ImageShape(Shape([28, 28]))?.channels, 1)
        XCTAssertEqual(ImageShape(Shape([32, 32, 3]))?.count, 3072)
    }
}
