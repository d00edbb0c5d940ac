import Foundation

/// `report.html`: one self-contained page per run (inline SVG, no scripts, no network): the results at the best epoch
/// (for fine-tuning: before, after, the relative change and popularity), the curves that mean something for the run's
/// estimator, what changed for users (from users.json, when the run wrote one), the timings, the data, and the settings
/// of the recipe actually used.
public enum ReportWriter {
    @discardableResult
    public static func write(run: RunFolder) throws -> URL {
        try run.requireRun()
        // The fields every run's config.json has (DiffRec and sequential alike); the rest is shown as it is stored.
        let configuration = try run.readJSON(ReportHeader.self, from: "config.json")
        let log = RunLog(try run.readMetrics(), state: try? run.readJSON(BestEpoch.self, from: "state.json"))
        let names = MetricNames(sequential: run.isSequential)
        let finetuning = configuration.kind == .finetune
        var html = """
        <!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Refit report: \(escape(run.url.lastPathComponent))</title>
        <style>\(style)</style></head><body>
        <h1>Refit \(finetuning ? "fine-tuning (ReFiT)" : "pre-training") report: \(escape(run.url.lastPathComponent))</h1>
        <p class="note">\(escape(configuration.model == "diffrec" ? "DiffRec" : configuration.model == "sasrec" ? "SASRec" : "DreamRec"))
        on <code>\(escape(configuration.data.path))</code>. Created \(escape(configuration.createdAt)) by Refit \(escape(configuration.version))
        on \(escape(configuration.device)).\(configuration.pretrainedRun.map { " Fine-tuned from <code>\(escape($0))</code>." } ?? "")</p>
        """
        html += "<h2>Results</h2>" + (finetuning ? finetuneResults(log, names) : pretrainResults(run))
        html += "<h2>Curves</h2><div class='charts'>" + charts(configuration, log, names).joined() + "</div>"
        if let users = try? run.readJSON(UserChanges.self, from: "users.json") {
            html += "<h2>What changed for users</h2>" + userChanges(users)
        }
        html += "<div class='columns'><div><h2>Timings</h2>" + timings(log) + "<h2>Data</h2>" + dataTable(configuration)
            + "</div><div><h2>Settings</h2>" + settingsTable(run) + "</div></div></body></html>\n"
        let url = run.file("report.html")
        try AtomicFile.write(html, to: url)
        return url
    }

    static let style = """
        body{font:14px/1.45 sans-serif;max-width:1160px;margin:20px auto;padding:0 16px;color:#222}
        h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:26px 0 8px;padding-bottom:3px;border-bottom:1px solid #ddd}
        .note{color:#555;margin:4px 0 10px}code{font-size:13px}
        table{border-collapse:collapse;margin:6px 0 12px;font-variant-numeric:tabular-nums}
        td,th{border:1px solid #d4d4d4;padding:3px 9px;text-align:right}th{background:#f3f4f6;font-weight:600}
        td:first-child,th:first-child{text-align:left}.up{color:#1a7f37;font-weight:600}.down{color:#c62828;font-weight:600}
        .charts{display:flex;flex-wrap:wrap;gap:14px 24px}.columns{display:flex;flex-wrap:wrap;gap:0 36px;align-items:flex-start}
        .settings td{text-align:left}details{margin:4px 0 12px}summary{color:#444}
        """

    static func number(_ value: Any?) -> Double {
        if let d = value as? Double { return d }
        if let i = value as? Int { return Double(i) }
        return .nan
    }

    static func format(_ v: Double) -> String { v.isFinite ? String(format: abs(v) < 10 ? "%.4f" : "%.1f", v) : "—" }

    static func escape(_ s: String) -> String { SVGChart.escape(s) }

    /// What a report needs of config.json, common to DiffRec and sequential runs.
    struct ReportHeader: Decodable {
        struct Data: Decodable { var path: String }
        var kind: RunConfiguration.Kind
        var model: String
        var createdAt: String
        var version: String
        var device: String
        var data: Data
        var dataStatistics: [String: JSONTree]
        var dataFingerprint: String
        var pretrainedRun: String?
        /// Fine-tuning runs: the estimator decides which curves mean something.
        var finetune: FinetuneSettings?
    }

