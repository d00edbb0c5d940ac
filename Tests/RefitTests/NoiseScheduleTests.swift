import Foundation
import Testing
@testable import Refit

/// The diffusion schedule against an independent Float64 computation of DESIGN §3's formulas.
@Suite struct NoiseScheduleTests {
    /// DiffRec's linear-var schedule written out from the formulas (not from the library's code).
    struct Reference {
        var betas: [Double] = []
        var alphaBars: [Double] = []
        var previous: [Double] = []
        var c1: [Double] = []
        var c2: [Double] = []
        var variance: [Double] = []
        var logVarianceClipped: [Double] = []

        init(steps T: Int, scale: Double, minimum: Double, maximum: Double) {
            let lo = scale * minimum, hi = scale * maximum
            // 1 − ᾱ_t = linspace(lo, hi, T)
            let v = (0..<T).map { lo + (hi - lo) * Double($0) / Double(T - 1) }
            let abarFromVariance = v.map { 1 - $0 }
            betas = [v[0]]
            for t in 1..<T { betas.append(min(1 - abarFromVariance[t] / abarFromVariance[t - 1], 0.999)) }
            betas[0] = 1e-5
            var product = 1.0
            for b in betas { product *= (1 - b); alphaBars.append(product) }
            previous = [1] + alphaBars.dropLast()
            for t in 0..<T {
                let oneMinus = 1 - alphaBars[t]
                c1.append(betas[t] * sqrt(previous[t]) / oneMinus)
                c2.append((1 - previous[t]) * sqrt(1 - betas[t]) / oneMinus)
                variance.append(betas[t] * (1 - previous[t]) / oneMinus)
            }
            logVarianceClipped = [log(variance[1])] + variance[1...].map { log($0) }
        }
    }

    static func expectRelative(_ actual: [Double], _ expected: [Double], _ tolerance: Double, _ what: String,
                               sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(actual.count == expected.count, "\(what): \(actual.count) vs \(expected.count) steps", sourceLocation: sourceLocation)
        for (i, (a, e)) in zip(actual, expected).enumerated() {
            let error = e == 0 ? abs(a) : abs(a - e) / abs(e)
            #expect(error <= tolerance, "\(what) at step \(i + 1): \(a) vs \(e) (relative error \(error))", sourceLocation: sourceLocation)
        }
    }

    @Test func linearVarianceMatchesTheFormulasForML1MClean() throws {
        let settings = DiffRecPreset.ml1mClean.settings
        #expect(settings.schedule == .linearVariance && settings.steps == 40)
        #expect(settings.noiseScale == 0.005 && settings.noiseMin == 0.005 && settings.noiseMax == 0.01)
        let s = try settings.noiseSchedule()
        let r = Reference(steps: 40, scale: 0.005, minimum: 0.005, maximum: 0.01)

        let tolerance = 1e-12
        Self.expectRelative(s.betas, r.betas, tolerance, "beta")
        Self.expectRelative(s.alphaBars, r.alphaBars, tolerance, "alpha-bar")
        Self.expectRelative(s.alphaBars.map { 1 - $0 }, r.alphaBars.map { 1 - $0 }, tolerance, "1 - alpha-bar")
        Self.expectRelative(s.previousAlphaBars, r.previous, tolerance, "previous alpha-bar")
        Self.expectRelative(s.sqrtAlphaBars, r.alphaBars.map { sqrt($0) }, tolerance, "sqrt(alpha-bar)")
        Self.expectRelative(s.sqrtOneMinusAlphaBars, r.alphaBars.map { sqrt(1 - $0) }, tolerance, "sqrt(1 - alpha-bar)")
        Self.expectRelative(s.posteriorMeanCoefficient1, r.c1, tolerance, "c1")
        Self.expectRelative(Array(s.posteriorMeanCoefficient2.dropFirst()), Array(r.c2.dropFirst()), tolerance, "c2")
        Self.expectRelative(Array(s.posteriorVariances.dropFirst()), Array(r.variance.dropFirst()), tolerance, "posterior variance")
        Self.expectRelative(s.posteriorLogVariancesClipped, r.logVarianceClipped, tolerance, "clipped log-variance")

        // The β₁ override and what follows from it, by hand: ᾱ_0 = 1, so c1_1 = 1, c2_1 = 0, σ̃²_1 = 0,
        // and the clipped log-variance of step 1 is step 2's.
        #expect(s.betas[0] == 1e-5)
        #expect(s.alphaBars[0] == 1 - 1e-5)
        #expect(abs(s.posteriorMeanCoefficient1[0] - 1) < 1e-10)
        #expect(s.posteriorMeanCoefficient2[0] == 0 && s.posteriorVariances[0] == 0)
        #expect(s.posteriorLogVariancesClipped[0] == s.posteriorLogVariancesClipped[1])
        // Without the override β₁ would be the first variance, 2.5e-5.
        let unfixed = try NoiseSchedule(kind: .linearVariance, steps: 40, scale: 0.005, minimum: 0.005, maximum: 0.01,
                                        fixFirstBeta: false)
        #expect(abs(unfixed.betas[0] - 2.5e-5) < 1e-15)  // 1 − (1 − v₁), rounded
        #expect(Array(unfixed.betas.dropFirst()) == Array(s.betas.dropFirst()))
        // ᾱ recomputed from the betas: 1 − ᾱ_40 is 5e-5 − 2.5e-5 + 1e-5 plus second-order terms, not 5e-5.
        #expect(abs((1 - s.alphaBars[39]) - 3.5e-5) < 1e-8)

        // The SNR reweighting: 1 at t = 1, SNR(t−1) − SNR(t) after.
        let snr = r.alphaBars.map { $0 / (1 - $0) }
        Self.expectRelative(s.reweightingWeights, [1] + (1..<40).map { snr[$0 - 1] - snr[$0] }, 1e-9, "SNR weight")
    }

