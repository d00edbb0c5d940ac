import ArgumentParser
import Foundation
import Refit
import RefitCompute

extension RewardKind: ExpressibleByArgument {}
extension TeacherKind: ExpressibleByArgument {}
extension ExplorationKind: ExpressibleByArgument {}
extension EstimatorKind: ExpressibleByArgument {}
extension FinetunePreset: ExpressibleByArgument {}
extension TrainedLayers: ExpressibleByArgument {}

/// The ReFiT options shared by `finetune` and `ablate`, one group per part of the typed recipe: each flag is declared
/// once and applied once, by its group, onto the recipe of `--preset` (or the command's default). A flag whose part
/// is not in the recipe (the other estimator's, another reward's) is refused in one line, not ignored.
struct FinetuneOptions: ParsableArguments {
    @OptionGroup(title: "Fine-tuning") var recipe: RecipeOptions
    @OptionGroup(title: "Reward and collaborative targets") var signal: SignalOptions
    @OptionGroup(title: "REINFORCE estimator") var reinforce: ReinforceOptions
    @OptionGroup(title: "Pathwise estimator") var pathwise: PathwiseOptions

    /// The flag of each setting a range error names.
    static func flag(_ setting: SettingError.Setting) -> String {
        switch setting {
        case .temperature: "--temperature"
        case .mixWeight: "--mix-weight"
        case .targetSize: "--target-size"
        case .ndcgCutoff: "--ndcg-k"
        case .neighborCount: "--neighbors-k"
        case .easeLambda: "--ease-lambda"
        case .estimator: "--estimator"
        case .rollouts: "--rollouts"
        case .explorationScale: "--exploration-scale"
        case .stepFraction: "--step-fraction"
        case .ppoEpochs: "--ppo-epochs"
        case .clipRange: "--clip-range"
        case .klCoefficient: "--kl-coef"
        case .advantageClip: "--advantage-clip"
        case .pathwiseSteps: "--pathwise-steps"
        case .anchor: "--anchor"
        case .focus: "--focus"
        case .learningRate: "--lr"
        case .maxGradientNorm: "--max-grad-norm"
        case .weightDecay: "--weight-decay"
        case .trainedLayers: "--train-layers"
        case .epochs: "--epochs"
        case .usersPerBatch: "--users-per-batch"
        case .userFraction: "--user-fraction"
        }
    }

    /// The settings of a DiffRec run, starting from `--preset` or else `defaultPreset`, or of a DreamRec run when
    /// `sequential` (which has its own defaults and no preset). `reward` and `neighbors`, when given, stand for
    /// `--reward` and `--neighbors` (an ablation's grid).
    func settings(sequential: Bool = false, defaultPreset: FinetunePreset = .diffRecDefault, reward: RewardKind? = nil,
                  neighbors: TeacherKind? = nil) throws -> FinetuneSettings {
        let preset = recipe.preset
        if sequential, let preset { throw ValidationError("--preset \(preset.rawValue) is for DiffRec runs; this is a sequential run") }
        let base = sequential ? FinetuneSettings.sequential : (preset ?? defaultPreset).settings
        do {
            var s = base
            try signal.apply(to: &s, reward: reward ?? signal.reward, neighbors: neighbors ?? signal.neighbors)
            if let estimator = recipe.estimator, estimator != s.estimator.kind { s.estimator = estimator.defaultSpec }
            switch s.estimator {
            case .reinforce(var r):
                try refuse(pathwise.given, belongTo: "the pathwise estimator", run: "this recipe uses REINFORCE (--estimator pathwise; REINFORCE has --kl-coef)")
                try reinforce.apply(to: &r)
                s.estimator = .reinforce(r)
            case .pathwise(var p):
                guard s.reward.isDifferentiable else {
                    throw ValidationError("--estimator pathwise needs a differentiable reward (DiffRec runs: collab-loglik, collab-lift, collab-score, self-loglik or mixed; DreamRec runs: seq-loglik), not \(s.reward.kind.rawValue)")
                }
                try refuse(reinforce.given, belongTo: "the REINFORCE estimator", run: "--estimator pathwise follows one chain per user, its noise fixed, and takes no REINFORCE settings")
                try pathwise.apply(to: &p)
                s.estimator = .pathwise(p)
            }
            recipe.apply(to: &s)
            do { try s.validate() } catch { throw ValidationError("\(Self.flag(error.setting)) \(error.requirement)") }
            return s
        } catch let error as ValidationError {
            // A flag that clashes with a recipe the user did not name needs the way out in the same line.
            let implicit = !sequential && preset == nil && defaultPreset != .design
            throw ValidationError(error.message + (implicit ? " (the default recipe is --preset \(defaultPreset.rawValue); --preset design starts from the REINFORCE settings of the method as specified)" : ""))
        }
    }

