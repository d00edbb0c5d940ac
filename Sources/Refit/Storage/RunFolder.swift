import Foundation

/// One value of a metrics.jsonl line. Lines keep their keys in the order given, so `kind` and `epoch` lead.
public enum JSONValue: Sendable, Equatable {
    case number(Double)
    case integer(Int)
    case string(String)
    case bool(Bool)

    var encoded: String {
        switch self {
        case .number(let v): v.isFinite ? String(v) : "null"
        case .integer(let v): String(v)
        case .string(let s): Safetensors.jsonString(s)
        case .bool(let b): b ? "true" : "false"
        }
    }
}

/// `runs/NAME/`: the unit of work. It holds `config.json`, `metrics.jsonl`, `best.safetensors`,
/// `last.safetensors`, `optimizer.safetensors`, `state.json` and the report. Files are written atomically;
/// an existing run is never replaced unless asked.
public struct RunFolder: Sendable {
    public let url: URL

    public init(_ path: String) { url = URL(fileURLWithPath: path) }

    public func file(_ name: String) -> URL { url.appendingPathComponent(name) }
    public var path: String { url.path }

    public var exists: Bool { FileManager.default.fileExists(atPath: file("config.json").path) }

    /// Creates the folder for a new run: `createNew` without inputs, its lock released at once (for callers that write
    /// a run in one go, like tests).
    public func create(force: Bool) throws {
        try createNew(replacing: force).lock.release()
    }

    /// Throws when the folder is not a finished or resumable run.
    public func requireRun() throws {
        guard exists else { throw CheckpointError.missingRun(path) }
    }

    public func writeJSON<T: Encodable>(_ value: T, to name: String) throws {
        try AtomicFile.write(try Self.json(value), to: file(name))
    }

    /// A run folder's JSON: indented, keys sorted, so that files compare line by line.
    static func json<T: Encodable>(_ value: T) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(value)
    }

    public func readJSON<T: Decodable>(_ type: T.Type, from name: String) throws -> T {
        let url = file(name)
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw name == "config.json" ? CheckpointError.missingRun(path) : CheckpointError.malformed(path: url.path, reason: "file is missing")
        }
        do { return try JSONDecoder().decode(type, from: data) } catch {
            throw CheckpointError.malformed(path: url.path, reason: FileProblem.describe(decoding: error, data: data))
        }
    }

    /// Appends one JSON object as a line of metrics.jsonl.
    public func appendMetrics(_ fields: [(String, JSONValue)]) throws {
        let line = "{" + fields.map { "\(Safetensors.jsonString($0.0)):\($0.1.encoded)" }.joined(separator: ",") + "}\n"
        let url = file("metrics.jsonl")
        if let handle = try? FileHandle(forWritingTo: url) {
            defer { try? handle.close() }
            try handle.seekToEnd()
            try handle.write(contentsOf: Data(line.utf8))
        } else {
            try AtomicFile.write(line, to: url)
        }
    }

    /// Every line of metrics.jsonl as a dictionary.
    public func readMetrics() throws -> [[String: Any]] {
        guard let text = try? String(contentsOf: file("metrics.jsonl"), encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
    }

    /// What a resumed run keeps of metrics.jsonl: the lines of the epochs its checkpoint covers (through `epoch`; -1
    /// when it has none), not later ones nor an end-of-run summary, which the resumed run writes again.
    public func keepMetrics(through epoch: Int) throws {
        try filterMetrics { ($0["epoch"] as? Int ?? 0) <= epoch && $0["kind"] as? String != "summary" }
    }

    /// Keeps only the metrics lines for which `keep` holds.
    public func filterMetrics(_ keep: ([String: Any]) -> Bool) throws {
        guard let text = try? String(contentsOf: file("metrics.jsonl"), encoding: .utf8) else { return }
        let kept = text.split(separator: "\n").filter { line in
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { return false }
            return keep(object)
        }
        try AtomicFile.write(kept.map { $0 + "\n" }.joined(), to: file("metrics.jsonl"))
    }

    public func readTensors(_ name: String) throws -> [String: (shape: [Int], values: [Float])] {
        try readSafetensors(name).tensors
    }

    func readSafetensors(_ name: String) throws -> (tensors: [String: (shape: [Int], values: [Float])], metadata: [String: String]) {
        let url = file(name)
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw CheckpointError.malformed(path: url.path, reason: "file is missing")
        }
        return try Safetensors.decode(data, path: url.path)
    }
}

extension RunFolder {
    /// Whether config.json says this is a sequential run (false for DiffRec runs and for folders without one).
    public var isSequential: Bool {
        guard let data = FileManager.default.contents(atPath: file("config.json").path),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return false }
        return object["scenario"] as? String == "sequential"
    }
}
