import Foundation

/// Where a run's data came from, in a form that reloads the identical dataset (`eval`, `finetune`, `--resume`).
public struct DataSource: Codable, Sendable, Equatable {
    public var path: String
    public var format: DataFormat = .auto
    /// nil keeps every row (implicit data); otherwise the implicit-feedback threshold.
    public var minRating: Float? = 4
    public var kCore: Int? = nil
    public var splitRatios: SplitRatios = .standard
    public var seed: UInt64 = 2024
    public var columns: String? = nil
    public var separator: String? = nil
    public var hasHeader: Bool? = nil

    public init(path: String) { self.path = path }

    public var options: DatasetOptions {
        get throws {
            var o = DatasetOptions()
            o.minRating = minRating
            o.kCore = kCore
            o.splitRatios = splitRatios
            o.seed = seed
            o.columns = try columns.map(ColumnMapping.init(parsing:))
            o.separator = separator
            o.hasHeader = hasHeader
            return o
        }
    }

    public func load() throws -> InteractionDataset {
        try DatasetLoader.load(path: path, format: format, options: options)
    }
}

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

extension DataSource {
    /// Records what a loader was asked for, so the run can load it again.
    public init(path: String, format: DataFormat, options: DatasetOptions) {
        self.path = path
        self.format = format
        minRating = options.minRating
        kCore = options.kCore
        splitRatios = options.splitRatios
        seed = options.seed
        columns = options.columns?.description
        separator = options.separator
        hasHeader = options.hasHeader
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
    /// Writes a fine-tuning run's config.json: a new folder gets the pre-trained run's configuration marked as
    /// fine-tuning from `pretrained`; a resumed one keeps its own and takes the new `settings`.
    func startFinetune<Configuration: FinetunableConfiguration>(from base: Configuration, pretrained: RunFolder, settings: FinetuneSettings,
                                                               device: String, resume: Bool, force: Bool) throws {
        if resume {
            try requireRun()
            var saved = try readJSON(Configuration.self, from: "config.json")
            saved.finetune = settings
            try writeJSON(saved, to: "config.json")
        } else {
            var configuration = base
            configuration.kind = .finetune
            configuration.createdAt = ISO8601DateFormatter().string(from: Date())
            configuration.device = device
            configuration.pretrainedRun = pretrained.path
            configuration.finetune = settings
            try create(force: force)
            try writeJSON(configuration, to: "config.json")
        }
    }
}
