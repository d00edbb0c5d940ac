import Foundation
import Testing
@testable import Refit
import RefitCompute

/// DiffRec on the built-in dataset with the `demo` preset, on the device `--device auto` takes.
@Suite struct PretrainEndToEndTests {
    /// Validation Recall@20 of ranking every user's unseen items by training popularity (ties: lower index),
    /// with DiffRec's averaging (users without validation items count as zero).
    static func popularityRecall20(_ dataset: InteractionDataset) -> Double {
        let popularity = dataset.train.columnCounts()
        let order = popularity.indices.sorted { popularity[$0] > popularity[$1] || (popularity[$0] == popularity[$1] && $0 < $1) }
        var total = 0.0
        for u in 0..<dataset.userCount {
            let truth = Set(dataset.valid.row(u))
            guard !truth.isEmpty else { continue }
            let top = order.lazy.filter { !dataset.train.contains(u, $0) }.prefix(20)
            total += Double(top.filter { truth.contains(Int32($0)) }.count) / Double(truth.count)
        }
        return total / Double(dataset.userCount)
    }

    /// The demo preset's model (dims [200], batch 200) for two epochs. To stay within seconds on a 2-core CPU
    /// through PoCL, the test raises the learning rate to 1e-2 and uses T = 5 (evaluation runs T forward passes per
    /// user); with the preset's own lr 1e-3, DiffRec needs about 5 epochs to pass popularity on this data.
    /// Without an OpenCL device the CPU reference runs a smaller model ([32]).
    @Test func demoPresetBeatsPopularity() throws {
        let backend = try DeviceSelection.makeBackend(.auto)
        let dataset = try DatasetLoader.load(path: "builtin:demo")
        var settings = DiffRecPreset.demo.settings
        settings.epochs = 2
        settings.learningRate = 1e-2
        settings.steps = 5
        if DeviceSelection.automaticDevice == nil {
            print("note: no OpenCL device; the end-to-end test runs a smaller model on the CPU reference")
            settings.dims = [32]
        }
        let model = try DiffRecModel(backend: backend, settings: settings, items: dataset.itemCount)
        let evaluator = try TopKEvaluator(backend: backend, dataset: dataset, batchSize: settings.batchSize)
        let unused = RunFolder(FileManager.default.temporaryDirectory.appendingPathComponent("refit-unused-\(UUID())").path)
        let trainer = try DiffRecTrainer(model: model, dataset: dataset, evaluator: evaluator, run: unused)
        let started = Date()
        var losses: [Double] = []
        for _ in 0..<settings.epochs { losses.append(try trainer.trainEpoch()) }
        let trained = Date()
        let valid = try trainer.evaluate(.valid)
        let popularity = Self.popularityRecall20(dataset)
        print(String(format: "demo preset (lr 1e-2, T 5), %d epochs on %@: valid Recall@20 %.4f (popularity %.4f); %.1f s training, %.1f s evaluation",
                     settings.epochs, backend.deviceDescription, valid.recall(at: 20), popularity,
                     trained.timeIntervalSince(started), Date().timeIntervalSince(trained)))
        #expect(losses.allSatisfy { $0.isFinite })
        #expect(valid.users == dataset.userCount)
        #expect(valid.recall(at: 20) > 1.3 * popularity, "DiffRec valid Recall@20 \(valid.recall(at: 20)) does not beat popularity \(popularity)")
    }
}
