import Foundation
import Testing
@testable import Refit

/// `refit compare`: tiny runs on the built-in data, compared as a user compares them after an ablation. The table
/// shows the setting the runs vary and no shared one, and each run's scores as its own files record them.
@Suite struct CompareTests {
    static let tinyPretrain = ["pretrain", "--data", "builtin:demo", "--epochs", "1", "--dims", "16", "--steps", "5", "--batch-size", "500",
                               "--quiet"]

    static func refit(_ arguments: [String]) throws -> CLITests.Output {
        let result = try CLITests.refit(arguments)
        #expect(result.status == 0, "refit \(arguments.joined(separator: " ")) failed: \(result.stderr)")
        return result
    }

    /// The JSON output's runs, by name.
    static func jsonRuns(_ output: CLITests.Output) throws -> [[String: Any]] {
        let object = try #require(try JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [String: Any], "\(output.stdout)")
        return try #require(object["runs"] as? [[String: Any]])
    }

    @Test func twoLearningRatesAndAFinetuneRun() throws {
        try PretrainTestSupport.withTemporaryFolder { folder in
            let slow = folder + "/lr-1e-3", fast = folder + "/lr-3e-3", refit = folder + "/lr-1e-3-refit"
            _ = try Self.refit(Self.tinyPretrain + ["--lr", "1e-3", "--out", slow])
            _ = try Self.refit(Self.tinyPretrain + ["--lr", "3e-3", "--out", fast])
            _ = try Self.refit(["finetune", "--from", slow, "--out", refit, "--epochs", "1", "--quiet"])

            // Text: the learning rate is a column with each run's value; a shared setting is not.
            let text = try Self.refit(["compare", slow, fast])
            let lines = text.stdout.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
            #expect(lines.count == 4, "\(text.stdout)")
            let header = try #require(lines.first)
            let column = try #require(header.firstIndex(of: "diffrec.learningRate"), "no learning-rate column in \(header)")
            #expect(lines.dropFirst(2).map { $0[column] } == ["0.001", "0.003"], "\(text.stdout)")
            for shared in ["diffrec.dims", "dims", "diffrec.steps", "device", "createdAt", "data.path"] {
                #expect(!header.contains(shared), "the shared setting \(shared) is a column: \(header)")
            }
            // Each row's scores are those of its state.json at the best epoch, as printed (4 digits).
            for (row, run) in zip(lines.dropFirst(2), [slow, fast]) {
                let state = try RunFolder(run).readJSON(PretrainState.self, from: "state.json")
                for metric in ["recall@20", "ndcg@20"] {
                    #expect(row.contains(String(format: "%.4f", state.bestValid[metric] ?? .nan)), "\(run) valid \(metric): \(row)")
                    #expect(row.contains(String(format: "%.4f", state.bestTest[metric] ?? .nan)), "\(run) test \(metric): \(row)")
                }
            }

            // JSON: every run with its exact scores, the fine-tuning run's from its summary line.
            let runs = try Self.jsonRuns(try Self.refit(["compare", slow, fast, refit, "--format", "json"]))
            #expect(runs.map { $0["name"] as? String } == ["lr-1e-3", "lr-3e-3", "lr-1e-3-refit"])
            for (run, path) in zip(runs.prefix(2), [slow, fast]) {
                let state = try RunFolder(path).readJSON(PretrainState.self, from: "state.json")
                #expect(run["kind"] as? String == "pretrain" && run["model"] as? String == "diffrec" && run["best_epoch"] as? Int == state.bestEpoch)
                #expect((run["valid"] as? [String: Double])?["recall@20"] == state.bestValid["recall@20"], "\(run)")
                #expect((run["test"] as? [String: Double])?["ndcg@20"] == state.bestTest["ndcg@20"], "\(run)")
                #expect(run["epochs"] as? Int == 1 && (run["seconds"] as? Double ?? 0) > 0)
            }
            let summary = try #require(try RunFolder(refit).readMetrics().last { $0["kind"] as? String == "summary" })
            let finetuned = runs[2]
            #expect(finetuned["kind"] as? String == "finetune" && finetuned["model"] as? String == "ReFiT of diffrec")
            #expect(finetuned["best_epoch"] as? Int == summary["best_epoch"] as? Int)
            #expect((finetuned["valid"] as? [String: Double])?["ndcg@20"] == summary["valid_ndcg@20"] as? Double, "\(finetuned)")
            #expect((finetuned["test"] as? [String: Double])?["recall@20"] == summary["test_recall@20"] as? Double, "\(finetuned)")
            // The fine-tuning settings only the fine-tuning run has do not vary, so they are no columns; the learning rate is.
            let settings = try #require(finetuned["settings"] as? [String: Any])
            #expect(settings.keys.sorted() == ["diffrec.learningRate"], "\(settings)")

            // Markdown: a GitHub table, its second line the separator row.
            let markdown = try Self.refit(["compare", slow, fast, "--format", "markdown"]).stdout.split(separator: "\n")
            #expect(markdown.count == 4 && markdown.allSatisfy { $0.hasPrefix("| ") || $0.hasPrefix("|---") }, "\(markdown)")
            #expect(markdown.count > 1 && markdown[1].allSatisfy { "|-:".contains($0) } && markdown[1].contains("---"), "\(markdown)")
            #expect(markdown.first?.contains("| diffrec.learningRate |") == true, "\(markdown)")

            // Sorted by test NDCG@20, best first.
            let sorted = try Self.jsonRuns(try Self.refit(["compare", slow, fast, "--format", "json", "--sort", "test-ndcg"]))
            let ndcg = sorted.map { ($0["test"] as? [String: Double])?["ndcg@20"] ?? .nan }
            #expect(ndcg.count == 2 && ndcg[0] >= ndcg[1], "\(ndcg)")

            // An ablation folder stands for the runs inside it.
            let ablation = folder + "/ablation"
            try FileManager.default.createDirectory(atPath: ablation, withIntermediateDirectories: true)
            try RunFolder(ablation).writeJSON(["kind": "ablation", "version": RefitVersion.string, "createdAt": "2024-01-01T00:00:00Z"],
                                              to: "config.json")
            try FileManager.default.copyItem(atPath: fast, toPath: ablation + "/b")
            try FileManager.default.copyItem(atPath: slow, toPath: ablation + "/a")
            let expanded = try Self.jsonRuns(try Self.refit(["compare", ablation, "--format", "json"]))
            #expect(expanded.map { $0["name"] as? String } == ["a", "b"])
        }
    }

