import Foundation
import RefitCompute

/// The shape of a DiffRec DNN denoiser.
public struct DiffRecArchitecture: Codable, Sendable, Equatable {
    public var items: Int
    /// The decoder side, as DiffRec's `dims` ([200, 600] → layers I+E→600→200→600→I).
    public var dims: [Int]
    public var embeddingSize: Int
    public var dropout: Float

    public init(items: Int, dims: [Int] = [200, 600], embeddingSize: Int = 10, dropout: Float = 0.5) {
        self.items = items
        self.dims = dims
        self.embeddingSize = embeddingSize
        self.dropout = dropout
    }

    /// (name, inputs, outputs, activation) of the main stack, in order.
    var layers: [(name: String, inputs: Int, outputs: Int, activation: Activation)] {
        let outDims = dims + [items]
        let inDims = Array(outDims.reversed())
        var layers: [(String, Int, Int, Activation)] = []
        var inputs = inDims[0] + embeddingSize
        for (j, outputs) in inDims.dropFirst().enumerated() {
            layers.append(("in_layers.\(j)", inputs, outputs, .tanh))
            inputs = outputs
        }
        for (j, outputs) in outDims.dropFirst().enumerated() {
            layers.append(("out_layers.\(j)", inputs, outputs, j == outDims.count - 2 ? .identity : .tanh))
            inputs = outputs
        }
        return layers
    }

    /// Parameter names and shapes in PyTorch's state-dict order (weights are (out, in), as nn.Linear stores them).
    var parameterLayout: [(String, [Int])] {
        var layout: [(String, [Int])] = []
        for layer in layers.filter({ $0.name.hasPrefix("in_") }) + layers.filter({ $0.name.hasPrefix("out_") }) {
            layout.append(("\(layer.name).weight", [layer.outputs, layer.inputs]))
            layout.append(("\(layer.name).bias", [layer.outputs]))
        }
        layout.append(("emb_layer.weight", [embeddingSize, embeddingSize]))
        layout.append(("emb_layer.bias", [embeddingSize]))
        return layout
    }
}

/// DiffRec's DNN (Wang et al., SIGIR 2023): `f(x_t, t)` = MLP over [dropout(x_t), Linear(sinusoid(t))], tanh
/// between layers, identity at the end. Forward and backward run on any `Backend`.
public final class DiffRecDenoiser: @unchecked Sendable {
    public let architecture: DiffRecArchitecture
    public let parameters: ParameterStore
    var backend: any Backend { parameters.backend }
    private var workspaces: [Int: Workspace] = [:]

    /// Activations and their gradients for one batch size, allocated once and reused every step.
    final class Workspace {
        let timeEmbedding: Tensor   // (B, E) sinusoid
        let embedding: Tensor       // (B, E) after emb_layer
        let droppedInput: Tensor    // (B, I)
        let activations: [Tensor]   // [h0 (B, I+E), then each layer's output]
        let gradients: [Tensor]     // gradient of each layer's output, same shapes as activations[1...]
        let embeddingWeightSlice: Tensor  // (first hidden, E): the columns of in_layers.0.weight that see the embedding
        let embeddingGradient: Tensor     // (B, E)
        /// (B, I+E): the first layer's whole input gradient, allocated when an input gradient is first asked for.
        var inputGradient: Tensor?
        /// Whether the last forward dropped input entries (its input gradient would then need the mask).
        var droppedOut = false

        init(backend: any Backend, architecture a: DiffRecArchitecture, batch: Int) throws {
            let layers = a.layers
            timeEmbedding = try backend.makeTensor([batch, a.embeddingSize], .float32)
            embedding = try backend.makeTensor([batch, a.embeddingSize], .float32)
            droppedInput = try backend.makeTensor([batch, a.items], .float32)
            activations = try [backend.makeTensor([batch, layers[0].inputs], .float32)]
                + layers.map { try backend.makeTensor([batch, $0.outputs], .float32) }
            gradients = try layers.map { try backend.makeTensor([batch, $0.outputs], .float32) }
            embeddingWeightSlice = try backend.makeTensor([layers[0].outputs, a.embeddingSize], .float32)
            embeddingGradient = try backend.makeTensor([batch, a.embeddingSize], .float32)
        }
    }

    /// A new model with DiffRec's initialisation: Xavier-normal weights (std √(2/(fan_in+fan_out))) and
    /// N(0, 0.001²) biases, drawn from the Philox stream of `seed`, so every backend starts identically.
    public init(backend: any Backend, architecture: DiffRecArchitecture, seed: UInt64) throws {
        self.architecture = architecture
        parameters = try ParameterStore(backend: backend, layout: architecture.parameterLayout)
        try parameters.initialize(seed: seed) { _, shape in shape.count == 2 ? ParameterStore.xavierStd(shape) : 0.001 }
    }

