import RefitCompute

/// Scores every item by its number of training interactions: the same ranking for every user, seen items
/// masked by the evaluator. The floor any personalised model must clear.
public final class PopularityBaseline {
    let backend: any Backend
    let counts: [Float]
    private var rows: [Int: Tensor] = [:]

    public init(backend: any Backend, train: CSRMatrix) {
        self.backend = backend
        counts = train.columnCounts().map(Float.init)
    }

    /// Scores (B, I) for a batch of B users.
    public func scores(batch: Int) throws -> Tensor {
        try rows.reused(batch) { try backend.tensor(Array([[Float]](repeating: counts, count: batch).joined()), shape: [batch, counts.count]) }
    }
}
