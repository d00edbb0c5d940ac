import Foundation
import RefitCompute

/// Each user's collaborative target w_u: a distribution over at most M items that the user has NOT
/// interacted with in training, built from the training matrix alone (never validation or test).
public struct CollaborativeTargets: Sendable, Equatable {
    /// Per user: (items, weights) with weights summing to 1 (empty when no neighbour has unseen items).
    public let items: [[Int32]]
    public let weights: [[Float]]
    public let itemCount: Int

    public init(items: [[Int32]], weights: [[Float]], itemCount: Int) {
        precondition(items.count == weights.count)
        self.items = items
        self.weights = weights
        self.itemCount = itemCount
    }

    /// Keeps the `size` largest entries of a user's raw scores over unseen items, renormalised to sum to 1.
    /// Ties go to the lower item index, so targets are deterministic.
    static func normalisedTop(_ scores: [Int32: Double], seen: ArraySlice<Int32>, size: Int) -> ([Int32], [Float]) {
        let seenSet = Set(seen)
        let candidates = scores.filter { $0.value > 0 && !seenSet.contains($0.key) }
            .sorted { $0.value > $1.value || ($0.value == $1.value && $0.key < $1.key) }
            .prefix(size)
        let total = candidates.reduce(0) { $0 + $1.value }
        guard total > 0 else { return ([], []) }
        return (candidates.map(\.key), candidates.map { Float($0.value / total) })
    }

    /// User-kNN: the top-k users by cosine similarity of training rows; `c_u = Σ_v s_uv·x_v / Σ_v s_uv`.
    ///
    /// Similarities are computed on the device block by block (B users × B users at a time), so memory is
    /// O(B²) whatever the number of users; only each block's top-k per row returns to the host.
    public static func userKNN(train: CSRMatrix, neighbors k: Int, targetSize: Int, backend: any Backend, blockSize: Int = 512) throws -> CollaborativeTargets {
        let users = train.rowCount, itemCount = train.columnCount
        let matrix = try DeviceCSR(train, on: backend)
        let inverseNorms = (0..<users).map { train.rowLength($0) > 0 ? Float(1 / Double(train.rowLength($0)).squareRoot()) : 0 }
        let blocks = stride(from: 0, to: users, by: blockSize).map { $0..<min(users, $0 + blockSize) }
        // Unit-norm dense rows of one block of users.
        func normalisedRows(_ range: Range<Int>) throws -> Tensor {
            let rows = try backend.tensor(range.map { Int32($0) }, shape: [range.count])
            let dense = try backend.makeTensor([range.count, itemCount], .float32)
            backend.densifyRows(matrix, rows: rows, into: dense)
            let scale = try backend.tensor(Array(inverseNorms[range]), shape: [range.count])
            let zero = try backend.makeTensor([range.count], .float32)
            backend.combineRows(dense, scaledBy: scale, dense, scaledBy: zero, into: dense)
            return dense
        }
        var neighbours = [[(user: Int, similarity: Float)]](repeating: [], count: users)
        let kk = min(k, max(users - 1, 1))
        for rowBlock in blocks {
            let left = try normalisedRows(rowBlock)
            for columnBlock in blocks {
                let right = try normalisedRows(columnBlock)
                let similarity = try backend.makeTensor([rowBlock.count, columnBlock.count], .float32)
                backend.matmul(left, transposeA: false, right, transposeB: true, into: similarity, alpha: 1, beta: 0)
                // A user is not its own neighbour: mask the diagonal when the blocks coincide.
                var mask: RowMask? = nil
                if rowBlock == columnBlock {
                    var diagonal = [Float](repeating: 0, count: rowBlock.count * columnBlock.count)
                    for i in 0..<rowBlock.count { diagonal[i * columnBlock.count + i] = 1 }
                    mask = .dense(try backend.tensor(diagonal, shape: [rowBlock.count, columnBlock.count]))
                }
                let width = min(kk, columnBlock.count)
                let indices = try backend.makeTensor([rowBlock.count, width], .int32)
                let values = try backend.makeTensor([rowBlock.count, width], .float32)
                backend.topK(similarity, k: width, mask: mask, indices: indices, values: values)
                let top = try backend.readInt32s(indices), best = try backend.readFloats(values)
                for (r, u) in rowBlock.enumerated() {
                    for j in 0..<width where top[r * width + j] >= 0 && best[r * width + j] > 0 {
                        neighbours[u].append((columnBlock.lowerBound + Int(top[r * width + j]), best[r * width + j]))
                    }
                }
            }
        }
        var items: [[Int32]] = [], weights: [[Float]] = []
        for u in 0..<users {
            // Merge the per-block candidates: descending similarity, ties to the lower user index.
            let chosen = neighbours[u].sorted { $0.similarity > $1.similarity || ($0.similarity == $1.similarity && $0.user < $1.user) }.prefix(kk)
            var scores: [Int32: Double] = [:]
            for (v, s) in chosen { for item in train.row(v) { scores[item, default: 0] += Double(s) } }
            let (i, w) = normalisedTop(scores, seen: train.row(u), size: targetSize)
            items.append(i)
            weights.append(w)
        }
        return CollaborativeTargets(items: items, weights: weights, itemCount: itemCount)
    }

