import Foundation
import RefitCompute

/// Fine-tuning state for `--resume`, saved as state.json after every epoch.
public struct FinetuneState: CheckpointState, Sendable {
    public var epoch = 0
    public var updates = 0
    public var optimizerStep = 0
    public var bestEpoch = 0
    public var bestValidNDCG20 = -1.0
    /// Validation metrics of the pre-trained model (epoch 0) and at the best epoch.
    public var pretrainedValid: [String: Double] = [:]
    public var bestValid: [String: Double] = [:]
}

/// What one epoch of fine-tuning did, as logged per epoch.
public struct FinetuneEpochStatistics: Sendable {
    public var rewardMean = 0.0
    public var rewardStd = 0.0
    public var loss = 0.0
    public var approximateKL = 0.0
    public var clipFraction = 0.0
    public var seconds = 0.0
    public var usersPerSecond = 0.0
}

extension FinetuneEpochStatistics {
    /// Collects the updates of one epoch; `finish` summarises them as logged.
    struct Accumulator {
        var rewards: [Double] = [], losses: [Double] = [], kls: [Double] = [], clips: [Double] = []
        let started = Date()

        mutating func add(_ update: (rewards: [Double], loss: Double, kl: Double, clipFraction: Double)) {
            rewards += update.rewards
            losses.append(update.loss)
            kls.append(update.kl)
            clips.append(update.clipFraction)
        }

        func finish(users: Int) -> FinetuneEpochStatistics {
            func mean(_ values: [Double]) -> Double { values.reduce(0, +) / Double(max(values.count, 1)) }
            var s = FinetuneEpochStatistics()
            s.rewardMean = mean(rewards)
            s.rewardStd = mean(rewards.map { ($0 - s.rewardMean) * ($0 - s.rewardMean) }).squareRoot()
            s.loss = mean(losses)
            s.approximateKL = mean(kls)
            s.clipFraction = mean(clips)
            s.seconds = Date().timeIntervalSince(started)
            s.usersPerSecond = Double(users) / s.seconds
            return s
        }
    }

    /// The metrics.jsonl line of a fine-tuning epoch.
    func metricsLine(epoch: Int) -> [(String, JSONValue)] {
        [("kind", .string("epoch")), ("epoch", .integer(epoch)), ("reward_mean", .number(rewardMean)),
         ("reward_std", .number(rewardStd)), ("loss", .number(loss)), ("approx_kl", .number(approximateKL)),
         ("clip_fraction", .number(clipFraction)), ("seconds", .number(seconds)), ("users_per_second", .number(usersPerSecond))]
    }

    /// The console line of a fine-tuning epoch, before its validation scores.
    func logLine(epoch: Int) -> String {
        String(format: "epoch %3d  reward %.4f ± %.4f  loss %.4g  KL %.2e  clip %.3f  %.1f s  %.0f users/s",
               epoch, rewardMean, rewardStd, loss, approximateKL, clipFraction, seconds, usersPerSecond)
    }
}

/// ReFiT (DESIGN §4): the reverse diffusion chain as an MDP, optimised with policy gradients.
///
/// For a batch of users it samples G trajectories each from `N(μ_θ(x_t, t), η²σ̃_t²·I)` with the network in
/// inference mode, scores each final x₀ with the reward, forms group-normalised advantages, and descends
/// `−mean A·Σ_{t∈S} log π_θ(x_{t−1}|x_t)` (mean over items inside log π) through the denoiser.
///
/// With `--estimator pathwise` it instead follows the noise-free chain and backpropagates the reward through it
/// (`pathwiseGradient`).
///
/// What a rollout records: x_t and x_{t−1} for the steps S trained on (chosen before the rollout), nothing
/// else. Replaying from seeds would save that memory but costs a second pass over all T steps per update;
/// with S a fraction of the steps the stored pairs are the cheaper choice, and memory stays
/// O(usersPerBatch·G·|S|·I), bounded by the batch, never by the dataset.
public final class ReFiTTrainer: ReFiTEpochLoop {
    public let policy: DiffRecModel
    let reference: DiffRecModel?
    public let reward: RolloutReward
    public let dataset: InteractionDataset
    public let evaluator: TopKEvaluator
    public let run: RunFolder
    public let settings: FinetuneSettings
    public internal(set) var state: FinetuneState
    weak var observer: TrainingObserver?
    let backend: any Backend
    /// `dataset.usersWithTrainingInteractions()`, computed once.
    let trainingUsers: [Int]
    let random: HostRandom
    /// A separate stream for the choice of trained steps, so it never coincides with the epoch shuffles.
    let stepRandom: HostRandom
    let steps: Int
    let logStd: [Double]
    private let scalar: Tensor
    private var buffers: [Int: RolloutBuffers] = [:]

