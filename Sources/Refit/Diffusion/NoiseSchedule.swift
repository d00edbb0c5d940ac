import Foundation

/// How the betas of the forward process are laid out over the T steps.
public enum NoiseScheduleKind: String, Codable, Sendable, CaseIterable {
    /// DiffRec's default: the variances `1 − ᾱ_t` are linear in t, and the betas follow from them.
    case linearVariance = "linear-var"
    /// Betas linear in t.
    case linear
    /// Nichol & Dhariwal's cosine schedule of ᾱ.
    case cosine
    /// DreamRec's exponential schedule: `β_t = 1 − exp(−b_min/T − (2t−1)·(b_max − b_min)/(2T²))`, with
    /// b_min = scale·minimum and b_max = scale·maximum (DreamRec: 0.1 and 10).
    case exp
}

public enum NoiseScheduleError: Error, CustomStringConvertible {
    case invalid(String)
    public var description: String { "invalid noise schedule: \(self.message)" }
    var message: String { switch self { case .invalid(let m): m } }
}

/// The forward process of a diffusion model and its Gaussian posterior, computed on the host in Float64.
///
/// In Float32, `1 − ᾱ_t` for DiffRec's tiny noise (ᾱ ≈ 0.9999) would lose two significant digits, so every
/// coefficient is derived here in Float64 and only the finished per-step tables go to the device as Float32.
/// Arrays are indexed by the 0-based step i = t − 1, as in DiffRec's code.
public struct NoiseSchedule: Sendable, Equatable {
    public let kind: NoiseScheduleKind
    public let steps: Int
    public let betas: [Double]
    public let alphaBars: [Double]
    /// ᾱ_{t−1}, with ᾱ_0 = 1.
    public let previousAlphaBars: [Double]

    /// - Parameters:
    ///   - scale, minimum, maximum: DiffRec's noise_scale, noise_min and noise_max; the schedule spans
    ///     scale·minimum … scale·maximum (as betas for `linear`, as variances for `linear-var`).
    ///   - fixFirstBeta: overwrite β_1 with 1e-5 (DiffRec's `beta_fixed`, on by default).
    public init(kind: NoiseScheduleKind, steps: Int, scale: Double, minimum: Double, maximum: Double,
                fixFirstBeta: Bool = true) throws(NoiseScheduleError) {
        guard steps >= 1 else { throw .invalid("steps must be at least 1 (got \(steps))") }
        guard scale > 0 else { throw .invalid("noise scale must be positive (got \(scale))") }
        guard minimum > 0, maximum > 0 else { throw .invalid("noise_min and noise_max must be positive (got \(minimum), \(maximum))") }
        guard minimum <= maximum else { throw .invalid("noise_min \(minimum) is greater than noise_max \(maximum)") }
        var betas: [Double]
        let start = scale * minimum, end = scale * maximum
        switch kind {
        case .linear:
            betas = Self.linspace(start, end, steps)
        case .linearVariance:
            let variances = Self.linspace(start, end, steps)
            guard variances.allSatisfy({ $0 < 1 }) else {
                throw .invalid("noise_scale·noise_max = \(end) must stay below 1 for linear-var")
            }
            let alphaBar = variances.map { 1 - $0 }
            betas = [1 - alphaBar[0]]
            for i in 1..<steps { betas.append(min(1 - alphaBar[i] / alphaBar[i - 1], 0.999)) }
        case .exp:
            let t = Double(steps)
            betas = (1...steps).map { i in 1 - Foundation.exp(-start / t - Double(2 * i - 1) * (end - start) / (2 * t * t)) }
        case .cosine:
            func alphaBar(_ t: Double) -> Double {
                let c = cos((t + 0.008) / 1.008 * Double.pi / 2)
                return c * c
            }
            betas = (0..<steps).map { i in
                min(1 - alphaBar(Double(i + 1) / Double(steps)) / alphaBar(Double(i) / Double(steps)), 0.999)
            }
        }
        if fixFirstBeta { betas[0] = 1e-5 }
        for (i, beta) in betas.enumerated() where !(beta > 0 && beta < 1) {
            throw .invalid("beta at step \(i + 1) is \(beta), outside (0, 1); lower noise_scale or noise_max")
        }
        self.kind = kind
        self.steps = steps
        self.betas = betas
        var product = 1.0
        var alphaBars: [Double] = []
        for beta in betas {
            product *= 1 - beta
            alphaBars.append(product)
        }
        self.alphaBars = alphaBars
        previousAlphaBars = [1.0] + alphaBars.dropLast()
    }

    static func linspace(_ start: Double, _ end: Double, _ count: Int) -> [Double] {
        count == 1 ? [start] : (0..<count).map { start + (end - start) * Double($0) / Double(count - 1) }
    }

    // MARK: The forward process q(x_t | x_0) = N(√ᾱ_t·x_0, (1 − ᾱ_t)·I)

    public var sqrtAlphaBars: [Double] { alphaBars.map { $0.squareRoot() } }
    public var sqrtOneMinusAlphaBars: [Double] { alphaBars.map { (1 - $0).squareRoot() } }

    // MARK: The posterior q(x_{t−1} | x_t, x_0) = N(c1·x_0 + c2·x_t, σ̃²·I)

    public var posteriorMeanCoefficient1: [Double] {
        (0..<steps).map { i -> Double in
            let numerator: Double = betas[i] * previousAlphaBars[i].squareRoot()
            return numerator / (1 - alphaBars[i])
        }
    }

    public var posteriorMeanCoefficient2: [Double] {
        (0..<steps).map { i -> Double in
            let numerator: Double = (1 - previousAlphaBars[i]) * (1 - betas[i]).squareRoot()
            return numerator / (1 - alphaBars[i])
        }
    }

    public var posteriorVariances: [Double] {
        (0..<steps).map { i -> Double in
            let numerator: Double = betas[i] * (1 - previousAlphaBars[i])
            return numerator / (1 - alphaBars[i])
        }
    }

    /// log σ̃², with step 1's (which is 0) replaced by step 2's, as DiffRec does.
    public var posteriorLogVariancesClipped: [Double] {
        let variances = posteriorVariances
        guard steps > 1 else { return [log(max(variances[0], Double.leastNormalMagnitude))] }
        return [log(variances[1])] + variances.dropFirst().map { log($0) }
    }

    /// Signal-to-noise ratio ᾱ_t / (1 − ᾱ_t).
    public func signalToNoise(_ i: Int) -> Double { alphaBars[i] / (1 - alphaBars[i]) }

    /// DiffRec's loss weight for x0-prediction: SNR(t−1) − SNR(t), and 1 at the first step.
    public var reweightingWeights: [Double] {
        (0..<steps).map { $0 == 0 ? 1 : signalToNoise($0 - 1) - signalToNoise($0) }
    }
}
