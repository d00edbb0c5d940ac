import ArgumentParser

@main
struct RefitCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "refit",
        abstract: "Train diffusion recommenders and fine-tune them with reinforcement learning (ReFiT).",
        subcommands: [
            DemoCommand.self,
            DevicesCommand.self,
            DataCommand.self,
            PretrainCommand.self,
            FinetuneCommand.self,
            EvalCommand.self,
            RecommendCommand.self,
            ReportCommand.self,
        ]
    )
}
