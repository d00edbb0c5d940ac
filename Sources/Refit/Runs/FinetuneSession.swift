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
    /// The mean reward of a fixed probe of users before and after (NaN where the scenario measures none).
    public var rewardBefore: Double
    public var rewardAfter: Double
}

/// A run's failure that is not about one setting: a run folder of the wrong kind, a missing encoder run.
public enum RunError: Error, CustomStringConvertible {
    case invalid(String)

    public var description: String {
        switch self {
        case .invalid(let message): message
        }
    }
}

/// A whole `refit finetune`: load the pre-trained run (DiffRec or DreamRec), set up its scenario, policy and the
/// estimator the settings name, fine-tune, then evaluate the pre-trained and the best fine-tuned weights on validation
/// and test, with popularity beside them.
public enum FinetuneSession {
    public static func run(pretrained: RunFolder, out: RunFolder, settings: FinetuneSettings, backend: any Backend,
                           resume: Bool = false, force: Bool = false, targets cachedTargets: CollaborativeTargets? = nil,
                           observer: TrainingObserver? = nil) throws -> FinetuneOutcome {
        try settings.validate()
        if pretrained.isSequential {
            return try dreamRec(pretrained: pretrained, out: out, settings: settings, backend: backend, resume: resume, force: force,
                                observer: observer)
        }
        guard !settings.reward.kind.isSequential else {
            throw RunError.invalid("the reward \(settings.reward.kind.rawValue) is for sequential (DreamRec) runs; \(pretrained.path) is a DiffRec run")
        }
        let base = try TrainedRun(pretrained, backend: backend)
        let dataset = base.dataset
        let lock = try out.startFinetune(from: base.configuration, pretrained: pretrained, settings: settings, device: backend.deviceDescription,
                                         resume: resume, force: force, observer: observer)
        defer { lock.release() }
        let targetsFile = out.file("targets.tsv")
        let targets: CollaborativeTargets
        if let cachedTargets {
            targets = cachedTargets
            if !FileManager.default.fileExists(atPath: targetsFile.path) { try targets.write(to: targetsFile) }
        } else if FileManager.default.fileExists(atPath: targetsFile.path) {
            targets = try CollaborativeTargets.read(from: targetsFile, users: dataset.userCount, itemCount: dataset.itemCount)
        } else {
            let started = Date()
            targets = try settings.targets.build(dataset: dataset, backend: backend)
            try targets.write(to: targetsFile)
            observer?.log(String(format: "collaborative targets (%@): %.1f s, cached in %@", settings.targets.teacher.kind.rawValue,
                                 Date().timeIntervalSince(started), targetsFile.path))
        }
        let evaluator = try TopKEvaluator(backend: backend, dataset: dataset, batchSize: base.configuration.diffrec.batchSize)
        let model = try base.copyModel()
        var spread: [Float]? = nil
        if settings.reward == .collabScore {
            let started = Date()
            spread = try CollaborativeScoreReward.referenceSpread(model: base.model, train: dataset.train, input: evaluator.inputRows,
                                                                  batchSize: evaluator.batchSize)
            observer?.log(String(format: "collab-score: the pre-trained scores' spread σ_u over each user's unseen items, %.1f s", Date().timeIntervalSince(started)))
        }
        let reward = settings.reward.make(backend: backend, train: dataset.train, seen: evaluator.seenRows, targets: targets,
                                          referenceSpread: spread)
        // The probe samples the stochastic policy: with REINFORCE's own exploration, or its defaults under another estimator.
        let probeSettings = settings.reinforce ?? ReinforceSettings()
        func policy(_ model: DiffRecModel, reference: DiffRecModel?) -> DiffRecPolicy {
            DiffRecPolicy(model: model, reference: reference, reward: reward, input: evaluator.inputRows, seen: evaluator.seenRows, trainRows: dataset.train,
                          exploration: probeSettings.exploration, candidates: targets, seed: settings.seed)
        }
        let trained = policy(model, reference: settings.needsReference ? base.model : nil)
        let scenario = DiffRecScenario(policy: model, dataset: dataset, evaluator: evaluator, seed: settings.seed)
        // A fixed probe of users tracks the mean reward before and after, with the same rollout noise.
        let probe = Array(scenario.trainingUsers.prefix(min(256, scenario.trainingUsers.count)))
        let outcome = try finish(scenario: scenario, estimator: try estimator(trained, settings), settings: settings, out: out,
                                 resume: resume, observer: observer, itemInteractions: dataset.train.columnCounts(),
                                 rewardBefore: { try policy(base.model, reference: nil).meanReward(probe, rollouts: probeSettings.rollouts) },
                                 rewardAfter: { try trained.meanReward(probe, rollouts: probeSettings.rollouts) }) { split, finetuned in
            try evaluator.evaluate(split, into: UserRankings(cutoffs: evaluator.cutoffs)) { _, input in
                try (finetuned ? model : base.model).scores(input)
            }
        }
        return try FinetuneOutcome(pretrainedValid: outcome.pretrainedValid, pretrainedTest: outcome.pretrainedTest,
                               finetunedValid: outcome.finetunedValid, finetunedTest: outcome.finetunedTest,
                               popularityTest: try PopularityBaseline(backend: backend, train: dataset.train).evaluate(.test, with: evaluator),
                               bestEpoch: outcome.bestEpoch, epochs: outcome.epochs, secondsPerEpoch: outcome.secondsPerEpoch,
                               rewardBefore: outcome.rewardBefore, rewardAfter: outcome.rewardAfter)
            .summarised(in: out, hitRate: false)
    }

