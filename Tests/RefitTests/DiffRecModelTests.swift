import Foundation
import Testing
@testable import Refit
import RefitCompute

/// The DiffRec denoiser and its training step: architecture, device diffusion tables, backends agreeing, the
/// backward pass against finite differences, and learning.
@Suite struct DiffRecModelTests {
    /// One training step's pieces, read back to the host.
    struct StepResult {
        var output: [Float]
        var lossRows: [Float]
        var gradients: [String: [Float]]
    }

    /// A training step exactly as `DiffRecTrainer` does it, with the batch, timesteps and row weights given.
    static func trainingStep(_ backend: any Backend, settings: DiffRecSettings, dataset: InteractionDataset,
                             users: [Int32], timesteps: [Int32], rowWeights: [Float]) throws -> StepResult {
        let model = try DiffRecModel(backend: backend, settings: settings, items: dataset.itemCount)
        let rows = users.count, items = dataset.itemCount
        let train = try DeviceCSR(dataset.train, on: backend)
        let userTensor = try backend.tensor(users, shape: [rows])
        let t = try backend.tensor(timesteps, shape: [rows])
        let x0 = try backend.makeTensor([rows, items], .float32)
        let noise = try backend.makeTensor([rows, items], .float32)
        let xt = try backend.makeTensor([rows, items], .float32)
        let loss = try backend.makeTensor([rows], .float32)
        let dOutput = try backend.makeTensor([rows, items], .float32)
        backend.densifyRows(train, rows: userTensor, into: x0)
        backend.fillNormal(noise, seed: 99, offset: 1234)
        try model.diffusion.qSample(x0, timesteps: t, noise: noise, into: xt)
        let output = try model.denoiser.forward(xt, timesteps: t, training: true, dropoutSeed: 17, dropoutOffset: 4096)
        backend.squaredErrorRows(output, x0, into: loss)
        backend.squaredErrorBackward(output, x0, rowWeights: try backend.tensor(rowWeights, shape: [rows]), into: dOutput)
        let parameters = model.denoiser.parameters
        parameters.zeroGradients()
        try model.denoiser.backward(dOutput: dOutput)
        return StepResult(output: try backend.readFloats(output), lossRows: try backend.readFloats(loss),
                          gradients: try PretrainTestSupport.named(parameters, parameters.gradients))
    }

