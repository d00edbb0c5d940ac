import RefitCompute

/// DiffRec's deterministic reverse chain, computed in the first hidden layer's width instead of the item count.
///
/// Each noise-free reverse step is affine in the denoiser's output and in x_t: x_{t−1} = p_t·f(x_t, t) + q_t·x_t
/// (p = c1, q = c2 for x₀-prediction; through x̂₀ = a·x_t + b·ε̂ for ε-prediction). The denoiser meets x only through
/// its first layer, y = x·Uᵀ + c_t (U: the first weight's item columns; c_t: its time-embedding columns and bias), and
/// produces f only through its last, f = h·W_Lᵀ + b_L. So the chain never needs x between the first step and the
/// last: with M = U·W_L and d = U·b_L,
///
///     y_{t−1} = p_t·h_t·Mᵀ + q_t·y_t + (p_t·d − q_t·c_t + c_{t−1})
///     x_out   = G·W_Lᵀ + β·b_L + α·x_T,   G = Σ_t (p_t Π_{s<t} q_s)·h_t,  β, α the same sums over 1 and over nothing
///
/// One step then costs the middle layers and an H₁ × H_L product (600 × 600 at ML-1M) instead of two I × 600
/// products (2810 items): 1.2 against 7.2 MFLOP per user and step. The result equals the step-by-step chain up to
/// float rounding in a different order (`FactoredReverseChainTests` compares them); the stochastic chains of
/// fine-tuning add noise in item space at every step and keep the step-by-step form.
final class FactoredReverseChain {
    let denoiser: DiffRecDenoiser
    /// x_{t−1} = p[t]·f + q[t]·x_t, per 0-based step.
    let p: [Double]
    let q: [Double]
    private var workspaces: [Int: Workspace] = [:]

    init(denoiser: DiffRecDenoiser, diffusion: GaussianDiffusion) {
        self.denoiser = denoiser
        let s = diffusion.schedule
        let c1 = s.posteriorMeanCoefficient1, c2 = s.posteriorMeanCoefficient2
        switch diffusion.meanType {
        case .x0:
            p = c1
            q = c2
        case .eps:
            // x̂₀ = x_t/√ᾱ − √(1/ᾱ − 1)·ε̂
            p = s.alphaBars.indices.map { -c1[$0] * (1 / s.alphaBars[$0] - 1).squareRoot() }
            q = s.alphaBars.indices.map { c1[$0] / s.alphaBars[$0].squareRoot() + c2[$0] }
        }
    }

    private var backend: any Backend { denoiser.backend }

    /// The weight products the chain runs on; they depend on the weights only, so one set serves every batch of a call.
    private struct Factors {
        let u: Tensor          // (H₁, I): the first weight's item columns
        let m: Tensor          // (H₁, H_L) = U·W_L
        /// Row t (stride `stride`): the bias of the y update into step t − 1; row 0 holds c_{T−1}, the first step's.
        let rowBiases: Tensor
        let stride: Int
    }

    private final class Workspace {
        let y: Tensor, hidden: [Tensor], g: Tensor, scaledBias: Tensor
        init(backend: any Backend, architecture a: DiffRecArchitecture, batch: Int) throws {
            let layers = a.layers
            y = try backend.makeTensor([batch, layers[0].outputs], .float32)
            // hidden[j]: the output of layer j (tanh applied), for every layer but the last.
            hidden = try layers.dropLast().map { try backend.makeTensor([batch, $0.outputs], .float32) }
            g = try backend.makeTensor([batch, layers[layers.count - 1].inputs], .float32)
            scaledBias = try backend.makeTensor([a.items], .float32)
        }
    }

