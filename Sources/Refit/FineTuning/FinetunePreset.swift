/// Named fine-tuning recipes, each defined once as a value of the typed settings; settings
/// given beside one override it. The measurements behind each are in docs/finetuning-experiments.md.
public enum FinetunePreset: String, CaseIterable, Sendable, Codable {
    /// The method as first specified, `FinetuneSettings()`: REINFORCE, collab-loglik on user-kNN targets, lr 1e-5, five
    /// epochs. Kept as the reference the others beat: the user-kNN target holds almost nothing a DiffRec model lacks.
    case design
    /// collab-lift on EASE targets, the pathwise estimator anchored (β 0.03) on the items outside each training row,
    /// lr 3e-5, four quarter-epochs. The best design before collab-score. DiffRec runs only.
    case easeLift = "ease-lift"
    /// collab-score on EASE targets, the pathwise estimator through the last reverse step, anchored (β 1) and focused on
    /// each user's top 50 unseen items, lr 1e-4, eight half-epochs. Its anchored optimum is the validated blend
    /// z(model) + z(EASE target). The default for DiffRec runs. DiffRec runs only.
    case easeScore = "ease-score"
    /// ease-score with user-kNN targets and β 2 for 16 half-epochs: what `refit baselines` picks on the built-in data,
    /// where EASE's blend adds nothing on validation and user-kNN's adds most at α = 1/β = 0.5. `refit demo` runs it.
    case demo

    /// The recipe a DiffRec run starts from when none is named.
    public static let diffRecDefault = FinetunePreset.easeScore

    public var settings: FinetuneSettings {
        var s = FinetuneSettings()
        switch self {
        case .design:
            break
        case .easeLift:
            s.reward = .collabLift()
            s.targets.teacher = .ease()
            s.estimator = .pathwise(PathwiseSettings(anchor: Anchor(weight: 0.03, scope: .unseen)))
            s.optimizer.learningRate = 3e-5
            s.epochs = 4
            s.userFraction = 0.25
        case .easeScore:
            s.reward = .collabScore
            s.targets.teacher = .ease()
            s.estimator = .pathwise(PathwiseSettings(steps: 1, anchor: Anchor(weight: 1, scope: .focus(items: 50))))
            s.optimizer.learningRate = 1e-4
            s.epochs = 8
            s.userFraction = 0.5
        case .demo:
            s = FinetunePreset.easeScore.settings
            s.targets.teacher = .userKNN()
            s.estimator = .pathwise(PathwiseSettings(steps: 1, anchor: Anchor(weight: 2, scope: .focus(items: 50))))
            s.epochs = 16
        }
        return s
    }
}

extension FinetuneSettings {
    /// The recipe of DreamRec runs: seq-loglik by the pathwise estimator through every sampler step, lr 1e-4, 64 users
    /// per update, four epochs, chosen on ML-1M validation (docs/sequential-experiments.md).
    public static var sequential: FinetuneSettings {
        var s = FinetuneSettings()
        s.reward = .seqLoglik()
        s.estimator = .pathwise(PathwiseSettings())
        s.optimizer.learningRate = 1e-4
        s.usersPerBatch = 64
        s.epochs = 4
        return s
    }
}
