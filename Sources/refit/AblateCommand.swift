import ArgumentParser
import Foundation
import Refit
import RefitCompute

struct AblateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ablate",
        abstract: "Fine-tune one pre-trained run over a grid of rewards × neighbour kinds × seeds and write a Markdown table (mean ± sd).",
        discussion: """
        Example: three rewards × two teachers × three seeds, from the REINFORCE recipe as first specified:
          refit ablate --from runs/ml1m --rewards collab-loglik,collab-ndcg,self-loglik \\
            --neighbor-kinds user-knn,item-graph --seeds 3
        Each cell is a full `refit finetune` run in OUT/REWARD-NEIGHBORS-seedN; the table goes to OUT/ablation.md.
        """)

    @OptionGroup(title: "Input") var input: RunInputOptions
    @OptionGroup(title: "Grid") var grid: GridOptions
    @OptionGroup var options: FinetuneOptions
    @OptionGroup(title: "Device") var device: DeviceOptions
    @OptionGroup(title: "Output") var output: AblationOutputOptions

    struct GridOptions: ParsableArguments {
        @Option(help: ArgumentHelp("Rewards, comma-separated.", valueName: "list"))
        var rewards: String = "collab-loglik,collab-ndcg,self-loglik"
        @Option(help: ArgumentHelp("Neighbour kinds, comma-separated.", valueName: "list"))
        var neighborKinds: String = "user-knn"
        @Option(parsing: .unconditional, help: "Seeds per cell: 1, 2, … N.")
        var seeds: Int = 3
    }

    struct AblationOutputOptions: ParsableArguments {
        @Option(help: ArgumentHelp("Where the runs and the table go (default: a new folder runs/RUN-ablate-TIME).", valueName: "dir"))
        var out: String?
        @Flag(inversion: .prefixedNo, help: "Replace an existing output folder (the old one is moved aside, not deleted).")
        var force = false
        @Flag(inversion: .prefixedNo, help: "Print only the final table.")
        var quiet = false
        @OptionGroup var config: ConfigOption
    }

    func run() throws {
        let console = Console(quiet: output.quiet)
        let from = try input.path
        let (rewards, neighborKinds, seeds) = (grid.rewards, grid.neighborKinds, grid.seeds)
        let rewardKinds = try rewards.split(separator: ",").map { name in
            guard let kind = RewardKind(rawValue: String(name)), !kind.isSequential else {
                throw ValidationError("--rewards: unknown DiffRec reward '\(name)'; use \(RewardKind.allCases.filter { !$0.isSequential }.map(\.rawValue).joined(separator: ", "))")
            }
            return kind
        }
        let neighborList = try neighborKinds.split(separator: ",").map { name in
            guard let kind = TeacherKind(rawValue: String(name)) else {
                throw ValidationError("--neighbor-kinds: unknown kind '\(name)'; use user-knn, item-graph or ease")
            }
            return kind
        }
        guard seeds >= 1 else { throw ValidationError("--seeds must be at least 1") }
        // The grid varies the reward and the teacher of the method as specified (REINFORCE), unless --preset names another:
        // each cell is the recipe that --reward and --neighbors with those values and the other flags would give.
        func recipe(_ reward: RewardKind, _ neighbors: TeacherKind) throws -> FinetuneSettings {
            do { return try options.settings(defaultPreset: .design, reward: reward, neighbors: neighbors) } catch let error as ValidationError {
                throw ValidationError("\(reward.rawValue) with \(neighbors.rawValue): \(error.message)")
            }
        }
        for neighbors in neighborList { for reward in rewardKinds { _ = try recipe(reward, neighbors) } }  // every cell checked before any runs
        let backend = try device.makeBackend()
        let folder = RunFolder(output.out ?? RunOutputOptions.newFolder("\(URL(fileURLWithPath: from).lastPathComponent)-ablate"))
        console.note("ablation folder \(folder.path)")
        let (lock, movedTo) = try folder.createNew(replacing: output.force, inputs: [RunFolder(from)])
        defer { lock.release() }
        if let movedTo { console.note("the ablation that was in \(folder.path) moved to \(movedTo)") }
        // The marker that makes the folder Refit's own, so that --force may replace it later.
        try folder.writeJSON(AblationMarker(from: from), to: "config.json")
        let pretrained = try TrainedRun(RunFolder(from), backend: backend)
        var rows: [String] = []
        var pretrainedTest: RankingMetrics?
        for neighbors in neighborList {
            let targets = try recipe(rewardKinds[0], neighbors).targets.build(dataset: pretrained.dataset, backend: backend)
            for reward in rewardKinds {
                var outcomes: [FinetuneOutcome] = []
                for seed in 1...seeds {
                    var settings = try recipe(reward, neighbors)
                    settings.seed = UInt64(seed)
                    let name = "\(reward.rawValue)-\(neighbors.rawValue)-seed\(seed)"
                    console.note("== \(name)")
                    let run = RunFolder(folder.file(name).path)
                    let outcome = try FinetuneSession.run(pretrained: RunFolder(from), out: run, settings: settings, backend: backend,
                                                          targets: targets, observer: console)
                    try ReportWriter.write(run: run)
                    outcomes.append(outcome)
                    pretrainedTest = outcome.pretrainedTest
                }
                /// mean ± sd, or the mean alone for one seed (a standard deviation of one value says nothing).
                func cell(_ values: [Double], digits: Int = 4) -> String {
                    let mean = values.reduce(0, +) / Double(values.count)
                    guard values.count > 1 else { return String(format: "%.\(digits)f", mean) }
                    let sd = (values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(values.count - 1)).squareRoot()
                    return String(format: "%.\(digits)f ± %.\(digits)f", mean, sd)
                }
                rows.append("| \(reward.rawValue) | \(neighbors.rawValue) | \(cell(outcomes.map { $0.finetunedValid.ndcg(at: 20) })) | "
                            + "\(cell(outcomes.map { $0.finetunedTest.recall(at: 20) })) | \(cell(outcomes.map { $0.finetunedTest.ndcg(at: 20) })) | "
                            + "\(cell(outcomes.map { ($0.finetunedTest.ndcg(at: 20) / $0.pretrainedTest.ndcg(at: 20) - 1) * 100 }, digits: 2))% |")
            }
        }
        var table = "# ReFiT ablation from \(from)\n\n\(seeds) seed(s) per row; best validation-NDCG@20 epoch of each run; mean ± sd over seeds.\n\n"
        if let pretrainedTest {
            table += String(format: "Pre-trained model, test: Recall@20 %.4f, NDCG@20 %.4f.\n\n", pretrainedTest.recall(at: 20), pretrainedTest.ndcg(at: 20))
        }
        table += "| reward | neighbours | valid NDCG@20 | test Recall@20 | test NDCG@20 | test NDCG@20 change |\n|---|---|---|---|---|---|\n"
        table += rows.joined(separator: "\n") + "\n"
        try AtomicFile.write(table, to: folder.file("ablation.md"))
        console.result(table)
        console.result("wrote \(folder.file("ablation.md").path)")
    }
}

/// config.json of an ablation folder: what it is, from which run, by which version.
struct AblationMarker: Codable {
    var kind = "ablation"
    var version = RefitVersion.string
    var createdAt = ISO8601DateFormatter().string(from: Date())
    var pretrainedRun: String

    init(from: String) { pretrainedRun = from }
}
