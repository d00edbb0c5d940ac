/// Which part of a split an interaction belongs to.
public enum DataSplit: String, Sendable, Codable, CaseIterable {
    case train, valid, test
}

/// The interactions exactly as a reader found them: one entry per data row, in file order.
///
/// Raw ids are mapped to dense indices in order of first appearance; `userIDs[u]` and `itemIDs[i]` give the
/// raw ids back, so recommendations can be printed in the user's own ids. Nothing is filtered or deduplicated
/// here: the dataset builder and the sequential scenario each decide what to keep, from the same rows.
public struct InteractionLog: Sendable {
    public var users: [Int32]
    public var items: [Int32]
    /// One per row when the source has a rating column.
    public var ratings: [Float]?
    /// One per row when the source has a time column (Unix seconds as written, or any increasing number).
    public var timestamps: [Double]?
    /// The split each row was shipped in (DiffRec's files); nil when Refit chooses the split.
    public var splits: [DataSplit]?
    public var userIDs: [String]
    public var itemIDs: [String]
    /// Where the rows came from, for messages: a path, or `builtin:demo`.
    public var source: String
    public var format: DataFormat

    public init(users: [Int32], items: [Int32], ratings: [Float]? = nil, timestamps: [Double]? = nil,
                splits: [DataSplit]? = nil, userIDs: [String], itemIDs: [String], source: String, format: DataFormat) {
        precondition(users.count == items.count)
        precondition(ratings.map { $0.count == users.count } ?? true)
        precondition(timestamps.map { $0.count == users.count } ?? true)
        precondition(splits.map { $0.count == users.count } ?? true)
        self.users = users
        self.items = items
        self.ratings = ratings
        self.timestamps = timestamps
        self.splits = splits
        self.userIDs = userIDs
        self.itemIDs = itemIDs
        self.source = source
        self.format = format
    }

    public var count: Int { users.count }
    public var userCount: Int { userIDs.count }
    public var itemCount: Int { itemIDs.count }

    /// Row indices grouped by user, each group in time order (ties, and logs without time, in file order).
    ///
    /// `rows[offsets[u] ..< offsets[u + 1]]` are user u's rows. The sequential scenario, deduplication and the
    /// chronological split all need exactly this order, so it is computed in one place: a stable counting
    /// sort by user over the rows in time order (file order when that is already time order for every user).
    public func rowsByUser() -> (offsets: [Int], rows: [Int]) {
        var offsets = [Int](repeating: 0, count: userCount + 1)
        for u in users { offsets[Int(u) + 1] += 1 }
        for u in 0..<userCount { offsets[u + 1] += offsets[u] }
        var next = offsets
        var rows = [Int](repeating: 0, count: count)
        func place(_ row: Int) {
            let u = Int(users[row])
            rows[next[u]] = row
            next[u] += 1
        }
        if let timestamps, !isTimeOrderedPerUser(timestamps) {
            for row in Self.timeOrder(timestamps) { place(row) }
        } else {
            for row in 0..<count { place(row) }
        }
        return (offsets, rows)
    }

    private func isTimeOrderedPerUser(_ timestamps: [Double]) -> Bool {
        var last = [Double](repeating: -.infinity, count: userCount)
        for row in 0..<count {
            let u = Int(users[row])
            if timestamps[row] < last[u] { return false }
            last[u] = timestamps[row]
        }
        return true
    }

    /// Row numbers sorted by (time, row): a stable least-significant-digit radix sort over order-preserving
    /// bit patterns of the times. Linear, and free of comparison closures, which matters for debug-built tests.
    static func timeOrder(_ timestamps: [Double]) -> [Int] {
        let keys = timestamps.map { t -> UInt64 in
            let bits = t.bitPattern
            return bits >> 63 == 1 ? ~bits : bits | (1 << 63)
        }
        var order = Array(0..<timestamps.count)
        var scratch = order
        var counts = [Int](repeating: 0, count: 257)
        keys.withUnsafeBufferPointer { keys in
            for shift in stride(from: UInt64(0), to: 64, by: 8) {
                counts.withUnsafeMutableBufferPointer { counts in
                    counts.update(repeating: 0)
                    for key in keys { counts[Int((key >> shift) & 0xFF) + 1] += 1 }
                }
                if counts.contains(keys.count) { continue }  // every key has the same byte here
                for b in 0..<256 { counts[b + 1] += counts[b] }
                order.withUnsafeBufferPointer { order in
                    scratch.withUnsafeMutableBufferPointer { scratch in
                        for row in order {
                            let b = Int((keys[row] >> shift) & 0xFF)
                            scratch[counts[b]] = row
                            counts[b] += 1
                        }
                    }
                }
                swap(&order, &scratch)
            }
        }
        return order
    }

