import Foundation
import Testing
@testable import Refit

/// Every kind of bad input gives a DataError that names the file, the place and the problem in one line.
@Suite struct DataErrorTests {
    private func loadError(_ path: String, format: DataFormat = .auto,
                           options: DatasetOptions = DatasetOptions()) -> DataError? {
        DataTestSupport.dataError { try DatasetLoader.load(path: path, format: format, options: options) }
    }

    @Test func missingFile() throws {
        try DataTestSupport.withTemporaryFolder { folder in
            let error = loadError(folder + "/nope.dat")
            #expect(error == .missingFile(path: folder + "/nope.dat"))
            #expect(error?.description == "\(folder)/nope.dat: no such file or folder")
        }
    }

    @Test func emptyFiles() throws {
        try DataTestSupport.withTemporaryFolder { folder in
            for (name, text) in [("a.csv", ""), ("b.dat", "\n \n\r\n")] {
                let path = try DataTestSupport.write(text, to: folder, name)
                #expect(loadError(path) == .emptyFile(path: path))
            }
        }
    }

    @Test func headerOnlyFiles() throws {
        try DataTestSupport.withTemporaryFolder { folder in
            for (name, text) in [("ratings.csv", "userId,movieId,rating,timestamp\n"),
                                 ("x.inter", "user_id:token\titem_id:token\n"),
                                 ("x.tsv", "user_id\titem_idx\trating\ttimestamp\n")] {
                let path = try DataTestSupport.write(text, to: folder, name)
                let error = loadError(path)
                #expect(error == .headerOnly(path: path), "\(name)")
                #expect(error?.description == "\(path): the file has a header but no data rows")
            }
        }
    }

    @Test func wrongNumberOfColumns() throws {
        try DataTestSupport.withTemporaryFolder { folder in
            let dat = try DataTestSupport.write("1::2::5::10\n1::3::4::11\n\n2::3::4\n", to: folder, "ratings.dat")
            let error = loadError(dat)
            #expect(error == .badLine(path: dat, line: 4, message: "expected 4 fields separated by '::', found 3"))
            #expect(error?.description == "\(dat):4: expected 4 fields separated by '::', found 3")

            let tsv = try DataTestSupport.write("user\titem\trating\n1\t2\t3\n1\t2\t3\t4\n", to: folder, "r.tsv")
            #expect(loadError(tsv) == .badLine(path: tsv, line: 3, message: "expected 3 fields separated by tabs, found 4"))
        }
    }

    @Test func nonNumericRatingOrTimestamp() throws {
        try DataTestSupport.withTemporaryFolder { folder in
            let rating = try DataTestSupport.write("1::2::five::10\n", to: folder, "ratings.dat")
            #expect(loadError(rating) == .badLine(path: rating, line: 1, message: "rating 'five' in column 2 is not a number"))
            let time = try DataTestSupport.write("userId,movieId,rating,timestamp\n1,2,4.0,10\n1,3,4.0,2003-01-01\n", to: folder, "ratings.csv")
            #expect(loadError(time) == .badLine(path: time, line: 3, message: "timestamp '2003-01-01' in column 3 is not a number"))
        }
    }

    @Test func emptyIDs() throws {
        try DataTestSupport.withTemporaryFolder { folder in
            let path = try DataTestSupport.write("u,i\n1,2\n,3\n", to: folder, "x.csv")
            #expect(loadError(path) == .badLine(path: path, line: 3, message: "empty user id in column 0"))
        }
    }

    @Test func unknownColumns() throws {
        try DataTestSupport.withTemporaryFolder { folder in
            let path = try DataTestSupport.write("a,b\n1,2\n", to: folder, "x.csv")
            var options = DatasetOptions()
            options.columns = try ColumnMapping(parsing: "user=a,item=movie")
            #expect(loadError(path, options: options) == .badLine(path: path, line: 1, message: "no column named 'movie' in the header (a, b)"))
            options.columns = try ColumnMapping(parsing: "user=0,item=5")
            #expect(loadError(path, options: options)?.description.contains("column 5") == true)
            let half = try DataTestSupport.write("user_id,what\nx,y\n", to: folder, "y.csv")
            #expect(loadError(half)?.description.contains("--columns user=NAME,item=NAME") == true)
        }
    }

