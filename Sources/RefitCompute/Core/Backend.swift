/// The activation fused into a linear layer.
public enum Activation: String, Sendable, CaseIterable, Codable {
    case identity
    case tanh
}

/// One AdamW step's hyper-parameters (PyTorch's `torch.optim.AdamW` semantics).
public struct AdamWStep: Sendable, Equatable {
    public var learningRate: Float
    public var beta1: Float
    public var beta2: Float
    public var epsilon: Float
    public var weightDecay: Float
    /// 1 for the first update; drives the bias corrections `1 − βᵏ`.
    public var step: Int

    public init(learningRate: Float, beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8,
                weightDecay: Float = 0, step: Int) {
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.weightDecay = weightDecay
        self.step = step
    }
}

/// Which entries of a score matrix `topK` must never return.
public enum RowMask: Sendable {
    /// Row r of the scores is masked by row `rows[r]` of the CSR matrix (`rows`: int32, one per score row).
    case sparse(DeviceCSR, rows: Tensor)
    /// A float tensor shaped like the scores; a non-zero entry masks.
    case dense(Tensor)
}

/// The device operations that every model in Refit is written against.
///
/// Two implementations: `OpenCLBackend` (Kernels/*.cl) and `CPUBackend`, the plain-Swift reference that tests
/// compare every kernel to. Operations are enqueued in order; reads wait for them. Enqueue failures are sticky:
/// the next read or `synchronize()` throws them. A backend is used by one thread at a time.
///
/// Shapes are given in comments as (rows, columns); "per row" vectors have one entry per row.
/// Unless stated otherwise outputs are overwritten and may not alias inputs.
public protocol Backend: AnyObject, Sendable {
    /// A one-line description of the device ("OpenCL: NVIDIA H100 …", "CPU reference").
    var deviceDescription: String { get }

    // MARK: Memory

    /// A zero-filled tensor.
    func makeTensor(_ shape: [Int], _ elementType: ElementType) throws -> Tensor
    /// A tensor sharing `parent`'s memory from element `offset` on. OpenCL needs `offset` aligned: see `viewAlignment`.
    func view(_ parent: Tensor, offset: Int, shape: [Int]) -> Tensor
    /// Element alignment that `view` offsets must respect on this device.
    var viewAlignment: Int { get }
    func write(_ values: [Float], to tensor: Tensor)
    func write(_ values: [Int32], to tensor: Tensor)
    func readFloats(_ tensor: Tensor) throws -> [Float]
    func readInt32s(_ tensor: Tensor) throws -> [Int32]
    func fill(_ tensor: Tensor, with value: Float)
    func copy(_ source: Tensor, to destination: Tensor)
    /// Waits for every enqueued operation; throws the first enqueue error.
    func synchronize() throws

    // MARK: Linear layers

    /// `y = act(x·wᵀ + b)`. x: (B, K), weight: (N, K), bias: (N) or nil, y: (B, N).
    func linearForward(x: Tensor, weight: Tensor, bias: Tensor?, activation: Activation, into y: Tensor)
    /// `dPre = dY ⊙ act'(y)` given the layer's output y; for identity it is a copy. All (B, N). May alias dY.
    func activationBackward(dY: Tensor, y: Tensor, activation: Activation, into dPre: Tensor)
    /// `c = alpha·op(a)·op(b) + beta·c (+ bias[j] in every row)`, op = transpose when asked. Row-major, c: (M, N);
    /// bias: (N) or nil.
    func matmul(_ a: Tensor, transposeA: Bool, _ b: Tensor, transposeB: Bool, into c: Tensor, alpha: Float, beta: Float,
                bias: Tensor?)
    /// `y = beta·y + Σ_rows x`. x: (B, N), y: (N).
    func sumColumns(_ x: Tensor, into y: Tensor, beta: Float)

    // MARK: Element-wise

    /// `c = a + b`, same shape. c may alias a or b.
    func add(_ a: Tensor, _ b: Tensor, into c: Tensor)
    /// `c = a ⊙ b`, same shape. c may alias a or b.
    func multiply(_ a: Tensor, _ b: Tensor, into c: Tensor)
    /// `y += alpha·x`.
    func axpy(_ alpha: Float, _ x: Tensor, _ y: Tensor)
    /// `x *= alpha`, in place.
    func scale(_ x: Tensor, by alpha: Float)
    /// `y = tanh(x)`; may alias.
    func tanh(_ x: Tensor, into y: Tensor)
    /// Inverted dropout with a counter-based mask: entry i is kept when `uniform(seed, offset + i) ≥ probability`,
    /// and kept entries are scaled by 1/(1 − probability); 0 ≤ probability < 1 (at 1 the scale is infinite). Calling it
    /// again with the same (seed, offset) on `dY` gives the backward pass. May alias.
    func dropout(_ x: Tensor, probability: Float, seed: UInt64, offset: UInt64, into y: Tensor)
    /// Copies `width` columns of `source` starting at `sourceColumn` into `destination` at `destinationColumn`,
    /// row by row: concatenation of column blocks and its backward. Both have the same number of rows.
    func copyColumns(_ source: Tensor, sourceColumn: Int, into destination: Tensor, destinationColumn: Int, width: Int)
    /// `z[r, :] = xScale[r]·x[r, :] + yScale[r]·y[r, :]`: q-sample, the posterior mean and a noisy step are all this.
    /// x, y, z: (B, N); xScale, yScale: (B). z may alias x or y.
    func combineRows(_ x: Tensor, scaledBy xScale: Tensor, _ y: Tensor, scaledBy yScale: Tensor, into z: Tensor)

