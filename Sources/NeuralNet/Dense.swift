// Dense (fully connected): y[N×O] = x[N×I] · W[I×O] + b[O]. Parameters: W then b.

import Compute
import TensorCore

public final class Dense<T: Real>: Layer<T> {
    public let units: Int

    init(inputShape: [Int], units: Int) {
        self.units = units
        super.init(inputShape: inputShape, outputShape: [units])
    }

    public override var parameterCount: Int { inputSize * units + units }

    @_specialize(where T == Float)
    override func initialize(_ rng: inout SeededRandom, init scheme: InitScheme) {
        initWeights(params, count: inputSize * units, fanIn: inputSize, fanOut: units, scheme: scheme, rng: &rng)
        initBias(params + inputSize * units, count: units, fanIn: inputSize, scheme: scheme, rng: &rng)
    }

    @_specialize(where T == Float)
    override func forward(_ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>, batch: Int, training: Bool, rng: inout SeededRandom) {
        let I = inputSize, O = units
        let b = params + I * O
        for n in 0..<batch { (y + n * O).update(from: b, count: O) }
        T.gemm(transA: false, transB: false, m: batch, n: O, k: I, alpha: 1, a: x, lda: I, b: params, ldb: O, beta: 1, c: y, ldc: O)
    }

    @_specialize(where T == Float)
    override func backward(_ x: UnsafePointer<T>, _ y: UnsafePointer<T>, _ dy: UnsafePointer<T>, _ dx: UnsafeMutablePointer<T>?, batch: Int) {
        let I = inputSize, O = units
        // dW += xᵀ·dy ; db += Σ_n dy ; dx = dy·Wᵀ
        T.gemm(transA: true, transB: false, m: I, n: O, k: batch, alpha: 1, a: x, lda: I, b: dy, ldb: O, beta: 1, c: grads, ldc: O)
        let db = grads + I * O
        for n in 0..<batch {
            let r = dy + n * O
            for o in 0..<O { db[o] += r[o] }
        }
        if let dx {
            T.gemm(transA: false, transB: true, m: batch, n: I, k: O, alpha: 1, a: dy, lda: O, b: params, ldb: O, beta: 0, c: dx, ldc: I)
        }
    }
}

/// Flatten: H×W×C → H·W·C. The data is already contiguous; it is copied through.
public final class Flatten<T: Real>: Layer<T> {
    init(inputShape: [Int]) {
        super.init(inputShape: inputShape, outputShape: [inputShape.reduce(1, *)])
    }


    @_specialize(where T == Float)
    override func forward(_ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>, batch: Int, training: Bool, rng: inout SeededRandom) {
        y.update(from: x, count: batch * inputSize)
    }

    @_specialize(where T == Float)
    override func backward(_ x: UnsafePointer<T>, _ y: UnsafePointer<T>, _ dy: UnsafePointer<T>, _ dx: UnsafeMutablePointer<T>?, batch: Int) {
        dx?.update(from: dy, count: batch * inputSize)
    }
}

/// Dropout: in training, zeroes each value with probability `rate` and scales the rest by
/// 1/(1−rate) (inverted dropout); at inference, the identity.
public final class Dropout<T: Real>: Layer<T> {
    public let rate: Double
    private let mask = Scratch<T>()
    private var masked = false

    init(inputShape: [Int], rate: Double) {
        self.rate = rate
        super.init(inputShape: inputShape, outputShape: inputShape)
    }


    @_specialize(where T == Float)
    override func reserve(batch: Int) { mask.reserve(batch * inputSize) }
    override func workingValues(batch n: Double, training: Bool) -> Double { training ? n * Double(inputSize) : 0 }

    @_specialize(where T == Float)
    override func forward(_ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>, batch: Int, training: Bool, rng: inout SeededRandom) {
        let n = batch * inputSize
        masked = training && rate > 0
        guard masked else {
            y.update(from: x, count: n)
            return
        }
        let keep = T(1 / (1 - rate))
        let m = mask.pointer
        let threshold = UInt64(rate * 18_446_744_073_709_551_616.0 >= 18_446_744_073_709_551_615.0 ? UInt64.max : UInt64(rate * 18_446_744_073_709_551_616.0))
        for i in 0..<n {
            m[i] = rng.next() < threshold ? 0 : keep
            y[i] = x[i] * m[i]
        }
    }

    @_specialize(where T == Float)
    override func backward(_ x: UnsafePointer<T>, _ y: UnsafePointer<T>, _ dy: UnsafePointer<T>, _ dx: UnsafeMutablePointer<T>?, batch: Int) {
        guard let dx else { return }
        guard masked else { dx.update(from: dy, count: batch * inputSize); return }
        let m = mask.pointer
        for i in 0..<batch * inputSize { dx[i] = dy[i] * m[i] }
    }
}
