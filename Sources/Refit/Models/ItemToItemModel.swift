import Foundation
import RefitCompute

/// A linear item-to-item recommender: a user's scores are `x_u·W`, W an (I, I) matrix on the device built from the
/// training matrix. EASE is one (its closed form, `EASEModel`); item-kNN and RP3β are the neighbourhood models a
/// reviewer expects beside a diffusion recommender (Ferrari Dacrema et al., RecSys 2019, found them hard to beat),
/// built here the way that study tunes them.
public final class ItemToItemModel {
    /// What it is, with its settings: "item-kNN (k = 100, shrink 10)".
    public let name: String
    public let itemCount: Int
    /// W, row-major (I, I): `W[i, j]` is what having item i adds to item j's score.
    let weights: Tensor
    let backend: any Backend
    private var outputs: [Int: Tensor] = [:]

    init(name: String, weights: [Float], itemCount: Int, backend: any Backend) throws {
        precondition(weights.count == itemCount * itemCount)
        (self.name, self.itemCount, self.backend) = (name, itemCount, backend)
        self.weights = try backend.tensor(weights, shape: [itemCount, itemCount])
    }

    /// Scores (B, I) for dense training rows `input` (B, I). Overwritten by the next call with the same batch size.
    public func scores(_ input: Tensor) throws -> Tensor {
        let out = try outputs.reused(input.rows) { try backend.makeTensor([input.rows, itemCount], .float32) }
        backend.matmul(input, transposeA: false, weights, transposeB: false, into: out, alpha: 1, beta: 0)
        return out
    }

    /// Dense I × I host matrices: refused above this many items (8 bytes per entry while they are built).
    public static let maximumItems = 20_000

    static func checkSize(_ train: CSRMatrix, _ what: String) throws {
        guard train.columnCount <= maximumItems else {
            throw ModelError.unsupported("\(what) needs an I×I matrix; \(train.columnCount) items is more than the \(maximumItems) it supports")
        }
    }

    /// `Σ_u w_u·x_ui·x_uj` in Float64, row-major (I, I), plus `diagonal` on the diagonal: the training Gram matrix XᵀX
    /// when every user weighs 1. O(Σ_u |x_u|²).
    static func gram(_ train: CSRMatrix, userWeights: [Double]? = nil, diagonal: Double = 0) -> [Double] {
        let n = train.columnCount
        var g = [Double](repeating: 0, count: n * n)
        for u in 0..<train.rowCount {
            let row = train.row(u)
            let w = userWeights?[u] ?? 1
            for i in row { for j in row { g[Int(i) * n + Int(j)] += w } }
        }
        if diagonal != 0 { for i in 0..<n { g[i * n + i] += diagonal } }
        return g
    }

    /// Item-kNN with cosine similarity (`shrink` added to the norms' product damps pairs seen by few users): item j's
    /// column of W keeps its `neighbors` most similar items, the rest 0, and no item counts itself.
    public static func itemKNN(train: CSRMatrix, neighbors: Int, shrink: Double, backend: any Backend) throws -> ItemToItemModel {
        try checkSize(train, "item-kNN")
        let n = train.columnCount
        let g = gram(train)
        let norms = (0..<n).map { g[$0 * n + $0].squareRoot() }
        var w = [Float](repeating: 0, count: n * n)
        for i in 0..<n {
            for j in 0..<n where i != j && g[i * n + j] > 0 { w[i * n + j] = Float(g[i * n + j] / (norms[i] * norms[j] + shrink)) }
        }
        keepLargest(&w, size: n, count: neighbors, along: .columns)
        return try ItemToItemModel(name: "item-kNN (k = \(neighbors), shrink \(Self.format(shrink)))", weights: w, itemCount: n, backend: backend)
    }

    /// RP3β (Paudel et al., TiiS 2016): the three-step random walk item → user → item, each step's transition
    /// probability raised to α, `W[i, j] = Σ_u (x_ui/|i|)^α (x_uj/|u|)^α`, divided by item j's popularity to the power
    /// β (which demotes popular items); each row keeps its `neighbors` largest entries, and no item counts itself.
    public static func rp3beta(train: CSRMatrix, alpha: Double, beta: Double, neighbors: Int, backend: any Backend) throws -> ItemToItemModel {
        try checkSize(train, "RP3β")
        let n = train.columnCount
        let userWeights = (0..<train.rowCount).map { u in train.rowLength(u) > 0 ? pow(Double(train.rowLength(u)), -alpha) : 0 }
        let g = gram(train, userWeights: userWeights)
        let popularity = train.columnCounts().map(Double.init)
        var w = [Float](repeating: 0, count: n * n)
        for i in 0..<n where popularity[i] > 0 {
            let from = pow(popularity[i], -alpha)
            for j in 0..<n where i != j && g[i * n + j] > 0 { w[i * n + j] = Float(from * g[i * n + j] / pow(popularity[j], beta)) }
        }
        keepLargest(&w, size: n, count: neighbors, along: .rows)
        let name = "RP3β (α = \(format(alpha)), β = \(format(beta)), k = \(neighbors))"
        return try ItemToItemModel(name: name, weights: w, itemCount: n, backend: backend)
    }

    enum Direction { case rows, columns }

    /// Zeroes every entry of each row (or column) of the (size, size) matrix but its `count` largest; ties at the
    /// cut keep the lower index, so the result does not depend on the sort.
    static func keepLargest(_ w: inout [Float], size n: Int, count k: Int, along direction: Direction) {
        guard k < n else { return }
        var line = [(value: Float, index: Int)](repeating: (0, 0), count: n)
        for a in 0..<n {
            for b in 0..<n { line[b] = (direction == .rows ? w[a * n + b] : w[b * n + a], b) }
            line.sort { $0.value != $1.value ? $0.value > $1.value : $0.index < $1.index }
            for (_, b) in line[k...] {
                if direction == .rows { w[a * n + b] = 0 } else { w[b * n + a] = 0 }
            }
        }
    }

    static func format(_ value: Double) -> String { String(format: "%g", value) }
}
