import ArgumentParser
import Foundation
import RefitCompute

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Time compute kernels on a device.",
        subcommands: [Linear.self])

    struct Linear: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "linear",
            abstract: "Time the linear layer (forward, dX, dW) at DiffRec's ML-1M shapes and 1024³, in GFLOP/s.",
            discussion: "Prints GFLOP/s per shape and product for the chosen device, beside the CPU reference measured in the "
                + "same run (on a few batch rows: it is a plain triple loop) and OpenBLAS when libopenblas is installed.")

        @OptionGroup var deviceOptions: DeviceOptions

        @Option(help: "Timed runs per product, after the warm-up runs.")
        var repeats: Int = 20

        @Option(help: "Batch rows the CPU reference computes (0 skips it).")
        var referenceRows: Int = 8

        @Flag(help: "Do not compare with OpenBLAS.")
        var noBlas = false

        @Flag(help: "Time only 1024³, not DiffRec's shapes.")
        var cubeOnly = false

        func validate() throws {
            guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1") }
            guard referenceRows >= 0 else { throw ValidationError("--reference-rows must not be negative") }
        }

        func run() throws {
            let backend = try deviceOptions.makeBackend()
            FileHandle.standardError.write(Data("device: \(backend.deviceDescription)\n".utf8))
            let benchmark = LinearBenchmark(
                shapes: cubeOnly ? [LinearBenchmark.cube] : LinearBenchmark.diffRecML1M + [LinearBenchmark.cube],
                repeats: repeats, referenceRows: referenceRows, compareWithBLAS: !noBlas)
            let report = try benchmark.run(on: backend) { line in
                FileHandle.standardError.write(Data((line + "\n").utf8))
            }
            print(report.table)
        }
    }
}
