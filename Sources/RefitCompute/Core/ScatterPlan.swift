/// The inverse of a row gather, built on the host from indices the host already has (a batch's item ids), so
/// that `scatterAddRows` can add each table row's gradient in a fixed order without atomics: same seed, same bits.
///
/// Entry u adds the dY rows `sources[offsets[u] ..< offsets[u + 1]]` (in increasing order) to table row `targets[u]`.
/// Negative indices (padding) are left out.
public struct ScatterPlan: Sendable {
    /// Distinct table rows, increasing: int32 (count).
    public let targets: Tensor
    /// int32 (count + 1).
    public let offsets: Tensor
    /// dY rows grouped by target: int32 (number of non-negative indices, at least 1 element allocated).
    public let sources: Tensor
    /// The number of distinct table rows.
    public let count: Int

    /// The plan's three arrays for `indices`, without a device: what both backends upload.
    public static func arrays(for indices: [Int32]) -> (targets: [Int32], offsets: [Int32], sources: [Int32]) {
        let valid = indices.indices.filter { indices[$0] >= 0 }
        // A stable sort by table row keeps each group's sources increasing.
        let order = valid.sorted { (indices[$0], $0) < (indices[$1], $1) }
        var targets: [Int32] = [], offsets: [Int32] = [0]
        for (j, r) in order.enumerated() {
            if targets.last != indices[r] {
                if !targets.isEmpty { offsets.append(Int32(j)) }
                targets.append(indices[r])
            }
        }
        offsets.append(Int32(order.count))
        if targets.isEmpty { offsets = [0] }
        return (targets, offsets, order.map { Int32($0) })
    }

    /// Uploads the plan for `indices` to `backend`.
    public init(indices: [Int32], backend: any Backend) throws {
        let (targets, offsets, sources) = Self.arrays(for: indices)
        self.count = targets.count
        self.targets = try backend.tensor(targets.isEmpty ? [0] : targets, shape: [max(targets.count, 1)])
        self.offsets = try backend.tensor(offsets, shape: [offsets.count])
        self.sources = try backend.tensor(sources.isEmpty ? [0] : sources, shape: [max(sources.count, 1)])
    }
}
