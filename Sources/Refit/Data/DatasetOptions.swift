/// What to read and how to turn it into train/valid/test.
public struct DatasetOptions: Sendable, Equatable {
    /// Implicit feedback keeps rows rated at least this. Applies only when the data have a rating column;
    /// nil keeps every row.
    public var minRating: Float? = 4
    /// Keep only users and items with at least this many interactions, repeated to a fixed point.
    public var kCore: Int? = nil
    public var splitRatios = SplitRatios.standard
    /// Drives the random split (data without timestamps) and the built-in dataset's generator.
    public var seed: UInt64 = 2024
    /// Users with fewer interactions than this are put in train only (and counted): with fewer than three,
    /// valid and test cannot both get one.
    public var minInteractionsToSplit = 3
    /// A file whose time column is joined to data without one, on the (user, item) pair (`TimestampJoin`).
    public var timestamps: String? = nil

    // Text files only.
    public var columns: ColumnMapping? = nil
    /// The field separator; nil detects it.
    public var separator: String? = nil
    /// Whether the first line is a header; nil detects it.
    public var hasHeader: Bool? = nil

    public init() {}
}

/// The fractions of each user's interactions that go to train, valid and test.
public struct SplitRatios: Sendable, Equatable, Codable, CustomStringConvertible {
    public var train: Double
    public var valid: Double
    public var test: Double

    public static let standard = SplitRatios(uncheckedTrain: 0.8, valid: 0.1, test: 0.1)

    private init(uncheckedTrain train: Double, valid: Double, test: Double) {
        (self.train, self.valid, self.test) = (train, valid, test)
    }

    public init(train: Double, valid: Double, test: Double) throws {
        guard [train, valid, test].allSatisfy({ $0.isFinite && $0 >= 0 }), train > 0, abs(train + valid + test - 1) < 1e-6 else {
            throw DataError.badOption("split ratios \(train)/\(valid)/\(test) must be non-negative, with train above 0, and add up to 1")
        }
        self.init(uncheckedTrain: train, valid: valid, test: test)
    }

    /// `0.8,0.1,0.1` (or with `/`).
    public init(parsing text: String) throws {
        let parts = text.split(whereSeparator: { $0 == "," || $0 == "/" }).map { Double($0.filter { !$0.isWhitespace }) }
        guard parts.count == 3, let train = parts[0], let valid = parts[1], let test = parts[2] else {
            throw DataError.badOption("--split '\(text)' is not three fractions TRAIN,VALID,TEST (for example 0.8,0.1,0.1)")
        }
        try self.init(train: train, valid: valid, test: test)
    }

    public var description: String { "\(train)/\(valid)/\(test)" }

    /// How many of a user's `n` interactions go to (train, valid, test), for n ≥ 3.
    ///
    /// valid = ⌊n·valid⌋ and test = ⌊n·test⌋, each raised to 1 when its ratio is above 0, and train takes the
    /// rest; should train be left empty (only with large valid/test ratios), valid and then test give one back.
    /// A 1e-9 slack keeps products such as 30 × 0.1 from flooring below the integer they stand for.
    public func counts(_ n: Int) -> (train: Int, valid: Int, test: Int) {
        func share(_ ratio: Double) -> Int { ratio > 0 ? max(1, Int((Double(n) * ratio + 1e-9).rounded(.down))) : 0 }
        var valid = share(self.valid), test = share(self.test)
        while n - valid - test < 1 {
            if valid > 0 && valid >= test { valid -= 1 } else { test -= 1 }
        }
        return (n - valid - test, valid, test)
    }
}
