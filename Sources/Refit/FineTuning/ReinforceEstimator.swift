import Foundation
import RefitCompute

/// REINFORCE on a denoising chain: G stochastic rollouts per example, group-normalised advantages, and
/// `−mean A·Σ_{t∈S} log π_θ(x_{t−1}|x_t)` (mean over dimensions inside log π) descended through the network, S a random
/// share of the noisy steps; with PPO, several clipped updates over the same rollouts; with a KL coefficient, a penalty
/// towards the frozen pre-trained model.
///
/// The rollouts keep only the states of the steps in S. Replaying from seeds would save that memory but costs a second
/// pass over every step per update; with S a fraction of the steps the stored states are the cheaper choice, and
/// memory stays bounded by the batch, never by the dataset.
public final class ReinforceEstimator<Policy: DenoisingPolicy>: FinetuneEstimator {
    public let policy: Policy
    let settings: FinetuneSettings
    let reinforce: ReinforceSettings
    /// A stream of its own for the choice of trained steps, so that it never coincides with the epoch shuffles.
    let stepRandom: HostRandom
    private let scalar: Tensor
    private var buffers: [Int: (logp: Tensor, dLogp: Tensor, logStd: Tensor, dMean: Tensor, difference: Tensor)] = [:]
    /// The action and μ_θ of the last `logProbability`, which `accumulateGradient` differentiates.
    private var last: (action: Tensor, mean: Tensor)?

    public init(policy: Policy, settings: FinetuneSettings) throws {
        guard let reinforce = settings.reinforce else { preconditionFailure("a REINFORCE estimator needs REINFORCE settings") }
        self.policy = policy
        self.settings = settings
        self.reinforce = reinforce
        stepRandom = HostRandom(seed: settings.seed, stream: policy.stepStream)
        scalar = try policy.backend.makeTensor([1], .float32)
    }

    /// The noisy steps trained on in update `update`: the `stepFraction` share (at least one), drawn at random, in the
    /// order the chain visits them.
    func trainedSteps(update: Int) -> [Int] {
        let candidates = policy.noisySteps
        guard !candidates.isEmpty else { return [] }
        let count = max(1, Int((reinforce.stepFraction * Double(candidates.count)).rounded()))
        if count >= candidates.count { return policy.chainOrder(candidates.sorted()) }
        return policy.chainOrder(stepRandom.permutation(candidates.count, round: UInt64(update)).prefix(count).map { candidates[$0] }.sorted())
    }

    private func scratch(rows: Int, like mean: Tensor) throws -> (logp: Tensor, dLogp: Tensor, logStd: Tensor, dMean: Tensor, difference: Tensor) {
        let backend = policy.backend
        return try buffers.reused(rows) {
            (try backend.makeTensor([rows], .float32), try backend.makeTensor([rows], .float32), try backend.makeTensor([rows], .float32),
             try backend.makeTensor(mean.shape, .float32), try backend.makeTensor(mean.shape, .float32))
        }
    }

    /// The per-row log π of step `step`'s stored action in `slot` under the current weights.
    func logProbability(step: Int, slot: Int) throws -> [Double] {
        let backend = policy.backend
        let (action, mean, logStd) = try policy.gaussian(step: step, slot: slot)
        last = (action, mean)
        let b = try scratch(rows: mean.rows, like: mean)
        backend.fill(b.logStd, with: logStd)
        backend.gaussianLogProbability(action, mean: mean, logStd: b.logStd, into: b.logp)
        return try backend.readFloats(b.logp).map(Double.init)
    }

    /// Adds to the parameter gradients the gradient of `Σ_r dLogp[r]·log π(x_{t−1}|x_t)` at the state of the last
    /// `logProbability` call, plus the KL penalty's when it is on.
    func accumulateGradient(step: Int, slot: Int, dLogp: [Float]) throws {
        let backend = policy.backend
        guard let (action, mean) = last else { preconditionFailure("accumulateGradient follows logProbability") }
        let b = try scratch(rows: mean.rows, like: mean)
        backend.write(dLogp, to: b.dLogp)
        backend.gaussianLogProbabilityBackward(action, mean: mean, logStd: b.logStd, dLogp: b.dLogp, into: b.dMean)
        if let kl = reinforce.klCoefficient {
            let reference = try policy.referenceMean(step: step, slot: slot)
            backend.copy(mean, to: b.difference)
            backend.axpy(-1, reference, b.difference)
            backend.axpy(policy.klGradientScale(step: step, coefficient: kl, rows: mean.rows), b.difference, b.dMean)
        }
        try policy.backward(step: step, dMean: b.dMean)
    }

