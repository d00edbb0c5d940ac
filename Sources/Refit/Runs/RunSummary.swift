import Foundation

/// One run as `refit compare` lists it: what it is, its scores at the best validation epoch, its training time and its
/// settings, read from the files every trainer writes (config.json, state.json, metrics.jsonl) without loading a model.
public struct RunSummary: Sendable {
    /// The folder's name (its last path component), and the path it was given as.
    public let name: String
    public let path: String
    public let kind: RunConfiguration.Kind
    /// "diffrec", "sasrec" or "dreamrec"; a fine-tuning run is "ReFiT of" the model it fine-tuned.
    public let model: String
    /// The hit metric at 20: "recall@20" for DiffRec runs, "hr@20" for sequential ones (one target per user).
    public let hitMetric: String
    /// The best validation epoch; nil before a run's first evaluation.
    public let bestEpoch: Int?
    /// Validation and test scores at the best epoch, under metrics.jsonl's names (`hitMetric`, "ndcg@20"); empty where
    /// the run has none yet (a fine-tuning run stopped before its summary has validation only).
    public let valid: [String: Double]
    public let test: [String: Double]
    /// Training epochs recorded in metrics.jsonl and the sum of their seconds (evaluations not included).
    public let epochs: Int
    public let seconds: Double
    /// Every setting of config.json as dotted key path → value text (`diffrec.learningRate` → "0.001").
    public let settings: [String: String]

    public var secondsPerEpoch: Double? { epochs > 0 ? seconds / Double(epochs) : nil }

    public init(_ run: RunFolder) throws {
        try run.requireRun()
        guard let identity = run.identity, let kind = RunConfiguration.Kind(rawValue: identity.kind) else {
            throw CheckpointError.notARun(run.path, reason: run.identity.map { "it is an \($0.kind) folder, not a run" }
                                          ?? "its config.json was not written by Refit")
        }
        name = run.url.lastPathComponent
        path = run.path
        self.kind = kind
        let base = identity.model ?? "diffrec"
        model = kind == .finetune ? "ReFiT of \(base)" : base
        hitMetric = identity.sequential ? "hr@20" : "recall@20"
        settings = try run.readJSON(ConfigurationTree.self, from: "config.json").flattened()

        let metrics = try run.readMetrics()
        let epochLines = metrics.filter { $0["kind"] as? String == "epoch" }
        epochs = epochLines.count
        seconds = epochLines.reduce(0) { $0 + ($1["seconds"] as? Double ?? 0) }

        // A finished fine-tuning run's scores are its summary line; pre-training runs and unfinished fine-tuning runs
        // keep the best epoch's scores in state.json.
        let keys = [hitMetric, "ndcg@20"]
        if let summary = metrics.last(where: { $0["kind"] as? String == "summary" }) {
            func pick(_ prefix: String) -> [String: Double] {
                Dictionary(uniqueKeysWithValues: keys.compactMap { key in (summary[prefix + key] as? Double).map { (key, $0) } })
            }
            bestEpoch = summary["best_epoch"] as? Int
            (valid, test) = (pick("valid_"), pick("test_"))
        } else if FileManager.default.fileExists(atPath: run.file("state.json").path) {
            let state = try run.readJSON(BestScores.self, from: "state.json")
            valid = state.bestValid.filter { keys.contains($0.key) }
            test = (state.bestTest ?? [:]).filter { keys.contains($0.key) }
            bestEpoch = valid.isEmpty ? nil : state.bestEpoch
        } else {
            (bestEpoch, valid, test) = (nil, [:], [:])
        }
    }

    /// What every trainer's state.json says of the best epoch (fine-tuning keeps no test scores there).
    struct BestScores: Decodable {
        var bestEpoch: Int
        var bestValid: [String: Double]
        var bestTest: [String: Double]?
    }
}

/// config.json as a tree whose leaves are text, so that settings of any run kind compare as they are stored.
enum ConfigurationTree: Decodable {
    case leaf(String)
    case list([ConfigurationTree])
    case object([String: ConfigurationTree])

    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        // Bool before the numbers and Int before Double, so that `true` and `400` read back as written.
        if let v = try? c.decode(Bool.self) { self = .leaf(String(v)) }
        else if let v = try? c.decode(Int.self) { self = .leaf(String(v)) }
        else if let v = try? c.decode(Double.self) { self = .leaf(String(v)) }
        else if let v = try? c.decode(String.self) { self = .leaf(v) }
        else if let v = try? c.decode([ConfigurationTree].self) { self = .list(v) }
        else if let v = try? c.decode([String: ConfigurationTree].self) { self = .object(v) }
        else { self = .leaf("null") }
    }

    /// Dotted key paths → value text. A list is one value ("200,600"); a choice without settings of its own
    /// (`"reward": {"collabScore": {}}`) is its parent's value, so that `finetune.reward` names the reward.
    func flattened(_ prefix: String = "") -> [String: String] {
        switch self {
        case .leaf(let text): return [prefix: text]
        case .list(let values): return [prefix: values.map { $0.flattened().values.sorted().joined(separator: " ") }.joined(separator: ",")]
        case .object(let fields):
            if fields.count == 1, let (choice, value) = fields.first, case .object(let inner) = value, inner.isEmpty, !prefix.isEmpty {
                return [prefix: choice]
            }
            return fields.reduce(into: [:]) { all, field in
                all.merge(field.value.flattened(prefix.isEmpty ? field.key : "\(prefix).\(field.key)")) { $1 }
            }
        }
    }
}
