import ArgumentParser
import Foundation
import Testing
@testable import refit
import Refit

/// The flags of the command line, parsed in-process as `refit` parses them: each preset's printed flags give its
/// settings back, a flag of another model family is refused in one line, and the shared options mean one thing.
@Suite struct OptionTests {
    /// The DiffRec settings that `pretrain ARGUMENTS` would train with.
    static func diffRec(_ arguments: [String], default preset: DiffRecPreset = .demo) throws -> DiffRecSettings {
        let command = try PretrainCommand.parse(arguments)
        return try command.diffrec.settings(preset: command.choice.preset, defaultPreset: preset, training: command.training,
                                            diffusion: command.diffusion)
    }

    static func sequential(_ arguments: [String], model: SequentialModelKind) throws -> SequentialSettings {
        let c = try PretrainCommand.parse(arguments)
        return try SequentialSettings.parsed(model: model, preset: c.choice.preset, builtin: true, training: c.training, diffusion: c.diffusion,
                                             sasrec: c.sasrec, dreamrec: c.dreamrec)
    }

    @Test func everyDiffRecPresetIsItsPrintedFlags() throws {
        for preset in DiffRecPreset.allCases {
            // From a different preset, so that every value must come from the flags.
            let base: DiffRecPreset = preset == .demo ? .ml100k : .demo
            let flags = DiffRecOptions.flags(of: preset.settings)
            #expect(try Self.diffRec(PresetsCommand.arguments(flags), default: base) == preset.settings, "\(preset.rawValue)")
        }
        #expect(try Self.diffRec(["--time-weights", "0.5,1"]).timeWeights == TimeWeights(minimum: 0.5, maximum: 1))
        #expect(try Self.diffRec(["--time-weights", "none"]).timeWeights == nil)
        #expect(throws: DataError.self) { try Self.diffRec(["--time-weights", "1,0.5"]) }
        // Every stored setting but the seed has its flag: a new setting without one fails here.
        #expect(Mirror(reflecting: DiffRecSettings()).children.count == DiffRecOptions.flags(of: DiffRecSettings()).count + 1)
    }

    @Test func everySequentialPresetIsItsPrintedFlags() throws {
        for preset in SequentialPreset.allCases {
            for model in SequentialModelKind.allCases {
                let expected = preset.settings(model: model)
                let arguments = PresetsCommand.arguments(SequentialSettings.flags(of: expected))
                let other: SequentialPreset = preset == .ml100kSeq ? .demoSeq : .ml100kSeq
                #expect(try Self.sequential(["--preset", other.rawValue] + arguments, model: model) == expected, "\(preset.rawValue) \(model)")
            }
        }
    }

    @Test func everyFinetuneRecipeIsItsPrintedFlags() throws {
        for preset in FinetunePreset.allCases {
            let arguments = PresetsCommand.arguments(FinetuneOptions.flags(of: preset.settings))
            // Starting from each other recipe: the flags alone must rebuild this one.
            for base in FinetunePreset.allCases {
                let options = try FinetuneOptions.parse(["--preset", base.rawValue] + arguments)
                #expect(try options.settings() == preset.settings, "\(preset.rawValue) from \(base.rawValue)")
            }
        }
        let sequential = try FinetuneOptions.parse(PresetsCommand.arguments(FinetuneOptions.flags(of: .sequential)))
        #expect(try sequential.settings(sequential: true) == .sequential)
    }

    /// The message of the error `body` throws, or nil.
    static func message(_ body: () throws -> Void) -> String? {
        do { try body(); return nil } catch let error as ValidationError { return error.message } catch { return "\(error)" }
    }

