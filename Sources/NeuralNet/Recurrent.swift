// Recurrent layers: SimpleRNN, LSTM and GRU, one direction or both, returning the last state
// or the whole sequence. Input S×D (steps × features; trailing axes are flattened into D).
//
// Gates and parameters follow PyTorch (nn.RNN / nn.LSTM / nn.GRU), per direction:
//   Wx[D × G·H], Wh[H × G·H], bx[G·H], bh[G·H]    G = 1 (rnn), 4 (lstm: i f g o), 3 (gru: r z n)
//   rnn   h' = tanh(x·Wx + bx + h·Wh + bh)
//   lstm  i,f,o = σ(…), g = tanh(…), c' = f·c + i·g, h' = o·tanh(c')
//   gru   r,z = σ(…), n = tanh(x·Wx_n + bx_n + r·(h·Wh_n + bh_n)), h' = (1 − z)·n + z·h
// The input projection is one GEMM over every step of every sample (S·N rows); each step then
// adds h·Wh, one GEMM over the batch. With a length field, a sample's state stops changing
// after its last real step (and, backwards, starts at it), so padding never enters the state;
// sequence outputs at padded steps are 0. Bidirectional concatenates [forward, backward].
// Layout inside: time-major (S, N, ·), so that each step's rows are contiguous.

import Compute
import TensorCore

public enum CellKind: String, Sendable, CaseIterable {
    case rnn, lstm, gru

    var gates: Int {
        switch self {
        case .rnn: return 1
        case .lstm: return 4
        case .gru: return 3
        }
    }
}

public final class Recurrent<T: Real>: Layer<T> {
    public let kind: CellKind
    public let units: Int
    public let sequences: Bool
    public let bidirectional: Bool
    let S: Int, D: Int, H: Int, G: Int
    var directions: Int { bidirectional ? 2 : 1 }
    /// Parameters of one direction.
    var directionSize: Int { D * G * H + H * G * H + 2 * G * H }

    // Forward state, per direction, kept for backward.
    private let xT = Scratch<T>()                       // S×N×D, the input time-major
    private var act: [Scratch<T>] = [Scratch(), Scratch()] // S×N×GH, gate activations by time
    private var hs: [Scratch<T>] = [Scratch(), Scratch()]  // (S+1)×N×H, states by processing step
    private var cs: [Scratch<T>] = [Scratch(), Scratch()]  // (S+1)×N×H, lstm cells
    private var hn: [Scratch<T>] = [Scratch(), Scratch()]  // S×N×H, gru h·Wh_n + bh_n by time
    private let stepBias = Scratch<T>()                  // GH: the bias each step's rows start from
    // Inference: a step's inputs beside the state, its gate rows, the lstm cells or the gru's
    // input projection.
    private let xh = Scratch<T>(), zStep = Scratch<T>(), cStep = Scratch<T>()  // N×(D+H), N×GH, N×H
    private let xStep = Scratch<T>()                     // N×GH
    // Backward work.
    private let dAx = Scratch<T>(), dAh = Scratch<T>()  // S×N×GH by time
    private let hPrev = Scratch<T>()                     // S×N×H, states before each time
    private let dh = Scratch<T>(), dc = Scratch<T>()     // N×H
    private let dxT = Scratch<T>()                       // S×N×D
    private var lens: [Int] = []

    init(inputShape: [Int], kind: CellKind, units: Int, sequences: Bool, bidirectional: Bool) {
        self.kind = kind
        self.units = units
        self.sequences = sequences
        self.bidirectional = bidirectional
        S = inputShape[0]
        D = inputShape.dropFirst().reduce(1, *)
        H = units
        G = kind.gates
        let out = units * (bidirectional ? 2 : 1)
        super.init(inputShape: inputShape, outputShape: sequences ? [inputShape[0], out] : [out])
    }

    public override var parameterCount: Int { directions * directionSize }
    override var wholeBatch: Bool { true }

