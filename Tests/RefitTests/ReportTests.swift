import Foundation
import Testing
@testable import Refit

/// report.html: the panels a run's estimator calls for and no others, the best-epoch markers, the before/after table,
/// users.json's charts, the settings of the recipe used, and older run folders. Runs are written by hand (config.json,
/// metrics.jsonl, state.json), so every case costs milliseconds; FinetuneTests and SequentialTests render real runs.
@Suite struct ReportTests {
    /// A run folder as the trainers leave it: `epochs` epoch lines (with `diagnostics`), validation at epochs 0…epochs
    /// (fine-tuning) or every other epoch (pre-training, with a test line where validation improved), best epoch 2.
    static func writeRun(_ folder: String, finetune: FinetuneSettings?, settingsJSON: String? = nil, diagnostics: [String] = [],
                         epochs: Int = 4, popularity: Bool = true) throws -> RunFolder {
        let run = RunFolder(folder)
        let settings = try settingsJSON ?? finetune.map { String(decoding: try RunFolder.json($0), as: UTF8.self) }
        let config = """
            {"kind": "\(settings == nil ? "pretrain" : "finetune")", "model": "diffrec", "createdAt": "2026-01-01T00:00:00Z",
             "version": "test", "device": "CPU reference", "data": {"path": "builtin:demo", "seed": 2024},
             "dataStatistics": {"users": 40, "items": 30, "format": "builtin"}, "dataFingerprint": "f00d",
             "diffrec": {"dims": [8], "reweight": true}\(settings.map { ", \"pretrainedRun\": \"/runs/base\", \"finetune\": \($0)" } ?? "")}
            """
        try config.write(toFile: folder + "/config.json", atomically: true, encoding: .utf8)
        let ndcg = [0.20, 0.19, 0.23, 0.22, 0.21]
        for epoch in 0...epochs {
            if epoch > 0 {
                try run.appendMetrics([("kind", .string("epoch")), ("epoch", .integer(epoch)), ("reward_mean", .number(Double(epoch))),
                                       ("reward_std", .number(0.5)), ("loss", .number(1 / Double(epoch)))]
                                      + diagnostics.map { ($0, .number(0.01 * Double(epoch))) } + [("seconds", .number(1))])
            }
            guard settings != nil || epoch % 2 == 0 else { continue }
            let values: [(String, JSONValue)] = [("recall@20", .number(ndcg[epoch % 5] + 0.1)), ("ndcg@20", .number(ndcg[epoch % 5]))]
            try run.appendMetrics([("kind", .string("eval")), ("epoch", .integer(epoch)), ("split", .string("valid")), ("seconds", .number(0.1))] + values)
            if settings == nil && epoch == 2 {
                try run.appendMetrics([("kind", .string("eval")), ("epoch", .integer(epoch)), ("split", .string("test")), ("seconds", .number(0.1))] + values)
            }
        }
        if settings != nil {
            var summary: [(String, JSONValue)] = [("kind", .string("summary")), ("best_epoch", .integer(2))]
            for (prefix, recall, ndcg) in [("pretrained_valid_", 0.30, 0.20), ("pretrained_test_", 0.30, 0.20), ("valid_", 0.33, 0.23), ("test_", 0.33, 0.22)] {
                summary += [("\(prefix)recall@20", .number(recall)), ("\(prefix)ndcg@20", .number(ndcg))]
            }
            if popularity { summary += [("popularity_test_recall@20", .number(0.1443)), ("popularity_test_ndcg@20", .number(0.09))] }
            try run.appendMetrics(summary)
        }
        try #"{"bestEpoch": 2, "bestValid": {"recall@20": 0.33, "ndcg@20": 0.23}, "bestTest": {"recall@20": 0.32, "ndcg@20": 0.215}}"#
            .write(toFile: folder + "/state.json", atomically: true, encoding: .utf8)
        return run
    }

    static func render(_ run: RunFolder) throws -> String {
        try String(contentsOf: try ReportWriter.write(run: run), encoding: .utf8)
    }

    /// The charts' titles, in page order (each SVG names itself in a `<title>`).
    static func chartTitles(_ html: String) -> [String] {
        html.components(separatedBy: "<svg").dropFirst().compactMap { svg in
            svg.components(separatedBy: "<title>").dropFirst().first?.components(separatedBy: "</title>").first
        }
    }

