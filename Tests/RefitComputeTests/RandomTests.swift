import RefitCompute
import Testing

/// The Philox streams' statistics (KernelCaseTests checks that every backend gives the same bits).
@Suite struct RandomTests {
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
