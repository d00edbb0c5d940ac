import RefitCompute
import Testing

@Suite struct RandomTests {
    @Test func streamsAreBitIdenticalAcrossBackends() throws {
        guard let pair = try BackendPair.make() else { return }
        for (seed, offset, count) in [(UInt64(1), UInt64(0), 1), (42, 7, 257), (0xDEAD_BEEF_1234, 1 << 33, 100_003)] {
            let (u, uRef) = try pair.zeros([count])
            pair.device.fillUniform(u, seed: seed, offset: offset)
            pair.reference.fillUniform(uRef, seed: seed, offset: offset)
            #expect(try pair.device.readFloats(u).map(\.bitPattern) == pair.reference.readFloats(uRef).map(\.bitPattern))
            let (z, zRef) = try pair.zeros([count])
            pair.device.fillNormal(z, seed: seed, offset: offset)
            pair.reference.fillNormal(zRef, seed: seed, offset: offset)
            #expect(try pair.device.readFloats(z).map(\.bitPattern) == pair.reference.readFloats(zRef).map(\.bitPattern))
        }
    }

    @Test func normalStreamHasUnitMoments() throws {
        let cpu = CPUBackend()
        let z = try cpu.makeTensor([200_000], .float32)
        cpu.fillNormal(z, seed: 3, offset: 0)
        let values = try cpu.readFloats(z).map(Double.init)
        let mean = values.reduce(0, +) / Double(values.count)
        let variance = values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(values.count)
        // Standard errors: mean 1/√n ≈ 0.0022, variance √(2/n) ≈ 0.0032; allow five of each.
        #expect(abs(mean) < 0.011)
        #expect(abs(variance - 1) < 0.016)
        let tail = Double(values.filter { abs($0) > 1.96 }.count) / Double(values.count)
        #expect(abs(tail - 0.05) < 0.003)
    }

    @Test func uniformStreamHasUniformMoments() throws {
        let cpu = CPUBackend()
        let u = try cpu.makeTensor([200_000], .float32)
        cpu.fillUniform(u, seed: 9, offset: 123)
        let values = try cpu.readFloats(u).map(Double.init)
        #expect(values.allSatisfy { $0 > 0 && $0 <= 1 })
        let mean = values.reduce(0, +) / Double(values.count)
        let variance = values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(values.count)
        #expect(abs(mean - 0.5) < 0.0033)
        #expect(abs(variance - 1.0 / 12) < 0.0015)
    }
}
