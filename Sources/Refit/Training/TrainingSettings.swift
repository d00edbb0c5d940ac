/// The settings every pre-training run has, DiffRec's and the sequential models' alike, so that one option of the
/// command line sets either the same way.
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
