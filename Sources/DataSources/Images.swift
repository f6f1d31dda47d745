// PNG (libpng's sequential reader, CPNG) and JPEG (TurboJPEG) images as u8 H×W×C samples, C 1, 3 or 4.
// One file is one sample; a directory with one sub-directory per class is a labelled data set,
// classes sorted by name, files sorted within each, decoded one at a time (flat memory).
// Gray images stay one channel and colour ones three (four with alpha), unless --channels says.

import CPNG
import CTurboJPEG
import Foundation
import TensorCore
import TensorStream

public struct DecodedImage {
    public var width: Int, height: Int, channels: Int
    public var pixels: [UInt8]
    /// What the decoder skipped in an image it still read whole (a JPEG's stray bytes before
    /// its end marker), for a warning.
    public var notice: String?

    public init(width: Int, height: Int, channels: Int, pixels: [UInt8], notice: String? = nil) {
        (self.width, self.height, self.channels, self.pixels, self.notice) = (width, height, channels, pixels, notice)
    }

    /// A PNG's expanded samples (`fileChannels` of gray, gray+alpha, RGB or RGBA; 16-bit ones in
    /// native order when `wide`) as `channels` (default: the file's, gray+alpha as RGBA), chosen
    /// as PIL's convert does: alpha dropped, colour to gray as ITU-R 601 luma.
    init(fromPNG raw: [UInt8], width w: Int, height h: Int, fileChannels fc: Int, wide: Bool, channels: Int?) {
        let hasColor = fc >= 3, hasAlpha = fc == 2 || fc == 4
        let c = channels ?? (hasAlpha ? 4 : hasColor ? 3 : 1)
        // 16 bits to 8 by rounding, v·255/65535 (Pillow takes the high byte: tensor-load(1)).
        let samples = !wide ? raw : raw.withUnsafeBytes { b in
            (0..<b.count / 2).map { i in UInt8((UInt32(b.load(fromByteOffset: 2 * i, as: UInt16.self)) * 255 + 32767) / 65535) }
        }
        func sample(_ i: Int) -> UInt8 { samples[i] }
        var out = [UInt8](repeating: 0, count: w * h * c)
        for i in 0..<w * h {
            let gray = sample(fc * i)
            let (red, green, blue) = hasColor ? (gray, sample(fc * i + 1), sample(fc * i + 2)) : (gray, gray, gray)
            let alpha = hasAlpha ? sample(fc * i + fc - 1) : 255
            switch c {
            case 4: (out[4 * i], out[4 * i + 1], out[4 * i + 2], out[4 * i + 3]) = (red, green, blue, alpha)
            case 3: (out[3 * i], out[3 * i + 1], out[3 * i + 2]) = (red, green, blue)
            default: out[i] = hasColor ? ImageCodec.luma(red, green, blue) : gray  // gray stored as gray: its own value
            }
        }
        self.init(width: w, height: h, channels: c, pixels: out)
    }
}

public enum ImageCodec {
    public static let maxFileBytes = 256 << 20
    public static let maxPixels = 1 << 26

    /// Decodes PNG or JPEG bytes; `channels` forces the channel count.
    public static func decode(_ data: [UInt8], name: String, channels: Int?) throws -> DecodedImage {
        if data.count >= 8, data[0] == 0x89, data[1] == 0x50, data[2] == 0x4E, data[3] == 0x47 {
            return try decodePNG(data, name: name, channels: channels)
        }
        if data.count >= 3, data[0] == 0xFF, data[1] == 0xD8, data[2] == 0xFF {
            return try decodeJPEG(data, name: name, channels: channels)
        }
        throw DataError(name, "not a PNG or JPEG image (looks like \(describeMagic(Array(data.prefix(300)))))")
    }

