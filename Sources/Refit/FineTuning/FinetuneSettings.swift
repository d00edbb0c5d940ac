/// A ReFiT fine-tuning recipe as a few typed parts: what the final x₀ is rewarded for (`reward`, with the
/// collaborative `targets` it reads), how the gradient of the expected reward is estimated (`estimator`, whose
/// settings exist only for the estimator they belong to), and how it is applied (`optimizer`, `trainedLayers`, the
/// epoch schedule). A combination that has no meaning (an anchor for REINFORCE, PPO for the pathwise gradient) cannot
/// be written; `validate()` checks ranges only.
///
/// `FinetuneSettings()` is the method as first specified (REINFORCE on collab-loglik with user-kNN targets);
/// `FinetunePreset` holds the measured recipes.
public struct FinetuneSettings: Sendable, Equatable {
    public var reward: RewardSpec = .collabLoglik()
    /// The collaborative targets of DiffRec runs: built once per run from the training matrix (cached in targets.tsv),
    /// read by the collaborative rewards and by REINFORCE's exploration of target items.
    public var targets = TargetSpec()
    public var estimator: EstimatorSpec = .reinforce(ReinforceSettings())
    public var optimizer = OptimizerSettings()
    /// The denoiser layers updated (DiffRec runs; DreamRec fine-tuning updates its whole denoiser).
    public var trainedLayers: TrainedLayers = .all
    public var epochs = 5
    /// Users (DiffRec) or training examples (DreamRec, one per user) per update.
    public var usersPerBatch = 128
    /// Share of the training users visited per epoch.
    public var userFraction: Double = 1
    /// Seed of the rollouts' noise and of the shuffles.
    public var seed: UInt64 = 1

    public init() {}
}

/// What a rollout's final x₀ is scored with. Collaborative rewards read only the training matrix and targets built
/// from it; validation and test interactions never reach a reward (a test proves it).
public enum RewardSpec: Codable, Sendable, Equatable {
    /// Σ_j w_uj · log softmax(x₀/τ)_j over the user's unseen items, w_u the collaborative target.
    case collabLoglik(temperature: Float = 1)
    /// NDCG@K of x₀'s top unseen items against the graded collaborative target.
    case collabNDCG(cutoff: Int = 20)
    /// collab-loglik minus the log-likelihood of the population's mean target over the same unseen items: it rewards
    /// what is personal in a target and not what every target shares (popularity). The normalisers cancel, so it is
    /// linear in x₀: `Σ_j (w_uj − w̄_uj)·x₀_j/τ`.
    case collabLift(temperature: Float = 1)
    /// `σ_u·⟨z_u(w_u), x₀⟩`: the target standardised over the user's unseen items (0 on seen ones), scaled by σ_u, the
    /// spread of the pre-trained model's scores there. Linear in x₀; with the pathwise anchor β its optimum
    /// x₀_ref + σ_u·z_u(w_u)/β ranks like the blend z(x₀_ref) + z(w_u)/β that `BaselineComparison` scores.
    case collabScore
    /// The naive design: the log-likelihood of the user's own training items.
    case selfLoglik(temperature: Float = 1)
    /// α·self-loglik + (1 − α)·collab-loglik.
    case mixed(selfWeight: Float = 0.5, temperature: Float = 1)
    /// DreamRec runs: log softmax(x̂₀·Eᵀ/τ) of the observed next item of a training position.
    case seqLoglik(temperature: Float = 1)
    /// DreamRec runs: α·seq-loglik + (1 − α)·the same log-likelihood averaged over the `followers` items that most often
    /// followed the history's last item in training sequences (the collaborative next-item signal).
    case seqCollab(ownWeight: Float = 0.5, temperature: Float = 1, followers: Int = 100)

    public var kind: RewardKind {
        switch self {
        case .collabLoglik: .collabLoglik
        case .collabNDCG: .collabNDCG
        case .collabLift: .collabLift
        case .collabScore: .collabScore
        case .selfLoglik: .selfLoglik
        case .mixed: .mixed
        case .seqLoglik: .seqLoglik
        case .seqCollab: .seqCollab
        }
    }

    /// Whether the reward is a differentiable function of x₀ (the pathwise estimator needs one).
    public var isDifferentiable: Bool { ![.collabNDCG, .seqCollab].contains(kind) }
}

