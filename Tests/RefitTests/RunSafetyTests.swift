import Foundation
import Testing
@testable import Refit
import RefitCompute

/// Nothing lost, nothing silently wrong: Refit replaces or continues only its own runs, never the run it reads,
/// moves a replaced run aside, lets one process write a run, refuses damaged or non-finite checkpoints by name, and
/// publishes a checkpoint's files as one step.
@Suite struct RunSafetyTests {
    static let tinyPretrain = ["pretrain", "--data", "builtin:demo", "--epochs", "1", "--dims", "16", "--steps", "5",
                               "--batch-size", "500", "--quiet"]

    /// Every file below `folder` with its bytes: what "nothing changed on disk" compares.
    static func snapshot(_ folder: String) throws -> [String: Data] {
        var files: [String: Data] = [:]
        let enumerator = FileManager.default.enumerator(atPath: folder)
        while let name = enumerator?.nextObject() as? String {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: folder + "/" + name, isDirectory: &isDirectory), !isDirectory.boolValue {
                files[name] = try Data(contentsOf: URL(fileURLWithPath: folder + "/" + name))
            }
        }
        return files
    }

    @Test func theInputRunIsNeverTheOutputNorInsideOrAroundIt() throws {
        try PretrainTestSupport.withTemporaryFolder { folder in
            let run = folder + "/pre"
            #expect(try CLITests.refit(Self.tinyPretrain + ["--out", run]).status == 0)
            let before = try Self.snapshot(run)
            for out in [run, run + "/inner", folder] {
                let result = try CLITests.refit(["finetune", "--from", run, "--out", out, "--force", "--epochs", "1", "--quiet"])
                #expect(result.status != 0 && result.stderrLines.count == 1, "\(out): \(result.stderr)")
                #expect(result.stderr.contains("reads"), "\(out): \(result.stderr)")
            }
            #expect(try Self.snapshot(run) == before, "the pre-trained run changed")
        }
    }

    @Test func aFolderThatIsNotARunIsNeverReplaced() throws {
        try PretrainTestSupport.withTemporaryFolder { folder in
            let mine = folder + "/notes"
            try FileManager.default.createDirectory(atPath: mine, withIntermediateDirectories: true)
            try "keep me".write(toFile: mine + "/thesis.txt", atomically: true, encoding: .utf8)
            let result = try CLITests.refit(Self.tinyPretrain + ["--out", mine, "--force"])
            #expect(result.status != 0 && result.stderrLines.count == 1 && result.stderr.contains("not a Refit run"), "\(result.stderr)")
            #expect(try Self.snapshot(mine) == ["thesis.txt": Data("keep me".utf8)])
        }
    }

    /// `refit data split --force` replaces a split it wrote, never a folder holding anything else.
    @Test func aSplitReplacesOnlyASplit() throws {
        let dataset = PretrainTestSupport.tinyDataset()
        try PretrainTestSupport.withTemporaryFolder { folder in
            let mine = folder + "/mine"
            try FileManager.default.createDirectory(atPath: mine, withIntermediateDirectories: true)
            try "keep me".write(toFile: mine + "/thesis.txt", atomically: true, encoding: .utf8)
            #expect(throws: DataError.self) { try DiffRecSplitFiles.write(dataset, to: mine, force: true) }
            #expect(try Self.snapshot(mine) == ["thesis.txt": Data("keep me".utf8)])
        }
    }

    @Test func forceMovesTheOldRunAside() throws {
        try PretrainTestSupport.withTemporaryFolder { folder in
            let run = folder + "/pre"
            #expect(try CLITests.refit(Self.tinyPretrain + ["--out", run]).status == 0)
            let old = try Self.snapshot(run)
            let again = try CLITests.refit(Self.tinyPretrain + ["--out", run, "--force", "--seed", "2"])
            #expect(again.status == 0, "\(again.stderr)")
            let aside = try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasPrefix("pre.replaced-") }
            #expect(aside.count == 1, "\(aside)")
            if let name = aside.first { #expect(try Self.snapshot(folder + "/" + name) == old, "the old run was not kept whole") }
            #expect(FileManager.default.fileExists(atPath: run + "/best.safetensors"))
        }
    }

    @Test func resumeRefusesARunOfAnotherKindBeforeWriting() throws {
        try PretrainTestSupport.withTemporaryFolder { folder in
            let a = folder + "/a", b = folder + "/b"
            #expect(try CLITests.refit(Self.tinyPretrain + ["--out", a]).status == 0)
            #expect(try CLITests.refit(Self.tinyPretrain + ["--out", b]).status == 0)
            let before = try Self.snapshot(b)
            let result = try CLITests.refit(["finetune", "--from", a, "--out", b, "--resume", "--epochs", "1", "--quiet"])
            #expect(result.status != 0 && result.stderrLines.count == 1, "\(result.stderr)")
            #expect(result.stderr.contains("pre-training run") && result.stderr.contains("fine-tuning"), "\(result.stderr)")
            #expect(try Self.snapshot(b) == before, "the pre-training run was written to")
        }
    }

    /// A live process's lock refuses a second writer by its pid; a dead process's lock is taken over.
    @Test func oneProcessWritesARunAtATime() throws {
        try PretrainTestSupport.withTemporaryFolder { folder in
            let run = folder + "/pre"
            #expect(try CLITests.refit(Self.tinyPretrain + ["--out", run]).status == 0)
            let sleeper = Process()
            sleeper.executableURL = URL(fileURLWithPath: "/bin/sleep")
            sleeper.arguments = ["60"]
            try sleeper.run()
            // SIGKILL: a signal mask inherited from the test runner may hold SIGTERM back.
            defer { kill(sleeper.processIdentifier, SIGKILL); sleeper.waitUntilExit() }
            try "\(sleeper.processIdentifier)\n".write(toFile: run + "/run.lock", atomically: true, encoding: .utf8)
            let before = try Self.snapshot(run)
            for extra in [["--resume", "--epochs", "2"], ["--force"]] {
                let result = try CLITests.refit(Self.tinyPretrain + ["--out", run] + extra)
                #expect(result.status != 0 && result.stderrLines.count == 1, "\(extra): \(result.stderr)")
                #expect(result.stderr.contains("pid \(sleeper.processIdentifier)"), "\(extra): \(result.stderr)")
            }
            #expect(try Self.snapshot(run) == before)
            kill(sleeper.processIdentifier, SIGKILL)
            sleeper.waitUntilExit()
            let resumed = try CLITests.refit(Self.tinyPretrain + ["--out", run, "--resume", "--epochs", "2"])
            #expect(resumed.status == 0, "a stale lock was not taken over: \(resumed.stderr)")
            #expect(!FileManager.default.fileExists(atPath: run + "/run.lock"), "the lock outlived its run")
        }
    }

    /// NaN weights, a flipped data byte, and settings that are not finite numbers are refused by name.
    @Test func nonFiniteOrDamagedCheckpointsAndSettingsAreRefused() throws {
        try PretrainTestSupport.withTemporaryFolder { folder in
            let run = folder + "/pre"
            #expect(try CLITests.refit(Self.tinyPretrain + ["--out", run]).status == 0)
            let best = URL(fileURLWithPath: run + "/best.safetensors")
            let original = try Data(contentsOf: best)
            var tensors = try Safetensors.decode(original, path: best.path)
            let name = tensors.tensors.keys.sorted()[0]
            tensors.tensors[name]!.values[0] = .nan
            let nan = Safetensors.encode(tensors.tensors.map { ($0.key, $0.value.shape, $0.value.values) }, metadata: tensors.metadata)
            var flipped = original
            flipped[flipped.count - 1] ^= 0x40
            for (damage, expected) in [(nan, "NaN or infinite"), (flipped, "checksum")] {
                try damage.write(to: best)
                for command in [["eval", "--checkpoint", run, "--json"], ["finetune", "--from", run, "--out", folder + "/ft", "--quiet"]] {
                    let result = try CLITests.refit(command)
                    #expect(result.status != 0 && result.stderrLines.count == 1, "\(command): \(result.stderr)")
                    #expect(result.stderr.contains("best.safetensors") && result.stderr.contains(expected), "\(command): \(result.stderr)")
                }
            }
            #expect(!FileManager.default.fileExists(atPath: folder + "/ft"), "a refused fine-tuning left a folder")
            for flag in ["--lr=nan", "--lr=inf", "--lr=-0.1", "--lr=0", "--epochs=-1", "--weight-decay=nan"] {
                let result = try CLITests.refit(Self.tinyPretrain + ["--out", folder + "/bad", flag])
                #expect(result.status != 0 && result.stderrLines.count == 1, "\(flag): \(result.stderr)")
                #expect(result.stderr.contains(String(flag.split(separator: "=")[0])), "\(flag): \(result.stderr)")
            }
            #expect(!FileManager.default.fileExists(atPath: folder + "/bad"), "a refused setting left a run folder")
        }
    }

    /// A learning rate that makes the weights overflow stops training at that epoch with a message; nothing of the
    /// failed epoch is written, so the run holds no NaN weights.
    @Test func trainingStopsAtTheFirstNonFiniteEpoch() throws {
        let backend = CPUBackend()
        let dataset = PretrainTestSupport.tinyDataset()
        var settings = PretrainTestSupport.tinySettings(epochs: 3)
        settings.learningRate = 1e38
        try PretrainTestSupport.withTemporaryFolder { folder in
            let run = RunFolder(folder + "/run")
            try run.create(force: false)
            let model = try DiffRecModel(backend: backend, settings: settings, items: dataset.itemCount)
            let evaluator = try TopKEvaluator(backend: backend, dataset: dataset, batchSize: 16)
            do {
                try DiffRecTrainer(model: model, dataset: dataset, evaluator: evaluator, run: run).train()
                Issue.record("a diverging run trained to the end")
            } catch let error as TrainingError {
                #expect(error.description.contains("NaN or infinite in epoch"), "\(error)")
            }
            for file in ["last.safetensors", "best.safetensors"] where FileManager.default.fileExists(atPath: run.file(file).path) {
                _ = try run.readTensors(file)  // refused if it held a non-finite weight
            }
        }
    }

    /// A checkpoint killed after its journal is completed on resume; one killed before it is dropped; either way the
    /// three files belong to one step, and temporary files are removed.
    @Test func aCheckpointIsPublishedAsOneStep() throws {
        try PretrainTestSupport.withTemporaryFolder { folder in
            let run = RunFolder(folder + "/run")
            try run.create(force: false)
            try AtomicFile.write(#"{"kind":"pretrain","version":"test","createdAt":"now"}"#, to: run.file("config.json"))
            try run.writeTogether([("a.txt", Data("old a".utf8)), ("b.txt", Data("old b".utf8))])
            #expect(try Self.snapshot(run.path).keys.sorted() == ["a.txt", "b.txt", "config.json"])
            // Killed while publishing: the journal is written, a.txt already renamed, b.txt still pending.
            try Data("new b".utf8).write(to: run.pendingURL("b.txt"))
            try Data("new a".utf8).write(to: run.file("a.txt"))
            try Data("a.txt\nb.txt".utf8).write(to: run.file(RunFolder.journalName))
            try Data("stale".utf8).write(to: run.file(".state.json.tmp-99999"))
            try run.openForResume(RunFolder.Identity(kind: "pretrain", sequential: false)).release()
            #expect(try Self.snapshot(run.path) == ["a.txt": Data("new a".utf8), "b.txt": Data("new b".utf8),
                                                     "config.json": try Data(contentsOf: run.file("config.json"))])
            // Killed before the journal: the pending file is dropped and the old pair stays.
            try Data("newer a".utf8).write(to: run.pendingURL("a.txt"))
            try run.recoverInterruptedWrites()
            #expect(try String(contentsOf: run.file("a.txt"), encoding: .utf8) == "new a")
            #expect(!FileManager.default.fileExists(atPath: run.pendingURL("a.txt").path))
        }
    }

    /// A full disk, simulated by pointing the file being written at /dev/full (every write fails with ENOSPC): the write
    /// is refused in the user's words, and what was saved before stays whole.
    @Test func aFullDiskLosesNothingAlreadySaved() throws {
        guard FileManager.default.fileExists(atPath: "/dev/full") else { print("note: no /dev/full; the full-disk check is skipped"); return }
        try PretrainTestSupport.withTemporaryFolder { folder in
            let run = RunFolder(folder + "/run")
            try run.create(force: false)
            try run.writeTogether([("a.txt", Data("saved a".utf8)), ("b.txt", Data("saved b".utf8))])
            try FileManager.default.createSymbolicLink(atPath: run.pendingURL("b.txt").path, withDestinationPath: "/dev/full")
            do {
                try run.writeTogether([("a.txt", Data("new a".utf8)), ("b.txt", Data("new b".utf8))])
                Issue.record("a write to a full disk succeeded")
            } catch let error as CheckpointError {
                #expect(error.description.contains("No space left"), "\(error)")
            }
            try run.recoverInterruptedWrites()
            #expect(try String(contentsOf: run.file("a.txt"), encoding: .utf8) == "saved a")
            #expect(try String(contentsOf: run.file("b.txt"), encoding: .utf8) == "saved b")
            let config = run.file("config.json")
            try AtomicFile.write("{}", to: config)
            try FileManager.default.createSymbolicLink(atPath: AtomicFile.temporaryURL(for: config).path, withDestinationPath: "/dev/full")
            #expect(throws: CheckpointError.self) { try AtomicFile.write("{\"lost\": true}", to: config) }
            #expect(try String(contentsOf: config, encoding: .utf8) == "{}")
        }
    }

    /// A resumed run whose tensor files are not from the step its state.json names is refused, not trusted.
    @Test func resumeVerifiesThatTheCheckpointIsOneSet() throws {
        try PretrainTestSupport.withTemporaryFolder { folder in
            let (runFolder, model, _, _) = try CheckpointTests.trainTinyRun(in: folder)
            let parameters = model.denoiser.parameters
            var state = try runFolder.readJSON(PretrainState.self, from: "state.json")
            state.optimizerStep += 1
            try runFolder.writeJSON(state, to: "state.json")
            #expect(throws: CheckpointError.self) { try runFolder.restoreCheckpoint(parameters, as: PretrainState.self) }
        }
    }

    /// A run's JSON that does not parse says where; one that lacks a setting says which.
    @Test func aBrokenConfigSaysWhereOrWhich() throws {
        try PretrainTestSupport.withTemporaryFolder { folder in
            let run = RunFolder(folder)
            try "{\n  \"kind\": \"pretrain\",\n  \"epochs\" 12\n}".write(to: run.file("broken.json"), atomically: true, encoding: .utf8)
            #expect(throws: CheckpointError.self) { try run.readJSON(PretrainState.self, from: "broken.json") }
            do { _ = try run.readJSON(PretrainState.self, from: "broken.json") } catch {
                #expect("\(error)".contains("not valid JSON at line 3, column 12"), "\(error)")
            }
            try "{\"epoch\": 1}".write(to: run.file("short.json"), atomically: true, encoding: .utf8)
            do { _ = try run.readJSON(FinetuneSettings.self, from: "short.json"); _ = try run.readJSON(RunConfiguration.self, from: "short.json") } catch {
                #expect("\(error)".contains("the key kind is missing"), "\(error)")
            }
        }
    }

    @Test func aBadValueInAConfigFileNamesTheFileAndKey() throws {
        try PretrainTestSupport.withTemporaryFolder { folder in
            let config = folder + "/run.yaml"
            try "epochs: 2\nlr: fast\n".write(toFile: config, atomically: true, encoding: .utf8)
            let result = try CLITests.refit(["pretrain", "--config", config, "--out", folder + "/run"])
            #expect(result.status != 0 && result.stderrLines.count == 1, "\(result.stderr)")
            #expect(result.stderr.contains(config) && result.stderr.contains("'lr'"), "\(result.stderr)")
        }
    }
}
