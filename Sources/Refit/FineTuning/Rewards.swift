import Foundation
import RefitCompute

/// The rows of a rollout batch: row r belongs to user `users[r]` (each user appears G times, user-major).
public struct RolloutRows {
    public let users: [Int]
    /// int32 (R): the users, on the device.
    public let userTensor: Tensor
}

/// Scores the final x₀ of each rollout. Implementations read only the training matrix and targets derived
/// from it: validation and test interactions never reach a reward (a test proves it).
public protocol RolloutReward: AnyObject {
    var name: String { get }
    /// One reward per row of `x0` (R, I).
    func rewards(x0: Tensor, rows: RolloutRows) throws -> [Double]
}

/// A reward that is a differentiable function of x₀, for the pathwise estimator.
public protocol DifferentiableReward: RolloutReward {
    /// ∂r_r/∂x₀ for every row r of `x0` (R, I), into `gradient` (R, I).
    func gradient(x0: Tensor, rows: RolloutRows, into gradient: Tensor) throws
}

/// Log-likelihood rewards `Σ_j w_uj · log softmax(x₀/τ)_j`: a weighted sum of log-softmax entries.
/// `maskSeen` restricts the softmax to items outside the user's training row (the collaborative reward);
/// without it the softmax spans every item (the self reward, whose targets are the training items).
final class LogLikelihoodReward: DifferentiableReward {
    let name: String
    let backend: any Backend
    let train: DeviceCSR
    let targets: (Int) -> (items: ArraySlice<Int32>, weights: [Float])
    let temperature: Float
    let maskSeen: Bool
    private var scratch: [Int: Scratch] = [:]

    /// Per-batch-size work tensors: the seen mask, the logits, dense weights, the 1/τ and −1e9 row scales, row sums
    /// and the gradient's anchor targets.
    private struct Scratch {
        let mask, logits, weights, scales, penalties, sums, anchors: Tensor
    }

    init(name: String, backend: any Backend, train: DeviceCSR, temperature: Float, maskSeen: Bool,
         targets: @escaping (Int) -> (items: ArraySlice<Int32>, weights: [Float])) {
        self.name = name
        self.backend = backend
        self.train = train
        self.temperature = temperature
        self.maskSeen = maskSeen
        self.targets = targets
    }

    func rewards(x0: Tensor, rows: RolloutRows) throws -> [Double] {
        let (r, items) = (x0.rows, x0.columns)
        let s = try scratch(r, items)
        logits(x0, rows: rows, scratch: s)
        backend.logSoftmaxRows(s.logits, into: s.logits)
        return try backend.weightedRowSums(s.logits, weights: { targets(rows.users[$0]) }, dense: s.weights, sums: s.sums)
    }

    /// s.logits = x₀/τ − 1e9·[seen]: seen items drop out of the softmax's normaliser.
    private func logits(_ x0: Tensor, rows: RolloutRows, scratch s: Scratch) {
        backend.densifyRows(train, rows: rows.userTensor, into: s.mask)
        backend.combineRows(x0, scaledBy: s.scales, s.mask, scaledBy: s.penalties, into: s.logits)
    }

    /// ∂r/∂x₀ = (w − (Σw)·softmax(x₀/τ))/τ, where Σw is 1 (a target distribution) or 0 (an empty target, or the
    /// lift's difference of two distributions). For Σw = 1 it is built from the one-hot cross-entropy kernel: with any
    /// target item t of the row, its gradient is softmax − e_t, and adding e_t − w gives softmax − w. A row with
    /// Σw = 0 is given target −1, whose cross-entropy gradient is zero, leaving −w.
    func gradient(x0: Tensor, rows: RolloutRows, into gradient: Tensor) throws {
        let (r, items) = (x0.rows, x0.columns)
        let s = try scratch(r, items)
        logits(x0, rows: rows, scratch: s)
        var anchors = [Int32](repeating: -1, count: r)
        var correction = [Float](repeating: 0, count: r * items)
        for row in 0..<r {
            let t = targets(rows.users[row])
            for (item, weight) in zip(t.items, t.weights) { correction[row * items + Int(item)] -= weight }
            let total = t.weights.reduce(0, +)
            precondition(abs(total) < 1e-3 || abs(total - 1) < 1e-3, "log-likelihood targets must sum to 1 or 0, not \(total)")
            guard abs(total - 1) < 1e-3, let first = t.items.first else { continue }
            anchors[row] = first
            correction[row * items + Int(first)] += 1
        }
        backend.write(anchors, to: s.anchors)
        backend.softmaxCrossEntropy(s.logits, targets: s.anchors, gradientScale: 1, loss: s.sums, dLogits: gradient)
        backend.write(correction, to: s.weights)
        backend.add(gradient, s.weights, into: gradient)
        backend.scale(gradient, by: -1 / temperature)
    }

