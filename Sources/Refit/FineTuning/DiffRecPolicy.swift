import Foundation
import RefitCompute

/// DiffRec's reverse chain as a ReFiT policy: for user u the state is x_t over the I items, the start x_T is u's training
/// row (q-sampled when the model samples from a noisy start), and step t's policy is `N(μ_θ(x_t, t), η²σ̃_t²·I)` with
/// `μ_θ = c1_t·f_θ(x_t, t) + c2_t·x_t`. The last step (t = 1) adds no noise and has no log-probability. The network runs
/// in inference mode (no dropout), so the policy that samples and the policy that is scored are the same function.
public final class DiffRecPolicy: PathwisePolicy {
    public typealias Example = Int

    public let model: DiffRecModel
    /// The frozen pre-trained model, when a KL penalty or an anchor refers to it.
    let reference: DiffRecModel?
    public let reward: RolloutReward
    /// The training matrix on the device: the model's input rows (start states; T-DiffRec's weights when the run has
    /// them) and their 0/1 pattern (the items a ranking never shows).
    let input: DeviceCSR
    let seen: DeviceCSR
    let trainRows: CSRMatrix
    let exploration: Exploration
    /// Each user's explored items when exploring target items only.
    let candidates: CollaborativeTargets?
    let seed: UInt64
    /// log(η·σ̃_t) per 0-based step: the policy's standard deviation.
    let logStd: [Double]
    public var backend: any Backend { model.backend }
    public var parameters: ParameterStore { model.denoiser.parameters }
    public var steps: Int { model.settings.steps }
    public var dimensions: Int { model.denoiser.architecture.items }
    public var noisySteps: [Int] { Array(1..<steps) }
    public let stepStream: UInt64 = 3
    public var outputLayerPrefix: String? { model.denoiser.architecture.layers.last!.name + "." }
    private var buffers: [Int: Buffers] = [:]
    /// The rows of the last rollout or start.
    private var current: Buffers?

    final class Buffers {
        let users, timesteps: Tensor
        let state, noise, mean, meanReference, explored, exploredPrevious: Tensor
        let noiseScale, ones, zeros, coefficient: Tensor
        /// The denoiser's output and input gradients of a pathwise step.
        let dOutput, dInput: Tensor
        /// (x_t, x_{t−1}) of the stored steps.
        var slots: [(xt: Tensor, previous: Tensor)] = []
        var rowUsers: [Int] = []
        let rows, items: Int
        let backend: any Backend

        init(_ backend: any Backend, rows: Int, items: Int) throws {
            self.backend = backend
            self.rows = rows
            self.items = items
            func matrix() throws -> Tensor { try backend.makeTensor([rows, items], .float32) }
            users = try backend.makeTensor([rows], .int32)
            timesteps = try backend.makeTensor([rows], .int32)
            state = try matrix(); noise = try matrix(); mean = try matrix(); meanReference = try matrix()
            explored = try matrix(); exploredPrevious = try matrix(); dOutput = try matrix(); dInput = try matrix()
            noiseScale = try backend.makeTensor([rows], .float32)
            ones = try backend.tensor([Float](repeating: 1, count: rows), shape: [rows])
            zeros = try backend.makeTensor([rows], .float32)
            coefficient = try backend.makeTensor([rows], .float32)
        }

        func slot(_ k: Int) throws -> (xt: Tensor, previous: Tensor) {
            while slots.count <= k {
                slots.append((try backend.makeTensor([rows, items], .float32), try backend.makeTensor([rows, items], .float32)))
            }
            return slots[k]
        }
    }

    /// `candidates` are required when `exploration` covers target items only.
    public init(model: DiffRecModel, reference: DiffRecModel?, reward: RolloutReward, input: DeviceCSR, seen: DeviceCSR, trainRows: CSRMatrix,
                exploration: Exploration = Exploration(), candidates: CollaborativeTargets? = nil, seed: UInt64) {
        precondition(exploration.dimensions == .all || candidates != nil, "exploring target items needs the targets")
        self.model = model
        self.reference = reference
        self.reward = reward
        self.input = input
        self.seen = seen
        self.trainRows = trainRows
        self.exploration = exploration
        self.candidates = exploration.dimensions == .targets ? candidates : nil
        self.seed = seed
        logStd = model.diffusion.schedule.posteriorLogVariancesClipped.map { $0 / 2 + log(Double(exploration.scale)) }
    }

