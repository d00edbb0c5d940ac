import Foundation
import RefitCompute
import Testing

/// The sequence-model operations: the CPU reference against Float64 forwards and their finite differences on tiny shapes
/// (which proves the reference; KernelCaseTests compares every kernel with it), and scatter plans by hand.
@Suite struct SequenceTests {
    // MARK: Float64 forwards

    static func layerNorm(_ x: [Double], gamma: [Double], beta: [Double], epsilon: Double, d: Int) -> [Double] {
        var y = x
        for r in 0..<x.count / d {
            let row = x[r * d..<(r + 1) * d]
            let mean = row.reduce(0, +) / Double(d)
            let variance = row.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(d)
            for c in 0..<d { y[r * d + c] = (x[r * d + c] - mean) / (variance + epsilon).squareRoot() * gamma[c] + beta[c] }
        }
        return y
    }

    static func gelu(_ x: Double) -> Double { 0.5 * x * (1 + Foundation.erf(x / 2.0.squareRoot())) }

    /// The attention output and probabilities.
    static func attention(q: [Double], k: [Double], v: [Double], start: [Int32], length: Int, d: Int,
                          scale: Double) -> (out: [Double], probabilities: [Double]) {
        var out = [Double](repeating: 0, count: q.count)
        var probabilities = [Double](repeating: 0, count: start.count * length * length)
        for b in start.indices {
            for i in Int(start[b])..<length {
                let row = b * length + i
                let keys = Int(start[b])...i
                let scores = keys.map { j in scale * (0..<d).reduce(0.0) { $0 + q[row * d + $1] * k[(b * length + j) * d + $1] } }
                let maximum = scores.max()!
                let total = scores.reduce(0) { $0 + Foundation.exp($1 - maximum) }
                for (j, score) in zip(keys, scores) {
                    let p = Foundation.exp(score - maximum) / total
                    probabilities[row * length + j] = p
                    for c in 0..<d { out[row * d + c] += p * v[(b * length + j) * d + c] }
                }
            }
        }
        return (out, probabilities)
    }

    static func crossEntropy(_ logits: [Double], targets: [Int32], n: Int) -> [Double] {
        targets.indices.map { r in
            guard targets[r] >= 0 else { return 0 }
            let row = logits[r * n..<(r + 1) * n]
            let maximum = row.max()!
            return maximum + Foundation.log(row.reduce(0) { $0 + Foundation.exp($1 - maximum) }) - logits[r * n + Int(targets[r])]
        }
    }

    /// Central differences of f at x.
    static func numericGradient(_ x: [Double], step: Double = 1e-6, _ f: ([Double]) -> Double) -> [Double] {
        x.indices.map { i in
            var plus = x, minus = x
            plus[i] += step
            minus[i] -= step
            return (f(plus) - f(minus)) / (2 * step)
        }
    }

    static func weightedSum(_ a: [Double], _ w: [Float]) -> Double { zip(a, w).reduce(0) { $0 + $1.0 * Double($1.1) } }

    static func doubles(_ values: [Float]) -> [Double] { values.map(Double.init) }

    // MARK: The reference against Float64

    @Test func referenceLayerNormMatchesFiniteDifferences() throws {
        let cpu = CPUBackend()
        let (rows, d, epsilon): (Int, Int, Float) = (3, 5, 1e-5)
        let x = randomValues(rows * d, seed: 1).enumerated().map { $1 * 2 + Float($0 / d) }  // row means 0, 1, 2
        let gamma = randomValues(d, seed: 2).map { $0 + 1.5 }, beta = randomValues(d, seed: 3)
        let w = randomValues(rows * d, seed: 4), initialGamma = randomValues(d, seed: 5), initialBeta = randomValues(d, seed: 6)
        let xt = try cpu.tensor(x, shape: [rows, d]), gt = try cpu.tensor(gamma, shape: [d]), y = try cpu.makeTensor([rows, d], .float32)
        let mean = try cpu.makeTensor([rows], .float32), rstd = try cpu.makeTensor([rows], .float32)
        cpu.layerNormForward(xt, gamma: gt, beta: try cpu.tensor(beta, shape: [d]), epsilon: epsilon, into: y, mean: mean, rstd: rstd)
        func forward(_ x: [Double], _ gamma: [Double], _ beta: [Double]) -> [Double] {
            Self.layerNorm(x, gamma: gamma, beta: beta, epsilon: Double(epsilon), d: d)
        }
        let (x64, gamma64, beta64) = (Self.doubles(x), Self.doubles(gamma), Self.doubles(beta))
        expectClose(try cpu.readFloats(y), forward(x64, gamma64, beta64), absolute: 1e-5, relative: 1e-5, "LayerNorm forward")

        let dX = try cpu.makeTensor([rows, d], .float32)
        let dGamma = try cpu.tensor(initialGamma, shape: [d]), dBeta = try cpu.tensor(initialBeta, shape: [d])
        cpu.layerNormBackward(xt, gamma: gt, mean: mean, rstd: rstd, dY: try cpu.tensor(w, shape: [rows, d]),
                              dX: dX, dGamma: dGamma, dBeta: dBeta)
        let expectedX = Self.numericGradient(x64) { Self.weightedSum(forward($0, gamma64, beta64), w) }
        let expectedGamma = Self.numericGradient(gamma64) { Self.weightedSum(forward(x64, $0, beta64), w) }
        let expectedBeta = Self.numericGradient(beta64) { Self.weightedSum(forward(x64, gamma64, $0), w) }
        expectClose(try cpu.readFloats(dX), expectedX, absolute: 1e-4, relative: 1e-3, "LayerNorm dX")
        // The parameter gradients accumulate onto what was there.
        expectClose(try cpu.readFloats(dGamma), zip(expectedGamma, initialGamma).map { $0 + Double($1) },
                    absolute: 1e-4, relative: 1e-3, "LayerNorm dGamma")
        expectClose(try cpu.readFloats(dBeta), zip(expectedBeta, initialBeta).map { $0 + Double($1) },
                    absolute: 1e-4, relative: 1e-3, "LayerNorm dBeta")
    }

