import Testing
@testable import Refit
import RefitCompute

/// `DiffRecModel.scores` runs the reverse chain factored through the first hidden layer; it must be the step-by-step
/// chain's function, for both mean types, one or several hidden layers, and a noisy start.
@Suite struct FactoredReverseChainTests {
    static func settings(dims: [Int], meanType: MeanType, samplingSteps: Int) -> DiffRecSettings {
        var s = DiffRecSettings()
        s.dims = dims
        s.meanType = meanType
        s.samplingSteps = samplingSteps
        s.steps = 9
        s.noiseScale = 0.1   // large enough noise that every step's coefficients matter
        s.noiseMin = 0.01
        s.noiseMax = 0.2
        s.seed = 3
        return s
    }

    /// Binary interaction rows, about a third of them ones.
    static func rows(_ count: Int, items: Int) -> [Float] {
        var random = SplitMix64(seed: 11)
        return (0..<count * items).map { _ in random.next() % 3 == 0 ? 1 : 0 }
    }

    @Test(arguments: [[16], [24, 40]], [MeanType.x0, .eps])
    func factoredEqualsStepwise(dims: [Int], meanType: MeanType) throws {
        let items = 37, batch = 5
        var backends: [any Backend] = [CPUBackend()]
        if let device = try PretrainTestSupport.openCLBackend("the factored reverse chain") { backends.append(device) }
        for samplingSteps in [0, 4] {
            let settings = Self.settings(dims: dims, meanType: meanType, samplingSteps: samplingSteps)
            let reference = try DiffRecModel(backend: CPUBackend(), settings: settings, items: items)
            let x = Self.rows(batch, items: items)
            let stepwise = try reference.backend.readFloats(try reference.stepwiseScores(try reference.backend.tensor(x, shape: [batch, items])))
            let scale = stepwise.map { abs($0) }.max() ?? 0
            #expect(scale > 0.01, "the chain's output is not trivially small")
            #expect(zip(stepwise, x).contains { abs($0 - $1) > 0.01 }, "the chain changed its input")
            for backend in backends {
                let model = try DiffRecModel(backend: backend, settings: settings, items: items)
                let factored = try backend.readFloats(try model.scores(try backend.tensor(x, shape: [batch, items])))
                expectAllClose(factored, stepwise, absolute: 2e-5 * scale, relative: 1e-4,
                               "\(backend.deviceDescription), dims \(dims), \(meanType), start step \(samplingSteps)")
            }
        }
    }
}
