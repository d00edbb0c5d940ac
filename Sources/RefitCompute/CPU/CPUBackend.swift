import Foundation

/// Host memory for the CPU reference. A view points into its parent's allocation and keeps the parent alive.
public final class HostBuffer: @unchecked Sendable {
    let base: UnsafeMutablePointer<Float>
    let count: Int
    private let owner: HostBuffer?

    init(count: Int) {
        base = .allocate(capacity: max(count, 1))
        base.initialize(repeating: 0, count: max(count, 1))
        self.count = count
        owner = nil
    }

    init(viewOf parent: HostBuffer, offset: Int, count: Int) {
        base = parent.base + offset
        self.count = count
        owner = parent
    }

    deinit { if owner == nil { base.deallocate() } }
}

/// The reference backend: every operation in plain Swift loops, written to be obviously correct, in the spirit
/// of llm.c's `train_gpt2.c`. Tests compare each OpenCL kernel to it; it is also a device of last resort.
/// Int32 tensors share the float storage through bit casts (both are 4 bytes).
public final class CPUBackend: Backend, @unchecked Sendable {
    public init() {}

    public var deviceDescription: String { "CPU reference (plain Swift)" }
    public var viewAlignment: Int { 1 }

    @inline(__always) func floats(_ t: Tensor) -> UnsafeMutablePointer<Float> {
        guard let buffer = t.storage as? HostBuffer else { preconditionFailure("\(t) does not live on the CPU backend") }
        precondition(t.elementType == .float32, "\(t) is not float32")
        return buffer.base
    }

    @inline(__always) func ints(_ t: Tensor) -> UnsafeMutablePointer<Int32> {
        guard let buffer = t.storage as? HostBuffer else { preconditionFailure("\(t) does not live on the CPU backend") }
        precondition(t.elementType == .int32, "\(t) is not int32")
        return UnsafeMutableRawPointer(buffer.base).assumingMemoryBound(to: Int32.self)
    }

    // MARK: Memory

    public func makeTensor(_ shape: [Int], _ elementType: ElementType) throws -> Tensor {
        Tensor(shape: shape, elementType: elementType, storage: HostBuffer(count: shape.reduce(1, *)))
    }

    public func view(_ parent: Tensor, offset: Int, shape: [Int]) -> Tensor {
        let count = shape.reduce(1, *)
        precondition(offset >= 0 && offset + count <= parent.count, "view out of bounds")
        let buffer = HostBuffer(viewOf: parent.storage as! HostBuffer, offset: offset, count: count)
        return Tensor(shape: shape, elementType: parent.elementType, storage: buffer)
    }

    public func write(_ values: [Float], to tensor: Tensor) {
        precondition(values.count == tensor.count, "writing \(values.count) values into \(tensor)")
        floats(tensor).update(from: values, count: values.count)
    }

    public func write(_ values: [Int32], to tensor: Tensor) {
        precondition(values.count == tensor.count, "writing \(values.count) values into \(tensor)")
        ints(tensor).update(from: values, count: values.count)
    }

    public func readFloats(_ tensor: Tensor) throws -> [Float] {
        Array(UnsafeBufferPointer(start: floats(tensor), count: tensor.count))
    }

    public func readInt32s(_ tensor: Tensor) throws -> [Int32] {
        Array(UnsafeBufferPointer(start: ints(tensor), count: tensor.count))
    }

    public func fill(_ tensor: Tensor, with value: Float) {
        let bits = tensor.elementType == .int32 ? Float(bitPattern: UInt32(bitPattern: Int32(value))) : value
        (tensor.storage as! HostBuffer).base.update(repeating: bits, count: tensor.count)
    }

    public func copy(_ source: Tensor, to destination: Tensor) {
        precondition(source.count == destination.count && source.elementType == destination.elementType)
        (destination.storage as! HostBuffer).base.update(from: (source.storage as! HostBuffer).base, count: source.count)
    }

    public func synchronize() throws {}

    // MARK: Linear layers

    public func linearForward(x: Tensor, weight: Tensor, bias: Tensor?, activation: Activation, into y: Tensor) {
        let (batch, inputs, outputs) = (x.rows, x.columns, weight.rows)
        precondition(weight.columns == inputs && y.rows == batch && y.columns == outputs, "linearForward shapes")
        let xp = floats(x), wp = floats(weight), yp = floats(y)
        let bp = bias.map(floats)
        for r in 0..<batch {
            for n in 0..<outputs {
                var acc: Float = 0
                for k in 0..<inputs { acc += xp[r * inputs + k] * wp[n * inputs + k] }
                if let bp { acc += bp[n] }
                yp[r * outputs + n] = activation == .tanh ? Foundation.tanh(acc) : acc
            }
        }
    }

