/// The data training uses: train, valid and test as binary matrices over the same users × items.
public struct InteractionDataset: Sendable {
    public let train: CSRMatrix
    public let valid: CSRMatrix
    public let test: CSRMatrix
    /// Raw ids of the dense user and item indices.
    public let userIDs: [String]
    public let itemIDs: [String]
    public let statistics: DatasetStatistics
    /// FNV-1a 64 over the shape and the three CSR matrices, in hex: equal fingerprints mean identical splits,
    /// so a run's config can prove which data it was trained on.
    public let fingerprint: String
    /// When the data have a time column: the time of each training interaction, in the order of `train.columns`.
    public let trainTimes: [Double]?
    /// What a model sees for each training interaction, in the order of `train.columns`; nil: 1 for every one
    /// (T-DiffRec's time weights set it, `weighted(by:)`). Masks and teachers read the 0/1 pattern, never these.
    public internal(set) var trainValues: [Float]? = nil

    public var userCount: Int { userIDs.count }
    public var itemCount: Int { itemIDs.count }

    /// Users with at least one training interaction: the ones a trainer learns from. DiffRec trains on every row
    /// of its matrix, but an empty row teaches only "recommend nothing" (such users are still evaluated).
    public func usersWithTrainingInteractions() -> [Int] { (0..<userCount).filter { train.rowLength($0) > 0 } }

    public func matrix(_ split: DataSplit) -> CSRMatrix {
        switch split {
        case .train: train
        case .valid: valid
        case .test: test
        }
    }

    /// Filters the log (`options.minRating`, duplicates, `options.kCore`) and splits it: as shipped when the
    /// rows carry their split, else per user by time when there are timestamps, else per user at random.
    public init(log: InteractionLog, options: DatasetOptions = DatasetOptions()) throws {
        let appliedMinRating = log.ratings == nil ? nil : options.minRating
        let kept = log.filtered(minRating: appliedMinRating, kCore: options.kCore)
        if kept.count == 0 {
            var filters: [String] = []
            if let r = appliedMinRating { filters.append("rating ≥ \(r.formattedRating)") }
            if let k = options.kCore { filters.append("\(k)-core") }
            throw DataError.emptyDataset(source: log.source,
                                         reason: filters.isEmpty ? "to split" : "after the filters (\(filters.joined(separator: ", ")))")
        }

        var trainRows = [[Int32]](repeating: [], count: kept.userCount), validRows = trainRows, testRows = trainRows
        var trainOnlyUsers = 0
        let method: String
        if let shipped = kept.splits {
            method = "as shipped"
            for row in 0..<kept.count {
                let u = Int(kept.users[row]), item = kept.items[row]
                switch shipped[row] {
                case .train: trainRows[u].append(item)
                case .valid: validRows[u].append(item)
                case .test: testRows[u].append(item)
                }
            }
        } else {
            method = kept.timestamps != nil ? "chronological per user \(options.splitRatios)"
                                            : "random per user \(options.splitRatios), seed \(options.seed)"
            var random = SplitMix64(seed: options.seed)
            let (offsets, ordered) = kept.rowsByUser()
            for u in 0..<kept.userCount {
                var items = ordered[offsets[u]..<offsets[u + 1]].map { kept.items[$0] }
                if items.count < options.minInteractionsToSplit {
                    trainOnlyUsers += 1
                    trainRows[u] = items
                    continue
                }
                if kept.timestamps == nil { random.shuffle(&items) }
                let n = options.splitRatios.counts(items.count)
                trainRows[u] = Array(items[..<n.train])
                validRows[u] = Array(items[n.train..<(n.train + n.valid)])
                testRows[u] = Array(items[(n.train + n.valid)...])
            }
        }
        let train = CSRMatrix(columnCount: kept.itemCount, rows: trainRows)
        let valid = CSRMatrix(columnCount: kept.itemCount, rows: validRows)
        let test = CSRMatrix(columnCount: kept.itemCount, rows: testRows)
        (self.train, self.valid, self.test) = (train, valid, test)
        userIDs = kept.userIDs
        itemIDs = kept.itemIDs
        fingerprint = Self.fingerprint(of: [train, valid, test])
        trainTimes = kept.timestamps.map { Self.entryTimes(train, log: kept, times: $0) }
        statistics = DatasetStatistics(
            source: log.source, format: log.format,
            rowsRead: log.count, usersRead: log.userCount, itemsRead: log.itemCount,
            hasRatings: log.ratings != nil, hasTimestamps: log.timestamps != nil,
            minRating: appliedMinRating, kCore: options.kCore,
            users: kept.userCount, items: kept.itemCount,
            trainInteractions: train.nonzeroCount, validInteractions: valid.nonzeroCount, testInteractions: test.nonzeroCount,
            interactionsPerUser: Self.perUserSummary(train, valid, test), trainOnlyUsers: trainOnlyUsers,
            minInteractionsToSplit: options.minInteractionsToSplit, splitMethod: method)
    }

