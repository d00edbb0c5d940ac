import Foundation
import Testing

/// The `refit` executable that `swift build` puts beside the test bundle.
enum DataCLIBinary {
    static let path: String? = {
        let testBinary = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        let candidates = [
            testBinary.deletingLastPathComponent().appendingPathComponent("refit").path,
            // macOS: …/RefitPackageTests.xctest/Contents/MacOS/RefitPackageTests
            testBinary.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
                .deletingLastPathComponent().appendingPathComponent("refit").path,
        ]
        let found = candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
        if found == nil { print("Skipping refit data CLI tests: no refit executable beside \(testBinary.path).") }
        return found
    }()
}

/// `refit data …` run as a user runs it: statistics, a written split, and one-line refusals of bad input.
@Suite(.enabled(if: DataCLIBinary.path != nil, "the refit executable is not built beside the tests"))
struct DataCLITests {

    private func refit(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try #require(DataCLIBinary.path))
        process.arguments = arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: stdout, as: UTF8.self), String(decoding: stderr, as: UTF8.self))
    }

    @Test func statsPrintsTheStatistics() throws {
        let result = try refit(["data", "stats", "--data", "builtin:demo"])
        #expect(result.status == 0)
        #expect(result.stdout.contains("2,000 users, 1,000 items"))
        #expect(result.stdout.contains("fingerprint"))
    }

    @Test func badInputIsOneLineOnStderrAndAFailure() throws {
        try DataTestSupport.withTemporaryFolder { folder in
            let path = try DataTestSupport.write("1::2::5::1\n1::3::4\n", to: folder, "ratings.dat")
            let result = try refit(["data", "stats", "--data", path])
            #expect(result.status != 0)
            let lines = result.stderr.split(separator: "\n")
            #expect(lines == ["Error: \(path):2: expected 4 fields separated by '::', found 3"])
            let option = try refit(["data", "stats", "--min-rating", "high"])
            #expect(option.status != 0 && option.stderr.contains("--min-rating 'high' is not a number or 'none'"))
        }
    }

    @Test func splitWritesDiffRecFilesAndRefusesToOverwrite() throws {
        try DataTestSupport.withTemporaryFolder { folder in
            let ratings = (1...40).map { u in (1...8).map { i in "\(u),\((u * i) % 23),\(3 + (u + i) % 3),\(1000 + i)" }.joined(separator: "\n") }
            let path = try DataTestSupport.write("user,item,rating,time\n" + ratings.joined(separator: "\n") + "\n", to: folder, "r.csv")
            let out = folder + "/split"
            let first = try refit(["data", "split", "--data", path, "--min-rating", "none", "--out", out])
            #expect(first.status == 0)
            for name in ["train_list.npy", "valid_list.npy", "test_list.npy", "user_ids.tsv", "item_ids.tsv"] {
                #expect(FileManager.default.fileExists(atPath: out + "/" + name), "\(name)")
            }
            let again = try refit(["data", "split", "--data", path, "--out", out])
            #expect(again.status != 0)
            #expect(again.stderr.split(separator: "\n") == ["Error: \(out) already exists; pass --force to replace it"])
            #expect(try refit(["data", "split", "--data", path, "--out", out, "--force"]).status == 0)
            let back = try refit(["data", "stats", "--data", out])
            #expect(back.status == 0 && back.stdout.contains("as shipped"))
        }
    }
}
