import Foundation
import RefitCompute

/// A sequential recommender on a backend: the SASRec encoder, and for DreamRec the conditional denoiser with its
/// forward process and sampler.
///
/// Scores for a batch of histories are `h·Eᵀ` (SASRec) or `x̂₀·Eᵀ` with x̂₀ sampled from N(0, I) by the reverse
/// process under classifier-free guidance (DreamRec), over all items.
public final class SequentialModel: @unchecked Sendable {
    public let settings: SequentialSettings
    public let encoder: SASRecEncoder
    public let denoiser: DreamRecDenoiser?
    public let schedule: NoiseSchedule
    public let sampler: DiffusionSampler
    public var backend: any Backend { encoder.parameters.backend }
    private var scoreBuffers: [Int: Tensor] = [:]
    private var samplingBuffers: [Int: SamplingBuffers] = [:]

    public init(backend: any Backend, settings: SequentialSettings, items: Int) throws {
        self.settings = settings
        encoder = try SASRecEncoder(backend: backend, architecture: SASRecArchitecture(items: items, settings: settings), seed: settings.seed)
        denoiser = settings.model == .dreamrec
            ? try DreamRecDenoiser(backend: backend, hiddenSize: settings.hiddenSize, depth: settings.denoiserDepth, seed: settings.seed)
            : nil
        schedule = try settings.noiseSchedule()
        sampler = DiffusionSampler(schedule: schedule, steps: settings.samplingSteps)
    }

    /// The parameters a checkpoint of this model holds: the encoder's, and for DreamRec the denoiser's.
    public var trainedParameters: ParameterStore { denoiser?.parameters ?? encoder.parameters }

    /// Scores (B, items) for B histories (B·L items), in inference mode. DreamRec draws its starting noise and
    /// step noise from the Philox stream of `seed`, so an evaluation is reproducible.
    ///
    /// `samples` > 1 averages that many independent x̂₀ before scoring: an estimate of E[x₀ | h] rather than one draw
    /// (a diagnostic of how much a single sample's noise costs the ranking).
    public func scores(histories: [Int32], seed: UInt64, samples: Int = 1) throws -> Tensor {
        let h = try encoder.forward(histories: histories, training: false)
        guard denoiser != nil else { return try score(h) }
        let n = h.rows, d = settings.hiddenSize
        var query = try sample(conditions: h, seed: seed, offset: 0, trajectory: nil)
        if samples > 1 {
            let mean = try averageBuffer(n)
            backend.copy(query, to: mean)
            for j in 1..<samples {
                query = try sample(conditions: h, seed: seed, offset: UInt64(j) * UInt64(sampler.count + 1) * UInt64(n * d), trajectory: nil)
                backend.axpy(1, query, mean)
            }
            backend.scale(mean, by: 1 / Float(samples))
            query = mean
        }
        return try score(query)
    }

    private var averageBuffers: [Int: Tensor] = [:]
    private func averageBuffer(_ n: Int) throws -> Tensor {
        try averageBuffers.reused(n) { try backend.makeTensor([n, settings.hiddenSize], .float32) }
    }

    /// What `score` multiplies `query·Eᵀ` by: DreamRec's x̂₀ lives in E's space scaled by targetScale (1 for SASRec's h).
    public var scoreScale: Float { denoiser == nil ? 1 : 1 / settings.targetScale }

    /// `query·Eᵀ` (B, items), in a buffer reused per B (for DreamRec, divided by `targetScale`).
    public func score(_ query: Tensor) throws -> Tensor {
        let rows = query.rows
        let out: Tensor
        if let existing = scoreBuffers[rows] { out = existing } else {
            out = try backend.makeTensor([rows, encoder.architecture.items], .float32)
            scoreBuffers[rows] = out
        }
        backend.matmul(query, transposeA: false, encoder.itemEmbeddings, transposeB: true, into: out, alpha: scoreScale, beta: 0)
        return out
    }

    // MARK: DreamRec sampling