    override func initialize(_ rng: inout SeededRandom, init scheme: InitScheme) {
        for d in 0..<directions {
            let p = params + d * directionSize
            let GH = G * H
            switch scheme {
            case .pytorch:
                // PyTorch: every weight and bias U(±1/√H).
                initWeights(p, count: directionSize, fanIn: H, fanOut: 0, scheme: .pytorch, rng: &rng)
            default:
                // Keras: Glorot-uniform input weights, orthogonal recurrent weights, zero
                // biases with the LSTM forget gate's set to 1.
                initWeights(p, count: D * GH, fanIn: D, fanOut: GH, scheme: scheme, rng: &rng)
                orthogonalRows(p + D * GH, rows: H, cols: GH, rng: &rng)
                (p + D * GH + H * GH).update(repeating: 0, count: 2 * GH)
                if kind == .lstm { (p + D * GH + H * GH + H).update(repeating: 1, count: H) }
            }
        }
    }

    override func workingValues(batch n: Double, training: Bool) -> Double {
        let rows = n * Double(S), gh = Double(G * H), h = Double(H)
        if !training { return n * (Double(D) + 2 * h + (kind == .gru ? 2 : 1) * gh) }  // inferDirection's buffers
        let forward = rows * Double(D) + Double(directions) * rows * (gh + 3 * h)
        return training ? forward + rows * (2 * gh + h + Double(D)) : forward
    }

    /// Nothing ahead of use: the training pass's buffers (reserveTraining) are many times
    /// inference's, and Network.reserve runs before every forward pass, so reserving them here
    /// filled an address-space limit (`ulimit -v`) with buffers that prediction never touches.
    override func reserve(batch N: Int) {}

    private func reserveTraining(batch N: Int) {
        let GH = G * H
        xT.reserve(S * N * D)
        stepBias.reserve(GH)
        for d in 0..<directions {
            act[d].reserve(S * N * GH)
            hs[d].reserve((S + 1) * N * H)
            if kind == .lstm { cs[d].reserve((S + 1) * N * H) }
            if kind == .gru { hn[d].reserve(S * N * H) }
        }
    }

    @_specialize(where T == Float)
    override func forward(_ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>, batch N: Int, training: Bool, rng: inout SeededRandom) {
        lens = (0..<N).map { length($0, steps: S) }
        if !training {
            xh.reserve(N * (D + H))
            zStep.reserve(N * G * H)
            (kind == .gru ? xStep : cStep).reserve(N * (kind == .gru ? G : 1) * H)
            stepBias.reserve(G * H)
            if sequences { y.update(repeating: 0, count: N * S * H * directions) }
            for d in 0..<directions { inferDirection(d, N: N, x: x, y: y) }
            return
        }
        reserveTraining(batch: N)
        let xt = xT.pointer
        for n in 0..<N { for t in 0..<S { (xt + (t * N + n) * D).update(from: x + (n * S + t) * D, count: D) } }
        let out = H * directions
        if sequences { y.update(repeating: 0, count: N * S * out) }
        for d in 0..<directions { forwardDirection(d, N: N, y: y) }
    }

