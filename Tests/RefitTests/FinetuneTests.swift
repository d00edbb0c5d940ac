import Foundation
import Testing
@testable import Refit
import RefitCompute

/// ReFiT: rewards on hand-made examples, no leakage of held-out data, the policy-gradient's gradient against
/// finite differences, replayable rollouts, and fine-tuning on the built-in dataset.
@Suite struct FinetuneTests {
    static func dataset(train: [[Int32]], valid: [[Int32]], test: [[Int32]], items: Int) -> InteractionDataset {
        InteractionDataset(train: CSRMatrix(columnCount: items, rows: train), valid: CSRMatrix(columnCount: items, rows: valid),
                           test: CSRMatrix(columnCount: items, rows: test), userIDs: train.indices.map { "u\($0)" },
                           itemIDs: (0..<items).map { "i\($0)" }, source: "hand-made", format: .auto)
    }

    /// The rewards of `kind` (τ = 0.5, CPU reference) for x₀'s rows, row r belonging to user r.
    static func rewards(_ kind: RewardKind, data: InteractionDataset, targets: CollaborativeTargets, x0: [Float],
                        spread: [Float]? = nil) throws -> [Double] {
        let backend = CPUBackend()
        let reward = kind.spec(temperature: 0.5).make(backend: backend, train: data.train, seen: try DeviceCSR(data.train, on: backend),
                                                      targets: targets, referenceSpread: spread)
        let users = x0.count / data.itemCount
        return try reward.rewards(x0: try backend.tensor(x0, shape: [users, data.itemCount]),
                                  rows: RolloutRows(users: Array(0..<users), userTensor: try backend.tensor((0..<users).map { Int32($0) }, shape: [users])))
    }

    @Test func userKNNTargetOnHandExample() throws {
        // cos(u0, u1) = 2/√6, cos(u0, u2) = 0: with k = 1, u0's target is u1's one item u0 has not seen.
        let data = Self.dataset(train: [[0, 1], [0, 1, 2], [3]], valid: [[], [], []], test: [[], [], []], items: 4)
        let targets = try CollaborativeTargets.userKNN(train: data.train, neighbors: 1, targetSize: 10, backend: CPUBackend())
        #expect(targets.items[0] == [2])
        #expect(targets.weights[0] == [1])
        #expect(targets.items[2].isEmpty)  // no neighbour shares an item with u2
        // k = 2 for u1: neighbours u0 (cos 2/√6) only (u2 has similarity 0); u0 holds nothing unseen by u1.
        let wide = try CollaborativeTargets.userKNN(train: data.train, neighbors: 2, targetSize: 10, backend: CPUBackend())
        #expect(wide.items[1].isEmpty)
    }

    @Test func itemGraphTargetOnHandExample() {
        // Co-occurrence: 0–1 twice (u0, u1), 0–2 once, 1–2 once. Rows normalised: P[0] = {1: 2/3, 2: 1/3}.
        let data = Self.dataset(train: [[0, 1], [0, 1, 2], [0]], valid: [[], [], []], test: [[], [], []], items: 3)
        let targets = CollaborativeTargets.itemGraph(train: data.train, targetSize: 10)
        #expect(targets.items[2] == [1, 2])
        #expect(abs(targets.weights[2][0] - 2.0 / 3) < 1e-6 && abs(targets.weights[2][1] - 1.0 / 3) < 1e-6)
        // u0 = {0, 1}: c = P[0] + P[1], unseen = {2}: P[0][2] + P[1][2] = 1/3 + 1/3 → normalised to 1.
        #expect(targets.items[0] == [2] && targets.weights[0] == [1])
    }

    @Test func collaborativeLogLikelihoodOnHandExample() throws {
        let data = Self.dataset(train: [[0], [1, 2]], valid: [[], []], test: [[], []], items: 4)
        let targets = CollaborativeTargets(items: [[1, 2], [0]], weights: [[0.75, 0.25], [1]], itemCount: 4)
        let rewards = try Self.rewards(.collabLoglik, data: data, targets: targets, x0: [0.9, 0.2, -0.1, 0.4, 0.3, 0.8, 0.7, -0.5])
        // By hand: the softmax of x/τ over the unseen items only.
        func expected(_ row: [Double], unseen: [Int], target: [(Int, Double)]) -> Double {
            let logZ = log(unseen.map { exp(row[$0] / 0.5) }.reduce(0, +))
            return target.map { $0.1 * (row[$0.0] / 0.5 - logZ) }.reduce(0, +)
        }
        let first = expected([0.9, 0.2, -0.1, 0.4], unseen: [1, 2, 3], target: [(1, 0.75), (2, 0.25)])
        let second = expected([0.3, 0.8, 0.7, -0.5], unseen: [0, 3], target: [(0, 1)])
        #expect(abs(rewards[0] - first) < 1e-5, "\(rewards[0]) vs \(first)")
        #expect(abs(rewards[1] - second) < 1e-5, "\(rewards[1]) vs \(second)")
    }

