// Multi-head self-attention and the pre-norm Transformer encoder block. Input S×D.
//
// Attention: [Q K V] = x·Wqkv + bqkv (one GEMM over every step of the batch); per sample and
// head (d = D/heads columns), A = softmax(Q·Kᵀ/√d + mask), O = A·V; y = O·Wo + bo.
// The mask hides keys at padded steps (from the length field) and, with `causal`, keys after
// the query. Queries at padded steps still get an output (from the real keys); the layers
// after (time pooling, recurrent layers) ignore those steps.
// Parameters: Wqkv[D × 3D], bqkv[3D], Wo[D × D], bo[D] (PyTorch's in_proj/out_proj, transposed).
//
// Transformer block (pre-norm, as nn.TransformerEncoderLayer(norm_first=True), no dropout):
//   r = x + Attention(LayerNorm(x));  y = r + W2·act(W1·LayerNorm(r) + b1) + b2

import Compute
import TensorCore

public final class SelfAttention<T: Real>: Layer<T> {
    public let heads: Int
    public let causal: Bool
    let S: Int, D: Int, dk: Int
    private let qkv = Scratch<T>()   // N·S × 3D
    private let att = Scratch<T>()   // N × heads × S × S, softmax weights
    private let o = Scratch<T>()     // N·S × D, heads concatenated
    private let dO = Scratch<T>(), dQKV = Scratch<T>(), dP = Scratch<T>()

    init(inputShape: [Int], heads: Int, causal: Bool) {
        self.heads = heads
        self.causal = causal
        S = inputShape[0]
        D = inputShape.dropFirst().reduce(1, *)
        dk = D / heads
        super.init(inputShape: inputShape, outputShape: [inputShape[0], inputShape.dropFirst().reduce(1, *)])
    }

    public override var parameterCount: Int { 3 * D * D + 3 * D + D * D + D }

    override func initialize(_ rng: inout SeededRandom, init scheme: InitScheme) {
        // Glorot-uniform over the whole in-projection and the out-projection (PyTorch's
        // xavier_uniform_ for in_proj_weight); zero biases.
        initWeights(params, count: 3 * D * D, fanIn: D, fanOut: 3 * D, scheme: scheme == .pytorch ? .glorot : scheme, rng: &rng)
        (params + 3 * D * D).update(repeating: 0, count: 3 * D)
        initWeights(params + 3 * D * D + 3 * D, count: D * D, fanIn: D, fanOut: D, scheme: scheme, rng: &rng)
        (params + 4 * D * D + 3 * D).update(repeating: 0, count: D)
    }

    override func workingValues(batch n: Double, training: Bool) -> Double {
        let s = Double(S), d = Double(D)
        let forward = n * s * 4 * d + n * Double(heads) * s * s
        return training ? forward + n * s * 4 * d + s * s : forward
    }

    override func reserve(batch N: Int) {
        qkv.reserve(N * S * 3 * D)
        att.reserve(N * heads * S * S)
        o.reserve(N * S * D)
    }

    @_specialize(where T == Float)
    override func forward(_ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>, batch N: Int, training: Bool, rng: inout SeededRandom) {
        reserve(batch: N)
        let wqkv = params!, bqkv = params + 3 * D * D, wo = bqkv + 3 * D, bo = wo + D * D
        let q = qkv.pointer, a = att.pointer, op = o.pointer
        for r in 0..<N * S { (q + r * 3 * D).update(from: bqkv, count: 3 * D) }
        T.gemm(transA: false, transB: false, m: N * S, n: 3 * D, k: D, alpha: 1, a: x, lda: D, b: wqkv, ldb: 3 * D, beta: 1, c: q, ldc: 3 * D)
        let scale = 1 / T.sqrt(T(dk))
        for n in 0..<N {
            let L = length(n, steps: S)
            let qn = q + n * S * 3 * D
            for h in 0..<heads {
                let an = a + (n * heads + h) * S * S
                T.gemm(transA: false, transB: true, m: S, n: S, k: dk, alpha: scale, a: qn + h * dk, lda: 3 * D,
                       b: qn + D + h * dk, ldb: 3 * D, beta: 0, c: an, ldc: S)
                for i in 0..<S {
                    let row = an + i * S
                    let keys = causal ? min(L, i + 1) : L
                    guard keys > 0 else { row.update(repeating: 0, count: S); continue }
                    T.softmaxInPlace(row, count: keys)
                    for j in keys..<S { row[j] = 0 }
                }
                T.gemm(transA: false, transB: false, m: S, n: dk, k: S, alpha: 1, a: an, lda: S,
                       b: qn + 2 * D + h * dk, ldb: 3 * D, beta: 0, c: op + n * S * D + h * dk, ldc: D)
            }
        }
        for r in 0..<N * S { (y + r * D).update(from: bo, count: D) }
        T.gemm(transA: false, transB: false, m: N * S, n: D, k: D, alpha: 1, a: op, lda: D, b: wo, ldb: D, beta: 1, c: y, ldc: D)
    }