    // MARK: Reductions

    /// `y[r] = Σ_c x[r, c]`. x: (B, N), y: (B).
    func sumRows(_ x: Tensor, into y: Tensor)
    /// `result[0] = Σ x` over every element. result: (1).
    func sum(_ x: Tensor, into result: Tensor)
    /// `result[0] = Σ x²` over every element: gradient norms. result: (1).
    func sumOfSquares(_ x: Tensor, into result: Tensor)
    /// Row-wise `y = x − logΣexp(x)`. (B, N). May alias.
    func logSoftmaxRows(_ x: Tensor, into y: Tensor)
    /// Row-wise softmax, `y = exp(x − logΣexp(x))`. (B, N). May alias.
    func softmaxRows(_ x: Tensor, into y: Tensor)

    // MARK: Random numbers

    /// Uniform floats in (0, 1]: element i draws from Philox4x32-10 at counter `offset + i` of `seed`.
    /// Both backends give the bit-identical stream.
    func fillUniform(_ tensor: Tensor, seed: UInt64, offset: UInt64)
    /// Standard normal floats (Box–Muller on the same stream), bit-identical on both backends.
    func fillNormal(_ tensor: Tensor, seed: UInt64, offset: UInt64)

    // MARK: Diffusion

    /// `y[r] = table[indices[r]]`. table: (T), indices: int32 (B), y: (B).
    func gather(_ table: Tensor, indices: Tensor, into y: Tensor)
    /// Sinusoidal embedding of integer timesteps (DiffRec / DDPM convention):
    /// `[cos(t·f_0) … cos(t·f_{h−1}), sin(t·f_0) … sin(t·f_{h−1})]`, `f_j = 10000^(−j/h)`, h = dim/2.
    /// timesteps: int32 (B), y: (B, dim).
    func timestepEmbedding(_ timesteps: Tensor, into y: Tensor)
    /// Per-row Gaussian log-density of x under N(mean, σ²I), averaged over the N columns:
    /// `logp[r] = −mean_c (x − μ)²/(2σ_r²) − ½·log(2π) − log σ_r`. logStd: (B) holds log σ_r.
    func gaussianLogProbability(_ x: Tensor, mean: Tensor, logStd: Tensor, into logp: Tensor)
    /// The gradient of `Σ_r dLogp[r]·logp[r]` with respect to the mean: `dMean = dLogp[r]·(x − μ)/(N·σ_r²)`.
    func gaussianLogProbabilityBackward(_ x: Tensor, mean: Tensor, logStd: Tensor, dLogp: Tensor, into dMean: Tensor)
    /// `loss[r] = mean_c (prediction − target)²`. loss: (B).
    func squaredErrorRows(_ prediction: Tensor, _ target: Tensor, into loss: Tensor)
    /// The gradient of `Σ_r weights[r]·loss[r]`: `dPrediction = weights[r]·2(prediction − target)/N`.
    func squaredErrorBackward(_ prediction: Tensor, _ target: Tensor, rowWeights: Tensor, into dPrediction: Tensor)

    // MARK: Sequence models (SASRec, DreamRec)

