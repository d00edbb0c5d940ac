import Foundation

/// The reverse process as a list of steps, each `x_s = a·x̂₀ + b·x_t + σ·z` from step t to the next step s.
///
/// With all T steps this is DDPM's ancestral sampler; with K < T evenly strided steps it is DDIM with η = 1
/// (Song et al.): `σ = √((1−ᾱ_s)/(1−ᾱ_t))·√(1−ᾱ_t/ᾱ_s)`, `x_s = √ᾱ_s·x̂₀ + √(1−ᾱ_s−σ²)·ε̂ + σz`,
/// `ε̂ = (x_t − √ᾱ_t·x̂₀)/√(1−ᾱ_t)`. For K = T the two coincide, so one formula serves both. The last step goes to
/// ᾱ = 1: σ = 0 and x = x̂₀, so it has no log-probability.
public struct DiffusionSampler: Sendable, Equatable {
    /// 0-based steps t, descending, ending at 0.
    public let timesteps: [Int]
    public let x0Coefficients: [Float]
    public let xtCoefficients: [Float]
    public let standardDeviations: [Float]

    public init(schedule: NoiseSchedule, steps: Int? = nil) {
        let total = schedule.steps
        let k = min(max(steps ?? total, 1), total)
        // Evenly spaced, always including T−1 and 0.
        let chosen = k == 1 ? [total - 1] : (0..<k).map { Int((Double($0) * Double(total - 1) / Double(k - 1)).rounded()) }
        timesteps = Array(Set(chosen + [0])).sorted(by: >)
        var a: [Float] = [], b: [Float] = [], s: [Float] = []
        for (index, t) in timesteps.enumerated() {
            let alphaT = schedule.alphaBars[t]
            let alphaS = index + 1 < timesteps.count ? schedule.alphaBars[timesteps[index + 1]] : 1.0
            let variance = max(0, (1 - alphaS) / (1 - alphaT) * (1 - alphaT / alphaS))
            let direction = max(0, 1 - alphaS - variance).squareRoot()
            let xt = direction / (1 - alphaT).squareRoot()
            a.append(Float(alphaS.squareRoot() - xt * alphaT.squareRoot()))
            b.append(Float(xt))
            s.append(Float(variance.squareRoot()))
        }
        x0Coefficients = a
        xtCoefficients = b
        standardDeviations = s
    }

    public var count: Int { timesteps.count }
}
