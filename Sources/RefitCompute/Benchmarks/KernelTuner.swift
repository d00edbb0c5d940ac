import Foundation

/// Finds the fastest kernel parameters for one OpenCL device (`refit tune`), CLBlast's way: it tries candidate values,
/// checks each against the CPU reference on the same cases `refit check` runs, times the ones that pass, and keeps the
/// fastest.
///
/// The search is coordinate descent over stages, each stage one parameter or one group that only makes sense together
/// (a register tile's rows and vectors): every candidate of a stage is tried with the best values found so far for
/// the others. Compile-time parameters need a fresh program; host-side ones are tried on the same backend. The linear
/// stages are timed on DiffRec's ML-1M layers (`LinearBenchmark.diffRecML1M`, all three products), the work-group
/// stages on the row reductions and top-K at ML-1M's 400 × 2810. Each candidate is timed alternately with the best
/// so far and replaces it only when faster by more than `margin`, so that noise does not move the choice; at the end
/// the defaults and the choice are timed again, alternately, for the figures the table keeps, and a choice that does
/// not beat the defaults there leaves the defaults in the row.
public struct KernelTuner: Sendable {
    public var quick: Bool
    /// Relative speed-up a candidate needs over the best so far.
    public var margin: Double = 0.03

    public init(quick: Bool) { self.quick = quick }

    /// One candidate tried: the stage's parameters, whether it matched the reference, and its time.
    public struct Trial: Sendable, Codable {
        public var stage: String
        public var values: [String: Int]
        public var passed: Bool
        public var failure: String?
        /// Seconds for the stage's workload (the sum of each operation's best run), when it passed.
        public var seconds: Double?
        /// The best so far, timed alternately with this candidate (nil for the stage's first row).
        public var versusBest: Double?
        public var chosen: Bool
    }

    public struct Report: Sendable, Codable {
        public var device: String
        /// Where the search started from (a table row or the defaults).
        public var startedFrom: String
        public var trials: [Trial]
        /// Every tuned parameter's chosen value.
        public var chosen: [String: Int]
        /// The search's choice did not beat the defaults in the final head-to-head, so `chosen` holds the defaults.
        public var keptDefaults: Bool
        public var defaultGFLOPS: Double
        public var tunedGFLOPS: Double
        public var seconds: Double
    }

    struct Stage {
        let name: String
        let workload: Workload
        let candidates: [[String: Int]]
    }

    enum Workload { case linear, groups }

    /// The stages for a device whose linear products run in `family`.
    func stages(for device: OpenCLDeviceInfo, family: LinearTuning.Family) -> [Stage] {
        var stages: [Stage] = []
        switch family {
        case .cpu:
            // Rows × vectors of the register tile: MR·NV accumulators, NV panel loads and a broadcast within 32
            // AVX-512 registers (fewer spill elsewhere, and the check still guards correctness).
            let tiles = quick ? [(12, 2), (8, 2), (14, 2)] : [(12, 2), (8, 2), (14, 2), (6, 4), (16, 1), (24, 1)]
            stages.append(Stage(name: "register tile", workload: .linear,
                                candidates: tiles.map { ["LIN_CPU_MR": $0.0, "LIN_CPU_NV": $0.1] }))
            stages.append(Stage(name: "inner block", workload: .linear,
                                candidates: (quick ? [128, 256, 512] : [128, 192, 256, 384, 512]).map { ["LIN_CPU_KC": $0] }))
            stages.append(Stage(name: "items per core", workload: .linear,
                                candidates: (quick ? [2, 4, 8] : [1, 2, 4, 8, 16]).map { ["LIN_CPU_ITEMS": $0] }))
            stages.append(Stage(name: "transpose A first", workload: .linear,
                                candidates: (quick ? [0, 4, 1 << 20] : [0, 1, 4, 16, 1 << 20]).map { ["LIN_CPU_TRANSPOSE": $0] }))
            stages.append(Stage(name: "tall dW blocks", workload: .linear,
                                candidates: (quick ? [20, 40, 80] : [10, 20, 40, 80, 4096]).map { ["LIN_CPU_TALL_TILES": $0] }))
        case .gpu:
            var tiles: [[String: Int]] = []
            for ts in [32, 64, 128] {
                for wpt in [2, 4, 8] where ts % wpt == 0 {
                    for tsk in [8, 16, 32] {
                        var linear = LinearParameters()
                        (linear.gpuTile, linear.gpuWorkPerItem, linear.gpuStageDepth) = (ts, wpt, tsk)
                        let items = linear.gpuGroup * linear.gpuGroup
                        guard items >= 32, items <= device.maxWorkGroupSize, linear.gpuLocalBytes <= device.localMemoryBytes else { continue }
                        if quick && tsk != 16 { continue }
                        tiles.append(["LIN_GPU_TS": ts, "LIN_GPU_WPT": wpt, "LIN_GPU_TSK": tsk])
                    }
                }
            }
            stages.append(Stage(name: "GPU tile", workload: .linear, candidates: tiles))
        }
        let rowGroups = device.isGPU ? [64, 128, 256, 512] : [1, 4, 16]
        stages.append(Stage(name: "row reductions", workload: .groups, candidates: rowGroups.map { ["ROW_GROUP": $0] }))
        let topKGroups = device.isGPU ? [32, 64, 128, 256] : [1, 8]
        stages.append(Stage(name: "top-K", workload: .groups, candidates: topKGroups.map { ["TOPK_GROUP": $0] }))
        return stages
    }

