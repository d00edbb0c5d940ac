import Foundation
import RefitCompute
import Testing

/// The diffusion operations of the CPU reference against closed forms evaluated in Float64 from the same float inputs
/// (KernelCaseTests compares every kernel with the reference).
@Suite struct DiffusionTests {
    let be = CPUBackend()

    /// DiffRec's `timestep_embedding(t, 10)`: `freqs = exp(−ln(10000)·arange(5)/5)`, `[cos(t·freqs), sin(t·freqs)]`.
    @Test func timestepEmbeddingMatchesDiffRec() throws {
        let timesteps: [Int32] = [0, 1, 2, 3, 39, 40, 100, 257, 500, 999, 1000]
        for dim in [10, 2, 64] {
            let out = try be.makeTensor([timesteps.count, dim], .float32)
            be.timestepEmbedding(try be.tensor(timesteps, shape: [timesteps.count]), into: out)
            let y = try be.readFloats(out)
            let half = dim / 2
            var expected: [Double] = []
            for t in timesteps {
                let angles = (0..<half).map { j in Double(t) * Foundation.exp(-Foundation.log(10000.0) * Double(j) / Double(half)) }
                expected += angles.map(Foundation.cos) + angles.map(Foundation.sin)
            }
            // The angle t·f reaches 1000 rad, whose float32 spacing is 6e-5, and f itself carries a few ulp from exp:
            // cos and sin of it can be off by ~2e-4 however exactly they are evaluated (PyTorch's float32 is no closer).
            expectClose(y, expected, absolute: 3e-4, relative: 0, "timestepEmbedding dim \(dim)")
            // t = 0 is [1…1, 0…0] exactly, t = 1's first pair is (cos 1, sin 1) to float precision.
            #expect(Array(y[0..<dim]) == [Float](repeating: 1, count: half) + [Float](repeating: 0, count: half))
            #expect(abs(Double(y[dim]) - Foundation.cos(1.0)) < 1e-6 && abs(Double(y[dim + half]) - Foundation.sin(1.0)) < 1e-6)
        }
    }

    /// `logp[r] = −Σ_c (x − μ)²/(2σ_r²N) − ½ln(2π) − ln σ_r`, in Float64 from the float inputs.
    static func closedForm(_ x: [Float], _ mean: [Float], _ logStd: [Float], columns: Int) -> [Double] {
        logStd.indices.map { r in
            let sigma = Foundation.exp(Double(logStd[r]))
            var squares = 0.0
            for c in 0..<columns {
                let d = Double(x[r * columns + c]) - Double(mean[r * columns + c])
                squares += d * d
            }
            return -squares / (2 * sigma * sigma * Double(columns)) - 0.5 * Foundation.log(2 * Double.pi) - Double(logStd[r])
        }
    }

    @Test(arguments: [(1, 1), (7, 33), (3, 2810)])
    func gaussianLogProbability(rows: Int, columns: Int) throws {
        let (x, mean, logStd) = KernelCases.gaussianInputs(rows: rows, columns: columns, seed: 41)
        let expected = Self.closedForm(x, mean, logStd, columns: columns)
        let out = try be.makeTensor([rows], .float32)
        be.gaussianLogProbability(try be.tensor(x, shape: [rows, columns]), mean: try be.tensor(mean, shape: [rows, columns]),
                                  logStd: try be.tensor(logStd, shape: [rows]), into: out)
        // ½·mean z² ≤ 2/3 here carries the float sum's drift (summationTolerance) and a few ulp of exp(−log σ) as an
        // absolute error; |logp| ≲ 10 rounds at 2ε.
        expectClose(try be.readFloats(out), expected, absolute: summationTolerance(columns) + 2e-6, relative: 2.4e-7,
                    "gaussianLogProbability \(rows)×\(columns)")
    }

    /// σ = 1e-4 exactly, x = μ + σ·ε with μ of order 1: (x − μ)² ~ 1e-8 must not be lost against 2σ² ~ 2e-8.
    @Test func gaussianLogProbabilityWithTinySigma() throws {
        let (rows, columns) = (4, 2810)
        let mean = randomValues(rows * columns, seed: 42)
        let epsilon = randomValues(rows * columns, seed: 43).map { $0 * 1.7 }
        let logStd = [Float](repeating: Float(Foundation.log(1e-4)), count: rows)
        let x = (0..<rows * columns).map { Float(Double(mean[$0]) + 1e-4 * Double(epsilon[$0])) }
        let expected = Self.closedForm(x, mean, logStd, columns: columns)
        let out = try be.makeTensor([rows], .float32)
        be.gaussianLogProbability(try be.tensor(x, shape: [rows, columns]), mean: try be.tensor(mean, shape: [rows, columns]),
                                  logStd: try be.tensor(logStd, shape: [rows]), into: out)
        expectClose(try be.readFloats(out), expected, absolute: summationTolerance(columns) + 2e-6, relative: 2.4e-7,
                    "gaussianLogProbability σ=1e-4")
        // And the closed form is what the inputs were drawn for: ≈ −½·E[ε²] − ½ln 2π − ln 1e-4, E[ε²] = 1.7²/3.
        let roughly = -0.5 * 1.7 * 1.7 / 3 - 0.5 * Foundation.log(2 * Double.pi) - Foundation.log(1e-4)
        #expect(expected.allSatisfy { abs($0 - roughly) < 0.05 }, "\(expected) vs \(roughly)")
    }

