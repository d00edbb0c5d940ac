import RefitCompute

/// A model's parameters, gradients and AdamW moments, each in ONE device buffer with a named view per tensor.
///
/// One buffer means one upload, one zeroing of the gradients, one AdamW launch and one gradient-norm reduction
/// per step, whatever the number of layers. Views start at offsets aligned for OpenCL sub-buffers; the padding
/// between them stays zero (zero gradient, zero moments, so AdamW leaves it at zero).
public final class ParameterStore: @unchecked Sendable {
    public struct Entry: Sendable {
        public let name: String
        public let shape: [Int]
        public let offset: Int
        public var count: Int { shape.reduce(1, *) }
    }

    public let backend: any Backend
    public let entries: [Entry]
    public let values: Tensor
    public let gradients: Tensor
    public let firstMoments: Tensor
    public let secondMoments: Tensor
    private let valueViews: [String: Tensor]
    private let gradientViews: [String: Tensor]
    /// Updates applied so far (AdamW's t).
    public var step = 0

    /// - Parameter layout: (name, shape) in storage order; names follow the PyTorch state dict.
    public init(backend: any Backend, layout: [(String, [Int])]) throws {
        self.backend = backend
        let alignment = max(backend.viewAlignment, 64)
        var entries: [Entry] = []
        var offset = 0
        for (name, shape) in layout {
            entries.append(Entry(name: name, shape: shape, offset: offset))
            offset += (shape.reduce(1, *) + alignment - 1) / alignment * alignment
        }
        self.entries = entries
        values = try backend.makeTensor([offset], .float32)
        gradients = try backend.makeTensor([offset], .float32)
        firstMoments = try backend.makeTensor([offset], .float32)
        secondMoments = try backend.makeTensor([offset], .float32)
        var valueViews: [String: Tensor] = [:], gradientViews: [String: Tensor] = [:]
        for entry in entries {
            valueViews[entry.name] = backend.view(values, offset: entry.offset, shape: entry.shape)
            gradientViews[entry.name] = backend.view(gradients, offset: entry.offset, shape: entry.shape)
        }
        self.valueViews = valueViews
        self.gradientViews = gradientViews
    }

    /// Number of scalar parameters (without padding).
    public var parameterCount: Int { entries.reduce(0) { $0 + $1.count } }

    public func value(_ name: String) -> Tensor {
        guard let t = valueViews[name] else { preconditionFailure("no parameter named \(name)") }
        return t
    }

    public func gradient(_ name: String) -> Tensor {
        guard let t = gradientViews[name] else { preconditionFailure("no parameter named \(name)") }
        return t
    }

    public func zeroGradients() { backend.fill(gradients, with: 0) }

    /// Clips the global gradient norm to `maxNorm` (when given) and applies one AdamW update.
    /// Returns the norm before clipping, or nil when there is no clipping (which then costs no device read).
    @discardableResult
    public func applyAdamW(learningRate: Float, weightDecay: Float, maxGradientNorm: Float?, scratch: Tensor) throws -> Float? {
        var norm: Float? = nil
        if let maxGradientNorm {
            backend.sumOfSquares(gradients, into: scratch)
            let total = try backend.readScalar(scratch).squareRoot()
            if total > maxGradientNorm, total.isFinite { backend.scale(gradients, by: maxGradientNorm / (total + 1e-6)) }
            norm = total
        }
        step += 1
        backend.adamW(parameters: values, gradients: gradients, m: firstMoments, v: secondMoments,
                      step: AdamWStep(learningRate: learningRate, weightDecay: weightDecay, step: step))
        return norm
    }

    // MARK: Initialisation

    /// Sets every tensor, in layout order, to `std(name, shape)` × N(0, 1) drawn from the Philox stream of `seed`
    /// (element i of the whole layout at counter `start + i`), or to the constant `constant(name)` when that is
    /// not nil. Pure in (seed, layout), so every backend starts from the same weights.
    public func initialize(seed: UInt64, start: UInt64 = 0, constant: (String) -> Float? = { _ in nil },
                           std: (String, [Int]) -> Float) throws {
        var named: [String: (shape: [Int], values: [Float])] = [:]
        var position = start
        for entry in entries {
            let values: [Float]
            if let value = constant(entry.name) {
                values = [Float](repeating: value, count: entry.count)
            } else {
                let scale = std(entry.name, entry.shape)
                values = (0..<entry.count).map { Philox.normal(seed: seed, index: position + UInt64($0)) * scale }
            }
            named[entry.name] = (entry.shape, values)
            position += UInt64(entry.count)
        }
        try load(named, into: values)
    }

    /// Xavier-normal's std for a (fan_out, fan_in) weight: √(2/(fan_in + fan_out)).
    public static func xavierStd(_ shape: [Int]) -> Float { Float((2.0 / Double(shape[0] + shape[1])).squareRoot()) }

    // MARK: Host transfer (checkpoints)

    /// Every named tensor of `buffer` (values, or a moment buffer) as host arrays.
    public func namedTensors(of buffer: Tensor) throws -> [(name: String, shape: [Int], values: [Float])] {
        let all = try backend.readFloats(buffer)
        return entries.map { ($0.name, $0.shape, Array(all[$0.offset..<($0.offset + $0.count)])) }
    }

    /// Writes named host tensors into `buffer`; every entry must be present with its shape.
    public func load(_ tensors: [String: (shape: [Int], values: [Float])], into buffer: Tensor) throws(CheckpointError) {
        var all = [Float](repeating: 0, count: buffer.count)
        for entry in entries {
            guard let tensor = tensors[entry.name] else { throw .missingTensor(entry.name) }
            guard tensor.shape == entry.shape else {
                throw .shapeMismatch(entry.name, expected: entry.shape, found: tensor.shape)
            }
            all.replaceSubrange(entry.offset..<(entry.offset + entry.count), with: tensor.values)
        }
        backend.write(all, to: buffer)
    }
}
