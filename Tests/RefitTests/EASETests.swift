import Foundation
import Testing
@testable import Refit
import RefitCompute

/// EASE: the Float64 inverse, the closed form's defining property, and its collaborative targets.
@Suite struct EASETests {
    @Test(arguments: [1, 2, 37])
    func inverseOfSymmetricPositiveDefiniteIsAnInverse(size n: Int) throws {
        // A = MᵀM + I from a pseudo-random M: symmetric positive definite with a spread of eigenvalues.
        let m = (0..<(n * n)).map { Double(Philox.normal(seed: 11, index: UInt64($0))) }
        var a = [Double](repeating: 0, count: n * n)
        for i in 0..<n { for j in 0..<n { for k in 0..<n { a[i * n + j] += m[k * n + i] * m[k * n + j] } } }
        for i in 0..<n { a[i * n + i] += 1 }
        let inverse = try EASEModel.inverseOfSymmetricPositiveDefinite(a, size: n)
        for i in 0..<n {
            for j in 0..<n {
                let product = (0..<n).reduce(0.0) { $0 + a[i * n + $1] * inverse[$1 * n + j] }
                #expect(abs(product - (i == j ? 1 : 0)) < 1e-9, "(A·A⁻¹)[\(i)][\(j)] = \(product)")
            }
        }
    }

    @Test func inverseRefusesAMatrixThatIsNotPositiveDefinite() {
        #expect(throws: ModelError.self) { try EASEModel.inverseOfSymmetricPositiveDefinite([1, 2, 2, 1], size: 2) }
    }

