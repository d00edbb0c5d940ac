/// Everything about how Refit's kernels are built and launched that may differ from one device to the next, CLBlast's
/// way: the linear kernels' tile shapes (compile-time `-D` defines), the launch plans the host derives from them, and
/// the work-group shapes of the reduction and selection kernels.
///
/// A backend takes its parameters from `KernelTuningTable` (a row `refit tune` measured for this device, or the
/// defaults for its kind), builds its program with `defines`, and sizes every launch and local buffer from the same
/// values, so host and kernel cannot disagree. Every parameter has a name, used in the table and by `refit tune`;
/// the kernel files repeat the defines' CPU defaults as `#ifndef` values only so that each file still compiles alone.
public struct KernelParameters: Sendable, Equatable {
    public var linear: LinearParameters
    public var groups: WorkGroups

    /// The parameters for a kind of device before any tuning: the values measured on the machines Refit was built on.
    public static func defaults(for device: OpenCLDeviceInfo) -> KernelParameters {
        KernelParameters(linear: LinearParameters(),
                         groups: device.isGPU ? .gpu(localMemoryBytes: device.localMemoryBytes)
                             : .cpu(computeUnits: device.computeUnits, localMemoryBytes: device.localMemoryBytes))
    }

    /// One named parameter: where it lives, whether the kernels are compiled with it, and the values that are valid.
    public struct Entry: Sendable {
        public let name: String
        public let keyPath: WritableKeyPath<KernelParameters, Int> & Sendable
        /// Passed to the OpenCL compiler as `-D name=value` (else only the host reads it).
        public let isDefine: Bool
        public let valid: ClosedRange<Int>
        public let meaning: String
    }

    public static let entries: [Entry] = [
        Entry(name: "LIN_CPU_MR", keyPath: \.linear.cpuTileRows, isDefine: true, valid: 1...32,
              meaning: "rows of C per register tile of linear_gemm_cpu"),
        Entry(name: "LIN_CPU_NV", keyPath: \.linear.cpuTileVectors, isDefine: true, valid: 1...4,
              meaning: "float16 vectors per register-tile row of linear_gemm_cpu (its panel is 16 × this columns)"),
        Entry(name: "LIN_CPU_KC", keyPath: \.linear.cpuInnerBlock, isDefine: false, valid: 16...4096,
              meaning: "inner indices per packed panel of linear_gemm_cpu (fewer where local memory is short)"),
        Entry(name: "LIN_CPU_ITEMS", keyPath: \.linear.cpuItemsPerComputeUnit, isDefine: false, valid: 1...64,
              meaning: "linear_gemm_cpu work-items to aim for per compute unit"),
        Entry(name: "LIN_CPU_TALL_TILES", keyPath: \.linear.cpuTransposedRowTiles, isDefine: false, valid: 1...(1 << 20),
              meaning: "most register tiles per linear_gemm_cpu work-item when A is transposed and tall (dW)"),
        Entry(name: "LIN_CPU_TRANSPOSE", keyPath: \.linear.cpuTransposeMinimum, isDefine: false, valid: 0...(1 << 20),
              meaning: "linear_gemm_cpu lays a transposed A out again first when panels × M × K ≥ this × 2²⁰ (0: always)"),
        Entry(name: "LIN_GPU_TS", keyPath: \.linear.gpuTile, isDefine: true, valid: 4...256,
              meaning: "rows and columns of C per linear_gemm_gpu work-group"),
        Entry(name: "LIN_GPU_WPT", keyPath: \.linear.gpuWorkPerItem, isDefine: true, valid: 1...16,
              meaning: "rows and columns of C per linear_gemm_gpu work-item (divides LIN_GPU_TS)"),
        Entry(name: "LIN_GPU_TSK", keyPath: \.linear.gpuStageDepth, isDefine: true, valid: 1...128,
              meaning: "inner indices per local-memory stage of linear_gemm_gpu"),
        Entry(name: "TOTAL_BLOCK", keyPath: \.groups.totalBlock, isDefine: true, valid: 1...4096,
              meaning: "elements per work-item block of reduce_total (bounds the run of additions into one float)"),
        Entry(name: "ROW_GROUP", keyPath: \.groups.rowReduction, isDefine: false, valid: 1...1024,
              meaning: "work-items per row of the row reductions (sum_rows, log-softmax, Gaussian log-probability)"),
        Entry(name: "COLUMN_WIDTH", keyPath: \.groups.columnWidth, isDefine: false, valid: 1...1024,
              meaning: "adjacent columns per sum_columns work-group"),
        Entry(name: "COLUMN_SLICES", keyPath: \.groups.columnSlices, isDefine: false, valid: 1...1024,
              meaning: "row slices per sum_columns work-group"),
        Entry(name: "TOTAL_GROUP", keyPath: \.groups.totalGroupSize, isDefine: false, valid: 1...1024,
              meaning: "work-items per reduce_total work-group"),
        Entry(name: "TOTAL_GROUPS", keyPath: \.groups.maxTotalGroups, isDefine: false, valid: 1...WorkGroups.totalGroups,
              meaning: "most work-groups a whole-tensor sum is split into"),
        Entry(name: "TOPK_GROUP", keyPath: \.groups.topKGroupSize, isDefine: false, valid: 1...1024,
              meaning: "work-items per row of top_k (1: the serial kernel)"),
        Entry(name: "DENSIFY_GROUP", keyPath: \.groups.densifyGroupSize, isDefine: false, valid: 1...1024,
              meaning: "work-items per row of densify_rows"),
        Entry(name: "TOPK_LOCAL_BYTES", keyPath: \.groups.localMemoryBudget, isDefine: false, valid: 1024...(1 << 20),
              meaning: "local memory one top_k work-group may use"),
    ]

