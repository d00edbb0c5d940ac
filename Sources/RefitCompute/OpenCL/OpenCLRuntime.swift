import COpenCL

/// An OpenCL failure, with the call that failed and the status's name (and the build log for program builds).
public struct OpenCLError: Error, CustomStringConvertible {
    public let call: String
    public let status: Int32
    public var buildLog: String? = nil

    public var description: String {
        var text = "OpenCL \(call) failed with \(OpenCLError.name(of: status)) (\(status))"
        if let buildLog, !buildLog.isEmpty { text += "\nbuild log:\n\(buildLog)" }
        return text
    }

    static func check(_ status: cl_int, _ call: @autoclosure () -> String) throws {
        if status != CL_SUCCESS { throw OpenCLError(call: call(), status: status) }
    }

    static func name(of status: Int32) -> String {
        switch status {
        case -1: return "CL_DEVICE_NOT_FOUND"
        case -2: return "CL_DEVICE_NOT_AVAILABLE"
        case -3: return "CL_COMPILER_NOT_AVAILABLE"
        case -4: return "CL_MEM_OBJECT_ALLOCATION_FAILURE"
        case -5: return "CL_OUT_OF_RESOURCES"
        case -6: return "CL_OUT_OF_HOST_MEMORY"
        case -11: return "CL_BUILD_PROGRAM_FAILURE"
        case -13: return "CL_MISALIGNED_SUB_BUFFER_OFFSET"
        case -30: return "CL_INVALID_VALUE"
        case -33: return "CL_INVALID_DEVICE"
        case -36: return "CL_INVALID_COMMAND_QUEUE"
        case -38: return "CL_INVALID_MEM_OBJECT"
        case -45: return "CL_INVALID_PROGRAM_EXECUTABLE"
        case -46: return "CL_INVALID_KERNEL_NAME"
        case -48: return "CL_INVALID_KERNEL"
        case -49: return "CL_INVALID_ARG_INDEX"
        case -50: return "CL_INVALID_ARG_VALUE"
        case -51: return "CL_INVALID_ARG_SIZE"
        case -52: return "CL_INVALID_KERNEL_ARGS"
        case -54: return "CL_INVALID_WORK_GROUP_SIZE"
        case -55: return "CL_INVALID_WORK_ITEM_SIZE"
        case -61: return "CL_INVALID_BUFFER_SIZE"
        case -1001: return "CL_PLATFORM_NOT_FOUND_KHR (no OpenCL platform installed)"
        default: return "OpenCL error"
        }
    }
}

/// One OpenCL device as found at start-up, with the facts `refit devices` prints.
public struct OpenCLDeviceInfo: @unchecked Sendable, CustomStringConvertible {
    public let platformIndex: Int
    public let deviceIndex: Int
    public let platformName: String
    /// CL_PLATFORM_VERSION, e.g. "OpenCL 3.0 PoCL 3.1 …" or NVIDIA's "OpenCL 3.0 CUDA 12.4".
    public let platformVersion: String
    public let name: String
    /// CL_DEVICE_VENDOR, e.g. "NVIDIA Corporation" or "AuthenticAMD".
    public let vendor: String
    public let isGPU: Bool
    public let typeName: String
    public let computeUnits: Int
    public let globalMemoryBytes: Int
    public let localMemoryBytes: Int
    public let maxWorkGroupSize: Int
    public let openCLCVersion: String
    public let driverVersion: String
    /// CL_DEVICE_MEM_BASE_ADDR_ALIGN in bytes: sub-buffer offsets must be multiples of it.
    public let baseAddressAlignmentBytes: Int
    let platform: cl_platform_id
    let device: cl_device_id

    public var selector: String { "opencl:\(platformIndex):\(deviceIndex)" }
    public var description: String { "\(name) (\(typeName), \(platformName))" }
}

/// Every OpenCL device on the machine, enumerated once.
///
/// PoCL 3.1 crashes when several threads make their first platform and device queries at the same time, so
/// all discovery goes through this lazily initialised global (Swift runs `static let` initialisers once,
/// thread-safely) before any parallel use.
public enum OpenCLRuntime {
    public static let discovery: Result<[OpenCLDeviceInfo], OpenCLError> = {
        do { return .success(try enumerate()) } catch let error as OpenCLError { return .failure(error) } catch {
            return .failure(OpenCLError(call: "discovery", status: -1))
        }
    }()

    /// The devices, or none when OpenCL is missing or has no platform (not an error: the CPU reference remains).
    public static var devices: [OpenCLDeviceInfo] { (try? discovery.get()) ?? [] }

