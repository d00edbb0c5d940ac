import ArgumentParser
import Foundation
import Refit
import RefitCompute

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Time compute kernels on a device.",
        subcommands: [Linear.self, DiffRec.self])

    struct Linear: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "linear",
            abstract: "Time the linear layer (forward, dX, dW) at DiffRec's ML-1M shapes and 1024³, in GFLOP/s.",
            discussion: "Prints GFLOP/s per shape and product for the chosen device, beside the CPU reference measured in the "
                + "same run (on a few batch rows: it is a plain triple loop) and OpenBLAS when libopenblas is installed.")

        @OptionGroup var deviceOptions: DeviceOptions

        @Option(parsing: .unconditional, help: "Timed runs per product, after the warm-up runs.")
        var repeats: Int = 20

        @Option(parsing: .unconditional, help: "Batch rows the CPU reference computes (0 skips it).")
        var referenceRows: Int = 8

        @Flag(inversion: .prefixedNo, help: "Compare with OpenBLAS's sgemm, measured in the same run.")
        var blas = true

        @Flag(inversion: .prefixedNo, help: "Time only 1024³, not DiffRec's shapes.")
        var cubeOnly = false

        @Flag(inversion: .prefixedNo, help: "Print the result as JSON.")
        var json = false

        func validate() throws {
            guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1") }
            guard referenceRows >= 0 else { throw ValidationError("--reference-rows must not be negative") }
        }

        func run() throws {
            let backend = try deviceOptions.makeBackend()
            FileHandle.standardError.write(Data("device: \(backend.deviceDescription)\n".utf8))
            let benchmark = LinearBenchmark(
                shapes: cubeOnly ? [LinearBenchmark.cube] : LinearBenchmark.diffRecML1M + [LinearBenchmark.cube],
                repeats: repeats, referenceRows: referenceRows, compareWithBLAS: blas)
            let report = try benchmark.run(on: backend) { line in
                FileHandle.standardError.write(Data((line + "\n").utf8))
            }
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys]
                print(String(decoding: try encoder.encode(report.summary), as: UTF8.self))
            } else {
                print(report.table)
            }
        }
    }

    struct DiffRec: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "diffrec",
            abstract: "Time one DiffRec training epoch and one full evaluation (all users, T reverse steps) on a dataset.",
            discussion: "For scale, DiffRec's PyTorch code (MKL, AVX-512) on a 2-core CPU of this project's machine kind takes "
                + "about 1–1.5 s per ML-1M epoch and about 10 s per split's evaluation (docs/finetuning-experiments.md); those are not measured here.")

        @OptionGroup(title: "Data") var data: DataOptions
        @Option(help: ArgumentHelp("DiffRec preset (default: demo for builtin data, else ml-1m-clean).", valueName: "name"))
        var preset: String?
        @OptionGroup(title: "Training") var training: TrainingOptions
        @OptionGroup(title: "Diffusion") var diffusion: DiffusionOptions
        @OptionGroup(title: "DiffRec") var model: DiffRecOptions
        @OptionGroup(title: "Device") var deviceOptions: DeviceOptions
        // Not --split: that is DataOptions' TRAIN,VALID,TEST fractions.
        @Option(name: .customLong("eval-split"), help: "The split the timed evaluation scores: valid or test.")
        var split: EvaluationSplit = .test
        @Option(parsing: .unconditional, help: "Timed repetitions (the best is reported), after one warm-up epoch and evaluation.")
        var repeats: Int = 1
        @Flag(inversion: .prefixedNo, help: "Print the result as JSON.")
        var json = false
        @Flag(inversion: .prefixedNo, help: "Wait for every kernel and print where each timed phase's time went, kernel by kernel (OpenCL only; slows the run).")
        var profile = false

        func run() throws {
            guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1") }
            let backend = try deviceOptions.makeBackend()
            let arguments = try data.loaderArguments(seed: 2024)
            let dataset = try DatasetLoader.load(path: arguments.path, format: arguments.format, options: arguments.options)
            var settings = try model.settings(preset: preset, defaultPreset: arguments.path.hasPrefix("builtin") ? .demo : .ml1mClean,
                                              training: training, diffusion: diffusion)
            settings.seed = training.seed
            FileHandle.standardError.write(Data("device: \(backend.deviceDescription)\n".utf8))
            let profiler = profile ? KernelProfile() : nil
            if profile {
                guard let openCL = backend as? OpenCLBackend else { throw ValidationError("--profile needs an OpenCL device") }
                openCL.profile = profiler
            }
            var current: String?
            let result = try PretrainBenchmark.run(backend: backend, dataset: dataset, settings: settings, split: split,
                                                   repetitions: repeats) { next in
                if let profiler {
                    if let current { FileHandle.standardError.write(Data("\n\(current), kernel by kernel:\n\(profiler.table)\n".utf8)) }
                    profiler.reset()
                }
                current = next
            }
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys]
                print(String(decoding: try encoder.encode(result), as: UTF8.self))
            } else {
                print(result.summary)
            }
        }
    }
}
