import Foundation
import Testing
@testable import Refit

@Suite struct DataReaderTests {
    @Test func movieLensDatIsReadWithRawIDsRatingsAndTimestamps() throws {
        try DataTestSupport.withTemporaryFolder { folder in
            let path = try DataTestSupport.write("1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n", to: folder, "ratings.dat")
            let log = try DatasetLoader.readLog(path: path)
            #expect(log.format == .movieLensDat)
            #expect(log.userIDs == ["1", "2"])
            #expect(log.itemIDs == ["1193", "661"])
            #expect(log.users == [0, 0, 1])
            #expect(log.items == [0, 1, 0])
            #expect(log.ratings == [5, 3, 4])
            #expect(log.timestamps == [978300760, 978302109, 978298413])
        }
    }

    /// A `ratings.csv` exactly as MovieLens ships it (header, half-star ratings written with one decimal,
    /// rows grouped by user and sorted by movie), written from a log and read back.
    @Test func movieLensCSVRoundTrips() throws {
        let source = SyntheticDataset.generate(Self.smallShape, seed: 7, name: "small")
        var random = SplitMix64(seed: 3)
        let ratings = source.users.indices.map { _ in Float(random.nextIndex(9)) / 2 + 1 }
        // Rows grouped by user, then by movie id, as in MovieLens.
        let movieIDs = source.items.map { Int(source.itemIDs[Int($0)].dropFirst())! }
        let order = source.users.indices.sorted { (source.users[$0], movieIDs[$0]) < (source.users[$1], movieIDs[$1]) }
        var text = "userId,movieId,rating,timestamp\n"
        for row in order {
            let userID = source.userIDs[Int(source.users[row])].dropFirst()
            let movieID = source.itemIDs[Int(source.items[row])].dropFirst()
            text += "\(userID),\(movieID),\(String(format: "%.1f", ratings[row])),\(Int(source.timestamps![row]))\n"
        }
        try DataTestSupport.withTemporaryFolder { folder in
            let path = try DataTestSupport.write(text, to: folder, "ratings.csv")
            let log = try DatasetLoader.readLog(path: path)
            #expect(log.format == .movieLensCSV)
            #expect(log.count == source.count)
            for (k, row) in order.enumerated() {
                #expect("u" + log.userIDs[Int(log.users[k])] == source.userIDs[Int(source.users[row])])
                #expect("i" + log.itemIDs[Int(log.items[k])] == source.itemIDs[Int(source.items[row])])
                #expect(log.ratings![k] == ratings[row])
                #expect(log.timestamps![k] == source.timestamps![row])
            }
            // The same rows give the same chronological split, whatever their order in the file.
            let fromFile = try InteractionDataset(log: log, options: DataTestSupport.keepAll)
            let direct = try InteractionDataset(log: source, options: DataTestSupport.keepAll)
            #expect(fromFile.statistics.interactions == direct.statistics.interactions)
            #expect(fromFile.statistics.trainInteractions == direct.statistics.trainInteractions)
            for u in 0..<direct.userCount {
                let user = String(direct.userIDs[u].dropFirst())
                let v = try #require(fromFile.userIDs.firstIndex(of: user))
                let expected = Set(direct.test.row(u).map { String(direct.itemIDs[Int($0)].dropFirst()) })
                #expect(Set(fromFile.test.row(v).map { fromFile.itemIDs[Int($0)] }) == expected)
            }
        }
    }

    @Test func recboleInterFindsItsColumnsByName() throws {
        let text = """
            item_id:token\tuser_id:token\tnote:token_seq\ttimestamp:float\trating:float
            10\t7\ta b\t100.0\t4.5
            11\t8\tc\t101.5\t2

            10\t8\t\t99\t5
            """
        try DataTestSupport.withTemporaryFolder { folder in
            let path = try DataTestSupport.write(text + "\n", to: folder, "tiny.inter")
            let log = try DatasetLoader.readLog(path: path)
            #expect(log.format == .recbole)
            #expect(log.userIDs == ["7", "8"])
            #expect(log.itemIDs == ["10", "11"])
            #expect(log.users == [0, 1, 1])
            #expect(log.ratings == [4.5, 2, 5])
            #expect(log.timestamps == [100, 101.5, 99])
        }
    }

    @Test func genericCSVWithNamedColumnsAndSemicolons() throws {
        let text = "\u{FEFF}when;who;what;stars\r\n5;alice;\"The Matrix\";4\r\n6;bob;Up;3.5\r\n"
        try DataTestSupport.withTemporaryFolder { folder in
            let path = try DataTestSupport.write(text, to: folder, "likes.txt")
            var options = DataTestSupport.keepAll
            options.columns = try ColumnMapping(parsing: "user=who,item=what,rating=stars,time=when")
            let log = try DatasetLoader.readLog(path: path, options: options)
            #expect(log.format == .csv)
            #expect(log.userIDs == ["alice", "bob"])
            #expect(log.itemIDs == ["The Matrix", "Up"])
            #expect(log.ratings == [4, 3.5])
            #expect(log.timestamps == [5, 6])
        }
    }