    /// Per-row work tensors of the sampler for n rows. The guided batch stacks 2n rows (conditional, then null);
    /// it is assembled and split with row gathers rather than sub-buffer views, whose offsets OpenCL wants aligned
    /// (to 128 floats on NVIDIA) — n·d is not, for odd n.
    final class SamplingBuffers {
        let x, paired, conditions, nullRows, stepIndices, stepRows: Tensor
        let duplicate, conditionalRows, nullPairRows, firstHalf, secondHalf: Tensor
        let conditionalOutput, unconditionalOutput: Tensor
        let guidedScale, unguidedScale, x0, a, b, sigma, ones, noise: Tensor
        /// The backward's: ∂L/∂(output) of the paired batch, its per-row scale, zeros, and ∂L/∂x of each half.
        let dPaired, pairScale, pairZeros, dPairedInput, dSecondHalf: Tensor
        /// The paired batch's second half used ∅: where the condition's gradient goes.
        let nullHalf: ScatterPlan
        /// Cross-entropy models' posterior step: p = softmax of the guided query's scores, its backward's work (n × items),
        /// and whether the last `guidedPrediction` replaced the query by the posterior mean (every step but the last).
        let posterior: (probabilities: Tensor, dProbabilities: Tensor, rowSums: Tensor, dQuery: Tensor)?
        var converted = false
        let n: Int
        init(_ backend: any Backend, n: Int, d: Int, guidance: Float, posteriorItems: Int?) throws {
            self.n = n
            func t(_ shape: [Int]) throws -> Tensor { try backend.makeTensor(shape, .float32) }
            func indices(_ values: [Int32]) throws -> Tensor { try backend.tensor(values, shape: [values.count]) }
            let rows = (0..<n).map { Int32($0) }, none = [Int32](repeating: -1, count: n)
            x = try t([n, d]); paired = try t([2 * n, d]); conditions = try t([2 * n, d]); nullRows = try t([2 * n, d])
            stepIndices = try backend.makeTensor([2 * n], .int32); stepRows = try t([2 * n, d])
            duplicate = try indices(rows + rows)
            conditionalRows = try indices(rows + none)
            nullPairRows = try indices(none + [Int32](repeating: 0, count: n))
            firstHalf = try indices(rows)
            secondHalf = try indices(rows.map { $0 + Int32(n) })
            conditionalOutput = try t([n, d]); unconditionalOutput = try t([n, d])
            guidedScale = try backend.tensor([Float](repeating: 1 + guidance, count: n), shape: [n])
            unguidedScale = try backend.tensor([Float](repeating: -guidance, count: n), shape: [n])
            x0 = try t([n, d]); a = try t([n]); b = try t([n]); sigma = try t([n])
            ones = try backend.tensor([Float](repeating: 1, count: n), shape: [n])
            noise = try t([n, d])
            dPaired = try t([2 * n, d]); pairScale = try t([2 * n]); pairZeros = try t([2 * n])
            dPairedInput = try t([2 * n, d]); dSecondHalf = try t([n, d])
            nullHalf = try ScatterPlan(indices: rows.map { _ in -1 } + rows.map { _ in 0 }, backend: backend)
            posterior = try posteriorItems.map { items in
                (try t([n, items]), try t([n, items]), try t([n]), try t([n, d]))
            }
        }
    }

    func samplingBuffers(_ n: Int) throws -> SamplingBuffers {
        try samplingBuffers.reused(n) {
            try SamplingBuffers(backend, n: n, d: settings.hiddenSize, guidance: settings.guidance,
                                posteriorItems: settings.loss == .ce ? encoder.architecture.items : nil)
        }
    }

    /// Builds the guided batch's conditions: [h; ∅].
    func pairedConditions(_ h: Tensor, buffers s: SamplingBuffers) {
        backend.gatherRows(h, indices: s.conditionalRows, into: s.conditions)
        backend.gatherRows(denoiser!.nullCondition, indices: s.nullPairRows, into: s.nullRows)
        backend.add(s.conditions, s.nullRows, into: s.conditions)
    }

    /// The guided prediction `x̂₀ = (1+w)·f(x, h, t) − w·f(x, ∅, t)` into `s.x0`, from a forward over [x; x].
    /// With `timesteps` the denoiser keeps what its backward needs; otherwise `stepRows` come from a step table.
    func guidedPrediction(_ x: Tensor, step t: Int, buffers s: SamplingBuffers, table: Tensor?, timesteps: Tensor?) throws {
        backend.gatherRows(x, indices: s.duplicate, into: s.paired)
        let output: Tensor
        if let table {
            backend.write([Int32](repeating: Int32(t), count: 2 * s.n), to: s.stepIndices)
            backend.gatherRows(table, indices: s.stepIndices, into: s.stepRows)
            output = try denoiser!.forward(s.paired, condition: s.conditions, stepRows: s.stepRows)
        } else {
            output = try denoiser!.forward(s.paired, condition: s.conditions, timesteps: timesteps)
        }
        backend.gatherRows(output, indices: s.firstHalf, into: s.conditionalOutput)
        backend.gatherRows(output, indices: s.secondHalf, into: s.unconditionalOutput)
        backend.combineRows(s.conditionalOutput, scaledBy: s.guidedScale, s.unconditionalOutput, scaledBy: s.unguidedScale, into: s.x0)
        s.converted = false
        if let p = s.posterior, t != sampler.timesteps.last {
            // A cross-entropy denoiser predicts the next item's distribution p = softmax(score(q)), not x₀. The chain goes on
            // from the posterior mean of x₀ under it, targetScale·pᵀE (what an MSE denoiser estimates), so that its states
            // stay in the space training noised; the last step's query is the output, and its scores are the ranking.
            backend.matmul(s.x0, transposeA: false, encoder.itemEmbeddings, transposeB: true, into: p.probabilities, alpha: scoreScale, beta: 0)
            backend.softmaxRows(p.probabilities, into: p.probabilities)
            backend.matmul(p.probabilities, transposeA: false, encoder.itemEmbeddings, transposeB: false, into: s.x0,
                           alpha: settings.targetScale, beta: 0)
            s.converted = true
        }
    }

