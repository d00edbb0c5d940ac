import Foundation
import RefitCompute

/// The rewards of DreamRec rollouts (DESIGN §4b), computed from training positions only.
public final class NextItemReward {
    let kind: RewardKind
    let model: SequentialModel
    let temperature: Float
    let mixWeight: Double
    /// For seq-collab: per item, the items that followed it in training sequences (top-M, weights summing to 1).
    let transitions: [[(item: Int32, weight: Float)]]
    private var buffers: [Int: (targets: Tensor, loss: Tensor, logp: Tensor, dense: Tensor, sums: Tensor)] = [:]

    public init(kind: RewardKind, model: SequentialModel, dataset: SequenceDataset, settings: FinetuneSettings) {
        precondition(kind.isSequential)
        self.kind = kind
        self.model = model
        temperature = settings.temperature
        mixWeight = Double(settings.mixWeight)
        transitions = kind == .seqCollab ? Self.transitions(dataset, keep: settings.targetSize) : []
    }

    /// Counts of (previous item → next item) over the training part of every sequence (before the validation target).
    static func transitions(_ dataset: SequenceDataset, keep: Int) -> [[(item: Int32, weight: Float)]] {
        var counts = [[Int32: Int]](repeating: [:], count: dataset.itemCount)
        for sequence in dataset.sequences {
            let end = SequenceDataset.trainingLength(sequence.count)
            for p in stride(from: 1, to: end, by: 1) { counts[Int(sequence[p - 1])][sequence[p], default: 0] += 1 }
        }
        return counts.map { followers in
            let top = followers.sorted { ($0.value, -$0.key) > ($1.value, -$1.key) }.prefix(keep)
            let total = Float(top.reduce(0) { $0 + $1.value })
            return top.map { ($0.key, Float($0.value) / total) }
        }
    }

    /// One reward per row of x̂₀ (n, d): `targets` the observed next items, `lastItems` each history's last item.
    public func rewards(x0: Tensor, targets: [Int32], lastItems: [Int32]) throws -> [Double] {
        let backend = model.backend, n = x0.rows, items = model.encoder.architecture.items
        let b = try buffers.reused(n) {
            (try backend.makeTensor([n], .int32), try backend.makeTensor([n], .float32), try backend.makeTensor([n, items], .float32),
             try backend.makeTensor([n, items], .float32), try backend.makeTensor([n], .float32))
        }
        let logits = try model.score(x0)
        backend.scale(logits, by: 1 / temperature)
        backend.write(targets, to: b.targets)
        backend.softmaxCrossEntropy(logits, targets: b.targets, gradientScale: 0, loss: b.loss, dLogits: nil)
        let own = try backend.readFloats(b.loss).map { -Double($0) }
        guard kind == .seqCollab else { return own }
        backend.logSoftmaxRows(logits, into: b.logp)
        let collab = try backend.weightedRowSums(b.logp, weights: { r in
            let followers = self.transitions[Int(lastItems[r])]
            return (ArraySlice(followers.map(\.item)), followers.map(\.weight))
        }, dense: b.dense, sums: b.sums)
        return (0..<n).map { r in mixWeight * own[r] + (1 - mixWeight) * collab[r] }
    }
}

/// ReFiT on DreamRec: the guided reverse process from N(0, I) as an MDP over the sampler's steps, with policy
/// `N(μ_θ(x_t, h, t), σ_t²·I)` in d dimensions, the reward scored on the final x̂₀, and the same estimator as the
/// DiffRec path (group advantages, REINFORCE or PPO clipping, optional KL to the frozen model, AdamW).
///
/// Only the denoiser (and its null condition) is trained; the encoder and item embeddings stay as pre-trained, so
/// the reward's scoring space does not move under the policy. A rollout keeps every state of the trajectory
/// (K+1 tensors of n×d: for n = 1,024 rows, d = 64 and K = 500 steps, 131 MB), bounded by the batch.
public final class SequentialReFiTTrainer: ReFiTEpochLoop {
    public let policy: SequentialModel
    let reference: SequentialModel?
    public let reward: NextItemReward
    public let dataset: SequenceDataset
    public let evaluator: SequentialEvaluator
    public let run: RunFolder
    public let settings: FinetuneSettings
    public internal(set) var state: FinetuneState
    weak var observer: TrainingObserver?
    let backend: any Backend
    let random: HostRandom
    let stepRandom: HostRandom
    /// Each user's training examples, as a range of `dataset.trainingExamples`; users without any are left out.
    let userExamples: [(user: Int, examples: Range<Int>)]
    private let scalar: Tensor
    private var buffers: [Int: Buffers] = [:]

