import ArgumentParser
import Foundation
import Refit
import RefitCompute

struct TuneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tune",
        abstract: "Find the fastest kernel parameters for an OpenCL device and write them to the tuning table Refit loads at start-up.",
        discussion: """
            Tries candidate values of the linear kernels' tile shapes and launch plan, and of the reduction and top-K \
            work-groups, one stage at a time: each candidate is checked against the CPU reference on the cases \
            `refit check` runs (a candidate that fails is reported and never chosen), then timed on DiffRec's ML-1M \
            layers or on the reductions at 400 × 2810. The winner is written as this device's row (vendor, name and \
            driver version) into --out, replacing any earlier row for it; every later command on this device runs \
            with it (`refit devices` and `refit bench linear` say which row a device took). About 2 minutes on a \
            2-core CPU through PoCL, 40 s with --quick.

            Default --out: the user's table, \(KernelTuningTable.userPath) (REFIT_TUNING names another). \
            Refit also ships a table (Kernels/tuning.json in the source tree) with the rows measured while building it.
            """)

    @OptionGroup(title: "Device") var deviceOptions: DeviceOptions
    @Option(help: ArgumentHelp("The tuning table to write (merged: other devices' rows are kept).", valueName: "file"))
    var out: String?
    @Flag(help: "Try fewer candidates and time fewer repeats.")
    var quick = false
    @Flag(help: "Print the search as JSON (every trial, the choice, the figures) instead of the table.")
    var json = false

    func run() throws {
        let backend = try deviceOptions.makeBackend()
        guard let openCL = backend as? OpenCLBackend else {
            throw ValidationError("refit tune tunes an OpenCL device; --device \(deviceOptions.device) is the CPU reference, which has no kernels (see `refit devices`)")
        }
        let device = openCL.deviceInfo
        let path = out ?? KernelTuningTable.userPath
        let table = try KernelTuningTable.read(path)  // a malformed table is refused before the search, not after
        let note = { (line: String) in FileHandle.standardError.write(Data((line + "\n").utf8)) }
        note("tuning \(openCL.deviceDescription), starting from \(openCL.parametersSource)")
        let report = try KernelTuner(quick: quick).run(device: device, start: (openCL.parameters, openCL.parametersSource), progress: note)
        let date = ISO8601DateFormatter.string(from: Date(), timeZone: .gmt, formatOptions: [.withFullDate])
        let row = KernelTuner.row(for: device, report: report, refit: "\(RefitVersion.string) (commit \(BuildInfo.commit))", date: date)
        try table.replacing(row).write(to: path)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            print(Self.table(report))
        }
        note("wrote the row for \(device.name) (driver \(device.driverVersion)) to \(path)")
    }

    static func table(_ report: KernelTuner.Report) -> String {
        var lines = ["Kernel tuning on \(report.device)", "started from: \(report.startedFrom)", ""]
        let header = ["stage", "candidate", "check", "ms", "best so far, ms", ""]
        let rows = report.trials.map { trial in
            [trial.stage, trial.values.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "),
             trial.passed ? "pass" : "FAIL", trial.seconds.map { String(format: "%.2f", $0 * 1000) } ?? "–",
             trial.versusBest.map { String(format: "%.2f", $0 * 1000) } ?? "", trial.chosen ? "← chosen" : ""]
        }
        let widths = header.indices.map { c in max(header[c].count, rows.map { $0[c].count }.max() ?? 0) }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { c, cell in
                let pad = String(repeating: " ", count: widths[c] - cell.count)
                return c == 3 || c == 4 ? pad + cell : cell + pad
            }.joined(separator: "  ").trimmingCharacters(in: .whitespaces)
        }
        lines.append(line(header))
        lines += rows.map(line)
        lines.append("")
        for trial in report.trials where !trial.passed { lines.append("FAIL \(trial.stage): \(trial.failure ?? "")") }
        if report.keptDefaults { lines.append("The search's choice did not beat the defaults by 3% head to head: the row keeps the defaults.") }
        lines.append("chosen: " + report.chosen.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))
        lines.append(String(format: "linear layers at DiffRec's ML-1M shapes: %.1f GFLOP/s with the defaults, %.1f tuned (×%.2f); search took %.0f s",
                            report.defaultGFLOPS, report.tunedGFLOPS, report.tunedGFLOPS / report.defaultGFLOPS, report.seconds))
        return lines.joined(separator: "\n")
    }
}