    /// Each user's items in time order (ties by file order), repeats included.
    public func sequences() -> [[Int32]] {
        let (offsets, rows) = rowsByUser()
        return (0..<userCount).map { u in rows[offsets[u]..<offsets[u + 1]].map { items[$0] } }
    }

    /// The rows whose `keep` entry is true, with users and items that lose every row dropped and the rest
    /// renumbered in their old order. Returns `self` unchanged when every row is kept, so that indices the
    /// source fixed (DiffRec's) survive when no filter applies.
    public func keeping(_ keep: [Bool]) -> InteractionLog {
        precondition(keep.count == count)
        if !keep.contains(false) { return self }
        var userMap = [Int32](repeating: -1, count: userCount)
        var itemMap = [Int32](repeating: -1, count: itemCount)
        for row in 0..<count where keep[row] {
            userMap[Int(users[row])] = 0
            itemMap[Int(items[row])] = 0
        }
        func renumber(_ map: inout [Int32], _ ids: [String]) -> [String] {
            var kept: [String] = []
            for old in map.indices where map[old] == 0 {
                map[old] = Int32(kept.count)
                kept.append(ids[old])
            }
            return kept
        }
        let newUserIDs = renumber(&userMap, userIDs)
        let newItemIDs = renumber(&itemMap, itemIDs)
        let kept = (0..<count).filter { keep[$0] }
        return InteractionLog(
            users: kept.map { userMap[Int(users[$0])] },
            items: kept.map { itemMap[Int(items[$0])] },
            ratings: ratings.map { r in kept.map { r[$0] } },
            timestamps: timestamps.map { t in kept.map { t[$0] } },
            splits: splits.map { s in kept.map { s[$0] } },
            userIDs: newUserIDs, itemIDs: newItemIDs, source: source, format: format)
    }

    /// Implicit feedback: rows rated at least `minRating` (all rows when the log has no ratings or the
    /// threshold is nil), one row per (user, item) pair — the earliest in time order, or in file order without
    /// times (for DiffRec's files: the train copy) — and, with `kCore`, only users and items that keep at
    /// least k interactions, repeated until that holds for both at once.
    public func filtered(minRating: Float?, kCore: Int?) -> InteractionLog {
        var keep = [Bool](repeating: true, count: count)
        if let minRating, let ratings {
            for row in 0..<count where ratings[row] < minRating { keep[row] = false }
        }
        // Duplicates: walk each user's rows in time order and drop repeats of an item already seen.
        // `lastUser[i]` stamps the user that last took item i, so no per-user set is needed.
        let (offsets, rows) = rowsByUser()
        var lastUser = [Int32](repeating: -1, count: itemCount)
        for u in 0..<userCount {
            for row in rows[offsets[u]..<offsets[u + 1]] where keep[row] {
                let item = Int(items[row])
                if lastUser[item] == Int32(u) { keep[row] = false } else { lastUser[item] = Int32(u) }
            }
        }
        if let k = kCore, k > 1 {
            var changed = true
            while changed {
                changed = false
                var userDegree = [Int](repeating: 0, count: userCount)
                var itemDegree = [Int](repeating: 0, count: itemCount)
                for row in 0..<count where keep[row] {
                    userDegree[Int(users[row])] += 1
                    itemDegree[Int(items[row])] += 1
                }
                for row in 0..<count where keep[row] && (userDegree[Int(users[row])] < k || itemDegree[Int(items[row])] < k) {
                    keep[row] = false
                    changed = true
                }
            }
        }
        return keeping(keep)
    }
}
