import ArgumentParser
import RefitCompute

struct DevicesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "devices",
        abstract: "List every OpenCL device and the CPU reference, and mark the one --device auto takes.")

    func run() throws {
        let devices = OpenCLRuntime.devices
        let automatic = DeviceSelection.automaticDevice
        if case .failure(let error) = OpenCLRuntime.discovery { print("OpenCL discovery failed: \(error)") }
        if devices.isEmpty {
            print("No OpenCL device found (install an ICD such as pocl-opencl-icd, or a GPU driver's OpenCL).")
        }
        let tables = Result { try KernelTuningTable.installed() }
        if case .failure(let error) = tables { print("Tuning table: \(error)") }
        for d in devices {
            let mark = automatic.map { $0.selector == d.selector } == true ? "*" : " "
            print("\(mark) \(d.selector)  \(d.name)")
            print("    platform       \(d.platformName)")
            print("    type           \(d.typeName), \(d.computeUnits) compute units")
            print("    global memory  \(d.globalMemoryBytes / (1 << 20)) MiB, local memory \(d.localMemoryBytes / 1024) KiB")
            print("    work-group     at most \(d.maxWorkGroupSize) work-items")
            print("    OpenCL C       \(d.openCLCVersion), driver \(d.driverVersion)")
            print("    vendor         \(d.vendor)")
            if let chosen = try? tables.get().parameters(for: d) {
                print("    kernels        \(chosen.source)")
                print("                   \(KernelParameters.describe(chosen.parameters, against: .defaults(for: d)))")
            }
        }
        print("\(automatic == nil ? "*" : " ") cpu  CPU reference (plain Swift: slow, for tests and as a last resort)")
        print("\n* = what --device auto takes")
    }
}
