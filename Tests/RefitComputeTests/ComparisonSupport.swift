@testable import RefitCompute
import Testing

/// Shapes every row-wise comparison runs on: 1, 7, 33 and 257 (and DiffRec's 2810 items) on either side, none a
/// multiple of a tile or work-group size except by accident of being 1.
let rowShapes: [(rows: Int, columns: Int)] = [(1, 1), (1, 7), (7, 1), (7, 33), (33, 7), (33, 257), (257, 33), (3, 2810), (5, 4099)]

/// Element counts for the element-wise comparisons.
let elementCounts = [1, 7, 33, 257, 4099, 100_003]

extension BackendPair {
    /// Runs the same computation on the device and on the reference.
    func both<T>(_ body: (any Backend) throws -> T) rethrows -> (device: T, reference: T) {
        (try body(device), try body(reference))
    }

    /// The device backend and, when the device is not a GPU, a second backend on it that runs the reduction and
    /// selection kernels in the work-group shapes chosen for GPUs: PoCL then tests the code paths a GPU takes.
    /// Each comes with a label for messages.
    func deviceVariants() throws -> [(label: String, backend: any Backend)] {
        guard let openCL = device as? OpenCLBackend, !openCL.deviceInfo.isGPU else { return [("", device)] }
        let gpuShaped = try OpenCLBackend(device: openCL.deviceInfo)
        gpuShaped.groups = .gpu(localMemoryBytes: openCL.deviceInfo.localMemoryBytes)
        return [("", device), (" [GPU work-groups]", gpuShaped)]
    }

    /// `deviceVariants()` and the reference, labelled.
    func allBackends() throws -> [(label: String, backend: any Backend)] {
        try deviceVariants() + [(" [reference]", reference)]
    }
}

/// A bound on the relative rounding drift of a float32 sum of n terms: 4·ε·√n (ε = 2⁻²³), a few standard deviations
/// of a left-to-right sum's random-walk error (work-group trees drift less). The worst case, n·ε, is never approached by
/// the random inputs here; a lost or doubled block of terms shows far above it.
func summationTolerance(_ n: Int) -> Double { 4 * Double(Float.ulpOfOne) * Double(max(n, 1)).squareRoot() }

/// Deterministic integers in `range`.
func randomInts(_ count: Int, in range: Range<Int>, seed: UInt64) -> [Int32] {
    randomValues(count, seed: seed).map { Int32(range.lowerBound + min(range.count - 1, Int(($0 + 1) / 2 * Float(range.count)))) }
}

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
