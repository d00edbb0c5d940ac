import Foundation
import Testing
@testable import Refit
import RefitCompute

/// Run folders, safetensors files, loading a trained run back, and resuming.
@Suite struct CheckpointTests {
    /// The tiny dataset as a `user,item` CSV, so a run's `config.json` can load it again.
    static func writeTinyCSV(in folder: String) throws -> String {
        let dataset = PretrainTestSupport.tinyDataset()
        var text = "user,item\n"
        for u in 0..<dataset.userCount {
            for split in [dataset.train, dataset.valid, dataset.test] {
                for i in split.row(u) { text += "u\(u),i\(i)\n" }
            }
        }
        let path = folder + "/tiny.csv"
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// Dense training rows of every user.
    static func allTrainingRows(_ dataset: InteractionDataset, on backend: any Backend) throws -> Tensor {
        let x = try backend.makeTensor([dataset.userCount, dataset.itemCount], .float32)
        backend.densifyRows(try DeviceCSR(dataset.train, on: backend),
                            rows: try backend.tensor((0..<dataset.userCount).map { Int32($0) }, shape: [dataset.userCount]), into: x)
        return x
    }

    /// Trains a tiny run on the CPU reference in `folder/run`, as `refit pretrain` does. Returns the trained model.
    static func trainTinyRun(in folder: String, epochs: Int = 3) throws -> (run: RunFolder, model: DiffRecModel, dataset: InteractionDataset, state: PretrainState) {
        let source = DataSource(path: try writeTinyCSV(in: folder))
        let dataset = try source.load()
        var settings = PretrainTestSupport.tinySettings(epochs: epochs)
        settings.evalEvery = 1
        let backend = CPUBackend()
        let run = RunFolder(folder + "/run")
        try run.create(force: false)
        try run.writeJSON(RunConfiguration(kind: .pretrain, device: backend.deviceDescription, data: source, dataset: dataset,
                                           diffrec: settings), to: "config.json")
        let model = try DiffRecModel(backend: backend, settings: settings, items: dataset.itemCount)
        let evaluator = try TopKEvaluator(backend: backend, dataset: dataset, batchSize: settings.batchSize)
        let trainer = try DiffRecTrainer(model: model, dataset: dataset, evaluator: evaluator, run: run)
        let state = try trainer.train()
        return (run, model, dataset, state)
    }

    @Test func saveThenLoadGivesIdenticalPredictions() throws {
        try PretrainTestSupport.withTemporaryFolder { folder in
            let (run, model, dataset, state) = try Self.trainTinyRun(in: folder)
            let backend = CPUBackend()
            let expected = try model.backend.readFloats(try model.scores(try Self.allTrainingRows(dataset, on: model.backend)))

            let loaded = try TrainedRun(run, backend: backend, weights: "last.safetensors")
            #expect(loaded.dataset.fingerprint == dataset.fingerprint)
            #expect(loaded.configuration.diffrec == model.settings)
            let scores = try backend.readFloats(try loaded.model.scores(try Self.allTrainingRows(loaded.dataset, on: backend)))
            #expect(scores == expected, "predictions after save → load differ")

            // The load matters: a freshly initialised model (same seed) predicts something else.
            let fresh = try DiffRecModel(backend: backend, settings: model.settings, items: dataset.itemCount)
            #expect(try backend.readFloats(try fresh.scores(try Self.allTrainingRows(dataset, on: backend))) != expected)

            // best.safetensors reproduces the test metrics the run recorded at its best epoch.
            let best = try TrainedRun(run, backend: backend)
            let evaluator = try TopKEvaluator(backend: backend, dataset: best.dataset, batchSize: model.settings.batchSize)
            let metrics = try evaluator.evaluate(.test) { _, input in try best.model.scores(input) }
            #expect(state.bestEpoch >= 1 && !state.bestTest.isEmpty)
            for (key, value) in metrics.values {
                #expect(state.bestTest[key] == value, "\(key): recorded \(state.bestTest[key] ?? .nan), re-evaluated \(value)")
            }

            // The same checkpoint on the OpenCL device predicts the same, to float32 rounding.
            if let device = try PretrainTestSupport.openCLBackend("loading a checkpoint on OpenCL") {
                let onDevice = try TrainedRun(run, backend: device, weights: "last.safetensors")
                let deviceScores = try device.readFloats(try onDevice.model.scores(try Self.allTrainingRows(dataset, on: device)))
                expectAllClose(deviceScores, expected, absolute: 1e-4, relative: 1e-4, "OpenCL predictions of the loaded run")
            }

            // metrics.jsonl: one line per epoch and per validation; test only at the epochs that improved validation,
            // the last of them the best epoch, so that nothing but the chosen epoch's test is there to look at.
            let lines = try run.readMetrics()
            let epochs = lines.filter { $0["kind"] as? String == "epoch" }
            let evals = lines.filter { $0["kind"] as? String == "eval" }
            let valid = evals.filter { $0["split"] as? String == "valid" }, test = evals.filter { $0["split"] as? String == "test" }
            #expect(epochs.count == 3 && valid.count == 3 && (1...3).contains(test.count))
            #expect(test.last?["epoch"] as? Int == state.bestEpoch)
            var bestRecall = -1.0
            let improving = valid.compactMap { line -> Int? in
                let recall = line["recall@20"] as? Double ?? -1
                defer { bestRecall = max(bestRecall, recall) }
                return recall > bestRecall ? line["epoch"] as? Int : nil
            }
            #expect(test.map { $0["epoch"] as? Int } == improving.map { $0 }, "test scored at \(test.map { $0["epoch"] ?? "?" }), validation improved at \(improving)")
            for line in epochs {
                #expect(["epoch", "loss", "seconds", "users_per_second"].allSatisfy { line[$0] != nil }, "\(line)")
            }
            for line in evals {
                #expect(["valid", "test"].contains(line["split"] as? String ?? ""))
                for k in [10, 20, 50, 100] {
                    #expect(["precision", "recall", "ndcg", "mrr"].allSatisfy { line["\($0)@\(k)"] is Double }, "\(line)")
                }
            }
            let files = try FileManager.default.contentsOfDirectory(atPath: run.path)
            #expect(Set(files).isSuperset(of: ["config.json", "metrics.jsonl", "best.safetensors", "last.safetensors",
                                              "optimizer.safetensors", "state.json"]))
            #expect(!files.contains { $0.contains(".tmp") }, "temporary files left behind: \(files)")
        }
    }

    /// The file layout, parsed by hand: 8-byte little-endian header length, a JSON header (dtype, shape,
    /// data_offsets, __metadata__), the data; names as DiffRec's PyTorch state dict.
    @Test func safetensorsHeaderParses() throws {
        try PretrainTestSupport.withTemporaryFolder { folder in
            let (run, model, _, _) = try Self.trainTinyRun(in: folder, epochs: 1)
            let bytes = [UInt8](try Data(contentsOf: run.file("last.safetensors")))
            let headerLength = (0..<8).reduce(0) { $0 | Int(bytes[$1]) << (8 * $1) }
            #expect(headerLength % 8 == 0)
            let header = try #require(try JSONSerialization.jsonObject(with: Data(bytes[8..<(8 + headerLength)])) as? [String: Any])
            let metadata = try #require(header["__metadata__"] as? [String: String])
            #expect(metadata["format"] == "pt")
            let parameters = model.denoiser.parameters
            let stored = try PretrainTestSupport.named(parameters, parameters.values)
            #expect(Set(header.keys) == Set(parameters.entries.map(\.name) + ["__metadata__"]))
            #expect(header["in_layers.0.weight"] != nil && header["out_layers.0.weight"] != nil && header["emb_layer.bias"] != nil)
            var ranges: [(Int, Int)] = []
            for entry in parameters.entries {
                let info = try #require(header[entry.name] as? [String: Any])
                #expect(info["dtype"] as? String == "F32")
                #expect(info["shape"] as? [Int] == entry.shape)
                let offsets = try #require(info["data_offsets"] as? [Int])
                #expect(offsets.count == 2 && offsets[1] - offsets[0] == entry.count * 4)
                ranges.append((offsets[0], offsets[1]))
                let start = 8 + headerLength + offsets[0]
                let values = (0..<entry.count).map { i in
                    Float(bitPattern: (0..<4).reduce(UInt32(0)) { $0 | UInt32(bytes[start + 4 * i + $1]) << (8 * UInt32($1)) })
                }
                #expect(values == stored[entry.name], "\(entry.name): stored bytes differ from the model's values")
            }
            // Contiguous, from 0 to the end of the file.
            ranges.sort { $0.0 < $1.0 }
            #expect(ranges.first?.0 == 0)
            #expect(zip(ranges, ranges.dropFirst()).allSatisfy { $0.1 == $1.0 })
            #expect(8 + headerLength + (ranges.last?.1 ?? 0) == bytes.count)

            // Encode → decode round trip of awkward names and metadata.
            let tensors: [(name: String, shape: [Int], values: [Float])] = [("a \"quoted\"\\name", [2, 3], [1, -2, 3.5, .pi, 0, -0]),
                                                                             ("scalar-ish", [1], [42])]
            let decoded = try Safetensors.decode(Safetensors.encode(tensors, metadata: ["k": "v\n"]), path: "memory")
            #expect(decoded.metadata == ["k": "v\n"])
            #expect(decoded.tensors["a \"quoted\"\\name"]?.shape == [2, 3])
            #expect(decoded.tensors["a \"quoted\"\\name"]?.values == tensors[0].values)
            #expect(decoded.tensors["scalar-ish"]?.values == [42])
        }
    }

    @Test func malformedFilesGiveACheckpointErrorWithThePath() throws {
        try PretrainTestSupport.withTemporaryFolder { folder in
            let run = RunFolder(folder)
            func header(_ json: String, data: [UInt8] = []) -> [UInt8] {
                let h = Array(json.utf8)
                return (0..<8).map { UInt8((h.count >> (8 * $0)) & 0xFF) } + h + data
            }
            let cases: [(String, [UInt8], String)] = [
                ("short.safetensors", [1, 2, 3, 4], "too short"),
                ("length.safetensors", [200, 0, 0, 0, 0, 0, 0, 0] + Array("{}".utf8), "exceeds"),
                ("json.safetensors", header("{not json"), "not valid JSON"),
                ("array.safetensors", header("[1, 2]"), "not a JSON object"),
                ("entry.safetensors", header(#"{"w":{"dtype":"F32","shape":[2]}}"#), "malformed header entry"),
                ("dtype.safetensors", header(#"{"w":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0]), "F16"),
                ("range.safetensors", header(#"{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, data: [UInt8](repeating: 0, count: 8)), "byte range"),
                ("past-end.safetensors", header(#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, data: [0, 0, 0, 0]), "byte range"),
            ]
            for (name, bytes, reason) in cases {
                try Data(bytes).write(to: run.file(name))
                do {
                    _ = try run.readTensors(name)
                    Issue.record("\(name): no error")
                } catch let error as CheckpointError {
                    guard case .malformed(let path, let message) = error else {
                        Issue.record("\(name): \(error)")
                        continue
                    }
                    #expect(path == run.file(name).path)
                    #expect(error.description.hasPrefix(run.file(name).path), "\(error)")
                    #expect(message.contains(reason), "\(name): \(message)")
                }
            }
            #expect(throws: CheckpointError.self) { try run.readTensors("absent.safetensors") }

            // A well-formed file that does not fit the model.
            let store = try ParameterStore(backend: CPUBackend(), layout: [("w", [2, 2]), ("b", [2])])
            do throws(CheckpointError) {
                try store.load(["w": ([2, 2], [1, 2, 3, 4])], into: store.values)
                Issue.record("a missing tensor loaded")
            } catch {
                guard case .missingTensor("b") = error else { Issue.record("\(error)"); return }
            }
            do throws(CheckpointError) {
                try store.load(["w": ([4], [1, 2, 3, 4]), "b": ([2], [0, 0])], into: store.values)
                Issue.record("a tensor of the wrong shape loaded")
            } catch {
                guard case .shapeMismatch("w", expected: [2, 2], found: [4]) = error else { Issue.record("\(error)"); return }
            }
            // A folder that holds no run.
            #expect(throws: CheckpointError.self) { try TrainedRun(RunFolder(folder + "/nothing"), backend: CPUBackend()) }
        }
    }

    @Test func anExistingRunIsNeverOverwrittenWithoutForce() throws {
        try PretrainTestSupport.withTemporaryFolder { folder in
            let run = RunFolder(folder + "/run")
            try run.create(force: false)          // new folder
            try run.create(force: false)          // an empty folder may be reused
            try AtomicFile.write(#"{"kind":"pretrain","version":"test","createdAt":"now"}"#, to: run.file("config.json"))
            do {
                try run.create(force: false)
                Issue.record("an existing run was accepted")
            } catch let error as CheckpointError {
                guard case .runExists(let path) = error else { Issue.record("\(error)"); return }
                #expect(path == run.path && error.description.contains("--force"))
            }
            #expect(FileManager.default.fileExists(atPath: run.file("config.json").path))
            try run.create(force: true)
            #expect(try FileManager.default.contentsOfDirectory(atPath: run.path).isEmpty)
        }
    }

    /// N epochs in one go, and N/2 epochs then a restore into a fresh model and N/2 more: bit-identical weights,
    /// moments, sampler history and optimizer step on the CPU reference.
    @Test func resumeContinuesBitIdentically() throws {
        try PretrainTestSupport.withTemporaryFolder { folder in
            let dataset = PretrainTestSupport.tinyDataset()
            var settings = PretrainTestSupport.tinySettings(epochs: 6, batchSize: 16)  // 3 batches per epoch
            settings.evalEvery = 2
            let backend = CPUBackend()
            func trainer(_ run: RunFolder, _ settings: DiffRecSettings, restore: Bool) throws -> DiffRecTrainer {
                let model = try DiffRecModel(backend: backend, settings: settings, items: dataset.itemCount)
                let state = restore ? try DiffRecTrainer.restore(model: model, from: run) : nil
                return try DiffRecTrainer(model: model, dataset: dataset,
                                          evaluator: try TopKEvaluator(backend: backend, dataset: dataset, batchSize: 16),
                                          run: run, state: state)
            }
            let straight = RunFolder(folder + "/straight"), resumed = RunFolder(folder + "/resumed")
            try straight.create(force: false)
            try resumed.create(force: false)
            let whole = try trainer(straight, settings, restore: false)
            try whole.train()

            var half = settings
            half.epochs = 3
            let first = try trainer(resumed, half, restore: false)
            try first.train()
            #expect(first.state.epoch == 3)
            let second = try trainer(resumed, settings, restore: true)
            #expect(second.state.epoch == 3 && second.state.optimizerStep == 9)
            #expect(second.state.sampler == first.state.sampler, "the sampler history did not survive state.json exactly")
            try second.train()

            let a = whole.model.denoiser.parameters, b = second.model.denoiser.parameters
            #expect(whole.state.epoch == 6 && second.state.epoch == 6)
            #expect(a.step == 18 && b.step == 18)
            #expect(try PretrainTestSupport.named(a, a.values) == PretrainTestSupport.named(b, b.values), "weights differ after resume")
            #expect(try PretrainTestSupport.named(a, a.firstMoments) == PretrainTestSupport.named(b, b.firstMoments), "first moments differ")
            #expect(try PretrainTestSupport.named(a, a.secondMoments) == PretrainTestSupport.named(b, b.secondMoments), "second moments differ")
            #expect(whole.state.sampler == second.state.sampler, "timestep sampler history differs")
            #expect(first.state.sampler.isWarm)  // the resumed half drew from the restored importance weights
        }
    }
}