/// The names of the rewards, as a run's log and the command line spell them.
public enum RewardKind: String, Codable, Sendable, CaseIterable {
    case collabLoglik = "collab-loglik"
    case collabNDCG = "collab-ndcg"
    case collabLift = "collab-lift"
    case collabScore = "collab-score"
    case selfLoglik = "self-loglik"
    case mixed
    case seqLoglik = "seq-loglik"
    case seqCollab = "seq-collab"

    /// Whether the reward belongs to the sequential scenario (DreamRec) rather than DiffRec.
    public var isSequential: Bool { self == .seqLoglik || self == .seqCollab }

    /// The reward of this kind with its own defaults.
    public var defaultSpec: RewardSpec {
        switch self {
        case .collabLoglik: .collabLoglik()
        case .collabNDCG: .collabNDCG()
        case .collabLift: .collabLift()
        case .collabScore: .collabScore
        case .selfLoglik: .selfLoglik()
        case .mixed: .mixed()
        case .seqLoglik: .seqLoglik()
        case .seqCollab: .seqCollab()
        }
    }
}

/// The collaborative targets w_u: a teacher's scores over each user's unseen items, the top `size` kept, summing to 1.
public struct TargetSpec: Codable, Sendable, Equatable {
    public var teacher: Teacher = .userKNN()
    public var size = 100

    public init(teacher: Teacher = .userKNN(), size: Int = 100) {
        self.teacher = teacher
        self.size = size
    }
}

/// Where collaborative targets come from: a simple recommender fitted on the training matrix.
public enum Teacher: Codable, Sendable, Equatable {
    /// The top-k users by cosine similarity of training rows, their rows averaged by similarity.
    case userKNN(neighbors: Int = Teacher.defaultNeighbors)
    /// x_u·P with P the row-normalised item–item co-occurrence matrix (zero diagonal): linear in users.
    case itemGraph
    /// x_u·B with B the EASE item–item regression weights (closed form, L2 weight λ): O(I²) memory. The default λ
    /// was chosen on validation Recall@20 (docs/finetuning-experiments.md).
    case ease(lambda: Double = Teacher.defaultLambda)

    public static let defaultNeighbors = 50
    public static let defaultLambda = 1000.0

    public var kind: TeacherKind {
        switch self {
        case .userKNN: .userKNN
        case .itemGraph: .itemGraph
        case .ease: .ease
        }
    }
}

/// The names of the teachers.
public enum TeacherKind: String, Codable, Sendable, CaseIterable {
    case userKNN = "user-knn"
    case itemGraph = "item-graph"
    case ease

    public var defaultTeacher: Teacher {
        switch self {
        case .userKNN: .userKNN()
        case .itemGraph: .itemGraph
        case .ease: .ease()
        }
    }
}

/// How the gradient of the expected reward is estimated; each case carries only the settings that mean something to it.
public enum EstimatorSpec: Codable, Sendable, Equatable {
    /// Score-function gradients from G stochastic rollouts per user (`ReinforceEstimator`).
    case reinforce(ReinforceSettings)
    /// The deterministic chain's gradient, backpropagated from a differentiable reward (`PathwiseEstimator`).
    case pathwise(PathwiseSettings)

    public var kind: EstimatorKind {
        switch self {
        case .reinforce: .reinforce
        case .pathwise: .pathwise
        }
    }
}

public enum EstimatorKind: String, Codable, Sendable, CaseIterable {
    case reinforce
    case pathwise

    public var defaultSpec: EstimatorSpec {
        switch self {
        case .reinforce: .reinforce(ReinforceSettings())
        case .pathwise: .pathwise(PathwiseSettings())
        }
    }
}

/// REINFORCE: G rollouts per user from `N(μ_θ, η²σ̃_t²·I)`, group-normalised advantages, and `−mean A·Σ_{t∈S} log π`
/// over a random share S of the noisy steps; optionally PPO's clipped ratio and a KL penalty to the pre-trained model.
public struct ReinforceSettings: Codable, Sendable, Equatable {
    /// Rollouts per user (G).
    public var rollouts = 4
    public var exploration = Exploration()
    /// Share of the noisy steps trained on per update. A quarter keeps an update about as costly as its rollouts (each
    /// trained step is a forward and a backward pass; a rollout step only a forward).
    public var stepFraction = 0.25
    /// nil: one REINFORCE update per batch of rollouts.
    public var ppo: PPOSettings? = nil
    /// β of the penalty `β·mean_i (μ_θ − μ_ref)²/(2η²σ̃_t²)` towards the frozen pre-trained model; nil: none.
    public var klCoefficient: Float? = nil
    /// Advantages are clipped to ±this.
    public var advantageClip: Float = 5

