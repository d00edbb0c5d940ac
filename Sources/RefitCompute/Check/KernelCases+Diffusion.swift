import Foundation

/// The diffusion operations, AdamW and ranking (dense rows from CSR, masked top-K).
///
/// Where the tests bound each backend against a Float64 closed form, the bound between the backends is twice that
/// (`doubled()`); where they compared the backends directly, it is theirs.
extension KernelCases {
    static let diffusion: [KernelCase] = timestepEmbedding + gather + gaussian + squaredError

    /// The angle t·f reaches 1000 rad, whose float32 spacing is 6e-5, and f itself carries a few ulp from exp: cos and
    /// sin of it can be off by ~2e-4 however exactly they are evaluated.
    static let timestepEmbedding: [KernelCase] = {
        let edges: [Int32] = [0, 1, 2, 3, 39, 40, 100, 257, 500, 999, 1000]
        return [(edges, 10), (edges, 2), (edges, 64), (CheckInputs.integers(257, in: 0..<1001, seed: 40), 64)].map { timesteps, dim in
            KernelCase(.diffusion, "timestep embedding", "\(timesteps.count) timesteps, dim \(dim)", Tolerance(absolute: 3e-4, relative: 0)) { be in
                let t = try be.tensor(timesteps, shape: [timesteps.count])
                let y = try be.tensor(CheckInputs.nan(timesteps.count * dim), shape: [timesteps.count, dim])
                return .init({ be.timestepEmbedding(t, into: y) }, output: y)
            }
        }
    }()

    static let gather: [KernelCase] = [(40, 7), (1, 1), (40, 400), (1000, 257), (1000, 100_003)].map { tableSize, count in
        KernelCase(.diffusion, "gather", "\(tableSize) → \(count)", .exact) { be in
            let table = try be.tensor(CheckInputs.uniform(tableSize, seed: 16), shape: [tableSize])
            let indices = try be.tensor(CheckInputs.integers(count, in: 0..<tableSize, seed: 17), shape: [count])
            let y = try be.tensor(CheckInputs.nan(count), shape: [count])
            return .init({ be.gather(table, indices: indices, into: y) }, output: y)
        }
    }

    /// x = μ + σ·ε with μ ~ U(−1, 1), ε ~ U(−2, 2) and σ_r from 1e-4 to 1: the regime of DiffRec's posterior (σ̃ ~ 1e-3).
    /// With `tinySigma`, σ = 1e-4 for every row: (x − μ)² ~ 1e-8 must not be lost against 2σ² ~ 2e-8.
    public static func gaussianInputs(rows: Int, columns: Int, seed: UInt64, tinySigma: Bool = false) -> (x: [Float], mean: [Float], logStd: [Float]) {
        let mean = CheckInputs.uniform(rows * columns, seed: seed)
        let logStd = tinySigma ? [Float](repeating: Float(Foundation.log(1e-4)), count: rows)
            : CheckInputs.uniform(rows, seed: seed + 1).map { Float(Foundation.log(1e-4)) * ($0 + 1) / 2 }
        let epsilon = CheckInputs.uniform(rows * columns, seed: seed + 2).map { $0 * 2 }
        let x = (0..<rows * columns).map { i in mean[i] + Foundation.exp(logStd[i / columns]) * epsilon[i] }
        return (x, mean, logStd)
    }

