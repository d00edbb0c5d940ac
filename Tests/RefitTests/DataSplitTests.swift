import Foundation
import Testing
@testable import Refit

@Suite struct DataSplitTests {
    @Test func csrCollapsesDuplicatesAndSortsRows() {
        let m = CSRMatrix(rowCount: 4, columnCount: 5, rows: [2, 0, 2, 0, 2, 0], columns: [4, 3, 1, 3, 4, 0])
        #expect(m.rowPointers == [0, 2, 2, 4, 4])
        #expect(m.columns == [0, 3, 1, 4])
        #expect(m.nonzeroCount == 4)
        #expect(Array(m.row(2)) == [1, 4])
        #expect(m.row(1).isEmpty && m.row(3).isEmpty)
        #expect(m.contains(0, 3) && m.contains(2, 4) && !m.contains(2, 3) && !m.contains(1, 0))
        #expect(m.columnCounts() == [1, 1, 0, 1, 1])
        let t = m.transposed()
        #expect(t.rowCount == 5 && t.columnCount == 4)
        #expect(Array(t.row(3)) == [0] && Array(t.row(4)) == [2] && t.row(2).isEmpty)
        #expect(t.transposed() == m)
        #expect(CSRMatrix(columnCount: 5, rows: [[3, 0, 3], [], [4, 1], []]) == m)
    }

    @Test func ratioSplitRounding() {
        let r = SplitRatios.standard
        #expect(r.counts(3) == (1, 1, 1))
        #expect(r.counts(9) == (7, 1, 1))
        #expect(r.counts(10) == (8, 1, 1))
        #expect(r.counts(19) == (17, 1, 1))
        #expect(r.counts(20) == (16, 2, 2))
        #expect(r.counts(30) == (24, 3, 3))
        let noValid = try! SplitRatios(train: 0.9, valid: 0, test: 0.1)
        #expect(noValid.counts(10) == (9, 0, 1))
        #expect(noValid.counts(3) == (2, 0, 1))
        let heavy = try! SplitRatios(train: 0.2, valid: 0.4, test: 0.4)
        #expect(heavy.counts(3) == (1, 1, 1))
        #expect(heavy.counts(4) == (2, 1, 1))
        #expect(heavy.counts(10) == (2, 4, 4))
    }

    private func log(_ rows: [(user: String, item: String, time: Double?)], ratings: [Float]? = nil) -> InteractionLog {
        var userIDs: [String] = [], itemIDs: [String] = []
        func index(_ id: String, _ ids: inout [String]) -> Int32 {
            if let i = ids.firstIndex(of: id) { return Int32(i) }
            ids.append(id)
            return Int32(ids.count - 1)
        }
        let users = rows.map { index($0.user, &userIDs) }
        let items = rows.map { index($0.item, &itemIDs) }
        let times = rows.allSatisfy { $0.time != nil } ? rows.map { $0.time! } : nil
        return InteractionLog(users: users, items: items, ratings: ratings, timestamps: times,
                              userIDs: userIDs, itemIDs: itemIDs, source: "test", format: .csv)
    }

    private func ids(_ dataset: InteractionDataset, _ split: DataSplit, _ user: String) -> [String] {
        let u = dataset.userIDs.firstIndex(of: user)!
        return dataset.matrix(split).row(u).map { dataset.itemIDs[Int($0)] }.sorted()
    }

    @Test func chronologicalSplitBreaksTiesByFileOrder() throws {
        // Ten items for "a", in shuffled file order; times tie in pairs, so file order decides within a pair.
        let times: [Double] = [5, 1, 9, 3, 9, 7, 1, 5, 3, 7]
        var rows = times.enumerated().map { (user: "a", item: "i\($0.offset)", time: Optional($0.element)) }
        rows += [("b", "i0", 1), ("b", "i1", 2)]
        let dataset = try InteractionDataset(log: log(rows))
        // Time order: i1 i6 (1), i3 i8 (3), i0 i7 (5), i5 i9 (7), i2 i4 (9) → train 8, valid i2, test i4.
        #expect(ids(dataset, .valid, "a") == ["i2"])
        #expect(ids(dataset, .test, "a") == ["i4"])
        #expect(ids(dataset, .train, "a").count == 8)
        #expect(ids(dataset, .train, "b") == ["i0", "i1"])
        #expect(dataset.statistics.trainOnlyUsers == 1)
        #expect(dataset.statistics.splitMethod.hasPrefix("chronological"))
        #expect(dataset.describe().contains("1 users with fewer than 3 interactions are in train only"))
    }

