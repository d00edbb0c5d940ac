import Foundation
import RefitCompute

/// `config.json` of a sequential run (SASRec, DreamRec, or DreamRec fine-tuned with ReFiT).
public struct SequentialRunConfiguration: FinetunableConfiguration, Sendable {
    public var kind: RunConfiguration.Kind
    /// Always "sequential": how commands tell these runs from DiffRec's.
    public var scenario = "sequential"
    public var model: SequentialModelKind
    public var version = RefitVersion.string
    public var createdAt: String
    public var device: String
    public var data: DataSource
    public var dataStatistics: SequenceStatistics
    public var dataFingerprint: String
    public var sequential: SequentialSettings
    /// DreamRec: the SASRec run whose encoder and item embeddings it conditions on (copied into encoder.safetensors).
    public var encoderRun: String? = nil
    /// Fine-tuning runs: the DreamRec run it started from, and the ReFiT settings.
    public var pretrainedRun: String? = nil
    public var finetune: FinetuneSettings? = nil

    public init(kind: RunConfiguration.Kind, device: String, data: DataSource, dataset: SequenceDataset, settings: SequentialSettings) {
        self.kind = kind
        model = settings.model
        self.device = device
        self.data = data
        dataStatistics = dataset.statistics
        dataFingerprint = dataset.fingerprint
        sequential = settings
        createdAt = ISO8601DateFormatter().string(from: Date())
    }
}

/// A finished sequential run loaded back: its configuration, data and best weights on a backend.
public struct TrainedSequentialRun {
    public let run: RunFolder
    public let configuration: SequentialRunConfiguration
    public let dataset: SequenceDataset
    public let model: SequentialModel
    public let weights: String

    /// - Parameters:
    ///   - weights: the checkpoint of the trained parameters (best.safetensors, or last.safetensors).
    ///   - adjust: changes to the sampling settings (guidance, sampler steps) for this evaluation only.
    public init(_ run: RunFolder, backend: any Backend, dataset loaded: SequenceDataset? = nil, weights: String = "best.safetensors",
                adjust: (inout SequentialSettings) -> Void = { _ in }) throws {
        try run.requireRun()
        guard run.isSequential else { throw CheckpointError.malformed(path: run.file("config.json").path, reason: "not a sequential run (it is a DiffRec run)") }
        self.run = run
        var configuration = try run.readJSON(SequentialRunConfiguration.self, from: "config.json")
        adjust(&configuration.sequential)
        self.configuration = configuration
        dataset = try loaded ?? SequenceDataset.load(configuration.data)
        guard dataset.fingerprint == configuration.dataFingerprint else {
            throw CheckpointError.malformed(path: run.path, reason: "the data at \(configuration.data.path) changed since the run was trained (fingerprint differs)")
        }
        model = try SequentialModel(backend: backend, settings: configuration.sequential, items: dataset.itemCount)
        self.weights = weights
        try Self.loadWeights(model, from: run, weights: weights)
    }

    /// The encoder from `encoder.safetensors` (DreamRec) or `best.safetensors` (SASRec), and the denoiser from `best.safetensors`.
    static func loadWeights(_ model: SequentialModel, from run: RunFolder, weights: String) throws {
        if let denoiser = model.denoiser {
            try model.encoder.parameters.load(try run.readTensors("encoder.safetensors"), into: model.encoder.parameters.values)
            try denoiser.parameters.load(try run.readTensors(weights), into: denoiser.parameters.values)
        } else {
            try model.encoder.parameters.load(try run.readTensors(weights), into: model.encoder.parameters.values)
        }
    }

    /// A second model with the same weights (the policy that fine-tuning changes, beside the frozen original).
    public func copyModel() throws -> SequentialModel {
        let copy = try SequentialModel(backend: model.backend, settings: configuration.sequential, items: dataset.itemCount)
        try Self.loadWeights(copy, from: run, weights: weights)
        return copy
    }
}