    @Test func numpyBadMagic() throws {
        try DataTestSupport.withTemporaryFolder { folder in
            let path = try DataTestSupport.write("PK\u{3}\u{4} definitely not numpy", to: folder, "train_list.npy")
            #expect(DataTestSupport.dataError { try NumpyPairs.decode(Data(contentsOf: URL(fileURLWithPath: path)), path: path) }
                    == .badNumpy(path: path, offset: 0, message: "not a NumPy .npy file (it does not start with \\x93NUMPY)"))
        }
    }

    @Test func numpyWrongDtypeShapeOrLength() {
        let pairs = DataTestSupport.int64Bytes([0, 1, 1, 2])
        let cases: [([UInt8], Int, String)] = [
            (DataTestSupport.npy(header: "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }\n", body: pairs), 10,
             "dtype '<f4' is not supported; expected little-endian integers '<i8' or '<i4'"),
            (DataTestSupport.npy(header: "{'descr': '>i8', 'fortran_order': False, 'shape': (2, 2), }\n", body: pairs), 10,
             "dtype '>i8' is not supported; expected little-endian integers '<i8' or '<i4'"),
            (DataTestSupport.npy(header: "{'descr': '<i8', 'fortran_order': False, 'shape': (4,), }\n", body: pairs), 10,
             "shape (4,) is not (n, 2): expected one (user, item) pair per row"),
            (DataTestSupport.npy(header: "{'descr': '<i8', 'fortran_order': False, 'shape': (1, 4), }\n", body: pairs), 10,
             "shape (1, 4) is not (n, 2): expected one (user, item) pair per row"),
            (DataTestSupport.npy(header: "{'descr': '<i8', 'fortran_order': False, 'shape': (3, 2), }\n", body: pairs), 102,
             "truncated: 3 rows need 48 bytes of data from byte 70, but the file ends at byte 102"),
            (DataTestSupport.npy(header: "{'descr': '<i8', 'fortran_order': False, 'shape': (1, 2), }\n", body: pairs), 86,
             "16 unexpected bytes after 1 rows of data"),
            (DataTestSupport.npy(header: "{'descr': '<i8', 'fortran_order': False, 'shape': (2, 2), }\n", body: DataTestSupport.int64Bytes([0, 1, 1, -3])), 94,
             "item index -3 in row 1 is negative"),
            (DataTestSupport.npy(header: "{'descr': '<i8', 'fortran_order': False, 'shape': (2, 2), ", body: pairs), 68,
             "cannot parse the header {'descr': '<i8', 'fortran_order': False, 'shape': (2, 2),: unexpected end"),
            (Array(DataTestSupport.npy(header: "{'descr': '<i8', 'fortran_order': False, 'shape': (2, 2), }\n", body: pairs).prefix(40)), 40,
             "the file ends inside the header, which should run to byte 70"),
        ]
        for (bytes, offset, message) in cases {
            let error = DataTestSupport.dataError { try NumpyPairs.decode(Data(bytes), path: "t.npy") }
            #expect(error == .badNumpy(path: "t.npy", offset: offset, message: message))
            #expect(error?.description == "t.npy: byte \(offset): \(message)")
        }
    }

    @Test func diffRecFolderWithASplitMissing() throws {
        try DataTestSupport.withTemporaryFolder { folder in
            let data = NumpyPairs.encode(users: [0, 1] as [Int32], items: [0, 1] as [Int32])
            try data.write(to: URL(fileURLWithPath: folder + "/train_list.npy"))
            try data.write(to: URL(fileURLWithPath: folder + "/test_list.npy"))
            let error = loadError(folder)
            #expect(error == .missingSplit(folder: folder, file: "valid_list.npy"))
            #expect(error?.description.hasPrefix("\(folder): DiffRec folder has no valid_list.npy") == true)
        }
    }

    @Test func negativeItemIndexInADiffRecFolder() throws {
        try DataTestSupport.withTemporaryFolder { folder in
            let good = NumpyPairs.encode(users: [0, 1] as [Int32], items: [0, 1] as [Int32])
            try good.write(to: URL(fileURLWithPath: folder + "/train_list.npy"))
            try good.write(to: URL(fileURLWithPath: folder + "/valid_list.npy"))
            let bad = DataTestSupport.npy(header: "{'descr': '<i8', 'fortran_order': False, 'shape': (1, 2), }\n",
                                          body: DataTestSupport.int64Bytes([1, -1]))
            try DataTestSupport.write(bad, to: folder, "test_list.npy")
            #expect(loadError(folder) == .badNumpy(path: folder + "/test_list.npy", offset: 78, message: "item index -1 in row 0 is negative"))
        }
    }

    @Test func absurdIndexInADiffRecFolder() throws {
        try DataTestSupport.withTemporaryFolder { folder in
            let good = NumpyPairs.encode(users: [0, 1] as [Int32], items: [0, 1] as [Int32])
            try good.write(to: URL(fileURLWithPath: folder + "/train_list.npy"))
            try good.write(to: URL(fileURLWithPath: folder + "/valid_list.npy"))
            try NumpyPairs.encode(users: [2_000_000_000] as [Int32], items: [0] as [Int32])
                .write(to: URL(fileURLWithPath: folder + "/test_list.npy"))
            #expect(loadError(folder)?.description.contains("user index 2000000000 is far beyond the 5 pairs") == true)
        }
    }

    @Test func datasetLeftEmptyByTheFilters() throws {
        try DataTestSupport.withTemporaryFolder { folder in
            let path = try DataTestSupport.write("1::2::3::10\n1::3::2::11\n", to: folder, "ratings.dat")
            let error = loadError(path)
            #expect(error == .emptyDataset(source: path, reason: "after the filters (rating ≥ 4)"))
            #expect(error?.description == "\(path): no interactions left after the filters (rating ≥ 4)")
            var options = DatasetOptions()
            options.minRating = nil
            options.kCore = 5
            #expect(loadError(path, options: options) == .emptyDataset(source: path, reason: "after the filters (5-core)"))
        }
    }

    @Test func badOptionsAndFormats() throws {
        #expect(loadError("builtin:nothing")?.description.contains("unknown built-in dataset") == true)
        #expect(throws: DataError.self) { try SplitRatios(parsing: "0.8,0.3,0.1") }
        #expect(throws: DataError.self) { try SplitRatios(parsing: "0.8,0.2") }
        try DataTestSupport.withTemporaryFolder { folder in
            #expect(loadError(folder, format: .csv)?.description.contains("folder") == true)
            let npy = try DataTestSupport.write([1, 2, 3], to: folder, "train_list.npy")
            #expect(loadError(npy)?.description.contains("DiffRec folder") == true)
        }
    }

    @Test func everyMessageIsOneLine() {
        let errors: [DataError] = [
            .missingFile(path: "a"), .unreadableFile(path: "a", reason: "r"), .emptyFile(path: "a"), .headerOnly(path: "a"),
            .badLine(path: "a", line: 1, message: "m"), .badNumpy(path: "a", offset: 1, message: "m"),
            .missingSplit(folder: "f", file: "x"), .badFile(path: "a", message: "m"), .emptyDataset(source: "s", reason: "r"),
            .badOption("m"), .outputExists(path: "a"), .writeFailed(path: "a", reason: "r"),
        ]
        for error in errors { #expect(!error.description.contains("\n")) }
    }
}
