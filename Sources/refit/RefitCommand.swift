import ArgumentParser
import Refit
import Foundation

@main
struct RefitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "refit",
        abstract: "Train diffusion recommenders and fine-tune them with reinforcement learning (ReFiT).",
        discussion: """
        Start with `refit demo`. On real data: `refit data stats` → `refit pretrain` → `refit finetune` → `refit eval` → `refit recommend`. `refit devices` lists the OpenCL devices; every computing command takes --device. `pretrain`, `finetune` and `ablate` also read options from --config FILE (YAML or JSON; keys are flag names; the command line wins).
        """,
        subcommands: [
            DemoCommand.self,
            DevicesCommand.self,
            DataCommand.self,
            PretrainCommand.self,
            FinetuneCommand.self,
            AblateCommand.self,
            EvalCommand.self,
            BaselinesCommand.self,
            CompareCommand.self,
            RecommendCommand.self,
            ReportCommand.self,
            BenchCommand.self,
        ]
    )

    static func main() {
        var command: ParsableCommand
        var source: ConfigFile.Source? = nil
        do {
            let expanded = try ConfigFile.expandWithSource(Array(CommandLine.arguments.dropFirst()))
            source = expanded.source
            command = try parseAsRoot(expanded.arguments)
        } catch {
            // A bad value that came from the config file names the file and its key, in one line.
            let message = RefitCommand.message(for: error)
            if let source, let flag = source.keys.keys.sorted(by: { $0.count > $1.count }).first(where: { message.contains("'\($0)") || message.contains("\($0) ") }) {
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

    static func fail(_ message: String, code: Int32) -> Never {
        FileHandle.standardError.write(Data("Error: \(message)\n".utf8))
        Foundation.exit(code)
    }
}
