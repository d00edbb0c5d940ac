import Foundation

/// Kernel parameters measured per device, CLBlast's way: rows keyed by the device's vendor, name and driver version,
/// each holding the parameters (by name, over the defaults for the device's kind) that `refit tune` found fastest.
///
/// Two tables are installed: the user's (`REFIT_TUNING`, else `$XDG_CONFIG_HOME/refit/tuning.json`, else
/// `~/.config/refit/tuning.json`), where `refit tune` writes by default, and the one shipped in the binary
/// (Kernels/tuning.json, the rows measured while building Refit). A device takes the first row that matches it
/// exactly, the user's before the shipped; else the first for its vendor and name under another driver; else the
/// defaults for its kind.
public struct KernelTuningTable: Codable, Sendable, Equatable {
    public static let formatName = "refit-kernel-tuning 1"

    public struct Row: Codable, Sendable, Equatable {
        public var vendor: String
        public var device: String
        public var driver: String
        /// Parameter name → value, over `KernelParameters.defaults(for:)`.
        public var parameters: [String: Int]
        public var measured: Measurement?

        public init(vendor: String, device: String, driver: String, parameters: [String: Int], measured: Measurement?) {
            (self.vendor, self.device, self.driver, self.parameters, self.measured) = (vendor, device, driver, parameters, measured)
        }

        init(for device: OpenCLDeviceInfo, parameters: [String: Int], measured: Measurement?) {
            self.init(vendor: device.vendor, device: device.name, driver: device.driverVersion, parameters: parameters, measured: measured)
        }

        func matches(_ device: OpenCLDeviceInfo, exactly: Bool) -> Bool {
            vendor == device.vendor && self.device == device.name && (!exactly || driver == device.driverVersion)
        }

        var key: String { "\(vendor) / \(device) / \(driver)" }
    }

    /// What `refit tune` measured when it wrote a row.
    public struct Measurement: Codable, Sendable, Equatable {
        public var date: String
        public var refit: String
        /// What was timed, e.g. "DiffRec ML-1M linear layers, 3 products each".
        public var benchmark: String
        public var defaultGFLOPS: Double
        /// The row's own parameters' figure (the defaults' when the search's choice did not beat them).
        public var tunedGFLOPS: Double

        public init(date: String, refit: String, benchmark: String, defaultGFLOPS: Double, tunedGFLOPS: Double) {
            (self.date, self.refit, self.benchmark, self.defaultGFLOPS, self.tunedGFLOPS) = (date, refit, benchmark, defaultGFLOPS, tunedGFLOPS)
        }
    }

    public var format: String
    public var devices: [Row]

    public init(devices: [Row] = []) {
        format = Self.formatName
        self.devices = devices
    }

    /// The parameters a device takes from `tables` (searched in order) and a line saying where they came from.
    public static func parameters(for device: OpenCLDeviceInfo, in tables: [(table: KernelTuningTable, origin: String)])
        throws(KernelTuningTableError) -> (parameters: KernelParameters, source: String) {
        let defaults = KernelParameters.defaults(for: device)
        for exactly in [true, false] {
            for (table, origin) in tables {
                guard let row = table.devices.first(where: { $0.matches(device, exactly: exactly) }) else { continue }
                do {
                    let parameters = try defaults.applying(row.parameters)
                    let match = exactly ? "this device and driver" : "this device under driver \(row.driver)"
                    return (parameters, "\(origin), row for \(match)")
                } catch { throw KernelTuningTableError(origin: origin, problem: "row \(row.key): \(error)") }
            }
        }
        return (defaults, "defaults for a \(device.isGPU ? "GPU" : "CPU") device (no tuning-table row)")
    }

    public func parameters(for device: OpenCLDeviceInfo) throws(KernelTuningTableError) -> (parameters: KernelParameters, source: String) {
        try Self.parameters(for: device, in: [(self, "tuning table")])
    }

    /// This table with `row` in place of any row for the same vendor, device and driver.
    public func replacing(_ row: Row) -> KernelTuningTable {
        var table = self
        table.devices.removeAll { $0.vendor == row.vendor && $0.device == row.device && $0.driver == row.driver }
        table.devices.append(row)
        table.devices.sort { ($0.vendor, $0.device, $0.driver) < ($1.vendor, $1.device, $1.driver) }
        return table
    }

