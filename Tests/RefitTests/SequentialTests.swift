import Foundation
import Testing
@testable import Refit
import RefitCompute

/// The sequential scenario: leave-one-out data, the sampler's coefficients, the encoder's and denoiser's backward
/// passes against finite differences, the two backends agreeing, rewards that never see held-out items, and the
/// whole pipeline on the built-in dataset.
@Suite struct SequentialTests {
    /// Two users, time given out of file order; user "b" has a repeat that deduplication drops.
    static func smallLog() -> InteractionLog {
        // user a: items 1..6 at times 1..6 (written out of order); user b: 3, 1, 2, 3(repeat), 4.
        let rows: [(String, String, Double)] = [("a", "3", 3), ("a", "1", 1), ("a", "2", 2), ("a", "4", 4), ("a", "5", 5), ("a", "6", 6),
                                                ("b", "3", 1), ("b", "1", 2), ("b", "2", 3), ("b", "3", 4), ("b", "4", 5)]
        var userIDs: [String] = [], itemIDs: [String] = []
        func index(_ id: String, _ ids: inout [String]) -> Int32 {
            if let i = ids.firstIndex(of: id) { return Int32(i) }
            ids.append(id)
            return Int32(ids.count - 1)
        }
        let users = rows.map { index($0.0, &userIDs) }
        let items = rows.map { index($0.1, &itemIDs) }
        return InteractionLog(users: users, items: items, timestamps: rows.map(\.2), userIDs: userIDs, itemIDs: itemIDs,
                              source: "test", format: .csv)
    }

    @Test func leaveOneOutSplitHistoriesAndWindows() throws {
        let data = try SequenceDataset(log: Self.smallLog(), minRating: nil, kCore: nil)
        let a = data.sequences[0].map { data.itemIDs[Int($0)] }
        let b = data.sequences[1].map { data.itemIDs[Int($0)] }
        #expect(a == ["1", "2", "3", "4", "5", "6"])
        #expect(b == ["3", "1", "2", "4"])
        #expect(data.heldOutPosition(user: 0, split: .test) == 5)
        #expect(data.heldOutPosition(user: 0, split: .valid) == 4)
        // Training targets are positions 1 … n−3 only: never the validation or test item.
        #expect(data.trainingExamples.filter { $0.user == 0 }.map(\.position) == [1, 2, 3])
        #expect(data.trainingExamples.filter { $0.user == 1 }.map(\.position) == [1])
        let item = { (id: String) in Int32(data.itemIDs.firstIndex(of: id)!) }
        #expect(data.history(user: 0, before: 3, length: 5) == [-1, -1, item("1"), item("2"), item("3")])
        #expect(data.history(user: 0, before: 5, length: 2) == [item("4"), item("5")])
        // Windows of L = 2 from the most recent training target backwards: ending at 3, then at 1.
        let windows = data.trainingWindows(length: 2).filter { $0.user == 0 }.map(\.position)
        #expect(windows == [3, 1])
        #expect(data.windowTargets(user: 0, endingAt: 3, length: 2) == [item("3"), item("4")])
        #expect(data.windowTargets(user: 0, endingAt: 1, length: 2) == [-1, item("2")])
        #expect(data.statistics.trainingExamples == 4)
        #expect(data.statistics.interactions == 10)
        // The popularity counts stop before each user's validation item.
        let counts = data.trainingItemCounts()
        #expect(counts[Int(item("5"))] == 0 && counts[Int(item("6"))] == 0 && counts[Int(item("3"))] == 2)
    }

    @Test func kCoreAndErrors() throws {
        let data = try SequenceDataset(log: Self.smallLog(), minRating: nil, kCore: 2)
        // Items 5 and 6 occur once: 2-core drops them, and user a keeps 1, 2, 3, 4.
        #expect(data.itemCount == 4)
        #expect(data.sequences[0].count == 4)
        #expect(throws: DataError.self) { try SequenceDataset(log: Self.smallLog(), minRating: nil, kCore: 50) }
    }

