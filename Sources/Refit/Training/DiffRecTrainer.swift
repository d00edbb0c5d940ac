import Foundation
import RefitCompute

/// What resuming needs beyond the weights and moments: saved as `state.json` after every epoch.
public struct PretrainState: CheckpointState, Sendable {
    public var epoch = 0
    public var optimizerStep = 0
    public var bestEpoch = 0
    public var bestValidRecall20 = -1.0
    public var sampler: TimestepSampler
    /// Validation and test metrics at the best epoch, as `metrics.jsonl` keys.
    public var bestValid: [String: Double] = [:]
    public var bestTest: [String: Double] = [:]
}

/// DiffRec pre-training: importance-sampled timesteps, SNR reweighting, AdamW, evaluation on
/// validation every `evalEvery` epochs, the best epoch by validation Recall@20, early stop after `patience`.
///
/// Every random draw is a pure function of (seed, epoch, step), so a resumed run continues bit-identically on
/// the CPU reference (and identically up to kernel rounding on OpenCL).
public final class DiffRecTrainer {
    public let model: DiffRecModel
    public let dataset: InteractionDataset
    public let evaluator: TopKEvaluator
    public let run: RunFolder
    public private(set) var state: PretrainState
    weak var observer: TrainingObserver?
    /// Score and print test at the evaluations of every N-th epoch too (`--show-test-every`); nil: only at improvements, unprinted.
    let showTestEvery: Int?
    let settings: DiffRecSettings
    let backend: any Backend
    /// `dataset.usersWithTrainingInteractions()`, computed once.
    let trainingUsers: [Int]
    let random: HostRandom
    private var batchBuffers: [Int: BatchBuffers] = [:]
    private let scalar: Tensor

    final class BatchBuffers {
        let users, timesteps: Tensor
        let x0, noise, xt, dOutput: Tensor
        let lossRows, rowWeights: Tensor
        init(_ backend: any Backend, rows: Int, items: Int) throws {
            users = try backend.makeTensor([rows], .int32)
            timesteps = try backend.makeTensor([rows], .int32)
            x0 = try backend.makeTensor([rows, items], .float32)
            noise = try backend.makeTensor([rows, items], .float32)
            xt = try backend.makeTensor([rows, items], .float32)
            dOutput = try backend.makeTensor([rows, items], .float32)
            lossRows = try backend.makeTensor([rows], .float32)
            rowWeights = try backend.makeTensor([rows], .float32)
        }
    }

    public init(model: DiffRecModel, dataset: InteractionDataset, evaluator: TopKEvaluator, run: RunFolder,
                state: PretrainState? = nil, showTestEvery: Int? = nil, observer: TrainingObserver? = nil) throws {
        self.model = model
        self.showTestEvery = showTestEvery
        self.dataset = dataset
        self.evaluator = evaluator
        self.run = run
        self.observer = observer
        settings = model.settings
        backend = model.backend
        random = HostRandom(seed: settings.seed, stream: 1)
        trainingUsers = dataset.usersWithTrainingInteractions()
        self.state = state ?? PretrainState(sampler: TimestepSampler(steps: settings.steps))
        model.denoiser.parameters.step = self.state.optimizerStep
        scalar = try backend.makeTensor([1], .float32)
    }

    private func buffers(_ rows: Int) throws -> BatchBuffers {
        try batchBuffers.reused(rows) { try BatchBuffers(backend, rows: rows, items: dataset.itemCount) }
    }


    /// One pass over the training users. Returns the mean loss.
    public func trainEpoch() throws -> Double {
        let epoch = state.epoch + 1
        let order = random.permutation(trainingUsers.count, round: UInt64(epoch)).map { trainingUsers[$0] }
        let items = dataset.itemCount
        let parameters = model.denoiser.parameters
        let batches = (order.count + settings.batchSize - 1) / settings.batchSize
        var lossSum = 0.0
        let weights = model.diffusion.schedule.reweightingWeights
        for batch in 0..<batches {
            let users = order[(batch * settings.batchSize)..<min(order.count, (batch + 1) * settings.batchSize)]
            let b = try buffers(users.count)
            let step = UInt64(state.optimizerStep)
            backend.write(users.map { Int32($0) }, to: b.users)
            backend.densifyRows(evaluator.inputRows, rows: b.users, into: b.x0)
            let (timesteps, scaledProbabilities) = state.sampler.sample(users.count, random: random, position: step << 20)
            backend.write(timesteps, to: b.timesteps)
            let lossWeights = timesteps.map { settings.reweight ? weights[Int($0)] : 1 }
            backend.write(zip(lossWeights, scaledProbabilities).map { Float($0 / $1 / Double(users.count)) }, to: b.rowWeights)
            // Noise and dropout streams are addressed by the optimiser step: replayable from any checkpoint.
            let streamOffset = step * UInt64(settings.batchSize * items)
            backend.fillNormal(b.noise, seed: settings.seed ^ 0x4E4F_4953_4500, offset: streamOffset)
            try model.diffusion.qSample(b.x0, timesteps: b.timesteps, noise: b.noise, into: b.xt)
            let output = try model.denoiser.forward(b.xt, timesteps: b.timesteps, training: true,
                                                    dropoutSeed: settings.seed ^ 0x4452_4F50, dropoutOffset: streamOffset)
            let target = settings.meanType == .x0 ? b.x0 : b.noise
            backend.squaredErrorRows(output, target, into: b.lossRows)
            backend.squaredErrorBackward(output, target, rowWeights: b.rowWeights, into: b.dOutput)
            parameters.zeroGradients()
            try model.denoiser.backward(dOutput: b.dOutput)
            try parameters.applyAdamW(learningRate: settings.learningRate, weightDecay: settings.weightDecay,
                                      maxGradientNorm: nil, scratch: scalar)
            state.optimizerStep = parameters.step
            let mse = try backend.readFloats(b.lossRows).map(Double.init)
            let weighted = zip(mse, lossWeights).map { $0 * $1 }
            state.sampler.record(steps: timesteps, losses: weighted)
            lossSum += zip(weighted, scaledProbabilities).map { $0 / $1 }.reduce(0, +) / Double(users.count)
            observer?.batchFinished(epoch: epoch, batch: batch + 1, of: batches)
        }
        state.epoch = epoch
        return lossSum / Double(max(batches, 1))
    }

