/// The reward a ReFiT rollout is scored with (DESIGN §4).
public enum RewardKind: String, Codable, Sendable, CaseIterable {
    /// Σ_j w_uj · log softmax(x₀/τ)_j over unseen items, w_u the collaborative target (default).
    case collabLoglik = "collab-loglik"
    /// NDCG@K of x₀'s top unseen items against the graded collaborative target.
    case collabNDCG = "collab-ndcg"
    /// The naive design: the log-likelihood of the user's own training items.
    case selfLoglik = "self-loglik"
    /// α·self + (1 − α)·collab.
    case mixed
}

/// How collaborative targets are built from the training matrix.
public enum NeighborKind: String, Codable, Sendable, CaseIterable {
    /// Top-k users by cosine similarity of training rows.
    case userKNN = "user-knn"
    /// x_u·P with P the row-normalised item–item co-occurrence matrix (zero diagonal): linear in users.
    case itemGraph = "item-graph"
}

/// Every setting of a ReFiT fine-tuning run.
public struct FinetuneSettings: Codable, Sendable, Equatable {
    public var reward: RewardKind = .collabLoglik
    public var neighbors: NeighborKind = .userKNN
    /// Neighbours per user (user-kNN).
    public var neighborCount = 50
    /// Entries kept in each user's collaborative target.
    public var targetSize = 100
    /// Softmax temperature τ of the log-likelihood rewards.
    public var temperature: Float = 1
    /// Cut-off of collab-ndcg.
    public var ndcgCutoff = 20
    /// Weight of the self term in `mixed`.
    public var mixWeight: Float = 0.5
    /// Rollouts per user (G).
    public var rollouts = 4
    public var usersPerBatch = 128
    /// Policy std = η·σ̃_t.
    public var explorationScale: Float = 1
    /// Fraction of the noisy steps trained on per update.
    public var stepFraction: Double = 1
    /// 0 means REINFORCE (one update per batch of rollouts).
    public var ppoEpochs = 0
    public var clipRange: Float = 0.2
    public var klCoefficient: Float = 0
    public var learningRate: Float = 1e-5
    public var weightDecay: Float = 0
    public var maxGradientNorm: Float = 1
    public var advantageClip: Float = 5
    public var epochs = 5
    public var seed: UInt64 = 1

    public init() {}
}