    @Test func referenceGeluMatchesFiniteDifferences() throws {
        let cpu = CPUBackend()
        let x: [Float] = [-6, -3.1, -1, -0.3, 0, 1e-3, 0.4, 1, 2.7, 6]
        let w = randomValues(x.count, seed: 7)
        let xt = try cpu.tensor(x, shape: [x.count]), y = try cpu.makeTensor([x.count], .float32)
        cpu.gelu(xt, into: y)
        expectClose(try cpu.readFloats(y), x.map { Self.gelu(Double($0)) }, absolute: 1e-6, relative: 1e-6, "GELU forward")
        let dX = try cpu.makeTensor([x.count], .float32)
        cpu.geluBackward(xt, dY: try cpu.tensor(w, shape: [x.count]), into: dX)
        let expected = x.indices.map { i in
            Double(w[i]) * (Self.gelu(Double(x[i]) + 1e-6) - Self.gelu(Double(x[i]) - 1e-6)) / 2e-6
        }
        expectClose(try cpu.readFloats(dX), expected, absolute: 1e-5, relative: 1e-4, "GELU backward")
    }

    @Test func referenceAttentionMatchesFiniteDifferences() throws {
        let cpu = CPUBackend()
        // Sequence 0 has no padding, 1 starts at 2, 2 is all padding.
        let (length, d, scale): (Int, Int, Float) = (4, 3, 0.7)
        let start: [Int32] = [0, 2, 4]
        let rows = start.count * length
        let q = randomValues(rows * d, seed: 8).map { $0 * 2 }, k = randomValues(rows * d, seed: 9).map { $0 * 2 }
        let v = randomValues(rows * d, seed: 10), w = randomValues(rows * d, seed: 11)
        let (qt, kt, vt) = (try cpu.tensor(q, shape: [rows, d]), try cpu.tensor(k, shape: [rows, d]), try cpu.tensor(v, shape: [rows, d]))
        let st = try cpu.tensor(start, shape: [start.count])
        let probabilities = try cpu.makeTensor([rows, length], .float32), out = try cpu.makeTensor([rows, d], .float32)
        cpu.fill(probabilities, with: .nan)
        cpu.fill(out, with: .nan)
        cpu.causalAttentionForward(q: qt, k: kt, v: vt, start: st, length: length, scale: scale, probabilities: probabilities, into: out)
        func forward(_ q: [Double], _ k: [Double], _ v: [Double]) -> (out: [Double], probabilities: [Double]) {
            Self.attention(q: q, k: k, v: v, start: start, length: length, d: d, scale: Double(scale))
        }
        let (q64, k64, v64) = (Self.doubles(q), Self.doubles(k), Self.doubles(v))
        let expected = forward(q64, k64, v64)
        expectClose(try cpu.readFloats(out), expected.out, absolute: 1e-6, relative: 1e-5, "attention output")
        expectClose(try cpu.readFloats(probabilities), expected.probabilities, absolute: 1e-6, relative: 1e-5, "attention probabilities")
        #expect(Array(try cpu.readFloats(out).suffix(length * d)).allSatisfy { $0 == 0 }, "an all-padding sequence outputs zeros")

        let (dQ, dK, dV) = (try cpu.makeTensor([rows, d], .float32), try cpu.makeTensor([rows, d], .float32), try cpu.makeTensor([rows, d], .float32))
        for t in [dQ, dK, dV] { cpu.fill(t, with: .nan) }
        cpu.causalAttentionBackward(q: qt, k: kt, v: vt, start: st, length: length, scale: scale, probabilities: probabilities,
                                    dOut: try cpu.tensor(w, shape: [rows, d]), dQ: dQ, dK: dK, dV: dV)
        expectClose(try cpu.readFloats(dQ), Self.numericGradient(q64) { Self.weightedSum(forward($0, k64, v64).out, w) },
                    absolute: 1e-5, relative: 1e-4, "attention dQ")
        expectClose(try cpu.readFloats(dK), Self.numericGradient(k64) { Self.weightedSum(forward(q64, $0, v64).out, w) },
                    absolute: 1e-5, relative: 1e-4, "attention dK")
        expectClose(try cpu.readFloats(dV), Self.numericGradient(v64) { Self.weightedSum(forward(q64, k64, $0).out, w) },
                    absolute: 1e-5, relative: 1e-4, "attention dV")
    }

