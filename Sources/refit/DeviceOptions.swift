import ArgumentParser
import RefitCompute

/// `--device`, shared by every command that computes.
struct DeviceOptions: ParsableArguments {
    @Option(help: ArgumentHelp("auto (first GPU, else an OpenCL CPU device, else the CPU reference), cpu (the plain-Swift reference), opencl (the first OpenCL device), or opencl:P:D from `refit devices` (default: auto).", valueName: "device"))
    var device: String = "auto"

    func makeBackend() throws -> any Backend {
        try DeviceSelection.makeBackend(try DeviceChoice(parsing: device))
    }
}
