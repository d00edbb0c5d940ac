@testable import RefitCompute
import Testing

/// The kernels' compile-time knobs reach the compiler from `KernelKnobs`, and the kernel files' own `#ifndef`
/// defaults (kept so that each file compiles alone) hold the same values, so a kernel built either way computes the
/// same bits.
@Suite struct KernelKnobsTests {
    /// NAME=VALUE for every `-D` in an options string.
    static func defines(in options: String) -> [String] {
        let words = options.split(separator: " ").map(String.init)
        return words.indices.dropLast().filter { words[$0] == "-D" }.map { words[$0 + 1] }
    }

    @Test func buildOptionsDefineEveryKnob() {
        let defines = Self.defines(in: OpenCLBackend.buildOptions)
        #expect(Set(KernelKnobs.all.map(\.name)).count == KernelKnobs.all.count, "a knob is listed twice")
        for knob in KernelKnobs.all {
            #expect(defines.filter { $0 == "\(knob.name)=\(knob.value)" }.count == 1, "\(knob.name) in \(OpenCLBackend.buildOptions)")
        }
        #expect(defines.count == KernelKnobs.all.count)
        #expect(OpenCLBackend.buildOptions.hasPrefix("-cl-std=CL1.2 "))
    }

    /// What the OpenCL implementation says it compiled with, not only what the host meant to pass.
    @Test func programIsBuiltWithEveryKnob() throws {
        guard let info = OpenCLRuntime.devices.first else { return }
        let backend = try OpenCLBackend(device: info)
        let defines = Self.defines(in: backend.context.programBuildOptions)
        for knob in KernelKnobs.all { #expect(defines.contains("\(knob.name)=\(knob.value)"), "\(knob.name)") }
    }

    /// Each knob is a guarded default, `#ifndef NAME` then `#define NAME VALUE`, in exactly one kernel file, with
    /// the table's value.
    @Test(arguments: KernelKnobs.all.map(\.name))
    func kernelDefaultMatchesTheTable(name: String) throws {
        let knob = try #require(KernelKnobs.all.first { $0.name == name })
        var defaults: [(file: String, value: String)] = []
        for (file, source) in KernelSources.all {
            let lines = source.split(separator: "\n", omittingEmptySubsequences: false)
            for index in lines.indices where lines[index].hasPrefix("#define \(name) ") {
                #expect(index > 0 && lines[index - 1] == "#ifndef \(name)", "\(file): \(name) without #ifndef would clash with the -D")
                defaults.append((file, String(lines[index].split(separator: " ")[2])))
            }
        }
        #expect(defaults.count == 1, "\(name) defaults: \(defaults)")
        #expect(defaults.first?.value == String(knob.value), "\(name): the kernel's default \(defaults.first?.value ?? "none") vs the table's \(knob.value)")
    }

    /// A program built from the kernel files' defaults alone (as before the table) and one built with the table's
    /// defines give bit-identical products in both linear families and bit-identical whole-tensor sums.
    @Test func tableBuildMatchesTheDefaultsBuild() throws {
        guard let info = OpenCLRuntime.devices.first else { return }
        let withTable = try OpenCLBackend(device: info)
        let withDefaults = try OpenCLBackend(device: info, buildOptions: "-cl-std=CL1.2")
        // Past the CPU tiles (12 × 32), the GPU tile (64) and stage (16), and a tall transposed A (≥ 2048 rows).
        let shapes = [(1, 7, 33), (65, 513, 97), (257, 33, 130), (2100, 40, 70)]
        for (m, k, n) in shapes {
            for family in LinearTuning.Family.allCases {
                for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
                    var bits: [[UInt32]] = []
                    for backend in [withTable, withDefaults] {
                        let a = try backend.tensor(randomValues(m * k, seed: 21), shape: ta ? [k, m] : [m, k])
                        let b = try backend.tensor(randomValues(k * n, seed: 22), shape: tb ? [n, k] : [k, n])
                        let c = try backend.tensor(randomValues(m * n, seed: 23), shape: [m, n])
                        let bias = try backend.tensor(randomValues(n, seed: 24), shape: [n])
                        backend.gemm(a, transposeA: ta, b, transposeB: tb, into: c, alpha: 0.5, beta: 0.25, bias: bias,
                                     tanh: true, family: family)
                        bits.append(try backend.readFloats(c).map(\.bitPattern))
                    }
                    #expect(bits[0] == bits[1], "\(m) × \(k) × \(n), \(family), transposes \(ta) \(tb)")
                }
            }
        }
        // One group, and several groups with a partial last block.
        for count in [100, 5000, 1_000_003] {
            var totals: [[UInt32]] = []
            for backend in [withTable, withDefaults] {
                let x = try backend.tensor(randomValues(count, seed: 25), shape: [count])
                let result = try backend.makeTensor([1], .float32)
                backend.sum(x, into: result)
                let sum = try backend.readFloats(result)[0]
                backend.sumOfSquares(x, into: result)
                totals.append([sum.bitPattern, try backend.readFloats(result)[0].bitPattern])
            }
            #expect(totals[0] == totals[1], "sums of \(count)")
        }
    }
}
