import Foundation

/// Reductions, the row-wise log-softmax and the random streams.
///
/// The backends add in different orders (the reference left to right, the kernels in work-group trees). The tests bound
/// each backend's sum of random inputs by `summationDrift(terms: n)` of the sum of absolute values (the mass) plus 1e-6
/// against Float64; two backends then differ by at most twice that. Inputs of small integers sum exactly in any order
/// (every partial sum is an integer below 2²⁴), so there the backends must agree bit for bit: that catches a lost,
/// doubled or misplaced term however large the tensor.
extension KernelCases {
    static let reductionShapes = rowShapes + [(400, 2810)]
    static let totalCounts = [4099, 1, 7, 33, 257, 100_003, 1_000_003]

    /// Twice the tests' bound for sums of `terms` terms with the given largest mass.
    static func summation(terms: Int, mass: Double) -> Tolerance {
        Tolerance(absolute: 2 * (Tolerance.summationDrift(terms: terms) * mass + 1e-6), relative: 0)
    }

    /// Small integers in −magnitude…magnitude.
    static func smallIntegers(_ count: Int, seed: UInt64, magnitude: Int = 8) -> [Float] {
        CheckInputs.integers(count, in: -magnitude..<magnitude + 1, seed: seed).map(Float.init)
    }

    static let reductions: [KernelCase] = sumRows + sumColumns + totals + logSoftmax + softmax

    static let sumRows: [KernelCase] = reductionShapes.flatMap { rows, columns in
        let x = CheckInputs.uniform(rows * columns, seed: 31)
        let mass = (0..<rows).map { r in x[r * columns..<(r + 1) * columns].reduce(0.0) { $0 + abs(Double($1)) } }.max()!
        return [("", summation(terms: columns, mass: mass)), (" of integers", Tolerance.exact)].map { variant, tolerance in
            KernelCase(.reduction, "sum rows", dims(rows, columns) + variant, tolerance) { be in
                let input = variant.isEmpty ? CheckInputs.uniform(rows * columns, seed: 31) : smallIntegers(rows * columns, seed: 32)
                let x = try be.tensor(input, shape: [rows, columns])
                let y = try be.tensor(CheckInputs.uniform(rows, seed: 33), shape: [rows])  // overwritten, not accumulated
                return .init({ be.sumRows(x, into: y) }, output: y)
            }
        }
    }

    /// β 0 overwrites, even a NaN (as an uninitialised gradient buffer may hold); β 1 accumulates.
    static let sumColumns: [KernelCase] = reductionShapes.flatMap { rows, columns in
        let x = CheckInputs.uniform(rows * columns, seed: 34), initial = CheckInputs.uniform(columns, seed: 35)
        let mass = (0..<columns).map { c in (0..<rows).reduce(abs(Double(initial[c]))) { $0 + abs(Double(x[$1 * columns + c])) } }.max()!
        let variants: [(Float, String, Tolerance)] = [(0.5, "", summation(terms: rows + 1, mass: mass)), (0, "", summation(terms: rows + 1, mass: mass)),
                                                      (1, "", summation(terms: rows + 1, mass: mass)), (0, " of integers", .exact)]
        return variants.map { beta, variant, tolerance in
            KernelCase(.reduction, "sum columns", "\(dims(rows, columns)), β \(beta)\(variant)", tolerance) { be in
                let input = variant.isEmpty ? CheckInputs.uniform(rows * columns, seed: 34) : smallIntegers(rows * columns, seed: 36)
                let x = try be.tensor(input, shape: [rows, columns])
                let y = try be.tensor(beta == 0 ? CheckInputs.nan(columns) : CheckInputs.uniform(columns, seed: 35), shape: [columns])
                return .init({ be.sumColumns(x, into: y, beta: beta) }, output: y)
            }
        }
    }

    /// `sum` and `sumOfSquares` of random floats, of integers in −8…8 and of −1, 0 and 1 (whose squares sum exactly).
    static let totals: [KernelCase] = totalCounts.flatMap { n in
        let x = CheckInputs.uniform(n, seed: UInt64(n))
        let mass = x.reduce(0.0) { $0 + abs(Double($1)) }, squares = x.reduce(0.0) { $0 + Double($1) * Double($1) }
        func total(_ name: String, _ variant: String, _ tolerance: Tolerance, _ input: @escaping @Sendable () -> [Float],
                   _ operation: @escaping @Sendable (any Backend, Tensor, Tensor) -> Void) -> KernelCase {
            KernelCase(.reduction, name, "\(n)\(variant)", tolerance) { be in
                let x = try be.tensor(input(), shape: [n]), result = try be.tensor([Float(17)], shape: [1])
                return .init({ operation(be, x, result) }, output: result)
            }
        }
        return [
            total("sum", "", summation(terms: n, mass: mass), { CheckInputs.uniform(n, seed: UInt64(n)) }) { $0.sum($1, into: $2) },
            total("sum", " of integers", .exact, { smallIntegers(n, seed: UInt64(n) + 1) }) { $0.sum($1, into: $2) },
            total("sum of squares", "", summation(terms: n, mass: squares), { CheckInputs.uniform(n, seed: UInt64(n)) }) { $0.sumOfSquares($1, into: $2) },
            total("sum of squares", " of −1, 0, 1", .exact, { smallIntegers(n, seed: UInt64(n) + 2, magnitude: 1) }) { $0.sumOfSquares($1, into: $2) },
        ]
    }

