import Foundation
import RefitCompute

/// DreamRec's guided reverse process as a ReFiT policy: from N(0, I) over the d dimensions of the next item's
/// embedding, conditioned on the encoded history h, step k's policy is `N(μ_θ(x_k, h), σ_k²·I)` over the sampler's
/// steps, with x̂₀ = (1+w)·f(x, h) − w·f(x, ∅). Only the denoiser (and its null condition) is trained; the encoder and
/// item embeddings stay as pre-trained, so the reward's scoring space does not move under the policy.
///
/// A rollout keeps every state of the trajectory (K+1 tensors of n×d: for n = 1,024 rows, d = 64 and K = 500 steps,
/// 131 MB), bounded by the batch.
public final class DreamRecPolicy: DenoisingPolicy {
    public typealias Example = SequenceDataset.TrainingExample

    public let model: SequentialModel
    let reference: SequentialModel?
    public let reward: NextItemReward
    let dataset: SequenceDataset
    let seed: UInt64
    public var backend: any Backend { model.backend }
    public var parameters: ParameterStore { model.denoiser!.parameters }
    public var noisySteps: [Int] { model.sampler.standardDeviations.indices.filter { model.sampler.standardDeviations[$0] > 0 } }
    public let stepStream: UInt64 = 13
    public let outputLayerPrefix: String? = nil
    private var buffers: [Int: Buffers] = [:]
    private var current: (buffers: Buffers, conditions: Tensor)?

    final class Buffers {
        let trajectory: [Tensor]
        let timesteps, mean, meanReference, scaleA, scaleB: Tensor
        init(_ b: any Backend, n: Int, d: Int, steps: Int) throws {
            func t(_ shape: [Int]) throws -> Tensor { try b.makeTensor(shape, .float32) }
            trajectory = try (0...steps).map { _ in try t([n, d]) }
            timesteps = try b.makeTensor([2 * n], .int32)
            mean = try t([n, d]); meanReference = try t([n, d])
            scaleA = try t([n]); scaleB = try t([n])
        }
    }

    /// The pathwise chain's: its state, conditions and ∂L/∂x through a step (the rest is the model's sampling buffers).
    final class ChainBuffers {
        let state, conditions, dx, timesteps: Tensor
        init(_ backend: any Backend, n: Int, d: Int) throws {
            state = try backend.makeTensor([n, d], .float32); conditions = try backend.makeTensor([n, d], .float32)
            dx = try backend.makeTensor([n, d], .float32); timesteps = try backend.makeTensor([2 * n], .int32)
        }
    }
    private var chainBuffers: [Int: ChainBuffers] = [:]
    /// The pathwise batch: its buffers, each row's target and last history item, its update (which fixes the noise),
    /// and the step tables of the policy and of the reference, computed once per batch (the weights do not change within one).
    private var chain: (buffers: ChainBuffers, targets: [Int32], lastItems: [Int32], update: Int, table: Tensor, referenceTable: Tensor?)?

    public init(model: SequentialModel, reference: SequentialModel?, reward: NextItemReward, dataset: SequenceDataset,
                exploration: Exploration, seed: UInt64) throws {
        precondition(model.denoiser != nil, "ReFiT fine-tunes a DreamRec model")
        guard exploration == Exploration() else {
            throw FinetuneError.invalidSetting("DreamRec rollouts explore every dimension with the sampler's own σ: the exploration settings are for DiffRec runs")
        }
        self.model = model
        self.reference = reference
        self.reward = reward
        self.dataset = dataset
        self.seed = seed
    }

    public func chainOrder(_ steps: [Int]) -> [Int] { steps }

    var last: (buffers: Buffers, conditions: Tensor) {
        guard let current else { preconditionFailure("no rollout yet") }
        return current
    }

    /// Each example's history, next item and last history item, repeated `g` times: the rows of a batch.
    func rows(_ examples: [Example], repeated g: Int) -> (histories: [Int32], targets: [Int32], lastItems: [Int32]) {
        let l = model.settings.historyLength
        var histories: [Int32] = [], targets: [Int32] = [], lastItems: [Int32] = []
        for e in examples {
            let history = dataset.history(user: Int(e.user), before: Int(e.position), length: l)
            for _ in 0..<g {
                histories += history
                targets.append(dataset.sequences[Int(e.user)][Int(e.position)])
                lastItems.append(history[l - 1])
            }
        }
        return (histories, targets, lastItems)
    }

