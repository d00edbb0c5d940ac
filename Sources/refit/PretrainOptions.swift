import ArgumentParser
import Foundation
import Refit

extension SequentialModelKind: ExpressibleByArgument {}
extension NoiseScheduleKind: ExpressibleByArgument {}
extension MeanType: ExpressibleByArgument {}
extension DenoiserLoss: ExpressibleByArgument {}

/// The pre-training flags, one group per concern. A group that belongs to one model family names the flags a user
/// gave (`given`), so that `pretrain` can refuse them, in one line, for the other families instead of ignoring them;
/// and it renders a settings value back as the flags that set it (`flags(of:)`), which `refit presets` prints and a
/// test parses back into the same settings.
struct ModelChoiceOptions: ParsableArguments {
    @Option(help: "diffrec (denoises a user's interaction vector), sasrec (a self-attention next-item model), or dreamrec (generates the next item's embedding, conditioned on a SASRec run's encoder: --encoder-from).")
    var model: String = "diffrec"
    @Option(help: ArgumentHelp("Named settings that the flags below override. DiffRec: \(DiffRecPreset.allCases.map(\.rawValue).joined(separator: ", ")) (default: demo for builtin data, else ml-1m-clean). SASRec/DreamRec: \(SequentialPreset.allCases.map(\.rawValue).joined(separator: ", ")) (default: demo-seq for builtin data, else ml-1m-seq). `refit presets` lists every value each one sets.", valueName: "name"))
    var preset: String?

    /// The sequential model `--model` names, or nil for DiffRec.
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
}

/// What every model trains with.
struct TrainingOptions: ParsableArguments {
    @Option(name: .customLong("lr"), parsing: .unconditional, help: "Learning rate of AdamW (default: 0.001).")
    var learningRate: Float?
    @Option(parsing: .unconditional, help: "Decoupled weight decay of AdamW (default: 0).")
    var weightDecay: Float?
    @Option(parsing: .unconditional, help: "Users (DiffRec, default 400) or training targets (SASRec/DreamRec, default 256) per batch.")
    var batchSize: Int?
    @Option(parsing: .unconditional, help: "Most epochs to train, with early stopping (default: DiffRec 1000; ml-1m-seq 20).")
    var epochs: Int?
    @Option(parsing: .unconditional, help: "Evaluate on validation every N epochs (default: DiffRec 5, sequential 1).")
    var evalEvery: Int?
    @Option(parsing: .unconditional, help: "Stop after N epochs without a better validation Recall@20 (DiffRec, default 20) or NDCG@20 (sequential, default 3).")
    var patience: Int?
    @Option(parsing: .unconditional, help: "Dropout in training: DiffRec's input (default 0.5); SASRec's encoder (default 0.1). DreamRec keeps its encoder run's.")
    var dropout: Float?
    @Option(parsing: .unconditional, help: "Seed of every random draw: initialisation, shuffling, timesteps, noise, dropout.")
    var seed: UInt64 = 1

    /// The ranges of the flags every model shares, each named.
    static func check(_ s: some TrainingSettings) throws {
        try require(s.learningRate > 0 && s.learningRate.isFinite, "--lr must be positive and finite")
        try require(s.weightDecay >= 0 && s.weightDecay.isFinite, "--weight-decay must be non-negative and finite")
        try require(s.batchSize >= 1, "--batch-size must be at least 1")
        try require(s.epochs >= 1, "--epochs must be at least 1")
        try require(s.evalEvery >= 1, "--eval-every must be at least 1")
        try require(s.patience >= 1, "--patience must be at least 1")
        try require(s.dropout >= 0 && s.dropout < 1, "--dropout must be in [0, 1)")
    }

    func apply(to s: inout some TrainingSettings) {
        if let learningRate { s.learningRate = learningRate }
        if let weightDecay { s.weightDecay = weightDecay }
        if let batchSize { s.batchSize = batchSize }
        if let epochs { s.epochs = epochs }
        if let evalEvery { s.evalEvery = evalEvery }
        if let patience { s.patience = patience }
        if let dropout { s.dropout = dropout }
    }