    /// collab-lift = collab-loglik − the log-likelihood of the population's mean target over the user's unseen items.
    @Test func collaborativeLiftOnHandExample() throws {
        let data = Self.dataset(train: [[0], [1, 2]], valid: [[], []], test: [[], []], items: 4)
        let targets = CollaborativeTargets(items: [[1, 2], [0]], weights: [[0.75, 0.25], [1]], itemCount: 4)
        let x0: [Float] = [0.9, 0.2, -0.1, 0.4, 0.3, 0.8, 0.7, -0.5]
        let rewards = try Self.rewards(.collabLift, data: data, targets: targets, x0: x0)
        // Population mean w̄ = (0.5, 0.375, 0.125, 0). User 0 (seen {0}): w̄ over {1, 2} renormalised = (0.75, 0.25),
        // equal to its own target, so its lift is 0. User 1 (seen {1, 2}): w̄ over {0} = 1, its own target: lift 0 too.
        #expect(abs(rewards[0]) < 1e-6 && abs(rewards[1]) < 1e-6, "\(rewards)")
        // A user whose target differs from the population's: u0 with target item 3 only.
        let other = CollaborativeTargets(items: [[3], [0]], weights: [[1], [1]], itemCount: 4)
        let r = try Self.rewards(.collabLift, data: data, targets: other, x0: x0)
        // w̄ = (0.5, 0, 0, 0.5); over u0's unseen {1, 2, 3}: item 3 only → lift = log p₃ − log p₃ = 0; u1 (unseen {0, 3}):
        // w̄' = (0.5, 0.5) over {0, 3}, own (1, 0): lift = 0.5·(x₀ − x₃)/τ = 0.5·(0.3 + 0.5)/0.5.
        #expect(abs(r[0]) < 1e-6)
        #expect(abs(r[1] - 0.8) < 1e-5, "\(r[1])")
    }

    /// collab-score = ⟨σ_u·z_u(w_u), x₀⟩ over the unseen items, z_u computed here directly from the dense row.
    @Test func collaborativeScoreOnHandExample() throws {
        let data = Self.dataset(train: [[0], [1, 2]], valid: [[], []], test: [[], []], items: 4)
        let targets = CollaborativeTargets(items: [[1, 2], [0]], weights: [[0.75, 0.25], [1]], itemCount: 4)
        let x0: [Float] = [0.9, 0.2, -0.1, 0.4, 0.3, 0.8, 0.7, -0.5]
        let spread: [Float] = [2, 0.5]
        let rewards = try Self.rewards(.collabScore, data: data, targets: targets, x0: x0, spread: spread)
        func expected(_ x: ArraySlice<Float>, dense w: [Double], unseen: [Int], spread: Double) -> Double {
            let values = unseen.map { w[$0] }
            let mean = values.reduce(0, +) / Double(values.count)
            let sd = (values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(values.count)).squareRoot()
            return unseen.map { spread * (w[$0] - mean) / sd * Double(x[x.startIndex + $0]) }.reduce(0, +)
        }
        let first = expected(x0[0..<4], dense: [0, 0.75, 0.25, 0], unseen: [1, 2, 3], spread: 2)
        let second = expected(x0[4..<8], dense: [1, 0, 0, 0], unseen: [0, 3], spread: 0.5)
        #expect(abs(rewards[0] - first) < 1e-5, "\(rewards[0]) vs \(first)")
        #expect(abs(rewards[1] - second) < 1e-5, "\(rewards[1]) vs \(second)")
        #expect(abs(second - 0.4) < 1e-6)  // z = (1, −1) on items 0 and 3: 0.5·(0.3 + 0.5)
        // Seen items carry no weight: changing x₀ there leaves the reward alone.
        var moved = x0
        moved[0] = 5; moved[5] = -3
        #expect(try Self.rewards(.collabScore, data: data, targets: targets, x0: moved, spread: spread) == rewards)
    }

    /// σ_u is the spread of the model's own scores over the user's unseen items, batch by batch (4 does not divide 6).
    @Test func referenceSpreadIsTheDeviationOverUnseenItems() throws {
        let (backend, data, _, model, evaluator) = try Self.tinyPolicy()
        let spread = try CollaborativeScoreReward.referenceSpread(model: model, train: data.train, input: evaluator.inputRows,
                                                                  batchSize: 4)
        let input = try backend.makeTensor([6, 12], .float32)
        backend.densifyRows(evaluator.inputRows, rows: try backend.tensor((0..<6).map { Int32($0) }, shape: [6]), into: input)
        let scores = try backend.readFloats(try model.scores(input))
        for u in 0..<6 {
            let unseen = (0..<12).filter { !data.train.row(u).contains(Int32($0)) }.map { Double(scores[u * 12 + $0]) }
            let mean = unseen.reduce(0, +) / Double(unseen.count)
            let sd = (unseen.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(unseen.count)).squareRoot()
            #expect(abs(Double(spread[u]) - sd) < 1e-6 * max(1, sd), "user \(u): \(spread[u]) vs \(sd)")
        }
        #expect(Set(spread).count > 1, "users differ in spread, or the check proves little")
    }

