import Foundation

/// `config.json` of a run: every setting, the data and its statistics and fingerprint, the device, the version.
public struct RunConfiguration: Codable, Sendable {
    public enum Kind: String, Codable, Sendable { case pretrain, finetune }

    public var kind: Kind
    public var model = "diffrec"
    public var version = RefitVersion.string
    public var createdAt: String
    public var device: String
    public var data: DataSource
    public var dataStatistics: DatasetStatistics
    public var dataFingerprint: String
    public var diffrec: DiffRecSettings
    /// For fine-tuning runs: the pre-trained run it started from.
    public var pretrainedRun: String? = nil
    public var finetune: FinetuneSettings? = nil

    public init(kind: Kind, device: String, data: DataSource, dataset: InteractionDataset, diffrec: DiffRecSettings) {
        self.kind = kind
        self.device = device
        self.data = data
        dataStatistics = dataset.statistics
        dataFingerprint = dataset.fingerprint
        self.diffrec = diffrec
        createdAt = ISO8601DateFormatter().string(from: Date())
    }
}

/// What fine-tuning changes in a pre-trained run's `config.json`, for DiffRec's and the sequential configuration alike.
public protocol FinetunableConfiguration: Codable {
    var kind: RunConfiguration.Kind { get set }
    var createdAt: String { get set }
    var device: String { get set }
    var pretrainedRun: String? { get set }
    var finetune: FinetuneSettings? { get set }
}

extension RunConfiguration: FinetunableConfiguration {}

extension RunFolder {
    /// Writes a fine-tuning run's config.json, holding the run's lock: a new folder (never the pre-trained run, nor
    /// inside or around it) gets the pre-trained run's configuration marked as fine-tuning from `pretrained`; a resumed
    /// one, checked to be a fine-tuning run of the same scenario, keeps its own and takes the new `settings`.
    func startFinetune<Configuration: FinetunableConfiguration>(from base: Configuration, pretrained: RunFolder, settings: FinetuneSettings,
                                                               device: String, resume: Bool, force: Bool,
                                                               observer: TrainingObserver?) throws -> RunLock {
        if resume {
            let lock = try openForResume(Identity(kind: RunConfiguration.Kind.finetune.rawValue, sequential: pretrained.isSequential,
                                                  model: pretrained.identity?.model))
            var saved = try readJSON(Configuration.self, from: "config.json")
            saved.finetune = settings
            try writeJSON(saved, to: "config.json")
            return lock
        } else {
            var configuration = base
            configuration.kind = .finetune
            configuration.createdAt = ISO8601DateFormatter().string(from: Date())
            configuration.device = device
            configuration.pretrainedRun = pretrained.path
            configuration.finetune = settings
            let (lock, movedTo) = try createNew(replacing: force, inputs: [pretrained])
            if let movedTo { observer?.log("the run that was in \(path) moved to \(movedTo)") }
            try writeJSON(configuration, to: "config.json")
            observer?.log("run folder \(path)")
            return lock
        }
    }
}
