// Optimizers written once as a step over (parameters, gradients, state) in the model's flat
// layout, with PyTorch's update rules. Weight decay: L2 added to the gradient for SGD and
// Adam; decoupled (p ← p − lr·wd·p) for AdamW.

import Foundation
import Compute
import TensorCore

public struct OptimizerConfig: Sendable, Equatable {
    public enum Kind: String, Sendable { case sgd, adam, adamw }
    public var kind: Kind = .adam
    public var learningRate = 0.001
    public var momentum = 0.0
    public var nesterov = false
    public var beta1 = 0.9
    public var beta2 = 0.999
    public var epsilon = 1e-7
    public var weightDecay = 0.0
    /// The factor the learning rate is multiplied by after every epoch (fit --lr-decay); 1, none.
    public var lrDecay = 1.0

    public init() {}

    /// The text stored in a model file: "adam lr=0.001 beta1=0.9 …", with "lr_decay=F" when
    /// the rate decays (so that --resume goes on decaying it).
    public var text: String {
        let decay = lrDecay == 1 ? "" : " lr_decay=\(lrDecay)"
        switch kind {
        case .sgd: return "sgd lr=\(learningRate) momentum=\(momentum) nesterov=\(nesterov) weight_decay=\(weightDecay)" + decay
        case .adam, .adamw: return "\(kind.rawValue) lr=\(learningRate) beta1=\(beta1) beta2=\(beta2) eps=\(epsilon) weight_decay=\(weightDecay)" + decay
        }
    }
}

public final class Optimizer<T: Real> {
    public var config: OptimizerConfig
    public let count: Int
    /// Momentum (SGD) or first moment (Adam), and second moment (Adam).
    public let m: UnsafeMutablePointer<T>
    public let v: UnsafeMutablePointer<T>
    public var step = 0

    public init(config: OptimizerConfig, count: Int) {
        self.config = config
        self.count = count
        m = .allocate(capacity: max(count, 1))
        v = .allocate(capacity: max(count, 1))
        m.initialize(repeating: 0, count: max(count, 1))
        v.initialize(repeating: 0, count: max(count, 1))
    }

    deinit {
        m.deallocate()
        v.deallocate()
    }

    /// One update of `params` from `grads` over the trainable `ranges`.
    @_specialize(where T == Float)
    public func update(params p: UnsafeMutablePointer<T>, grads g: UnsafePointer<T>, ranges: [Range<Int>]) {
        beginStep()
        for r in ranges { apply(params: p, grads: g, range: r) }
    }

    /// Advances the step count (Adam's bias correction); call once per update, before `apply`.
    public func beginStep() { step += 1 }

    /// Updates the parameters in `range` for the current step. Disjoint ranges may be applied
    /// from different threads.
    @_specialize(where T == Float)
    public func apply(params p: UnsafeMutablePointer<T>, grads g: UnsafePointer<T>, range r: Range<Int>) {
        let lr = T(config.learningRate), wd = T(config.weightDecay)
        let m = self.m, v = self.v
        switch config.kind {
        case .sgd:
            let mu = T(config.momentum), nesterov = config.nesterov
            for i in r {
                var d = g[i] + wd * p[i]
                if mu != 0 {
                    m[i] = mu * m[i] + d
                    d = nesterov ? d + mu * m[i] : m[i]
                }
                p[i] -= lr * d
            }
        case .adam, .adamw:
            let b1 = T(config.beta1), b2 = T(config.beta2), eps = T(config.epsilon)
            let c1 = 1 - T(Foundation.pow(config.beta1, Double(step))), c2 = 1 - T(Foundation.pow(config.beta2, Double(step)))
            let decoupled = config.kind == .adamw
            let step1 = lr / c1, ic2 = 1 / c2
            if T.self == Float.self {
                // Vectorized, the same bits (Compute.adamStep); AdamW decays first.
                if decoupled { for i in r { p[i] -= lr * wd * p[i] } }
                adamStep(f32(p + r.lowerBound), f32(g + r.lowerBound), f32(m + r.lowerBound), f32(v + r.lowerBound), count: r.count,
                         beta1: Float(b1), beta2: Float(b2), step: Float(step1), inverseCorrection: Float(ic2), epsilon: Float(eps),
                         decay: decoupled ? 0 : Float(wd))
                return
            }
            for i in r {
                if decoupled { p[i] -= lr * wd * p[i] }
                let d = decoupled ? g[i] : g[i] + wd * p[i]
                let mi = b1 * m[i] + (1 - b1) * d
                let vi = b2 * v[i] + (1 - b2) * d * d
                m[i] = mi
                v[i] = vi
                p[i] -= step1 * mi / (T.sqrt(vi * ic2) + eps)
            }
        }
    }
}

