import Foundation
import RefitCompute

/// What `PretrainBenchmark.run` measured: one training epoch and one full evaluation of a split, after a warm-up.
public struct PretrainBenchmarkResult: Sendable, Codable {
    public var device: String
    public var users: Int
    /// Users with training interactions: the rows of one epoch.
    public var trainingUsers: Int
    public var items: Int
    public var parameters: Int
    public var steps: Int
    public var batchSize: Int
    public var split: EvaluationSplit
    /// Timed repetitions; each time below is the fastest of them.
    public var repetitions: Int

    /// Wall time of one `DiffRecTrainer.trainEpoch()`.
    public var epochSeconds: Double
    /// Matrix-multiply work of one epoch (forward and backward of every layer), in 10⁹ floating-point operations.
    public var epochGFLOP: Double
    /// Wall time of one `TopKEvaluator.evaluate` of `split` over every user (T reverse steps, masking, top-K), with
    /// the reverse chain as `DiffRecModel.scores` runs it: factored through the first hidden layer.
    public var evaluationSeconds: Double
    /// The part of `evaluationSeconds` spent in the T denoising steps (the rest: dense rows, masked top-K, read-back).
    public var denoisingSeconds: Double
    /// Matrix-multiply work of one evaluation's factored chain, per batch: the weight products, then per user the
    /// first layer once, T steps of the middle layers and the H₁ × H_L product, and the last layer once.
    public var evaluationGFLOP: Double
    /// The same evaluation with the chain run step by step in item space (`DiffRecModel.stepwiseScores`: T whole
    /// forward passes per user, as DiffRec's code runs it), and its work.
    public var stepwiseEvaluationSeconds: Double
    public var stepwiseEvaluationGFLOP: Double
    /// Recall@20 of the evaluated split, to show the timed work was real.
    public var recall20: Double

    public var epochGFLOPPerSecond: Double { epochGFLOP / epochSeconds }
    public var evaluationGFLOPPerSecond: Double { evaluationGFLOP / evaluationSeconds }
    public var denoisingGFLOPPerSecond: Double { evaluationGFLOP / denoisingSeconds }
    public var stepwiseEvaluationGFLOPPerSecond: Double { stepwiseEvaluationGFLOP / stepwiseEvaluationSeconds }
    public var usersPerSecond: Double { Double(trainingUsers) / epochSeconds }

    /// A few aligned lines for a terminal.
    public var summary: String {
        [
            "device      \(device)",
            "model       DiffRec, \(parameters) parameters, \(items) items, T=\(steps), batch \(batchSize)",
            String(format: "epoch       %.3f s  (%d users, %.0f users/s, %.1f GFLOP, %.1f GFLOP/s)",
                   epochSeconds, trainingUsers, usersPerSecond, epochGFLOP, epochGFLOPPerSecond),
            String(format: "evaluation  %.3f s  (%@, %d users, factored chain: %.1f GFLOP, %.1f GFLOP/s; denoising %.3f s)",
                   evaluationSeconds, split.rawValue, users, evaluationGFLOP, evaluationGFLOPPerSecond, denoisingSeconds),
            String(format: "  stepwise  %.3f s  (T whole forward passes per user: %.1f GFLOP, %.1f GFLOP/s)",
                   stepwiseEvaluationSeconds, stepwiseEvaluationGFLOP, stepwiseEvaluationGFLOPPerSecond),
            "best of    \(repetitions) after a warm-up epoch and evaluation",
        ].joined(separator: "\n")
    }
}