    static func flags(of s: some TrainingSettings, dropout: Bool = true) -> [(String, String)] {
        [("--lr", "\(s.learningRate)"), ("--weight-decay", "\(s.weightDecay)"), ("--batch-size", "\(s.batchSize)"), ("--epochs", "\(s.epochs)"),
         ("--eval-every", "\(s.evalEvery)"), ("--patience", "\(s.patience)")] + (dropout ? [("--dropout", "\(s.dropout)")] : [])
    }
}

/// The forward process of the two diffusion models.
struct DiffusionOptions: ParsableArguments {
    @Option(help: "Noise schedule: linear-var, linear, cosine or exp (default: DiffRec linear-var, DreamRec linear).")
    var schedule: NoiseScheduleKind?
    @Option(parsing: .unconditional, help: "Diffusion steps T (default: DiffRec 40, DreamRec 500).")
    var steps: Int?

    var given: [String] { givenFlags([(schedule != nil, "--schedule"), (steps != nil, "--steps")]) }

    func apply(to s: inout some TrainingSettings) {
        if let schedule { s.schedule = schedule }
        if let steps { s.steps = steps }
    }

    static func flags(of s: some TrainingSettings) -> [(String, String)] { [("--schedule", s.schedule.rawValue), ("--steps", "\(s.steps)")] }
}

