// Layers over sequences that are not recurrent: token embedding, learned positions, layer
// normalization and pooling over time. A sequence sample is S×D (steps, features), row-major;
// `lengths` (set by the network) says how many leading steps are real, the rest padding.

import Compute
import TensorCore

/// Embedding: token ids (S values, carried as floats) → S×D rows of a V×D table.
/// Ids are checked by the data path (`Network.invalidToken`) before they get here; one that
/// still falls outside 0..<V reads the unknown-token row 1.
public final class Embedding<T: Real>: Layer<T> {
    public let vocabulary: Int
    public let dim: Int

    init(inputShape: [Int], vocabulary: Int, dim: Int) {
        self.vocabulary = vocabulary
        self.dim = dim
        super.init(inputShape: inputShape, outputShape: [inputShape.reduce(1, *), dim])
    }

    public override var parameterCount: Int { vocabulary * dim }

    override func initialize(_ rng: inout SeededRandom, init scheme: InitScheme) {
        // PyTorch's nn.Embedding draws N(0, 1); Keras's uniform(±0.05).
        for i in 0..<parameterCount {
            params[i] = scheme == .pytorch ? T(rng.nextGaussian()) : T((rng.nextUnitDouble() * 2 - 1) * 0.05)
        }
    }

    @inline(__always)
    func row(_ v: T) -> Int {
        let i = Int(exactly: Double(v)) ?? 1
        return i >= 0 && i < vocabulary ? i : min(1, vocabulary - 1)
    }

    @_specialize(where T == Float)
    override func forward(_ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>, batch: Int, training: Bool, rng: inout SeededRandom) {
        let S = inputSize, D = dim
        for i in 0..<batch * S { (y + i * D).update(from: params + row(x[i]) * D, count: D) }
    }

    @_specialize(where T == Float)
    override func backward(_ x: UnsafePointer<T>, _ y: UnsafePointer<T>, _ dy: UnsafePointer<T>, _ dx: UnsafeMutablePointer<T>?, batch: Int) {
        let S = inputSize, D = dim
        for i in 0..<batch * S {
            let g = grads + row(x[i]) * D, d = dy + i * D
            for j in 0..<D { g[j] += d[j] }
        }
        // Ids are not differentiable.
        dx?.update(repeating: 0, count: batch * S)
    }
}

/// Learned positional embedding: y = x + P, P an S×D table (one row per step).
public final class PositionEmbedding<T: Real>: Layer<T> {
    init(inputShape: [Int]) {
        super.init(inputShape: inputShape, outputShape: inputShape)
    }

    public override var parameterCount: Int { inputSize }

    override func initialize(_ rng: inout SeededRandom, init scheme: InitScheme) {
        for i in 0..<parameterCount { params[i] = T(rng.nextGaussian() * 0.02) }
    }

    @_specialize(where T == Float)
    override func forward(_ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>, batch: Int, training: Bool, rng: inout SeededRandom) {
        let n = inputSize
        for b in 0..<batch {
            let xs = x + b * n, ys = y + b * n
            for i in 0..<n { ys[i] = xs[i] + params[i] }
        }
    }

    @_specialize(where T == Float)
    override func backward(_ x: UnsafePointer<T>, _ y: UnsafePointer<T>, _ dy: UnsafePointer<T>, _ dx: UnsafeMutablePointer<T>?, batch: Int) {
        let n = inputSize
        for b in 0..<batch {
            let d = dy + b * n
            for i in 0..<n { grads[i] += d[i] }
        }
        dx?.update(from: dy, count: batch * n)
    }
}

/// Layer normalization over the last axis: y = γ·(x − μ)/√(σ² + ε) + β per row, ε = 1e-5
/// (PyTorch's). Parameters: γ[D] then β[D].
public final class LayerNorm<T: Real>: Layer<T> {
    public let epsilon: T = 1e-5
    let D: Int
    private let stats = Scratch<T>()  // per row: mean, 1/σ

    init(inputShape: [Int]) {
        D = inputShape.last ?? 1
        super.init(inputShape: inputShape, outputShape: inputShape)
    }

    public override var parameterCount: Int { 2 * D }

    override func initialize(_ rng: inout SeededRandom, init scheme: InitScheme) {
        params.update(repeating: 1, count: D)
        (params + D).update(repeating: 0, count: D)
    }

    override func reserve(batch: Int) { stats.reserve(2 * batch * inputSize / D) }

