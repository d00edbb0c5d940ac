import Foundation

/// One `Backend` operation on one shape, run on a device and on the CPU reference from the same inputs and compared:
/// a row (or, for several outputs, a few rows) of `refit check`, and what the kernel comparison tests iterate
/// (`KernelCases.all`), so that the command and the tests check the same shapes within the same tolerances.
public struct KernelCase: Sendable, Identifiable {
    /// The operations a case belongs to, as the comparison tests group them.
    public enum Family: String, Sendable, CaseIterable, Codable {
        case linear, elementwise, reduction, random, diffusion, optimizer, ranking, sequence, memory
    }

    public let family: Family
    /// The operation, e.g. "matmul Aᵀ·B".
    public let name: String
    /// The shape in words, e.g. "7×33 · 257×33", with any variant ("in place", "α 0.5 β −2").
    public let shape: String
    /// How close each output must come to the reference's, unless an output names its own.
    public let tolerance: Tolerance
    /// Uploads the case's inputs to a backend; called afresh for every run, so that operations that accumulate or
    /// work in place (axpy, AdamW, sumColumns with β ≠ 0) start from the same values each time.
    let prepare: @Sendable (any Backend) throws -> Prepared

    /// Unique within `KernelCases.all`.
    public var id: String { "\(name) \(shape)" }

    init(_ family: Family, _ name: String, _ shape: String, _ tolerance: Tolerance,
         prepare: @escaping @Sendable (any Backend) throws -> Prepared) {
        (self.family, self.name, self.shape, self.tolerance, self.prepare) = (family, name, shape, tolerance, prepare)
    }

    /// A case's inputs on one backend: `operation` enqueues the computation, whose `outputs` are read after it.
    struct Prepared {
        let operation: () -> Void
        let outputs: [Output]

        init(_ operation: @escaping () -> Void, outputs: [Output]) {
            (self.operation, self.outputs) = (operation, outputs)
        }

        /// A single, unnamed output.
        init(_ operation: @escaping () -> Void, output: Tensor) {
            self.init(operation, outputs: [Output(output)])
        }
    }

    struct Output {
        let name: String?
        let tensor: Tensor
        /// nil: the case's tolerance. Int32 outputs compare exactly.
        let tolerance: Tolerance?

        init(_ tensor: Tensor, _ name: String? = nil, tolerance: Tolerance? = nil) {
            (self.name, self.tensor, self.tolerance) = (name, tensor, tolerance)
        }
    }

    /// A reference output, read back: compared exactly when integer.
    public enum Expected: Sendable {
        case floats([Float])
        case integers([Int32])
    }

    /// The case's outputs on `reference`, to compare several device runs with one reference run (`refit tune`).
    public func expectedOutputs(on reference: any Backend) throws -> [Expected] {
        let expected = try prepare(reference)
        expected.operation()
        return try expected.outputs.map {
            $0.tensor.elementType == .int32 ? .integers(try reference.readInt32s($0.tensor)) : .floats(try reference.readFloats($0.tensor))
        }
    }

    /// Runs the case on `device` (once to warm up: kernels are created and scratch sized on first use; then once timed,
    /// up to its completion) and on `reference`, and compares every output: one row per output, each with the device time.
    public func run(device: any Backend, reference: any Backend) throws -> [CheckResult] {
        try run(device: device, expected: try expectedOutputs(on: reference))
    }

    public func run(device: any Backend, expected: [Expected]) throws -> [CheckResult] {
        try prepare(device).operation()
        try device.synchronize()
        let timed = try prepare(device)
        try device.synchronize()  // the uploads are not the operation's time
        let start = DispatchTime.now().uptimeNanoseconds
        timed.operation()
        try device.synchronize()
        let milliseconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
        return try zip(timed.outputs, expected).map { actual, wanted in
            let shape = actual.name.map { "\(self.shape): \($0)" } ?? self.shape
            switch wanted {
            case .integers(let values):
                return CheckResult.compare(try device.readInt32s(actual.tensor), values, group: "kernel",
                                           name: name, shape: shape, deviceMilliseconds: milliseconds)
            case .floats(let values):
                return CheckResult.compare(try device.readFloats(actual.tensor), values, group: "kernel",
                                           name: name, shape: shape, tolerance: actual.tolerance ?? tolerance, deviceMilliseconds: milliseconds)
            }
        }
    }
}

