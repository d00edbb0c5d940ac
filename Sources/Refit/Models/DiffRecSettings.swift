/// Every setting of a DiffRec pre-training run: saved whole in `config.json`, restored to evaluate, fine-tune or
/// resume it.
public struct DiffRecSettings: Codable, Sendable, Equatable {
    // Model
    public var dims: [Int] = [200, 600]
    public var embeddingSize = 10
    public var dropout: Float = 0.5
    public var meanType: MeanType = .x0
    // Diffusion
    public var schedule: NoiseScheduleKind = .linearVariance
    public var steps = 40
    public var noiseScale = 0.005
    public var noiseMin = 0.005
    public var noiseMax = 0.01
    /// Inference starts from x (0) or from q_sample(x, samplingSteps).
    public var samplingSteps = 0
    public var reweight = true
    /// T-DiffRec: the model's input and target rows weight each user's training items by recency (nil: 0/1 rows).
    /// The dataset is weighted once, where it is loaded for the run (`InteractionDataset.weighted(by:)`).
    public var timeWeights: TimeWeights? = nil
    // Optimisation
    public var learningRate: Float = 1e-3
    public var weightDecay: Float = 0
    public var batchSize = 400
    public var epochs = 1000
    public var evalEvery = 5
    /// Stop when this many epochs have passed since the best validation Recall@20.
    public var patience = 20
    public var seed: UInt64 = 1

    public init() {}

    public func architecture(items: Int) -> DiffRecArchitecture {
        DiffRecArchitecture(items: items, dims: dims, embeddingSize: embeddingSize, dropout: dropout)
    }

    public func noiseSchedule() throws -> NoiseSchedule {
        try NoiseSchedule(kind: schedule, steps: steps, scale: noiseScale, minimum: noiseMin, maximum: noiseMax)
    }
}

/// Named settings for known datasets; settings given beside a preset override it.
public enum DiffRecPreset: String, CaseIterable, Sendable {
    /// DiffRec's released ML-1M (clean) run.
    case ml1mClean = "ml-1m-clean"
    /// DiffRec's noisy ML-1M split, with the clean run's settings: DiffRec's released hyper-parameters for the
    /// noisy split were not available to us, so tune on validation.
    case ml1mNoisy = "ml-1m-noisy"
    case ml100k = "ml-100k"
    /// The built-in synthetic dataset: small and quick, for the demo and tests.
    case demo

    public var settings: DiffRecSettings {
        var s = DiffRecSettings()
        switch self {
        case .ml1mClean, .ml1mNoisy:
            break
        case .ml100k:
            s.batchSize = 200
            s.patience = 30
        case .demo:
            s.dims = [200]
            s.steps = 20
            s.batchSize = 200
            s.epochs = 40
            s.evalEvery = 5
        }
        return s
    }
}
