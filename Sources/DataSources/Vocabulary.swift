// A text vocabulary: the token of every id, the class names, for bpe the merges; learned from
// documents, applied to documents, saved to and read from a VOCAB file.
//
// Ids: 0 pads, 1 is any unknown token, 2… are the tokens by decreasing training frequency,
// ties broken by the token's UTF-8 bytes.
//
// The VOCAB file (UTF-8 text, every line ending in a newline):
//   tensor-vocab 1 KIND          KIND: char, word or bpe
//   classes N                    then N lines, one class name each, in label order
//   tokens N                     then N lines: the tokens of ids 2, 3, …
//   merges N                     bpe only; then N lines `LEFT<TAB>RIGHT` in rank order
// Names and tokens escape backslash (\\), tab (\t), newline (\n), carriage return (\r) and
// the other control bytes (\xHH). Reading checks everything: counts against the lines that
// follow, escapes, UTF-8, duplicates, and that every merge joins two tokens into a third.
//
// The fingerprint (stream metadata `x.vocabulary`), e.g. "word 20000 crc32 1a2b3c4d": the
// kind, the number of ids, and the CRC-32 of the file's lines from `tokens N` to the end; so
// the class list may change without changing the fingerprint, but no token or merge can.

import Foundation
import TensorCore
import TensorStream

public final class Vocabulary {
    public let kind: TokenizerKind
    /// Class names, in label order.
    public let classes: [String]
    /// The token of id `k + 2`.
    public let tokens: [String]
    /// bpe: the merges in rank order.
    public let merges: [(left: String, right: String)]

    public static let padding: Int32 = 0
    public static let unknown: Int32 = 1
    public static let magic = "tensor-vocab"
    public static let version = 1
    /// Limits a VOCAB file must keep (the stream's i32 ids allow more; nobody needs them).
    public static let maxTokens = 1 << 22
    public static let maxClasses = 1 << 20
    public static let maxFileBytes = 1 << 30

    private let ids: [ExactString: Int32]
    private let scalarIds: [UInt32: Int32]
    /// bpe: the merge of two token ids: its rank and the id of the merged token.
    private let ranks: [UInt64: (rank: Int32, result: Int32)]
    /// bpe: the ids of words already segmented.
    private var cache: [ExactString: [Int32]] = [:]

    /// The number of ids, the two reserved ones included.
    public var size: Int { tokens.count + 2 }

    /// Builds a vocabulary; `merges` must join tokens into tokens (checked by `parse`).
    public init(kind: TokenizerKind, classes: [String], tokens: [String], merges: [(left: String, right: String)] = []) {
        self.kind = kind
        self.classes = classes
        self.tokens = tokens
        self.merges = merges
        var ids: [ExactString: Int32] = [:]
        ids.reserveCapacity(tokens.count)
        for (k, t) in tokens.enumerated() where ids[ExactString(t)] == nil { ids[ExactString(t)] = Int32(k + 2) }
        self.ids = ids
        var scalarIds: [UInt32: Int32] = [:]
        if kind == .char {
            for (k, t) in tokens.enumerated() {
                let s = t.unicodeScalars
                if s.count == 1 { scalarIds[s.first!.value] = Int32(k + 2) }
            }
        }
        self.scalarIds = scalarIds
        var ranks: [UInt64: (Int32, Int32)] = [:]
        for (r, m) in merges.enumerated() {
            guard let a = ids[ExactString(m.left)], let b = ids[ExactString(m.right)],
                  let c = ids[ExactString(m.left + m.right)] else { continue }
            let k = UInt64(UInt32(a)) << 32 | UInt64(UInt32(b))
            if ranks[k] == nil { ranks[k] = (Int32(r), c) }
        }
        self.ranks = ranks
    }

    // MARK: - Learning

