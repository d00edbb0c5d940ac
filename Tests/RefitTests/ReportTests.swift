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
}
