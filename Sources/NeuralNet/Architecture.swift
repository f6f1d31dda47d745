// The architecture text form: one layer per line (or separated by ";"), like a Keras
// Sequential list. `#` starts a comment. Input shape and class count come from the data:
//
//   conv 32 3x3 relu          # filters, kernel; options stride=S padding=valid|same
//   maxpool 2                 # also avgpool P [stride=S], globalavgpool
//   flatten
//   dropout 0.5
//   batchnorm
//   dense 64 relu             # units, or "classes" for the data's class count
//   dense classes softmax     # relu leakyrelu sigmoid tanh gelu softmax: also alone on a line
//
// Sequences (S steps × D features):
//   embedding 64              # token ids → vectors; vocab=V, or the data's vocabulary size
//   position                  # learned positional embedding, added
//   lstm 128                  # also gru, rnn; words: sequences (every step's output),
//                             # bidirectional (both directions, concatenated)
//   attention 4               # multi-head self-attention; word: causal
//   transformer 4 128         # pre-norm encoder block: heads, feed-forward units; causal
//   layernorm
//   timepool mean             # mean, max or last over each sample's real steps
//
// The text is only ever parsed, never evaluated: no paths, no includes, bounded numbers.

import TensorCore

/// One parsed layer line.
public enum LayerSpec: Equatable, Sendable {
    case dense(units: Int)
    case denseClasses
    case conv(filters: Int, kh: Int, kw: Int, stride: Int, padding: Padding)
    case pool(kind: String, size: Int, stride: Int)
    case globalAveragePool
    case flatten
    case dropout(Double)
    case batchNorm
    case activation(ActivationKind, alpha: Double)
    /// Token embedding; a nil vocabulary is taken from the data.
    case embedding(vocabulary: Int?, dim: Int)
    case position
    case recurrent(CellKind, units: Int, sequences: Bool, bidirectional: Bool)
    case layerNorm
    case attention(heads: Int, causal: Bool)
    case transformer(heads: Int, hidden: Int, causal: Bool)
    case timePool(TimePoolKind)
}

/// A problem in architecture text, with its line.
public struct ArchitectureError: DiagnosticError {
    public let line: Int
    public let message: String
    /// The layer that does not fit the shapes, as the architecture text writes it: a text line
    /// can hold several layers (`dense 8 relu; conv 4 3x3`), and a preset has no lines.
    public var layer: String? = nil
    /// For a layer that does not fit: its line in the text the user wrote (a file, or inline
    /// text of several lines), when that helps find it.
    public var sourceLine: Int? = nil
    public var location: String {
        guard let layer else { return "architecture line \(line)" }
        return sourceLine.map { "architecture line \($0), layer '\(layer)'" } ?? "layer '\(layer)'"
    }
    public var problem: String { message }
    public var kind: FailureKind { .badData }
}

public enum Architecture {
    public static let presets: [String: String] = [
        "mlp": "dense 128 relu\ndense classes",
        "mnist-cnn": "conv 32 3x3 relu\nmaxpool 2\nconv 64 3x3 relu\nmaxpool 2\nflatten\ndense 64 relu\ndense classes softmax",
        "cifar-cnn": "conv 64 3x3 relu\nmaxpool 2\nconv 64 3x3 relu\nmaxpool 2\nflatten\ndense 64 relu\ndense classes softmax",
        "rows-lstm": "lstm 128\ndense classes",
        "lstm-text": "embedding 64\nlstm 128\ndense classes",
        "gru-text": "embedding 64\ngru 128\ndense classes",
        "transformer-text": "embedding 64\nposition\ntransformer 4 128\nlayernorm\ntimepool mean\ndense classes",
    ]

    /// Fills in what the data decides: the vocabulary of embeddings that did not name one.
    public static func resolve(_ specs: [LayerSpec], vocabulary: Int) -> [LayerSpec] {
        specs.map { s in
            if case .embedding(nil, let d) = s, vocabulary > 0 { return .embedding(vocabulary: vocabulary, dim: d) }
            return s
        }
    }

    static let maxLayers = 256
    static let maxWidth = 1 << 16

    /// Parses architecture text into layer specs.
    public static func parse(_ text: String) throws -> [LayerSpec] { try parseLines(text).specs }

    /// Parses architecture text into layer specs and the line each came from.
    public static func parseLines(_ text: String) throws -> (specs: [LayerSpec], lines: [Int]) {
        var specs: [LayerSpec] = [], lines: [Int] = []
        var lineNo = 0
        // Lines by scalars: Swift takes CR LF for one Character, and a file written on
        // Windows read as one line ("dense takes 1 value, got 3").
        for rawLine in text.unicodeScalars.split(separator: "\n", omittingEmptySubsequences: false).map({ String(String.UnicodeScalarView($0)) }) {
            lineNo += 1
            let noComment = rawLine.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            for part in noComment.split(separator: ";") {
                let words = part.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" || $0 == "," }).map { $0.lowercased() }
                guard !words.isEmpty else { continue }
                let layer = try parseLayer(words, line: lineNo)
                specs += layer
                lines += layer.map { _ in lineNo }
                if specs.count > maxLayers { throw ArchitectureError(line: lineNo, message: "more than \(maxLayers) layers") }
            }
        }
        if specs.isEmpty { throw ArchitectureError(line: 1, message: "no layers") }
        return (specs, lines)
    }

