import ArgumentParser
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
            RecommendCommand.self,
            ReportCommand.self,
            BenchCommand.self,
        ]
    )

    static func main() {
        var command: ParsableCommand
        do {
            let arguments = try ConfigFile.expand(Array(CommandLine.arguments.dropFirst()))
            command = try parseAsRoot(arguments)
        } catch {
            exit(withError: error)  // a parsing mistake: the message, then the usage that explains it
        }
        do {
            try command.run()
        } catch let error as ValidationError {
            // A setting found wrong while running: one line, as for every other error a user can cause.
            FileHandle.standardError.write(Data("Error: \(error.message)\n".utf8))
            Foundation.exit(ExitCode.validationFailure.rawValue)
        } catch {
            exit(withError: error)
        }
    }
}