    /// The log-probability: ½·mean z² carries the float sum's drift and a few ulp of exp(−log σ) as an absolute error;
    /// |logp| ≲ 10 rounds at 2ε. Its backward is a few roundings of each entry, relative to the largest gradient.
    static let gaussian: [KernelCase] = (reductionShapes.map { ($0, $1, false) } + [(4, 2810, true)]).map { rows, columns, tiny in
        KernelCase(.diffusion, "gaussian log-prob", dims(rows, columns) + (tiny ? ", σ 1e-4" : ""),
                   Tolerance(absolute: Tolerance.summationDrift(terms: columns) + 2e-6, relative: 2.4e-7).doubled()) { be in
            let (x, mean, logStd) = gaussianInputs(rows: rows, columns: columns, seed: 41, tinySigma: tiny)
            let (xt, mt, st) = (try be.tensor(x, shape: [rows, columns]), try be.tensor(mean, shape: [rows, columns]), try be.tensor(logStd, shape: [rows]))
            let logp = try be.tensor(CheckInputs.nan(rows), shape: [rows])
            return .init({ be.gaussianLogProbability(xt, mean: mt, logStd: st, into: logp) }, output: logp)
        }
    } + [(3, 7), (1, 1), (7, 33), (2, 257), (2, 2810)].map { rows, columns in
        let (x, mean, logStd) = gaussianInputs(rows: rows, columns: columns, seed: 44)
        let dLogp = CheckInputs.uniform(rows, seed: 47).map { $0 * 2 }
        let largest = (0..<rows * columns).map { i in
            abs(Double(dLogp[i / columns]) * (Double(x[i]) - Double(mean[i])) / (Double(columns) * Foundation.exp(2 * Double(logStd[i / columns]))))
        }.max()!
        return KernelCase(.diffusion, "gaussian log-prob backward", dims(rows, columns),
                          Tolerance(absolute: 1e-6 * largest, relative: 1e-5).doubled()) { be in
            let (xt, mt, st) = (try be.tensor(x, shape: [rows, columns]), try be.tensor(mean, shape: [rows, columns]), try be.tensor(logStd, shape: [rows]))
            let g = try be.tensor(dLogp, shape: [rows]), dMean = try be.tensor(CheckInputs.nan(rows * columns), shape: [rows, columns])
            return .init({ be.gaussianLogProbabilityBackward(xt, mean: mt, logStd: st, dLogp: g, into: dMean) }, output: dMean)
        }
    }

    /// The loss is a mean of non-negative terms: the float sum's drift plus the division's rounding; of integer
    /// differences every partial sum is exact, so the mean is one correctly rounded division. The gradient is three
    /// roundings (difference, products, quotient).
    static let squaredError: [KernelCase] = reductionShapes.flatMap { rows, columns in
        let random = Tolerance(absolute: 1e-7, relative: Tolerance.summationDrift(terms: columns) + 1.2e-7).doubled()
        return [("", random), (" of integers", .exact)].map { variant, tolerance in
            KernelCase(.diffusion, "mse rows", dims(rows, columns) + variant, tolerance) { be in
                let (prediction, target) = variant.isEmpty
                    ? (CheckInputs.uniform(rows * columns, seed: 51), CheckInputs.uniform(rows * columns, seed: 52).map { $0 > 0.5 ? Float(1) : 0 })
                    : (CheckInputs.integers(rows * columns, in: -3..<4, seed: 54).map(Float.init), CheckInputs.integers(rows * columns, in: 0..<2, seed: 55).map(Float.init))
                let p = try be.tensor(prediction, shape: [rows, columns]), t = try be.tensor(target, shape: [rows, columns])
                let loss = try be.tensor(CheckInputs.nan(rows), shape: [rows])
                return .init({ be.squaredErrorRows(p, t, into: loss) }, output: loss)
            }
        } + [KernelCase(.diffusion, "mse backward", dims(rows, columns), Tolerance(absolute: 1e-12, relative: 8e-7)) { be in
            let p = try be.tensor(CheckInputs.uniform(rows * columns, seed: 51), shape: [rows, columns])
            let t = try be.tensor(CheckInputs.uniform(rows * columns, seed: 52).map { $0 > 0.5 ? Float(1) : 0 }, shape: [rows, columns])
            let w = try be.tensor(CheckInputs.uniform(rows, seed: 53).map { $0 * 4 }, shape: [rows])
            let dPrediction = try be.tensor(CheckInputs.nan(rows * columns), shape: [rows, columns])
            return .init({ be.squaredErrorBackward(p, t, rowWeights: w, into: dPrediction) }, output: dPrediction)
        }]
    }

