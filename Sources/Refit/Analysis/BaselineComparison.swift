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
    /// The 1/β tried for the anchored lift optimum x₀_ref + L/β, on raw scores (β from 1 down to 0.01).
    public static let inverseAnchors: [Double] = [1, 3, 10, 30, 100]
    /// Dense host copies of every score matrix are kept: refused above this many users × items.
    public static let maximumEntries = 200_000_000

    /// The rows for `diffrec` on `dataset`: user-kNN with `neighbors` per user, EASE with `easeLambda`, each signal's top `targetSize` as its target.
    public static func compare(_ diffrec: DiffRecModel, dataset: InteractionDataset, batchSize: Int, neighbors: Int, targetSize: Int,
                               easeLambda: Double, backend: any Backend, observer: TrainingObserver? = nil) throws -> [Row] {
        let (users, items) = (dataset.userCount, dataset.itemCount)
        guard users * items <= maximumEntries else {
            throw ModelError.unsupported("baselines keeps dense score matrices on the host; \(users) users × \(items) items is too many")
        }
        let evaluator = try TopKEvaluator(backend: backend, dataset: dataset, batchSize: batchSize)
        func both(_ name: String, _ scores: @escaping (Tensor, Tensor) throws -> Tensor) throws -> Row {
            let row = Row(name: name, valid: try evaluator.evaluate(.valid, score: scores), test: try evaluator.evaluate(.test, score: scores),
                          blendWeight: nil)
            observer?.log(String(format: "%@: valid N@20 %.4f, test N@20 %.4f", name, row.valid.ndcg(at: 20), row.test.ndcg(at: 20)))
            return row
        }
        let popularity = PopularityBaseline(backend: backend, train: dataset.train)
        var rows = [try both("popularity") { _, input in try popularity.scores(batch: input.rows) }]

        // Every signal as a (U, I) host matrix; the model's scores come from its full reverse chain. The evaluator's own
        // pass (users in order, their training rows as input) collects them; its ranking is not needed.
        // The model and EASE read the model's input rows (T-DiffRec's weights when the run has them); the kNN signals
        // are built from the 0/1 matrix.
        func hostScores(_ score: @escaping (Tensor) throws -> Tensor) throws -> [Float] {
            var all = [Float](); all.reserveCapacity(users * items)
            _ = try evaluator.evaluate(.valid) { _, input in
                let scores = try score(input)
                all += try backend.readFloats(scores)
                return scores
            }
            return all
        }
        func standardised(_ scores: [Float]) -> [Float] { standardisedRows(scores, columns: items, excluding: dataset.train) }
        func sparseScores(_ targets: CollaborativeTargets) -> [Float] {
            var all = [Float](repeating: 0, count: users * items)
            for u in 0..<users { for (i, w) in zip(targets.items[u], targets.weights[u]) { all[u * items + Int(i)] = w } }
            return standardised(all)
        }
        // The model's scores, and the activations entering its output layer at the last reverse step (for the fit below).
        var hidden = [Float]()
        let rawModel = try hostScores { input in
            let scores = try diffrec.scores(input)
            hidden += try backend.readFloats(try diffrec.denoiser.lastHiddenActivations(batch: input.rows))
            return scores
        }
        let model = standardised(rawModel)
        let ease = try EASEModel(backend: backend, train: dataset.train, lambda: easeLambda)
        let knn = try CollaborativeTargets.userKNN(train: dataset.train, neighbors: neighbors,
                                                   targetSize: targetSize, backend: backend)
        let signals: [(String, [Float])] = [
            ("user-kNN (k = \(neighbors), top \(targetSize))", sparseScores(knn)),
            ("item-graph (top \(targetSize))", sparseScores(CollaborativeTargets.itemGraph(train: dataset.train, targetSize: targetSize))),
            // EASE scores the rows the model reads, as the EASE teacher does (`TargetSpec.build`): the blend stays what
            // collab-score aims at.
            (String(format: "EASE (λ = %g)", easeLambda), standardised(try hostScores { try ease.scores($0) })),
        ]
        // Host rows back onto the device for the evaluator: users arrive in order, a batch at a time.
        let upload = { (matrix: [Float]) -> (Tensor, Tensor) throws -> Tensor in
            { userTensor, input in
                let first = Int(try backend.readInt32s(userTensor)[0])
                backend.write(Array(matrix[(first * items)..<((first + input.rows) * items)]), to: input)
                return input
            }
        }
        rows.append(try both("DiffRec (this run)", upload(rawModel)))
        for (name, signal) in signals { rows.append(try both(name, upload(signal))) }
        func blended(_ name: String, _ model: [Float], _ signal: [Float], weights: [Double] = blendWeights) throws -> Row {
            var best: (weight: Double, valid: RankingMetrics, blend: [Float])? = nil
            for weight in weights {
                let blend = zip(model, signal).map { $0 + Float(weight) * $1 }
                let valid = try evaluator.evaluate(.valid, score: upload(blend))
                if best == nil || valid.ndcg(at: 20) > best!.valid.ndcg(at: 20) { best = (weight, valid, blend) }
            }
            let row = Row(name: name, valid: best!.valid, test: try evaluator.evaluate(.test, score: upload(best!.blend)),
                          blendWeight: best!.weight)
            observer?.log(String(format: "%@ (α = %g): valid N@20 %.4f, test N@20 %.4f", row.name, best!.weight, row.valid.ndcg(at: 20), row.test.ndcg(at: 20)))
            return row
        }
        for (name, signal) in signals { rows.append(try blended("DiffRec + \(name)", model, signal)) }

        // collab-lift's targets L_u = w_u − w̄_u. The anchored pathwise objective ⟨L_u, x₀⟩ − β·½‖x₀ − x₀_ref‖² is
        // maximised by x₀ = x₀_ref + L_u/β: its row is what a lift reward can add at most (1/β chosen on validation). The
        // next row keeps only the part of L_u/β that the model's last hidden layer expresses: all that fine-tuning which
        // ends at the output layer's readout can reach.
        let readout = try HiddenLayerFit(hidden: hidden, width: hidden.count / users, backend: backend)
        let easeTargets = try CollaborativeTargets.ease(train: dataset.train, values: dataset.trainValues, model: ease, targetSize: targetSize, backend: backend)
        for (name, targets) in [("user-kNN", knn), ("EASE", easeTargets)] {
            let population = targets.populationMean()
            var lift = [Float](repeating: 0, count: users * items)
            for u in 0..<users {
                let (i, w) = targets.lift(user: u, population: population, seen: dataset.train.row(u))
                for (item, weight) in zip(i, w) { lift[u * items + Int(item)] = weight }
            }
            rows.append(try blended("DiffRec + \(name) lift / β", rawModel, lift, weights: inverseAnchors))
            rows.append(try blended("DiffRec + \(name) lift / β, last-layer fit", rawModel, try readout.fit(lift, columns: items),
                                    weights: inverseAnchors))
        }
        return rows
    }

    /// Each row shifted and scaled so that its entries outside `excluding`'s row (the items a ranking sees) have mean 0
    /// and standard deviation 1; a row constant there becomes 0. The training items are left out because the model
    /// scores them far above the rest: counting them would make the scale of a blend depend on the user's history.
    static func standardisedRows(_ values: [Float], columns: Int, excluding: CSRMatrix? = nil) -> [Float] {
        var out = values
        for (u, start) in stride(from: 0, to: values.count, by: columns).enumerated() {
            let row = values[start..<(start + columns)]
            let (mean, deviation) = RankingRows.unseenMoments(row, seen: excluding?.row(u) ?? [])
            let scale = deviation > 0 ? 1 / deviation : 0
            for j in 0..<columns { out[start + j] = Float((Double(values[start + j]) - mean) * scale) }
        }
        return out
    }
}
