import ArgumentParser
import Foundation
import Refit
import RefitCompute

extension SequentialModelKind: ExpressibleByArgument {}
extension NoiseScheduleKind: ExpressibleByArgument {}
extension MeanType: ExpressibleByArgument {}

/// Overrides of a preset's DiffRec settings; nil keeps the preset's value.
struct DiffRecOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Named settings. DiffRec: \(DiffRecPreset.allCases.map(\.rawValue).joined(separator: ", ")) (default: demo for builtin data, else ml-1m-clean); SASRec/DreamRec: \(SequentialPreset.allCases.map(\.rawValue).joined(separator: ", ")) (default: demo-seq for builtin data, else ml-1m-seq). Flags below override it.", valueName: "name"))
    var preset: String?
    @Option(name: .customLong("lr"), parsing: .unconditional, help: "Learning rate of AdamW (default: 0.001).")
    var learningRate: Float?
    @Option(parsing: .unconditional, help: "Decoupled weight decay of AdamW (default: 0).")
    var weightDecay: Float?
    @Option(parsing: .unconditional, help: "Users (DiffRec, default 400) or training targets (SASRec/DreamRec, default 256) per batch.")
    var batchSize: Int?
    @Option(parsing: .unconditional, help: "Most epochs to train, with early stopping (default: DiffRec 1000; ml-1m-seq 20).")
    var epochs: Int?
    @Option(parsing: .unconditional, help: "Evaluate on validation (and test) every N epochs (default: DiffRec 5, sequential 1).")
    var evalEvery: Int?
    @Option(parsing: .unconditional, help: "Stop after N epochs without a better validation Recall@20 (DiffRec, default 20) or NDCG@20 (sequential, default 3).")
    var patience: Int?
    @Option(help: ArgumentHelp("Decoder-side hidden sizes, e.g. 200,600 (default: 200,600).", valueName: "sizes"))
    var dims: String?
    @Option(parsing: .unconditional, help: "Size of the time embedding (default: 10).")
    var embSize: Int?
    @Option(parsing: .unconditional, help: "Dropout in training: DiffRec's input (default 0.5); the SASRec encoder's (default 0.1).")
    var dropout: Float?
    @Option(help: "What the denoiser predicts: x0 or eps (default: x0).")
    var meanType: MeanType?
    @Option(help: "Noise schedule: linear-var, linear, cosine or exp (default: DiffRec linear-var, DreamRec linear).")
    var schedule: NoiseScheduleKind?
    @Option(parsing: .unconditional, help: "Diffusion steps T (default: DiffRec 40, DreamRec 500).")
    var steps: Int?
    @Option(parsing: .unconditional, help: "Noise scale (default: 0.005).")
    var noiseScale: Double?
    @Option(parsing: .unconditional, help: "Lower end of the noise range, before scaling (default: 0.005).")
    var noiseMin: Double?
    @Option(parsing: .unconditional, help: "Upper end of the noise range, before scaling (default: 0.01).")
    var noiseMax: Double?
    @Option(parsing: .unconditional, help: "DiffRec: inference starts from q_sample(x, N), 0 from x itself (default: 0). DreamRec: N strided DDIM steps (η = 1) instead of all T (default: 50 in the sequential presets).")
    var samplingSteps: Int?
    @Option(help: ArgumentHelp("SNR loss reweighting: on or off (default: on).", valueName: "on|off"))
    var reweight: String?

    /// The ranges of the flags that DiffRec and the sequential models share, each named.
    static func checkShared(_ s: some TrainingSettings) throws {
        try require(s.learningRate > 0 && s.learningRate.isFinite, "--lr must be positive and finite")
        try require(s.weightDecay >= 0 && s.weightDecay.isFinite, "--weight-decay must be non-negative and finite")
        try require(s.batchSize >= 1, "--batch-size must be at least 1")
        try require(s.epochs >= 1, "--epochs must be at least 1")
        try require(s.evalEvery >= 1, "--eval-every must be at least 1")
        try require(s.patience >= 1, "--patience must be at least 1")
        try require(s.dropout >= 0 && s.dropout < 1, "--dropout must be in [0, 1)")
    }

    /// The flags that DiffRec and the sequential models share.
    func applyShared(to s: inout some TrainingSettings) {
        if let learningRate { s.learningRate = learningRate }
        if let weightDecay { s.weightDecay = weightDecay }
        if let batchSize { s.batchSize = batchSize }
        if let epochs { s.epochs = epochs }
        if let evalEvery { s.evalEvery = evalEvery }
        if let patience { s.patience = patience }
        if let dropout { s.dropout = dropout }
        if let schedule { s.schedule = schedule }
        if let steps { s.steps = steps }
    }

    func settings(defaultPreset: DiffRecPreset) throws -> DiffRecSettings {
        var chosen = defaultPreset
        if let preset {
            guard let named = DiffRecPreset(rawValue: preset) else {
                throw ValidationError("--preset '\(preset)' is not a DiffRec preset (\(DiffRecPreset.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            chosen = named
        }
        var s = chosen.settings
        applyShared(to: &s)
        if let dims {
            let values = dims.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !values.isEmpty, values.allSatisfy({ ($0 ?? 0) > 0 }) else {
                throw ValidationError("--dims '\(dims)' must be positive sizes separated by commas, e.g. 200,600")
            }
            s.dims = values.map { $0! }
        }
        if let embSize { s.embeddingSize = embSize }
        if let meanType { s.meanType = meanType }
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
        try Self.checkShared(s)
        try require(s.steps >= 1, "--steps must be at least 1")
        try require(s.embeddingSize >= 2 && s.embeddingSize % 2 == 0, "--emb-size must be even and at least 2")
        try require(s.noiseScale.isFinite && s.noiseMin.isFinite && s.noiseMax.isFinite, "--noise-scale, --noise-min and --noise-max must be finite")
        try require(s.samplingSteps >= 0 && s.samplingSteps <= s.steps, "--sampling-steps must be in 0…\(s.steps) (--steps)")
        _ = try s.noiseSchedule()
        return s
    }
}

/// The SASRec/DreamRec flags that DiffRec does not have.
struct SequentialOptions: ParsableArguments {
    @Option(help: "Model: diffrec (default), sasrec, or dreamrec (which conditions on a SASRec run's encoder: --encoder-from).")
    var model: String = "diffrec"
    @Option(help: ArgumentHelp("DreamRec: the SASRec run whose encoder and item embeddings it uses, frozen.", valueName: "dir"))
    var encoderFrom: String?
    @Option(parsing: .unconditional, help: "SASRec/DreamRec: items of history before each target, L (default: 10).")
    var historyLength: Int?
    @Option(parsing: .unconditional, help: "SASRec/DreamRec: embedding and hidden size d (default: 64).")
    var hiddenSize: Int?
    @Option(parsing: .unconditional, help: "SASRec/DreamRec: self-attention blocks (default: 1).")
    var blocks: Int?
    @Option(parsing: .unconditional, help: "DreamRec: classifier-free guidance strength w (default: 2).")
    var guidance: Float?
    @Option(parsing: .unconditional, help: "DreamRec: probability of the null condition in training (default: 0.1).")
    var nullProbability: Double?
    @Option(parsing: .unconditional, help: "DreamRec: linear layers of the denoiser, 1 (Linear 3d→d) or 2 (3d→2d→d with GELU) (default: 2).")
    var denoiserDepth: Int?
    @Option(parsing: .unconditional, help: "DreamRec: first beta of the schedule (default: 0.0001; exp: b_min, e.g. 0.1).")
    var betaStart: Double?
    @Option(parsing: .unconditional, help: "DreamRec: last beta of the schedule (default: 0.02; exp: b_max, e.g. 10).")
    var betaEnd: Double?

    var sequentialModel: SequentialModelKind? {
        get throws {
            switch model.lowercased() {
            case "diffrec": return nil
            case "sasrec": return .sasrec
            case "dreamrec": return .dreamrec
            default: throw ValidationError("--model '\(model)' must be diffrec, sasrec or dreamrec")
            }
        }
    }

    func settings(model kind: SequentialModelKind, shared o: DiffRecOptions, builtin: Bool) throws -> SequentialSettings {
        var preset: SequentialPreset = builtin ? .demoSeq : .ml1mSeq
        if let name = o.preset {
            guard let named = SequentialPreset(rawValue: name) else {
                throw ValidationError("--preset '\(name)' is not a sequential preset (\(SequentialPreset.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            preset = named
        }
        var s = preset.settings(model: kind)
        o.applyShared(to: &s)
        if let v = o.samplingSteps { s.samplingSteps = v }
        if let v = historyLength { s.historyLength = v }
        if let v = hiddenSize { s.hiddenSize = v }
        if let v = blocks { s.blocks = v }
        if let v = guidance { s.guidance = v }
        if let v = nullProbability { s.nullProbability = v }
        if let v = denoiserDepth { s.denoiserDepth = v }
        if let v = betaStart { s.betaStart = v }
        if let v = betaEnd { s.betaEnd = v }
        try DiffRecOptions.checkShared(s)
        try require(s.steps >= 2, "--steps must be at least 2")
        try require(s.historyLength >= 1, "--history-length must be at least 1")
        try require(s.hiddenSize >= 2 && s.hiddenSize % 2 == 0, "--hidden-size must be even and at least 2")
        try require(s.blocks >= 1, "--blocks must be at least 1")
        try require(s.guidance.isFinite, "--guidance must be finite")
        try require(s.nullProbability >= 0 && s.nullProbability < 1, "--null-probability must be in [0, 1)")
        try require(s.denoiserDepth == 1 || s.denoiserDepth == 2, "--denoiser-depth must be 1 or 2")
        try require((s.samplingSteps ?? 2) >= 1, "--sampling-steps must be at least 1")
        try require(s.betaStart.isFinite && s.betaEnd.isFinite, "--beta-start and --beta-end must be finite")
        _ = try s.noiseSchedule()
        return s
    }
}

struct PretrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pretrain",
        abstract: "Pre-train a DiffRec, SASRec or DreamRec model and write a run folder (config, metrics, checkpoints, report).",
        discussion: """
        Example, DiffRec's ML-1M benchmark split with its released settings:
          refit pretrain --data ../shared/data/diffrec-ml-1m/clean --preset ml-1m-clean --out runs/ml1m
        Sequential recommendation (leave-one-out, every rating, 5-core): SASRec, then DreamRec on its encoder:
          refit pretrain --model sasrec --data ../shared/data/ml-1m/ml-1m.ratings.tsv --out runs/sasrec
          refit pretrain --model dreamrec --encoder-from runs/sasrec --out runs/dreamrec
        """)

    @OptionGroup var data: DataOptions
    @OptionGroup var model: DiffRecOptions
    @OptionGroup var sequential: SequentialOptions
    @OptionGroup var device: DeviceOptions
    @Option(parsing: .unconditional, help: "Seed of every random draw: initialisation, shuffling, timesteps, noise, dropout.")
    var seed: UInt64 = 1
    @Option(help: ArgumentHelp("The run folder to write.", valueName: "dir"))
    var out: String = "runs/pretrain"
    @OptionGroup var runOptions: RunOptions

    func run() throws {
        let console = Console(quiet: runOptions.quiet || runOptions.json)
        if let kind = try sequential.sequentialModel {
            return try runSequential(kind, console: console)
        }
        let run = RunFolder(out)
        var configuration: RunConfiguration
        let backend = try device.makeBackend()
        let dataset: InteractionDataset
        let lock: RunLock
        if runOptions.resume {
            lock = try run.openForResume(RunFolder.Identity(kind: RunConfiguration.Kind.pretrain.rawValue, sequential: false, model: "diffrec"))
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
            var settings = try model.settings(defaultPreset: source.path.hasPrefix("builtin") ? .demo : .ml1mClean)
            if data.data == nil { console.note("no --data given: training on the built-in dataset, builtin:demo") }
            dataset = try source.load()
            settings.seed = seed
            configuration = RunConfiguration(kind: .pretrain, device: backend.deviceDescription, data: source, dataset: dataset,
                                             diffrec: settings)
            let (created, movedTo) = try run.createNew(replacing: runOptions.force)
            lock = created
            if let movedTo { console.note("the run that was in \(run.path) moved to \(movedTo)") }
            try run.writeJSON(configuration, to: "config.json")
        }
        defer { lock.release() }
        console.note(dataset.describe())
        console.note("device: \(backend.deviceDescription)")
        let settings = configuration.diffrec
        let diffrec = try DiffRecModel(backend: backend, settings: settings, items: dataset.itemCount)
        console.note("model: DiffRec \(settings.dims), T=\(settings.steps), \(diffrec.denoiser.parameters.parameterCount) parameters; run folder \(run.path)")
        let evaluator = try TopKEvaluator(backend: backend, dataset: dataset, batchSize: settings.batchSize)
        let state = runOptions.resume ? try run.resumeState(diffrec.denoiser.parameters, as: PretrainState.self) : nil
        if let state { console.note("resuming after epoch \(state.epoch) (best so far: epoch \(state.bestEpoch))") }
        let trainer = try DiffRecTrainer(model: diffrec, dataset: dataset, evaluator: evaluator, run: run, state: state, observer: console)
        let final = try trainer.train()
        let report = try ReportWriter.write(run: run)
        console.note("report: \(report.path)")
        console.result(PretrainCommand.summary(final, run: run, json: runOptions.json))
    }

    func runSequential(_ kind: SequentialModelKind, console: Console) throws {
        if kind == .dreamrec && sequential.encoderFrom == nil && !runOptions.resume {
            throw ValidationError("DreamRec conditions on a trained SASRec encoder: train one with `refit pretrain --model sasrec`, then pass --encoder-from RUN")
        }
        let backend = try device.makeBackend()
        let source = try data.sequentialSource(seed: 2024)
        // DreamRec reads its data from the SASRec run, so that run's data decides the default preset.
        var dataPath = source.path
        if kind == .dreamrec, let encoderFrom = sequential.encoderFrom, RunFolder(encoderFrom).isSequential {
            dataPath = try RunFolder(encoderFrom).readJSON(SequentialRunConfiguration.self, from: "config.json").data.path
        }
        var settings = try sequential.settings(model: kind, shared: model, builtin: dataPath.hasPrefix("builtin"))
        settings.seed = seed
        if data.data == nil && kind == .sasrec && !runOptions.resume {
            console.note("no --data given: training on the built-in dataset, builtin:demo")
        }
        let (state, _) = try SequentialSession.pretrain(
            source: source, settings: settings, encoderFrom: sequential.encoderFrom.map(RunFolder.init), out: RunFolder(out),
            backend: backend, resume: runOptions.resume, force: runOptions.force, observer: console)
        let report = try ReportWriter.write(run: RunFolder(out))
        console.note("report: \(report.path)")
        console.result(Self.sequentialSummary(state, run: RunFolder(out), json: runOptions.json))
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

/// Throws `message` as a one-line error unless `condition` holds.
func require(_ condition: Bool, _ message: @autoclosure () -> String) throws {
    if !condition { throw ValidationError(message()) }
}
