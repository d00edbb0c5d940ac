import Foundation
import RefitCompute

/// The shape of the SASRec-like encoder.
public struct SASRecArchitecture: Codable, Sendable, Equatable {
    public var items: Int
    public var historyLength: Int
    public var hiddenSize: Int
    public var blocks: Int
    public var dropout: Float

    public init(items: Int, settings: SequentialSettings) {
        self.items = items
        historyLength = settings.historyLength
        hiddenSize = settings.hiddenSize
        blocks = settings.blocks
        dropout = settings.dropout
    }

    /// Parameter names and shapes, PyTorch state-dict style (Linear weights are (out, in)).
    var parameterLayout: [(String, [Int])] {
        let d = hiddenSize
        var layout: [(String, [Int])] = [("item_embeddings.weight", [items, d]), ("position_embeddings.weight", [historyLength, d])]
        for i in 0..<blocks {
            let p = "blocks.\(i)."
            layout += [(p + "attention_norm.weight", [d]), (p + "attention_norm.bias", [d])]
            for name in ["query", "key", "value", "output"] {
                layout += [(p + "attention.\(name).weight", [d, d]), (p + "attention.\(name).bias", [d])]
            }
            layout += [(p + "ffn_norm.weight", [d]), (p + "ffn_norm.bias", [d]),
                       (p + "ffn.0.weight", [d, d]), (p + "ffn.0.bias", [d]), (p + "ffn.2.weight", [d, d]), (p + "ffn.2.bias", [d])]
        }
        layout += [("final_norm.weight", [d]), ("final_norm.bias", [d])]
        return layout
    }
}

/// A SASRec-like encoder (Kang & McAuley 2018) with pre-LayerNorm blocks: item + position embeddings, then per
/// block `x += Wo·attention(LN(x))` (causal, single head) and `x += W2·GELU(W1·LN(x))`, each branch with dropout,
/// and a final LayerNorm; the history's encoding h is the output at the last position. The item embeddings are
/// also the output layer (scores = h·Eᵀ), as in SASRec.
///
/// Padding (item −1) embeds to zero and is never attended to, so a short history's h does not depend on it.
public final class SASRecEncoder: @unchecked Sendable {
    public let architecture: SASRecArchitecture
    public let parameters: ParameterStore
    var backend: any Backend { parameters.backend }
    private var workspaces: [Int: Workspace] = [:]
    static let layerNormEpsilon: Float = 1e-5

    /// Activations of one block, kept for the backward.
    final class BlockActivations {
        let attentionNormed, attentionMean, attentionRstd, query, key, value, probabilities, attended, branch: Tensor
        let middle, ffnNormed, ffnMean, ffnRstd, hidden, activated, output: Tensor
        init(_ b: any Backend, rows: Int, d: Int, length: Int) throws {
            func t(_ shape: [Int]) throws -> Tensor { try b.makeTensor(shape, .float32) }
            attentionNormed = try t([rows, d]); attentionMean = try t([rows]); attentionRstd = try t([rows])
            query = try t([rows, d]); key = try t([rows, d]); value = try t([rows, d]); probabilities = try t([rows, length])
            attended = try t([rows, d]); branch = try t([rows, d]); middle = try t([rows, d]); ffnNormed = try t([rows, d])
            ffnMean = try t([rows]); ffnRstd = try t([rows]); hidden = try t([rows, d]); activated = try t([rows, d]); output = try t([rows, d])
        }
    }

    /// Everything for one batch size of B sequences (B·L rows), allocated once.
    final class Workspace {
        let items, start, positions, lastRows: Tensor
        let positionPlan, lastPlan: ScatterPlan
        var itemPlan: ScatterPlan?
        let embedded: Tensor
        let blocks: [BlockActivations]
        let final, finalMean, finalRstd, encoding: Tensor
        // Gradients
        let dRows, dRows2, dBranch, dQuery, dKey, dValue, dNormed, dScratch: Tensor

