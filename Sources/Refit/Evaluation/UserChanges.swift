/// What fine-tuning changed for users, as a run folder's `users.json` keeps it: how each user's NDCG@K moved between
/// two rankings of the same users (a histogram with fixed bins, and counts of improved, unchanged and worse users), and
/// how popular the recommended items were before and after. Popularity is an item's number of training interactions;
/// items fall into ten deciles by it, the most popular tenth first. Small whatever the number of users.
public struct UserChanges: Codable, Equatable, Sendable {
    /// The fixed bin edges of the per-user change in NDCG@K: finer near zero, where most users are. Bin i holds changes
    /// in [edges[i], edges[i+1]), the last one also its upper edge.
    public static let changeEdges: [Double] = [-1, -0.2, -0.1, -0.05, -0.02, -0.005, 0.005, 0.02, 0.05, 0.1, 0.2, 1]

    /// The metric compared per user ("ndcg@20") and the split.
    public var metric: String
    public var split: String
    /// Users with held-out items in that split.
    public var users: Int
    public var improved: Int
    public var unchanged: Int
    public var worse: Int
    /// The change (after − before) of each user's metric, counted in the bins between `changeEdges`.
    public var changeEdges: [Double]
    public var changeCounts: [Int]
    /// The fewest training interactions of an item in each popularity decile (most popular first).
    public var decileLeastInteractions: [Int]
    public var before: Recommendations
    public var after: Recommendations

    /// One model's top-K lists over all users.
    public struct Recommendations: Codable, Equatable, Sendable {
        /// The mean of the per-user metric (over `users`, unlike the results table, which counts users without
        /// held-out items as zero).
        public var meanMetric: Double
        /// The mean number of training interactions of a recommended item.
        public var meanItemInteractions: Double
        /// Distinct items recommended to anyone.
        public var distinctItems: Int
        /// The share of all recommendations that falls in each popularity decile (sums to 1).
        public var shareByDecile: [Double]
    }

    /// Compares `before` and `after`, rankings of the same users; `itemInteractions[i]` is item i's training interactions.
    public init(before: UserRankings, after: UserRankings, itemInteractions: [Int], split: EvaluationSplit) {
        precondition(before.users == after.users && before.cutoff == after.cutoff, "user changes compare rankings of the same users")
        metric = "ndcg@\(before.cutoff)"
        self.split = split.rawValue
        users = before.users.count
        let changes = zip(before.ndcg, after.ndcg).map { $1 - $0 }
        // Equal rankings give bitwise equal NDCGs; anything else moved.
        improved = changes.filter { $0 > 0 }.count
        worse = changes.filter { $0 < 0 }.count
        unchanged = users - improved - worse
        changeEdges = Self.changeEdges
        changeCounts = [Int](repeating: 0, count: changeEdges.count - 1)
        for change in changes {
            let bin = changeEdges.lastIndex { $0 <= change } ?? 0
            changeCounts[min(bin, changeCounts.count - 1)] += 1
        }
        // Items by popularity, most popular first (ties by index), cut into ten equal groups.
        let order = itemInteractions.indices.sorted { (itemInteractions[$0], $1) > (itemInteractions[$1], $0) }
        var decile = [Int](repeating: 0, count: itemInteractions.count), least = [Int](repeating: 0, count: 10)
        for (rank, item) in order.enumerated() {
            decile[item] = rank * 10 / order.count
            least[decile[item]] = itemInteractions[item]  // the order descends: the last one written is the least
        }
        decileLeastInteractions = least
        func recommendations(_ rankings: UserRankings) -> Recommendations {
            let items = rankings.top.filter { $0 >= 0 }.map(Int.init)
            var counts = [Int](repeating: 0, count: 10)
            for item in items { counts[decile[item]] += 1 }
            let total = Double(max(items.count, 1))
            return Recommendations(meanMetric: rankings.ndcg.reduce(0, +) / Double(max(rankings.ndcg.count, 1)),
                                   meanItemInteractions: Double(items.map { itemInteractions[$0] }.reduce(0, +)) / total,
                                   distinctItems: Set(items).count, shareByDecile: counts.map { Double($0) / total })
        }
        self.before = recommendations(before)
        self.after = recommendations(after)
    }
}
