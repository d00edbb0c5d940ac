import Foundation
import RefitCompute

/// Whole sequential runs, as `refit pretrain --model sasrec|dreamrec` and `refit finetune` on a DreamRec run do them.
public enum SequentialSession {
    /// Pre-trains SASRec, or DreamRec on the encoder of the SASRec run `encoderFrom`, into `out`.
    /// With `resume`, continues `out` from its last checkpoint (its saved settings win, except `epochs`/`patience`).
    public static func pretrain(source: DataSource, settings requested: SequentialSettings, encoderFrom: RunFolder?, out: RunFolder,
                                backend: any Backend, resume: Bool, force: Bool,
                                observer: TrainingObserver?) throws -> (state: SequentialState, configuration: SequentialRunConfiguration) {
        var configuration: SequentialRunConfiguration
        let dataset: SequenceDataset
        if resume {
            try out.requireRun()
            configuration = try out.readJSON(SequentialRunConfiguration.self, from: "config.json")
            configuration.sequential.epochs = requested.epochs
            configuration.sequential.patience = requested.patience
            try out.writeJSON(configuration, to: "config.json")
            dataset = try SequenceDataset.load(configuration.data)
            guard dataset.fingerprint == configuration.dataFingerprint else {
                throw CheckpointError.malformed(path: out.path, reason: "the data at \(configuration.data.path) changed since the run started (fingerprint differs)")
            }
        } else {
            var settings = requested
            var data = source
            var encoder: TrainedSequentialRun? = nil
            if settings.model == .dreamrec {
                guard let encoderFrom else {
                    throw FinetuneError.invalidSetting("DreamRec conditions on a trained SASRec encoder: train one with `refit pretrain --model sasrec`, then pass --encoder-from RUN")
                }
                let trained = try TrainedSequentialRun(encoderFrom, backend: backend)
                guard trained.configuration.model == .sasrec else {
                    throw FinetuneError.invalidSetting("--encoder-from \(encoderFrom.path) is a \(trained.configuration.model.rawValue) run, not a SASRec run")
                }
                // The encoder's shape and data come from the SASRec run.
                let e = trained.configuration.sequential
                (settings.historyLength, settings.hiddenSize, settings.blocks, settings.dropout) = (e.historyLength, e.hiddenSize, e.blocks, e.dropout)
                data = trained.configuration.data
                encoder = trained
                let embeddings = try backend.readFloats(trained.model.encoder.itemEmbeddings)
                let meanSquare = embeddings.reduce(0.0) { $0 + Double($1) * Double($1) } / Double(max(embeddings.count, 1))
                settings.targetScale = Float(1 / max(meanSquare.squareRoot(), 1e-12))
            }
            dataset = try encoder?.dataset ?? SequenceDataset.load(data)
            configuration = SequentialRunConfiguration(kind: .pretrain, device: backend.deviceDescription, data: data, dataset: dataset, settings: settings)
            configuration.encoderRun = encoderFrom?.path
            try out.create(force: force)
            try out.writeJSON(configuration, to: "config.json")
            if let encoder {
                try out.saveWeights(encoder.model.encoder.parameters, to: "encoder.safetensors", metadata: ["model": "sasrec", "from": encoderFrom!.path])
            }
        }
        observer?.log(dataset.describe(historyLength: configuration.sequential.historyLength))
        observer?.log("device: \(backend.deviceDescription)")
        let settings = configuration.sequential
        let model = try SequentialModel(backend: backend, settings: settings, items: dataset.itemCount)
        if model.denoiser != nil {
            try model.encoder.parameters.load(try out.readTensors("encoder.safetensors"), into: model.encoder.parameters.values)
        }
        observer?.log("model: \(settings.model == .sasrec ? "SASRec" : "DreamRec"), d=\(settings.hiddenSize), L=\(settings.historyLength), "
                      + (settings.model == .dreamrec ? "T=\(settings.steps) (\(settings.schedule.rawValue)), w=\(settings.guidance), \(model.sampler.count) sampling steps, x₀ scale \(settings.targetScale), " : "")
                      + "\(model.trainedParameters.parameterCount) trained parameters; run folder \(out.path)")
        let evaluator = try SequentialEvaluator(backend: backend, dataset: dataset, historyLength: settings.historyLength)
        var state: SequentialState? = nil
        if resume {
            let restored = try out.restoreCheckpoint(model.trainedParameters, as: SequentialState.self)
            try out.filterMetrics { ($0["epoch"] as? Int ?? 0) <= restored.epoch }
            observer?.log("resuming after epoch \(restored.epoch) (best so far: epoch \(restored.bestEpoch))")
            state = restored
        }
        let trainer = try SequentialTrainer(model: model, dataset: dataset, evaluator: evaluator, run: out, state: state, observer: observer)
        return (try trainer.train(), configuration)
    }

