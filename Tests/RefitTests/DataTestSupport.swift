import Foundation
@testable import Refit

/// Where the shared real datasets live (`../shared/data` beside the package), and a scratch folder per test.
enum DataTestSupport {
    static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static let sharedData = packageRoot.deletingLastPathComponent().appendingPathComponent("shared/data").path

    static func shared(_ relative: String) -> String { sharedData + "/" + relative }

    static let sharedDataAvailable: Bool = {
        let available = FileManager.default.fileExists(atPath: sharedData)
        if !available { print("Skipping real-data tests: \(sharedData) is absent.") }
        return available
    }()

    /// The built-in dataset, made once for all tests (`builtin` is the short name of `builtin:demo`).
    static let demo = Result { try DatasetLoader.load(path: "builtin") }

    /// A fresh empty folder, removed when `body` returns.
    static func withTemporaryFolder<T>(_ body: (String) throws -> T) throws -> T {
        let folder = FileManager.default.temporaryDirectory
            .appendingPathComponent("refit-data-tests-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        return try body(folder)
    }

    @discardableResult
    static func write(_ text: String, to folder: String, _ name: String) throws -> String {
        let path = folder + "/" + name
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    @discardableResult
    static func write(_ bytes: [UInt8], to folder: String, _ name: String) throws -> String {
        let path = folder + "/" + name
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// The error a throwing call raised, as DataError (nil when it did not throw one).
    static func dataError(_ body: () throws -> Any) -> DataError? {
        do {
            _ = try body()
            return nil
        } catch {
            return error as? DataError
        }
    }

    /// A hand-made `.npy` file, so tests can produce every kind of bad header.
    static func npy(header: String, version: UInt8 = 1, body: [UInt8]) -> [UInt8] {
        var bytes: [UInt8] = [0x93] + Array("NUMPY".utf8) + [version, 0]
        let length = header.utf8.count
        bytes += version == 1 ? [UInt8(length & 0xFF), UInt8(length >> 8)]
                              : [UInt8(length & 0xFF), UInt8((length >> 8) & 0xFF), 0, 0]
        return bytes + Array(header.utf8) + body
    }

    static func int64Bytes(_ values: [Int64]) -> [UInt8] {
        values.flatMap { v in withUnsafeBytes(of: v.littleEndian) { Array($0) } }
    }

    /// Options that keep every row, so reader tests see exactly what they wrote.
    static var keepAll: DatasetOptions {
        var options = DatasetOptions()
        options.minRating = nil
        return options
    }
}