    /// Every setting of a recipe, as the flags that set it (what `refit presets` prints).
    static func flags(of s: FinetuneSettings) -> [(String, String)] {
        RecipeOptions.flags(of: s) + SignalOptions.flags(of: s)
            + { switch s.estimator { case .reinforce(let r): ReinforceOptions.flags(of: r); case .pathwise(let p): PathwiseOptions.flags(of: p) } }()
    }
}

/// What every recipe has: its name, the estimator, how long and on whom it trains, and the optimiser.
struct RecipeOptions: ParsableArguments {
    @Option(help: "DiffRec runs: the recipe the other flags override (default: ease-score for finetune, design for ablate). ease-score is the best design measured on ML-1M (pathwise, collab-score reward from an EASE teacher, anchored); design is the method as first specified (REINFORCE, collab-loglik, user-knn); ease-lift is the design before ease-score; demo is what refit demo runs. `refit presets` lists every value each one sets. A flag's default below is the same in every recipe unless it names them.")
    var preset: FinetunePreset?
    @Option(help: "Gradient estimator: reinforce (G stochastic rollouts per user) or pathwise (backpropagate a differentiable reward through the chain, its noise held fixed) (ease-score and DreamRec runs: pathwise; design: reinforce).")
    var estimator: EstimatorKind?
    @Option(parsing: .unconditional, help: "Fine-tuning epochs (ease-score: 8; design: 5; DreamRec runs 4).")
    var epochs: Int?
    @Option(parsing: .unconditional, help: "Share of training users per epoch, in (0, 1] (ease-score: 0.5; design: 1).")
    var userFraction: Double?
    @Option(parsing: .unconditional, help: "Users per policy update (default: 128; DreamRec runs 64).")
    var usersPerBatch: Int?
    @Option(help: "DiffRec runs: layers fine-tuning updates, all, or only the output layer, keeping the pre-trained features (default: all).")
    var trainLayers: TrainedLayers?
    @Option(name: .customLong("lr"), parsing: .unconditional, help: "Learning rate of AdamW (ease-score: 1e-4; design: 1e-5; DreamRec runs 1e-4).")
    var learningRate: Float?
    @Option(parsing: .unconditional, help: "Gradient-norm clip (default: 1).")
    var maxGradNorm: Float?
    @Option(parsing: .unconditional, help: "Decoupled weight decay of AdamW (default: 0).")
    var weightDecay: Float?
    @Option(parsing: .unconditional, help: "Seed of the rollouts and shuffling (default: 1).")
    var seed: UInt64?

    func apply(to s: inout FinetuneSettings) {
        if let learningRate { s.optimizer.learningRate = learningRate }
        if let maxGradNorm { s.optimizer.maxGradientNorm = maxGradNorm }
        if let weightDecay { s.optimizer.weightDecay = weightDecay }
        if let trainLayers { s.trainedLayers = trainLayers }
        if let usersPerBatch { s.usersPerBatch = usersPerBatch }
        if let epochs { s.epochs = epochs }
        if let userFraction { s.userFraction = userFraction }
        if let seed { s.seed = seed }
    }

    static func flags(of s: FinetuneSettings) -> [(String, String)] {
        [("--estimator", s.estimator.kind.rawValue), ("--epochs", "\(s.epochs)"), ("--user-fraction", "\(s.userFraction)"),
         ("--users-per-batch", "\(s.usersPerBatch)"), ("--train-layers", s.trainedLayers.rawValue), ("--lr", "\(s.optimizer.learningRate)"),
         ("--max-grad-norm", "\(s.optimizer.maxGradientNorm)"), ("--weight-decay", "\(s.optimizer.weightDecay)")]
    }
}