        init(_ b: any Backend, a: SASRecArchitecture, batch: Int) throws {
            let rows = batch * a.historyLength, d = a.hiddenSize, l = a.historyLength
            func t(_ shape: [Int]) throws -> Tensor { try b.makeTensor(shape, .float32) }
            items = try b.makeTensor([rows], .int32)
            start = try b.makeTensor([batch], .int32)
            let positionIndices = (0..<rows).map { Int32($0 % l) }
            positions = try b.tensor(positionIndices, shape: [rows])
            positionPlan = try ScatterPlan(indices: positionIndices, backend: b)
            let last = (0..<batch).map { Int32($0 * l + l - 1) }
            lastRows = try b.tensor(last, shape: [batch])
            lastPlan = try ScatterPlan(indices: last, backend: b)
            embedded = try t([rows, d])
            blocks = try (0..<a.blocks).map { _ in try BlockActivations(b, rows: rows, d: d, length: l) }
            final = try t([rows, d]); finalMean = try t([rows]); finalRstd = try t([rows]); encoding = try t([batch, d])
            dRows = try t([rows, d]); dRows2 = try t([rows, d]); dBranch = try t([rows, d]); dQuery = try t([rows, d])
            dKey = try t([rows, d]); dValue = try t([rows, d]); dNormed = try t([rows, d]); dScratch = try t([rows, d])
        }

        /// The residual stream entering block i (i = blocks.count: the final LayerNorm's input). Each block writes its
        /// output to its own tensor, which the backward reads again, so no input needs a copy.
        func streamInput(_ i: Int) -> Tensor { i == 0 ? embedded : blocks[i - 1].output }
    }

    /// A new encoder: N(0, 0.1²) embeddings, Xavier-normal linear weights, zero biases and unit LayerNorm gains,
    /// drawn from the Philox stream of `seed` (identical on every backend).
    public init(backend: any Backend, architecture: SASRecArchitecture, seed: UInt64) throws {
        self.architecture = architecture
        parameters = try ParameterStore(backend: backend, layout: architecture.parameterLayout)
        try parameters.initialize(seed: seed, constant: { name in
            name.hasSuffix("norm.weight") ? 1 : name.hasSuffix("bias") ? 0 : nil
        }, std: { name, shape in name.contains("embeddings") ? 0.1 : ParameterStore.xavierStd(shape) })
    }

    public var itemEmbeddings: Tensor { parameters.value("item_embeddings.weight") }

    func workspace(batch: Int) throws -> Workspace {
        try workspaces.reused(batch) { try Workspace(backend, a: architecture, batch: batch) }
    }

