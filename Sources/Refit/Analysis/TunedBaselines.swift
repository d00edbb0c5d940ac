import Foundation
import RefitCompute

/// The simple baselines a reviewer accepts, each tuned the way reproducibility studies tune them (Ferrari Dacrema et
/// al., RecSys 2019; Benigni et al. 2025): every setting of a small grid scored on validation (NDCG@20, or Recall@20),
/// the best one then scored once on test. Popularity, user-kNN (cosine, k), item-kNN (cosine, k and shrink), RP3β
/// (α, β, k) and EASE (λ). Reads the training matrix only; validation interactions reach nothing but the choice. On a
/// time-weighted dataset (T-DiffRec) the baselines read its 0/1 rows, and one more row gives EASE the same recency: its
/// scores of the weighted rows.
public enum TunedBaselines {
    /// One setting of a grid and its validation scores.
    public struct Trial: Sendable, Codable {
        public var settings: String
        public var validRecall20: Double
        public var validNDCG20: Double
    }

    /// A baseline with its grid, the setting validation chose, and that setting's metrics on both splits.
    public struct Result: Sendable {
        public let baseline: String
        public let grid: [Trial]
        public let chosen: String
        public let valid: RankingMetrics
        public let test: RankingMetrics
        public let seconds: Double
    }

    /// The grids: `quick` keeps a corner of each (for tests and a first look).
    public struct Grids: Sendable {
        public var userKNN: [Int]
        public var itemKNN: [(neighbors: Int, shrink: Double)]
        public var rp3beta: [(alpha: Double, beta: Double, neighbors: Int)]
        public var easeLambdas: [Double]

        /// Wide enough on ML-1M that every choice lies inside its grid (a first grid, up to k 500, β 0.6 and λ 5000,
        /// chose its edge each time).
        public static let standard = Grids(
            userKNN: [20, 50, 100, 200, 500, 1000],
            itemKNN: [50, 100, 200, 500, 1000, 2000].flatMap { k in [0.0, 10, 100].map { (k, $0) } },
            rp3beta: [0.6, 0.8, 1.0].flatMap { a in [0.4, 0.6, 0.8].flatMap { b in [200, 500, 1000].map { (a, b, $0) } } },
            easeLambdas: [100, 200, 500, 1000, 2000, 5000, 10000, 20000])
        public static let quick = Grids(userKNN: [50], itemKNN: [(50, 0), (200, 10)], rp3beta: [(0.8, 0.4, 200), (1.0, 0.2, 100)],
                                        easeLambdas: [200, 1000])
    }

    /// The validation metric a grid is decided on.
    public enum Selection: String, Sendable, CaseIterable {
        /// NDCG@20, as ReFiT's fine-tuning chooses its epoch.
        case ndcg20 = "ndcg@20"
        /// Recall@20, as DiffRec's pre-training chooses its epoch.
        case recall20 = "recall@20"

        func score(_ trial: Trial) -> Double { self == .ndcg20 ? trial.validNDCG20 : trial.validRecall20 }
    }

    /// Items kept per user by the user-kNN baseline.
    public static let userKNNItems = 200

