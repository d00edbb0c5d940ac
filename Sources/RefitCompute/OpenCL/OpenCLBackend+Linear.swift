/// Linear layers and matrix products on OpenCL: the kernels in Kernels/linear.cl.
extension OpenCLBackend {
    public func linearForward(x: Tensor, weight: Tensor, bias: Tensor?, activation: Activation, into y: Tensor) {
        let (batch, inputs, outputs) = (x.rows, x.columns, weight.rows)
        precondition(weight.columns == inputs && y.rows == batch && y.columns == outputs, "linearForward shapes")
        launch("linear_forward", global: [outputs, batch], [
            .buffer(x), .buffer(weight), .buffer(bias ?? weight), .int(bias == nil ? 0 : 1),
            .int(activation == .tanh ? 1 : 0), .buffer(y), .int(Int32(batch)), .int(Int32(inputs)), .int(Int32(outputs)),
        ])
    }

    public func activationBackward(dY: Tensor, y: Tensor, activation: Activation, into dPre: Tensor) {
        precondition(dY.count == y.count && dPre.count == y.count)
        launch("activation_backward", global: [dY.count], [
            .buffer(dY), .buffer(y), .buffer(dPre), .int(activation == .tanh ? 1 : 0), .int(Int32(dY.count)),
        ])
    }

    public func matmul(_ a: Tensor, transposeA: Bool, _ b: Tensor, transposeB: Bool, into c: Tensor, alpha: Float, beta: Float) {
        let m = transposeA ? a.columns : a.rows
        let k = transposeA ? a.rows : a.columns
        let n = transposeB ? b.rows : b.columns
        precondition((transposeB ? b.columns : b.rows) == k && c.rows == m && c.columns == n, "matmul shapes")
        launch("matmul", global: [n, m], [
            .buffer(a), .int(transposeA ? 1 : 0), .buffer(b), .int(transposeB ? 1 : 0), .buffer(c),
            .float(alpha), .float(beta), .int(Int32(m)), .int(Int32(n)), .int(Int32(k)),
        ])
    }
}