    final class Buffers {
        let trajectory: [Tensor]
        let timesteps, mean, meanReference, dMean, dOutput, logStd, logp, dLogp, scaleA, scaleB, pairScale, pairZeros: Tensor
        /// The guided batch's second half used ∅: where the condition's gradient goes.
        let nullRows: ScatterPlan
        init(_ b: any Backend, n: Int, d: Int, steps: Int) throws {
            func t(_ shape: [Int]) throws -> Tensor { try b.makeTensor(shape, .float32) }
            trajectory = try (0...steps).map { _ in try t([n, d]) }
            timesteps = try b.makeTensor([2 * n], .int32)
            mean = try t([n, d]); meanReference = try t([n, d]); dMean = try t([n, d]); dOutput = try t([2 * n, d])
            logStd = try t([n]); logp = try t([n]); dLogp = try t([n]); scaleA = try t([n]); scaleB = try t([n])
            pairScale = try t([2 * n]); pairZeros = try t([2 * n])
            nullRows = try ScatterPlan(indices: (0..<(2 * n)).map { $0 < n ? -1 : 0 }, backend: b)
        }
    }

    public init(policy: SequentialModel, reference: SequentialModel?, reward: NextItemReward, dataset: SequenceDataset,
                evaluator: SequentialEvaluator, run: RunFolder, settings: FinetuneSettings, state: FinetuneState? = nil,
                observer: TrainingObserver? = nil) throws {
        precondition(policy.denoiser != nil, "ReFiT fine-tunes a DreamRec model")
        self.policy = policy
        self.reference = reference
        self.reward = reward
        self.dataset = dataset
        self.evaluator = evaluator
        self.run = run
        self.settings = settings
        self.observer = observer
        self.state = state ?? FinetuneState()
        backend = policy.backend
        random = HostRandom(seed: settings.seed, stream: 12)
        stepRandom = HostRandom(seed: settings.seed, stream: 13)
        var ranges: [(Int, Range<Int>)] = []
        var start = 0
        let examples = dataset.trainingExamples
        while start < examples.count {
            var end = start
            while end < examples.count && examples[end].user == examples[start].user { end += 1 }
            ranges.append((Int(examples[start].user), start..<end))
            start = end
        }
        userExamples = ranges
        policy.denoiser!.parameters.step = self.state.optimizerStep
        scalar = try backend.makeTensor([1], .float32)
    }

    func rolloutBuffers(_ n: Int) throws -> Buffers {
        try buffers.reused(n) { try Buffers(backend, n: n, d: policy.settings.hiddenSize, steps: policy.sampler.count) }
    }

    /// The sampler steps trained on in update `update`: a random share of those that add noise (σ > 0).
    func trainedSteps(update: Int) -> [Int] {
        let noisy = policy.sampler.standardDeviations.indices.filter { policy.sampler.standardDeviations[$0] > 0 }
        return settings.trainedShare(of: noisy, random: stepRandom, update: update)
    }

