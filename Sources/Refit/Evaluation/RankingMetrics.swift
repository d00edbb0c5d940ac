import Foundation

/// Precision, Recall, NDCG and MRR at several cut-offs, with DiffRec's conventions (for comparable numbers):
/// Recall divides by |GT_u|, IDCG sums over min(|GT_u|, K) positions, and every metric is averaged over ALL
/// evaluated users, a user without ground truth counting as zero (as DiffRec's `computeTopNAccuracy` does).
public struct RankingMetrics: Sendable, Equatable, Codable {
    public private(set) var cutoffs: [Int]
    /// Sums over users, divided by `users` when read.
    private var precisionSums: [Double]
    private var recallSums: [Double]
    private var ndcgSums: [Double]
    private var mrrSums: [Double]
    public private(set) var users = 0

    public init(cutoffs: [Int] = [10, 20, 50, 100]) {
        precondition(!cutoffs.isEmpty && cutoffs.allSatisfy { $0 > 0 }, "cut-offs must be positive")
        self.cutoffs = cutoffs.sorted()
        precisionSums = Array(repeating: 0, count: cutoffs.count)
        recallSums = precisionSums
        ndcgSums = precisionSums
        mrrSums = precisionSums
    }

    /// Adds one user: `ranked` are the recommended items, best first (at least max(cutoffs) long, −1 = none);
    /// `groundTruth` the held-out items.
    public mutating func add(ranked: some Collection<Int32>, groundTruth: Set<Int32>) {
        users += 1
        guard !groundTruth.isEmpty else { return }
        let ranked = Array(ranked)
        for (index, k) in cutoffs.enumerated() {
            let user = Self.user(ranked: ranked, groundTruth: groundTruth, cutoff: k)
            precisionSums[index] += user.precision
            recallSums[index] += user.recall
            ndcgSums[index] += user.ndcg
            mrrSums[index] += user.reciprocalRank
        }
    }

    /// One user's metrics at cut-off `k` (`groundTruth` not empty): what `add` sums, and `UserRankings` keeps per user.
    static func user(ranked: [Int32], groundTruth: Set<Int32>, cutoff k: Int)
        -> (precision: Double, recall: Double, ndcg: Double, reciprocalRank: Double) {
        var hits = 0, dcg = 0.0, idcg = 0.0, reciprocalRank = 0.0
        for position in 0..<min(k, ranked.count) where groundTruth.contains(ranked[position]) {
            hits += 1
            dcg += 1 / log2(Double(position + 2))
            if reciprocalRank == 0 { reciprocalRank = 1 / Double(position + 1) }
        }
        for position in 0..<min(k, groundTruth.count) { idcg += 1 / log2(Double(position + 2)) }
        return (Double(hits) / Double(k), Double(hits) / Double(groundTruth.count), dcg / idcg, reciprocalRank)
    }

    /// Merges another accumulator over different users.
    public mutating func merge(_ other: RankingMetrics) {
        precondition(other.cutoffs == cutoffs)
        users += other.users
        for i in cutoffs.indices {
            precisionSums[i] += other.precisionSums[i]
            recallSums[i] += other.recallSums[i]
            ndcgSums[i] += other.ndcgSums[i]
            mrrSums[i] += other.mrrSums[i]
        }
    }

    private func mean(_ sums: [Double], _ k: Int) -> Double {
        guard let i = cutoffs.firstIndex(of: k), users > 0 else { return .nan }
        return sums[i] / Double(users)
    }

    public func precision(at k: Int) -> Double { mean(precisionSums, k) }
    public func recall(at k: Int) -> Double { mean(recallSums, k) }
    public func ndcg(at k: Int) -> Double { mean(ndcgSums, k) }
    public func mrr(at k: Int) -> Double { mean(mrrSums, k) }

    /// `["precision@10": …, "recall@10": …, "ndcg@10": …, "mrr@10": …, …]`, the keys of metrics.jsonl.
    public var values: [(key: String, value: Double)] {
        cutoffs.flatMap { k in
            [("precision@\(k)", precision(at: k)), ("recall@\(k)", recall(at: k)), ("ndcg@\(k)", ndcg(at: k)), ("mrr@\(k)", mrr(at: k))]
        }
    }
}

/// What a ranking pass hands each evaluated user's ranking to: the averaged metrics, or per-user results as well.
public protocol RankingAccumulator {
    /// `ranked`: the top items, best first (−1 = none); `groundTruth`: the user's held-out items.
    mutating func add(user: Int, ranked: ArraySlice<Int32>, groundTruth: Set<Int32>)
}

extension RankingMetrics: RankingAccumulator {
    public mutating func add(user: Int, ranked: ArraySlice<Int32>, groundTruth: Set<Int32>) {
        add(ranked: ranked, groundTruth: groundTruth)
    }
}

/// The averaged metrics of a split, and for each user with held-out items their NDCG@`cutoff` and top `cutoff` items:
/// what `UserChanges` compares between two models.
public struct UserRankings: RankingAccumulator, Sendable {
    public private(set) var metrics: RankingMetrics
    public let cutoff: Int
    /// The users with held-out items, in evaluation order.
    public private(set) var users: [Int] = []
    public private(set) var ndcg: [Double] = []
    /// `cutoff` items per user, best first, row-major (−1 = none).
    public private(set) var top: [Int32] = []

    public init(cutoffs: [Int], cutoff: Int = 20) {
        metrics = RankingMetrics(cutoffs: cutoffs)
        self.cutoff = cutoff
    }

    public mutating func add(user: Int, ranked: ArraySlice<Int32>, groundTruth: Set<Int32>) {
        metrics.add(ranked: ranked, groundTruth: groundTruth)
        // A user without held-out items has no NDCG to change (the average counts them as zero).
        guard !groundTruth.isEmpty else { return }
        let kept = Array(ranked.prefix(cutoff))
        users.append(user)
        ndcg.append(RankingMetrics.user(ranked: kept, groundTruth: groundTruth, cutoff: cutoff).ndcg)
        top += kept + [Int32](repeating: -1, count: cutoff - kept.count)
    }
}