    /// Wraps splits made elsewhere (a file written by `refit data split`, a test's hand-made matrices).
    public init(train: CSRMatrix, valid: CSRMatrix, test: CSRMatrix, userIDs: [String], itemIDs: [String],
                source: String, format: DataFormat, trainTimes: [Double]? = nil) {
        precondition([valid, test].allSatisfy { $0.rowCount == train.rowCount && $0.columnCount == train.columnCount })
        precondition(userIDs.count == train.rowCount && itemIDs.count == train.columnCount)
        precondition(trainTimes.map { $0.count == train.nonzeroCount } ?? true, "one time per training interaction")
        (self.train, self.valid, self.test, self.userIDs, self.itemIDs) = (train, valid, test, userIDs, itemIDs)
        self.trainTimes = trainTimes
        fingerprint = Self.fingerprint(of: [train, valid, test])
        let total = train.nonzeroCount + valid.nonzeroCount + test.nonzeroCount
        statistics = DatasetStatistics(
            source: source, format: format, rowsRead: total, usersRead: train.rowCount, itemsRead: train.columnCount,
            hasRatings: false, hasTimestamps: trainTimes != nil, minRating: nil, kCore: nil,
            users: train.rowCount, items: train.columnCount,
            trainInteractions: train.nonzeroCount, validInteractions: valid.nonzeroCount, testInteractions: test.nonzeroCount,
            interactionsPerUser: Self.perUserSummary(train, valid, test), trainOnlyUsers: 0, minInteractionsToSplit: 0, splitMethod: "as given")
    }

    /// The time of each entry of `train` (its rows' items in column order), from the log rows that put them there.
    /// The log is deduplicated, so each (user, item) of train comes from one row.
    private static func entryTimes(_ train: CSRMatrix, log: InteractionLog, times: [Double]) -> [Double] {
        var entryTimes = [Double](repeating: 0, count: train.nonzeroCount)
        for row in 0..<log.count {
            if let e = train.entry(Int(log.users[row]), Int(log.items[row])) { entryTimes[e] = times[row] }
        }
        return entryTimes
    }

    private static func perUserSummary(_ train: CSRMatrix, _ valid: CSRMatrix, _ test: CSRMatrix) -> CountSummary {
        CountSummary((0..<train.rowCount).map { train.rowLength($0) + valid.rowLength($0) + test.rowLength($0) })
    }

    private static func fingerprint(of matrices: [CSRMatrix]) -> String {
        Fingerprint.of(matrices.flatMap { m in [[Int32(m.rowCount), Int32(m.columnCount)], m.rowPointers, m.columns] })
    }