/// The deterministic inputs of the cases (and of the tests): the same values on every machine and run.
public enum CheckInputs {
    /// Floats in [−1, 1) from a xorshift stream.
    public static func uniform(_ count: Int, seed: UInt64) -> [Float] {
        var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        return (0..<count).map { _ in
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            return Float(state >> 40) / Float(1 << 24) * 2 - 1
        }
    }

    /// Integers in `range`.
    public static func integers(_ count: Int, in range: Range<Int>, seed: UInt64) -> [Int32] {
        uniform(count, seed: seed).map { Int32(range.lowerBound + min(range.count - 1, Int(($0 + 1) / 2 * Float(range.count)))) }
    }

    /// `count` NaNs: an output that starts as NaN must be overwritten, or the comparison fails.
    public static func nan(_ count: Int) -> [Float] { [Float](repeating: .nan, count: count) }

    /// A random CSR matrix with sorted, unique columns per row (as `CSRMatrix` stores them), about `density` full;
    /// row 0 is empty and, when `fullRow`, row 1 holds every column.
    public static func csr(rows: Int, columns: Int, density: Float, seed: UInt64, fullRow: Bool = false) -> (pointers: [Int32], columns: [Int32]) {
        var pointers: [Int32] = [0], indices: [Int32] = []
        let u = uniform(rows * columns, seed: seed)
        for r in 0..<rows {
            for c in 0..<columns where r != 0 && ((fullRow && r == 1) || (u[r * columns + c] + 1) / 2 < density) {
                indices.append(Int32(c))
            }
            pointers.append(Int32(indices.count))
        }
        return (pointers, indices)
    }

    /// `csr` uploaded (an empty matrix still gets one column index, as OpenCL needs a non-empty buffer).
    public static func deviceCSR(_ be: any Backend, _ csr: (pointers: [Int32], columns: [Int32]), columns: Int) throws -> DeviceCSR {
        DeviceCSR(rowPointers: try be.tensor(csr.pointers, shape: [csr.pointers.count]),
                  columnIndices: try be.tensor(csr.columns.isEmpty ? [0] : csr.columns, shape: [max(csr.columns.count, 1)]),
                  rows: csr.pointers.count - 1, columns: columns)
    }
}

extension Tolerance {
    /// A bound on the relative rounding drift of a float32 sum of n terms: 4·ε·√n (ε = 2⁻²³), a few standard deviations
    /// of a left-to-right sum's random-walk error (work-group trees drift less). The worst case, n·ε, is never approached by
    /// random inputs; a lost or doubled block of terms shows far above it.
    public static func summationDrift(terms n: Int) -> Double { 4 * Double(Float.ulpOfOne) * Double(max(n, 1)).squareRoot() }

    /// The linear layer's and matmul's: |device − reference| ≤ 1e-4·|reference| + 2e-5·√K·P, K the inner dimension, P a
    /// bound on one product (`scale`·1 for inputs in [−1, 1]). Both add the same K float32 products in different orders;
    /// with random signs the rounding errors add up like u·K·P ≤ 6e-6·√K·P for K ≤ 10⁴ (u = 2⁻²⁴), a third of the
    /// absolute term. A wrong, lost or doubled product (about P/3) fails for every K < 10⁷.
    public static func products(inner k: Int, scale: Double = 1) -> Tolerance {
        Tolerance(absolute: 2e-5 * Double(max(k, 1)).squareRoot() * max(scale, 1), relative: 1e-4)
    }

    /// Where a test bounds each backend's error against an exact (Float64) value, the two backends differ by at most twice that.
    func doubled() -> Tolerance { Tolerance(absolute: 2 * absolute, relative: 2 * relative) }
}