    /// Sequential runs name their hit rate HR@20 (one target per user), never Recall@20.
    @Test func sequentialRunsShowHitRate() throws {
        try PretrainTestSupport.withTemporaryFolder { folder in
            let sasrec = folder + "/sasrec"
            _ = try Self.refit(["pretrain", "--model", "sasrec", "--data", "builtin:demo", "--preset", "demo-seq", "--epochs", "1", "--out", sasrec,
                                "--quiet"])
            let text = try Self.refit(["compare", sasrec]).stdout
            #expect(text.contains("valid HR@20") && text.contains("test HR@20") && !text.contains("Recall"), "\(text)")
            let run = try #require(try Self.jsonRuns(try Self.refit(["compare", sasrec, "--format", "json"])).first)
            let state = try RunFolder(sasrec).readJSON(SequentialState.self, from: "state.json")
            #expect(run["metric"] as? String == "hr@20" && run["model"] as? String == "sasrec")
            #expect((run["test"] as? [String: Double])?["hr@20"] == state.bestTest["hr@20"], "\(run)")
        }
    }

    /// A folder that is not a run is refused in one line that names it; no folder at all is a usage error.
    @Test func aFolderThatIsNotARunIsRefused() throws {
        try PretrainTestSupport.withTemporaryFolder { folder in
            let result = try CLITests.refit(["compare", folder])
            #expect(result.status != 0 && result.stdout.isEmpty)
            #expect(result.stderrLines.count == 1 && result.stderr.contains(folder), "\(result.stderr)")
            let none = try CLITests.refit(["compare"])
            #expect(none.status != 0 && none.stderr.contains("at least one run"), "\(none.stderr)")
        }
    }

    @Test func helpNamesTheFormatsAndAnExample() throws {
        let help = try Self.refit(["compare", "--help"]).stdout
        for word in ["--format", "markdown", "json", "--sort", "test-ndcg", "Example:", "refit compare runs/"] {
            #expect(help.contains(word), "refit compare --help does not mention \(word)")
        }
        #expect(try Self.refit(["--help"]).stdout.contains("compare"))
    }

    /// config.json flattens to dotted keys with values as written; a choice without settings is its parent's value.
    @Test func configurationFlattensToDottedKeys() throws {
        let json = #"{"a": {"b": 400, "c": 0.001, "d": true, "e": "x0", "f": [200, 600]}, "reward": {"collabScore": {}}, "g": {"h": {"i": 2}}}"#
        let tree = try JSONDecoder().decode(ConfigurationTree.self, from: Data(json.utf8))
        #expect(tree.flattened() == ["a.b": "400", "a.c": "0.001", "a.d": "true", "a.e": "x0", "a.f": "200,600", "reward": "collabScore",
                                     "g.h.i": "2"])
    }
}