    /// The best epoch as every trainer's state.json keeps it.
    struct BestEpoch: Decodable { var bestEpoch: Int }

    /// metrics.jsonl, by kind of line.
    struct RunLog {
        var epochs: [[String: Any]]
        var evaluations: [[String: Any]]
        var valid: [[String: Any]]
        var summary: [String: Any]?
        /// The summary's, else state.json's (a run still going, or a pre-training run).
        var bestEpoch: Int?

        init(_ lines: [[String: Any]], state: BestEpoch?) {
            epochs = lines.filter { $0["kind"] as? String == "epoch" }
            evaluations = lines.filter { $0["kind"] as? String == "eval" }
            valid = evaluations.filter { $0["split"] as? String == "valid" }
            summary = lines.last { $0["kind"] as? String == "summary" }
            bestEpoch = summary?["best_epoch"] as? Int ?? state?.bestEpoch
        }

        /// `key` of each line that has it, by epoch.
        func series(_ rows: [[String: Any]], _ key: String, name: String, band: String? = nil) -> SVGChart.Series {
            let kept = rows.filter { $0[key] is Double || $0[key] is Int }
            return SVGChart.Series(name: name, points: kept.map { (Double($0["epoch"] as? Int ?? 0), ReportWriter.number($0[key])) },
                                   band: band.map { b in kept.map { ReportWriter.number($0[b]) } })
        }

        /// The pre-trained model's validation `key`: the fine-tuning run's epoch 0, else its summary line.
        func pretrainedValid(_ key: String) -> Double {
            let epoch0 = valid.first { $0["epoch"] as? Int == 0 }?[key]
            return ReportWriter.number(epoch0 ?? summary?["pretrained_valid_\(key)"])
        }
    }

    /// Recall@20 is HR@20 for next-item runs (one target per user).
    struct MetricNames {
        var hit: String, hitLabel: String
        init(sequential: Bool) { (hit, hitLabel) = sequential ? ("hr@20", "HR@20") : ("recall@20", "Recall@20") }
    }

    /// The curves, each only where it means something: pre-training's loss; fine-tuning's reward, REINFORCE's KL and
    /// clip fraction only with PPO (one plain update clips nothing), the pathwise anchor's distance when it has one; the
    /// validation metrics (test is logged at few epochs, and shown at the best one in the results); the timings.
    static func charts(_ configuration: ReportHeader, _ log: RunLog, _ names: MetricNames) -> [String] {
        let best = log.bestEpoch.map { SVGChart.Marker(x: Double($0), label: "best epoch \($0)") }
        var charts: [SVGChart] = []
        func chart(_ title: String, _ yLabel: String, _ series: [SVGChart.Series], level: SVGChart.Level? = nil) {
            charts.append(SVGChart(title: title, xLabel: "epoch", yLabel: yLabel, series: series, marker: best, level: level))
        }
        if configuration.kind == .pretrain {
            let lossLabel = configuration.model == "diffrec" ? "weighted MSE per item"
                : configuration.model == "sasrec" ? "cross-entropy over all items" : "MSE per dimension"
            chart("Training loss", lossLabel, [log.series(log.epochs, "loss", name: "training loss")])
        } else {
            switch configuration.finetune?.estimator {
            case .pathwise(let pathwise)?:
                // The chain is deterministic: one reward per user, whose spread over users says nothing of the gradient.
                chart("Reward (mean over users)", "reward", [log.series(log.epochs, "reward_mean", name: "mean reward")])
                if pathwise.anchor != nil {
                    // Runs before the typed recipe kept the distance in approx_kl.
                    let key = log.epochs.contains { $0["anchor_distance"] != nil } ? "anchor_distance" : "approx_kl"
                    chart("Anchor distance ½‖x₀ − x₀_ref‖²", "per user", [log.series(log.epochs, key, name: "anchor distance")])
                }
            case .reinforce(let reinforce)?:
                chart("Reward (mean ± std over rollouts)", "reward",
                      [log.series(log.epochs, "reward_mean", name: "reward", band: "reward_std")])
                if let ppo = reinforce.ppo, ppo.epochs > 0 {
                    chart("Approximate KL per update", "nats per item", [log.series(log.epochs, "approx_kl", name: "approx. KL(old ‖ new)")])
                    chart("PPO clip fraction", "share of clipped ratios", [log.series(log.epochs, "clip_fraction", name: "clip fraction")])
                }
            case nil:
                chart("Reward", "reward", [log.series(log.epochs, "reward_mean", name: "reward")])
            }
        }
        for (key, label) in [(names.hit, names.hitLabel), ("ndcg@20", "NDCG@20")] {
            let level = configuration.kind == .finetune ? SVGChart.Level(y: log.pretrainedValid(key), name: "pre-trained") : nil
            chart("Validation \(label)", label, [log.series(log.valid, key, name: "validation")], level: level)
        }
        charts.append(SVGChart(title: "Time per epoch", xLabel: "epoch", yLabel: "seconds",
                               series: [log.series(log.epochs, "seconds", name: "training"),
                                        log.series(log.valid, "seconds", name: "validation evaluation")]))
        return charts.map(\.svg)
    }

