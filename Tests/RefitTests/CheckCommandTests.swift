import Foundation
import Testing
import RefitCompute

/// `refit check`, run as a user runs it: the quick list passes on the automatic device (PoCL here) and its JSON has a
/// row for every operation of `KernelCases`; the CPU reference can be checked against itself.
@Suite struct CheckCommandTests {
    /// The JSON `refit ARGUMENTS` printed, after asserting that it exited 0.
    static func report(_ arguments: [String]) throws -> [String: Any] {
        let output = try CLITests.refit(arguments)
        #expect(output.status == 0, "refit \(arguments.joined(separator: " ")) exited \(output.status): \(output.stdout.suffix(2000)) \(output.stderr.suffix(2000))")
        return try #require(try JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [String: Any], "\(output.stdout.prefix(500))")
    }

    @Test(arguments: ["auto", "cpu"])
    func quickCheckPassesAndCoversEveryOperation(device: String) throws {
        let report = try Self.report(["check", "--quick", "--json", "--device", device])
        let results = try #require(report["results"] as? [[String: Any]])
        #expect(report["failed"] as? Int == 0 && report["passed"] as? Int == results.count && !results.isEmpty)
        #expect((report["device"] as? String)?.isEmpty == false && report["seconds"] is Double)
        #expect(results.allSatisfy { $0["passed"] as? Bool == true })
        // Every kernel operation, then the whole-model checks (every model of ModelChecks, one row each).
        let kernels = results.filter { $0["group"] as? String == "kernel" }, models = results.filter { $0["group"] as? String == "model" }
        #expect(kernels.count + models.count == results.count && models.count >= 7, "\(models.count) model rows")
        let names = Set(kernels.compactMap { $0["name"] as? String })
        #expect(names == Set(KernelCases.all.map(\.name)), "missing: \(Set(KernelCases.all.map(\.name)).subtracting(names).sorted())")
        let families = Set(KernelCases.all.filter { names.contains($0.name) }.map(\.family))
        #expect(families == Set(KernelCase.Family.allCases))
    }

    @Test func tableEndsWithTheSummary() throws {
        let output = try CLITests.refit(["check", "--quick", "--device", "cpu"])
        #expect(output.status == 0, "\(output.stderr.suffix(2000))")
        let lines = output.stdout.split(separator: "\n")
        #expect(lines.first?.hasPrefix("device: CPU reference") == true)
        #expect(lines.contains { $0.hasPrefix("group ") && $0.contains("max abs error") && $0.contains("device ms") })
        let rows = lines.filter { $0.hasPrefix("kernel ") || $0.hasPrefix("model ") }
        #expect(!rows.isEmpty && rows.allSatisfy { $0.contains(" PASS ") })
        #expect(lines.last?.hasPrefix("\(rows.count) of \(rows.count) passed on CPU reference (plain Swift) in ") == true, "\(lines.last ?? "")")
        #expect(output.stderr.contains("against itself"))
    }
}
