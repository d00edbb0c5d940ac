import Foundation
import RefitCompute
import Testing

/// Element-wise operations: the CPU reference against their formulas (KernelCaseTests compares every kernel with it),
/// and dropout's mask on both backends.
///
/// add, multiply, scale, copies and dropout are single IEEE operations and must match bit for bit. axpy and
/// combineRows round once or twice (2⁻²³ relative, plus 1e-7 absolute near zero); tanh within 1e-6 relative.
@Suite struct ElementwiseTests {
    let reference = CPUBackend()

    @Test(arguments: [1, 4099])
    func referenceAddMultiplyScale(count: Int) throws {
        let cpu = reference
        let a = randomValues(count, seed: 1), b = randomValues(count, seed: 2)
        let (at, bt, c) = (try cpu.tensor(a, shape: [count]), try cpu.tensor(b, shape: [count]), try cpu.makeTensor([count], .float32))
        cpu.add(at, bt, into: c)
        expectIdentical(try cpu.readFloats(c), zip(a, b).map(+), "add [\(count)]")
        cpu.multiply(at, bt, into: c)
        expectIdentical(try cpu.readFloats(c), zip(a, b).map(*), "multiply [\(count)]")
        cpu.scale(at, by: -1.75)
        expectIdentical(try cpu.readFloats(at), a.map { $0 * -1.75 }, "scale [\(count)]")
    }

    @Test func referenceAxpy() throws {
        let (cpu, count) = (reference, 4099)
        let x = randomValues(count, seed: 3), y = randomValues(count, seed: 4)
        let yt = try cpu.tensor(y, shape: [count])
        cpu.axpy(0.37, try cpu.tensor(x, shape: [count]), yt)
        expectClose(try cpu.readFloats(yt), zip(x, y).map { Double($1) + 0.37 * Double($0) }, absolute: 1e-7, relative: 1.2e-7, "axpy")
    }

    @Test func referenceTanhAndItsBackward() throws {
        let (cpu, count) = (reference, 4099)
        // Spread inputs over [-12, 12) to reach saturation, where tanh must be exactly ±1 or within an ulp of it.
        let x = randomValues(count, seed: 5).map { $0 * 12 }, dY = randomValues(count, seed: 6)
        let yt = try cpu.makeTensor([count], .float32)
        cpu.tanh(try cpu.tensor(x, shape: [count]), into: yt)
        let y = try cpu.readFloats(yt)
        expectClose(y, x.map { Foundation.tanh(Double($0)) }, absolute: 1e-7, relative: 1e-6, "tanh")
        for activation in Activation.allCases {
            let d = try cpu.makeTensor([count], .float32)
            cpu.activationBackward(dY: try cpu.tensor(dY, shape: [count]), y: yt, activation: activation, into: d)
            let expected: [Double] = zip(dY, y).map { (d: Float, y: Float) -> Double in
                activation == .tanh ? Double(d) * (1 - Double(y) * Double(y)) : Double(d)
            }
            expectClose(try cpu.readFloats(d), expected, absolute: 1e-7, relative: 1e-6, "activationBackward \(activation)")
        }
    }

    /// Entry i is kept when the Philox uniform at counter offset + i is at least p, and scaled by 1/(1 − p).
    @Test func referenceDropoutFollowsPhilox() throws {
        let (cpu, count) = (reference, 4099)
        let x = randomValues(count, seed: 7)
        for (probability, seed, offset) in [(Float(0.5), UInt64(1), UInt64(0)), (0.9, 0xFFFF_FFFF_FFFF, 1 << 40), (0, 5, 5)] {
            let yt = try cpu.makeTensor([count], .float32)
            cpu.dropout(try cpu.tensor(x, shape: [count]), probability: probability, seed: seed, offset: offset, into: yt)
            let expected = (0..<count).map { i in
                Philox.uniform(seed: seed, index: offset &+ UInt64(i)) >= probability ? x[i] * (1 / (1 - probability)) : 0
            }
            expectIdentical(try cpu.readFloats(yt), expected, "dropout p=\(probability)")
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

    @Test func referenceCopyColumns() throws {
        let (cpu, rows, columns) = (reference, 7, 33)
        let source = randomValues(rows * columns, seed: 10)
        let destinationColumns = columns + 13
        let destination = randomValues(rows * destinationColumns, seed: 11)
        for (sourceColumn, destinationColumn, width) in [(0, 13, columns), (columns / 2, 3, columns - columns / 2), (columns - 1, 0, 1)] {
            let d = try cpu.tensor(destination, shape: [rows, destinationColumns])
            cpu.copyColumns(try cpu.tensor(source, shape: [rows, columns]), sourceColumn: sourceColumn, into: d,
                            destinationColumn: destinationColumn, width: width)
            var expected = destination
            for r in 0..<rows {
                for c in 0..<width { expected[r * destinationColumns + destinationColumn + c] = source[r * columns + sourceColumn + c] }
            }
            expectIdentical(try cpu.readFloats(d), expected, "copyColumns [\(sourceColumn)..+\(width)] → \(destinationColumn)")
        }
    }

    @Test func referenceCombineRows() throws {
        let (cpu, rows, columns) = (reference, 7, 33)
        let x = randomValues(rows * columns, seed: 12), y = randomValues(rows * columns, seed: 13)
        let a = randomValues(rows, seed: 14), b = randomValues(rows, seed: 15).map { $0 * 3 }
        let z = try cpu.makeTensor([rows, columns], .float32)
        cpu.combineRows(try cpu.tensor(x, shape: [rows, columns]), scaledBy: try cpu.tensor(a, shape: [rows]),
                        try cpu.tensor(y, shape: [rows, columns]), scaledBy: try cpu.tensor(b, shape: [rows]), into: z)
        let expected = (0..<rows * columns).map { i in Double(a[i / columns]) * Double(x[i]) + Double(b[i / columns]) * Double(y[i]) }
        // Two products and a sum: up to two roundings of values ≤ 4 in magnitude.
        expectClose(try cpu.readFloats(z), expected, absolute: 1e-6, relative: 2.4e-7, "combineRows")
    }

    @Test func referenceGather() throws {
        let (cpu, tableSize, count) = (reference, 40, 400)
        let table = randomValues(tableSize, seed: 16), indices = randomInts(count, in: 0..<tableSize, seed: 17)
        let y = try cpu.makeTensor([count], .float32)
        cpu.gather(try cpu.tensor(table, shape: [tableSize]), indices: try cpu.tensor(indices, shape: [count]), into: y)
        expectIdentical(try cpu.readFloats(y), indices.map { table[Int($0)] }, "gather")
    }
}
