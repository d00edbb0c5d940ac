/// The sequential scenario's data: each user's items in time order, leave-one-out.
///
/// The last item of a user's sequence is the test target and the one before it the validation target; every
/// earlier position from the second on is a training target whose history is the `L` items before it
/// (left-padded with −1). Users with fewer than 3 items have no held-out targets and train on all positions.
public struct SequenceDataset: Sendable {
    public let source: String
    public let format: DataFormat
    public let userIDs: [String]
    public let itemIDs: [String]
    /// Each user's items in time order (ties in file order).
    public let sequences: [[Int32]]
    public let statistics: SequenceStatistics
    public let fingerprint: String
    /// Every training target as (user, position in the user's sequence), users in order.
    public let trainingExamples: [TrainingExample]

    public struct TrainingExample: Sendable, Equatable {
        public let user: Int32
        public let position: Int32
    }

    /// How many leading items of a sequence of `count` are training data: all but the validation and test targets,
    /// or every item when the sequence is too short (fewer than 3) to hold any back. The one rule for what a
    /// model, a baseline or a reward may learn from.
    public static func trainingLength(_ count: Int) -> Int { isEvaluated(count) ? count - 2 : count }

    /// Whether a sequence of `count` items has a validation and a test target.
    public static func isEvaluated(_ count: Int) -> Bool { count >= 3 }

    public var userCount: Int { userIDs.count }
    public var itemCount: Int { itemIDs.count }

    /// Implicit feedback from `log`: rows rated at least `minRating` (nil: every row), one per (user, item) pair
    /// (the earliest), users and items k-core filtered to a fixed point.
    public init(log: InteractionLog, minRating: Float?, kCore: Int?) throws {
        let kept = log.filtered(minRating: minRating, kCore: kCore)
        guard kept.count > 0 else {
            throw DataError.badOption("\(log.source): no interactions left after filtering (min rating \(minRating.map { "\($0)" } ?? "none"), k-core \(kCore ?? 0))")
        }
        source = log.source
        format = log.format
        userIDs = kept.userIDs
        itemIDs = kept.itemIDs
        sequences = kept.sequences()
        var examples: [TrainingExample] = []
        for (u, sequence) in sequences.enumerated() {
            let end = Self.trainingLength(sequence.count)
            for position in stride(from: 1, to: end, by: 1) { examples.append(TrainingExample(user: Int32(u), position: Int32(position))) }
        }
        trainingExamples = examples
        fingerprint = Fingerprint.of([[Int32(kept.itemCount)]] + sequences)
        statistics = SequenceStatistics(
            source: log.source, format: log.format, rowsRead: log.count, usersRead: log.userCount, itemsRead: log.itemCount,
            hasTimestamps: log.timestamps != nil, minRating: log.ratings == nil ? nil : minRating, kCore: kCore,
            users: kept.userCount, items: kept.itemCount, interactions: kept.count,
            sequenceLength: CountSummary(sequences.map(\.count)), trainingExamples: examples.count,
            evaluatedUsers: sequences.filter { Self.isEvaluated($0.count) }.count)
    }

    /// Reads `source` (any format the readers accept) as sequences: by default every rating counts and users and
    /// items are 5-core, unless the source says otherwise.
    public static func load(_ source: DataSource) throws -> SequenceDataset {
        let options = try source.options
        let log = try DatasetLoader.readLog(path: source.path, format: source.format, options: options)
        return try SequenceDataset(log: log, minRating: source.minRating, kCore: source.kCore)
    }

    /// The position of `user`'s held-out target in `split` (valid: second to last, test: last), or nil when the
    /// user has fewer than 3 items or the split is train.
    public func heldOutPosition(user: Int, split: DataSplit) -> Int? {
        let n = sequences[user].count
        guard Self.isEvaluated(n) else { return nil }
        switch split {
        case .train: return nil
        case .valid: return n - 2
        case .test: return n - 1
        }
    }

    /// The `length` items before `position` in `user`'s sequence, oldest first, left-padded with −1.
    public func history(user: Int, before position: Int, length: Int) -> [Int32] {
        let sequence = sequences[user]
        let start = max(0, position - length)
        return [Int32](repeating: -1, count: length - (position - start)) + sequence[start..<position]
    }

    /// SASRec's training windows: each user's training targets (positions 1 … n−3) cut into runs of L consecutive
    /// positions, from the most recent backwards; a window is given by its last target position e. Its inputs are
    /// `history(before: e)` and slot i predicts position e − L + 1 + i (padding, −1, where that is below 1).
    public func trainingWindows(length: Int) -> [TrainingExample] {
        var windows: [TrainingExample] = []
        for (u, sequence) in sequences.enumerated() {
            let end = Self.trainingLength(sequence.count)
            var last = end - 1
            while last >= 1 {
                windows.append(TrainingExample(user: Int32(u), position: Int32(last)))
                last -= length
            }
        }
        return windows
    }

    /// The targets of the window ending at `position`, one per slot (−1 where the slot has none).
    public func windowTargets(user: Int, endingAt position: Int, length: Int) -> [Int32] {
        (0..<length).map { i in
            let p = position - length + 1 + i
            return p >= 1 ? sequences[user][p] : -1
        }
    }

    /// Training-item counts per item (positions before each user's validation target): the popularity baseline.
    public func trainingItemCounts() -> [Int] {
        var counts = [Int](repeating: 0, count: itemCount)
        for sequence in sequences {
            let end = Self.trainingLength(sequence.count)
            for item in sequence[0..<end] { counts[Int(item)] += 1 }
        }
        return counts
    }

    /// Aligned lines for the sequential data statistics and the start of every sequential run.
    public func describe(historyLength: Int? = nil) -> String {
        let s = statistics
        var filters: [String] = [s.minRating.map { "rating ≥ \($0.formattedRating)" } ?? "every rating", "duplicates removed"]
        if let k = s.kCore { filters.append("\(k)-core") }
        var lines = [
            ("data", "\(s.source) (\(s.format))"),
            ("read", "\(s.rowsRead.grouped) rows, \(s.usersRead.grouped) users, \(s.itemsRead.grouped) items, "
                + (s.hasTimestamps ? "with timestamps" : "no timestamps: file order is time order")),
            ("kept", "\(s.users.grouped) users, \(s.items.grouped) items, \(s.interactions.grouped) interactions (\(filters.joined(separator: ", ")))"),
            ("sequences", "length min \(s.sequenceLength.min.grouped), median \(s.sequenceLength.median.formattedMedian), max \(s.sequenceLength.max.grouped)"),
            ("split", "leave-one-out: \(s.trainingExamples.grouped) training targets; \(s.evaluatedUsers.grouped) users with a validation and a test target"),
        ]
        if let historyLength { lines.append(("history", "the last \(historyLength) items before each target, left-padded")) }
        lines.append(("fingerprint", fingerprint))
        let width = lines.map(\.0.count).max()!
        return lines.map { $0.0.padding(width) + "  " + $0.1 }.joined(separator: "\n")
    }
}

/// What a sequential dataset holds after filtering.
public struct SequenceStatistics: Sendable, Equatable, Codable {
    public var source: String
    public var format: DataFormat
    public var rowsRead: Int
    public var usersRead: Int
    public var itemsRead: Int
    public var hasTimestamps: Bool
    public var minRating: Float?
    public var kCore: Int?
    public var users: Int
    public var items: Int
    public var interactions: Int
    public var sequenceLength: CountSummary
    public var trainingExamples: Int
    public var evaluatedUsers: Int
}
