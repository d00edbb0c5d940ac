import Foundation

/// Where a run's data came from, in a form that reloads the identical dataset (to evaluate, fine-tune or resume).
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
    /// A file joined for the time column (`DatasetOptions.timestamps`).
    public var timestamps: String? = nil

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
            o.timestamps = timestamps
            return o
        }
    }

    public func load() throws -> InteractionDataset {
        try DatasetLoader.load(path: path, format: format, options: options)
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
        timestamps = options.timestamps
    }
}
