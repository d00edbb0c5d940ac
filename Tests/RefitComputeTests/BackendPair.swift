import RefitCompute
import Testing
import Foundation

/// The OpenCL backend under test and the CPU reference it is compared to.
/// Tests run in parallel; OpenCL discovery happens once behind `OpenCLRuntime.discovery` (PoCL needs that).
struct BackendPair {
    let device: any Backend
    let reference = CPUBackend()

    /// nil (and a printed note) when the machine has no OpenCL device: the comparison tests then have nothing to test.
    static func make() throws -> BackendPair? {
        guard let info = DeviceSelection.automaticDevice else {
            print("note: no OpenCL device; skipping an OpenCL-vs-reference comparison")
            return nil
        }
        return BackendPair(device: try OpenCLBackend(device: info))
    }

    /// Uploads the same values to both backends.
    func tensors(_ values: [Float], _ shape: [Int]) throws -> (Tensor, Tensor) {
        (try device.tensor(values, shape: shape), try reference.tensor(values, shape: shape))
    }

    func tensors(_ values: [Int32], _ shape: [Int]) throws -> (Tensor, Tensor) {
        (try device.tensor(values, shape: shape), try reference.tensor(values, shape: shape))
    }

    func zeros(_ shape: [Int], _ type: ElementType = .float32) throws -> (Tensor, Tensor) {
        (try device.makeTensor(shape, type), try reference.makeTensor(shape, type))
    }
}

/// Deterministic test inputs in [-1, 1): the kernel cases' own.
func randomValues(_ count: Int, seed: UInt64) -> [Float] { CheckInputs.uniform(count, seed: seed) }

/// Asserts |a − b| ≤ absolute + relative·|b| elementwise, naming the worst element.
func expectClose(_ a: [Float], _ b: [Float], absolute: Float = 1e-5, relative: Float = 1e-4,
                 _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(a.count == b.count, "\(what): \(a.count) vs \(b.count) elements", sourceLocation: sourceLocation)
    var worst = 0, worstExcess: Float = -.infinity
    for i in 0..<min(a.count, b.count) {
        let excess = abs(a[i] - b[i]) - (absolute + relative * abs(b[i]))
        if excess > worstExcess || a[i].isNaN != b[i].isNaN { worst = i; worstExcess = a[i].isNaN != b[i].isNaN ? .infinity : excess }
    }
    if a.count == b.count, !a.isEmpty {
        #expect(worstExcess <= 0, "\(what): element \(worst) differs: \(a[worst]) vs \(b[worst])", sourceLocation: sourceLocation)
    }
}
