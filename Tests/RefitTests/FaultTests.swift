import Foundation
import Testing
@testable import Refit

/// Runs killed with SIGKILL at moments drawn from a fixed seed, then resumed until they finish, end bit-identical to
/// uninterrupted runs: the same weights, moments, state and metrics (timings aside). Kills that land while a
/// checkpoint is being written (a journal or temporary file left behind) are counted.
@Suite(.serialized) struct FaultTests {
    static let pretrain = ["pretrain", "--data", "builtin:demo", "--epochs", "6", "--eval-every", "1", "--dims", "16", "--steps", "5",
                           "--batch-size", "200", "--quiet"]

    /// Starts the refit binary without waiting.
    static func start(_ arguments: [String]) throws -> Process {
        let process = Process()
        guard let binary = CLITests.binary else { throw CocoaError(.fileNoSuchFile, userInfo: [NSFilePathErrorKey: "refit"]) }
        process.executableURL = binary
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        return process
    }

    /// What must not differ between a killed-and-resumed run and an uninterrupted one: every tensor and state, and the
    /// metrics lines without their timings.
    static func outcome(_ run: String) throws -> [String] {
        let folder = RunFolder(run)
        var parts: [String] = []
        for file in ["best.safetensors", "last.safetensors", "optimizer.safetensors"] {
            let tensors = try folder.readTensors(file)
            parts += tensors.keys.sorted().map { "\(file) \($0) \(tensors[$0]!.values.map(\.bitPattern))" }
        }
        parts.append(try String(contentsOf: folder.file("state.json"), encoding: .utf8))
        for line in try folder.readMetrics() {
            let kept = line.filter { !["seconds", "users_per_second", "targets_per_second"].contains($0.key) }
            parts.append(String(decoding: try JSONSerialization.data(withJSONObject: kept, options: [.sortedKeys]), as: UTF8.self))
        }
        return parts
    }

    /// Whether a kill left a checkpoint half published or a temporary file.
    static func interruptedWrite(_ run: String) -> Bool {
        ((try? FileManager.default.contentsOfDirectory(atPath: run)) ?? []).contains {
            $0 == RunFolder.journalName || RunFolder.isWriterLeftover($0)
        }
    }

    /// Runs `arguments + [--out run]`, kills it after `delay` seconds, then resumes (or, with no config.json yet, starts
    /// it again) until it finishes. Returns whether the kill landed inside a write.
    static func killAndResume(_ arguments: [String], run: String, delay: Double) throws -> Bool {
        let process = try start(arguments + ["--out", run])
        Thread.sleep(forTimeInterval: delay)
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        let inWrite = interruptedWrite(run)
        for _ in 0..<3 {
            let started = FileManager.default.fileExists(atPath: run + "/config.json")
            let result = try CLITests.refit(arguments + ["--out", run] + (started ? ["--resume"] : []))
            if result.status == 0 { return inWrite }
            Issue.record("resuming \(run) failed: \(result.stderr)")
        }
        return inWrite
    }

    static func checkKills(_ arguments: [String], reference: String, in folder: String, kills: Int, seed: UInt64) throws -> (kills: Int, inWrites: Int) {
        let started = Date()
        let straight = try CLITests.refit(arguments + ["--out", reference])
        #expect(straight.status == 0, "\(straight.stderr)")
        let seconds = Date().timeIntervalSince(started)
        let expected = try outcome(reference)
        var random = SplitMix64(seed: seed)
        var inWrites = 0, identical = 0
        for k in 0..<kills {
            let delay = seconds * (0.1 + 0.85 * Double(random.next() % 10_000) / 10_000)
            let run = folder + "/killed-\(k)"
            if try killAndResume(arguments, run: run, delay: delay) { inWrites += 1 }
            let same = try outcome(run) == expected
            if same { identical += 1 }
            #expect(same, "killed at \(delay) s and resumed, the run differs from the uninterrupted one")
            #expect(!interruptedWrite(run), "a finished run left temporary files")
        }
        print("fault test: \(kills) kills of `refit \(arguments[0])`, \(inWrites) inside a write, \(identical) resumed bit-identical")
        return (kills, inWrites)
    }

    @Test func killedPretrainingResumesBitIdentically() throws {
        try PretrainTestSupport.withTemporaryFolder { folder in
            _ = try Self.checkKills(Self.pretrain, reference: folder + "/straight", in: folder, kills: 8, seed: 1)
        }
    }

    @Test func killedFinetuningResumesBitIdentically() throws {
        try PretrainTestSupport.withTemporaryFolder { folder in
            let pretrained = folder + "/pretrained"
            #expect(try CLITests.refit(Self.pretrain + ["--epochs", "2", "--out", pretrained]).status == 0)
            let finetune = ["finetune", "--from", pretrained, "--preset", "design", "--epochs", "3", "--user-fraction", "0.1", "--quiet"]
            _ = try Self.checkKills(finetune, reference: folder + "/straight", in: folder, kills: 6, seed: 2)
            // A kill after the run's last line (its summary) resumes a finished run: it must end as it was.
            let finished = try Self.outcome(folder + "/straight")
            #expect(try CLITests.refit(finetune + ["--out", folder + "/straight", "--resume"]).status == 0)
            #expect(try Self.outcome(folder + "/straight") == finished, "resuming a finished run changed it")
        }
    }

    /// A writer killed after every prefix of a checkpoint's file operations: the folder recovers to the old checkpoint
    /// or the new one, whole, every time (the kills a timer rarely lands inside a write).
    @Test func aCheckpointKilledAtEveryStepRecoversWhole() throws {
        try PretrainTestSupport.withTemporaryFolder { folder in
            let (run, model, _, _) = try CheckpointTests.trainTinyRun(in: folder, epochs: 1)
            let parameters = model.denoiser.parameters
            let old = try Self.checkpointFiles(run)
            var state = try run.readJSON(PretrainState.self, from: "state.json")
            state.epoch += 1
            state.optimizerStep += 1
            parameters.backend.scale(parameters.values, by: 0.5)
            let newFiles = [("last.safetensors", Safetensors.encode(try parameters.namedTensors(of: parameters.values),
                                                                   metadata: ["optimizer_step": String(state.optimizerStep)])),
                            ("state.json", try RunFolder.json(state))]
            let steps = run.publicationSteps(newFiles)
            var landed = 0
            for prefix in 0...steps.count {
                try run.writeTogether(old.map { ($0.key, $0.value) }.sorted { $0.0 < $1.0 })  // back to the old checkpoint
                for step in steps.prefix(prefix) { try step() }
                if Self.interruptedWrite(run.path) { landed += 1 }
                try run.recoverInterruptedWrites()
                let now = try Self.checkpointFiles(run)
                let new = old.merging(newFiles.map { ($0.0, $0.1) }) { $1 }
                #expect(now == old || now == new, "killed after \(prefix) of \(steps.count) steps: a mixed checkpoint")
                #expect(prefix < steps.count - 3 || now == new, "killed after the journal (\(prefix) steps), the new checkpoint was lost")
                #expect(!Self.interruptedWrite(run.path))
            }
            #expect(landed == steps.count - 1, "\(landed) of \(steps.count + 1) simulated kills left a write to recover")
            print("fault test: \(steps.count + 1) simulated kills at every step of a checkpoint's publication, \(landed) inside it, all recovered whole")
        }
    }

    static func checkpointFiles(_ run: RunFolder) throws -> [String: Data] {
        Dictionary(uniqueKeysWithValues: try ["last.safetensors", "optimizer.safetensors", "state.json"].map { ($0, try Data(contentsOf: run.file($0))) })
    }
}
