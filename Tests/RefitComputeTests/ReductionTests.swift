import Foundation
import RefitCompute
import Testing

/// Reductions and the row-wise log-softmax: the CPU reference against Float64 (KernelCaseTests compares every kernel
/// with it), and what holds on every backend: determinism, views, extreme rows.
///
/// Tolerances: the reference adds left to right, so random inputs are compared within `summationTolerance(n)` of the
/// sum of absolute values. Inputs of small integers sum exactly in any order (every partial sum is an integer below
/// 2²⁴), so there the sum must be exact: that catches a lost, doubled or misplaced term however large the tensor.
@Suite struct ReductionTests {
    static let shapes = [(1, 1), (7, 33), (257, 33), (3, 2810)]

    /// |a − b| ≤ summationTolerance(n)·mass[i] + 1e-6 for each entry.
    func expectSumsClose(_ a: [Float], _ b: [Double], mass: [Double], terms n: Int, _ what: String,
                         sourceLocation: SourceLocation = #_sourceLocation) {
        var worst = 0, worstExcess = -Double.infinity
        for i in a.indices {
            let excess = abs(Double(a[i]) - b[i]) - (summationTolerance(n) * mass[i] + 1e-6)
            if excess > worstExcess { worst = i; worstExcess = excess }
        }
        #expect(worstExcess <= 0, "\(what): entry \(worst) is \(a[worst]), expected \(b[worst]) (mass \(mass[worst]))",
                sourceLocation: sourceLocation)
    }

    /// Small integers in −8…8 (and, for sums of squares, in −1…1): exact float sums in any order.
    func smallIntegers(_ count: Int, seed: UInt64, magnitude: Int = 8) -> [Float] {
        randomInts(count, in: -magnitude..<magnitude + 1, seed: seed).map(Float.init)
    }

    @Test(arguments: shapes)
    func sumRows(rows: Int, columns: Int) throws {
        let x = randomValues(rows * columns, seed: 31)
        let integers = smallIntegers(rows * columns, seed: 32)
        let exact = (0..<rows).map { r in x[r * columns..<(r + 1) * columns].reduce(0.0) { $0 + Double($1) } }
        let mass = (0..<rows).map { r in x[r * columns..<(r + 1) * columns].reduce(0.0) { $0 + abs(Double($1)) } }
        let exactIntegers = (0..<rows).map { r in integers[r * columns..<(r + 1) * columns].reduce(0, +) }
        let be = CPUBackend()
        let out = try be.tensor(randomValues(rows, seed: 33), shape: [rows])  // overwritten, not accumulated
        be.sumRows(try be.tensor(x, shape: [rows, columns]), into: out)
        expectSumsClose(try be.readFloats(out), exact, mass: mass, terms: columns, "sumRows \(rows)×\(columns)")
        be.sumRows(try be.tensor(integers, shape: [rows, columns]), into: out)
        expectIdentical(try be.readFloats(out), exactIntegers, "sumRows of integers \(rows)×\(columns)")
    }

    @Test(arguments: shapes)
    func sumColumns(rows: Int, columns: Int) throws {
        let x = randomValues(rows * columns, seed: 34)
        let initial = randomValues(columns, seed: 35)
        let exact = (0..<columns).map { c in (0..<rows).reduce(0.0) { $0 + Double(x[$1 * columns + c]) } }
        let mass = (0..<columns).map { c in (0..<rows).reduce(0.0) { $0 + abs(Double(x[$1 * columns + c])) } }
        let integers = smallIntegers(rows * columns, seed: 36)
        let exactIntegers = (0..<columns).map { c in (0..<rows).reduce(Float(0)) { $0 + integers[$1 * columns + c] } }
        let be = CPUBackend()
        // beta 0 overwrites, even a NaN (as an uninitialised gradient buffer may hold); beta 1 accumulates.
        for beta: Float in [0, 1, 0.5] {
            let out = try be.tensor(beta == 0 ? [Float](repeating: .nan, count: columns) : initial, shape: [columns])
            be.sumColumns(try be.tensor(x, shape: [rows, columns]), into: out, beta: beta)
            let expected = (0..<columns).map { beta == 0 ? exact[$0] : Double(beta) * Double(initial[$0]) + exact[$0] }
            let withInitial = (0..<columns).map { mass[$0] + abs(Double(initial[$0])) }
            expectSumsClose(try be.readFloats(out), expected, mass: withInitial, terms: rows + 1,
                            "sumColumns beta \(beta) \(rows)×\(columns)")
        }
        let out = try be.makeTensor([columns], .float32)
        be.sumColumns(try be.tensor(integers, shape: [rows, columns]), into: out, beta: 0)
        expectIdentical(try be.readFloats(out), exactIntegers, "sumColumns of integers \(rows)×\(columns)")
    }

    @Test(arguments: [1, 257, 100_003])
    func sumAndSumOfSquares(count: Int) throws {
        let x = randomValues(count, seed: UInt64(count))
        let exact = x.reduce(0.0) { $0 + Double($1) }
        let mass = x.reduce(0.0) { $0 + abs(Double($1)) }
        let exactSquares = x.reduce(0.0) { $0 + Double($1) * Double($1) }
        let integers = smallIntegers(count, seed: UInt64(count) + 1)
        let signs = smallIntegers(count, seed: UInt64(count) + 2, magnitude: 1)
        let be = CPUBackend()
        let result = try be.tensor([Float(17)], shape: [1])
        let input = try be.tensor(x, shape: [count])
        be.sum(input, into: result)
        expectSumsClose(try be.readFloats(result), [exact], mass: [mass], terms: count, "sum [\(count)]")
        be.sumOfSquares(input, into: result)
        expectSumsClose(try be.readFloats(result), [exactSquares], mass: [exactSquares], terms: count, "sumOfSquares [\(count)]")
        be.sum(try be.tensor(integers, shape: [count]), into: result)
        #expect(try be.readScalar(result) == integers.reduce(0, +), "sum of integers [\(count)]")
        be.sumOfSquares(try be.tensor(signs, shape: [count]), into: result)
        #expect(try be.readScalar(result) == Float(signs.filter { $0 != 0 }.count), "sumOfSquares of ±1, 0 [\(count)]")
    }

    /// The whole-tensor reductions also work on a view (a sub-buffer) and give the same bits twice (a fixed order).
    @Test func totalReductionsAreDeterministicAndWorkOnViews() throws {
        guard let pair = try BackendPair.make() else { return }
        for (label, be) in try pair.deviceVariants() {
            let count = 300_007
            let x = randomValues(count + 2 * be.viewAlignment, seed: 37)
            let parent = try be.tensor(x, shape: [x.count])
            let view = be.view(parent, offset: be.viewAlignment, shape: [count])
            let result = try be.makeTensor([1], .float32)
            be.sumOfSquares(view, into: result)
            let first = try be.readScalar(result)
            be.sumOfSquares(view, into: result)
            #expect(try be.readScalar(result).bitPattern == first.bitPattern, "sumOfSquares repeats\(label)")
            let exact = x[be.viewAlignment..<be.viewAlignment + count].reduce(0.0) { $0 + Double($1) * Double($1) }
            expectSumsClose([first], [exact], mass: [exact], terms: count, "sumOfSquares of a view\(label)")
        }
    }

    @Test(arguments: shapes)
    func logSoftmaxRows(rows: Int, columns: Int) throws {
        // Scales up to ±80: exp(80) overflows nothing only if the maximum is subtracted first.
        for scale: Float in [1, 10, 80] {
            let x = randomValues(rows * columns, seed: 38).map { $0 * scale }
            var expected = [Double](repeating: 0, count: rows * columns)
            for r in 0..<rows {
                let row = x[r * columns..<(r + 1) * columns].map(Double.init)
                let maximum = row.max()!
                let logTotal = Foundation.log(row.reduce(0) { $0 + Foundation.exp($1 - maximum) })
                for c in 0..<columns { expected[r * columns + c] = row[c] - maximum - logTotal }
            }
            let be = CPUBackend()
            let out = try be.makeTensor([rows, columns], .float32)
            be.logSoftmaxRows(try be.tensor(x, shape: [rows, columns]), into: out)
            // y = (x − max) − log Σ: log Σ carries the sum's relative error (summationTolerance) and exp's few ulp as
            // an absolute error; x − max and the last subtraction round at 2ε of |y|.
            expectClose(try be.readFloats(out), expected, absolute: summationTolerance(columns) + 1e-6, relative: 2.4e-7,
                        "logSoftmaxRows scale \(scale) \(rows)×\(columns)")
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
        for (label, be) in try pair.deviceVariants() + [(" [reference]", pair.reference)] {
            let t = try be.tensor(x, shape: [rows, columns])
            be.logSoftmaxRows(t, into: t)
            let y = try be.readFloats(t)
            #expect(y.prefix(columns).allSatisfy { abs($0 + Foundation.log(Float(columns))) < 1e-6 }, "constant row\(label)")
            #expect(y[columns + 17] == 0 && y[columns] == -1e4, "dominant entry\(label)")
            // ±80: log(17·e⁸⁰ + 16·e⁻⁸⁰) = 80 + log 17.
            expectClose(Array(y[2 * columns..<3 * columns]), (0..<columns).map { $0 % 2 == 0 ? -Foundation.log(17.0) : -160 - Foundation.log(17.0) },
                        absolute: 1e-6, relative: 2.4e-7, "±80 row\(label)")
            for c in 0..<columns where c % 3 == 0 { #expect(y[3 * columns + c] == -.infinity, "−∞ stays −∞\(label)") }
            #expect(y.allSatisfy { !$0.isNaN }, "no NaN\(label)")
        }
    }
}
