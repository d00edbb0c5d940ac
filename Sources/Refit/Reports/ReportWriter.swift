import Foundation

/// `report.html`: one self-contained page per run (inline SVG, no scripts, no network) with the settings, the
/// data statistics, the device, the curves, the final metric table and the timings.
public enum ReportWriter {
    @discardableResult
    public static func write(run: RunFolder) throws -> URL {
        try run.requireRun()
        // The fields every run's config.json has (DiffRec and sequential alike); the rest is shown as it is stored.
        let configuration = try run.readJSON(ReportHeader.self, from: "config.json")
        let sequential = run.isSequential
        let hit = sequential ? "hr@20" : "recall@20", hitName = sequential ? "HR@20" : "Recall@20"
        let metrics = try run.readMetrics()
        let epochs = metrics.filter { $0["kind"] as? String == "epoch" }
        let evaluations = metrics.filter { $0["kind"] as? String == "eval" }
        func series(_ rows: [[String: Any]], _ key: String, name: String? = nil, band: String? = nil) -> SVGChart.Series {
            let kept = rows.filter { $0[key] is Double || $0[key] is Int }
            return SVGChart.Series(name: name ?? key, points: kept.map { (Double($0["epoch"] as? Int ?? 0), number($0[key])) },
                                   band: band.map { b in kept.map { number($0[b]) } })
        }
        let valid = evaluations.filter { $0["split"] as? String == "valid" }
        let test = evaluations.filter { $0["split"] as? String == "test" }
        var charts: [SVGChart] = []
        if configuration.kind == .pretrain {
            let lossLabel = !sequential ? "loss (weighted MSE per item)"
                : configuration.model == "sasrec" ? "loss (cross-entropy over all items)" : "loss (MSE per dimension)"
            charts.append(SVGChart(title: "Training loss", xLabel: "epoch", yLabel: lossLabel, series: [series(epochs, "loss")]))
        } else {
            charts.append(SVGChart(title: "Reward (mean ± std over rollouts)", xLabel: "epoch", yLabel: "reward",
                                   series: [series(epochs, "reward_mean", name: "reward", band: "reward_std")]))
            // The pathwise estimator samples nothing, so there is no KL between policies and no ratio to clip; it logs the
            // anchor's distance to the pre-trained output instead (runs before the typed recipe kept it in approx_kl).
            if configuration.finetune?.estimator.kind == .pathwise {
                let key = epochs.contains { $0["anchor_distance"] != nil } ? "anchor_distance" : "approx_kl"
                charts.append(SVGChart(title: "Distance to the pre-trained output", xLabel: "epoch", yLabel: "½‖x₀ − x₀_ref‖² per user",
                                       series: [series(epochs, key, name: "anchor distance")]))
            } else {
                charts.append(SVGChart(title: "Approximate KL per update", xLabel: "epoch", yLabel: "KL (nats per item)",
                                       series: [series(epochs, "approx_kl", name: "approx. KL(old ‖ new)")]))
                charts.append(SVGChart(title: "PPO clip fraction", xLabel: "epoch", yLabel: "fraction of clipped ratios",
                                       series: [series(epochs, "clip_fraction", name: "clip fraction")]))
            }
        }
        charts.append(SVGChart(title: hitName, xLabel: "epoch", yLabel: hitName,
                               series: [series(valid, hit, name: "validation")] + (test.isEmpty ? [] : [series(test, hit, name: "test")])))
        charts.append(SVGChart(title: "NDCG@20", xLabel: "epoch", yLabel: "NDCG@20",
                               series: [series(valid, "ndcg@20", name: "validation")] + (test.isEmpty ? [] : [series(test, "ndcg@20", name: "test")])))
        charts.append(SVGChart(title: "Time per epoch", xLabel: "epoch", yLabel: "seconds", series: [series(epochs, "seconds", name: "training")]
                               + [series(valid, "seconds", name: "validation evaluation")]))

        var html = """
        <!DOCTYPE html><html><head><meta charset="utf-8"><title>Refit report: \(escape(run.url.lastPathComponent))</title>
        <style>body{font-family:sans-serif;max-width:1180px;margin:24px auto;color:#222}table{border-collapse:collapse;margin:8px 0 18px}
        td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
        .charts{display:flex;flex-wrap:wrap;gap:12px}</style></head><body>
        <h1>Refit \(configuration.kind == .pretrain ? "pre-training" : "fine-tuning (ReFiT)") report: \(escape(run.url.lastPathComponent))</h1>
        <p>Created \(escape(configuration.createdAt)) by Refit \(escape(configuration.version)) on <b>\(escape(configuration.device))</b>.
        \(configuration.pretrainedRun.map { "Fine-tuned from <code>\(escape($0))</code>." } ?? "")</p>
        """
        html += "<h2>Results</h2>" + resultTable(metrics: metrics, run: run, kind: configuration.kind)
        html += "<h2>Curves</h2><div class='charts'>" + charts.map(\.svg).joined() + "</div>"
        let secondsPerEpoch = epochs.map { number($0["seconds"]) }
        let secondsPerEval = evaluations.map { number($0["seconds"]) }
        html += "<h2>Timings</h2><table><tr><th>what</th><th>count</th><th>mean seconds</th><th>total seconds</th></tr>"
        for (label, values) in [("training epoch", secondsPerEpoch), ("evaluation of a split", secondsPerEval)] where !values.isEmpty {
            let total = values.reduce(0, +)
            html += "<tr><td>\(label)</td><td>\(values.count)</td><td>\(format(total / Double(values.count)))</td><td>\(format(total))</td></tr>"
        }
        html += "</table>"
        html += "<h2>Data</h2><table><tr><th>source</th><td>\(escape(configuration.data.path))</td></tr>"
        for (label, value) in dataRows(configuration.dataStatistics) + [("fingerprint", configuration.dataFingerprint)] {
            html += "<tr><th>\(label)</th><td>\(escape(value))</td></tr>"
        }
        html += "</table><h2>Settings</h2>" + settingsTable(run) + "</body></html>\n"
        let url = run.file("report.html")
        try AtomicFile.write(html, to: url)
        return url
    }

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
        var dataStatistics: [String: JSONNumberOrText]
        var dataFingerprint: String
        var pretrainedRun: String?
        /// Fine-tuning runs: the estimator decides what the divergence curve means.
        var finetune: FinetuneSettings?
    }

    /// A statistics field as it appears in config.json.
    enum JSONNumberOrText: Decodable {
        case number(Double), text(String), other
        init(from decoder: Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let d = try? c.decode(Double.self) { self = .number(d) } else if let t = try? c.decode(String.self) { self = .text(t) } else { self = .other }
        }
    }

    /// The data statistics worth a row, in a fixed order, whichever scenario wrote them.
    static func dataRows(_ s: [String: JSONNumberOrText]) -> [(String, String)] {
        let labels = [("format", "format"), ("users", "users"), ("items", "items"), ("interactions", "interactions"),
                      ("trainInteractions", "train interactions"), ("validInteractions", "valid interactions"),
                      ("testInteractions", "test interactions"), ("trainingExamples", "training targets (leave-one-out)"),
                      ("evaluatedUsers", "users evaluated"), ("splitMethod", "split"), ("kCore", "k-core"), ("minRating", "min rating")]
        return labels.compactMap { key, label in
            switch s[key] {
            case .number(let v)?: return (label, v == v.rounded() ? String(Int(v)) : String(v))
            case .text(let t)?: return (label, t)
            default: return nil
            }
        }
    }

    /// The best epoch and its scores, as both trainers save them in state.json.
    struct BestState: Decodable {
        var bestEpoch: Int
        var bestValid: [String: Double]
        var bestTest: [String: Double]
    }

    static func resultTable(metrics: [[String: Any]], run: RunFolder, kind: RunConfiguration.Kind) -> String {
        var rows: [(String, [String: Any])] = []
        if kind == .pretrain, let state = try? run.readJSON(BestState.self, from: "state.json") {
            rows = [("validation at best epoch \(state.bestEpoch)", state.bestValid), ("test at best epoch \(state.bestEpoch)", state.bestTest)]
        } else if let summary = metrics.last(where: { $0["kind"] as? String == "summary" }) {
            func pick(_ prefix: String) -> [String: Any] {
                ["recall@20": summary["\(prefix)recall@20"] as Any, "hr@20": summary["\(prefix)hr@20"] as Any,
                 "ndcg@20": summary["\(prefix)ndcg@20"] as Any]
            }
            rows = [("pre-trained, validation", pick("pretrained_valid_")), ("pre-trained, test", pick("pretrained_test_")),
                    ("fine-tuned (best epoch \(summary["best_epoch"] as? Int ?? 0)), validation", pick("valid_")),
                    ("fine-tuned, test", pick("test_"))]
        }
        guard !rows.isEmpty else { return "<p>No finished evaluation yet.</p>" }
        let keys = ["recall@10", "recall@20", "hr@10", "hr@20", "ndcg@10", "ndcg@20", "precision@20", "mrr@20", "recall@50", "ndcg@50",
                    "recall@100", "ndcg@100"]
        let shown = keys.filter { key in rows.contains { $0.1[key] is Double } }
        var html = "<table><tr><th></th>" + shown.map { "<th>\($0)</th>" }.joined() + "</tr>"
        for (label, values) in rows {
            html += "<tr><td>\(escape(label))</td>" + shown.map { "<td>\(format(number(values[$0])))</td>" }.joined() + "</tr>"
        }
        return html + "</table>"
    }

    /// Every setting group of config.json (data, diffrec or sequential, finetune), flattened to rows.
    static func settingsTable(_ run: RunFolder) -> String {
        guard let data = FileManager.default.contents(atPath: run.file("config.json").path),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return "" }
        var html = "<table>"
        // Nested objects (data.splitRatios) become rows of their own, keys sorted, so the page is the same every time.
        func rows(_ name: String, _ value: Any) {
            if let values = value as? [String: Any], values.isEmpty, let dot = name.lastIndex(of: ".") {
                // A choice without settings of its own (`{"collabScore": {}}`): the choice is the value.
                html += "<tr><th>\(escape(String(name[..<dot])))</th><td>\(escape(String(name[name.index(after: dot)...])))</td></tr>"
            } else if let values = value as? [String: Any] {
                for key in values.keys.sorted() { rows("\(name).\(key)", values[key]!) }
            } else if let list = value as? [Any] {
                html += "<tr><th>\(escape(name))</th><td>\(escape(list.map { String(describing: $0) }.joined(separator: ", ")))</td></tr>"
            } else {
                html += "<tr><th>\(escape(name))</th><td>\(escape(String(describing: value)))</td></tr>"
            }
        }
        for group in ["data", "diffrec", "sequential", "finetune"] {
            if let values = object[group] as? [String: Any] { rows(group, values) }
        }
        if let encoder = object["encoderRun"] as? String { html += "<tr><th>encoderRun</th><td>\(escape(encoder))</td></tr>" }
        return html + "</table>"
    }
}