    @Test func collaborativeNDCGOnHandExample() throws {
        let backend = CPUBackend()
        let data = Self.dataset(train: [[0]], valid: [[]], test: [[]], items: 5)
        let targets = CollaborativeTargets(items: [[3, 1]], weights: [[0.6, 0.4]], itemCount: 5)
        let reward = RewardSpec.collabNDCG(cutoff: 2).make(backend: backend, train: data.train, seen: try DeviceCSR(data.train, on: backend),
                                                           targets: targets)
        // Top-2 unseen of [9, 5, 1, 4, 0] without item 0: items 1 (5) and 3 (4): DCG = 0.4 + 0.6/log2 3.
        let r = try reward.rewards(x0: try backend.tensor([9, 5, 1, 4, 0] as [Float], shape: [1, 5]),
                                   rows: RolloutRows(users: [0], userTensor: try backend.tensor([0] as [Int32], shape: [1])))
        let dcg = 0.4 + 0.6 / log2(3.0), ideal = 0.6 + 0.4 / log2(3.0)
        #expect(abs(r[0] - dcg / ideal) < 1e-6)  // weights are Float32
    }

    /// Validation and test interactions are chosen so that, were they read, they would change the neighbours and
    /// targets; the targets and rewards must be exactly those of the train-only data.
    @Test func heldOutInteractionsNeverReachARewardOrTarget() throws {
        let backend = CPUBackend()
        let train: [[Int32]] = [[0, 1], [2, 3], [0, 4], [2, 5]]
        let quiet = Self.dataset(train: train, valid: [[], [], [], []], test: [[], [], [], []], items: 8)
        // Held-out rows that would make u0 resemble u1 and add items 6 and 7 everywhere.
        let loud = Self.dataset(train: train, valid: [[2, 3, 6], [0, 1], [7], [6]], test: [[7], [6], [2, 3], [0, 1]], items: 8)
        let leaked = Self.dataset(train: train.indices.map { (train[$0] + loud.valid.row($0) + loud.test.row($0)).sorted() },
                                  valid: [[], [], [], []], test: [[], [], [], []], items: 8)
        for kind in TeacherKind.allCases {
            let spec = TargetSpec(teacher: kind == .userKNN ? .userKNN(neighbors: 1) : kind.defaultTeacher)
            let a = try spec.build(dataset: quiet, backend: backend)
            let b = try spec.build(dataset: loud, backend: backend)
            let c = try spec.build(dataset: leaked, backend: backend)
            #expect(a == b, "\(kind): held-out data changed the targets")
            #expect(a != c, "\(kind): the construction is not sensitive to these interactions, so the test proves nothing")
            for rewardKind in RewardKind.allCases where !rewardKind.isSequential {
                let x0 = try backend.tensor(randomRow(32, seed: 5), shape: [4, 8])
                let rows = RolloutRows(users: [0, 1, 2, 3], userTensor: try backend.tensor([0, 1, 2, 3] as [Int32], shape: [4]))
                // σ_u comes from a reference model's scores on the training rows (`referenceSpread` reads nothing else).
                let spread: [Float] = [1.5, 0.5, 2, 1]
                let ra = try rewardKind.defaultSpec.make(backend: backend, train: quiet.train, seen: try DeviceCSR(quiet.train, on: backend),
                                                         targets: a, referenceSpread: spread).rewards(x0: x0, rows: rows)
                let rb = try rewardKind.defaultSpec.make(backend: backend, train: loud.train, seen: try DeviceCSR(loud.train, on: backend),
                                                         targets: b, referenceSpread: spread).rewards(x0: x0, rows: rows)
                #expect(ra == rb, "\(kind) \(rewardKind): held-out data changed the reward")
            }
        }
    }

    @Test func gaussianLogProbabilityMatchesClosedFormWithTinySigma() throws {
        let backend = CPUBackend()
        let sigma = 8e-4
        let mean = randomRow(10, seed: 2).map { Double($0) }
        let noise = randomRow(10, seed: 3).map { Double($0) }
        let x = zip(mean, noise).map { $0 + sigma * $1 }
        let logp = try backend.makeTensor([1], .float32)
        backend.gaussianLogProbability(try backend.tensor(x.map(Float.init), shape: [1, 10]), mean: try backend.tensor(mean.map(Float.init), shape: [1, 10]),
                                       logStd: try backend.tensor([Float(log(sigma))], shape: [1]), into: logp)
        let exact = -noise.map { $0 * $0 }.reduce(0, +) / 20 - 0.5 * log(2 * Double.pi) - log(sigma)
        // x − μ is formed in Float32 from values near 1: its absolute error ~6e-8 is ~1e-4 of σ.
        #expect(abs(Double(try backend.readScalar(logp)) - exact) < 1e-3)
    }

