import RefitCompute

/// A finished run loaded back: its configuration, its dataset (checked against the fingerprint) and its model
/// with the weights of `best.safetensors` (or another checkpoint file).
public struct TrainedRun {
    public let folder: RunFolder
    public let configuration: RunConfiguration
    public let dataset: InteractionDataset
    public let model: DiffRecModel

    public init(_ folder: RunFolder, backend: any Backend, weights: String = "best.safetensors") throws {
        try folder.requireRun()
        guard !folder.isSequential else {
            throw CheckpointError.malformed(path: folder.file("config.json").path, reason: "a sequential (SASRec/DreamRec) run, where a DiffRec run is needed")
        }
        self.folder = folder
        configuration = try folder.readJSON(RunConfiguration.self, from: "config.json")
        let data = try configuration.data.load()
        guard data.fingerprint == configuration.dataFingerprint else {
            throw CheckpointError.malformed(path: folder.file("config.json").path,
                                            reason: "the data at \(configuration.data.path) no longer match the run (fingerprint differs)")
        }
        dataset = try data.weighted(by: configuration.diffrec.timeWeights)
        self.weights = weights
        model = try DiffRecModel(backend: backend, settings: configuration.diffrec, items: dataset.itemCount)
        let parameters = model.denoiser.parameters
        try parameters.load(try folder.readTensors(weights), into: parameters.values)
    }

    /// The checkpoint file the model was loaded from.
    public let weights: String

    /// A second, independent model with the same weights (a policy to train beside a frozen reference),
    /// without reading the data again.
    public func copyModel() throws -> DiffRecModel {
        let copy = try DiffRecModel(backend: model.backend, settings: configuration.diffrec, items: dataset.itemCount)
        try copy.denoiser.parameters.load(try folder.readTensors(weights), into: copy.denoiser.parameters.values)
        return copy
    }
}
