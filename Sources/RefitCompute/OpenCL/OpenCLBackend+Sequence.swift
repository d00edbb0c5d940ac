/// The sequence-model operations on OpenCL: the kernels in Kernels/sequence.cl.
extension OpenCLBackend {
    public func gatherRows(_ table: Tensor, indices: Tensor, into y: Tensor) {
        let d = table.columns
        precondition(y.rows == indices.count && y.columns == d && indices.elementType == .int32, "gatherRows shapes")
        launch("gather_rows", global: [d, indices.count], [
            .buffer(table), .buffer(indices), .buffer(y), .int(Int32(d)), .int(Int32(indices.count)),
        ])
    }

    public func scatterAddRows(_ dY: Tensor, plan: ScatterPlan, into dTable: Tensor) {
        let d = dTable.columns
        precondition(dY.columns == d, "scatterAddRows: dY and dTable differ in width")
        launch("scatter_add_rows", global: [d, plan.count], [
            .buffer(dY), .buffer(plan.targets), .buffer(plan.offsets), .buffer(plan.sources), .buffer(dTable),
            .int(Int32(d)), .int(Int32(plan.count)),
        ])
    }

    public func layerNormForward(_ x: Tensor, gamma: Tensor, beta: Tensor, epsilon: Float, into y: Tensor, mean: Tensor, rstd: Tensor) {
        let (rows, d) = (x.rows, x.columns)
        precondition(y.count == x.count && gamma.count == d && beta.count == d && mean.count == rows && rstd.count == rows,
                     "layerNormForward shapes")
        launchRows("layer_norm_forward", rows: rows, columns: d, [
            .buffer(x), .buffer(gamma), .buffer(beta), .buffer(y), .buffer(mean), .buffer(rstd), .int(Int32(d)), .float(epsilon),
        ])
    }

    public func layerNormBackward(_ x: Tensor, gamma: Tensor, mean: Tensor, rstd: Tensor, dY: Tensor,
                                  dX: Tensor, dGamma: Tensor, dBeta: Tensor) {
        let (rows, d) = (x.rows, x.columns)
        precondition(dY.count == x.count && dX.count == x.count && gamma.count == d && dGamma.count == d && dBeta.count == d
                     && mean.count == rows && rstd.count == rows, "layerNormBackward shapes")
        guard rows > 0 else { return }
        // The parameter gradients read dY, so they go first: dX may alias it. Work-groups as in sumColumns.
        let name = "layer_norm_parameter_gradients"
        let slices = powerOfTwoGroup(name, atMost: min(parameters.groups.columnSlices, rows.nextPowerOfTwo))
        let width = max(1, powerOfTwoGroup(name, atMost: parameters.groups.columnSlices * parameters.groups.columnWidth) / slices)
        launch(name, global: [d, slices], local: [width, slices], [
            .buffer(x), .buffer(mean), .buffer(rstd), .buffer(dY), .buffer(dGamma), .buffer(dBeta),
            .int(Int32(rows)), .int(Int32(d)), .local(bytes: 2 * width * slices * 4),
        ])
        launchRows("layer_norm_backward", rows: rows, columns: d, [
            .buffer(x), .buffer(gamma), .buffer(mean), .buffer(rstd), .buffer(dY), .buffer(dX), .int(Int32(d)),
        ])
    }

    public func gelu(_ x: Tensor, into y: Tensor) {
        precondition(x.count == y.count, "gelu shapes")
        launch("gelu_forward", global: [x.count], [.buffer(x), .buffer(y), .int(Int32(x.count))])
    }

    public func geluBackward(_ x: Tensor, dY: Tensor, into dX: Tensor) {
        precondition(x.count == dY.count && x.count == dX.count, "geluBackward shapes")
        launch("gelu_backward", global: [x.count], [.buffer(x), .buffer(dY), .buffer(dX), .int(Int32(x.count))])
    }

    /// Checks the attention shapes and returns the kernels' trailing (batch, length, d, scale) arguments.
    private func attentionArguments(_ q: Tensor, start: Tensor, length: Int, scale: Float, probabilities: Tensor,
                                    _ others: Tensor...) -> [KernelArgument] {
        precondition(length >= 1 && q.rows % length == 0, "attention: \(q.rows) rows are not whole sequences of \(length)")
        let (batch, d) = (q.rows / length, q.columns)
        for t in others { precondition(t.rows == q.rows && t.columns == d, "attention shapes") }
        precondition(start.count == batch && start.elementType == .int32, "attention: one int32 start per sequence")
        precondition(probabilities.rows == q.rows && probabilities.columns == length, "attention: probabilities shape")
        return [.int(Int32(batch)), .int(Int32(length)), .int(Int32(d)), .float(scale)]
    }

    public func causalAttentionForward(q: Tensor, k: Tensor, v: Tensor, start: Tensor, length: Int, scale: Float,
                                       probabilities: Tensor, into out: Tensor) {
        let shape = attentionArguments(q, start: start, length: length, scale: scale, probabilities: probabilities, k, v, out)
        launch("causal_attention_forward", global: [length, q.rows / length], [
            .buffer(q), .buffer(k), .buffer(v), .buffer(start), .buffer(probabilities), .buffer(out),
        ] + shape)
    }

    public func causalAttentionBackward(q: Tensor, k: Tensor, v: Tensor, start: Tensor, length: Int, scale: Float,
                                        probabilities: Tensor, dOut: Tensor, dQ: Tensor, dK: Tensor, dV: Tensor) {
        let shape = attentionArguments(q, start: start, length: length, scale: scale, probabilities: probabilities,
                                       k, v, dOut, dQ, dK, dV)
        guard q.rows > 0, let deltas = scratch(q.rows) else { return }
        let global = [length, q.rows / length]
        launch("causal_attention_backward_queries", global: global, [
            .buffer(k), .buffer(v), .buffer(start), .buffer(probabilities), .buffer(dOut), .buffer(dQ), .buffer(deltas),
        ] + shape)
        launch("causal_attention_backward_keys", global: global, [
            .buffer(q), .buffer(v), .buffer(start), .buffer(probabilities), .buffer(dOut), .buffer(deltas),
            .buffer(dK), .buffer(dV),
        ] + shape)
    }

    public func softmaxCrossEntropy(_ logits: Tensor, targets: Tensor, gradientScale: Float, loss: Tensor, dLogits: Tensor?) {
        let (rows, n) = (logits.rows, logits.columns)
        precondition(targets.count == rows && targets.elementType == .int32 && loss.count == rows
                     && (dLogits?.count ?? logits.count) == logits.count, "softmaxCrossEntropy shapes")
        launchRows("softmax_cross_entropy", rows: rows, columns: n, [
            .buffer(logits), .buffer(targets), .buffer(loss), .buffer(dLogits ?? loss), .int(dLogits == nil ? 0 : 1),
            .float(gradientScale), .int(Int32(n)),
        ])
    }
}
