import ArgumentParser
import Refit

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Write report.html into a run folder: settings, data, device, curves, final metrics and timings (opens offline).")

    @Argument(help: ArgumentHelp("The run folder (runs/NAME).", valueName: "dir"))
    var folder: String

    func run() throws {
        let url = try ReportWriter.write(run: RunFolder(folder))
        print("wrote \(url.path)")
    }
}