    /// Pre-training: every metric at the best validation epoch, as the trainers save them in state.json.
    static func pretrainResults(_ run: RunFolder) -> String {
        struct BestState: Decodable {
            var bestEpoch: Int
            var bestValid: [String: Double]
            var bestTest: [String: Double]
        }
        guard let state = try? run.readJSON(BestState.self, from: "state.json"), !state.bestValid.isEmpty else {
            return "<p>No finished evaluation yet.</p>"
        }
        let rows = [("validation", state.bestValid), ("test", state.bestTest)]
        let keys = ["recall@10", "recall@20", "hr@10", "hr@20", "ndcg@10", "ndcg@20", "precision@20", "mrr@20", "recall@50", "ndcg@50",
                    "recall@100", "ndcg@100"]
        let shown = keys.filter { key in rows.contains { $0.1[key] != nil } }
        var html = "<p>At the best validation epoch, \(state.bestEpoch).</p><table><tr><th>split</th>" + shown.map { "<th>\($0)</th>" }.joined() + "</tr>"
        for (label, values) in rows {
            html += "<tr><td>\(label)</td>" + shown.map { "<td>\(format(values[$0] ?? .nan))</td>" }.joined() + "</tr>"
        }
        return html + "</table>"
    }

    /// Fine-tuning: the pre-trained and the fine-tuned model under the identical protocol, the relative change, and
    /// popularity's test scores for scale (the table `refit finetune` prints).
    static func finetuneResults(_ log: RunLog, _ names: MetricNames) -> String {
        guard let summary = log.summary else { return "<p>No finished evaluation yet.</p>" }
        let columns = [("valid", names.hit), ("valid", "ndcg@20"), ("test", names.hit), ("test", "ndcg@20")]
        func cells(_ prefix: String) -> [Double] { columns.map { number(summary["\(prefix)\($0.0)_\($0.1)"]) } }
        let before = cells("pretrained_"), after = cells("")
        var html = "<table><tr><th>model</th>" + columns.map { "<th>\($0.0) \($0.1 == "ndcg@20" ? "NDCG@20" : names.hitLabel)</th>" }.joined() + "</tr>"
        func row(_ label: String, _ values: [String]) { html += "<tr><td>\(label)</td>" + values.map { "<td>\($0)</td>" }.joined() + "</tr>" }
        row("pre-trained", before.map(format))
        row("fine-tuned (ReFiT, best epoch \(log.bestEpoch ?? 0))", after.map(format))
        row("relative change", zip(before, after).map { b, a in
            let change = (a / b - 1) * 100
            guard change.isFinite else { return "—" }
            return "<span class='\(change > 0 ? "up" : change < 0 ? "down" : "")'>\(String(format: "%+.1f%%", change))</span>"
        })
        if summary["popularity_test_ndcg@20"] != nil {
            row("popularity", columns.map { $0.0 == "test" ? format(number(summary["popularity_test_\($0.1)"])) : "—" })
        }
        html += "</table>"
        if let rewardBefore = summary["reward_before"], let rewardAfter = summary["reward_after"] {
            html += "<p class='note'>Mean reward of a fixed probe of training users: \(format(number(rewardBefore))) before, \(format(number(rewardAfter))) after.</p>"
        }
        return html
    }