    private static func enumerate() throws -> [OpenCLDeviceInfo] {
        var platformCount: cl_uint = 0
        let status = clGetPlatformIDs(0, nil, &platformCount)
        if status == -1001 || platformCount == 0 { return [] }  // no ICD installed: no platforms
        try OpenCLError.check(status, "clGetPlatformIDs")
        var platforms = [cl_platform_id?](repeating: nil, count: Int(platformCount))
        try OpenCLError.check(clGetPlatformIDs(platformCount, &platforms, nil), "clGetPlatformIDs")
        var result: [OpenCLDeviceInfo] = []
        for (platformIndex, platform) in platforms.enumerated() {
            guard let platform else { continue }
            var deviceCount: cl_uint = 0
            let deviceStatus = clGetDeviceIDs(platform, cl_device_type(CL_DEVICE_TYPE_ALL), 0, nil, &deviceCount)
            if deviceStatus == CL_DEVICE_NOT_FOUND || deviceCount == 0 { continue }
            try OpenCLError.check(deviceStatus, "clGetDeviceIDs")
            var devices = [cl_device_id?](repeating: nil, count: Int(deviceCount))
            try OpenCLError.check(clGetDeviceIDs(platform, cl_device_type(CL_DEVICE_TYPE_ALL), deviceCount, &devices, nil), "clGetDeviceIDs")
            let platformName = platformString(platform, cl_platform_info(CL_PLATFORM_NAME))
            let platformVersion = platformString(platform, cl_platform_info(CL_PLATFORM_VERSION))
            for (deviceIndex, device) in devices.enumerated() {
                guard let device else { continue }
                let type: cl_device_type = deviceValue(device, cl_device_info(CL_DEVICE_TYPE))
                let isGPU = type & cl_device_type(CL_DEVICE_TYPE_GPU) != 0
                let isCPU = type & cl_device_type(CL_DEVICE_TYPE_CPU) != 0
                result.append(OpenCLDeviceInfo(
                    platformIndex: platformIndex, deviceIndex: deviceIndex, platformName: platformName, platformVersion: platformVersion,
                    name: deviceString(device, cl_device_info(CL_DEVICE_NAME)),
                    vendor: deviceString(device, cl_device_info(CL_DEVICE_VENDOR)),
                    isGPU: isGPU, typeName: isGPU ? "GPU" : isCPU ? "CPU" : "accelerator",
                    computeUnits: Int(deviceValue(device, cl_device_info(CL_DEVICE_MAX_COMPUTE_UNITS)) as cl_uint),
                    globalMemoryBytes: Int(deviceValue(device, cl_device_info(CL_DEVICE_GLOBAL_MEM_SIZE)) as cl_ulong),
                    localMemoryBytes: Int(deviceValue(device, cl_device_info(CL_DEVICE_LOCAL_MEM_SIZE)) as cl_ulong),
                    maxWorkGroupSize: Int(deviceValue(device, cl_device_info(CL_DEVICE_MAX_WORK_GROUP_SIZE)) as Int),
                    openCLCVersion: deviceString(device, cl_device_info(CL_DEVICE_OPENCL_C_VERSION)),
                    driverVersion: deviceString(device, cl_device_info(CL_DRIVER_VERSION)),
                    baseAddressAlignmentBytes: Int(deviceValue(device, cl_device_info(CL_DEVICE_MEM_BASE_ADDR_ALIGN)) as cl_uint) / 8,
                    platform: platform, device: device))
            }
        }
        return result
    }

    private static func platformString(_ platform: cl_platform_id, _ info: cl_platform_info) -> String {
        var size = 0
        guard clGetPlatformInfo(platform, info, 0, nil, &size) == CL_SUCCESS, size > 0 else { return "?" }
        var bytes = [CChar](repeating: 0, count: size)
        guard clGetPlatformInfo(platform, info, size, &bytes, nil) == CL_SUCCESS else { return "?" }
        return decode(bytes)
    }

    static func deviceString(_ device: cl_device_id, _ info: cl_device_info) -> String {
        var size = 0
        guard clGetDeviceInfo(device, info, 0, nil, &size) == CL_SUCCESS, size > 0 else { return "?" }
        var bytes = [CChar](repeating: 0, count: size)
        guard clGetDeviceInfo(device, info, size, &bytes, nil) == CL_SUCCESS else { return "?" }
        return decode(bytes)
    }

    static func deviceValue<T: FixedWidthInteger>(_ device: cl_device_id, _ info: cl_device_info) -> T {
        var value: T = 0
        _ = clGetDeviceInfo(device, info, MemoryLayout<T>.size, &value, nil)
        return value
    }

