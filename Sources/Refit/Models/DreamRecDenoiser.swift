import Foundation
import RefitCompute

/// DreamRec's conditional denoiser (Yang et al., NeurIPS 2023): `f(x_t, c, t)` = MLP over [x_t, c, step_mlp(t)],
/// predicting x₀, where c is the history's encoding h or the learned null condition ∅ (`none_embedding`), and
/// `step_mlp` = sinusoid(d) → Linear(d, 2d) → GELU → Linear(2d, d). Depth 1 is DreamRec's Linear(3d → d); depth 2
/// is Linear(3d → 2d) → GELU → Linear(2d → d).
public final class DreamRecDenoiser: @unchecked Sendable {
    public let hiddenSize: Int
    public let depth: Int
    public let parameters: ParameterStore
    var backend: any Backend { parameters.backend }
    private var workspaces: [Int: Workspace] = [:]
    /// Per step count: the steps 0 … T−1 (int32) and the table `stepTable` fills.
    private var stepTables: [Int: (steps: Tensor, table: Tensor)] = [:]

    static func parameterLayout(d: Int, depth: Int) -> [(String, [Int])] {
        var layout: [(String, [Int])] = [("none_embedding.weight", [1, d]),
                                         ("step_mlp.1.weight", [2 * d, d]), ("step_mlp.1.bias", [2 * d]),
                                         ("step_mlp.3.weight", [d, 2 * d]), ("step_mlp.3.bias", [d])]
        if depth == 1 {
            layout += [("diffuser.0.weight", [d, 3 * d]), ("diffuser.0.bias", [d])]
        } else {
            layout += [("diffuser.0.weight", [2 * d, 3 * d]), ("diffuser.0.bias", [2 * d]),
                       ("diffuser.2.weight", [d, 2 * d]), ("diffuser.2.bias", [d])]
        }
        return layout
    }

    final class Workspace {
        let sinusoid, stepHidden, stepActivated, stepFeatures, input, hidden, activated, output: Tensor
        let dStep, dStepHidden, dInput, dHidden, dCondition: Tensor
        init(_ b: any Backend, rows: Int, d: Int) throws {
            func t(_ shape: [Int]) throws -> Tensor { try b.makeTensor(shape, .float32) }
            sinusoid = try t([rows, d]); stepHidden = try t([rows, 2 * d]); stepActivated = try t([rows, 2 * d]); stepFeatures = try t([rows, d])
            input = try t([rows, 3 * d]); hidden = try t([rows, 2 * d]); activated = try t([rows, 2 * d]); output = try t([rows, d])
            dStep = try t([rows, d]); dStepHidden = try t([rows, 2 * d]); dInput = try t([rows, 3 * d]); dHidden = try t([rows, 2 * d])
            dCondition = try t([rows, d])
        }
    }

    /// A new denoiser with Xavier-normal weights, zero biases and a N(0, 1) null condition, from `seed`'s Philox stream.
    public init(backend: any Backend, hiddenSize d: Int, depth: Int, seed: UInt64) throws {
        precondition(depth == 1 || depth == 2, "denoiser depth is 1 or 2")
        hiddenSize = d
        self.depth = depth
        let layout = Self.parameterLayout(d: d, depth: depth)
        parameters = try ParameterStore(backend: backend, layout: layout)
        // A stream position of its own: a DreamRec run shares its seed with the SASRec encoder's draws.
        try parameters.initialize(seed: seed, start: 1 << 40) { name, shape in
            name.hasPrefix("none") ? 1 : shape.count == 2 ? ParameterStore.xavierStd(shape) : 0
        }
    }

    public var nullCondition: Tensor { parameters.value("none_embedding.weight") }

    func workspace(rows: Int) throws -> Workspace {
        try workspaces.reused(rows) { try Workspace(backend, rows: rows, d: hiddenSize) }
    }

    /// `step_mlp(t)` for every row's 0-based step (timesteps: int32 (n)), into `into` (n, d).
    func stepFeatures(_ timesteps: Tensor, workspace w: Workspace, into out: Tensor) {
        let b = backend
        b.timestepEmbedding(timesteps, into: w.sinusoid)
        b.linearForward(x: w.sinusoid, weight: parameters.value("step_mlp.1.weight"), bias: parameters.value("step_mlp.1.bias"),
                        activation: .identity, into: w.stepHidden)
        b.gelu(w.stepHidden, into: w.stepActivated)
        b.linearForward(x: w.stepActivated, weight: parameters.value("step_mlp.3.weight"), bias: parameters.value("step_mlp.3.bias"),
                        activation: .identity, into: out)
    }

    /// `step_mlp(t)` for t = 0 … steps−1, (steps, d): a sampler gathers its rows instead of running the MLP per row.
    /// The table is recomputed from the current weights on every call, into a buffer that the next call reuses.
    public func stepTable(steps: Int) throws -> Tensor {
        let (t, table) = try stepTables.reused(steps) {
            (try backend.tensor((0..<steps).map { Int32($0) }, shape: [steps]), try backend.makeTensor([steps, hiddenSize], .float32))
        }
        stepFeatures(t, workspace: try workspace(rows: steps), into: table)
        return table
    }

