// Kernels and building blocks against naive references and hand-computed values.

@testable import NeuralNet
import Compute
import TensorCore
import TensorStream
import Foundation
import XCTest

final class KernelTests: XCTestCase {
    /// Direct convolution, channels-last, the definition the im2col path must match.
    func naiveConv(_ x: [Float], H: Int, W: Int, C: Int, w: [Float], b: [Float], F: Int, kh: Int, kw: Int, stride: Int, padding: Padding, batch: Int) -> [Float] {
        let (OH, pt) = convGeometry(size: H, kernel: kh, stride: stride, padding: padding)
        let (OW, pl) = convGeometry(size: W, kernel: kw, stride: stride, padding: padding)
        var y = [Float](repeating: 0, count: batch * OH * OW * F)
        for n in 0..<batch { for oh in 0..<OH { for ow in 0..<OW { for f in 0..<F {
            var s = Double(b[f])
            for i in 0..<kh { for j in 0..<kw { for c in 0..<C {
                let ih = oh * stride + i - pt, iw = ow * stride + j - pl
                guard ih >= 0, ih < H, iw >= 0, iw < W else { continue }
                s += Double(x[((n * H + ih) * W + iw) * C + c]) * Double(w[((i * kw + j) * C + c) * F + f])
            } } }
            y[((n * OH + oh) * OW + ow) * F + f] = Float(s)
        } } } }
        return y
    }

    func testConvolutionMatchesDirectReference() {
        var rng = SeededRandom(seed: 3)
        // 6×7×8 with a 3×3 kernel: im2col copies rows of 24 values. Five shapes run Winograd at
        // inference, three F(4×4, 3×3) and two F(2×2, 3×3), with channel and filter counts of
        // 8 to 16 (whole vectors and overlapping last ones) and output sizes that are not a
        // multiple of the block (clipped tiles).
        for (H, W, C, F, kh, kw, s, p) in [(8, 8, 1, 4, 3, 3, 1, Padding.valid), (9, 8, 1, 3, 3, 2, 2, .valid), (6, 7, 8, 9, 3, 3, 1, .same), (13, 13, 9, 11, 3, 3, 1, .valid),
                                           (8, 9, 16, 8, 3, 3, 1, .valid), (7, 7, 8, 10, 3, 3, 1, .valid), (4, 6, 9, 8, 3, 3, 1, .valid), (7, 9, 3, 5, 3, 3, 2, .same), (6, 6, 2, 3, 5, 5, 1, .same), (5, 5, 4, 2, 1, 1, 1, .valid),
                                           // One channel, 'same' padding only after the last row and column (the
                                           // one-channel copy read the next row, the next sample, then past x).
                                           (28, 28, 1, 4, 3, 3, 2, .same), (8, 8, 1, 4, 2, 2, 1, .same), (7, 9, 1, 3, 2, 2, 2, .same)] {
            let batch = 9  // more than one Winograd chunk (7 samples of 36 tiles) for 13×13×9
            let conv = Conv2D<Float>(inputShape: [H, W, C], filters: F, kernel: (kh, kw), stride: s, padding: p)
            var params = (0..<conv.parameterCount).map { _ in Float(rng.nextGaussian()) }
            var grads = [Float](repeating: 0, count: conv.parameterCount)
            let x = (0..<batch * H * W * C).map { _ in Float(rng.nextGaussian()) }
            var y = [Float](repeating: 0, count: batch * conv.outputSize), yi = y
            let dy = (0..<y.count).map { _ in Float(rng.nextGaussian()) }
            var dx = [Float](repeating: .nan, count: x.count)  // every element must be written
            if conv.usesWinograd { winogradBlocks.append(conv.winogradBlock) }
            params.withUnsafeMutableBufferPointer { pp in grads.withUnsafeMutableBufferPointer { gp in
                conv.bind(params: pp.baseAddress!, grads: gp.baseAddress!)
                conv.reserve(batch: batch)
                var r = SeededRandom(seed: 0)
                conv.forward(x, &y, batch: batch, training: true, rng: &r)
                conv.backward(x, y, dy, &dx, batch: batch)
                conv.forward(x, &yi, batch: batch, training: false, rng: &r)
            } }
            let K = kh * kw * C
            let ref = naiveConv(x, H: H, W: W, C: C, w: Array(params[0..<K * F]), b: Array(params[(K * F)...]), F: F, kh: kh, kw: kw, stride: s, padding: p, batch: batch)
            XCTAssertEqual(y.count, ref.count, "output shape")
            // Training and inference compute the same (by Winograd for 3×3 stride 1 over 8 or
            // more channels). F(4×4, 3×3) rounds about ten times more than a direct sum:
            // compare relative to the largest output.
            let top = ref.map(abs).max() ?? 1
            let diff = zip(y, ref).map { abs($0 - $1) }.max() ?? 0, idiff = zip(yi, ref).map { abs($0 - $1) }.max() ?? 0
            XCTAssertLessThan(diff, 1e-5 * top, "\(H)x\(W)x\(C) k\(kh)x\(kw) s\(s) \(p): first \(Array(y.prefix(3))) vs \(Array(ref.prefix(3)))")
            XCTAssertLessThan(idiff, 1e-5 * top, "inference \(H)x\(W)x\(C) k\(kh)x\(kw) s\(s) \(p)")
            // Backward against the definition: each output's gradient flows to the input and
            // weight its term read.
            let (OH, pt) = convGeometry(size: H, kernel: kh, stride: s, padding: p), (OW, pl) = convGeometry(size: W, kernel: kw, stride: s, padding: p)
            var dxRef = [Double](repeating: 0, count: x.count), dwRef = [Double](repeating: 0, count: K * F)
            for n in 0..<batch { for oh in 0..<OH { for ow in 0..<OW { for f in 0..<F {
                let g = Double(dy[((n * OH + oh) * OW + ow) * F + f])
                for i in 0..<kh { for j in 0..<kw { for c in 0..<C {
                    let ih = oh * s + i - pt, iw = ow * s + j - pl
                    guard ih >= 0, ih < H, iw >= 0, iw < W else { continue }
                    let xi = ((n * H + ih) * W + iw) * C + c, wi = ((i * kw + j) * C + c) * F + f
                    dxRef[xi] += g * Double(params[wi])
                    dwRef[wi] += g * Double(x[xi])
                } } }
            } } } }
            let dxTop = dxRef.map(abs).max() ?? 1, dwTop = dwRef.map(abs).max() ?? 1
            let dxDiff = zip(dx, dxRef).map { abs(Double($0) - $1) }.max() ?? 0
            let dwDiff = zip(grads[0..<K * F], dwRef).map { abs(Double($0) - $1) }.max() ?? 0
            XCTAssertLessThan(dxDiff, 1e-5 * dxTop, "dx \(H)x\(W)x\(C) k\(kh)x\(kw) s\(s) \(p)")  // NaN left unwritten fails too
            XCTAssertLessThan(dwDiff, 1e-5 * dwTop, "dW \(H)x\(W)x\(C) k\(kh)x\(kw) s\(s) \(p)")
        }
        XCTAssertEqual(winogradBlocks.sorted(), [2, 2, 4, 4, 4], "the shapes above run both Winograd variants")
    }

