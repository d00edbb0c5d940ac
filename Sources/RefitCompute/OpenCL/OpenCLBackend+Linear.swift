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
        let tuning = LinearTuning(device: deviceInfo)
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
        let group = LinearTuning.gpuGroup
        if chosen == .gpu && powerOfTwoGroup("linear_gemm_gpu", atMost: group * group) < group * group {
            chosen = .cpu  // this device cannot run the GPU kernel's 16 × 16 work-groups (too many registers?)
        }
        switch chosen {
        case .cpu:
            let plan = tuning.cpuPlan(m: m, n: n, transposedA: transposeA)
            launch("linear_gemm_cpu", global: [plan.panels, plan.rowBlocks], local: [1, 1], arguments + [
                .int(Int32(plan.rowsPerItem)), .int(Int32(tuning.innerBlock)),
                .local(bytes: tuning.innerBlock * LinearTuning.cpuPanel * 4),
                .local(bytes: tuning.innerBlock * LinearTuning.cpuTileRows * 4),
            ])
        case .gpu:
            let tile = LinearTuning.gpuTile
            launch("linear_gemm_gpu", global: [(n + tile - 1) / tile * group, (m + tile - 1) / tile * group],
                   local: [group, group], arguments)
        }
    }
}

/// How the linear kernels are launched on one device: a small table by kind of device.
///
/// The tile shapes come from `KernelKnobs`, which the program is also built with.
struct LinearTuning: Sendable, Equatable {
    enum Family: String, Sendable, CaseIterable {
        /// `linear_gemm_cpu`: one work-item per group, a `cpuTileRows` × `cpuPanel` register tile in float16 vectors.
        case cpu
        /// `linear_gemm_gpu`: `gpuGroup`² work-items per `gpuTile`² tile of C, staged through local memory.
        case gpu
    }

    /// Columns of C per CPU work-item (LIN_CPU_NR in the kernel).
    static let cpuPanel = 16 * KernelKnobs.linearCPUTileVectors.value
    /// Rows of C per CPU register tile.
    static let cpuTileRows = KernelKnobs.linearCPUTileRows.value
    /// Most register tiles per work-item for a tall transposed A (see `cpuPlan`).
    static let transposedRowTiles = 40
    /// Rows and columns of C per GPU work-group, and the side of that square work-group (LIN_GPU_RTS in the kernel).
    static let gpuTile = KernelKnobs.linearGPUTile.value
    static let gpuGroup = KernelKnobs.linearGPUTile.value / KernelKnobs.linearGPUWorkPerItem.value

    let family: Family
    /// Inner indices per packed panel (CPU family): 256 × 32 floats = 32 KiB of local memory (plus 12 KiB for a
    /// transposed A), within L1 and L2 reach of one core; fewer where the device has less local memory.
    let innerBlock: Int
    /// Work-items to aim for per compute unit (CPU family), so that the last ones do not leave a core idle.
    let itemsPerComputeUnit: Int
    let computeUnits: Int

    /// `REFIT_LINEAR_KERNELS=cpu|gpu` forces a family, for measurements.
    private static let forcedFamily = ProcessInfo.processInfo.environment["REFIT_LINEAR_KERNELS"].flatMap(Family.init(rawValue:))

    init(device: OpenCLDeviceInfo) {
        let gpuFits = device.maxWorkGroupSize >= Self.gpuGroup * Self.gpuGroup && device.localMemoryBytes >= 16 * 1024
        family = Self.forcedFamily ?? (device.isGPU && gpuFits ? .gpu : .cpu)
        let panelBytes = Self.cpuPanel * 4
        innerBlock = max(16, min(256, device.localMemoryBytes / 2 / (panelBytes + Self.cpuTileRows * 4) / 16 * 16))
        itemsPerComputeUnit = 4
        computeUnits = max(1, device.computeUnits)
    }

    /// The CPU family's grid: one work-item per 32-column panel and block of rows. Rows are split only as far as
    /// needed to give every compute unit several work-items, since each split re-packs the panel — and, when A is
    /// stored transposed and tall (dW of a layer with thousands of outputs), into blocks of at most
    /// `transposedRowTiles` tiles, so that the rows a core gathers stay in its L2 cache from one panel to the next
    /// (PoCL hands each thread consecutive work-items): +12% on 2810 × 600 × 400, nothing at M ≤ 1024.
    func cpuPlan(m: Int, n: Int, transposedA: Bool = false) -> (panels: Int, rowBlocks: Int, rowsPerItem: Int) {
        let panels = (n + Self.cpuPanel - 1) / Self.cpuPanel
        let tiles = max(1, (m + Self.cpuTileRows - 1) / Self.cpuTileRows)
        let target = itemsPerComputeUnit * computeUnits
        var blocks = min(tiles, max(1, (target + panels - 1) / max(panels, 1)))
        if transposedA && m >= 2048 { blocks = max(blocks, (tiles + Self.transposedRowTiles - 1) / Self.transposedRowTiles) }
        let rowsPerItem = (tiles + blocks - 1) / blocks * Self.cpuTileRows
        return (panels, (m + rowsPerItem - 1) / rowsPerItem, rowsPerItem)
    }
}
