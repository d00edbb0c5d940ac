import Foundation
import Testing

/// The folders of Sources/Refit are floors (README, "For developers"): `Tools/check-layers.sh` passes on this tree and
/// fails, naming the file, on a tree with one upward use.
@Suite struct LayeringTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func check(_ tree: URL) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [root.appendingPathComponent("Tools/check-layers.sh").path, tree.path]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, output)
    }

    @Test func everyFolderUsesOnlyTheFloorsBelowIt() throws {
        let result = try Self.check(Self.root)
        #expect(result.status == 0, "\(result.output)")
    }

    @Test func anUpwardUseIsReportedWithItsFile() throws {
        let tree = FileManager.default.temporaryDirectory.appendingPathComponent("refit-layers-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: tree) }
        let manager = FileManager.default
        for folder in ["Low", "High"] {
            try manager.createDirectory(at: tree.appendingPathComponent("Sources/Refit/\(folder)"), withIntermediateDirectories: true)
        }
        try "Floors, bottom to top: Low → High.\n".write(to: tree.appendingPathComponent("README.md"), atomically: true, encoding: .utf8)
        try "public struct Above {}\nstruct Fine { let below: Below }\n"
            .write(to: tree.appendingPathComponent("Sources/Refit/High/Above.swift"), atomically: true, encoding: .utf8)
        // A mention in a comment or a string is not a use; the stored property is.
        try "public struct Below {}\n// Above in a comment\nlet name = \"Above\"\nstruct Leak { let above: Above }\n"
            .write(to: tree.appendingPathComponent("Sources/Refit/Low/Below.swift"), atomically: true, encoding: .utf8)
        let result = try Self.check(tree)
        #expect(result.status == 1)
        #expect(result.output.contains("Low/Below.swift:4: uses Above from High"), "\(result.output)")
        #expect(!result.output.contains("High/Above.swift"), "a downward use was reported: \(result.output)")
    }
}