    /// Fine-tunes the DreamRec run `pretrained` with ReFiT into `out`, then scores the pre-trained and the best
    /// fine-tuned weights on validation and test, with popularity beside them.
    public static func finetune(pretrained: RunFolder, out: RunFolder, settings: FinetuneSettings, backend: any Backend,
                                resume: Bool = false, force: Bool = false, observer: TrainingObserver? = nil) throws -> FinetuneOutcome {
        try settings.validate()
        guard settings.reward.isSequential else {
            throw FinetuneError.invalidSetting("--reward \(settings.reward.rawValue) is a DiffRec reward; DreamRec runs take seq-loglik or seq-collab")
        }
        let base = try TrainedSequentialRun(pretrained, backend: backend)
        guard base.configuration.model == .dreamrec else {
            throw FinetuneError.invalidSetting("\(pretrained.path) is a \(base.configuration.model.rawValue) run; ReFiT fine-tunes DreamRec runs")
        }
        try out.startFinetune(from: base.configuration, pretrained: pretrained, settings: settings, device: backend.deviceDescription,
                              resume: resume, force: force)
        if !resume { try FileManager.default.copyItem(at: pretrained.file("encoder.safetensors"), to: out.file("encoder.safetensors")) }
        let dataset = base.dataset
        let evaluator = try SequentialEvaluator(backend: backend, dataset: dataset, historyLength: base.configuration.sequential.historyLength)
        let policy = try base.copyModel()
        let reference = settings.klCoefficient > 0 ? base.model : nil
        let reward = NextItemReward(kind: settings.reward, model: policy, dataset: dataset, settings: settings)
        var state: FinetuneState? = nil
        if resume {
            let restored = try out.restoreCheckpoint(policy.denoiser!.parameters, as: FinetuneState.self)
            try out.filterMetrics { ($0["epoch"] as? Int ?? 0) <= restored.epoch }
            state = restored
        }
        let trainer = try SequentialReFiTTrainer(policy: policy, reference: reference, reward: reward, dataset: dataset, evaluator: evaluator,
                                                 run: out, settings: settings, state: state, observer: observer)
        let started = Date()
        let final = try trainer.train()
        let secondsPerEpoch = Date().timeIntervalSince(started) / Double(max(final.epoch - (state?.epoch ?? 0), 1))
        try policy.denoiser!.parameters.load(try out.readTensors("best.safetensors"), into: policy.denoiser!.parameters.values)
        let outcome = FinetuneOutcome(
            pretrainedValid: try evaluator.evaluate(.valid, model: base.model),
            pretrainedTest: try evaluator.evaluate(.test, model: base.model),
            finetunedValid: try evaluator.evaluate(.valid, model: policy),
            finetunedTest: try evaluator.evaluate(.test, model: policy),
            popularityTest: try evaluator.popularity(.test),
            bestEpoch: final.bestEpoch, epochs: final.epoch, secondsPerEpoch: secondsPerEpoch,
            rewardBefore: .nan, rewardAfter: .nan)
        var fields: [(String, JSONValue)] = [("kind", .string("summary")), ("best_epoch", .integer(outcome.bestEpoch))]
        for (label, metrics) in [("pretrained_valid", outcome.pretrainedValid), ("pretrained_test", outcome.pretrainedTest),
                                 ("valid", outcome.finetunedValid), ("test", outcome.finetunedTest)] {
            fields += [("\(label)_hr@20", .number(metrics.recall(at: 20))), ("\(label)_ndcg@20", .number(metrics.ndcg(at: 20)))]
        }
        try out.appendMetrics(fields)
        return outcome
    }
}
