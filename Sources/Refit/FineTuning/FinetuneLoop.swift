import Foundation
import RefitCompute

/// Fine-tuning state for resuming, saved as state.json after every epoch.
public struct FinetuneState: CheckpointState, Sendable {
    public var epoch = 0
    public var updates = 0
    public var optimizerStep = 0
    public var bestEpoch = 0
    public var bestValidNDCG20 = -1.0
    /// Validation metrics of the pre-trained model (epoch 0) and at the best epoch.
    public var pretrainedValid: [String: Double] = [:]
    public var bestValid: [String: Double] = [:]

    public init() {}
}

/// One estimator update: the rewards of its rollouts, its loss, and the estimator's own measures.
public struct UpdateStatistics: Sendable {
    public var rewards: [Double]
    public var loss: Double
    /// Named as metrics.jsonl logs them: REINFORCE's approximate KL and clip fraction, the pathwise anchor distance.
    public var diagnostics: [Diagnostic]

    public struct Diagnostic: Sendable {
        /// The metrics.jsonl key.
        public let key: String
        /// The console's label and number format.
        public let label: String
        public let format: String
        public var value: Double
    }
}

/// How the gradient of the expected reward is estimated and applied for a batch of a scenario's examples.
public protocol FinetuneEstimator<Example>: AnyObject {
    /// What a batch holds: users (DiffRec) or training examples (DreamRec).
    associatedtype Example
    /// One update of the policy's parameters from `batch`; `number` counts updates over the run, so that every update
    /// draws its own noise and resuming replays the same draws.
    func update(_ batch: [Example], number: Int) throws -> UpdateStatistics
}

/// What the epoch loop needs of a model family: the examples of an epoch, validation, and how to log them.
public protocol FinetuneScenario: AnyObject {
    associatedtype Example
    /// The parameters being fine-tuned (checkpointed, and restored when resuming).
    var parameters: ParameterStore { get }
    /// `model` in the checkpoints' metadata.
    var modelName: String { get }
    /// How Recall@20 is labelled in the log ("HR@20" with one target per user).
    var hitRateLabel: String { get }
    /// Epoch `epoch`'s examples (1-based), in a shuffled order fixed by the seed, `share` of them.
    func examples(epoch: Int, share: Double) -> [Example]
    /// The policy's validation scores.
    func validate() throws -> RankingMetrics
    /// The metrics under the names metrics.jsonl and state.json keep them.
    func namedValues(_ metrics: RankingMetrics) -> [(key: String, value: Double)]
}

/// What one epoch of fine-tuning did, as logged per epoch.
public struct FinetuneEpochStatistics: Sendable {
    public var rewardMean = 0.0
    public var rewardStd = 0.0
    public var loss = 0.0
    public var diagnostics: [UpdateStatistics.Diagnostic] = []
    public var seconds = 0.0
    public var usersPerSecond = 0.0

    /// Collects the updates of one epoch; `finish` summarises them as logged.
    struct Accumulator {
        var rewards: [Double] = [], losses: [Double] = [], diagnostics: [[UpdateStatistics.Diagnostic]] = []
        let started = Date()

        mutating func add(_ update: UpdateStatistics) {
            rewards += update.rewards
            losses.append(update.loss)
            diagnostics.append(update.diagnostics)
        }

        func finish(users: Int) -> FinetuneEpochStatistics {
            func mean(_ values: [Double]) -> Double { values.reduce(0, +) / Double(max(values.count, 1)) }
            var s = FinetuneEpochStatistics()
            s.rewardMean = mean(rewards)
            s.rewardStd = mean(rewards.map { ($0 - s.rewardMean) * ($0 - s.rewardMean) }).squareRoot()
            s.loss = mean(losses)
            s.diagnostics = (diagnostics.first ?? []).enumerated().map { index, first in
                var d = first
                d.value = mean(diagnostics.map { $0[index].value })
                return d
            }
            s.seconds = Date().timeIntervalSince(started)
            s.usersPerSecond = Double(users) / s.seconds
            return s
        }
    }

    /// The metrics.jsonl line of a fine-tuning epoch.
    func metricsLine(epoch: Int) -> [(String, JSONValue)] {
        [("kind", .string("epoch")), ("epoch", .integer(epoch)), ("reward_mean", .number(rewardMean)),
         ("reward_std", .number(rewardStd)), ("loss", .number(loss))] + diagnostics.map { ($0.key, .number($0.value)) }
            + [("seconds", .number(seconds)), ("users_per_second", .number(usersPerSecond))]
    }

