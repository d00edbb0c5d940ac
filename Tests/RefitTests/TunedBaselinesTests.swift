import Foundation
import Testing
@testable import Refit
import RefitCompute

/// The neighbourhood baselines' weights against their formulas written out, and the tuning's choice on validation.
@Suite struct TunedBaselinesTests {
    static let rows: [[Int32]] = [[0, 1, 2], [1, 2], [0, 3], [2, 3, 4], [0, 1, 4], [4], [1, 2, 3]]
    static let train = CSRMatrix(columnCount: 5, rows: rows)

    static func weights(_ model: ItemToItemModel) throws -> [Float] { try model.backend.readFloats(model.weights) }

    /// `values` with all but its k largest set to 0; among equal values the lower index stays.
    static func keepingTop(_ values: [Double], _ k: Int) -> [Double] {
        let kept = Set(values.indices.sorted { (values[$0], -$0) > (values[$1], -$1) }.prefix(k))
        return values.indices.map { kept.contains($0) ? values[$0] : 0 }
    }

    /// Cosine similarity, `shrink` in the denominator, no self-similarity, each column's k largest kept.
    @Test func itemKNNIsTheCosineOfItemColumnsKeptPerColumn() throws {
        let backend = CPUBackend()
        let (n, k, shrink) = (5, 2, 1.5)
        let model = try ItemToItemModel.itemKNN(train: Self.train, neighbors: k, shrink: shrink, backend: backend)
        let w = try Self.weights(model)
        func has(_ u: Int, _ i: Int) -> Double { Self.rows[u].contains(Int32(i)) ? 1 : 0 }
        let users = Self.rows.indices
        for j in 0..<n {
            var column = (0..<n).map { i -> Double in
                guard i != j else { return 0 }
                let dot = users.reduce(0.0) { $0 + has($1, i) * has($1, j) }
                let norms = (users.reduce(0.0) { $0 + has($1, i) }).squareRoot() * (users.reduce(0.0) { $0 + has($1, j) }).squareRoot()
                return dot / (norms + shrink)
            }
            column = Self.keepingTop(column, k)
            for i in 0..<n { #expect(abs(Double(w[i * n + j]) - column[i]) < 1e-6, "W[\(i), \(j)]") }
            #expect((0..<n).filter { w[$0 * n + j] != 0 }.count <= k)
        }
    }

    /// W[i, j] = Σ_u (x_ui/|i|)^α (x_uj/|u|)^α / |j|^β, no self-loops, each row's k largest kept; scores are x·W.
    @Test func rp3betaIsTheThreeStepWalkDemotedByPopularity() throws {
        let backend = CPUBackend()
        let (n, k, alpha, beta) = (5, 3, 0.8, 0.4)
        let model = try ItemToItemModel.rp3beta(train: Self.train, alpha: alpha, beta: beta, neighbors: k, backend: backend)
        let w = try Self.weights(model)
        func has(_ u: Int, _ i: Int) -> Double { Self.rows[u].contains(Int32(i)) ? 1 : 0 }
        let popularity = (0..<n).map { i in Self.rows.indices.reduce(0.0) { $0 + has($1, i) } }
        for i in 0..<n {
            var row = (0..<n).map { j -> Double in
                guard i != j else { return 0 }
                let walk = Self.rows.indices.reduce(0.0) { total, u in
                    total + pow(has(u, i) / popularity[i], alpha) * pow(has(u, j) / Double(Self.rows[u].count), alpha)
                }
                return walk / pow(popularity[j], beta)
            }
            row = Self.keepingTop(row, k)
            for j in 0..<n { #expect(abs(Double(w[i * n + j]) - row[j]) < 1e-6, "W[\(i), \(j)]") }
        }
        let input = try backend.tensor([1, 0, 0, 1, 0] as [Float], shape: [1, 5])
        let scores = try backend.readFloats(try model.scores(input))
        for j in 0..<n { #expect(abs(scores[j] - (w[0 * n + j] + w[3 * n + j])) < 1e-6) }
    }

    @Test func keepLargestBreaksTiesByIndex() {
        var w: [Float] = [0, 2, 2, 1,
                          3, 0, 3, 3,
                          1, 1, 0, 1,
                          0, 0, 0, 0]
        ItemToItemModel.keepLargest(&w, size: 4, count: 2, along: .rows)
        #expect(w == [0, 2, 2, 0, 3, 0, 3, 0, 1, 1, 0, 0, 0, 0, 0, 0])
    }

    /// Each baseline's chosen setting is its grid's best on validation, and its test row is that setting's test score.
    @Test func eachBaselineTakesItsBestValidationSetting() throws {
        let backend = CPUBackend()
        var shape = SyntheticDataset.Shape()
        (shape.users, shape.items) = (120, 60)
        let dataset = try InteractionDataset(log: SyntheticDataset.generate(shape, seed: 3, name: "tiny"))
        let grids = TunedBaselines.Grids(userKNN: [3, 10], itemKNN: [(5, 0), (20, 10)], rp3beta: [(0.5, 0.0, 10), (1.0, 0.4, 30)], easeLambdas: [1, 50])
        let results = try TunedBaselines.run(dataset: dataset, backend: backend, batchSize: 50, grids: grids)
        #expect(results.map(\.baseline) == ["popularity", "user-kNN", "item-kNN", "RP3β", "EASE"])
        #expect(results.map(\.grid.count) == [1, 2, 2, 2, 2])
        let evaluator = try TopKEvaluator(backend: backend, dataset: dataset, batchSize: 50)
        for result in results {
            let best = result.grid.max { $0.validNDCG20 < $1.validNDCG20 }!
            #expect(result.chosen == best.settings && result.valid.ndcg(at: 20) == best.validNDCG20)
        }
        let ease = results[4]
        let lambda: Double = ease.chosen.contains("λ = 50") ? 50 : 1
        let model = try EASEModel(backend: backend, train: dataset.train, lambda: lambda)
        #expect(abs(try model.evaluate(.test, with: evaluator).ndcg(at: 20) - ease.test.ndcg(at: 20)) < 1e-9)

        let byRecall = try TunedBaselines.run(dataset: dataset, backend: backend, batchSize: 50, grids: grids, selectingOn: .recall20)
        for (result, same) in zip(byRecall, results) {
            #expect(result.grid.map(\.validNDCG20) == same.grid.map(\.validNDCG20))
            let best = result.grid.first { $0.validRecall20 == result.grid.map(\.validRecall20).max()! }!
            #expect(result.chosen == best.settings, "the first of the settings with the best validation Recall@20")
        }

        // On a time-weighted dataset the baselines read the 0/1 rows (the same scores), and EASE is also given the weights.
        let weighted = try TunedBaselines.run(dataset: try dataset.weighted(by: TimeWeights(minimum: 0.1, maximum: 1)), backend: backend,
                                              batchSize: 50, grids: grids)
        #expect(weighted.map(\.baseline) == results.map(\.baseline) + ["EASE, time-weighted input"])
        for (result, same) in zip(weighted, results) { #expect(result.test.ndcg(at: 20) == same.test.ndcg(at: 20), "\(result.baseline)") }
        #expect(weighted.last!.grid.map(\.validNDCG20) != ease.grid.map(\.validNDCG20), "the weights change EASE's rankings")
    }
}
