import Foundation
import Testing
@testable import Refit
import RefitCompute

/// The pathwise estimator on DreamRec: its chain is the evaluation's sampler with the noise of (seed, update), and its
/// gradient through every guided step and the seq-loglik reward matches central finite differences.
@Suite struct DreamRecPathwiseTests {
    static func tinyModels(anchor: Float, loss: DenoiserLoss) throws -> (CPUBackend, ModelChecks.TinyData, SequentialModel, SequentialModel, FinetuneSettings) {
        let backend = CPUBackend()
        let data = try ModelChecks.TinyData(backend: backend)
        var s = ModelChecks.sequentialSettings(.dreamrec, seed: 5, data: data)
        (s.steps, s.samplingSteps, s.targetScale, s.denoiserLoss) = (30, 4, 2, loss)
        let items = data.sequences.itemIDs.count
        let model = try SequentialModel(backend: backend, settings: s, items: items)
        s.seed += 1
        let reference = try SequentialModel(backend: backend, settings: s, items: items)
        // The same encoder and embeddings (DreamRec's are frozen, shared); only the denoisers differ.
        backend.copy(model.encoder.parameters.values, to: reference.encoder.parameters.values)
        var settings = FinetuneSettings.sequential
        settings.reward = .seqLoglik(temperature: 0.5)
        settings.estimator = .pathwise(PathwiseSettings(anchor: anchor > 0 ? Anchor(weight: anchor) : nil))
        try settings.validate()
        return (backend, data, model, reference, settings)
    }

    /// With `ce`, every step but the last goes on from the posterior mean of its predicted distribution, so the
    /// gradient also runs through that softmax.
    @Test(arguments: [(Float(0), DenoiserLoss.mse), (2, .mse), (0, .ce), (2, .ce)])
    func gradientMatchesFiniteDifferencesThroughTheSampler(anchor: Float, loss: DenoiserLoss) throws {
        let (backend, data, model, reference, settings) = try Self.tinyModels(anchor: anchor, loss: loss)
        let reward = NextItemReward(spec: settings.reward, model: model, dataset: data.sequences)
        let policy = try DreamRecPolicy(model: model, reference: reference, reward: reward, dataset: data.sequences,
                                        exploration: Exploration(), seed: 9)
        let estimator = try PathwiseEstimator(policy: policy, settings: settings)
        let examples = Array(data.sequences.trainingExamples.prefix(5))
        let update = 3
        let (rewards, distance) = try estimator.gradient(examples, update: update)
        let gradients = try backend.readFloats(model.denoiser!.parameters.gradients)

        // The objective from the evaluation's own sampler, with the stream the pathwise chain promises.
        let l = model.settings.historyLength, n = examples.count, d = model.settings.hiddenSize
        let histories = examples.flatMap { data.sequences.history(user: Int($0.user), before: Int($0.position), length: l) }
        let targets = examples.map { data.sequences.sequences[Int($0.user)][Int($0.position)] }
        let lastItems = (0..<n).map { histories[$0 * l + l - 1] }
        let offset = UInt64(update) * UInt64(model.sampler.count + 1) * UInt64(n * d)
        func x0(_ m: SequentialModel) throws -> [Float] {
            let h = try m.encoder.forward(histories: histories, training: false)
            return try backend.readFloats(try m.sample(conditions: h, seed: 9 ^ 0x5041_5448, offset: offset, trajectory: nil))
        }
        let referenceX0 = try x0(reference)
        func objective() throws -> Double {
            let x = try x0(model)
            let r = try reward.rewards(x0: try backend.tensor(x, shape: [n, d]), targets: targets, lastItems: lastItems)
            let squares = zip(x, referenceX0).map { Double($0 - $1) * Double($0 - $1) }.reduce(0, +)
            return -r.reduce(0, +) / Double(n) + Double(anchor) * squares / 2 / Double(n)
        }
        let logged = -rewards.reduce(0, +) / Double(n) + Double(anchor) * distance
        #expect(abs(try objective() - logged) < 1e-5, "the pathwise chain is not the evaluation's sampler")
        #expect(anchor == 0 || distance > 1e-4, "the reference must differ for the anchor's check to mean much")

        let parameters = model.denoiser!.parameters
        try expectGradients(gradients, ofObjective: objective, parameters: parameters, measurable: 8, names: parameters.entries.map(\.name))
    }
}
