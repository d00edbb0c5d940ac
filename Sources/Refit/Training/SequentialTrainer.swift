import Foundation
import RefitCompute

/// What resuming needs of a sequential pre-training run (state.json).
public struct SequentialState: CheckpointState, Sendable {
    public var epoch = 0
    public var optimizerStep = 0
    public var bestEpoch = 0
    public var bestValidNDCG20 = -1.0
    public var bestValid: [String: Double] = [:]
    public var bestTest: [String: Double] = [:]
}

/// Pre-training of the sequential models over every training target per epoch, in shuffled batches.
///
/// - SASRec: cross-entropy of `h·Eᵀ` against the next item over all items, through the encoder and E.
/// - DreamRec: the encoder and E come from a trained SASRec run and stay frozen; the denoiser learns
///   `f(x_t, c, t) ≈ x₀ = E[target]` by MSE, or the ranking of `f·Eᵀ` by cross-entropy (`DenoiserLoss`), with
///   c = ∅ with probability `nullProbability`.
///
/// Why frozen SASRec embeddings: learned jointly with the MSE, E can collapse (all items to one point makes the
/// MSE small and the ranking useless — a PyTorch trial lost 90% of its HR@20 that way). A fixed, discriminative
/// target space rules that out by construction; validation NDCG@20 is still watched every epoch, and a model
/// below the popularity ranking is flagged.
public final class SequentialTrainer {
    public let model: SequentialModel
    public let dataset: SequenceDataset
    public let evaluator: SequentialEvaluator
    public let run: RunFolder
    public private(set) var state: SequentialState
    weak var observer: TrainingObserver?
    /// Score and print test at the evaluations of every N-th epoch too (`--show-test-every`); nil: only at improvements, unprinted.
    let showTestEvery: Int?
    let settings: SequentialSettings
    let backend: any Backend
    let random: HostRandom
    /// What one epoch visits: SASRec's windows, or DreamRec's single targets.
    let units: [SequenceDataset.TrainingExample]
    private var buffers: [Int: Buffers] = [:]
    private let scalar: Tensor
    /// Validation NDCG@20 of the popularity ranking, for the collapse warning.
    var popularityValidNDCG20: Double?

    final class Buffers {
        let targets, timesteps, nullIndices: Tensor
        let loss, rowWeights, dEncoding: Tensor
        let x0, noise, xt, conditions, nullPart, keep, ones, signal, noiseLevel, dOutput: Tensor
        init(_ b: any Backend, rows: Int, d: Int) throws {
            func t(_ shape: [Int]) throws -> Tensor { try b.makeTensor(shape, .float32) }
            targets = try b.makeTensor([rows], .int32); timesteps = try b.makeTensor([rows], .int32); nullIndices = try b.makeTensor([rows], .int32)
            loss = try t([rows]); rowWeights = try b.tensor([Float](repeating: 1 / Float(rows), count: rows), shape: [rows])
            dEncoding = try t([rows, d])
            x0 = try t([rows, d]); noise = try t([rows, d]); xt = try t([rows, d]); conditions = try t([rows, d]); nullPart = try t([rows, d])
            keep = try t([rows]); ones = try b.tensor([Float](repeating: 1, count: rows), shape: [rows])
            signal = try t([rows]); noiseLevel = try t([rows]); dOutput = try t([rows, d])
        }
    }

    let signalTable: Tensor
    let noiseTable: Tensor

    public init(model: SequentialModel, dataset: SequenceDataset, evaluator: SequentialEvaluator, run: RunFolder,
                state: SequentialState? = nil, showTestEvery: Int? = nil, observer: TrainingObserver? = nil) throws {
        self.model = model
        self.showTestEvery = showTestEvery
        self.dataset = dataset
        self.evaluator = evaluator
        self.run = run
        self.observer = observer
        settings = model.settings
        backend = model.backend
        random = HostRandom(seed: settings.seed, stream: 11)
        units = settings.model == .sasrec ? dataset.trainingWindows(length: settings.historyLength) : dataset.trainingExamples
        self.state = state ?? SequentialState()
        model.trainedParameters.step = self.state.optimizerStep
        scalar = try backend.makeTensor([1], .float32)
        signalTable = try backend.tensor(model.schedule.sqrtAlphaBars.map(Float.init), shape: [settings.steps])
        noiseTable = try backend.tensor(model.schedule.sqrtOneMinusAlphaBars.map(Float.init), shape: [settings.steps])
    }

    private func buffers(_ rows: Int) throws -> Buffers {
        try buffers.reused(rows) { try Buffers(backend, rows: rows, d: settings.hiddenSize) }
    }

