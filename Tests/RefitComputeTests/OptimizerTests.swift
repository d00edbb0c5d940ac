import Foundation
import RefitCompute
import Testing

/// AdamW against PyTorch's `torch.optim.AdamW` update written out in Float64: by hand on both backends, and over many
/// elements and steps on the reference (KernelCaseTests compares the kernel with it).
@Suite struct OptimizerTests {
    /// PyTorch's AdamW step t (from 1), in Float64:
    /// p ← p(1 − lr·wd); m ← β1·m + (1−β1)·g; v ← β2·v + (1−β2)·g²; p ← p − lr/(1−β1ᵗ) · m / (√v/√(1−β2ᵗ) + ε).
    static func pytorchAdamW(p: inout [Double], m: inout [Double], v: inout [Double], g: [Double], t: Int,
                             lr: Double, beta1: Double, beta2: Double, epsilon: Double, weightDecay: Double) {
        let correction1 = 1 - Foundation.pow(beta1, Double(t))
        let correction2 = 1 - Foundation.pow(beta2, Double(t))
        for i in p.indices {
            p[i] *= 1 - lr * weightDecay
            m[i] = beta1 * m[i] + (1 - beta1) * g[i]
            v[i] = beta2 * v[i] + (1 - beta2) * g[i] * g[i]
            p[i] -= lr / correction1 * m[i] / (v[i].squareRoot() / correction2.squareRoot() + epsilon)
        }
    }

    /// Two steps by hand: lr 0.1, β (0.9, 0.999), ε 1e-8, weight decay 0.01. Element 2 has a zero first gradient (the
    /// update is then weight decay alone); element 3 a gradient of 1e-3, where ε starts to matter.
    @Test func twoStepsByHand() throws {
        guard let pair = try BackendPair.make() else { return }
        let p0: [Float] = [0.5, -1, 2, 0]
        let gradients: [[Float]] = [[0.1, -0.2, 0, 1e-3], [0.3, 0.4, -1e-3, -2]]
        // Step 1, element 0: p = 0.5·0.999 = 0.4995; m = 0.01, v = 1e-5; m̂ = 0.1, √v̂ = 0.1; p −= 0.1·0.1/(0.1 + 1e-8).
        let expectedAfter: [[Double]] = [
            [0.399500009999999, -0.8990000049999998, 1.998, -0.09999900000999991],
            [0.3073224021955899, -0.9347113565410368, 2.0704146302663102, -0.025518814624393246],
        ]
        let expectedM: [[Double]] = [[0.01, -0.02, 0, 1e-4], [0.039, 0.022, -1e-4, -0.19991]]
        let expectedV: [[Double]] = [[1e-5, 4e-5, 0, 1e-9], [9.999e-5, 1.9996e-4, 1e-9, 4.000000999e-3]]

        // The formula above reproduces the hand-computed numbers.
        var (p, m, v) = (p0.map(Double.init), [Double](repeating: 0, count: 4), [Double](repeating: 0, count: 4))
        for step in 0..<2 {
            Self.pytorchAdamW(p: &p, m: &m, v: &v, g: gradients[step].map(Double.init), t: step + 1,
                              lr: 0.1, beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0.01)
            for i in 0..<4 {
                #expect(abs(p[i] - expectedAfter[step][i]) < 1e-7, "formula p step \(step + 1)")
            }
        }

        for be in [pair.device, pair.reference] {
            let parameters = try be.tensor(p0, shape: [4])
            let mt = try be.makeTensor([4], .float32), vt = try be.makeTensor([4], .float32)
            for step in 0..<2 {
                be.adamW(parameters: parameters, gradients: try be.tensor(gradients[step], shape: [4]), m: mt, v: vt,
                         step: AdamWStep(learningRate: 0.1, beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0.01, step: step + 1))
                // A few float roundings of O(1) values; the 1e-3-gradient element amplifies them by 1/(1 + ε/√v̂) only.
                expectClose(try be.readFloats(parameters), expectedAfter[step], absolute: 1e-6, relative: 1e-6,
                            "\(be.deviceDescription): parameters after step \(step + 1)")
                expectClose(try be.readFloats(mt), expectedM[step], absolute: 1e-9, relative: 1e-6, "\(be.deviceDescription): m after step \(step + 1)")
                // β2 = 0.999 is no float: 1 − 0.999f = 0.00099998713, 1.3e-5 below PyTorch's (double) 1 − β2. The bias
                // correction 1 − β2ᵗ carries the same factor, so p agrees to 1e-6 while v itself is 1.3e-5 low.
                expectClose(try be.readFloats(vt), expectedV[step], absolute: 1e-12, relative: 1.5e-5, "\(be.deviceDescription): v after step \(step + 1)")
            }
        }
    }

    /// Many elements and later steps (where the bias corrections are computed from large powers): the reference follows
    /// the Float64 formula within float rounding.
    @Test(arguments: [1, 257])
    func referenceMatchesTheFormulaOverSteps(count: Int) throws {
        let p0 = randomValues(count, seed: 61)
        let steps = [1, 2, 3, 1000]  // step numbers; the moments carry over between them as in a resumed run
        let hyper = (lr: 1e-3, beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0.1)
        var (p, m, v) = (p0.map(Double.init), [Double](repeating: 0, count: count), [Double](repeating: 0, count: count))
        let be = CPUBackend()
        let parameters = try be.tensor(p0, shape: [count])
        let mt = try be.makeTensor([count], .float32), vt = try be.makeTensor([count], .float32)
        for (k, t) in steps.enumerated() {
            let g = randomValues(count, seed: 62 + UInt64(k)).map { $0 * 0.01 }
            be.adamW(parameters: parameters, gradients: try be.tensor(g, shape: [count]), m: mt, v: vt,
                     step: AdamWStep(learningRate: Float(hyper.lr), beta1: Float(hyper.beta1), beta2: Float(hyper.beta2),
                                     epsilon: Float(hyper.epsilon), weightDecay: Float(hyper.weightDecay), step: t))
            Self.pytorchAdamW(p: &p, m: &m, v: &v, g: g.map(Double.init), t: t, lr: hyper.lr, beta1: hyper.beta1,
                              beta2: hyper.beta2, epsilon: hyper.epsilon, weightDecay: hyper.weightDecay)
        }
        // Each step moves p by at most ~lr; its float rounding is ~1e-7 of |p| ≤ 1.
        expectClose(try be.readFloats(parameters), p, absolute: 1e-6, relative: 1e-6, "\(be.deviceDescription): AdamW [\(count)] after \(steps)")
        expectClose(try be.readFloats(mt), m, absolute: 1e-9, relative: 1e-5, "\(be.deviceDescription): m [\(count)]")
        expectClose(try be.readFloats(vt), v, absolute: 1e-12, relative: 2.5e-5, "\(be.deviceDescription): v [\(count)] (1 − 0.999f, see twoStepsByHand)")
    }
}