    // MARK: Optimisation

    /// Steps 1, 2, 3 and 1000 (the bias corrections from large powers), the moments carried over as in a resumed run.
    /// Each step moves p by at most ~lr, its rounding ~1e-7 of |p| ≤ 1; m and v are within the tests' bounds against
    /// Float64, doubled (v's includes 1 − 0.999f, 1.3e-5 below 1 − β2 in double, which both backends share).
    static let optimizer: [KernelCase] = [257, 1, 7, 33, 100_003].map { n in
        KernelCase(.optimizer, "adamw", "\(n), steps 1, 2, 3, 1000", Tolerance(absolute: 1e-6, relative: 1e-6)) { be in
            let p = try be.tensor(CheckInputs.uniform(n, seed: 61), shape: [n])
            let m = try be.makeTensor([n], .float32), v = try be.makeTensor([n], .float32)
            let steps = [1, 2, 3, 1000]
            let gradients = try steps.indices.map { k in try be.tensor(CheckInputs.uniform(n, seed: 62 + UInt64(k)).map { $0 * 0.01 }, shape: [n]) }
            return .init({
                for (g, t) in zip(gradients, steps) {
                    be.adamW(parameters: p, gradients: g, m: m, v: v, step: AdamWStep(learningRate: 1e-3, weightDecay: 0.1, step: t))
                }
            }, outputs: [.init(p, "parameters"), .init(m, "m", tolerance: Tolerance(absolute: 2e-9, relative: 2e-5)),
                         .init(v, "v", tolerance: Tolerance(absolute: 2e-12, relative: 5e-5))])
        }
    }

    // MARK: Ranking

    /// Selection does no arithmetic: exact.
    static let ranking: [KernelCase] = densify + topK

    /// Rows picked in any order, with repeats, as a shuffled batch does; a full row and an empty one; 0/1 rows and
    /// weighted ones (T-DiffRec's time weights).
    static let densify: [KernelCase] = [(7, 33, false), (1, 1, false), (33, 257, false), (40, 2810, false), (33, 257, true), (40, 2810, true)]
        .map { matrixRows, columns, weighted in
            let picks = 2 * matrixRows + 1
            let name = weighted ? "csr densify weighted" : "csr densify"
            return KernelCase(.ranking, name, "\(picks) of \(dims(matrixRows, columns))", .exact) { be in
                let pattern = CheckInputs.csr(rows: matrixRows, columns: columns, density: 0.2, seed: 71, fullRow: matrixRows > 1)
                var csr = try CheckInputs.deviceCSR(be, pattern, columns: columns)
                if weighted {
                    let values = try be.tensor(CheckInputs.uniform(csr.columnIndices.count, seed: 74), shape: [csr.columnIndices.count])
                    csr = DeviceCSR(rowPointers: csr.rowPointers, columnIndices: csr.columnIndices, values: values,
                                    rows: csr.rows, columns: csr.columns)
                }
                let rows = try be.tensor(CheckInputs.integers(picks, in: 0..<matrixRows, seed: 72), shape: [picks])
                let dense = try be.tensor(CheckInputs.uniform(picks * columns, seed: 73), shape: [picks, columns])  // overwritten
                return .init({ be.densifyRows(csr, rows: rows, into: dense) }, output: dense)
            }
        }

    enum TopKScores: String, Sendable {
        /// Random scores; the mask is 30 % full.
        case random
        /// Scores on a coarse grid tie everywhere (row 0 constant, row 1 ±0): the lower column must win; mask 50 %.
        case ties
        /// Rows with fewer than k eligible entries (−∞ scores, a mask 95 % full, one row all −∞, a +∞): padded with −1, −∞.
        case padding