    static func reinforce(ppoEpochs: Int?) -> FinetuneSettings {
        var reinforce = ReinforceSettings()
        reinforce.ppo = ppoEpochs.map { PPOSettings(epochs: $0) }
        var settings = FinetuneSettings()
        settings.estimator = .reinforce(reinforce)
        return settings
    }

    @Test func pathwiseRunShowsTheAnchorDistanceAndNoKLOrClipPanel() throws {
        try PretrainTestSupport.withTemporaryFolder { folder in
            var settings = FinetunePreset.easeScore.settings
            settings.estimator = .pathwise(PathwiseSettings(steps: 1, anchor: Anchor(weight: 2)))
            let html = try Self.render(try Self.writeRun(folder, finetune: settings, diagnostics: ["anchor_distance"]))
            #expect(Self.chartTitles(html) == ["Reward (mean over users)", "Anchor distance ½‖x₀ − x₀_ref‖²", "Validation Recall@20",
                                               "Validation NDCG@20", "Time per epoch"])
            #expect(!html.contains("KL") && !html.contains("clip"), "a pathwise report names no KL and no clipping")
            // Only the pathwise recipe's settings: none of REINFORCE's.
            #expect(html.contains("<th>finetune.estimator.pathwise.anchor.weight</th><td>2</td>"))
            #expect(!html.contains("rollouts") && !html.contains("exploration"))
        }
    }

    @Test(arguments: [Int?.none, 2])
    func reinforceRunShowsKLAndClipFractionOnlyWithPPO(ppoEpochs: Int?) throws {
        try PretrainTestSupport.withTemporaryFolder { folder in
            let run = try Self.writeRun(folder, finetune: Self.reinforce(ppoEpochs: ppoEpochs), diagnostics: ["approx_kl", "clip_fraction"])
            let html = try Self.render(run)
            let titles = Self.chartTitles(html)
            #expect(titles.first == "Reward (mean ± std over rollouts)")
            #expect(titles.contains("Approximate KL per update") == (ppoEpochs != nil))
            #expect(titles.contains("PPO clip fraction") == (ppoEpochs != nil))
            #expect(!titles.contains { $0.contains("Anchor") })
            #expect(html.contains("finetune.estimator.reinforce.ppo.epochs") == (ppoEpochs != nil))
            #expect(html.contains("<th>finetune.estimator.reinforce.rollouts</th><td>4</td>"))
        }
    }

    /// Every epoch chart but the timings marks the best epoch (a line, its label, and the validation point drawn
    /// larger); fine-tuning's metric charts draw the pre-trained level.
    @Test func curvesMarkTheBestEpochAndThePretrainedLevel() throws {
        try PretrainTestSupport.withTemporaryFolder { folder in
            let html = try Self.render(try Self.writeRun(folder, finetune: Self.reinforce(ppoEpochs: nil)))
            let charts = html.components(separatedBy: "<svg").dropFirst()
            #expect(charts.count == 4)
            for chart in charts.dropLast() { #expect(chart.contains(">best epoch 2</text>"), "\(chart.prefix(200))") }
            #expect(!charts.last!.contains("best epoch"))
            // The marked validation point, epoch 2's.
            let ndcg = charts.first { $0.contains("<title>Validation NDCG@20</title>") }!
            #expect(ndcg.components(separatedBy: "class='best'").count == 2)
            // The pre-trained level: a dashed line named in the legend, at epoch 0's value.
            #expect(ndcg.contains("stroke-dasharray='6 4'") && ndcg.contains(">pre-trained</text>"))
        }
    }

    @Test func finetuneResultsShowTheRelativeChangeAndPopularity() throws {
        try PretrainTestSupport.withTemporaryFolder { folder in
            let html = try Self.render(try Self.writeRun(folder, finetune: Self.reinforce(ppoEpochs: nil)))
            #expect(html.contains("<tr><td>pre-trained</td><td>0.3000</td><td>0.2000</td><td>0.3000</td><td>0.2000</td></tr>"))
            #expect(html.contains("<tr><td>fine-tuned (ReFiT, best epoch 2)</td><td>0.3300</td><td>0.2300</td><td>0.3300</td><td>0.2200</td></tr>"))
            #expect(html.contains("<td><span class='up'>+10.0%</span></td><td><span class='up'>+15.0%</span></td>"))
            #expect(html.contains("<tr><td>popularity</td><td>—</td><td>—</td><td>0.1443</td><td>0.0900</td></tr>"))
        }
    }

    /// Pre-training logs test only where validation improved: the curves are validation's, test is in the results.
    @Test func pretrainReportDrawsValidationCurvesAndTestAtTheBestEpoch() throws {
        try PretrainTestSupport.withTemporaryFolder { folder in
            let html = try Self.render(try Self.writeRun(folder, finetune: nil))
            #expect(Self.chartTitles(html) == ["Training loss", "Validation Recall@20", "Validation NDCG@20", "Time per epoch"])
            #expect(!html.contains(">test</text>"), "no test curve")
            #expect(html.contains("<tr><td>test</td><td>0.3200</td><td>0.2150</td></tr>"))
            #expect(html.components(separatedBy: ">best epoch 2</text>").count == 4)
            #expect(!html.contains("What changed for users") && !html.contains("pre-trained</text>"))
        }
    }

    /// Four users ranked twice over ten items: one gains a hit, one loses one, two keep their NDCG.
    static func userChanges() -> UserChanges {
        var before = UserRankings(cutoffs: [2], cutoff: 2), after = before
        let truth: [Set<Int32>] = [[1], [2], [3], [4]]
        for (user, (a, b)) in [([0, 1], [1, 0]), ([2, 5], [5, 6]), ([7, 8], [8, 7]), ([9, 6], [9, 6])].enumerated() {
            before.add(user: user, ranked: ArraySlice(a.map(Int32.init)), groundTruth: truth[user])
            after.add(user: user, ranked: ArraySlice(b.map(Int32.init)), groundTruth: truth[user])
        }
        before.add(user: 4, ranked: [0, 1], groundTruth: [])  // no held-out item: averaged as zero, no change of its own
        after.add(user: 4, ranked: [0, 1], groundTruth: [])
        // Item i has 10 − i training interactions: item 0 is the most popular, each item its own decile.
        return UserChanges(before: before, after: after, itemInteractions: (0..<10).map { 10 - $0 }, split: .test)
    }

    @Test func userChangesCountUsersAndRecommendedPopularity() throws {
        let u = Self.userChanges()
        #expect((u.users, u.improved, u.unchanged, u.worse) == (4, 1, 2, 1))
        // User 0: 1/log2(3) → 1, user 1: 1 → 0.
        let gain = 1 - 1 / log2(3.0)
        let bin = UserChanges.changeEdges.lastIndex { $0 <= gain }!
        #expect(u.changeCounts.reduce(0, +) == 4 && bin == 10 && u.changeCounts[bin] == 1 && u.changeCounts.first == 1)
        #expect(u.changeCounts[5] == 2, "the bin around zero holds the unchanged users")
        #expect(u.decileLeastInteractions == Array((1...10).reversed()))
        #expect(u.before.shareByDecile == [1, 1, 1, 0, 0, 1, 1, 1, 1, 1].map { $0 / 8 })
        #expect(u.after.shareByDecile == [1, 1, 0, 0, 0, 1, 2, 1, 1, 1].map { $0 / 8 })
        #expect(u.before.distinctItems == 8 && u.after.distinctItems == 7)
        #expect(abs(u.before.meanMetric - (1 / log2(3.0) + 1) / 4) < 1e-12 && u.after.meanMetric == 0.25)
        #expect(abs(u.before.meanItemInteractions - Double(10 + 9 + 8 + 5 + 3 + 2 + 1 + 4) / 8) < 1e-12)
    }

    @Test func usersJSONPanelsRender() throws {
        try PretrainTestSupport.withTemporaryFolder { folder in
            let run = try Self.writeRun(folder, finetune: Self.reinforce(ppoEpochs: nil))
            try run.writeJSON(Self.userChanges(), to: "users.json")
            let html = try Self.render(run)
            #expect(html.contains("<h2>What changed for users</h2>"))
            #expect(html.contains("1 (25%) improved") && html.contains("2 (50%) kept it") && html.contains("1 (25%) lost"))
            let titles = Self.chartTitles(html)
            #expect(titles.suffix(2) == ["Change of each user's test NDCG@2", "Popularity of the recommended items"])
            let histogram = html.components(separatedBy: "<title>Change of each user").last!.components(separatedBy: "</svg>")[0]
            #expect(histogram.components(separatedBy: "<rect x=").count - 2 == 11, "one bar per bin (and the plot's frame)")
        }
    }

    /// A run folder of an older Refit: flat settings (REINFORCE's knobs beside the pathwise choice), the anchor's
    /// distance logged as approx_kl, no popularity in its summary and no users.json. It renders, with the panels it
    /// can fill and the settings of its recipe.
    @Test func oldFormatRunStillRenders() throws {
        try PretrainTestSupport.withTemporaryFolder { folder in
            let flat = #"{"reward": "collab-loglik", "estimator": "pathwise", "anchor": 2, "rollouts": 4, "ppoEpochs": 0, "clipRange": 0.2, "klCoefficient": 0, "epochs": 4}"#
            let run = try Self.writeRun(folder, finetune: nil, settingsJSON: flat, diagnostics: ["approx_kl"], popularity: false)
            let html = try Self.render(run)
            #expect(!html.contains("What changed for users") && !html.contains("<td>popularity</td>"))
            #expect(Self.chartTitles(html).contains("Anchor distance ½‖x₀ − x₀_ref‖²"))
            let anchor = html.components(separatedBy: "<title>Anchor distance").last!.components(separatedBy: "</svg>")[0]
            #expect(anchor.components(separatedBy: "r='2.5'").count - 1 == 4, "its four epochs, read from approx_kl")
            #expect(html.contains("<th>finetune.estimator.pathwise.anchor.weight</th><td>2</td>"))
            #expect(!html.contains("rollouts") && !html.contains(".ppo") && !html.contains("klCoefficient"))
        }
    }

    @Test func settingsTableFlattensNestedSettingsInKeyOrder() throws {
        try PretrainTestSupport.withTemporaryFolder { folder in
            let config = #"{"data": {"path": "x", "splitRatios": {"valid": 0.1, "train": 0.8, "test": 0.1}}, "diffrec": {"dims": [200, 600], "reweight": true}}"#
            try config.write(toFile: folder + "/config.json", atomically: true, encoding: .utf8)
            let html = ReportWriter.settingsTable(RunFolder(folder))
            let names = html.components(separatedBy: "<th>").dropFirst().map { $0.components(separatedBy: "</th>")[0] }
            #expect(names == ["data.path", "data.splitRatios.test", "data.splitRatios.train", "data.splitRatios.valid", "diffrec.dims",
                              "diffrec.reweight"])
            #expect(html.contains("<th>data.splitRatios.train</th><td>0.8</td>"))
            #expect(html.contains("<th>diffrec.dims</th><td>200, 600</td>"))
            #expect(html.contains("<th>diffrec.reweight</th><td>true</td>"), "a boolean is not a number")
        }
    }

    /// A fine-tuning recipe's choices without settings of their own (`.collabScore`, an anchor's `.all` scope) show
    /// as the value of their parent, so the report names the reward even when it has nothing else to show.
    @Test func settingsTableNamesChoicesWithoutSettings() throws {
        try PretrainTestSupport.withTemporaryFolder { folder in
            var settings = FinetunePreset.easeScore.settings
            settings.estimator = .pathwise(PathwiseSettings(anchor: Anchor(weight: 2)))
            let config = "{\"finetune\": " + String(decoding: try RunFolder.json(settings), as: UTF8.self) + "}"
            try config.write(toFile: folder + "/config.json", atomically: true, encoding: .utf8)
            let html = ReportWriter.settingsTable(RunFolder(folder))
            #expect(html.contains("<th>finetune.reward</th><td>collabScore</td>"), "\(html)")
            #expect(html.contains("<th>finetune.estimator.pathwise.anchor.scope</th><td>all</td>"), "\(html)")
            #expect(html.contains("<th>finetune.targets.teacher.ease.lambda</th><td>1000</td>"), "\(html)")
        }
    }
}
