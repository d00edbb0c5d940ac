import Foundation
import RefitCompute

/// The whole-model checks of `refit check` (group "model"), in the spirit of llm.c's `test_gpt2.c`: each builds the
/// same tiny model from the same seed on the device under test and on the CPU reference, runs a few steps of real
/// training, fine-tuning or sampling through the library's own code paths, and compares what came out tensor by
/// tensor, by name. One row per check: its worst tensor (the first to fail, else the one nearest its tolerance), named.
///
/// The data is the built-in generator at a tiny size (48 users × 40 items), so the whole run takes seconds.
/// Collaborative targets are built once, on the reference, and shared: the checks test the models, not the
/// teacher's tie-breaking.
///
/// Tolerances, measured on PoCL 3.1 against the CPU reference (the largest |Δ| of any weight, full run):
/// - Philox streams: exact (they are integer arithmetic; a single different bit fails).
/// - Weights after training or an update, `1e-5 + 1e-4·|w|`: the drift was 9e-8 after 9 DiffRec steps, 1.5e-8 after one
///   pathwise or REINFORCE update (6e-8 for DreamRec's, through 5 softmax posterior steps), 1.2e-7 after 10 SASRec steps — a few ulps of weights below 1, at most 1/100 of the
///   tolerance. Every check's learning rate is 1e-3 and AdamW's first steps move each weight by about that much, so
///   an update that is wrong by 1% of its size fails.
/// - SASRec's attention key biases, `2·lr·steps`: adding b to every key adds q·b to each of a query's scores, which
///   softmax ignores, so their true gradient is 0 and what each backend computes is rounding; AdamW turns it into steps
///   of ±lr (measured 3.9e-4 after 5 steps). They are compared only against the most those steps can add up to.
/// - DreamRec's sampled x̂₀ (|x| up to 6) and scores, `1e-4 + 1e-3·|x|`: drift 6.7e-6 after 10 guided steps, 1/70 of it.
public enum ModelChecks {
    /// The seed of every model on both backends.
    static let seed: UInt64 = 11

    /// Runs every check; `quick` takes fewer steps. Throws only when a backend fails to run (a kernel error).
    public static func run(device: any Backend, reference: any Backend, quick: Bool) throws -> [CheckResult] {
        try run(device: device, reference: reference, quick: quick, referenceSeed: seed)
    }

    /// As above, with the reference's models built from `referenceSeed` (a check that must fail when it differs).
    static func run(device: any Backend, reference: any Backend, quick: Bool, referenceSeed: UInt64) throws -> [CheckResult] {
        let data = try TinyData(backend: reference)
        return try checks(data, quick: quick).map { check in
            let deviceTensors = try check.body(device, seed)
            let referenceTensors = try check.body(reference, referenceSeed)
            return worst(of: deviceTensors, referenceTensors, name: check.name, tolerance: check.tolerance, exceptions: check.exceptions)
        }
    }

    struct Check {
        let name: String
        let tolerance: Tolerance
        /// Tensors (by name suffix) whose true gradient is zero, so that AdamW turns rounding into steps of ±lr: compared
        /// only against the most those steps can add up to.
        var exceptions: [(suffix: String, tolerance: Tolerance)] = []
        /// Runs the check on a backend with models from `seed`; returns the named tensors to compare.
        let body: (any Backend, UInt64) throws -> [(name: String, values: [Float])]
    }

