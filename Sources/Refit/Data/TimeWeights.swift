/// T-DiffRec's time-aware reweighting (Wang et al. 2023, §3.4): each user's training interactions, in time order, are
/// given weights rising linearly from `minimum` to `maximum`, so that the model's input and target say which of a
/// user's items are recent. A user with one interaction gets `minimum`, as in DiffRec's release (`np.linspace`).
public struct TimeWeights: Codable, Sendable, Equatable, CustomStringConvertible {
    public var minimum: Float
    public var maximum: Float

    public init(minimum: Float, maximum: Float) throws {
        guard minimum.isFinite, maximum.isFinite, minimum > 0, minimum <= maximum else {
            throw DataError.badOption("time weights \(minimum),\(maximum) must be finite with 0 < MIN ≤ MAX (DiffRec uses 0.1,1.0)")
        }
        (self.minimum, self.maximum) = (minimum, maximum)
    }

    /// `0.1,1.0`.
    public init(parsing text: String) throws {
        let parts = text.split(separator: ",").map { Float($0.filter { !$0.isWhitespace }) }
        guard parts.count == 2, let minimum = parts[0], let maximum = parts[1] else {
            throw DataError.badOption("--time-weights '\(text)' is not MIN,MAX (for example 0.1,1.0)")
        }
        try self.init(minimum: minimum, maximum: maximum)
    }

    public var description: String { "\(minimum),\(maximum)" }

    /// The weight of each entry of `train`, in the order of its columns. Ties in time keep the column order.
    public func values(train: CSRMatrix, times: [Double]) -> [Float] {
        precondition(times.count == train.nonzeroCount, "one time per training interaction")
        var values = [Float](repeating: 0, count: train.nonzeroCount)
        for u in 0..<train.rowCount {
            let start = Int(train.rowPointers[u]), count = train.rowLength(u)
            let order = (start..<(start + count)).sorted { times[$0] < times[$1] || (times[$0] == times[$1] && $0 < $1) }
            for (rank, entry) in order.enumerated() {
                let fraction = count > 1 ? Double(rank) / Double(count - 1) : 0
                values[entry] = Float(Double(minimum) + (Double(maximum) - Double(minimum)) * fraction)
            }
        }
        return values
    }
}

extension InteractionDataset {
    /// The dataset with its training entries weighted by time (nil: unweighted, as it is).
    public func weighted(by weights: TimeWeights?) throws -> InteractionDataset {
        guard let weights else { return self }
        guard let trainTimes else {
            throw DataError.badOption("--time-weights needs timestamps, and \(statistics.source) has none: give a ratings file with a time column, or --timestamps FILE for a DiffRec folder")
        }
        var copy = self
        copy.trainValues = weights.values(train: train, times: trainTimes)
        return copy
    }
}
