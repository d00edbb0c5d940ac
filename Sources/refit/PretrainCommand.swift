import ArgumentParser
import Foundation
import Refit
import RefitCompute

extension DiffRecPreset: ExpressibleByArgument {}
extension NoiseScheduleKind: ExpressibleByArgument {}
extension MeanType: ExpressibleByArgument {}

/// Overrides of a preset's DiffRec settings; nil keeps the preset's value.
struct DiffRecOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Named settings: \(DiffRecPreset.allCases.map(\.rawValue).joined(separator: ", ")) (default: demo for builtin data, else ml-1m-clean). Flags below override it.", valueName: "name"))
    var preset: DiffRecPreset?
    @Option(name: .customLong("lr"), help: "Learning rate of AdamW (ml-1m-clean: 0.001).")
    var learningRate: Float?
    @Option(help: "Decoupled weight decay of AdamW (default: 0).")
    var weightDecay: Float?
    @Option(help: "Users per training batch (default: 400).")
    var batchSize: Int?
    @Option(help: "Most epochs to train (default: 1000, with early stopping).")
    var epochs: Int?
    @Option(help: "Evaluate on validation (and test) every N epochs (default: 5).")
    var evalEvery: Int?
    @Option(help: "Stop after N epochs without a better validation Recall@20 (default: 20).")
    var patience: Int?
    @Option(help: ArgumentHelp("Decoder-side hidden sizes, e.g. 200,600 (default: 200,600).", valueName: "sizes"))
    var dims: String?
    @Option(help: "Size of the time embedding (default: 10).")
    var embSize: Int?
    @Option(help: "Input dropout in training (default: 0.5).")
    var dropout: Float?
    @Option(help: "What the denoiser predicts: x0 or eps (default: x0).")
    var meanType: MeanType?
    @Option(help: "Noise schedule: linear-var, linear or cosine (default: linear-var).")
    var schedule: NoiseScheduleKind?
    @Option(help: "Diffusion steps T (default: 40).")
    var steps: Int?
    @Option(help: "Noise scale (default: 0.005).")
    var noiseScale: Double?
    @Option(help: "Lower end of the noise range, before scaling (default: 0.005).")
    var noiseMin: Double?
    @Option(help: "Upper end of the noise range, before scaling (default: 0.01).")
    var noiseMax: Double?
    @Option(help: "Inference starts from q_sample(x, N); 0 starts from x itself (default: 0).")
    var samplingSteps: Int?
    @Option(help: ArgumentHelp("SNR loss reweighting: on or off (default: on).", valueName: "on|off"))
    var reweight: String?

    func settings(defaultPreset: DiffRecPreset) throws -> DiffRecSettings {
        var s = (preset ?? defaultPreset).settings
        if let learningRate { s.learningRate = learningRate }
        if let weightDecay { s.weightDecay = weightDecay }
        if let batchSize { s.batchSize = batchSize }
        if let epochs { s.epochs = epochs }
        if let evalEvery { s.evalEvery = evalEvery }
        if let patience { s.patience = patience }
        if let dims {
            let values = dims.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !values.isEmpty, values.allSatisfy({ ($0 ?? 0) > 0 }) else {
                throw ValidationError("--dims '\(dims)' must be positive sizes separated by commas, e.g. 200,600")
            }
            s.dims = values.map { $0! }
        }
        if let embSize { s.embeddingSize = embSize }
        if let dropout { s.dropout = dropout }
        if let meanType { s.meanType = meanType }
        if let schedule { s.schedule = schedule }
        if let steps { s.steps = steps }
        if let noiseScale { s.noiseScale = noiseScale }
        if let noiseMin { s.noiseMin = noiseMin }
        if let noiseMax { s.noiseMax = noiseMax }
        if let samplingSteps { s.samplingSteps = samplingSteps }
        if let reweight {
            switch reweight.lowercased() {
            case "on", "true", "1", "yes": s.reweight = true
            case "off", "false", "0", "no": s.reweight = false
            default: throw ValidationError("--reweight '\(reweight)' must be on or off")
            }
        }
        guard s.batchSize >= 1, s.epochs >= 1, s.evalEvery >= 1, s.patience >= 1, s.steps >= 1, s.embeddingSize >= 2,
              s.embeddingSize % 2 == 0 else {
            throw ValidationError("--batch-size, --epochs, --eval-every, --patience and --steps must be at least 1; --emb-size even and at least 2")
        }
        guard s.dropout >= 0 && s.dropout < 1 else { throw ValidationError("--dropout must be in [0, 1)") }
        guard s.samplingSteps >= 0 && s.samplingSteps <= s.steps else { throw ValidationError("--sampling-steps must be in 0…steps") }
        _ = try s.noiseSchedule()
        return s
    }
}