/// The reward and the collaborative targets (the teacher) it is built from.
struct SignalOptions: ParsableArguments {
    @Option(help: "Reward. DiffRec runs: collab-loglik, collab-lift (collab-loglik without the popularity direction), collab-score (the target standardised per user: anchored at β, its optimum is the blend z(model) + z(target)/β), collab-ndcg, self-loglik or mixed (ease-score: collab-score; design: collab-loglik). DreamRec runs: seq-loglik or seq-collab (default: seq-loglik).")
    var reward: RewardKind?
    @Option(parsing: .unconditional, help: "Softmax temperature τ of the log-likelihood rewards (default: 1).")
    var temperature: Float?
    @Option(parsing: .unconditional, help: "K of the collab-ndcg reward (default: 20).")
    var ndcgK: Int?
    @Option(parsing: .unconditional, help: "Weight α of the self reward in mixed, and of the own next item in seq-collab (default: 0.5).")
    var mixWeight: Float?
    @Option(help: "Collaborative targets from: user-knn, item-graph, or ease (an item–item regression) (ease-score: ease; design: user-knn).")
    var neighbors: TeacherKind?
    @Option(parsing: .unconditional, help: "Neighbours per user for user-knn (default: 50).")
    var neighborsK: Int?
    @Option(parsing: .unconditional, help: "L2 weight λ of --neighbors ease (default: 1000).")
    var easeLambda: Double?
    @Option(parsing: .unconditional, help: "Items kept in each user's collaborative target; for seq-collab, the followers of the last item kept (default: 100).")
    var targetSize: Int?

    /// `reward` and `neighbors` stand for `--reward` and `--neighbors` (an ablation's grid passes its cell's).
    func apply(to s: inout FinetuneSettings, reward: RewardKind?, neighbors: TeacherKind?) throws {
        if let reward, reward != s.reward.kind { s.reward = reward.defaultSpec }
        switch s.reward {
        case .collabLoglik(let t): s.reward = .collabLoglik(temperature: temperature ?? t)
        case .collabLift(let t): s.reward = .collabLift(temperature: temperature ?? t)
        case .selfLoglik(let t): s.reward = .selfLoglik(temperature: temperature ?? t)
        case .seqLoglik(let t): s.reward = .seqLoglik(temperature: temperature ?? t)
        case .mixed(let weight, let t): s.reward = .mixed(selfWeight: mixWeight ?? weight, temperature: temperature ?? t)
        case .seqCollab(let weight, let t, let followers):
            s.reward = .seqCollab(ownWeight: mixWeight ?? weight, temperature: temperature ?? t, followers: targetSize ?? followers)
        case .collabNDCG(let cutoff): s.reward = .collabNDCG(cutoff: ndcgK ?? cutoff)
        case .collabScore: break
        }
        let kind = s.reward.kind
        if ndcgK != nil && kind != .collabNDCG { throw ValidationError("--ndcg-k is the cut-off of --reward collab-ndcg") }
        if mixWeight != nil && kind != .mixed && kind != .seqCollab { throw ValidationError("--mix-weight applies to --reward mixed and seq-collab") }
        if temperature != nil && [.collabNDCG, .collabScore].contains(kind) {
            throw ValidationError("--temperature applies to the log-likelihood rewards, not \(kind.rawValue)")
        }
        if let neighbors, neighbors != s.targets.teacher.kind { s.targets.teacher = neighbors.defaultTeacher }
        switch s.targets.teacher {
        case .userKNN(let k): s.targets.teacher = .userKNN(neighbors: neighborsK ?? k)
        case .ease(let lambda): s.targets.teacher = .ease(lambda: easeLambda ?? lambda)
        case .itemGraph: break
        }
        if neighborsK != nil && s.targets.teacher.kind != .userKNN { throw ValidationError("--neighbors-k applies to --neighbors user-knn") }
        if easeLambda != nil && s.targets.teacher.kind != .ease { throw ValidationError("--ease-lambda applies to --neighbors ease") }
        if let targetSize { s.targets.size = targetSize }
    }