    func workspace(batch: Int) throws -> Workspace {
        try workspaces.reused(batch) { try Workspace(backend: backend, architecture: architecture, batch: batch) }
    }

    /// The denoiser's output (B, I) for noisy rows `x` (B, I) at 0-based steps `timesteps` (int32, B).
    /// In training mode the input gets dropout from the Philox stream (dropoutSeed, dropoutOffset).
    /// The result lives in the workspace: it is overwritten by the next call with the same batch size.
    public func forward(_ x: Tensor, timesteps: Tensor, training: Bool, dropoutSeed: UInt64 = 0, dropoutOffset: UInt64 = 0) throws -> Tensor {
        let b = backend, a = architecture
        let w = try workspace(batch: x.rows)
        b.timestepEmbedding(timesteps, into: w.timeEmbedding)
        b.linearForward(x: w.timeEmbedding, weight: parameters.value("emb_layer.weight"), bias: parameters.value("emb_layer.bias"),
                        activation: .identity, into: w.embedding)
        var input = x
        w.droppedOut = training && a.dropout > 0
        if training && a.dropout > 0 {
            b.dropout(x, probability: a.dropout, seed: dropoutSeed, offset: dropoutOffset, into: w.droppedInput)
            input = w.droppedInput
        }
        b.copyColumns(input, sourceColumn: 0, into: w.activations[0], destinationColumn: 0, width: a.items)
        b.copyColumns(w.embedding, sourceColumn: 0, into: w.activations[0], destinationColumn: a.items, width: a.embeddingSize)
        for (j, layer) in a.layers.enumerated() {
            b.linearForward(x: w.activations[j], weight: parameters.value("\(layer.name).weight"),
                            bias: parameters.value("\(layer.name).bias"), activation: layer.activation, into: w.activations[j + 1])
        }
        return w.activations[a.layers.count]
    }

    /// The activations that entered the output layer in the last `forward` with this batch size, (B, last hidden width).
    func lastHiddenActivations(batch: Int) throws -> Tensor {
        try workspace(batch: batch).activations[architecture.layers.count - 1]
    }

    /// Accumulates parameter gradients given the gradient of the last `forward`'s output (same batch size).
    /// `dOutput` is consumed (overwritten). With `dInput` (B, I) it also returns the gradient with respect to the
    /// input rows x (the pathwise estimator chains it through the reverse steps); the forward must then have been
    /// in inference mode.
    public func backward(dOutput: Tensor, dInput: Tensor? = nil) throws {
        let b = backend, a = architecture, layers = a.layers
        let w = try workspace(batch: dOutput.rows)
        var dY = dOutput
        for j in stride(from: layers.count - 1, to: 0, by: -1) {
            let layer = layers[j]
            b.linearBackward(x: w.activations[j], weight: parameters.value("\(layer.name).weight"), y: w.activations[j + 1],
                             activation: layer.activation, dY: dY, dX: w.gradients[j - 1],
                             dWeight: parameters.gradient("\(layer.name).weight"), dBias: parameters.gradient("\(layer.name).bias"))
            dY = w.gradients[j - 1]
        }
        let first = layers[0]
        let weight = parameters.value("\(first.name).weight")
        var full: Tensor? = nil
        if dInput != nil {
            precondition(!w.droppedOut, "an input gradient needs a forward in inference mode")
            full = try w.inputGradient ?? backend.makeTensor([dOutput.rows, first.inputs], .float32)
            w.inputGradient = full
        }
        b.linearBackward(x: w.activations[0], weight: weight, y: w.activations[1], activation: first.activation, dY: dY,
                         dX: full, dWeight: parameters.gradient("\(first.name).weight"), dBias: parameters.gradient("\(first.name).bias"))
        if let full, let dInput {
            b.copyColumns(full, sourceColumn: 0, into: dInput, destinationColumn: 0, width: a.items)
            b.copyColumns(full, sourceColumn: a.items, into: w.embeddingGradient, destinationColumn: 0, width: a.embeddingSize)
        } else {
            // The first layer's input is data except for its last E columns (the time embedding): rather than the full
            // (B, I+E) input gradient, multiply by a copy of just those E weight columns.
            b.copyColumns(weight, sourceColumn: a.items, into: w.embeddingWeightSlice, destinationColumn: 0, width: a.embeddingSize)
            b.matmul(dY, transposeA: false, w.embeddingWeightSlice, transposeB: false, into: w.embeddingGradient, alpha: 1, beta: 0)
        }
        b.linearBackward(x: w.timeEmbedding, weight: parameters.value("emb_layer.weight"), y: w.embedding, activation: .identity,
                         dY: w.embeddingGradient, dX: nil, dWeight: parameters.gradient("emb_layer.weight"),
                         dBias: parameters.gradient("emb_layer.bias"))
    }
}
