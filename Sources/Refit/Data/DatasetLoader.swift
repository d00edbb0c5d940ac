#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Reads any supported input into an `InteractionLog` or straight into an `InteractionDataset`.
///
/// `path` is a file, a DiffRec folder, or `builtin:NAME` (`builtin` alone means `builtin:demo`).
public enum DatasetLoader {
    public static func load(path: String, format: DataFormat = .auto,
                            options: DatasetOptions = DatasetOptions()) throws -> InteractionDataset {
        try InteractionDataset(log: readLog(path: path, format: format, options: options), options: options)
    }

    /// The rows as read, unfiltered. Only the reading options (`columns`, `separator`, `hasHeader`, `timestamps`)
    /// and, for built-in data, `seed` are used.
    public static func readLog(path: String, format: DataFormat = .auto,
                               options: DatasetOptions = DatasetOptions()) throws -> InteractionLog {
        let log = try readRows(path: path, format: format, options: options)
        guard let timestamps = options.timestamps else { return log }
        return try TimestampJoin.attach(from: timestamps, to: log, folder: DataFiles.isDirectory(path) == true ? path : nil)
    }

    private static func readRows(path: String, format: DataFormat, options: DatasetOptions) throws -> InteractionLog {
        if let name = builtinName(path) {
            guard format == .auto || format == .builtin else {
                throw DataError.badOption("--format \(format) cannot read the built-in dataset \(path)")
            }
            guard name == "demo" else {
                throw DataError.badOption("unknown built-in dataset '\(path)'; available: \(SyntheticDataset.names.map { "builtin:\($0)" }.joined(separator: ", "))")
            }
            return SyntheticDataset.demo(seed: options.seed)
        }
        guard let isDirectory = DataFiles.isDirectory(path) else { throw DataError.missingFile(path: path) }
        if isDirectory {
            guard format == .auto || format == .diffrec else {
                throw DataError.badFile(path: path, message: "is a folder; only --format diffrec reads folders")
            }
            return try DiffRecSplitFiles.read(folder: path)
        }
        if format == .diffrec {
            throw DataError.badFile(path: path, message: "--format diffrec needs the folder holding train_list.npy, valid_list.npy and test_list.npy")
        }
        if format == .builtin { throw DataError.badOption("--format builtin needs --data builtin:demo") }
        if path.lowercased().hasSuffix(".npy") && format == .auto {
            throw DataError.badFile(path: path, message: "a single .npy file; pass the DiffRec folder that holds train_list.npy, valid_list.npy and test_list.npy")
        }

        let data = try DataFiles.read(path)
        // The first non-blank line, without a byte-order mark or a carriage return.
        let firstLine = String(decoding: data.prefix(64 * 1024), as: UTF8.self)
            .split(whereSeparator: \.isNewline).first { !$0.allSatisfy(\.isWhitespace) }
            .map { $0.hasPrefix("\u{FEFF}") ? $0.dropFirst() : $0 } ?? ""
        let chosen = format == .auto ? DataFormat.detect(path: path, isDirectory: false, firstLine: firstLine) : format
        var layout: TextLayout
        switch chosen {
        case .movieLensDat: layout = .movieLensDat
        case .movieLensCSV: layout = .movieLensCSV
        case .recbole: layout = .recbole
        default: layout = TextLayout()
        }
        // Explicit options override what the format presets.
        if let columns = options.columns { layout.columns = columns }
        if let separator = options.separator { layout.separator = separator }
        if let header = options.hasHeader { layout.hasHeader = header }
        return try DelimitedTextReader.read(data, path: path, layout: layout, format: chosen)
    }

    /// `builtin:demo` → "demo", `builtin` → "demo", anything else → nil.
    static func builtinName(_ path: String) -> String? {
        if path == "builtin" { return "demo" }
        guard path.hasPrefix("builtin:") else { return nil }
        return String(path.dropFirst("builtin:".count))
    }
}