    /// The console line of a fine-tuning epoch, before its validation scores.
    func logLine(epoch: Int) -> String {
        String(format: "epoch %3d  reward %.4f ± %.4f  loss %.4g", epoch, rewardMean, rewardStd, loss)
            + diagnostics.map { "  \($0.label) " + String(format: $0.format, $0.value) }.joined()
            + String(format: "  %.1f s  %.0f users/s", seconds, usersPerSecond)
    }
}

/// The epoch loop of every fine-tuning run: the pre-trained model's validation as epoch 0, then per epoch one pass of
/// updates over a share of the examples, the log line, validation, the best weights kept by validation NDCG@20, and a
/// checkpoint. The scenario says what an example is and how to validate; the estimator, how an update is made.
public final class FinetuneLoop<Scenario: FinetuneScenario> {
    public let scenario: Scenario
    public let estimator: any FinetuneEstimator<Scenario.Example>
    public let settings: FinetuneSettings
    public let run: RunFolder
    public internal(set) var state: FinetuneState
    weak var observer: TrainingObserver?

    public init(scenario: Scenario, estimator: any FinetuneEstimator<Scenario.Example>, settings: FinetuneSettings, run: RunFolder,
                state: FinetuneState? = nil, observer: TrainingObserver? = nil) {
        self.scenario = scenario
        self.estimator = estimator
        self.settings = settings
        self.run = run
        self.state = state ?? FinetuneState()
        self.observer = observer
        scenario.parameters.step = self.state.optimizerStep
    }

    /// One pass over (a share of) the examples.
    public func trainEpoch() throws -> FinetuneEpochStatistics {
        let epoch = state.epoch + 1
        let examples = scenario.examples(epoch: epoch, share: settings.userFraction)
        var epochUpdates = FinetuneEpochStatistics.Accumulator()
        let batches = (examples.count + settings.usersPerBatch - 1) / settings.usersPerBatch
        for batch in 0..<batches {
            let slice = Array(examples[(batch * settings.usersPerBatch)..<min(examples.count, (batch + 1) * settings.usersPerBatch)])
            let update = try estimator.update(slice, number: state.updates)
            guard update.loss.isFinite && update.rewards.allSatisfy(\.isFinite) else {
                throw TrainingError.nonFinite(what: "fine-tuning loss or reward", epoch: epoch, bestEpoch: state.bestEpoch)
            }
            epochUpdates.add(update)
            state.updates += 1
            state.optimizerStep = scenario.parameters.step
            observer?.batchFinished(epoch: epoch, batch: batch + 1, of: batches)
        }
        try scenario.parameters.requireFinite(epoch: epoch, bestEpoch: state.bestEpoch)
        state.epoch = epoch
        return epochUpdates.finish(users: examples.count)
    }

    /// The policy's validation scores and the seconds they took, appended to the run's metrics.
    func validation() throws -> (metrics: RankingMetrics, seconds: Double) {
        let started = Date()
        let metrics = try scenario.validate()
        let seconds = Date().timeIntervalSince(started)
        try run.appendEvaluation(epoch: state.epoch, split: .valid, seconds: seconds, values: scenario.namedValues(metrics))
        return (metrics, seconds)
    }

    /// Fine-tunes for `settings.epochs`, evaluating on validation each epoch and keeping the best weights.
    @discardableResult
    public func train() throws -> FinetuneState {
        let metadata = { ["model": self.scenario.modelName, "finetune_epoch": String(self.state.epoch)] }
        let label = scenario.hitRateLabel
        func named(_ metrics: RankingMetrics) -> [String: Double] {
            Dictionary(uniqueKeysWithValues: scenario.namedValues(metrics).map { ($0.key, $0.value) })
        }
        if state.epoch == 0 && state.pretrainedValid.isEmpty {
            let (metrics, seconds) = try validation()
            state.pretrainedValid = named(metrics)
            state.bestValid = state.pretrainedValid
            state.bestValidNDCG20 = metrics.ndcg(at: 20)
            state.bestEpoch = 0
            try run.saveWeights(scenario.parameters, to: "best.safetensors", metadata: metadata())
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
                state.bestValid = named(metrics)
                try run.saveWeights(scenario.parameters, to: "best.safetensors", metadata: metadata())
                line += "  *best"
            }
            try run.saveCheckpoint(scenario.parameters, state: state, metadata: metadata())
            observer?.log(line)
        }
        return state
    }
}

/// The share of a list that an epoch visits: at least one, `share` of them rounded.
func epochShare(_ count: Int, _ share: Double) -> Int { max(1, Int((Double(count) * share).rounded())) }
