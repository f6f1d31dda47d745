// Text input: the tokenizers (round trips, the word split, BPE's first merges worked out by
// hand), vocabularies (ids by frequency, unknown tokens, the VOCAB file both ways and every
// malformed case), the three layouts, and the stream's x / y / len.

import DataSources
import Foundation
import TensorCore
import TensorStream
import XCTest
import _TestSupport

final class TextTests: XCTestCase {
    func learn(_ kind: TokenizerKind, _ texts: [String], maxSize: Int = 1000, minCount: Int = 1, classes: [String] = []) -> Vocabulary {
        Vocabulary.learn(kind, texts: texts, classes: classes, maxSize: maxSize, minCount: minCount)
    }

    /// Asserts that parsing `text` as a VOCAB file fails at line `line` with `words` in the message.
    func assertBadVocab(_ text: String, line: Int, _ words: String, file: StaticString = #filePath, lineNo: UInt = #line) {
        assertBadVocab(Array(text.utf8), line: line, words, file: file, lineNo: lineNo)
    }

    func assertBadVocab(_ bytes: [UInt8], line: Int, _ words: String, file: StaticString = #filePath, lineNo: UInt = #line) {
        XCTAssertThrowsError(try Vocabulary.parse(bytes, name: "V"), file: file, line: lineNo) { e in
            guard let d = e as? DataError else { return XCTFail("not a DataError: \(e)", file: file, line: lineNo) }
            XCTAssertEqual(d.location, "V:\(line)", d.description, file: file, line: lineNo)
            XCTAssertEqual(d.kind, .badData, file: file, line: lineNo)
            XCTAssertTrue(d.problem.contains(words), "'\(d.problem)' should contain '\(words)'", file: file, line: lineNo)
        }
    }

    /// The stream a corpus makes with `vocabulary`: schema, count, field bytes.
    func stream(_ corpus: TextCorpus, _ vocabulary: Vocabulary, maxLength: Int) throws -> (Schema, Int, [[UInt8]]) {
        let sink = MemorySink()
        try Loader.writeStream([try TextSource(corpus: corpus, vocabulary: vocabulary, maxLength: maxLength, classesFrom: "V")], classes: nil, to: sink)
        return try readAll(sink.data)
    }

    func int32s(_ b: [UInt8]) -> [Int32] { b.withUnsafeBytes { Array($0.bindMemory(to: Int32.self)) } }
    func int64s(_ b: [UInt8]) -> [Int64] { b.withUnsafeBytes { Array($0.bindMemory(to: Int64.self)) } }

    // MARK: Tokenizers

    func testWordSplitLowerCasesWordsAndKeepsPunctuation() {
        XCTAssertEqual(WordSplitter.tokens("Hello, WORLD!  It's 42\tCafé\u{00A0}naïve…"),
                       ["hello", ",", "world", "!", "it", "'", "s", "42", "café", "naïve", "…"])
        // A combining accent stays in its word; control and format characters only separate.
        XCTAssertEqual(WordSplitter.tokens("Cafe\u{301} a\u{200B}b\u{7}c"), ["cafe\u{301}", "a", "b", "c"])
        XCTAssertEqual(WordSplitter.tokens(" \r\n "), [])
        // A capital sigma ending a word lower-cases to ς (Unicode's Final_Sigma, as Python's
        // str.lower gives): ΟΔΟΣ and οδος were two words, "οδοσ" and "οδος". Inside a word, or
        // alone, it is σ; a written σ stays.
        XCTAssertEqual(WordSplitter.tokens("ΟΔΟΣ οδος ΣΟΦΙΑ Σ ΟΔΟΣ1 ΟΔΟΣ\u{301} οδοσ"),
                       ["οδος", "οδος", "σοφια", "σ", "οδος1", "οδος\u{301}", "οδοσ"])
    }

    func testCharRoundTripIsExact() {
        let text = "Größe: 3×4 \t—  naïve\u{301} 😀!"
        let v = learn(.char, [text])
        let ids = v.encode(text)
        XCTAssertEqual(ids.count, text.unicodeScalars.count)
        XCTAssertFalse(ids.contains(Vocabulary.unknown))
        XCTAssertEqual(v.decode(ids), text)
    }

    func testWordRoundTripGivesTheLowerCasedTokens() {
        let text = "The Cat sat. The cat, the HAT!"
        let v = learn(.word, [text])
        let ids = v.encode(text)
        XCTAssertFalse(ids.contains(Vocabulary.unknown))
        XCTAssertEqual(v.decode(ids), "the cat sat . the cat , the hat !")
    }

    func testBPERoundTripGivesTheLowerCasedWords() {
        let text = "Lower lowest newer newest wider widest, slow slower!"
        // A cap far below one token per word, so words come out in several pieces.
        let v = learn(.bpe, [text], maxSize: 22)
        let ids = v.encode(text)
        XCTAssertFalse(ids.contains(Vocabulary.unknown))
        XCTAssertGreaterThan(ids.count, WordSplitter.tokens(text).count, "some words are split into subwords")
        XCTAssertEqual(v.decode(ids), WordSplitter.tokens(text).joined(separator: " "))
        XCTAssertEqual(v.decode(ids), "lower lowest newer newest wider widest , slow slower !")
    }