    public func activationBackward(dY: Tensor, y: Tensor, activation: Activation, into dPre: Tensor) {
        let d = floats(dY), yp = floats(y), out = floats(dPre)
        for i in 0..<dY.count {
            out[i] = activation == .tanh ? d[i] * (1 - yp[i] * yp[i]) : d[i]
        }
    }

    public func matmul(_ a: Tensor, transposeA: Bool, _ b: Tensor, transposeB: Bool, into c: Tensor, alpha: Float, beta: Float,
                       bias: Tensor?) {
        let m = transposeA ? a.columns : a.rows
        let k = transposeA ? a.rows : a.columns
        let n = transposeB ? b.rows : b.columns
        precondition((transposeB ? b.columns : b.rows) == k && c.rows == m && c.columns == n, "matmul shapes")
        precondition(bias.map { $0.count == n } ?? true, "matmul: bias must hold \(n) values")
        let ap = floats(a), bp = floats(b), cp = floats(c), biasp = bias.map(floats)
        for i in 0..<m {
            for j in 0..<n {
                var acc: Float = 0
                for p in 0..<k {
                    let av = transposeA ? ap[p * m + i] : ap[i * k + p]
                    let bv = transposeB ? bp[j * k + p] : bp[p * n + j]
                    acc += av * bv
                }
                cp[i * n + j] = alpha * acc + (beta == 0 ? 0 : beta * cp[i * n + j]) + (biasp?[j] ?? 0)
            }
        }
    }

    public func sumColumns(_ x: Tensor, into y: Tensor, beta: Float) {
        let (rows, columns) = (x.rows, x.columns)
        precondition(y.count == columns)
        let xp = floats(x), yp = floats(y)
        for c in 0..<columns {
            var acc: Float = 0
            for r in 0..<rows { acc += xp[r * columns + c] }
            yp[c] = (beta == 0 ? 0 : beta * yp[c]) + acc
        }
    }

    // MARK: Element-wise

    private func elementwise(_ out: Tensor, _ inputs: Tensor..., body: (Int) -> Float) {
        for t in inputs { precondition(t.count == out.count, "element-wise shapes differ: \(t) vs \(out)") }
        let o = floats(out)
        for i in 0..<out.count { o[i] = body(i) }
    }

    public func add(_ a: Tensor, _ b: Tensor, into c: Tensor) {
        let ap = floats(a), bp = floats(b)
        elementwise(c, a, b) { ap[$0] + bp[$0] }
    }

    public func multiply(_ a: Tensor, _ b: Tensor, into c: Tensor) {
        let ap = floats(a), bp = floats(b)
        elementwise(c, a, b) { ap[$0] * bp[$0] }
    }

    public func axpy(_ alpha: Float, _ x: Tensor, _ y: Tensor) {
        let xp = floats(x), yp = floats(y)
        elementwise(y, x) { yp[$0] + alpha * xp[$0] }
    }

    public func scale(_ x: Tensor, by alpha: Float) {
        let xp = floats(x)
        elementwise(x) { xp[$0] * alpha }
    }

    public func tanh(_ x: Tensor, into y: Tensor) {
        let xp = floats(x)
        elementwise(y, x) { Foundation.tanh(xp[$0]) }
    }

    public func dropout(_ x: Tensor, probability: Float, seed: UInt64, offset: UInt64, into y: Tensor) {
        precondition(probability >= 0 && probability < 1, "dropout probability \(probability) is not in [0, 1)")
        let xp = floats(x)
        let keepScale = 1 / (1 - probability)
        elementwise(y, x) { i in
            Philox.uniform(seed: seed, index: offset &+ UInt64(i)) >= probability ? xp[i] * keepScale : 0
        }
    }

    public func copyColumns(_ source: Tensor, sourceColumn: Int, into destination: Tensor, destinationColumn: Int, width: Int) {
        precondition(source.rows == destination.rows, "copyColumns: row counts differ")
        precondition(sourceColumn + width <= source.columns && destinationColumn + width <= destination.columns)
        let s = floats(source), d = floats(destination)
        for r in 0..<source.rows {
            for c in 0..<width {
                d[r * destination.columns + destinationColumn + c] = s[r * source.columns + sourceColumn + c]
            }
        }
    }

    public func combineRows(_ x: Tensor, scaledBy xScale: Tensor, _ y: Tensor, scaledBy yScale: Tensor, into z: Tensor) {
        precondition(xScale.count == z.rows && yScale.count == z.rows, "combineRows: one scale per row")
        let xp = floats(x), yp = floats(y), a = floats(xScale), b = floats(yScale)
        let columns = z.columns
        elementwise(z, x, y) { i in a[i / columns] * xp[i] + b[i / columns] * yp[i] }
    }