    static func flags(of s: FinetuneSettings) -> [(String, String)] {
        var flags = [("--reward", s.reward.kind.rawValue)]
        switch s.reward {
        case .collabLoglik(let t), .collabLift(let t), .selfLoglik(let t), .seqLoglik(let t): flags.append(("--temperature", "\(t)"))
        case .mixed(let weight, let t): flags += [("--mix-weight", "\(weight)"), ("--temperature", "\(t)")]
        case .seqCollab(let weight, let t, _): flags += [("--mix-weight", "\(weight)"), ("--temperature", "\(t)")]
        case .collabNDCG(let cutoff): flags.append(("--ndcg-k", "\(cutoff)"))
        case .collabScore: break
        }
        if case .seqCollab(_, _, let followers) = s.reward { return flags + [("--target-size", "\(followers)")] }
        if s.reward.kind.isSequential { return flags }
        flags.append(("--neighbors", s.targets.teacher.kind.rawValue))
        switch s.targets.teacher {
        case .userKNN(let k): flags.append(("--neighbors-k", "\(k)"))
        case .ease(let lambda): flags.append(("--ease-lambda", "\(lambda)"))
        case .itemGraph: break
        }
        return flags + [("--target-size", "\(s.targets.size)")]
    }
}

/// REINFORCE's rollouts, exploration, PPO and penalties.
struct ReinforceOptions: ParsableArguments {
    @Option(parsing: .unconditional, help: "Rollouts per user, G (default: 4).")
    var rollouts: Int?
    @Option(parsing: .unconditional, help: "Exploration scale η: the policy's std is η·σ̃_t (default: 1).")
    var explorationScale: Float?
    @Option(help: "DiffRec runs: explored dimensions, all items or only each user's collaborative-target items (default: all).")
    var explore: ExplorationKind?
    @Option(parsing: .unconditional, help: "Fraction of the noisy steps trained on per update (default: 0.25).")
    var stepFraction: Double?
    @Option(parsing: .unconditional, help: "PPO epochs over each batch of rollouts; 0 is plain REINFORCE (default: 0).")
    var ppoEpochs: Int?
    @Option(parsing: .unconditional, help: "With --ppo-epochs: PPO clip range ε (default: 0.2).")
    var clipRange: Float?
    @Option(parsing: .unconditional, help: "KL penalty β towards the frozen pre-trained model; 0 is none (default: 0).")
    var klCoef: Float?
    @Option(parsing: .unconditional, help: "Advantage clip (default: 5).")
    var advantageClip: Float?

    var given: [String] {
        givenFlags([(rollouts != nil, "--rollouts"), (explorationScale != nil, "--exploration-scale"), (explore != nil, "--explore"),
         (stepFraction != nil, "--step-fraction"), ((ppoEpochs ?? 0) != 0, "--ppo-epochs"), (clipRange != nil, "--clip-range"),
         ((klCoef ?? 0) != 0, "--kl-coef"), (advantageClip != nil, "--advantage-clip")])
    }

    func apply(to r: inout ReinforceSettings) throws {
        if let rollouts { r.rollouts = rollouts }
        if let explorationScale { r.exploration.scale = explorationScale }
        if let explore { r.exploration.dimensions = explore }
        if let stepFraction { r.stepFraction = stepFraction }
        if let ppoEpochs { r.ppo = ppoEpochs == 0 ? nil : PPOSettings(epochs: ppoEpochs, clipRange: r.ppo?.clipRange ?? 0.2) }
        if let clipRange {
            guard r.ppo != nil else { throw ValidationError("--clip-range applies with --ppo-epochs") }
            r.ppo?.clipRange = clipRange
        }
        if let klCoef { r.klCoefficient = klCoef == 0 ? nil : klCoef }
        if let advantageClip { r.advantageClip = advantageClip }
    }

    static func flags(of r: ReinforceSettings) -> [(String, String)] {
        [("--rollouts", "\(r.rollouts)"), ("--exploration-scale", "\(r.exploration.scale)"), ("--explore", r.exploration.dimensions.rawValue),
         ("--step-fraction", "\(r.stepFraction)"), ("--ppo-epochs", "\(r.ppo?.epochs ?? 0)")] + (r.ppo.map { [("--clip-range", "\($0.clipRange)")] } ?? [])
            + [("--kl-coef", "\(r.klCoefficient ?? 0)"), ("--advantage-clip", "\(r.advantageClip)")]
    }
}

