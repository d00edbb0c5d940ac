import Foundation
@testable import RefitCompute
import Testing

/// The kernels' parameters reach the compiler and the launches from one `KernelParameters`, the kernel files' own
/// `#ifndef` defaults (kept so that each file compiles alone) hold the CPU defaults, and a device takes its row of the
/// tuning table.
@Suite struct KernelParametersTests {
    /// NAME=VALUE for every `-D` in an options string.
    static func defines(in options: String) -> [String] {
        let words = options.split(separator: " ").map(String.init)
        return words.indices.dropLast().filter { words[$0] == "-D" }.map { words[$0 + 1] }
    }

    static let cpuDefaults = KernelParameters(linear: LinearParameters(), groups: .cpu(computeUnits: 2, localMemoryBytes: 1 << 20))

    @Test func buildOptionsDefineEveryCompileTimeParameter() {
        let names = KernelParameters.entries.map(\.name)
        #expect(Set(names).count == names.count, "a parameter is listed twice")
        let defines = Self.defines(in: Self.cpuDefaults.buildOptions)
        for entry in KernelParameters.entries where entry.isDefine {
            let value = Self.cpuDefaults[keyPath: entry.keyPath]
            #expect(defines.filter { $0 == "\(entry.name)=\(value)" }.count == 1, "\(entry.name) in \(Self.cpuDefaults.buildOptions)")
        }
        #expect(defines.count == KernelParameters.entries.filter(\.isDefine).count)
        #expect(Self.cpuDefaults.buildOptions.hasPrefix("-cl-std=CL1.2 "))
    }

    /// What the OpenCL implementation says it compiled with, not only what the host meant to pass — here for
    /// parameters other than the defaults.
    @Test func programIsBuiltWithTheBackendsParameters() throws {
        guard let info = OpenCLRuntime.devices.first else { return }
        let parameters = try KernelParameters.defaults(for: info).applying(["LIN_CPU_MR": 7, "LIN_GPU_TSK": 8])
        let backend = try OpenCLBackend(device: info, parameters: parameters)
        let defines = Self.defines(in: backend.context.programBuildOptions)
        #expect(defines.contains("LIN_CPU_MR=7") && defines.contains("LIN_GPU_TSK=8"), "\(defines)")
        for entry in KernelParameters.entries where entry.isDefine {
            #expect(defines.contains("\(entry.name)=\(parameters[keyPath: entry.keyPath])"), "\(entry.name)")
        }
    }

    /// Each define is a guarded default, `#ifndef NAME` then `#define NAME VALUE`, in exactly one kernel file, with
    /// the CPU default's value.
    @Test(arguments: KernelParameters.entries.filter(\.isDefine).map(\.name))
    func kernelDefaultMatchesTheParameters(name: String) throws {
        let entry = try #require(KernelParameters.entry(named: name))
        var defaults: [(file: String, value: String)] = []
        for (file, source) in KernelSources.all {
            let lines = source.split(separator: "\n", omittingEmptySubsequences: false)
            for index in lines.indices where lines[index].hasPrefix("#define \(name) ") {
                #expect(index > 0 && lines[index - 1] == "#ifndef \(name)", "\(file): \(name) without #ifndef would clash with the -D")
                defaults.append((file, String(lines[index].split(separator: " ")[2])))
            }
        }
        let value = Self.cpuDefaults[keyPath: entry.keyPath]
        #expect(defaults.count == 1, "\(name) defaults: \(defaults)")
        #expect(defaults.first?.value == String(value), "\(name): the kernel's default \(defaults.first?.value ?? "none") vs \(value)")
    }

    /// A program built from the kernel files' defaults alone and one built with the default parameters' defines give
    /// bit-identical products in both linear families and bit-identical whole-tensor sums.
    @Test func parametersBuildMatchesTheKernelFilesDefaults() throws {
        guard let info = OpenCLRuntime.devices.first, !info.isGPU else { return }
        let defaults = KernelParameters.defaults(for: info)
        let withParameters = try OpenCLBackend(device: info, parameters: defaults)
        let withFileDefaults = try OpenCLBackend(device: info, parameters: defaults, source: "test", buildOptions: "-cl-std=CL1.2")
        // Past the CPU tiles (12 × 32), the GPU tile (64) and stage (16), and a tall transposed A (≥ 2048 rows).
        let shapes = [(1, 7, 33), (65, 513, 97), (257, 33, 130), (2100, 40, 70)]
        for (m, k, n) in shapes {
            for family in LinearTuning.Family.allCases {
                for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
                    var bits: [[UInt32]] = []
                    for backend in [withParameters, withFileDefaults] {
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
            for backend in [withParameters, withFileDefaults] {
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

    /// Parameters other than the defaults — the ones `refit tune` tries, and odd ones no device would pick, and a
    /// transposed A always laid out again first (`LIN_CPU_TRANSPOSE` 0) — still compute every linear case within tolerance: tuning changes speed, never results beyond rounding. (The ML-1M-
    /// sized cases are left to `refit check`: the reference's triple loop takes seconds on them in a debug build.)
    @Test(arguments: [
        ["LIN_CPU_MR": 7, "LIN_CPU_NV": 1, "LIN_CPU_KC": 48, "LIN_CPU_ITEMS": 1, "LIN_CPU_TALL_TILES": 3, "LIN_CPU_TRANSPOSE": 0],
        ["LIN_CPU_MR": 6, "LIN_CPU_NV": 4, "LIN_CPU_KC": 512, "LIN_GPU_TS": 32, "LIN_GPU_WPT": 2, "LIN_GPU_TSK": 8],
        ["LIN_CPU_TRANSPOSE": 0],
    ])
    func otherParametersComputeTheSameProducts(overrides: [String: Int]) throws {
        guard let info = OpenCLRuntime.devices.first else { return }
        let parameters = try KernelParameters.defaults(for: info).applying(overrides)
        let reference = CPUBackend()
        for family in LinearTuning.Family.allCases {
            let backend = try OpenCLBackend(device: info, parameters: parameters)
            backend.linearFamily = family
            for kernelCase in KernelCases.linear where !kernelCase.shape.contains("400") && !kernelCase.shape.contains("2810") {
                for result in try kernelCase.run(device: backend, reference: reference) {
                    #expect(result.passed, "\(family) \(overrides): \(result.name) \(result.shape): \(result.detail ?? "")")
                }
            }
        }
    }

    @Test func applyingRefusesUnknownNamesAndValuesOutOfRange() throws {
        let base = Self.cpuDefaults
        #expect(throws: KernelParametersError.unknownName("LIN_CPU_XX")) { try base.applying(["LIN_CPU_XX": 1]) }
        #expect(throws: KernelParametersError.outOfRange("LIN_CPU_NV", 5, 1...4)) { try base.applying(["LIN_CPU_NV": 5]) }
        #expect(throws: (any Error).self) { try base.applying(["LIN_GPU_TS": 64, "LIN_GPU_WPT": 3]) }
        let changed = try base.applying(["TOPK_GROUP": 8, "LIN_CPU_KC": 128])
        #expect(changed.groups.topKGroupSize == 8 && changed.linear.cpuInnerBlock == 128)
        #expect(changed["TOPK_GROUP"] == 8 && changed.values.count == KernelParameters.entries.count)
        #expect(KernelParameters.describe(changed, against: base) == "LIN_CPU_KC=128 TOPK_GROUP=8")
    }
}