    // MARK: Reductions

    public func sumRows(_ x: Tensor, into y: Tensor) {
        precondition(y.count == x.rows)
        let xp = floats(x), yp = floats(y)
        for r in 0..<x.rows {
            var acc: Float = 0
            for c in 0..<x.columns { acc += xp[r * x.columns + c] }
            yp[r] = acc
        }
    }

    public func sum(_ x: Tensor, into result: Tensor) {
        let xp = floats(x)
        var acc: Double = 0
        for i in 0..<x.count { acc += Double(xp[i]) }
        floats(result)[0] = Float(acc)
    }

    public func sumOfSquares(_ x: Tensor, into result: Tensor) {
        let xp = floats(x)
        var acc: Double = 0
        for i in 0..<x.count { acc += Double(xp[i]) * Double(xp[i]) }
        floats(result)[0] = Float(acc)
    }

    public func logSoftmaxRows(_ x: Tensor, into y: Tensor) { softmaxRows(x, into: y, logarithm: true) }

    public func softmaxRows(_ x: Tensor, into y: Tensor) { softmaxRows(x, into: y, logarithm: false) }

    private func softmaxRows(_ x: Tensor, into y: Tensor, logarithm: Bool) {
        precondition(x.count == y.count)
        let xp = floats(x), yp = floats(y)
        let columns = x.columns
        for r in 0..<x.rows {
            let row = xp + r * columns
            var maximum = -Float.infinity
            for c in 0..<columns { maximum = max(maximum, row[c]) }
            var total: Float = 0
            for c in 0..<columns { total += Foundation.exp(row[c] - maximum) }
            // (x − max) − log Σ, not x − (max + log Σ): the sum max + log Σ would round to the spacing of max
            // (4e-6 at 80), swamping log-probabilities near 0.
            let logTotal = Foundation.log(total)
            for c in 0..<columns {
                let logp = (row[c] - maximum) - logTotal
                yp[r * columns + c] = logarithm ? logp : Foundation.exp(logp)
            }
        }
    }

    // MARK: Random numbers

    public func fillUniform(_ tensor: Tensor, seed: UInt64, offset: UInt64) {
        elementwise(tensor) { Philox.uniform(seed: seed, index: offset &+ UInt64($0)) }
    }

    public func fillNormal(_ tensor: Tensor, seed: UInt64, offset: UInt64) {
        elementwise(tensor) { Philox.normal(seed: seed, index: offset &+ UInt64($0)) }
    }

    // MARK: Diffusion

    public func gather(_ table: Tensor, indices: Tensor, into y: Tensor) {
        precondition(indices.count == y.count)
        let tp = floats(table), ip = ints(indices)
        elementwise(y) { i in
            let index = Int(ip[i])
            precondition(index >= 0 && index < table.count, "gather index \(index) out of range")
            return tp[index]
        }
    }

    public func timestepEmbedding(_ timesteps: Tensor, into y: Tensor) {
        precondition(y.rows == timesteps.count && y.columns % 2 == 0, "timestepEmbedding shapes")
        let half = y.columns / 2
        let tp = ints(timesteps), yp = floats(y)
        for r in 0..<y.rows {
            for j in 0..<half {
                let frequency = Foundation.exp(-Foundation.log(Float(10000)) * Float(j) / Float(half))
                let angle = Float(tp[r]) * frequency
                yp[r * y.columns + j] = Foundation.cos(angle)
                yp[r * y.columns + half + j] = Foundation.sin(angle)
            }
        }
    }

    public func gaussianLogProbability(_ x: Tensor, mean: Tensor, logStd: Tensor, into logp: Tensor) {
        precondition(x.count == mean.count && logStd.count == x.rows && logp.count == x.rows)
        let xp = floats(x), mp = floats(mean), sp = floats(logStd), out = floats(logp)
        let columns = x.columns
        for r in 0..<x.rows {
            // Standardise before squaring: σ can be ~1e-3, and (x−μ)²/σ² is better formed as ((x−μ)·σ⁻¹)².
            let inverseStd = Foundation.exp(-sp[r])
            var acc: Float = 0
            for c in 0..<columns {
                let z = (xp[r * columns + c] - mp[r * columns + c]) * inverseStd
                acc += z * z
            }
            out[r] = -0.5 * acc / Float(columns) - 0.918938533 - sp[r]
        }
    }

