import Foundation
import RefitCompute

/// Next-item evaluation: for every user with held-out targets, the model scores all items from the
/// last L items before the target, the user's earlier items are masked (unless `maskHistory` is off), the device
/// keeps the top K, and HR@K and NDCG@K are averaged over every evaluated user (one target each, so HR@K is
/// RankingMetrics' Recall@K and IDCG is 1).
public final class SequentialEvaluator: @unchecked Sendable {
    public let dataset: SequenceDataset
    public let backend: any Backend
    public let batchSize: Int
    public let historyLength: Int
    public let cutoffs: [Int]
    public let maskHistory: Bool
    /// Users with a validation and a test target.
    public let users: [Int]
    let validMask: DeviceCSR
    let testMask: DeviceCSR
    private var buffers: [Int: (users: Tensor, indices: Tensor, values: Tensor)] = [:]

    public init(backend: any Backend, dataset: SequenceDataset, historyLength: Int, batchSize: Int = 512,
                cutoffs: [Int] = [10, 20], maskHistory: Bool = true) throws {
        self.backend = backend
        self.dataset = dataset
        self.batchSize = batchSize
        self.historyLength = historyLength
        self.cutoffs = cutoffs
        self.maskHistory = maskHistory
        users = (0..<dataset.userCount).filter { SequenceDataset.isEvaluated(dataset.sequences[$0].count) }
        func mask(_ split: DataSplit) -> CSRMatrix {
            CSRMatrix(columnCount: dataset.itemCount, rows: (0..<dataset.userCount).map { u in
                guard let end = dataset.heldOutPosition(user: u, split: split) else { return [] }
                return Array(Set(dataset.sequences[u][0..<end])).sorted()
            })
        }
        validMask = try DeviceCSR(mask(.valid), on: backend)
        testMask = try DeviceCSR(mask(.test), on: backend)
    }

    private func batchBuffers(_ rows: Int) throws -> (users: Tensor, indices: Tensor, values: Tensor) {
        if let b = buffers[rows] { return b }
        let k = cutoffs.max()!
        let b = (try backend.makeTensor([rows], .int32), try backend.makeTensor([rows, k], .int32), try backend.makeTensor([rows, k], .float32))
        buffers[rows] = b
        return b
    }

    /// Evaluates `score(histories, batchIndex)`: it gets B·L history items and returns scores (B, items).
    public func evaluate(_ split: EvaluationSplit, score: ([Int32], Int) throws -> Tensor) throws -> RankingMetrics {
        try evaluate(split, into: RankingMetrics(cutoffs: cutoffs), score: score)
    }

    /// `evaluate` that hands every user's ranking to `accumulator` (per-user results, `UserRankings`).
    public func evaluate<Accumulator: RankingAccumulator>(_ split: EvaluationSplit, into accumulator: Accumulator,
                                                          score: ([Int32], Int) throws -> Tensor) throws -> Accumulator {
        let dataSplit: DataSplit = split == .valid ? .valid : .test
        let k = cutoffs.max()!
        var accumulator = accumulator
        for (batchIndex, start) in stride(from: 0, to: users.count, by: batchSize).enumerated() {
            let batch = Array(users[start..<min(users.count, start + batchSize)])
            let b = try batchBuffers(batch.count)
            var histories: [Int32] = []
            histories.reserveCapacity(batch.count * historyLength)
            var targets: [Int32] = []
            for u in batch {
                let position = dataset.heldOutPosition(user: u, split: dataSplit)!
                histories += dataset.history(user: u, before: position, length: historyLength)
                targets.append(dataset.sequences[u][position])
            }
            let scores = try score(histories, batchIndex)
            backend.write(batch.map { Int32($0) }, to: b.users)
            let mask: RowMask? = maskHistory ? .sparse(split == .valid ? validMask : testMask, rows: b.users) : nil
            backend.topK(scores, k: k, mask: mask, indices: b.indices, values: b.values)
            let top = try backend.readInt32s(b.indices)
            for r in batch.indices { accumulator.add(user: batch[r], ranked: top[(r * k)..<((r + 1) * k)], groundTruth: [targets[r]]) }
        }
        return accumulator
    }

    /// Evaluates a sequential model; DreamRec's sampling noise is drawn from a fixed stream per batch.
    public func evaluate(_ split: EvaluationSplit, model: SequentialModel, samples: Int = 1) throws -> RankingMetrics {
        try evaluate(split, model: model, samples: samples, into: RankingMetrics(cutoffs: cutoffs))
    }

    /// The model's evaluation handed to `accumulator` (per-user results, `UserRankings`).
    public func evaluate<Accumulator: RankingAccumulator>(_ split: EvaluationSplit, model: SequentialModel, samples: Int = 1,
                                                          into accumulator: Accumulator) throws -> Accumulator {
        try evaluate(split, into: accumulator) { histories, batch in
            try model.scores(histories: histories, seed: 0x4556_414C ^ UInt64(batch) << 32, samples: samples)
        }
    }

    /// Most-popular ranking by training interactions, the same for every user.
    public func popularity(_ split: EvaluationSplit) throws -> RankingMetrics {
        let counts = dataset.trainingItemCounts().map(Float.init)
        var tensors: [Int: Tensor] = [:]
        return try evaluate(split) { histories, _ in
            let rows = histories.count / historyLength
            if let t = tensors[rows] { return t }
            let t = try backend.tensor(Array([[Float]](repeating: counts, count: rows).joined()), shape: [rows, counts.count])
            tensors[rows] = t
            return t
        }
    }
}

extension RankingMetrics {
    /// Next-item metrics under their usual names: HR@K (Recall@K with one target), NDCG@K and MRR@K.
    public var nextItemValues: [(key: String, value: Double)] {
        cutoffs.flatMap { k in [("hr@\(k)", recall(at: k)), ("ndcg@\(k)", ndcg(at: k)), ("mrr@\(k)", mrr(at: k))] }
    }
}
