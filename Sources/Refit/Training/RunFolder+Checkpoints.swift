import Foundation

/// A trainer's resumable state (state.json): at least the epoch it covers and the optimizer's step count.
public protocol CheckpointState: Codable {
    var epoch: Int { get }
    var optimizerStep: Int { get }
}

/// Weights and optimizer moments of a `ParameterStore` in a run folder, shared by every trainer.
extension RunFolder {
    /// last.safetensors, optimizer.safetensors and state.json, everything resuming reads, written as one step
    /// (`writeTogether`); both tensor files carry the optimizer step of the state they belong to.
    public func saveCheckpoint<State: CheckpointState>(_ parameters: ParameterStore, state: State, metadata: [String: String]) throws {
        let step = ["optimizer_step": String(state.optimizerStep)]
        try writeTogether([
            ("last.safetensors", try Self.weights(parameters, metadata: metadata.merging(step) { $1 })),
            ("optimizer.safetensors", Safetensors.encode(try optimizerTensors(parameters), metadata: step)),
            ("state.json", try Self.json(state)),
        ])
    }

    /// Restores what `saveCheckpoint` wrote, after checking that its three files belong to one checkpoint: the
    /// weights, AdamW's moments and step count into `parameters`, and the trainer's state.
    public func restoreCheckpoint<State: CheckpointState>(_ parameters: ParameterStore, as type: State.Type) throws -> State {
        let state = try readJSON(State.self, from: "state.json")
        func read(_ name: String) throws -> [String: (shape: [Int], values: [Float])] {
            let (tensors, metadata) = try readSafetensors(name)
            if let step = metadata["optimizer_step"], step != String(state.optimizerStep) {
                throw CheckpointError.corrupt(path: file(name).path,
                                              reason: "it is from optimizer step \(step), state.json from step \(state.optimizerStep)")
            }
            return tensors
        }
        try parameters.load(try read("last.safetensors"), into: parameters.values)
        let optimizer = try read("optimizer.safetensors")
        func moments(_ prefix: String) -> [String: (shape: [Int], values: [Float])] {
            Dictionary(uniqueKeysWithValues: optimizer.compactMap { key, value in
                key.hasPrefix(prefix) ? (String(key.dropFirst(prefix.count)), value) : nil
            })
        }
        try parameters.load(moments("exp_avg."), into: parameters.firstMoments)
        try parameters.load(moments("exp_avg_sq."), into: parameters.secondMoments)
        parameters.step = state.optimizerStep
        return state
    }

    /// Where a resumed run starts: its checkpoint's state (restored into `parameters`), or nil for a run killed before
    /// its first checkpoint, which starts over. Either way metrics.jsonl keeps only the lines the start covers.
    public func resumeState<State: CheckpointState>(_ parameters: ParameterStore, as type: State.Type) throws -> State? {
        guard hasCheckpoint else {
            try keepMetrics(through: -1)
            return nil
        }
        let state = try restoreCheckpoint(parameters, as: type)
        try keepMetrics(through: state.epoch)
        return state
    }

    /// One evaluation line of metrics.jsonl, the metrics under the names `values` gives them.
    public func appendEvaluation(epoch: Int, split: EvaluationSplit, seconds: Double, values: [(key: String, value: Double)]) throws {
        try appendMetrics([("kind", .string("eval")), ("epoch", .integer(epoch)), ("split", .string(split.rawValue)),
                           ("seconds", .number(seconds))] + values.map { ($0.key, .number($0.value)) })
    }

    /// One evaluation line of a full-ranking model (recall@K, ndcg@K, …).
    public func appendEvaluation(epoch: Int, split: EvaluationSplit, seconds: Double, metrics: RankingMetrics) throws {
        try appendEvaluation(epoch: epoch, split: split, seconds: seconds, values: metrics.values)
    }

    /// One next-item evaluation line (hr@K, ndcg@K, mrr@K).
    public func appendNextItemEvaluation(epoch: Int, split: EvaluationSplit, seconds: Double, metrics: RankingMetrics) throws {
        try appendEvaluation(epoch: epoch, split: split, seconds: seconds, values: metrics.nextItemValues)
    }

    /// `best.safetensors` / `last.safetensors`: the weights under their PyTorch state-dict names.
    public func saveWeights(_ parameters: ParameterStore, to name: String, metadata: [String: String]) throws {
        try AtomicFile.write(try Self.weights(parameters, metadata: metadata), to: file(name))
    }

    /// A weights file's bytes: the parameters under their names, marked as PyTorch's format.
    static func weights(_ parameters: ParameterStore, metadata: [String: String]) throws -> Data {
        Safetensors.encode(try parameters.namedTensors(of: parameters.values), metadata: ["format": "pt"].merging(metadata) { $1 })
    }

    /// The tensors of `optimizer.safetensors`: AdamW's moments, named `exp_avg.NAME` and `exp_avg_sq.NAME` as in PyTorch.
    func optimizerTensors(_ parameters: ParameterStore) throws -> [(name: String, shape: [Int], values: [Float])] {
        let m = try parameters.namedTensors(of: parameters.firstMoments).map { ("exp_avg.\($0.name)", $0.shape, $0.values) }
        let v = try parameters.namedTensors(of: parameters.secondMoments).map { ("exp_avg_sq.\($0.name)", $0.shape, $0.values) }
        return m + v
    }
}
