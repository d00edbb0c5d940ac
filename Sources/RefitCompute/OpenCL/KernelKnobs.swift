/// One compile-time constant of Kernels/*.cl, passed to the OpenCL compiler as `-D name=value`.
struct KernelKnob: Sendable, Equatable {
    let name: String
    let value: Int

    var define: String { "-D \(name)=\(value)" }
}

/// The kernels' compile-time constants that the host also depends on, in one table: the host sizes its launches and
/// local buffers from these rows, and every program is built with them as `-D` options, so host and kernel cannot
/// disagree. The kernel files repeat the values as `#ifndef` defaults only so that each still compiles alone (an
/// offline compiler, a profiler); `KernelKnobsTests` checks that those defaults agree with the table.
///
/// One table serves every device: a program holds both linear kernel families (the host picks one per device, and
/// tests run the GPU family on a CPU device), so each device is built with every knob.
enum KernelKnobs {
    /// Rows of C per register tile of linear_gemm_cpu: 12 × LIN_CPU_NV float16 accumulators take 24 of AVX-512's 32
    /// registers, leaving room for the panel's vectors and A's broadcast.
    static let linearCPUTileRows = KernelKnob(name: "LIN_CPU_MR", value: 12)
    /// float16 vectors per register-tile row of linear_gemm_cpu: its column panel, one work-item's share of C, is
    /// 16 × 2 = 32 columns; two loads of the packed panel per inner index feed 24 FMAs.
    static let linearCPUTileVectors = KernelKnob(name: "LIN_CPU_NV", value: 2)
    /// Rows and columns of C per linear_gemm_gpu work-group: each value of A and B staged in local memory then serves
    /// 64 multiply-adds for one read from global memory.
    static let linearGPUTile = KernelKnob(name: "LIN_GPU_TS", value: 64)
    /// Rows and columns of C per linear_gemm_gpu work-item: 16 accumulators in registers each, in work-groups of
    /// (64 / 4)² = 256 work-items (the host falls back to the CPU family where a device allows fewer).
    static let linearGPUWorkPerItem = KernelKnob(name: "LIN_GPU_WPT", value: 4)
    /// Inner indices per local-memory stage of linear_gemm_gpu: two 16 × 65 float slices, 8 KiB per work-group,
    /// within the 16 KiB of local memory the host asks of a device before it picks this family.
    static let linearGPUStageDepth = KernelKnob(name: "LIN_GPU_TSK", value: 16)
    /// Elements per work-item in each block of reduce_total, summed into a fresh float before joining the
    /// work-item's total: it bounds the run of additions into one float. The host splits a sum into no more groups
    /// than leave each work-item one whole block.
    static let totalBlock = KernelKnob(name: "TOTAL_BLOCK", value: 64)

    static let all: [KernelKnob] = [
        linearCPUTileRows, linearCPUTileVectors, linearGPUTile, linearGPUWorkPerItem, linearGPUStageDepth, totalBlock,
    ]

    /// The `-D` options for every knob, for the program build.
    static var defines: String { all.map(\.define).joined(separator: " ") }
}