    var winogradBlocks: [Int] = []

    func testWinogradFollowsChangedWeights() {
        // Inference keeps the transformed weights between calls; a changed weight (training
        // between validation passes) must be seen at the next call.
        var rng = SeededRandom(seed: 9)
        let conv = Conv2D<Float>(inputShape: [9, 9, 8], filters: 8, kernel: (3, 3), stride: 1, padding: .valid)
        XCTAssertTrue(conv.usesWinograd)
        var params = (0..<conv.parameterCount).map { _ in Float(rng.nextGaussian()) }
        var grads = [Float](repeating: 0, count: conv.parameterCount)
        let x = (0..<2 * 9 * 9 * 8).map { _ in Float(rng.nextGaussian()) }
        var y = [Float](repeating: 0, count: 2 * conv.outputSize), yi = y
        params.withUnsafeMutableBufferPointer { pp in grads.withUnsafeMutableBufferPointer { gp in
            conv.bind(params: pp.baseAddress!, grads: gp.baseAddress!)
            conv.reserve(batch: 2)
            var r = SeededRandom(seed: 0)
            conv.forward(x, &yi, batch: 2, training: false, rng: &r)
            pp[100] += 1  // one weight
            conv.forward(x, &yi, batch: 2, training: false, rng: &r)
            conv.forward(x, &y, batch: 2, training: true, rng: &r)
        } }
        let diff = zip(y, yi).map { abs($0 - $1) }.max() ?? 0
        XCTAssertLessThan(diff, 1e-4, "inference after a weight changed")
    }

    func testInferenceComputesWhatTrainingDoes() throws {
        // Inference takes shortcuts training cannot (im2col's and Winograd's buffers reused chunk
        // by chunk, the transformed weights kept between calls): the seed CNNs' logits
        // are those of the training path to the bit, so validation during fit reports what
        // predict and score would. 61 samples span several Winograd chunks in both networks.
        for (preset, shape) in [("mnist-cnn", [28, 28, 1]), ("cifar-cnn", [32, 32, 3])] {
            let net = try Network<Float>(specs: try Architecture.parse(Architecture.presets[preset]!), inputShape: shape, classes: 10, task: .classification)
            net.initialize(seed: 7)
            var rng = SeededRandom(seed: 8)
            let batch = 61
            let x = (0..<batch * shape.reduce(1, *)).map { _ in Float(rng.nextUnitDouble()) }
            var r = SeededRandom(seed: 0)
            let trained = Array(UnsafeBufferPointer(start: net.forward(x, batch: batch, training: true, rng: &r), count: batch * 10))
            let inferred = Array(UnsafeBufferPointer(start: net.forward(x, batch: batch, training: false, rng: &r), count: batch * 10))
            XCTAssertEqual(trained, inferred, "\(preset)")
            XCTAssertGreaterThan(trained.map(abs).max() ?? 0, 0)
        }
    }