    /// The per-row log π of sampler step k's stored action under the current weights; μ_θ is left in `b.mean`.
    func logProbability(step k: Int, h: Tensor, buffers b: Buffers) throws -> [Double] {
        let sampler = policy.sampler, n = h.rows
        let s = try policy.samplingBuffers(n)
        backend.write([Int32](repeating: Int32(sampler.timesteps[k]), count: 2 * n), to: b.timesteps)
        try policy.guidedPrediction(b.trajectory[k], step: sampler.timesteps[k], buffers: s, table: nil, timesteps: b.timesteps)
        backend.fill(b.scaleA, with: sampler.x0Coefficients[k])
        backend.fill(b.scaleB, with: sampler.xtCoefficients[k])
        backend.combineRows(s.x0, scaledBy: b.scaleA, b.trajectory[k], scaledBy: b.scaleB, into: b.mean)
        backend.fill(b.logStd, with: log(sampler.standardDeviations[k]))
        backend.gaussianLogProbability(b.trajectory[k + 1], mean: b.mean, logStd: b.logStd, into: b.logp)
        return try backend.readFloats(b.logp).map(Double.init)
    }

    /// Adds the gradient of `Σ_r dLogp[r]·log π` (and the KL penalty's) through the guided prediction.
    func accumulateGradient(step k: Int, h: Tensor, buffers b: Buffers, nullRows: ScatterPlan) throws {
        let sampler = policy.sampler, n = h.rows, w = policy.settings.guidance
        backend.gaussianLogProbabilityBackward(b.trajectory[k + 1], mean: b.mean, logStd: b.logStd, dLogp: b.dLogp, into: b.dMean)
        if let reference, settings.klCoefficient > 0 {
            // β·mean_i (μ_θ − μ_ref)²/(2σ²), averaged over rows: its gradient joins dμ.
            let s = try reference.samplingBuffers(n)
            reference.pairedConditions(h, buffers: s)
            try reference.guidedPrediction(b.trajectory[k], step: sampler.timesteps[k], buffers: s, table: nil, timesteps: b.timesteps)
            backend.combineRows(s.x0, scaledBy: b.scaleA, b.trajectory[k], scaledBy: b.scaleB, into: b.meanReference)
            backend.axpy(-1, b.meanReference, b.mean)
            let sigma = Double(sampler.standardDeviations[k])
            backend.axpy(Float(Double(settings.klCoefficient) / (Double(policy.settings.hiddenSize) * sigma * sigma * Double(n))), b.mean, b.dMean)
        }
        // μ = a·x̂₀ + b·x_t and x̂₀ = (1+w)·f(x, h) − w·f(x, ∅): df = a(1+w)·dμ on the conditional half, −a·w·dμ on the other.
        let a = sampler.x0Coefficients[k]
        let s = try policy.samplingBuffers(n)
        backend.gatherRows(b.dMean, indices: s.duplicate, into: b.dOutput)
        backend.write([Float](repeating: a * (1 + w), count: n) + [Float](repeating: -a * w, count: n), to: b.pairScale)
        backend.combineRows(b.dOutput, scaledBy: b.pairScale, b.dOutput, scaledBy: b.pairZeros, into: b.dOutput)
        try policy.denoiser!.backward(dOutput: b.dOutput, nullRows: nullRows)
    }