    /// The predicted x₀ (n, d) for noisy x (n, d), conditions (n, d) and steps: either `timesteps` (int32 (n), runs
    /// step_mlp and keeps what `backward` needs) or `stepRows` (n, d) already gathered from `stepTable` (inference).
    /// The result lives in the workspace for n rows.
    public func forward(_ x: Tensor, condition: Tensor, timesteps: Tensor? = nil, stepRows: Tensor? = nil) throws -> Tensor {
        let b = backend, d = hiddenSize
        let w = try workspace(rows: x.rows)
        if let timesteps { stepFeatures(timesteps, workspace: w, into: w.stepFeatures) }
        guard let steps = stepRows ?? (timesteps == nil ? nil : w.stepFeatures) else { preconditionFailure("forward needs timesteps or stepRows") }
        b.copyColumns(x, sourceColumn: 0, into: w.input, destinationColumn: 0, width: d)
        b.copyColumns(condition, sourceColumn: 0, into: w.input, destinationColumn: d, width: d)
        b.copyColumns(steps, sourceColumn: 0, into: w.input, destinationColumn: 2 * d, width: d)
        if depth == 1 {
            b.linearForward(x: w.input, weight: parameters.value("diffuser.0.weight"), bias: parameters.value("diffuser.0.bias"),
                            activation: .identity, into: w.output)
        } else {
            b.linearForward(x: w.input, weight: parameters.value("diffuser.0.weight"), bias: parameters.value("diffuser.0.bias"),
                            activation: .identity, into: w.hidden)
            b.gelu(w.hidden, into: w.activated)
            b.linearForward(x: w.activated, weight: parameters.value("diffuser.2.weight"), bias: parameters.value("diffuser.2.bias"),
                            activation: .identity, into: w.output)
        }
        return w.output
    }

    /// Accumulates parameter gradients for the last `forward` with `timesteps` of n rows, given dOutput (n, d),
    /// which is consumed. `nullRows` plans the scatter of the condition's gradient into ∅ (rows that used ∅ → row 0);
    /// the history's encoding gets no gradient (the encoder is frozen). Returns ∂L/∂[x, c, step] (n, 3d), in the
    /// workspace, for a caller that backpropagates further through x.
    @discardableResult
    public func backward(dOutput: Tensor, nullRows: ScatterPlan?) throws -> Tensor {
        let b = backend, d = hiddenSize
        let w = try workspace(rows: dOutput.rows)
        if depth == 1 {
            b.linearBackward(x: w.input, weight: parameters.value("diffuser.0.weight"), y: w.output, activation: .identity, dY: dOutput,
                             dX: w.dInput, dWeight: parameters.gradient("diffuser.0.weight"), dBias: parameters.gradient("diffuser.0.bias"))
        } else {
            b.linearBackward(x: w.activated, weight: parameters.value("diffuser.2.weight"), y: w.output, activation: .identity, dY: dOutput,
                             dX: w.dHidden, dWeight: parameters.gradient("diffuser.2.weight"), dBias: parameters.gradient("diffuser.2.bias"))
            b.geluBackward(w.hidden, dY: w.dHidden, into: w.dHidden)
            b.linearBackward(x: w.input, weight: parameters.value("diffuser.0.weight"), y: w.hidden, activation: .identity, dY: w.dHidden,
                             dX: w.dInput, dWeight: parameters.gradient("diffuser.0.weight"), dBias: parameters.gradient("diffuser.0.bias"))
        }
        if let nullRows, nullRows.count > 0 {
            b.copyColumns(w.dInput, sourceColumn: d, into: w.dCondition, destinationColumn: 0, width: d)
            b.scatterAddRows(w.dCondition, plan: nullRows, into: parameters.gradient("none_embedding.weight"))
        }
        b.copyColumns(w.dInput, sourceColumn: 2 * d, into: w.dStep, destinationColumn: 0, width: d)
        b.linearBackward(x: w.stepActivated, weight: parameters.value("step_mlp.3.weight"), y: w.stepFeatures, activation: .identity,
                         dY: w.dStep, dX: w.dStepHidden, dWeight: parameters.gradient("step_mlp.3.weight"), dBias: parameters.gradient("step_mlp.3.bias"))
        b.geluBackward(w.stepHidden, dY: w.dStepHidden, into: w.dStepHidden)
        b.linearBackward(x: w.sinusoid, weight: parameters.value("step_mlp.1.weight"), y: w.stepHidden, activation: .identity,
                         dY: w.dStepHidden, dX: nil, dWeight: parameters.gradient("step_mlp.1.weight"), dBias: parameters.gradient("step_mlp.1.bias"))
        return w.dInput
    }
}