/// The pathwise estimator's truncation and its anchor to the pre-trained model.
struct PathwiseOptions: ParsableArguments {
    @Option(parsing: .unconditional, help: "Reverse steps the gradient flows through, counted from the last; 0 is all (ease-score: 1; design and DreamRec runs: 0).")
    var pathwiseSteps: Int?
    @Option(parsing: .unconditional, help: "β of the anchor β·½‖x₀ − x₀_ref‖² to the pre-trained model's output; 0 is none (ease-score: 1; design and DreamRec runs: 0).")
    var anchor: Float?
    @Flag(inversion: .prefixedNo, help: "Anchor only the items outside each user's training row, the ones a ranking sees (default: off).")
    var anchorUnseenOnly: Bool?
    @Option(parsing: .unconditional, help: "With --anchor: apply the reward and the anchor only to each user's unseen items in the top K of the pre-trained scores or of the anchored optimum x₀_ref + ∇r/β; 0 is every item (ease-score: 50; design: 0).")
    var focus: Int?

    var given: [String] {
        givenFlags([((anchor ?? 0) != 0, "--anchor"), (anchorUnseenOnly == true, "--anchor-unseen-only"), ((focus ?? 0) != 0, "--focus"),
         ((pathwiseSteps ?? 0) != 0, "--pathwise-steps")])
    }

    func apply(to p: inout PathwiseSettings) throws {
        if let pathwiseSteps { p.steps = pathwiseSteps == 0 ? nil : pathwiseSteps }
        // The anchor's scope as the two flags that set it: a focus wins over unseen-only.
        var weight = p.anchor?.weight ?? 0, focusItems = 0, unseenOnly = false
        switch p.anchor?.scope {
        case .focus(let items)?: focusItems = items
        case .unseen?: unseenOnly = true
        case .all?, nil: break
        }
        weight = anchor ?? weight
        focusItems = focus ?? focusItems
        unseenOnly = anchorUnseenOnly ?? unseenOnly
        if weight == 0 {
            if focusItems != 0 { throw ValidationError("--focus needs --anchor: its items include the top of the anchored optimum x₀_ref + ∇r/β") }
            if unseenOnly { throw ValidationError("--anchor-unseen-only needs --anchor") }
            p.anchor = nil
        } else {
            p.anchor = Anchor(weight: weight, scope: focusItems != 0 ? .focus(items: focusItems) : unseenOnly ? .unseen : .all)
        }
    }

    static func flags(of p: PathwiseSettings) -> [(String, String)] {
        // Both scope flags always: a recipe's focus or unseen-only would otherwise survive under another's flags.
        var focus = 0, unseenOnly = false
        switch p.anchor?.scope {
        case .focus(let items)?: focus = items
        case .unseen?: unseenOnly = true
        case .all?, nil: break
        }
        return [("--pathwise-steps", "\(p.steps ?? 0)"), ("--anchor", "\(p.anchor?.weight ?? 0)"),
                ("--anchor-unseen-only", unseenOnly ? "on" : "off"), ("--focus", "\(focus)")]
    }
}