    func testReluFusedIntoMaxPoolingIsTheTwoLayersToTheBit() throws {
        // A network runs a ReLU followed by max pooling inside the pooling, over the pooled
        // values: its output and gradients must be those of the layers run one after the
        // other, with ties, zeros and all-negative windows, in the 2×2 fast path (11 channels: a
        // vector and a scalar tail) and the general one.
        var rng = SeededRandom(seed: 11)
        let (H, W, C, F, batch) = (7, 5, 3, 11, 2)
        for pool in ["maxpool 2", "maxpool 3 stride=2"] {
            let net = try Network<Float>(specs: try Architecture.parse("conv \(F) 1x1\nrelu\n\(pool)"), inputShape: [H, W, C], classes: 0, task: .regression)
            let P = net.parameterCount
            // Small integers make ties, zeros and negative maxima common.
            for i in 0..<P { net.params[i] = Float(Int(rng.next() % 5) - 2) }
            let x = (0..<batch * H * W * C).map { _ in Float(Int(rng.next() % 5) - 2) }
            var r = SeededRandom(seed: 0)
            let n = batch * net.outputSize
            let y = Array(UnsafeBufferPointer(start: net.forward(x, batch: batch, training: true, rng: &r), count: n))
            let dOut = (0..<n).map { _ in Float(rng.next() % 7) + 1 }
            net.zeroGradients()
            net.backward(x, dOut: dOut, batch: batch)
            let grads = Array(UnsafeBufferPointer(start: net.grads, count: P))

            let conv = Conv2D<Float>(inputShape: [H, W, C], filters: F, kernel: (1, 1), stride: 1, padding: .valid)
            let relu = Activation<Float>(inputShape: conv.outputShape, kind: .relu)
            let fused = try XCTUnwrap(net.layers[2] as? Pool2D<Float>)
            let pooling = Pool2D<Float>(inputShape: conv.outputShape, kind: .max, size: fused.size, stride: fused.stride)
            let cp = UnsafeMutablePointer<Float>.allocate(capacity: P), cg = UnsafeMutablePointer<Float>.allocate(capacity: P)
            defer { cp.deallocate(); cg.deallocate() }
            cp.update(from: net.params, count: P)
            cg.update(repeating: 0, count: P)
            conv.bind(params: cp, grads: cg)
            for l in [conv, relu, pooling] as [Layer<Float>] { l.reserve(batch: batch) }
            var a = [Float](repeating: 0, count: batch * conv.outputSize), b = a, z = [Float](repeating: 0, count: n)
            conv.forward(x, &a, batch: batch, training: true, rng: &r)
            relu.forward(a, &b, batch: batch, training: true, rng: &r)
            pooling.forward(b, &z, batch: batch, training: true, rng: &r)
            var db = [Float](repeating: .nan, count: b.count), da = db
            pooling.backward(b, z, dOut, &db, batch: batch)
            relu.backward(a, b, db, &da, batch: batch)
            conv.backward(x, a, da, nil, batch: batch)
            XCTAssertEqual(y, z, pool)
            XCTAssertEqual(grads, Array(UnsafeBufferPointer(start: cg, count: P)), pool)
            XCTAssertTrue(z.contains(0) && z.contains { $0 > 0 } && a.contains { $0 < 0 }, "the data exercise the ReLU")
        }
    }

    func testPoolingMatchesNaiveReference() {
        var rng = SeededRandom(seed: 4)
        let (H, W, C, batch) = (7, 6, 11, 2)  // 11 channels: one 8-lane vector and a scalar tail
        // 2×2 stride 2 max pooling has a fast path of its own; the others take the general one.
        for (P, S) in [(2, 2), (3, 2), (2, 1)] { for kind in [Pool2D<Float>.Kind.max, .average] {
            let pool = Pool2D<Float>(inputShape: [H, W, C], kind: kind, size: P, stride: S)
            let x = (0..<batch * H * W * C).map { _ in Float(rng.nextGaussian()) }
            var y = [Float](repeating: 0, count: batch * pool.outputSize)
            var r = SeededRandom(seed: 0)
            pool.reserve(batch: batch)
            pool.forward(x, &y, batch: batch, training: false, rng: &r)
            for n in 0..<batch { for oh in 0..<pool.OH { for ow in 0..<pool.OW { for c in 0..<C {
                var vals: [Float] = []
                for i in 0..<P { for j in 0..<P { vals.append(x[((n * H + oh * S + i) * W + ow * S + j) * C + c]) } }
                let want = kind == .max ? vals.max()! : vals.reduce(0, +) / Float(vals.count)
                XCTAssertEqual(y[((n * pool.OH + oh) * pool.OW + ow) * C + c], want, accuracy: 1e-6, "\(kind) \(P)/\(S)")
            } } } }
        } }
    }

