import Foundation
import RefitCompute

/// A DiffRec run beside simple baselines, and beside its own blends with each collaborative signal that a ReFiT
/// reward can distil (user-kNN, item-graph, EASE).
///
/// The blend `z(model) + α·z(signal)` (scores standardised per user, α chosen on validation NDCG@20) is the
/// yardstick for a collaborative reward: a reward that pulls the model towards a signal can hope to add about
/// what adding the signal to the model's scores adds, and a signal whose best blend adds nothing on validation
/// has nothing to teach the model. All of it reads the training matrix only.
public enum BaselineComparison {
    public struct Row: Sendable {
        public let name: String
        public let valid: RankingMetrics
        public let test: RankingMetrics
        /// α of a blend, chosen on validation; nil for a single model.
        public let blendWeight: Double?
    }

    /// The blend weights tried, on standardised scores.
    public static let blendWeights: [Double] = [0.1, 0.25, 0.5, 1, 2, 4]
    /// Dense host copies of every score matrix are kept: refused above this many users × items.
    public static let maximumEntries = 200_000_000

    public static func compare(_ run: TrainedRun, settings: FinetuneSettings, backend: any Backend,
                               observer: TrainingObserver? = nil) throws -> [Row] {
        let dataset = run.dataset
        let (users, items) = (dataset.userCount, dataset.itemCount)
        guard users * items <= maximumEntries else {
            throw FinetuneError.invalidSetting("baselines keeps dense score matrices on the host; \(users) users × \(items) items is too many")
        }
        let evaluator = try TopKEvaluator(backend: backend, dataset: dataset, batchSize: run.configuration.diffrec.batchSize)
        func both(_ name: String, _ scores: @escaping (Tensor, Tensor) throws -> Tensor) throws -> Row {
            let row = Row(name: name, valid: try evaluator.evaluate(.valid, score: scores), test: try evaluator.evaluate(.test, score: scores),
                          blendWeight: nil)
            observer?.log(String(format: "%@: valid N@20 %.4f, test N@20 %.4f", name, row.valid.ndcg(at: 20), row.test.ndcg(at: 20)))
            return row
        }
        let popularity = PopularityBaseline(backend: backend, train: dataset.train)
        var rows = [try both("popularity") { _, input in try popularity.scores(batch: input.rows) }]

        // Every signal as a standardised (U, I) host matrix; the model's scores come from its full reverse chain. The
        // evaluator's own pass (users in order, their training rows as input) collects them; its ranking is not needed.
        func hostScores(_ score: @escaping (Tensor) throws -> Tensor) throws -> [Float] {
            var all = [Float](); all.reserveCapacity(users * items)
            _ = try evaluator.evaluate(.valid) { _, input in
                let scores = try score(input)
                all += try backend.readFloats(scores)
                return scores
            }
            return standardisedRows(all, columns: items)
        }
        func sparseScores(_ targets: CollaborativeTargets) -> [Float] {
            var all = [Float](repeating: 0, count: users * items)
            for u in 0..<users { for (i, w) in zip(targets.items[u], targets.weights[u]) { all[u * items + Int(i)] = w } }
            return standardisedRows(all, columns: items)
        }
        let model = try hostScores { try run.model.scores($0) }
        let ease = try EASEModel(backend: backend, train: dataset.train, lambda: settings.easeLambda)
        let signals: [(String, [Float])] = [
            ("user-kNN (k = \(settings.neighborCount), top \(settings.targetSize))",
             sparseScores(try CollaborativeTargets.userKNN(train: dataset.train, neighbors: settings.neighborCount,
                                                           targetSize: settings.targetSize, backend: backend))),
            ("item-graph (top \(settings.targetSize))", sparseScores(CollaborativeTargets.itemGraph(train: dataset.train, targetSize: settings.targetSize))),
            (String(format: "EASE (λ = %g)", settings.easeLambda), try hostScores { try ease.scores($0) }),
        ]
        // Host rows back onto the device for the evaluator: users arrive in order, a batch at a time.
        let upload = { (matrix: [Float]) -> (Tensor, Tensor) throws -> Tensor in
            { userTensor, input in
                let first = Int(try backend.readInt32s(userTensor)[0])
                backend.write(Array(matrix[(first * items)..<((first + input.rows) * items)]), to: input)
                return input
            }
        }
        rows.append(try both("DiffRec (this run)", upload(model)))
        for (name, signal) in signals { rows.append(try both(name, upload(signal))) }
        for (name, signal) in signals {
            var best: (weight: Double, valid: RankingMetrics, blend: [Float])? = nil
            for weight in blendWeights {
                let blend = zip(model, signal).map { $0 + Float(weight) * $1 }
                let valid = try evaluator.evaluate(.valid, score: upload(blend))
                if best == nil || valid.ndcg(at: 20) > best!.valid.ndcg(at: 20) { best = (weight, valid, blend) }
            }
            let row = Row(name: "DiffRec + \(name)", valid: best!.valid, test: try evaluator.evaluate(.test, score: upload(best!.blend)),
                          blendWeight: best!.weight)
            observer?.log(String(format: "%@ (α = %g): valid N@20 %.4f, test N@20 %.4f", row.name, best!.weight, row.valid.ndcg(at: 20), row.test.ndcg(at: 20)))
            rows.append(row)
        }
        return rows
    }

    /// Each row shifted to mean 0 and scaled to standard deviation 1 (a constant row stays 0).
    static func standardisedRows(_ values: [Float], columns: Int) -> [Float] {
        var out = values
        for start in stride(from: 0, to: values.count, by: columns) {
            let row = values[start..<(start + columns)]
            let mean = row.reduce(0.0) { $0 + Double($1) } / Double(columns)
            let variance = row.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / Double(columns)
            let scale = variance > 0 ? 1 / variance.squareRoot() : 0
            for j in start..<(start + columns) { out[j] = Float((Double(values[j]) - mean) * scale) }
        }
        return out
    }
}
