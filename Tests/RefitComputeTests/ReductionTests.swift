import Foundation
import RefitCompute
import Testing

/// Reductions and the row-wise log-softmax, OpenCL against the CPU reference (and the reference against Float64).
///
/// Tolerances: the backends add in different orders (the reference left to right, the kernels in work-group trees), so
/// float32 sums of n terms may differ by about ε·√n·Σ|x| in the typical case and n·ε·Σ|x| at worst. The tests allow
/// 2⁻²¹·Σ|x| + 1e-6 (4 ε times the mass), which a correct fp32 sum of the sizes below stays well inside, while a lost,
/// doubled or misplaced term (about Σ|x|/n) fails up to n ≈ 2²¹, and a lost block of terms fails at any size.
@Suite struct ReductionTests {
    static let massTolerance = 1.0 / Double(1 << 21)

    /// |a − b| ≤ 2⁻²¹·mass[i] + 1e-6 for each row.
    func expectSumsClose(_ a: [Float], _ b: [Double], mass: [Double], _ what: String,
                         sourceLocation: SourceLocation = #_sourceLocation) {
        var worst = 0, worstExcess = -Double.infinity
        for i in a.indices {
            let excess = abs(Double(a[i]) - b[i]) - (Self.massTolerance * mass[i] + 1e-6)
            if excess > worstExcess { worst = i; worstExcess = excess }
        }
        #expect(worstExcess <= 0, "\(what): row \(worst) is \(a[worst]), expected \(b[worst]) (mass \(mass[worst]))",
                sourceLocation: sourceLocation)
    }

    @Test(arguments: rowShapes + [(400, 2810)])
    func sumRows(rows: Int, columns: Int) throws {
        guard let pair = try BackendPair.make() else { return }
        let x = randomValues(rows * columns, seed: 31)
        let (y, yRef) = try pair.both { be in
            let out = try be.tensor(randomValues(rows, seed: 32), shape: [rows])  // overwritten, not accumulated
            be.sumRows(try be.tensor(x, shape: [rows, columns]), into: out)
            return try be.readFloats(out)
        }
        let exact = (0..<rows).map { r in x[r * columns..<(r + 1) * columns].reduce(0.0) { $0 + Double($1) } }
        let mass = (0..<rows).map { r in x[r * columns..<(r + 1) * columns].reduce(0.0) { $0 + abs(Double($1)) } }
        expectSumsClose(y, exact, mass: mass, "sumRows \(rows)×\(columns)")
        expectSumsClose(yRef, exact, mass: mass, "reference sumRows \(rows)×\(columns)")
        expectSumsClose(y, yRef.map(Double.init), mass: mass.map { 2 * $0 }, "sumRows \(rows)×\(columns) vs reference")
    }

    @Test(arguments: rowShapes + [(400, 2810)])
    func sumColumns(rows: Int, columns: Int) throws {
        guard let pair = try BackendPair.make() else { return }
        let x = randomValues(rows * columns, seed: 33)
        let initial = randomValues(columns, seed: 34)
        let exact = (0..<columns).map { c in (0..<rows).reduce(0.0) { $0 + Double(x[$1 * columns + c]) } }
        let mass = (0..<columns).map { c in (0..<rows).reduce(0.0) { $0 + abs(Double(x[$1 * columns + c])) } }
        // beta 0 overwrites, even a NaN (as an uninitialised gradient buffer may hold); beta 1 accumulates.
        for beta: Float in [0, 1, 0.5] {
            let (y, yRef) = try pair.both { be in
                let out = try be.tensor(beta == 0 ? [Float](repeating: .nan, count: columns) : initial, shape: [columns])
                be.sumColumns(try be.tensor(x, shape: [rows, columns]), into: out, beta: beta)
                return try be.readFloats(out)
            }
            let expected = (0..<columns).map { beta == 0 ? exact[$0] : Double(beta) * Double(initial[$0]) + exact[$0] }
            let withInitial = (0..<columns).map { mass[$0] + abs(Double(initial[$0])) }
            expectSumsClose(y, expected, mass: withInitial, "sumColumns beta \(beta) \(rows)×\(columns)")
            expectSumsClose(yRef, expected, mass: withInitial, "reference sumColumns beta \(beta) \(rows)×\(columns)")
        }
    }

    @Test(arguments: [1, 7, 33, 257, 4099, 100_003, 1_000_003, 3_622_320])
    func sumAndSumOfSquares(count: Int) throws {
        guard let pair = try BackendPair.make() else { return }
        let x = randomValues(count, seed: UInt64(count))
        let exact = x.reduce(0.0) { $0 + Double($1) }
        let mass = x.reduce(0.0) { $0 + abs(Double($1)) }
        let exactSquares = x.reduce(0.0) { $0 + Double($1) * Double($1) }
        let (total, totalRef) = try pair.both { be in
            let result = try be.tensor([Float(17)], shape: [1])
            be.sum(try be.tensor(x, shape: [count]), into: result)
            return try be.readFloats(result)
        }
        expectSumsClose(total, [exact], mass: [mass], "sum [\(count)]")
        expectSumsClose(totalRef, [exact], mass: [mass], "reference sum [\(count)]")
        let (squares, squaresRef) = try pair.both { be in
            let result = try be.tensor([Float(17)], shape: [1])
            be.sumOfSquares(try be.tensor(x, shape: [count]), into: result)
            return try be.readFloats(result)
        }
        expectSumsClose(squares, [exactSquares], mass: [exactSquares], "sumOfSquares [\(count)]")
        expectSumsClose(squaresRef, [exactSquares], mass: [exactSquares], "reference sumOfSquares [\(count)]")
    }

    /// The whole-tensor reductions also work on a view (a sub-buffer) and give the same value twice (deterministic order).
    @Test func totalReductionsAreDeterministicAndWorkOnViews() throws {
        guard let pair = try BackendPair.make() else { return }
        let be = pair.device
        let count = 300_007
        let x = randomValues(count + 2 * be.viewAlignment, seed: 35)
        let parent = try be.tensor(x, shape: [x.count])
        let view = be.view(parent, offset: be.viewAlignment, shape: [count])
        let slice = x[be.viewAlignment..<be.viewAlignment + count]
        let result = try be.makeTensor([1], .float32)
        be.sumOfSquares(view, into: result)
        let first = try be.readScalar(result)
        be.sumOfSquares(view, into: result)
        #expect(try be.readScalar(result).bitPattern == first.bitPattern)
        let exact = slice.reduce(0.0) { $0 + Double($1) * Double($1) }
        expectSumsClose([first], [exact], mass: [exact], "sumOfSquares of a view")
    }

    @Test(arguments: rowShapes + [(400, 2810)])
    func logSoftmaxRows(rows: Int, columns: Int) throws {
        guard let pair = try BackendPair.make() else { return }
        // Scales up to ±80: exp(80) overflows nothing only if the maximum is subtracted first.
        for scale: Float in [1, 10, 80] {
            let x = randomValues(rows * columns, seed: 36).map { $0 * scale }
            let (y, yRef) = try pair.both { be in
                let out = try be.makeTensor([rows, columns], .float32)
                be.logSoftmaxRows(try be.tensor(x, shape: [rows, columns]), into: out)
                return try be.readFloats(out)
            }
            var expected = [Double](repeating: 0, count: rows * columns)
            for r in 0..<rows {
                let row = x[r * columns..<(r + 1) * columns].map(Double.init)
                let maximum = row.max()!
                let logNormaliser = maximum + Foundation.log(row.reduce(0) { $0 + Foundation.exp($1 - maximum) })
                for c in 0..<columns { expected[r * columns + c] = row[c] - logNormaliser }
            }
            // y = x − logΣexp: the normaliser carries the sum's relative error (≤ ~1e-6 here) as an absolute error,
            // and y itself rounds at |y| ≤ 2·scale + log N: 3e-6 + 2ε relative.
            expectClose(y, expected, absolute: 3e-6, relative: 2.4e-7, "logSoftmaxRows scale \(scale) \(rows)×\(columns)")
            expectClose(yRef, expected, absolute: 3e-6, relative: 2.4e-7, "reference logSoftmaxRows scale \(scale) \(rows)×\(columns)")
            expectClose(y, yRef.map(Double.init), absolute: 6e-6, relative: 4.8e-7, "logSoftmaxRows scale \(scale) \(rows)×\(columns) vs reference")
        }
    }

    @Test func logSoftmaxRowsInPlaceAndExtremes() throws {
        guard let pair = try BackendPair.make() else { return }
        let columns = 33
        // Row 0 all equal; row 1 one huge entry; row 2 ±80 alternating; row 3 has −∞ entries (masked logits).
        var x = [Float](repeating: 3, count: columns)
        x += (0..<columns).map { $0 == 17 ? 1e4 : 0 }
        x += (0..<columns).map { $0 % 2 == 0 ? 80 : -80 }
        x += (0..<columns).map { $0 % 3 == 0 ? -.infinity : Float($0) / 10 }
        let rows = x.count / columns
        let (y, yRef) = try pair.both { be in
            let t = try be.tensor(x, shape: [rows, columns])
            be.logSoftmaxRows(t, into: t)
            return try be.readFloats(t)
        }
        expectClose(y, yRef, absolute: 1e-5, relative: 1e-6, "logSoftmaxRows extremes in place")
        #expect(y[0...].prefix(columns).allSatisfy { abs($0 + Foundation.log(Float(columns))) < 1e-6 })
        #expect(y[columns + 17] == 0 && y[columns] == -1e4)
        for c in 0..<columns where c % 3 == 0 { #expect(y[3 * columns + c] == -.infinity) }
        #expect(y.allSatisfy { !$0.isNaN })
    }
}