    /// Item graph: `c_u = x_u·P`, P the row-normalised item–item co-occurrence matrix with a zero diagonal.
    /// Building P costs O(Σ_u |x_u|²) and each target O(|x_u|·I): linear in the number of users.
    public static func itemGraph(train: CSRMatrix, targetSize: Int) -> CollaborativeTargets {
        let itemCount = train.columnCount
        var cooccurrence = [[Int32: Double]](repeating: [:], count: itemCount)
        for u in 0..<train.rowCount {
            let row = train.row(u)
            for i in row { for j in row where j != i { cooccurrence[Int(i)][j, default: 0] += 1 } }
        }
        let rowTotals = cooccurrence.map { $0.values.reduce(0, +) }
        var items: [[Int32]] = [], weights: [[Float]] = []
        for u in 0..<train.rowCount {
            var scores: [Int32: Double] = [:]
            for i in train.row(u) where rowTotals[Int(i)] > 0 {
                for (j, count) in cooccurrence[Int(i)] { scores[j, default: 0] += count / rowTotals[Int(i)] }
            }
            let (i, w) = normalisedTop(scores, seen: train.row(u), size: targetSize)
            items.append(i)
            weights.append(w)
        }
        return CollaborativeTargets(items: items, weights: weights, itemCount: itemCount)
    }

    /// EASE: `c_u = x_u·B` with B the EASE item–item weights (`EASEModel`), for blocks of users on the device; the
    /// top `targetSize` positive scores over unseen items, renormalised. A stronger collaborative teacher than
    /// user-kNN where its own ranking beats the pre-trained model's (`refit baselines` tells).
    /// `values` weight the rows scored (`InteractionDataset.trainValues`); the mask is the pattern.
    public static func ease(train: CSRMatrix, values: [Float]? = nil, model: EASEModel, targetSize: Int, backend: any Backend,
                            blockSize: Int = 512) throws -> CollaborativeTargets {
        let users = train.rowCount, itemCount = train.columnCount
        let matrix = try DeviceCSR(train, values: values, on: backend)
        let width = min(targetSize, itemCount)
        var items: [[Int32]] = [], weights: [[Float]] = []
        for start in stride(from: 0, to: users, by: blockSize) {
            let rows = min(blockSize, users - start)
            let userTensor = try backend.tensor((start..<(start + rows)).map { Int32($0) }, shape: [rows])
            let dense = try backend.makeTensor([rows, itemCount], .float32)
            backend.densifyRows(matrix, rows: userTensor, into: dense)
            let scores = try model.scores(dense)
            let indices = try backend.makeTensor([rows, width], .int32)
            let values = try backend.makeTensor([rows, width], .float32)
            backend.topK(scores, k: width, mask: .sparse(matrix, rows: userTensor), indices: indices, values: values)
            let top = try backend.readInt32s(indices), best = try backend.readFloats(values)
            for r in 0..<rows {
                var scores: [Int32: Double] = [:]
                for j in 0..<width where top[r * width + j] >= 0 { scores[top[r * width + j]] = Double(best[r * width + j]) }
                let (i, w) = normalisedTop(scores, seen: train.row(start + r), size: targetSize)
                items.append(i)
                weights.append(w)
            }
        }
        return CollaborativeTargets(items: items, weights: weights, itemCount: itemCount)
    }

