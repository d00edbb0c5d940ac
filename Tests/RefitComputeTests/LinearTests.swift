import Foundation
@testable import RefitCompute
import Testing

/// The linear layer and the matrix products: OpenCL against the CPU reference, for both OpenCL kernel families (the
/// GPU family runs on a CPU device too: it is plain OpenCL C), and the layer's backward pass against finite
/// differences.
///
/// Tolerance: |device − reference| ≤ 1e-4·|reference| + 2e-5·√K·P, where K is the inner dimension and P bounds one
/// product |a·b| (1 for inputs in [-1, 1]). Both sides add the same K float32 products in different orders (the
/// reference left to right, the CPU kernel in blocks of 256 with fused multiply-adds, the GPU kernel in slices of 16).
/// Each addition rounds the running sum with relative error at most u = 2⁻²⁴; with random-sign inputs the running sum
/// stays near √K·P, and K independent rounding errors of that size add up like √K·(u·√K·P) = u·K·P. For K ≤ 10⁴,
/// u·K·P = (u·√K)·√K·P ≤ 6e-6·√K·P: a third of the absolute term, so the test holds with room for the worst of
/// millions of outputs; the relative term covers outputs whose size grew (bias, large sums). A wrong, lost or
/// doubled product is about P/3 — above 2e-5·√K·P for every K < 10⁷ — and fails; so does any edge or tile mistake.
@Suite struct LinearTests {
    /// (rows, inner, columns) of C: 1, 7, 33, 257 in every position, and non-multiples of the 12 × 32 (CPU) and
    /// 64 × 64 (GPU) tiles and of the 256-deep packed panel.
    static let shapes: [(m: Int, k: Int, n: Int)] = [
        (1, 1, 1), (1, 7, 33), (7, 33, 257), (257, 7, 33), (33, 257, 7), (12, 256, 32), (13, 257, 31), (65, 513, 97),
    ]

    static func tolerance(inner k: Int) -> Float { 2e-5 * Float(max(k, 1)).squareRoot() }

    /// The device with each kernel family, or nothing without OpenCL.
    static func devices() throws -> (pair: BackendPair, device: OpenCLBackend, families: [LinearTuning.Family])? {
        guard let pair = try BackendPair.make(), let device = pair.device as? OpenCLBackend else { return nil }
        return (pair, device, LinearTuning.Family.allCases)
    }

    /// The rows of a large output that the reference recomputes (it is a plain triple loop): both ends and the middle,
    /// which cross the row blocks and cover every column panel, including the partial last one.
    static func rowSlices(_ m: Int) -> [Range<Int>] {
        m <= 64 ? [0..<m] : [0..<13, m / 2 - 6..<m / 2 + 7, m - 13..<m]
    }

    // MARK: Forward

    @Test(arguments: shapes + [(400, 2820, 600)])
    func forwardMatchesReference(m: Int, k: Int, n: Int) throws {
        guard let (pair, device, families) = try Self.devices() else { return }
        let x = randomValues(m * k, seed: 11), w = randomValues(n * k, seed: 12), b = randomValues(n, seed: 13)
        let variants: [(Activation, Bool)] = [(.identity, false), (.identity, true), (.tanh, false), (.tanh, true)]
        let (xd, xr) = try pair.tensors(x, [m, k])
        let (wd, wr) = try pair.tensors(w, [n, k])
        let (bd, br) = try pair.tensors(b, [n])
        for (activation, withBias) in m * k * n > 10_000_000 ? [(.tanh, true)] : variants {
            let (yd, yr) = try pair.tensors([Float](repeating: .nan, count: m * n), [m, n])  // must be overwritten
            for slice in Self.rowSlices(m) {
                let reference = pair.reference
                reference.linearForward(x: reference.view(xr, offset: slice.lowerBound * k, shape: [slice.count, k]),
                                        weight: wr, bias: withBias ? br : nil, activation: activation,
                                        into: reference.view(yr, offset: slice.lowerBound * n, shape: [slice.count, n]))
            }
            let expected = try pair.reference.readFloats(yr)
            for family in families {
                device.gemm(xd, transposeA: false, wd, transposeB: true, into: yd, alpha: 1, beta: 0,
                            bias: withBias ? bd : nil, tanh: activation == .tanh, family: family)
                let actual = try device.readFloats(yd)
                for slice in Self.rowSlices(m) {
                    let elements = slice.lowerBound * n..<slice.upperBound * n
                    expectClose(Array(actual[elements]), Array(expected[elements]), absolute: Self.tolerance(inner: k), relative: 1e-4,
                                "\(family) forward \(m)×\(k)→\(n) \(activation)\(withBias ? " + bias" : ""), rows \(slice)")
                }
            }
        }
    }

