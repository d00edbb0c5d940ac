import RefitCompute

/// Which held-out split an evaluation scores.
public enum EvaluationSplit: String, Codable, Sendable, CaseIterable {
    case valid
    case test
}

/// A CSR matrix uploaded to a backend.
extension DeviceCSR {
    /// `values` (one per entry, in column order) make a weighted matrix; without them every entry is 1.
    public init(_ matrix: CSRMatrix, values: [Float]? = nil, on backend: any Backend) throws {
        precondition(values.map { $0.count == matrix.nonzeroCount } ?? true, "one value per entry")
        let entries = max(matrix.columns.count, 1)  // OpenCL needs non-empty buffers
        self.init(rowPointers: try backend.tensor(matrix.rowPointers, shape: [matrix.rowCount + 1]),
                  columnIndices: try backend.tensor(matrix.columns.isEmpty ? [0] : matrix.columns, shape: [entries]),
                  values: try values.map { try backend.tensor($0.isEmpty ? [0] : $0, shape: [entries]) },
                  rows: matrix.rowCount, columns: matrix.columnCount)
    }
}

extension CSRMatrix {
    /// The entry-wise union of two matrices of the same shape (train + valid: the test-time mask).
    public func union(_ other: CSRMatrix) -> CSRMatrix {
        precondition(rowCount == other.rowCount && columnCount == other.columnCount, "union of differently shaped matrices")
        return CSRMatrix(columnCount: columnCount, rows: (0..<rowCount).map { Array(Set(row($0)).union(other.row($0))).sorted() })
    }
}

/// Full-ranking evaluation on the device: for each batch of users the model scores every item, seen items are
/// masked, the device selects the top K, and only those K indices per user come back to the host.
///
/// The mask follows DiffRec: training items when validating; training and validation items when testing.
public final class TopKEvaluator: @unchecked Sendable {
    public let backend: any Backend
    public let dataset: InteractionDataset
    public let batchSize: Int
    public let cutoffs: [Int]
    /// The model's input rows: the training matrix, with the dataset's `trainValues` when it has them.
    public let inputRows: DeviceCSR
    /// The training matrix's pattern (0/1): the items a validation ranking never shows.
    public let seenRows: DeviceCSR
    let testMask: DeviceCSR
    private var buffers: [Int: (users: Tensor, input: Tensor, indices: Tensor, values: Tensor)] = [:]

    public init(backend: any Backend, dataset: InteractionDataset, batchSize: Int = 400, cutoffs: [Int] = [10, 20, 50, 100]) throws {
        self.backend = backend
        self.dataset = dataset
        self.batchSize = batchSize
        self.cutoffs = cutoffs
        seenRows = try DeviceCSR(dataset.train, on: backend)
        inputRows = dataset.trainValues == nil ? seenRows : try DeviceCSR(dataset.train, values: dataset.trainValues, on: backend)
        testMask = try DeviceCSR(dataset.train.union(dataset.valid), on: backend)
    }

    private func batchBuffers(_ rows: Int) throws -> (users: Tensor, input: Tensor, indices: Tensor, values: Tensor) {
        if let b = buffers[rows] { return b }
        let k = cutoffs.max()!
        let b = (try backend.makeTensor([rows], .int32), try backend.makeTensor([rows, dataset.itemCount], .float32),
                 try backend.makeTensor([rows, k], .int32), try backend.makeTensor([rows, k], .float32))
        buffers[rows] = b
        return b
    }

    /// Which rows a scorer is given: the model's input rows, or their 0/1 pattern (what the simple baselines read;
    /// the same rows unless the dataset has `trainValues`).
    public enum Input: Sendable { case model, pattern }

    /// Scores every user. `score(users, input)` gets the batch's user indices (int32, B) and their dense training
    /// rows (B, I) and returns scores (B, I); it may overwrite `input`.
    public func evaluate(_ split: EvaluationSplit, input: Input = .model, score: (Tensor, Tensor) throws -> Tensor) throws -> RankingMetrics {
        try evaluate(split, input: input, into: RankingMetrics(cutoffs: cutoffs), score: score)
    }

    /// `evaluate` that hands every user's ranking to `accumulator` (per-user results, `UserRankings`).
    public func evaluate<Accumulator: RankingAccumulator>(_ split: EvaluationSplit, input: Input = .model, into accumulator: Accumulator,
                                                          score: (Tensor, Tensor) throws -> Tensor) throws -> Accumulator {
        let rows = input == .model ? inputRows : seenRows
        let truth = split == .valid ? dataset.valid : dataset.test
        let mask = split == .valid ? seenRows : testMask
        let k = cutoffs.max()!
        var accumulator = accumulator
        var start = 0
        while start < dataset.userCount {
            let count = min(batchSize, dataset.userCount - start)
            let b = try batchBuffers(count)
            backend.write((start..<(start + count)).map { Int32($0) }, to: b.users)
            backend.densifyRows(rows, rows: b.users, into: b.input)
            let scores = try score(b.users, b.input)
            backend.topK(scores, k: k, mask: .sparse(mask, rows: b.users), indices: b.indices, values: b.values)
            let top = try backend.readInt32s(b.indices)
            for r in 0..<count {
                accumulator.add(user: start + r, ranked: top[(r * k)..<((r + 1) * k)], groundTruth: Set(truth.row(start + r)))
            }
            start += count
        }
        return accumulator
    }
}
