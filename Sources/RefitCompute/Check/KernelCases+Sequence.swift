/// The sequence-model operations (SASRec, DreamRec), with the tolerances the tests compared the backends within.
extension KernelCases {
    static let sequence: [KernelCase] = rowCases + gelu + attention + crossEntropy

    /// Embedding widths d and batch rows: 1, 7, 33, 257 and both sides of 64.
    static let embeddingShapes: [(d: Int, rows: Int)] = [7, 1, 64, 65].flatMap { d in [33, 1, 257].map { (d, $0) } }

    /// Gather and scatter-add rows of a 40-row table (indices with repeats and padding), and LayerNorm forward and
    /// backward. The scatter-add sums the same few rows in another order; LayerNorm's dGamma and dBeta sum `rows` terms.
    static let rowCases: [KernelCase] = embeddingShapes.map { d, rows in
        KernelCase(.sequence, "gather rows", "\(rows) of \(dims(40, d))", .exact) { be in
            let table = try be.tensor(CheckInputs.uniform(40 * d, seed: 13), shape: [40, d])
            let indices = try be.tensor(CheckInputs.integers(rows, in: -3..<40, seed: UInt64(rows)), shape: [rows])
            let y = try be.tensor(CheckInputs.nan(rows * d), shape: [rows, d])
            return .init({ be.gatherRows(table, indices: indices, into: y) }, output: y)
        }
    } + embeddingShapes.map { d, rows in
        KernelCase(.sequence, "scatter-add rows", "\(rows) into \(dims(40, d))", Tolerance(absolute: 1e-6, relative: 1e-6)) { be in
            let plan = try ScatterPlan(indices: CheckInputs.integers(rows, in: -3..<40, seed: UInt64(rows)), backend: be)
            let dY = try be.tensor(CheckInputs.uniform(rows * d, seed: 14), shape: [rows, d])
            let dTable = try be.tensor(CheckInputs.uniform(40 * d, seed: 13), shape: [40, d])
            return .init({ be.scatterAddRows(dY, plan: plan, into: dTable) }, output: dTable)
        }
    } + embeddingShapes.flatMap { d, rows in
        [false, true].map { aliased in
            KernelCase(.sequence, "layernorm forward/backward", dims(rows, d) + (aliased ? " in place" : ""),
                       Tolerance(absolute: 2e-5, relative: 1e-4)) { be in
                let x = CheckInputs.uniform(rows * d, seed: 15).enumerated().map { $1 * 3 + Float($0 / d % 5) - 2 }
                let xt = try be.tensor(x, shape: [rows, d])
                let gamma = try be.tensor(CheckInputs.uniform(d, seed: 16).map { $0 + 1 }, shape: [d])
                let beta = try be.tensor(CheckInputs.uniform(d, seed: 17), shape: [d])
                let y = aliased ? try be.tensor(x, shape: [rows, d]) : try be.tensor(CheckInputs.nan(rows * d), shape: [rows, d])
                let mean = try be.tensor(CheckInputs.nan(rows), shape: [rows]), rstd = try be.tensor(CheckInputs.nan(rows), shape: [rows])
                let dY = try be.tensor(CheckInputs.uniform(rows * d, seed: 18), shape: [rows, d])
                let dX = aliased ? dY : try be.tensor(CheckInputs.nan(rows * d), shape: [rows, d])
                let dGamma = try be.tensor(CheckInputs.uniform(d, seed: 19), shape: [d]), dBeta = try be.tensor(CheckInputs.uniform(d, seed: 19), shape: [d])
                let sums = Tolerance(absolute: 1e-5 * Double(rows), relative: 1e-4)
                return .init({
                    be.layerNormForward(aliased ? y : xt, gamma: gamma, beta: beta, epsilon: 1e-5, into: y, mean: mean, rstd: rstd)
                    be.layerNormBackward(xt, gamma: gamma, mean: mean, rstd: rstd, dY: dY, dX: dX, dGamma: dGamma, dBeta: dBeta)
                }, outputs: [.init(y, "y"), .init(mean, "mean"), .init(rstd, "rstd"), .init(dX, "dX"),
                             .init(dGamma, "dGamma", tolerance: sums), .init(dBeta, "dBeta", tolerance: sums)])
            }
        }
    }