    /// One batch: rollouts, then one REINFORCE update (or `ppo.epochs` clipped ones) over the stored steps.
    public func update(_ batch: [Policy.Example], number update: Int) throws -> UpdateStatistics {
        let trained = trainedSteps(update: update)
        let rewards = try policy.rollout(batch, rollouts: reinforce.rollouts, trained: trained, update: update)
        let advantages = Self.advantages(rewards, groupSize: reinforce.rollouts, clip: Double(reinforce.advantageClip))
        var oldLogp: [[Double]] = []
        var loss = 0.0, clipped = 0, ratios = 0
        for inner in 0..<(reinforce.ppo?.epochs ?? 1) {
            policy.parameters.zeroGradients()
            loss = 0
            for (slot, step) in trained.enumerated() {
                let logp = try logProbability(step: step, slot: slot)
                if inner == 0 { oldLogp.append(logp) }
                let term = PolicyGradientStep(logp: logp, oldLogp: oldLogp[slot], advantages: advantages, ppo: reinforce.ppo)
                loss += term.loss
                clipped += term.clipped
                ratios += term.ratios
                try accumulateGradient(step: step, slot: slot, dLogp: term.dLogp)
            }
            try policy.applyOptimizer(settings, scratch: scalar)
        }
        // Approximate KL(π_old ‖ π_new) = E[log π_old − log π_new], on the first trained step after the update.
        var kl = 0.0
        if let first = trained.first {
            let newLogp = try logProbability(step: first, slot: 0)
            kl = zip(oldLogp[0], newLogp).map { $0 - $1 }.reduce(0, +) / Double(rewards.count)
        }
        return UpdateStatistics(rewards: rewards, loss: loss, diagnostics: [
            .init(key: "approx_kl", label: "KL", format: "%.2e", value: kl),
            .init(key: "clip_fraction", label: "clip", format: "%.3f", value: ratios > 0 ? Double(clipped) / Double(ratios) : 0),
        ])
    }

    /// Group-normalised advantages `(r − mean_G)/(std_G + 1e-8)`, clipped; with G = 1, normalised over the batch.
    static func advantages(_ rewards: [Double], groupSize: Int, clip: Double) -> [Double] {
        let groups = groupSize > 1 ? stride(from: 0, to: rewards.count, by: groupSize).map { $0..<min(rewards.count, $0 + groupSize) }
            : [0..<rewards.count]
        var result = [Double](repeating: 0, count: rewards.count)
        for g in groups {
            let values = rewards[g]
            let mean = values.reduce(0, +) / Double(values.count)
            let std = (values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(values.count)).squareRoot()
            for i in g { result[i] = min(max((rewards[i] - mean) / (std + 1e-8), -clip), clip) }
        }
        return result
    }
}

/// One step's share of the policy-gradient loss and its gradient with respect to each row's log π, for REINFORCE
/// (`−A·log π`) or, with PPO, the clipped surrogate `−min(ρA, clip(ρ, 1±ε)A)`, ρ = π/π_old; both averaged over rows.
struct PolicyGradientStep {
    var dLogp: [Float]
    var loss = 0.0
    var clipped = 0
    var ratios = 0

    init(logp: [Double], oldLogp: [Double], advantages: [Double], ppo: PPOSettings?) {
        let rows = Double(logp.count)
        dLogp = [Float](repeating: 0, count: logp.count)
        for r in logp.indices {
            let ratio = exp(logp[r] - oldLogp[r])
            var active = true
            if let ppo {
                let epsilon = Double(ppo.clipRange)
                active = !((advantages[r] > 0 && ratio > 1 + epsilon) || (advantages[r] < 0 && ratio < 1 - epsilon))
                if !active { clipped += 1 }
                ratios += 1
                loss -= advantages[r] * (active ? ratio : min(max(ratio, 1 - epsilon), 1 + epsilon)) / rows
            } else {
                loss -= advantages[r] * logp[r] / rows
            }
            if active { dLogp[r] = Float(-advantages[r] * ratio / rows) }
        }
    }
}
