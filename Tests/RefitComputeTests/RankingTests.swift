@testable import RefitCompute
import Testing

/// Dense rows from CSR and masked top-K on the CPU reference, exactly against brute force (selection does no
/// arithmetic; KernelCaseTests compares the kernels with the reference).
@Suite struct RankingTests {
    let be = CPUBackend()

    @Test(arguments: [(1, 1), (33, 257)])
    func densifyRows(matrixRows: Int, columns: Int) throws {
        let csr = CheckInputs.csr(rows: matrixRows, columns: columns, density: 0.2, seed: 71, fullRow: matrixRows > 1)
        // Rows picked in any order, with repeats, as a shuffled batch does.
        let picks = randomInts(2 * matrixRows + 1, in: 0..<matrixRows, seed: 72)
        var expected = [Float](repeating: 0, count: picks.count * columns)
        for (r, row) in picks.enumerated() {
            for e in Int(csr.pointers[Int(row)])..<Int(csr.pointers[Int(row) + 1]) { expected[r * columns + Int(csr.columns[e])] = 1 }
        }
        let out = try be.tensor(randomValues(picks.count * columns, seed: 73), shape: [picks.count, columns])  // overwritten
        be.densifyRows(try CheckInputs.deviceCSR(be, csr, columns: columns), rows: try be.tensor(picks, shape: [picks.count]), into: out)
        expectIdentical(try be.readFloats(out), expected, "densifyRows \(matrixRows)×\(columns)")
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

    /// Runs topK for every mask kind and compares indices and values exactly to brute force; also
    /// checks that the scores are left unchanged.
    func checkTopK(scores: [Float], rows: Int, columns: Int, k: Int, maskDensity: Float, seed: UInt64,
                   sourceLocation: SourceLocation = #_sourceLocation) throws {
        let csr = CheckInputs.csr(rows: rows, columns: columns, density: maskDensity, seed: seed, fullRow: true)
        // Score row r is masked by CSR row maskRows[r]: reversed, so that rows 1 (full) and 0 (empty) come last.
        let maskRows = (0..<rows).map { Int32(rows - 1 - $0) }
        let maskedSets: [Set<Int>] = maskRows.map { row in
            Set((Int(csr.pointers[Int(row)])..<Int(csr.pointers[Int(row) + 1])).map { Int(csr.columns[$0]) })
        }
        let denseMask: [Float] = (0..<rows * columns).map { i in maskedSets[i / columns].contains(i % columns) ? 1 : 0 }
        for kind in MaskKind.allCases {
            var expectedIndices: [Int32] = [], expectedValues: [Float] = []
            for r in 0..<rows {
                let best = Self.bruteForceTopK(scores[r * columns..<(r + 1) * columns], masked: kind == .none ? [] : maskedSets[r], k: k)
                expectedIndices += best.indices
                expectedValues += best.values
            }
            let s = try be.tensor(scores, shape: [rows, columns])
            let indices = try be.tensor([Int32](repeating: 7, count: rows * k), shape: [rows, k])  // overwritten
            let values = try be.tensor([Float](repeating: 7, count: rows * k), shape: [rows, k])
            let mask: RowMask?
            switch kind {
            case .none: mask = nil
            case .sparse: mask = .sparse(try CheckInputs.deviceCSR(be, csr, columns: columns), rows: try be.tensor(maskRows, shape: [rows]))
            case .dense: mask = .dense(try be.tensor(denseMask.map { $0 * -2.5 }, shape: [rows, columns]))  // any non-zero masks
            }
            be.topK(s, k: k, mask: mask, indices: indices, values: values)
            let what = "topK k=\(k) \(rows)×\(columns) mask \(kind.rawValue)"
            expectIdentical(try be.readInt32s(indices), expectedIndices, what + " indices", sourceLocation: sourceLocation)
            expectIdentical(try be.readFloats(values), expectedValues, what + " values", sourceLocation: sourceLocation)
            expectIdentical(try be.readFloats(s), scores, what + " leaves scores unchanged", sourceLocation: sourceLocation)
        }
    }

    /// The kernel cases' scores (`KernelCases.TopKScores`) and masks, k > N included.
    @Test(arguments: [(KernelCases.TopKScores.random, 1, 1, 1), (.random, 7, 33, 5), (.random, 5, 257, 300), (.random, 57, 2810, 20),
                      (.ties, 7, 33, 5), (.ties, 20, 2810, 100), (.padding, 9, 33, 20), (.padding, 4, 7, 9)])
    func topK(scores kind: KernelCases.TopKScores, rows: Int, columns: Int, k: Int) throws {
        try checkTopK(scores: kind.values(rows: rows, columns: columns), rows: rows, columns: columns, k: k, maskDensity: kind.maskDensity,
                      seed: kind.maskSeed)
    }

    /// On a constant row with no mask, the first k columns in order (and −1 past the row).
    @Test(arguments: [(33, 5), (7, 9)])
    func topKOfAConstantRowIsTheFirstColumns(columns: Int, k: Int) throws {
        let indices = try be.makeTensor([1, k], .int32), values = try be.makeTensor([1, k], .float32)
        be.topK(try be.tensor([Float](repeating: 0.5, count: columns), shape: [1, columns]), k: k, mask: nil, indices: indices, values: values)
        expectIdentical(try be.readInt32s(indices), (0..<k).map { Int32($0 < columns ? $0 : -1) }, "constant row")
    }
}