    final class RolloutBuffers {
        let users, timesteps: Tensor
        let state, noise, mean, meanReference, gradient: Tensor
        let noiseScale, ones, zeros, logStd, coefficient, logp, dLogp: Tensor
        /// With exploration on target items only: the 0/1 mask of explored dimensions and x_{t−1} ⊙ mask.
        let explored, exploredPrevious: Tensor
        var slots: [(xt: Tensor, previous: Tensor)] = []
        let rows, items: Int
        let backend: any Backend

        init(_ backend: any Backend, rows: Int, items: Int) throws {
            self.backend = backend
            self.rows = rows
            self.items = items
            users = try backend.makeTensor([rows], .int32)
            timesteps = try backend.makeTensor([rows], .int32)
            state = try backend.makeTensor([rows, items], .float32)
            noise = try backend.makeTensor([rows, items], .float32)
            mean = try backend.makeTensor([rows, items], .float32)
            meanReference = try backend.makeTensor([rows, items], .float32)
            gradient = try backend.makeTensor([rows, items], .float32)
            noiseScale = try backend.makeTensor([rows], .float32)
            ones = try backend.tensor([Float](repeating: 1, count: rows), shape: [rows])
            zeros = try backend.makeTensor([rows], .float32)
            logStd = try backend.makeTensor([rows], .float32)
            coefficient = try backend.makeTensor([rows], .float32)
            logp = try backend.makeTensor([rows], .float32)
            dLogp = try backend.makeTensor([rows], .float32)
            explored = try backend.makeTensor([rows, items], .float32)
            exploredPrevious = try backend.makeTensor([rows, items], .float32)
        }

        func slot(_ k: Int) throws -> (xt: Tensor, previous: Tensor) {
            while slots.count <= k {
                slots.append((try backend.makeTensor([rows, items], .float32), try backend.makeTensor([rows, items], .float32)))
            }
            return slots[k]
        }
    }

    /// Each user's explored items when `settings.exploration == .targets`.
    let candidates: CollaborativeTargets?

    public init(policy: DiffRecModel, reference: DiffRecModel?, reward: RolloutReward, dataset: InteractionDataset,
                evaluator: TopKEvaluator, run: RunFolder, settings: FinetuneSettings, candidates: CollaborativeTargets? = nil,
                state: FinetuneState? = nil, observer: TrainingObserver? = nil) throws {
        precondition(settings.exploration == .all || candidates != nil, "exploring target items needs the targets")
        self.candidates = settings.exploration == .targets ? candidates : nil
        self.policy = policy
        self.reference = reference
        self.reward = reward
        self.dataset = dataset
        self.evaluator = evaluator
        self.run = run
        self.settings = settings
        self.observer = observer
        trainingUsers = dataset.usersWithTrainingInteractions()
        self.state = state ?? FinetuneState()
        backend = policy.backend
        random = HostRandom(seed: settings.seed, stream: 2)
        stepRandom = HostRandom(seed: settings.seed, stream: 3)
        steps = policy.settings.steps
        // log(η·σ̃_t) per 0-based step: the policy's standard deviation.
        logStd = policy.diffusion.schedule.posteriorLogVariancesClipped.map { $0 / 2 + log(Double(settings.explorationScale)) }
        policy.denoiser.parameters.step = self.state.optimizerStep
        scalar = try backend.makeTensor([1], .float32)
    }