    /// The statistics as a few aligned lines, for `refit data stats` and the start of every run.
    public func describe() -> String {
        let s = statistics
        var read = "\(s.rowsRead.grouped) rows, \(s.usersRead.grouped) users, \(s.itemsRead.grouped) items"
        read += s.hasRatings ? ", with ratings" : ", no ratings"
        read += s.hasTimestamps ? ", with timestamps" : ", no timestamps"
        var filters: [String] = []
        if let r = s.minRating { filters.append("rating ≥ \(r.formattedRating)") }
        filters.append("duplicates removed")
        if let k = s.kCore { filters.append("\(k)-core") }
        var lines = [
            ("data", "\(s.source) (\(s.format))"),
            ("read", read),
            ("kept", "\(s.users.grouped) users, \(s.items.grouped) items, \(s.interactions.grouped) interactions, density \(percent(s.density)) (\(filters.joined(separator: ", ")))"),
            ("split", "\(s.splitMethod): train \(s.trainInteractions.grouped), valid \(s.validInteractions.grouped), test \(s.testInteractions.grouped)"),
            ("per user", "min \(s.interactionsPerUser.min.grouped), median \(s.interactionsPerUser.median.formattedMedian), max \(s.interactionsPerUser.max.grouped) interactions"),
        ]
        if s.trainOnlyUsers > 0 {
            lines.append(("", "\(s.trainOnlyUsers.grouped) users with fewer than \(s.minInteractionsToSplit) interactions are in train only"))
        }
        lines.append(("fingerprint", fingerprint))
        let width = lines.map(\.0.count).max()!
        return lines.map { $0.0.padding(width) + "  " + $0.1 }.joined(separator: "\n")
    }

    private func percent(_ fraction: Double) -> String {
        let scaled = (fraction * 100_000).rounded() / 1000
        return "\(scaled)%"
    }
}

/// What was read, what was kept, and how it was split.
public struct DatasetStatistics: Sendable, Equatable, Codable {
    public var source: String
    public var format: DataFormat
    /// Rows in the input (ratings, for rating files) before any filter, and the distinct users and items in them.
    public var rowsRead: Int
    public var usersRead: Int
    public var itemsRead: Int
    public var hasRatings: Bool
    public var hasTimestamps: Bool
    /// The rating threshold that was applied; nil when none was (no ratings, or all rows kept).
    public var minRating: Float?
    public var kCore: Int?
    /// Users and items after filtering: the dimensions of the matrices.
    public var users: Int
    public var items: Int
    public var trainInteractions: Int
    public var validInteractions: Int
    public var testInteractions: Int
    /// Interactions per user over all three splits.
    public var interactionsPerUser: CountSummary
    /// Users with fewer than `minInteractionsToSplit` interactions, kept in train only.
    public var trainOnlyUsers: Int
    public var minInteractionsToSplit: Int
    public var splitMethod: String

    public var interactions: Int { trainInteractions + validInteractions + testInteractions }
    public var density: Double { users * items == 0 ? 0 : Double(interactions) / Double(users * items) }
}

public struct CountSummary: Sendable, Equatable, Codable {
    public var min: Int
    public var median: Double
    public var max: Int

    public init(_ values: [Int]) {
        let sorted = values.sorted()
        guard let first = sorted.first, let last = sorted.last else {
            (min, median, max) = (0, 0, 0)
            return
        }
        let mid = sorted.count / 2
        (min, max) = (first, last)
        median = sorted.count % 2 == 1 ? Double(sorted[mid]) : Double(sorted[mid - 1] + sorted[mid]) / 2
    }
}

extension Int {
    /// 1234567 → "1,234,567", independent of locale.
    var grouped: String {
        let digits = String(magnitude)
        var result = ""
        for (i, d) in digits.enumerated() {
            if i > 0 && (digits.count - i) % 3 == 0 { result.append(",") }
            result.append(d)
        }
        return self < 0 ? "-" + result : result
    }
}

extension Float {
    /// 4 → "4", 3.5 → "3.5".
    var formattedRating: String { self == rounded() ? String(Int(self)) : "\(self)" }
}

extension Double {
    var formattedMedian: String { self == rounded() ? Int(self).grouped : "\(self)" }
}

extension String {
    func padding(_ width: Int) -> String { self + String(repeating: " ", count: width - count) }
}
