/// What `--device` asks for: `auto`, `cpu` (the reference), `opencl` (the first OpenCL device) or `opencl:P:D`.
public enum DeviceChoice: Sendable, Equatable, CustomStringConvertible {
    case auto
    case cpuReference
    case firstOpenCL
    case openCL(platform: Int, device: Int)

    public init(parsing text: String) throws(DeviceSelectionError) {
        switch text.lowercased() {
        case "auto": self = .auto
        case "cpu": self = .cpuReference
        case "opencl": self = .firstOpenCL
        default:
            let parts = text.split(separator: ":")
            guard parts.count == 3, parts[0] == "opencl", let p = Int(parts[1]), let d = Int(parts[2]) else {
                throw .invalidChoice(text)
            }
            self = .openCL(platform: p, device: d)
        }
    }

    public var description: String {
        switch self {
        case .auto: "auto"
        case .cpuReference: "cpu"
        case .firstOpenCL: "opencl"
        case .openCL(let p, let d): "opencl:\(p):\(d)"
        }
    }
}

public enum DeviceSelectionError: Error, CustomStringConvertible {
    case invalidChoice(String)
    case noOpenCLDevice(String)
    case unknownDevice(String, available: [String])

    public var description: String {
        switch self {
        case .invalidChoice(let text):
            "unknown device '\(text)': use auto, cpu, opencl or opencl:PLATFORM:DEVICE (see `refit devices`)"
        case .noOpenCLDevice(let text):
            "--device \(text): no OpenCL device found (is an ICD such as pocl-opencl-icd installed?); use --device cpu"
        case .unknownDevice(let text, let available):
            "no OpenCL device \(text); available: \(available.isEmpty ? "none" : available.joined(separator: ", "))"
        }
    }
}

/// Turns a `DeviceChoice` into a backend, saying which device it took and why.
public enum DeviceSelection {
    /// The device `auto` takes: the first GPU, else the first OpenCL CPU device, else nil (the CPU reference).
    public static var automaticDevice: OpenCLDeviceInfo? {
        let devices = OpenCLRuntime.devices
        return devices.first(where: \.isGPU) ?? devices.first
    }

    public static func makeBackend(_ choice: DeviceChoice) throws -> any Backend {
        let devices = OpenCLRuntime.devices
        switch choice {
        case .cpuReference:
            return CPUBackend()
        case .auto:
            guard let device = automaticDevice else { return CPUBackend() }
            return try OpenCLBackend(device: device)
        case .firstOpenCL:
            guard let device = devices.first else { throw DeviceSelectionError.noOpenCLDevice(choice.description) }
            return try OpenCLBackend(device: device)
        case .openCL(let p, let d):
            guard let device = devices.first(where: { $0.platformIndex == p && $0.deviceIndex == d }) else {
                throw DeviceSelectionError.unknownDevice(choice.description, available: devices.map(\.selector))
            }
            return try OpenCLBackend(device: device)
        }
    }
}