        func values(rows: Int, columns: Int) -> [Float] {
            switch self {
            case .random: return CheckInputs.uniform(rows * columns, seed: 81)
            case .ties:
                var scores = CheckInputs.uniform(rows * columns, seed: 83).map { ($0 * 4).rounded() / 4 }
                for c in 0..<columns {
                    scores[c] = 0.5
                    if rows > 1 { scores[columns + c] = c % 2 == 0 ? 0 : -0.0 }
                }
                return scores
            case .padding:
                var scores = CheckInputs.uniform(rows * columns, seed: 85)
                for i in scores.indices where i % 3 == 0 || (i / columns == 2 && i % columns > 3) { scores[i] = -.infinity }
                for c in 0..<columns { scores[3 * columns + c] = -.infinity }
                if rows > 4 { scores[4 * columns] = .infinity }
                return scores
            }
        }

        var maskDensity: Float { self == .random ? 0.3 : self == .ties ? 0.5 : 0.95 }
        var maskSeed: UInt64 { self == .random ? 82 : self == .ties ? 84 : 86 }
    }

    /// k > N, and k = 4500 of 5000, whose per-row lists exceed local memory (the one-work-item-per-row path). Score row
    /// r is masked by CSR row rows − 1 − r, so that the full row 1 and the empty row 0 come last; the dense mask marks
    /// the same entries with −2.5 (any non-zero masks). The scores must be left unchanged.
    static let topK: [KernelCase] = {
        let shapes: [(TopKScores, Int, Int, Int)] = [
            (.random, 7, 33, 5), (.random, 1, 1, 1), (.random, 1, 7, 3), (.random, 33, 257, 10), (.random, 5, 257, 300),
            (.random, 57, 2810, 1), (.random, 57, 2810, 20), (.random, 57, 2810, 100), (.random, 3, 4099, 50), (.random, 3, 5000, 4500),
            (.ties, 7, 33, 5), (.ties, 33, 257, 40), (.ties, 20, 2810, 100), (.ties, 20, 2810, 1),
            (.padding, 9, 33, 20), (.padding, 9, 2810, 100), (.padding, 4, 7, 9),
        ]
        return shapes.flatMap { kind, rows, columns, k in
            ["top-K", "masked top-K (sparse)", "masked top-K (dense)"].map { name in
                KernelCase(.ranking, name, "\(dims(rows, columns)), k \(k), \(kind.rawValue) scores", .exact) { be in
                    let scores = try be.tensor(kind.values(rows: rows, columns: columns), shape: [rows, columns])
                    let csr = CheckInputs.csr(rows: rows, columns: columns, density: kind.maskDensity, seed: kind.maskSeed, fullRow: true)
                    let maskRows = (0..<rows).map { Int32(rows - 1 - $0) }
                    let mask: RowMask?
                    switch name {
                    case "masked top-K (sparse)": mask = .sparse(try CheckInputs.deviceCSR(be, csr, columns: columns), rows: try be.tensor(maskRows, shape: [rows]))
                    case "masked top-K (dense)":
                        var dense = [Float](repeating: 0, count: rows * columns)
                        for (r, row) in maskRows.enumerated() {
                            for e in Int(csr.pointers[Int(row)])..<Int(csr.pointers[Int(row) + 1]) { dense[r * columns + Int(csr.columns[e])] = -2.5 }
                        }
                        mask = .dense(try be.tensor(dense, shape: [rows, columns]))
                    default: mask = nil
                    }
                    let indices = try be.tensor([Int32](repeating: 7, count: rows * k), shape: [rows, k])  // overwritten
                    let values = try be.tensor([Float](repeating: 7, count: rows * k), shape: [rows, k])
                    return .init({ be.topK(scores, k: k, mask: mask, indices: indices, values: values) },
                                 outputs: [.init(indices, "indices"), .init(values, "values"), .init(scores, "scores")])
                }
            }
        }
    }()
}