    /// The DreamRec run `pretrained` fine-tuned into `out`.
    static func dreamRec(pretrained: RunFolder, out: RunFolder, settings: FinetuneSettings, backend: any Backend, resume: Bool, force: Bool,
                         observer: TrainingObserver?) throws -> FinetuneOutcome {
        guard settings.reward.kind.isSequential else {
            throw RunError.invalid("the reward \(settings.reward.kind.rawValue) is a DiffRec reward; DreamRec runs take seq-loglik or seq-collab")
        }
        let base = try TrainedSequentialRun(pretrained, backend: backend)
        guard base.configuration.model == .dreamrec else {
            throw RunError.invalid("\(pretrained.path) is a \(base.configuration.model.rawValue) run; ReFiT fine-tunes DreamRec runs")
        }
        if let scope = settings.pathwise?.anchor?.scope, scope != .all {
            throw RunError.invalid("a DreamRec run's anchor acts on every dimension of x̂₀, which are not items: --focus and --anchor-unseen-only are for DiffRec runs")
        }
        let lock = try out.startFinetune(from: base.configuration, pretrained: pretrained, settings: settings, device: backend.deviceDescription,
                                         resume: resume, force: force, observer: observer)
        defer { lock.release() }
        // Also when resuming: a run killed between its config.json and this copy lacks it.
        if !FileManager.default.fileExists(atPath: out.file("encoder.safetensors").path) {
            try AtomicFile.write(try Data(contentsOf: pretrained.file("encoder.safetensors")), to: out.file("encoder.safetensors"))
        }
        let dataset = base.dataset
        let evaluator = try SequentialEvaluator(backend: backend, dataset: dataset, historyLength: base.configuration.sequential.historyLength)
        let model = try base.copyModel()
        let reward = NextItemReward(spec: settings.reward, model: model, dataset: dataset)
        let policy = try DreamRecPolicy(model: model, reference: settings.needsReference ? base.model : nil, reward: reward,
                                        dataset: dataset, exploration: settings.reinforce?.exploration ?? Exploration(), seed: settings.seed)
        let scenario = DreamRecScenario(policy: model, dataset: dataset, evaluator: evaluator, seed: settings.seed)
        var outcome = try finish(scenario: scenario, estimator: try estimator(policy, settings), settings: settings,
                                 out: out, resume: resume, observer: observer, itemInteractions: dataset.trainingItemCounts(),
                                 rewardBefore: nil, rewardAfter: nil) { split, finetuned in
            try evaluator.evaluate(split, model: finetuned ? model : base.model, into: UserRankings(cutoffs: evaluator.cutoffs))
        }
        outcome.popularityTest = try evaluator.popularity(.test)
        return try outcome.summarised(in: out, hitRate: true)
    }