    /// One pass over every training target. Returns the mean loss per target (cross-entropy, or squared error).
    ///
    /// SASRec learns from windows of L consecutive targets, each position predicting the next item from the
    /// items up to it (the causal encoder makes every position a training example): one encoder pass serves L
    /// targets, several times faster than one pass per target (docs/performance.md). DreamRec learns one target per row,
    /// with its full L-item history, exactly as it is evaluated; its encoder only runs forward.
    public func trainEpoch() throws -> Double {
        let epoch = state.epoch + 1
        let l = settings.historyLength
        let order = random.permutation(units.count, round: UInt64(epoch))
        let batches = (order.count + settings.batchSize - 1) / settings.batchSize
        var lossSum = 0.0
        for batch in 0..<batches {
            let chosen = order[(batch * settings.batchSize)..<min(order.count, (batch + 1) * settings.batchSize)].map { units[$0] }
            var histories: [Int32] = [], targets: [Int32] = []
            histories.reserveCapacity(chosen.count * l)
            for e in chosen {
                histories += dataset.history(user: Int(e.user), before: Int(e.position), length: l)
                if settings.model == .sasrec {
                    targets += dataset.windowTargets(user: Int(e.user), endingAt: Int(e.position), length: l)
                } else {
                    targets.append(dataset.sequences[Int(e.user)][Int(e.position)])
                }
            }
            let b = try buffers(targets.count)
            backend.write(targets, to: b.targets)
            let step = UInt64(state.optimizerStep)
            let parameters = model.trainedParameters
            parameters.zeroGradients()
            let counted = targets.filter { $0 >= 0 }.count
            if settings.model == .sasrec {
                try sasrecStep(histories: histories, targetCount: counted, step: step, buffers: b)
            } else {
                try dreamrecStep(histories: histories, step: step, buffers: b)
            }
            try parameters.applyAdamW(learningRate: settings.learningRate, weightDecay: settings.weightDecay, maxGradientNorm: nil, scratch: scalar)
            state.optimizerStep = parameters.step
            lossSum += try backend.readFloats(b.loss).reduce(0) { $0 + Double($1) } / Double(max(counted, 1))
            observer?.batchFinished(epoch: epoch, batch: batch + 1, of: batches)
        }
        state.epoch = epoch
        return lossSum / Double(max(batches, 1))
    }

    /// Cross-entropy over all items at every position of the windows, through the encoder and the (tied) item
    /// embeddings; padding slots (target −1) add nothing.
    func sasrecStep(histories: [Int32], targetCount: Int, step: UInt64, buffers b: Buffers) throws {
        let encoder = model.encoder, rows = b.targets.count
        let dropoutSeed = settings.seed ^ 0x5345_5144_524F
        let dropoutOffset = step * UInt64(rows * settings.hiddenSize * (2 * settings.blocks + 1))
        _ = try encoder.forward(histories: histories, training: true, dropoutSeed: dropoutSeed, dropoutOffset: dropoutOffset)
        let outputs = try encoder.positionOutputs(batch: rows / settings.historyLength)
        let logits = try model.score(outputs)
        backend.softmaxCrossEntropy(logits, targets: b.targets, gradientScale: 1 / Float(max(targetCount, 1)), loss: b.loss, dLogits: logits)
        backend.matmul(logits, transposeA: false, encoder.itemEmbeddings, transposeB: false, into: b.dEncoding, alpha: 1, beta: 0)
        backend.matmul(logits, transposeA: true, outputs, transposeB: false, into: encoder.parameters.gradient("item_embeddings.weight"), alpha: 1, beta: 1)
        try encoder.backward(dPositionOutputs: b.dEncoding, dropoutSeed: dropoutSeed, dropoutOffset: dropoutOffset)
    }

    /// The denoiser's loss (MSE on x₀ = E[target], or cross-entropy of its scores) at a uniform step, with the null
    /// condition for a random tenth of rows.
    func dreamrecStep(histories: [Int32], step: UInt64, buffers b: Buffers) throws {
        guard let denoiser = model.denoiser else { return }
        let rows = b.targets.count
        let h = try model.encoder.forward(histories: histories, training: false)
        backend.gatherRows(model.encoder.itemEmbeddings, indices: b.targets, into: b.x0)
        backend.scale(b.x0, by: settings.targetScale)
        let position = step << 24
        let timesteps = (0..<rows).map { Int32(min(settings.steps - 1, Int(random.uniform(position + UInt64($0)) * Double(settings.steps)))) }
        let nullIndices = (0..<rows).map { random.uniform(position + UInt64(rows + $0)) < settings.nullProbability ? Int32(0) : -1 }
        backend.write(timesteps, to: b.timesteps)
        backend.write(nullIndices, to: b.nullIndices)
        backend.write(nullIndices.map { $0 < 0 ? Float(1) : 0 }, to: b.keep)
        backend.gather(signalTable, indices: b.timesteps, into: b.signal)
        backend.gather(noiseTable, indices: b.timesteps, into: b.noiseLevel)
        backend.fillNormal(b.noise, seed: settings.seed ^ 0x4452_4541_4D, offset: step * UInt64(settings.batchSize * settings.hiddenSize))
        backend.combineRows(b.x0, scaledBy: b.signal, b.noise, scaledBy: b.noiseLevel, into: b.xt)
        backend.gatherRows(denoiser.nullCondition, indices: b.nullIndices, into: b.nullPart)
        backend.combineRows(h, scaledBy: b.keep, b.nullPart, scaledBy: b.ones, into: b.conditions)
        let output = try denoiser.forward(b.xt, condition: b.conditions, timesteps: b.timesteps)
        switch settings.loss {
        case .mse:
            backend.squaredErrorRows(output, b.x0, into: b.loss)
            backend.squaredErrorBackward(output, b.x0, rowWeights: b.rowWeights, into: b.dOutput)
        case .ce:
            // Scores divide targetScale out (`score`), so ∂/∂x̂₀ = dLogits·E / targetScale; E stays frozen.
            let logits = try model.score(output)
            backend.softmaxCrossEntropy(logits, targets: b.targets, gradientScale: 1 / Float(rows), loss: b.loss, dLogits: logits)
            backend.matmul(logits, transposeA: false, model.encoder.itemEmbeddings, transposeB: false, into: b.dOutput,
                           alpha: 1 / settings.targetScale, beta: 0)
        }
        try denoiser.backward(dOutput: b.dOutput, nullRows: try ScatterPlan(indices: nullIndices, backend: backend))
    }