    public func rollout(_ examples: [Example], rollouts g: Int, trained: [Int], update: Int) throws -> [Double] {
        let (histories, targets, lastItems) = rows(examples, repeated: g)
        let n = targets.count
        let b = try buffers.reused(n) { try Buffers(backend, n: n, d: model.settings.hiddenSize, steps: model.sampler.count) }
        let h = try model.encoder.forward(histories: histories, training: false)
        current = (b, h)
        let perRollout = UInt64(model.sampler.count + 1) * UInt64(n * model.settings.hiddenSize)
        let x0 = try model.sample(conditions: h, seed: seed ^ 0x5345_5152_4F4C, offset: UInt64(update) * perRollout, trajectory: b.trajectory)
        return try reward.rewards(x0: x0, targets: targets, lastItems: lastItems)
    }

    public func gaussian(step k: Int, slot: Int) throws -> (action: Tensor, mean: Tensor, logStd: Float) {
        let (b, h) = last, sampler = model.sampler, n = h.rows
        let s = try model.samplingBuffers(n)
        backend.write([Int32](repeating: Int32(sampler.timesteps[k]), count: 2 * n), to: b.timesteps)
        try model.guidedPrediction(b.trajectory[k], step: sampler.timesteps[k], buffers: s, table: nil, timesteps: b.timesteps)
        backend.fill(b.scaleA, with: sampler.x0Coefficients[k])
        backend.fill(b.scaleB, with: sampler.xtCoefficients[k])
        backend.combineRows(s.x0, scaledBy: b.scaleA, b.trajectory[k], scaledBy: b.scaleB, into: b.mean)
        return (b.trajectory[k + 1], b.mean, log(sampler.standardDeviations[k]))
    }

    public func referenceMean(step k: Int, slot: Int) throws -> Tensor {
        guard let reference else { preconditionFailure("a KL penalty needs the reference model") }
        let (b, h) = last, sampler = model.sampler
        let s = try reference.samplingBuffers(h.rows)
        reference.pairedConditions(h, buffers: s)
        try reference.guidedPrediction(b.trajectory[k], step: sampler.timesteps[k], buffers: s, table: nil, timesteps: b.timesteps)
        backend.combineRows(s.x0, scaledBy: b.scaleA, b.trajectory[k], scaledBy: b.scaleB, into: b.meanReference)
        return b.meanReference
    }

    public func klGradientScale(step k: Int, coefficient: Float, rows: Int) -> Float {
        let sigma = Double(model.sampler.standardDeviations[k])
        return Float(Double(coefficient) / (Double(model.settings.hiddenSize) * sigma * sigma * Double(rows)))
    }

    /// μ = a·x̂₀ + b·x_t: the parameters' gradient is the guided prediction's backward of a·x̂₀.
    public func backward(step k: Int, dMean: Tensor) throws {
        try model.guidedBackward(dMean, scale: model.sampler.x0Coefficients[k], buffers: try model.samplingBuffers(last.conditions.rows),
                                 dInput: nil)
    }
}

// MARK: The chain with its noise fixed, for the pathwise estimator

/// The sampler's own chain, `x_s = a·x̂₀(x_t) + b·x_t + σ·z`, with x_T and every z drawn from the Philox stream of
/// (seed, update): a differentiable function of θ (the reparameterised sampler; DRaFT holds the noise fixed the same way).
/// It is the chain evaluation samples, so what the estimator raises is what validation measures; protocol step i is
/// sampler step `count − 1 − i`, so a window of K steps is the last K. The reward is seq-loglik, whose gradient is
/// `(onehot − softmax)·E/(targetScale·τ)`; the anchor acts on x̂₀'s d dimensions, so it has no item scope.
extension DreamRecPolicy: PathwisePolicy {
    public var steps: Int { model.sampler.count }
    public var dimensions: Int { model.settings.hiddenSize }

    public var pathwiseRefusal: String? {
        guard case .seqLoglik = reward.spec else {
            return "the pathwise estimator needs a differentiable reward: seq-loglik, not \(reward.spec.kind.rawValue)"
        }
        return nil
    }

    var currentChain: (buffers: ChainBuffers, targets: [Int32], lastItems: [Int32], update: Int, table: Tensor, referenceTable: Tensor?) {
        guard let chain else { preconditionFailure("no pathwise start yet") }
        return chain
    }

    public func deterministicStart(_ examples: [Example], update: Int) throws -> Tensor {
        let (histories, targets, lastItems) = rows(examples, repeated: 1), n = examples.count
        let c = try chainBuffers.reused(n) { try ChainBuffers(backend, n: n, d: dimensions) }
        backend.copy(try model.encoder.forward(histories: histories, training: false), to: c.conditions)
        let table = try model.denoiser!.stepTable(steps: model.settings.steps)
        let referenceTable = try reference?.denoiser!.stepTable(steps: model.settings.steps)
        chain = (c, targets, lastItems, update, table, referenceTable)
        backend.fillNormal(c.state, seed: chainSeed, offset: noiseOffset(update: update, rows: n))
        return c.state
    }