    @_specialize(where T == Float)
    override func backward(_ x: UnsafePointer<T>, _ y: UnsafePointer<T>, _ dy: UnsafePointer<T>, _ dx: UnsafeMutablePointer<T>?, batch N: Int) {
        let wqkv = params!, wo = params + 3 * D * D + 3 * D
        let gwqkv = grads!, gbqkv = grads + 3 * D * D, gwo = gbqkv + 3 * D, gbo = gwo + D * D
        dO.reserve(N * S * D)
        dQKV.reserve(N * S * 3 * D)
        dP.reserve(S * S)
        let q = qkv.pointer, a = att.pointer, op = o.pointer, dop = dO.pointer, dq = dQKV.pointer, dp = dP.pointer
        // Out-projection.
        T.gemm(transA: true, transB: false, m: D, n: D, k: N * S, alpha: 1, a: op, lda: D, b: dy, ldb: D, beta: 1, c: gwo, ldc: D)
        for r in 0..<N * S { let g = dy + r * D; for j in 0..<D { gbo[j] += g[j] } }
        T.gemm(transA: false, transB: true, m: N * S, n: D, k: D, alpha: 1, a: dy, lda: D, b: wo, ldb: D, beta: 0, c: dop, ldc: D)
        let scale = 1 / T.sqrt(T(dk))
        for n in 0..<N {
            let qn = q + n * S * 3 * D, dqn = dq + n * S * 3 * D, don = dop + n * S * D
            for h in 0..<heads {
                let an = a + (n * heads + h) * S * S
                // dA = dO·Vᵀ ; dV = Aᵀ·dO
                T.gemm(transA: false, transB: true, m: S, n: S, k: dk, alpha: 1, a: don + h * dk, lda: D,
                       b: qn + 2 * D + h * dk, ldb: 3 * D, beta: 0, c: dp, ldc: S)
                T.gemm(transA: true, transB: false, m: S, n: dk, k: S, alpha: 1, a: an, lda: S,
                       b: don + h * dk, ldb: D, beta: 0, c: dqn + 2 * D + h * dk, ldc: 3 * D)
                // softmax backward, scaled: dS = A ⊙ (dA − Σ dA⊙A) / √d (masked entries have A = 0)
                for i in 0..<S {
                    let ar = an + i * S, dr = dp + i * S
                    var s: T = 0
                    for j in 0..<S { s += ar[j] * dr[j] }
                    for j in 0..<S { dr[j] = ar[j] * (dr[j] - s) * scale }
                }
                // dQ = dS·K ; dK = dSᵀ·Q
                T.gemm(transA: false, transB: false, m: S, n: dk, k: S, alpha: 1, a: dp, lda: S,
                       b: qn + D + h * dk, ldb: 3 * D, beta: 0, c: dqn + h * dk, ldc: 3 * D)
                T.gemm(transA: true, transB: false, m: S, n: dk, k: S, alpha: 1, a: dp, lda: S,
                       b: qn + h * dk, ldb: 3 * D, beta: 0, c: dqn + D + h * dk, ldc: 3 * D)
            }
        }
        // In-projection.
        T.gemm(transA: true, transB: false, m: D, n: 3 * D, k: N * S, alpha: 1, a: x, lda: D, b: dq, ldb: 3 * D, beta: 1, c: gwqkv, ldc: 3 * D)
        for r in 0..<N * S { let g = dq + r * 3 * D; for j in 0..<3 * D { gbqkv[j] += g[j] } }
        if let dx {
            T.gemm(transA: false, transB: true, m: N * S, n: D, k: 3 * D, alpha: 1, a: dq, lda: 3 * D, b: wqkv, ldb: 3 * D, beta: 0, c: dx, ldc: D)
        }
    }
}

/// A pre-norm Transformer encoder block over S×D: attention and a position-wise feed-forward
/// network of `hidden` units (GELU), each with a residual connection.
public final class TransformerBlock<T: Real>: Layer<T> {
    public let heads: Int, hidden: Int, causal: Bool
    let S: Int, D: Int
    let ln1: LayerNorm<T>, attention: SelfAttention<T>, ln2: LayerNorm<T>
    let ff1: Dense<T>, act: Activation<T>, ff2: Dense<T>
    var parts: [Layer<T>] { [ln1, attention, ln2, ff1, act, ff2] }
    // Intermediates: a1 = ln1(x), a2 = att(a1), r = x + a2, a3 = ln2(r), a4 = ff1(a3), a5 = act(a4), a6 = ff2(a5)
    private let a1 = Scratch<T>(), a2 = Scratch<T>(), r = Scratch<T>(), a3 = Scratch<T>()
    private let a4 = Scratch<T>(), a5 = Scratch<T>(), a6 = Scratch<T>()
    private let g1 = Scratch<T>(), g2 = Scratch<T>(), gr = Scratch<T>()