    @Test func genericCSVByIndexWithoutHeaderOrRatings() throws {
        try DataTestSupport.withTemporaryFolder { folder in
            let path = try DataTestSupport.write("x|a|1\ny|b|2\nx|b|3\n", to: folder, "clicks.psv")
            var options = DataTestSupport.keepAll
            options.columns = try ColumnMapping(parsing: "item=1,user=0,time=2")
            let log = try DatasetLoader.readLog(path: path, options: options)
            #expect(log.userIDs == ["x", "y"])
            #expect(log.itemIDs == ["a", "b"])
            #expect(log.ratings == nil)
            #expect(log.timestamps == [1, 2, 3])
            // No ratings: the default rating threshold does not apply.
            let dataset = try InteractionDataset(log: log, options: DatasetOptions())
            #expect(dataset.statistics.interactions == 3)
            #expect(dataset.statistics.minRating == nil)
        }
    }

    @Test func headerDetectionAndOverrides() throws {
        try DataTestSupport.withTemporaryFolder { folder in
            // Unknown names over numbers: a header.
            let named = try DataTestSupport.write("a,b,c\n1,2,3\n4,5,6\n", to: folder, "named.csv")
            #expect(try DatasetLoader.readLog(path: named).count == 2)
            // String ids in every line: not a header.
            let plain = try DataTestSupport.write("alice,matrix,5\nbob,up,4\n", to: folder, "plain.csv")
            #expect(try DatasetLoader.readLog(path: plain).userIDs == ["alice", "bob"])
            // --no-header forces the first line to be data.
            var options = DataTestSupport.keepAll
            options.hasHeader = false
            options.columns = ColumnMapping(user: .index(0), item: .index(1))
            #expect(try DatasetLoader.readLog(path: named, options: options).userIDs == ["a", "1", "4"])
            // Space-aligned columns.
            let aligned = try DataTestSupport.write("  1   10  5\n  2    7  3\n", to: folder, "aligned.txt")
            var spaced = DataTestSupport.keepAll
            spaced.separator = " "
            #expect(try DatasetLoader.readLog(path: aligned, options: spaced).itemIDs == ["10", "7"])
        }
    }

    @Test func idsWithLeadingZerosStayDistinct() throws {
        try DataTestSupport.withTemporaryFolder { folder in
            let path = try DataTestSupport.write("7\t1\n007\t1\n7\t2\n", to: folder, "ids.tsv")
            let log = try DatasetLoader.readLog(path: path)
            #expect(log.userIDs == ["7", "007"])
            #expect(log.users == [0, 1, 0])
        }
    }

    @Test func autoFormatDetectionToleratesWindowsLineEndings() throws {
        try DataTestSupport.withTemporaryFolder { folder in
            let path = try DataTestSupport.write("\u{FEFF}user_id:token\titem_id:token\r\n1\t2\r\n", to: folder, "x.tsv")
            let log = try DatasetLoader.readLog(path: path)
            #expect(log.format == .recbole && log.userIDs == ["1"] && log.itemIDs == ["2"])
        }
    }

    @Test func autoFormatDetection() {
        #expect(DataFormat.detect(path: "x/ratings.dat", isDirectory: false, firstLine: "1::2::3::4") == .movieLensDat)
        #expect(DataFormat.detect(path: "ratings.csv", isDirectory: false, firstLine: "userId,movieId,rating,timestamp") == .movieLensCSV)
        #expect(DataFormat.detect(path: "a.inter", isDirectory: false, firstLine: "user_id\titem_id") == .recbole)
        #expect(DataFormat.detect(path: "a.tsv", isDirectory: false, firstLine: "user_id:token\titem_id:token") == .recbole)
        #expect(DataFormat.detect(path: "ml-1m.ratings.tsv", isDirectory: false, firstLine: "user_id\titem_idx\trating\ttimestamp") == .csv)
        #expect(DataFormat.detect(path: "clean", isDirectory: true, firstLine: "") == .diffrec)
    }

    @Test func numbersParseExactly() {
        for text in ["0", "4", "3.5", "-2.25", "978300760", "881250949.0", "1e3", "0.1", "+7", "123456789012345678"] {
            let bytes = Array(text.utf8)
            let parsed = bytes.withUnsafeBufferPointer { DelimitedTextReader.parseNumber($0, 0..<bytes.count) }
            #expect(parsed == Double(text), "\(text)")
        }
        for text in ["", "abc", "4.5.6", "nan", "inf", "1,5", "-"] {
            let bytes = Array(text.utf8)
            #expect(bytes.withUnsafeBufferPointer { DelimitedTextReader.parseNumber($0, 0..<bytes.count) } == nil, "\(text)")
        }
    }

    @Test func columnSpecParsing() throws {
        let mapping = try ColumnMapping(parsing: "user=0, item=movieId ,timestamp=3")
        #expect(mapping == ColumnMapping(user: .index(0), item: .name("movieId"), time: .index(3)))
        #expect(mapping.description == "user=0,item=movieId,time=3")
        for bad in ["user=0", "user=0,item", "user=0,item=1,colour=2", "user=0,item=1,user=2", "user=-1,item=0"] {
            #expect(throws: DataError.self) { try ColumnMapping(parsing: bad) }
        }
    }

    static let smallShape: SyntheticDataset.Shape = {
        var shape = SyntheticDataset.Shape()
        shape.users = 60
        shape.items = 80
        shape.interactions = 1_500
        shape.maxActivity = 60
        return shape
    }()
}
