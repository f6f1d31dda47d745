// `tensor-load --resize`: images resampled to one size as Pillow's Image.resize does with its
// BILINEAR filter (Resample.c), to the byte: a triangle filter widened by the scale when
// shrinking (so every source pixel counts, as an area average would), plain bilinear
// interpolation with pixel centres at +0.5 when growing; separable, the horizontal pass first,
// each pass rounded to u8 with 22-bit fixed-point weights. Channels are resampled independently
// (Pillow premultiplies alpha for RGBA; we do not).

/// A width and height in pixels, as `WIDTHxHEIGHT` is written (ImageMagick's geometry).
public struct ImageSize: Equatable, Sendable {
    public let width: Int, height: Int
    /// The largest side `--resize` takes.
    public static let maxSide = 16384

    public init(width: Int, height: Int) {
        self.width = width
        self.height = height
    }

    /// Parses `WxH` (also `W×H`); nil when it is not two whole numbers in 1...maxSide.
    public init?(parsing text: String) {
        let parts = text.split(separator: "x", omittingEmptySubsequences: false).flatMap { $0.split(separator: "×", omittingEmptySubsequences: false) }
        guard parts.count == 2, parts.allSatisfy({ !$0.isEmpty && $0.allSatisfy { $0.isASCII && $0.isNumber } }),
              let w = Int(parts[0]), let h = Int(parts[1]), (1...Self.maxSide).contains(w), (1...Self.maxSide).contains(h) else { return nil }
        self.init(width: w, height: h)
    }
}

enum Resampler {
    static let precisionBits = 32 - 8 - 2

    /// Per output position: the first input index, the number of taps, and the fixed-point
    /// weights (Pillow's precompute_coeffs and normalize_coeffs_8bpc).
    struct Taps {
        var first: [Int] = [], count: [Int] = []
        var weights: [Int32] = []
        var stride = 0
    }

    static func taps(from input: Int, to output: Int) -> Taps {
        let scale = Double(input) / Double(output)
        let filterScale = max(scale, 1)
        let support = filterScale  // the triangle's support, 1, widened
        let inverse = 1 / filterScale  // multiplied by, as Pillow does (not divided: the last bit)
        let stride = Int(support.rounded(.up)) * 2 + 1
        var t = Taps(weights: [Int32](repeating: 0, count: output * stride), stride: stride)
        var w = [Double](repeating: 0, count: stride)
        for o in 0..<output {
            let centre = (Double(o) + 0.5) * scale
            let lo = max(Int(centre - support + 0.5), 0)  // truncation toward zero, as C's (int)
            let n = min(Int(centre + support + 0.5), input) - lo
            var sum = 0.0
            for k in 0..<n {
                let x = abs((Double(k + lo) - centre + 0.5) * inverse)
                w[k] = x < 1 ? 1 - x : 0
                sum += w[k]
            }
            for k in 0..<n {
                let v = sum != 0 ? w[k] / sum : w[k]
                let f = v * Double(1 << precisionBits)
                t.weights[o * stride + k] = Int32(v < 0 ? -0.5 + f : 0.5 + f)
            }
            t.first.append(lo)
            t.count.append(n)
        }
        return t
    }

    @inline(__always) static func clip8(_ s: Int32) -> UInt8 {
        let v = s >> Int32(precisionBits)
        return v < 0 ? 0 : v > 255 ? 255 : UInt8(v)
    }

    /// `pixels` (height × width × channels, u8) resampled to `size`.
    static func resize(_ pixels: [UInt8], width: Int, height: Int, channels c: Int, to size: ImageSize) -> [UInt8] {
        let ow = size.width, oh = size.height
        if ow == width && oh == height { return pixels }
        let half = Int32(1 << (precisionBits - 1))
        // Horizontal pass, over the rows the vertical pass will read (all of them here).
        var mid = pixels, midWidth = width
        if ow != width {
            let t = taps(from: width, to: ow)
            mid = [UInt8](repeating: 0, count: height * ow * c)
            pixels.withUnsafeBufferPointer { src in
                mid.withUnsafeMutableBufferPointer { dst in
                    for y in 0..<height {
                        let row = y * width * c, out = y * ow * c
                        for x in 0..<ow {
                            let lo = t.first[x], wb = x * t.stride
                            for ch in 0..<c {
                                var s = half
                                for k in 0..<t.count[x] { s &+= Int32(src[row + (lo + k) * c + ch]) &* t.weights[wb + k] }
                                dst[out + x * c + ch] = clip8(s)
                            }
                        }
                    }
                }
            }
            midWidth = ow
        }
        guard oh != height else { return mid }
        let t = taps(from: height, to: oh)
        var out = [UInt8](repeating: 0, count: oh * midWidth * c)
        let rowBytes = midWidth * c
        mid.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for y in 0..<oh {
                    let lo = t.first[y], wb = y * t.stride
                    for i in 0..<rowBytes {
                        var s = half
                        for k in 0..<t.count[y] { s &+= Int32(src[(lo + k) * rowBytes + i]) &* t.weights[wb + k] }
                        dst[y * rowBytes + i] = clip8(s)
                    }
                }
            }
        }
        return out
    }
}

extension DecodedImage {
    /// The image resampled to `size` (itself when it has that size already). Refused (70) when
    /// the passes need more memory than the process may use: a 1×67M-pixel PNG grown to
    /// 16384 columns would need terabytes between the passes.
    public func resized(to size: ImageSize?, name: String) throws -> DecodedImage {
        guard let size, size.width != width || size.height != height else { return self }
        func taps(_ from: Int, _ to: Int) -> Double { Double(to) * (2 * (Double(from) / Double(to)).rounded(.up) + 1) * 4 }
        let need = Double(height) * Double(size.width) * Double(channels) + Double(size.height) * Double(size.width) * Double(channels)
            + taps(width, size.width) + taps(height, size.height)
        try refuseUnlessRoom(need, name: name, for: "to resize \(width)×\(height) to \(size.width)×\(size.height)")
        return DecodedImage(width: size.width, height: size.height, channels: channels,
                            pixels: Resampler.resize(pixels, width: width, height: height, channels: channels, to: size), notice: notice)
    }
}