    public static func entry(named name: String) -> Entry? { entries.first { $0.name == name } }

    public subscript(name: String) -> Int? {
        get { Self.entry(named: name).map { self[keyPath: $0.keyPath] } }
    }

    /// Every parameter by name.
    public var values: [String: Int] {
        Dictionary(uniqueKeysWithValues: Self.entries.map { ($0.name, self[keyPath: $0.keyPath]) })
    }

    /// These parameters with `overrides` (name → value) applied; an unknown name or a value outside its range throws.
    public func applying(_ overrides: [String: Int]) throws(KernelParametersError) -> KernelParameters {
        var result = self
        for (name, value) in overrides.sorted(by: { $0.key < $1.key }) {
            guard let entry = Self.entry(named: name) else { throw .unknownName(name) }
            guard entry.valid.contains(value) else { throw .outOfRange(name, value, entry.valid) }
            result[keyPath: entry.keyPath] = value
        }
        try result.validate()
        return result
    }

    /// Checks the rules that tie parameters together (each value's own range is checked where it is set).
    public func validate() throws(KernelParametersError) {
        for entry in Self.entries where !entry.valid.contains(self[keyPath: entry.keyPath]) {
            throw .outOfRange(entry.name, self[keyPath: entry.keyPath], entry.valid)
        }
        if linear.gpuTile % linear.gpuWorkPerItem != 0 {
            throw .inconsistent("LIN_GPU_WPT (\(linear.gpuWorkPerItem)) must divide LIN_GPU_TS (\(linear.gpuTile))")
        }
    }

    /// The `-D` options of every compile-time parameter, for the program build.
    public var defines: String {
        Self.entries.filter(\.isDefine).map { "-D \($0.name)=\(self[keyPath: $0.keyPath])" }.joined(separator: " ")
    }

    /// "LIN_CPU_MR=12 …" for the values that differ from `base`, or a word when none does.
    public static func describe(_ parameters: KernelParameters, against base: KernelParameters) -> String {
        let changed = entries.filter { parameters[keyPath: $0.keyPath] != base[keyPath: $0.keyPath] }
        if changed.isEmpty { return "(the defaults for its kind)" }
        return changed.map { "\($0.name)=\(parameters[keyPath: $0.keyPath])" }.joined(separator: " ")
    }

    /// The options every program is built with.
    var buildOptions: String { "-cl-std=CL1.2 " + defines }
}

/// The linear kernels' tile shapes and the CPU family's launch plan (see Kernels/linear.cl and `LinearTuning`).
/// The defaults, and why:
public struct LinearParameters: Sendable, Equatable {
    /// 12 × LIN_CPU_NV float16 accumulators take 24 of AVX-512's 32 registers, leaving room for the panel's vectors
    /// and A's broadcast.
    public var cpuTileRows = 12
    /// Two float16 vectors: a 32-column panel, one work-item's share of C; two loads of the packed panel per inner
    /// index feed 24 FMAs.
    public var cpuTileVectors = 2
    /// 256 × 32 floats = 32 KiB of local memory (plus 12 KiB for a transposed A), within L1 and L2 reach of one core.
    public var cpuInnerBlock = 256
    /// Several work-items per compute unit, so that the last ones do not leave a core idle.
    public var cpuItemsPerComputeUnit = 4
    /// Blocks of at most 40 tiles keep the rows of A a core reads for dW in its L2 cache from one panel to the next
    /// (measured when the kernel still gathered a transposed A: +12% on 2810 × 600 × 400, nothing at M ≤ 1024).
    public var cpuTransposedRowTiles = 40
    /// A transposed A is laid out again first (linear_transpose) when the product's panels × M × K reaches 4 · 2²⁰:
    /// measured at batch 400, +30% on dW of 600 → 2810 (19 panels × 2810 × 400) and +12% on 2820 → 600 (89 × 600 ×
    /// 400), but −6 to −15% on 600 → 200 and 200 → 600 (19 × 200 × 400, 7 × 600 × 400), where the launch outweighs
    /// the gathers saved.
    public var cpuTransposeMinimum = 4
    /// Each value of A and B staged in local memory serves 64 multiply-adds for one read from global memory.
    public var gpuTile = 64
    /// 16 accumulators in registers per work-item, in work-groups of (64 / 4)² = 256 work-items.
    public var gpuWorkPerItem = 4
    /// Two 16 × 65 float slices, 8 KiB per work-group.
    public var gpuStageDepth = 16

