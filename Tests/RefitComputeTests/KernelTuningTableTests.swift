import Foundation
@testable import RefitCompute
import Testing

/// Which row of the tuning tables a device takes, how a table is read and written, and that a backend then runs the
/// row's parameters.
@Suite struct KernelTuningTableTests {
    static func row(_ device: OpenCLDeviceInfo, driver: String? = nil, name: String? = nil, _ parameters: [String: Int]) -> KernelTuningTable.Row {
        .init(vendor: device.vendor, device: name ?? device.name, driver: driver ?? device.driverVersion, parameters: parameters, measured: nil)
    }

    @Test func aDeviceTakesTheExactRowThenItsNameThenTheDefaults() throws {
        guard let info = OpenCLRuntime.devices.first else { return }
        let user = KernelTuningTable(devices: [Self.row(info, driver: "older", ["LIN_CPU_KC": 128]),
                                               Self.row(info, name: "another card", ["LIN_CPU_KC": 64])])
        let shipped = KernelTuningTable(devices: [Self.row(info, ["LIN_CPU_KC": 512])])
        // An exact row anywhere beats a row for another driver, even in the first table.
        var chosen = try KernelTuningTable.parameters(for: info, in: [(user, "user"), (shipped, "shipped")])
        #expect(chosen.parameters.linear.cpuInnerBlock == 512 && chosen.source == "shipped, row for this device and driver")
        // Between exact rows, the first table wins.
        let userExact = user.replacing(Self.row(info, ["LIN_CPU_KC": 192]))
        chosen = try KernelTuningTable.parameters(for: info, in: [(userExact, "user"), (shipped, "shipped")])
        #expect(chosen.parameters.linear.cpuInnerBlock == 192 && chosen.source.hasPrefix("user"))
        // Only another driver's row: taken, and said so.
        chosen = try KernelTuningTable.parameters(for: info, in: [(user, "user")])
        #expect(chosen.parameters.linear.cpuInnerBlock == 128 && chosen.source == "user, row for this device under driver older")
        // Nothing for this device: the defaults for its kind.
        chosen = try KernelTuningTable.parameters(for: info, in: [(KernelTuningTable(devices: [Self.row(info, name: "x", [:])]), "user")])
        #expect(chosen.parameters == KernelParameters.defaults(for: info) && chosen.source.hasPrefix("defaults for a"))
    }

    @Test func aBadRowIsAnErrorNamingTheTableAndTheRow() throws {
        guard let info = OpenCLRuntime.devices.first else { return }
        let table = KernelTuningTable(devices: [Self.row(info, ["LIN_CPU_NV": 9])])
        let error = try #require(throws: KernelTuningTableError.self) { try KernelTuningTable.parameters(for: info, in: [(table, "mine.json")]) }
        #expect(error.description.hasPrefix("mine.json: row \(info.vendor) / \(info.name)") && error.description.contains("LIN_CPU_NV = 9"))
    }

    @Test func replacingKeepsOtherDevicesRowsAndOneRowPerKey() {
        let a = KernelTuningTable.Row(vendor: "V", device: "A", driver: "1", parameters: ["LIN_CPU_KC": 128], measured: nil)
        let b = KernelTuningTable.Row(vendor: "V", device: "B", driver: "1", parameters: [:], measured: nil)
        var newer = a
        newer.parameters = ["LIN_CPU_KC": 64]
        let table = KernelTuningTable(devices: [b]).replacing(a).replacing(newer)
        #expect(table.devices.map(\.device) == ["A", "B"] && table.devices[0].parameters == ["LIN_CPU_KC": 64])
    }

    @Test func filesRoundTripAndBadFilesSayWhatIsWrong() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("refit-tuning-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("sub/tuning.json").path
        #expect(try KernelTuningTable.read(path) == KernelTuningTable())  // no file: an empty table
        let measured = KernelTuningTable.Measurement(date: "2026-12-03", refit: "test", benchmark: "b", defaultGFLOPS: 1, tunedGFLOPS: 2)
        let table = KernelTuningTable(devices: [.init(vendor: "V", device: "D", driver: "1", parameters: ["TOPK_GROUP": 4], measured: measured)])
        try table.write(to: path)
        #expect(try KernelTuningTable.read(path) == table)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: folder.appendingPathComponent("sub").path)
        #expect(leftovers == ["tuning.json"], "an atomic write leaves no temporary file")

        let cases: [(String, String)] = [
            ("{", "not a tuning table"),
            (#"{"format": "other 2", "devices": []}"#, "format 'other 2'"),
            (#"{"format": "refit-kernel-tuning 1", "devices": [{"vendor": "V", "device": "D", "parameters": {}}]}"#, "missing 'driver' at devices.0"),
            (#"{"format": "refit-kernel-tuning 1", "devices": [{"vendor": "V", "device": "D", "driver": "1", "parameters": {"NOPE": 1}}]}"#,
             "unknown kernel parameter 'NOPE'"),
        ]
        for (text, problem) in cases {
            let error = try #require(throws: KernelTuningTableError.self) { try KernelTuningTable.decode(Data(text.utf8), origin: "t.json") }
            #expect(error.origin == "t.json" && error.problem.contains(problem), "\(text): \(error)")
        }
    }

    /// Kernels/tuning.json is compiled in, parses, and each row's parameters apply over its kind's defaults.
    @Test func theShippedTableParses() throws {
        let shipped = try KernelTuningTable.shipped.get()
        for row in shipped.devices {
            #expect(!row.vendor.isEmpty && !row.device.isEmpty && !row.driver.isEmpty)
            for (name, value) in row.parameters {
                let entry = try #require(KernelParameters.entry(named: name))
                #expect(entry.valid.contains(value), "\(row.key): \(name) = \(value)")
            }
            #expect(row.measured != nil, "\(row.key): a shipped row says what was measured")
        }
    }

    /// What `refit tune` writes is what a backend on that device then runs: a table with this device's row, read the
    /// way start-up reads it, gives a backend whose program was built with the row's defines.
    @Test func aBackendRunsItsRow() throws {
        guard let info = OpenCLRuntime.devices.first else { return }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("refit-tuning-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("tuning.json").path
        try KernelTuningTable(devices: [Self.row(info, ["LIN_CPU_MR": 8, "TOPK_GROUP": 4])]).write(to: path)
        let tables = KernelTuningTable.InstalledTables(tables: [(try KernelTuningTable.read(path), path)])
        let chosen = try tables.parameters(for: info)
        let backend = try OpenCLBackend(device: info, parameters: chosen.parameters, source: chosen.source)
        #expect(backend.parameters.linear.cpuTileRows == 8 && backend.parameters.groups.topKGroupSize == 4)
        #expect(KernelParametersTests.defines(in: backend.context.programBuildOptions).contains("LIN_CPU_MR=8"))
        #expect(backend.parametersSource == "\(path), row for this device and driver")
    }
}
