import RefitCompute

/// What the denoiser predicts: the clean row x₀ (DiffRec's default) or the noise ε.
public enum MeanType: String, Codable, Sendable, CaseIterable {
    case x0
    case eps
}

/// A noise schedule's per-step tables on the device, and the forward and reverse steps built from them.
///
/// Every step is a per-row affine combination (`Backend.combineRows`) whose coefficients are gathered from the
/// tables by each row's timestep, so a batch may mix timesteps (training) or share one (sampling).
public final class GaussianDiffusion: @unchecked Sendable {
    public let schedule: NoiseSchedule
    public let meanType: MeanType
    let backend: any Backend
    let sqrtAlphaBar: Tensor
    let sqrtOneMinusAlphaBar: Tensor
    let posteriorCoefficient1: Tensor
    let posteriorCoefficient2: Tensor
    /// ½·log σ̃², clipped at step 1 as DiffRec does: the log standard deviation of the reverse step.
    let posteriorLogStd: Tensor
    let sqrtRecipAlphaBar: Tensor
    let negSqrtRecipM1AlphaBar: Tensor
    private var scratch: [Int: (Tensor, Tensor)] = [:]

    public init(backend: any Backend, schedule: NoiseSchedule, meanType: MeanType) throws {
        self.backend = backend
        self.schedule = schedule
        self.meanType = meanType
        func upload(_ values: [Double]) throws -> Tensor { try backend.tensor(values.map(Float.init), shape: [values.count]) }
        sqrtAlphaBar = try upload(schedule.sqrtAlphaBars)
        sqrtOneMinusAlphaBar = try upload(schedule.sqrtOneMinusAlphaBars)
        posteriorCoefficient1 = try upload(schedule.posteriorMeanCoefficient1)
        posteriorCoefficient2 = try upload(schedule.posteriorMeanCoefficient2)
        posteriorLogStd = try upload(schedule.posteriorLogVariancesClipped.map { $0 / 2 })
        sqrtRecipAlphaBar = try upload(schedule.alphaBars.map { (1 / $0).squareRoot() })
        negSqrtRecipM1AlphaBar = try upload(schedule.alphaBars.map { -(1 / $0 - 1).squareRoot() })
    }

    /// Two per-row coefficient vectors for batches of `rows`.
    private func coefficients(_ rows: Int) throws -> (Tensor, Tensor) {
        if let s = scratch[rows] { return s }
        let s = (try backend.makeTensor([rows], .float32), try backend.makeTensor([rows], .float32))
        scratch[rows] = s
        return s
    }

    /// `x_t = √ᾱ_t·x₀ + √(1−ᾱ_t)·ε`.
    public func qSample(_ x0: Tensor, timesteps: Tensor, noise: Tensor, into xt: Tensor) throws {
        let (a, b) = try coefficients(x0.rows)
        backend.gather(sqrtAlphaBar, indices: timesteps, into: a)
        backend.gather(sqrtOneMinusAlphaBar, indices: timesteps, into: b)
        backend.combineRows(x0, scaledBy: a, noise, scaledBy: b, into: xt)
    }

    /// x̂₀ from the model's output: the output itself for x0-prediction, `(x_t − √(1−ᾱ)·ε̂)/√ᾱ` for eps. In place.
    public func predictedStart(modelOutput: Tensor, xt: Tensor, timesteps: Tensor) throws {
        guard meanType == .eps else { return }
        let (a, b) = try coefficients(xt.rows)
        backend.gather(sqrtRecipAlphaBar, indices: timesteps, into: a)
        backend.gather(negSqrtRecipM1AlphaBar, indices: timesteps, into: b)
        backend.combineRows(xt, scaledBy: a, modelOutput, scaledBy: b, into: modelOutput)
    }

    /// The posterior mean `μ̃ = c1·x̂₀ + c2·x_t`, written into `mean` (which may be `xt`).
    public func posteriorMean(predictedStart x0: Tensor, xt: Tensor, timesteps: Tensor, into mean: Tensor) throws {
        let (a, b) = try coefficients(xt.rows)
        backend.gather(posteriorCoefficient1, indices: timesteps, into: a)
        backend.gather(posteriorCoefficient2, indices: timesteps, into: b)
        backend.combineRows(x0, scaledBy: a, xt, scaledBy: b, into: mean)
    }

    /// log σ̃ per row, for the Gaussian policy of a reverse step.
    public func posteriorLogStd(timesteps: Tensor, into logStd: Tensor) {
        backend.gather(posteriorLogStd, indices: timesteps, into: logStd)
    }
}