    /// Learns a vocabulary of at most `maxSize` ids (the reserved two included) from `texts`;
    /// tokens seen fewer than `minCount` times stay unknown.
    public static func learn<S: Sequence>(_ kind: TokenizerKind, texts: S, classes: [String], maxSize: Int, minCount: Int) -> Vocabulary where S.Element == String {
        let room = max(0, maxSize - 2)
        func ranked<K>(_ counts: [K: Int], bytes: (K) -> [UInt8]) -> [K] {
            counts.filter { $0.value >= minCount }
                .map { (key: $0.key, count: $0.value, bytes: bytes($0.key)) }
                .sorted { $0.count != $1.count ? $0.count > $1.count : $0.bytes.lexicographicallyPrecedes($1.bytes) }
                .prefix(room).map(\.key)
        }
        switch kind {
        case .char:
            var counts: [UInt32: Int] = [:]
            for t in texts { for u in t.unicodeScalars { counts[u.value, default: 0] += 1 } }
            let order = ranked(counts) { Array(String(Unicode.Scalar($0)!).utf8) }
            return Vocabulary(kind: kind, classes: classes, tokens: order.map { String(Unicode.Scalar($0)!) })
        case .word:
            let counts = wordCounts(texts)
            return Vocabulary(kind: kind, classes: classes, tokens: ranked(counts) { Array($0.string.utf8) }.map(\.string))
        case .bpe:
            let counts = wordCounts(texts)
            let learned = BPE.learn(words: counts.map { ($0.key.string, $0.value) }, maxTokens: room, minCount: minCount)
            return Vocabulary(kind: kind, classes: classes, tokens: learned.tokens.map(\.token), merges: learned.merges)
        }
    }

    static func wordCounts<S: Sequence>(_ texts: S) -> [ExactString: Int] where S.Element == String {
        var counts: [ExactString: Int] = [:]
        for t in texts { WordSplitter.forEach(t) { counts[ExactString($0), default: 0] += 1; return true } }
        return counts
    }

    // MARK: - Applying

    /// Writes the ids of `text`'s first `max` tokens to `out`; returns how many.
    public func encode(_ text: String, into out: UnsafeMutablePointer<Int32>, max: Int) -> Int {
        var n = 0
        guard max > 0 else { return 0 }
        switch kind {
        case .char:
            for u in text.unicodeScalars {
                out[n] = scalarIds[u.value] ?? Vocabulary.unknown
                n += 1
                if n == max { break }
            }
        case .word:
            WordSplitter.forEach(text) { w in
                out[n] = ids[ExactString(w)] ?? Vocabulary.unknown
                n += 1
                return n < max
            }
        case .bpe:
            WordSplitter.forEach(text) { w in
                for id in segment(w) {
                    out[n] = id
                    n += 1
                    if n == max { return false }
                }
                return true
            }
        }
        return n
    }

    /// The ids of all tokens of `text`.
    public func encode(_ text: String) -> [Int32] {
        let bound = kind == .char ? text.unicodeScalars.count : text.utf8.count + 4
        var out = [Int32](repeating: 0, count: max(bound, 1))
        let n = out.withUnsafeMutableBufferPointer { encode(text, into: $0.baseAddress!, max: bound) }
        return Array(out.prefix(n))
    }

    /// bpe: the ids of one word, merges applied lowest rank first: every occurrence of the
    /// lowest-ranked pair present, left to right, then the lowest among the pairs present after
    /// that, and so on. A heap of (rank, position) keeps this n log n in the word's length.
    func segment(_ word: String) -> [Int32] {
        if let hit = cache[ExactString(word)] { return hit }
        var syms = BPE.symbols(word).map { ids[ExactString($0)] ?? Vocabulary.unknown }
        if syms.count > 1 {
            let n = syms.count
            // The symbols as a linked list: a merge keeps the left position and unlinks the right.
            var next = (0..<n).map { Int32($0 + 1 == n ? -1 : $0 + 1) }
            var prev = (0..<n).map { Int32($0 - 1) }
            func pair(at i: Int32) -> (rank: Int32, result: Int32)? {
                guard i >= 0, syms[Int(i)] >= 0 else { return nil }  // unlinked by a merge
                let j = next[Int(i)]
                guard j >= 0 else { return nil }
                return ranks[UInt64(UInt32(syms[Int(i)])) << 32 | UInt64(UInt32(syms[Int(j)]))]
            }
            // Lowest rank first, then leftmost.
            var heap = PairHeap { x, y in x.count != y.count ? x.count < y.count : x.a < y.a }
            for i in 0..<Int32(n - 1) {
                if let m = pair(at: i) { heap.push(.init(count: Int(m.rank), a: i, b: 0)) }
            }
            // A merge of rank r can make a pair ranked r or lower (vocabularies whose merges are
            // out of learning order); it waits until every occurrence of rank r is merged.
            var waiting: [PairHeap.Entry] = []
            var current = -1
            func enqueue(_ p: Int32) {
                guard let made = pair(at: p) else { return }
                let e = PairHeap.Entry(count: Int(made.rank), a: p, b: 0)
                if e.count <= current { waiting.append(e) } else { heap.push(e) }
            }
            while true {
                guard let top = heap.pop() else {
                    if waiting.isEmpty { break }
                    for e in waiting { heap.push(e) }
                    waiting.removeAll()
                    continue
                }
                if top.count != current && !waiting.isEmpty {
                    heap.push(top)
                    for e in waiting { heap.push(e) }
                    waiting.removeAll()
                    continue
                }
                current = top.count
                let i = top.a
                guard let m = pair(at: i), Int(m.rank) == top.count else { continue }  // changed since
                let j = next[Int(i)], after = next[Int(j)]
                syms[Int(i)] = m.result
                syms[Int(j)] = -1
                next[Int(i)] = after
                if after >= 0 { prev[Int(after)] = i }
                enqueue(prev[Int(i)])
                enqueue(i)
            }
            syms.removeAll { $0 < 0 }
        }
        if cache.count >= 1 << 18 { cache.removeAll(keepingCapacity: true) }
        cache[ExactString(word)] = syms
        return syms
    }

