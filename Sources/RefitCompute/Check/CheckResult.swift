import Foundation

/// How close a device's result must come to the CPU reference's: |device − reference| ≤ absolute + relative·|reference|
/// elementwise. `exact` is bit-for-bit (the Philox streams, integer outputs such as top-K indices).
public struct Tolerance: Sendable, Codable, Equatable, CustomStringConvertible {
    public var absolute: Double
    public var relative: Double

    public init(absolute: Double, relative: Double) {
        self.absolute = absolute
        self.relative = relative
    }

    public static let exact = Tolerance(absolute: 0, relative: 0)

    public var isExact: Bool { absolute == 0 && relative == 0 }
    public var description: String { isExact ? "exact" : String(format: "%.0e + %.0e·|x|", absolute, relative) }
}

/// One row of `refit check`: one computation (a kernel on one shape, or a few steps of a whole model) run on the device
/// under test and on the CPU reference from the same inputs, and compared.
public struct CheckResult: Sendable, Codable {
    /// "kernel" or "model".
    public var group: String
    /// What ran, e.g. "matmul Aᵀ·B" or "DiffRec training steps".
    public var name: String
    /// The shape in words, e.g. "7×33 · 33×257", or the parameter compared for a model ("in_layers.0.weight").
    public var shape: String
    public var maxAbsoluteError: Double
    /// max |device − reference| / max(|reference|, tiny): reported beside the tolerance, which decides.
    public var maxRelativeError: Double
    public var tolerance: Tolerance
    public var passed: Bool
    /// The device's time for the computation, after a warm-up run; nil where it is not measured.
    public var deviceMilliseconds: Double?
    /// Why it failed, in words (the worst element and its two values), or nil.
    public var detail: String?

    public init(group: String, name: String, shape: String, maxAbsoluteError: Double, maxRelativeError: Double,
                tolerance: Tolerance, passed: Bool, deviceMilliseconds: Double? = nil, detail: String? = nil) {
        (self.group, self.name, self.shape) = (group, name, shape)
        (self.maxAbsoluteError, self.maxRelativeError, self.tolerance, self.passed) = (maxAbsoluteError, maxRelativeError, tolerance, passed)
        (self.deviceMilliseconds, self.detail) = (deviceMilliseconds, detail)
    }

    /// Compares a device's floats with the reference's under `tolerance`: NaN on one side only, a count mismatch or an
    /// element outside the tolerance fails, and the worst element is named.
    public static func compare(_ device: [Float], _ reference: [Float], group: String, name: String, shape: String,
                               tolerance: Tolerance, deviceMilliseconds: Double? = nil) -> CheckResult {
        guard device.count == reference.count else {
            return CheckResult(group: group, name: name, shape: shape, maxAbsoluteError: .infinity, maxRelativeError: .infinity,
                               tolerance: tolerance, passed: false, deviceMilliseconds: deviceMilliseconds,
                               detail: "\(device.count) elements on the device, \(reference.count) on the reference")
        }
        var maxAbsolute = 0.0, maxRelative = 0.0, worst: Int? = nil, worstExcess = 0.0
        for i in device.indices {
            let d = Double(device[i]), r = Double(reference[i])
            if d.isNaN != r.isNaN {
                maxAbsolute = .infinity
                if worst == nil || worstExcess < .infinity { (worst, worstExcess) = (i, .infinity) }
                continue
            }
            if d.isNaN { continue }
            let error = d == r ? 0 : abs(d - r)
            maxAbsolute = max(maxAbsolute, error)
            maxRelative = max(maxRelative, error / max(abs(r), 1e-30))
            // Exact means the same bits (so +0 and −0 differ); the error is still reported as the distance.
            let bitsDiffer = tolerance.isExact && device[i].bitPattern != reference[i].bitPattern
            let excess = bitsDiffer ? max(error, .leastNonzeroMagnitude) : error - (tolerance.absolute + tolerance.relative * abs(r))
            if excess > 0 && excess > worstExcess { (worst, worstExcess) = (i, excess) }
        }
        let detail = worst.map { "element \($0): \(device[$0]) on the device, \(reference[$0]) on the reference" }
        return CheckResult(group: group, name: name, shape: shape, maxAbsoluteError: maxAbsolute, maxRelativeError: maxRelative,
                           tolerance: tolerance, passed: worst == nil, deviceMilliseconds: deviceMilliseconds, detail: detail)
    }

    /// Integers (indices) compare exactly.
    public static func compare(_ device: [Int32], _ reference: [Int32], group: String, name: String, shape: String,
                               deviceMilliseconds: Double? = nil) -> CheckResult {
        let mismatch = device.count != reference.count ? 0 : device.indices.first { device[$0] != reference[$0] }
        let detail = device.count != reference.count ? "\(device.count) elements on the device, \(reference.count) on the reference"
            : mismatch.map { "element \($0): \(device[$0]) on the device, \(reference[$0]) on the reference" }
        return CheckResult(group: group, name: name, shape: shape, maxAbsoluteError: detail == nil ? 0 : .infinity,
                           maxRelativeError: detail == nil ? 0 : .infinity, tolerance: .exact, passed: detail == nil,
                           deviceMilliseconds: deviceMilliseconds, detail: detail)
    }
}
