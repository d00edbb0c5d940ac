import RefitCompute
import Testing

/// Dense rows from CSR and masked top-K: exact on both backends (selection does no arithmetic).
@Suite struct RankingTests {
    /// A random CSR matrix with sorted, unique columns per row (as `CSRMatrix` stores them), about `density` full;
    /// row 0 is empty and, when `fullRow`, row 1 holds every column.
    static func randomCSR(rows: Int, columns: Int, density: Float, seed: UInt64, fullRow: Bool = false) -> (pointers: [Int32], columns: [Int32]) {
        var pointers: [Int32] = [0], indices: [Int32] = []
        let u = randomValues(rows * columns, seed: seed)
        for r in 0..<rows {
            for c in 0..<columns where r != 0 && ((fullRow && r == 1) || (u[r * columns + c] + 1) / 2 < density) {
                indices.append(Int32(c))
            }
            pointers.append(Int32(indices.count))
        }
        return (pointers, indices)
    }

    static func deviceCSR(_ be: any Backend, _ csr: (pointers: [Int32], columns: [Int32]), columns: Int) throws -> DeviceCSR {
        DeviceCSR(rowPointers: try be.tensor(csr.pointers, shape: [csr.pointers.count]),
                  columnIndices: try be.tensor(csr.columns.isEmpty ? [0] : csr.columns, shape: [max(csr.columns.count, 1)]),
                  rows: csr.pointers.count - 1, columns: columns)
    }

    @Test(arguments: [(1, 1), (7, 33), (33, 257), (40, 2810)])
    func densifyRows(matrixRows: Int, columns: Int) throws {
        guard let pair = try BackendPair.make() else { return }
        let csr = Self.randomCSR(rows: matrixRows, columns: columns, density: 0.2, seed: 71, fullRow: matrixRows > 1)
        // Rows picked in any order, with repeats, as a shuffled batch does.
        let picks = randomInts(2 * matrixRows + 1, in: 0..<matrixRows, seed: 72)
        var expected = [Float](repeating: 0, count: picks.count * columns)
        for (r, row) in picks.enumerated() {
            for e in Int(csr.pointers[Int(row)])..<Int(csr.pointers[Int(row) + 1]) { expected[r * columns + Int(csr.columns[e])] = 1 }
        }
        for (label, be) in try pair.allBackends() {
            let out = try be.tensor(randomValues(picks.count * columns, seed: 73), shape: [picks.count, columns])  // overwritten
            be.densifyRows(try Self.deviceCSR(be, csr, columns: columns), rows: try be.tensor(picks, shape: [picks.count]), into: out)
            expectIdentical(try be.readFloats(out), expected, "densifyRows \(matrixRows)×\(columns)\(label)")
        }
    }

    /// The top-k of one row by brute force: unmasked entries above −∞, by score descending, ties to the lower column.
    static func bruteForceTopK(_ row: ArraySlice<Float>, masked: Set<Int>, k: Int) -> (indices: [Int32], values: [Float]) {
        let base = row.startIndex
        let candidates = row.indices.map { $0 - base }.filter { !masked.contains($0) && row[base + $0] > -.infinity }
        let order = candidates.sorted { (row[base + $0], -$0) > (row[base + $1], -$1) }.prefix(k)
        let padding = k - order.count
        return (order.map(Int32.init) + [Int32](repeating: -1, count: padding),
                order.map { row[base + $0] } + [Float](repeating: -.infinity, count: padding))
    }

    enum MaskKind: String, CaseIterable, Sendable { case none, sparse, dense }

