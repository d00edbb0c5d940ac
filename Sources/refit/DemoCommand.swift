import ArgumentParser
import Foundation
import Refit
import RefitCompute

struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Pre-train DiffRec on the built-in dataset, fine-tune it with ReFiT, and print a before/after table.",
        discussion: "Needs no download: the built-in dataset is synthetic and generated in code. About 40 s on 2 CPU cores through PoCL.")

    @OptionGroup var device: DeviceOptions
    @Option(help: ArgumentHelp("Where the two runs go; an existing folder gets a numbered sibling instead.", valueName: "dir"))
    var out: String = "runs/demo"
    @Flag(inversion: .prefixedNo, help: "Print only the final table.")
    var quiet = false

    func run() throws {
        let console = Console(quiet: quiet)
        let folder = RunOutputOptions.unused(out)
        let backend = try device.makeBackend()
        console.note("device: \(backend.deviceDescription)")
        console.note("1/2 pre-training DiffRec on builtin:demo → \(folder)/pretrain")
        let source = DataSource(path: "builtin:demo")
        let dataset = try source.load()
        console.note(dataset.describe())
        let settings = DiffRecPreset.demo.settings
        let pretrainRun = RunFolder("\(folder)/pretrain")
        let lock = try pretrainRun.createNew(replacing: false).lock
        defer { lock.release() }
        try pretrainRun.writeJSON(RunConfiguration(kind: .pretrain, device: backend.deviceDescription, data: source, dataset: dataset, diffrec: settings),
                                  to: "config.json")
        let model = try DiffRecModel(backend: backend, settings: settings, items: dataset.itemCount)
        let evaluator = try TopKEvaluator(backend: backend, dataset: dataset, batchSize: settings.batchSize)
        let started = Date()
        try DiffRecTrainer(model: model, dataset: dataset, evaluator: evaluator, run: pretrainRun, observer: console).train()
        try ReportWriter.write(run: pretrainRun)
        console.note(String(format: "pre-training took %.0f s", Date().timeIntervalSince(started)))
        console.note("2/2 fine-tuning with ReFiT → \(folder)/refit")
        let refitRun = RunFolder("\(folder)/refit")
        let outcome = try FinetuneSession.run(pretrained: pretrainRun, out: refitRun, settings: FinetunePreset.demo.settings,
                                              backend: backend, observer: console)
        try ReportWriter.write(run: refitRun)
        console.result(outcome.table(run: refitRun.path))
        console.result("reports: \(pretrainRun.file("report.html").path) and \(refitRun.file("report.html").path)")
        console.result(String(format: "total %.0f s", Date().timeIntervalSince(started)))
    }
}
