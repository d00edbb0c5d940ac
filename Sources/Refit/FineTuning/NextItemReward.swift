import Foundation
import RefitCompute

/// The rewards of DreamRec rollouts, computed from training positions only.
public final class NextItemReward {
    let spec: RewardSpec
    let model: SequentialModel
    let temperature: Float
    let mixWeight: Double
    /// For seq-collab: per item, the items that followed it in training sequences (top-M, weights summing to 1).
    let transitions: [[(item: Int32, weight: Float)]]
    private var buffers: [Int: (targets: Tensor, loss: Tensor, logp: Tensor, dense: Tensor, sums: Tensor)] = [:]

    private func buffers(_ n: Int) throws -> (targets: Tensor, loss: Tensor, logp: Tensor, dense: Tensor, sums: Tensor) {
        let backend = model.backend, items = model.encoder.architecture.items
        return try buffers.reused(n) {
            (try backend.makeTensor([n], .int32), try backend.makeTensor([n], .float32), try backend.makeTensor([n, items], .float32),
             try backend.makeTensor([n, items], .float32), try backend.makeTensor([n], .float32))
        }
    }

    public init(spec: RewardSpec, model: SequentialModel, dataset: SequenceDataset) {
        self.spec = spec
        self.model = model
        switch spec {
        case .seqLoglik(let t):
            (temperature, mixWeight, transitions) = (t, 1, [])
        case .seqCollab(let ownWeight, let t, let followers):
            (temperature, mixWeight, transitions) = (t, Double(ownWeight), Self.transitions(dataset, keep: followers))
        default:
            preconditionFailure("\(spec.kind.rawValue) is a DiffRec reward; a DreamRec session refuses it")
        }
    }

    /// Counts of (previous item → next item) over the training part of every sequence (before the validation target).
    static func transitions(_ dataset: SequenceDataset, keep: Int) -> [[(item: Int32, weight: Float)]] {
        var counts = [[Int32: Int]](repeating: [:], count: dataset.itemCount)
        for sequence in dataset.sequences {
            let end = SequenceDataset.trainingLength(sequence.count)
            for p in stride(from: 1, to: end, by: 1) { counts[Int(sequence[p - 1])][sequence[p], default: 0] += 1 }
        }
        return counts.map { followers in
            let top = followers.sorted { ($0.value, -$0.key) > ($1.value, -$1.key) }.prefix(keep)
            let total = Float(top.reduce(0) { $0 + $1.value })
            return top.map { ($0.key, Float($0.value) / total) }
        }
    }

    /// ∂r/∂x̂₀ (n, d) of seq-loglik, `r = log softmax(x̂₀·Eᵀ·scoreScale/τ)[target]`: `(onehot − softmax)·E·scoreScale/τ`.
    public func gradient(x0: Tensor, targets: [Int32], into gradient: Tensor) throws {
        guard case .seqLoglik = spec else { preconditionFailure("only seq-loglik has a gradient here") }
        let backend = model.backend, n = x0.rows
        let b = try buffers(n)
        let logits = try model.score(x0)
        backend.scale(logits, by: 1 / temperature)
        backend.write(targets, to: b.targets)
        backend.softmaxCrossEntropy(logits, targets: b.targets, gradientScale: -1, loss: b.loss, dLogits: logits)
        backend.matmul(logits, transposeA: false, model.encoder.itemEmbeddings, transposeB: false, into: gradient,
                       alpha: model.scoreScale / temperature, beta: 0)
    }

    /// One reward per row of x̂₀ (n, d): `targets` the observed next items, `lastItems` each history's last item.
    public func rewards(x0: Tensor, targets: [Int32], lastItems: [Int32]) throws -> [Double] {
        let backend = model.backend, n = x0.rows
        let b = try buffers(n)
        let logits = try model.score(x0)
        backend.scale(logits, by: 1 / temperature)
        backend.write(targets, to: b.targets)
        backend.softmaxCrossEntropy(logits, targets: b.targets, gradientScale: 0, loss: b.loss, dLogits: nil)
        let own = try backend.readFloats(b.loss).map { -Double($0) }
        guard case .seqCollab = spec else { return own }
        backend.logSoftmaxRows(logits, into: b.logp)
        let collab = try backend.weightedRowSums(b.logp, weights: { r in
            let followers = self.transitions[Int(lastItems[r])]
            return (ArraySlice(followers.map(\.item)), followers.map(\.weight))
        }, dense: b.dense, sums: b.sums)
        return (0..<n).map { r in mixWeight * own[r] + (1 - mixWeight) * collab[r] }
    }
}

