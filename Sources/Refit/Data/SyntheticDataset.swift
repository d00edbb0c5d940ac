#if canImport(Darwin)
import Darwin
#elseif canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The built-in dataset (`builtin:demo`): generated in code from a seed, so the demo and the tests
/// need no download, and shaped like real implicit feedback so that what works on it means something.
///
/// Users and items belong to latent clusters; a user's chance of taking an item is the item's popularity
/// (Zipf-like over a random ranking) times `exp(sharpness · ⟨user factor, item factor⟩)`. Activity is
/// heavy-tailed (Pareto), and each user's interactions get increasing timestamps so chronological splits
/// work. Because most of a user's items come from a few clusters, a collaborative model beats popularity
/// by a wide margin — the test suite checks that.
public enum SyntheticDataset {
    public struct Shape: Sendable {
        public var users = 2_000
        public var items = 1_000
        public var clusters = 16
        public var factorDimensions = 16
        /// Target total interactions; per-user activity is scaled to reach it.
        public var interactions = 100_000
        /// Zipf exponent of item popularity.
        public var popularityExponent = 0.9
        /// How strongly the latent match outweighs popularity.
        public var sharpness = 4.0
        /// Spread of each user's and item's factor around its cluster centre.
        public var factorNoise = 0.5
        /// Pareto shape of per-user activity (smaller: heavier tail).
        public var activityTail = 1.3
        public var minActivity = 5
        public var maxActivity = 500

        public init() {}
    }

    public static let names = ["demo"]

    public static func demo(seed: UInt64 = 2024) -> InteractionLog {
        generate(Shape(), seed: seed, name: "builtin:demo")
    }

    public static func generate(_ shape: Shape, seed: UInt64, name: String) -> InteractionLog {
        var random = SplitMix64(seed: seed)
        let d = shape.factorDimensions
        func unitVector() -> [Double] {
            let v = (0..<d).map { _ in random.nextGaussian() }
            let norm = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
            return v.map { $0 / norm }
        }
        let centres = (0..<shape.clusters).map { _ in unitVector() }
        func factor() -> [Double] {
            let centre = centres[random.nextIndex(shape.clusters)]
            let noise = shape.factorNoise / Double(d).squareRoot()
            return centre.map { $0 + noise * random.nextGaussian() }
        }
        let itemFactors = (0..<shape.items).flatMap { _ in factor() }  // row-major, items × d
        var ranks = Array(0..<shape.items)
        random.shuffle(&ranks)
        let logPopularity = ranks.map { -shape.popularityExponent * log(Double($0 + 1)) }

        // Pareto activity, clamped, with the scale refined until the clamped total is near the target.
        let rawActivity = (0..<shape.users).map { _ in pow(1 - random.nextUnit(), -1 / shape.activityTail) }
        var scale = Double(shape.interactions) / rawActivity.reduce(0, +)
        var activity: [Int] = []
        for _ in 0..<8 {
            activity = rawActivity.map { min(shape.maxActivity, max(shape.minActivity, Int(($0 * scale).rounded()))) }
            scale *= Double(shape.interactions) / Double(activity.reduce(0, +))
        }

        var users: [Int32] = [], items: [Int32] = [], timestamps: [Double] = []
        users.reserveCapacity(shape.interactions * 11 / 10)
        items.reserveCapacity(shape.interactions * 11 / 10)
        timestamps.reserveCapacity(shape.interactions * 11 / 10)
        var cumulative = [Double](repeating: 0, count: shape.items)
        var taken = [Int32](repeating: -1, count: shape.items)
        for u in 0..<shape.users {
            let p = factor()
            var total = 0.0
            itemFactors.withUnsafeBufferPointer { q in
                for i in 0..<shape.items {
                    var dot = 0.0
                    for k in 0..<d { dot += p[k] * q[i * d + k] }
                    total += exp(logPopularity[i] + shape.sharpness * dot)
                    cumulative[i] = total
                }
            }
            // Draw without replacement by rejection; a user that has nearly exhausted its likely items
            // simply ends with fewer, which keeps the loop bounded.
            var time = 1_600_000_000.0 + (random.nextUnit() * 300 * 86_400).rounded(.down)
            var count = 0, attempts = 0
            while count < activity[u] && attempts < 30 * activity[u] {
                attempts += 1
                let target = random.nextUnit() * total
                var low = 0, high = shape.items - 1
                while low < high {
                    let mid = (low + high) / 2
                    if cumulative[mid] <= target { low = mid + 1 } else { high = mid }
                }
                if taken[low] == Int32(u) { continue }
                taken[low] = Int32(u)
                time += 60 + (-log(1 - random.nextUnit()) * 86_400).rounded(.down)
                users.append(Int32(u))
                items.append(Int32(low))
                timestamps.append(time)
                count += 1
            }
        }
        return InteractionLog(users: users, items: items, timestamps: timestamps,
                              userIDs: (1...shape.users).map { "u\($0)" }, itemIDs: (1...shape.items).map { "i\($0)" },
                              source: name, format: .builtin)
    }
}