    /// Sennrich et al.'s example: low ×5, lower ×2, newest ×6, widest ×3. Symbols start as
    /// characters, the last marked </w>. Pair counts:
    ///   (e,s) 9, (s,t</w>) 9, (w,e) 8, (l,o) 7, (n,e) 6, (e,w) 6, (o,w</w>) 5, (w,i) 3, (i,d) 3,
    ///   (d,e) 3, (o,w) 2, (e,r</w>) 2
    /// 1. a tie at 9; "e" < "s" by bytes: e+s → es      (s,t</w>) becomes (es,t</w>) 9
    /// 2. es+t</w> → est</w> (9)
    /// 3. l+o → lo (7)
    /// 4. a tie at 6 among (n,e), (e,w), (w,est</w>); "e" < "n" < "w": e+w → ew
    /// 5. a tie at 6 between (n,ew) and (ew,est</w>); "ew" < "n": ew+est</w> → ewest</w>
    /// 6. n+ewest</w> → newest</w> (6)
    /// 7. lo+w</w> → low</w> (5)
    /// 8. a tie at 3 among (w,i), (i,d), (d,est</w>); "d" first: d+est</w> → dest</w>
    /// then i+dest</w>, w+idest</w> (3), e+r</w>, lo+w, low+er</w> (2); nothing pairs twice after.
    func testBPEFirstMergesMatchTheHandComputation() {
        let texts = Array(repeating: "low", count: 5) + Array(repeating: "lower", count: 2)
            + Array(repeating: "newest", count: 6) + Array(repeating: "widest", count: 3)
        let v = learn(.bpe, [texts.joined(separator: " ")], minCount: 2)
        let expected = [("e", "s"), ("es", "t</w>"), ("l", "o"), ("e", "w"), ("ew", "est</w>"), ("n", "ewest</w>"),
                        ("lo", "w</w>"), ("d", "est</w>"), ("i", "dest</w>"), ("w", "idest</w>"), ("e", "r</w>"),
                        ("lo", "w"), ("low", "er</w>")]
        XCTAssertEqual(v.merges.map { "\($0.left) \($0.right)" }, expected.map { "\($0.0) \($0.1)" })
        // Every training word ends as one token, ids by frequency: newest 6, low 5, widest 3, lower 2.
        XCTAssertEqual(v.tokens.prefix(4), ["newest</w>", "low</w>", "widest</w>", "lower</w>"])
        XCTAssertEqual(v.encode("newest low lower widest"), [2, 3, 5, 4])
        // A cap of 2 + 11 initial symbols + 3 merged leaves room for the first three merges only.
        let capped = learn(.bpe, [texts.joined(separator: " ")], maxSize: 16, minCount: 2)
        XCTAssertEqual(capped.merges.count, 3)
        XCTAssertEqual(capped.size, 16)
        XCTAssertEqual(capped.decode(capped.encode("lowest")), "lowest")
        XCTAssertEqual(capped.encode("lowest").map { capped.tokens[Int($0) - 2] }, ["lo", "w", "est</w>"])
    }