    /// Evaluates the current weights on one split.
    public func evaluate(_ split: EvaluationSplit) throws -> RankingMetrics {
        try evaluator.evaluate(split) { _, input in try model.scores(input) }
    }

    /// Trains until `epochs` or early stopping, writing metrics and checkpoints. Returns the final state.
    @discardableResult
    public func train() throws -> PretrainState {
        while state.epoch < settings.epochs {
            if state.bestEpoch > 0 && state.epoch - state.bestEpoch >= settings.patience {
                observer?.log("early stop: no better validation Recall@20 in \(settings.patience) epochs since epoch \(state.bestEpoch)")
                break
            }
            let started = Date()
            let loss = try trainEpoch()
            guard loss.isFinite else { throw TrainingError.nonFinite(what: "training loss", epoch: state.epoch, bestEpoch: state.bestEpoch) }
            try model.denoiser.parameters.requireFinite(epoch: state.epoch, bestEpoch: state.bestEpoch)
            let seconds = Date().timeIntervalSince(started)
            let usersPerSecond = Double(trainingUsers.count) / seconds
            try run.appendMetrics([("kind", .string("epoch")), ("epoch", .integer(state.epoch)), ("loss", .number(loss)),
                                   ("seconds", .number(seconds)), ("users_per_second", .number(usersPerSecond))])
            var line = String(format: "epoch %3d  loss %.6f  %.2f s  %.0f users/s", state.epoch, loss, seconds, usersPerSecond)
            if state.epoch % settings.evalEvery == 0 || state.epoch == settings.epochs {
                let valid = try timedEvaluation(.valid)
                let recall = valid.metrics.recall(at: 20)
                line += String(format: "  valid R@20 %.4f N@20 %.4f (%.1f s)", recall, valid.metrics.ndcg(at: 20), valid.seconds)
                let improved = recall > state.bestValidRecall20, shown = showTestEvery.map { state.epoch % $0 == 0 } ?? false
                // Test is scored for the record of the epoch validation chooses, and shown only when asked for.
                let test = improved || shown ? try timedEvaluation(.test).metrics : nil
                if shown, let test { line += String(format: "  test R@20 %.4f N@20 %.4f", test.recall(at: 20), test.ndcg(at: 20)) }
                if improved, let test {
                    state.bestValidRecall20 = recall
                    state.bestEpoch = state.epoch
                    state.bestValid = Dictionary(uniqueKeysWithValues: valid.metrics.values.map { ($0.key, $0.value) })
                    state.bestTest = Dictionary(uniqueKeysWithValues: test.values.map { ($0.key, $0.value) })
                    try saveWeights(to: "best.safetensors")
                    line += "  *best"
                }
            }
            try saveCheckpoint()
            observer?.log(line)
        }
        return state
    }

    private func timedEvaluation(_ split: EvaluationSplit) throws -> (metrics: RankingMetrics, seconds: Double) {
        let started = Date()
        let metrics = try evaluate(split)
        let seconds = Date().timeIntervalSince(started)
        try run.appendEvaluation(epoch: state.epoch, split: split, seconds: seconds, metrics: metrics)
        return (metrics, seconds)
    }

    var checkpointMetadata: [String: String] { ["model": "diffrec", "epoch": String(state.epoch)] }

    func saveWeights(to name: String) throws {
        try run.saveWeights(model.denoiser.parameters, to: name, metadata: checkpointMetadata)
    }

    func saveCheckpoint() throws {
        try run.saveCheckpoint(model.denoiser.parameters, state: state, metadata: checkpointMetadata)
    }

    /// Restores weights, moments and state from a run folder written by `saveCheckpoint`.
    public static func restore(model: DiffRecModel, from run: RunFolder) throws -> PretrainState {
        try run.restoreCheckpoint(model.denoiser.parameters, as: PretrainState.self)
    }
}