    /// Encodes B histories (`histories`: B·L item indices, oldest first, −1 = padding) into h (B, d), returned from
    /// the workspace (overwritten by the next call with the same B). Training mode applies dropout from the
    /// Philox stream (dropoutSeed, dropoutOffset) and keeps what `backward` needs.
    public func forward(histories: [Int32], training: Bool, dropoutSeed: UInt64 = 0, dropoutOffset: UInt64 = 0) throws -> Tensor {
        let a = architecture, b = backend, l = a.historyLength
        precondition(histories.count % l == 0, "histories must hold L items per sequence")
        let batch = histories.count / l
        let w = try workspace(batch: batch)
        b.write(histories, to: w.items)
        b.write((0..<batch).map { s in Int32(histories[(s * l)..<((s + 1) * l)].prefix { $0 < 0 }.count) }, to: w.start)
        if training { w.itemPlan = try ScatterPlan(indices: histories, backend: b) }
        let rows = batch * l
        var dropoutSite: UInt64 = 0
        func dropout(_ x: Tensor) {
            guard training && a.dropout > 0 else { return }
            b.dropout(x, probability: a.dropout, seed: dropoutSeed, offset: dropoutOffset + dropoutSite * UInt64(rows * a.hiddenSize), into: x)
            dropoutSite += 1
        }
        b.gatherRows(itemEmbeddings, indices: w.items, into: w.embedded)
        b.gatherRows(parameters.value("position_embeddings.weight"), indices: w.positions, into: w.dScratch)
        b.add(w.embedded, w.dScratch, into: w.embedded)
        dropout(w.embedded)
        let scale = 1 / Float(a.hiddenSize).squareRoot()
        for (i, block) in w.blocks.enumerated() {
            let p = "blocks.\(i).", input = w.streamInput(i)
            b.layerNormForward(input, gamma: parameters.value(p + "attention_norm.weight"), beta: parameters.value(p + "attention_norm.bias"),
                               epsilon: Self.layerNormEpsilon, into: block.attentionNormed, mean: block.attentionMean, rstd: block.attentionRstd)
            for (name, out) in [("query", block.query), ("key", block.key), ("value", block.value)] {
                b.linearForward(x: block.attentionNormed, weight: parameters.value(p + "attention.\(name).weight"),
                                bias: parameters.value(p + "attention.\(name).bias"), activation: .identity, into: out)
            }
            b.causalAttentionForward(q: block.query, k: block.key, v: block.value, start: w.start, length: l, scale: scale,
                                     probabilities: block.probabilities, into: block.attended)
            b.linearForward(x: block.attended, weight: parameters.value(p + "attention.output.weight"),
                            bias: parameters.value(p + "attention.output.bias"), activation: .identity, into: block.branch)
            dropout(block.branch)
            b.add(input, block.branch, into: block.middle)
            b.layerNormForward(block.middle, gamma: parameters.value(p + "ffn_norm.weight"), beta: parameters.value(p + "ffn_norm.bias"),
                               epsilon: Self.layerNormEpsilon, into: block.ffnNormed, mean: block.ffnMean, rstd: block.ffnRstd)
            b.linearForward(x: block.ffnNormed, weight: parameters.value(p + "ffn.0.weight"), bias: parameters.value(p + "ffn.0.bias"),
                            activation: .identity, into: block.hidden)
            b.gelu(block.hidden, into: block.activated)
            b.linearForward(x: block.activated, weight: parameters.value(p + "ffn.2.weight"), bias: parameters.value(p + "ffn.2.bias"),
                            activation: .identity, into: block.output)
            dropout(block.output)
            b.add(block.middle, block.output, into: block.output)
        }
        b.layerNormForward(w.streamInput(w.blocks.count), gamma: parameters.value("final_norm.weight"), beta: parameters.value("final_norm.bias"),
                           epsilon: Self.layerNormEpsilon, into: w.final, mean: w.finalMean, rstd: w.finalRstd)
        b.gatherRows(w.final, indices: w.lastRows, into: w.encoding)
        return w.encoding
    }

    /// The last `forward`'s output at every position (B·L, d): row b·L + i encodes sequence b's items up to i, the
    /// history of the item after it. SASRec trains on all of them at once.
    public func positionOutputs(batch: Int) throws -> Tensor { try workspace(batch: batch).final }

    /// Accumulates parameter gradients given dh (B, d) for the last training-mode `forward` of that batch size.
    /// Dropout masks are replayed from the same stream, so pass the same seed and offset.
    public func backward(dEncoding: Tensor, dropoutSeed: UInt64 = 0, dropoutOffset: UInt64 = 0) throws {
        let w = try workspace(batch: dEncoding.rows)
        backend.fill(w.dRows2, with: 0)
        backend.scatterAddRows(dEncoding, plan: w.lastPlan, into: w.dRows2)
        try backward(dPositionOutputs: w.dRows2, dropoutSeed: dropoutSeed, dropoutOffset: dropoutOffset)
    }

