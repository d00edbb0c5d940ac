import Foundation
import Testing
@testable import Refit
import RefitCompute

/// The whole-model checks of `refit check`: they pass on the OpenCL device against the CPU reference, are exact
/// between two runs of the reference, and fail when the two sides built different models.
@Suite struct ModelChecksTests {
    static func describe(_ rows: [CheckResult]) -> String {
        rows.map { r in
            "\(r.passed ? "pass" : "FAIL")  \(r.name) [\(r.shape)]: max |Δ| \(r.maxAbsoluteError), max rel \(r.maxRelativeError), tolerance \(r.tolerance)"
                + (r.detail.map { " — \($0)" } ?? "")
        }.joined(separator: "\n")
    }

    @Test func everyCheckPassesOnTheDeviceAgainstTheReference() throws {
        guard let info = DeviceSelection.automaticDevice else {
            print("note: no OpenCL device; the model checks run on the CPU reference only")
            return
        }
        let device = try OpenCLBackend(device: info)
        for quick in [true, false] {
            let started = Date()
            let rows = try ModelChecks.run(device: device, reference: CPUBackend(), quick: quick)
            print("model checks, quick \(quick): \(String(format: "%.2f", Date().timeIntervalSince(started))) s\n" + Self.describe(rows))
            #expect(rows.count == 7 && rows.allSatisfy { $0.group == "model" })
            let failed = rows.filter { !$0.passed }
            #expect(failed.isEmpty, "\(Self.describe(failed))")
            // Every tensor of a check has a name in the row, and the Philox streams agree bit for bit.
            #expect(rows.allSatisfy { !$0.shape.isEmpty })
            #expect(rows.first { $0.tolerance.isExact }?.maxAbsoluteError == 0)
        }
    }

    @Test func theReferenceAgreesWithItselfExactly() throws {
        let rows = try ModelChecks.run(device: CPUBackend(), reference: CPUBackend(), quick: true)
        #expect(rows.allSatisfy { $0.passed && $0.maxAbsoluteError == 0 }, "\(Self.describe(rows))")
    }

    /// A reference whose models got another seed differs everywhere: every check fails and names a tensor.
    @Test func modelsFromAnotherSeedFail() throws {
        let rows = try ModelChecks.run(device: CPUBackend(), reference: CPUBackend(), quick: true, referenceSeed: ModelChecks.seed + 1)
        #expect(rows.allSatisfy { !$0.passed && $0.detail != nil }, "\(Self.describe(rows))")
        let training = try #require(rows.first { $0.name.hasPrefix("DiffRec training") })
        #expect(training.detail!.contains(".weight") || training.detail!.contains(".bias"), "\(training.detail!)")
    }

    /// The checks can see a wrong update: every training run and update moves the weights it starts from by about the
    /// learning rate, a hundred times the tolerance, so comparing with the untrained weights fails.
    @Test func trainingAndUpdatesMoveTheWeightsFarBeyondTheTolerance() throws {
        let backend = CPUBackend()
        let data = try ModelChecks.TinyData(backend: backend)
        let seed = ModelChecks.seed
        let diffrec = try ModelChecks.named(DiffRecModel(backend: backend, settings: ModelChecks.diffrecSettings(seed: seed, data: data),
                                                         items: data.interactions.itemCount).denoiser.parameters)
        let sasrec = try ModelChecks.named(SequentialModel(backend: backend, settings: ModelChecks.sequentialSettings(.sasrec, seed: seed, data: data),
                                                           items: data.sequences.itemIDs.count).encoder.parameters)
        var dreamSettings = ModelChecks.sequentialSettings(.dreamrec, seed: seed, data: data)
        dreamSettings.denoiserLoss = .ce
        let dreamrec = try ModelChecks.named(SequentialModel(backend: backend, settings: dreamSettings,
                                                             items: data.sequences.itemIDs.count).denoiser!.parameters)
        var compared = 0
        for check in ModelChecks.checks(data, quick: true) {
            let start = check.name.hasPrefix("SASRec") ? sasrec : check.name.contains("DiffRec") ? diffrec
                : check.name.contains("update (DreamRec") ? dreamrec : nil
            guard let start else { continue }
            let moved = ModelChecks.compareAll(try check.body(backend, seed), start, name: check.name, tolerance: check.tolerance,
                                               exceptions: check.exceptions)
            for (row, _) in moved where !check.exceptions.contains(where: { row.shape.hasSuffix($0.suffix) }) {
                #expect(!row.passed && row.maxAbsoluteError > 5e-4, "\(check.name): \(row.shape) moved only \(row.maxAbsoluteError)")
            }
            compared += 1
        }
        #expect(compared == 5)
    }
}
