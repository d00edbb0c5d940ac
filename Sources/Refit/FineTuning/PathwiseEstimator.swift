import Foundation
import RefitCompute

/// A denoising chain that also runs without noise, differentiably: what the pathwise estimator needs beyond sampling.
public protocol PathwisePolicy: DenoisingPolicy {
    /// The chain's length T: steps T−1 … 0 are visited in that order.
    var steps: Int { get }
    /// Columns of the chain's state.
    var dimensions: Int { get }
    /// Why this policy cannot take a pathwise gradient (its reward or its parameterisation), or nil when it can.
    var pathwiseRefusal: String? { get }
    /// x_T of each example, one row each, deterministic given `update`; the rewards below score these rows.
    func deterministicStart(_ examples: [Example], update: Int) throws -> Tensor
    /// One reverse step on `state`, in place, by the policy or by the frozen pre-trained model: noise-free, or with
    /// noise fixed by the update and the step (the same for both models), so the chain stays a function of θ.
    func reverseStep(_ step: Int, state: Tensor, frozen: Bool) throws
    /// With ∂L/∂x_{step−1} in `gradient`, adds the step's share of the parameters' gradient at input `xt`, and when
    /// `propagate` replaces `gradient` with ∂L/∂x_step.
    func reverseStepBackward(_ step: Int, xt: Tensor, gradient: Tensor, propagate: Bool) throws
    func rewards(x0: Tensor) throws -> [Double]
    /// ∂r/∂x₀ of every row.
    func rewardGradient(x0: Tensor, into gradient: Tensor) throws
    /// 1 at each row's training items (the items a ranking never shows), 0 elsewhere.
    func seenMask(into mask: Tensor)
    func seenItems(row: Int) -> ArraySlice<Int32>
}

/// The pathwise estimator (DRaFT-K): x₀ is a differentiable function of θ along the chain x_T → x₀, its noise fixed (one row
/// per example: the chain is deterministic), so `loss = −mean r(x₀)`, plus the anchor `β·mean ½‖x₀ − x₀_ref‖²` to the
/// frozen pre-trained output, is backpropagated through the last `steps` reverse steps.
///
/// What it stores: x_t at the window's steps (the forward is rerun there rather than keeping activations). With a focus,
/// ∂r/∂x₀ and the anchor act only on each example's focus items, fixed by the frozen reference so that the objective
/// does not move with θ; the logged rewards stay the whole reward.
public final class PathwiseEstimator<Policy: PathwisePolicy>: FinetuneEstimator {
    public let policy: Policy
    let settings: FinetuneSettings
    let pathwise: PathwiseSettings
    private let scalar: Tensor
    private var buffers: [Int: Buffers] = [:]

    final class Buffers {
        /// x₀_ref, then x₀ − x₀_ref; ∂L/∂x down the chain; the anchor's (and focus's) 0/1 mask and a masked copy.
        let reference, gradient, mask, masked: Tensor
        var window: [Tensor] = []
        init(_ backend: any Backend, rows: Int, columns: Int) throws {
            func matrix() throws -> Tensor { try backend.makeTensor([rows, columns], .float32) }
            reference = try matrix(); gradient = try matrix(); mask = try matrix(); masked = try matrix()
        }
    }

    public init(policy: Policy, settings: FinetuneSettings) throws {
        guard let pathwise = settings.pathwise else { preconditionFailure("a pathwise estimator needs pathwise settings") }
        if let refusal = policy.pathwiseRefusal { throw FinetuneError.invalidSetting(refusal) }
        self.policy = policy
        self.settings = settings
        self.pathwise = pathwise
        scalar = try policy.backend.makeTensor([1], .float32)
    }

