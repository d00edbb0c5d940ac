import ArgumentParser
import Foundation
import Refit

extension DataFormat: ExpressibleByArgument {}

/// The options that choose a dataset and shape it into splits. Every command that loads data takes them
/// with `@OptionGroup`, so `--data`, `--min-rating`, `--k-core` … mean the same everywhere.
/// The seed is not here: each command has one `--seed` that drives everything, data included.
struct DataOptions: ParsableArguments {
    @Option(help: ArgumentHelp("A ratings file, a DiffRec split folder, or builtin:demo (default: builtin:demo, said so when it is used).", valueName: "path"))
    var data: String?

    /// The data path: `--data`, or the built-in dataset, which a run then announces.
    var path: String { data ?? "builtin:demo" }

    @Option(help: ArgumentHelp("Input format; auto decides from the file name and first line.", valueName: "format"))
    var format: DataFormat = .auto

    @Option(name: .customLong("min-rating"),
            help: ArgumentHelp("Keep ratings ≥ R as interactions; 'none' keeps all rows (default: 4, sequential runs none; ignored when the data have no ratings).", valueName: "R"))
    var minRating: String?

    @Option(name: .customLong("k-core"),
            help: ArgumentHelp("Keep only users and items with at least N interactions, repeated to a fixed point (default: off, sequential runs 5).", valueName: "N"))
    var kCore: Int?

    @Option(help: ArgumentHelp("Per-user TRAIN,VALID,TEST fractions; chronological with timestamps, random otherwise; DiffRec folders keep their own (default: 0.8,0.1,0.1).", valueName: "fractions"))
    var split: String?

    @Option(help: ArgumentHelp("Text files: the user, item, rating and time columns, by 0-based index or header name, e.g. user=0,item=1,rating=2,time=3 (default: from the header names, else 0,1,2,3).", valueName: "spec"))
    var columns: String?

    @Option(help: ArgumentHelp("Text files: the field separator: tab, comma, space, '::' or any string (default: detected from the first line).", valueName: "sep"))
    var separator: String?

    @Flag(inversion: .prefixedNo, help: "Text files: whether the first line is a header (default: detected).")
    var header: Bool?

    @Option(help: ArgumentHelp("A ratings file with a time column, joined on (user, item) to data without one: a DiffRec folder's pairs by its id_map_users.tsv and id_map_items.tsv when there (for T-DiffRec's --time-weights).", valueName: "file"))
    var timestamps: String?

    var given: [String] {
        [(data != nil, "--data"), (format != .auto, "--format"), (minRating != nil, "--min-rating"), (kCore != nil, "--k-core"),
         (split != nil, "--split"), (columns != nil, "--columns"), (separator != nil, "--separator"), (header != nil, "--header"),
         (timestamps != nil, "--timestamps")]
            .filter(\.0).map(\.1)
    }

    /// A short name of the dataset for a run folder's default name: `builtin:demo` → demo, `…/ml-1m.ratings.tsv` →
    /// ml-1m, a DiffRec split folder `…/diffrec-ml-1m/clean` → diffrec-ml-1m-clean.
    var name: String { Self.name(of: path) }