    /// One batch of training examples: G rollouts each, then REINFORCE (or PPO epochs) over the chosen steps.
    func update(examples: [SequenceDataset.TrainingExample]) throws -> (rewards: [Double], loss: Double, kl: Double, clipFraction: Double) {
        let update = state.updates, g = settings.rollouts, l = policy.settings.historyLength
        var histories: [Int32] = [], targets: [Int32] = [], lastItems: [Int32] = []
        for e in examples {
            let history = dataset.history(user: Int(e.user), before: Int(e.position), length: l)
            for _ in 0..<g {
                histories += history
                targets.append(dataset.sequences[Int(e.user)][Int(e.position)])
                lastItems.append(history[l - 1])
            }
        }
        let n = targets.count
        let b = try rolloutBuffers(n)
        let h = try policy.encoder.forward(histories: histories, training: false)
        let perRollout = UInt64(policy.sampler.count + 1) * UInt64(n * policy.settings.hiddenSize)
        let x0 = try policy.sample(conditions: h, seed: settings.seed ^ 0x5345_5152_4F4C, offset: UInt64(update) * perRollout, trajectory: b.trajectory)
        let rewards = try reward.rewards(x0: x0, targets: targets, lastItems: lastItems)
        let advantages = ReFiTTrainer.advantages(rewards, groupSize: g, clip: Double(settings.advantageClip))
        let trained = trainedSteps(update: update)
        let parameters = policy.denoiser!.parameters
        var oldLogp: [[Double]] = []
        var loss = 0.0, clipped = 0, ratios = 0
        for inner in 0..<max(1, settings.ppoEpochs) {
            parameters.zeroGradients()
            loss = 0
            for (j, k) in trained.enumerated() {
                let logp = try logProbability(step: k, h: h, buffers: b)
                if inner == 0 { oldLogp.append(logp) }
                let step = PolicyGradientStep(logp: logp, oldLogp: oldLogp[j], advantages: advantages, settings: settings)
                loss += step.loss
                clipped += step.clipped
                ratios += step.ratios
                backend.write(step.dLogp, to: b.dLogp)
                try accumulateGradient(step: k, h: h, buffers: b, nullRows: b.nullRows)
            }
            try parameters.applyAdamW(learningRate: settings.learningRate, weightDecay: settings.weightDecay,
                                      maxGradientNorm: settings.maxGradientNorm, scratch: scalar)
        }
        var kl = 0.0
        if let first = trained.first {
            let newLogp = try logProbability(step: first, h: h, buffers: b)
            kl = zip(oldLogp[0], newLogp).map { $0 - $1 }.reduce(0, +) / Double(n)
        }
        state.updates += 1
        state.optimizerStep = parameters.step
        return (rewards, loss, kl, ratios > 0 ? Double(clipped) / Double(ratios) : 0)
    }

    /// One pass over (a share of) the users, each with one random training position.
    public func trainEpoch() throws -> FinetuneEpochStatistics {
        let epoch = state.epoch + 1
        var order = random.permutation(userExamples.count, round: UInt64(epoch))
        order = Array(order.prefix(max(1, Int((Double(order.count) * settings.userFraction).rounded()))))
        let examples = order.map { index -> SequenceDataset.TrainingExample in
            let range = userExamples[index].examples
            let pick = Int(random.uniform(UInt64(epoch) << 32 | UInt64(index)) * Double(range.count))
            return dataset.trainingExamples[range.lowerBound + min(pick, range.count - 1)]
        }
        var epochUpdates = FinetuneEpochStatistics.Accumulator()
        let batches = (examples.count + settings.usersPerBatch - 1) / settings.usersPerBatch
        for batch in 0..<batches {
            epochUpdates.add(try update(examples: Array(examples[(batch * settings.usersPerBatch)..<min(examples.count, (batch + 1) * settings.usersPerBatch)])))
            observer?.batchFinished(epoch: epoch, batch: batch + 1, of: batches)
        }
        state.epoch = epoch
        return epochUpdates.finish(users: examples.count)
    }

    func validation() throws -> (metrics: RankingMetrics, seconds: Double) {
        let started = Date()
        let metrics = try evaluator.evaluate(.valid, model: policy)
        let seconds = Date().timeIntervalSince(started)
        try run.appendNextItemEvaluation(epoch: state.epoch, split: .valid, seconds: seconds, metrics: metrics)
        return (metrics, seconds)
    }

    /// Fine-tunes for `settings.epochs`, evaluating on validation each epoch and keeping the best weights.
    @discardableResult
    public func train() throws -> FinetuneState { try runEpochs() }

    var policyParameters: ParameterStore { policy.denoiser!.parameters }
    var modelName: String { "dreamrec" }
    var hitRateLabel: String { "HR@20" }
    func namedValues(_ metrics: RankingMetrics) -> [(key: String, value: Double)] { metrics.nextItemValues }
}