    /// The backward of `scale·x̂₀` for the last `guidedPrediction` with `timesteps` (through its posterior mean when it
    /// took one): with ∂L/∂(scale·x̂₀) in `dX0`,
    /// accumulates the denoiser's parameter gradients (df = scale(1+w)·g on the conditional half, −scale·w·g on the
    /// null one), and when `dInput` is given writes ∂L/∂x through both halves into it.
    func guidedBackward(_ dX0: Tensor, scale: Float, buffers s: SamplingBuffers, dInput: Tensor?) throws {
        let w = settings.guidance, n = s.n, d = settings.hiddenSize
        var g = dX0
        if s.converted, let p = s.posterior {
            // x̂₀ = targetScale·pᵀE with p = softmax(l), l = scoreScale·q·Eᵀ: ∂p = targetScale·g·Eᵀ,
            // ∂l = p ⊙ ∂p − p·Σ(p ⊙ ∂p), ∂q = scoreScale·∂l·E.
            let e = encoder.itemEmbeddings
            backend.matmul(dX0, transposeA: false, e, transposeB: true, into: p.dProbabilities, alpha: settings.targetScale, beta: 0)
            backend.multiply(p.probabilities, p.dProbabilities, into: p.dProbabilities)
            backend.sumRows(p.dProbabilities, into: p.rowSums)
            backend.scale(p.rowSums, by: -1)
            backend.combineRows(p.dProbabilities, scaledBy: s.ones, p.probabilities, scaledBy: p.rowSums, into: p.dProbabilities)
            backend.matmul(p.dProbabilities, transposeA: false, e, transposeB: false, into: p.dQuery, alpha: scoreScale, beta: 0)
            g = p.dQuery
        }
        backend.gatherRows(g, indices: s.duplicate, into: s.dPaired)
        backend.write([Float](repeating: scale * (1 + w), count: n) + [Float](repeating: -scale * w, count: n), to: s.pairScale)
        backend.combineRows(s.dPaired, scaledBy: s.pairScale, s.dPaired, scaledBy: s.pairZeros, into: s.dPaired)
        let dIn = try denoiser!.backward(dOutput: s.dPaired, nullRows: s.nullHalf)
        guard let dInput else { return }
        backend.copyColumns(dIn, sourceColumn: 0, into: s.dPairedInput, destinationColumn: 0, width: d)
        backend.gatherRows(s.dPairedInput, indices: s.firstHalf, into: dInput)
        backend.gatherRows(s.dPairedInput, indices: s.secondHalf, into: s.dSecondHalf)
        backend.axpy(1, s.dSecondHalf, dInput)
    }

    /// Runs the reverse process from N(0, I) for the n conditions h (n, d). Noise comes from the Philox stream
    /// (seed, offset + …). When `trajectory` is given (sampler.count + 1 tensors (n, d)), every state is kept:
    /// trajectory[k] is the state entering sampler step k, trajectory[count] the final x̂₀.
    /// Returns the final x̂₀ (n, d) in a reused buffer.
    func sample(conditions h: Tensor, seed: UInt64, offset: UInt64, trajectory: [Tensor]?) throws -> Tensor {
        guard let denoiser else { preconditionFailure("sampling needs a DreamRec model") }
        let s = try samplingBuffers(h.rows)
        pairedConditions(h, buffers: s)
        let table = try denoiser.stepTable(steps: settings.steps)
        var x = trajectory?[0] ?? s.x
        backend.fillNormal(x, seed: seed, offset: offset)
        for k in sampler.timesteps.indices {
            let next = trajectory?[k + 1] ?? s.x
            try samplerStep(k, from: x, into: next, buffers: s, table: table, seed: seed, offset: offset)
            x = next
        }
        backend.copy(x, to: s.x0)
        return s.x0
    }

    /// Sampler step k from x into `next` (which may be x), with the conditions already in `s` (`pairedConditions`):
    /// `a·x̂₀ + b·x`, plus `σ·z` with z from the Philox stream (seed, offset + (k+1)·n·d), the stream `sample` draws from.
    func samplerStep(_ k: Int, from x: Tensor, into next: Tensor, buffers s: SamplingBuffers, table: Tensor, seed: UInt64,
                     offset: UInt64) throws {
        try guidedPrediction(x, step: sampler.timesteps[k], buffers: s, table: table, timesteps: nil)
        backend.fill(s.a, with: sampler.x0Coefficients[k])
        backend.fill(s.b, with: sampler.xtCoefficients[k])
        backend.combineRows(s.x0, scaledBy: s.a, x, scaledBy: s.b, into: next)
        if sampler.standardDeviations[k] > 0 {
            backend.fillNormal(s.noise, seed: seed, offset: offset + UInt64(k + 1) * UInt64(s.n * settings.hiddenSize))
            backend.fill(s.sigma, with: sampler.standardDeviations[k])
            backend.combineRows(next, scaledBy: s.ones, s.noise, scaledBy: s.sigma, into: next)
        }
    }
}