    /// Runs topK on every backend for every mask kind and compares indices and values exactly to brute force; also
    /// checks that the scores are left unchanged.
    func checkTopK(_ pair: BackendPair, scores: [Float], rows: Int, columns: Int, k: Int, maskDensity: Float, seed: UInt64,
                   sourceLocation: SourceLocation = #_sourceLocation) throws {
        let csr = Self.randomCSR(rows: rows, columns: columns, density: maskDensity, seed: seed, fullRow: true)
        // Score row r is masked by CSR row maskRows[r]: reversed, so that rows 1 (full) and 0 (empty) come last.
        let maskRows = (0..<rows).map { Int32(rows - 1 - $0) }
        let maskedSets: [Set<Int>] = maskRows.map { row in
            Set((Int(csr.pointers[Int(row)])..<Int(csr.pointers[Int(row) + 1])).map { Int(csr.columns[$0]) })
        }
        let denseMask: [Float] = (0..<rows * columns).map { i in maskedSets[i / columns].contains(i % columns) ? 1 : 0 }
        let backends = try pair.allBackends()
        for kind in MaskKind.allCases {
            var expectedIndices: [Int32] = [], expectedValues: [Float] = []
            for r in 0..<rows {
                let best = Self.bruteForceTopK(scores[r * columns..<(r + 1) * columns], masked: kind == .none ? [] : maskedSets[r], k: k)
                expectedIndices += best.indices
                expectedValues += best.values
            }
            for (label, be) in backends {
                let s = try be.tensor(scores, shape: [rows, columns])
                let indices = try be.tensor([Int32](repeating: 7, count: rows * k), shape: [rows, k])  // overwritten
                let values = try be.tensor([Float](repeating: 7, count: rows * k), shape: [rows, k])
                let mask: RowMask?
                switch kind {
                case .none: mask = nil
                case .sparse: mask = .sparse(try Self.deviceCSR(be, csr, columns: columns), rows: try be.tensor(maskRows, shape: [rows]))
                case .dense: mask = .dense(try be.tensor(denseMask.map { $0 * -2.5 }, shape: [rows, columns]))  // any non-zero masks
                }
                be.topK(s, k: k, mask: mask, indices: indices, values: values)
                let what = "topK k=\(k) \(rows)×\(columns) mask \(kind.rawValue)\(label)"
                expectIdentical(try be.readInt32s(indices), expectedIndices, what + " indices", sourceLocation: sourceLocation)
                expectIdentical(try be.readFloats(values), expectedValues, what + " values", sourceLocation: sourceLocation)
                expectIdentical(try be.readFloats(s), scores, what + " leaves scores unchanged", sourceLocation: sourceLocation)
            }
        }
    }

    /// Includes k > N, and k = 4500 of 5000, whose per-row lists exceed local memory (the one-work-item-per-row path).
    @Test(arguments: [(1, 1, 1), (1, 7, 3), (7, 33, 5), (33, 257, 10), (5, 257, 300), (57, 2810, 1), (57, 2810, 20), (57, 2810, 100),
                      (3, 4099, 50), (3, 5000, 4500)])
    func topKOnRandomScores(rows: Int, columns: Int, k: Int) throws {
        guard let pair = try BackendPair.make() else { return }
        try checkTopK(pair, scores: randomValues(rows * columns, seed: 81), rows: rows, columns: columns, k: k, maskDensity: 0.3, seed: 82)
    }

    /// Scores on a coarse grid tie everywhere; the lower column must win each tie on both backends.
    @Test(arguments: [(7, 33, 5), (33, 257, 40), (20, 2810, 100), (20, 2810, 1)])
    func topKBreaksTiesTowardTheLowerIndex(rows: Int, columns: Int, k: Int) throws {
        guard let pair = try BackendPair.make() else { return }
        var scores = randomValues(rows * columns, seed: 83).map { ($0 * 4).rounded() / 4 }  // 9 distinct values
        // Row 0 is constant, row 1 is constant except ±0, so every choice there is a tie.
        for c in 0..<columns {
            scores[c] = 0.5
            if rows > 1 { scores[columns + c] = c % 2 == 0 ? 0 : -0.0 }
        }
        try checkTopK(pair, scores: scores, rows: rows, columns: columns, k: k, maskDensity: 0.5, seed: 84)
        // Directly: on a constant row with no mask, the first k columns in order.
        for (label, be) in try pair.allBackends() {
            let indices = try be.makeTensor([1, k], .int32), values = try be.makeTensor([1, k], .float32)
            be.topK(try be.tensor([Float](repeating: 0.5, count: columns), shape: [1, columns]), k: k, mask: nil, indices: indices, values: values)
            expectIdentical(try be.readInt32s(indices), (0..<k).map { Int32($0 < columns ? $0 : -1) }, "constant row\(label)")
        }
    }

    /// Rows with fewer than k eligible entries (mostly masked, or −∞ scores) pad with index −1 and value −∞.
    @Test(arguments: [(9, 33, 20), (9, 2810, 100), (4, 7, 9)])
    func topKPadsShortRows(rows: Int, columns: Int, k: Int) throws {
        guard let pair = try BackendPair.make() else { return }
        var scores = randomValues(rows * columns, seed: 85)
        for i in scores.indices where i % 3 == 0 || (i / columns == 2 && i % columns > 3) { scores[i] = -.infinity }
        for c in 0..<columns { scores[3 * columns + c] = -.infinity }  // a row with nothing eligible
        if rows > 4 { scores[4 * columns] = .infinity }  // +∞ is a score like any other
        try checkTopK(pair, scores: scores, rows: rows, columns: columns, k: k, maskDensity: 0.95, seed: 86)
    }
}