    @_specialize(where T == Float)
    override func forward(_ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>, batch: Int, training: Bool, rng: inout SeededRandom) {
        let rows = batch * inputSize / D
        stats.reserve(2 * rows)
        let st = stats.pointer, gamma = params!, beta = params + D
        let invD = 1 / T(D)
        for r in 0..<rows {
            let xr = x + r * D, yr = y + r * D
            var mean: T = 0
            for j in 0..<D { mean += xr[j] }
            mean *= invD
            var v: T = 0
            for j in 0..<D { let d = xr[j] - mean; v += d * d }
            let inv = 1 / T.sqrt(v * invD + epsilon)
            st[2 * r] = mean
            st[2 * r + 1] = inv
            for j in 0..<D { yr[j] = (xr[j] - mean) * inv * gamma[j] + beta[j] }
        }
    }

    @_specialize(where T == Float)
    override func backward(_ x: UnsafePointer<T>, _ y: UnsafePointer<T>, _ dy: UnsafePointer<T>, _ dx: UnsafeMutablePointer<T>?, batch: Int) {
        let rows = batch * inputSize / D
        let st = stats.pointer, gamma = params!, dgamma = grads!, dbeta = grads + D
        let invD = 1 / T(D)
        for r in 0..<rows {
            let xr = x + r * D, dr = dy + r * D
            let mean = st[2 * r], inv = st[2 * r + 1]
            // dx = inv·(g − mean(g) − x̂·mean(g·x̂)), g = dy·γ
            var sg: T = 0, sgx: T = 0
            for j in 0..<D {
                let xh = (xr[j] - mean) * inv
                dgamma[j] += dr[j] * xh
                dbeta[j] += dr[j]
                let g = dr[j] * gamma[j]
                sg += g
                sgx += g * xh
            }
            guard let dx else { continue }
            let dxr = dx + r * D
            sg *= invD
            sgx *= invD
            for j in 0..<D {
                let xh = (xr[j] - mean) * inv
                dxr[j] = inv * (dr[j] * gamma[j] - sg - xh * sgx)
            }
        }
    }
}

public enum TimePoolKind: String, Sendable, CaseIterable {
    case mean, max, last
}

/// Pooling over time: S×D → D, over each sample's real steps only (mean, max, or the last
/// real step). A sample of length 0 gives zeros.
public final class TimePool<T: Real>: Layer<T> {
    public let kind: TimePoolKind
    let S: Int, D: Int
    private let argmax = Scratch<T>()

    init(inputShape: [Int], kind: TimePoolKind) {
        self.kind = kind
        S = inputShape[0]
        D = inputShape.dropFirst().reduce(1, *)
        super.init(inputShape: inputShape, outputShape: [inputShape.dropFirst().reduce(1, *)])
    }


    override func reserve(batch: Int) { if kind == .max { argmax.reserve(batch * D) } }

    @_specialize(where T == Float)
    override func forward(_ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>, batch: Int, training: Bool, rng: inout SeededRandom) {
        if kind == .max { argmax.reserve(batch * D) }
        for n in 0..<batch {
            let L = length(n, steps: S)
            let xs = x + n * S * D, ys = y + n * D
            guard L > 0 else { ys.update(repeating: 0, count: D); continue }
            switch kind {
            case .mean:
                ys.update(from: xs, count: D)
                for t in 1..<max(L, 1) { let r = xs + t * D; for j in 0..<D { ys[j] += r[j] } }
                let inv = 1 / T(L)
                for j in 0..<D { ys[j] *= inv }
            case .max:
                let am = argmax.pointer + n * D
                ys.update(from: xs, count: D)
                am.update(repeating: 0, count: D)
                for t in 1..<max(L, 1) {
                    let r = xs + t * D
                    for j in 0..<D where r[j] > ys[j] { ys[j] = r[j]; am[j] = T(t) }
                }
            case .last:
                ys.update(from: xs + (L - 1) * D, count: D)
            }
        }
    }

    @_specialize(where T == Float)
    override func backward(_ x: UnsafePointer<T>, _ y: UnsafePointer<T>, _ dy: UnsafePointer<T>, _ dx: UnsafeMutablePointer<T>?, batch: Int) {
        guard let dx else { return }
        dx.update(repeating: 0, count: batch * S * D)
        for n in 0..<batch {
            let L = length(n, steps: S)
            guard L > 0 else { continue }
            let ds = dx + n * S * D, g = dy + n * D
            switch kind {
            case .mean:
                let inv = 1 / T(L)
                for t in 0..<L { let r = ds + t * D; for j in 0..<D { r[j] = g[j] * inv } }
            case .max:
                let am = argmax.pointer + n * D
                for j in 0..<D { ds[Int(am[j]) * D + j] = g[j] }
            case .last:
                (ds + (L - 1) * D).update(from: g, count: D)
            }
        }
    }
}