    static func decodePNG(_ data: [UInt8], name: String, channels: Int?) throws -> DecodedImage {
        // libpng's sequential reader (CPNG): the values as stored, no gamma applied (PIL,
        // torchvision and Keras read them so), palettes and tRNS expanded to colour and alpha.
        try data.withUnsafeBufferPointer { bytes in
            var r = cpng_reader()
            defer { cpng_end(&r) }
            func message() -> String {
                withUnsafeBytes(of: r.message) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
            }
            guard cpng_begin(&r, bytes.baseAddress, bytes.count) != 0 else { throw DataError(name, "bad PNG: \(message())") }
            let w = Int(r.width), h = Int(r.height), fc = Int(r.channels), wide = r.depth == 16
            guard let n = checkedProduct([w, h, fc, wide ? 2 : 1]), w * h <= maxPixels else {
                throw DataError(name, "PNG of \(w)×\(h) pixels is too large")
            }
            // Deflate shrinks at most 1032 times: a 69-byte file that declares 8192×8192
            // 16-bit RGBA is damaged, and refused before its 512 MiB are allocated.
            guard Double(n) <= Double(bytes.count) * 1032 + Double(1 << 16) else {
                throw DataError(name, "PNG of \(w)×\(h) pixels cannot be held in \(bytes.count) bytes (deflate shrinks at most 1032 times): truncated or damaged")
            }
            // The samples as stored, then the pixels converted beside them.
            try refuseUnlessRoom(Double(n) + Double(w * h * 4), name: name, for: "to decode a \(w)×\(h) image")
            var raw = [UInt8](repeating: 0, count: n)
            guard raw.withUnsafeMutableBytes({ cpng_finish(&r, $0.baseAddress!.assumingMemoryBound(to: UInt8.self)) }) != 0 else {
                throw DataError(name, "bad PNG: \(message())")
            }
            return DecodedImage(fromPNG: raw, width: w, height: h, fileChannels: fc, wide: wide, channels: channels)
        }
    }

    /// PIL's L = R·299/1000 + G·587/1000 + B·114/1000, in its fixed point (Convert.c, L24), so
    /// that the values are PIL's to the last one.
    @inline(__always)
    static func luma(_ red: UInt8, _ green: UInt8, _ blue: UInt8) -> UInt8 {
        let sum: Int = 19595 * Int(red) + 38470 * Int(green) + 7471 * Int(blue)
        return UInt8((sum + 0x8000) >> 16)
    }

    /// A CMYK JPEG's samples as Pillow reads them: stored inverted (Adobe's convention, which
    /// Pillow assumes for every CMYK JPEG), then R = (255 − K′) − C′·(255 − K′)/255 with the
    /// inverted C′ and K′, in its MULDIV255 rounding (Convert.c, cmyk2rgb); one channel is the
    /// luma of that, four adds an opaque alpha.
    static func rgb(fromCMYK cmyk: [UInt8], channels c: Int) -> [UInt8] {
        let n = cmyk.count / 4
        var out = [UInt8](repeating: 255, count: n * c)
        for i in 0..<n {
            let k = Int(cmyk[4 * i + 3])  // 255 − K′
            func channel(_ stored: UInt8) -> UInt8 {
                let t = (255 - Int(stored)) * k + 128
                return UInt8(k - (((t >> 8) + t) >> 8))
            }
            let (red, green, blue) = (channel(cmyk[4 * i]), channel(cmyk[4 * i + 1]), channel(cmyk[4 * i + 2]))
            if c == 1 {
                out[i] = luma(red, green, blue)
            } else {
                (out[c * i], out[c * i + 1], out[c * i + 2]) = (red, green, blue)
            }
        }
        return out
    }