    func testMaxPoolingBackwardRoutesTiesToTheFirstMaximum() {
        // Small integers make ties common; the gradient goes to the window's first position
        // (row-major) holding the maximum, and positions no window covers get 0, in both the
        // 2×2 stride-2 fast path and the general one.
        var rng = SeededRandom(seed: 5)
        let (H, W, C, batch) = (7, 5, 11, 2)  // 11 channels: one 8-lane vector and a scalar tail
        for (P, S) in [(2, 2), (3, 2)] {
            let pool = Pool2D<Float>(inputShape: [H, W, C], kind: .max, size: P, stride: S)
            let x = (0..<batch * H * W * C).map { _ in Float(rng.next() % 3) }
            let dy = (0..<batch * pool.outputSize).map { _ in Float(rng.next() % 100) + 1 }
            var y = [Float](repeating: 0, count: batch * pool.outputSize)
            var dx = [Float](repeating: .nan, count: x.count)
            var r = SeededRandom(seed: 0)
            pool.reserve(batch: batch)
            pool.forward(x, &y, batch: batch, training: true, rng: &r)
            pool.backward(x, y, dy, &dx, batch: batch)
            var want = [Float](repeating: 0, count: x.count)
            for n in 0..<batch { for oh in 0..<pool.OH { for ow in 0..<pool.OW { for c in 0..<C {
                let o = ((n * pool.OH + oh) * pool.OW + ow) * C + c
                search: for i in 0..<P { for j in 0..<P {
                    let k = ((n * H + oh * S + i) * W + ow * S + j) * C + c
                    if x[k] == y[o] { want[k] += dy[o]; break search }
                } }
            } } } }
            XCTAssertEqual(dx, want, "max \(P)/\(S)")
        }
    }