    public init() {}

    /// Columns of C per CPU work-item (LIN_CPU_NR in the kernel).
    var cpuPanel: Int { 16 * cpuTileVectors }
    /// The side of the GPU family's square work-group (LIN_GPU_RTS in the kernel).
    var gpuGroup: Int { gpuTile / gpuWorkPerItem }
    /// Local memory of one GPU work-group: two LIN_GPU_TSK × (LIN_GPU_TS + 1) float slices.
    var gpuLocalBytes: Int { 2 * gpuStageDepth * (gpuTile + 1) * 4 }
}

public enum KernelParametersError: Error, Equatable, CustomStringConvertible {
    case unknownName(String)
    case outOfRange(String, Int, ClosedRange<Int>)
    case inconsistent(String)

    public var description: String {
        switch self {
        case .unknownName(let name):
            "unknown kernel parameter '\(name)'; known: \(KernelParameters.entries.map(\.name).joined(separator: ", "))"
        case .outOfRange(let name, let value, let range):
            "kernel parameter \(name) = \(value) is outside \(range.lowerBound)...\(range.upperBound)"
        case .inconsistent(let rule): "kernel parameters: \(rule)"
        }
    }
}

/// Work-group shapes for the reduction and selection kernels. The defaults, by kind of device, and why:
///
/// A GPU wants many work-items per row: adjacent work-items read adjacent floats (coalesced loads) and a batch of 400
/// rows fills the device. PoCL runs a work-group as a loop on one core, where the per-row kernels are fastest with one
/// work-item per row, the same work as a plain loop. Measured through PoCL on a 2-core Xeon at 400 × 2810: 256
/// work-items per row cost 1.2–2× (sum_rows, log-softmax), and top_k with 64 cost 4–10×, while one work-item per row
/// (for top_k, the serial kernel) matches the earlier kernels. Whole-tensor sums use several groups on both; on PoCL
/// 32 groups of 32 sum 3.6M floats 4.7× faster than the earlier single group. Results are deterministic for a given
/// device and parameters: the shapes depend only on them and the tensor's size.
public struct WorkGroups: Sendable, Equatable {
    /// Work-items per row (at most) for sum_rows, log_softmax_rows, gaussian_log_probability and squared_error_rows.
    public var rowReduction: Int
    /// sum_columns groups: `columnWidth` adjacent columns × `columnSlices` row slices.
    public var columnWidth: Int
    public var columnSlices: Int
    /// Work-items per group of reduce_total, and the most groups a whole-tensor sum is split into.
    public var totalGroupSize: Int
    public var maxTotalGroups: Int
    /// Elements per work-item in each block of reduce_total, summed into a fresh float before joining the work-item's
    /// total: it bounds the run of additions into one float. A sum is split into no more groups than leave each
    /// work-item one whole block.
    public var totalBlock = 64
    /// Work-items per row of top_k (at most: fewer when the lists would not fit `localMemoryBudget`; 1 means the serial
    /// kernel) and of densify_rows.
    public var topKGroupSize: Int
    public var densifyGroupSize: Int
    /// Local memory that one top_k work-group may use: a part of a GPU core's, so that several groups share a core.
    public var localMemoryBudget: Int

    /// Upper bound on `maxTotalGroups`: the size of the partial-totals buffer.
    public static let totalGroups = 1024

    static func gpu(localMemoryBytes: Int) -> WorkGroups {
        WorkGroups(rowReduction: 256, columnWidth: 32, columnSlices: 8, totalGroupSize: 256, maxTotalGroups: totalGroups,
                   topKGroupSize: 64, densifyGroupSize: 64, localMemoryBudget: min(localMemoryBytes, 32 * 1024))
    }

    static func cpu(computeUnits: Int, localMemoryBytes: Int) -> WorkGroups {
        WorkGroups(rowReduction: 1, columnWidth: 64, columnSlices: 1, totalGroupSize: 32,
                   maxTotalGroups: min(totalGroups, 16 * max(computeUnits, 1)),
                   topKGroupSize: 1, densifyGroupSize: 64, localMemoryBudget: min(localMemoryBytes, 32 * 1024))
    }

    /// Work-groups for a whole-tensor reduction of `elements`: few enough that each work-item adds at least one whole
    /// block of reduce_total.
    func totalGroupCount(elements: Int, groupSize: Int) -> Int {
        min(maxTotalGroups, max(1, elements / (groupSize * totalBlock)))
    }
}