    static func decodeJPEG(_ data: [UInt8], name: String, channels: Int?) throws -> DecodedImage {
        guard let tj = tjInitDecompress() else { throw DataError(name, "cannot start the JPEG decoder", kind: .internal) }
        defer { tjDestroy(tj) }
        var w: Int32 = 0, h: Int32 = 0, sub: Int32 = 0, space: Int32 = 0
        let ok = data.withUnsafeBytes {
            tjDecompressHeader3(tj, $0.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt($0.count), &w, &h, &sub, &space)
        }
        guard ok == 0 else { throw DataError(name, "bad JPEG: \(String(cString: tjGetErrorStr2(tj)))") }
        let cmyk = space == Int32(TJCS_CMYK.rawValue) || space == Int32(TJCS_YCCK.rawValue)
        let gray = space == Int32(TJCS_GRAY.rawValue)
        let c = channels ?? (gray ? 1 : 3)
        // Colour to one channel is PIL's luma of the decoded RGB, not the decoder's Y (which
        // differs where RGB was clamped: by up to 37 on saturated images). CMYK is decoded as
        // stored and converted below.
        let dc = cmyk ? 4 : c == 1 && !gray ? 3 : c
        let fmt: TJPF = cmyk ? TJPF_CMYK : dc == 1 ? TJPF_GRAY : dc == 3 ? TJPF_RGB : TJPF_RGBA
        guard w > 0, h > 0, let px = checkedProduct([Int(w), Int(h), dc]), Int(w) * Int(h) <= maxPixels else {
            throw DataError(name, "JPEG of \(w)×\(h) pixels is out of range")
        }
        try refuseUnlessRoom(Double(px) + Double(Int(w) * Int(h) * 4), name: name, for: "to decode a \(w)×\(h) image")
        var out = [UInt8](repeating: 0, count: px)
        func decompress(_ flags: Int32) -> Int32 {
            data.withUnsafeBytes { d in
                out.withUnsafeMutableBytes { o in
                    tjDecompress2(tj, d.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt(d.count),
                                  o.baseAddress!.assumingMemoryBound(to: UInt8.self), w, Int32(Int(w) * dc), h, fmt.rawValue, flags)
                }
            }
        }
        // The decoder's warnings mean lost data (a truncated file, a bad Huffman code: the rest
        // is filled in gray), so the first one stops it and the image is refused. One is not:
        // stray bytes before the end marker, which many cameras and editors leave and Pillow
        // skips. It is the last thing read, so nothing can have gone wrong before it (it was the
        // first warning) or after it: the image is decoded again past it, with a notice. (The
        // decoder keeps the first warning's message, and still returns -1 for it.)
        var notice: String?
        if decompress(TJFLAG_LIMITSCANS | TJFLAG_STOPONWARNING) != 0 {
            let message = String(cString: tjGetErrorStr2(tj))
            func onlyThatWarning() -> Bool {
                decompress(TJFLAG_LIMITSCANS) == 0
                    || tjGetErrorCode(tj) == TJERR_WARNING.rawValue && String(cString: tjGetErrorStr2(tj)) == message
            }
            guard tjGetErrorCode(tj) == TJERR_WARNING.rawValue, message.hasSuffix("extraneous bytes before marker 0xd9"),
                  onlyThatWarning() else {
                throw DataError(name, "bad JPEG: \(message)")
            }
            notice = message
        }
        if cmyk {
            out = rgb(fromCMYK: out, channels: c)
        } else if dc != c {
            out = (0..<Int(w) * Int(h)).map { i in luma(out[3 * i], out[3 * i + 1], out[3 * i + 2]) }
        }
        return DecodedImage(width: Int(w), height: Int(h), channels: c, pixels: out, notice: notice)
    }

    /// Reads a whole file (bounded) from a source.
    static func readAll(_ src: ByteSource) throws -> [UInt8] {
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = try chunk.withUnsafeMutableBytes { try src.read(into: $0.baseAddress!, count: $0.count) }
            if n == 0 { break }
            out += chunk.prefix(n)
            if out.count > maxFileBytes { throw DataError(src.name, "image file larger than \(maxFileBytes) bytes") }
        }
        return out
    }

    /// Encodes u8 pixels as PNG (tensor-show --png).
    public static func encodePNG(width: Int, height: Int, channels: Int, pixels: [UInt8]) throws -> [UInt8] {
        var img = png_image()
        img.version = UInt32(PNG_IMAGE_VERSION)
        img.width = UInt32(width)
        img.height = UInt32(height)
        img.format = channels == 1 ? UInt32(PNG_FORMAT_GRAY) : channels == 3 ? UInt32(PNG_FORMAT_RGB) : (UInt32(PNG_FORMAT_RGB) | UInt32(PNG_FORMAT_FLAG_ALPHA))
        var size = 0
        var ok = pixels.withUnsafeBytes { png_image_write_to_memory(&img, nil, &size, 0, $0.baseAddress, Int32(width * channels), nil) }
        guard ok != 0 else { throw DataError("png", "cannot encode PNG", kind: .internal) }
        var out = [UInt8](repeating: 0, count: size)
        ok = pixels.withUnsafeBytes { p in out.withUnsafeMutableBytes { o in
            png_image_write_to_memory(&img, o.baseAddress, &size, 0, p.baseAddress, Int32(width * channels), nil) } }
        guard ok != 0 else { throw DataError("png", "cannot encode PNG", kind: .internal) }
        out.removeLast(out.count - size)  // in place: a copy would hold the image twice
        return out
    }
}