struct FinetuneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "finetune",
        abstract: "Fine-tune a pre-trained DiffRec or DreamRec run with ReFiT (policy gradients on the denoising chain).",
        discussion: """
        Examples: a DiffRec run with the default recipe (ease-score, the best measured on ML-1M); the REINFORCE method as first specified; a DreamRec run (pathwise through every sampler step, seq-loglik) and the same by REINFORCE:
          refit finetune --from runs/ml1m --out runs/ml1m-refit
          refit finetune --from runs/ml1m --preset design --reward collab-ndcg
          refit finetune --from runs/dream
          refit finetune --from runs/dream --estimator reinforce --lr 3e-5 --epochs 10
        ease-score's EASE teacher needs at most 20,000 items; above that, pass --neighbors user-knn or --preset design.
        Each epoch prints the reward (mean ± std), the loss, the estimator's own measures (REINFORCE: approximate KL, and the clip fraction under PPO; pathwise: the anchor distance), the time and the validation scores; the best validation NDCG@20 epoch is kept. The final table compares the pre-trained and fine-tuned models on validation and test under the identical protocol, beside popularity.
        """)

    @OptionGroup(title: "Input") var input: RunInputOptions
    @OptionGroup var options: FinetuneOptions
    @OptionGroup(title: "Device") var device: DeviceOptions
    @OptionGroup(title: "Output") var output: RunOutputOptions

    func run() throws {
        let console = Console(quiet: output.quiet || output.json)
        let from = try input.path
        let backend = try device.makeBackend()
        let sequential = RunFolder(from).isSequential
        var settings = try options.settings(sequential: sequential)
        let out = try output.folder(resuming: output.resume, name: "\(URL(fileURLWithPath: from).lastPathComponent)-refit")
        if output.resume {
            // A resumed run keeps its settings, except how many epochs it may run.
            settings = RunFolder(out).isSequential
                ? try RunFolder(out).readJSON(SequentialRunConfiguration.self, from: "config.json").finetune ?? settings
                : try RunFolder(out).readJSON(RunConfiguration.self, from: "config.json").finetune ?? settings
            if let epochs = options.recipe.epochs { settings.epochs = epochs }
        }
        console.note("device: \(backend.deviceDescription)")
        let outcome = try FinetuneSession.run(pretrained: RunFolder(from), out: RunFolder(out), settings: settings, backend: backend,
                                              resume: output.resume, force: output.force, observer: console)
        let report = try ReportWriter.write(run: RunFolder(out))
        console.note("report: \(report.path)")
        console.result(output.json ? outcome.json(hitRate: sequential) : outcome.table(run: out, hitRate: sequential))
    }
}

extension FinetuneOutcome {
    /// The before/after table; `hitRate` labels Recall@20 as HR@20 (one target per user: the same number).
    func table(run: String, hitRate: Bool = false) -> String {
        func row(_ label: String, _ valid: RankingMetrics?, _ test: RankingMetrics) -> [String] {
            [label, valid.map { String(format: "%.4f", $0.recall(at: 20)) } ?? "—", valid.map { String(format: "%.4f", $0.ndcg(at: 20)) } ?? "—",
             String(format: "%.4f", test.recall(at: 20)), String(format: "%.4f", test.ndcg(at: 20))]
        }
        func change(_ a: Double, _ b: Double) -> String { String(format: "%+.1f%%", (b / a - 1) * 100) }
        var rows = [row("pre-trained", pretrainedValid, pretrainedTest), row("fine-tuned (ReFiT)", finetunedValid, finetunedTest),
                    ["relative change", change(pretrainedValid.recall(at: 20), finetunedValid.recall(at: 20)),
                     change(pretrainedValid.ndcg(at: 20), finetunedValid.ndcg(at: 20)),
                     change(pretrainedTest.recall(at: 20), finetunedTest.recall(at: 20)), change(pretrainedTest.ndcg(at: 20), finetunedTest.ndcg(at: 20))]]
        if let popularityTest { rows.append(row("popularity", nil, popularityTest)) }
        let r = hitRate ? "HR@20" : "R@20"
        let probe = rewardBefore.isNaN ? "" : String(format: "probe reward %.4f → %.4f; ", rewardBefore, rewardAfter)
        return String(format: "best epoch %d of %d; %.1f s per epoch; %@run folder %@\n", bestEpoch, epochs, secondsPerEpoch, probe, run)
            + formatTable(["model", "valid \(r)", "valid N@20", "test \(r)", "test N@20"], rows)
    }

    /// The outcome as one JSON object; `hitRate` names the metrics hr@K/ndcg@K/mrr@K as next-item runs log them.
    func json(hitRate: Bool = false) -> String {
        func metrics(_ m: RankingMetrics) -> [String: Double] {
            Dictionary(uniqueKeysWithValues: (hitRate ? m.nextItemValues : m.values).map { ($0.key, $0.value) })
        }
        var object: [String: Any] = ["best_epoch": bestEpoch, "epochs": epochs, "seconds_per_epoch": secondsPerEpoch,
                                     "pretrained": ["valid": metrics(pretrainedValid), "test": metrics(pretrainedTest)],
                                     "finetuned": ["valid": metrics(finetunedValid), "test": metrics(finetunedTest)]]
        // JSON has no NaN: DreamRec runs measure no probe reward.
        if rewardBefore.isFinite && rewardAfter.isFinite { (object["reward_before"], object["reward_after"]) = (rewardBefore, rewardAfter) }
        if let popularityTest { object["popularity"] = ["test": metrics(popularityTest)] }
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }
}
