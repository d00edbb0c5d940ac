import Foundation
import RefitCompute
import Testing

/// Element-wise operations, OpenCL against the CPU reference.
///
/// Tolerances: add, multiply, scale, copies and dropout are single IEEE operations and must match bit for bit.
/// axpy and combineRows are `a·x + y`, which OpenCL C may contract into one fused multiply-add (FP_CONTRACT is on by
/// default), so they may differ by one rounding: 2⁻²³ relative, plus 1e-7 absolute for results near zero.
/// tanh: OpenCL allows 5 ulp, glibc ≤ 1: 1e-6 relative and 1e-7 absolute.
@Suite struct ElementwiseTests {
    @Test(arguments: elementCounts)
    func addMultiplyScale(count: Int) throws {
        guard let pair = try BackendPair.make() else { return }
        let a = randomValues(count, seed: 1), b = randomValues(count, seed: 2)
        let (sum, sumRef) = try pair.both { be in
            let c = try be.makeTensor([count], .float32)
            be.add(try be.tensor(a, shape: [count]), try be.tensor(b, shape: [count]), into: c)
            return try be.readFloats(c)
        }
        expectIdentical(sum, sumRef, "add [\(count)]")
        expectIdentical(sumRef, zip(a, b).map(+), "reference add [\(count)]")

        let (product, productRef) = try pair.both { be in
            let c = try be.makeTensor([count], .float32)
            be.multiply(try be.tensor(a, shape: [count]), try be.tensor(b, shape: [count]), into: c)
            return try be.readFloats(c)
        }
        expectIdentical(product, productRef, "multiply [\(count)]")
        expectIdentical(productRef, zip(a, b).map(*), "reference multiply [\(count)]")

        let (scaled, scaledRef) = try pair.both { be in
            let x = try be.tensor(a, shape: [count])
            be.scale(x, by: -1.75)
            return try be.readFloats(x)
        }
        expectIdentical(scaled, scaledRef, "scale [\(count)]")
        expectIdentical(scaledRef, a.map { $0 * -1.75 }, "reference scale [\(count)]")
    }

    @Test(arguments: elementCounts)
    func axpy(count: Int) throws {
        guard let pair = try BackendPair.make() else { return }
        let x = randomValues(count, seed: 3), y = randomValues(count, seed: 4)
        let (result, reference) = try pair.both { be in
            let yt = try be.tensor(y, shape: [count])
            be.axpy(0.37, try be.tensor(x, shape: [count]), yt)
            return try be.readFloats(yt)
        }
        expectClose(result, reference, absolute: 1e-7, relative: 1.2e-7, "axpy [\(count)]")
        expectClose(reference, zip(x, y).map { Double($1) + 0.37 * Double($0) }, absolute: 1e-7, relative: 1.2e-7, "reference axpy [\(count)]")
    }

    @Test(arguments: elementCounts)
    func tanhAndItsBackward(count: Int) throws {
        guard let pair = try BackendPair.make() else { return }
        // Spread inputs over [-12, 12) to reach saturation, where tanh must be exactly ±1 or within an ulp of it.
        let x = randomValues(count, seed: 5).map { $0 * 12 }
        let dY = randomValues(count, seed: 6)
        let (y, yRef) = try pair.both { be in
            let yt = try be.makeTensor([count], .float32)
            be.tanh(try be.tensor(x, shape: [count]), into: yt)
            return try be.readFloats(yt)
        }
        expectClose(y, yRef, absolute: 1e-7, relative: 1e-6, "tanh [\(count)]")
        expectClose(yRef, x.map { Foundation.tanh(Double($0)) }, absolute: 1e-7, relative: 1e-6, "reference tanh [\(count)]")

        // In place (y aliases x).
        let (inPlace, _) = try pair.both { be in
            let xt = try be.tensor(x, shape: [count])
            be.tanh(xt, into: xt)
            return try be.readFloats(xt)
        }
        expectClose(inPlace, yRef, absolute: 1e-7, relative: 1e-6, "tanh in place [\(count)]")

        for activation in Activation.allCases {
            // The backward takes the forward's output; feed both backends the reference's y so only the backward differs.
            let (dPre, dPreRef) = try pair.both { be in
                let d = try be.makeTensor([count], .float32)
                be.activationBackward(dY: try be.tensor(dY, shape: [count]), y: try be.tensor(yRef, shape: [count]), activation: activation, into: d)
                return try be.readFloats(d)
            }
            expectClose(dPre, dPreRef, absolute: 1e-7, relative: 1.2e-7, "activationBackward \(activation) [\(count)]")
            let expected: [Double] = zip(dY, yRef).map { (d: Float, y: Float) -> Double in
                activation == .tanh ? Double(d) * (1 - Double(y) * Double(y)) : Double(d)
            }
            expectClose(dPreRef, expected, absolute: 1e-7, relative: 1e-6, "reference activationBackward \(activation) [\(count)]")
            // In place, as linearBackward calls it.
            let (aliased, _) = try pair.both { be in
                let d = try be.tensor(dY, shape: [count])
                be.activationBackward(dY: d, y: try be.tensor(yRef, shape: [count]), activation: activation, into: d)
                return try be.readFloats(d)
            }
            expectClose(aliased, dPreRef, absolute: 1e-7, relative: 1.2e-7, "activationBackward \(activation) in place [\(count)]")
        }
    }