    public func gaussianLogProbabilityBackward(_ x: Tensor, mean: Tensor, logStd: Tensor, dLogp: Tensor, into dMean: Tensor) {
        let xp = floats(x), mp = floats(mean), sp = floats(logStd), g = floats(dLogp)
        let columns = x.columns
        elementwise(dMean, x, mean) { i in
            let r = i / columns
            let inverseStd = Foundation.exp(-sp[r])
            return g[r] * (xp[i] - mp[i]) * inverseStd * inverseStd / Float(columns)
        }
    }

    public func squaredErrorRows(_ prediction: Tensor, _ target: Tensor, into loss: Tensor) {
        precondition(prediction.count == target.count && loss.count == prediction.rows)
        let pp = floats(prediction), tp = floats(target), out = floats(loss)
        let columns = prediction.columns
        for r in 0..<prediction.rows {
            var acc: Float = 0
            for c in 0..<columns {
                let d = pp[r * columns + c] - tp[r * columns + c]
                acc += d * d
            }
            out[r] = acc / Float(columns)
        }
    }

    public func squaredErrorBackward(_ prediction: Tensor, _ target: Tensor, rowWeights: Tensor, into dPrediction: Tensor) {
        let pp = floats(prediction), tp = floats(target), w = floats(rowWeights)
        let columns = prediction.columns
        elementwise(dPrediction, prediction, target) { i in
            w[i / columns] * 2 * (pp[i] - tp[i]) / Float(columns)
        }
    }

    // MARK: Optimisation

    public func adamW(parameters: Tensor, gradients: Tensor, m: Tensor, v: Tensor, step: AdamWStep) {
        precondition(gradients.count == parameters.count && m.count == parameters.count && v.count == parameters.count)
        let p = floats(parameters), g = floats(gradients), mp = floats(m), vp = floats(v)
        let correction1 = 1 - Foundation.pow(step.beta1, Float(step.step))
        let correction2 = 1 - Foundation.pow(step.beta2, Float(step.step))
        let stepSize = step.learningRate / correction1
        let correction2Root = correction2.squareRoot()
        for i in 0..<parameters.count {
            p[i] *= 1 - step.learningRate * step.weightDecay
            mp[i] = step.beta1 * mp[i] + (1 - step.beta1) * g[i]
            vp[i] = step.beta2 * vp[i] + (1 - step.beta2) * g[i] * g[i]
            p[i] -= stepSize * mp[i] / (vp[i].squareRoot() / correction2Root + step.epsilon)
        }
    }

    // MARK: Ranking

    public func densifyRows(_ matrix: DeviceCSR, rows: Tensor, into dense: Tensor) {
        precondition(dense.rows == rows.count && dense.columns == matrix.columns, "densifyRows shapes")
        let pointers = ints(matrix.rowPointers), columns = ints(matrix.columnIndices), rp = ints(rows)
        let values = matrix.values.map { floats($0) }
        let d = floats(dense)
        d.update(repeating: 0, count: dense.count)
        for r in 0..<rows.count {
            let row = Int(rp[r])
            for e in Int(pointers[row])..<Int(pointers[row + 1]) { d[r * dense.columns + Int(columns[e])] = values?[e] ?? 1 }
        }
    }

    public func topK(_ scores: Tensor, k: Int, mask: RowMask?, indices: Tensor, values: Tensor) {
        let (batch, n) = (scores.rows, scores.columns)
        precondition(indices.rows == batch && indices.columns == k && values.rows == batch && values.columns == k, "topK shapes")
        let sp = floats(scores), ip = ints(indices), vp = floats(values)
        var masked = [Bool](repeating: false, count: n)
        for r in 0..<batch {
            for c in 0..<n { masked[c] = false }
            switch mask {
            case .sparse(let matrix, let rows):
                let pointers = ints(matrix.rowPointers), columns = ints(matrix.columnIndices)
                let row = Int(ints(rows)[r])
                for e in Int(pointers[row])..<Int(pointers[row + 1]) { masked[Int(columns[e])] = true }
            case .dense(let dense):
                let dp = floats(dense)
                for c in 0..<n where dp[r * n + c] != 0 { masked[c] = true }
            case nil:
                break
            }
            let candidates = (0..<n).filter { !masked[$0] && sp[r * n + $0] > -.infinity }
            // Descending by score; ties to the lower column (the stable order of `candidates`).
            let best = candidates.sorted { sp[r * n + $0] > sp[r * n + $1] || (sp[r * n + $0] == sp[r * n + $1] && $0 < $1) }
            for j in 0..<k {
                if j < best.count {
                    ip[r * k + j] = Int32(best[j])
                    vp[r * k + j] = sp[r * n + best[j]]
                } else {
                    ip[r * k + j] = -1
                    vp[r * k + j] = -.infinity
                }
            }
        }
    }
}
