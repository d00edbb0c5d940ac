import Foundation
import Testing
@testable import Refit
import RefitCompute

@Suite struct PretrainBenchmarkTests {
    /// The work counts: DESIGN §3's ML-1M model is 3,622,320 parameters, of which 4,220 biases, so a forward pass
    /// is 2 × 3,618,100 FLOP per row and one evaluation of 5,949 users over 40 steps is the quoted 1.7 TFLOP.
    @Test func flopCountsMatchTheDesign() {
        let ml1m = DiffRecArchitecture(items: 2810, dims: [200, 600], embeddingSize: 10)
        #expect(PretrainBenchmark.forwardFLOPsPerRow(ml1m) == 7_236_200)
        #expect(abs(5949 * 40 * PretrainBenchmark.forwardFLOPsPerRow(ml1m) / 1e12 - 1.72) < 0.01)
        // Backward: all weight gradients (= forward) plus input gradients of all but the first layer, whose
        // time-embedding columns alone are needed: 2·(600·200 + 200·600 + 600·2810 + 600·10).
        let inputGradients: Double = 2 * (120_000 + 120_000 + 1_686_000 + 6_000)
        #expect(PretrainBenchmark.trainingFLOPsPerRow(ml1m) == 2 * 7_236_200 + inputGradients)
        // The factored chain: per user the first layer's item columns once (2·2810·600), 40 steps of the middle
        // layers and the 600 × 600 product (2·(120,000 + 120,000 + 360,000)), the last layer once; per batch U·W_L.
        let perUser: Double = 2 * 2810 * 600 + 40 * 2 * 600_000 + 2 * 600 * 2810
        #expect(PretrainBenchmark.factoredEvaluationFLOPs(ml1m, users: 5949, steps: 40, batchSize: 400)
                == 5949 * perUser + 15 * 2 * 600 * 2810 * 600)
    }

    @Test func timesAnEpochAndAnEvaluation() throws {
        let dataset = PretrainTestSupport.tinyDataset()
        let result = try PretrainBenchmark.run(backend: CPUBackend(), dataset: dataset,
                                               settings: PretrainTestSupport.tinySettings(), split: .valid, repetitions: 2)
        #expect(result.epochSeconds > 0 && result.evaluationSeconds > 0)
        #expect(result.denoisingSeconds > 0 && result.denoisingSeconds <= result.evaluationSeconds)
        #expect(result.stepwiseEvaluationSeconds > 0 && result.stepwiseEvaluationGFLOP > result.evaluationGFLOP)
        #expect(result.trainingUsers == 40 && result.users == 40 && result.items == 30 && result.repetitions == 2)
        #expect(result.epochGFLOPPerSecond.isFinite && result.evaluationGFLOPPerSecond.isFinite)
        #expect(result.recall20 > 0 && result.recall20 <= 1)
        #expect(result.summary.contains("epoch") && result.summary.contains("evaluation"))
    }
}