    static let gelu: [KernelCase] = [257, 1, 7, 4099].flatMap { n in
        [false, true].map { aliased in
            KernelCase(.sequence, "gelu/backward", "\(n)\(aliased ? " in place" : "")", Tolerance(absolute: 1e-6, relative: 1e-5)) { be in
                let x = CheckInputs.uniform(n, seed: 20).map { $0 * 6 }
                let xt = try be.tensor(x, shape: [n])
                let y = aliased ? try be.tensor(x, shape: [n]) : try be.tensor(CheckInputs.nan(n), shape: [n])
                let dY = try be.tensor(CheckInputs.uniform(n, seed: 21), shape: [n])
                let dX = aliased ? dY : try be.tensor(CheckInputs.nan(n), shape: [n])
                return .init({
                    be.gelu(aliased ? y : xt, into: y)
                    be.geluBackward(xt, dY: dY, into: dX)
                }, outputs: [.init(y, "y"), .init(dX, "dX")])
            }
        }
    }

    /// (batch, length, d): the first sequence unpadded, the second (if any) all padding, the rest random; every output
    /// starts as NaN.
    static let attention: [KernelCase] = [(4, 10, 64), (1, 1, 1), (3, 1, 7), (3, 3, 7), (5, 10, 65), (3, 50, 64), (4, 50, 1), (2, 64, 256)].map { batch, length, d in
        KernelCase(.sequence, "causal attention forward/backward", "\(batch) × \(length) positions × \(d)", Tolerance(absolute: 1e-5, relative: 1e-4)) { be in
            let rows = batch * length
            let starts = CheckInputs.integers(batch, in: 0..<length + 1, seed: UInt64(rows)).enumerated().map { b, s in
                b == 0 ? 0 : b == 1 ? Int32(length) : s
            }
            let scale = 1 / Float(d).squareRoot()
            let q = try be.tensor(CheckInputs.uniform(rows * d, seed: 22).map { $0 * 3 }, shape: [rows, d])
            let k = try be.tensor(CheckInputs.uniform(rows * d, seed: 23).map { $0 * 3 }, shape: [rows, d])
            let v = try be.tensor(CheckInputs.uniform(rows * d, seed: 24), shape: [rows, d])
            let dOut = try be.tensor(CheckInputs.uniform(rows * d, seed: 25), shape: [rows, d])
            let start = try be.tensor(starts, shape: [batch])
            let nan = { (shape: [Int]) in try be.tensor(CheckInputs.nan(shape.reduce(1, *)), shape: shape) }
            let probabilities = try nan([rows, length]), out = try nan([rows, d])
            let (dQ, dK, dV) = (try nan([rows, d]), try nan([rows, d]), try nan([rows, d]))
            return .init({
                be.causalAttentionForward(q: q, k: k, v: v, start: start, length: length, scale: scale, probabilities: probabilities, into: out)
                be.causalAttentionBackward(q: q, k: k, v: v, start: start, length: length, scale: scale, probabilities: probabilities,
                                           dOut: dOut, dQ: dQ, dK: dK, dV: dV)
            }, outputs: [.init(probabilities, "probabilities"), .init(out, "out"), .init(dQ, "dQ"), .init(dK, "dK"), .init(dV, "dV")])
        }
    }

    /// Nine rows, one with a negative target (loss 0, a zero gradient row) and one targeting the last column; the
    /// gradient into its own buffer, into the logits, or not at all.
    static let crossEntropy: [KernelCase] = [7, 1, 3417].flatMap { n in
        ["", " in place", " without gradient"].map { gradient in
            KernelCase(.sequence, "softmax cross-entropy", "\(dims(9, n))\(gradient)", Tolerance(absolute: 1e-5, relative: 1e-5)) { be in
                var targets = CheckInputs.integers(9, in: 0..<n, seed: UInt64(n))
                targets[2] = -1
                targets[8] = Int32(n - 1)
                let logits = try be.tensor(CheckInputs.uniform(9 * n, seed: 26).map { $0 * 8 }, shape: [9, n])
                let t = try be.tensor(targets, shape: [9]), loss = try be.tensor(CheckInputs.nan(9), shape: [9])
                let dLogits = gradient == " in place" ? logits : try be.tensor(CheckInputs.nan(9 * n), shape: [9, n])
                let withGradient = gradient != " without gradient"
                return .init({ be.softmaxCrossEntropy(logits, targets: t, gradientScale: 0.25, loss: loss, dLogits: withGradient ? dLogits : nil) },
                             outputs: [.init(loss, "loss")] + (withGradient ? [.init(dLogits, "dLogits", tolerance: Tolerance(absolute: 1e-7, relative: 1e-4))] : []))
            }
        }
    }
}