    /// The tokenized form of `ids`: char, the text itself; word, the tokens separated by
    /// spaces; bpe, the words (symbols joined up to each end-of-word marker) separated by
    /// spaces. Padding is skipped; an unknown id reads `<unk>` (char: U+FFFD).
    public func decode<C: Collection>(_ ids: C) -> String where C.Element == Int32 {
        let unk = kind == .char ? "\u{FFFD}" : "<unk>"
        func token(_ id: Int32) -> String? {
            if id == Vocabulary.padding { return nil }
            let k = Int(id) - 2
            return k >= 0 && k < tokens.count ? tokens[k] : unk
        }
        switch kind {
        case .char:
            return ids.compactMap(token).joined()
        case .word:
            return ids.compactMap(token).joined(separator: " ")
        case .bpe:
            var words: [String] = []
            var cur = ""
            for t in ids.compactMap(token) {
                if t.hasSuffix(BPE.endOfWord) {
                    words.append(cur + t.dropLast(BPE.endOfWord.count))
                    cur = ""
                } else {
                    cur += t
                }
            }
            if !cur.isEmpty { words.append(cur) }
            return words.joined(separator: " ")
        }
    }

    // MARK: - The VOCAB file

    /// The file's text: header, classes, tokens, merges.
    public func serialized() -> [UInt8] {
        var out = "\(Vocabulary.magic) \(Vocabulary.version) \(kind.rawValue)\n"
        out += "classes \(classes.count)\n"
        for c in classes { out += Vocabulary.escape(c) + "\n" }
        var b = Array(out.utf8)
        b += tokenSection()
        return b
    }

    private func tokenSection() -> [UInt8] {
        var out = "tokens \(tokens.count)\n"
        for t in tokens { out += Vocabulary.escape(t) + "\n" }
        if kind == .bpe {
            out += "merges \(merges.count)\n"
            for m in merges { out += Vocabulary.escape(m.left) + "\t" + Vocabulary.escape(m.right) + "\n" }
        }
        return Array(out.utf8)
    }

    /// `KIND SIZE crc32 XXXXXXXX`: what a model records and compares (see the file's top).
    public var fingerprint: String {
        let crc = tokenSection().withUnsafeBytes { CRC32.checksum($0) }
        return "\(kind.rawValue) \(size) crc32 \(String(crc, radix: 16).leftPadded(to: 8))"
    }