    func rolloutBuffers(_ rows: Int) throws -> RolloutBuffers {
        try buffers.reused(rows) { try RolloutBuffers(backend, rows: rows, items: dataset.itemCount) }
    }


    /// The noisy steps (0-based i ≥ 1) trained on in update `update`: a random subset of the requested size, in the
    /// order the chain visits them (descending).
    func trainedSteps(update: Int) -> [Int] {
        settings.trainedShare(of: Array(1..<steps), random: stepRandom, update: update).reversed()
    }

    /// Rolls out G trajectories per user and returns their rewards; the pairs (x_t, x_{t−1}) of `trained` steps
    /// are kept in the buffers' slots. Deterministic given (seed, update).
    func rollout(users: [Int], trained: [Int], update: Int, buffers b: RolloutBuffers) throws -> [Double] {
        let rowsUsers = users.flatMap { Array(repeating: $0, count: settings.rollouts) }
        try startStates(rowsUsers, update: update, buffers: b)
        if let candidates {
            var mask = [Float](repeating: 0, count: b.rows * b.items)
            for (row, user) in rowsUsers.enumerated() { for item in candidates.items[user] { mask[row * b.items + Int(item)] = 1 } }
            backend.write(mask, to: b.explored)
        }
        let diffusion = policy.diffusion
        let noiseSeed = settings.seed ^ 0x524F_4C4C_4F55_54
        for i in stride(from: steps - 1, through: 0, by: -1) {
            backend.fill(b.timesteps, with: Float(i))
            let output = try policy.denoiser.forward(b.state, timesteps: b.timesteps, training: false)
            try diffusion.predictedStart(modelOutput: output, xt: b.state, timesteps: b.timesteps)
            let slot = trained.firstIndex(of: i)
            if let slot { backend.copy(b.state, to: try b.slot(slot).xt) }
            try diffusion.posteriorMean(predictedStart: output, xt: b.state, timesteps: b.timesteps, into: b.state)
            guard i > 0 else { break }  // the last step (t = 1) adds no noise
            let offset = (UInt64(update) * UInt64(steps) + UInt64(i)) * UInt64(b.rows * b.items)
            backend.fillNormal(b.noise, seed: noiseSeed, offset: offset)
            if candidates != nil { backend.multiply(b.noise, b.explored, into: b.noise) }
            backend.fill(b.noiseScale, with: Float(exp(logStd[i])))
            backend.combineRows(b.state, scaledBy: b.ones, b.noise, scaledBy: b.noiseScale, into: b.state)
            if let slot { backend.copy(b.state, to: try b.slot(slot).previous) }
        }
        return try reward.rewards(x0: b.state, rows: RolloutRows(users: rowsUsers, userTensor: b.users))
    }

    /// x_T for each row: the user's training row, q-sampled when the model samples from a noisy start.
    func startStates(_ rowsUsers: [Int], update: Int, buffers b: RolloutBuffers) throws {
        backend.write(rowsUsers.map { Int32($0) }, to: b.users)
        backend.densifyRows(evaluator.trainMatrix, rows: b.users, into: b.state)
        if policy.settings.samplingSteps > 0 {
            backend.fill(b.timesteps, with: Float(policy.settings.samplingSteps - 1))
            backend.fillNormal(b.noise, seed: settings.seed ^ 0x5354_4152_54, offset: UInt64(update) * UInt64(b.rows * b.items))
            try policy.diffusion.qSample(b.state, timesteps: b.timesteps, noise: b.noise, into: b.state)
        }
    }