    @Test func samplerMatchesThePosteriorWithAllStepsAndStridesDown() throws {
        let schedule = try NoiseSchedule(kind: .linear, steps: 100, scale: 1, minimum: 1e-4, maximum: 0.02, fixFirstBeta: false)
        let full = DiffusionSampler(schedule: schedule)
        #expect(full.timesteps == Array((0..<100).reversed()))
        for (k, t) in full.timesteps.enumerated() {
            #expect(abs(Double(full.x0Coefficients[k]) - schedule.posteriorMeanCoefficient1[t]) < 1e-5)
            #expect(abs(Double(full.xtCoefficients[k]) - schedule.posteriorMeanCoefficient2[t]) < 1e-5)
            #expect(abs(Double(full.standardDeviations[k]) - schedule.posteriorVariances[t].squareRoot()) < 1e-5)
        }
        let strided = DiffusionSampler(schedule: schedule, steps: 10)
        #expect(strided.count == 10 && strided.timesteps.first == 99 && strided.timesteps.last == 0)
        #expect(strided.standardDeviations.last == 0 && strided.x0Coefficients.last == 1 && strided.xtCoefficients.last == 0)
        #expect(strided.standardDeviations.dropLast().allSatisfy { $0 > 0 })
        // The exp schedule of DreamRec reaches almost pure noise.
        let exp = try NoiseSchedule(kind: .exp, steps: 500, scale: 1, minimum: 0.1, maximum: 10, fixFirstBeta: false)
        #expect(exp.alphaBars.last! < 1e-2 && exp.betas.allSatisfy { $0 > 0 && $0 < 1 })
    }

    static func tinySettings(_ model: SequentialModelKind) -> SequentialSettings {
        var s = SequentialSettings()
        s.model = model
        s.historyLength = 4
        s.hiddenSize = 6
        s.dropout = 0
        s.steps = 20
        s.seed = 5
        return s
    }