    static func int(_ s: String, _ what: String, line: Int, range: ClosedRange<Int>) throws -> Int {
        // Digits only: Int("+8") would read a sign the form has no place for.
        guard let v = digitsNumber(s), range.contains(v) else {
            throw ArchitectureError(line: line, message: "\(what) '\(escapedForDisplay(s))' is not an integer in \(range.lowerBound)…\(range.upperBound)")
        }
        return v
    }

    static func slope(_ s: String, line: Int) throws -> Double {
        guard let v = decimalNumber(s), v >= 0, v < 1 else { throw ArchitectureError(line: line, message: "leakyrelu slope '\(escapedForDisplay(s))' is not in [0, 1)") }
        return v
    }

    static func parseLayer(_ w: [String], line: Int) throws -> [LayerSpec] {
        var positional: [String] = []
        var options: [String: String] = [:]
        var act: LayerSpec?
        var i = 1
        while i < w.count {
            let t = w[i]
            i += 1
            if let eq = t.firstIndex(of: "=") {
                let key = String(t[..<eq])
                guard options.updateValue(String(t[t.index(after: eq)...]), forKey: key) == nil else {
                    throw ArchitectureError(line: line, message: "option '\(escapedForDisplay(key))' given twice for \(w[0])")
                }
            } else if let a = ActivationKind(rawValue: t) {
                guard act == nil else { throw ArchitectureError(line: line, message: "two activations") }
                // 'dense 8 leakyrelu 0.2': a number after leakyrelu is its slope, as on a line
                // of its own.
                var alpha = 0.01
                if a == .leakyrelu, i < w.count, w[i].first.map({ $0.isNumber || $0 == "." }) ?? false {
                    alpha = try slope(w[i], line: line)
                    i += 1
                }
                act = .activation(a, alpha: alpha)
            } else {
                positional.append(t)
            }
        }
        func take(_ key: String) -> String? { options.removeValue(forKey: key) }
        func noMore() throws {
            if let k = options.keys.sorted().first { throw ArchitectureError(line: line, message: "unknown option '\(escapedForDisplay(k))' for \(w[0])") }
        }
        func positionals(_ n: ClosedRange<Int>) throws {
            guard n.contains(positional.count) else {
                // A word that is no number where values run over is a misspelt word ('relu'
                // as 'rellu'): named, rather than counted.
                if positional.count > n.upperBound, let word = positional.first(where: { !($0.first?.isNumber ?? false) && !$0.contains("x") && $0 != "classes" }) {
                    throw ArchitectureError(line: line, message: "unknown word '\(escapedForDisplay(word))' for \(w[0])")
                }
                throw ArchitectureError(line: line, message: "\(w[0]) takes \(n.lowerBound == n.upperBound ? "\(n.lowerBound)" : "\(n.lowerBound)–\(n.upperBound)") value\(n.upperBound == 1 ? "" : "s"), got \(positional.count)")
            }
        }
        /// Removes the flag words in `allowed` from the positionals; returns those present. A
        /// word given twice is refused, as an option given twice is.
        func flags(_ allowed: Set<String>) throws -> Set<String> {
            let words = positional.filter(allowed.contains)
            if let twice = words.first(where: { word in words.filter { $0 == word }.count > 1 }) {
                throw ArchitectureError(line: line, message: "'\(twice)' given twice for \(w[0])")
            }
            positional.removeAll(where: allowed.contains)
            return Set(words)
        }
        var out: [LayerSpec]
        switch w[0] {
        case "embedding":
            try positionals(1...1)
            let d = try int(positional[0], "embedding size", line: line, range: 1...maxWidth)
            let v = try take("vocab").map { try int($0, "vocabulary size", line: line, range: 2...(1 << 24)) }
            out = [.embedding(vocabulary: v, dim: d)]
        case "position", "positional":
            try positionals(0...0)
            out = [.position]
        case "lstm", "gru", "rnn", "simplernn":
            let f = try flags(["sequences", "bidirectional"])
            try positionals(1...1)
            let u = try int(positional[0], "units", line: line, range: 1...maxWidth)
            out = [.recurrent(CellKind(rawValue: w[0] == "simplernn" ? "rnn" : w[0])!, units: u,
                              sequences: f.contains("sequences"), bidirectional: f.contains("bidirectional"))]
        case "layernorm", "layernormalization":
            try positionals(0...0)
            out = [.layerNorm]
        case "attention", "selfattention":
            let f = try flags(["causal"])
            try positionals(1...1)
            out = [.attention(heads: try int(positional[0], "heads", line: line, range: 1...1024), causal: f.contains("causal"))]
        case "transformer":
            let f = try flags(["causal"])
            try positionals(2...2)
            out = [.transformer(heads: try int(positional[0], "heads", line: line, range: 1...1024),
                                hidden: try int(positional[1], "feed-forward units", line: line, range: 1...maxWidth),
                                causal: f.contains("causal"))]
        case "timepool":
            try positionals(1...1)
            guard let k = TimePoolKind(rawValue: positional[0]) else {
                throw ArchitectureError(line: line, message: "timepool '\(escapedForDisplay(positional[0]))' is not mean, max or last")
            }
            out = [.timePool(k)]
        case "dense":
            try positionals(1...1)
            if positional[0] == "classes" { out = [.denseClasses] } else {
                out = [.dense(units: try int(positional[0], "units", line: line, range: 1...maxWidth))]
            }
        case "conv", "conv2d":
            try positionals(2...2)
            let f = try int(positional[0], "filters", line: line, range: 1...maxWidth)
            // Empty parts kept: '3x', 'x3' and '3xx3' are no kernel.
            let ks = positional[1].split(separator: "x", omittingEmptySubsequences: false).map(String.init)
            guard ks.count == 1 || ks.count == 2, !ks.contains("") else { throw ArchitectureError(line: line, message: "kernel '\(escapedForDisplay(positional[1]))' is not K or KxK") }
            let kh = try int(ks[0], "kernel", line: line, range: 1...64)
            let kw = try int(ks.count == 2 ? ks[1] : ks[0], "kernel", line: line, range: 1...64)
            let s = try int(take("stride") ?? "1", "stride", line: line, range: 1...64)
            let pv = take("padding") ?? "valid"
            guard let p = Padding(rawValue: pv) else { throw ArchitectureError(line: line, message: "padding '\(escapedForDisplay(pv))' is not valid or same") }
            out = [.conv(filters: f, kh: kh, kw: kw, stride: s, padding: p)]
        case "maxpool", "maxpool2d", "avgpool", "averagepool", "avgpool2d":
            try positionals(1...1)
            let size = try int(positional[0], "pool size", line: line, range: 1...64)
            let s = try int(take("stride") ?? String(size), "stride", line: line, range: 1...64)
            out = [.pool(kind: w[0].hasPrefix("max") ? "max" : "average", size: size, stride: s)]
        case "globalavgpool", "globalaveragepool":
            try positionals(0...0)
            out = [.globalAveragePool]
        case "flatten":
            try positionals(0...0)
            out = [.flatten]
        case "dropout":
            try positionals(1...1)
            guard let r = decimalNumber(positional[0]), r >= 0, r < 1 else { throw ArchitectureError(line: line, message: "dropout rate '\(escapedForDisplay(positional[0]))' is not in [0, 1)") }
            out = [.dropout(r)]
        case "batchnorm", "batchnormalization":
            try positionals(0...0)
            out = [.batchNorm]
        default:
            guard let a = ActivationKind(rawValue: w[0]) else {
                throw ArchitectureError(line: line, message: "unknown layer '\(escapedForDisplay(w[0]))'")
            }
            // 'relu relu' made two layers where 'dense 8 relu relu' is refused.
            guard act == nil else { throw ArchitectureError(line: line, message: "two activations") }
            var alpha = 0.01
            if a == .leakyrelu, let s = positional.first {
                alpha = try slope(s, line: line)
                positional.removeFirst()
            }
            try positionals(0...0)
            out = [.activation(a, alpha: alpha)]
        }
        try noMore()
        if let act { out.append(act) }
        return out
    }