struct PretrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pretrain",
        abstract: "Pre-train a DiffRec model and write a run folder (config, metrics, checkpoints, report).",
        discussion: """
        Example, DiffRec's ML-1M benchmark split with its released settings:
          refit pretrain --data ../shared/data/diffrec-ml-1m/clean --preset ml-1m-clean --out runs/ml1m
        """)

    @OptionGroup var data: DataOptions
    @OptionGroup var model: DiffRecOptions
    @OptionGroup var device: DeviceOptions
    @Option(help: "Seed of every random draw: initialisation, shuffling, timesteps, noise, dropout.")
    var seed: UInt64 = 1
    @Option(help: ArgumentHelp("The run folder to write.", valueName: "dir"))
    var out: String = "runs/pretrain"
    @OptionGroup var runOptions: RunOptions

    func run() throws {
        let console = Console(quiet: runOptions.quiet || runOptions.json)
        let run = RunFolder(out)
        var configuration: RunConfiguration
        let backend = try device.makeBackend()
        let dataset: InteractionDataset
        if runOptions.resume {
            try run.requireRun()
            configuration = try run.readJSON(RunConfiguration.self, from: "config.json")
            // A resumed run keeps its settings, except how long it may go on.
            if let epochs = model.epochs { configuration.diffrec.epochs = epochs }
            if let patience = model.patience { configuration.diffrec.patience = patience }
            try run.writeJSON(configuration, to: "config.json")
            dataset = try configuration.data.load()
            guard dataset.fingerprint == configuration.dataFingerprint else {
                throw ValidationError("the data at \(configuration.data.path) changed since the run started (fingerprint differs)")
            }
        } else {
            let arguments = try data.loaderArguments(seed: 2024)
            let source = DataSource(path: arguments.path, format: arguments.format, options: arguments.options)
            dataset = try source.load()
            var settings = try model.settings(defaultPreset: source.path.hasPrefix("builtin") ? .demo : .ml1mClean)
            settings.seed = seed
            configuration = RunConfiguration(kind: .pretrain, device: backend.deviceDescription, data: source, dataset: dataset,
                                             diffrec: settings)
            try run.create(force: runOptions.force)
            try run.writeJSON(configuration, to: "config.json")
        }
        console.note(dataset.describe())
        console.note("device: \(backend.deviceDescription)")
        let settings = configuration.diffrec
        let diffrec = try DiffRecModel(backend: backend, settings: settings, items: dataset.itemCount)
        console.note("model: DiffRec \(settings.dims), T=\(settings.steps), \(diffrec.denoiser.parameters.parameterCount) parameters; run folder \(run.path)")
        let evaluator = try TopKEvaluator(backend: backend, dataset: dataset, batchSize: settings.batchSize)
        let state = runOptions.resume ? try DiffRecTrainer.restore(model: diffrec, from: run) : nil
        if let state {
            try run.filterMetrics { ($0["epoch"] as? Int ?? 0) <= state.epoch }
            console.note("resuming after epoch \(state.epoch) (best so far: epoch \(state.bestEpoch))")
        }
        let trainer = try DiffRecTrainer(model: diffrec, dataset: dataset, evaluator: evaluator, run: run, state: state, observer: console)
        let final = try trainer.train()
        let report = try ReportWriter.write(run: run)
        console.note("report: \(report.path)")
        console.result(PretrainCommand.summary(final, run: run, json: runOptions.json))
    }

    static func summary(_ state: PretrainState, run: RunFolder, json: Bool) -> String {
        if json {
            let object: [String: Any] = ["best_epoch": state.bestEpoch, "epochs": state.epoch, "run": run.path,
                                         "valid": state.bestValid, "test": state.bestTest]
            let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
            return String(decoding: data, as: UTF8.self)
        }
        var rows: [[String]] = []
        for k in [10, 20, 50, 100] {
            rows.append(["@\(k)"] + ["recall", "ndcg", "precision", "mrr"].flatMap { metric in
                [state.bestValid["\(metric)@\(k)"], state.bestTest["\(metric)@\(k)"]].map { String(format: "%.4f", $0 ?? .nan) }
            })
        }
        return "best epoch \(state.bestEpoch) of \(state.epoch) (by validation Recall@20); run folder \(run.path)\n"
            + formatTable(["K", "valid R", "test R", "valid N", "test N", "valid P", "test P", "valid MRR", "test MRR"], rows)
    }
}