    /// The pathwise estimator's gradient for one batch, accumulated into the (zeroed) parameter gradients: the noise-
    /// free chain x_T → x₀ (one row per user; it is deterministic), then `loss = −mean_u r(x₀)` backpropagated
    /// through the last `window` reverse steps. A step maps x_t to `c1·f(x_t, t) + c2·x_t`, so with g = ∂loss/∂x_{t−1}
    /// the parameters get f's backward of c1·g and the chain carries `∂loss/∂x_t = J_fᵀ(c1·g) + c2·g`.
    /// What it stores: x_t at the window's steps (recomputing f there is the price of not keeping activations).
    /// With `focus`, ∂r/∂x₀ and the anchor act only on each user's focus items (`focusMask`); the logged rewards stay
    /// the whole reward. Returns the rewards and the anchor distance mean_u ½‖x₀ − x₀_ref‖² over the anchored items
    /// (0 without an anchor).
    func pathwiseGradient(users: [Int], update: Int, buffers b: RolloutBuffers) throws -> (rewards: [Double], anchorDistance: Double) {
        guard let differentiable = reward as? DifferentiableReward else {
            throw FinetuneError.invalidSetting("--estimator pathwise needs a differentiable reward, not \(reward.name)")
        }
        guard policy.settings.meanType == .x0 else {
            throw FinetuneError.invalidSetting("--estimator pathwise supports x0-predicting models (this one predicts \(policy.settings.meanType.rawValue))")
        }
        let window = settings.pathwiseSteps == 0 ? steps : min(settings.pathwiseSteps, steps)
        try startStates(users, update: update, buffers: b)
        let anchored = settings.anchor > 0
        if anchored {
            guard let reference else { preconditionFailure("an anchored pathwise trainer needs the reference model") }
            backend.copy(b.state, to: b.meanReference)
            for i in stride(from: steps - 1, through: 0, by: -1) { try reference.reverseStep(state: b.meanReference, step: i, timesteps: b.timesteps) }
        }
        let rows = RolloutRows(users: users, userTensor: b.users)
        if settings.focus > 0 {
            // The focus items, in b.explored: fixed by the frozen reference, so the objective does not move with θ.
            try differentiable.gradient(x0: b.meanReference, rows: rows, into: b.gradient)
            let mask = Self.focusMask(reference: try backend.readFloats(b.meanReference), step: try backend.readFloats(b.gradient),
                                      scale: 1 / settings.anchor, seen: users.map { dataset.train.row($0) }, count: settings.focus)
            backend.write(mask, to: b.explored)
        }
        for i in stride(from: steps - 1, through: 0, by: -1) {
            if i < window { backend.copy(b.state, to: try b.slot(i).xt) }
            try policy.reverseStep(state: b.state, step: i, timesteps: b.timesteps)
        }
        let rewards = try reward.rewards(x0: b.state, rows: rows)
        try differentiable.gradient(x0: b.state, rows: rows, into: b.gradient)
        var anchorDistance = 0.0
        if anchored {
            // x₀ − x₀_ref into b.meanReference; the anchor adds β·(x₀ − x₀_ref) to −∂r/∂x₀.
            backend.fill(b.coefficient, with: -1)
            backend.combineRows(b.state, scaledBy: b.ones, b.meanReference, scaledBy: b.coefficient, into: b.meanReference)
            if settings.focus > 0 {
                backend.multiply(b.meanReference, b.explored, into: b.meanReference)
            } else if settings.anchorUnseenOnly {
                // Only unseen items are ranked: the anchor leaves the user's training items free.
                backend.densifyRows(evaluator.trainMatrix, rows: b.users, into: b.explored)
                backend.multiply(b.meanReference, b.explored, into: b.exploredPrevious)
                backend.axpy(-1, b.exploredPrevious, b.meanReference)
            }
            backend.sumOfSquares(b.meanReference, into: scalar)
            anchorDistance = Double(try backend.readScalar(scalar)) / 2 / Double(b.rows)
            backend.axpy(-settings.anchor, b.meanReference, b.gradient)
        }
        if settings.focus > 0 { backend.multiply(b.gradient, b.explored, into: b.gradient) }
        backend.scale(b.gradient, by: -1 / Float(b.rows))
        let schedule = policy.diffusion.schedule
        policy.denoiser.parameters.zeroGradients()
        // The rollout buffers' scratch serves here: b.gradient carries ∂loss/∂x_t down the chain, b.mean the
        // denoiser's output gradient c1·g, and b.noise its input gradient.
        for i in 0..<window {
            let xt = try b.slot(i).xt
            backend.fill(b.timesteps, with: Float(i))
            _ = try policy.denoiser.forward(xt, timesteps: b.timesteps, training: false)
            backend.fill(b.coefficient, with: Float(schedule.posteriorMeanCoefficient1[i]))
            backend.combineRows(b.gradient, scaledBy: b.coefficient, b.gradient, scaledBy: b.zeros, into: b.mean)
            try policy.denoiser.backward(dOutput: b.mean, dInput: b.noise)
            if i + 1 < window {
                backend.fill(b.coefficient, with: Float(schedule.posteriorMeanCoefficient2[i]))
                backend.combineRows(b.noise, scaledBy: b.ones, b.gradient, scaledBy: b.coefficient, into: b.gradient)
            }
        }
        return (rewards, anchorDistance)
    }