    @_specialize(where T == Float)
    private func forwardDirection(_ d: Int, N: Int, y: UnsafeMutablePointer<T>) {
        let GH = G * H
        let p = params + d * directionSize
        let wx = p, wh = p + D * GH, bx = p + D * GH + H * GH, bh = bx + GH
        let a = act[d].pointer, h = hs[d].pointer
        let c = kind == .lstm ? cs[d].pointer : h
        let hnb = kind == .gru ? hn[d].pointer : h
        // Input projection for every step at once: a = xT·Wx + bx, and for rnn and lstm + bh,
        // so that each step's h·Wh is added straight into its rows of `a` (GRU keeps h·Wh + bh
        // apart: its n gate scales the part of it that is its own by r).
        let folded = kind != .gru
        let bp = stepBias.pointer
        for j in 0..<GH { bp[j] = folded ? bx[j] + bh[j] : bx[j] }
        for r in 0..<S * N { (a + r * GH).update(from: bp, count: GH) }
        T.gemm(transA: false, transB: false, m: S * N, n: GH, k: D, alpha: 1, a: xT.pointer, lda: D, b: wx, ldb: GH, beta: 1, c: a, ldc: GH)
        h.update(repeating: 0, count: N * H)
        if kind == .lstm { c.update(repeating: 0, count: N * H) }
        let z = dAh  // gru: a step's h·Wh + bh (dAh is free during forward)
        if !folded { z.reserve(N * GH) }
        let zp = z.pointer
        let out = H * directions
        for k in 0..<S {
            let t = d == 0 ? k : S - 1 - k
            let hp = h + k * N * H, hq = h + (k + 1) * N * H
            // The first step's h is 0: nothing to add.
            if folded {
                if k > 0 {
                    T.gemm(transA: false, transB: false, m: N, n: GH, k: H, alpha: 1, a: hp, lda: H, b: wh, ldb: GH, beta: 1, c: a + t * N * GH, ldc: GH)
                }
            } else {
                for n in 0..<N { (zp + n * GH).update(from: bh, count: GH) }
                if k > 0 {
                    T.gemm(transA: false, transB: false, m: N, n: GH, k: H, alpha: 1, a: hp, lda: H, b: wh, ldb: GH, beta: 1, c: zp, ldc: GH)
                }
            }
            for n in 0..<N {
                let hpn = hp + n * H, hqn = hq + n * H
                guard t < lens[n] else {
                    // padding: the state carries over unchanged
                    hqn.update(from: hpn, count: H)
                    if kind == .lstm { (c + (k + 1) * N * H + n * H).update(from: c + k * N * H + n * H, count: H) }
                    continue
                }
                let an = a + (t * N + n) * GH, zn = zp + n * GH
                switch kind {
                case .rnn:
                    T.tanhInPlace(an, count: H)
                    hqn.update(from: an, count: H)
                case .lstm:
                    // i, f, g, o activated in `an`; c and h of this step
                    T.lstmStep(an, hidden: H, cPrev: c + k * N * H + n * H, c: c + (k + 1) * N * H + n * H, h: hqn)
                case .gru:
                    let hh = hnb + (t * N + n) * H
                    for j in 0..<2 * H { an[j] += zn[j] }
                    T.sigmoidInPlace(an, count: 2 * H)         // r, z
                    for j in 0..<H {
                        hh[j] = zn[2 * H + j]
                        an[2 * H + j] += an[j] * hh[j]
                    }
                    T.tanhInPlace(an + 2 * H, count: H)        // n
                    for j in 0..<H { hqn[j] = (1 - an[H + j]) * an[2 * H + j] + an[H + j] * hpn[j] }
                }
                if sequences { (y + (n * S + t) * out + d * H).update(from: hqn, count: H) }
            }
        }
        if !sequences {
            for n in 0..<N { (y + n * out + d * H).update(from: h + S * N * H + n * H, count: H) }
        }
    }