    @Test func architectureFollowsDiffRec() throws {
        // DESIGN §3: dims [200, 600] on ML-1M's 2,810 items is 3,622,320 parameters, named as in PyTorch.
        let ml1m = DiffRecArchitecture(items: 2810, dims: [200, 600], embeddingSize: 10)
        let layout = Dictionary(uniqueKeysWithValues: ml1m.parameterLayout.map { ($0.0, $0.1) })
        #expect(ml1m.parameterLayout.reduce(0) { $0 + $1.1.reduce(1, *) } == 3_622_320)
        #expect(layout["in_layers.0.weight"] == [600, 2820])
        #expect(layout["in_layers.1.weight"] == [200, 600])
        #expect(layout["out_layers.0.weight"] == [600, 200])
        #expect(layout["out_layers.1.weight"] == [2810, 600])
        #expect(layout["out_layers.1.bias"] == [2810])
        #expect(layout["emb_layer.weight"] == [10, 10] && layout["emb_layer.bias"] == [10])
        #expect(layout.count == 10)
        #expect(ml1m.layers.map { $0.activation } == [.tanh, .tanh, .tanh, .identity])

        // Initialisation: Xavier-normal weights (std √(2/(fan_in + fan_out))), N(0, 0.001²) biases, same on every seed use.
        let model = try DiffRecDenoiser(backend: CPUBackend(), architecture: DiffRecArchitecture(items: 300, dims: [64]), seed: 5)
        let values = try PretrainTestSupport.named(model.parameters, model.parameters.values)
        func std(_ v: [Float]) -> Double {
            let mean = v.reduce(0) { $0 + Double($1) } / Double(v.count)
            return (v.reduce(0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / Double(v.count)).squareRoot()
        }
        let w = try #require(values["in_layers.0.weight"])  // (64, 310)
        #expect(abs(std(w) / (2.0 / (64 + 310)).squareRoot() - 1) < 0.05)
        let bias = try #require(values["out_layers.0.bias"])  // 300 entries
        #expect(abs(std(bias) / 0.001 - 1) < 0.2)
        let again = try DiffRecDenoiser(backend: CPUBackend(), architecture: DiffRecArchitecture(items: 300, dims: [64]), seed: 5)
        #expect(try PretrainTestSupport.named(again.parameters, again.parameters.values) == values)
    }

    /// q-sample, the x̂₀ of an eps model and the posterior mean on the device against the Float64 tables.
    @Test func diffusionStepsUseTheScheduleTables() throws {
        let backend = CPUBackend()
        let schedule = try DiffRecPreset.ml1mClean.settings.noiseSchedule()
        let diffusion = try GaussianDiffusion(backend: backend, schedule: schedule, meanType: .eps)
        let steps: [Int32] = [0, 1, 17, 39]
        let x0Values = (0..<(4 * 5)).map { Float(($0 * 7) % 3 == 0 ? 1 : 0) }
        let noiseValues = (0..<(4 * 5)).map { Float(sin(Double($0) * 1.3)) }
        let x0 = try backend.tensor(x0Values, shape: [4, 5]), noise = try backend.tensor(noiseValues, shape: [4, 5])
        let t = try backend.tensor(steps, shape: [4])
        let xt = try backend.makeTensor([4, 5], .float32)
        try diffusion.qSample(x0, timesteps: t, noise: noise, into: xt)
        let xtValues = try backend.readFloats(xt)
        for i in 0..<20 {
            let s = Int(steps[i / 5])
            let expected = schedule.alphaBars[s].squareRoot() * Double(x0Values[i]) + (1 - schedule.alphaBars[s]).squareRoot() * Double(noiseValues[i])
            #expect(abs(Double(xtValues[i]) - expected) < 1e-6, "q-sample element \(i)")
        }
        // For eps-prediction, feeding the true noise recovers x₀.
        let predicted = try backend.tensor(noiseValues, shape: [4, 5])
        try diffusion.predictedStart(modelOutput: predicted, xt: xt, timesteps: t)
        expectAllClose(try backend.readFloats(predicted), x0Values, absolute: 2e-3, relative: 0, "x0 recovered from eps")
        // μ̃ = c1·x̂₀ + c2·x_t.
        let mean = try backend.makeTensor([4, 5], .float32)
        try diffusion.posteriorMean(predictedStart: x0, xt: xt, timesteps: t, into: mean)
        let c1 = schedule.posteriorMeanCoefficient1, c2 = schedule.posteriorMeanCoefficient2
        let expectedMean = (0..<20).map { i in
            Float(c1[Int(steps[i / 5])] * Double(x0Values[i]) + c2[Int(steps[i / 5])] * Double(xtValues[i]))
        }
        expectAllClose(try backend.readFloats(mean), expectedMean, absolute: 1e-6, relative: 1e-5, "posterior mean")
    }

    /// The same step (seed, batch, timesteps, noise, dropout) on the OpenCL device and on the CPU reference.
    /// Tolerance: loss rows to 1e-5 relative; each gradient entry to 1e-4 relative plus 5e-6 of its tensor's
    /// largest magnitude (float32 sums over the batch in other orders; the rows carry SNR weights of ~1e3–1e4).
    /// Seen on PoCL: at most 3e-7 of the largest magnitude.
    @Test func oneTrainingStepAgreesAcrossBackends() throws {
        guard let device = try PretrainTestSupport.openCLBackend("the backend comparison of a training step") else { return }
        let dataset = PretrainTestSupport.tinyDataset(users: 40, items: 37)
        var settings = PretrainTestSupport.tinySettings()
        settings.dims = [13, 7]
        let users: [Int32] = [3, 0, 17, 39, 21, 8, 11, 30, 5, 26, 14]
        let timesteps = users.map { Int32($0) % Int32(settings.steps) }
        let weights = try settings.noiseSchedule().reweightingWeights
        let rowWeights = timesteps.map { Float(weights[Int($0)] / Double(users.count)) }
        let reference = try Self.trainingStep(CPUBackend(), settings: settings, dataset: dataset, users: users,
                                              timesteps: timesteps, rowWeights: rowWeights)
        let opencl = try Self.trainingStep(device, settings: settings, dataset: dataset, users: users,
                                           timesteps: timesteps, rowWeights: rowWeights)
        expectAllClose(opencl.output, reference.output, absolute: 1e-5, relative: 1e-4, "denoiser output")
        expectAllClose(opencl.lossRows, reference.lossRows, absolute: 1e-7, relative: 1e-5, "loss rows")
        #expect(Set(opencl.gradients.keys) == Set(reference.gradients.keys))
        #expect(reference.gradients.count == 2 * (settings.dims.count * 2) + 2)
        for (name, expected) in reference.gradients {
            let scale = expected.map(abs).max() ?? 0
            #expect(scale > 0, "\(name): zero gradient")
            expectAllClose(opencl.gradients[name] ?? [], expected, absolute: 5e-6 * scale, relative: 1e-4, "gradient of \(name)")
        }
    }

    /// The backward pass against central differences of L = Σ_r w_r·mse_r on the CPU reference, for the largest
    /// and two other entries of every parameter tensor. Float32 forward passes: h = 1e-2, tolerance 0.5% + 2e-5
    /// (seen: at most 1.1e-4 absolute on gradients of ~1, 2.5e-6 on gradients of ~1e-3).
    @Test func backwardMatchesFiniteDifferences() throws {
        let backend = CPUBackend()
        let dataset = PretrainTestSupport.tinyDataset(users: 12, items: 11)
        var settings = PretrainTestSupport.tinySettings()
        settings.dims = [6, 5]
        settings.embeddingSize = 4
        let model = try DiffRecModel(backend: backend, settings: settings, items: dataset.itemCount)
        let parameters = model.denoiser.parameters
        let rows = 6, items = dataset.itemCount
        let users: [Int32] = [0, 2, 4, 5, 7, 11]
        let rowWeights: [Float] = [1, 0.5, 2, 1.5, 0.25, 1]
        let x0 = try backend.makeTensor([rows, items], .float32)
        backend.densifyRows(try DeviceCSR(dataset.train, on: backend), rows: try backend.tensor(users, shape: [rows]), into: x0)
        let t = try backend.tensor([0, 1, 2, 3, 4, 2] as [Int32], shape: [rows])
        let noise = try backend.makeTensor([rows, items], .float32)
        backend.fillNormal(noise, seed: 4, offset: 0)
        let xt = try backend.makeTensor([rows, items], .float32)
        try model.diffusion.qSample(x0, timesteps: t, noise: noise, into: xt)
        let target = try backend.readFloats(x0)

        func loss() throws -> Double {
            let output = try backend.readFloats(try model.denoiser.forward(xt, timesteps: t, training: true, dropoutSeed: 8, dropoutOffset: 0))
            var total = 0.0
            for r in 0..<rows {
                var squares = 0.0
                for c in 0..<items { let d = Double(output[r * items + c]) - Double(target[r * items + c]); squares += d * d }
                total += Double(rowWeights[r]) * squares / Double(items)
            }
            return total
        }

        _ = try loss()
        let output = try model.denoiser.forward(xt, timesteps: t, training: true, dropoutSeed: 8, dropoutOffset: 0)
        let dOutput = try backend.makeTensor([rows, items], .float32)
        backend.squaredErrorBackward(output, x0, rowWeights: try backend.tensor(rowWeights, shape: [rows]), into: dOutput)
        parameters.zeroGradients()
        try model.denoiser.backward(dOutput: dOutput)
        let gradients = try PretrainTestSupport.named(parameters, parameters.gradients)
        var values = Dictionary(uniqueKeysWithValues: try parameters.namedTensors(of: parameters.values).map { ($0.name, (shape: $0.shape, values: $0.values)) })

        let h: Float = 1e-2
        var checked = 0
        for entry in parameters.entries {
            let g = try #require(gradients[entry.name])
            let largest = g.indices.max { abs(g[$0]) < abs(g[$1]) }!
            for index in Set([largest, (entry.count * 2) / 5, entry.count - 1]) {
                let original = values[entry.name]!.values[index]
                values[entry.name]!.values[index] = original + h
                try parameters.load(values, into: parameters.values)
                let plus = try loss()
                values[entry.name]!.values[index] = original - h
                try parameters.load(values, into: parameters.values)
                let minus = try loss()
                values[entry.name]!.values[index] = original
                try parameters.load(values, into: parameters.values)
                let numeric = (plus - minus) / Double(2 * h)
                let analytic = Double(g[index])
                #expect(abs(numeric - analytic) <= 5e-3 * abs(analytic) + 2e-5,
                        "\(entry.name)[\(index)]: backward \(analytic), finite difference \(numeric)")
                checked += 1
            }
            #expect(abs(g[largest]) > 1e-3, "\(entry.name): the largest gradient is \(g[largest]); nothing is checked")
        }
        #expect(checked >= parameters.entries.count * 2)
    }