    /// The same given the gradient of every position's output (B·L, d), which is left unchanged.
    public func backward(dPositionOutputs: Tensor, dropoutSeed: UInt64 = 0, dropoutOffset: UInt64 = 0) throws {
        let a = architecture, b = backend, l = a.historyLength
        let rows = dPositionOutputs.rows, batch = rows / l
        let w = try workspace(batch: batch)
        guard let itemPlan = w.itemPlan else { preconditionFailure("backward without a training forward") }
        var dropoutSite = UInt64(2 * a.blocks + 1)
        func dropoutBackward(_ x: Tensor) {
            guard a.dropout > 0 else { return }
            dropoutSite -= 1
            b.dropout(x, probability: a.dropout, seed: dropoutSeed, offset: dropoutOffset + dropoutSite * UInt64(rows * a.hiddenSize), into: x)
        }
        let scale = 1 / Float(a.hiddenSize).squareRoot()
        b.layerNormBackward(w.streamInput(w.blocks.count), gamma: parameters.value("final_norm.weight"), mean: w.finalMean, rstd: w.finalRstd, dY: dPositionOutputs,
                            dX: w.dRows, dGamma: parameters.gradient("final_norm.weight"), dBeta: parameters.gradient("final_norm.bias"))
        // w.dRows: the gradient of the residual stream.
        for (i, block) in w.blocks.enumerated().reversed() {
            let p = "blocks.\(i)."
            // x_out = middle + dropout(W2·GELU(W1·LN(middle)))
            b.copy(w.dRows, to: w.dBranch)
            dropoutBackward(w.dBranch)
            b.linearBackward(x: block.activated, weight: parameters.value(p + "ffn.2.weight"), y: block.output, activation: .identity,
                             dY: w.dBranch, dX: w.dScratch, dWeight: parameters.gradient(p + "ffn.2.weight"), dBias: parameters.gradient(p + "ffn.2.bias"))
            b.geluBackward(block.hidden, dY: w.dScratch, into: w.dScratch)
            b.linearBackward(x: block.ffnNormed, weight: parameters.value(p + "ffn.0.weight"), y: block.hidden, activation: .identity,
                             dY: w.dScratch, dX: w.dNormed, dWeight: parameters.gradient(p + "ffn.0.weight"), dBias: parameters.gradient(p + "ffn.0.bias"))
            b.layerNormBackward(block.middle, gamma: parameters.value(p + "ffn_norm.weight"), mean: block.ffnMean, rstd: block.ffnRstd,
                                dY: w.dNormed, dX: w.dScratch, dGamma: parameters.gradient(p + "ffn_norm.weight"), dBeta: parameters.gradient(p + "ffn_norm.bias"))
            b.add(w.dRows, w.dScratch, into: w.dRows)
            // middle = input + dropout(Wo·attention(LN(input)))
            b.copy(w.dRows, to: w.dBranch)
            dropoutBackward(w.dBranch)
            b.linearBackward(x: block.attended, weight: parameters.value(p + "attention.output.weight"), y: block.branch, activation: .identity,
                             dY: w.dBranch, dX: w.dScratch, dWeight: parameters.gradient(p + "attention.output.weight"),
                             dBias: parameters.gradient(p + "attention.output.bias"))
            b.causalAttentionBackward(q: block.query, k: block.key, v: block.value, start: w.start, length: l, scale: scale,
                                      probabilities: block.probabilities, dOut: w.dScratch, dQ: w.dQuery, dK: w.dKey, dV: w.dValue)
            b.fill(w.dNormed, with: 0)
            for (name, gradient, output) in [("query", w.dQuery, block.query), ("key", w.dKey, block.key), ("value", w.dValue, block.value)] {
                b.linearBackward(x: block.attentionNormed, weight: parameters.value(p + "attention.\(name).weight"), y: output,
                                 activation: .identity, dY: gradient, dX: w.dScratch,
                                 dWeight: parameters.gradient(p + "attention.\(name).weight"), dBias: parameters.gradient(p + "attention.\(name).bias"))
                b.add(w.dNormed, w.dScratch, into: w.dNormed)
            }
            b.layerNormBackward(w.streamInput(i), gamma: parameters.value(p + "attention_norm.weight"), mean: block.attentionMean,
                                rstd: block.attentionRstd, dY: w.dNormed, dX: w.dScratch,
                                dGamma: parameters.gradient(p + "attention_norm.weight"), dBeta: parameters.gradient(p + "attention_norm.bias"))
            b.add(w.dRows, w.dScratch, into: w.dRows)
        }
        dropoutBackward(w.dRows)
        b.scatterAddRows(w.dRows, plan: itemPlan, into: parameters.gradient("item_embeddings.weight"))
        b.scatterAddRows(w.dRows, plan: w.positionPlan, into: parameters.gradient("position_embeddings.weight"))
    }
}