    /// Tunes `device` from `start` (what the installed table gives it). `progress` hears one line per candidate.
    public func run(device: OpenCLDeviceInfo, start: (parameters: KernelParameters, source: String),
                    progress: (String) -> Void = { _ in }) throws -> Report {
        let began = DispatchTime.now().uptimeNanoseconds
        var best = start.parameters
        var backend = try OpenCLBackend(device: device, parameters: best, source: "refit tune")
        let family = LinearTuning(device: device, parameters: best.linear).family
        // The reference's outputs are computed once: they do not depend on the device's parameters.
        let reference = CPUBackend()
        var expected: [String: [KernelCase.Expected]] = [:]
        for kernelCase in KernelCases.linear + Self.groupCases { expected[kernelCase.id] = try kernelCase.expectedOutputs(on: reference) }
        var trials: [Trial] = []
        var chosen: [String: Int] = [:]
        for stage in stages(for: device, family: family) {
            var stageTrials: [Trial] = []
            // The best so far goes first, checked and timed as the stage's first row, whether or not it is a candidate.
            let current = stage.candidates[0].keys.reduce(into: [String: Int]()) { $0[$1] = best[$1] }
            let candidates = [current] + stage.candidates.filter { $0 != current }
            for values in candidates {
                let label = values.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
                let trialStart = DispatchTime.now().uptimeNanoseconds
                var trial = Trial(stage: stage.name, values: values, passed: false, chosen: values == current)
                backend.parameters = best  // undo a host-side candidate that was not kept
                do {
                    let candidate = try best.applying(values)
                    let trying = try Self.backend(for: candidate, reusing: backend, device: device)
                    if let failure = try Self.check(stage.workload, on: trying, expected: expected) {
                        trial.failure = failure
                        trial.chosen = false
                    } else if values == current {
                        trial.passed = true
                        trial.seconds = try time(stage.workload, on: trying)
                    } else {
                        // Candidate and best so far, alternately: the shared machine's noise drifts over seconds.
                        trial.passed = true
                        var mine: [Double] = [], theirs: [Double] = []
                        for _ in 0..<(quick ? 2 : 3) {
                            trying.parameters = candidate
                            mine.append(try time(stage.workload, on: trying))
                            backend.parameters = best
                            theirs.append(try time(stage.workload, on: backend))
                        }
                        trial.seconds = mine.min()!
                        trial.versusBest = theirs.min()!
                        if mine.min()! < theirs.min()! * (1 - margin) {
                            best = candidate
                            backend = trying
                            backend.parameters = best
                            for index in stageTrials.indices { stageTrials[index].chosen = false }
                            trial.chosen = true
                        }
                    }
                } catch {
                    trial.failure = "\(error)"
                    trial.chosen = false
                }
                stageTrials.append(trial)
                let timing = trial.seconds.map { seconds in
                    String(format: "%.2f ms", seconds * 1000) + (trial.versusBest.map { String(format: " vs %.2f ms", $0 * 1000) } ?? "")
                }
                let took = String(format: " (%.1f s)", Double(DispatchTime.now().uptimeNanoseconds - trialStart) / 1e9)
                progress("\(stage.name): \(label): " + (timing ?? "FAIL \(trial.failure ?? "")") + (trial.chosen ? ", best so far" : "") + took)
            }
            for key in stage.candidates[0].keys { chosen[key] = best[key] }
            trials += stageTrials
        }

        // The defaults and the choice, timed alternately in the same run.
        progress("timing the defaults against the choice")
        let defaults = try OpenCLBackend(device: device, parameters: .defaults(for: device), source: "defaults")
        var defaultSeconds: [Double] = [], tunedSeconds: [Double] = []
        for _ in 0..<(quick ? 3 : 5) {
            defaultSeconds.append(try time(.linear, on: defaults))
            tunedSeconds.append(try time(.linear, on: backend))
        }
        let operations = LinearBenchmark.diffRecML1M.reduce(0.0) { $0 + 3 * 2 * Double($1.batch * $1.inputs * $1.outputs) }
        // A choice that does not beat the defaults head to head, beyond the margin, is noise: the row keeps the defaults.
        let keptDefaults = tunedSeconds.min()! > defaultSeconds.min()! * (1 - margin)
        if keptDefaults {
            let base = KernelParameters.defaults(for: device)
            for key in chosen.keys { chosen[key] = base[key] }
        }
        return Report(device: backend.deviceDescription, startedFrom: start.source, trials: trials, chosen: chosen,
                      keptDefaults: keptDefaults, defaultGFLOPS: operations / defaultSeconds.min()! / 1e9,
                      tunedGFLOPS: operations / tunedSeconds.min()! / 1e9,
                      seconds: Double(DispatchTime.now().uptimeNanoseconds - began) / 1e9)
    }