    /// DiffRecTrainer on a tiny model: one batch per epoch, 20 steps; the epoch loss falls.
    @Test func tinyModelLossFalls() throws {
        let dataset = PretrainTestSupport.tinyDataset()
        var settings = PretrainTestSupport.tinySettings(epochs: 20, batchSize: dataset.userCount)
        settings.reweight = false  // SNR weights span orders of magnitude between steps: an unweighted loss shows the trend
        let backend = CPUBackend()
        let model = try DiffRecModel(backend: backend, settings: settings, items: dataset.itemCount)
        let evaluator = try TopKEvaluator(backend: backend, dataset: dataset, batchSize: settings.batchSize)
        let trainer = try DiffRecTrainer(model: model, dataset: dataset, evaluator: evaluator,
                                         run: RunFolder(FileManager.default.temporaryDirectory.appendingPathComponent("refit-unused-\(UUID())").path))
        var losses: [Double] = []
        for _ in 0..<20 { losses.append(try trainer.trainEpoch()) }
        #expect(losses.allSatisfy { $0.isFinite })
        let first = losses.prefix(3).reduce(0, +) / 3, last = losses.suffix(3).reduce(0, +) / 3
        #expect(last < 0.6 * first,  // seen: 0.41 → 0.16
                "loss \(losses.map { String(format: "%.4f", $0) })")
        #expect(trainer.state.optimizerStep == 20 && trainer.state.epoch == 20)
    }
}