    public init() {}
}

/// The policy's noise: its standard deviation η·σ̃_t, over which dimensions.
public struct Exploration: Codable, Sendable, Equatable {
    public var scale: Float = 1
    public var dimensions: ExplorationKind = .all

    public init(scale: Float = 1, dimensions: ExplorationKind = .all) {
        self.scale = scale
        self.dimensions = dimensions
    }
}

/// Which item dimensions of x_{t−1} the policy explores.
public enum ExplorationKind: String, Codable, Sendable, CaseIterable {
    /// Every item: the policy is N(μ, η²σ̃²·I) over all I dimensions.
    case all
    /// Only each user's collaborative-target items: larger steps in far fewer dimensions (the other items follow the
    /// mean deterministically and carry no log-probability).
    case targets
}

/// Several clipped updates over the same rollouts: `−min(ρA, clip(ρ, 1±ε)A)`, ρ = π/π_old.
public struct PPOSettings: Codable, Sendable, Equatable {
    public var epochs: Int
    /// ε.
    public var clipRange: Float = 0.2

    public init(epochs: Int, clipRange: Float = 0.2) {
        self.epochs = epochs
        self.clipRange = clipRange
    }
}

/// The pathwise gradient: x₀ is a differentiable function of θ along the noise-free chain, so `∇θ r(x₀(θ))` is
/// backpropagated through the last `steps` reverse steps (DRaFT-K).
public struct PathwiseSettings: Codable, Sendable, Equatable {
    /// Reverse steps the gradient flows through, counted from the last; nil: all of them.
    public var steps: Int? = nil
    public var anchor: Anchor? = nil

    public init(steps: Int? = nil, anchor: Anchor? = nil) {
        self.steps = steps
        self.anchor = anchor
    }
}

/// `β·½‖x₀ − x₀_ref‖²` to the frozen pre-trained model's output, over `scope`. Its optimum is about `x₀_ref + ∇r/β`:
/// the pre-trained scores plus a step towards the reward's targets, the blend that `BaselineComparison` measures.
public struct Anchor: Codable, Sendable, Equatable {
    /// β.
    public var weight: Float
    public var scope: AnchorScope = .all

    public init(weight: Float, scope: AnchorScope = .all) {
        self.weight = weight
        self.scope = scope
    }
}

/// Which items the anchor (and, for `focus`, the reward's gradient too) acts on.
public enum AnchorScope: Codable, Sendable, Equatable {
    case all
    /// The items outside the user's training row: the ones a ranking sees.
    case unseen
    /// Each user's unseen items in the top `items` of x₀_ref or of the anchored optimum x₀_ref + ∇r/β, for the reward's
    /// gradient and the anchor alike. A ranking reads only the top of the list, and a denoiser cannot fit a target
    /// everywhere: this spends its capacity where the order changes.
    case focus(items: Int)
}

/// AdamW after a gradient-norm clip.
public struct OptimizerSettings: Codable, Sendable, Equatable {
    public var learningRate: Float = 1e-5
    public var weightDecay: Float = 0
    public var maxGradientNorm: Float = 1

    public init(learningRate: Float = 1e-5) { self.learningRate = learningRate }
}

/// Which of the denoiser's layers fine-tuning updates.
public enum TrainedLayers: String, Codable, Sendable, CaseIterable {
    case all
    /// Only the output layer: the features stay the pre-trained ones, and the scores move within what they express.
    case output
}

extension FinetuneSettings {
    /// The REINFORCE settings, or nil for another estimator.
    public var reinforce: ReinforceSettings? {
        if case .reinforce(let s) = estimator { return s }
        return nil
    }

    /// The pathwise settings, or nil for another estimator.
    public var pathwise: PathwiseSettings? {
        if case .pathwise(let s) = estimator { return s }
        return nil
    }

    /// Whether the frozen pre-trained model is needed beside the policy (a KL penalty or an anchor refers to it).
    public var needsReference: Bool { reinforce?.klCoefficient != nil || pathwise?.anchor != nil }