    /// The public entry point, on whichever family the device picks.
    @Test func forwardThroughProtocol() throws {
        guard let pair = try BackendPair.make() else { return }
        let (m, k, n) = (33, 70, 45)
        let ((x, xr), (w, wr), (b, br)) = (try pair.tensors(randomValues(m * k, seed: 1), [m, k]),
                                          try pair.tensors(randomValues(n * k, seed: 2), [n, k]),
                                          try pair.tensors(randomValues(n, seed: 3), [n]))
        let (y, yr) = try pair.zeros([m, n])
        pair.device.linearForward(x: x, weight: w, bias: b, activation: .tanh, into: y)
        pair.reference.linearForward(x: xr, weight: wr, bias: br, activation: .tanh, into: yr)
        expectClose(try pair.device.readFloats(y), try pair.reference.readFloats(yr),
                    absolute: Self.tolerance(inner: k), relative: 1e-4, "linearForward \(pair.device.deviceDescription)")
    }

    // MARK: Matrix products

    static let scalings: [(alpha: Float, beta: Float)] = [(1, 0), (1, 1), (0.5, -2), (-1.5, 0)]

    @Test(arguments: shapes)
    func matmulMatchesReference(m: Int, k: Int, n: Int) throws {
        for transposeA in [false, true] {
            for transposeB in [false, true] {
                for (alpha, beta) in Self.scalings {
                    try compareMatmul(m: m, k: k, n: n, transposeA: transposeA, transposeB: transposeB, alpha: alpha, beta: beta)
                }
            }
        }
    }

    /// The layers' backward products at DiffRec's largest shapes: dX = dY'·W (NN) and dW += dY'ᵀ·X (TN, beta 1), the
    /// last one tall enough (2810 rows) for the CPU family to split its rows into blocks.
    @Test func backwardProductsAtDiffRecShape() throws {
        try compareMatmul(m: 400, k: 600, n: 2820, transposeA: false, transposeB: false, alpha: 1, beta: 0)
        try compareMatmul(m: 600, k: 400, n: 2820, transposeA: true, transposeB: false, alpha: 1, beta: 1)
        try compareMatmul(m: 2810, k: 400, n: 600, transposeA: true, transposeB: false, alpha: 1, beta: 1)
    }

    /// C = alpha·op(A)·op(B) + beta·C on the device with each family, against the reference on `rowSlices(m)`.
    /// C starts as NaN when beta is 0: it must not be read.
    func compareMatmul(m: Int, k: Int, n: Int, transposeA: Bool, transposeB: Bool, alpha: Float, beta: Float,
                       sourceLocation: SourceLocation = #_sourceLocation) throws {
        guard let (pair, device, families) = try Self.devices() else { return }
        let what = "matmul \(transposeA ? "T" : "N")\(transposeB ? "T" : "N") m \(m) k \(k) n \(n) α \(alpha) β \(beta)"
        let a = randomValues(m * k, seed: UInt64(m * 31 + k)), b = randomValues(k * n, seed: UInt64(n * 17 + k))
        let start = beta == 0 ? [Float](repeating: .nan, count: m * n) : randomValues(m * n, seed: 5)
        let ad = try device.tensor(a, shape: transposeA ? [k, m] : [m, k])
        let (bd, br) = try pair.tensors(b, transposeB ? [n, k] : [k, n])
        // The reference takes op(A) row by row: rows of op(A) are columns of a transposed A, so it gets A's transpose.
        let reference = pair.reference
        let ar = try reference.tensor(transposeA ? (0..<m * k).map { a[($0 % k) * m + $0 / k] } : a, shape: [m, k])
        let cr = try reference.tensor(start, shape: [m, n])
        for slice in Self.rowSlices(m) {
            reference.matmul(reference.view(ar, offset: slice.lowerBound * k, shape: [slice.count, k]), transposeA: false,
                             br, transposeB: transposeB,
                             into: reference.view(cr, offset: slice.lowerBound * n, shape: [slice.count, n]), alpha: alpha, beta: beta)
        }
        let expected = try reference.readFloats(cr)
        for family in families {
            let cd = try device.tensor(start, shape: [m, n])
            device.gemm(ad, transposeA: transposeA, bd, transposeB: transposeB, into: cd, alpha: alpha, beta: beta,
                        bias: nil, tanh: false, family: family)
            let actual = try device.readFloats(cd)
            for slice in Self.rowSlices(m) {
                let elements = slice.lowerBound * n..<slice.upperBound * n
                // |alpha| scales the products; beta·C adds at most |beta| to an output, which the relative term absorbs.
                expectClose(Array(actual[elements]), Array(expected[elements]), absolute: max(abs(alpha), 1) * Self.tolerance(inner: k),
                            relative: 1e-4, "\(family) \(what), rows \(slice)", sourceLocation: sourceLocation)
            }
        }
    }

