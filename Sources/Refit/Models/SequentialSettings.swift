/// The two sequential models: SASRec (cross-entropy over all items) and DreamRec (diffusion over the next
/// item's embedding, conditioned on SASRec's encoding of the history).
public enum SequentialModelKind: String, Codable, Sendable, CaseIterable {
    case sasrec
    case dreamrec
}

/// What DreamRec's denoiser learns its x̂₀ by.
public enum DenoiserLoss: String, Codable, Sendable, CaseIterable {
    /// DreamRec's: ‖x̂₀ − x₀‖² with x₀ = targetScale·E[target]. Its optimum is the mean embedding of the likely next
    /// items, which ranks poorly (docs/sequential-experiments.md).
    case mse
    /// DiffuRec's: softmax cross-entropy of the scores x̂₀·Eᵀ over all items against the target, so that x̂₀ is
    /// trained for the ranking it is used for.
    case ce
}

/// Every setting of a sequential run, saved whole in `config.json`.
public struct SequentialSettings: Codable, Sendable, Equatable {
    public var model: SequentialModelKind = .sasrec
    // Encoder (shared by both models)
    /// Items of history before each target (L).
    public var historyLength = 10
    /// Embedding and hidden size (d).
    public var hiddenSize = 64
    public var blocks = 1
    public var dropout: Float = 0.1
    // Diffusion (DreamRec)
    public var schedule: NoiseScheduleKind = .linear
    public var steps = 500
    public var betaStart = 1e-4
    public var betaEnd = 0.02
    /// Classifier-free guidance strength w at sampling: `x̂₀ = (1+w)·f(x, h, t) − w·f(x, ∅, t)`.
    public var guidance: Float = 2
    /// Probability of training with the null condition ∅.
    public var nullProbability = 0.1
    /// Linear layers of the denoiser MLP: 1 is DreamRec's Linear(3d → d); 2 adds a GELU hidden layer of 2d.
    public var denoiserDepth = 2
    /// The denoiser's training loss; nil (runs saved before the choice existed) is `.mse`.
    public var denoiserLoss: DenoiserLoss? = nil
    public var loss: DenoiserLoss { denoiserLoss ?? .mse }
    /// DreamRec diffuses `x₀ = targetScale·E[target]`, set at pre-training to 1/RMS of the SASRec run's E so that
    /// x₀ has unit scale per dimension like the N(0, I) noise (DreamRec's own embeddings start N(0, 1)); SASRec's
    /// trained embeddings are far smaller, which would leave almost no signal at most steps. Scores divide it out.
    public var targetScale: Float = 1
    /// Sampler steps at evaluation: nil runs all T ancestral steps; K < T runs K strided DDIM steps (η = 1).
    public var samplingSteps: Int? = nil
    // Optimisation
    public var learningRate: Float = 1e-3
    public var weightDecay: Float = 0
    public var batchSize = 256
    public var epochs = 30
    public var evalEvery = 1
    /// Stop when this many epochs have passed since the best validation NDCG@20.
    public var patience = 3
    public var seed: UInt64 = 1

    public init() {}

    /// DreamRec's forward process; betas span betaStart…betaEnd (for `exp`: DreamRec's b_min…b_max).
    public func noiseSchedule() throws -> NoiseSchedule {
        try NoiseSchedule(kind: schedule, steps: steps, scale: 1, minimum: betaStart, maximum: betaEnd, fixFirstBeta: false)
    }
}

/// Named settings for the sequential scenario. Flags given with a preset override it.
public enum SequentialPreset: String, CaseIterable, Sendable {
    /// ML-1M, every rating, 5-core, L = 10, d = 64, T = 500 with betas 1e-4…0.1, cross-entropy, w = 2, lr 1e-3, batch
    /// 256, at most 20 epochs.
    case ml1mSeq = "ml-1m-seq"
    case ml100kSeq = "ml-100k-seq"
    /// The built-in synthetic dataset: small and quick, for tests.
    case demoSeq = "demo-seq"

    public func settings(model: SequentialModelKind) -> SequentialSettings {
        var s = SequentialSettings()
        s.model = model
        // 50 strided DDIM steps (η = 1) sampled as well as all 500 ancestral ones on validation at a tenth of the cost
        // (docs/sequential-experiments.md), for evaluation and ReFiT's rollouts alike.
        s.samplingSteps = 50
        // Cross-entropy ranks 2.4 times better than DreamRec's MSE on ML-1M validation, and betas up to 0.1 (DreamRec's:
        // 0.02) leave more of the chain to the history, which ReFiT then uses: higher validation after fine-tuning on
        // ML-1M and ML-100K (docs/sequential-experiments.md).
        if model == .dreamrec { (s.denoiserLoss, s.betaEnd) = (.ce, 0.1) }
        switch self {
        case .ml1mSeq:
            s.epochs = 20
        case .ml100kSeq:
            s.epochs = model == .sasrec ? 60 : 40
            s.patience = 5
        case .demoSeq:
            s.epochs = 8
            s.patience = 3
        }
        return s
    }
}