/// One image file as one sample.
public final class ImageFileSource: SampleSource {
    public let name: String
    public let fields: [Field]
    public let metadata: [(key: String, value: String)]
    public var declaredCount: Int? { 1 }
    public let notices: [String]
    private let image: DecodedImage
    private var done = false

    public init(source: ByteSource, field: String, channels: Int?, size: ImageSize? = nil) throws {
        name = source.name
        image = try ImageCodec.decode(try ImageCodec.readAll(source), name: name, channels: channels).resized(to: size, name: name)
        notices = image.notice.map { [source.name + ": " + $0] } ?? []
        fields = [Field(name: field, dtype: .u8, shape: Shape([image.height, image.width, image.channels]))]
        metadata = [("\(field).source", name)]
    }

    public func read(max: Int, into: [UnsafeMutableRawPointer]) throws -> Int {
        guard !done, max > 0 else { return 0 }
        done = true
        image.pixels.withUnsafeBytes { into[0].copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        return 1
    }
}

/// A directory with one sub-directory of images per class.
public final class ImageFolderSource: SampleSource {
    public let name: String
    public private(set) var fields: [Field] = []
    public private(set) var metadata: [(key: String, value: String)] = []
    public var declaredCount: Int? { files.count }
    public private(set) var notices: [String] = []
    private var files: [(path: String, label: Int)] = []
    private var position = 0
    private let channels: Int?
    private let size: ImageSize?
    private let shape: Shape

    public init(path: String, field: String, channels: Int?, size: ImageSize? = nil) throws {
        name = path
        self.channels = channels
        self.size = size
        func isImage(_ f: DirectoryEntry) -> Bool {
            let lower = f.name.lowercased()
            return lower.hasSuffix(".png") || lower.hasSuffix(".jpg") || lower.hasSuffix(".jpeg")
        }
        let top = try listDirectory(path)
        if let stray = top.first(where: { $0.kind != .directory && isImage($0) }) {
            throw DataError(stray.path, "image beside the class directories, in no class; move it into one")
        }
        let classes = try classDirectories(path)
        var seen: [[UInt64]: String] = [:]
        for (k, c) in classes.enumerated() {
            let before = files.count
            for f in try filesUnder(c, seen: &seen) where isImage(f) {
                guard f.kind == .file else { throw DataError(f.path, "not a regular file (a device, socket or pipe)") }
                files.append((f.path, k))
            }
            guard files.count > before else { throw DataError(c.path, "class directory holds no .png or .jpg files") }
        }
        let first = files[0]
        let img = try ImageCodec.decode(try ImageCodec.readAll(try FileSource.open(first.path)), name: first.path, channels: channels).resized(to: size, name: first.path)
        shape = Shape([img.height, img.width, img.channels])
        fields = [Field(name: field, dtype: .u8, shape: shape),
                  Field(name: "y", dtype: classes.count <= 256 ? .u8 : .i64, shape: Shape([]))]
        metadata = [("y.classes", classes.map(\.name).joined(separator: "\n")), ("\(field).source", path), ("y.source", path)]
    }

    public func read(max: Int, into: [UnsafeMutableRawPointer]) throws -> Int {
        var n = 0
        while n < max && position < files.count {
            let (p, label) = files[position]
            let img = try ImageCodec.decode(try ImageCodec.readAll(try FileSource.open(p)), name: p, channels: channels).resized(to: size, name: p)
            let s = Shape([img.height, img.width, img.channels])
            guard s == shape else {
                let hint = s.dims[0..<2] == shape.dims[0..<2] ? "set --channels" : s.dims[2] == shape.dims[2] ? "give --resize WxH" : "give --resize WxH and --channels"
                throw DataError(p, "image is \(s) but \(files[0].path) is \(shape); all images must match (\(hint))")
            }
            if let notice = img.notice { notices.append("\(p): \(notice)") }
            img.pixels.withUnsafeBytes { into[0].advanced(by: n * s.count).copyMemory(from: $0.baseAddress!, byteCount: s.count) }
            if fields[1].dtype == .u8 {
                into[1].storeBytes(of: UInt8(label), toByteOffset: n, as: UInt8.self)
            } else {
                into[1].storeBytes(of: Int64(label), toByteOffset: 8 * n, as: Int64.self)
            }
            n += 1
            position += 1
        }
        return n
    }
}
