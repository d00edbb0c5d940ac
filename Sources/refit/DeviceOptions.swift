import ArgumentParser
import Foundation
import Refit
import RefitCompute

/// `--device`, shared by every command that computes.
struct DeviceOptions: ParsableArguments {
    @Option(help: ArgumentHelp("auto (first GPU, else an OpenCL CPU device, else the CPU reference), cpu (the plain-Swift reference), opencl (the first OpenCL device), or opencl:P:D from `refit devices`.", valueName: "device"))
    var device: String = "auto"

    func makeBackend() throws -> any Backend {
        try DeviceSelection.makeBackend(try DeviceChoice(parsing: device))
    }
}

/// The run folder a command reads: `--from` in every command. `--checkpoint` (eval and recommend before 0.2) is
/// kept, hidden, for a release, so that scripts written for it go on working.
struct RunInputOptions: ParsableArguments {
    @Option(help: ArgumentHelp("The run folder to read (runs/NAME).", valueName: "dir"))
    var from: String?
    @Option(name: .customLong("checkpoint"), help: .hidden)
    var checkpoint: String?

    var path: String {
        get throws {
            guard let path = from ?? checkpoint else { throw ValidationError("Missing expected argument '--from <dir>': the run folder to read") }
            return path
        }
    }
}

/// The run folder a training command writes and what it prints: shared by `pretrain`, `finetune` and `ablate`.
struct RunOutputOptions: ParsableArguments {
    @Option(help: ArgumentHelp("The run folder to write (default: a new folder runs/MODEL-DATA-TIME, named when the run starts).", valueName: "dir"))
    var out: String?
    @Flag(inversion: .prefixedNo, help: "Replace an existing run folder (the old one is moved aside, not deleted).")
    var force = false
    @Flag(inversion: .prefixedNo, help: "Continue the run in --out from its last checkpoint.")
    var resume = false
    @Flag(inversion: .prefixedNo, help: "Print only the final results.")
    var quiet = false
    @Flag(inversion: .prefixedNo, help: "Print the final results as one JSON object.")
    var json = false
    @OptionGroup var config: ConfigOption

    /// `--out`, or a new folder under runs/ named for the run and the time: nothing collides and nothing is replaced by
    /// accident. A resumed run needs its folder named.
    func folder(resuming: Bool, name: String) throws -> String {
        if let out { return out }
        guard !resuming else { throw ValidationError("--resume needs --out: the run folder to continue") }
        return Self.newFolder(name)
    }

    static func newFolder(_ name: String, under parent: String = "runs", now: Date = Date()) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd-HHmmss"
        return unused("\(parent)/\(name)-\(formatter.string(from: now))")
    }

    /// `base`, or its first numbered sibling `base-2`, `base-3`, … that does not exist yet.
    static func unused(_ base: String) -> String {
        var folder = base, n = 2
        while FileManager.default.fileExists(atPath: folder) { folder = "\(base)-\(n)"; n += 1 }
        return folder
    }
}

/// `--config FILE`, shown in the help of the commands that take many flags. `ConfigFile` replaces it with the file's
/// options before parsing, so the value here is never read; it is declared for the help and the usage line.
struct ConfigOption: ParsableArguments {
    @Option(help: ArgumentHelp("Read options from a YAML or JSON file whose keys are flag names (lr: 0.001, force: true); the command line wins.", valueName: "file"))
    var config: String?
}