    /// w̄: the mean target over all users, dense over the items.
    func populationMean() -> [Double] {
        var mean = [Double](repeating: 0, count: itemCount)
        for (row, w) in zip(items, weights) { for (i, x) in zip(row, w) { mean[Int(i)] += Double(x) } }
        return mean.map { $0 / Double(max(items.count, 1)) }
    }

    /// The lift targets of `user`: w_u − w̄_u, with w̄_u the population mean restricted to the user's unseen items and
    /// renormalised to sum 1, so the weights sum to 0. Empty when the user has no target.
    func lift(user: Int, population: [Double], seen: ArraySlice<Int32>) -> (items: ArraySlice<Int32>, weights: [Float]) {
        guard !items[user].isEmpty else { return ([], []) }
        var weight = population
        for i in seen { weight[Int(i)] = 0 }
        let total = weight.reduce(0, +)
        if total > 0 { for j in weight.indices { weight[j] = -weight[j] / total } }
        for (i, w) in zip(items[user], weights[user]) { weight[Int(i)] += Double(w) }
        let kept = weight.indices.filter { weight[$0] != 0 }
        return (kept.map { Int32($0) }[...], kept.map { Float(weight[$0]) })
    }

    // MARK: Cache (targets.tsv in the run folder: user index, item index, weight)

    public func write(to url: URL) throws {
        var text = "user\titem\tweight\n"
        for (u, row) in items.enumerated() {
            for (item, weight) in zip(row, weights[u]) { text += "\(u)\t\(item)\t\(weight)\n" }
        }
        try AtomicFile.write(text, to: url)
    }

    public static func read(from url: URL, users: Int, itemCount: Int) throws -> CollaborativeTargets {
        let text = try String(contentsOf: url, encoding: .utf8)
        var items = [[Int32]](repeating: [], count: users), weights = [[Float]](repeating: [], count: users)
        for (n, line) in text.split(separator: "\n").enumerated().dropFirst() {
            let fields = line.split(separator: "\t")
            guard fields.count == 3, let u = Int(fields[0]), let i = Int32(fields[1]), let w = Float(fields[2]),
                  u >= 0, u < users, i >= 0, Int(i) < itemCount else {
                throw CheckpointError.malformed(path: url.path, reason: "line \(n + 1) is not a valid 'user item weight' row")
            }
            items[u].append(i)
            weights[u].append(w)
        }
        return CollaborativeTargets(items: items, weights: weights, itemCount: itemCount)
    }
}

extension TargetSpec {
    /// The targets of every user, from the training matrix alone. EASE scores the rows the model reads (a T-DiffRec
    /// run's time-weighted rows: the teacher is given the recency its student has; on ML-1M clean, weights 0.5–1 and
    /// λ 1000, its validation NDCG@20 rises from 0.1006 to 0.1032); user-kNN and the item graph read the 0/1 pattern.
    public func build(dataset: InteractionDataset, backend: any Backend) throws -> CollaborativeTargets {
        let train = dataset.train
        switch teacher {
        case .userKNN(let neighbors):
            return try CollaborativeTargets.userKNN(train: train, neighbors: neighbors, targetSize: size, backend: backend)
        case .itemGraph:
            return CollaborativeTargets.itemGraph(train: train, targetSize: size)
        case .ease(let lambda):
            let model = try EASEModel(backend: backend, train: train, lambda: lambda)
            return try CollaborativeTargets.ease(train: train, values: dataset.trainValues, model: model, targetSize: size, backend: backend)
        }
    }
}