/// Times DiffRec pre-training's two costs on a backend: one training epoch and one full-ranking evaluation.
///
/// The model is built from `settings` (its seed) and trained for real; a warm-up epoch and evaluation first
/// compile the kernels and allocate every buffer, so the timed runs measure steady state. GFLOP counts are the
/// matrix multiplications only (2·K·N per row and linear layer), which dominate; element-wise work is left out.
public enum PretrainBenchmark {
    public static func run(backend: any Backend, dataset: InteractionDataset, settings: DiffRecSettings,
                           split: EvaluationSplit = .test, repetitions: Int = 1, warmUp: Bool = true,
                           phase: (String?) -> Void = { _ in }) throws -> PretrainBenchmarkResult {
        precondition(repetitions >= 1, "repetitions must be at least 1")
        let model = try DiffRecModel(backend: backend, settings: settings, items: dataset.itemCount)
        let evaluator = try TopKEvaluator(backend: backend, dataset: dataset, batchSize: settings.batchSize)
        // trainEpoch and evaluate write nothing: the folder is never created.
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("refit-benchmark-\(UUID().uuidString)")
        let trainer = try DiffRecTrainer(model: model, dataset: dataset, evaluator: evaluator, run: RunFolder(scratch.path))

        var denoising = 0.0
        func evaluate(stepwise: Bool = false) throws -> RankingMetrics {
            try evaluator.evaluate(split) { _, input in
                let started = Date()
                let scores = try stepwise ? model.stepwiseScores(input) : model.scores(input)
                try backend.synchronize()
                denoising += Date().timeIntervalSince(started)
                return scores
            }
        }
        if warmUp {
            _ = try trainer.trainEpoch()
            _ = try evaluate()
            _ = try evaluate(stepwise: true)
        }
        var epochSeconds = Double.infinity, evaluationSeconds = Double.infinity, denoisingSeconds = Double.infinity
        var stepwiseSeconds = Double.infinity
        var metrics = RankingMetrics()
        // `phase` hears each timed phase's name as it starts, and nil after the last (a profiler's cue).
        for _ in 0..<repetitions {
            phase("epoch")
            var started = Date()
            _ = try trainer.trainEpoch()
            try backend.synchronize()
            epochSeconds = min(epochSeconds, Date().timeIntervalSince(started))

            denoising = 0
            phase("evaluation")
            started = Date()
            metrics = try evaluate()
            evaluationSeconds = min(evaluationSeconds, Date().timeIntervalSince(started))
            denoisingSeconds = min(denoisingSeconds, denoising)

            phase("stepwise evaluation")
            started = Date()
            _ = try evaluate(stepwise: true)
            stepwiseSeconds = min(stepwiseSeconds, Date().timeIntervalSince(started))
        }
        phase(nil)

        let architecture = model.denoiser.architecture
        let trainingUsers = trainer.trainingUsers.count
        return PretrainBenchmarkResult(
            device: backend.deviceDescription, users: dataset.userCount, trainingUsers: trainingUsers,
            items: dataset.itemCount, parameters: model.denoiser.parameters.parameterCount, steps: settings.steps,
            batchSize: settings.batchSize, split: split, repetitions: repetitions,
            epochSeconds: epochSeconds, epochGFLOP: Double(trainingUsers) * trainingFLOPsPerRow(architecture) / 1e9,
            evaluationSeconds: evaluationSeconds, denoisingSeconds: denoisingSeconds,
            evaluationGFLOP: factoredEvaluationFLOPs(architecture, users: dataset.userCount, steps: settings.steps,
                                                     batchSize: settings.batchSize) / 1e9,
            stepwiseEvaluationSeconds: stepwiseSeconds,
            stepwiseEvaluationGFLOP: Double(dataset.userCount * settings.steps) * forwardFLOPsPerRow(architecture) / 1e9,
            recall20: metrics.recall(at: 20))
    }

    /// Multiply-adds ×2 of one row through the denoiser: the time-embedding layer and every linear layer.
    public static func forwardFLOPsPerRow(_ a: DiffRecArchitecture) -> Double {
        Double(2 * a.embeddingSize * a.embeddingSize + a.layers.reduce(0) { $0 + 2 * $1.inputs * $1.outputs })
    }

    /// Matrix-multiply work of a factored-chain evaluation (see `FactoredReverseChain`).
    public static func factoredEvaluationFLOPs(_ a: DiffRecArchitecture, users: Int, steps: Int, batchSize: Int) -> Double {
        let layers = a.layers
        let (first, last) = (layers[0], layers[layers.count - 1])
        let middle = layers.dropFirst().dropLast().reduce(0) { $0 + 2 * $1.inputs * $1.outputs }
        let perUser = 2 * a.items * first.outputs + steps * (middle + 2 * first.outputs * last.inputs) + 2 * last.inputs * a.items
        let batches = (users + batchSize - 1) / max(batchSize, 1)
        return Double(users * perUser + batches * 2 * first.outputs * a.items * last.inputs)
    }

    /// One row's forward and backward: the forward, every weight gradient (same cost again), the input gradient of
    /// every layer but the first, and of the first only its time-embedding columns (as `DiffRecDenoiser.backward` does).
    public static func trainingFLOPsPerRow(_ a: DiffRecArchitecture) -> Double {
        let layers = a.layers
        let weightGradients = forwardFLOPsPerRow(a)
        let inputGradients = layers.dropFirst().reduce(0) { $0 + 2 * $1.inputs * $1.outputs } + 2 * layers[0].outputs * a.embeddingSize
        return forwardFLOPsPerRow(a) + weightGradients + Double(inputGradients)
    }
}