    /// The estimator the settings name, over `policy`.
    static func estimator<Policy: PathwisePolicy>(_ policy: Policy, _ settings: FinetuneSettings) throws -> any FinetuneEstimator<Policy.Example> {
        switch settings.estimator {
        case .reinforce: try ReinforceEstimator(policy: policy, settings: settings)
        case .pathwise: try PathwiseEstimator(policy: policy, settings: settings)
        }
    }

    /// What every scenario does alike: restore a resumed run, run the epoch loop, reload the best weights, score the
    /// pre-trained and fine-tuned models on validation and test (`evaluate(split, finetuned)`), and write users.json:
    /// how the test ranking changed per user (`itemInteractions[i]`: item i's training interactions, its popularity).
    static func finish<Scenario: FinetuneScenario>(scenario: Scenario, estimator: any FinetuneEstimator<Scenario.Example>,
                                                   settings: FinetuneSettings, out: RunFolder, resume: Bool, observer: TrainingObserver?,
                                                   itemInteractions: [Int],
                                                   rewardBefore: (() throws -> Double)?, rewardAfter: (() throws -> Double)?,
                                                   evaluate: (EvaluationSplit, Bool) throws -> UserRankings) throws -> FinetuneOutcome {
        let state = resume ? try out.resumeState(scenario.parameters, as: FinetuneState.self) : nil
        let loop = FinetuneLoop(scenario: scenario, estimator: estimator, settings: settings, run: out, state: state, observer: observer)
        let before = try rewardBefore?() ?? .nan
        let started = Date()
        let final = try loop.train()
        let secondsPerEpoch = Date().timeIntervalSince(started) / Double(max(final.epoch - (state?.epoch ?? 0), 1))
        let after = try rewardAfter?() ?? .nan
        // Report the best validation epoch's weights.
        let parameters = scenario.parameters
        try parameters.load(try out.readTensors("best.safetensors"), into: parameters.values)
        let pretrainedTest = try evaluate(.test, false), finetunedTest = try evaluate(.test, true)
        try out.writeJSON(UserChanges(before: pretrainedTest, after: finetunedTest, itemInteractions: itemInteractions, split: .test),
                          to: "users.json")
        return FinetuneOutcome(pretrainedValid: try evaluate(.valid, false).metrics, pretrainedTest: pretrainedTest.metrics,
                               finetunedValid: try evaluate(.valid, true).metrics, finetunedTest: finetunedTest.metrics,
                               popularityTest: nil, bestEpoch: final.bestEpoch, epochs: final.epoch, secondsPerEpoch: secondsPerEpoch,
                               rewardBefore: before, rewardAfter: after)
    }
}

extension FinetuneOutcome {
    /// Appends the summary line to metrics.jsonl, popularity's test scores with it; `hitRate` names Recall@20 hr@20 (one
    /// target per user).
    func summarised(in out: RunFolder, hitRate: Bool) throws -> FinetuneOutcome {
        var fields: [(String, JSONValue)] = [("kind", .string("summary")), ("best_epoch", .integer(bestEpoch))]
        if rewardBefore.isFinite || rewardAfter.isFinite { fields += [("reward_before", .number(rewardBefore)), ("reward_after", .number(rewardAfter))] }
        for (label, metrics) in [("pretrained_valid", pretrainedValid), ("pretrained_test", pretrainedTest),
                                 ("valid", finetunedValid), ("test", finetunedTest)] {
            fields += [("\(label)_\(hitRate ? "hr" : "recall")@20", .number(metrics.recall(at: 20))), ("\(label)_ndcg@20", .number(metrics.ndcg(at: 20)))]
        }
        if let popularity = popularityTest {
            fields += [("popularity_test_\(hitRate ? "hr" : "recall")@20", .number(popularity.recall(at: 20))),
                       ("popularity_test_ndcg@20", .number(popularity.ndcg(at: 20)))]
        }
        try out.appendMetrics(fields)
        return self
    }
}