    static func decode(_ bytes: [CChar]) -> String {
        let utf8 = bytes.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        return String(decoding: utf8, as: UTF8.self).trimmingCharacters(in: " ")
    }
}

extension String {
    fileprivate func trimmingCharacters(in set: Character) -> String {
        var s = Substring(self)
        while s.first == set { s = s.dropFirst() }
        while s.last == set { s = s.dropLast() }
        return String(s)
    }
}

/// Device memory. A sub-buffer (a view) keeps its parent alive through `parent`.
public final class DeviceBuffer: @unchecked Sendable {
    let memory: cl_mem
    let parent: DeviceBuffer?

    init(memory: cl_mem, parent: DeviceBuffer? = nil) {
        self.memory = memory
        self.parent = parent
    }

    deinit { clReleaseMemObject(memory) }
}

/// A context, an in-order queue and the program built from every embedded kernel file, on one device.
final class OpenCLContext: @unchecked Sendable {
    let info: OpenCLDeviceInfo
    let context: cl_context
    let queue: cl_command_queue
    let program: cl_program

    init(device info: OpenCLDeviceInfo, buildOptions: String) throws {
        self.info = info
        var status: cl_int = 0
        var device: cl_device_id? = info.device
        guard let context = clCreateContext(nil, 1, &device, nil, nil, &status) else {
            throw OpenCLError(call: "clCreateContext", status: status)
        }
        self.context = context
        guard let queue = clCreateCommandQueueWithProperties(context, info.device, nil, &status) else {
            clReleaseContext(context)
            throw OpenCLError(call: "clCreateCommandQueueWithProperties", status: status)
        }
        self.queue = queue
        let source = KernelSources.all.map { "// ---- \($0.name)\n\($0.source)" }.joined(separator: "\n")
        let program: cl_program? = source.withCString { pointer in
            var sourcePointer: UnsafePointer<CChar>? = pointer
            return clCreateProgramWithSource(context, 1, &sourcePointer, nil, &status)
        }
        guard let program else {
            clReleaseCommandQueue(queue)
            clReleaseContext(context)
            throw OpenCLError(call: "clCreateProgramWithSource", status: status)
        }
        self.program = program
        let buildStatus = clBuildProgram(program, 1, &device, buildOptions, nil, nil)
        if buildStatus != CL_SUCCESS {
            var error = OpenCLError(call: "clBuildProgram", status: buildStatus)
            error.buildLog = Self.buildLog(program, info.device)
            clReleaseProgram(program)
            clReleaseCommandQueue(queue)
            clReleaseContext(context)
            throw error
        }
    }

    deinit {
        clReleaseProgram(program)
        clReleaseCommandQueue(queue)
        clReleaseContext(context)
    }

    static func buildLog(_ program: cl_program, _ device: cl_device_id) -> String {
        var size = 0
        clGetProgramBuildInfo(program, device, cl_program_build_info(CL_PROGRAM_BUILD_LOG), 0, nil, &size)
        guard size > 0 else { return "" }
        var bytes = [CChar](repeating: 0, count: size)
        clGetProgramBuildInfo(program, device, cl_program_build_info(CL_PROGRAM_BUILD_LOG), size, &bytes, nil)
        return OpenCLRuntime.decode(bytes)
    }

    /// The options the program was built with, as the OpenCL implementation reports them.
    var programBuildOptions: String {
        var size = 0
        let option = cl_program_build_info(CL_PROGRAM_BUILD_OPTIONS)
        guard clGetProgramBuildInfo(program, info.device, option, 0, nil, &size) == CL_SUCCESS, size > 0 else { return "" }
        var bytes = [CChar](repeating: 0, count: size)
        guard clGetProgramBuildInfo(program, info.device, option, size, &bytes, nil) == CL_SUCCESS else { return "" }
        return OpenCLRuntime.decode(bytes)
    }

    func makeKernel(_ name: String) throws -> cl_kernel {
        var status: cl_int = 0
        guard let kernel = clCreateKernel(program, name, &status) else {
            throw OpenCLError(call: "clCreateKernel(\(name))", status: status)
        }
        return kernel
    }
}

/// An argument to a kernel launch. Integers are `int` in OpenCL C: pass Int32 (a Swift Int fails with -51).
enum KernelArgument {
    case buffer(Tensor)
    case int(Int32)
    case uint(UInt32)
    case ulong(UInt64)
    case float(Float)
    case local(bytes: Int)
}
