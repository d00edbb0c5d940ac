import ArgumentParser
import Foundation
import Refit
import RefitCompute

struct BaselinesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "baselines",
        abstract: "Score a DiffRec run beside tuned simple baselines (popularity, user-kNN, item-kNN, RP3β, EASE) and beside its blends with user-kNN, item-graph and EASE.",
        discussion: """
        Example:
          refit baselines --from runs/ml1m
        First the tuned baselines: each setting of a grid (user-kNN: k 20–1000; item-kNN: k 50–2000 and shrink 0–100; RP3β: α 0.6–1, β 0.4–0.8, k 200–1000; EASE: λ 100–20000; on a T-DiffRec run also EASE given the run's time-weighted rows) is scored on validation and the best one (by --select-on) once on test, as reproducibility studies of diffusion recommenders tune them; --json prints every grid. A few minutes on ML-1M through PoCL (--grid quick: two settings each).
        Then each blend is z(model) + α·z(signal), the scores standardised per user over the items outside their training row, α chosen on validation NDCG@20 from 0.1 to 4. It tells what a ReFiT reward built on that signal (--neighbors user-knn, item-graph or ease) can hope to add: a signal whose best blend does not beat the model on validation has nothing to teach it. The blend is also the optimum that --reward collab-score aims at with --anchor β = 1/α (the EASE row blends EASE's dense scores; the reward uses its top --target-size items, which on ML-1M rank the same).
        The last four rows bound collab-lift. "lift / β" is x₀_ref + L_u/β, the optimum of the anchored pathwise objective, with 1/β (the α column) chosen on validation from 1 to 100; "last-layer fit" keeps only the least-squares part of L_u/β that the model's last hidden layer can express, which is what fine-tuning can reach without changing the model's features. Every signal reads the training matrix only. About a minute on ML-1M through PoCL.
        """)

    @OptionGroup(title: "Input") var input: RunInputOptions
    @Option(help: "Neighbours per user of user-kNN.")
    var neighborsK = Teacher.defaultNeighbors
    @Option(help: "Items kept in each user-kNN, item-graph and EASE target.")
    var targetSize = TargetSpec().size
    @Option(help: "L2 weight λ of EASE.")
    var easeLambda = Teacher.defaultLambda
    @Option(help: "The tuned baselines' grids: full, quick (two settings each) or off.")
    var grid: GridChoice = .full
    @Option(help: "The validation metric each grid is decided on: ndcg@20 (as fine-tuning chooses) or recall@20 (as pre-training does).")
    var selectOn: TunedBaselines.Selection = .ndcg20
    @OptionGroup(title: "Device") var device: DeviceOptions
    @Flag(inversion: .prefixedNo, help: "Print only the final table.")
    var quiet = false
    @Flag(inversion: .prefixedNo, help: "Print the final results as one JSON object.")
    var json = false

    func run() throws {
        let from = try input.path
        try RunFolder(from).requireRun()
        guard !RunFolder(from).isSequential else {
            throw ValidationError("\(from) is a sequential run; `refit eval` prints popularity beside it")
        }
        guard neighborsK >= 1 else { throw ValidationError("--neighbors-k must be at least 1") }
        guard targetSize >= 1 else { throw ValidationError("--target-size must be at least 1") }
        guard easeLambda > 0 else { throw ValidationError("--ease-lambda must be positive") }
        let console = Console(quiet: quiet || json)
        let backend = try device.makeBackend()
        console.note("device: \(backend.deviceDescription)")
        let run = try TrainedRun(RunFolder(from), backend: backend)
        let grids: TunedBaselines.Grids? = switch grid { case .full: .standard; case .quick: .quick; case .off: nil }
        let tuned = try grids.map { try TunedBaselines.run(dataset: run.dataset, backend: backend, batchSize: run.configuration.diffrec.batchSize,
                                                          grids: $0, selectingOn: selectOn, observer: console) } ?? []
        let rows = try BaselineComparison.compare(run.model, dataset: run.dataset, batchSize: run.configuration.diffrec.batchSize, neighbors: neighborsK,
                                                  targetSize: targetSize, easeLambda: easeLambda, backend: backend, observer: console)
        func metrics(_ m: RankingMetrics) -> [String: Double] { Dictionary(uniqueKeysWithValues: m.values.map { ($0.key, $0.value) }) }
        if json {
            let baselines: [[String: Any]] = tuned.map { result in
                ["baseline": result.baseline, "chosen": result.chosen, "selected_on": selectOn.rawValue, "valid": metrics(result.valid), "test": metrics(result.test),
                 "seconds": result.seconds,
                 "grid": result.grid.map { ["settings": $0.settings, "valid_recall@20": $0.validRecall20, "valid_ndcg@20": $0.validNDCG20] }]
            }
            let comparison: [[String: Any]] = rows.map { row in
                var o: [String: Any] = ["name": row.name, "valid": metrics(row.valid), "test": metrics(row.test)]
                if let w = row.blendWeight { o["blend_weight"] = w }
                return o
            }
            let object: [String: Any] = ["tuned_baselines": baselines, "comparison": comparison]
            console.result(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self))
            return
        }
        if !tuned.isEmpty {
            console.result("Tuned baselines (each grid decided on validation \(selectOn.rawValue), the choice then scored once on test):")
            console.result(formatTable(["baseline", "chosen on validation", "settings", "valid R@20", "valid N@20", "test R@20", "test N@20", "seconds"],
                                       tuned.map { result in
                [result.baseline, result.chosen, "\(result.grid.count)",
                 String(format: "%.4f", result.valid.recall(at: 20)), String(format: "%.4f", result.valid.ndcg(at: 20)),
                 String(format: "%.4f", result.test.recall(at: 20)), String(format: "%.4f", result.test.ndcg(at: 20)),
                 String(format: "%.0f", result.seconds)]
            }))
            console.result("")
        }
        let model = rows.first { $0.name.hasPrefix("DiffRec (") }!
        func change(_ a: Double, _ b: Double) -> String { String(format: "%+.1f%%", (b / a - 1) * 100) }
        console.result(formatTable(["model", "α", "valid R@20", "valid N@20", "test R@20", "test N@20", "test N@20 vs DiffRec"], rows.map { row in
            [row.name, row.blendWeight.map { String(format: "%g", $0) } ?? "",
             String(format: "%.4f", row.valid.recall(at: 20)), String(format: "%.4f", row.valid.ndcg(at: 20)),
             String(format: "%.4f", row.test.recall(at: 20)), String(format: "%.4f", row.test.ndcg(at: 20)),
             change(model.test.ndcg(at: 20), row.test.ndcg(at: 20))]
        }))
    }
}

extension BaselinesCommand {
    enum GridChoice: String, ExpressibleByArgument, CaseIterable {
        case full, quick, off
    }
}

extension TunedBaselines.Selection: ExpressibleByArgument {}
