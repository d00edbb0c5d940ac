import RefitCompute
import Testing

/// Tensors, views, transfers, fills and copies: exact on both backends.
@Suite struct MemoryTests {
    @Test func newTensorsAreZero() throws {
        guard let pair = try BackendPair.make() else { return }
        for count in elementCounts {
            for backend in [pair.device, pair.reference] {
                // Dirty the allocator first, so a fresh buffer that merely happens to be zero is less likely.
                let dirty = try backend.makeTensor([count], .float32)
                backend.fill(dirty, with: 3)
                _ = try backend.readFloats(dirty)
                let f = try backend.makeTensor([count], .float32)
                #expect(try backend.readFloats(f).allSatisfy { $0.bitPattern == 0 }, "\(backend.deviceDescription): float32 [\(count)] not zeroed")
                let i = try backend.makeTensor([count], .int32)
                #expect(try backend.readInt32s(i).allSatisfy { $0 == 0 }, "\(backend.deviceDescription): int32 [\(count)] not zeroed")
            }
        }
    }

    @Test func writeAndReadRoundTrip() throws {
        guard let pair = try BackendPair.make() else { return }
        for count in elementCounts {
            var floats = randomValues(count, seed: UInt64(count))
            floats[0] = -0.0
            if count > 4 { floats[1] = .infinity; floats[2] = -.infinity; floats[3] = .leastNonzeroMagnitude }
            var ints = randomInts(count, in: -1_000_000..<1_000_000, seed: UInt64(count) + 1)
            if count > 2 { ints[0] = .min; ints[1] = .max; ints[2] = -1 }
            for backend in [pair.device, pair.reference] {
                let f = try backend.tensor(floats, shape: [count])
                expectIdentical(try backend.readFloats(f), floats, "\(backend.deviceDescription): floats [\(count)]")
                let i = try backend.tensor(ints, shape: [count])
                expectIdentical(try backend.readInt32s(i), ints, "\(backend.deviceDescription): int32 [\(count)]")
            }
        }
    }

    @Test func fillFloatAndInt32() throws {
        guard let pair = try BackendPair.make() else { return }
        for count in [1, 7, 33, 257, 100_003] {
            for backend in [pair.device, pair.reference] {
                let f = try backend.tensor(randomValues(count, seed: 5), shape: [count])
                for value: Float in [0, -0.0, 1.5, -.infinity, .greatestFiniteMagnitude] {
                    backend.fill(f, with: value)
                    expectIdentical(try backend.readFloats(f), [Float](repeating: value, count: count), "\(backend.deviceDescription): fill \(value)")
                }
                let i = try backend.tensor(randomInts(count, in: 0..<100, seed: 6), shape: [count])
                for value: Float in [-1, 0, 7, 123_456] {
                    backend.fill(i, with: value)
                    expectIdentical(try backend.readInt32s(i), [Int32](repeating: Int32(value), count: count),
                                    "\(backend.deviceDescription): int32 fill \(value)")
                }
            }
        }
    }

    @Test func copyWholeTensors() throws {
        guard let pair = try BackendPair.make() else { return }
        for count in elementCounts {
            let floats = randomValues(count, seed: 11)
            let ints = randomInts(count, in: -50..<50, seed: 12)
            for backend in [pair.device, pair.reference] {
                let source = try backend.tensor(floats, shape: [count])
                let destination = try backend.tensor(randomValues(count, seed: 13), shape: [count])
                backend.copy(source, to: destination)
                expectIdentical(try backend.readFloats(destination), floats, "\(backend.deviceDescription): copy [\(count)]")
                let intSource = try backend.tensor(ints, shape: [count])
                let intDestination = try backend.makeTensor([count], .int32)
                backend.copy(intSource, to: intDestination)
                expectIdentical(try backend.readInt32s(intDestination), ints, "\(backend.deviceDescription): int32 copy [\(count)]")
            }
        }
    }

    /// Views at offsets that are multiples of `viewAlignment` read, write, fill and copy their own part of the parent only.
    @Test func viewsShareTheirParentsMemory() throws {
        guard let pair = try BackendPair.make() else { return }
        for backend in [pair.device, pair.reference] {
            let a = backend.viewAlignment
            #expect(a >= 1)
            let count = 7 * a + 33
            let original = randomValues(count, seed: 21)
            let parent = try backend.tensor(original, shape: [count])
            var expected = original
            for (offset, length) in [(0, 1), (a, 7), (3 * a, 33), (6 * a, a + 33)] {
                let view = backend.view(parent, offset: offset, shape: [length])
                expectIdentical(try backend.readFloats(view), Array(expected[offset..<offset + length]),
                                "\(backend.deviceDescription): read view at \(offset)")
                let values = randomValues(length, seed: UInt64(offset) + 100)
                backend.write(values, to: view)
                expected.replaceSubrange(offset..<offset + length, with: values)
                expectIdentical(try backend.readFloats(parent), expected, "\(backend.deviceDescription): write view at \(offset)")
            }

            // Fill and copy through a 2-D view; an element-wise kernel on a view touches only the view.
            let matrix = backend.view(parent, offset: a, shape: [3, 11])
            backend.fill(matrix, with: -2)
            expected.replaceSubrange(a..<a + 33, with: [Float](repeating: -2, count: 33))
            expectIdentical(try backend.readFloats(parent), expected, "\(backend.deviceDescription): fill view")
            let source = try backend.tensor(randomValues(33, seed: 22), shape: [3, 11])
            backend.copy(source, to: matrix)
            expected.replaceSubrange(a..<a + 33, with: randomValues(33, seed: 22))
            expectIdentical(try backend.readFloats(parent), expected, "\(backend.deviceDescription): copy into view")
            backend.scale(matrix, by: 2)
            expected.replaceSubrange(a..<a + 33, with: randomValues(33, seed: 22).map { $0 * 2 })
            expectIdentical(try backend.readFloats(parent), expected, "\(backend.deviceDescription): scale a view")

            // A view of a view addresses the same memory as the equivalent view of the parent.
            let outer = backend.view(parent, offset: 2 * a, shape: [4 * a + 8])
            let inner = backend.view(outer, offset: a, shape: [a + 5])
            expectIdentical(try backend.readFloats(inner), Array(expected[3 * a..<4 * a + 5]), "\(backend.deviceDescription): nested view")
            backend.fill(inner, with: 9)
            expected.replaceSubrange(3 * a..<4 * a + 5, with: [Float](repeating: 9, count: a + 5))
            expectIdentical(try backend.readFloats(parent), expected, "\(backend.deviceDescription): fill nested view")

            // An empty view at the very end is legal and harmless.
            let empty = backend.view(parent, offset: count - count % a, shape: [0])
            #expect(try backend.readFloats(empty).isEmpty)
            backend.fill(empty, with: 1)
            expectIdentical(try backend.readFloats(parent), expected, "\(backend.deviceDescription): empty view")

            // Int32 views.
            let ints = try backend.tensor(randomInts(3 * a, in: 0..<9, seed: 23), shape: [3 * a])
            let intView = backend.view(ints, offset: a, shape: [a])
            backend.fill(intView, with: -4)
            var expectedInts = randomInts(3 * a, in: 0..<9, seed: 23)
            expectedInts.replaceSubrange(a..<2 * a, with: [Int32](repeating: -4, count: a))
            expectIdentical(try backend.readInt32s(ints), expectedInts, "\(backend.deviceDescription): int32 view")
        }
    }
}