    /// Zeroes the gradients of the layers that `trainedLayers` keeps frozen, so AdamW leaves them as they are (its
    /// moments stay 0; weight decay, 0 by default, would still shrink them) and the gradient norm is the trained layers'.
    func zeroFrozenGradients() {
        guard settings.trainedLayers == .output else { return }
        let parameters = policy.denoiser.parameters, output = policy.denoiser.architecture.layers.last!.name + "."
        for entry in parameters.entries where !entry.name.hasPrefix(output) { backend.fill(parameters.gradient(entry.name), with: 0) }
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

    /// One pathwise update: the gradient above, then AdamW. The logged loss is −mean reward plus the anchor term, and
    /// the KL column holds the anchor distance mean_u ½‖x₀ − x₀_ref‖²; there is no ratio to clip.
    func pathwiseUpdate(users: [Int]) throws -> (rewards: [Double], loss: Double, kl: Double, clipFraction: Double) {
        let parameters = policy.denoiser.parameters
        let (rewards, distance) = try pathwiseGradient(users: users, update: state.updates, buffers: try rolloutBuffers(users.count))
        zeroFrozenGradients()
        try parameters.applyAdamW(learningRate: settings.learningRate, weightDecay: settings.weightDecay,
                                  maxGradientNorm: settings.maxGradientNorm, scratch: scalar)
        state.updates += 1
        state.optimizerStep = parameters.step
        return (rewards, -rewards.reduce(0, +) / Double(rewards.count) + Double(settings.anchor) * distance, distance, 0)
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

    /// The action x_{t−1} as the log-probability sees it. With exploration on target items only, both the action
    /// and μ_θ (in `b.mean`) are restricted to the explored dimensions, so the others carry no probability and
    /// their gradient is zero; the per-row mean still divides by all I items, a constant factor.
    func actionTensor(slot: (xt: Tensor, previous: Tensor), buffers b: RolloutBuffers) throws -> Tensor {
        guard candidates != nil else { return slot.previous }
        backend.multiply(b.mean, b.explored, into: b.mean)
        backend.multiply(slot.previous, b.explored, into: b.exploredPrevious)
        return b.exploredPrevious
    }

    /// The per-row log π of a stored step under the current weights, leaving μ_θ in `b.mean`.
    func logProbability(step i: Int, slot: (xt: Tensor, previous: Tensor), buffers b: RolloutBuffers) throws -> [Double] {
        backend.fill(b.timesteps, with: Float(i))
        let output = try policy.denoiser.forward(slot.xt, timesteps: b.timesteps, training: false)
        try policy.diffusion.predictedStart(modelOutput: output, xt: slot.xt, timesteps: b.timesteps)
        try policy.diffusion.posteriorMean(predictedStart: output, xt: slot.xt, timesteps: b.timesteps, into: b.mean)
        backend.fill(b.logStd, with: Float(logStd[i]))
        backend.gaussianLogProbability(try actionTensor(slot: slot, buffers: b), mean: b.mean, logStd: b.logStd, into: b.logp)
        return try backend.readFloats(b.logp).map(Double.init)
    }

    /// Adds to the parameter gradients the gradient of `Σ_r dLogp[r]·log π(x_{t−1}|x_t)` (dLogp in `b.dLogp`,
    /// μ_θ left in `b.mean` by `logProbability`), plus the KL penalty's when it is on.
    func accumulateGradient(step i: Int, slot: (xt: Tensor, previous: Tensor), buffers b: RolloutBuffers) throws {
        let schedule = policy.diffusion.schedule
        // The action exactly as `logProbability` last saw it (already restricted there when exploring targets).
        let action = candidates == nil ? slot.previous : b.exploredPrevious
        backend.gaussianLogProbabilityBackward(action, mean: b.mean, logStd: b.logStd,
                                               dLogp: b.dLogp, into: b.gradient)
        if let reference, settings.klCoefficient > 0 {
            // β·mean_i (μ_θ − μ_ref)²/(2η²σ̃²), averaged over rows: its gradient joins dμ.
            let output = try reference.denoiser.forward(slot.xt, timesteps: b.timesteps, training: false)
            try reference.diffusion.predictedStart(modelOutput: output, xt: slot.xt, timesteps: b.timesteps)
            try reference.diffusion.posteriorMean(predictedStart: output, xt: slot.xt, timesteps: b.timesteps, into: b.meanReference)
            let variance = exp(2 * logStd[i])
            backend.fill(b.coefficient, with: -1)
            backend.combineRows(b.mean, scaledBy: b.ones, b.meanReference, scaledBy: b.coefficient, into: b.meanReference)
            backend.axpy(Float(Double(settings.klCoefficient) / (Double(b.items) * variance * Double(b.rows))), b.meanReference, b.gradient)
        }
        // μ = c1·x̂₀ + c2·x_t and, for x0-prediction, x̂₀ = f: dL/df = c1·dL/dμ (eps: also ·(−√(1/ᾱ − 1))).
        var coefficient = schedule.posteriorMeanCoefficient1[i]
        if policy.settings.meanType == .eps { coefficient *= -(1 / schedule.alphaBars[i] - 1).squareRoot() }
        backend.fill(b.coefficient, with: Float(coefficient))
        backend.combineRows(b.gradient, scaledBy: b.coefficient, b.gradient, scaledBy: b.zeros, into: b.gradient)
        try policy.denoiser.backward(dOutput: b.gradient)
    }

    /// One batch of users: rollouts, then REINFORCE (or `ppoEpochs` clipped updates) over the stored steps.
    func update(users: [Int]) throws -> (rewards: [Double], loss: Double, kl: Double, clipFraction: Double) {
        if settings.estimator == .pathwise { return try pathwiseUpdate(users: users) }
        let update = state.updates
        let trained = trainedSteps(update: update)
        let b = try rolloutBuffers(users.count * settings.rollouts)
        let rewards = try rollout(users: users, trained: trained, update: update, buffers: b)
        let advantages = Self.advantages(rewards, groupSize: settings.rollouts, clip: Double(settings.advantageClip))
        let rows = Double(b.rows)
        let parameters = policy.denoiser.parameters
        var oldLogp: [[Double]] = []
        var loss = 0.0, clipped = 0, ratios = 0, klSum = 0.0
        let innerEpochs = max(1, settings.ppoEpochs)
        for inner in 0..<innerEpochs {
            parameters.zeroGradients()
            loss = 0
            for (k, i) in trained.enumerated() {
                let slot = try b.slot(k)
                let logp = try logProbability(step: i, slot: slot, buffers: b)
                if inner == 0 { oldLogp.append(logp) }
                let step = PolicyGradientStep(logp: logp, oldLogp: oldLogp[k], advantages: advantages, settings: settings)
                loss += step.loss
                clipped += step.clipped
                ratios += step.ratios
                backend.write(step.dLogp, to: b.dLogp)
                try accumulateGradient(step: i, slot: slot, buffers: b)
            }
            zeroFrozenGradients()
            try parameters.applyAdamW(learningRate: settings.learningRate, weightDecay: settings.weightDecay,
                                      maxGradientNorm: settings.maxGradientNorm, scratch: scalar)
        }
        // Approximate KL(π_old ‖ π_new) = E[log π_old − log π_new], on the first trained step after the update.
        if let first = trained.first {
            let newLogp = try logProbability(step: first, slot: try b.slot(0), buffers: b)
            klSum = zip(oldLogp[0], newLogp).map { $0 - $1 }.reduce(0, +) / rows
        }
        state.updates += 1
        state.optimizerStep = parameters.step
        return (rewards, loss, klSum, ratios > 0 ? Double(clipped) / Double(ratios) : 0)
    }

    /// One pass over (a fraction of) the training users.
    public func trainEpoch() throws -> FinetuneEpochStatistics {
        let epoch = state.epoch + 1
        var order = random.permutation(trainingUsers.count, round: UInt64(epoch)).map { trainingUsers[$0] }
        order = Array(order.prefix(max(1, Int((Double(order.count) * settings.userFraction).rounded()))))
        var epochUpdates = FinetuneEpochStatistics.Accumulator()
        let batches = (order.count + settings.usersPerBatch - 1) / settings.usersPerBatch
        for batch in 0..<batches {
            let users = Array(order[(batch * settings.usersPerBatch)..<min(order.count, (batch + 1) * settings.usersPerBatch)])
            epochUpdates.add(try update(users: users))
            observer?.batchFinished(epoch: epoch, batch: batch + 1, of: batches)
        }
        state.epoch = epoch
        return epochUpdates.finish(users: order.count)
    }

    /// Mean reward of deterministic-seed rollouts for a fixed set of users, without updating: before/after checks.
    public func meanReward(users: [Int]) throws -> Double {
        let b = try rolloutBuffers(users.count * settings.rollouts)
        let rewards = try rollout(users: users, trained: [], update: 1 << 30, buffers: b)
        return rewards.reduce(0, +) / Double(rewards.count)
    }

    func validation() throws -> (metrics: RankingMetrics, seconds: Double) {
        let started = Date()
        let metrics = try evaluator.evaluate(.valid) { _, input in try policy.scores(input) }
        let seconds = Date().timeIntervalSince(started)
        try run.appendEvaluation(epoch: state.epoch, split: .valid, seconds: seconds, metrics: metrics)
        return (metrics, seconds)
    }

    /// Fine-tunes for `settings.epochs`, evaluating on validation each epoch and keeping the best weights.
    @discardableResult
    public func train() throws -> FinetuneState { try runEpochs() }

    var policyParameters: ParameterStore { policy.denoiser.parameters }
    var modelName: String { "diffrec" }
    var hitRateLabel: String { "R@20" }
    func namedValues(_ metrics: RankingMetrics) -> [(key: String, value: Double)] { metrics.values }


    /// Restores weights, moments and state from a fine-tuning run folder.
    public static func restore(policy: DiffRecModel, from run: RunFolder) throws -> FinetuneState {
        try run.restoreCheckpoint(policy.denoiser.parameters, as: FinetuneState.self)
    }
}

extension FinetuneSettings {
    /// The `stepFraction` share (at least one) of the noisy steps `candidates` that update `update` trains on, drawn
    /// by `random`, in increasing order.
    func trainedShare(of candidates: [Int], random: HostRandom, update: Int) -> [Int] {
        guard !candidates.isEmpty else { return [] }
        let count = max(1, Int((stepFraction * Double(candidates.count)).rounded()))
        if count >= candidates.count { return candidates.sorted() }
        return random.permutation(candidates.count, round: UInt64(update)).prefix(count).map { candidates[$0] }.sorted()
    }
}

/// One step's share of the policy-gradient loss and its gradient with respect to each row's log π, for REINFORCE
/// (`−A·log π`) or, with PPO epochs, the clipped surrogate `−min(ρA, clip(ρ, 1±ε)A)`, ρ = π/π_old; both averaged
/// over the rows. Shared by the DiffRec and the DreamRec fine-tuning.
struct PolicyGradientStep {
    var dLogp: [Float]
    var loss = 0.0
    var clipped = 0
    var ratios = 0

    init(logp: [Double], oldLogp: [Double], advantages: [Double], settings: FinetuneSettings) {
        let rows = Double(logp.count)
        dLogp = [Float](repeating: 0, count: logp.count)
        for r in logp.indices {
            let ratio = exp(logp[r] - oldLogp[r])
            var active = true
            if settings.ppoEpochs > 0 {
                let epsilon = Double(settings.clipRange)
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

/// The epoch loop both ReFiT trainers (DiffRec and DreamRec) share: the pre-trained model's validation as
/// epoch 0, then per epoch train, log, validate, keep the best weights by validation NDCG@20, checkpoint.
protocol ReFiTEpochLoop: AnyObject {
    var state: FinetuneState { get set }
    var settings: FinetuneSettings { get }
    var run: RunFolder { get }
    var observer: TrainingObserver? { get }
    var policyParameters: ParameterStore { get }
    /// `model` in the checkpoints' metadata.
    var modelName: String { get }
    /// How Recall@20 is labelled in the log ("HR@20" with one target per user).
    var hitRateLabel: String { get }
    func trainEpoch() throws -> FinetuneEpochStatistics
    func validation() throws -> (metrics: RankingMetrics, seconds: Double)
    /// The metrics as they are kept in state.json.
    func namedValues(_ metrics: RankingMetrics) -> [(key: String, value: Double)]
}

extension ReFiTEpochLoop {
    func runEpochs() throws -> FinetuneState {
        let metadata = { ["model": self.modelName, "finetune_epoch": String(self.state.epoch)] }
        let label = hitRateLabel
        if state.epoch == 0 && state.pretrainedValid.isEmpty {
            let (metrics, seconds) = try validation()
            state.pretrainedValid = Dictionary(uniqueKeysWithValues: namedValues(metrics).map { ($0.key, $0.value) })
            state.bestValid = state.pretrainedValid
            state.bestValidNDCG20 = metrics.ndcg(at: 20)
            state.bestEpoch = 0
            try run.saveWeights(policyParameters, to: "best.safetensors", metadata: metadata())
            observer?.log(String(format: "epoch   0 (pre-trained)  valid %@ %.4f N@20 %.4f (%.1f s)", label, metrics.recall(at: 20), metrics.ndcg(at: 20), seconds))
        }
        while state.epoch < settings.epochs {
            let s = try trainEpoch()
            try run.appendMetrics(s.metricsLine(epoch: state.epoch))
            let (metrics, seconds) = try validation()
            var line = s.logLine(epoch: state.epoch)
                + String(format: "  valid %@ %.4f N@20 %.4f (%.1f s)", label, metrics.recall(at: 20), metrics.ndcg(at: 20), seconds)
            if metrics.ndcg(at: 20) > state.bestValidNDCG20 {
                state.bestValidNDCG20 = metrics.ndcg(at: 20)
                state.bestEpoch = state.epoch
                state.bestValid = Dictionary(uniqueKeysWithValues: namedValues(metrics).map { ($0.key, $0.value) })
                try run.saveWeights(policyParameters, to: "best.safetensors", metadata: metadata())
                line += "  *best"
            }
            try run.saveCheckpoint(policyParameters, state: state, metadata: metadata())
            observer?.log(line)
        }
        return state
    }
}
