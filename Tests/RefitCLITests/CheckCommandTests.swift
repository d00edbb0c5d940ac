import ArgumentParser
import Foundation
import RefitCompute
import Testing
@testable import refit

/// `refit check` parsed and run in-process: its options, and a failing or throwing step becoming a failed row.
@Suite struct CheckCommandTests {
    @Test func optionsAndDefaults() throws {
        let defaults = try CheckCommand.parse([])
        #expect(defaults.deviceOptions.device == "auto" && !defaults.quick && !defaults.json)
        // The kernel cases, then the whole-model checks as one step.
        #expect(defaults.groups().flatMap(\.steps).count == KernelCases.all.count + 1)
        let quick = try CheckCommand.parse(["--quick", "--json", "--device", "cpu"])
        #expect(quick.quick && quick.json && quick.deviceOptions.device == "cpu")
        #expect(quick.groups().flatMap(\.steps).map(\.label) == KernelCases.quick.map(\.id) + ["whole models"])
        #expect(throws: (any Error).self) { try CheckCommand.parse(["--fast"]) }
    }

    @Test func failuresAndErrorsAreFailedRows() throws {
        struct Broken: Error {}
        let row = CheckResult.compare([1, 2], [1, 3], group: "kernel", name: "wrong", shape: "2", tolerance: .exact)
        let groups = [CheckCommand.CheckGroup(steps: [("wrong 2", { _, _ in [row] }), ("throws", { _, _ in throw Broken() })])]
        var progress: [String] = []
        let report = try CheckCommand.run(groups, device: CPUBackend(), reference: CPUBackend()) { progress.append($0) }
        #expect(report.passed == 0 && report.failed == 2 && report.results.count == 2)
        #expect(report.results[1].name == "throws" && report.results[1].detail?.contains("Broken") == true)
        #expect(progress == ["[1/2] wrong 2", "[2/2] throws"])
        let table = CheckCommand.table(report.results)
        #expect(table.contains("FAIL") && table.contains("inf") && table.split(separator: "\n").count == 4)
    }
}