    /// The public entry point, on whichever family the device picks.
    @Test func matmulThroughProtocol() throws {
        guard let pair = try BackendPair.make() else { return }
        let (m, k, n) = (45, 70, 33)
        let (a, ar) = try pair.tensors(randomValues(m * k, seed: 7), [k, m])
        let (b, br) = try pair.tensors(randomValues(k * n, seed: 8), [k, n])
        let (c, cr) = try pair.tensors(randomValues(m * n, seed: 9), [m, n])
        pair.device.matmul(a, transposeA: true, b, transposeB: false, into: c, alpha: 1, beta: 1)
        pair.reference.matmul(ar, transposeA: true, br, transposeB: false, into: cr, alpha: 1, beta: 1)
        expectClose(try pair.device.readFloats(c), try pair.reference.readFloats(cr),
                    absolute: Self.tolerance(inner: k), relative: 1e-4, "matmul TN \(pair.device.deviceDescription)")
    }

    /// An empty inner dimension leaves act(beta·C + bias), and empty outputs launch nothing.
    @Test func emptyDimensions() throws {
        guard let (_, device, families) = try Self.devices() else { return }
        for family in families {
            let a = try device.makeTensor([5, 0], .float32), b = try device.makeTensor([0, 3], .float32)
            let start = randomValues(15, seed: 4), bias = randomValues(3, seed: 6)
            let c = try device.tensor(start, shape: [5, 3])
            device.gemm(a, transposeA: false, b, transposeB: false, into: c, alpha: 1, beta: 0.5, bias: nil, tanh: false, family: family)
            expectClose(try device.readFloats(c), start.map { 0.5 * $0 }, absolute: 0, relative: 0, "\(family) K = 0")
            device.gemm(a, transposeA: false, b, transposeB: false, into: c, alpha: 1, beta: 2,
                        bias: try device.tensor(bias, shape: [3]), tanh: true, family: family)
            let expected = (0..<15).map { Foundation.tanh(Double(start[$0]) + Double(bias[$0 % 3])) }
            expectClose(try device.readFloats(c), expected, absolute: 1e-6, relative: 1e-5, "\(family) K = 0, bias, tanh")
            let x = try device.makeTensor([0, 4], .float32), w = try device.makeTensor([3, 4], .float32)
            device.gemm(x, transposeA: false, w, transposeB: true, into: try device.makeTensor([0, 3], .float32), alpha: 1, beta: 0,
                        bias: nil, tanh: true, family: family)
            try device.synchronize()
        }
    }

    // MARK: Backward

