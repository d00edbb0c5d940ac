@testable import RefitCompute
import Testing

/// Element counts of the memory tests.
let elementCounts = [1, 7, 33, 257, 4099, 100_003]

extension BackendPair {
    /// The device backend and, when the device is not a GPU, a second backend on it that runs the reduction and
    /// selection kernels in the work-group shapes chosen for GPUs, and the GPU linear kernels: PoCL then tests the code
    /// paths a GPU takes. Each comes with a label for messages.
    func deviceVariants() throws -> [(label: String, backend: any Backend)] {
        guard let openCL = device as? OpenCLBackend, !openCL.deviceInfo.isGPU else { return [("", device)] }
        let gpuShaped = try OpenCLBackend(device: openCL.deviceInfo)
        gpuShaped.parameters.groups = .gpu(localMemoryBytes: openCL.deviceInfo.localMemoryBytes)
        gpuShaped.linearFamily = .gpu
        return [("", device), (" [GPU work-groups]", gpuShaped)]
    }
}

/// `Tolerance.summationDrift`: the relative rounding drift of a float32 sum of n terms.
func summationTolerance(_ n: Int) -> Double { Tolerance.summationDrift(terms: n) }

/// Deterministic integers in `range`.
func randomInts(_ count: Int, in range: Range<Int>, seed: UInt64) -> [Int32] { CheckInputs.integers(count, in: range, seed: seed) }

/// Asserts exact (bitwise) equality, naming the first differing element.
func expectIdentical(_ a: [Float], _ b: [Float], _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(a.count == b.count, "\(what): \(a.count) vs \(b.count) elements", sourceLocation: sourceLocation)
    if let i = a.indices.first(where: { $0 < b.count && a[$0].bitPattern != b[$0].bitPattern }) {
        Issue.record("\(what): element \(i) differs: \(a[i]) vs \(b[i])", sourceLocation: sourceLocation)
    }
}

func expectIdentical(_ a: [Int32], _ b: [Int32], _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(a.count == b.count, "\(what): \(a.count) vs \(b.count) elements", sourceLocation: sourceLocation)
    if let i = a.indices.first(where: { $0 < b.count && a[$0] != b[$0] }) {
        Issue.record("\(what): element \(i) differs: \(a[i]) vs \(b[i])", sourceLocation: sourceLocation)
    }
}

/// Asserts |a − b| ≤ absolute + relative·|b| elementwise against a Float64 expectation, naming the worst element.
func expectClose(_ a: [Float], _ b: [Double], absolute: Double, relative: Double, _ what: String,
                 sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(a.count == b.count, "\(what): \(a.count) vs \(b.count) elements", sourceLocation: sourceLocation)
    var worst = -1, worstExcess = -Double.infinity
    for i in 0..<min(a.count, b.count) {
        let excess = a[i].isNaN ? .infinity : abs(Double(a[i]) - b[i]) - (absolute + relative * abs(b[i]))
        if excess > worstExcess { worst = i; worstExcess = excess }
    }
    if worst >= 0 {
        #expect(worstExcess <= 0, "\(what): element \(worst) is \(a[worst]), expected \(b[worst])", sourceLocation: sourceLocation)
    }
}
