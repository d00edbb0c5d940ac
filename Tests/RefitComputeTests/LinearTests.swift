import Foundation
@testable import RefitCompute
import Testing

/// The linear layer and the matrix products beyond the kernel cases (KernelCaseTests compares them with the reference,
/// in both kernel families): empty dimensions, the layer's backward pass against finite differences, and the CPU
/// family's launch plan.
@Suite struct LinearTests {
    /// An empty inner dimension leaves act(beta·C + bias), and empty outputs launch nothing.
    @Test func emptyDimensions() throws {
        guard let pair = try BackendPair.make(), let device = pair.device as? OpenCLBackend else { return }
        for family in LinearTuning.Family.allCases {
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

    /// The CPU family's grid covers every row exactly once and splits rows only to feed every compute unit, with the
    /// default parameters and with tuned-looking ones (other tile, fewer items per core, short tall blocks).
    @Test(arguments: [(1, 1), (7, 33), (400, 600), (400, 200), (400, 2810), (2810, 600), (1024, 1024), (5, 1), (4099, 33)])
    func cpuPlanCoversTheOutput(m: Int, n: Int) throws {
        guard let info = OpenCLRuntime.devices.first else { return }
        var other = LinearParameters()
        (other.cpuTileRows, other.cpuTileVectors, other.cpuItemsPerComputeUnit, other.cpuTransposedRowTiles) = (7, 1, 2, 3)
        for parameters in [LinearParameters(), other] {
            let tuning = LinearTuning(device: info, parameters: parameters)
            for transposedA in [false, true] {
                let plan = tuning.cpuPlan(m: m, n: n, transposedA: transposedA)
                #expect(plan.panels * parameters.cpuPanel >= n && (plan.panels - 1) * parameters.cpuPanel < n)
                #expect(plan.rowsPerItem % parameters.cpuTileRows == 0)
                #expect(plan.rowBlocks * plan.rowsPerItem >= m && (plan.rowBlocks - 1) * plan.rowsPerItem < m)
                let tall = transposedA && m >= 2048
                #expect(plan.rowBlocks == 1 || plan.panels * (plan.rowBlocks - 1) < parameters.cpuItemsPerComputeUnit * tuning.computeUnits || tall)
                #expect(!tall || plan.rowsPerItem <= parameters.cpuTransposedRowTiles * parameters.cpuTileRows)
            }
        }
    }
}
