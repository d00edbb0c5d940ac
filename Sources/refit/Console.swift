import Foundation
import Refit

/// Where commands print: results to stdout; progress and notes to stderr, as a live bar on a terminal and
/// one line per event otherwise (logs, CI). `--quiet` keeps only errors and results.
final class Console: TrainingObserver {
    let quiet: Bool
    let isTerminal = isatty(STDERR_FILENO) != 0
    private var barStarted: Date?
    private var barShown = false

    init(quiet: Bool) { self.quiet = quiet }

    func note(_ line: String) {
        guard !quiet else { return }
        clearBar()
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }

    func result(_ text: String) {
        clearBar()
        print(text)
    }

    func log(_ line: String) { note(line) }

    func batchFinished(epoch: Int, batch: Int, of batches: Int) {
        guard !quiet, isTerminal else { return }
        if batch == 1 || barStarted == nil { barStarted = Date() }
        let elapsed = Date().timeIntervalSince(barStarted ?? Date())
        let eta = batch > 0 ? elapsed / Double(batch) * Double(batches - batch) : 0
        let width = 30
        let filled = batches > 0 ? width * batch / batches : width
        let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
        let text = String(format: "\repoch %d %@ %d/%d  %.1f s, ETA %.1f s ", epoch, bar, batch, batches, elapsed, eta)
        FileHandle.standardError.write(Data(text.utf8))
        barShown = true
        if batch == batches { barStarted = nil }
    }

    private func clearBar() {
        guard barShown else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
        barShown = false
    }
}

/// A metric table: rows of (label, values) under column headers.
func formatTable(_ header: [String], _ rows: [[String]]) -> String {
    let widths = header.indices.map { c in max(header[c].count, rows.map { $0[c].count }.max() ?? 0) }
    func line(_ cells: [String]) -> String {
        cells.enumerated().map { c, cell in c == 0 ? cell.padding(toLength: widths[c], withPad: " ", startingAt: 0)
            : String(repeating: " ", count: widths[c] - cell.count) + cell }.joined(separator: "  ")
    }
    return ([line(header), widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")] + rows.map(line)).joined(separator: "\n")
}
