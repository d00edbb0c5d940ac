import Foundation
import Testing
@testable import Refit

/// report.html's settings table: nested settings are flattened into rows of their own, keys sorted.
@Suite struct ReportTests {
    @Test func settingsTableFlattensNestedSettingsInKeyOrder() throws {
        try PretrainTestSupport.withTemporaryFolder { folder in
            let config = #"{"data": {"path": "x", "splitRatios": {"valid": 0.1, "train": 0.8, "test": 0.1}}, "diffrec": {"dims": [200, 600]}}"#
            try config.write(toFile: folder + "/config.json", atomically: true, encoding: .utf8)
            let html = ReportWriter.settingsTable(RunFolder(folder))
            let names = html.components(separatedBy: "<th>").dropFirst().map { $0.components(separatedBy: "</th>")[0] }
            #expect(names == ["data.path", "data.splitRatios.test", "data.splitRatios.train", "data.splitRatios.valid", "diffrec.dims"])
            #expect(html.contains("<th>data.splitRatios.train</th><td>0.8</td>"))
            #expect(html.contains("<th>diffrec.dims</th><td>200, 600</td>"))
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