    @Test func aFlagOfAnotherFamilyIsRefusedByName() throws {
        let cases: [([String], String)] = [
            (["--model", "sasrec", "--dims", "100"], "--dims is a flag of DiffRec"),
            (["--model", "sasrec", "--schedule", "cosine"], "--schedule is a flag of the diffusion models"),
            (["--model", "sasrec", "--guidance", "1"], "--guidance is a flag of DreamRec"),
            (["--guidance", "1", "--sampling-steps", "5"], "--guidance and --sampling-steps are flags of DreamRec"),
            (["--history-length", "20"], "--history-length is a flag of SASRec"),
            (["--model", "dreamrec", "--encoder-from", "x", "--hidden-size", "32"], "--hidden-size is a flag of SASRec's encoder"),
            (["--model", "dreamrec", "--encoder-from", "x", "--dropout", "0.2"], "--dropout is a flag of SASRec's encoder"),
            (["--model", "dreamrec", "--encoder-from", "x", "--data", "y"], "--data is a flag of the data"),
            (["--model", "dreamrec", "--encoder-from", "x", "--start-step", "2"], "--start-step is a flag of DiffRec"),
        ]
        for (arguments, expected) in cases {
            let command = try PretrainCommand.parse(arguments + ["--out", "/nonexistent/never-written"])
            let message = Self.message { try command.run() }
            #expect(message?.hasPrefix(expected) == true, "\(arguments): \(message ?? "no error")")
        }
        let reinforce = try FinetuneOptions.parse(["--preset", "design", "--anchor", "1", "--focus", "5"])
        #expect(Self.message { _ = try reinforce.settings() }?.hasPrefix("--anchor and --focus are flags of the pathwise estimator") == true)
        let pathwise = try FinetuneOptions.parse(["--rollouts", "8"])
        #expect(Self.message { _ = try pathwise.settings() }?.hasPrefix("--rollouts is a flag of the REINFORCE estimator") == true)
    }

    @Test func theRunFolderIsFromEverywhereAndTheOldNamesStillWork() throws {
        for command in ["eval", "recommend", "baselines", "finetune", "ablate", "report"] {
            let parsed = try RefitCommand.parseAsRoot([command, "--from", "runs/x"] + (command == "recommend" ? ["--out", "r.tsv"] : []))
            let mirror = Mirror(reflecting: parsed)
            let input = mirror.children.first { $0.label == "_input" }
            #expect(input != nil, "\(command) has no --from group")
        }
        let eval = try RefitCommand.parseAsRoot(["eval", "--checkpoint", "runs/old"]) as! EvalCommand
        #expect(try eval.input.path == "runs/old")
        let report = try RefitCommand.parseAsRoot(["report", "runs/old"]) as! ReportCommand
        #expect(report.folder == "runs/old")
        #expect(Self.message { _ = try (RefitCommand.parseAsRoot(["eval"]) as! EvalCommand).input.path }?.contains("--from") == true)
    }

    @Test func everySwitchHasItsNoForm() throws {
        // One boolean style: so that a config file's `false` (written as --no-FLAG) is understood by every switch.
        let command = try PretrainCommand.parse(["--no-reweight", "--no-force", "--no-quiet", "--no-json", "--no-resume", "--no-header"])
        #expect(command.diffrec.reweight == false && command.data.header == false && !command.output.force)
        #expect(try ConfigFile.options(fromText: "force: false\nreweight: true\n").arguments == ["--no-force", "--reweight"])
    }

    @Test func aDefaultRunFolderIsNewAndNamedForTheRun() throws {
        let parent = FileManager.default.temporaryDirectory.appendingPathComponent("refit-out-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: parent) }
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        let first = RunOutputOptions.newFolder("diffrec-demo", under: parent, now: now)
        #expect(first == "\(parent)/diffrec-demo-20270115-080000")
        try FileManager.default.createDirectory(atPath: first, withIntermediateDirectories: true)
        #expect(RunOutputOptions.newFolder("diffrec-demo", under: parent, now: now) == first + "-2")
        #expect(DataOptions.name(of: "builtin:demo") == "demo")
        #expect(DataOptions.name(of: "/data/ml-1m/ml-1m.ratings.tsv") == "ml-1m")
        let resume = try PretrainCommand.parse(["--resume"])
        #expect(Self.message { _ = try resume.output.folder(resuming: true, name: "x") }?.contains("--resume needs --out") == true)
    }
}