    @Test func linearAndCosineSchedulesAreSane() throws {
        let linear = try NoiseSchedule(kind: .linear, steps: 100, scale: 1, minimum: 1e-4, maximum: 0.02)
        #expect(linear.betas[0] == 1e-5)  // DiffRec's beta_fixed applies to every schedule
        #expect(abs(linear.betas[1] - (1e-4 + (0.02 - 1e-4) / 99)) < 1e-15)
        #expect(abs(linear.betas[99] - 0.02) < 1e-15)
        #expect(zip(linear.betas, linear.betas.dropFirst()).allSatisfy { $0 < $1 })
        var product = 1.0
        for (b, abar) in zip(linear.betas, linear.alphaBars) {
            product *= 1 - b
            #expect(abs(abar - product) <= 1e-15)
        }

        let cosine = try NoiseSchedule(kind: .cosine, steps: 1000, scale: 1, minimum: 1, maximum: 1, fixFirstBeta: false)
        #expect(cosine.betas.allSatisfy { $0 > 0 && $0 <= 0.999 })
        #expect(cosine.betas.last == 0.999)  // ᾱ(1) = cos²(π/2) = 0: the cap applies
        #expect(zip(cosine.alphaBars, cosine.alphaBars.dropFirst()).allSatisfy { $0 > $1 })
        // ᾱ_t = f(t)/f(0) with f(t) = cos²((t/T + 0.008)/1.008·π/2), away from the cap.
        func f(_ t: Double) -> Double { pow(cos((t / 1000 + 0.008) / 1.008 * Double.pi / 2), 2) }
        for t in [1, 10, 500, 900] {
            #expect(abs(cosine.alphaBars[t - 1] - f(Double(t)) / f(0)) < 1e-12 * max(1, 1 / cosine.alphaBars[t - 1]))
        }
        for schedule in [linear, cosine] {
            #expect(schedule.posteriorVariances.dropFirst().allSatisfy { $0 > 0 })
            #expect(schedule.posteriorLogVariancesClipped.allSatisfy { $0.isFinite })
        }
    }

    @Test func invalidSettingsAreRejectedWithAReason() {
        func message(_ body: () throws -> NoiseSchedule) -> String? {
            do { _ = try body(); return nil } catch { return String(describing: error) }
        }
        let minAboveMax = message { try NoiseSchedule(kind: .linearVariance, steps: 40, scale: 0.005, minimum: 0.02, maximum: 0.01) }
        #expect(minAboveMax?.contains("noise_min") == true && minAboveMax?.contains("noise_max") == true, "\(minAboveMax ?? "no error")")

        let betaAboveOne = message { try NoiseSchedule(kind: .linear, steps: 10, scale: 1, minimum: 0.5, maximum: 2) }
        #expect(betaAboveOne?.contains("outside (0, 1)") == true, "\(betaAboveOne ?? "no error")")

        let varianceAboveOne = message { try NoiseSchedule(kind: .linearVariance, steps: 10, scale: 1, minimum: 0.5, maximum: 1.5) }
        #expect(varianceAboveOne != nil, "linear-var with noise_scale·noise_max ≥ 1 must be refused")

        let noSteps = message { try NoiseSchedule(kind: .linearVariance, steps: 0, scale: 0.005, minimum: 0.005, maximum: 0.01) }
        #expect(noSteps?.contains("steps") == true, "\(noSteps ?? "no error")")

        #expect(message { try NoiseSchedule(kind: .linear, steps: 10, scale: 0, minimum: 0.1, maximum: 0.2) } != nil)
        #expect(message { try NoiseSchedule(kind: .linear, steps: 10, scale: 1, minimum: -0.1, maximum: 0.2) } != nil)

        var settings = DiffRecPreset.demo.settings
        settings.noiseMin = 0.1
        settings.noiseMax = 0.05
        #expect(throws: NoiseScheduleError.self) { try settings.noiseSchedule() }
    }
}