    /// The text form of layer specs, one per line (what the model file stores).
    public static func text(_ specs: [LayerSpec]) -> String {
        specs.map { s -> String in
            switch s {
            case .dense(let u): return "dense \(u)"
            case .denseClasses: return "dense classes"
            case .conv(let f, let kh, let kw, let st, let p):
                return "conv \(f) \(kh)x\(kw)" + (st != 1 ? " stride=\(st)" : "") + (p != .valid ? " padding=\(p.rawValue)" : "")
            case .pool(let k, let size, let st): return (k == "max" ? "maxpool" : "avgpool") + " \(size)" + (st != size ? " stride=\(st)" : "")
            case .globalAveragePool: return "globalavgpool"
            case .flatten: return "flatten"
            case .dropout(let r): return "dropout \(r)"
            case .batchNorm: return "batchnorm"
            // the slope only where it is not the default, as every other option
            case .activation(let a, let alpha): return a == .leakyrelu && alpha != 0.01 ? "leakyrelu \(alpha)" : a.rawValue
            case .embedding(let v, let d): return "embedding \(d)" + (v.map { " vocab=\($0)" } ?? "")
            case .position: return "position"
            case .recurrent(let k, let u, let seq, let bi):
                return "\(k.rawValue) \(u)" + (seq ? " sequences" : "") + (bi ? " bidirectional" : "")
            case .layerNorm: return "layernorm"
            case .attention(let h, let c): return "attention \(h)" + (c ? " causal" : "")
            case .transformer(let h, let f, let c): return "transformer \(h) \(f)" + (c ? " causal" : "")
            case .timePool(let k): return "timepool \(k.rawValue)"
            }
        }.joined(separator: "\n")
    }
}
