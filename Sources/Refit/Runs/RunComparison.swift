import Foundation

/// Several runs side by side (`refit compare`): each run's summary, and the settings whose values differ between them,
/// which is what an ablation varied.
public struct RunComparison: Sendable {
    public let runs: [RunSummary]
    /// The dotted config.json keys whose values differ between the runs that have them, sorted. A group only some runs
    /// have (a fine-tuning run's `finetune.*` beside its pre-trained run) shows where it varies, not everywhere it
    /// exists: the kind and model columns already tell those runs apart.
    public let differingSettings: [String]

    /// Settings that differ between any two runs and say nothing about them: when the run was made, and what the
    /// kind and model columns already show.
    static let ignoredSettings: Set<String> = ["createdAt", "kind", "model", "scenario", "sequential.model"]

    /// The runs of `folders`, in order; an ablation folder (`refit ablate`) stands for the runs inside it.
    public init(_ folders: [RunFolder]) throws {
        self.init(runs: try folders.flatMap(Self.expanded).map(RunSummary.init))
    }

    init(runs: [RunSummary]) {
        self.runs = runs
        let keys = Set(runs.flatMap(\.settings.keys)).subtracting(Self.ignoredSettings)
        differingSettings = keys.filter { key in Set(runs.compactMap { $0.settings[key] }).count > 1 }.sorted()
    }

    /// An ablation folder's runs (its subfolders that are runs, by name), or the folder itself.
    static func expanded(_ folder: RunFolder) throws -> [RunFolder] {
        guard folder.identity?.kind == "ablation" else { return [folder] }
        let names = try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted()
        return names.map { RunFolder(folder.file($0).path) }.filter { $0.identity != nil }
    }

    /// The short name of a differing setting: the shortest dotted suffix of its key, of two parts at least so that it
    /// names its group, that no other differing key shares (`diffrec.learningRate`, `anchor.weight` for
    /// `finetune.estimator.pathwise.anchor.weight`).
    public func label(_ key: String) -> String {
        let parts = key.split(separator: ".")
        for count in min(2, parts.count)...parts.count {
            let suffix = parts.suffix(count).joined(separator: ".")
            if !differingSettings.contains(where: { $0 != key && ($0 == suffix || $0.hasSuffix("." + suffix)) }) { return suffix }
        }
        return key
    }

    /// The name of the hit-rate columns: Recall@20 for DiffRec runs, HR@20 for sequential ones, both when mixed.
    var hitName: String {
        let metrics = Set(runs.map(\.hitMetric))
        return metrics.count > 1 ? "Recall/HR@20" : metrics.first == "hr@20" ? "HR@20" : "Recall@20"
    }

    /// The table every text format shows: a header and one row of cells per run.
    public var table: (header: [String], rows: [[String]]) {
        let header = ["run", "kind", "model"] + differingSettings.map(label)
            + ["best epoch", "valid \(hitName)", "valid NDCG@20", "test \(hitName)", "test NDCG@20", "epochs", "seconds", "s/epoch"]
        func score(_ value: Double?) -> String { value.map { String(format: "%.4f", $0) } ?? "—" }
        let rows = runs.map { run in
            [run.name, run.kind.rawValue, run.model] + differingSettings.map { run.settings[$0] ?? "—" }
                + [run.bestEpoch.map(String.init) ?? "—", score(run.valid[run.hitMetric]), score(run.valid["ndcg@20"]),
                   score(run.test[run.hitMetric]), score(run.test["ndcg@20"]), String(run.epochs), String(format: "%.1f", run.seconds),
                   run.secondsPerEpoch.map { String(format: "%.2f", $0) } ?? "—"]
        }
        return (header, rows)
    }

    /// One JSON object: `runs`, each with its scores, timings and differing settings (full keys), and `differing_settings`.
    public var jsonObject: [String: Any] {
        let runs: [[String: Any]] = runs.map { run in
            ["name": run.name, "path": run.path, "kind": run.kind.rawValue, "model": run.model, "metric": run.hitMetric,
             "best_epoch": run.bestEpoch as Any? ?? NSNull(), "valid": run.valid, "test": run.test, "epochs": run.epochs,
             "seconds": run.seconds, "seconds_per_epoch": run.secondsPerEpoch as Any? ?? NSNull(),
             "settings": Dictionary(uniqueKeysWithValues: differingSettings.map { ($0, run.settings[$0] as Any? ?? NSNull()) })]
        }
        return ["runs": runs, "differing_settings": differingSettings]
    }

    /// The fields `sorted(by:)` takes besides the settings: scores sort best first, the rest ascending.
    public static let sortFields = ["name", "model", "best-epoch", "valid-hit", "valid-ndcg", "test-hit", "test-ndcg", "epochs", "seconds",
                                    "seconds-per-epoch"]

    /// The runs ordered by one of `sortFields`, or by a differing setting (its key or label; numbers numerically); runs
    /// without a value go last and ties keep the given order. Nil for a field that is neither.
    public func sorted(by field: String) -> RunComparison? {
        let value: (RunSummary) -> SortValue?
        var descending = false
        switch field {
        case "name": value = { .text($0.name) }
        case "model": value = { .text($0.model) }
        case "best-epoch": value = { $0.bestEpoch.map { .number(Double($0)) } }
        case "valid-hit": (value, descending) = ({ $0.valid[$0.hitMetric].map(SortValue.number) }, true)
        case "valid-ndcg": (value, descending) = ({ $0.valid["ndcg@20"].map(SortValue.number) }, true)
        case "test-hit": (value, descending) = ({ $0.test[$0.hitMetric].map(SortValue.number) }, true)
        case "test-ndcg": (value, descending) = ({ $0.test["ndcg@20"].map(SortValue.number) }, true)
        case "epochs": value = { .number(Double($0.epochs)) }
        case "seconds": value = { .number($0.seconds) }
        case "seconds-per-epoch": value = { $0.secondsPerEpoch.map(SortValue.number) }
        default:
            guard let key = differingSettings.first(where: { $0 == field }) ?? differingSettings.first(where: { label($0) == field }) else {
                return nil
            }
            value = { run in run.settings[key].map { Double($0).map(SortValue.number) ?? .text($0) } }
        }
        let order = runs.enumerated().sorted { a, b in
            switch (value(a.element), value(b.element)) {
            case let (x?, y?) where x != y: return descending ? y < x : x < y
            case (_?, nil): return true
            case (nil, _?): return false
            default: return a.offset < b.offset
            }
        }
        return RunComparison(runs: order.map(\.element))
    }

    enum SortValue: Comparable {
        case number(Double)
        case text(String)
    }
}
