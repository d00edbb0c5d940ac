@testable import RefitCompute
import Testing

/// Every OpenCL kernel against the CPU reference: the cases of `KernelCases.all`, which `refit check` runs too, so the
/// shapes and tolerances live in one place (RefitCompute/Check). On a CPU device each case also runs in GPU
/// work-group shapes with the GPU linear kernels. The other suites prove the reference itself (Float64 closed forms,
/// finite differences, exact formulas) and test what no comparison shows (statistics, determinism, views).
@Suite struct KernelCaseTests {
    @Test(arguments: KernelCase.Family.allCases)
    func deviceMatchesReference(family: KernelCase.Family) throws {
        guard let pair = try BackendPair.make() else { return }
        let cases = KernelCases.all.filter { $0.family == family }
        #expect(!cases.isEmpty)
        for (label, backend) in try pair.deviceVariants() {
            for kernelCase in cases {
                for result in try kernelCase.run(device: backend, reference: pair.reference) where !result.passed {
                    Issue.record("\(result.name) \(result.shape)\(label): \(result.detail ?? "beyond tolerance"), max abs error \(result.maxAbsoluteError), tolerance \(result.tolerance)")
                }
            }
        }
    }

    /// Ids name rows in the tests' messages and in `refit check`; `quick` has every operation once.
    @Test func listIsWellFormed() {
        let ids = KernelCases.all.map(\.id)
        #expect(Set(ids).count == ids.count, "duplicate ids: \(Dictionary(grouping: ids) { $0 }.filter { $1.count > 1 }.keys.sorted())")
        #expect(KernelCases.quick.map(\.name).sorted() == Set(KernelCases.all.map(\.name)).sorted())
        #expect(Set(KernelCases.quick.map(\.family)) == Set(KernelCase.Family.allCases))
        #expect(Set(KernelCases.quick.map(\.id)).isSubset(of: ids))
    }

    /// A case's outputs all come back, one row each, named when there are several; the reference against itself passes.
    @Test func referenceAgainstItselfPasses() throws {
        let reference = CPUBackend()
        for kernelCase in KernelCases.quick {
            let results = try kernelCase.run(device: reference, reference: reference)
            #expect(!results.isEmpty && results.allSatisfy(\.passed), "\(kernelCase.id)")
            #expect(results.allSatisfy { $0.deviceMilliseconds != nil && $0.group == "kernel" && $0.name == kernelCase.name })
        }
    }

    /// The comparison every row comes from: exact means the same bits, NaN on one side only is an infinite error.
    @Test func comparisonRows() {
        func row(_ device: [Float], _ reference: [Float], _ tolerance: Tolerance) -> CheckResult {
            CheckResult.compare(device, reference, group: "kernel", name: "t", shape: "2", tolerance: tolerance)
        }
        let exactMiss = row([1, 2.5], [1, 2], .exact)
        #expect(!exactMiss.passed && exactMiss.maxAbsoluteError == 0.5 && exactMiss.detail == "element 1: 2.5 on the device, 2.0 on the reference")
        #expect(!row([0], [-0.0], .exact).passed && row([.nan, 1], [.nan, 1], .exact).passed)
        #expect(row([1.1, 2], [1, 2], Tolerance(absolute: 0.2, relative: 0)).passed)
        #expect(!row([1.1, 2], [1, 2], Tolerance(absolute: 0.05, relative: 0.01)).passed)
        let nan = row([.nan, 2], [1, 2], Tolerance(absolute: 1, relative: 1))
        #expect(!nan.passed && nan.maxAbsoluteError == .infinity)
        #expect(!row([1], [1, 2], .exact).passed)
        #expect(CheckResult.compare([Int32(3), 4], [3, 5], group: "kernel", name: "i", shape: "2").detail == "element 1: 4 on the device, 5 on the reference")
    }
}
