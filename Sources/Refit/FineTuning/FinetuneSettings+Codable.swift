/// config.json's `finetune` object: the typed parts as they are, each top-level part taking its default when it is
/// missing. Run folders written before the typed recipe hold one flat object of 29 settings; those are read through
/// `FlatSettings`, so older runs stay readable (reports, resuming).
extension FinetuneSettings: Codable {
    enum CodingKeys: String, CodingKey {
        case reward, targets, estimator, optimizer, trainedLayers, epochs, usersPerBatch, userFraction, seed
    }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        if (try? container.decode(EstimatorKind.self, forKey: .estimator)) != nil || !container.contains(.optimizer) {
            self = try FlatSettings(from: decoder).settings
            return
        }
        let defaults = FinetuneSettings()
        func value<T: Decodable>(_ key: CodingKeys, _ fallback: T) throws -> T {
            try container.decodeIfPresent(T.self, forKey: key) ?? fallback
        }
        reward = try value(.reward, defaults.reward)
        targets = try value(.targets, defaults.targets)
        estimator = try value(.estimator, defaults.estimator)
        optimizer = try value(.optimizer, defaults.optimizer)
        trainedLayers = try value(.trainedLayers, defaults.trainedLayers)
        epochs = try value(.epochs, defaults.epochs)
        usersPerBatch = try value(.usersPerBatch, defaults.usersPerBatch)
        userFraction = try value(.userFraction, defaults.userFraction)
        seed = try value(.seed, defaults.seed)
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(reward, forKey: .reward)
        try container.encode(targets, forKey: .targets)
        try container.encode(estimator, forKey: .estimator)
        try container.encode(optimizer, forKey: .optimizer)
        try container.encode(trainedLayers, forKey: .trainedLayers)
        try container.encode(epochs, forKey: .epochs)
        try container.encode(usersPerBatch, forKey: .usersPerBatch)
        try container.encode(userFraction, forKey: .userFraction)
        try container.encode(seed, forKey: .seed)
    }
}

/// The flat settings object of run folders written before the typed recipe, frozen as it was: every key optional
/// (older still, some were missing), settings that did not apply to the chosen estimator ignored as they were then.
struct FlatSettings: Decodable {
    var reward: RewardKind?, neighbors: TeacherKind?, neighborCount: Int?, easeLambda: Double?, targetSize: Int?
    var temperature: Float?, ndcgCutoff: Int?, mixWeight: Float?
    var rollouts: Int?, usersPerBatch: Int?, explorationScale: Float?, exploration: ExplorationKind?, stepFraction: Double?
    var estimator: EstimatorKind?, pathwiseSteps: Int?, anchor: Float?, anchorUnseenOnly: Bool?, focus: Int?
    var trainedLayers: TrainedLayers?, ppoEpochs: Int?, clipRange: Float?, klCoefficient: Float?
    var learningRate: Float?, weightDecay: Float?, maxGradientNorm: Float?, advantageClip: Float?
    var epochs: Int?, userFraction: Double?, seed: UInt64?

    var settings: FinetuneSettings {
        var s = FinetuneSettings()
        let t = temperature ?? 1
        switch reward ?? .collabLoglik {
        case .collabLoglik: s.reward = .collabLoglik(temperature: t)
        case .collabNDCG: s.reward = .collabNDCG(cutoff: ndcgCutoff ?? 20)
        case .collabLift: s.reward = .collabLift(temperature: t)
        case .collabScore: s.reward = .collabScore
        case .selfLoglik: s.reward = .selfLoglik(temperature: t)
        case .mixed: s.reward = .mixed(selfWeight: mixWeight ?? 0.5, temperature: t)
        case .seqLoglik: s.reward = .seqLoglik(temperature: t)
        case .seqCollab: s.reward = .seqCollab(ownWeight: mixWeight ?? 0.5, temperature: t, followers: targetSize ?? 100)
        }
        switch neighbors ?? .userKNN {
        case .userKNN: s.targets.teacher = .userKNN(neighbors: neighborCount ?? 50)
        case .itemGraph: s.targets.teacher = .itemGraph
        case .ease: s.targets.teacher = .ease(lambda: easeLambda ?? 1000)
        }
        s.targets.size = targetSize ?? s.targets.size
        switch estimator ?? .reinforce {
        case .reinforce:
            var r = ReinforceSettings()
            r.rollouts = rollouts ?? r.rollouts
            r.exploration = Exploration(scale: explorationScale ?? 1, dimensions: exploration ?? .all)
            r.stepFraction = stepFraction ?? r.stepFraction
            if let epochs = ppoEpochs, epochs > 0 { r.ppo = PPOSettings(epochs: epochs, clipRange: clipRange ?? 0.2) }
            if let kl = klCoefficient, kl > 0 { r.klCoefficient = kl }
            r.advantageClip = advantageClip ?? r.advantageClip
            s.estimator = .reinforce(r)
        case .pathwise:
            var p = PathwiseSettings()
            if let steps = pathwiseSteps, steps > 0 { p.steps = steps }
            if let weight = anchor, weight > 0 {
                let scope: AnchorScope = (focus ?? 0) > 0 ? .focus(items: focus!) : anchorUnseenOnly == true ? .unseen : .all
                p.anchor = Anchor(weight: weight, scope: scope)
            }
            s.estimator = .pathwise(p)
        }
        s.optimizer.learningRate = learningRate ?? s.optimizer.learningRate
        s.optimizer.weightDecay = weightDecay ?? s.optimizer.weightDecay
        s.optimizer.maxGradientNorm = maxGradientNorm ?? s.optimizer.maxGradientNorm
        s.trainedLayers = trainedLayers ?? s.trainedLayers
        s.epochs = epochs ?? s.epochs
        s.usersPerBatch = usersPerBatch ?? s.usersPerBatch
        s.userFraction = userFraction ?? s.userFraction
        s.seed = seed ?? s.seed
        return s
    }
}

/// `{"reinforce": {...}}` or `{"pathwise": {...}}`: the estimator's name holding its settings.
extension EstimatorSpec {
    enum CodingKeys: String, CodingKey { case reinforce, pathwise }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        if let settings = try container.decodeIfPresent(ReinforceSettings.self, forKey: .reinforce) {
            self = .reinforce(settings)
        } else {
            self = .pathwise(try container.decode(PathwiseSettings.self, forKey: .pathwise))
        }
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .reinforce(let settings): try container.encode(settings, forKey: .reinforce)
        case .pathwise(let settings): try container.encode(settings, forKey: .pathwise)
        }
    }
}
