import ArgumentParser
import RefitCompute

/// `--device`, shared by every command that computes.
struct DeviceOptions: ParsableArguments {
    @Option(help: ArgumentHelp("auto (first GPU, else an OpenCL CPU device, else the CPU reference), cpu (the plain-Swift reference), opencl (the first OpenCL device), or opencl:P:D from `refit devices`.", valueName: "device"))
    var device: String = "auto"

    func makeBackend() throws -> any Backend {
        try DeviceSelection.makeBackend(try DeviceChoice(parsing: device))
    }
}

/// What a training command does with its run folder and its output: shared by `pretrain` and `finetune`.
struct RunOptions: ParsableArguments {
    @Flag(help: "Replace an existing run folder.")
    var force = false
    @Flag(help: "Continue the run in --out from its last checkpoint.")
    var resume = false
    @Flag(help: "Print only the final results.")
    var quiet = false
    @Flag(help: "Print the final results as one JSON object.")
    var json = false
}
