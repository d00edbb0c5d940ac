import ArgumentParser
import Refit
import RefitCompute
import Foundation

@main
struct RefitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "refit",
        abstract: "Train diffusion recommenders and fine-tune them with reinforcement learning (ReFiT).",
        discussion: """
        Start with `refit demo`. On real data: `refit data stats` → `refit pretrain` → `refit finetune` → `refit eval` → `refit recommend`; `refit compare` puts runs side by side and `refit presets` shows what each preset sets. `refit devices` lists the OpenCL devices; every computing command takes --device. Every command names the run folder it reads with --from (compare takes several as arguments) and the one it writes with --out. `pretrain`, `finetune` and `ablate` also read options from --config FILE (YAML or JSON; keys are flag names; the command line wins).
        """,
        version: RefitVersion.string,
        subcommands: [
            DemoCommand.self,
            DevicesCommand.self,
            CheckCommand.self,
            TuneCommand.self,
            DataCommand.self,
            PretrainCommand.self,
            FinetuneCommand.self,
            AblateCommand.self,
            EvalCommand.self,
            BaselinesCommand.self,
            CompareCommand.self,
            RecommendCommand.self,
            ReportCommand.self,
            PresetsCommand.self,
            BenchCommand.self,
        ]
    )

    static func main() {
        // The full version answers before parsing: ArgumentParser's own --version knows only the static string.
        if Array(CommandLine.arguments.dropFirst()) == ["--version"] {
            print(versionText)
            return
        }
        var command: ParsableCommand
        var source: ConfigFile.Source? = nil
        do {
            let expanded = try ConfigFile.expandWithSource(Array(CommandLine.arguments.dropFirst()))
            source = expanded.source
            command = try parseAsRoot(expanded.arguments)
        } catch {
            // A bad value that came from the config file names the file and its key, in one line.
            let message = RefitCommand.message(for: error)
            // A key set to false stands as its switch's --no- form.
            func named(_ flag: String) -> Bool {
                [flag, "--no-" + flag.dropFirst(2)].contains { message.contains("'\($0)") || message.contains("\($0) ") }
            }
            if let source, let flag = source.keys.keys.sorted(by: { $0.count > $1.count }).first(where: named) {
                FileHandle.standardError.write(Data("Error: \(message) (from key '\(source.keys[flag]!)' of the config file \(source.path))\n".utf8))
                Foundation.exit(RefitCommand.exitCode(for: error).rawValue)
            }
            exit(withError: error)  // a parsing mistake: the message, then the usage that explains it
        }
        do {
            try command.run()
        } catch let error as ValidationError {
            // A setting found wrong while running: one line, as for every other error a user can cause.
            fail(error.message, code: ExitCode.validationFailure.rawValue)
        } catch let error as CocoaError {
            // Foundation's file errors, in the user's words: the file, then what is wrong.
            fail((error.userInfo[NSFilePathErrorKey] as? String ?? error.filePath ?? "a file") + ": " + FileProblem.describe(error), code: 1)
        } catch {
            exit(withError: error)
        }
    }

    /// Refit's version, the commit it was built from, and the OpenCL runtime this machine offers it.
    static var versionText: String {
        var lines = ["refit \(RefitVersion.string) (commit \(BuildInfo.commit))"]
        switch OpenCLRuntime.discovery {
        case .failure(let error): lines.append("OpenCL: discovery failed: \(error)")
        case .success(let devices) where devices.isEmpty: lines.append("OpenCL: no platform found (the CPU reference remains; see `refit devices`)")
        case .success(let devices):
            for d in devices {
                lines.append("OpenCL: \(d.platformVersion) (\(d.platformName)): \(d.name), driver \(d.driverVersion), \(d.openCLCVersion)")
            }
        }
        return lines.joined(separator: "\n")
    }

    static func fail(_ message: String, code: Int32) -> Never {
        FileHandle.standardError.write(Data("Error: \(message)\n".utf8))
        Foundation.exit(code)
    }
}