    static func checks(_ data: TinyData, quick: Bool) -> [Check] {
        let diffrecEpochs = quick ? 1 : 3
        let sasrecEpochs = quick ? 1 : 2
        let samplingSteps = quick ? 5 : 10
        let sasrecSteps = sasrecEpochs * data.sasrecBatches
        let weights = Tolerance(absolute: 1e-5, relative: 1e-4)
        return [
            Check(name: "Philox normal and uniform streams", tolerance: .exact) { backend, seed in
                try philoxStreams(backend, seed: seed)
            },
            Check(name: "DiffRec training, \(diffrecEpochs * data.diffrecBatches) steps", tolerance: weights) {
                backend, seed in try diffrecTraining(backend, seed: seed, data: data, epochs: diffrecEpochs)
            },
            Check(name: "ReFiT pathwise update (DiffRec)", tolerance: weights) { backend, seed in
                try diffrecFinetune(backend, seed: seed, data: data, estimator: .pathwise(PathwiseSettings()))
            },
            Check(name: "ReFiT REINFORCE update (DiffRec)", tolerance: weights) { backend, seed in
                var reinforce = ReinforceSettings()
                reinforce.rollouts = 4
                reinforce.stepFraction = 0.5
                // A wider policy than fine-tuning's default gives rewards that differ well above rounding within each group,
                // so the group-normalised advantages do not amplify rounding.
                reinforce.exploration.scale = 30
                return try diffrecFinetune(backend, seed: seed, data: data, estimator: .reinforce(reinforce))
            },
            // The key bias adds q·b to every score of a query, which softmax ignores: its gradient is rounding alone.
            Check(name: "SASRec training, \(sasrecSteps) steps", tolerance: weights,
                  exceptions: [("attention.key.bias", Tolerance(absolute: 2 * Double(sequentialLearningRate) * Double(sasrecSteps), relative: 0))]) {
                backend, seed in try sasrecTraining(backend, seed: seed, data: data, epochs: sasrecEpochs)
            },
            Check(name: "DreamRec guided sampling, \(samplingSteps) steps", tolerance: Tolerance(absolute: 1e-4, relative: 1e-3)) {
                backend, seed in try dreamrecSampling(backend, seed: seed, data: data, samplingSteps: samplingSteps)
            },
            Check(name: "ReFiT pathwise update (DreamRec, cross-entropy)", tolerance: weights) { backend, seed in
                try dreamrecFinetune(backend, seed: seed, data: data)
            },
        ]
    }

    // MARK: The data

    /// The built-in generator at a tiny size, as DiffRec's interaction matrix and as sequences, with the collaborative
    /// targets built once.
    struct TinyData {
        let interactions: InteractionDataset
        let sequences: SequenceDataset
        let targets: CollaborativeTargets
        let diffrecBatchSize = 16
        let sasrecBatchSize = 32
        let historyLength = 4

        init(backend: any Backend) throws {
            var shape = SyntheticDataset.Shape()
            (shape.users, shape.items, shape.clusters, shape.factorDimensions) = (48, 40, 4, 8)
            (shape.interactions, shape.minActivity, shape.maxActivity) = (600, 8, 24)
            let log = SyntheticDataset.generate(shape, seed: 2024, name: "builtin:demo (48 users × 40 items)")
            interactions = try InteractionDataset(log: log)
            sequences = try SequenceDataset(log: log, minRating: nil, kCore: nil)
            targets = try TargetSpec(teacher: .userKNN(neighbors: 8), size: 10).build(dataset: interactions, backend: backend)
        }

        var diffrecBatches: Int { (interactions.usersWithTrainingInteractions().count + diffrecBatchSize - 1) / diffrecBatchSize }
        var sasrecBatches: Int { (sequences.trainingWindows(length: historyLength).count + sasrecBatchSize - 1) / sasrecBatchSize }
    }

    // MARK: The checks

    /// The same seed and counter draw the same bits on every backend: the noise of training, dropout and rollouts.
    /// An offset past 2³² exercises the counter's high word.
    static func philoxStreams(_ backend: any Backend, seed: UInt64) throws -> [(name: String, values: [Float])] {
        let normal = try backend.makeTensor([37, 113], .float32), uniform = try backend.makeTensor([37, 113], .float32)
        backend.fillNormal(normal, seed: seed, offset: (1 << 33) + 5)
        backend.fillUniform(uniform, seed: seed ^ 0x55, offset: 7)
        return [("fillNormal", try backend.readFloats(normal)), ("fillUniform", try backend.readFloats(uniform))]
    }

    static func diffrecSettings(seed: UInt64, data: TinyData) -> DiffRecSettings {
        var s = DiffRecSettings()
        (s.dims, s.embeddingSize, s.steps) = ([16], 4, 5)
        (s.batchSize, s.learningRate, s.seed) = (data.diffrecBatchSize, 1e-3, seed)
        return s
    }