    /// The learner's naive twin: every pair recounted over every word before each merge.
    func naiveMerges(_ words: [(String, Int)], maxTokens: Int, minCount: Int) -> [String] {
        func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }
        var seqs = words.map { (BPE.symbols($0.0), $0.1) }
        var baseCount: [[UInt8]: Int] = [:]
        for (s, f) in seqs { for x in s { baseCount[bytes(x), default: 0] += f } }
        let base = baseCount.filter { $0.value >= minCount }
            .sorted { $0.value != $1.value ? $0.value > $1.value : $0.key.lexicographicallyPrecedes($1.key) }
            .prefix(maxTokens).map(\.key)
        var alive = Set(base)
        var merges: [String] = []
        while alive.count < maxTokens {
            var counts: [[[UInt8]]: Int] = [:]
            for (s, f) in seqs where s.count > 1 {
                for i in 0..<(s.count - 1) where alive.contains(bytes(s[i])) && alive.contains(bytes(s[i + 1])) {
                    counts[[bytes(s[i]), bytes(s[i + 1])], default: 0] += f
                }
            }
            guard let best = counts.max(by: { x, y in
                if x.value != y.value { return x.value < y.value }
                if x.key[0] != y.key[0] { return y.key[0].lexicographicallyPrecedes(x.key[0]) }
                return y.key[1].lexicographicallyPrecedes(x.key[1])
            }), best.value >= max(1, minCount) else { break }
            let a = String(decoding: best.key[0], as: UTF8.self), b = String(decoding: best.key[1], as: UTF8.self)
            merges.append("\(a) \(b)")
            alive.insert(best.key[0] + best.key[1])
            seqs = seqs.map { s, f in
                var out: [String] = []
                var i = 0
                while i < s.count {
                    if i + 1 < s.count && bytes(s[i]) == best.key[0] && bytes(s[i + 1]) == best.key[1] {
                        out.append(a + b)
                        i += 2
                    } else {
                        out.append(s[i])
                        i += 1
                    }
                }
                return (out, f)
            }
        }
        return merges
    }

    func testBPEIncrementalCountsMatchTheNaiveTwin() {
        // Words over a small alphabet, so pairs repeat, overlap ("aaa") and tie often.
        var state: UInt32 = 12345
        func next(_ n: UInt32) -> Int {
            state = state &* 1_103_515_245 &+ 12345
            return Int((state >> 16) % n)
        }
        let alphabet = Array("abcdeé")
        var words: [String: Int] = [:]
        for _ in 0..<400 {
            let w = String((0..<(1 + next(8))).map { _ in alphabet[next(UInt32(alphabet.count))] })
            words[w, default: 0] += 1 + next(4)
        }
        let list = words.map { ($0.key, $0.value) }
        for (cap, minCount) in [(40, 1), (60, 2), (200, 3), (12, 1), (5, 1)] {
            let learned = BPE.learn(words: list.map { (word: $0.0, count: $0.1) }, maxTokens: cap, minCount: minCount)
            let naive = naiveMerges(list, maxTokens: cap, minCount: minCount)
            XCTAssertEqual(learned.merges.map { "\($0.left) \($0.right)" }, naive, "cap \(cap), min-count \(minCount)")
            XCTAssertLessThanOrEqual(learned.tokens.count, cap)
        }
    }

    /// Words of runs and repeats ("aaaa", "abab"), some hundreds of symbols long: merges overlap
    /// and recur within one word, which the learner tracks by position.
    func repetitiveWords() -> [(String, Int)] {
        var state: UInt32 = 777
        func next(_ n: UInt32) -> Int {
            state = state &* 1_103_515_245 &+ 12345
            return Int((state >> 16) % n)
        }
        let units = ["a", "b", "ab", "aab", "ba", "c"]
        var words: [String: Int] = [:]
        for _ in 0..<60 {
            let w = (0..<(2 + next(40))).map { _ in units[next(UInt32(units.count))] }.joined()
            words[w, default: 0] += 1 + next(3)
        }
        words[String(repeating: "a", count: 257), default: 0] += 2
        words[String(repeating: "ab", count: 100), default: 0] += 1
        words[String(repeating: "aab", count: 50) + "c", default: 0] += 1
        return words.map { ($0.key, $0.value) }
    }

    func testBPELearnsLongRepetitiveWordsAsTheNaiveTwin() {
        let list = repetitiveWords()
        for (cap, minCount) in [(30, 1), (120, 1), (400, 2)] {
            let learned = BPE.learn(words: list.map { (word: $0.0, count: $0.1) }, maxTokens: cap, minCount: minCount)
            let naive = naiveMerges(list, maxTokens: cap, minCount: minCount)
            XCTAssertEqual(learned.merges.map { "\($0.left) \($0.right)" }, naive, "cap \(cap), min-count \(minCount)")
            XCTAssertGreaterThan(learned.merges.count, 20, "cap \(cap): enough merges to overlap")
        }
    }

    /// The applier's naive twin: the lowest-ranked pair present, every occurrence of it left to
    /// right, again until no pair present has a rank.
    func naiveSegment(_ word: String, tokens: [String], merges: [(left: String, right: String)]) -> [String] {
        let known = Set(tokens)
        var rank: [String: Int] = [:]
        for (r, m) in merges.enumerated() where known.contains(m.left) && known.contains(m.right) && known.contains(m.left + m.right) {
            if rank[m.left + "\t" + m.right] == nil { rank[m.left + "\t" + m.right] = r }
        }
        var syms = BPE.symbols(word).map { known.contains($0) ? $0 : "<unk>" }
        while syms.count > 1 {
            let present = (0..<(syms.count - 1)).compactMap { rank[syms[$0] + "\t" + syms[$0 + 1]] }
            guard let best = present.min() else { break }
            let (a, b) = (merges[best].left, merges[best].right)
            var out: [String] = []
            var i = 0
            while i < syms.count {
                if i + 1 < syms.count && syms[i] == a && syms[i + 1] == b {
                    out.append(a + b)
                    i += 2
                } else {
                    out.append(syms[i])
                    i += 1
                }
            }
            syms = out
        }
        return syms
    }

    func testBPEApplyingMatchesTheNaiveTwinInAndOutOfLearningOrder() {
        let list = repetitiveWords()
        let learned = BPE.learn(words: list.map { (word: $0.0, count: $0.1) }, maxTokens: 120, minCount: 1)
        let tokens = learned.tokens.map(\.token)
        // The learned order, then the same merges shuffled: a hand-made vocabulary may rank a merge
        // before the merge that makes its left or right symbol.
        var state: UInt32 = 99
        var shuffled = learned.merges
        for i in stride(from: shuffled.count - 1, to: 0, by: -1) {
            state = state &* 1_103_515_245 &+ 12345
            shuffled.swapAt(i, Int((state >> 16) % UInt32(i + 1)))
        }
        let unseen = ["abaabab", "cab", "bbbbbbbb", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaab", "abcabcabc", "d", "ad"]
        // Ranked first, ab+a waits until every a+b is merged: "ababx" is ab ab x, not aba b x.
        let handMade = Vocabulary(kind: .bpe, classes: [], tokens: ["a", "b", "x</w>", "ab", "aba"],
                                  merges: [("ab", "a"), ("a", "b")])
        XCTAssertEqual(handMade.encode("ababx").map { handMade.tokens[Int($0) - 2] }, ["ab", "ab", "x</w>"])
        XCTAssertEqual(naiveSegment("ababx", tokens: handMade.tokens, merges: handMade.merges), ["ab", "ab", "x</w>"])
        for merges in [learned.merges, shuffled] {
            let v = Vocabulary(kind: .bpe, classes: [], tokens: tokens, merges: merges)
            for word in list.map(\.0) + unseen {
                let got = v.encode(word).map { $0 == Vocabulary.unknown ? "<unk>" : v.tokens[Int($0) - 2] }
                XCTAssertEqual(got, naiveSegment(word, tokens: tokens, merges: merges), word)
            }
        }
    }

    func testIdsByFrequencyThenBytesAndMinCount() {
        let v = learn(.word, ["b a b c a b", "z y x"], minCount: 1)
        XCTAssertEqual(v.tokens, ["b", "a", "c", "x", "y", "z"])
        XCTAssertEqual(v.encode("a b c"), [3, 2, 4])
        let twice = learn(.word, ["b a b c a b", "z y x"], minCount: 2)
        XCTAssertEqual(twice.tokens, ["b", "a"])
        let capped = learn(.word, ["b a b c a b", "z y x"], maxSize: 3, minCount: 1)
        XCTAssertEqual(capped.tokens, ["b"])
        XCTAssertEqual(capped.size, 3)
    }

    func testUnknownTokensAreOne() {
        let w = learn(.word, ["a b c"])
        XCTAssertEqual(w.encode("a zzz C"), [w.encode("a")[0], 1, w.encode("c")[0]])
        let c = learn(.char, ["abc"])
        XCTAssertEqual(c.encode("aXc").map { $0 == 1 }, [false, true, false])
        let b = learn(.bpe, ["abc abc"])
        let ids = b.encode("abz")
        XCTAssertTrue(ids.contains(1), "an unseen character is unknown: \(ids)")
        XCTAssertEqual(b.decode(ids), "ab<unk>")
    }

    // MARK: The VOCAB file

    func testSavedVocabularyMapsTheSameTextToTheSameIds() throws {
        let train = ["The quick brown fox jumps over the lazy dog.", "A lazy day; the dog sleeps.", "Quick, quicker, quickest!"]
        let test = "the quickest dog jumps over a fox? Zebra!"
        for kind in TokenizerKind.allCases {
            let v = learn(kind, train, maxSize: 50, minCount: 1, classes: ["neg", "pos"])
            let bytes = v.serialized()
            let back = try Vocabulary.parse(bytes, name: "V")
            XCTAssertEqual(back.kind, kind)
            XCTAssertEqual(back.classes, ["neg", "pos"])
            XCTAssertEqual(back.tokens, v.tokens)
            XCTAssertEqual(back.encode(test), v.encode(test), "\(kind)")
            XCTAssertEqual(back.fingerprint, v.fingerprint)
            XCTAssertEqual(back.serialized(), bytes)
            XCTAssertTrue(v.fingerprint.hasPrefix("\(kind.rawValue) \(v.size) crc32 "), v.fingerprint)
        }
        // Whatever the learner keeps, the file check accepts: cased, accented, combining,
        // non-Latin and punctuation-heavy text, every tokenizer and size.
        let world = ["İstanbul'da ÇAY içtik. Straße, STRASSE; ΟΔΟΣ οδός!", "Ｆｕｌｌ-width ｔｅｘｔ… e\u{301}té ½ ⅷ",
                     "日本語のテキスト、絵文字 🎉👍🏽 and numbers 3.14 1,000", "Ǆemal ǅ ǆ — “quotes” «guillemets» x²"]
        for kind in TokenizerKind.allCases {
            for size in [12, 40, 1000] {
                let v = learn(kind, world, maxSize: size)
                XCTAssertNoThrow(try Vocabulary.parse(v.serialized(), name: "V"), "\(kind) \(size)")
            }
        }
        // Another vocabulary has another fingerprint; another class list does not change it.
        let a = learn(.word, train), b = learn(.word, train + ["more words"])
        XCTAssertNotEqual(a.fingerprint, b.fingerprint)
        XCTAssertEqual(a.fingerprint, learn(.word, train, classes: ["x"]).fingerprint)
    }

    func testVocabFileFormatAndEscapes() throws {
        let v = learn(.char, ["a\tb\\c\nd\u{1}"], classes: ["x y", "z"])
        let text = String(decoding: v.serialized(), as: UTF8.self)
        XCTAssertTrue(text.hasPrefix("tensor-vocab 1 char\nclasses 2\nx y\nz\ntokens 8\n\\x01\n\\t\n\\n\n\\\\\na\n"), text)
        for escaped in ["\\t\n", "\\\\\n", "\\n\n", "\\x01\n"] { XCTAssertTrue(text.contains("\n" + escaped), "\(escaped) in \(text)") }
        let back = try Vocabulary.parse(v.serialized(), name: "V")
        XCTAssertEqual(back.tokens, v.tokens)
        XCTAssertEqual(back.decode(back.encode("d\tc\\\n\u{1}")), "d\tc\\\n\u{1}")

        let bpe = learn(.bpe, ["low lower lowest"], minCount: 2)
        let bt = String(decoding: bpe.serialized(), as: UTF8.self)
        XCTAssertTrue(bt.contains("\nmerges \(bpe.merges.count)\nl\to\n"), bt)
    }

    func testMalformedVocabFilesAreRefusedWithTheLine() {
        let good = "tensor-vocab 1 bpe\nclasses 1\nneg\ntokens 3\na\nb\nab\nmerges 1\na\tb\n"
        XCTAssertNoThrow(try Vocabulary.parse(Array(good.utf8), name: "V"))
        assertBadVocab("", line: 1, "truncated")
        assertBadVocab("hello\n", line: 1, "not a vocabulary file")
        assertBadVocab("tensor-vocab 2 word\n", line: 1, "version")
        assertBadVocab("tensor-vocab 1 sentencepiece\n", line: 1, "unknown tokenizer")
        assertBadVocab("tensor-vocab 1 word\n", line: 2, "truncated")
        assertBadVocab("tensor-vocab 1 word\nclasses two\n", line: 2, "expected 'classes N'")
        assertBadVocab("tensor-vocab 1 word\nclasses -1\n", line: 2, "expected 'classes N'")
        assertBadVocab("tensor-vocab 1 word\nclasses 99999999999\n", line: 2, "limit")
        assertBadVocab("tensor-vocab 1 word\nclasses 2\na\na\n", line: 4, "twice")
        assertBadVocab("tensor-vocab 1 word\nclasses 1\n\n", line: 3, "empty class")
        assertBadVocab("tensor-vocab 1 word\nclasses 0\ntokens 3\na\nb\n", line: 6, "truncated")
        assertBadVocab("tensor-vocab 1 word\nclasses 0\ntokens 2\na\nb", line: 5, "no newline")
        assertBadVocab("tensor-vocab 1 word\nclasses 0\ntokens 2\na\na\n", line: 5, "twice")
        assertBadVocab("tensor-vocab 1 word\nclasses 0\ntokens 1\na\\q\n", line: 4, "escape")
        assertBadVocab("tensor-vocab 1 word\nclasses 0\ntokens 1\na\\x4\n", line: 4, "escape")
        // Two hex digits exactly: "\x+f" and "\x-0" read as U+000F and NUL.
        assertBadVocab("tensor-vocab 1 char\nclasses 0\ntokens 1\n\\x+f\n", line: 4, "escape")
        assertBadVocab("tensor-vocab 1 char\nclasses 0\ntokens 1\n\\x-0\n", line: 4, "escape")
        assertBadVocab("tensor-vocab 1 word\nclasses 0\ntokens 1\n\n", line: 4, "empty token")
        assertBadVocab("tensor-vocab 1 word\nclasses 0\ntokens 1\na\nextra\n", line: 5, "after the last section")
        assertBadVocab(Array("tensor-vocab 1 word\nclasses 0\ntokens 1\n".utf8) + [0xC3, 0x28, 10], line: 4, "UTF-8")
        assertBadVocab("tensor-vocab 1 char\nclasses 0\ntokens 1\nab\n", line: 4, "one character")
        assertBadVocab("tensor-vocab 1 bpe\nclasses 0\ntokens 2\na\nb\n", line: 6, "truncated")
        assertBadVocab("tensor-vocab 1 bpe\nclasses 0\ntokens 2\na\nb\nmerges 1\na b\n", line: 7, "LEFT<TAB>RIGHT")
        assertBadVocab("tensor-vocab 1 bpe\nclasses 0\ntokens 2\na\nb\nmerges 1\na\tc\n", line: 7, "not a token")
        assertBadVocab("tensor-vocab 1 bpe\nclasses 0\ntokens 2\na\nb\nmerges 1\na\tb\n", line: 7, "merged symbol")
        // A hand-edited token that the tokenizer can never produce would silently never match.
        assertBadVocab("tensor-vocab 1 word\nclasses 0\ntokens 2\nfilm\nHello\n", line: 5, "makes 'hello' of it")
        assertBadVocab("tensor-vocab 1 word\nclasses 0\ntokens 1\nnew york\n", line: 4, "splits it into 2 tokens")
        assertBadVocab("tensor-vocab 1 word\nclasses 0\ntokens 1\ndon't\n", line: 4, "splits it into 3 tokens")
        assertBadVocab("tensor-vocab 1 word\nclasses 0\ntokens 1\n\\t\n", line: 4, "makes nothing of it")
        assertBadVocab("tensor-vocab 1 bpe\nclasses 0\ntokens 2\na\nxy\nmerges 0\n", line: 5, "no merge makes it")
        assertBadVocab("tensor-vocab 1 bpe\nclasses 0\ntokens 1\nA</w>\nmerges 0\n", line: 4, "makes 'a' of it")
        assertBadVocab("tensor-vocab 1 bpe\nclasses 0\ntokens 1\n!\nmerges 0\n", line: 4, "always ends in '</w>'")
        assertBadVocab("tensor-vocab 1 bpe\nclasses 0\ntokens 3\na</w>\nb\na</w>b\nmerges 1\na</w>\tb\n", line: 8, "ends a word")
        XCTAssertNoThrow(try Vocabulary.parse(Array("tensor-vocab 1 bpe\nclasses 0\ntokens 4\n!</w>\né\n1</w>\né1</w>\nmerges 1\né\t1</w>\n".utf8), name: "V"))
        // Every cut of a good file is refused, never read as a smaller vocabulary.
        let bytes = Array(good.utf8)
        for cut in 0..<bytes.count {
            XCTAssertThrowsError(try Vocabulary.parse(Array(bytes.prefix(cut)), name: "V"), "cut at \(cut)")
        }
    }

    // MARK: Layouts

    func testLinesWithCRLFBOMAndBlankLines() throws {
        let bytes: [UInt8] = [0xEF, 0xBB, 0xBF] + Array(" pos \tGood  film\r\n\n   \nneg\tBad\tfilm\r\n".utf8)
        let c = try TextCorpus.parseLines(bytes, name: "t.tsv")
        XCTAssertEqual(c.count, 2)
        XCTAssertEqual(c.text(0), "Good  film", "CR dropped, the text kept as it is")
        XCTAssertEqual(c.text(1), "Bad\tfilm", "tabs after the first belong to the text")
        XCTAssertEqual(c.label(0), "pos")
        XCTAssertEqual(c.place(1), "t.tsv:4", "blank lines count")
        XCTAssertEqual(c.sortedLabels(), ["neg", "pos"])
    }

    func testMalformedLinesAreRefusedAtFileAndLine() {
        func refused(_ text: [UInt8], _ place: String, _ words: String, line: UInt = #line) {
            XCTAssertThrowsError(try TextCorpus.parseLines(text, name: "t.tsv"), line: line) { e in
                let d = e as? DataError
                XCTAssertEqual(d?.location, place, "\(e)", line: line)
                XCTAssertEqual(d?.kind, .badData, line: line)
                XCTAssertTrue(d?.problem.contains(words) ?? false, "\(e)", line: line)
            }
        }
        refused(Array("pos\tok\nno tab here\n".utf8), "t.tsv:2", "no tab")
        refused(Array("pos\tok\n\n\tno label\n".utf8), "t.tsv:3", "empty label")
        refused(Array("pos\tok\n".utf8) + [0x6E, 0x09, 0xE2, 0x82], "t.tsv:2", "UTF-8")
        refused(Array("pos\tok\nneg\tan encoded surrogate \u{1}".utf8) + [0xED, 0xA0, 0x80], "t.tsv:2", "UTF-8")
        refused([], "t.tsv", "no documents")
    }

    func testNumericLabelsSortAsNumbers() throws {
        let c = try TextCorpus.parseLines(Array("10\ta\n2\tb\n1\tc\n02\td\n".utf8), name: "n")
        XCTAssertEqual(c.sortedLabels(), ["1", "02", "2", "10"], "equal numbers by their bytes")
        let mixed = try TextCorpus.parseLines(Array("10\ta\n2\tb\nx\tc\n".utf8), name: "n")
        XCTAssertEqual(mixed.sortedLabels(), ["10", "2", "x"], "not all numbers: by bytes")
    }

    func testCSVWithQuotedLineBreaksAndColumns() throws {
        var o = TextInputOptions()
        o.label = "label"
        let c = try TextCorpus.read(testdata("text/reviews.csv"), options: o)
        XCTAssertEqual(c.count, 3)
        XCTAssertEqual(c.text(0), "Great film, great cast")
        XCTAssertEqual(c.text(1), "Terrible:\nboring and long")
        XCTAssertEqual(c.place(2), testdata("text/reviews.csv") + ":5")
        XCTAssertEqual((0..<3).map { c.label($0) }, ["pos", "neg", "pos"])
        o.label = "2"
        o.textColumn = "3"
        XCTAssertEqual(try TextCorpus.read(testdata("text/reviews.csv"), options: o).label(1), "neg")
        o.label = nil
        let unlabeled = try TextCorpus.read(testdata("text/reviews.csv"), options: o)
        XCTAssertFalse(unlabeled.hasLabels)
        o.textColumn = "body"
        XCTAssertThrowsError(try TextCorpus.read(testdata("text/reviews.csv"), options: o)) { e in
            XCTAssertEqual((e as? DataError)?.kind, .usage)
        }
        XCTAssertThrowsError(try TextCorpus.parseCSV(Array("label,text\npos,ok\nneg,a,b\n".utf8), name: "c", options: TextInputOptions())) { e in
            XCTAssertEqual((e as? DataError)?.location, "c:3")
        }
        XCTAssertThrowsError(try TextCorpus.parseCSV(Array("label,text\npos,\"open\n".utf8), name: "c", options: TextInputOptions())) { e in
            XCTAssertEqual((e as? DataError)?.location, "c:2")
        }
        // CRLF after a quoted cell, and a blank line.
        let crlf = try TextCorpus.parseCSV(Array("text\r\n\"a, b\"\r\n\r\nc\r\n".utf8), name: "c", options: TextInputOptions())
        XCTAssertEqual([crlf.text(0), crlf.text(1)], ["a, b", "c"])
    }

    func testDirectoryOfClasses() throws {
        let c = try TextCorpus.read(testdata("text/classes"), options: TextInputOptions())
        XCTAssertEqual(c.count, 3)
        XCTAssertEqual((0..<3).map { c.label($0)! }, ["neg", "neg", "pos"])
        XCTAssertEqual(c.text(2), "Great!\n")
        XCTAssertEqual(c.place(1), testdata("text/classes") + "/neg/2.txt")
    }

    func testDirectoryOfClassesNestedEmptyAndOptionsForFiles() throws {
        let root = try makeTempDir()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.copyItem(atPath: testdata("text/classes"), toPath: root + "/c")
        try FileManager.default.createDirectory(atPath: root + "/c/pos/more", withIntermediateDirectories: true)
        try "Fine.\n".write(toFile: root + "/c/pos/more/9.txt", atomically: false, encoding: .utf8)
        let c = try TextCorpus.read(root + "/c", options: TextInputOptions())
        XCTAssertEqual(c.count, 4, "a document in a sub-directory of a class is one of it")
        XCTAssertEqual(c.label(3), "pos")
        // An empty class was left out of the class list without a word.
        try FileManager.default.createDirectory(atPath: root + "/c/zzz", withIntermediateDirectories: true)
        XCTAssertThrowsError(try TextCorpus.read(root + "/c", options: TextInputOptions())) { e in
            XCTAssertEqual((e as? DiagnosticError)?.location, root + "/c/zzz")
            XCTAssertEqual((e as? DiagnosticError)?.problem, "class directory holds no files")
        }
        // Options for a text file did nothing on a directory.
        var o = TextInputOptions()
        o.label = "1"
        XCTAssertThrowsError(try TextCorpus.read(root + "/c", options: o)) { e in
            XCTAssertEqual((e as? DiagnosticError)?.kind, .usage, "\(e)")
        }
        // A label with a control character (cat joins files: a BOM mid-file stays visible).
        XCTAssertThrowsError(try TextCorpus.parseLines(Array("pos\u{1}\tok\n".utf8), name: "t")) { e in
            XCTAssertEqual((e as? DiagnosticError)?.problem, "label with a control character")
        }
        XCTAssertThrowsError(try TextCorpus.parseLines(Array("pos\tok\n\u{FEFF}pos\tfine\n".utf8), name: "t")) { e in
            XCTAssertEqual((e as? DiagnosticError)?.location, "t:2")
            XCTAssertTrue((e as? DiagnosticError)?.problem.hasPrefix("byte order mark inside the file") == true, "\(e)")
        }
    }

    func testLineEndsThatWouldMisreadAreNamed() throws {
        // CR alone read as one document; a CRLF vocabulary said "unknown tokenizer 'word\r'".
        XCTAssertThrowsError(try TextCorpus.parseLines(Array("pos\thello\rneg\tbye\r".utf8), name: "t")) { e in
            XCTAssertEqual((e as? DiagnosticError)?.problem, "lines end in CR alone; LABEL<TAB>TEXT lines end in LF (or CRLF)")
        }
        // So did CRs alone among LFs: four documents read as two, with status 0.
        XCTAssertThrowsError(try TextCorpus.parseLines(Array("pos\tgood\nneg\tbad\rpos\tgreat\rneg\tawful\n".utf8), name: "t")) { e in
            XCTAssertEqual((e as? DiagnosticError)?.location, "t:2")
            XCTAssertEqual((e as? DiagnosticError)?.problem,
                           "a carriage return inside the line (byte 8): lines ended by CR alone? LABEL<TAB>TEXT lines end in LF (or CRLF)")
        }
        let v = learn(.word, ["a b a b"], classes: ["x"])
        let crlf = String(decoding: v.serialized(), as: UTF8.self).replacingOccurrences(of: "\n", with: "\r\n")
        assertBadVocab(crlf, line: 1, "lines end in CRLF")
    }

    func testDirectoryOfClassesWithALinkToNothing() throws {
        let root = try makeTempDir()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.copyItem(atPath: testdata("text/classes"), toPath: root + "/c")
        XCTAssertEqual(symlink(root + "/gone.txt", root + "/c/pos/9.txt"), 0)
        // The document was skipped without a word; it is an input that is not there (66).
        XCTAssertThrowsError(try TextCorpus.read(root + "/c", options: TextInputOptions())) { e in
            XCTAssertEqual((e as? DiagnosticError)?.kind, .missingInput, "\(e)")
            XCTAssertEqual((e as? DiagnosticError)?.location, root + "/c/pos/9.txt")
        }
    }

    // MARK: The stream

    func testPaddingTruncationAndLen() throws {
        let corpus = try TextCorpus.parseLines(Array("a\tone two three four five six\nb\ttwo one\nb\t\n".utf8), name: "t")
        let v = learn(.word, corpus.texts.map { $0 }, classes: corpus.sortedLabels())
        let (s, n, d) = try stream(corpus, v, maxLength: 4)
        XCTAssertEqual(n, 3)
        XCTAssertEqual(s.fields, [Field(name: "x", dtype: .i32, shape: Shape([4])), Field(name: "y", dtype: .i64, shape: Shape([])),
                                  Field(name: "len", dtype: .i32, shape: Shape([]))])
        let one = v.encode("one")[0], two = v.encode("two")[0]
        let x = int32s(d[0])
        XCTAssertEqual(Array(x[0..<4]), v.encode("one two three four"), "cut to --max-len")
        XCTAssertEqual(Array(x[4..<8]), [two, one, 0, 0], "padded with 0 at the end")
        XCTAssertEqual(Array(x[8..<12]), [0, 0, 0, 0])
        XCTAssertEqual(int32s(d[2]), [4, 2, 0])
        XCTAssertEqual(int64s(d[1]), [0, 1, 1])
        XCTAssertEqual(s.metadata("x.vocab-size"), String(v.size))
        XCTAssertEqual(s.metadata("x.tokenizer"), "word")
        XCTAssertEqual(s.metadata("x.vocabulary"), v.fingerprint)
        XCTAssertEqual(s.classes(of: "y"), ["a", "b"])
        XCTAssertEqual(s.metadata("y.source"), "t")
        XCTAssertEqual(s.metadata("len.source"), "t", "every field names its input")
    }

    func testClassesFromTheVocabularyWithAClassMissing() throws {
        let train = try TextCorpus.read(testdata("text/reviews-train.tsv"), options: TextInputOptions())
        XCTAssertEqual(train.count, 8)
        XCTAssertEqual(train.sortedLabels(), ["neg", "neutral", "pos"])
        XCTAssertEqual(train.text(6), "Loved it: the story is great.", "CRLF line end dropped")
        let v = learn(.word, train.texts.map { $0 }, minCount: 2, classes: train.sortedLabels())
        let saved = try Vocabulary.parse(v.serialized(), name: "V")
        let test = try TextCorpus.read(testdata("text/reviews-test.tsv"), options: TextInputOptions())
        let (s, n, d) = try stream(test, saved, maxLength: 8)
        XCTAssertEqual(n, 2)
        XCTAssertEqual(s.classes(of: "y"), ["neg", "neutral", "pos"], "the whole saved list, not the labels seen")
        XCTAssertEqual(int64s(d[1]), [2, 0])
        XCTAssertTrue(int32s(d[0]).contains(1), "'awful' is unknown")

        let unknown = try TextCorpus.read(testdata("text/reviews-unknown.tsv"), options: TextInputOptions())
        XCTAssertThrowsError(try TextSource(corpus: unknown, vocabulary: saved, maxLength: 8, classesFrom: "V")) { e in
            let d = e as? DataError
            XCTAssertEqual(d?.location, testdata("text/reviews-unknown.tsv") + ":2")
            XCTAssertEqual(d?.problem, "label 'angry' is not one of the 3 classes of V")
        }
    }

    func testLearningIsDeterministic() throws {
        let texts = (0..<300).map { i in "doc \(i) word\(i % 17) w\(i % 5)x \(String(repeating: "ab", count: i % 7)) Zz\(i % 3)" }
        for kind in TokenizerKind.allCases {
            let a = learn(kind, texts, maxSize: 60, minCount: 2).serialized()
            let b = learn(kind, texts.reversed(), maxSize: 60, minCount: 2).serialized()
            XCTAssertEqual(a, b, "\(kind): the order of the documents does not matter")
        }
    }
}
