import ArgumentParser
import Refit

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Write report.html into a run folder: settings, data, device, curves, final metrics and timings (opens offline).",
        discussion: "Training commands write it already; this rewrites it, e.g. after an upgrade. Example: refit report --from runs/ml1m")

    @OptionGroup(title: "Input") var input: RunInputOptions
    /// The run folder as a bare argument, as before 0.2: kept, hidden, for a release.
    @Argument(help: .hidden) var folder: String?

    func run() throws {
        // Either spelling; with neither, `input.path` gives the missing-argument error every command gives.
        let url = try ReportWriter.write(run: RunFolder(try input.from ?? input.checkpoint ?? folder ?? input.path))
        print("wrote \(url.path)")
    }
}
