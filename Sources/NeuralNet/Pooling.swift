// Pooling over channels-last images: max and average over P×P windows with stride S (valid
// padding), and global average pooling (H×W×C → C).

import TensorCore

public final class Pool2D<T: Real>: Layer<T> {
    public enum Kind: String, Sendable { case max, average }
    public let kind: Kind, size: Int, stride: Int
    let H: Int, W: Int, C: Int, OH: Int, OW: Int
    private var argmax: UnsafeMutablePointer<Int32> = .allocate(capacity: 1)
    private var argmaxCapacity = 1

    init(inputShape: [Int], kind: Kind, size: Int, stride: Int) {
        self.kind = kind
        self.size = size
        self.stride = stride
        (H, W, C) = (inputShape[0], inputShape[1], inputShape[2])
        OH = (H - size) / stride + 1
        OW = (W - size) / stride + 1
        super.init(inputShape: inputShape, outputShape: [OH, OW, C])
    }

    deinit { argmax.deallocate() }

    public override var spec: String {
        (kind == .max ? "maxpool" : "avgpool") + " \(size)" + (stride != size ? " stride=\(stride)" : "")
    }

    override func reserve(batch: Int) {
        let n = batch * OH * OW * C
        if kind == .max && n > argmaxCapacity {
            argmax.deallocate()
            argmax = .allocate(capacity: n)
            argmaxCapacity = n
        }
    }

    override func forward(_ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>, batch: Int, training: Bool, rng: inout SeededRandom) {
        let inv = 1 / T(size * size)
        for n in 0..<batch {
            let xn = x + n * H * W * C
            for oh in 0..<OH {
                for ow in 0..<OW {
                    let o = ((n * OH + oh) * OW + ow) * C
                    for c in 0..<C {
                        var best = -T.infinity, at = 0, sum: T = 0
                        for i in 0..<size {
                            for j in 0..<size {
                                let k = ((oh * stride + i) * W + ow * stride + j) * C + c
                                let v = xn[k]
                                sum += v
                                if v > best || (i == 0 && j == 0) { best = v; at = k }
                            }
                        }
                        if kind == .max {
                            y[o + c] = best
                            argmax[o + c] = Int32(at)
                        } else {
                            y[o + c] = sum * inv
                        }
                    }
                }
            }
        }
    }

    override func backward(_ x: UnsafePointer<T>, _ y: UnsafePointer<T>, _ dy: UnsafePointer<T>, _ dx: UnsafeMutablePointer<T>?, batch: Int) {
        guard let dx else { return }
        dx.update(repeating: 0, count: batch * H * W * C)
        let inv = 1 / T(size * size)
        for n in 0..<batch {
            let dn = dx + n * H * W * C
            for oh in 0..<OH {
                for ow in 0..<OW {
                    let o = ((n * OH + oh) * OW + ow) * C
                    for c in 0..<C {
                        if kind == .max {
                            dn[Int(argmax[o + c])] += dy[o + c]
                        } else {
                            let g = dy[o + c] * inv
                            for i in 0..<size {
                                for j in 0..<size { dn[((oh * stride + i) * W + ow * stride + j) * C + c] += g }
                            }
                        }
                    }
                }
            }
        }
    }
}

public final class GlobalAveragePool<T: Real>: Layer<T> {
    init(inputShape: [Int]) {
        super.init(inputShape: inputShape, outputShape: [inputShape.last!])
    }

    public override var spec: String { "globalavgpool" }
    var positions: Int { inputSize / outputSize }

    override func forward(_ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>, batch: Int, training: Bool, rng: inout SeededRandom) {
        let C = outputSize, P = positions, inv = 1 / T(P)
        for n in 0..<batch {
            let yn = y + n * C
            yn.update(repeating: 0, count: C)
            for p in 0..<P {
                let xr = x + (n * P + p) * C
                for c in 0..<C { yn[c] += xr[c] }
            }
            for c in 0..<C { yn[c] *= inv }
        }
    }

    override func backward(_ x: UnsafePointer<T>, _ y: UnsafePointer<T>, _ dy: UnsafePointer<T>, _ dx: UnsafeMutablePointer<T>?, batch: Int) {
        guard let dx else { return }
        let C = outputSize, P = positions, inv = 1 / T(P)
        for n in 0..<batch {
            for p in 0..<P {
                let d = dx + (n * P + p) * C
                for c in 0..<C { d[c] = dy[n * C + c] * inv }
            }
        }
    }
}