    private func scratch(_ r: Int, _ items: Int) throws -> Scratch {
        try scratch.reused(r) {
            Scratch(mask: try backend.makeTensor([r, items], .float32), logits: try backend.makeTensor([r, items], .float32),
                    weights: try backend.makeTensor([r, items], .float32),
                    scales: try backend.tensor([Float](repeating: 1 / temperature, count: r), shape: [r]),
                    penalties: try backend.tensor([Float](repeating: maskSeen ? -1e9 : 0, count: r), shape: [r]),
                    sums: try backend.makeTensor([r], .float32), anchors: try backend.makeTensor([r], .int32))
        }
    }
}

extension Backend {
    /// `Σ_j w_rj · values[r, j]` for every row r, with row r's weights given sparsely by `weights(r)`, computed on
    /// the device: the weighted log-likelihood of the log-likelihood rewards. `dense` (R, N) and `sums` (R) are scratch.
    func weightedRowSums(_ values: Tensor, weights: (Int) -> (items: ArraySlice<Int32>, weights: [Float]),
                         dense: Tensor, sums: Tensor) throws -> [Double] {
        let (rows, columns) = (values.rows, values.columns)
        var host = [Float](repeating: 0, count: rows * columns)
        for row in 0..<rows {
            let w = weights(row)
            for (item, weight) in zip(w.items, w.weights) { host[row * columns + Int(item)] = weight }
        }
        write(host, to: dense)
        multiply(values, dense, into: dense)
        sumRows(dense, into: sums)
        return try readFloats(sums).map(Double.init)
    }
}

/// NDCG@K of x₀'s top-K unseen items against the graded collaborative target.
final class CollaborativeNDCGReward: RolloutReward {
    let name = RewardKind.collabNDCG.rawValue
    let backend: any Backend
    let train: DeviceCSR
    let targets: CollaborativeTargets
    let cutoff: Int
    private var scratch: [Int: (indices: Tensor, values: Tensor)] = [:]

    init(backend: any Backend, train: DeviceCSR, targets: CollaborativeTargets, cutoff: Int) {
        self.backend = backend
        self.train = train
        self.targets = targets
        self.cutoff = cutoff
    }

    func rewards(x0: Tensor, rows: RolloutRows) throws -> [Double] {
        let r = x0.rows
        if scratch[r] == nil { scratch[r] = (try backend.makeTensor([r, cutoff], .int32), try backend.makeTensor([r, cutoff], .float32)) }
        let s = scratch[r]!
        backend.topK(x0, k: cutoff, mask: .sparse(train, rows: rows.userTensor), indices: s.indices, values: s.values)
        let top = try backend.readInt32s(s.indices)
        return rows.users.enumerated().map { row, user in
            let gains = Dictionary(uniqueKeysWithValues: zip(targets.items[user], targets.weights[user]).map { ($0, Double($1)) })
            var dcg = 0.0
            for j in 0..<cutoff { dcg += (gains[top[row * cutoff + j]] ?? 0) / log2(Double(j + 2)) }
            let ideal = gains.values.sorted(by: >).prefix(cutoff).enumerated().reduce(0.0) { $0 + $1.element / log2(Double($1.offset + 2)) }
            return ideal > 0 ? dcg / ideal : 0
        }
    }
}