    func testOpenBLASKernelChoice() throws {
        // AVX-512 kernels when the CPU has the flags they use; OpenBLAS's own choice otherwise;
        // and a core the user sets in OPENBLAS_CORETYPE is never overridden.
        let avx512 = "processor\t: 0\nflags\t\t: fpu sse avx avx2 fma avx512f avx512dq avx512cd avx512bw avx512vl\n"
        XCTAssertEqual(OpenBLAS.preferredCore(cpuFlags: avx512), "SKYLAKEX")
        XCTAssertNil(OpenBLAS.preferredCore(cpuFlags: "flags\t\t: fpu sse avx avx2 fma avx512f\n"), "AVX-512F alone is not enough")
        XCTAssertNil(OpenBLAS.preferredCore(cpuFlags: "flags\t\t: fpu sse avx avx2 fma\n"))
        XCTAssertNil(OpenBLAS.preferredCore(cpuFlags: ""))
        XCTAssertNil(OpenBLAS.load())
        let core = try XCTUnwrap(OpenBLAS.coreName)
        if let chosen = ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] {
            XCTAssertEqual(core.lowercased(), chosen.lowercased(), "the user's OPENBLAS_CORETYPE is kept")
        } else {
            let cpuinfo = String(decoding: try XCTUnwrap(FileHandle(forReadingAtPath: "/proc/cpuinfo")?.readToEnd()), as: UTF8.self)
            if OpenBLAS.preferredCore(cpuFlags: cpuinfo) != nil { XCTAssertEqual(core, "SkylakeX") }
        }
    }

    func testReluKernelsMatchScalarDefinition() {
        let x: [Float] = (0..<37).map { Float($0 - 18) * 0.5 }
        let dy: [Float] = (0..<37).map { Float($0) }
        var y = [Float](repeating: 9, count: 37), dx = [Float](repeating: 9, count: 37)
        reluForward(x, &y, count: 37)
        reluBackward(x, dy, &dx, count: 37)
        XCTAssertEqual(y, x.map { max($0, 0) })
        XCTAssertEqual(dx, zip(x, dy).map { $0 > 0 ? $1 : 0 })
    }

    // MARK: Optimizers, against steps computed by hand

    func step(_ c: OptimizerConfig, p0: [Float], grads: [[Float]]) -> [Float] {
        var p = p0
        let o = Optimizer<Float>(config: c, count: p.count)
        for g in grads { o.update(params: &p, grads: g, ranges: [0..<p.count]) }
        return p
    }

    func testSGDPlainMomentumNesterovAndDecay() {
        var c = OptimizerConfig()
        c.kind = .sgd
        c.learningRate = 0.1
        XCTAssertEqual(step(c, p0: [1, -2], grads: [[0.5, 1]]), [0.95, -2.1])
        c.momentum = 0.9
        // v1 = g1 = 0.5 → p = 1 − 0.05 = 0.95; v2 = 0.9·0.5 + 0.5 = 0.95 → p = 0.95 − 0.095 = 0.855
        XCTAssertEqual(step(c, p0: [1], grads: [[0.5], [0.5]])[0], 0.855, accuracy: 1e-6)
        c.nesterov = true
        // step 1: v = 0.5, d = 0.5 + 0.9·0.5 = 0.95 → 0.905; step 2: v = 0.95, d = 0.5 + 0.855 = 1.355 → 0.7695
        XCTAssertEqual(step(c, p0: [1], grads: [[0.5], [0.5]])[0], 0.7695, accuracy: 1e-6)
        c = OptimizerConfig()
        c.kind = .sgd
        c.learningRate = 0.1
        c.weightDecay = 0.01
        // d = 0.5 + 0.01·2 = 0.52 → 2 − 0.052
        XCTAssertEqual(step(c, p0: [2], grads: [[0.5]])[0], 1.948, accuracy: 1e-6)
    }

    func testAdamAndAdamW() {
        var c = OptimizerConfig()
        c.learningRate = 0.01
        c.epsilon = 1e-8
        // Adam's first step moves each parameter by lr·sign(g) (bias correction makes m̂/√v̂ = ±1).
        let p1 = step(c, p0: [1, 1], grads: [[0.3, -4]])
        XCTAssertEqual(p1[0], 0.99, accuracy: 1e-6)
        XCTAssertEqual(p1[1], 1.01, accuracy: 1e-6)
        // Second step with g = 0.1 after 0.3: m = 0.9·0.03 + 0.1·0.1 = 0.037, v = 0.999·0.00009 + 0.001·0.01 = 0.00009991
        // m̂ = 0.037/0.19 = 0.19473684, v̂ = 0.00009991/0.001999 = 0.04997999 → step 0.01·0.19473684/0.22356205 = 0.00871064
        XCTAssertEqual(step(c, p0: [1], grads: [[0.3], [0.1]])[0], 0.99 - 0.0087106, accuracy: 1e-6)
        c.kind = .adamw
        c.weightDecay = 0.1
        // Decoupled: p ← p − lr·wd·p = 1 − 0.001, then the Adam step −0.01.
        XCTAssertEqual(step(c, p0: [1], grads: [[0.3]])[0], 0.989, accuracy: 1e-6)
        c.kind = .adam
        // L2: g = 0.3 + 0.1 = 0.4; still sign-sized first step.
        XCTAssertEqual(step(c, p0: [1], grads: [[0.3]])[0], 0.99, accuracy: 1e-6)
    }

    func testAdamOverManyWeightsIsTheScalarDefinitionBitForBit() {
        // 19 weights: two 8-lane vectors and a scalar tail, against the definition in Float,
        // operation for operation; Adam with L2 decay, and AdamW.
        var rng = SeededRandom(seed: 11)
        let p0 = (0..<19).map { _ in Float(rng.nextGaussian()) }
        let grads = (0..<3).map { _ in (0..<19).map { _ in Float(rng.nextGaussian()) } }
        for kind in [OptimizerConfig.Kind.adam, .adamw] {
            var c = OptimizerConfig()
            c.kind = kind
            c.learningRate = 0.01
            c.weightDecay = 0.05
            var p = p0, m = [Float](repeating: 0, count: 19), v = m
            let (lr, wd, b1, b2, eps) = (Float(0.01), Float(0.05), Float(0.9), Float(0.999), Float(c.epsilon))
            for (t, g) in grads.enumerated() {
                let c1 = 1 - Float(Foundation.pow(0.9, Double(t + 1))), c2 = 1 - Float(Foundation.pow(0.999, Double(t + 1)))
                for i in 0..<19 {
                    if kind == .adamw { p[i] -= lr * wd * p[i] }
                    let d = kind == .adamw ? g[i] : g[i] + wd * p[i]
                    m[i] = b1 * m[i] + (1 - b1) * d
                    v[i] = b2 * v[i] + (1 - b2) * d * d
                    p[i] -= lr / c1 * m[i] / ((v[i] * (1 / c2)).squareRoot() + eps)
                }
            }
            XCTAssertEqual(step(c, p0: p0, grads: grads), p, "\(kind)")
        }
    }

    // MARK: Architecture text

    func testPresetsBuildTheSeedNetworks() throws {
        let cnn = try Network<Float>(specs: try Architecture.parse(Architecture.presets["mnist-cnn"]!), inputShape: [28, 28, 1], classes: 10, task: .classification)
        // conv 3·3·1·32+32, conv 3·3·32·64+64, dense 1600·64+64, dense 64·10+10.
        XCTAssertEqual(cnn.parameterCount, 320 + 18_496 + 102_464 + 650)
        XCTAssertEqual(cnn.outputSize, 10)
        let mlp = try Network<Float>(specs: try Architecture.parse(Architecture.presets["mlp"]!), inputShape: [28, 28, 1], classes: 10, task: .classification)
        XCTAssertEqual(mlp.parameterCount, 784 * 128 + 128 + 1290)
        let cifar = try Network<Float>(specs: try Architecture.parse(Architecture.presets["cifar-cnn"]!), inputShape: [32, 32, 3], classes: 10, task: .classification)
        XCTAssertEqual(cifar.layers.first?.outputShape, [30, 30, 64])
    }

    func testArchitectureTextRoundTripsAndRefusesNonsense() throws {
        let text = "conv 8 3x3 stride=2 padding=same relu; batchnorm\nmaxpool 2 # comment\ndropout 0.25; flatten; dense 16 gelu; leakyrelu 0.2; dense classes softmax"
        let specs = try Architecture.parse(text)
        XCTAssertEqual(try Architecture.parse(Architecture.text(specs)), specs)
        for bad in ["dense", "dense 99999999999999999999", "dense -3", "conv 8", "frobnicate 3", "dense 10 relu relu",
                    "include /etc/passwd", "dense 10 init=/etc/x", "dropout 1.5", "conv 8 3x3 padding=../x", "maxpool 0", "",
                    // from helper-42's review: accepted before
                    "relu relu", "gelu gelu", "leakyrelu 0.2 relu", "conv 4 3x", "conv 4 x5", "conv 4 3xx5", "dense +8",
                    "dropout 0x0.8", "leakyrelu 0x0.1"] {
            XCTAssertThrowsError(try Architecture.parse(bad), "'\(bad)' accepted") { e in
                XCTAssertEqual((e as? DiagnosticError)?.kind, .badData)
            }
        }
        XCTAssertThrowsError(try Network<Float>(specs: try Architecture.parse("conv 8 30x30"), inputShape: [28, 28, 1], classes: 10, task: .classification))
        XCTAssertThrowsError(try Network<Float>(specs: try Architecture.parse("dense 1"), inputShape: [4], classes: 3, task: .classification))
        // A slope after leakyrelu on a layer line, as on a line of its own (it was refused:
        // "dense takes 1 value, got 2"); one out of range is named.
        XCTAssertEqual(try Architecture.parse("dense 8 leakyrelu 0.2; conv 4 3x3 leakyrelu .3 padding=same; dense 8 leakyrelu"),
                       [.dense(units: 8), .activation(.leakyrelu, alpha: 0.2), .conv(filters: 4, kh: 3, kw: 3, stride: 1, padding: .same),
                        .activation(.leakyrelu, alpha: 0.3), .dense(units: 8), .activation(.leakyrelu, alpha: 0.01)])
        // The default slope is left out of the text a model records, as other defaults are.
        XCTAssertEqual(Architecture.text(try Architecture.parse("dense 8 leakyrelu; dense 4 leakyrelu 0.2")), "dense 8\nleakyrelu\ndense 4\nleakyrelu 0.2")
        // A misspelt word is named, not counted ("dense takes 1 value, got 2").
        XCTAssertThrowsError(try Architecture.parse("dense 16 rellu")) { e in
            XCTAssertEqual((e as? DiagnosticError)?.problem, "unknown word 'rellu' for dense")
        }
        XCTAssertThrowsError(try Architecture.parse("dense 16 32")) { e in
            XCTAssertEqual((e as? DiagnosticError)?.problem, "dense takes 1 value, got 2")
        }
        XCTAssertThrowsError(try Architecture.parse("dense 8 leakyrelu 2")) { e in
            XCTAssertEqual((e as? DiagnosticError)?.problem, "leakyrelu slope '2' is not in [0, 1)")
        }
    }

    // MARK: Training and the model file

    /// Two Gaussian blobs per class in 4-D; a linearly separable toy problem.
    func toyData(n: Int, seed: UInt64) -> Dataset {
        var rng = SeededRandom(seed: seed)
        var d = Dataset(inputShape: [4])
        for i in 0..<n {
            let k = Int32(i % 3)
            d.labels.append(k)
            for j in 0..<4 { d.x.append(Float(rng.nextGaussian() * 0.3) + (j == Int(k) ? 2 : 0)) }
        }
        d.count = n
        return d
    }

    func makeModel() throws -> Model {
        try Model(architecture: "dense 16 relu; dense classes", inputShape: [4], inputField: "x", inputDType: .f32, targetField: "y",
                  classes: ["a", "b", "c"], task: .classification, optimizer: OptimizerConfig())
    }

    func testTrainingLearnsAndIsReproducible() throws {
        let data = toyData(n: 300, seed: 1)
        var finals: [[Float]] = []
        for threads in [1, 1, 2, 2] {
            let m = try makeModel()
            m.network.initialize(seed: 7)
            let t = Trainer(model: m, batchSize: 16, seed: 7, threads: threads)
            var last = EpochResult(loss: 0, accuracy: 0, samples: 0)
            for e in 1...15 { last = try t.trainEpoch(data, epoch: e) }
            XCTAssertGreaterThan(last.accuracy ?? 0, 0.95, "threads \(threads)")
            XCTAssertGreaterThan(t.evaluate(toyData(n: 90, seed: 2)).accuracy ?? 0, 0.9)
            finals.append(Array(UnsafeBufferPointer(start: m.network.params, count: m.network.parameterCount)))
        }
        XCTAssertEqual(finals[0], finals[1], "same seed, one thread: identical weights")
        XCTAssertEqual(finals[2], finals[3], "same seed, two threads: identical weights")
    }

    /// Replicas of a network with BatchNorm share the batch's statistics, forward and backward:
    /// training on 2, 4 or 16 threads (16 gives each replica one sample) is training on one, up
    /// to rounding, running statistics included. Normalized by shares, one sample a replica
    /// made every normalized value 0 and the weights went elsewhere entirely.
    func testBatchNormReplicasNormalizeByTheWholeBatch() throws {
        var sgd = OptimizerConfig()
        sgd.kind = .sgd
        sgd.learningRate = 0.1
        var rng = SeededRandom(seed: 4)
        var images = Dataset(inputShape: [5, 5, 2])
        for i in 0..<48 {
            images.labels.append(Int32(i % 3))
            for _ in 0..<50 { images.x.append(Float(rng.nextGaussian()) + Float(i % 3)) }
        }
        images.count = 48
        let cases: [(String, [Int], Dataset)] = [
            ("dense 6; batchnorm; relu; dense 5; batchnorm; tanh; dense classes", [4], toyData(n: 48, seed: 5)),
            ("conv 3 3x3; batchnorm; relu; flatten; dense classes", [5, 5, 2], images),
        ]
        for (arch, shape, data) in cases {
            func train(threads: Int) throws -> [Float] {
                let m = try Model(architecture: arch, inputShape: shape, inputField: "x", inputDType: .f32, targetField: "y",
                                  classes: ["a", "b", "c"], task: .classification, optimizer: sgd)
                m.network.initialize(seed: 7)
                let t = Trainer(model: m, batchSize: 16, seed: 7, threads: threads)
                XCTAssertEqual(t.threads, threads, "a replica per thread")
                _ = try t.trainEpoch(data, epoch: 1, shuffle: false)
                return Array(UnsafeBufferPointer(start: m.network.params, count: m.network.parameterCount))
            }
            let one = try train(threads: 1)
            for threads in [2, 4, 16] {
                let many = try train(threads: threads)
                let worst = zip(one, many).map { abs($0 - $1) }.max()!
                XCTAssertLessThan(worst, 1e-5, "\(arch) on \(threads) threads")
                XCTAssertEqual(many, try train(threads: threads), "\(arch): the same seed and threads, the same weights")
            }
        }
    }

    func testWorkerPoolRunsEveryPartOnceAndWakesSleepingWorkers() {
        // Each part exactly once per run, on whichever thread; workers that went to sleep
        // (after a few hundred µs without a job) are woken by the next run; a run of fewer
        // parts than threads leaves the others alone.
        let counts = UnsafeMutablePointer<Int>.allocate(capacity: 3)
        counts.initialize(repeating: 0, count: 3)
        defer { counts.deallocate() }
        var pool: WorkerPool? = WorkerPool(threads: 3) { k in counts[k] += 1 }
        for _ in 0..<500 { pool!.run(3) }
        XCTAssertEqual(Array(UnsafeBufferPointer(start: counts, count: 3)), [500, 500, 500])
        usleep(100_000)
        pool!.run(3)
        pool!.run(2)
        XCTAssertEqual(Array(UnsafeBufferPointer(start: counts, count: 3)), [502, 502, 501])
        pool = nil  // the workers return
        XCTAssertEqual(Array(UnsafeBufferPointer(start: counts, count: 3)), [502, 502, 501])
    }

    func testModelFileRoundTripAndDamage() throws {
        let m = try makeModel()
        m.network.initialize(seed: 3)
        let t = Trainer(model: m, batchSize: 8, seed: 3)
        _ = try t.trainEpoch(toyData(n: 40, seed: 1), epoch: 1)
        m.epoch = 1
        let sink = MemorySink()
        try m.write(to: sink)
        let back = try Model.load(from: MemorySource(sink.data, name: "m.model"))
        XCTAssertEqual(back.architecture, m.architecture)
        XCTAssertEqual(back.classes, ["a", "b", "c"])
        XCTAssertEqual(back.optimizer?.step, m.optimizer?.step)
        XCTAssertEqual(Array(UnsafeBufferPointer(start: back.network.params, count: back.network.parameterCount)),
                       Array(UnsafeBufferPointer(start: m.network.params, count: m.network.parameterCount)))
        // Every prefix and a flip of every byte are refused (ROBUSTNESS.md case 22).
        let bytes = sink.data
        for cut in 0..<bytes.count {
            XCTAssertThrowsError(try Model.load(from: MemorySource(Array(bytes.prefix(cut)), name: "m.model")), "cut at \(cut)")
        }
        for i in 0..<bytes.count {
            var b = bytes
            b[i] ^= 0x10
            XCTAssertThrowsError(try Model.load(from: MemorySource(b, name: "m.model")), "flip at \(i)")
        }
    }

    /// A model whose metadata is edited (and checksums recomputed, as a hostile writer would).
    func rewrittenModel(_ edit: (inout Schema) -> Void) throws -> [UInt8] {
        let m = try makeModel()
        let sink = MemorySink()
        try m.write(to: sink)
        let r = try StreamReader(source: MemorySource(sink.data))
        var s = r.schema
        edit(&s)
        let b = try XCTUnwrap(try r.next())
        let out = MemorySink()
        let w = try StreamWriter(sink: out, schema: s)
        try w.write(count: 1, fields: (0..<s.fields.count).map { b.field($0) })
        try w.finish()
        return out.data
    }

    func testHostileModelMetadataIsRefused() throws {
        for (key, value) in [("model.epoch", "99999999999999999999"), ("model.epoch", "-1"), ("model.step", "x"),
                             ("model.batch", "0"), ("model.batch", "1048577"), ("model.batch", "32 "),
                             ("model.input.shape", "28x0x1"), ("model.input.shape", "99999999999x99999999999"),
                             ("model.input.shape", "4x"), ("model.input.shape", "x4"), ("model.input.shape", "+4"), ("model.input.shape", "2xx2"),
                             ("model.architecture", "include /etc/passwd"), ("model.task", "magic"), ("model.optimizer", "adam lr=nan")] {
            let bytes = try rewrittenModel { $0.setMetadata(key, value) }
            XCTAssertThrowsError(try Model.load(from: MemorySource(bytes, name: "m.model")), "\(key)=\(value) accepted") { e in
                XCTAssertEqual((e as? DiagnosticError)?.kind, .badData, "\(e)")
            }
        }
    }

    /// The model file with field `name` replaced by `field` holding `payload`.
    func modelWithField(_ name: String, _ field: Field, _ payload: [UInt8]) throws -> [UInt8] {
        let m = try makeModel()
        m.optimizer = Optimizer<Float>(config: m.optimizerConfig, count: m.network.parameterCount)
        let sink = MemorySink()
        try m.write(to: sink)
        let r = try StreamReader(source: MemorySource(sink.data))
        var s = r.schema
        let i = try XCTUnwrap(s.index(of: name))
        s.fields[i] = field
        let b = try XCTUnwrap(try r.next())
        let views = (0..<s.fields.count).map { $0 == i ? [UInt8]() : Array(b.field($0)) }
        var batch = views
        batch[i] = payload
        return try makeStreamBytes(s, batch)
    }

    func makeStreamBytes(_ s: Schema, _ fields: [[UInt8]]) throws -> [UInt8] {
        let out = MemorySink()
        let w = try StreamWriter(sink: out, schema: s)
        let copies = fields.map { f -> UnsafeMutableRawBufferPointer in
            let p = UnsafeMutableRawBufferPointer.allocate(byteCount: max(f.count, 1), alignment: 64)
            p.copyBytes(from: f)
            return p
        }
        defer { copies.forEach { $0.deallocate() } }
        try w.write(count: 1, fields: zip(copies, fields).map { UnsafeRawBufferPointer(start: $0.baseAddress, count: $1.count) })
        try w.finish()
        return out.data
    }

    func testHostileModelFieldsAreRefused() throws {
        let P = try makeModel().network.parameterCount
        // Optimizer state of the wrong kind or size would be read past its end.
        let small = try modelWithField("opt_m", Field(name: "opt_m", dtype: .u8, shape: Shape([1])), [7])
        XCTAssertThrowsError(try Model.load(from: MemorySource(small, name: "m.model"))) { e in
            XCTAssertTrue(((e as? DiagnosticError)?.problem ?? "").contains("optimizer state 'opt_m'"), "\(e)")
        }
        var nan = [Float](repeating: 0, count: P)
        nan[P / 2] = .nan
        let bad = try modelWithField("opt_v", Field(name: "opt_v", dtype: .f32, shape: Shape([P])), nan.withUnsafeBytes { Array($0) })
        XCTAssertThrowsError(try Model.load(from: MemorySource(bad, name: "m.model"))) { e in
            XCTAssertTrue("\(e)".contains("NaN"), "\(e)")
        }
        // An architecture of 400 million parameters over a small file: refused by counting,
        // before 3 GB of buffers are allocated.
        let huge = try rewrittenModel { $0.setMetadata("model.architecture", "dense 20000 relu\ndense 20000\ndense classes") }
        XCTAssertThrowsError(try Model.load(from: MemorySource(huge, name: "m.model"))) { e in
            XCTAssertTrue("\(e)".contains("do not fit the architecture, which has 400180003 parameters"), "\(e)")
        }
    }

    func testWeightsThatDoNotFitTheArchitectureAreRefused() throws {
        let m = try makeModel()
        let sink = MemorySink()
        try m.write(to: sink)
        let r = try StreamReader(source: MemorySource(sink.data))
        var s = r.schema
        s.setMetadata("model.architecture", "dense 17 relu\ndense classes")
        let b = try XCTUnwrap(try r.next())
        let out = MemorySink()
        let w = try StreamWriter(sink: out, schema: s)
        try w.write(count: 1, fields: (0..<s.fields.count).map { b.field($0) })
        try w.finish()
        XCTAssertThrowsError(try Model.load(from: MemorySource(out.data, name: "m.model"))) { e in
            XCTAssertTrue("\((e as! DiagnosticError).problem)".contains("do not fit the architecture"), "\(e)")
        }
    }
}

final class OneHotTests: XCTestCase {
    func testOneHotCrossEntropyEqualsSparse() {
        let z: [Float] = [0.5, -1, 2, 0.1, 0.3, -0.2]
        let labels: [Int32] = [2, 0]
        let onehot: [Float] = [0, 0, 1, 1, 0, 0]
        var g1 = [Float](repeating: 0, count: 6), g2 = g1
        let a = Loss.compute(task: .classification, output: z, batch: 2, outputs: 3, labels: labels, targets: nil, grad: &g1)
        let b = Loss.compute(task: .classification, output: z, batch: 2, outputs: 3, labels: nil, targets: onehot, grad: &g2)
        XCTAssertEqual(a.loss, b.loss, accuracy: 1e-6)
        XCTAssertEqual(a.correct, b.correct)
        for i in 0..<6 { XCTAssertEqual(g1[i], g2[i], accuracy: 1e-7) }
    }
}
