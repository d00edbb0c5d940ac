import ArgumentParser
import Foundation
import Refit
import RefitCompute

struct PretrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pretrain",
        abstract: "Pre-train a DiffRec, SASRec or DreamRec model and write a run folder (config, metrics, checkpoints, report).",
        discussion: """
        Examples: DiffRec on its ML-1M benchmark split (the ml-1m-clean preset), then SASRec, then DreamRec on the SASRec run's encoder:
          refit pretrain --data ../shared/data/diffrec-ml-1m/clean --out runs/ml1m
          refit pretrain --model sasrec --data ../shared/data/ml-1m/ml-1m.ratings.tsv
          refit pretrain --model dreamrec --encoder-from runs/sasrec-… --out runs/dream
        Training prints validation at each evaluation; test is printed once, at the end, for the epoch validation chose.
        """)

    @OptionGroup(title: "Model") var choice: ModelChoiceOptions
    @OptionGroup(title: "Data (DiffRec and SASRec; DreamRec reads its encoder run's)") var data: DataOptions
    @OptionGroup(title: "Training") var training: TrainingOptions
    @OptionGroup(title: "Diffusion (DiffRec and DreamRec)") var diffusion: DiffusionOptions
    @OptionGroup(title: "DiffRec") var diffrec: DiffRecOptions
    @OptionGroup(title: "SASRec") var sasrec: SASRecOptions
    @OptionGroup(title: "DreamRec") var dreamrec: DreamRecOptions
    @OptionGroup(title: "Device") var device: DeviceOptions
    @OptionGroup(title: "Output") var output: RunOutputOptions
    @Option(parsing: .unconditional, help: "Also score test and print it at the evaluations of every N-th epoch. By default test is scored only at the epochs that improve validation, and printed once, at the end, for the epoch validation chose.")
    var showTestEvery: Int?

    func run() throws {
        let console = Console(quiet: output.quiet || output.json)
        if let showTestEvery { try require(showTestEvery >= 1, "--show-test-every must be at least 1") }
        if let kind = try choice.sequentialModel {
            return try runSequential(kind, console: console)
        }
        try refuse(sasrec.given, belongTo: "SASRec", run: "this run trains DiffRec (--model sasrec trains SASRec)")
        try refuse(dreamrec.given, belongTo: "DreamRec", run: "this run trains DiffRec (--model dreamrec trains DreamRec)")
        let run = RunFolder(try output.folder(resuming: output.resume, name: "diffrec-\(data.name)"))
        var configuration: RunConfiguration
        let backend = try device.makeBackend()
        let dataset: InteractionDataset
        let lock: RunLock
        if output.resume {
            lock = try run.openForResume(RunFolder.Identity(kind: RunConfiguration.Kind.pretrain.rawValue, sequential: false, model: "diffrec"))
            configuration = try run.readJSON(RunConfiguration.self, from: "config.json")
            // A resumed run keeps its settings, except how long it may go on.
            if let epochs = training.epochs { configuration.diffrec.epochs = epochs }
            if let patience = training.patience { configuration.diffrec.patience = patience }
            try run.writeJSON(configuration, to: "config.json")
            let data = try configuration.data.load()
            guard data.fingerprint == configuration.dataFingerprint else {
                throw ValidationError("the data at \(configuration.data.path) changed since the run started (fingerprint differs)")
            }
            dataset = try data.weighted(by: configuration.diffrec.timeWeights)
        } else {
            let arguments = try data.loaderArguments(seed: 2024)
            let source = DataSource(path: arguments.path, format: arguments.format, options: arguments.options)
            var settings = try diffrec.settings(preset: choice.preset, defaultPreset: source.path.hasPrefix("builtin") ? .demo : .ml1mClean,
                                                training: training, diffusion: diffusion)
            if data.data == nil { console.note("no --data given: training on the built-in dataset, builtin:demo") }
            dataset = try source.load().weighted(by: settings.timeWeights)
            settings.seed = training.seed
            configuration = RunConfiguration(kind: .pretrain, device: backend.deviceDescription, data: source, dataset: dataset,
                                             diffrec: settings)
            let (created, movedTo) = try run.createNew(replacing: output.force)
            lock = created
            if let movedTo { console.note("the run that was in \(run.path) moved to \(movedTo)") }
            try run.writeJSON(configuration, to: "config.json")
        }
        defer { lock.release() }
        console.note(dataset.describe())
        if let weights = configuration.diffrec.timeWeights {
            console.note("T-DiffRec: each user's training items weighted by recency, \(weights.minimum) (oldest) to \(weights.maximum) (newest)")
        }
        console.note("device: \(backend.deviceDescription)")
        let settings = configuration.diffrec
        let model = try DiffRecModel(backend: backend, settings: settings, items: dataset.itemCount)
        console.note("model: DiffRec \(settings.dims), T=\(settings.steps), \(model.denoiser.parameters.parameterCount) parameters; run folder \(run.path)")
        let evaluator = try TopKEvaluator(backend: backend, dataset: dataset, batchSize: settings.batchSize)
        let state = output.resume ? try run.resumeState(model.denoiser.parameters, as: PretrainState.self) : nil
        if let state { console.note("resuming after epoch \(state.epoch) (best so far: epoch \(state.bestEpoch))") }
        let trainer = try DiffRecTrainer(model: model, dataset: dataset, evaluator: evaluator, run: run, state: state,
                                         showTestEvery: showTestEvery, observer: console)
        let final = try trainer.train()
        let report = try ReportWriter.write(run: run)
        console.note("report: \(report.path)")
        console.result(PretrainCommand.summary(final, run: run, json: output.json))
    }

    func runSequential(_ kind: SequentialModelKind, console: Console) throws {
        try refuse(diffrec.given, belongTo: "DiffRec", run: "this run trains \(kind == .sasrec ? "SASRec" : "DreamRec")")
        switch kind {
        case .sasrec:
            try refuse(diffusion.given, belongTo: "the diffusion models (DiffRec, DreamRec)", run: "SASRec is not one")
            try refuse(dreamrec.given, belongTo: "DreamRec", run: "this run trains SASRec")
        case .dreamrec:
            let inherited = "DreamRec takes it from its encoder run (--encoder-from)"
            try refuse(sasrec.given + (training.dropout != nil ? ["--dropout"] : []), belongTo: "SASRec's encoder", run: inherited)
            try refuse(data.given, belongTo: "the data", run: inherited)
            if dreamrec.encoderFrom == nil && !output.resume {
                throw ValidationError("DreamRec conditions on a trained SASRec encoder: train one with `refit pretrain --model sasrec`, then pass --encoder-from RUN")
            }
        }
        let backend = try device.makeBackend()
        let source = try data.sequentialSource(seed: 2024)
        // DreamRec reads its data from the SASRec run, so that run's data decides the default preset.
        var dataPath = source.path
        if kind == .dreamrec, let encoderFrom = dreamrec.encoderFrom, RunFolder(encoderFrom).isSequential {
            dataPath = try RunFolder(encoderFrom).readJSON(SequentialRunConfiguration.self, from: "config.json").data.path
        }
        var settings = try SequentialSettings.parsed(model: kind, preset: choice.preset, builtin: dataPath.hasPrefix("builtin"), training: training,
                                                     diffusion: diffusion, sasrec: sasrec, dreamrec: dreamrec)
        settings.seed = training.seed
        if data.data == nil && kind == .sasrec && !output.resume {
            console.note("no --data given: training on the built-in dataset, builtin:demo")
        }
        let out = RunFolder(try output.folder(resuming: output.resume, name: "\(kind.rawValue)-\(DataOptions.name(of: dataPath))"))
        let (state, _) = try SequentialSession.pretrain(
            source: source, settings: settings, encoderFrom: dreamrec.encoderFrom.map(RunFolder.init), out: out,
            backend: backend, resume: output.resume, force: output.force, showTestEvery: showTestEvery, observer: console)
        let report = try ReportWriter.write(run: out)
        console.note("report: \(report.path)")
        console.result(Self.sequentialSummary(state, run: out, json: output.json))
    }

    static func sequentialSummary(_ state: SequentialState, run: RunFolder, json: Bool) -> String {
        if json {
            let object: [String: Any] = ["best_epoch": state.bestEpoch, "epochs": state.epoch, "run": run.path,
                                         "valid": state.bestValid, "test": state.bestTest]
            let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
            return String(decoding: data, as: UTF8.self)
        }
        let rows = [10, 20].map { k in
            ["@\(k)"] + ["hr", "ndcg"].flatMap { metric in
                [state.bestValid["\(metric)@\(k)"], state.bestTest["\(metric)@\(k)"]].map { String(format: "%.4f", $0 ?? .nan) }
            }
        }
        return "best epoch \(state.bestEpoch) of \(state.epoch) (by validation NDCG@20); run folder \(run.path)\n"
            + formatTable(["K", "valid HR", "test HR", "valid NDCG", "test NDCG"], rows)
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
