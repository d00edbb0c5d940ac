import ArgumentParser
import Foundation
import Refit

struct CompareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare",
        abstract: "One table of runs: model, the settings that differ, validation and test scores at the best epoch, and training seconds.",
        discussion: """
        Example:
          refit compare runs/lr-1e-3 runs/lr-3e-3 runs/ablate --format markdown --sort test-ndcg
        Reads each run's config.json, state.json and metrics.jsonl; nothing is recomputed. An ablation folder (`refit ablate`) stands for the runs inside it. Settings are config.json's keys (dotted paths, shown by their shortest unique suffix); only those whose values differ between the runs are shown, the creation time never. Scores are Recall@20 (HR@20 for SASRec and DreamRec runs) and NDCG@20 at the best validation epoch; a fine-tuning run's are its fine-tuned model's. Seconds are training epochs only, evaluations excluded.
        """)

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case text, markdown, json
    }

    @Argument(help: ArgumentHelp("Run folders (runs/NAME) or ablation folders, in the order the table shows them.", valueName: "run"))
    var runs: [String] = []
    @Option(help: "text, markdown (a GitHub table) or json (one object).")
    var format: Format = .text
    @Option(help: ArgumentHelp("Order by name, model, best-epoch, valid-hit, valid-ndcg, test-hit, test-ndcg, epochs, seconds, seconds-per-epoch (scores best first) or a differing setting (default: the order given).", valueName: "field"))
    var sort: String?

    func validate() throws {
        guard !runs.isEmpty else { throw ValidationError("name at least one run folder") }
    }

    func run() throws {
        var comparison = try RunComparison(runs.map(RunFolder.init))
        guard !comparison.runs.isEmpty else { throw ValidationError("\(runs.joined(separator: ", ")) holds no runs") }
        if let sort {
            guard let sorted = comparison.sorted(by: sort) else {
                let settings = comparison.differingSettings.map(comparison.label)
                throw ValidationError("--sort: unknown field '\(sort)'; use \((RunComparison.sortFields + settings).joined(separator: ", "))")
            }
            comparison = sorted
        }
        switch format {
        case .text:
            let (header, rows) = comparison.table
            print(formatTable(header, rows))
        case .markdown:
            let (header, rows) = comparison.table
            // Aligned as the text table is: the run's name left, the rest right. A cell's own `|` would end it early.
            func line(_ cells: [String]) -> String { "| " + cells.map { $0.replacingOccurrences(of: "|", with: "\\|") }.joined(separator: " | ") + " |" }
            print(([line(header), "|" + header.indices.map { $0 == 0 ? "---|" : "---:|" }.joined()] + rows.map(line)).joined(separator: "\n"))
        case .json:
            print(String(decoding: try JSONSerialization.data(withJSONObject: comparison.jsonObject, options: [.sortedKeys]), as: UTF8.self))
        }
    }
}