    var chainSeed: UInt64 { seed ^ 0x5041_5448 }

    /// Where an update's x_T starts in the Philox stream; `SequentialModel.samplerStep` draws step k's z after it.
    func noiseOffset(update: Int, rows: Int) -> UInt64 { UInt64(update) * UInt64(model.sampler.count + 1) * UInt64(rows * dimensions) }

    public func reverseStep(_ i: Int, state: Tensor, frozen: Bool) throws {
        let p = currentChain, c = p.buffers, n = state.rows, sampler = model.sampler, k = sampler.count - 1 - i
        guard let chainModel = frozen ? reference : model, let table = frozen ? p.referenceTable : p.table else {
            preconditionFailure("an anchored pathwise update needs the reference model")
        }
        let s = try chainModel.samplingBuffers(n)
        chainModel.pairedConditions(c.conditions, buffers: s)
        try chainModel.samplerStep(k, from: state, into: state, buffers: s, table: table, seed: chainSeed,
                                   offset: noiseOffset(update: p.update, rows: n))
    }

    /// x_s = a·x̂₀(x_t) + b·x_t + σz: the parameters get the guided backward of a·g, and ∂L/∂x_t = a·J_x̂₀ᵀg + b·g.
    public func reverseStepBackward(_ i: Int, xt: Tensor, gradient: Tensor, propagate: Bool) throws {
        let c = currentChain.buffers, n = xt.rows, sampler = model.sampler, k = sampler.count - 1 - i
        let s = try model.samplingBuffers(n)
        model.pairedConditions(c.conditions, buffers: s)
        backend.write([Int32](repeating: Int32(sampler.timesteps[k]), count: 2 * n), to: c.timesteps)
        try model.guidedPrediction(xt, step: sampler.timesteps[k], buffers: s, table: nil, timesteps: c.timesteps)
        try model.guidedBackward(gradient, scale: sampler.x0Coefficients[k], buffers: s, dInput: propagate ? c.dx : nil)
        if propagate {
            backend.fill(s.b, with: sampler.xtCoefficients[k])
            backend.combineRows(gradient, scaledBy: s.b, c.dx, scaledBy: s.ones, into: gradient)
        }
    }

    public func rewards(x0: Tensor) throws -> [Double] {
        let p = currentChain
        return try reward.rewards(x0: x0, targets: p.targets, lastItems: p.lastItems)
    }

    public func rewardGradient(x0: Tensor, into gradient: Tensor) throws {
        try reward.gradient(x0: x0, targets: currentChain.targets, into: gradient)
    }

    /// x̂₀'s dimensions are not items: none is a training item.
    public func seenMask(into mask: Tensor) { backend.fill(mask, with: 0) }

    public func seenItems(row: Int) -> ArraySlice<Int32> { [] }
}

/// DreamRec under ReFiT: an epoch visits a share of the users, each with one random training position, and validation
/// scores the policy's next-item ranking.
public final class DreamRecScenario: FinetuneScenario {
    public typealias Example = SequenceDataset.TrainingExample
    public let policy: SequentialModel
    let dataset: SequenceDataset
    let evaluator: SequentialEvaluator
    let random: HostRandom
    /// Each user's training examples, as a range of `dataset.trainingExamples`; users without any are left out.
    let userExamples: [(user: Int, examples: Range<Int>)]

    public init(policy: SequentialModel, dataset: SequenceDataset, evaluator: SequentialEvaluator, seed: UInt64) {
        self.policy = policy
        self.dataset = dataset
        self.evaluator = evaluator
        random = HostRandom(seed: seed, stream: 12)
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
    }

    public var parameters: ParameterStore { policy.denoiser!.parameters }
    public var modelName: String { "dreamrec" }
    public var hitRateLabel: String { "HR@20" }

    public func examples(epoch: Int, share: Double) -> [Example] {
        let order = random.permutation(userExamples.count, round: UInt64(epoch))
        return order.prefix(epochShare(order.count, share)).map { index in
            let range = userExamples[index].examples
            let pick = Int(random.uniform(UInt64(epoch) << 32 | UInt64(index)) * Double(range.count))
            return dataset.trainingExamples[range.lowerBound + min(pick, range.count - 1)]
        }
    }

    public func validate() throws -> RankingMetrics { try evaluator.evaluate(.valid, model: policy) }

    public func namedValues(_ metrics: RankingMetrics) -> [(key: String, value: Double)] { metrics.nextItemValues }
}