    static func name(of path: String) -> String {
        if path.hasPrefix("builtin:") { return String(path.dropFirst("builtin:".count)) }
        let url = URL(fileURLWithPath: path)
        var isFolder: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isFolder), isFolder.boolValue {
            let parent = url.deletingLastPathComponent().lastPathComponent
            return parent.isEmpty || parent == "/" || parent == "." ? url.lastPathComponent : "\(parent)-\(url.lastPathComponent)"
        }
        return String(url.lastPathComponent.split(separator: ".").first ?? "data")
    }

    /// What `DatasetLoader.load` needs, with `seed` driving the random split and built-in data.
    func loaderArguments(seed: UInt64) throws -> (path: String, format: DataFormat, options: DatasetOptions) {
        var options = DatasetOptions()
        options.seed = seed
        if let minRating {
            if ["none", "all"].contains(minRating.lowercased()) {
                options.minRating = nil
            } else if let value = Float(minRating), value.isFinite {
                options.minRating = value
            } else {
                throw DataError.badOption("--min-rating '\(minRating)' is not a number or 'none'")
            }
        }
        if let kCore {
            guard kCore >= 1 else { throw DataError.badOption("--k-core \(kCore) must be at least 1") }
            options.kCore = kCore
        }
        if let split { options.splitRatios = try SplitRatios(parsing: split) }
        if let columns { options.columns = try ColumnMapping(parsing: columns) }
        if let separator {
            guard !separator.isEmpty else { throw DataError.badOption("--separator must not be empty") }
            let named = ["tab": "\t", "\\t": "\t", "comma": ",", "space": " ", "semicolon": ";", "pipe": "|"]
            options.separator = named[separator.lowercased()] ?? separator
        }
        options.hasHeader = header
        options.timestamps = timestamps
        return (path, format, options)
    }

    /// The data as the sequential scenario reads it: unless the flags say otherwise, every rating is an
    /// interaction and users and items are 5-core.
    func sequentialSource(seed: UInt64) throws -> DataSource {
        var arguments = try loaderArguments(seed: seed)
        if minRating == nil { arguments.options.minRating = nil }
        if kCore == nil { arguments.options.kCore = 5 }
        return DataSource(path: arguments.path, format: arguments.format, options: arguments.options)
    }

    func loadDataset(seed: UInt64) throws -> InteractionDataset {
        let arguments = try loaderArguments(seed: seed)
        return try DatasetLoader.load(path: arguments.path, format: arguments.format, options: arguments.options)
    }
}

struct DataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data",
        abstract: "Inspect datasets and write reusable splits.",
        subcommands: [Stats.self, Split.self]
    )

    struct Stats: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print what a dataset holds: users, items, interactions per split, density, interactions per user.")

        @OptionGroup var dataOptions: DataOptions

        @Option(parsing: .unconditional, help: "Seed of the random split and of built-in data.")
        var seed: UInt64 = 2024

        @Flag(inversion: .prefixedNo, help: "Print the statistics and fingerprint as JSON.")
        var json = false

        @Flag(inversion: .prefixedNo, help: "The sequential scenario: time-ordered sequences, leave-one-out (by default every rating counts and users and items are 5-core).")
        var sequential = false

        @Option(parsing: .unconditional, help: "With --sequential: items of history before each target, L (default: 10).")
        var historyLength = 10

        func run() throws {
            if sequential {
                let dataset = try SequenceDataset.load(try dataOptions.sequentialSource(seed: seed))
                if json {
                    struct Report: Encodable { var statistics: SequenceStatistics; var fingerprint: String }
                    let encoder = JSONEncoder()
                    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
                    print(String(decoding: try encoder.encode(Report(statistics: dataset.statistics, fingerprint: dataset.fingerprint)), as: UTF8.self))
                } else {
                    print(dataset.describe(historyLength: historyLength))
                }
                return
            }
            let dataset = try dataOptions.loadDataset(seed: seed)
            if json {
                struct Report: Encodable { var statistics: DatasetStatistics; var fingerprint: String }
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
                let text = try encoder.encode(Report(statistics: dataset.statistics, fingerprint: dataset.fingerprint))
                print(String(decoding: text, as: UTF8.self))
            } else {
                print(dataset.describe())
            }
        }
    }

    struct Split: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a dataset's split as DiffRec .npy files (train_list.npy, valid_list.npy, test_list.npy) plus user_ids.tsv and item_ids.tsv.")

        @OptionGroup var dataOptions: DataOptions

        @Option(parsing: .unconditional, help: "Seed of the random split and of built-in data.")
        var seed: UInt64 = 2024

        @Option(help: ArgumentHelp("The folder to create (required).", valueName: "dir"))
        var out: String

        @Flag(inversion: .prefixedNo, help: "Replace the folder if it exists (default: refuse).")
        var force = false

        func run() throws {
            // Refuse before the (possibly long) load; the writer checks again before it renames.
            if FileManager.default.fileExists(atPath: out) && !force { throw DataError.outputExists(path: out) }
            let dataset = try dataOptions.loadDataset(seed: seed)
            print(dataset.describe())
            try DiffRecSplitFiles.write(dataset, to: out, force: force)
            print("wrote \(out): train_list.npy, valid_list.npy, test_list.npy, user_ids.tsv, item_ids.tsv")
        }
    }
}