    private func factors() throws -> Factors {
        let b = backend, a = denoiser.architecture, layers = a.layers, parameters = denoiser.parameters
        let (first, last) = (layers[0], layers[layers.count - 1])
        let (h1, items, e, steps) = (first.outputs, a.items, a.embeddingSize, p.count)
        let w1 = parameters.value("\(first.name).weight"), wL = parameters.value("\(last.name).weight")
        let u = try b.makeTensor([h1, items], .float32), v = try b.makeTensor([h1, e], .float32)
        b.copyColumns(w1, sourceColumn: 0, into: u, destinationColumn: 0, width: items)
        b.copyColumns(w1, sourceColumn: items, into: v, destinationColumn: 0, width: e)
        let m = try b.makeTensor([h1, last.inputs], .float32)
        b.matmul(u, transposeA: false, wL, transposeB: false, into: m, alpha: 1, beta: 0)
        let d = try b.makeTensor([h1, 1], .float32)
        b.matmul(u, transposeA: false, b.view(parameters.value("\(last.name).bias"), offset: 0, shape: [items, 1]),
                 transposeB: false, into: d, alpha: 1, beta: 0)
        // c_t = V·emb(t) + b₁ for every step, through the denoiser's own embedding layer.
        let timesteps = try b.tensor((0..<steps).map(Int32.init), shape: [steps])
        let sinusoid = try b.makeTensor([steps, e], .float32), embedding = try b.makeTensor([steps, e], .float32)
        b.timestepEmbedding(timesteps, into: sinusoid)
        b.linearForward(x: sinusoid, weight: parameters.value("emb_layer.weight"), bias: parameters.value("emb_layer.bias"),
                        activation: .identity, into: embedding)
        let c = try b.makeTensor([steps, h1], .float32)
        b.linearForward(x: embedding, weight: v, bias: parameters.value("\(first.name).bias"), activation: .identity, into: c)
        let (cHost, dHost) = (try b.readFloats(c), try b.readFloats(d))
        // Rows are padded so that each starts where the backend can place a view.
        let stride = (h1 + b.viewAlignment - 1) / b.viewAlignment * b.viewAlignment
        var biases = [Float](repeating: 0, count: steps * stride)
        for j in 0..<h1 { biases[j] = cHost[(steps - 1) * h1 + j] }
        for t in 1..<max(steps, 1) {
            let (pt, qt) = (Float(p[t]), Float(q[t]))
            for j in 0..<h1 { biases[t * stride + j] = pt * dHost[j] - qt * cHost[t * h1 + j] + cHost[(t - 1) * h1 + j] }
        }
        return Factors(u: u, m: m, rowBiases: try b.tensor(biases, shape: [steps * stride]), stride: stride)
    }

    /// The chain's final x from start rows `start` (B, I), into `output` (B, I; may not alias `start`).
    func run(from start: Tensor, into output: Tensor) throws {
        let b = backend, a = denoiser.architecture, layers = a.layers, parameters = denoiser.parameters
        let f = try factors()
        let w = try workspaces.reused(start.rows) { try Workspace(backend: b, architecture: a, batch: start.rows) }
        let h1 = layers[0].outputs
        func rowBias(_ t: Int) -> Tensor { b.view(f.rowBiases, offset: t * f.stride, shape: [h1]) }
        b.matmul(start, transposeA: false, f.u, transposeB: true, into: w.y, alpha: 1, beta: 0, bias: rowBias(0))
        b.fill(w.g, with: 0)
        var (alpha, beta) = (1.0, 0.0)
        for t in stride(from: p.count - 1, through: 0, by: -1) {
            b.tanh(w.y, into: w.hidden[0])
            for j in 1..<(layers.count - 1) {
                let layer = layers[j]
                b.linearForward(x: w.hidden[j - 1], weight: parameters.value("\(layer.name).weight"),
                                bias: parameters.value("\(layer.name).bias"), activation: layer.activation, into: w.hidden[j])
            }
            let h = w.hidden[layers.count - 2]
            b.scale(w.g, by: Float(q[t]))
            b.axpy(Float(p[t]), h, w.g)
            (alpha, beta) = (q[t] * alpha, p[t] + q[t] * beta)
            if t > 0 {
                b.matmul(h, transposeA: false, f.m, transposeB: true, into: w.y, alpha: Float(p[t]), beta: Float(q[t]), bias: rowBias(t))
            }
        }
        let last = layers[layers.count - 1]
        b.copy(parameters.value("\(last.name).bias"), to: w.scaledBias)
        b.scale(w.scaledBias, by: Float(beta))
        b.copy(start, to: output)
        b.matmul(w.g, transposeA: false, parameters.value("\(last.name).weight"), transposeB: true, into: output,
                 alpha: 1, beta: Float(alpha), bias: w.scaledBias)
    }
}
