// PNG (libpng's simplified API) and JPEG (TurboJPEG) images as u8 H×W×C samples, C 1, 3 or 4.
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
        var img = png_image()
        img.version = UInt32(PNG_IMAGE_VERSION)
        func message() -> String {
            withUnsafeBytes(of: img.message) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
        }
        // Without its gAMA chunk: the simplified API would gamma-correct the values to sRGB
        // (stored 64 and 128 under gAMA 1/2.2 stay so, under gAMA 1.0 became 136 and 186);
        // PIL, torchvision and Keras read the values as stored.
        let stored = withoutGamma(data)
        let ok = stored.withUnsafeBytes { png_image_begin_read_from_memory(&img, $0.baseAddress, $0.count) }
        guard ok != 0 else { throw DataError(name, "bad PNG: \(message())") }
        let hasColor = img.format & UInt32(PNG_FORMAT_FLAG_COLOR) != 0
        let hasAlpha = img.format & UInt32(PNG_FORMAT_FLAG_ALPHA) != 0  // an alpha channel, or tRNS
        let c = channels ?? (hasAlpha ? 4 : hasColor ? 3 : 1)
        // Decoded as 8-bit RGBA, the values as stored: libpng's simplified API would otherwise
        // take 16-bit samples for linear light and gamma-encode them (50% became 186, not 128),
        // and composite alpha onto a background when asked for fewer channels. The channels
        // are then chosen here, as PIL's convert does: alpha dropped, gray as ITU-R 601 luma.
        img.format = UInt32(PNG_FORMAT_FLAG_COLOR) | UInt32(PNG_FORMAT_FLAG_ALPHA)  // PNG_FORMAT_RGBA
        img.flags |= UInt32(PNG_IMAGE_FLAG_16BIT_sRGB)
        let w = Int(img.width), h = Int(img.height)
        guard let px = checkedProduct([w, h, 4]), w * h <= maxPixels else {
            png_image_free(&img)
            throw DataError(name, "PNG of \(w)×\(h) pixels is too large")
        }
        var rgba = [UInt8](repeating: 0, count: px)
        let r = rgba.withUnsafeMutableBytes { o in
            png_image_finish_read(&img, nil, o.baseAddress, Int32(w * 4), nil)
        }
        guard r != 0 else { throw DataError(name, "bad PNG: \(message())") }
        if c == 4 { return DecodedImage(width: w, height: h, channels: 4, pixels: rgba) }
        var out = [UInt8](repeating: 0, count: w * h * c)
        for i in 0..<w * h {
            let (red, green, blue) = (rgba[4 * i], rgba[4 * i + 1], rgba[4 * i + 2])
            if c == 3 {
                (out[3 * i], out[3 * i + 1], out[3 * i + 2]) = (red, green, blue)
            } else if !hasColor {
                out[i] = red  // gray stored as gray: its own value
            } else {
                // PIL's L = R·299/1000 + G·587/1000 + B·114/1000, in its fixed point
                // (Convert.c, L24), so that the values are PIL's to the last one.
                let luma: Int = 19595 * Int(red) + 38470 * Int(green) + 7471 * Int(blue) + 0x8000
                out[i] = UInt8(luma >> 16)
            }
        }
        return DecodedImage(width: w, height: h, channels: c, pixels: out)
    }

    /// The PNG without its gAMA chunk, or as it is when it has none before the image data or
    /// its chunks do not parse (libpng then says what is wrong).
    static func withoutGamma(_ data: [UInt8]) -> [UInt8] {
        var at = 8
        while at + 12 <= data.count {
            let length = data[at..<at + 4].reduce(0) { $0 << 8 | Int($1) }
            let type = String(decoding: data[at + 4..<at + 8], as: UTF8.self)
            guard length <= data.count - at - 12 else { return data }
            if type == "IDAT" || type == "IEND" { return data }
            if type == "gAMA" { return Array(data[..<at]) + data[(at + 12 + length)...] }
            at += 12 + length
        }
        return data
    }

    static func decodeJPEG(_ data: [UInt8], name: String, channels: Int?) throws -> DecodedImage {
        guard let tj = tjInitDecompress() else { throw DataError(name, "cannot start the JPEG decoder", kind: .internal) }
        defer { tjDestroy(tj) }
        var w: Int32 = 0, h: Int32 = 0, sub: Int32 = 0, space: Int32 = 0
        let ok = data.withUnsafeBytes {
            tjDecompressHeader3(tj, $0.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt($0.count), &w, &h, &sub, &space)
        }
        guard ok == 0 else { throw DataError(name, "bad JPEG: \(String(cString: tjGetErrorStr2(tj)))") }
        let c = channels ?? (space == Int32(TJCS_GRAY.rawValue) ? 1 : 3)
        let fmt: TJPF = c == 1 ? TJPF_GRAY : c == 3 ? TJPF_RGB : TJPF_RGBA
        guard w > 0, h > 0, let px = checkedProduct([Int(w), Int(h), c]), Int(w) * Int(h) <= maxPixels else {
            throw DataError(name, "JPEG of \(w)×\(h) pixels is out of range")
        }
        var out = [UInt8](repeating: 0, count: px)
        let r = data.withUnsafeBytes { d in
            out.withUnsafeMutableBytes { o in
                tjDecompress2(tj, d.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt(d.count),
                              o.baseAddress!.assumingMemoryBound(to: UInt8.self), w, Int32(Int(w) * c), h, fmt.rawValue,
                              TJFLAG_LIMITSCANS | TJFLAG_STOPONWARNING)
            }
        }
        // A warning (e.g. premature end of data) still returns -1 with TJFLAG_STOPONWARNING unset
        // only on errors; treat any failure as bad data.
        guard r == 0 else { throw DataError(name, "bad JPEG: \(String(cString: tjGetErrorStr2(tj)))") }
        if tjGetErrorCode(tj) == TJERR_WARNING.rawValue {
            throw DataError(name, "bad JPEG: \(String(cString: tjGetErrorStr2(tj)))")
        }
        return DecodedImage(width: Int(w), height: Int(h), channels: c, pixels: out)
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
        return Array(out.prefix(size))
    }
}

/// One image file as one sample.
public final class ImageFileSource: SampleSource {
    public let name: String
    public let fields: [Field]
    public let metadata: [(key: String, value: String)]
    public var declaredCount: Int? { 1 }
    private let image: DecodedImage
    private var done = false

    public init(source: ByteSource, field: String, channels: Int?, size: ImageSize? = nil) throws {
        name = source.name
        image = try ImageCodec.decode(try ImageCodec.readAll(source), name: name, channels: channels).resized(to: size, name: name)
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
