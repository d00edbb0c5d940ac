import Foundation
import RefitCompute

/// Host-side random draws that are pure functions of (seed, stream, position), like the device streams, so a
/// resumed run draws exactly what an uninterrupted one would have.
public struct HostRandom: Sendable {
    public let seed: UInt64
    public init(seed: UInt64, stream: UInt64) { self.seed = seed &* 0x9E37_79B9_7F4A_7C15 ^ stream }

    /// Uniform in (0, 1], with 53 random bits from one Philox block (stream word 2 keeps it apart from the
    /// device streams).
    public func uniform(_ position: UInt64) -> Double {
        let w = Philox.block(counter: (UInt32(truncatingIfNeeded: position), UInt32(position >> 32), 2, 0), key: seed)
        let bits = UInt64(w.0) << 21 | UInt64(w.1 >> 11)
        return (Double(bits) + 1) * 0x1p-53
    }

    /// A uniformly random permutation of 0..<count (Fisher–Yates), different for each `round`.
    public func permutation(_ count: Int, round: UInt64) -> [Int] {
        var order = Array(0..<count)
        let base = round << 32
        for i in stride(from: count - 1, to: 0, by: -1) {
            let j = Int(Double(i + 1) * (1 - uniform(base + UInt64(i))))  // (0,1] → [0, i+1)
            order.swapAt(i, min(j, i))
        }
        return order
    }
}

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
