import ArgumentParser
import Foundation
import Refit
import RefitCompute

extension EvaluationSplit: ExpressibleByArgument {}

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Evaluate a run's best checkpoint: full ranking, seen items masked (train for valid; train+valid for test).")

    @OptionGroup(title: "Input") var input: RunInputOptions
    @Option(help: "valid or test.")
    var split: EvaluationSplit = .test
    @Option(help: ArgumentHelp("Cut-offs K, comma-separated.", valueName: "list"))
    var k: String = "10,20,50,100"
    @Option(help: ArgumentHelp("Checkpoint file in the run folder.", valueName: "file"))
    var weights: String = "best.safetensors"
    @Flag(inversion: .prefixedNo, help: "Print one JSON object, as in metrics.jsonl.")
    var json = false
    @OptionGroup(title: "DreamRec runs") var sampler: SamplerOptions
    @OptionGroup(title: "Device") var device: DeviceOptions

    /// How a DreamRec run samples at evaluation; its own settings unless given.
    struct SamplerOptions: ParsableArguments {
        @Option(parsing: .unconditional, help: "Guidance strength w at sampling (default: the run's).")
        var guidance: Float?
        @Option(parsing: .unconditional, help: "Sampler steps, all T or fewer strided DDIM steps (default: the run's).")
        var samplingSteps: Int?
        @Option(parsing: .unconditional, help: "Score the mean of N sampled x̂₀ instead of one draw (default: 1).")
        var samples: Int?

        var given: [String] {
            givenFlags([(guidance != nil, "--guidance"), (samplingSteps != nil, "--sampling-steps"), (samples != nil, "--samples")])
        }
    }

    var checkpoint: String { get throws { try input.path } }

    func run() throws {
        let cutoffs = try parseCutoffs(k)
        let checkpoint = try self.checkpoint
        let model = RunFolder(checkpoint).isSequential
            ? try RunFolder(checkpoint).readJSON(SequentialRunConfiguration.self, from: "config.json").model : nil
        if model != .dreamrec {
            try refuse(sampler.given, belongTo: "DreamRec's sampler", run: "\(checkpoint) is a \(model?.rawValue ?? "diffrec") run")
        }
        let backend = try device.makeBackend()
        if model != nil { return try runSequential(cutoffs: cutoffs, backend: backend) }
        let run = try TrainedRun(RunFolder(checkpoint), backend: backend, weights: weights)
        let evaluator = try TopKEvaluator(backend: backend, dataset: run.dataset, batchSize: run.configuration.diffrec.batchSize, cutoffs: cutoffs)
        let started = Date()
        let metrics = try evaluator.evaluate(split) { _, input in try run.model.scores(input) }
        let seconds = Date().timeIntervalSince(started)
        if json {
            let fields = [("\"kind\"", "\"eval\""), ("\"split\"", "\"\(split.rawValue)\""), ("\"seconds\"", String(seconds))]
                + metrics.values.map { ("\"\($0.key)\"", String($0.value)) }
            print("{" + fields.map { "\($0.0):\($0.1)" }.joined(separator: ",") + "}")
        } else {
            print("\(checkpoint) (\(weights)) on \(split.rawValue), \(metrics.users) users, \(String(format: "%.1f", seconds)) s on \(backend.deviceDescription)")
            print(formatTable(["K", "Recall", "NDCG", "Precision", "MRR"], cutoffs.map { k in
                ["@\(k)"] + [metrics.recall(at: k), metrics.ndcg(at: k), metrics.precision(at: k), metrics.mrr(at: k)].map { String(format: "%.4f", $0) }
            }))
        }
    }
}

extension EvalCommand {
    /// Next-item evaluation of a SASRec or DreamRec run: HR@K and NDCG@K, history masked, every user with a
    /// held-out item counted; popularity beside it.
    func runSequential(cutoffs: [Int], backend: any Backend) throws {
        let checkpoint = try self.checkpoint
        let folder = RunFolder(checkpoint)
        let run = try TrainedSequentialRun(folder, backend: backend, weights: weights) { settings in
            if let guidance = sampler.guidance { settings.guidance = guidance }
            if let samplingSteps = sampler.samplingSteps { settings.samplingSteps = samplingSteps }
        }
        let samples = sampler.samples ?? 1
        let evaluator = try SequentialEvaluator(backend: backend, dataset: run.dataset, historyLength: run.configuration.sequential.historyLength,
                                                cutoffs: cutoffs)
        let started = Date()
        guard samples >= 1 else { throw ValidationError("--samples must be at least 1") }
        let metrics = try evaluator.evaluate(split, model: run.model, samples: samples)
        let seconds = Date().timeIntervalSince(started)
        if json {
            let fields = [("\"kind\"", "\"eval\""), ("\"split\"", "\"\(split.rawValue)\""), ("\"seconds\"", String(seconds))]
                + metrics.nextItemValues.map { ("\"\($0.key)\"", String($0.value)) }
            print("{" + fields.map { "\($0.0):\($0.1)" }.joined(separator: ",") + "}")
            return
        }
        let popularity = try evaluator.popularity(split)
        let s = run.configuration.sequential
        let model = s.model == .sasrec ? "SASRec" : "DreamRec (w = \(s.guidance), \(run.model.sampler.count) sampling steps, \(samples) sample\(samples == 1 ? "" : "s") averaged)"
        print("\(checkpoint) (\(weights)), \(model), on \(split.rawValue): \(metrics.users) users, \(String(format: "%.1f", seconds)) s on \(backend.deviceDescription)")
        print(formatTable(["K", "HR", "NDCG", "MRR", "popularity HR", "popularity NDCG"], cutoffs.map { k in
            ["@\(k)"] + [metrics.recall(at: k), metrics.ndcg(at: k), metrics.mrr(at: k), popularity.recall(at: k), popularity.ndcg(at: k)]
                .map { String(format: "%.4f", $0) }
        }))
    }
}

func parseCutoffs(_ text: String) throws -> [Int] {
    let values = text.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
    guard !values.isEmpty, values.allSatisfy({ ($0 ?? 0) > 0 }) else {
        throw ValidationError("--k '\(text)' must be positive integers separated by commas, e.g. 10,20")
    }
    return values.map { $0! }
}
