import RefitCompute

/// Training that cannot go on: a loss, reward or weight that is no longer a finite number. Nothing of the failed
/// epoch is written, so the run keeps its last good checkpoint and best weights, named in the message.
public enum TrainingError: Error, CustomStringConvertible {
    case nonFinite(what: String, epoch: Int, bestEpoch: Int)

    public var description: String {
        switch self {
        case .nonFinite(let what, let epoch, let bestEpoch):
            "the \(what) became NaN or infinite in epoch \(epoch), so training stopped there; the run keeps "
                + (epoch > 1 ? "its checkpoint of epoch \(epoch - 1)" : "no checkpoint yet")
                + (bestEpoch > 0 ? " and best.safetensors of epoch \(bestEpoch)" : "") + "; train again with a smaller learning rate"
        }
    }
}

extension ParameterStore {
    /// Throws when a weight is NaN or infinite after `epoch`: what a diverging update leaves.
    public func requireFinite(epoch: Int, bestEpoch: Int) throws {
        guard try backend.readFloats(values).allSatisfy(\.isFinite) else {
            throw TrainingError.nonFinite(what: "model's weights", epoch: epoch, bestEpoch: bestEpoch)
        }
    }
}
