// tensor-fuzz: libFuzzer targets for every reader of untrusted bytes. One executable; the
// environment variable TENSOR_FUZZ_TARGET chooses the reader:
//   stream  the tensor stream reader (StreamReader over the bytes)
//   model   the model file reader (Model.load)
//   load    tensor-load's readers, format told by content: IDX, NPY, NPZ, PNG, JPEG, CIFAR
//           archives, gzip/bzip2/xz/zstd around any of them
//   csv     the CSV reader
//   idx, npy, npz, cifar, image
//           one data-source reader each, the format forced (LoadOptions.format, as
//           tensor-load --format does), so that reader gets every input of the budget; cifar
//           reads each input as CIFAR-10 and as CIFAR-100, image as PNG or JPEG
//   text    tensor-load --text: the bytes as LABEL<TAB>TEXT lines, a vocabulary of each kind
//           learned from them, saved and read back (it must, byte for byte) and applied; then
//           the bytes as a VOCAB file, which when read must also save and read back
// Every input must end in a value or a thrown error; a trap, a sanitizer report, a leak past
// -malloc_limit_mb or a hang is a finding. Built and run by scripts/fuzz.

import DataSources
import Foundation
import NeuralNet
import TensorCore
import TensorStream

enum FuzzTarget: String, CaseIterable {
    case stream, model, load, csv
    case idx, npy, npz, cifar, image
    case text

    static let chosen: FuzzTarget = {
        let name = ProcessInfo.processInfo.environment["TENSOR_FUZZ_TARGET"] ?? "stream"
        guard let t = FuzzTarget(rawValue: name) else {
            FileHandle.standardError.write(Data("tensor-fuzz: TENSOR_FUZZ_TARGET: unknown target '\(name)' (\(allCases.map(\.rawValue).joined(separator: ", ")))\n".utf8))
            exit(64)
        }
        return t
    }()

    /// A scratch file for the readers that open paths, one per process.
    static let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("tensor-fuzz-\(getpid())").path

    /// The formats a per-reader target forces, tried in turn on each input; empty for the others.
    var forcedFormats: [InputFormat] {
        switch self {
        case .idx: [.idx]
        case .npy: [.npy]
        case .npz: [.npz]
        case .cifar: [.cifar10, .cifar100]
        case .image: [.image]
        default: []
        }
    }
}

/// Writes the input to the scratch file with plain write(2): FileManager.createFile fsyncs,
/// which held the file-reading targets to about 60 inputs a second.
func writeScratch(_ bytes: [UInt8], to path: String) -> Bool {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var done = 0
    while done < bytes.count {
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + done, $0.count - done) }
        guard n > 0 else { return false }
        done += n
    }
    return true
}

/// Reads every sample a source offers, a few at a time.
func drain(_ s: SampleSource) throws {
    let sizes = s.fields.map(\.sampleBytes)
    guard let largest = sizes.max(), largest <= 1 << 24 else { return }
    let n = max(1, min(64, (1 << 24) / max(largest, 1)))
    let buffers = sizes.map { UnsafeMutableRawPointer.allocate(byteCount: max($0 * n, 1), alignment: 64) }
    defer { buffers.forEach { $0.deallocate() } }
    while try s.read(max: n, into: buffers) > 0 {}
}

func fuzzOne(_ bytes: [UInt8]) {
    switch FuzzTarget.chosen {
    case .stream:
        guard let r = try? StreamReader(source: MemorySource(bytes, name: "fuzz")) else { return }
        while (try? r.next()).flatMap({ $0 }) != nil {}
    case .model:
        _ = try? Model.load(from: MemorySource(bytes, name: "fuzz"))
    case .load, .csv:
        let path = FuzzTarget.scratch + (FuzzTarget.chosen == .csv ? ".csv" : ".bin")
        guard writeScratch(bytes, to: path) else { return }
        var options = LoadOptions()
        if FuzzTarget.chosen == .csv { options.format = .csv }
        if let s = try? Loader.open(InputSpec(path), options: options) { try? drain(s) }
        unlink(path)
    case .idx, .npy, .npz, .cifar, .image:
        let path = FuzzTarget.scratch + ".bin"
        guard writeScratch(bytes, to: path) else { return }
        for format in FuzzTarget.chosen.forcedFormats {
            var options = LoadOptions()
            options.format = format
            if let s = try? Loader.open(InputSpec(path), options: options) { try? drain(s) }
        }
        unlink(path)
    case .text:
        fuzzText(bytes)
    }
}

func fuzzText(_ bytes: [UInt8]) {
    if let corpus = try? TextCorpus.parseLines(bytes, name: "fuzz") {
        for kind in TokenizerKind.allCases {
            let learned = Vocabulary.learn(kind, texts: corpus.texts, classes: corpus.sortedLabels(), maxSize: 64, minCount: 1)
            // A vocabulary of no token is refused when learned (tensor-load) and when read:
            // it is never saved (testdata/fuzz/text-crashes/: documents of empty text).
            guard learned.size > 2 else { continue }
            let saved = learned.serialized()
            guard let back = try? Vocabulary.parse(saved, name: "saved"), back.serialized() == saved else {
                fatalError("a learned \(kind) vocabulary does not read back")  // trap-ok: a crash is how a fuzz target reports a finding
            }
            if let s = try? TextSource(corpus: corpus, vocabulary: back, maxLength: 16, classesFrom: "fuzz") { try? drain(s) }
        }
    }
    if let v = try? Vocabulary.parse(bytes, name: "fuzz") {
        let ids = v.encode(String(decoding: bytes.prefix(4096), as: UTF8.self))
        _ = v.decode(ids)
        let saved = v.serialized()
        guard let back = try? Vocabulary.parse(saved, name: "saved"), back.serialized() == saved else {
            fatalError("a vocabulary that was read does not save and read back")  // trap-ok: a crash is how a fuzz target reports a finding
        }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func LLVMFuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    fuzzOne(data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? [])
    return 0
}
