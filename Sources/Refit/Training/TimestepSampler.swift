import Foundation
import RefitCompute

/// DiffRec's importance sampler of timesteps: uniform until every step has `historyLength` recorded losses,
/// then `p_t ∝ √mean(L_t²)`, mixed with `uniformShare` of the uniform distribution. Its history is training state.
public struct TimestepSampler: Codable, Sendable, Equatable {
    public let steps: Int
    public let historyLength: Int
    public let uniformShare: Double
    /// Per step, the most recent losses (oldest first), at most `historyLength`.
    public private(set) var history: [[Double]]

    public init(steps: Int, historyLength: Int = 10, uniformShare: Double = 0.001) {
        self.steps = steps
        self.historyLength = historyLength
        self.uniformShare = uniformShare
        history = Array(repeating: [], count: steps)
    }

    public var isWarm: Bool { history.allSatisfy { $0.count == historyLength } }

    /// The sampling distribution over the T steps.
    public var probabilities: [Double] {
        guard isWarm else { return Array(repeating: 1 / Double(steps), count: steps) }
        let roots = history.map { ($0.reduce(0) { $0 + $1 * $1 } / Double(historyLength)).squareRoot() }
        let total = roots.reduce(0, +)
        guard total > 0, total.isFinite else { return Array(repeating: 1 / Double(steps), count: steps) }
        return roots.map { $0 / total * (1 - uniformShare) + uniformShare / Double(steps) }
    }

    /// Draws `count` 0-based steps and, for each, `p_t·T` (the divisor that keeps the loss unbiased).
    public func sample(_ count: Int, random: HostRandom, position: UInt64) -> (steps: [Int32], scaledProbabilities: [Double]) {
        let p = probabilities
        var cumulative: [Double] = []
        var running = 0.0
        for value in p { running += value; cumulative.append(running) }
        var steps: [Int32] = [], scaled: [Double] = []
        for r in 0..<count {
            let u = random.uniform(position + UInt64(r)) * running
            var t = cumulative.firstIndex { u <= $0 } ?? (self.steps - 1)
            while p[t] == 0 && t > 0 { t -= 1 }
            steps.append(Int32(t))
            scaled.append(isWarm ? p[t] * Double(self.steps) : 1)
        }
        return (steps, scaled)
    }

    /// Records a batch's per-row losses (before the division by p_t·T).
    public mutating func record(steps: [Int32], losses: [Double]) {
        for (t, loss) in zip(steps, losses) {
            let i = Int(t)
            if history[i].count == historyLength { history[i].removeFirst() }
            history[i].append(loss)
        }
    }
}
