import Foundation
import Testing
@testable import Refit

/// `--config FILE`: YAML and JSON files set options by flag name, and the command line wins.
@Suite struct ConfigFileTests {
    static func run(config name: String, contents: String, extra: [String]) throws -> (CLITests.Output, DiffRecSettings?) {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("refit-config-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let file = folder.appendingPathComponent(name)
        try contents.write(to: file, atomically: true, encoding: .utf8)
        let out = folder.appendingPathComponent("run").path
        let output = try CLITests.refit(["pretrain", "--config", file.path, "--out", out, "--quiet"] + extra)
        let settings = try? RunFolder(out).readJSON(RunConfiguration.self, from: "config.json").diffrec
        return (output, settings)
    }

    @Test func yamlSetsOptionsAndTheCommandLineWins() throws {
        let yaml = "# a tiny run\ndims: [16]\nsteps: 3\nepochs: 2\nlr: 0.01\nbatch-size: 500\neval_every: 1\n"
        let (output, settings) = try Self.run(config: "run.yaml", contents: yaml, extra: ["--epochs", "1"])
        #expect(output.status == 0, "\(output.stderr)")
        #expect(settings?.dims == [16] && settings?.steps == 3 && settings?.learningRate == 0.01 && settings?.batchSize == 500)
        #expect(settings?.evalEvery == 1)
        #expect(settings?.epochs == 1, "the command line must win over the file")
    }

    @Test func jsonSetsOptionsIncludingFlags() throws {
        let json = #"{"dims": [16], "steps": 3, "epochs": 1, "reweight": "off", "quiet": true}"#
        let (output, settings) = try Self.run(config: "run.json", contents: json, extra: [])
        #expect(output.status == 0, "\(output.stderr)")
        #expect(settings?.dims == [16] && settings?.steps == 3 && settings?.epochs == 1 && settings?.reweight == false)
    }

    @Test func aBadConfigFileIsOneLine() throws {
        let (output, _) = try Self.run(config: "bad.yaml", contents: "dims [16]\n", extra: [])
        #expect(output.status != 0)
        #expect(output.stderrLines.count == 1 && output.stderr.contains("bad.yaml:1"), "\(output.stderr)")
    }
}
