/// Statistics of score rows over the items a ranking sees (those outside the user's training row).
public enum RankingRows {
    /// The mean and standard deviation of a row of scores over the columns outside `seen` (sorted, unique): the items a
    /// ranking sees. (0, 0) when every column is seen.
    public static func unseenMoments(_ row: ArraySlice<Float>, seen: ArraySlice<Int32>) -> (mean: Double, deviation: Double) {
        var kept = [Bool](repeating: true, count: row.count)
        for i in seen { kept[Int(i)] = false }
        var count = 0.0, sum = 0.0, squares = 0.0
        for (j, x) in zip(row.indices, row) where kept[j - row.startIndex] { count += 1; sum += Double(x) }
        guard count > 0 else { return (0, 0) }
        let mean = sum / count
        for (j, x) in zip(row.indices, row) where kept[j - row.startIndex] { squares += (Double(x) - mean) * (Double(x) - mean) }
        return (mean, (squares / count).squareRoot())
    }
}