    init(inputShape: [Int], heads: Int, hidden: Int, causal: Bool) {
        self.heads = heads
        self.hidden = hidden
        self.causal = causal
        S = inputShape[0]
        D = inputShape.dropFirst().reduce(1, *)
        let shape = [S, D]
        ln1 = LayerNorm(inputShape: shape)
        attention = SelfAttention(inputShape: shape, heads: heads, causal: causal)
        ln2 = LayerNorm(inputShape: shape)
        ff1 = Dense(inputShape: [D], units: hidden)
        act = Activation(inputShape: [hidden], kind: .gelu)
        ff2 = Dense(inputShape: [hidden], units: D)
        super.init(inputShape: inputShape, outputShape: shape)
    }

    public override var parameterCount: Int { parts.reduce(0) { $0 + $1.parameterCount } }

    override func bind(params: UnsafeMutablePointer<T>, grads: UnsafeMutablePointer<T>) {
        super.bind(params: params, grads: grads)
        var off = 0
        for l in parts {
            l.bind(params: params + off, grads: grads + off)
            off += l.parameterCount
        }
    }

    override func initialize(_ rng: inout SeededRandom, init scheme: InitScheme) {
        for l in parts { l.initialize(&rng, init: scheme) }
    }

    override func workingValues(batch n: Double, training: Bool) -> Double {
        let rows = n * Double(S)
        let inner = parts.reduce(0.0) { $0 + $1.workingValues(batch: $1 === ff1 || $1 === act || $1 === ff2 ? rows : n, training: training) }
        return inner + rows * (8 * Double(D) + (training ? 3 : 2) * Double(hidden))
    }

    override func reserve(batch N: Int) {
        for l in parts { l.reserve(batch: l === ff1 || l === act || l === ff2 ? N * S : N) }
        for b in [a1, a2, r, a3, a6, g1, g2, gr] { b.reserve(N * S * D) }
        for b in [a4, a5] { b.reserve(N * S * hidden) }
    }

    @_specialize(where T == Float)
    override func forward(_ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>, batch N: Int, training: Bool, rng: inout SeededRandom) {
        reserve(batch: N)
        attention.lengths = lengths
        let n = N * S * D
        ln1.forward(x, a1.pointer, batch: N, training: training, rng: &rng)
        attention.forward(a1.pointer, a2.pointer, batch: N, training: training, rng: &rng)
        for i in 0..<n { r.pointer[i] = x[i] + a2.pointer[i] }
        ln2.forward(r.pointer, a3.pointer, batch: N, training: training, rng: &rng)
        ff1.forward(a3.pointer, a4.pointer, batch: N * S, training: training, rng: &rng)
        act.forward(a4.pointer, a5.pointer, batch: N * S, training: training, rng: &rng)
        ff2.forward(a5.pointer, a6.pointer, batch: N * S, training: training, rng: &rng)
        for i in 0..<n { y[i] = r.pointer[i] + a6.pointer[i] }
    }

    @_specialize(where T == Float)
    override func backward(_ x: UnsafePointer<T>, _ y: UnsafePointer<T>, _ dy: UnsafePointer<T>, _ dx: UnsafeMutablePointer<T>?, batch N: Int) {
        let n = N * S * D
        // through the feed-forward branch (the activation's gradient in place)
        a5Grad.reserve(N * S * hidden)
        let dh = a5Grad.pointer
        ff2.backward(a5.pointer, a6.pointer, dy, dh, batch: N * S)
        act.backward(a4.pointer, a5.pointer, dh, dh, batch: N * S)
        ff1.backward(a3.pointer, a4.pointer, dh, g1.pointer, batch: N * S)
        ln2.backward(r.pointer, a3.pointer, g1.pointer, g2.pointer, batch: N)
        let dr = gr.pointer
        for i in 0..<n { dr[i] = dy[i] + g2.pointer[i] }
        attention.backward(a1.pointer, a2.pointer, dr, g1.pointer, batch: N)
        ln1.backward(x, a1.pointer, g1.pointer, g2.pointer, batch: N)
        if let dx { for i in 0..<n { dx[i] = dr[i] + g2.pointer[i] } }
    }

    private let a5Grad = Scratch<T>()
}