    /// A backend for `parameters`: `current` itself when only host-side values differ, else a fresh program.
    static func backend(for parameters: KernelParameters, reusing current: OpenCLBackend, device: OpenCLDeviceInfo) throws -> OpenCLBackend {
        if parameters.defines == current.parameters.defines {
            current.parameters = parameters
            return current
        }
        return try OpenCLBackend(device: device, parameters: parameters, source: "refit tune")
    }

    /// Nil when every case the workload's kernels run matches the reference; else the first failure in words.
    static func check(_ workload: Workload, on backend: OpenCLBackend, expected: [String: [KernelCase.Expected]]) throws -> String? {
        for kernelCase in workload == .linear ? KernelCases.linear : groupCases {
            for result in try kernelCase.run(device: backend, expected: expected[kernelCase.id] ?? []) where !result.passed {
                return "\(result.name) \(result.shape): \(result.detail ?? "outside \(result.tolerance)")"
            }
        }
        return nil
    }

    /// The cases that run the kernels whose work-groups are tuned.
    static var groupCases: [KernelCase] { KernelCases.reductions + KernelCases.ranking }

    /// Seconds for a workload: the sum over its operations of the best of a few runs (on a shared machine the best is
    /// steadier than the median: noise only ever adds time).
    func time(_ workload: Workload, on backend: OpenCLBackend) throws -> Double {
        switch workload {
        case .linear:
            let benchmark = LinearBenchmark(shapes: LinearBenchmark.diffRecML1M, repeats: quick ? 5 : 10, warmUps: 1,
                                            referenceRows: 0, compareWithBLAS: false)
            return try benchmark.run(on: backend).measurements.reduce(0) { $0 + $1.bestSeconds }
        case .groups:
            let (rows, columns, k) = (400, 2810, 20)
            let x = try backend.makeTensor([rows, columns], .float32)
            backend.fillNormal(x, seed: 5, offset: 0)
            let y = try backend.makeTensor([rows, columns], .float32)
            let totals = try backend.makeTensor([rows], .float32)
            let indices = try backend.makeTensor([rows, k], .int32)
            let values = try backend.makeTensor([rows, k], .float32)
            let operations: [() -> Void] = [
                { backend.logSoftmaxRows(x, into: y) },
                { backend.sumRows(x, into: totals) },
                { backend.topK(x, k: k, mask: nil, indices: indices, values: values) },
            ]
            var total = 0.0
            for operation in operations {
                operation()
                try backend.synchronize()
                var seconds: [Double] = []
                for _ in 0..<(quick ? 5 : 10) { seconds.append(try LinearBenchmark.time { operation(); try backend.synchronize() }) }
                total += seconds.min()!
            }
            return total
        }
    }

    /// The table row for the choice.
    public static func row(for device: OpenCLDeviceInfo, report: Report, refit: String, date: String) -> KernelTuningTable.Row {
        let shapes = LinearBenchmark.diffRecML1M.map(\.description).joined(separator: ", ")
        return KernelTuningTable.Row(for: device, parameters: report.chosen, measured: .init(
            date: date, refit: refit, benchmark: "linear forward, dX and dW at \(shapes)",
            defaultGFLOPS: (report.defaultGFLOPS * 10).rounded() / 10,
            tunedGFLOPS: ((report.keptDefaults ? report.defaultGFLOPS : report.tunedGFLOPS) * 10).rounded() / 10))
    }
}
