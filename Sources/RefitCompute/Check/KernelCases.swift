/// Every case `refit check` runs and the kernel comparison tests iterate: each `Backend` operation on awkward shapes
/// (1, 7, 33, 257, odd batches, inner sizes past every tile), within tolerances explained where each family is built.
///
/// The families are in `KernelCases+Linear.swift` (linear layers, matmul, element-wise, memory),
/// `KernelCases+Reductions.swift` (reductions, random streams), `KernelCases+Diffusion.swift` (diffusion, AdamW,
/// ranking) and `KernelCases+Sequence.swift`. Each operation's list starts with the shape that `quick` takes.
public enum KernelCases {
    public static let all: [KernelCase] = linear + elementwise + memory + reductions + random + diffusion + optimizer + ranking + sequence

    /// The first case of each operation: every operation once, in seconds.
    public static let quick: [KernelCase] = {
        var seen = Set<String>()
        return all.filter { seen.insert($0.name).inserted }
    }()

    /// Rows × columns of the row-wise cases: 1, 7, 33 and 257 on either side, and DiffRec's 2810 items.
    static let rowShapes: [(rows: Int, columns: Int)] = [(7, 33), (1, 1), (1, 7), (7, 1), (33, 7), (33, 257), (257, 33), (3, 2810), (5, 4099)]

    /// Element counts of the element-wise cases.
    static let counts = [4099, 1, 7, 33, 257, 100_003]
}

/// "7×33".
func dims(_ sizes: Int...) -> String { sizes.map(String.init).joined(separator: "×") }