    @Test func referenceCrossEntropyMatchesFiniteDifferences() throws {
        let cpu = CPUBackend()
        let (n, gradientScale): (Int, Float) = (6, 0.5)
        let targets: [Int32] = [2, -1, 0, 5]
        let logits = randomValues(targets.count * n, seed: 12).map { $0 * 4 }
        let xt = try cpu.tensor(logits, shape: [targets.count, n]), tt = try cpu.tensor(targets, shape: [targets.count])
        let loss = try cpu.makeTensor([targets.count], .float32), dLogits = try cpu.makeTensor([targets.count, n], .float32)
        cpu.softmaxCrossEntropy(xt, targets: tt, gradientScale: gradientScale, loss: loss, dLogits: dLogits)
        let logits64 = Self.doubles(logits)
        expectClose(try cpu.readFloats(loss), Self.crossEntropy(logits64, targets: targets, n: n), absolute: 1e-6, relative: 1e-5,
                    "cross-entropy loss")
        let expected = Self.numericGradient(logits64) {
            Double(gradientScale) * Self.crossEntropy($0, targets: targets, n: n).reduce(0, +)
        }
        expectClose(try cpu.readFloats(dLogits), expected, absolute: 1e-5, relative: 1e-4, "cross-entropy dLogits")
        #expect(try cpu.readFloats(dLogits)[n..<2 * n].allSatisfy { $0 == 0 }, "a negative target's row is zero")
    }

    // MARK: Scatter plans, by hand

    @Test func scatterPlanArrays() {
        let plan = ScatterPlan.arrays(for: [3, -1, 0, 3, 5, 0, 3])
        #expect(plan.targets == [0, 3, 5])
        #expect(plan.offsets == [0, 2, 5, 6])
        #expect(plan.sources == [2, 5, 0, 3, 6, 4])
        let single = ScatterPlan.arrays(for: [7])
        #expect(single.targets == [7] && single.offsets == [0, 1] && single.sources == [0])
        for empty: [Int32] in [[], [-1, -2]] {
            let plan = ScatterPlan.arrays(for: empty)
            #expect(plan.targets.isEmpty && plan.offsets == [0] && plan.sources.isEmpty)
        }
    }

    @Test func scatterAddRowsByHand() throws {
        var backends: [(label: String, backend: any Backend)] = [(" [reference]", CPUBackend())]
        if let pair = try BackendPair.make() { backends += try pair.deviceVariants() }
        // Rows 0 and 2 go to table row 1, row 3 to row 0, row 1 is padding; table row 2 keeps its value.
        let indices: [Int32] = [1, -1, 1, 0]
        let dY: [Float] = [1, 2, 10, 20, 100, 200, 1000, 2000]
        let expected: [Float] = [1000.5, 2000.5, 102, 203, 7, 7]
        for (label, be) in backends {
            let table = try be.tensor([0.5, 0.5, 1, 1, 7, 7], shape: [3, 2])
            be.scatterAddRows(try be.tensor(dY, shape: [4, 2]), plan: try ScatterPlan(indices: indices, backend: be), into: table)
            #expect(try be.readFloats(table) == expected, "scatterAddRows by hand\(label)")
            // An all-padding batch changes nothing.
            be.scatterAddRows(try be.tensor(dY, shape: [4, 2]), plan: try ScatterPlan(indices: [-1, -1, -1, -1], backend: be), into: table)
            #expect(try be.readFloats(table) == expected, "scatterAddRows of padding\(label)")
        }
    }

    /// The reference's gather and scatter-add against their plain definitions, with repeats and padding.
    @Test func referenceGatherAndScatterRows() throws {
        let (cpu, vocabulary, rows, d) = (CPUBackend(), 40, 257, 7)
        let indices = randomInts(rows, in: -3..<vocabulary, seed: UInt64(rows))
        let table = randomValues(vocabulary * d, seed: 13), dY = randomValues(rows * d, seed: 14)
        let y = try cpu.tensor([Float](repeating: .nan, count: rows * d), shape: [rows, d])
        cpu.gatherRows(try cpu.tensor(table, shape: [vocabulary, d]), indices: try cpu.tensor(indices, shape: [rows]), into: y)
        expectIdentical(try cpu.readFloats(y), (0..<rows * d).map { i in indices[i / d] < 0 ? 0 : table[Int(indices[i / d]) * d + i % d] },
                        "gatherRows")
        let dTable = try cpu.tensor(table, shape: [vocabulary, d])
        cpu.scatterAddRows(try cpu.tensor(dY, shape: [rows, d]), plan: try ScatterPlan(indices: indices, backend: cpu), into: dTable)
        var expected = table
        for r in 0..<rows where indices[r] >= 0 {
            for c in 0..<d { expected[Int(indices[r]) * d + c] += dY[r * d + c] }
        }
        expectClose(try cpu.readFloats(dTable), expected, absolute: 1e-5, relative: 1e-5, "scatterAddRows")
    }
}