/// collab-score: `r_u(x₀) = ⟨g_u, x₀⟩` with `g_u = σ_u·z_u(w_u)` on the user's unseen items and 0 on seen ones, where
/// z_u standardises the target w_u (zero outside its items) over the unseen items and σ_u is the standard deviation of
/// the pre-trained model's scores there.
///
/// Why this shape: with the pathwise anchor β the objective's optimum is x₀_ref + g_u/β, which ranks the unseen items
/// exactly like z(x₀_ref) + z(w_u)/β, the blend `refit baselines` scores (α = 1/β). Standardising per user is what
/// collab-lift lacks: a lift scaled the same for every user moves short, flat targets as far as long, peaked ones,
/// and its optimum gains about half as much on validation. σ_u is fixed by the frozen reference, so r stays linear.
final class CollaborativeScoreReward: DifferentiableReward {
    let name = RewardKind.collabScore.rawValue
    let backend: any Backend
    let train: CSRMatrix
    let targets: CollaborativeTargets
    /// σ_u for every user (`referenceSpread`).
    let spread: [Float]
    private var scratch: [Int: (weights: Tensor, sums: Tensor)] = [:]

    init(backend: any Backend, train: CSRMatrix, targets: CollaborativeTargets, spread: [Float]) {
        precondition(spread.count == train.rowCount, "collab-score needs σ_u for each of the \(train.rowCount) users")
        self.backend = backend
        self.train = train
        self.targets = targets
        self.spread = spread
    }

    /// g_u, dense over the items. w_u is zero outside its M items and those are all unseen, so its moments over the
    /// n unseen items are mean Σw/n and variance Σw²/n − mean². A user with no target, or no unseen item, gets 0.
    func direction(user: Int, into row: inout ArraySlice<Float>) {
        let items = row.count, seen = train.row(user)
        let unseen = Double(items - seen.count)
        let total = targets.weights[user].reduce(0.0) { $0 + Double($1) }
        let squares = targets.weights[user].reduce(0.0) { $0 + Double($1) * Double($1) }
        let mean = unseen > 0 ? total / unseen : 0
        let variance = unseen > 0 ? squares / unseen - mean * mean : 0
        guard variance > 0 else { for j in row.indices { row[j] = 0 }; return }
        let scale = Double(spread[user]) / variance.squareRoot()
        for j in row.indices { row[j] = Float(-mean * scale) }
        for i in seen { row[row.startIndex + Int(i)] = 0 }
        for (i, w) in zip(targets.items[user], targets.weights[user]) { row[row.startIndex + Int(i)] = Float((Double(w) - mean) * scale) }
    }

    func gradient(x0: Tensor, rows: RolloutRows, into gradient: Tensor) throws {
        let items = x0.columns
        var host = [Float](repeating: 0, count: x0.rows * items)
        for (r, user) in rows.users.enumerated() { direction(user: user, into: &host[(r * items)..<((r + 1) * items)]) }
        backend.write(host, to: gradient)
    }

    func rewards(x0: Tensor, rows: RolloutRows) throws -> [Double] {
        let s = try scratch.reused(x0.rows) { (try backend.makeTensor([x0.rows, x0.columns], .float32), try backend.makeTensor([x0.rows], .float32)) }
        try gradient(x0: x0, rows: rows, into: s.weights)
        backend.multiply(x0, s.weights, into: s.weights)
        backend.sumRows(s.weights, into: s.sums)
        return try backend.readFloats(s.sums).map(Double.init)
    }