    func timedEvaluation(_ split: EvaluationSplit) throws -> (metrics: RankingMetrics, seconds: Double) {
        let started = Date()
        let metrics = try evaluator.evaluate(split, model: model)
        let seconds = Date().timeIntervalSince(started)
        try run.appendNextItemEvaluation(epoch: state.epoch, split: split, seconds: seconds, metrics: metrics)
        return (metrics, seconds)
    }

    /// Trains until `epochs` or early stopping; writes metrics, checkpoints and the best weights.
    @discardableResult
    public func train() throws -> SequentialState {
        if popularityValidNDCG20 == nil { popularityValidNDCG20 = try evaluator.popularity(.valid).ndcg(at: 20) }
        while state.epoch < settings.epochs {
            if state.bestEpoch > 0 && state.epoch - state.bestEpoch >= settings.patience {
                observer?.log("early stop: no better validation NDCG@20 in \(settings.patience) epochs since epoch \(state.bestEpoch)")
                break
            }
            let started = Date()
            let loss = try trainEpoch()
            guard loss.isFinite else { throw TrainingError.nonFinite(what: "training loss", epoch: state.epoch, bestEpoch: state.bestEpoch) }
            try model.trainedParameters.requireFinite(epoch: state.epoch, bestEpoch: state.bestEpoch)
            let seconds = Date().timeIntervalSince(started)
            let perSecond = Double(dataset.trainingExamples.count) / seconds
            try run.appendMetrics([("kind", .string("epoch")), ("epoch", .integer(state.epoch)), ("loss", .number(loss)),
                                   ("seconds", .number(seconds)), ("targets_per_second", .number(perSecond))])
            var line = String(format: "epoch %3d  loss %.5f  %.1f s  %.0f targets/s", state.epoch, loss, seconds, perSecond)
            if state.epoch % settings.evalEvery == 0 || state.epoch == settings.epochs {
                let valid = try timedEvaluation(.valid)
                let ndcg = valid.metrics.ndcg(at: 20)
                line += String(format: "  valid HR@20 %.4f N@20 %.4f (%.1f s)", valid.metrics.recall(at: 20), ndcg, valid.seconds)
                let improved = ndcg > state.bestValidNDCG20, shown = showTestEvery.map { state.epoch % $0 == 0 } ?? false
                // Test is scored for the record of the epoch validation chooses, and shown only when asked for.
                let test = improved || shown ? try timedEvaluation(.test).metrics : nil
                if shown, let test { line += String(format: "  test HR@20 %.4f N@20 %.4f", test.recall(at: 20), test.ndcg(at: 20)) }
                if improved, let test {
                    state.bestValidNDCG20 = ndcg
                    state.bestEpoch = state.epoch
                    state.bestValid = Dictionary(uniqueKeysWithValues: valid.metrics.nextItemValues.map { ($0.key, $0.value) })
                    state.bestTest = Dictionary(uniqueKeysWithValues: test.nextItemValues.map { ($0.key, $0.value) })
                    try run.saveWeights(model.trainedParameters, to: "best.safetensors", metadata: checkpointMetadata)
                    line += "  *best"
                }
                if let popular = popularityValidNDCG20, ndcg < popular {
                    line += String(format: "  (below popularity's %.4f: watch for collapse)", popular)
                }
            }
            try run.saveCheckpoint(model.trainedParameters, state: state, metadata: checkpointMetadata)
            observer?.log(line)
        }
        return state
    }

    var checkpointMetadata: [String: String] { ["model": settings.model.rawValue, "epoch": String(state.epoch)] }
}