    /// users.json drawn: the per-user change of the test metric, and the popularity of the recommended items.
    static func userChanges(_ u: UserChanges) -> String {
        let metric = u.metric.replacingOccurrences(of: "ndcg", with: "NDCG")
        func count(_ n: Int) -> String { "\(n.grouped) (" + String(format: "%.0f%%", 100 * Double(n) / Double(max(u.users, 1))) + ")" }
        let html = "<p>Of the \(u.users.grouped) users with a \(escape(u.split)) item, <span class='up'>\(count(u.improved)) improved</span> "
            + "their \(u.split) \(metric), \(count(u.unchanged)) kept it and <span class='down'>\(count(u.worse)) lost</span>; its mean "
            + "over them went from \(format(u.before.meanMetric)) to \(format(u.after.meanMetric)). The recommended top 20 drew on "
            + "\(u.before.distinctItems.grouped) distinct items before and \(u.after.distinctItems.grouped) after, with \(format(u.before.meanItemInteractions)) and \(format(u.after.meanItemInteractions)) "
            + "training interactions per recommended item on average.</p>"
        let edges = u.changeEdges
        let colors = edges.indices.dropLast().map { edges[$0 + 1] <= 0 ? "#d62728" : edges[$0] >= 0 ? "#2ca02c" : "#999" }
        let change = SVGBarChart(title: "Change of each user's \(u.split) \(metric)", xLabel: "\(metric) after − before (bins finer near 0)",
                                 yLabel: "users", labels: edges.map(SVGChart.label),
                                 series: [SVGBarChart.Series(name: "users", values: u.changeCounts.map(Double.init), colors: colors)])
        let popularity = SVGBarChart(title: "Popularity of the recommended items",
                                     xLabel: "items by training interactions (top 10% has ≥ \(u.decileLeastInteractions.first ?? 0) each)",
                                     yLabel: "% of all top-20 recommendations",
                                     labels: (0..<10).map { $0 == 0 ? "top 10%" : "\($0 * 10)–\($0 * 10 + 10)%" },
                                     series: [SVGBarChart.Series(name: "pre-trained", values: u.before.shareByDecile.map { $0 * 100 }, colors: ["#a7b1bd"]),
                                              SVGBarChart.Series(name: "fine-tuned", values: u.after.shareByDecile.map { $0 * 100 }, colors: ["#1f77b4"])])
        return html + "<div class='charts'>" + change.svg + popularity.svg + "</div>"
    }

    static func timings(_ log: RunLog) -> String {
        var html = "<table><tr><th>what</th><th>count</th><th>mean s</th><th>total s</th></tr>"
        for (label, rows) in [("training epoch", log.epochs), ("evaluation of a split", log.evaluations)] where !rows.isEmpty {
            let total = rows.map { number($0["seconds"]) }.reduce(0, +)
            html += "<tr><td>\(label)</td><td>\(rows.count)</td><td>\(format(total / Double(rows.count)))</td><td>\(format(total))</td></tr>"
        }
        return html + "</table>"
    }

    static func dataTable(_ configuration: ReportHeader) -> String {
        var html = "<table class='settings'><tr><th>source</th><td>\(escape(configuration.data.path))</td></tr>"
        for (label, value) in dataRows(configuration.dataStatistics) + [("fingerprint", configuration.dataFingerprint)] {
            html += "<tr><th>\(label)</th><td>\(escape(value))</td></tr>"
        }
        return html + "</table>"
    }