    /// A tiny DiffRec policy (6 users × 12 items, one hidden layer of 6) on the CPU reference, for gradient checks.
    static func tinyPolicy() throws -> (CPUBackend, InteractionDataset, DiffRecSettings, DiffRecModel, TopKEvaluator) {
        let backend = CPUBackend()
        let data = PretrainTestSupport.tinyDataset(users: 6, items: 12)
        var diffrec = PretrainTestSupport.tinySettings()
        diffrec.dims = [6]
        return (backend, data, diffrec, try DiffRecModel(backend: backend, settings: diffrec, items: 12),
                try TopKEvaluator(backend: backend, dataset: data, batchSize: 8))
    }

    /// The gradient that `update` descends, for one stored step, against central finite differences of
    /// `Σ_r g_r·log π_θ(x_{t−1}|x_t)` on a tiny denoiser (Float32, so a loose but meaningful tolerance).
    @Test(arguments: ExplorationKind.allCases)
    func policyGradientMatchesFiniteDifferences(exploration: ExplorationKind) throws {
        let (backend, data, _, model, evaluator) = try Self.tinyPolicy()
        var reinforce = ReinforceSettings()
        reinforce.rollouts = 2
        reinforce.exploration = Exploration(scale: 30, dimensions: exploration)  // a larger σ keeps the finite differences well above Float32 noise
        var settings = FinetuneSettings()
        settings.estimator = .reinforce(reinforce)
        let targets = try settings.targets.build(dataset: data, backend: backend)
        let reward = settings.reward.make(backend: backend, train: data.train, seen: evaluator.seenRows, targets: targets)
        do {
            let policy = DiffRecPolicy(model: model, reference: nil, reward: reward, input: evaluator.inputRows, seen: evaluator.seenRows, trainRows: data.train,
                                       exploration: reinforce.exploration, candidates: targets, seed: settings.seed)
            let trainer = try ReinforceEstimator(policy: policy, settings: settings)
            _ = try policy.rollout([0, 1, 2], rollouts: 2, trained: [2], update: 0)
            let weights: [Float] = [0.3, -1.2, 0.7, 0.1, -0.4, 0.9]
            func objective() throws -> Double {
                zip(try trainer.logProbability(step: 2, slot: 0), weights).map { $0 * Double($1) }.reduce(0, +)
            }
            _ = try objective()
            let parameters = model.denoiser.parameters
            parameters.zeroGradients()
            try trainer.accumulateGradient(step: 2, slot: 0, dLogp: weights)
            let gradients = try backend.readFloats(parameters.gradients)
            var values = try backend.readFloats(parameters.values)
            for name in ["out_layers.0.weight", "in_layers.0.bias", "emb_layer.weight"] {
                let entry = parameters.entries.first { $0.name == name }!
                for index in [entry.offset, entry.offset + entry.count / 2] {
                    let numeric = try centralDifference(of: objective, at: index, in: &values, parameters: parameters)
                    let analytic = Double(gradients[index])
                    #expect(abs(numeric - analytic) <= 0.05 * max(abs(numeric), abs(analytic)) + 1e-3,
                            "\(name)[\(index - entry.offset)]: finite difference \(numeric) vs gradient \(analytic)")
                }
            }
        }
    }

    /// The pathwise estimator's gradient, through every reverse step of the noise-free chain and the reward, against
    /// central finite differences of `−mean_u r(x₀(θ))` (x₀ from `DiffRecModel.scores`, the evaluation's own chain).
    /// With an anchor, the objective adds `β·mean_u ½‖x₀ − x₀_ref‖²` to a reference model with other weights (over
    /// the unseen items only, with `unseenOnly`). With `focus` (collab-lift and collab-score, whose ∂r/∂x₀ is constant) the objective
    /// keeps only the focus items: `−mean_u Σ_{j∈F_u} ∂r/∂x_j·x_j + β·mean_u ½Σ_{j∈F_u}(x_j − x_ref,j)²`.
    @Test(arguments: [(RewardKind.collabLoglik, Float(0), false, 0), (.mixed, 0, false, 0), (.collabLoglik, 3, false, 0),
                      (.collabLift, 0, false, 0), (.collabLift, 3, true, 0), (.collabLift, 3, false, 3),
                      (.collabScore, 2, true, 0), (.collabScore, 2, false, 3)])
    func pathwiseGradientMatchesFiniteDifferences(rewardKind: RewardKind, anchor: Float, unseenOnly: Bool, focus: Int) throws {
        let (backend, data, diffrec, model, evaluator) = try Self.tinyPolicy()
        var settings = FinetuneSettings()
        settings.reward = rewardKind.spec(temperature: 0.2)  // a sharper softmax gives gradients well above Float32 noise
        settings.targets.teacher = .userKNN(neighbors: 2)
        let scope: AnchorScope = focus > 0 ? .focus(items: focus) : unseenOnly ? .unseen : .all
        settings.estimator = .pathwise(PathwiseSettings(anchor: anchor > 0 ? Anchor(weight: anchor, scope: scope) : nil))
        try settings.validate()
        var other = diffrec
        other.seed += 1
        let reference = try DiffRecModel(backend: backend, settings: other, items: 12)
        let targets = try settings.targets.build(dataset: data, backend: backend)
        let spread = try CollaborativeScoreReward.referenceSpread(model: reference, train: data.train, input: evaluator.inputRows,
                                                                  batchSize: 4)
        let reward = settings.reward.make(backend: backend, train: data.train, seen: evaluator.seenRows, targets: targets,
                                          referenceSpread: spread)
        let users = [0, 1, 2, 4]
        do {
            let policy = DiffRecPolicy(model: model, reference: reference, reward: reward, input: evaluator.inputRows, seen: evaluator.seenRows, trainRows: data.train,
                                       seed: settings.seed)
            let trainer = try PathwiseEstimator(policy: policy, settings: settings)
            let (rewards, distance) = try trainer.gradient(users, update: 0)
            let parameters = model.denoiser.parameters
            let gradients = try backend.readFloats(parameters.gradients)
            let userTensor = try backend.tensor(users.map { Int32($0) }, shape: [users.count])
            let rows = RolloutRows(users: users, userTensor: userTensor)
            let start = try backend.makeTensor([users.count, 12], .float32)
            backend.densifyRows(evaluator.inputRows, rows: userTensor, into: start)
            let ref = try backend.readFloats(try reference.scores(start))
            let step = try backend.makeTensor([users.count, 12], .float32)
            try (reward as! DifferentiableReward).gradient(x0: try backend.tensor(ref, shape: [users.count, 12]), rows: rows, into: step)
            let slope = try backend.readFloats(step)
            let focusMask = focus == 0 ? [] : PathwiseEstimator<DiffRecPolicy>.focusMask(reference: ref, step: slope, scale: 1 / anchor,
                                                                      seen: users.map { data.train.row($0) }, count: focus)
            func focusObjective() throws -> Double {
                let x0 = try backend.readFloats(try model.scores(start))
                let terms = x0.indices.map { j in Double(focusMask[j]) * (-Double(slope[j] * x0[j]) + Double(anchor) * Double((x0[j] - ref[j]) * (x0[j] - ref[j])) / 2) }
                return terms.reduce(0, +) / Double(users.count)
            }
            func objective() throws -> Double {
                if focus > 0 { return try focusObjective() }
                let x = try backend.makeTensor([users.count, 12], .float32)
                backend.densifyRows(evaluator.inputRows, rows: userTensor, into: x)
                let x0 = try backend.readFloats(try model.scores(x))
                let r = try reward.rewards(x0: try backend.tensor(x0, shape: [users.count, 12]), rows: rows)
                let ref = try backend.readFloats(try reference.scores(x))
                let seen = Set(users.enumerated().flatMap { r, u in data.train.row(u).map { r * 12 + Int($0) } })
                let squares = x0.indices.filter { !unseenOnly || !seen.contains($0) }.map { Double(x0[$0] - ref[$0]) * Double(x0[$0] - ref[$0]) }.reduce(0, +)
                return -r.reduce(0, +) / Double(r.count) + Double(anchor) * squares / 2 / Double(users.count)
            }
            if focus == 0 {
                let logged = -rewards.reduce(0, +) / Double(rewards.count) + Double(anchor) * distance
                #expect(abs(try objective() - logged) < 1e-5, "the pathwise chain is not the evaluation's chain")
            } else {
                #expect(focusMask.contains(0) && focusMask.contains(1), "the focus must leave some items out for the check to mean much")
            }
            try expectGradients(gradients, ofObjective: objective, parameters: parameters, measurable: 5,
                                names: ["out_layers.0.weight", "out_layers.0.bias", "in_layers.0.weight", "in_layers.0.bias", "emb_layer.weight"])
        }
    }

    /// `--train-layers output`: an update, by either estimator, moves the output layer and leaves every other layer as
    /// it was; with `all` the others move too.
    @Test(arguments: [(EstimatorKind.pathwise, TrainedLayers.output), (.reinforce, .output), (.pathwise, .all)])
    func trainedLayersLimitWhatAnUpdateMoves(estimator: EstimatorKind, layers: TrainedLayers) throws {
        let (backend, data, _, model, evaluator) = try Self.tinyPolicy()
        var reinforce = ReinforceSettings()
        reinforce.rollouts = 2
        reinforce.exploration.scale = 30
        var settings = FinetuneSettings()
        settings.estimator = estimator == .pathwise ? .pathwise(PathwiseSettings()) : .reinforce(reinforce)
        settings.trainedLayers = layers
        settings.optimizer.learningRate = 1e-2
        let targets = try settings.targets.build(dataset: data, backend: backend)
        let reward = settings.reward.make(backend: backend, train: data.train, seen: evaluator.seenRows, targets: targets)
        do {
            let policy = DiffRecPolicy(model: model, reference: nil, reward: reward, input: evaluator.inputRows, seen: evaluator.seenRows, trainRows: data.train,
                                       exploration: settings.reinforce?.exploration ?? Exploration(), seed: settings.seed)
            let trainer = try FinetuneSession.estimator(policy, settings)
            let parameters = model.denoiser.parameters
            let before = try PretrainTestSupport.named(parameters, parameters.values)
            _ = try trainer.update([0, 1, 2], number: 0)
            let after = try PretrainTestSupport.named(parameters, parameters.values)
            let output = model.denoiser.architecture.layers.last!.name + "."
            for (name, values) in before {
                let moved = values != after[name]
                #expect(moved == (layers == .all || name.hasPrefix(output)), "\(name): moved \(moved) with --train-layers \(layers.rawValue)")
            }
        }
    }

    /// DreamRec's fine-tuning updates every layer, so asking it for the output layer alone is refused, not ignored.
    @Test func outputLayerOnlyIsRefusedForSequentialRewards() throws {
        var settings = FinetuneSettings.sequential
        settings.trainedLayers = .output
        #expect(throws: SettingError.self) { try settings.validate() }
        settings.trainedLayers = .all
        try settings.validate()
    }

    /// The focus items of two users by hand: the top 2 unseen items before the step and after it, ties to the lower index.
    @Test func focusMaskKeepsTheTopUnseenItemsBeforeAndAfterTheStep() {
        let reference: [Float] = [5, 4, 3, 2, 1, 0,   1, 1, 1, 1, 1, 1]
        let step: [Float] =      [0, 0, 0, 0, 0, 9,   0, 0, 0, 0, 4, 0]
        let seen: [ArraySlice<Int32>] = [[0][...], [][...]]
        let mask = PathwiseEstimator<DiffRecPolicy>.focusMask(reference: reference, step: step, scale: 0.5, seen: seen, count: 2)
        // User 0: item 0 is seen; before the step the top is 1, 2; after it (item 5 at 4.5) 1 (4) and 5 (4.5).
        #expect(Array(mask[0..<6]) == [0, 1, 1, 0, 0, 1])
        // User 1: all tie before the step, so 0 and 1; after it item 4 (3) and then item 0 (the lower index).
        #expect(Array(mask[6..<12]) == [1, 1, 0, 0, 1, 0])
        // Asking for more items than a row has keeps every unseen item.
        #expect(PathwiseEstimator<DiffRecPolicy>.focusMask(reference: reference, step: step, scale: 1, seen: seen, count: 50) == [0, 1, 1, 1, 1, 1] + [Float](repeating: 1, count: 6))
    }

    /// ∂r/∂x₀ of the log-likelihood rewards against finite differences of the reward itself.
    @Test func logLikelihoodRewardGradientMatchesFiniteDifferences() throws {
        let backend = CPUBackend()
        let data = Self.dataset(train: [[0], [1, 2], []], valid: [[], [], []], test: [[], [], []], items: 5)
        let targets = CollaborativeTargets(items: [[1, 3], [0], []], weights: [[0.75, 0.25], [1], []], itemCount: 5)
        for kind in [RewardKind.collabLoglik, .collabLift, .collabScore, .selfLoglik, .mixed] {
            let reward = kind.spec(temperature: 0.5).make(backend: backend, train: data.train, seen: try DeviceCSR(data.train, on: backend),
                                                          targets: targets, referenceSpread: [0.7, 1.3, 2]) as! DifferentiableReward
            let rows = RolloutRows(users: [0, 1, 2], userTensor: try backend.tensor([0, 1, 2] as [Int32], shape: [3]))
            var x: [Float] = [0.9, 0.2, -0.1, 0.4, 0.0, 0.3, 0.8, 0.7, -0.5, 0.1, 0.2, 0.6, -0.3, 0.0, 0.5]
            let gradient = try backend.makeTensor([3, 5], .float32)
            try reward.gradient(x0: try backend.tensor(x, shape: [3, 5]), rows: rows, into: gradient)
            let analytic = try backend.readFloats(gradient)
            for index in x.indices {
                let original = x[index], h: Float = 1e-2
                x[index] = original + h
                let up = try reward.rewards(x0: try backend.tensor(x, shape: [3, 5]), rows: rows)[index / 5]
                x[index] = original - h
                let down = try reward.rewards(x0: try backend.tensor(x, shape: [3, 5]), rows: rows)[index / 5]
                x[index] = original
                let numeric = (up - down) / (2 * Double(h))
                #expect(abs(numeric - Double(analytic[index])) < 2e-3, "\(kind) [\(index / 5), \(index % 5)]: \(numeric) vs \(analytic[index])")
            }
        }
    }

    /// The same seed replays the same trajectory: bit for bit on one backend; on OpenCL vs the CPU reference the
    /// noise is bit-identical and the states agree to kernel rounding.
    @Test func rolloutsReplayOnBothBackends() throws {
        let data = PretrainTestSupport.tinyDataset(users: 8, items: 12)
        func finalStates(_ backend: any Backend) throws -> [Float] {
            let model = try DiffRecModel(backend: backend, settings: PretrainTestSupport.tinySettings(), items: 12)
            let evaluator = try TopKEvaluator(backend: backend, dataset: data, batchSize: 8)
            let targets = try TargetSpec().build(dataset: data, backend: backend)
            let reward = RewardSpec.collabLoglik().make(backend: backend, train: data.train, seen: evaluator.seenRows, targets: targets)
            let policy = DiffRecPolicy(model: model, reference: nil, reward: reward, input: evaluator.inputRows, seen: evaluator.seenRows, trainRows: data.train,
                                       exploration: Exploration(scale: 10), seed: 1)
            _ = try policy.rollout([0, 1, 2, 3], rollouts: 2, trained: [1, 3], update: 7)
            let b = policy.last
            return try backend.readFloats(b.state) + backend.readFloats(try b.slot(0).previous) + backend.readFloats(try b.slot(1).xt)
        }
        let cpu = CPUBackend()
        let first = try finalStates(cpu), second = try finalStates(cpu)
        #expect(first.map(\.bitPattern) == second.map(\.bitPattern))
        if let info = DeviceSelection.automaticDevice {
            let device = try finalStates(try OpenCLBackend(device: info))
            let worst = zip(first, device).map { abs($0 - $1) }.max() ?? 0
            #expect(worst < 1e-4, "OpenCL and CPU trajectories differ by \(worst)")
        } else {
            print("note: no OpenCL device; the cross-backend replay check is skipped")
        }
    }

    /// A config.json written before a setting existed still decodes; the missing setting takes its default.
    @Test func settingsMissingFromAnOlderConfigTakeTheirDefaults() throws {
        var settings = FinetuneSettings()
        settings.optimizer.learningRate = 3e-4
        settings.estimator = .pathwise(PathwiseSettings())
        var object = try JSONSerialization.jsonObject(with: try JSONEncoder().encode(settings)) as! [String: Any]
        object.removeValue(forKey: "estimator")
        object.removeValue(forKey: "targets")
        let decoded = try JSONDecoder().decode(FinetuneSettings.self, from: try JSONSerialization.data(withJSONObject: object))
        #expect(decoded.optimizer.learningRate == 3e-4)
        #expect(decoded.estimator.kind == .reinforce && decoded.targets == FinetuneSettings().targets)
        #expect(try JSONDecoder().decode(FinetuneSettings.self, from: try JSONEncoder().encode(settings)) == settings)
    }

    /// A run folder written before the typed recipe holds one flat object; it reads back as the recipe it ran.
    @Test func flatSettingsOfOlderRunsReadAsTheirRecipe() throws {
        let flat = #"{"reward":"collab-score","neighbors":"ease","neighborCount":50,"easeLambda":1000,"targetSize":100,"temperature":1,"ndcgCutoff":20,"mixWeight":0.5,"rollouts":4,"usersPerBatch":128,"explorationScale":1,"exploration":"all","stepFraction":0.25,"estimator":"pathwise","pathwiseSteps":1,"anchor":1,"anchorUnseenOnly":false,"focus":50,"trainedLayers":"all","ppoEpochs":0,"clipRange":0.2,"klCoefficient":0,"learningRate":0.0001,"weightDecay":0,"maxGradientNorm":1,"advantageClip":5,"epochs":8,"userFraction":0.5,"seed":1}"#
        #expect(try JSONDecoder().decode(FinetuneSettings.self, from: Data(flat.utf8)) == FinetunePreset.easeScore.settings)
        let reinforce = #"{"reward":"collab-loglik","rollouts":2,"ppoEpochs":3,"klCoefficient":0.1,"estimator":"reinforce","anchor":0}"#
        var expected = FinetuneSettings()
        var r = ReinforceSettings()
        (r.rollouts, r.ppo, r.klCoefficient) = (2, PPOSettings(epochs: 3), 0.1)
        expected.estimator = .reinforce(r)
        #expect(try JSONDecoder().decode(FinetuneSettings.self, from: Data(reinforce.utf8)) == expected)
    }

    @Test func advantagesAreGroupNormalisedAndClipped() {
        let a = ReinforceEstimator<DiffRecPolicy>.advantages([1, 3, 10, 10], groupSize: 2, clip: 5)
        #expect(abs(a[0] + 1) < 1e-6 && abs(a[1] - 1) < 1e-6)
        #expect(a[2] == 0 && a[3] == 0)  // a group without spread has no signal
        let single = ReinforceEstimator<DiffRecPolicy>.advantages([0, 0, 0, 100], groupSize: 1, clip: 1.5)
        #expect(single[3] == 1.5)
    }

    /// On the built-in dataset: fine-tuning raises the probe reward and does not break the model, with either estimator.
    @Test(arguments: EstimatorKind.allCases)
    func finetuningRaisesTheRewardOnTheBuiltInData(estimator: EstimatorKind) throws {
        let backend = try DeviceSelection.makeBackend(.auto)
        let dataset = try DatasetLoader.load(path: "builtin:demo")
        var diffrec = DiffRecPreset.demo.settings
        diffrec.dims = [64]
        diffrec.steps = 5
        diffrec.epochs = 3
        diffrec.evalEvery = 3
        try PretrainTestSupport.withTemporaryFolder { folder in
            let pretrained = RunFolder(folder + "/pretrain")
            try pretrained.create(force: false)
            try pretrained.writeJSON(RunConfiguration(kind: .pretrain, device: backend.deviceDescription, data: DataSource(path: "builtin:demo"),
                                                      dataset: dataset, diffrec: diffrec), to: "config.json")
            let model = try DiffRecModel(backend: backend, settings: diffrec, items: dataset.itemCount)
            let evaluator = try TopKEvaluator(backend: backend, dataset: dataset, batchSize: 500)
            try DiffRecTrainer(model: model, dataset: dataset, evaluator: evaluator, run: pretrained).train()
            var settings = FinetuneSettings()
            settings.epochs = 1
            settings.userFraction = 0.25
            settings.optimizer.learningRate = 1e-3
            settings.usersPerBatch = 100
            if estimator == .pathwise {
                (settings.estimator, settings.optimizer.learningRate) = (.pathwise(PathwiseSettings(anchor: Anchor(weight: 0.1))), 1e-4)
            }
            let refit = RunFolder(folder + "/refit")
            let outcome = try FinetuneSession.run(pretrained: pretrained, out: refit, settings: settings, backend: backend)
            #expect(outcome.rewardAfter > outcome.rewardBefore, "reward \(outcome.rewardBefore) → \(outcome.rewardAfter)")
            let before = outcome.pretrainedValid.recall(at: 20), after = outcome.finetunedValid.recall(at: 20)
            #expect(after >= before * 0.95, "validation Recall@20 fell from \(before) to \(after)")
            // users.json: per-user test NDCG@20 whose mean is the table's (which counts users without a test item as zero).
            let users = try refit.readJSON(UserChanges.self, from: "users.json")
            #expect(users.improved + users.unchanged + users.worse == users.users && users.changeCounts.reduce(0, +) == users.users)
            for (mean, metrics) in [(users.before.meanMetric, outcome.pretrainedTest), (users.after.meanMetric, outcome.finetunedTest)] {
                #expect(abs(mean * Double(users.users) - metrics.ndcg(at: 20) * Double(metrics.users)) < 1e-9)
            }
            #expect(abs(users.after.shareByDecile.reduce(0, +) - 1) < 1e-9)
            let report = try String(contentsOf: try ReportWriter.write(run: refit), encoding: .utf8)
            #expect(report.contains("What changed for users") && report.contains("<td>popularity</td>"))
        }
    }
}