    /// `epochs` of DiffRec pre-training (dropout on, importance-sampled steps, AdamW) from the seed's weights.
    static func diffrecTraining(_ backend: any Backend, seed: UInt64, data: TinyData, epochs: Int) throws -> [(name: String, values: [Float])] {
        let model = try DiffRecModel(backend: backend, settings: diffrecSettings(seed: seed, data: data), items: data.interactions.itemCount)
        let evaluator = try TopKEvaluator(backend: backend, dataset: data.interactions, batchSize: 64)
        // trainEpoch writes nothing: the run folder is never created.
        let trainer = try DiffRecTrainer(model: model, dataset: data.interactions, evaluator: evaluator,
                                         run: RunFolder(FileManager.default.temporaryDirectory.appendingPathComponent("refit-model-check-unused").path))
        for _ in 0..<epochs { _ = try trainer.trainEpoch() }
        return try named(model.denoiser.parameters)
    }

    /// One fine-tuning update of a fresh DiffRec by `estimator` (collab-loglik reward, 16 users, lr 1e-3, clip 1).
    static func diffrecFinetune(_ backend: any Backend, seed: UInt64, data: TinyData, estimator: EstimatorSpec) throws
        -> [(name: String, values: [Float])] {
        let model = try DiffRecModel(backend: backend, settings: diffrecSettings(seed: seed, data: data), items: data.interactions.itemCount)
        let train = try DeviceCSR(data.interactions.train, on: backend)
        var settings = FinetuneSettings()
        (settings.estimator, settings.optimizer.learningRate, settings.seed) = (estimator, 1e-3, seed)
        let reward = settings.reward.make(backend: backend, train: data.interactions.train, seen: train, targets: data.targets)
        let policy = DiffRecPolicy(model: model, reference: nil, reward: reward, input: train, seen: train, trainRows: data.interactions.train,
                                   exploration: settings.reinforce?.exploration ?? Exploration(), seed: seed)
        let users = Array(0..<16)
        switch estimator {
        case .pathwise: _ = try PathwiseEstimator(policy: policy, settings: settings).update(users, number: 0)
        case .reinforce: _ = try ReinforceEstimator(policy: policy, settings: settings).update(users, number: 0)
        }
        return try named(model.denoiser.parameters)
    }

    static let sequentialLearningRate: Float = 1e-3

    static func sequentialSettings(_ model: SequentialModelKind, seed: UInt64, data: TinyData) -> SequentialSettings {
        var s = SequentialSettings()
        s.model = model
        (s.historyLength, s.hiddenSize, s.blocks, s.denoiserDepth) = (data.historyLength, 16, 2, 2)
        (s.steps, s.batchSize, s.learningRate, s.seed) = (50, data.sasrecBatchSize, sequentialLearningRate, seed)
        return s
    }

    /// `epochs` of SASRec training (causal windows, dropout on, cross-entropy over all items, AdamW).
    static func sasrecTraining(_ backend: any Backend, seed: UInt64, data: TinyData, epochs: Int) throws -> [(name: String, values: [Float])] {
        let settings = sequentialSettings(.sasrec, seed: seed, data: data)
        let model = try SequentialModel(backend: backend, settings: settings, items: data.sequences.itemIDs.count)
        let evaluator = try SequentialEvaluator(backend: backend, dataset: data.sequences, historyLength: settings.historyLength)
        let trainer = try SequentialTrainer(model: model, dataset: data.sequences, evaluator: evaluator,
                                            run: RunFolder(FileManager.default.temporaryDirectory.appendingPathComponent("refit-model-check-unused").path))
        for _ in 0..<epochs { _ = try trainer.trainEpoch() }
        return try named(model.encoder.parameters)
    }

    /// DreamRec's guided reverse process (w = 2) from the Philox stream for the histories of 16 users: the sampled x̂₀
    /// and the item scores x̂₀·Eᵀ.
    static func dreamrecSampling(_ backend: any Backend, seed: UInt64, data: TinyData, samplingSteps: Int) throws -> [(name: String, values: [Float])] {
        var settings = sequentialSettings(.dreamrec, seed: seed, data: data)
        settings.samplingSteps = samplingSteps
        let model = try SequentialModel(backend: backend, settings: settings, items: data.sequences.itemIDs.count)
        let histories = (0..<16).flatMap { u in
            data.sequences.history(user: u, before: SequenceDataset.trainingLength(data.sequences.sequences[u].count), length: settings.historyLength)
        }
        let h = try model.encoder.forward(histories: histories, training: false)
        let x0 = try backend.readFloats(try model.sample(conditions: h, seed: seed, offset: 0, trajectory: nil))
        let scores = try backend.readFloats(try model.scores(histories: histories, seed: seed))
        return [("x̂₀", x0), ("scores", scores)]
    }