    /// The data statistics worth a row, in a fixed order, whichever scenario wrote them.
    static func dataRows(_ s: [String: JSONTree]) -> [(String, String)] {
        let labels = [("format", "format"), ("users", "users"), ("items", "items"), ("interactions", "interactions"),
                      ("trainInteractions", "train interactions"), ("validInteractions", "valid interactions"),
                      ("testInteractions", "test interactions"), ("trainingExamples", "training targets (leave-one-out)"),
                      ("evaluatedUsers", "users evaluated"), ("splitMethod", "split"), ("kCore", "k-core"), ("minRating", "min rating")]
        return labels.compactMap { key, label in s[key].flatMap { $0.isLeaf ? (label, $0.text) : nil } }
    }

    /// The settings of config.json, flattened to rows: the data's, and the model's (DiffRec or sequential) for a
    /// pre-training run; for a fine-tuning run the recipe as the typed settings hold it (so only the chosen estimator's
    /// settings, also for runs that stored the flat settings of old), without what DreamRec runs do not read (the
    /// collaborative targets, the trained layers), and the pre-trained model's settings folded away.
    static func settingsTable(_ run: RunFolder) -> String {
        guard let data = FileManager.default.contents(atPath: run.file("config.json").path),
              let object = try? JSONDecoder().decode([String: JSONTree].self, from: data) else { return "" }
        struct Recipe: Decodable { var finetune: FinetuneSettings? }
        // A recipe the typed settings cannot read is shown as stored.
        var recipe = object["finetune"]
        if let settings = (try? JSONDecoder().decode(Recipe.self, from: data))?.finetune,
           case .object(var groups)? = try? JSONDecoder().decode(JSONTree.self, from: try RunFolder.json(settings)) {
            if run.isSequential { groups["targets"] = nil; groups["trainedLayers"] = nil }
            recipe = .object(groups)
        }
        let model = ["diffrec", "sequential"].compactMap { key in object[key].map { (key, $0) } }
            + (object["encoderRun"].map { [("encoderRun", $0)] } ?? [])
        guard let recipe else { return table([("data", object["data"])] + model) }
        return table([("data", object["data"]), ("finetune", recipe)])
            + (model.isEmpty ? "" : "<details><summary>The pre-trained model's settings (of its own run)</summary>" + table(model) + "</details>")
    }

    /// Rows of nested settings (data.splitRatios.train), keys sorted, so the page is the same every time.
    static func table(_ groups: [(String, JSONTree?)]) -> String {
        var html = "<table class='settings'>"
        func rows(_ name: String, _ value: JSONTree) {
            switch value {
            case .object(let values) where values.isEmpty:
                // A choice without settings of its own (`{"collabScore": {}}`): the choice is the value.
                guard let dot = name.lastIndex(of: ".") else { return }
                html += "<tr><th>\(escape(String(name[..<dot])))</th><td>\(escape(String(name[name.index(after: dot)...])))</td></tr>"
            case .object(let values):
                for key in values.keys.sorted() { rows("\(name).\(key)", values[key]!) }
            default:
                html += "<tr><th>\(escape(name))</th><td>\(escape(value.text))</td></tr>"
            }
        }
        for case let (name, value?) in groups { rows(name, value) }
        return html + "</table>"
    }
}

/// A JSON value as config.json stores it. Booleans stay booleans (JSONSerialization reads them as numbers on Linux).
indirect enum JSONTree: Decodable {
    case bool(Bool), number(Double), text(String), list([JSONTree]), object([String: JSONTree]), null

    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null } else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let d = try? c.decode(Double.self) { self = .number(d) } else if let t = try? c.decode(String.self) { self = .text(t) }
        else if let l = try? c.decode([JSONTree].self) { self = .list(l) } else { self = .object(try c.decode([String: JSONTree].self)) }
    }

    var isLeaf: Bool {
        switch self {
        case .bool, .number, .text: true
        default: false
        }
    }

    /// As a settings cell shows it: whole numbers without a decimal point, lists joined by commas.
    var text: String {
        switch self {
        case .bool(let b): String(b)
        case .number(let v): v == v.rounded() && abs(v) < 1e15 ? String(Int(v)) : String(v)
        case .text(let t): t
        case .list(let l): l.map(\.text).joined(separator: ", ")
        case .object(let o): o.keys.sorted().joined(separator: ", ")
        case .null: "—"
        }
    }
}