    /// σ_u: the standard deviation of `model`'s scores over each user's unseen items, from the training rows alone
    /// (`input`: the model's input rows, `TopKEvaluator.inputRows`), a batch of users at a time (host memory
    /// O(batch × items + users)).
    static func referenceSpread(model: DiffRecModel, train: CSRMatrix, input: DeviceCSR, batchSize: Int) throws -> [Float] {
        let backend = model.backend
        var spread = [Float](); spread.reserveCapacity(train.rowCount)
        for start in stride(from: 0, to: train.rowCount, by: batchSize) {
            let rows = min(batchSize, train.rowCount - start)
            let users = try backend.tensor((start..<(start + rows)).map { Int32($0) }, shape: [rows])
            let dense = try backend.makeTensor([rows, train.columnCount], .float32)
            backend.densifyRows(input, rows: users, into: dense)
            let scores = try backend.readFloats(try model.scores(dense))
            for r in 0..<rows {
                let row = scores[(r * train.columnCount)..<((r + 1) * train.columnCount)]
                spread.append(Float(RankingRows.unseenMoments(row, seen: train.row(start + r)).deviation))
            }
        }
        return spread
    }
}

/// α·a + (1 − α)·b.
final class MixedReward: DifferentiableReward {
    let name = RewardKind.mixed.rawValue
    let first: LogLikelihoodReward, second: LogLikelihoodReward
    let weight: Double
    private var scratch: [Int: Tensor] = [:]

    init(_ first: LogLikelihoodReward, _ second: LogLikelihoodReward, weight: Double) {
        self.first = first
        self.second = second
        self.weight = weight
    }

    func rewards(x0: Tensor, rows: RolloutRows) throws -> [Double] {
        zip(try first.rewards(x0: x0, rows: rows), try second.rewards(x0: x0, rows: rows)).map { weight * $0 + (1 - weight) * $1 }
    }

    func gradient(x0: Tensor, rows: RolloutRows, into gradient: Tensor) throws {
        let other = try scratch.reused(x0.rows) { try first.backend.makeTensor([x0.rows, x0.columns], .float32) }
        try first.gradient(x0: x0, rows: rows, into: gradient)
        try second.gradient(x0: x0, rows: rows, into: other)
        first.backend.scale(gradient, by: Float(weight))
        first.backend.axpy(Float(1 - weight), other, gradient)
    }
}

extension RewardSpec {
    /// The DiffRec reward this spec names, for a dataset's training matrix (`seen`: its 0/1 pattern on the device,
    /// `TopKEvaluator.seenRows`) and collaborative targets.
    /// `referenceSpread` (σ_u, `CollaborativeScoreReward.referenceSpread`) is needed by collab-score only.
    public func make(backend: any Backend, train: CSRMatrix, seen: DeviceCSR, targets: CollaborativeTargets,
                     referenceSpread: [Float]? = nil) -> RolloutReward {
        func collab(_ temperature: Float) -> LogLikelihoodReward {
            LogLikelihoodReward(name: RewardKind.collabLoglik.rawValue, backend: backend, train: seen, temperature: temperature,
                                maskSeen: true) { user in (targets.items[user][...], targets.weights[user]) }
        }
        func own(_ temperature: Float) -> LogLikelihoodReward {
            LogLikelihoodReward(name: RewardKind.selfLoglik.rawValue, backend: backend, train: seen, temperature: temperature,
                                maskSeen: false) { user in
                let row = train.row(user)
                return (row, [Float](repeating: row.isEmpty ? 0 : 1 / Float(row.count), count: row.count))
            }
        }
        switch self {
        case .collabLoglik(let temperature): return collab(temperature)
        case .collabLift(let temperature):
            let population = targets.populationMean()
            return LogLikelihoodReward(name: kind.rawValue, backend: backend, train: seen, temperature: temperature,
                                       maskSeen: true) { user in targets.lift(user: user, population: population, seen: train.row(user)) }
        case .collabScore:
            guard let referenceSpread else { preconditionFailure("collab-score needs the reference model's spread σ_u") }
            return CollaborativeScoreReward(backend: backend, train: train, targets: targets, spread: referenceSpread)
        case .selfLoglik(let temperature): return own(temperature)
        case .collabNDCG(let cutoff): return CollaborativeNDCGReward(backend: backend, train: seen, targets: targets, cutoff: cutoff)
        case .mixed(let weight, let temperature): return MixedReward(own(temperature), collab(temperature), weight: Double(weight))
        case .seqLoglik, .seqCollab: preconditionFailure("\(kind.rawValue) is a sequential reward; a DiffRec session refuses it")
        }
    }
}