    /// `linearBackward` on a tiny tanh layer against central finite differences of L = Σ g ⊙ y, computed in Float64 on
    /// the host; the gradients accumulate into non-zero dW and db. Runs on the device (default family) and the reference.
    @Test func backwardMatchesFiniteDifferences() throws {
        let (batch, inputs, outputs) = (3, 4, 5)
        let x = randomValues(batch * inputs, seed: 21).map(Double.init)
        let w = randomValues(outputs * inputs, seed: 22).map(Double.init)
        let b = randomValues(outputs, seed: 23).map(Double.init)
        let g = randomValues(batch * outputs, seed: 24).map(Double.init)
        let dW0 = randomValues(outputs * inputs, seed: 25), dB0 = randomValues(outputs, seed: 26)

        func loss(_ x: [Double], _ w: [Double], _ b: [Double]) -> Double {
            var total = 0.0
            for r in 0..<batch {
                for n in 0..<outputs {
                    var pre = b[n]
                    for k in 0..<inputs { pre += x[r * inputs + k] * w[n * inputs + k] }
                    total += g[r * outputs + n] * Foundation.tanh(pre)
                }
            }
            return total
        }
        func numericGradient(_ values: [Double], _ evaluate: ([Double]) -> Double) -> [Double] {
            let h = 1e-6
            return values.indices.map { i in
                var plus = values, minus = values
                plus[i] += h
                minus[i] -= h
                return (evaluate(plus) - evaluate(minus)) / (2 * h)
            }
        }
        let dX = numericGradient(x) { loss($0, w, b) }
        let dW = numericGradient(w) { loss(x, $0, b) }
        let dB = numericGradient(b) { loss(x, w, $0) }

        var backends: [any Backend] = [CPUBackend()]
        if let pair = try BackendPair.make() { backends.append(pair.device) }
        for backend in backends {
            let name = backend.deviceDescription
            let xt = try backend.tensor(x.map(Float.init), shape: [batch, inputs])
            let wt = try backend.tensor(w.map(Float.init), shape: [outputs, inputs])
            let bt = try backend.tensor(b.map(Float.init), shape: [outputs])
            let y = try backend.makeTensor([batch, outputs], .float32)
            backend.linearForward(x: xt, weight: wt, bias: bt, activation: .tanh, into: y)
            let dY = try backend.tensor(g.map(Float.init), shape: [batch, outputs])
            let dXt = try backend.tensor([Float](repeating: .nan, count: batch * inputs), shape: [batch, inputs])
            let dWt = try backend.tensor(dW0, shape: [outputs, inputs])
            let dBt = try backend.tensor(dB0, shape: [outputs])
            backend.linearBackward(x: xt, weight: wt, y: y, activation: .tanh, dY: dY, dX: dXt, dWeight: dWt, dBias: dBt)
            // Float32 inputs and products of size ≤ 1 against Float64 differences accurate to ~1e-9: 1e-5 is ample.
            expectClose(try backend.readFloats(dXt), dX, absolute: 1e-5, relative: 1e-4, "\(name) dX")
            expectClose(try backend.readFloats(dWt), zip(dW0, dW).map { Double($0) + $1 }, absolute: 1e-5, relative: 1e-4, "\(name) dW")
            expectClose(try backend.readFloats(dBt), zip(dB0, dB).map { Double($0) + $1 }, absolute: 1e-5, relative: 1e-4, "\(name) db")
        }
    }

    // MARK: Launch plan

    /// The CPU family's grid covers every row exactly once and splits rows only to feed every compute unit.
    @Test(arguments: [(1, 1), (7, 33), (400, 600), (400, 200), (400, 2810), (2810, 600), (1024, 1024), (5, 1), (4099, 33)])
    func cpuPlanCoversTheOutput(m: Int, n: Int) throws {
        guard let info = OpenCLRuntime.devices.first else { return }
        let tuning = LinearTuning(device: info)
        for transposedA in [false, true] {
            let plan = tuning.cpuPlan(m: m, n: n, transposedA: transposedA)
            #expect(plan.panels * LinearTuning.cpuPanel >= n && (plan.panels - 1) * LinearTuning.cpuPanel < n)
            #expect(plan.rowsPerItem % LinearTuning.cpuTileRows == 0)
            #expect(plan.rowBlocks * plan.rowsPerItem >= m && (plan.rowBlocks - 1) * plan.rowsPerItem < m)
            let tall = transposedA && m >= 2048
            #expect(plan.rowBlocks == 1 || plan.panels * (plan.rowBlocks - 1) < tuning.itemsPerComputeUnit * tuning.computeUnits || tall)
            #expect(!tall || plan.rowsPerItem <= LinearTuning.transposedRowTiles * LinearTuning.cpuTileRows)
        }
    }
}