    @Test(arguments: elementCounts)
    func dropoutMaskIsIdenticalAcrossBackends(count: Int) throws {
        guard let pair = try BackendPair.make() else { return }
        let x = randomValues(count, seed: 7)
        for (probability, seed, offset) in [(Float(0.5), UInt64(1), UInt64(0)), (0.1, 99, 12_345), (0.9, 0xFFFF_FFFF_FFFF, 1 << 40), (0, 5, 5)] {
            let (y, yRef) = try pair.both { be in
                let yt = try be.makeTensor([count], .float32)
                be.dropout(try be.tensor(x, shape: [count]), probability: probability, seed: seed, offset: offset, into: yt)
                return try be.readFloats(yt)
            }
            expectIdentical(y, yRef, "dropout p=\(probability) [\(count)]")
            let scale = 1 / (1 - probability)
            for i in 0..<count {
                let kept = Philox.uniform(seed: seed, index: offset &+ UInt64(i)) >= probability
                if yRef[i] != (kept ? x[i] * scale : 0) {
                    Issue.record("reference dropout p=\(probability): element \(i) is \(yRef[i]), expected \(kept ? x[i] * scale : 0)")
                    break
                }
            }
        }
    }

    /// Calling dropout again with the same (seed, offset) on dY is the backward pass: the same entries are kept and
    /// scaled. Also in place, which is how a training step uses it.
    @Test func dropoutTwiceIsItsBackward() throws {
        guard let pair = try BackendPair.make() else { return }
        let count = 4099
        let x = randomValues(count, seed: 8).map { $0 + 2 }  // never zero, so a zero output means dropped
        let dY = randomValues(count, seed: 9).map { $0 - 2 }
        for be in [pair.device, pair.reference] {
            let xt = try be.tensor(x, shape: [count])
            be.dropout(xt, probability: 0.3, seed: 77, offset: 1000, into: xt)
            let y = try be.readFloats(xt)
            let dt = try be.tensor(dY, shape: [count])
            be.dropout(dt, probability: 0.3, seed: 77, offset: 1000, into: dt)
            let dX = try be.readFloats(dt)
            let scale: Float = 1 / 0.7
            for i in 0..<count {
                let kept = y[i] != 0
                if kept != (dX[i] != 0) || (kept && (y[i] != x[i] * scale || dX[i] != dY[i] * scale)) {
                    Issue.record("\(be.deviceDescription): element \(i): y \(y[i]) (x \(x[i])), dX \(dX[i]) (dY \(dY[i]))")
                    break
                }
            }
            // Element i uses counter offset + i: a shifted call is the matching slice of a longer one.
            let shifted = try be.tensor(Array(x[10...]), shape: [count - 10])
            be.dropout(shifted, probability: 0.3, seed: 77, offset: 1010, into: shifted)
            expectIdentical(try be.readFloats(shifted), Array(y[10...]), "\(be.deviceDescription): dropout offset")
        }
    }

