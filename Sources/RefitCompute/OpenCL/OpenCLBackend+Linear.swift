import Foundation

/// Linear layers and matrix products on OpenCL: the kernels in Kernels/linear.cl.
///
/// Every product, whatever its transposes, runs through one GEMM kernel that takes each operand as a base pointer
/// with two element strides; the forward layer is the same kernel with B = Wᵀ and its bias and tanh fused into the
/// store. There are two kernel families, chosen per device by `LinearTuning`: a register-tiled one for CPU devices
/// (PoCL) and a local-memory-tiled one for GPUs.
extension OpenCLBackend {
    public func linearForward(x: Tensor, weight: Tensor, bias: Tensor?, activation: Activation, into y: Tensor) {
        let (batch, inputs, outputs) = (x.rows, x.columns, weight.rows)
        precondition(weight.columns == inputs && y.rows == batch && y.columns == outputs, "linearForward shapes")
        precondition(bias.map { $0.count == outputs } ?? true, "linearForward: bias must hold \(outputs) values")
        gemm(x, transposeA: false, weight, transposeB: true, into: y, alpha: 1, beta: 0, bias: bias, tanh: activation == .tanh)
    }

    public func activationBackward(dY: Tensor, y: Tensor, activation: Activation, into dPre: Tensor) {
        precondition(dY.count == y.count && dPre.count == y.count)
        launch("activation_backward", global: [dY.count], [
            .buffer(dY), .buffer(y), .buffer(dPre), .int(activation == .tanh ? 1 : 0), .int(Int32(dY.count)),
        ])
    }

    public func matmul(_ a: Tensor, transposeA: Bool, _ b: Tensor, transposeB: Bool, into c: Tensor, alpha: Float, beta: Float,
                       bias: Tensor?) {
        precondition(bias.map { $0.count == c.columns } ?? true, "matmul: bias must hold \(c.columns) values")
        gemm(a, transposeA: transposeA, b, transposeB: transposeB, into: c, alpha: alpha, beta: beta, bias: bias, tanh: false)
    }

    /// `c = alpha·op(a)·op(b) + beta·c (+ bias per column) (then tanh)`, row-major; `family` overrides the device's
    /// choice (tests run the GPU kernels on a CPU device this way).
    func gemm(_ a: Tensor, transposeA: Bool, _ b: Tensor, transposeB: Bool, into c: Tensor, alpha: Float, beta: Float,
              bias: Tensor?, tanh: Bool, family: LinearTuning.Family? = nil) {
        let m = transposeA ? a.columns : a.rows
        let k = transposeA ? a.rows : a.columns
        let n = transposeB ? b.rows : b.columns
        precondition((transposeB ? b.columns : b.rows) == k && c.rows == m && c.columns == n, "matmul shapes")
        precondition(c.storage !== a.storage && c.storage !== b.storage, "matmul: the output may not alias an input")
        precondition(max(a.count, b.count, c.count) <= Int(Int32.max), "matmul: tensors beyond 2³¹ elements")
        let tuning = LinearTuning(device: deviceInfo, parameters: parameters.linear)
        // A(i, p) = a[i·asi + p·ask], B(p, j) = b[p·bsk + j·bsj]: see Kernels/linear.cl.
        let (asi, ask) = transposeA ? (1, m) : (k, 1)
        let (bsk, bsj) = transposeB ? (1, k) : (n, 1)
        let arguments: [KernelArgument] = [
            .buffer(a), .int(Int32(asi)), .int(Int32(ask)),
            .buffer(b), .int(Int32(bsk)), .int(Int32(bsj)),
            .buffer(c), .int(Int32(n)), .int(Int32(m)), .int(Int32(n)), .int(Int32(k)),
            .float(alpha), .float(beta), .buffer(bias ?? c), .int((bias == nil ? 0 : 1) | (tanh ? 2 : 0)),
        ]
        var chosen = family ?? linearFamily ?? tuning.family
        let group = tuning.parameters.gpuGroup
        if chosen == .gpu && powerOfTwoGroup("linear_gemm_gpu", atMost: group * group) < group * group {
            chosen = .cpu  // this device cannot run the GPU kernel's 16 × 16 work-groups (too many registers?)
        }
        switch chosen {
        case .cpu:
            var arguments = arguments
            let plan = tuning.cpuPlan(m: m, n: n, transposedA: transposeA)
            if transposeA && m > 1 && tuning.transposesFirst(m: m, k: k, panels: plan.panels), let rows = transposedOperand(m * k) {
                // A stored (K, M) becomes (M, K) once, instead of being gathered again for every column panel.
                launch("linear_transpose", global: [(m + 15) / 16, (k + 15) / 16], [.buffer(a), .int(Int32(k)), .int(Int32(m)), .buffer(rows)])
                arguments[0...2] = [.buffer(rows), .int(Int32(k)), .int(1)]
            }
            launch("linear_gemm_cpu", global: [plan.panels, plan.rowBlocks], local: [1, 1], arguments + [
                .int(Int32(plan.rowsPerItem)), .int(Int32(tuning.innerBlock)),
                .local(bytes: tuning.innerBlock * tuning.parameters.cpuPanel * 4),
                .local(bytes: tuning.innerBlock * tuning.parameters.cpuTileRows * 4),
            ])
        case .gpu:
            let tile = tuning.parameters.gpuTile
            launch("linear_gemm_gpu", global: [(n + tile - 1) / tile * group, (m + tile - 1) / tile * group],
                   local: [group, group], arguments)
        }
    }
}

