// Seeded random numbers: xoshiro256** seeded through SplitMix64, so `--seed` reproduces every
// random choice (initialization, shuffling, dropout) exactly.

/// A small, fast, seedable generator (xoshiro256**).
public struct SeededRandom: RandomNumberGenerator, Sendable {
    private var s: (UInt64, UInt64, UInt64, UInt64)

    public init(seed: UInt64) {
        var x = seed
        s = (Self.splitmix(&x), Self.splitmix(&x), Self.splitmix(&x), Self.splitmix(&x))
    }

    /// Generator `stream` of a run seeded with `seed` (one per worker): the streams of one seed,
    /// and those of nearby seeds, start from unrelated states. Seeding worker k with seed + k
    /// made seed 1's second worker seed 2's first.
    public init(seed: UInt64, stream: UInt64) {
        var k = stream
        self.init(seed: seed ^ Self.splitmix(&k))
    }

    private static func splitmix(_ x: inout UInt64) -> UInt64 {
        x &+= 0x9E37_79B9_7F4A_7C15
        var z = x
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    @inline(__always)
    public mutating func next() -> UInt64 {
        let result = ((s.1 &* 5) << 7 | (s.1 &* 5) >> 57) &* 9
        let t = s.1 << 17
        s.2 ^= s.0
        s.3 ^= s.1
        s.1 ^= s.2
        s.0 ^= s.3
        s.2 ^= t
        s.3 = (s.3 << 45) | (s.3 >> 19)
        return result
    }

    /// The generator's state, to be saved and restored (a resumed training run continues the
    /// sequence of the run it resumes).
    public var state: [UInt64] { [s.0, s.1, s.2, s.3] }

    /// A generator in `state`; nil for a state that is not four words or is all zero (the one
    /// state xoshiro never leaves).
    public init?(state: [UInt64]) {
        guard state.count == 4, state.contains(where: { $0 != 0 }) else { return nil }
        s = (state[0], state[1], state[2], state[3])
    }

    /// Uniform in [0, 1) with 24 random bits.
    @inline(__always)
    public mutating func nextUnitFloat() -> Float { Float(next() >> 40) * (1.0 / 16_777_216.0) }

    /// Uniform in [0, 1) with 53 random bits.
    @inline(__always)
    public mutating func nextUnitDouble() -> Double { Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0) }

    /// Standard normal (Box–Muller).
    public mutating func nextGaussian() -> Double {
        let u1 = max(nextUnitDouble(), 1e-300), u2 = nextUnitDouble()
        return (-2 * _log(u1)).squareRoot() * _cos(2 * Double.pi * u2)
    }

    /// Two independent standard normals (Marsaglia's polar method): one logarithm and one
    /// square root for the pair, and no trigonometry, where `nextGaussian` spends a logarithm
    /// and a cosine on each value.
    public mutating func nextGaussianPair() -> (Double, Double) {
        while true {
            let u = nextUnitDouble() * 2 - 1, v = nextUnitDouble() * 2 - 1
            let s = u * u + v * v
            if s > 0 && s < 1 {
                let f = (-2 * _log(s) / s).squareRoot()
                return (u * f, v * f)
            }
        }
    }

    /// Fisher–Yates shuffle of `a`.
    public mutating func shuffle<T>(_ a: inout [T]) {
        guard a.count > 1 else { return }
        for i in stride(from: a.count - 1, to: 0, by: -1) {
            let j = Int(next() % UInt64(i + 1))
            a.swapAt(i, j)
        }
    }
}

import Foundation
@inline(__always) func _log(_ x: Double) -> Double { Foundation.log(x) }
@inline(__always) func _cos(_ x: Double) -> Double { Foundation.cos(x) }
