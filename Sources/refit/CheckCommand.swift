import ArgumentParser
import Foundation
import RefitCompute
import Refit

struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Run every kernel on the device and on the CPU reference from the same inputs and compare them; exit 1 on any difference beyond tolerance.",
        discussion: "The cases are the ones the test suite compares (KernelCases in RefitCompute): every Backend operation on awkward shapes, each with its tolerance. Prints one row per output, the failures' details, then a summary line.")

    @OptionGroup(title: "Device") var deviceOptions: DeviceOptions
    @Flag(help: "Check one shape per operation (seconds) instead of every shape.")
    var quick = false
    @Flag(help: "Print one JSON object {device, passed, failed, seconds, results} instead of the table.")
    var json = false

    /// One list of checks, run in order, each step giving rows: the kernel cases, then the whole-model checks.
    struct CheckGroup {
        let steps: [(label: String, run: (_ device: any Backend, _ reference: any Backend) throws -> [CheckResult])]
    }

    func groups() -> [CheckGroup] {
        [CheckGroup(steps: (quick ? KernelCases.quick : KernelCases.all).map { ($0.id, $0.run) }),
         CheckGroup(steps: [("whole models", { try ModelChecks.run(device: $0, reference: $1, quick: quick) })])]
    }

    /// What `--json` prints.
    struct Report: Encodable {
        let device: String
        let passed: Int
        let failed: Int
        let seconds: Double
        let results: [CheckResult]
    }

    func run() throws {
        let device = try deviceOptions.makeBackend()
        let reference = CPUBackend()
        let note = { (line: String) in FileHandle.standardError.write(Data((line + "\n").utf8)) }
        // On a terminal the progress line rewrites itself; in a log it is one line per step.
        let progress = isatty(STDERR_FILENO) != 0 ? { FileHandle.standardError.write(Data("\r\u{1B}[K\($0)".utf8)) } : note
        if json { note("device: \(device.deviceDescription)") } else { print("device: \(device.deviceDescription)") }
        if device is CPUBackend { note("note: checking the CPU reference against itself: every case runs, but nothing independent is compared") }
        let report = try Self.run(groups(), device: device, reference: reference, progress: progress)
        if isatty(STDERR_FILENO) != 0 { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            // An output that is NaN on one side only has an infinite error.
            encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            print(Self.table(report.results))
            let failures = report.results.filter { !$0.passed }
            if !failures.isEmpty {
                print("\nFailures:")
                for f in failures { print("  \(f.group) \(f.name) \(f.shape): \(f.detail ?? "beyond tolerance") (tolerance \(f.tolerance))") }
            }
            print(String(format: "\n%d of %d passed on %@ in %.2f s", report.passed, report.results.count, device.deviceDescription, report.seconds))
        }
        if report.failed > 0 { throw ExitCode.failure }
    }

    /// Runs every step; one that throws (an OpenCL error, say) is a failed row, and the rest still run.
    static func run(_ groups: [CheckGroup], device: any Backend, reference: any Backend, progress: (String) -> Void) throws -> Report {
        let start = Date()
        let steps = groups.flatMap(\.steps)
        var results: [CheckResult] = []
        for (index, step) in steps.enumerated() {
            progress("[\(index + 1)/\(steps.count)] \(step.label)")
            do {
                results += try step.run(device, reference)
            } catch {
                results.append(CheckResult(group: "error", name: step.label, shape: "", maxAbsoluteError: .infinity, maxRelativeError: .infinity,
                                           tolerance: .exact, passed: false, detail: "\(error)"))
            }
        }
        let passed = results.filter(\.passed).count
        return Report(device: device.deviceDescription, passed: passed, failed: results.count - passed,
                      seconds: Date().timeIntervalSince(start), results: results)
    }

    static func table(_ results: [CheckResult]) -> String {
        func number(_ x: Double) -> String { x == 0 ? "0" : x.isInfinite ? "inf" : String(format: "%.1e", x) }
        var header = ["group", "op", "shape", "max abs error", "max rel error", "tolerance", "result", "device ms"]
        var rows = results.map { r in
            [r.group, r.name, r.shape, number(r.maxAbsoluteError), number(r.maxRelativeError), r.tolerance.description,
             r.passed ? "PASS" : "FAIL", r.deviceMilliseconds.map { String(format: "%.3f", $0) } ?? "-"]
        }
        // formatTable right-aligns all but the first column; words read better left-aligned, so they are padded here.
        for column in [1, 2] {
            let width = ([header] + rows).map { $0[column].count }.max()!
            header[column] = header[column].padding(toLength: width, withPad: " ", startingAt: 0)
            for i in rows.indices { rows[i][column] = rows[i][column].padding(toLength: width, withPad: " ", startingAt: 0) }
        }
        return formatTable(header, rows)
    }
}
