// Element-wise activations and softmax. Softmax as the last layer of a classifier is fused
// with the cross-entropy loss by the model (its backward here serves other positions).

import Compute
import TensorCore

public enum ActivationKind: String, CaseIterable, Sendable {
    case relu, leakyrelu, sigmoid, tanh, gelu, softmax
}

/// y ← max(y, 0) over `count` values.
@_specialize(where T == Float)
func reluInPlace<T: Real>(_ y: UnsafeMutablePointer<T>, count n: Int) {
    if T.self == Float.self {
        let f = UnsafeMutableRawPointer(y).assumingMemoryBound(to: Float.self)
        reluForward(f, f, count: n)
    } else {
        for i in 0..<n where !(y[i] > 0) { y[i] = 0 }
    }
}

public final class Activation<T: Real>: Layer<T> {
    public let kind: ActivationKind
    /// LeakyReLU's slope for negative inputs.
    public let alpha: T

    init(inputShape: [Int], kind: ActivationKind, alpha: Double = 0.01) {
        self.kind = kind
        self.alpha = T(alpha)
        super.init(inputShape: inputShape, outputShape: inputShape)
    }


    @_specialize(where T == Float)
    override func forward(_ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>, batch: Int, training: Bool, rng: inout SeededRandom) {
        let n = batch * inputSize
        switch kind {
        case .relu:
            if T.self == Float.self {
                reluForward(UnsafeRawPointer(x).assumingMemoryBound(to: Float.self), UnsafeMutableRawPointer(y).assumingMemoryBound(to: Float.self), count: n)
            } else {
                for i in 0..<n { y[i] = x[i] > 0 ? x[i] : 0 }
            }
        case .leakyrelu:
            for i in 0..<n { y[i] = x[i] > 0 ? x[i] : alpha * x[i] }
        case .sigmoid:
            for i in 0..<n { y[i] = sigmoid(x[i]) }
        case .tanh:
            for i in 0..<n { y[i] = T.tanh(x[i]) }
        case .gelu:
            // Exact GELU: x·Φ(x) = x/2·(1 + erf(x/√2)).
            T.geluForward(x, y, count: n)
        case .softmax:
            softmaxRows(x, y, rows: batch * inputSize / inputShape.last!, cols: inputShape.last!)
        }
    }

    @_specialize(where T == Float)
    override func backward(_ x: UnsafePointer<T>, _ y: UnsafePointer<T>, _ dy: UnsafePointer<T>, _ dx: UnsafeMutablePointer<T>?, batch: Int) {
        guard let dx else { return }
        let n = batch * inputSize
        switch kind {
        case .relu:
            if T.self == Float.self {
                reluBackward(UnsafeRawPointer(x).assumingMemoryBound(to: Float.self), UnsafeRawPointer(dy).assumingMemoryBound(to: Float.self),
                             UnsafeMutableRawPointer(dx).assumingMemoryBound(to: Float.self), count: n)
            } else {
                for i in 0..<n { dx[i] = x[i] > 0 ? dy[i] : 0 }
            }
        case .leakyrelu:
            for i in 0..<n { dx[i] = x[i] > 0 ? dy[i] : alpha * dy[i] }
        case .sigmoid:
            for i in 0..<n { dx[i] = dy[i] * y[i] * (1 - y[i]) }
        case .tanh:
            for i in 0..<n { dx[i] = dy[i] * (1 - y[i] * y[i]) }
        case .gelu:
            T.geluBackward(x, dy, dx, count: n)
        case .softmax:
            // dx = y ⊙ (dy − Σ dy⊙y) per row.
            let cols = inputShape.last!
            for r in 0..<n / cols {
                let o = r * cols
                var s: T = 0
                for j in 0..<cols { s += dy[o + j] * y[o + j] }
                for j in 0..<cols { dx[o + j] = y[o + j] * (dy[o + j] - s) }
            }
        }
    }
}

@inline(__always)
func sigmoid<T: Real>(_ v: T) -> T {
    v >= 0 ? 1 / (1 + T.exp(-v)) : T.exp(v) / (1 + T.exp(v))
}

/// Row-wise softmax, stable (max subtracted).
@_specialize(where T == Float)
func softmaxRows<T: Real>(_ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>, rows: Int, cols: Int) {
    for r in 0..<rows {
        let o = r * cols
        var m = x[o]
        for j in 1..<max(cols, 1) where x[o + j] > m { m = x[o + j] }
        var s: T = 0
        for j in 0..<cols {
            let e = T.exp(x[o + j] - m)
            y[o + j] = e
            s += e
        }
        let inv = 1 / s
        for j in 0..<cols { y[o + j] *= inv }
    }
}
