// The tokenizers of `tensor-load --text`: how text becomes tokens, before any vocabulary.
//   char  the Unicode scalars of the text, as they are (spaces and punctuation included)
//   word  lower-cased runs of letters, digits and combining marks; every other visible
//         character (punctuation, symbols) is a token of its own; whitespace, control and
//         format characters only separate
//   bpe   Sennrich et al.'s byte-pair encoding over the word tokens: each word is split into
//         its characters, the last one marked with the end-of-word marker `</w>`, and learned
//         merges of adjacent symbols are applied in rank order
// The BPE learner updates its pair counts incrementally (only the words that hold the merged
// pair are revisited) and picks the next merge from a max-heap with lazy deletion, so
// thousands of merges over tens of thousands of distinct words take seconds. Ties are broken
// by the symbols' UTF-8 bytes: learning is deterministic.
// Tokens are compared by their UTF-8 bytes (`ExactString`), not by Swift's String equality,
// which is canonical equivalence: learning, the VOCAB file and encoding agree byte for byte.
// Left out: Unicode normalization (NFC and NFD spellings are different tokens), grapheme
// clusters (char works on scalars), byte-level BPE.

import Foundation

/// The tokenizers `tensor-load --text` offers.
public enum TokenizerKind: String, CaseIterable, Sendable {
    case char, word, bpe

    /// The default cap on the number of ids, the two reserved ones included.
    public var defaultVocabSize: Int {
        switch self {
        case .char: return 1000
        case .word: return 20000
        case .bpe: return 8000
        }
    }

    /// The default number of times a token (bpe: a pair of symbols) must occur to be learned.
    public var defaultMinCount: Int {
        switch self {
        case .char: return 1
        case .word, .bpe: return 2
        }
    }
}

/// A string hashed and compared by its UTF-8 bytes.
public struct ExactString: Hashable, Sendable {
    public let string: String

    public init(_ s: String) { string = s }

    public static func == (a: ExactString, b: ExactString) -> Bool {
        a.string.utf8.elementsEqual(b.string.utf8)
    }

    public func hash(into h: inout Hasher) {
        var s = string
        s.withUTF8 { h.combine(bytes: UnsafeRawBufferPointer($0)) }
    }
}

/// The word tokenizer's split: lower-cased words and single punctuation characters.
public enum WordSplitter {
    /// Whether `u` belongs to a word: a letter, a digit or number, or a combining mark.
    @inline(__always)
    static func isWordScalar(_ u: Unicode.Scalar) -> Bool {
        let v = u.value
        if v < 0x80 { return (v >= 48 && v <= 57) || (v >= 65 && v <= 90) || (v >= 97 && v <= 122) }
        let p = u.properties
        if p.isAlphabetic { return true }
        switch p.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber, .nonspacingMark, .spacingMark, .enclosingMark: return true
        default: return false
        }
    }

    /// Whether `u` only separates tokens: whitespace, control and format characters.
    @inline(__always)
    static func isSeparator(_ u: Unicode.Scalar) -> Bool {
        let v = u.value
        if v < 0x80 { return v <= 32 || v == 127 }
        let p = u.properties
        if p.isWhitespace { return true }
        switch p.generalCategory {
        case .control, .format: return true
        default: return false
        }
    }

    /// A word lower-cased as Unicode's default case mapping does (Python's str.lower, ICU):
    /// each scalar's lower case, and a capital sigma that ends a word after a cased letter
    /// (Final_Sigma) becomes ς, so that ΟΔΟΣ and οδος are one word.
    static func lowercased(_ word: String) -> String {
        let lower = word.lowercased()
        guard word.unicodeScalars.contains("\u{03A3}") else { return lower }
        let u = Array(word.unicodeScalars)
        var out = String.UnicodeScalarView()
        for (i, c) in u.enumerated() {
            if c == "\u{03A3}" {
                let before = u[..<i].last { !$0.properties.isCaseIgnorable }
                let after = u[(i + 1)...].first { !$0.properties.isCaseIgnorable }
                if before?.properties.isCased == true && after?.properties.isCased != true {
                    out.append("\u{03C2}")
                    continue
                }
            }
            out.append(contentsOf: String(c).lowercased().unicodeScalars)
        }
        return String(out)
    }

    /// Calls `body` with every token of `text` in order until it returns false.
    public static func forEach(_ text: String, _ body: (String) -> Bool) {
        var word: [UInt8] = []
        word.reserveCapacity(32)
        var ascii = true
        func flush() -> Bool {
            guard !word.isEmpty else { return true }
            let s = String(decoding: word, as: UTF8.self)
            word.removeAll(keepingCapacity: true)
            defer { ascii = true }
            return body(ascii ? s : lowercased(s))
        }
        for u in text.unicodeScalars {
            let v = u.value
            if v < 0x80, (v >= 48 && v <= 57) || (v >= 97 && v <= 122) {
                word.append(UInt8(v))
            } else if v >= 65 && v <= 90 {
                word.append(UInt8(v + 32))
            } else if v >= 0x80 && isWordScalar(u) {
                ascii = false
                word.append(contentsOf: String(u).utf8)
            } else {
                guard flush() else { return }
                if !isSeparator(u) {
                    guard body(String(u)) else { return }
                }
            }
        }
        _ = flush()
    }

    /// The tokens of `text`.
    public static func tokens(_ text: String) -> [String] {
        var out: [String] = []
        forEach(text) { out.append($0); return true }
        return out
    }
}

