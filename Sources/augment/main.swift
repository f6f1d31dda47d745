// augment: random flips, shifts, rotations, zooms, brightness/contrast, noise and cutout on
// channels-last image fields; --repeat passes with fresh randomness through a bounded
// shuffle buffer, for fit --stream.

import ArgumentParser
import Foundation
import Preprocess
import TensorCore
import TensorStream
import ToolSupport

struct Augment: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "augment",
        abstract: "Randomly flip, shift, rotate, zoom, recolour, noise or erase images in a tensor stream.",
        discussion: """
        Augments the chosen image fields (default x; channels-last, H×W or H×W×C, any dtype) \
        sample by sample; other fields pass through. Each operation happens with probability 1 \
        unless --prob OP=P says otherwise (the flips take their probability directly). The \
        same --seed gives the same bytes. --repeat N emits the data N times with fresh \
        randomness, shuffled through a bounded buffer, so that augment --repeat N | fit \
        --stream trains N augmented epochs without holding the data set; a stream on stdin is \
        copied to an unlinked temporary file to be read again.

        Examples:
          tensor-load x=train-images-idx3-ubyte.gz y=train-labels-idx1-ubyte.gz \\
            | augment --hflip 0.5 --shift 2 | tensor-show --png augmented.png
          augment --hflip 0.5 --shift 4 --rotate 10 --cutout 8 --prob cutout=0.5 \\
            --repeat 10 train.tns | fit --stream --model m.arch -o m.model
        """,
        version: toolVersion)

    @Option(help: ArgumentHelp("Probability of a horizontal (left-right) flip.", valueName: "p"))
    var hflip: Double = 0

    @Option(help: ArgumentHelp("Probability of a vertical (top-bottom) flip.", valueName: "p"))
    var vflip: Double = 0

    @Option(help: ArgumentHelp("Shift by up to K pixels along each axis, filling with --fill (RandomCrop with padding K).", valueName: "k"))
    var shift: Int = 0

    @Option(parsing: .unconditional, help: ArgumentHelp("Rotate by an angle drawn from -DEG…DEG (or LO,HI), counter-clockwise, bilinear.", valueName: "deg"))
    var rotate: String?

    @Option(parsing: .unconditional, help: ArgumentHelp("Zoom by a factor drawn from 1-F…1+F (or LO,HI), bilinear.", valueName: "f"))
    var zoom: String?

    @Option(help: ArgumentHelp("Multiply values by a factor drawn from 1-B…1+B.", valueName: "b"))
    var brightness: Double = 0

    @Option(help: ArgumentHelp("Scale the distance from the image's mean by a factor drawn from 1-C…1+C.", valueName: "c"))
    var contrast: Double = 0

    @Option(help: ArgumentHelp("Add Gaussian noise of this standard deviation, in the data's units.", valueName: "sigma"))
    var noise: Double = 0

    @Option(help: ArgumentHelp("Erase a square of this side at a random place (random erasing).", valueName: "pixels"))
    var cutout: Int = 0

    @Option(parsing: .unconditional, help: ArgumentHelp("The value of pixels moved in from outside the image and of the cutout.", valueName: "v"))
    var fill: Double = 0

    @Option(name: .customLong("prob"), help: ArgumentHelp("The probability of an operation: shift, rotate, zoom, brightness, contrast, noise or cutout (repeatable).", valueName: "op=p"))
    var probabilities: [String] = []

    @Option(name: .customLong("field"), help: ArgumentHelp("An image field to augment (repeatable; default x).", valueName: "name"))
    var fields: [String] = []

    @Option(help: ArgumentHelp("Emit the data N times, each pass with fresh randomness.", valueName: "n"))
    var `repeat`: Int = 1

    @Option(help: ArgumentHelp("Shuffle through a buffer of N samples (default 10000 with --repeat above 1, else 0: keep the order).", valueName: "n"))
    var shuffle: Int?

    @Option(help: "Seed for every random choice.")
    var seed: UInt64 = 1

    @Option(name: .shortAndLong, help: ArgumentHelp("Write the stream to FILE (atomically) instead of stdout.", valueName: "file"))
    var output: String?

    @Argument(help: ArgumentHelp("The input stream; stdin when none or \"-\".", valueName: "file"))
    var file: String?

    static func range(_ text: String, around center: Double?, name: String) throws -> ClosedRange<Double> {
        let p = text.split(separator: ",", omittingEmptySubsequences: false).map { Double($0.trimmingCharacters(in: .whitespaces)) }
        guard p.allSatisfy({ $0 != nil && $0!.isFinite }) else { throw ValidationError("\(name) takes a number or LO,HI") }
        // A range wider than a double holds (−1e308…1e308) would draw infinite angles.
        if (p.count == 2 && !(p[1]! - p[0]!).isFinite) || (p.count == 1 && !(2 * p[0]!).isFinite) {
            throw ValidationError("\(name) \(text): the range is wider than a double holds")
        }
        if p.count == 2, p[0]! <= p[1]! { return p[0]!...p[1]! }
        if p.count == 1, let c = center, p[0]! >= 0 { return (c - p[0]!)...(c + p[0]!) }
        if p.count == 1, center == nil, p[0]! >= 0 { return -p[0]!...p[0]! }
        throw ValidationError("\(name) takes a number ≥ 0 or LO,HI with LO ≤ HI")
    }

    func config() throws -> AugmentConfig {
        var c = AugmentConfig()
        for (v, name) in [(hflip, "--hflip"), (vflip, "--vflip")] where !(v >= 0 && v <= 1) {
            throw ValidationError("\(name) takes a probability in [0, 1]")
        }
        c.hflip = hflip
        c.vflip = vflip
        guard (0...4096).contains(shift), (0...4096).contains(cutout) else { throw ValidationError("--shift and --cutout take 0…4096 pixels") }
        c.shift = shift
        c.cutout = cutout
        if let r = rotate { c.rotate = try Augment.range(r, around: nil, name: "--rotate") }
        if let z = zoom {
            let r = try Augment.range(z, around: 1, name: "--zoom")
            guard r.lowerBound > 0 else { throw ValidationError("--zoom factors must be > 0: a single f, the range 1-f…1+f, takes f below 1") }
            c.zoom = r
        }
        for (v, name) in [(brightness, "--brightness"), (contrast, "--contrast"), (noise, "--noise")] where !(v >= 0 && v.isFinite) {
            throw ValidationError("\(name) takes a number ≥ 0")
        }
        c.brightness = brightness
        c.contrast = contrast
        c.noise = noise
        guard fill.isFinite else { throw ValidationError("--fill takes a finite number") }
        c.fill = fill
        for text in probabilities {
            let kv = text.split(separator: "=", maxSplits: 1).map(String.init)
            guard kv.count == 2, let op = AugmentConfig.Operation(rawValue: kv[0]) else {
                throw ValidationError("--prob takes OP=P with OP one of \(AugmentConfig.Operation.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            guard let p = Double(kv[1]), p >= 0, p <= 1 else { throw ValidationError("--prob \(kv[0])= takes a probability in [0, 1]") }
            c.probability[op] = p
            // A probability for an operation not asked for would change nothing, silently.
            let enabled: [AugmentConfig.Operation: Bool] = [.shift: shift > 0, .rotate: rotate != nil, .zoom: zoom != nil, .brightness: brightness > 0,
                                                            .contrast: contrast > 0, .noise: noise > 0, .cutout: cutout > 0]
            guard enabled[op] == true else { throw ValidationError("--prob \(op.rawValue)= without --\(op.rawValue): there is no \(op.rawValue) to make likely") }
        }
        if fill != 0 && shift == 0 && rotate == nil && zoom == nil && cutout == 0 {
            throw ValidationError("--fill goes with --shift, --rotate, --zoom or --cutout, which uncover or erase pixels")
        }
        return c
    }

    func validate() throws {
        _ = try config()
        if !(1...1_000_000).contains(`repeat`) { throw ValidationError("--repeat takes 1…1000000") }
        try refuseRepeatedNames(fields, option: "--field")
        if let s = shuffle, !(0...100_000_000).contains(s) { throw ValidationError("--shuffle takes 0…100000000 samples") }
    }

    func run() throws {
        Tool.run("augment") {
            let cfg = try config()
            let path = file ?? "-"
            let input = try FileSource.open(path)
            var reader = try StreamReader(source: input)
            let schema = reader.schema
            let names = fields.isEmpty ? ["x"] : fields
            // Made with the first batch: a stream of no samples allocates nothing.
            var images: [Int: ImageShape] = [:]
            var augmenters: [Int: Augmenter] = [:]
            for name in names {
                guard let i = schema.index(of: name) else {
                    throw UsageError("the stream has no field '\(name)' (fields: \(schema.fields.map(\.name).joined(separator: ", ")))", location: "--field")
                }
                let f = schema.fields[i]
                guard let image = ImageShape(f.shape) else {
                    throw ToolFailure(reader.source.name, "field '\(name)' is \(f.shape): augment needs channels-last images, H×W or H×W×C")
                }
                images[i] = image
                // Integers are clamped like every value; a float fill must be one of the field's.
                if f.dtype == .f32 && !Float(cfg.fill).isFinite {
                    throw ToolFailure(reader.source.name, "field '\(name)' is f32, which cannot hold --fill \(cfg.fill)")
                }
            }
            let bufferSize = shuffle ?? (`repeat` > 1 ? 10_000 : 0)
            let sizes = schema.fields.map(\.sampleBytes)
            let sampleBytes = sizes.reduce(0, +)
            let shuffleBytes = bufferSize.multipliedReportingOverflow(by: sampleBytes)
            guard !shuffleBytes.overflow, shuffleBytes.partialValue <= 8 << 30 else {
                throw UsageError("a shuffle buffer of \(bufferSize) samples of \(sampleBytes) bytes needs more than 8 GiB", location: "--shuffle")
            }
            var out = schema
            var record = "\(cfg.description); seed \(seed)"
            if `repeat` > 1 { record += "; repeat \(`repeat`)" }
            if bufferSize > 0 { record += "; shuffle \(bufferSize)" }
            out.setMetadata("augment", schema.metadata("augment").map { $0 + ", then " + record } ?? record)

            // A regular file is read again from its start, through the descriptor opened first;
            // a stream that cannot be read again is copied for the later passes.
            let reopen = path != "-" && input.regularFileSize != nil
            let version = input.version
            let spill = `repeat` > 1 && !reopen ? try SpillFile() : nil
            let output = try Output.open(self.output)
            do {
                let writer = try StreamWriter(sink: output.sink, schema: out)
                let builder = BatchBuilder(writer: writer)
                let offsets = sizes.indices.map { sizes[..<$0].reduce(0, +) }
                let buffer = bufferSize > 0 ? ShuffleBuffer(capacity: bufferSize, sampleBytes: sampleBytes, seed: seed) : nil
                // Whole batches go out when the input pauses. Samples gathered into the next
                // batch wait for it to fill (or for the end): batches of a size set by the input's
                // pauses would make the bytes of a seeded run depend on timing.
                output.flushWhenWaiting(for: reader)
                func emit(_ row: UnsafeRawPointer) throws {
                    for i in sizes.indices { builder.slot(i).copyMemory(from: row + offsets[i], byteCount: sizes[i]) }
                    try builder.commit()
                }
                var overflowed: (field: Int, sample: Int)? = nil
                var samples = 0
                for pass in 0..<`repeat` {
                    if pass > 0 {
                        // Written to in place, the file would give other samples (renamed
                        // over, it is not read: the descriptor holds the first one).
                        let unchanged = version.flatMap { a in input.version.map { $0 == a } } ?? false
                        guard spill != nil || unchanged else {
                            throw ToolFailure(path, "changed between passes (written to while augment read it)")
                        }
                        reader = try StreamReader(source: try spill?.rewound() ?? input.rewound())
                        guard reader.schema.fields == schema.fields else {
                            throw ToolFailure(path, "changed between passes")
                        }
                    }
                    let copy = pass == 0 ? try spill.map { try StreamWriter(sink: $0.sink(), schema: schema) } : nil
                    var index = 0
                    while let b = try reader.next() {
                        if augmenters.isEmpty {
                            for (i, image) in images {
                                augmenters[i] = try Augmenter(config: cfg, image: image, dtype: schema.fields[i].dtype,
                                                              location: "\(path == "-" ? "stdin" : path): field '\(schema.fields[i].name)'")
                            }
                        }
                        try copy?.write(b)
                        for k in 0..<b.count {
                            // Values go through double precision: exact for every integer up to 2^53.
                            for i in augmenters.keys where schema.fields[i].dtype == .i64 {
                                let v = UnsafeBufferPointer(start: (b.field(i).baseAddress! + k * sizes[i]).assumingMemoryBound(to: Int64.self), count: sizes[i] / 8)
                                if let big = v.first(where: { $0.magnitude > 1 << 53 }) {
                                    throw ToolFailure(path == "-" ? "stdin" : path, "field '\(schema.fields[i].name)' sample \(index): i64 value \(big) is beyond ±2^53, which augment cannot carry exactly (it computes in double precision)")
                                }
                            }
                            var rng = Augmenter.generator(seed: seed, pass: pass, sample: index)
                            let fill = { (row: UnsafeMutableRawPointer) in
                                for i in sizes.indices {
                                    let src = b.field(i).baseAddress! + k * sizes[i]
                                    if let a = augmenters[i] {
                                        if !a.apply(src, to: row + offsets[i], rng: &rng) { overflowed = overflowed ?? (i, index) }
                                    } else {
                                        (row + offsets[i]).copyMemory(from: src, byteCount: sizes[i])
                                    }
                                }
                            }
                            if let buffer {
                                try buffer.add(fill, emit: emit)
                            } else {
                                // straight into the output batch, field by field
                                for i in sizes.indices {
                                    let src = b.field(i).baseAddress! + k * sizes[i]
                                    if let a = augmenters[i] {
                                        if !a.apply(src, to: builder.slot(i), rng: &rng) { overflowed = overflowed ?? (i, index) }
                                    } else {
                                        builder.slot(i).copyMemory(from: src, byteCount: sizes[i])
                                    }
                                }
                                try builder.commit()
                            }
                            if let o = overflowed {
                                let f = schema.fields[o.field]
                                let input = UnsafeRawBufferPointer(start: b.field(o.field).baseAddress! + k * sizes[o.field], count: sizes[o.field])
                                let why = holdsNonFinite(input, f.dtype)
                                    ? "holds a NaN or infinity, which augment does not take"
                                    : "the augmentation makes a NaN or infinity; lower --brightness, --contrast or --noise"
                                throw ToolFailure(path == "-" ? "stdin" : path, "field '\(f.name)' sample \(o.sample): \(why)")
                            }
                            index += 1
                        }
                    }
                    try copy?.finish()
                    if pass == 0 { samples = index }
                    guard index == samples else {
                        throw ToolFailure(path, "changed between passes: \(index) samples, where the first pass read \(samples)")
                    }
                }
                try buffer?.drain(emit)
                try builder.finish()
                try output.commit()
            } catch {
                output.abandon()
                throw error
            }
        }
    }
}

Augment.mainAsTool()

/// Whether a sample of a floating-point field holds a NaN or an infinity.
func holdsNonFinite(_ sample: UnsafeRawBufferPointer, _ dtype: DType) -> Bool {
    switch dtype {
    case .f32: return UnsafeBufferPointer(start: sample.baseAddress!.assumingMemoryBound(to: Float.self), count: sample.count / 4).contains { !$0.isFinite }
    case .f64: return UnsafeBufferPointer(start: sample.baseAddress!.assumingMemoryBound(to: Double.self), count: sample.count / 8).contains { !$0.isFinite }
    default: return false
    }
}
