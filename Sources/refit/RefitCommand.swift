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
            RecommendCommand.self,
            ReportCommand.self,
            BenchCommand.self,
        ]
    )

    static func main() {
        do {
            let arguments = try ConfigFile.expand(Array(CommandLine.arguments.dropFirst()))
            var command = try parseAsRoot(arguments)
            try command.run()
        } catch {
            exit(withError: error)
        }
    }
}
