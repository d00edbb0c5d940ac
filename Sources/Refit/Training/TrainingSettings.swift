/// The settings every pre-training run has, DiffRec's and the sequential models' alike: the command line's
/// shared flags (`--lr`, `--batch-size`, `--epochs`, `--steps`, …) set them the same way on either.
public protocol TrainingSettings {
    var learningRate: Float { get set }
    var weightDecay: Float { get set }
    var batchSize: Int { get set }
    var epochs: Int { get set }
    var evalEvery: Int { get set }
    var patience: Int { get set }
    var dropout: Float { get set }
    var schedule: NoiseScheduleKind { get set }
    var steps: Int { get set }
}

extension DiffRecSettings: TrainingSettings {}
extension SequentialSettings: TrainingSettings {}