    // MARK: Files

    /// Parses a table; `origin` names it in errors.
    public static func decode(_ data: Data, origin: String) throws(KernelTuningTableError) -> KernelTuningTable {
        let table: KernelTuningTable
        do { table = try JSONDecoder().decode(KernelTuningTable.self, from: data) } catch {
            throw KernelTuningTableError(origin: origin, problem: "not a tuning table: \(Self.describe(error))")
        }
        guard table.format == formatName else {
            throw KernelTuningTableError(origin: origin, problem: "format '\(table.format)', expected '\(formatName)'")
        }
        for row in table.devices {
            for name in row.parameters.keys where KernelParameters.entry(named: name) == nil {
                throw KernelTuningTableError(origin: origin, problem: "row \(row.key): \(KernelParametersError.unknownName(name))")
            }
        }
        return table
    }

    public var encoded: Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        // Encoding plain strings, integers and doubles cannot fail.
        return (try? encoder.encode(self)).map { $0 + Data("\n".utf8) } ?? Data()
    }

    /// Writes the table atomically (a temporary file renamed over `path`), creating the folder.
    public func write(to path: String) throws {
        let url = URL(fileURLWithPath: path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try encoded.write(to: url, options: .atomic)
    }

    /// The table at `path`, or an empty one when no file is there.
    public static func read(_ path: String) throws(KernelTuningTableError) -> KernelTuningTable {
        guard FileManager.default.fileExists(atPath: path) else { return KernelTuningTable() }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw KernelTuningTableError(origin: path, problem: "cannot be read")
        }
        return try decode(data, origin: path)
    }

    /// The table compiled into Refit from Kernels/tuning.json.
    public static let shipped: Result<KernelTuningTable, KernelTuningTableError> = {
        let text = KernelSources.tuningTable
        if text.isEmpty { return .success(KernelTuningTable()) }
        do throws(KernelTuningTableError) { return .success(try decode(Data(text.utf8), origin: "the shipped table (Kernels/tuning.json)")) }
        catch { return .failure(error) }
    }()

    /// Where the user's table lives: `REFIT_TUNING`, else under `$XDG_CONFIG_HOME` or `~/.config`.
    public static var userPath: String {
        let environment = ProcessInfo.processInfo.environment
        if let path = environment["REFIT_TUNING"], !path.isEmpty { return path }
        let base = environment["XDG_CONFIG_HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? ((environment["HOME"] ?? ".") + "/.config")
        return base + "/refit/tuning.json"
    }

    /// The installed tables in the order a device searches them: the user's (none yet when its file is absent, as
    /// before the first `refit tune`, even when `REFIT_TUNING` names it), then the shipped one.
    public static func installed() throws(KernelTuningTableError) -> InstalledTables {
        let path = userPath
        return InstalledTables(tables: [(try read(path), path), (try shipped.get(), "the shipped table")])
    }

    public struct InstalledTables: Sendable {
        public let tables: [(table: KernelTuningTable, origin: String)]

        public func parameters(for device: OpenCLDeviceInfo) throws(KernelTuningTableError) -> (parameters: KernelParameters, source: String) {
            try KernelTuningTable.parameters(for: device, in: tables)
        }
    }

    private static func describe(_ error: Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, let context):
            return "missing '\(key.stringValue)' at \(path(context))"
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context):
            return "\(context.debugDescription) at \(path(context))"
        case DecodingError.dataCorrupted(let context):
            return "\(context.debugDescription)\(context.codingPath.isEmpty ? "" : " at \(path(context))")"
        default: return "\(error)"
        }
    }

    private static func path(_ context: DecodingError.Context) -> String {
        context.codingPath.isEmpty ? "the top level" : context.codingPath.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")
    }
}

public struct KernelTuningTableError: Error, Equatable, CustomStringConvertible {
    /// The file (or "the shipped table").
    public let origin: String
    public let problem: String

    public var description: String { "\(origin): \(problem)" }
}
