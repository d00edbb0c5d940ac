import Foundation
import Testing
@testable import Refit
import RefitCompute

/// The `refit` executable, run as a user runs it: help, devices, a tiny pre-training run and its evaluation,
/// and refusals of bad input.
@Suite struct CLITests {
    struct Output {
        var status: Int32
        var stdout: String
        var stderr: String
        var stderrLines: [Substring] { stderr.split(separator: "\n", omittingEmptySubsequences: true) }
    }

    /// The `refit` binary built beside the test bundle (`.build/debug/refit` or the scratch path in use).
    static let binary: URL? = {
        let testBinary = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let candidates = [
            testBinary.deletingLastPathComponent().appendingPathComponent("refit"),
            Bundle.main.bundleURL.appendingPathComponent("refit"),
            Bundle.main.bundleURL.deletingLastPathComponent().appendingPathComponent("refit"),
            // macOS: .build/debug/RefitPackageTests.xctest/Contents/MacOS/RefitPackageTests
            testBinary.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
                .deletingLastPathComponent().appendingPathComponent("refit"),
            packageRoot.appendingPathComponent(".build/debug/refit"),
        ]
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) }
    }()

    static func refit(_ arguments: [String], timeout: TimeInterval = 300) throws -> Output {
        let binary = try #require(Self.binary, "the refit executable was not found beside \(CommandLine.arguments[0]); build it first")
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("refit-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let outURL = folder.appendingPathComponent("stdout"), errURL = folder.appendingPathComponent("stderr")
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        let process = Process()
        process.executableURL = binary
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = try FileHandle(forWritingTo: outURL)
        process.standardError = try FileHandle(forWritingTo: errURL)
        try process.run()
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning {
            if Date() > deadline {
                process.terminate()
                process.waitUntilExit()
                Issue.record("refit \(arguments.joined(separator: " ")) ran longer than \(timeout) s")
                break
            }
            Thread.sleep(forTimeInterval: 0.02)
        }
        process.waitUntilExit()
        return Output(status: process.terminationStatus,
                      stdout: String(decoding: try Data(contentsOf: outURL), as: UTF8.self),
                      stderr: String(decoding: try Data(contentsOf: errURL), as: UTF8.self))
    }

    @Test func helpListsTheCommandsAndThePresets() throws {
        let help = try Self.refit(["--help"])
        #expect(help.status == 0, "\(help.stderr)")
        for command in ["devices", "pretrain", "eval", "recommend"] {
            #expect(help.stdout.contains(command), "refit --help does not mention \(command)")
        }
        let pretrain = try Self.refit(["pretrain", "--help"])
        #expect(pretrain.status == 0, "\(pretrain.stderr)")
        for word in ["--preset", "ml-1m-clean", "ml-1m-noisy", "ml-100k", "demo", "--data", "--out", "--device", "--force", "--resume"] {
            #expect(pretrain.stdout.contains(word), "refit pretrain --help does not mention \(word)")
        }
    }

    /// Every command and subcommand prints its help: a debug build checks the option declarations there (two options
    /// with one name fail), so a clash is caught here rather than left unreachable in a release binary.
    @Test func everyCommandsHelpParses() throws {
        func subcommands(_ help: String) -> [String] {
            guard let section = help.components(separatedBy: "SUBCOMMANDS:").dropFirst().first else { return [] }
            return section.split(separator: "\n").compactMap { line in
                line.hasPrefix("  ") && !line.hasPrefix("   ") ? line.split(separator: " ").first.map(String.init) : nil
            }.filter { $0 != "See" }
        }
        var pending = subcommands(try Self.refit(["--help"]).stdout).map { [$0] }, seen = 0
        while let command = pending.popLast() {
            let help = try Self.refit(command + ["--help"])
            #expect(help.status == 0 && help.stdout.contains("USAGE"), "refit \(command.joined(separator: " ")) --help: \(help.stderr)")
            pending += subcommands(help.stdout).map { command + [$0] }
            seen += 1
        }
        #expect(seen >= 16, "only \(seen) commands found in refit --help")
    }

    @Test func versionNamesTheReleaseTheCommitAndTheOpenCLRuntime() throws {
        let version = try Self.refit(["--version"])
        #expect(version.status == 0, "\(version.stderr)")
        let lines = version.stdout.split(separator: "\n")
        #expect(lines.first?.hasPrefix("refit \(RefitVersion.string) (commit ") == true, "\(version.stdout)")
        // A hex commit from a git checkout, or "unknown" from a source archive.
        let commit = lines.first.flatMap { $0.split(separator: "commit ").last?.dropLast() }.map(String.init) ?? ""
        #expect(commit == "unknown" || (commit.count == 12 && commit.allSatisfy(\.isHexDigit)), "commit '\(commit)'")
        #expect(lines.dropFirst().allSatisfy { $0.hasPrefix("OpenCL: ") } && lines.count >= 2, "\(version.stdout)")
    }

    @Test func presetsPrintEveryRecipeAndItsJSONParses() throws {
        let table = try Self.refit(["presets"])
        #expect(table.status == 0, "\(table.stderr)")
        for word in ["ml-1m-clean", "demo-seq", "ease-score", "design", "--anchor", "--rollouts", "--dims", "--guidance"] {
            #expect(table.stdout.contains(word), "refit presets does not mention \(word)")
        }
        let json = try Self.refit(["presets", "--json"])
        let object = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: [String: [String: String]]]
        #expect(object?["finetune-diffrec"]?["ease-score"]?["--focus"] == "50", "\(json.stdout.prefix(300))")
        #expect(object?["diffrec"]?["ml-100k"]?["--batch-size"] == "200")
    }

    @Test func devicesListsTheCPUReferenceAndMarksTheAutomaticChoice() throws {
        let devices = try Self.refit(["devices"])
        #expect(devices.status == 0, "\(devices.stderr)")
        #expect(devices.stdout.contains("cpu") && devices.stdout.contains("CPU reference"))
        let marked = devices.stdout.split(separator: "\n").filter { $0.hasPrefix("* ") && !$0.hasPrefix("* =") }
        #expect(marked.count == 1, "exactly one device is marked:\n\(devices.stdout)")
        #expect(marked.first?.contains(DeviceSelection.automaticDevice?.selector ?? "CPU reference") == true)
    }

    /// A tiny run on the built-in data, then `refit eval --json` on its best checkpoint: the same test numbers as
    /// the run recorded for its best epoch. Then the run folder is not overwritten without --force.
    @Test func pretrainThenEvalReproducesTheRecordedTestMetrics() throws {
        try PretrainTestSupport.withTemporaryFolder { folder in
            let out = folder + "/tiny"
            let train = try Self.refit(["pretrain", "--data", "builtin:demo", "--epochs", "2", "--eval-every", "1",
                                        "--dims", "16", "--steps", "5", "--batch-size", "500", "--out", out])
            #expect(train.status == 0, "pretrain failed: \(train.stderr)")
            #expect(train.stdout.contains("best epoch"), "\(train.stdout)")
            let run = RunFolder(out)
            let state = try run.readJSON(PretrainState.self, from: "state.json")
            #expect(state.epoch == 2 && (1...2).contains(state.bestEpoch))
            let evals = try run.readMetrics().filter { $0["kind"] as? String == "eval" }
            #expect(evals.count == 4)
            let recorded = try #require(evals.last { $0["split"] as? String == "test" && $0["epoch"] as? Int == state.bestEpoch })

            let eval = try Self.refit(["eval", "--checkpoint", out, "--json"])
            #expect(eval.status == 0, "eval failed: \(eval.stderr)")
            let lines = eval.stdout.split(separator: "\n")
            #expect(lines.count == 1, "eval --json printed \(lines.count) lines")
            let printed = try #require(try JSONSerialization.jsonObject(with: Data((lines.first ?? "").utf8)) as? [String: Any])
            #expect(printed["kind"] as? String == "eval" && printed["split"] as? String == "test")
            for k in [10, 20, 50, 100] {
                for metric in ["precision", "recall", "ndcg", "mrr"] {
                    let key = "\(metric)@\(k)"
                    let a = printed[key] as? Double, b = recorded[key] as? Double
                    #expect(a != nil && a == b, "\(key): eval printed \(a ?? .nan), the run recorded \(b ?? .nan)")
                }
            }

            // Recommendations: a TSV with raw ids, K per user, never an item the user has in train or validation.
            let recs = folder + "/recs.tsv"
            let recommend = try Self.refit(["recommend", "--checkpoint", out, "--k", "5", "--out", recs])
            #expect(recommend.status == 0, "recommend failed: \(recommend.stderr)")
            let rows = try String(contentsOfFile: recs, encoding: .utf8).split(separator: "\n").map { $0.split(separator: "\t").map(String.init) }
            #expect(rows.first == ["user", "rank", "item", "score"])
            let dataset = try DatasetLoader.load(path: "builtin:demo")
            #expect(rows.count == 1 + 5 * dataset.userCount)
            let userIndex = Dictionary(uniqueKeysWithValues: dataset.userIDs.enumerated().map { ($1, $0) })
            let itemIndex = Dictionary(uniqueKeysWithValues: dataset.itemIDs.enumerated().map { ($1, $0) })
            var seen = 0
            for row in rows.dropFirst() {
                guard row.count == 4, let u = userIndex[row[0]], let i = itemIndex[row[2]], let rank = Int(row[1]), Float(row[3]) != nil else {
                    Issue.record("bad recommendation line \(row)")
                    break
                }
                #expect((1...5).contains(rank))
                if dataset.train.contains(u, i) || dataset.valid.contains(u, i) { seen += 1 }
            }
            #expect(seen == 0, "\(seen) recommendations are items the user has in train or validation")

            // The same --out again, without --force: refused in one line, the run left as it was.
            let before = try Data(contentsOf: run.file("metrics.jsonl"))
            let again = try Self.refit(["pretrain", "--data", "builtin:demo", "--epochs", "1", "--out", out])
            #expect(again.status != 0)
            #expect(again.stderrLines.count == 1 && again.stderr.contains("--force"), "\(again.stderr)")
            #expect(try Data(contentsOf: run.file("metrics.jsonl")) == before)
        }
    }

    /// T-DiffRec: a run with --time-weights records them, `eval` reloads the weighted inputs (the same test numbers as
    /// the run recorded), fine-tuning starts from them; data without timestamps are refused before any folder exists.
    @Test func timeWeightedRunEvaluatesAndFinetunesWithItsWeights() throws {
        try PretrainTestSupport.withTemporaryFolder { folder in
            let out = folder + "/tdiffrec"
            let train = try Self.refit(["pretrain", "--data", "builtin:demo", "--time-weights", "0.1,1", "--epochs", "2", "--eval-every", "1",
                                        "--dims", "16", "--steps", "5", "--batch-size", "500", "--out", out])
            #expect(train.status == 0, "pretrain failed: \(train.stderr)")
            #expect(train.stderr.contains("weighted by recency"), "\(train.stderr)")
            let run = RunFolder(out)
            #expect(try run.readJSON(RunConfiguration.self, from: "config.json").diffrec.timeWeights == TimeWeights(minimum: 0.1, maximum: 1))
            let state = try run.readJSON(PretrainState.self, from: "state.json")
            let recorded = try #require(try run.readMetrics().last { $0["split"] as? String == "test" && $0["epoch"] as? Int == state.bestEpoch })
            let eval = try Self.refit(["eval", "--from", out, "--json"])
            #expect(eval.status == 0, "eval failed: \(eval.stderr)")
            let printed = try #require(try JSONSerialization.jsonObject(with: Data(eval.stdout.utf8)) as? [String: Any])
            for key in ["recall@20", "ndcg@20", "recall@100"] {
                #expect(printed[key] as? Double == recorded[key] as? Double, "\(key): eval \(printed[key] ?? "-"), run \(recorded[key] ?? "-")")
            }
            let tuned = try Self.refit(["finetune", "--from", out, "--out", folder + "/tuned", "--epochs", "1", "--quiet"])
            #expect(tuned.status == 0, "finetune failed: \(tuned.stderr)")

            let untimed = try DataTestSupport.write("user,item\n" + (0..<40).map { "u\($0 % 8),i\($0 % 13)" }.joined(separator: "\n") + "\n",
                                                     to: folder, "untimed.csv")
            let refused = try Self.refit(["pretrain", "--data", untimed, "--time-weights", "0.1,1", "--out", folder + "/refused"])
            #expect(refused.status != 0 && refused.stderr.contains("--timestamps"), "\(refused.stderr)")
            #expect(!FileManager.default.fileExists(atPath: folder + "/refused"))
        }
    }

    /// `--preset ease-lift`, `ease-score` (the default) and `design` set their recipe's settings, and flags given beside it win, the anchor's scope included.
    @Test func finetunePresetSetsTheRecipeAndFlagsOverrideIt() throws {
        try PretrainTestSupport.withTemporaryFolder { folder in
            let pretrained = folder + "/tiny"
            let train = try Self.refit(["pretrain", "--data", "builtin:demo", "--epochs", "1", "--dims", "16", "--steps", "5",
                                        "--batch-size", "500", "--out", pretrained, "--quiet"])
            #expect(train.status == 0, "pretrain failed: \(train.stderr)")
            func settings(_ extra: [String], _ name: String, preset: FinetunePreset? = .easeLift) throws -> FinetuneSettings? {
                let out = folder + "/" + name
                let recipe = preset.map { ["--preset", $0.rawValue] } ?? []
                let run = try Self.refit(["finetune", "--from", pretrained, "--out", out, "--epochs", "1", "--quiet"] + recipe + extra)
                #expect(run.status == 0, "finetune \(extra) failed: \(run.stderr)")
                return try RunFolder(out).readJSON(RunConfiguration.self, from: "config.json").finetune
            }
            let recipe = try #require(try settings([], "lift"))
            var expected = FinetunePreset.easeLift.settings
            expected.epochs = 1
            #expect(recipe == expected)
            #expect(recipe.reward == .collabLift() && recipe.targets.teacher == .ease() && recipe.pathwise?.anchor?.scope == .unseen)
            let overridden = try #require(try settings(["--anchor", "0.1", "--no-anchor-unseen-only", "--lr", "1e-4", "--weight-decay", "0.01"], "lift-overridden"))
            #expect(overridden.pathwise?.anchor == Anchor(weight: 0.1, scope: .all) && overridden.optimizer.learningRate == 1e-4)
            #expect(overridden.optimizer.weightDecay == 0.01)
            #expect(overridden.reward == .collabLift() && overridden.userFraction == 0.25)
            let score = try #require(try settings([], "score", preset: .easeScore))
            expected = FinetunePreset.easeScore.settings
            expected.epochs = 1
            #expect(score == expected)
            #expect(score.reward == .collabScore && score.pathwise == PathwiseSettings(steps: 1, anchor: Anchor(weight: 1, scope: .focus(items: 50))))
            #expect(try settings([], "default", preset: nil) == score, "a DiffRec run without --preset starts from ease-score")
            var design = FinetuneSettings()
            design.epochs = 1
            #expect(try settings([], "design", preset: .design) == design)
        }
    }

    @Test func badInputGivesOneLineAndAFailureStatus() throws {
        try PretrainTestSupport.withTemporaryFolder { folder in
            let missing = folder + "/no-such-ratings.csv"
            let out = folder + "/run"
            let result = try Self.refit(["pretrain", "--data", missing, "--out", out])
            #expect(result.status != 0)
            #expect(result.stderrLines.count == 1, "expected one line, got:\n\(result.stderr)")
            #expect(result.stderr.contains(missing), "\(result.stderr)")
            #expect(!FileManager.default.fileExists(atPath: out), "a failed run left \(out) behind")

            let noRun = try Self.refit(["eval", "--checkpoint", folder + "/nothing-here", "--json"])
            #expect(noRun.status != 0)
            #expect(noRun.stderrLines.count == 1 && noRun.stderr.contains("nothing-here"), "\(noRun.stderr)")
            #expect(noRun.stdout.isEmpty)

            let badDevice = try Self.refit(["pretrain", "--device", "gpu9", "--out", out])
            #expect(badDevice.status != 0)
            #expect(badDevice.stderr.contains("gpu9"), "\(badDevice.stderr)")

            // ReFiT's options that do not go together, and a baseline comparison of a run that is not there.
            let design = ["finetune", "--from", folder + "/nothing-here", "--out", out, "--preset", "design"]
            for arguments in [design + ["--anchor", "0.1"], design + ["--estimator", "pathwise", "--reward", "collab-ndcg"],
                              design + ["--estimator", "pathwise", "--focus", "50"],
                              ["baselines", "--from", folder + "/nothing-here"]] {
                let result = try Self.refit(arguments)
                #expect(result.status != 0)
                #expect(result.stderrLines.count == 1, "\(arguments): expected one line, got:\n\(result.stderr)")
                #expect(!result.stderr.contains("nothing-here") || arguments[0] == "baselines", "\(arguments): the settings were not checked first")
            }
            // A flag that clashes with the default recipe (pathwise) says how to leave it.
            let clash = try Self.refit(["finetune", "--from", folder + "/nothing-here", "--out", out, "--reward", "collab-ndcg"])
            #expect(clash.status != 0 && clash.stderrLines.count == 1 && clash.stderr.contains("--preset design"), "\(clash.stderr)")

            // The sequential models: a missing file, DreamRec without its encoder, an unknown model.
            for arguments in [["pretrain", "--model", "sasrec", "--data", missing, "--out", out],
                              ["pretrain", "--model", "dreamrec", "--out", out],
                              ["pretrain", "--model", "bert4rec", "--out", out]] {
                let result = try Self.refit(arguments)
                #expect(result.status != 0)
                #expect(result.stderrLines.count == 1, "\(arguments): expected one line, got:\n\(result.stderr)")
                #expect(!FileManager.default.fileExists(atPath: out), "a failed run left \(out) behind")
            }
        }
    }

    /// A flag belongs to one part of the typed recipe: given where that part is absent (an estimator's flag with the other
    /// estimator, a reward's with another reward) it is refused in one line that names it, before any run is read.
    @Test func aFlagOfAnotherPartOfTheRecipeIsRefused() throws {
        try PretrainTestSupport.withTemporaryFolder { folder in
            let finetune = ["finetune", "--from", folder + "/nothing-here", "--out", folder + "/out"]
            for (extra, flag) in [(["--rollouts", "8"], "--rollouts"), (["--kl-coef", "0.1"], "--kl-coef"),
                                  (["--preset", "design", "--pathwise-steps", "2"], "--pathwise-steps"),
                                  (["--preset", "design", "--clip-range", "0.3"], "--clip-range"),
                                  (["--preset", "design", "--ndcg-k", "5"], "--ndcg-k"),
                                  (["--ease-lambda", "0"], "--ease-lambda"), (["--neighbors-k", "20"], "--neighbors-k"),
                                  (["--preset", "design", "--lr=-1"], "--lr"), (["--lr", "nan"], "--lr"), (["--anchor", "inf"], "--anchor"),
                                  (["--weight-decay=-1"], "--weight-decay")] {
                let result = try Self.refit(finetune + extra)
                #expect(result.status != 0 && result.stderrLines.count == 1, "\(extra): \(result.stderr)")
                #expect(result.stderr.contains(flag) && !result.stderr.contains("nothing-here"), "\(extra): \(result.stderr)")
            }
        }
    }

    @Test func sequentialDataStatistics() throws {
        let stats = try Self.refit(["data", "stats", "--sequential", "--data", "builtin:demo"])
        #expect(stats.status == 0)
        #expect(stats.stdout.contains("leave-one-out: 93,822 training targets; 2,000 users with a validation and a test target"), "\(stats.stdout)")
        #expect(stats.stdout.contains("5-core") && stats.stdout.contains("every rating"))
    }
}