/// `gradients` (the host copy of `parameters`' gradient) against central differences of `objective` at the first,
/// middle and last entry of each named parameter, within 5% + 2e-4; at least `measurable` of them above 1e-3, or the
/// check would prove little.
func expectGradients(_ gradients: [Float], ofObjective objective: () throws -> Double, parameters: ParameterStore, measurable: Int,
                     names: [String], sourceLocation: SourceLocation = #_sourceLocation) throws {
    var values = try parameters.backend.readFloats(parameters.values)
    var checked = 0
    for name in names {
        let entry = parameters.entries.first { $0.name == name }!
        for index in [entry.offset, entry.offset + entry.count / 2, entry.offset + entry.count - 1] {
            let numeric = try centralDifference(of: objective, at: index, in: &values, parameters: parameters)
            let analytic = Double(gradients[index])
            if abs(numeric) > 1e-3 { checked += 1 }
            #expect(abs(numeric - analytic) <= 0.05 * max(abs(numeric), abs(analytic)) + 2e-4,
                    "\(name)[\(index - entry.offset)]: finite difference \(numeric) vs gradient \(analytic)", sourceLocation: sourceLocation)
        }
    }
    #expect(checked >= measurable, "too few entries with a measurable gradient: the check would prove little", sourceLocation: sourceLocation)
}