    /// One pathwise ReFiT update (the default DreamRec recipe, seq-loglik) of a cross-entropy DreamRec through its 5-step
    /// sampler — the posterior-mean chain and its softmax's backward — for 16 training examples: the denoiser after it.
    static func dreamrecFinetune(_ backend: any Backend, seed: UInt64, data: TinyData) throws -> [(name: String, values: [Float])] {
        var s = sequentialSettings(.dreamrec, seed: seed, data: data)
        (s.samplingSteps, s.denoiserLoss) = (5, .ce)
        let model = try SequentialModel(backend: backend, settings: s, items: data.sequences.itemIDs.count)
        var settings = FinetuneSettings.sequential
        settings.optimizer.learningRate = sequentialLearningRate
        let reward = NextItemReward(spec: settings.reward, model: model, dataset: data.sequences)
        let policy = try DreamRecPolicy(model: model, reference: nil, reward: reward, dataset: data.sequences, exploration: Exploration(), seed: seed)
        _ = try PathwiseEstimator(policy: policy, settings: settings).update(Array(data.sequences.trainingExamples.prefix(16)), number: 0)
        return try named(model.denoiser!.parameters)
    }

    // MARK: Comparing

    static func named(_ store: ParameterStore) throws -> [(name: String, values: [Float])] {
        try store.namedTensors(of: store.values).map { ($0.name, $0.values) }
    }

    /// Every tensor compared by name, each with the share of its tolerance that its worst element uses (1 is the limit).
    static func compareAll(_ device: [(name: String, values: [Float])], _ reference: [(name: String, values: [Float])], name: String,
                           tolerance: Tolerance, exceptions: [(suffix: String, tolerance: Tolerance)]) -> [(row: CheckResult, used: Double)] {
        zip(device, reference).map { d, r in
            let tolerance = exceptions.first { d.name.hasSuffix($0.suffix) }?.tolerance ?? tolerance
            let row = CheckResult.compare(d.values, r.values, group: "model", name: name, shape: d.name, tolerance: tolerance)
            let used = zip(d.values, r.values).map { a, b -> Double in
                let error = a == b || (a.isNaN && b.isNaN) ? 0 : abs(Double(a) - Double(b))
                return error == 0 ? 0 : error / (tolerance.absolute + tolerance.relative * abs(Double(b)))
            }.max() ?? 0
            return (row, used.isNaN ? .infinity : used)
        }
    }

    /// One row for a check: every tensor compared by name; the row is the first failing tensor, else the one that uses
    /// the largest share of its tolerance, and its shape field names it. A failing row lists the other failing tensors too.
    static func worst(of device: [(name: String, values: [Float])], _ reference: [(name: String, values: [Float])],
                      name: String, tolerance: Tolerance, exceptions: [(suffix: String, tolerance: Tolerance)] = []) -> CheckResult {
        guard device.map(\.name) == reference.map(\.name) else {
            return CheckResult(group: "model", name: name, shape: "\(device.count) tensors", maxAbsoluteError: .infinity,
                               maxRelativeError: .infinity, tolerance: tolerance, passed: false,
                               detail: "the tensors differ: \(device.map(\.name)) on the device, \(reference.map(\.name)) on the reference")
        }
        let rows = compareAll(device, reference, name: name, tolerance: tolerance, exceptions: exceptions)
        let failing = rows.map(\.row).filter { !$0.passed }
        // A passing exception (a tensor of rounding alone) would always look worst: the row shows the others' drift.
        let regular = rows.filter { r in !exceptions.contains { r.row.shape.hasSuffix($0.suffix) } }
        var row = failing.first ?? (regular.isEmpty ? rows : regular).max { $0.used < $1.used }!.row
        let others = failing.dropFirst().map(\.shape)
        if let detail = row.detail {
            row.detail = "\(row.shape) \(detail)" + (others.isEmpty ? "" : "; also failing: \(others.joined(separator: ", "))")
        }
        row.shape = rows.count == 1 ? row.shape : "\(row.shape), worst of \(rows.count) tensors"
        return row
    }
}