    func buffers(rows: Int) throws -> Buffers {
        let b = try buffers.reused(rows) { try Buffers(backend, rows: rows, items: dimensions) }
        current = b
        return b
    }

    var last: Buffers {
        guard let current else { preconditionFailure("no rollout yet") }
        return current
    }

    public func chainOrder(_ steps: [Int]) -> [Int] { steps.reversed() }

    /// x_T for each row: the user's training row, q-sampled when the model samples from a noisy start.
    func start(_ rowUsers: [Int], update: Int, buffers b: Buffers) throws {
        b.rowUsers = rowUsers
        backend.write(rowUsers.map { Int32($0) }, to: b.users)
        backend.densifyRows(input, rows: b.users, into: b.state)
        if model.settings.samplingSteps > 0 {
            backend.fill(b.timesteps, with: Float(model.settings.samplingSteps - 1))
            backend.fillNormal(b.noise, seed: seed ^ 0x5354_4152_54, offset: UInt64(update) * UInt64(b.rows * b.items))
            try model.diffusion.qSample(b.state, timesteps: b.timesteps, noise: b.noise, into: b.state)
        }
    }

    var rows: RolloutRows { RolloutRows(users: last.rowUsers, userTensor: last.users) }

    public func rollout(_ users: [Int], rollouts: Int, trained: [Int], update: Int) throws -> [Double] {
        let rowUsers = users.flatMap { Array(repeating: $0, count: rollouts) }
        let b = try buffers(rows: rowUsers.count)
        try start(rowUsers, update: update, buffers: b)
        if let candidates {
            var mask = [Float](repeating: 0, count: b.rows * b.items)
            for (row, user) in rowUsers.enumerated() { for item in candidates.items[user] { mask[row * b.items + Int(item)] = 1 } }
            backend.write(mask, to: b.explored)
        }
        let diffusion = model.diffusion
        let noiseSeed = seed ^ 0x524F_4C4C_4F55_54
        for i in stride(from: steps - 1, through: 0, by: -1) {
            backend.fill(b.timesteps, with: Float(i))
            let output = try model.denoiser.forward(b.state, timesteps: b.timesteps, training: false)
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
        return try reward.rewards(x0: b.state, rows: rows)
    }

    /// μ_θ into `b.mean`. With exploration on target items only, both the action and μ_θ are restricted to the explored
    /// dimensions, so the others carry no probability and their gradient is zero; the per-row mean still divides by
    /// all I items, a constant factor.
    public func gaussian(step i: Int, slot k: Int) throws -> (action: Tensor, mean: Tensor, logStd: Float) {
        let b = last, slot = try b.slot(k)
        backend.fill(b.timesteps, with: Float(i))
        let output = try model.denoiser.forward(slot.xt, timesteps: b.timesteps, training: false)
        try model.diffusion.predictedStart(modelOutput: output, xt: slot.xt, timesteps: b.timesteps)
        try model.diffusion.posteriorMean(predictedStart: output, xt: slot.xt, timesteps: b.timesteps, into: b.mean)
        var action = slot.previous
        if candidates != nil {
            backend.multiply(b.mean, b.explored, into: b.mean)
            backend.multiply(slot.previous, b.explored, into: b.exploredPrevious)
            action = b.exploredPrevious
        }
        return (action, b.mean, Float(logStd[i]))
    }

    public func referenceMean(step i: Int, slot k: Int) throws -> Tensor {
        guard let reference else { preconditionFailure("a KL penalty needs the reference model") }
        let b = last, xt = try b.slot(k).xt
        let output = try reference.denoiser.forward(xt, timesteps: b.timesteps, training: false)
        try reference.diffusion.predictedStart(modelOutput: output, xt: xt, timesteps: b.timesteps)
        try reference.diffusion.posteriorMean(predictedStart: output, xt: xt, timesteps: b.timesteps, into: b.meanReference)
        return b.meanReference
    }

    public func klGradientScale(step i: Int, coefficient: Float, rows: Int) -> Float {
        let variance = exp(2 * logStd[i])
        return Float(Double(coefficient) / (Double(dimensions) * variance * Double(rows)))
    }

    /// μ = c1·x̂₀ + c2·x_t and, for x0-prediction, x̂₀ = f: dL/df = c1·dL/dμ (eps: also ·(−√(1/ᾱ − 1))).
    public func backward(step i: Int, dMean: Tensor) throws {
        let b = last, schedule = model.diffusion.schedule
        var coefficient = schedule.posteriorMeanCoefficient1[i]
        if model.settings.meanType == .eps { coefficient *= -(1 / schedule.alphaBars[i] - 1).squareRoot() }
        backend.fill(b.coefficient, with: Float(coefficient))
        backend.combineRows(dMean, scaledBy: b.coefficient, dMean, scaledBy: b.zeros, into: dMean)
        try model.denoiser.backward(dOutput: dMean)
    }

    // MARK: The noise-free chain, for the pathwise estimator

    public var pathwiseRefusal: String? {
        if !(reward is DifferentiableReward) { return "the pathwise estimator needs a differentiable reward, not \(reward.name)" }
        if model.settings.meanType != .x0 {
            return "the pathwise estimator supports x0-predicting models (this one predicts \(model.settings.meanType.rawValue))"
        }
        return nil
    }

    public func deterministicStart(_ users: [Int], update: Int) throws -> Tensor {
        let b = try buffers(rows: users.count)
        try start(users, update: update, buffers: b)
        return b.state
    }

    public func reverseStep(_ i: Int, state: Tensor, frozen: Bool) throws {
        guard let chain = frozen ? reference : model else { preconditionFailure("an anchored pathwise update needs the reference model") }
        try chain.reverseStep(state: state, step: i, timesteps: last.timesteps)
    }

    /// A step maps x_t to `c1·f(x_t, t) + c2·x_t`; with g = ∂L/∂x_{t−1} in `gradient`, f's backward of c1·g adds the
    /// parameters' gradient, and `∂L/∂x_t = J_fᵀ(c1·g) + c2·g` replaces g when `propagate`. The forward at x_t is rerun
    /// here: that is the price of not keeping every step's activations.
    public func reverseStepBackward(_ i: Int, xt: Tensor, gradient: Tensor, propagate: Bool) throws {
        let b = last, schedule = model.diffusion.schedule
        backend.fill(b.timesteps, with: Float(i))
        _ = try model.denoiser.forward(xt, timesteps: b.timesteps, training: false)
        backend.fill(b.coefficient, with: Float(schedule.posteriorMeanCoefficient1[i]))
        backend.combineRows(gradient, scaledBy: b.coefficient, gradient, scaledBy: b.zeros, into: b.dOutput)
        try model.denoiser.backward(dOutput: b.dOutput, dInput: b.dInput)
        if propagate {
            backend.fill(b.coefficient, with: Float(schedule.posteriorMeanCoefficient2[i]))
            backend.combineRows(b.dInput, scaledBy: b.ones, gradient, scaledBy: b.coefficient, into: gradient)
        }
    }

    public func rewards(x0: Tensor) throws -> [Double] { try reward.rewards(x0: x0, rows: rows) }

    public func rewardGradient(x0: Tensor, into gradient: Tensor) throws {
        guard let differentiable = reward as? DifferentiableReward else { preconditionFailure(pathwiseRefusal ?? "") }
        try differentiable.gradient(x0: x0, rows: rows, into: gradient)
    }

    public func seenMask(into mask: Tensor) { backend.densifyRows(seen, rows: last.users, into: mask) }

    public func seenItems(row: Int) -> ArraySlice<Int32> { trainRows.row(last.rowUsers[row]) }
}

/// DiffRec under ReFiT: an epoch visits a share of the users with training interactions, and validation scores the
/// policy's full ranking.
public final class DiffRecScenario: FinetuneScenario {
    public typealias Example = Int
    public let policy: DiffRecModel
    let evaluator: TopKEvaluator
    /// The users with training interactions, computed once.
    let trainingUsers: [Int]
    let random: HostRandom

    public init(policy: DiffRecModel, dataset: InteractionDataset, evaluator: TopKEvaluator, seed: UInt64) {
        self.policy = policy
        self.evaluator = evaluator
        trainingUsers = dataset.usersWithTrainingInteractions()
        random = HostRandom(seed: seed, stream: 2)
    }

    public var parameters: ParameterStore { policy.denoiser.parameters }
    public var modelName: String { "diffrec" }
    public var hitRateLabel: String { "R@20" }

    public func examples(epoch: Int, share: Double) -> [Int] {
        let order = random.permutation(trainingUsers.count, round: UInt64(epoch)).map { trainingUsers[$0] }
        return Array(order.prefix(epochShare(order.count, share)))
    }

    public func validate() throws -> RankingMetrics { try evaluator.evaluate(.valid) { _, input in try policy.scores(input) } }

    public func namedValues(_ metrics: RankingMetrics) -> [(key: String, value: Double)] { metrics.values }
}