    /// Inference: for rnn and lstm one GEMM a step, [x_t, h]·[Wx; Wh] (the two matrices lie
    /// one after the other in the parameters, so the stacked one is there as it is), into one
    /// step's gate rows; for gru two, x_t·Wx and h·Wh apart (its n gate scales h's part by r).
    /// No activations are kept for a backward pass. Training's projection of every step at
    /// once is S·N·GH values (131 MB for lstm-text at batch 1000) that went through memory four
    /// times; here a step's rows stay in cache.
    @_specialize(where T == Float)
    private func inferDirection(_ d: Int, N: Int, x: UnsafePointer<T>, y: UnsafeMutablePointer<T>) {
        let GH = G * H, K = D + H
        let p = params + d * directionSize
        let wh = p + D * GH, bx = p + D * GH + H * GH, bh = bx + GH
        let gru = kind == .gru
        let bp = stepBias.pointer
        for j in 0..<GH { bp[j] = gru ? bh[j] : bx[j] + bh[j] }
        let v = xh.pointer, z = zStep.pointer, c = cStep.pointer, ax = xStep.pointer
        for n in 0..<N { (v + n * K + D).update(repeating: 0, count: H) }
        if kind == .lstm { c.update(repeating: 0, count: N * H) }
        let out = H * directions
        for k in 0..<S {
            let t = d == 0 ? k : S - 1 - k
            for n in 0..<N {
                (v + n * K).update(from: x + (n * S + t) * D, count: D)
                (z + n * GH).update(from: bp, count: GH)
                if gru { (ax + n * GH).update(from: bx, count: GH) }
            }
            // The first step's h is 0: x_t·Wx alone.
            if gru {
                T.gemm(transA: false, transB: false, m: N, n: GH, k: D, alpha: 1, a: v, lda: K, b: p, ldb: GH, beta: 1, c: ax, ldc: GH)
                if k > 0 { T.gemm(transA: false, transB: false, m: N, n: GH, k: H, alpha: 1, a: v + D, lda: K, b: wh, ldb: GH, beta: 1, c: z, ldc: GH) }
            } else {
                T.gemm(transA: false, transB: false, m: N, n: GH, k: k == 0 ? D : K, alpha: 1, a: v, lda: K, b: p, ldb: GH, beta: 1, c: z, ldc: GH)
            }
            // A sample past its length keeps its state (padding never reaches it).
            for n in 0..<N where t < lens[n] {
                let zn = z + n * GH, hn = v + n * K + D
                switch kind {
                case .lstm:
                    T.lstmStep(zn, hidden: H, cPrev: c + n * H, c: c + n * H, h: hn)
                case .rnn:
                    T.tanhInPlace(zn, count: H)
                    hn.update(from: zn, count: H)
                case .gru:
                    // as the training pass: r, z = σ(x·Wx + bx + h·Wh + bh), n = tanh(x·Wx_n +
                    // bx_n + r·(h·Wh_n + bh_n)), h' = (1 − z)·n + z·h
                    let an = ax + n * GH
                    for j in 0..<2 * H { an[j] += zn[j] }
                    T.sigmoidInPlace(an, count: 2 * H)
                    for j in 0..<H { an[2 * H + j] += an[j] * zn[2 * H + j] }
                    T.tanhInPlace(an + 2 * H, count: H)
                    for j in 0..<H { hn[j] = (1 - an[H + j]) * an[2 * H + j] + an[H + j] * hn[j] }
                }
                if sequences { (y + (n * S + t) * out + d * H).update(from: hn, count: H) }
            }
        }
        if !sequences { for n in 0..<N { (y + n * out + d * H).update(from: v + n * K + D, count: H) } }
    }

    @_specialize(where T == Float)
    override func backward(_ x: UnsafePointer<T>, _ y: UnsafePointer<T>, _ dy: UnsafePointer<T>, _ dx: UnsafeMutablePointer<T>?, batch N: Int) {
        let GH = G * H
        dAx.reserve(S * N * GH)
        if kind == .gru { dAh.reserve(S * N * GH) }
        if bidirectional { hPrev.reserve(S * N * H) }
        dh.reserve(N * H)
        dc.reserve(N * H)
        dxT.reserve(S * N * D)
        for d in 0..<directions { backwardDirection(d, N: N, dy: dy, accumulate: d > 0, inputGradient: dx != nil) }
        guard let dx else { return }
        let g = dxT.pointer
        for n in 0..<N { for t in 0..<S { (dx + (n * S + t) * D).update(from: g + (t * N + n) * D, count: D) } }
    }