/// How the linear kernels are launched on one device: the family by kind of device, the launch plan from the
/// backend's `LinearParameters` (the same values the program was built with).
struct LinearTuning: Sendable, Equatable {
    enum Family: String, Sendable, CaseIterable {
        /// `linear_gemm_cpu`: one work-item per group, a `cpuTileRows` × `cpuPanel` register tile in float16 vectors.
        case cpu
        /// `linear_gemm_gpu`: `gpuGroup`² work-items per `gpuTile`² tile of C, staged through local memory.
        case gpu
    }

    let family: Family
    let parameters: LinearParameters
    /// Inner indices per packed panel (CPU family): `LIN_CPU_KC`, fewer where the device has less local memory.
    let innerBlock: Int
    let computeUnits: Int

    /// `REFIT_LINEAR_KERNELS=cpu|gpu` forces a family, for measurements.
    private static let forcedFamily = ProcessInfo.processInfo.environment["REFIT_LINEAR_KERNELS"].flatMap(Family.init(rawValue:))

    init(device: OpenCLDeviceInfo, parameters: LinearParameters) {
        self.parameters = parameters
        let gpuFits = device.maxWorkGroupSize >= parameters.gpuGroup * parameters.gpuGroup
            && device.localMemoryBytes >= parameters.gpuLocalBytes
        family = Self.forcedFamily ?? (device.isGPU && gpuFits ? .gpu : .cpu)
        let bytesPerIndex = (parameters.cpuPanel + parameters.cpuTileRows) * 4
        innerBlock = max(16, min(parameters.cpuInnerBlock, device.localMemoryBytes / 2 / bytesPerIndex / 16 * 16))
        computeUnits = max(1, device.computeUnits)
    }

    /// Whether the CPU family lays a transposed A out again before the product: when the gathers it saves, one pass
    /// over A per column panel, come to `LIN_CPU_TRANSPOSE` × 2²⁰ floats or more (the launch costs about as much as
    /// gathering a few million).
    func transposesFirst(m: Int, k: Int, panels: Int) -> Bool {
        panels * m * k >= parameters.cpuTransposeMinimum << 20
    }

    /// The CPU family's grid: one work-item per panel and block of rows. Rows are split only as far as needed to give
    /// every compute unit `LIN_CPU_ITEMS` work-items, since each split re-packs the panel — and, when A is stored
    /// transposed and tall (dW of a layer with thousands of outputs), into blocks of at most `LIN_CPU_TALL_TILES`
    /// tiles, so that the rows of A a core streams stay in its L2 cache from one panel to the next (PoCL hands each
    /// thread consecutive work-items).
    func cpuPlan(m: Int, n: Int, transposedA: Bool = false) -> (panels: Int, rowBlocks: Int, rowsPerItem: Int) {
        let (panel, tileRows) = (parameters.cpuPanel, parameters.cpuTileRows)
        let panels = (n + panel - 1) / panel
        let tiles = max(1, (m + tileRows - 1) / tileRows)
        let target = parameters.cpuItemsPerComputeUnit * computeUnits
        var blocks = min(tiles, max(1, (target + panels - 1) / max(panels, 1)))
        if transposedA && m >= 2048 {
            blocks = max(blocks, (tiles + parameters.cpuTransposedRowTiles - 1) / parameters.cpuTransposedRowTiles)
        }
        let rowsPerItem = (tiles + blocks - 1) / blocks * tileRows
        return (panels, (m + rowsPerItem - 1) / rowsPerItem, rowsPerItem)
    }
}