    /// y = (x − max) − log Σ: log Σ carries the sum's relative drift and exp's few ulp as an absolute error; x − max and
    /// the last subtraction round at 2ε of |y| (doubled, as for the sums). Scales up to ±80: exp(80) overflows nothing
    /// only if the maximum is subtracted first. Then extreme rows, in place: all equal, one huge entry, ±80
    /// alternating, and −∞ entries (masked logits).
    static let logSoftmax = rowSoftmaxCases("log-softmax", seed: 38, extremeTolerance: Tolerance(absolute: 1e-5, relative: 1e-6),
                                            tolerance: { Tolerance(absolute: 2 * (Tolerance.summationDrift(terms: $0) + 1e-6), relative: 4.8e-7) },
                                            { be, x, y in be.logSoftmaxRows(x, into: y) })

    /// y = exp(log-softmax): exp turns log-softmax's absolute error into a relative one, plus exp's few ulp; entries of
    /// rows dominated by one column are tiny and exact to their own scale. The extreme rows again, in place.
    static let softmax = rowSoftmaxCases("softmax", seed: 39, extremeTolerance: Tolerance(absolute: 1e-7, relative: 1e-5),
                                         tolerance: { Tolerance(absolute: 1e-7, relative: 2 * (Tolerance.summationDrift(terms: $0) + 1e-6)) },
                                         { be, x, y in be.softmaxRows(x, into: y) })

    /// The cases of one row-wise softmax operation `run(backend, x, y)`: every reduction shape at scales 1, 10 and 80
    /// (tolerance per column count), then the 4×33 extreme rows in place.
    static func rowSoftmaxCases(_ name: String, seed: UInt64, extremeTolerance: Tolerance, tolerance: @escaping @Sendable (Int) -> Tolerance,
                                _ run: @escaping @Sendable (any Backend, Tensor, Tensor) -> Void) -> [KernelCase] {
        reductionShapes.flatMap { rows, columns in
            [Float(1), 10, 80].map { scale in
                KernelCase(.reduction, name, "\(dims(rows, columns)), scale \(scale)", tolerance(columns)) { be in
                    let x = try be.tensor(CheckInputs.uniform(rows * columns, seed: seed).map { $0 * scale }, shape: [rows, columns])
                    let y = try be.tensor(CheckInputs.nan(rows * columns), shape: [rows, columns])
                    return .init({ run(be, x, y) }, output: y)
                }
            }
        } + [
            KernelCase(.reduction, name, "4×33 extreme rows, in place", extremeTolerance) { be in
                let columns = 33
                var x = [Float](repeating: 3, count: columns)
                x += (0..<columns).map { $0 == 17 ? 1e4 : 0 }
                x += (0..<columns).map { $0 % 2 == 0 ? 80 : -80 }
                x += (0..<columns).map { $0 % 3 == 0 ? -.infinity : Float($0) / 10 }
                let t = try be.tensor(x, shape: [4, columns])
                return .init({ run(be, t, t) }, output: t)
            },
        ]
    }

    // MARK: Random numbers

    /// Philox streams are bit-identical on every backend, at any seed and counter offset (past 2³²), including
    /// offsets whose block or pair counters carry into the high word inside one work-item's eight lanes.
    static let randomStreams: [(seed: UInt64, offset: UInt64, count: Int)] = [
        (42, 7, 257), (1, 0, 1), (0xDEAD_BEEF_1234, 1 << 33, 100_003), (7, (1 << 33) - 5, 1000), (9, (1 << 34) - 6, 1000),
    ]
    static let random: [KernelCase] = randomStreams.flatMap { seed, offset, n in
        [("philox uniform", false), ("philox normal", true)].map { name, normal in
            KernelCase(.random, name, "\(n), seed \(seed), offset \(offset)", .exact) { be in
                let t = try be.tensor(CheckInputs.nan(n), shape: [n])
                return .init({ normal ? be.fillNormal(t, seed: seed, offset: offset) : be.fillUniform(t, seed: seed, offset: offset) }, output: t)
            }
        }
    }
}