    @_specialize(where T == Float)
    private func backwardDirection(_ d: Int, N: Int, dy: UnsafePointer<T>, accumulate: Bool, inputGradient: Bool) {
        let GH = G * H
        let p = params + d * directionSize, gp = grads + d * directionSize
        let wx = p, wh = p + D * GH
        let gwx = gp, gwh = gp + D * GH, gbx = gp + D * GH + H * GH, gbh = gbx + GH
        let a = act[d].pointer, h = hs[d].pointer
        let c = kind == .lstm ? cs[d].pointer : h
        let hnb = kind == .gru ? hn[d].pointer : h
        let dax = dAx.pointer, dah = kind == .gru ? dAh.pointer : dAx.pointer
        // The states before each time, time-major, for Wh's gradient: forwards, the states
        // as the forward pass kept them; backwards, those in reverse order.
        let dhp = dh.pointer, dcp = dc.pointer, hpv = d == 0 ? h : hPrev.pointer
        let out = H * directions
        dhp.update(repeating: 0, count: N * H)
        dcp.update(repeating: 0, count: N * H)
        if !sequences { for n in 0..<N { (dhp + n * H).update(from: dy + n * out + d * H, count: H) } }
        for k in stride(from: S - 1, through: 0, by: -1) {
            let t = d == 0 ? k : S - 1 - k
            let hp = h + k * N * H
            if d > 0 { (hpv + t * N * H).update(from: hp, count: N * H) }
            for n in 0..<N {
                let dxn = dax + (t * N + n) * GH, dhn = dah + (t * N + n) * GH
                guard t < lens[n] else {
                    dxn.update(repeating: 0, count: GH)
                    if kind == .gru { dhn.update(repeating: 0, count: GH) }
                    continue
                }
                let an = a + (t * N + n) * GH, dhv = dhp + n * H, hpn = hp + n * H
                if sequences { let g = dy + (n * S + t) * out + d * H; for j in 0..<H { dhv[j] += g[j] } }
                switch kind {
                case .rnn:
                    for j in 0..<H {
                        dxn[j] = dhv[j] * (1 - an[j] * an[j])
                        dhv[j] = 0
                    }
                case .lstm:
                    T.lstmStepBackward(an, hidden: H, cPrev: c + k * N * H + n * H, c: c + (k + 1) * N * H + n * H,
                                       dh: dhv, dc: dcp + n * H, da: dxn)
                case .gru:
                    let hh = hnb + (t * N + n) * H
                    for j in 0..<H {
                        let r = an[j], zz = an[H + j], nv = an[2 * H + j]
                        let dn = dhv[j] * (1 - zz) * (1 - nv * nv)
                        let dz = dhv[j] * (hpn[j] - nv) * zz * (1 - zz)
                        let dr = dn * hh[j] * r * (1 - r)
                        dxn[j] = dr; dxn[H + j] = dz; dxn[2 * H + j] = dn
                        dhn[j] = dr; dhn[H + j] = dz; dhn[2 * H + j] = dn * r
                        dhv[j] *= zz
                    }
                }
            }
            // dh_prev += dA_h · Whᵀ (rows of padded samples are zero: their dh carries over)
            T.gemm(transA: false, transB: true, m: N, n: H, k: GH, alpha: 1, a: dah + t * N * GH, lda: GH, b: wh, ldb: GH, beta: 1, c: dhp, ldc: H)
        }
        // Parameter gradients over every step at once.
        T.gemm(transA: true, transB: false, m: D, n: GH, k: S * N, alpha: 1, a: xT.pointer, lda: D, b: dax, ldb: GH, beta: 1, c: gwx, ldc: GH)
        T.gemm(transA: true, transB: false, m: H, n: GH, k: S * N, alpha: 1, a: hpv, lda: H, b: dah, ldb: GH, beta: 1, c: gwh, ldc: GH)
        for r in 0..<S * N {
            let gx = dax + r * GH, gh = dah + r * GH
            for j in 0..<GH { gbx[j] += gx[j]; gbh[j] += gh[j] }
        }
        // The first layer's input gradient is not needed.
        guard inputGradient else { return }
        T.gemm(transA: false, transB: true, m: S * N, n: D, k: GH, alpha: 1, a: dax, lda: GH, b: wx, ldb: GH, beta: accumulate ? 1 : 0, c: dxT.pointer, ldc: D)
    }
}

/// Fills a rows×cols matrix (rows ≤ cols) with orthonormal rows: Gram–Schmidt on Gaussian
/// rows, as Keras's `orthogonal` initializer gives for a recurrent kernel.
func orthogonalRows<T: Real>(_ m: UnsafeMutablePointer<T>, rows: Int, cols: Int, rng: inout SeededRandom) {
    var a = (0..<rows * cols).map { _ in rng.nextGaussian() }
    for r in 0..<rows {
        for _ in 0..<2 {  // twice: Gram–Schmidt's second pass restores orthogonality lost to rounding
            for q in 0..<r {
                var dot = 0.0
                for j in 0..<cols { dot += a[r * cols + j] * a[q * cols + j] }
                for j in 0..<cols { a[r * cols + j] -= dot * a[q * cols + j] }
            }
        }
        var norm = 0.0
        for j in 0..<cols { norm += a[r * cols + j] * a[r * cols + j] }
        let inv = 1 / max(norm.squareRoot(), 1e-12)
        for j in 0..<cols { a[r * cols + j] *= inv }
    }
    for i in 0..<rows * cols { m[i] = T(a[i]) }
}