    /// The backward against central finite differences of the Float64 closed form: d/dμ_rc of Σ_r g_r·logp_r.
    @Test(arguments: [(1, 1), (3, 7), (2, 2810)])
    func gaussianLogProbabilityBackward(rows: Int, columns: Int) throws {
        let (x, mean, logStd) = KernelCases.gaussianInputs(rows: rows, columns: columns, seed: 44)
        let dLogp = randomValues(rows, seed: 47).map { $0 * 2 }
        let out = try be.makeTensor([rows, columns], .float32)
        be.gaussianLogProbabilityBackward(try be.tensor(x, shape: [rows, columns]), mean: try be.tensor(mean, shape: [rows, columns]),
                                          logStd: try be.tensor(logStd, shape: [rows]), dLogp: try be.tensor(dLogp, shape: [rows]),
                                          into: out)
        let dMean = try be.readFloats(out)
        // The closed form is quadratic in μ, so a central difference is exact up to Float64 rounding.
        var finiteDifferences = [Double](repeating: 0, count: rows * columns)
        for r in 0..<rows {
            let sigma = Foundation.exp(Double(logStd[r]))
            let h = 1e-3 * sigma
            func objective(_ i: Int, _ shift: Double) -> Double {
                var squares = 0.0
                for c in 0..<columns {
                    let d = Double(x[r * columns + c]) - Double(mean[r * columns + c]) - (r * columns + c == i ? shift : 0)
                    squares += d * d
                }
                return Double(dLogp[r]) * (-squares / (2 * sigma * sigma * Double(columns)) - 0.5 * Foundation.log(2 * Double.pi) - Double(logStd[r]))
            }
            // Only the entry being moved changes; difference that term alone to keep the estimate free of cancellation.
            for c in 0..<columns {
                let i = r * columns + c
                let d = Double(x[i]) - Double(mean[i])
                let plus = -((d - h) * (d - h)) / (2 * sigma * sigma * Double(columns))
                let minus = -((d + h) * (d + h)) / (2 * sigma * sigma * Double(columns))
                finiteDifferences[i] = Double(dLogp[r]) * (plus - minus) / (2 * h)
            }
            if columns <= 7 {  // and, for small rows, the whole objective, as a check on the shortcut above
                for c in 0..<columns {
                    let i = r * columns + c
                    let whole = (objective(i, h) - objective(i, -h)) / (2 * h)
                    #expect(abs(whole - finiteDifferences[i]) <= 1e-6 * max(1, abs(whole)), "finite differences disagree at \(i)")
                }
            }
        }
        let scale = finiteDifferences.map(abs).max() ?? 1
        expectClose(dMean, finiteDifferences, absolute: 1e-6 * scale, relative: 1e-5, "gaussianLogProbabilityBackward \(rows)×\(columns)")
    }

    @Test(arguments: [(1, 1), (7, 33), (3, 2810)])
    func squaredErrorRowsAndBackward(rows: Int, columns: Int) throws {
        let prediction = randomValues(rows * columns, seed: 51), target = randomValues(rows * columns, seed: 52).map { $0 > 0.5 ? Float(1) : 0 }
        let weights = randomValues(rows, seed: 53).map { $0 * 4 }
        let expected = (0..<rows).map { r in
            (0..<columns).reduce(0.0) { acc, c in
                let d = Double(prediction[r * columns + c]) - Double(target[r * columns + c])
                return acc + d * d
            } / Double(columns)
        }
        // Integer differences: every partial sum of squares is exact, so the mean is one correctly rounded division.
        let integerPrediction = randomInts(rows * columns, in: -3..<4, seed: 54).map(Float.init)
        let integerTarget = randomInts(rows * columns, in: 0..<2, seed: 55).map(Float.init)
        let integerLoss = (0..<rows).map { r in
            (0..<columns).reduce(Float(0)) { acc, c in
                let d = integerPrediction[r * columns + c] - integerTarget[r * columns + c]
                return acc + d * d
            } / Float(columns)
        }
        let out = try be.makeTensor([rows], .float32)
        be.squaredErrorRows(try be.tensor(prediction, shape: [rows, columns]), try be.tensor(target, shape: [rows, columns]), into: out)
        // A mean of non-negative terms: the float sum's drift, plus the division's rounding.
        expectClose(try be.readFloats(out), expected, absolute: 1e-7, relative: summationTolerance(columns) + 1.2e-7,
                    "squaredErrorRows \(rows)×\(columns)")
        be.squaredErrorRows(try be.tensor(integerPrediction, shape: [rows, columns]), try be.tensor(integerTarget, shape: [rows, columns]),
                            into: out)
        expectIdentical(try be.readFloats(out), integerLoss, "squaredErrorRows of integers \(rows)×\(columns)")

        let dPrediction = try be.makeTensor([rows, columns], .float32)
        be.squaredErrorBackward(try be.tensor(prediction, shape: [rows, columns]), try be.tensor(target, shape: [rows, columns]),
                                rowWeights: try be.tensor(weights, shape: [rows]), into: dPrediction)
        let gradient = try be.readFloats(dPrediction)
        let expectedGradient = (0..<rows * columns).map { i in
            Double(weights[i / columns]) * 2 * (Double(prediction[i]) - Double(target[i])) / Double(columns)
        }
        // Three roundings (difference, products, quotient) of the result.
        expectClose(gradient, expectedGradient, absolute: 1e-12, relative: 4e-7, "squaredErrorBackward \(rows)×\(columns)")
    }
}