    /// Escapes backslash and control bytes so that any name or token fits on one line.
    public static func escape(_ s: String) -> String {
        guard s.utf8.contains(where: { $0 < 0x20 || $0 == 0x5C || $0 == 0x7F }) else { return s }
        var out = ""
        for u in s.unicodeScalars {
            switch u {
            case "\\": out += "\\\\"
            case "\t": out += "\\t"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            default:
                if u.value < 0x20 || u.value == 0x7F {
                    out += "\\x" + String(u.value, radix: 16).leftPadded(to: 2)
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        return out
    }

    /// Reads a VOCAB file; `name` names it in errors, as `NAME:LINE`.
    public static func read(_ source: ByteSource, name: String) throws -> Vocabulary {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = try chunk.withUnsafeMutableBytes { try source.read(into: $0.baseAddress!, count: $0.count) }
            if n == 0 { break }
            bytes += chunk[0..<n]
            if bytes.count > maxFileBytes { throw DataError(name, "larger than \(maxFileBytes) bytes; not a vocabulary file") }
        }
        return try parse(bytes, name: name)
    }

    /// Parses the bytes of a VOCAB file; every problem is a `DataError` at `name:LINE`.
    public static func parse(_ bytes: [UInt8], name: String) throws -> Vocabulary {
        var lines = VocabLines(bytes: bytes, name: name)
        func fail(_ line: Int, _ what: String) -> DataError { DataError("\(name):\(line)", what) }
        // Binary first bytes (a stream given for the vocabulary): said before any line is
        // read, which blamed UTF-8.
        if !bytes.isEmpty, !bytes.starts(with: Array(magic.utf8)), case let kind = describeMagic(Array(bytes.prefix(300))), kind != "text" {
            throw DataError(name, "not a vocabulary file (looks like \(kind))")
        }

        let (l1, head) = try lines.next(what: "the header line")
        if head.hasSuffix("\r") { throw fail(l1, "lines end in CRLF; a vocabulary file's end in LF (was it edited on Windows?)") }
        let parts = head.split(separator: " ", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == magic else {
            throw fail(l1, "not a vocabulary file (expected '\(magic) \(version) char|word|bpe')")
        }
        guard parts[1] == String(version) else { throw fail(l1, "vocabulary format version '\(escapedForDisplay(String(parts[1].prefix(20))))' is not supported (this tool reads \(version))") }
        guard let kind = TokenizerKind(rawValue: String(parts[2])) else {
            throw fail(l1, "unknown tokenizer '\(escapedForDisplay(String(parts[2].prefix(20))))' (char, word, bpe)")
        }

        func section(_ word: String, limit: Int) throws -> Int {
            let (ln, text) = try lines.next(what: "the '\(word) N' line")
            let p = text.split(separator: " ", omittingEmptySubsequences: false)
            guard p.count == 2, p[0] == word, let n = Int(p[1]), n >= 0, String(n) == p[1] else {
                throw fail(ln, "expected '\(word) N', found '\(escapedForDisplay(String(text.prefix(40))))'")
            }
            guard n <= limit else { throw fail(ln, "\(n) \(word) exceed the limit \(limit)") }
            return n
        }

        let nc = try section("classes", limit: maxClasses)
        var classes: [String] = []
        var seenClasses = Set<ExactString>()
        for _ in 0..<nc {
            let (ln, raw) = try lines.next(what: "a class name")
            guard let c = unescape(raw) else { throw fail(ln, "bad escape in class name") }
            guard !c.isEmpty else { throw fail(ln, "empty class name") }
            guard !c.contains("\n") else { throw fail(ln, "class name with a line break") }
            guard seenClasses.insert(ExactString(c)).inserted else { throw fail(ln, "class '\(escapedForDisplay(c))' listed twice") }
            classes.append(c)
        }

        let nt = try section("tokens", limit: maxTokens)
        var tokens: [String] = []
        var seen = Set<ExactString>()
        var seenScalars = Set<UInt32>()
        var tokenLines: [Int] = []
        for _ in 0..<nt {
            let (ln, raw) = try lines.next(what: "a token")
            guard let t = unescape(raw) else { throw fail(ln, "bad escape in token") }
            guard !t.isEmpty else { throw fail(ln, "empty token") }
            let fresh: Bool
            if kind == .char {
                guard t.unicodeScalars.count == 1 else {
                    throw fail(ln, "a char token must be one character, found '\(escapedForDisplay(String(t.prefix(20))))'")
                }
                fresh = seenScalars.insert(t.unicodeScalars.first!.value).inserted
            } else {
                fresh = seen.insert(ExactString(t)).inserted
            }
            guard fresh else { throw fail(ln, "token '\(escapedForDisplay(String(t.prefix(40))))' listed twice") }
            if kind == .word, let why = wordTokenNeverOccurs(t) { throw fail(ln, why) }
            tokens.append(t)
            tokenLines.append(ln)
        }

        var merges: [(left: String, right: String)] = []
        if kind == .bpe {
            let nm = try section("merges", limit: maxTokens)
            for _ in 0..<nm {
                let (ln, raw) = try lines.next(what: "a merge")
                let p = raw.split(separator: "\t", omittingEmptySubsequences: false)
                guard p.count == 2, let a = unescape(String(p[0])), let b = unescape(String(p[1])) else {
                    throw fail(ln, "expected 'LEFT<TAB>RIGHT'")
                }
                guard seen.contains(ExactString(a)), seen.contains(ExactString(b)) else { throw fail(ln, "merge of a symbol that is not a token") }
                guard seen.contains(ExactString(a + b)) else { throw fail(ln, "the merged symbol is not a token") }
                guard !a.hasSuffix(BPE.endOfWord) else {
                    throw fail(ln, "merge of '\(escapedForDisplay(String(a.prefix(40))))', which ends a word, with what follows it: it can never apply")
                }
                merges.append((a, b))
            }
            let merged = Set(merges.map { ExactString($0.left + $0.right) })
            for (t, ln) in zip(tokens, tokenLines) where !merged.contains(ExactString(t)) {
                if let why = bpeSymbolNeverOccurs(t) { throw fail(ln, why) }
            }
        }
        if let (ln, _) = lines.peekLine() { throw fail(ln, "unexpected text after the last section") }
        // Every id would be 'unknown': nothing to learn from.
        guard !tokens.isEmpty else { throw DataError(name, "the vocabulary holds no tokens") }
        return Vocabulary(kind: kind, classes: classes, tokens: tokens, merges: merges)
    }

    /// Why a word token read from a file can never come out of the word tokenizer (upper case,
    /// a space, two words), or nil. Such a token would silently never match.
    static func wordTokenNeverOccurs(_ t: String, what: String = "token") -> String? {
        let split = WordSplitter.tokens(t)
        if split.count == 1, Array(split[0].utf8) == Array(t.utf8) { return nil }
        let shown = "\(what) '\(escapedForDisplay(String(t.prefix(40))))'"
        switch split.count {
        case 0: return "\(shown) can never occur: the word tokenizer makes nothing of it (whitespace and control characters only separate)"
        case 1: return "\(shown) can never occur: the word tokenizer makes '\(escapedForDisplay(String(split[0].prefix(40))))' of it (it lower-cases words and drops whitespace)"
        default: return "\(shown) can never occur: the word tokenizer splits it into \(split.count) tokens"
        }
    }

    /// Why a BPE token that no merge makes can never occur, or nil. Such a token is a starting
    /// symbol: one character of a word token, with the end-of-word marker if it ends the word.
    /// Punctuation is a word of its own, so it always carries the marker.
    static func bpeSymbolNeverOccurs(_ t: String) -> String? {
        let bare = t.hasSuffix(BPE.endOfWord) ? String(t.dropLast(BPE.endOfWord.count)) : t
        let shown = "'\(escapedForDisplay(String(t.prefix(40))))'"
        guard bare.unicodeScalars.count == 1, let u = bare.unicodeScalars.first else {
            return "token \(shown) can never occur: no merge makes it, and a starting symbol is one character (with '\(BPE.endOfWord)' when it ends a word)"
        }
        if let why = wordTokenNeverOccurs(bare, what: "token \(shown): its character") { return why }
        if !t.hasSuffix(BPE.endOfWord), !WordSplitter.isWordScalar(u) {
            return "token \(shown) can never occur: punctuation is a word of its own, so its symbol always ends in '\(BPE.endOfWord)'"
        }
        return nil
    }

    /// Undoes `escape`; nil for a malformed escape.
    static func unescape(_ s: String) -> String? {
        guard s.utf8.contains(0x5C) else { return s }
        var out = String.UnicodeScalarView()
        var it = s.unicodeScalars.makeIterator()
        while let u = it.next() {
            guard u == "\\" else { out.append(u); continue }
            switch it.next() {
            case "\\": out.append("\\")
            case "t": out.append("\t")
            case "n": out.append("\n")
            case "r": out.append("\r")
            case "x":
                // Two hex digits exactly: UInt8(_:radix:) would also take a sign ("\x+f").
                guard let h = it.next(), let l = it.next(), h.properties.isASCIIHexDigit, l.properties.isASCIIHexDigit,
                      let v = UInt8(String(h) + String(l), radix: 16),
                      v < 0x20 || v == 0x7F else { return nil }
                out.append(Unicode.Scalar(v))
            default: return nil
            }
        }
        return String(out)
    }
}

/// The lines of a VOCAB file: each must end in a newline and be valid UTF-8.
struct VocabLines {
    let bytes: [UInt8]
    let name: String
    var pos = 0
    var line = 0

    mutating func next(what: String) throws -> (Int, String) {
        guard let l = try nextLine() else {
            throw DataError("\(name):\(line + 1)", "truncated: the file ends where \(what) should be")
        }
        return l
    }

    mutating func nextLine() throws -> (Int, String)? {
        guard pos < bytes.count else { return nil }
        line += 1
        guard let nl = bytes[pos...].firstIndex(of: 10) else {
            throw DataError("\(name):\(line)", "truncated: the last line has no newline")
        }
        let slice = bytes[pos..<nl]
        pos = nl + 1
        guard let s = String(validating: slice, as: UTF8.self) else { throw DataError("\(name):\(line)", "not valid UTF-8") }
        return (line, s)
    }

    func peekLine() -> (Int, String)? {
        pos < bytes.count ? (line + 1, "") : nil
    }
}

extension String {
    fileprivate func leftPadded(to n: Int) -> String {
        count >= n ? self : String(repeating: "0", count: n - count) + self
    }
}