    /// Embedding lookup: `y[r, :] = table[indices[r], :]`, or zeros where `indices[r] < 0` (left padding).
    /// table: (V, d), indices: int32 (B), y: (B, d).
    func gatherRows(_ table: Tensor, indices: Tensor, into y: Tensor)
    /// The backward of `gatherRows`, deterministic (no atomics): for each `plan` entry u,
    /// `dTable[plan.targets[u], :] += Σ_j dY[plan.sources[j], :]` over `j ∈ plan.offsets[u] ..< plan.offsets[u + 1]`.
    /// dY: (B, d), dTable: (V, d).
    func scatterAddRows(_ dY: Tensor, plan: ScatterPlan, into dTable: Tensor)
    /// Row-wise LayerNorm with biased variance: `y = (x − mean)·rstd·gamma + beta`, `rstd = 1/√(var + epsilon)`.
    /// Writes mean and rstd (B) for the backward. x, y: (B, d); gamma, beta: (d). y may alias x.
    func layerNormForward(_ x: Tensor, gamma: Tensor, beta: Tensor, epsilon: Float, into y: Tensor, mean: Tensor, rstd: Tensor)
    /// The backward of `layerNormForward` (x is its input): dX is overwritten; `dGamma += Σ_r dY ⊙ x̂`,
    /// `dBeta += Σ_r dY`. dX may alias dY.
    func layerNormBackward(_ x: Tensor, gamma: Tensor, mean: Tensor, rstd: Tensor, dY: Tensor,
                           dX: Tensor, dGamma: Tensor, dBeta: Tensor)
    /// `y = x·Φ(x)` (the exact, erf-based GELU, PyTorch's default). May alias.
    func gelu(_ x: Tensor, into y: Tensor)
    /// `dX = dY ⊙ GELU'(x)` given the GELU's input x. dX may alias dY.
    func geluBackward(_ x: Tensor, dY: Tensor, into dX: Tensor)
    /// Causal single-head attention over B sequences of `length` positions, left-padded: query i of sequence b
    /// attends to keys j with `start[b] ≤ j ≤ i`, weights `softmax_j(scale·q_i·k_j)`; a query with no such key
    /// (i < start[b]) outputs zeros. Row `b·length + i` of q, k, v, out (B·length, d) is position i of sequence b.
    /// start: int32 (B). probabilities: (B·length, length), written for the backward, zero where masked.
    func causalAttentionForward(q: Tensor, k: Tensor, v: Tensor, start: Tensor, length: Int, scale: Float,
                                probabilities: Tensor, into out: Tensor)
    /// The backward of `causalAttentionForward`, given its probabilities: dQ, dK, dV (B·length, d) are overwritten.
    func causalAttentionBackward(q: Tensor, k: Tensor, v: Tensor, start: Tensor, length: Int, scale: Float,
                                 probabilities: Tensor, dOut: Tensor, dQ: Tensor, dK: Tensor, dV: Tensor)
    /// Softmax cross-entropy of each row against one target column: `loss[r] = logΣexp(logits[r]) − logits[r, targets[r]]`,
    /// and, when dLogits is given, `dLogits[r] = gradientScale·(softmax(logits[r]) − onehot(targets[r]))`.
    /// A negative target gives loss 0 and a zero gradient row. logits, dLogits: (B, N); targets: int32 (B); loss: (B).
    /// dLogits may alias logits.
    func softmaxCrossEntropy(_ logits: Tensor, targets: Tensor, gradientScale: Float, loss: Tensor, dLogits: Tensor?)

    // MARK: Optimisation

    /// One AdamW update of `parameters` in place, with first/second moments `m`, `v` (all the same shape).
    func adamW(parameters: Tensor, gradients: Tensor, m: Tensor, v: Tensor, step: AdamWStep)

    // MARK: Ranking

    /// Dense 0/1 rows of a CSR matrix: `dense[r, c] = 1` when `rows[r]` has column c. dense: (B, columns).
    func densifyRows(_ matrix: DeviceCSR, rows: Tensor, into dense: Tensor)
    /// The k largest entries of each row, in descending order; ties go to the lower column index.
    /// Masked entries, and entries scoring −∞, are never returned (a row with fewer than k unmasked entries pads with index −1 and −∞).
    /// scores: (B, N); indices: int32 (B, k); values: (B, k). `scores` is left unchanged.
    func topK(_ scores: Tensor, k: Int, mask: RowMask?, indices: Tensor, values: Tensor)
}

extension Backend {
    /// The full backward pass of `linearForward`, accumulating into the weight and bias gradients:
    /// `dPre = dY ⊙ act'(y)`, `dX = dPre·W`, `dW += dPreᵀ·X`, `db += Σ_rows dPre`. dY is overwritten by dPre.
    /// `c = alpha·op(a)·op(b) + beta·c`.
    public func matmul(_ a: Tensor, transposeA: Bool, _ b: Tensor, transposeB: Bool, into c: Tensor, alpha: Float, beta: Float) {
        matmul(a, transposeA: transposeA, b, transposeB: transposeB, into: c, alpha: alpha, beta: beta, bias: nil)
    }

    public func linearBackward(x: Tensor, weight: Tensor, y: Tensor, activation: Activation, dY: Tensor,
                               dX: Tensor?, dWeight: Tensor, dBias: Tensor?) {
        activationBackward(dY: dY, y: y, activation: activation, into: dY)
        if let dX { matmul(dY, transposeA: false, weight, transposeB: false, into: dX, alpha: 1, beta: 0) }
        matmul(dY, transposeA: true, x, transposeB: false, into: dWeight, alpha: 1, beta: 1)
        if let dBias { sumColumns(dY, into: dBias, beta: 1) }
    }

    /// Uploads a new float tensor.
    public func tensor(_ values: [Float], shape: [Int]) throws -> Tensor {
        precondition(values.count == shape.reduce(1, *), "\(values.count) values for shape \(shape)")
        let t = try makeTensor(shape, .float32)
        write(values, to: t)
        return t
    }

    /// Uploads a new int32 tensor.
    public func tensor(_ values: [Int32], shape: [Int]) throws -> Tensor {
        precondition(values.count == shape.reduce(1, *), "\(values.count) values for shape \(shape)")
        let t = try makeTensor(shape, .int32)
        write(values, to: t)
        return t
    }

    /// A scalar read back from a one-element tensor.
    public func readScalar(_ tensor: Tensor) throws -> Float { try readFloats(tensor)[0] }
}