    public static func run(dataset: InteractionDataset, backend: any Backend, batchSize: Int, grids: Grids = .standard,
                           selectingOn selection: Selection = .ndcg20, observer: TrainingObserver? = nil) throws -> [Result] {
        let evaluator = try TopKEvaluator(backend: backend, dataset: dataset, batchSize: batchSize)
        let train = dataset.train
        /// One result per row of `rows`, all from one pass over the grid: each setting's model is built once and
        /// scored on each row's input (EASE's inverse is the costly part). Every row reports the whole pass's seconds.
        func tuned<Model>(_ rows: [(baseline: String, input: TopKEvaluator.Input)], _ settings: [Model],
                          build: (Model) throws -> (name: String, score: (Tensor, Tensor) throws -> Tensor)) throws -> [Result] {
            let started = DispatchTime.now().uptimeNanoseconds
            var grids = [[Trial]](repeating: [], count: rows.count)
            var best = [(trial: Trial, valid: RankingMetrics, score: (Tensor, Tensor) throws -> Tensor)?](repeating: nil, count: rows.count)
            for setting in settings {
                let model = try build(setting)
                for (r, row) in rows.enumerated() {
                    let valid = try evaluator.evaluate(.valid, input: row.input, score: model.score)
                    let trial = Trial(settings: model.name, validRecall20: valid.recall(at: 20), validNDCG20: valid.ndcg(at: 20))
                    grids[r].append(trial)
                    let label = rows.count > 1 ? "\(row.baseline), \(model.name)" : model.name
                    observer?.log(String(format: "%@: valid R@20 %.4f N@20 %.4f", label, trial.validRecall20, trial.validNDCG20))
                    // Strictly better only: ties keep the earlier (smaller, simpler) setting.
                    if best[r] == nil || selection.score(trial) > selection.score(best[r]!.trial) { best[r] = (trial, valid, model.score) }
                }
            }
            return try rows.enumerated().map { r, row in
                let chosen = best[r]!
                let test = try evaluator.evaluate(.test, input: row.input, score: chosen.score)
                let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
                observer?.log(String(format: "%@ chosen on validation %@: %@, test R@20 %.4f N@20 %.4f", row.baseline, selection.rawValue,
                                     chosen.trial.settings, test.recall(at: 20), test.ndcg(at: 20)))
                return Result(baseline: row.baseline, grid: grids[r], chosen: chosen.trial.settings, valid: chosen.valid, test: test,
                              seconds: seconds)
            }
        }
        func tuned<Model>(_ baseline: String, _ settings: [Model],
                          build: (Model) throws -> (name: String, score: (Tensor, Tensor) throws -> Tensor)) throws -> Result {
            try tuned([(baseline, .pattern)], settings, build: build)[0]
        }
        let popularity = PopularityBaseline(backend: backend, train: train)
        let easeRows: [(baseline: String, input: TopKEvaluator.Input)] =
            [("EASE", .pattern)] + (dataset.trainValues == nil ? [] : [("EASE, time-weighted input", .model)])
        return [
            try tuned("popularity", [()]) { _ in ("popularity", { _, input in try popularity.scores(batch: input.rows) }) },
            try tuned("user-kNN", grids.userKNN) { neighbors in
                // The neighbours' weighted rows, kept to each user's best `userKNNItems` items (the metrics read at most 100).
                let targets = try CollaborativeTargets.userKNN(train: train, neighbors: neighbors, targetSize: userKNNItems, backend: backend)
                return ("k \(neighbors)", { users, input in
                    var rows = [Float](repeating: 0, count: input.count)
                    for (r, u) in try backend.readInt32s(users).enumerated() {
                        for (i, w) in zip(targets.items[Int(u)], targets.weights[Int(u)]) { rows[r * input.columns + Int(i)] = w }
                    }
                    backend.write(rows, to: input)
                    return input
                })
            },
            try tuned("item-kNN", grids.itemKNN) { setting in
                let model = try ItemToItemModel.itemKNN(train: train, neighbors: setting.neighbors, shrink: setting.shrink, backend: backend)
                return (model.name, { _, input in try model.scores(input) })
            },
            try tuned("RP3β", grids.rp3beta) { setting in
                let model = try ItemToItemModel.rp3beta(train: train, alpha: setting.alpha, beta: setting.beta,
                                                        neighbors: setting.neighbors, backend: backend)
                return (model.name, { _, input in try model.scores(input) })
            },
        ] + (try tuned(easeRows, grids.easeLambdas) { lambda in
            let model = try EASEModel(backend: backend, train: train, lambda: lambda)
            return (model.linear.name, { _, input in try model.scores(input) })
        })
    }
}