    /// Checks every value's range, naming the setting; combinations need no check, since the types admit only
    /// meaningful ones.
    public func validate() throws(SettingError) {
        func check(_ condition: Bool, _ setting: SettingError.Setting, _ requirement: String) throws(SettingError) {
            if !condition { throw SettingError(setting: setting, requirement: requirement) }
        }
        // NaN fails every comparison; infinity must be refused by name.
        func positive<T: BinaryFloatingPoint>(_ x: T) -> Bool { x > 0 && x.isFinite }
        switch reward {
        case .collabLoglik(let t), .collabLift(let t), .selfLoglik(let t), .seqLoglik(let t):
            try check(positive(t), .temperature, "must be positive and finite")
        case .mixed(let weight, let t):
            try check(positive(t), .temperature, "must be positive and finite")
            try check(weight >= 0 && weight <= 1, .mixWeight, "must be in [0, 1]")
        case .seqCollab(let weight, let t, let followers):
            try check(positive(t), .temperature, "must be positive and finite")
            try check(weight >= 0 && weight <= 1, .mixWeight, "must be in [0, 1]")
            try check(followers >= 1, .targetSize, "must be at least 1")
        case .collabNDCG(let cutoff):
            try check(cutoff >= 1, .ndcgCutoff, "must be at least 1")
        case .collabScore:
            break
        }
        try check(targets.size >= 1, .targetSize, "must be at least 1")
        switch targets.teacher {
        case .userKNN(let k): try check(k >= 1, .neighborCount, "must be at least 1")
        case .ease(let lambda): try check(positive(lambda), .easeLambda, "must be positive and finite")
        case .itemGraph: break
        }
        switch estimator {
        case .reinforce(let s):
            try check(s.rollouts >= 1, .rollouts, "must be at least 1")
            try check(positive(s.exploration.scale), .explorationScale, "must be positive and finite")
            try check(s.stepFraction > 0 && s.stepFraction <= 1, .stepFraction, "must be in (0, 1]")
            if let ppo = s.ppo {
                try check(ppo.epochs >= 1, .ppoEpochs, "must be at least 1")
                try check(positive(ppo.clipRange), .clipRange, "must be positive and finite")
            }
            if let kl = s.klCoefficient { try check(positive(kl), .klCoefficient, "must be positive and finite") }
            try check(positive(s.advantageClip), .advantageClip, "must be positive and finite")
        case .pathwise(let s):
            try check(reward.isDifferentiable, .estimator,
                      "pathwise needs a differentiable reward (collab-loglik, collab-lift, collab-score, self-loglik, mixed or seq-loglik), not \(reward.kind.rawValue)")
            if let steps = s.steps { try check(steps >= 1, .pathwiseSteps, "must be at least 1") }
            if let anchor = s.anchor {
                try check(positive(anchor.weight), .anchor, "must be positive and finite")
                if case .focus(let items) = anchor.scope { try check(items >= 1, .focus, "must be at least 1") }
            }
        }
        try check(positive(optimizer.learningRate), .learningRate, "must be positive and finite")
        try check(positive(optimizer.maxGradientNorm), .maxGradientNorm, "must be positive and finite")
        try check(optimizer.weightDecay >= 0 && optimizer.weightDecay.isFinite, .weightDecay, "must be non-negative and finite")
        try check(trainedLayers == .all || !reward.kind.isSequential, .trainedLayers,
                  "must be all for DreamRec runs, whose fine-tuning updates the whole denoiser")
        try check(epochs >= 1, .epochs, "must be at least 1")
        try check(usersPerBatch >= 1, .usersPerBatch, "must be at least 1")
        try check(userFraction > 0 && userFraction <= 1, .userFraction, "must be in (0, 1]")
    }
}

/// A setting outside its range. It names the setting, not a flag: the command line maps settings to its flags.
public struct SettingError: Error, CustomStringConvertible, Equatable {
    /// Every fine-tuning setting with a range.
    public enum Setting: String, Sendable, CaseIterable {
        case temperature, mixWeight, targetSize, ndcgCutoff, neighborCount, easeLambda
        case estimator, rollouts, explorationScale, stepFraction, ppoEpochs, clipRange, klCoefficient, advantageClip
        case pathwiseSteps, anchor, focus
        case learningRate, maxGradientNorm, weightDecay, trainedLayers, epochs, usersPerBatch, userFraction
    }

    public let setting: Setting
    public let requirement: String

    public init(setting: Setting, requirement: String) {
        self.setting = setting
        self.requirement = requirement
    }

    public var description: String { "\(setting.rawValue) \(requirement)" }
}

/// Fine-tuning that cannot start: the recipe does not fit the model it is given.
public enum FinetuneError: Error, CustomStringConvertible {
    case invalidSetting(String)

    public var description: String {
        switch self {
        case .invalidSetting(let message): message
        }
    }
}