/// DiffRec's denoiser and its noise range.
struct DiffRecOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Hidden sizes of the denoiser's decoder side, e.g. 200,600 (default: 200,600).", valueName: "sizes"))
    var dims: String?
    @Option(parsing: .unconditional, help: "Size of the timestep embedding (default: 10).")
    var embSize: Int?
    @Option(help: "What the denoiser predicts: x0 or eps (default: x0).")
    var meanType: MeanType?
    @Option(parsing: .unconditional, help: "Noise scale (default: 0.005).")
    var noiseScale: Double?
    @Option(parsing: .unconditional, help: "Lower end of the noise range, before scaling (default: 0.005).")
    var noiseMin: Double?
    @Option(parsing: .unconditional, help: "Upper end of the noise range, before scaling (default: 0.01).")
    var noiseMax: Double?
    @Option(parsing: .unconditional, help: "Inference noises a user's row to step N and denoises it from there; 0 starts from the row itself (default: 0; DiffRec's release calls it sampling_steps).")
    var startStep: Int?
    @Flag(inversion: .prefixedNo, help: "Reweight the loss by the signal-to-noise ratio of each step (default: on).")
    var reweight: Bool?
    @Option(help: ArgumentHelp("T-DiffRec: weight each user's training items by recency, linearly from MIN (oldest) to MAX (newest), e.g. 0.5,1 (chosen on ML-1M validation); needs timestamps (--timestamps for a DiffRec folder); 'none' (default) keeps 0/1 rows.", valueName: "min,max"))
    var timeWeights: String?

    var given: [String] {
        givenFlags([(dims != nil, "--dims"), (embSize != nil, "--emb-size"), (meanType != nil, "--mean-type"), (noiseScale != nil, "--noise-scale"),
         (noiseMin != nil, "--noise-min"), (noiseMax != nil, "--noise-max"), (startStep != nil, "--start-step"),
         (reweight != nil, reweight == false ? "--no-reweight" : "--reweight"), (timeWeights != nil, "--time-weights")])
    }

    /// The settings of `--preset` (or `defaultPreset`) with every DiffRec flag applied, checked.
    func settings(preset name: String?, defaultPreset: DiffRecPreset, training: TrainingOptions, diffusion: DiffusionOptions) throws -> DiffRecSettings {
        var chosen = defaultPreset
        if let name {
            guard let named = DiffRecPreset(rawValue: name) else {
                throw ValidationError("--preset '\(name)' is not a DiffRec preset (\(DiffRecPreset.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            chosen = named
        }
        var s = chosen.settings
        training.apply(to: &s)
        diffusion.apply(to: &s)
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
        if let startStep { s.samplingSteps = startStep }
        if let reweight { s.reweight = reweight }
        if let timeWeights { s.timeWeights = timeWeights.lowercased() == "none" ? nil : try TimeWeights(parsing: timeWeights) }
        try TrainingOptions.check(s)
        try require(s.steps >= 1, "--steps must be at least 1")
        try require(s.embeddingSize >= 2 && s.embeddingSize % 2 == 0, "--emb-size must be even and at least 2")
        try require(s.noiseScale.isFinite && s.noiseMin.isFinite && s.noiseMax.isFinite, "--noise-scale, --noise-min and --noise-max must be finite")
        try require(s.samplingSteps >= 0 && s.samplingSteps <= s.steps, "--start-step must be in 0…\(s.steps) (--steps)")
        _ = try s.noiseSchedule()
        return s
    }

    /// Every DiffRec setting but the seed, as the flags that set it.
    static func flags(of s: DiffRecSettings) -> [(String, String)] {
        TrainingOptions.flags(of: s) + DiffusionOptions.flags(of: s)
            + [("--dims", s.dims.map(String.init).joined(separator: ",")), ("--emb-size", "\(s.embeddingSize)"), ("--mean-type", s.meanType.rawValue),
               ("--noise-scale", "\(s.noiseScale)"), ("--noise-min", "\(s.noiseMin)"), ("--noise-max", "\(s.noiseMax)"),
               ("--start-step", "\(s.samplingSteps)"), ("--reweight", s.reweight ? "on" : "off"),
               ("--time-weights", s.timeWeights?.description ?? "none")]
    }
}

/// SASRec's encoder. DreamRec runs take theirs from the encoder run, so these are SASRec's only.
struct SASRecOptions: ParsableArguments {
    @Option(parsing: .unconditional, help: "Items of history before each target, L (default: 10).")
    var historyLength: Int?
    @Option(parsing: .unconditional, help: "Embedding and hidden size d (default: 64).")
    var hiddenSize: Int?
    @Option(parsing: .unconditional, help: "Self-attention blocks (default: 1).")
    var blocks: Int?

    var given: [String] {
        givenFlags([(historyLength != nil, "--history-length"), (hiddenSize != nil, "--hidden-size"), (blocks != nil, "--blocks")])
    }

    func apply(to s: inout SequentialSettings) {
        if let historyLength { s.historyLength = historyLength }
        if let hiddenSize { s.hiddenSize = hiddenSize }
        if let blocks { s.blocks = blocks }
    }

    static func flags(of s: SequentialSettings) -> [(String, String)] {
        [("--history-length", "\(s.historyLength)"), ("--hidden-size", "\(s.hiddenSize)"), ("--blocks", "\(s.blocks)")]
    }
}

/// DreamRec's conditioning, denoiser, schedule range and sampler.
struct DreamRecOptions: ParsableArguments {
    @Option(help: ArgumentHelp("The SASRec run whose encoder, item embeddings and data DreamRec uses, frozen (required for --model dreamrec).", valueName: "dir"))
    var encoderFrom: String?
    @Option(parsing: .unconditional, help: "Classifier-free guidance strength w (default: 2).")
    var guidance: Float?
    @Option(parsing: .unconditional, help: "Probability of the null condition in training (default: 0.1).")
    var nullProbability: Double?
    @Option(parsing: .unconditional, help: "Linear layers of the denoiser, 1 (Linear 3d→d) or 2 (3d→2d→d with GELU) (default: 2).")
    var denoiserDepth: Int?
    @Option(help: ArgumentHelp("What the denoiser learns x̂₀ by: ce (softmax cross-entropy of x̂₀·Eᵀ over all items, as DiffuRec; the chain goes on from the posterior mean of its predicted distribution) or mse (DreamRec's: x̂₀ ≈ the target's embedding) (default: ce).", valueName: "loss"))
    var loss: DenoiserLoss?
    @Option(parsing: .unconditional, help: "First beta of the schedule (default: 0.0001; exp: b_min, e.g. 0.1).")
    var betaStart: Double?
    @Option(parsing: .unconditional, help: "Last beta of the schedule (default: 0.1; DreamRec's paper: 0.02; exp: b_max, e.g. 10).")
    var betaEnd: Double?
    @Option(parsing: .unconditional, help: "Sample with N strided DDIM steps (η = 1) instead of all T ancestral ones (default: 50 in the sequential presets).")
    var samplingSteps: Int?

    var given: [String] {
        givenFlags([(encoderFrom != nil, "--encoder-from"), (guidance != nil, "--guidance"), (nullProbability != nil, "--null-probability"),
         (denoiserDepth != nil, "--denoiser-depth"), (loss != nil, "--loss"), (betaStart != nil, "--beta-start"), (betaEnd != nil, "--beta-end"),
         (samplingSteps != nil, "--sampling-steps")])
    }

    func apply(to s: inout SequentialSettings) {
        if let guidance { s.guidance = guidance }
        if let nullProbability { s.nullProbability = nullProbability }
        if let denoiserDepth { s.denoiserDepth = denoiserDepth }
        if let loss { s.denoiserLoss = loss }
        if let betaStart { s.betaStart = betaStart }
        if let betaEnd { s.betaEnd = betaEnd }
        if let samplingSteps { s.samplingSteps = samplingSteps }
    }

    static func flags(of s: SequentialSettings) -> [(String, String)] {
        DiffusionOptions.flags(of: s)
            + [("--guidance", "\(s.guidance)"), ("--null-probability", "\(s.nullProbability)"), ("--denoiser-depth", "\(s.denoiserDepth)"), ("--loss", s.loss.rawValue),
               ("--beta-start", "\(s.betaStart)"), ("--beta-end", "\(s.betaEnd)"), ("--sampling-steps", s.samplingSteps.map(String.init) ?? "\(s.steps)")]
    }
}

extension SequentialSettings {
    /// A sequential preset's settings for `model` with the flags applied, checked.
    static func parsed(model kind: SequentialModelKind, preset name: String?, builtin: Bool, training: TrainingOptions,
                       diffusion: DiffusionOptions, sasrec: SASRecOptions, dreamrec: DreamRecOptions) throws -> SequentialSettings {
        var preset: SequentialPreset = builtin ? .demoSeq : .ml1mSeq
        if let name {
            guard let named = SequentialPreset(rawValue: name) else {
                throw ValidationError("--preset '\(name)' is not a sequential preset (\(SequentialPreset.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            preset = named
        }
        var s = preset.settings(model: kind)
        training.apply(to: &s)
        diffusion.apply(to: &s)
        sasrec.apply(to: &s)
        dreamrec.apply(to: &s)
        try TrainingOptions.check(s)
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

    /// Every setting a user can give `model`, as the flags that set it: SASRec's training and encoder; DreamRec's
    /// training (its dropout and encoder are its encoder run's), diffusion and sampler.
    static func flags(of s: SequentialSettings) -> [(String, String)] {
        s.model == .sasrec ? TrainingOptions.flags(of: s) + SASRecOptions.flags(of: s)
            : TrainingOptions.flags(of: s, dropout: false) + DreamRecOptions.flags(of: s)
    }
}

/// Throws `message` as a one-line error unless `condition` holds.
func require(_ condition: Bool, _ message: @autoclosure () -> String) throws {
    if !condition { throw ValidationError(message()) }
}

/// The flags of `pairs` whose condition holds: what a group's `given` lists for `refuse`.
func givenFlags(_ pairs: [(Bool, String)]) -> [String] { pairs.filter(\.0).map(\.1) }

/// Refuses `flags` in one line: they belong to `family`, not to what this run is.
func refuse(_ flags: [String], belongTo family: String, run: String) throws {
    guard let first = flags.first else { return }
    let list = flags.count == 1 ? first : flags.dropLast().joined(separator: ", ") + " and " + flags.last!
    throw ValidationError("\(list) \(flags.count == 1 ? "is a flag" : "are flags") of \(family); \(run)")
}