    /// Central differences in Float64 of `loss` with respect to a few entries of each named parameter.
    static func checkGradients(_ parameters: ParameterStore, names: [String], loss: () throws -> Double,
                               sourceLocation: SourceLocation = #_sourceLocation) throws {
        let backend = parameters.backend
        let analytic = try PretrainTestSupport.named(parameters, parameters.gradients)
        let values = try backend.readFloats(parameters.values)
        for name in names {
            let entry = parameters.entries.first { $0.name == name }!
            for j in Swift.stride(from: 0, to: entry.count, by: max(1, entry.count / 5)) {
                var shifted = values
                let h: Float = 2e-3
                shifted[entry.offset + j] += h
                backend.write(shifted, to: parameters.values)
                let up = try loss()
                shifted[entry.offset + j] -= 2 * h
                backend.write(shifted, to: parameters.values)
                let down = try loss()
                backend.write(values, to: parameters.values)
                let numeric = (up - down) / Double(2 * h)
                let a = Double(analytic[name]![j])
                #expect(abs(a - numeric) <= 2e-3 + 2e-2 * abs(numeric), "\(name)[\(j)]: analytic \(a), numeric \(numeric)",
                        sourceLocation: sourceLocation)
            }
        }
    }

    @Test func encoderBackwardMatchesFiniteDifferences() throws {
        let backend = CPUBackend()
        let settings = Self.tinySettings(.sasrec)
        let model = try SequentialModel(backend: backend, settings: settings, items: 9)
        let histories: [Int32] = [-1, -1, 3, 5, 0, 1, 2, 8, -1, -1, -1, 7]
        let targets: [Int32] = [4, 6, 2]
        let t = try backend.tensor(targets, shape: [3])
        let loss = try backend.makeTensor([3], .float32)
        func forwardLoss() throws -> Double {
            let h = try model.encoder.forward(histories: histories, training: true)
            let logits = try model.score(h)
            backend.softmaxCrossEntropy(logits, targets: t, gradientScale: 1, loss: loss, dLogits: nil)
            return try backend.readFloats(loss).reduce(0) { $0 + Double($1) }
        }
        let encoder = model.encoder
        encoder.parameters.zeroGradients()
        let h = try encoder.forward(histories: histories, training: true)
        let logits = try model.score(h)
        backend.softmaxCrossEntropy(logits, targets: t, gradientScale: 1, loss: loss, dLogits: logits)
        let dH = try backend.makeTensor([3, settings.hiddenSize], .float32)
        backend.matmul(logits, transposeA: false, encoder.itemEmbeddings, transposeB: false, into: dH, alpha: 1, beta: 0)
        backend.matmul(logits, transposeA: true, h, transposeB: false, into: encoder.parameters.gradient("item_embeddings.weight"), alpha: 1, beta: 1)
        try encoder.backward(dEncoding: dH)
        try Self.checkGradients(encoder.parameters, names: encoder.parameters.entries.map(\.name), loss: forwardLoss)
    }

    @Test func denoiserBackwardMatchesFiniteDifferencesIncludingTheNullCondition() throws {
        let backend = CPUBackend()
        let denoiser = try DreamRecDenoiser(backend: backend, hiddenSize: 6, depth: 2, seed: 3)
        let rows = 4
        let x = try backend.tensor((0..<(rows * 6)).map { Float(sin(Double($0))) }, shape: [rows, 6])
        let target = try backend.tensor((0..<(rows * 6)).map { Float(cos(Double($0) * 0.7)) }, shape: [rows, 6])
        let h = try backend.tensor((0..<(rows * 6)).map { Float($0 % 5) * 0.2 - 0.4 }, shape: [rows, 6])
        let t = try backend.tensor([Int32(0), 7, 19, 3], shape: [rows])
        let nullIndices: [Int32] = [-1, 0, -1, 0]
        let conditions = try backend.makeTensor([rows, 6], .float32)
        let loss = try backend.makeTensor([rows], .float32)
        let weights = try backend.tensor([Float](repeating: 1, count: rows), shape: [rows])
        func buildConditions() throws {
            // c = h on kept rows, ∅ on the others, exactly as the trainer builds it.
            let nullPart = try backend.makeTensor([rows, 6], .float32)
            backend.gatherRows(denoiser.nullCondition, indices: try backend.tensor(nullIndices, shape: [rows]), into: nullPart)
            backend.combineRows(h, scaledBy: try backend.tensor(nullIndices.map { $0 < 0 ? Float(1) : 0 }, shape: [rows]), nullPart,
                                scaledBy: weights, into: conditions)
        }
        func forwardLoss() throws -> Double {
            try buildConditions()
            let out = try denoiser.forward(x, condition: conditions, timesteps: t)
            backend.squaredErrorRows(out, target, into: loss)
            return try backend.readFloats(loss).reduce(0) { $0 + Double($1) }
        }
        denoiser.parameters.zeroGradients()
        try buildConditions()
        let out = try denoiser.forward(x, condition: conditions, timesteps: t)
        let dOut = try backend.makeTensor([rows, 6], .float32)
        backend.squaredErrorBackward(out, target, rowWeights: weights, into: dOut)
        try denoiser.backward(dOutput: dOut, nullRows: try ScatterPlan(indices: nullIndices, backend: backend))
        try Self.checkGradients(denoiser.parameters, names: denoiser.parameters.entries.map(\.name), loss: forwardLoss)
    }

    @Test func encoderAndSamplerAgreeAcrossBackends() throws {
        guard let info = DeviceSelection.automaticDevice else { return }
        let device = try OpenCLBackend(device: info)
        var settings = Self.tinySettings(.dreamrec)
        settings.hiddenSize = 8
        settings.samplingSteps = 6
        let histories: [Int32] = [-1, 2, 3, 4, 0, 1, 5, 6]
        var scores: [[Float]] = []
        for backend in [device, CPUBackend()] as [any Backend] {
            let model = try SequentialModel(backend: backend, settings: settings, items: 11)
            scores.append(try backend.readFloats(try model.scores(histories: histories, seed: 42)))
        }
        for (a, b) in zip(scores[0], scores[1]) { #expect(abs(a - b) <= 1e-3 + 1e-3 * abs(b), "\(a) vs \(b)") }
    }

    @Test func collaborativeNextItemsComeFromTrainingPositionsOnly() throws {
        let data = try SequenceDataset(log: Self.smallLog(), minRating: nil, kCore: nil)
        let item = { (id: String) in Int32(data.itemIDs.firstIndex(of: id)!) }
        let transitions = NextItemReward.transitions(data, keep: 10)
        // User a's training part is 1 2 3 4 (5 is validation, 6 test): 4 → 5 and 5 → 6 must not appear.
        #expect(transitions[Int(item("4"))].isEmpty)
        #expect(transitions[Int(item("5"))].isEmpty)
        // 1 → 2 and 2 → 3 from user a; 3 → 4 (a) and 3 → 1 (b); b's 1 → 2 leads to its validation item.
        #expect(transitions[Int(item("1"))].map(\.item) == [item("2")])
        #expect(transitions[Int(item("2"))].map(\.item) == [item("3")])
        #expect(transitions[Int(item("3"))].map(\.item).sorted() == [item("1"), item("4")].sorted())
        #expect(abs(transitions[Int(item("3"))].map(\.weight).reduce(0, +) - 1) < 1e-6)
    }

    /// The device tests run on: OpenCL when the machine has it, else the reference.
    static func automaticBackend() throws -> any Backend {
        try DeviceSelection.automaticDevice.map { try OpenCLBackend(device: $0) } ?? CPUBackend()
    }

    /// The built-in data read as sequences, with the sequential defaults (every rating, 5-core).
    static var builtinSequences: DataSource {
        var source = DataSource(path: "builtin:demo")
        source.minRating = nil
        source.kCore = 5
        return source
    }

    /// `SequentialSession.pretrain` on the built-in sequences, without an observer.
    static func pretrain(_ settings: SequentialSettings, encoderFrom: RunFolder? = nil, out: RunFolder, backend: any Backend,
                         resume: Bool = false) throws -> (state: SequentialState, configuration: SequentialRunConfiguration) {
        try SequentialSession.pretrain(source: builtinSequences, settings: settings, encoderFrom: encoderFrom, out: out, backend: backend,
                                       resume: resume, force: false, observer: nil)
    }

    @Test func pipelineOnTheBuiltInDataset() throws {
        try DataTestSupport.withTemporaryFolder { folder in
            let backend = try Self.automaticBackend()
            var settings = SequentialPreset.demoSeq.settings(model: .sasrec)
            settings.epochs = 2
            let sasrec = RunFolder(folder + "/sasrec")
            let (state, _) = try Self.pretrain(settings, out: sasrec, backend: backend)
            #expect(state.epoch == 2 && state.bestEpoch >= 1)
            // Two epochs put SASRec far above a random ranking (HR@20 = 20/items), and a reloaded run scores the same.
            let run = try TrainedSequentialRun(sasrec, backend: backend)
            #expect(state.bestValid["hr@20"]! > 3 * 20 / Double(run.dataset.itemCount))
            let evaluator = try SequentialEvaluator(backend: backend, dataset: run.dataset, historyLength: settings.historyLength)
            #expect(abs(try evaluator.evaluate(.valid, model: run.model).ndcg(at: 20) - state.bestValid["ndcg@20"]!) < 1e-6)

            var dreamSettings = SequentialPreset.demoSeq.settings(model: .dreamrec)
            dreamSettings.epochs = 1
            dreamSettings.samplingSteps = 10
            let dreamrec = RunFolder(folder + "/dreamrec")
            let (dreamState, configuration) = try Self.pretrain(dreamSettings, encoderFrom: sasrec, out: dreamrec, backend: backend)
            #expect(dreamState.epoch == 1 && configuration.encoderRun == sasrec.path && configuration.sequential.targetScale > 1)
            #expect(FileManager.default.fileExists(atPath: dreamrec.file("encoder.safetensors").path))

            var finetune = FinetuneSettings()
            finetune.reward = .seqCollab()
            finetune.epochs = 1
            finetune.userFraction = 0.05
            finetune.usersPerBatch = 50
            finetune.optimizer.learningRate = 1e-4
            let refit = RunFolder(folder + "/refit")
            let outcome = try FinetuneSession.run(pretrained: dreamrec, out: refit, settings: finetune, backend: backend)
            #expect(outcome.epochs == 1)
            #expect(outcome.finetunedTest.ndcg(at: 20).isFinite && outcome.pretrainedTest.ndcg(at: 20).isFinite)
            let lines = try refit.readMetrics()
            #expect(lines.contains { $0["kind"] as? String == "epoch" && ($0["reward_mean"] as? Double)?.isFinite == true })
            // users.json: one target per evaluated user, so its mean NDCG@20 is the table's.
            let users = try refit.readJSON(UserChanges.self, from: "users.json")
            #expect(users.users == outcome.finetunedTest.users && abs(users.after.meanMetric - outcome.finetunedTest.ndcg(at: 20)) < 1e-9)
            #expect(lines.last?["popularity_test_hr@20"] is Double)
            let report = try String(contentsOf: try ReportWriter.write(run: refit), encoding: .utf8)
            #expect(report.contains("What changed for users") && report.contains("Validation HR@20"))
            #expect(!report.contains("finetune.targets") && !report.contains("PPO clip fraction"))
            // A DiffRec reward on a DreamRec run is refused with a message, before anything is written.
            finetune.reward = .collabLoglik()
            #expect(throws: RunError.self) {
                try FinetuneSession.run(pretrained: dreamrec, out: RunFolder(folder + "/wrong"), settings: finetune, backend: backend)
            }
        }
    }

    /// DreamRec pre-trained with the cross-entropy loss, then fine-tuned by the pathwise estimator (last 2 steps,
    /// anchored): 2 epochs straight, and 1 epoch then a resume to 2, end with bit-identical weights, moments and rewards.
    @Test func crossEntropyDreamRecAndPathwiseFinetuningResumeBitIdentically() throws {
        try DataTestSupport.withTemporaryFolder { folder in
            let backend = try Self.automaticBackend()
            var settings = SequentialPreset.demoSeq.settings(model: .sasrec)
            (settings.epochs, settings.hiddenSize) = (1, 16)
            let sasrec = RunFolder(folder + "/sasrec")
            _ = try Self.pretrain(settings, out: sasrec, backend: backend)
            var dream = SequentialPreset.demoSeq.settings(model: .dreamrec)
            (dream.epochs, dream.samplingSteps, dream.denoiserLoss) = (1, 5, .ce)
            let dreamrec = RunFolder(folder + "/dreamrec")
            let (state, configuration) = try Self.pretrain(dream, encoderFrom: sasrec, out: dreamrec, backend: backend)
            #expect(configuration.sequential.loss == .ce && state.bestValid["ndcg@20"]!.isFinite)
            // Cross-entropy per target starts near log(items) and a trained epoch is below it.
            let epochLoss = try dreamrec.readMetrics().first { $0["kind"] as? String == "epoch" }?["loss"] as? Double
            let items = try TrainedSequentialRun(dreamrec, backend: backend).dataset.itemCount
            #expect(epochLoss.map { $0 < log(Double(items)) } == true)

            var finetune = FinetuneSettings.sequential
            finetune.estimator = .pathwise(PathwiseSettings(steps: 2, anchor: Anchor(weight: 0.5)))
            (finetune.epochs, finetune.userFraction, finetune.usersPerBatch) = (2, 0.1, 16)
            let whole = RunFolder(folder + "/whole"), parts = RunFolder(folder + "/parts")
            _ = try FinetuneSession.run(pretrained: dreamrec, out: whole, settings: finetune, backend: backend)
            finetune.epochs = 1
            _ = try FinetuneSession.run(pretrained: dreamrec, out: parts, settings: finetune, backend: backend)
            finetune.epochs = 2
            let outcome = try FinetuneSession.run(pretrained: dreamrec, out: parts, settings: finetune, backend: backend, resume: true)
            #expect(outcome.epochs == 2)
            for file in ["last.safetensors", "optimizer.safetensors", "best.safetensors"] {
                #expect(try whole.readTensors(file).mapValues(\.values) == parts.readTensors(file).mapValues(\.values), "\(file) differs after resume")
            }
            let straight = try whole.readMetrics().filter { $0["kind"] as? String == "epoch" }.map { $0["reward_mean"] as? Double }
            let resumed = try parts.readMetrics().filter { $0["kind"] as? String == "epoch" }.map { $0["reward_mean"] as? Double }
            #expect(straight == resumed && straight.count == 2)
            // A focus or an unseen-only anchor names items, which x̂₀'s dimensions are not: refused before any folder exists.
            finetune.estimator = .pathwise(PathwiseSettings(anchor: Anchor(weight: 1, scope: .focus(items: 5))))
            #expect(throws: RunError.self) {
                try FinetuneSession.run(pretrained: dreamrec, out: RunFolder(folder + "/focus"), settings: finetune, backend: backend)
            }
            #expect(!FileManager.default.fileExists(atPath: folder + "/focus"))
        }
    }

    @Test func resumedSASRecContinuesExactlyLikeAnUninterruptedRun() throws {
        try DataTestSupport.withTemporaryFolder { folder in
            let backend = try Self.automaticBackend()
            var settings = SequentialPreset.demoSeq.settings(model: .sasrec)
            settings.hiddenSize = 16
            settings.epochs = 2
            let whole = RunFolder(folder + "/whole"), parts = RunFolder(folder + "/parts")
            _ = try Self.pretrain(settings, out: whole, backend: backend)
            settings.epochs = 1
            _ = try Self.pretrain(settings, out: parts, backend: backend)
            settings.epochs = 2
            let (state, _) = try Self.pretrain(settings, out: parts, backend: backend, resume: true)
            #expect(state.epoch == 2)
            #expect(try whole.readTensors("last.safetensors")["item_embeddings.weight"]!.values
                    == parts.readTensors("last.safetensors")["item_embeddings.weight"]!.values)
            #expect(try whole.readMetrics().count == parts.readMetrics().count)
        }
    }
}