    @Test func dropoutKeepRateIsOneMinusP() throws {
        guard let pair = try BackendPair.make() else { return }
        let count = 200_000
        for probability: Float in [0.1, 0.5, 0.8] {
            let y = try pair.device.makeTensor([count], .float32)
            pair.device.fill(y, with: 1)
            pair.device.dropout(y, probability: probability, seed: 2024, offset: 0, into: y)
            let values = try pair.device.readFloats(y)
            let kept = values.filter { $0 != 0 }
            let rate = Double(kept.count) / Double(count)
            // Binomial standard error √(p(1−p)/n) ≤ 0.0012; allow five.
            let tolerance = 5 * (Double(probability) * Double(1 - probability) / Double(count)).squareRoot()
            #expect(abs(rate - Double(1 - probability)) < tolerance, "p=\(probability): kept \(rate)")
            #expect(kept.allSatisfy { $0 == 1 / (1 - probability) }, "p=\(probability): kept entries are scaled by 1/(1−p)")
            // The sum is preserved in expectation (inverted dropout).
            let mean = values.reduce(0.0) { $0 + Double($1) } / Double(count)
            #expect(abs(mean - 1) < 5 * (Double(probability) / Double(1 - probability) / Double(count)).squareRoot())
        }
    }

    @Test(arguments: rowShapes)
    func copyColumns(rows: Int, columns: Int) throws {
        guard let pair = try BackendPair.make() else { return }
        let source = randomValues(rows * columns, seed: 10)
        let destinationColumns = columns + 13
        let destination = randomValues(rows * destinationColumns, seed: 11)
        for (sourceColumn, destinationColumn, width) in [(0, 0, columns), (0, 13, columns), (columns / 2, 3, columns - columns / 2), (columns - 1, 0, 1)] {
            let (result, reference) = try pair.both { be in
                let d = try be.tensor(destination, shape: [rows, destinationColumns])
                be.copyColumns(try be.tensor(source, shape: [rows, columns]), sourceColumn: sourceColumn, into: d,
                               destinationColumn: destinationColumn, width: width)
                return try be.readFloats(d)
            }
            let what = "copyColumns \(rows)×\(columns) [\(sourceColumn)..+\(width)] → \(destinationColumn)"
            expectIdentical(result, reference, what)
            var expected = destination
            for r in 0..<rows {
                for c in 0..<width { expected[r * destinationColumns + destinationColumn + c] = source[r * columns + sourceColumn + c] }
            }
            expectIdentical(reference, expected, "reference " + what)
        }
    }

    @Test(arguments: rowShapes)
    func combineRows(rows: Int, columns: Int) throws {
        guard let pair = try BackendPair.make() else { return }
        let x = randomValues(rows * columns, seed: 12), y = randomValues(rows * columns, seed: 13)
        let a = randomValues(rows, seed: 14), b = randomValues(rows, seed: 15).map { $0 * 3 }
        for alias in ["none", "x", "y"] {
            let (result, reference) = try pair.both { be in
                let xt = try be.tensor(x, shape: [rows, columns]), yt = try be.tensor(y, shape: [rows, columns])
                let z = alias == "x" ? xt : alias == "y" ? yt : try be.makeTensor([rows, columns], .float32)
                be.combineRows(xt, scaledBy: try be.tensor(a, shape: [rows]), yt, scaledBy: try be.tensor(b, shape: [rows]), into: z)
                return try be.readFloats(z)
            }
            let expected = (0..<rows * columns).map { i in Double(a[i / columns]) * Double(x[i]) + Double(b[i / columns]) * Double(y[i]) }
            // Two products and a sum: up to two roundings of values ≤ 4 in magnitude.
            expectClose(result, reference, absolute: 1e-6, relative: 2.4e-7, "combineRows \(rows)×\(columns) alias \(alias)")
            expectClose(reference, expected, absolute: 1e-6, relative: 2.4e-7, "reference combineRows \(rows)×\(columns)")
        }
    }

    @Test func gather() throws {
        guard let pair = try BackendPair.make() else { return }
        for (tableSize, count) in [(1, 1), (40, 7), (40, 400), (1000, 257), (1000, 100_003)] {
            let table = randomValues(tableSize, seed: 16)
            let indices = randomInts(count, in: 0..<tableSize, seed: 17)
            let (result, reference) = try pair.both { be in
                let y = try be.makeTensor([count], .float32)
                be.gather(try be.tensor(table, shape: [tableSize]), indices: try be.tensor(indices, shape: [count]), into: y)
                return try be.readFloats(y)
            }
            expectIdentical(result, reference, "gather \(tableSize) → \(count)")
            expectIdentical(reference, indices.map { table[Int($0)] }, "reference gather")
        }
    }
}