/// (f(θ + h·e_i) − f(θ − h·e_i)) / 2h for parameter entry i, with h = 1e-2; `values` (the host copy of the
/// parameters) and the device copy are restored afterwards.
func centralDifference(of objective: () throws -> Double, at index: Int, in values: inout [Float],
                               parameters: ParameterStore) throws -> Double {
    let original = values[index], h: Float = 1e-2
    values[index] = original + h
    parameters.backend.write(values, to: parameters.values)
    let up = try objective()
    values[index] = original - h
    parameters.backend.write(values, to: parameters.values)
    let down = try objective()
    values[index] = original
    parameters.backend.write(values, to: parameters.values)
    return (up - down) / (2 * Double(h))
}

private func randomRow(_ count: Int, seed: UInt64) -> [Float] {
    (0..<count).map { Philox.normal(seed: seed, index: UInt64($0)) }
}

extension RewardKind {
    /// The reward of this kind with softmax temperature τ where it has one.
    func spec(temperature t: Float) -> RewardSpec {
        switch self {
        case .collabLoglik: .collabLoglik(temperature: t)
        case .collabLift: .collabLift(temperature: t)
        case .selfLoglik: .selfLoglik(temperature: t)
        case .mixed: .mixed(temperature: t)
        case .seqLoglik: .seqLoglik(temperature: t)
        case .seqCollab: .seqCollab(temperature: t)
        case .collabNDCG, .collabScore: defaultSpec
        }
    }
}