// MARK: - BPE

/// Byte-pair encoding: learning merges, and the symbols a word starts from.
public enum BPE {
    /// Appended to the last symbol of every word.
    public static let endOfWord = "</w>"

    /// The initial symbols of `word`: its scalars, the last one marked as the end of the word.
    public static func symbols(_ word: String) -> [String] {
        var out = word.unicodeScalars.map { String($0) }
        if !out.isEmpty { out[out.count - 1] += endOfWord }
        return out
    }

    /// What learning gives: the tokens with their frequency in the training words after all
    /// merges, and the merges in rank order.
    public struct Learned {
        public var tokens: [(token: String, count: Int)]
        public var merges: [(left: String, right: String)]
    }

    /// Learns merges from distinct `words` and their counts, until `maxTokens` symbols exist or
    /// no pair occurs `minCount` times. Initial symbols seen fewer than `minCount` times are left
    /// out (they stay unknown); when more than `maxTokens` remain, the most frequent are kept
    /// and nothing is merged.
    public static func learn(words: [(word: String, count: Int)], maxTokens: Int, minCount: Int) -> Learned {
        var index: [ExactString: Int32] = [:]
        var names: [String] = []
        var bytes: [[UInt8]] = []
        func intern(_ s: String) -> Int32 {
            if let i = index[ExactString(s)] { return i }
            let i = Int32(names.count)
            index[ExactString(s)] = i
            names.append(s)
            bytes.append(Array(s.utf8))
            return i
        }
        // Words in byte order, so symbol numbering (and everything after) is deterministic.
        let sorted = words.filter { $0.count > 0 && !$0.word.isEmpty }
            .sorted { $0.word.utf8.lexicographicallyPrecedes($1.word.utf8) }
        // Every word's symbols as a doubly linked list in one arena: a position keeps its place
        // (a merge keeps the left one and unlinks the right), so positions of one word stay in
        // left-to-right order and a merge costs the occurrences it changes, not the word's length.
        var sym: [Int32] = [], next: [Int32] = [], prev: [Int32] = [], owner: [Int32] = []
        var freqs: [Int] = []
        freqs.reserveCapacity(sorted.count)
        for (w, c) in sorted {
            let s = symbols(w).map(intern)
            let start = Int32(sym.count)
            for (j, x) in s.enumerated() {
                sym.append(x)
                prev.append(j == 0 ? -1 : start + Int32(j) - 1)
                next.append(j == s.count - 1 ? -1 : start + Int32(j) + 1)
                owner.append(Int32(freqs.count))
            }
            freqs.append(c)
        }
        var baseCount = [Int](repeating: 0, count: names.count)
        for (x, w) in zip(sym, owner) { baseCount[Int(x)] += freqs[Int(w)] }
        func byBytes(_ a: Int32, _ b: Int32) -> Bool { bytes[Int(a)].lexicographicallyPrecedes(bytes[Int(b)]) }
        /// More frequent first, then by bytes.
        func ranked(_ symbols: [Int32], _ count: [Int]) -> [Int32] {
            symbols.sorted { (x: Int32, y: Int32) -> Bool in
                let cx = count[Int(x)], cy = count[Int(y)]
                return cx != cy ? cx > cy : byBytes(x, y)
            }
        }
        let candidates: [Int32] = (0..<Int32(names.count)).filter { baseCount[Int($0)] >= minCount }
        let base = ranked(candidates, baseCount).prefix(max(0, maxTokens))
        var alive = [Bool](repeating: false, count: names.count)
        for s in base { alive[Int(s)] = true }
        var tokenCount = base.count
        var merged: [Int32] = []
        var merges: [(Int32, Int32)] = []

        @inline(__always) func key(_ a: Int32, _ b: Int32) -> UInt64 { UInt64(UInt32(bitPattern: a)) << 32 | UInt64(UInt32(bitPattern: b)) }
        // Pair counts over alive symbols, and where each pair was made (its left position; an
        // entry goes stale when the pair there changes, and is checked before use).
        var counts: [UInt64: Int] = [:]
        var places: [UInt64: [Int32]] = [:]
        for i in 0..<Int32(sym.count) {
            let j = next[Int(i)]
            guard j >= 0, alive[Int(sym[Int(i)])], alive[Int(sym[Int(j)])] else { continue }
            let k = key(sym[Int(i)], sym[Int(j)])
            counts[k, default: 0] += freqs[Int(owner[Int(i)])]
            places[k, default: []].append(i)
        }
        // Max-heap on (count, then the smaller left bytes, then the smaller right bytes).
        var heap = PairHeap { x, y in
            if x.count != y.count { return x.count > y.count }
            if x.a != y.a { return byBytes(x.a, y.a) }  // distinct symbols have distinct bytes
            return byBytes(x.b, y.b)
        }
        for (k, c) in counts { heap.push(.init(count: c, a: Int32(truncatingIfNeeded: k >> 32), b: Int32(truncatingIfNeeded: k))) }

        let floor = max(1, minCount)
        while tokenCount < maxTokens, let top = heap.pop() {
            let (a, b) = (top.a, top.b)
            let k = key(a, b)
            guard let current = counts[k], current == top.count else { continue }  // stale entry
            if current < floor { break }
            // The merged symbol is usually new; it can equal an earlier merge's ("a"+"bc" and
            // "ab"+"c"), never an initial symbol (one scalar), so it is alive from its birth.
            let c = intern(names[Int(a)] + names[Int(b)])
            if Int(c) == alive.count { alive.append(false) }
            if !alive[Int(c)] {
                alive[Int(c)] = true
                tokenCount += 1
                merged.append(c)
            }
            merges.append((a, b))
            // Occurrences left to right within each word, so "aaa" becomes "aa a", as a scan would.
            var delta: [UInt64: Int] = [:]
            for i in (places.removeValue(forKey: k) ?? []).sorted() {
                let j = next[Int(i)]
                guard sym[Int(i)] == a, j >= 0, sym[Int(j)] == b else { continue }  // changed since
                let f = freqs[Int(owner[Int(i)])]
                let p = prev[Int(i)], n = next[Int(j)]
                if p >= 0 && alive[Int(sym[Int(p)])] { delta[key(sym[Int(p)], a), default: 0] -= f }
                if n >= 0 && alive[Int(sym[Int(n)])] { delta[key(b, sym[Int(n)]), default: 0] -= f }
                sym[Int(i)] = c
                sym[Int(j)] = -1
                next[Int(i)] = n
                if n >= 0 { prev[Int(n)] = i }
                if p >= 0 && alive[Int(sym[Int(p)])] {
                    let nk = key(sym[Int(p)], c)
                    delta[nk, default: 0] += f
                    places[nk, default: []].append(p)
                }
                if n >= 0 && alive[Int(sym[Int(n)])] {
                    let nk = key(c, sym[Int(n)])
                    delta[nk, default: 0] += f
                    places[nk, default: []].append(i)
                }
            }
            counts[k] = nil
            for (dk, d) in delta where d != 0 && dk != k {
                let n = (counts[dk] ?? 0) + d
                if n <= 0 {
                    counts[dk] = nil
                    places[dk] = nil
                } else {
                    counts[dk] = n
                    heap.push(.init(count: n, a: Int32(truncatingIfNeeded: dk >> 32), b: Int32(truncatingIfNeeded: dk)))
                }
            }
        }

        var final = [Int](repeating: 0, count: names.count)
        for (x, w) in zip(sym, owner) where x >= 0 { final[Int(x)] += freqs[Int(w)] }
        let tokens = ranked(Array(base) + merged, final).map { (token: names[Int($0)], count: final[Int($0)]) }
        return Learned(tokens: tokens, merges: merges.map { (left: names[Int($0.0)], right: names[Int($0.1)]) })
    }
}

/// A binary heap of symbol pairs (or ranked positions) under a caller's order (`before(x, y)`:
/// x comes first).
struct PairHeap {
    struct Entry {
        var count: Int
        var a: Int32
        var b: Int32
    }

    private var items: [Entry] = []
    private let before: (Entry, Entry) -> Bool

    init(before: @escaping (Entry, Entry) -> Bool) { self.before = before }

    mutating func push(_ e: Entry) {
        items.append(e)
        var i = items.count - 1
        while i > 0 {
            let p = (i - 1) / 2
            guard before(items[i], items[p]) else { break }
            items.swapAt(i, p)
            i = p
        }
    }

    mutating func pop() -> Entry? {
        guard let top = items.first else { return nil }
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < items.count && before(items[l], items[m]) { m = l }
                if r < items.count && before(items[r], items[m]) { m = r }
                if m == i { break }
                items.swapAt(i, m)
                i = m
            }
        }
        return top
    }
}