    /// The gradient for one batch, accumulated into the (zeroed) parameter gradients. Returns the rewards and the anchor
    /// distance mean ½‖x₀ − x₀_ref‖² over the anchored items (0 without an anchor).
    func gradient(_ batch: [Policy.Example], update: Int) throws -> (rewards: [Double], anchorDistance: Double) {
        let backend = policy.backend, steps = policy.steps
        let window = min(pathwise.steps ?? steps, steps)
        let state = try policy.deterministicStart(batch, update: update)
        let rows = state.rows
        let b = try buffers.reused(rows) { try Buffers(backend, rows: rows, columns: policy.dimensions) }
        while b.window.count < window { b.window.append(try backend.makeTensor([rows, policy.dimensions], .float32)) }
        let anchor = pathwise.anchor
        if anchor != nil {
            backend.copy(state, to: b.reference)
            for i in stride(from: steps - 1, through: 0, by: -1) { try policy.reverseStep(i, state: b.reference, frozen: true) }
        }
        if let anchor, case .focus(let count) = anchor.scope {
            try policy.rewardGradient(x0: b.reference, into: b.gradient)
            let mask = Self.focusMask(reference: try backend.readFloats(b.reference), step: try backend.readFloats(b.gradient),
                                      scale: 1 / anchor.weight, seen: (0..<rows).map { policy.seenItems(row: $0) }, count: count)
            backend.write(mask, to: b.mask)
        }
        for i in stride(from: steps - 1, through: 0, by: -1) {
            if i < window { backend.copy(state, to: b.window[i]) }
            try policy.reverseStep(i, state: state, frozen: false)
        }
        let rewards = try policy.rewards(x0: state)
        try policy.rewardGradient(x0: state, into: b.gradient)
        var anchorDistance = 0.0
        if let anchor {
            // x₀ − x₀_ref into b.reference; the anchor adds β·(x₀ − x₀_ref) to −∂r/∂x₀.
            backend.scale(b.reference, by: -1)
            backend.axpy(1, state, b.reference)
            switch anchor.scope {
            case .focus: backend.multiply(b.reference, b.mask, into: b.reference)
            case .unseen:
                // Only unseen items are ranked: the anchor leaves the user's training items free.
                policy.seenMask(into: b.mask)
                backend.multiply(b.reference, b.mask, into: b.masked)
                backend.axpy(-1, b.masked, b.reference)
            case .all: break
            }
            backend.sumOfSquares(b.reference, into: scalar)
            anchorDistance = Double(try backend.readScalar(scalar)) / 2 / Double(rows)
            backend.axpy(-anchor.weight, b.reference, b.gradient)
        }
        if case .focus = anchor?.scope { backend.multiply(b.gradient, b.mask, into: b.gradient) }
        backend.scale(b.gradient, by: -1 / Float(rows))
        policy.parameters.zeroGradients()
        for i in 0..<window {
            try policy.reverseStepBackward(i, xt: b.window[i], gradient: b.gradient, propagate: i + 1 < window)
        }
        return (rewards, anchorDistance)
    }

    /// One update: the gradient above, then AdamW. The logged loss is −mean reward plus the anchor term; there is no
    /// ratio to clip and no second policy to measure a KL against, so the anchor distance is logged instead.
    public func update(_ batch: [Policy.Example], number update: Int) throws -> UpdateStatistics {
        let (rewards, distance) = try gradient(batch, update: update)
        try policy.applyOptimizer(settings, scratch: scalar)
        let weight = Double(pathwise.anchor?.weight ?? 0)
        return UpdateStatistics(rewards: rewards, loss: -rewards.reduce(0, +) / Double(rewards.count) + weight * distance, diagnostics: [
            .init(key: "anchor_distance", label: "anchor distance", format: "%.2e", value: distance),
        ])
    }

    /// The 0/1 focus mask (rows × items, row-major): in each row, the items outside `seen` that rank in the top `count`
    /// of `reference` or of `reference + scale·step`, ties to the lower item index.
    static func focusMask(reference: [Float], step: [Float], scale: Float, seen: [ArraySlice<Int32>], count: Int) -> [Float] {
        let rows = seen.count, items = reference.count / max(rows, 1)
        var mask = [Float](repeating: 0, count: reference.count)
        for r in 0..<rows {
            var unseen = [Bool](repeating: true, count: items)
            for i in seen[r] { unseen[Int(i)] = false }
            let candidates = (0..<items).filter { unseen[$0] }
            for score in [{ (j: Int) in reference[r * items + j] }, { (j: Int) in reference[r * items + j] + scale * step[r * items + j] }] {
                let ranked = candidates.sorted { score($0) > score($1) || (score($0) == score($1) && $0 < $1) }
                for j in ranked.prefix(count) { mask[r * items + j] = 1 }
            }
        }
        return mask
    }
}
