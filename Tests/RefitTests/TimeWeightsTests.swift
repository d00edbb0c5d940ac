import Foundation
import Testing
import RefitCompute
@testable import Refit

/// T-DiffRec's time weights and the timestamp join that gives DiffRec's split folders their times.
@Suite struct TimeWeightsTests {
    @Test func weightsRiseLinearlyWithTimeWithinEachUser() throws {
        // Row 0: items 0, 2, 5 at times 30, 10, 20 → ranks 2, 0, 1. Row 1: one item. Row 2: empty. Row 3: a tie.
        let train = CSRMatrix(columnCount: 6, rows: [[0, 2, 5], [3], [], [1, 4]])
        let times: [Double] = [30, 10, 20, 7, 5, 5]
        let w = try TimeWeights(minimum: 0.1, maximum: 1.0)
        let values = w.values(train: train, times: times)
        let expected: [Float] = [1.0, 0.1, 0.55, 0.1, 0.1, 1.0]
        #expect(zip(values, expected).allSatisfy { abs($0 - $1) < 1e-6 }, "\(values)")
        #expect(try TimeWeights(parsing: " 0.5, 2 ") == TimeWeights(minimum: 0.5, maximum: 2))
        for bad in ["1", "0,1", "1,0.5", "a,b", "0.1,inf"] {
            #expect(DataTestSupport.dataError { try TimeWeights(parsing: bad) } != nil, "'\(bad)' must be refused")
        }
    }

    @Test func weightingNeedsTimestamps() throws {
        let m = CSRMatrix(columnCount: 3, rows: [[0, 1], [2]])
        let untimed = InteractionDataset(train: m, valid: m, test: m, userIDs: ["a", "b"], itemIDs: ["x", "y", "z"], source: "t", format: .csv)
        let error = DataTestSupport.dataError { try untimed.weighted(by: TimeWeights(minimum: 0.1, maximum: 1)) }
        #expect(error?.description.contains("--timestamps") == true, "\(String(describing: error))")
        #expect(try untimed.weighted(by: nil).trainValues == nil)
        let timed = InteractionDataset(train: m, valid: m, test: m, userIDs: ["a", "b"], itemIDs: ["x", "y", "z"], source: "t", format: .csv,
                                       trainTimes: [2, 1, 9])
        #expect(try timed.weighted(by: TimeWeights(minimum: 0.5, maximum: 1)).trainValues == [1, 0.5, 0.5])
    }

    /// The times of a ratings log land on the training entries they belong to, whatever the file order.
    @Test func datasetKeepsEachTrainingInteractionsTime() throws {
        let log = InteractionLog(users: [0, 0, 1, 0, 1, 0], items: [2, 0, 1, 1, 0, 3], timestamps: [40, 10, 5, 20, 6, 30],
                                 splits: [.train, .train, .train, .valid, .test, .train],
                                 userIDs: ["u0", "u1"], itemIDs: ["i0", "i1", "i2", "i3"], source: "t", format: .csv)
        let d = try InteractionDataset(log: log, options: { var o = DatasetOptions(); o.minRating = nil; return o }())
        #expect(Array(d.train.row(0)) == [0, 2, 3] && Array(d.train.row(1)) == [1])
        #expect(d.trainTimes == [10, 40, 30, 5])
    }

    /// A DiffRec folder with id maps joined to a ratings file in the original ids; a pair the file lacks is named.
    @Test func diffRecFolderJoinsTimestampsThroughItsIdMaps() throws {
        try DataTestSupport.withTemporaryFolder { folder in
            let m = CSRMatrix(columnCount: 3, rows: [[0, 2], [1]])
            let split = folder + "/split"
            try DiffRecSplitFiles.write(InteractionDataset(train: m, valid: CSRMatrix(columnCount: 3, rows: [[1], [0]]),
                                                           test: CSRMatrix(columnCount: 3, rows: [[], [2]]), userIDs: ["0", "1"],
                                                           itemIDs: ["0", "1", "2"], source: "t", format: .csv),
                                        to: split, force: false)
            try DataTestSupport.write("diffrec_uid\tml_user\n0\t17\n1\t4\n", to: split, "id_map_users.tsv")
            try DataTestSupport.write("diffrec_iid\tml_item\n0\t300\n1\t100\n2\t200\n", to: split, "id_map_items.tsv")
            let ratings = "user_id\titem_id\trating\ttimestamp\n17\t300\t5\t1000\n17\t200\t4\t900\n4\t100\t5\t50\n17\t100\t4\t1200\n4\t300\t4\t70\n4\t200\t5\t60\n"
            let file = try DataTestSupport.write(ratings, to: folder, "ratings.tsv")
            var options = DatasetOptions()
            options.timestamps = file
            let d = try DatasetLoader.load(path: split, options: options)
            let plain = try DatasetLoader.load(path: split)
            #expect(d.statistics.hasTimestamps && d.fingerprint == plain.fingerprint)
            #expect(d.trainTimes == [1000, 900, 50])
            #expect(try d.weighted(by: TimeWeights(minimum: 0.2, maximum: 1)).trainValues == [1, 0.2, 0.2])

            try DataTestSupport.write(String(ratings.split(separator: "\n").dropLast().joined(separator: "\n")), to: folder, "short.tsv")
            options.timestamps = folder + "/short.tsv"
            let error = DataTestSupport.dataError { try DatasetLoader.load(path: split, options: options) }
            #expect(error?.description.contains("no time for 1 of the 6 pairs") == true, "\(String(describing: error))")
            #expect(error?.description.contains("(the first: user 4, item 200)") == true, "\(String(describing: error))")
            options.timestamps = file
            let timed = folder + "/timed.tsv"
            try DataTestSupport.write("user\titem\ttime\na\tb\t1\n", to: folder, "timed.tsv")
            let twice = DataTestSupport.dataError { try DatasetLoader.load(path: timed, options: options) }
            #expect(twice?.description.contains("has its own time column") == true, "\(String(describing: twice))")
        }
    }

