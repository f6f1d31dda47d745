// Batch normalization over the last axis (channels), statistics over every other position of
// the batch. Parameters: gamma[C], beta[C] (trained), running mean[C] and variance[C] (not
// trained; updated in forward with Keras's momentum 0.99, used at inference). ε = 1e-3.

import Compute
import TensorCore

public final class BatchNorm<T: Real>: Layer<T> {
    public let momentum: T = 0.99
    public let epsilon: T = 0.001
    let C: Int
    private let xhat = Scratch<T>()
    private let invStd = Scratch<T>()
    /// Whether the last forward normalized with the batch's statistics (training) or the
    /// running ones (inference, where the statistics are constants for backward).
    private var batchStatistics = true
    /// Replicas in data-parallel training leave the running statistics to the primary.
    var updatesRunningStatistics = true
    /// In data-parallel training, the sums this layer's replicas share, and this one's rank:
    /// every replica normalizes by the statistics of the whole batch (ReplicaStatistics).
    private var shared: ReplicaStatistics<T>?
    private var rank = 0
    /// The positions the last training forward's statistics were over (every replica's).
    private var statisticRows = 0

    init(inputShape: [Int]) {
        C = inputShape.last!
        super.init(inputShape: inputShape, outputShape: inputShape)
    }

    public override var parameterCount: Int { 4 * C }
    public override var trainableCount: Int { 2 * C }
    override var wholeBatch: Bool { true }

    @_specialize(where T == Float)
    override func initialize(_ rng: inout SeededRandom, init scheme: InitScheme) {
        params.update(repeating: 1, count: C)          // gamma
        (params + C).update(repeating: 0, count: C)    // beta
        (params + 2 * C).update(repeating: 0, count: C) // running mean
        (params + 3 * C).update(repeating: 1, count: C) // running variance
    }

    @_specialize(where T == Float)
    override func workingValues(batch n: Double, training: Bool) -> Double { n * Double(inputSize) }

    /// Makes this layer replica `rank` of those that share `statistics`.
    func share(_ statistics: ReplicaStatistics<T>, rank: Int) {
        precondition(statistics.channels == C)  // trap-ok: the trainer links layers of one network
        shared = statistics
        self.rank = rank
    }

    override func reserve(batch: Int) {
        xhat.reserve(batch * inputSize)
        invStd.reserve(C)
    }

    @_specialize(where T == Float)
    override func forward(_ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>, batch: Int, training: Bool, rng: inout SeededRandom) {
        let rows = batch * inputSize / C
        let gamma: UnsafeMutablePointer<T> = params, beta = params + C, rmean = params + 2 * C, rvar = params + 3 * C
        let inv = invStd.pointer, xh = xhat.pointer
        if training {
            var mean = [T](repeating: 0, count: C), v = [T](repeating: 0, count: C)
            for r in 0..<rows { for c in 0..<C { mean[c] += x[r * C + c] } }
            var m = rows
            if let shared { m = mean.withUnsafeMutableBufferPointer { shared.sum($0.baseAddress!, rows: rows, rank: rank, phase: .mean) } }
            for c in 0..<C { mean[c] /= T(m) }
            for r in 0..<rows { for c in 0..<C { let d = x[r * C + c] - mean[c]; v[c] += d * d } }
            if let shared { v.withUnsafeMutableBufferPointer { _ = shared.sum($0.baseAddress!, rows: rows, rank: rank, phase: .variance) } }
            statisticRows = m
            for c in 0..<C {
                v[c] /= T(m)
                inv[c] = 1 / T.sqrt(v[c] + epsilon)
                if updatesRunningStatistics {
                    rmean[c] = momentum * rmean[c] + (1 - momentum) * mean[c]
                    rvar[c] = momentum * rvar[c] + (1 - momentum) * v[c]
                }
            }
            for r in 0..<rows {
                for c in 0..<C {
                    let h = (x[r * C + c] - mean[c]) * inv[c]
                    xh[r * C + c] = h
                    y[r * C + c] = gamma[c] * h + beta[c]
                }
            }
        } else {
            for c in 0..<C { inv[c] = 1 / T.sqrt(rvar[c] + epsilon) }
            for r in 0..<rows {
                for c in 0..<C {
                    let h = (x[r * C + c] - rmean[c]) * inv[c]
                    xh[r * C + c] = h
                    y[r * C + c] = gamma[c] * h + beta[c]
                }
            }
        }
        batchStatistics = training
    }

    @_specialize(where T == Float)
    override func backward(_ x: UnsafePointer<T>, _ y: UnsafePointer<T>, _ dy: UnsafePointer<T>, _ dx: UnsafeMutablePointer<T>?, batch: Int) {
        let rows = batch * inputSize / C
        let gamma: UnsafeMutablePointer<T> = params, dgamma: UnsafeMutablePointer<T> = grads, dbeta = grads + C
        let inv = invStd.pointer, xh = xhat.pointer
        var sumDy = [T](repeating: 0, count: C), sumDyXh = [T](repeating: 0, count: C)
        for r in 0..<rows {
            for c in 0..<C {
                sumDy[c] += dy[r * C + c]
                sumDyXh[c] += dy[r * C + c] * xh[r * C + c]
            }
        }
        for c in 0..<C {
            dgamma[c] += sumDyXh[c]
            dbeta[c] += sumDy[c]
        }
        guard let dx else { return }
        if !batchStatistics {
            for r in 0..<rows { for c in 0..<C { dx[r * C + c] = dy[r * C + c] * gamma[c] * inv[c] } }
            return
        }
        // dgamma and dbeta are this share's (the trainer sums the replicas' gradients); dx
        // depends on the whole batch's sums.
        if let shared {
            sumDy.withUnsafeMutableBufferPointer { _ = shared.sum($0.baseAddress!, rows: rows, rank: rank, phase: .gradient) }
            sumDyXh.withUnsafeMutableBufferPointer { _ = shared.sum($0.baseAddress!, rows: rows, rank: rank, phase: .gradientByXhat) }
        }
        let m = T(statisticRows)
        for r in 0..<rows {
            for c in 0..<C {
                let k = r * C + c
                dx[k] = gamma[c] * inv[c] / m * (m * dy[k] - sumDy[c] - xh[k] * sumDyXh[c])
            }
        }
    }
}
