import Foundation
import Testing
@testable import Refit

/// The counts the issue fixes for the real datasets in `../shared/data` (skipped when it is absent).
@Suite(.enabled(if: DataTestSupport.sharedDataAvailable, "../shared/data is absent"))
struct DataAcceptanceTests {
    @Test func ml100kRecBole() throws {
        let path = DataTestSupport.shared("ml-100k/ml-100k.inter")
        let log = try DatasetLoader.readLog(path: path)
        #expect(log.format == .recbole)
        #expect(log.count == 100_000 && log.userCount == 943 && log.itemCount == 1_682)
        let dataset = try DatasetLoader.load(path: path)
        let s = dataset.statistics
        #expect(s.rowsRead == 100_000 && s.usersRead == 943 && s.itemsRead == 1_682)
        #expect(s.minRating == 4)
        #expect(s.users == 942 && s.items == 1_447 && s.interactions == 55_375)
        var all = DatasetOptions()
        all.minRating = nil
        let raw = try DatasetLoader.load(path: path, options: all).statistics
        #expect(raw.interactions == 100_000)
        #expect(raw.interactionsPerUser == CountSummary(min: 20, median: 65, max: 737))
    }

    @Test func diffRecML1MClean() throws {
        let dataset = try DatasetLoader.load(path: DataTestSupport.shared("diffrec-ml-1m/clean"))
        let s = dataset.statistics
        #expect(s.format == .diffrec && s.splitMethod == "as shipped")
        #expect(s.users == 5_949 && s.items == 2_810)
        #expect(s.trainInteractions == 403_277 && s.validInteractions == 110_722 && s.testInteractions == 57_532)
    }

    @Test func ml1mThroughTheGenericReader() throws {
        let path = DataTestSupport.shared("ml-1m/ml-1m.ratings.tsv")
        let log = try DatasetLoader.readLog(path: path)
        #expect(log.format == .csv)
        #expect(log.count == 1_000_209 && log.userCount == 6_040 && log.itemCount == 3_706)
        #expect(log.timestamps?.first == 978_300_760)

        var options = DatasetOptions()
        options.kCore = 10
        let clean = try InteractionDataset(log: log, options: options)
        #expect(clean.statistics.rowsRead == 1_000_209)
        #expect(clean.statistics.users == 5_949 && clean.statistics.items == 2_810 && clean.statistics.interactions == 571_531)

        // The same interactions as DiffRec's clean split, joined through the id maps shipped beside it.
        let diffrec = try DatasetLoader.load(path: DataTestSupport.shared("diffrec-ml-1m/clean"))
        let userMap = try idMap(DataTestSupport.shared("diffrec-ml-1m/clean/id_map_users.tsv"))
        let itemMap = try idMap(DataTestSupport.shared("diffrec-ml-1m/clean/id_map_items.tsv"))
        let userIndex = Dictionary(uniqueKeysWithValues: clean.userIDs.enumerated().map { ($1, $0) })
        let itemIndex = Dictionary(uniqueKeysWithValues: clean.itemIDs.enumerated().map { ($1, $0) })
        var matched = 0
        for u in 0..<diffrec.userCount {
            let v = try #require(userIndex[userMap[u]])
            for split in DataSplit.allCases {
                for i in diffrec.matrix(split).row(u) {
                    let j = try #require(itemIndex[itemMap[Int(i)]])
                    if clean.train.contains(v, j) || clean.valid.contains(v, j) || clean.test.contains(v, j) { matched += 1 }
                }
            }
        }
        #expect(matched == 571_531)
    }

    private func idMap(_ path: String) throws -> [String] {
        try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").dropFirst()
            .map { String($0.split(separator: "\t")[1]) }
    }
}

extension CountSummary {
    init(min: Int, median: Double, max: Int) {
        self.init([])
        (self.min, self.median, self.max) = (min, median, max)
    }
}
