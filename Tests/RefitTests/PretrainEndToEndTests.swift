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

    @Test func demoPresetBeatsPopularity() throws {
        let backend = try DeviceSelection.makeBackend(.auto)
        let onDevice = DeviceSelection.automaticDevice != nil
        let dataset = try DatasetLoader.load(path: "builtin:demo")
        var settings = DiffRecPreset.demo.settings
        // A few epochs: enough to beat popularity. The CPU reference (no OpenCL device) gets fewer and a smaller
        // model, to stay within seconds in a debug build.
        settings.epochs = onDevice ? 5 : 2
        settings.evalEvery = settings.epochs
        if !onDevice {
            print("note: no OpenCL device; the end-to-end test runs a reduced demo on the CPU reference")
            settings.dims = [32]
            settings.steps = 5
        }
        try PretrainTestSupport.withTemporaryFolder { folder in
            let run = RunFolder(folder + "/demo")
            try run.create(force: false)
            let model = try DiffRecModel(backend: backend, settings: settings, items: dataset.itemCount)
            let evaluator = try TopKEvaluator(backend: backend, dataset: dataset, batchSize: settings.batchSize)
            let trainer = try DiffRecTrainer(model: model, dataset: dataset, evaluator: evaluator, run: run)
            let started = Date()
            let state = try trainer.train()
            let seconds = Date().timeIntervalSince(started)
            let recall = try #require(state.bestValid["recall@20"])
            let popularity = Self.popularityRecall20(dataset)
            print(String(format: "demo preset, %d epochs on %@: valid Recall@20 %.4f (popularity %.4f), test Recall@20 %.4f, %.1f s",
                         state.epoch, backend.deviceDescription, recall, popularity, state.bestTest["recall@20"] ?? .nan, seconds))
            #expect(state.epoch == settings.epochs && state.bestEpoch == settings.epochs)
            #expect(recall > popularity, "DiffRec valid Recall@20 \(recall) does not beat popularity \(popularity)")
            #expect((state.bestTest["recall@20"] ?? 0) > 0)
        }
    }
}