    @Test func sequencesFollowTimeThenFileOrder() {
        let l = log([("a", "x", 3), ("b", "y", 1), ("a", "y", 1), ("a", "z", 3), ("a", "x", 2)])
        #expect(l.sequences() == [[1, 0, 0, 2], [1]])
    }

    @Test func randomSplitIsSeededAndComplete() throws {
        var rows: [(user: String, item: String, time: Double?)] = []
        for u in 0..<30 { for i in 0..<(3 + u) { rows.append(("u\(u)", "i\((i * 7 + u) % 60)", nil)) } }
        let l = log(rows)
        var options = DatasetOptions()
        options.seed = 11
        let first = try InteractionDataset(log: l, options: options)
        let again = try InteractionDataset(log: l, options: options)
        options.seed = 12
        let other = try InteractionDataset(log: l, options: options)
        #expect(first.fingerprint == again.fingerprint)
        #expect(first.fingerprint != other.fingerprint)
        #expect(first.statistics.splitMethod.hasPrefix("random"))
        for u in 0..<30 {
            let n = 3 + u
            let counts = SplitRatios.standard.counts(n)
            #expect(first.train.rowLength(u) == counts.train && first.valid.rowLength(u) == counts.valid
                    && first.test.rowLength(u) == counts.test)
            let all = Set(first.train.row(u)).union(first.valid.row(u)).union(first.test.row(u))
            #expect(all.count == n)
        }
    }

    @Test func minRatingDuplicatesAndKCore() throws {
        // Ratings filter first; then the duplicate (a, x) keeps its earlier row.
        let rated = log([("a", "x", 5), ("a", "y", 1), ("a", "x", 2), ("b", "x", 4), ("b", "y", 3)], ratings: [4, 5, 3, 2, 4])
        let kept = rated.filtered(minRating: 4, kCore: nil)
        #expect(kept.count == 3)
        #expect(kept.userIDs == ["a", "b"] && kept.itemIDs == ["x", "y"])
        #expect(kept.timestamps == [5, 1, 3])
        let dup = log([("a", "x", 5), ("a", "x", 2)]).filtered(minRating: nil, kCore: nil)
        #expect(dup.timestamps == [2])

        // A 2-core that needs several rounds: dropping d leaves w to c alone, dropping c leaves z to b alone.
        let chain = log([("a", "x", 1), ("a", "y", 2), ("b", "x", 3), ("b", "y", 4), ("b", "z", 5), ("c", "w", 6),
                         ("c", "z", 7), ("d", "w", 8)])
        let core = chain.filtered(minRating: nil, kCore: 2)
        #expect(core.userIDs == ["a", "b"])
        #expect(core.itemIDs == ["x", "y"])
        #expect(core.count == 4)
        // Nothing removed: the log comes back as it was.
        let untouched = chain.filtered(minRating: nil, kCore: 1)
        #expect(untouched.count == chain.count && untouched.userIDs == chain.userIDs)
    }

    @Test func statisticsAndFingerprint() throws {
        let l = log([("a", "x", 1), ("a", "y", 2), ("a", "z", 3), ("b", "x", 1), ("c", "y", 1), ("c", "x", 2)])
        let d = try InteractionDataset(log: l)
        let s = d.statistics
        #expect(s.users == 3 && s.items == 3 && s.interactions == 6 && s.rowsRead == 6)
        #expect(s.interactionsPerUser == CountSummary([3, 1, 2]))
        #expect(CountSummary([4, 1, 3, 2]).median == 2.5)
        #expect(abs(s.density - 6.0 / 9.0) < 1e-12)
        #expect(d.fingerprint.count == 16 && d.fingerprint.allSatisfy(\.isHexDigit))
        #expect(try InteractionDataset(log: l).fingerprint == d.fingerprint)
        let lines = d.describe().split(separator: "\n")
        #expect(lines.count >= 6)
        #expect(lines.contains { $0.contains("fingerprint") && $0.contains(d.fingerprint) })
    }

    @Test func npyRoundTripsAndIsAligned() throws {
        let users: [Int32] = [0, 0, 5, 70000], items: [Int32] = [3, 1, 2, 9]
        let data = NumpyPairs.encode(users: users, items: items)
        let headerLength = Int(data[8]) | Int(data[9]) << 8
        #expect((10 + headerLength) % 64 == 0)
        #expect(data[10 + headerLength - 1] == 10)
        #expect(data.count == 10 + headerLength + 16 * users.count)
        let decoded = try NumpyPairs.decode(data, path: "x")
        #expect(decoded.users == users && decoded.items == items)
    }

    @Test func npyAcceptsInt32FortranOrderAndVersion2() throws {
        let int32 = [Int32]([0, 1, 2, 3]).flatMap { v in withUnsafeBytes(of: v.littleEndian) { Array($0) } }
        let a = DataTestSupport.npy(header: "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 2), }\n", body: int32)
        #expect(try NumpyPairs.decode(Data(a), path: "a") == ([0, 2], [1, 3]))
        let b = DataTestSupport.npy(header: "{'descr': '<i8', 'fortran_order': True, 'shape': (2, 2), }\n",
                                    version: 2, body: DataTestSupport.int64Bytes([0, 1, 2, 3]))
        #expect(try NumpyPairs.decode(Data(b), path: "b") == ([0, 1], [2, 3]))
        let empty = DataTestSupport.npy(header: "{\"shape\": (0, 2), \"fortran_order\": False, \"descr\": \"<i8\"}", body: [])
        #expect(try NumpyPairs.decode(Data(empty), path: "c") == ([], []))
    }

    @Test func diffRecFilesRoundTrip() throws {
        let dataset = try DataTestSupport.demo.get()
        try DataTestSupport.withTemporaryFolder { folder in
            let out = folder + "/split"
            try DiffRecSplitFiles.write(dataset, to: out, force: false)
            let names = try FileManager.default.contentsOfDirectory(atPath: out).sorted()
            #expect(names == ["item_ids.tsv", "test_list.npy", "train_list.npy", "user_ids.tsv", "valid_list.npy"])
            #expect(try FileManager.default.contentsOfDirectory(atPath: folder) == ["split"])
            let back = try DatasetLoader.load(path: out)
            #expect(back.statistics.format == .diffrec)
            #expect(back.train == dataset.train && back.valid == dataset.valid && back.test == dataset.test)
            #expect(back.userIDs == dataset.userIDs && back.itemIDs == dataset.itemIDs)
            #expect(back.fingerprint == dataset.fingerprint)
            try FileManager.default.createSymbolicLink(atPath: folder + "/link", withDestinationPath: out)
            #expect(try DatasetLoader.load(path: folder + "/link").fingerprint == dataset.fingerprint)
        }
    }

    @Test func writingRefusesToOverwriteWithoutForce() throws {
        let small = try InteractionDataset(log: SyntheticDataset.generate(DataReaderTests.smallShape, seed: 1, name: "small"))
        let other = try InteractionDataset(log: SyntheticDataset.generate(DataReaderTests.smallShape, seed: 2, name: "small"))
        try DataTestSupport.withTemporaryFolder { folder in
            let out = folder + "/split"
            try DiffRecSplitFiles.write(small, to: out, force: false)
            let error = DataTestSupport.dataError { try DiffRecSplitFiles.write(other, to: out, force: false) }
            #expect(error == .outputExists(path: out))
            #expect(try DatasetLoader.load(path: out).fingerprint == small.fingerprint)
            try DiffRecSplitFiles.write(other, to: out, force: true)
            #expect(try DatasetLoader.load(path: out).fingerprint == other.fingerprint)
            #expect(try FileManager.default.contentsOfDirectory(atPath: folder) == ["split"])
        }
    }

    @Test func idMapsWithoutIDFilesAreTheIndices() throws {
        try DataTestSupport.withTemporaryFolder { folder in
            for (k, name) in ["train_list.npy", "valid_list.npy", "test_list.npy"].enumerated() {
                try NumpyPairs.encode(users: [0, 2] as [Int32], items: [Int32(k), Int32(3 + k)] as [Int32]).write(to: URL(fileURLWithPath: folder + "/" + name))
            }
            let d = try DatasetLoader.load(path: folder)
            // User 1 has no interactions but is kept: DiffRec's indices are used as they are.
            #expect(d.userIDs == ["0", "1", "2"] && d.itemIDs == ["0", "1", "2", "3", "4", "5"])
            #expect(d.statistics.trainInteractions == 2 && d.statistics.interactionsPerUser.min == 0)
            #expect(Array(d.valid.row(0)) == [1] && Array(d.test.row(2)) == [5])
        }
    }
}
