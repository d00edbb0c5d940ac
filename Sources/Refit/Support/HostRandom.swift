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