    /// B minimises ‖X − XB‖² + λ‖B‖² subject to diag(B) = 0, so (G + λI)(I − B) is diagonal: check that on a small
    /// matrix, and that scores are x_u·B on the device.
    @Test func weightsSatisfyTheClosedFormsConditions() throws {
        let backend = CPUBackend()
        let rows: [[Int32]] = [[0, 1, 2], [1, 2], [0, 3], [2, 3, 4], [0, 1, 4], [4]]
        let train = CSRMatrix(columnCount: 5, rows: rows)
        let lambda = 2.0
        let model = try EASEModel(backend: backend, train: train, lambda: lambda)
        let b = try backend.readFloats(model.weights).map(Double.init)
        let g = EASEModel.regularisedGram(train, lambda: lambda)
        let n = 5
        for i in 0..<n {
            #expect(b[i * n + i] == 0)
            for j in 0..<n where i != j {
                let entry = (0..<n).reduce(0.0) { $0 + g[i * n + $1] * ((($1 == j) ? 1 : 0) - b[$1 * n + j]) }
                #expect(abs(entry) < 1e-5, "((G + λI)(I − B))[\(i)][\(j)] = \(entry)")
            }
        }
        let input = try backend.tensor([1, 0, 0, 1, 0] as [Float], shape: [1, 5])
        let scores = try backend.readFloats(try model.scores(input))
        for j in 0..<n { #expect(abs(Double(scores[j]) - (b[0 * n + j] + b[3 * n + j])) < 1e-6) }
    }

    @Test func targetsAreTheTopPositiveUnseenScoresNormalised() throws {
        let backend = CPUBackend()
        let train = CSRMatrix(columnCount: 5, rows: [[0, 1, 2], [1, 2], [0, 3], [2, 3, 4], [0, 1, 4], [4]])
        let model = try EASEModel(backend: backend, train: train, lambda: 1)
        let targets = try CollaborativeTargets.ease(train: train, model: model, targetSize: 2, backend: backend, blockSize: 4)
        let b = try backend.readFloats(model.weights)
        for u in 0..<train.rowCount {
            let seen = Set(train.row(u))
            var scores = [Int32: Double]()
            for j in 0..<5 where !seen.contains(Int32(j)) { scores[Int32(j)] = train.row(u).reduce(0.0) { $0 + Double(b[Int($1) * 5 + j]) } }
            let expected = scores.filter { $0.value > 0 }.sorted { $0.value > $1.value || ($0.value == $1.value && $0.key < $1.key) }.prefix(2)
            #expect(targets.items[u] == expected.map(\.key), "user \(u)")
            #expect(abs(targets.weights[u].reduce(0, +) - (expected.isEmpty ? 0 : 1)) < 1e-6)
        }
    }

    @Test func standardisedRowsHaveZeroMeanAndUnitDeviation() {
        let z = BaselineComparison.standardisedRows([1, 2, 3, 4, 5, 5, 5, 5], columns: 4)
        let expected = [-3, -1, 1, 3].map { Float(Double($0) / 5.0.squareRoot()) }
        for j in 0..<4 { #expect(abs(z[j] - expected[j]) < 1e-6) }
        #expect(Array(z[4...]) == [0, 0, 0, 0])  // a constant row stays 0
    }

    /// With a training matrix, the statistics come from the other items only: a training item scored 100 does not
    /// change the scale, and it is mapped by the same shift and scale.
    @Test func standardisedRowsIgnoreTheTrainingItems() {
        let seen = CSRMatrix(columnCount: 4, rows: [[3], []])
        let z = BaselineComparison.standardisedRows([1, 2, 3, 100, 1, 2, 3, 100], columns: 4, excluding: seen)
        let scale = 1 / (2.0 / 3).squareRoot()
        for (j, x) in [1.0, 2, 3, 100].enumerated() { #expect(abs(Double(z[j]) - (x - 2) * scale) < 1e-4) }
        let unmasked = BaselineComparison.standardisedRows(Array([1, 2, 3, 100] as [Float]), columns: 4)
        for j in 0..<4 { #expect(abs(z[4 + j] - unmasked[j]) < 1e-6) }
    }

    /// The readout fit on both backends, on an awkward shape (37 users, 5 features, 11 columns): a target that is an
    /// affine map of the features comes back unchanged, and any target's fit matches an independent Float64 solve.
    @Test func hiddenLayerFitSolvesTheNormalEquations() throws {
        let (users, width, columns) = (37, 5, 11)
        let hidden = (0..<(users * width)).map { Float(tanh(Philox.normal(seed: 3, index: UInt64($0)))) }
        let map = (0..<((width + 1) * columns)).map { Philox.normal(seed: 4, index: UInt64($0)) }
        var affine = [Float](repeating: 0, count: users * columns)
        for u in 0..<users {
            for j in 0..<columns {
                affine[u * columns + j] = map[width * columns + j]
                    + (0..<width).reduce(Float(0)) { $0 + hidden[u * width + $1] * map[$1 * columns + j] }
            }
        }
        let noise = (0..<(users * columns)).map { Philox.normal(seed: 5, index: UInt64($0)) }
        var backends: [any Backend] = [CPUBackend()]
        if let device = try PretrainTestSupport.openCLBackend("the readout fit") { backends.append(device) }
        for backend in backends {
            let readout = try HiddenLayerFit(hidden: hidden, width: width, backend: backend)
            let exact = try readout.fit(affine, columns: columns)
            for k in affine.indices { #expect(abs(exact[k] - affine[k]) < 1e-3, "\(backend.deviceDescription): entry \(k)") }
            let fitted = try readout.fit(noise, columns: columns)
            let expected = Self.leastSquares(hidden, width: width, noise, columns: columns)
            for k in noise.indices { #expect(abs(Double(fitted[k]) - expected[k]) < 1e-4, "\(backend.deviceDescription): entry \(k)") }
        }
    }

    /// The reference: for each column, solve the normal equations AᵀA c = Aᵀt (A = [H, 1]) by Gaussian elimination
    /// with partial pivoting in Float64, and return A·c.
    static func leastSquares(_ hidden: [Float], width: Int, _ targets: [Float], columns: Int) -> [Double] {
        let users = hidden.count / width, n = width + 1
        func a(_ u: Int, _ f: Int) -> Double { f < width ? Double(hidden[u * width + f]) : 1 }
        var out = [Double](repeating: 0, count: users * columns)
        for j in 0..<columns {
            var m = (0..<n).map { r in (0..<n).map { c in (0..<users).reduce(0.0) { $0 + a($1, r) * a($1, c) } }
                + [(0..<users).reduce(0.0) { $0 + a($1, r) * Double(targets[$1 * columns + j]) }] }
            for p in 0..<n {
                let pivot = (p..<n).max { abs(m[$0][p]) < abs(m[$1][p]) }!
                m.swapAt(p, pivot)
                for r in 0..<n where r != p {
                    let factor = m[r][p] / m[p][p]
                    for c in p...n { m[r][c] -= factor * m[p][c] }
                }
            }
            for u in 0..<users { out[u * columns + j] = (0..<n).reduce(0.0) { $0 + a(u, $1) * m[$1][n] / m[$1][$1] } }
        }
        return out
    }

    /// On a tiny trained run: the model's row is its own evaluation, EASE's row is EASE's, and each blend's α is
    /// one of the weights tried.
    @Test func comparisonReproducesEachModelsOwnScores() throws {
        try PretrainTestSupport.withTemporaryFolder { folder in
            let (runFolder, _, dataset, _) = try CheckpointTests.trainTinyRun(in: folder)
            let backend = CPUBackend()
            let run = try TrainedRun(runFolder, backend: backend)
            let rows = try BaselineComparison.compare(run.model, dataset: run.dataset, batchSize: run.configuration.diffrec.batchSize,
                                                      neighbors: Teacher.defaultNeighbors, targetSize: TargetSpec().size, easeLambda: 10,
                                                      backend: backend)
            #expect(rows.map(\.name).count == 12)
            let evaluator = try TopKEvaluator(backend: backend, dataset: dataset, batchSize: run.configuration.diffrec.batchSize)
            let own = try evaluator.evaluate(.test) { _, input in try run.model.scores(input) }
            let diffRec = rows.first { $0.name.hasPrefix("DiffRec (") }!
            #expect(abs(diffRec.test.ndcg(at: 20) - own.ndcg(at: 20)) < 1e-9)
            let ease = try EASEModel(backend: backend, train: dataset.train, lambda: 10)
            let easeRow = rows.first { $0.name.hasPrefix("EASE") }!
            #expect(abs(easeRow.valid.ndcg(at: 20) - (try ease.evaluate(.valid, with: evaluator)).ndcg(at: 20)) < 1e-9)
            for blend in rows where blend.blendWeight != nil {
                #expect((BaselineComparison.blendWeights + BaselineComparison.inverseAnchors).contains(blend.blendWeight!))
            }
        }
    }
}
