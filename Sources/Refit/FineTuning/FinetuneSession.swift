import Foundation
import RefitCompute

/// Before/after numbers of one fine-tuning run under the identical protocol.
public struct FinetuneOutcome: Sendable {
    public var pretrainedValid: RankingMetrics
    public var pretrainedTest: RankingMetrics
    public var finetunedValid: RankingMetrics
    public var finetunedTest: RankingMetrics
    public var popularityTest: RankingMetrics?
    public var bestEpoch: Int
    public var epochs: Int
    public var secondsPerEpoch: Double
    public var rewardBefore: Double
    public var rewardAfter: Double
}

/// A whole `refit finetune`: load the pre-trained run, build (or reload) collaborative targets, fine-tune,
/// then evaluate the pre-trained and the best fine-tuned weights on validation and test.
public enum FinetuneSession {
    public static func run(pretrained: RunFolder, out: RunFolder, settings: FinetuneSettings, backend: any Backend,
                           resume: Bool = false, force: Bool = false, targets cachedTargets: CollaborativeTargets? = nil,
                           observer: TrainingObserver? = nil) throws -> FinetuneOutcome {
        try settings.validate()
        guard !settings.reward.isSequential else {
            throw FinetuneError.invalidSetting("--reward \(settings.reward.rawValue) is for sequential (DreamRec) runs; \(pretrained.path) is a DiffRec run")
        }
        let base = try TrainedRun(pretrained, backend: backend)
        let dataset = base.dataset
        try out.startFinetune(from: base.configuration, pretrained: pretrained, settings: settings, device: backend.deviceDescription,
                              resume: resume, force: force)
        let targetsFile = out.file("targets.tsv")
        let targets: CollaborativeTargets
        if let cachedTargets {
            targets = cachedTargets
            if !FileManager.default.fileExists(atPath: targetsFile.path) { try targets.write(to: targetsFile) }
        } else if FileManager.default.fileExists(atPath: targetsFile.path) {
            targets = try CollaborativeTargets.read(from: targetsFile, users: dataset.userCount, itemCount: dataset.itemCount)
        } else {
            let started = Date()
            targets = try buildTargets(dataset: dataset, settings: settings, backend: backend)
            try targets.write(to: targetsFile)
            observer?.log(String(format: "collaborative targets (%@): %.1f s, cached in %@", settings.neighbors.rawValue,
                                 Date().timeIntervalSince(started), targetsFile.path))
        }
        let evaluator = try TopKEvaluator(backend: backend, dataset: dataset, batchSize: base.configuration.diffrec.batchSize)
        let policy = try base.copyModel()
        let reference = settings.klCoefficient > 0 || settings.anchor > 0 ? base.model : nil
        var spread: [Float]? = nil
        if settings.reward == .collabScore {
            let started = Date()
            spread = try CollaborativeScoreReward.referenceSpread(model: base.model, train: dataset.train, trainOnDevice: evaluator.trainMatrix,
                                                                  batchSize: evaluator.batchSize)
            observer?.log(String(format: "collab-score: the pre-trained scores' spread σ_u over each user's unseen items, %.1f s", Date().timeIntervalSince(started)))
        }
        let reward = settings.reward.make(backend: backend, train: dataset.train, trainOnDevice: evaluator.trainMatrix,
                                          targets: targets, settings: settings, referenceSpread: spread)
        let state = resume ? try ReFiTTrainer.restore(policy: policy, from: out) : nil
        if let state { try out.filterMetrics { ($0["epoch"] as? Int ?? 0) <= state.epoch } }
        let trainer = try ReFiTTrainer(policy: policy, reference: reference, reward: reward, dataset: dataset, evaluator: evaluator,
                                       run: out, settings: settings, candidates: targets, state: state, observer: observer)
        // A fixed probe of users tracks the mean reward before and after, with the same rollout noise.
        let probe = Array(trainer.trainingUsers.prefix(min(256, trainer.trainingUsers.count)))
        let rewardBefore = try ReFiTTrainer(policy: base.model, reference: nil, reward: reward, dataset: dataset, evaluator: evaluator,
                                            run: out, settings: settings, candidates: targets).meanReward(users: probe)
        let started = Date()
        let final = try trainer.train()
        let secondsPerEpoch = Date().timeIntervalSince(started) / Double(max(final.epoch - (state?.epoch ?? 0), 1))
        let rewardAfterLast = try trainer.meanReward(users: probe)
        // Report the best validation epoch's weights.
        try policy.denoiser.parameters.load(try out.readTensors("best.safetensors"), into: policy.denoiser.parameters.values)
        let score: (Tensor, Tensor) throws -> Tensor = { _, input in try policy.scores(input) }
        let baseScore: (Tensor, Tensor) throws -> Tensor = { _, input in try base.model.scores(input) }
        let outcome = FinetuneOutcome(
            pretrainedValid: try evaluator.evaluate(.valid, score: baseScore),
            pretrainedTest: try evaluator.evaluate(.test, score: baseScore),
            finetunedValid: try evaluator.evaluate(.valid, score: score),
            finetunedTest: try evaluator.evaluate(.test, score: score),
            popularityTest: try PopularityBaseline(backend: backend, train: dataset.train).evaluate(.test, with: evaluator),
            bestEpoch: final.bestEpoch, epochs: final.epoch, secondsPerEpoch: secondsPerEpoch,
            rewardBefore: rewardBefore, rewardAfter: rewardAfterLast)
        var fields: [(String, JSONValue)] = [("kind", .string("summary")), ("best_epoch", .integer(outcome.bestEpoch)),
                                             ("reward_before", .number(rewardBefore)), ("reward_after", .number(rewardAfterLast))]
        for (label, metrics) in [("pretrained_valid", outcome.pretrainedValid), ("pretrained_test", outcome.pretrainedTest),
                                 ("valid", outcome.finetunedValid), ("test", outcome.finetunedTest)] {
            fields += [("\(label)_recall@20", .number(metrics.recall(at: 20))), ("\(label)_ndcg@20", .number(metrics.ndcg(at: 20)))]
        }
        try out.appendMetrics(fields)
        return outcome
    }

    public static func buildTargets(dataset: InteractionDataset, settings: FinetuneSettings, backend: any Backend) throws -> CollaborativeTargets {
        switch settings.neighbors {
        case .userKNN:
            return try CollaborativeTargets.userKNN(train: dataset.train, neighbors: settings.neighborCount,
                                                    targetSize: settings.targetSize, backend: backend)
        case .itemGraph:
            return CollaborativeTargets.itemGraph(train: dataset.train, targetSize: settings.targetSize)
        case .ease:
            let model = try EASEModel(backend: backend, train: dataset.train, lambda: settings.easeLambda)
            return try CollaborativeTargets.ease(train: dataset.train, model: model, targetSize: settings.targetSize, backend: backend)
        }
    }
}
