import Foundation
import RefitCompute

/// A DiffRec model ready to recommend: the denoiser, its diffusion process, and the reverse-process sampler.
public final class DiffRecModel: @unchecked Sendable {
    public let settings: DiffRecSettings
    public let denoiser: DiffRecDenoiser
    public let diffusion: GaussianDiffusion
    public var backend: any Backend { denoiser.backend }
    private var samplerBuffers: [Int: (timesteps: Tensor, state: Tensor, noise: Tensor)] = [:]

    public init(backend: any Backend, settings: DiffRecSettings, items: Int) throws {
        self.settings = settings
        denoiser = try DiffRecDenoiser(backend: backend, architecture: settings.architecture(items: items), seed: settings.seed)
        diffusion = try GaussianDiffusion(backend: backend, schedule: try settings.noiseSchedule(), meanType: settings.meanType)
    }

    func samplerBuffers(_ rows: Int) throws -> (timesteps: Tensor, state: Tensor, noise: Tensor) {
        if let b = samplerBuffers[rows] { return b }
        let items = denoiser.architecture.items
        let b = (try backend.makeTensor([rows], .int32), try backend.makeTensor([rows, items], .float32),
                 try backend.makeTensor([rows, items], .float32))
        samplerBuffers[rows] = b
        return b
    }

    /// One step of the deterministic reverse process at 0-based step `step`: `state` (x_t) becomes the
    /// posterior mean μ̃(x_t, x̂₀) with x̂₀ from the denoiser.
    func reverseStep(state: Tensor, step: Int, timesteps: Tensor) throws {
        backend.fill(timesteps, with: Float(step))
        let output = try denoiser.forward(state, timesteps: timesteps, training: false)
        try diffusion.predictedStart(modelOutput: output, xt: state, timesteps: timesteps)
        try diffusion.posteriorMean(predictedStart: output, xt: state, timesteps: timesteps, into: state)
    }

    /// DiffRec's inference: start from x (or q-sample it to `samplingSteps`), run all T reverse steps with the
    /// posterior mean and no noise, and return the final x̂₀ as item scores (B, I). The result is overwritten by
    /// the next call with the same batch size.
    public func scores(_ x: Tensor) throws -> Tensor {
        let b = try samplerBuffers(x.rows)
        if settings.samplingSteps == 0 {
            backend.copy(x, to: b.state)
        } else {
            backend.fill(b.timesteps, with: Float(settings.samplingSteps - 1))
            backend.fillNormal(b.noise, seed: settings.seed ^ 0x5A4D_504C, offset: 0)
            try diffusion.qSample(x, timesteps: b.timesteps, noise: b.noise, into: b.state)
        }
        for step in stride(from: settings.steps - 1, through: 0, by: -1) {
            try reverseStep(state: b.state, step: step, timesteps: b.timesteps)
        }
        return b.state
    }
}