    /// DiffRec's ML-1M clean split joins to ML-1M's ratings: every pair finds its time, and within each user train
    /// comes before validation (the split is chronological).
    @Test(.enabled(if: DataTestSupport.sharedDataAvailable, "../shared/data is absent"))
    func diffRecML1MCleanJoinsToML1MTimestamps() throws {
        var options = DatasetOptions()
        options.timestamps = DataTestSupport.shared("ml-1m/ml-1m.ratings.tsv")
        let log = try DatasetLoader.readLog(path: DataTestSupport.shared("diffrec-ml-1m/clean"), options: options)
        let times = try #require(log.timestamps)
        #expect(times.count == 571_531 && times.allSatisfy { $0 >= 956_703_932 && $0 <= 1_046_454_590 })
        var lastTrain = [Double](repeating: -.infinity, count: log.userCount), firstValid = [Double](repeating: .infinity, count: log.userCount)
        for row in 0..<log.count {
            let u = Int(log.users[row])
            switch log.splits![row] {
            case .train: lastTrain[u] = max(lastTrain[u], times[row])
            case .valid: firstValid[u] = min(firstValid[u], times[row])
            case .test: break
            }
        }
        #expect((0..<log.userCount).allSatisfy { lastTrain[$0] <= firstValid[$0] })
    }

    /// On a T-DiffRec dataset the EASE teacher scores the time-weighted rows (its targets are the top unseen items of
    /// x_w·B); user-kNN keeps reading the 0/1 pattern.
    @Test func easeTeacherScoresTheTimeWeightedRows() throws {
        let backend = CPUBackend()
        var shape = SyntheticDataset.Shape()
        (shape.users, shape.items) = (60, 40)
        let plain = try InteractionDataset(log: SyntheticDataset.generate(shape, seed: 5, name: "tiny"))
        let weighted = try plain.weighted(by: TimeWeights(minimum: 0.1, maximum: 1))
        let values = try #require(weighted.trainValues)
        let spec = TargetSpec(teacher: .ease(lambda: 5), size: 6)
        let targets = try spec.build(dataset: weighted, backend: backend)
        #expect(targets != (try spec.build(dataset: plain, backend: backend)), "the weights change EASE's targets")
        let knn = TargetSpec(teacher: .userKNN(neighbors: 5), size: 6)
        #expect(try knn.build(dataset: weighted, backend: backend) == (try knn.build(dataset: plain, backend: backend)))

        let (users, items) = (plain.userCount, plain.itemCount)
        var dense = [Float](repeating: 0, count: users * items)
        for u in 0..<users {
            for e in Int(plain.train.rowPointers[u])..<Int(plain.train.rowPointers[u + 1]) { dense[u * items + Int(plain.train.columns[e])] = values[e] }
        }
        let model = try EASEModel(backend: backend, train: plain.train, lambda: 5)
        let scores = try backend.readFloats(try model.scores(try backend.tensor(dense, shape: [users, items])))
        for u in 0..<users {
            let unseen = (0..<items).filter { !plain.train.contains(u, $0) && scores[u * items + $0] > 0 }
            let best = unseen.sorted { scores[u * items + $0] > scores[u * items + $1] }.prefix(6)
            #expect(Set(targets.items[u].map(Int.init)) == Set(best), "user \(u)")
        }
    }
}
