import Foundation
import RefitCompute

/// Sequential pre-training runs: SASRec, or DreamRec on a trained SASRec encoder.
public enum SequentialSession {
    /// Pre-trains SASRec, or DreamRec on the encoder of the SASRec run `encoderFrom`, into `out`.
    /// With `resume`, continues `out` from its last checkpoint (its saved settings win, except `epochs`/`patience`).
    public static func pretrain(source: DataSource, settings requested: SequentialSettings, encoderFrom: RunFolder?, out: RunFolder,
                                backend: any Backend, resume: Bool, force: Bool, showTestEvery: Int? = nil,
                                observer: TrainingObserver?) throws -> (state: SequentialState, configuration: SequentialRunConfiguration) {
        var configuration: SequentialRunConfiguration
        let dataset: SequenceDataset
        let lock: RunLock
        if resume {
            lock = try out.openForResume(RunFolder.Identity(kind: RunConfiguration.Kind.pretrain.rawValue, sequential: true,
                                                            model: requested.model.rawValue))
            configuration = try out.readJSON(SequentialRunConfiguration.self, from: "config.json")
            configuration.sequential.epochs = requested.epochs
            configuration.sequential.patience = requested.patience
            try out.writeJSON(configuration, to: "config.json")
            // A DreamRec run killed between its config.json and its copy of the encoder gets the copy now.
            if configuration.model == .dreamrec, !FileManager.default.fileExists(atPath: out.file("encoder.safetensors").path),
               let encoderRun = configuration.encoderRun {
                let encoder = try TrainedSequentialRun(RunFolder(encoderRun), backend: backend)
                try out.saveWeights(encoder.model.encoder.parameters, to: "encoder.safetensors", metadata: ["model": "sasrec", "from": encoderRun])
            }
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
                    throw RunError.invalid("DreamRec conditions on a trained SASRec encoder: name a SASRec run as its encoder run")
                }
                let trained = try TrainedSequentialRun(encoderFrom, backend: backend)
                guard trained.configuration.model == .sasrec else {
                    throw RunError.invalid("the encoder run \(encoderFrom.path) is a \(trained.configuration.model.rawValue) run, not a SASRec run")
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
            let (created, movedTo) = try out.createNew(replacing: force, inputs: encoderFrom.map { [$0] } ?? [])
            lock = created
            if let movedTo { observer?.log("the run that was in \(out.path) moved to \(movedTo)") }
            try out.writeJSON(configuration, to: "config.json")
            if let encoder {
                try out.saveWeights(encoder.model.encoder.parameters, to: "encoder.safetensors", metadata: ["model": "sasrec", "from": encoderFrom!.path])
            }
        }
        defer { lock.release() }
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
        let state = resume ? try out.resumeState(model.trainedParameters, as: SequentialState.self) : nil
        if let state { observer?.log("resuming after epoch \(state.epoch) (best so far: epoch \(state.bestEpoch))") }
        let trainer = try SequentialTrainer(model: model, dataset: dataset, evaluator: evaluator, run: out, state: state,
                                            showTestEvery: showTestEvery, observer: observer)
        return (try trainer.train(), configuration)
    }
}
