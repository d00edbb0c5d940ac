import RefitCompute

/// A model family's denoising chain as ReFiT's estimators see it: the reverse process as an MDP whose policy at step k is
/// the Gaussian `N(μ_θ(x_k), σ_k²·I)`, rewarded at the end. DiffRec's chain runs over a user's item vector, DreamRec's
/// over the next item's embedding; the estimators are written once against this protocol.
///
/// A rollout keeps what REINFORCE's update replays: the states before and after each step it trains on. `slot` numbers
/// those steps in the order of `trained`.
public protocol DenoisingPolicy: AnyObject {
    associatedtype Example
    var backend: any Backend { get }
    /// The parameters fine-tuning updates.
    var parameters: ParameterStore { get }
    /// The steps that add noise, and so carry a log-probability, in increasing order: REINFORCE draws its trained steps
    /// from these.
    var noisySteps: [Int] { get }
    /// `steps` (a sorted subset of `noisySteps`) in the order the chain visits them.
    func chainOrder(_ steps: [Int]) -> [Int]
    /// The host random stream from which the trained steps are drawn, apart from the scenario's shuffles.
    var stepStream: UInt64 { get }
    /// The names of the parameters in the output layer (for `TrainedLayers.output`), or nil when only whole-model
    /// training is meaningful.
    var outputLayerPrefix: String? { get }

    /// Rolls out `rollouts` stochastic trajectories per example (rows example-major), deterministic given (seed,
    /// `update`); keeps the states of the `trained` steps; returns one reward per row.
    func rollout(_ examples: [Example], rollouts: Int, trained: [Int], update: Int) throws -> [Double]
    /// Step k's Gaussian for the rollout state in `slot` under the current weights: the action taken, μ_θ, and log σ.
    /// The network's forward is kept for `backward`.
    func gaussian(step: Int, slot: Int) throws -> (action: Tensor, mean: Tensor, logStd: Float)
    /// μ_ref of the same step and state under the frozen pre-trained model (for REINFORCE's KL penalty).
    func referenceMean(step: Int, slot: Int) throws -> Tensor
    /// The factor of `(μ_θ − μ_ref)` in the gradient of the KL penalty `β·mean_i (μ_θ − μ_ref)²/(2σ²)` averaged over rows.
    func klGradientScale(step: Int, coefficient: Float, rows: Int) -> Float
    /// Backpropagates ∂L/∂μ of the last `gaussian` call into the parameter gradients.
    func backward(step: Int, dMean: Tensor) throws
}

extension DenoisingPolicy {
    /// Zeroes the gradients outside the output layer when only it is trained, so AdamW leaves the other layers as they
    /// are (their moments stay 0; weight decay, 0 by default, would still shrink them) and the gradient norm is the
    /// trained layers'.
    func keepTrainedGradients(_ layers: TrainedLayers) {
        guard layers == .output, let output = outputLayerPrefix else { return }
        for entry in parameters.entries where !entry.name.hasPrefix(output) { backend.fill(parameters.gradient(entry.name), with: 0) }
    }

    /// Zeroes frozen gradients, then one AdamW step.
    func applyOptimizer(_ settings: FinetuneSettings, scratch: Tensor) throws {
        keepTrainedGradients(settings.trainedLayers)
        try parameters.applyAdamW(learningRate: settings.optimizer.learningRate, weightDecay: settings.optimizer.weightDecay,
                                  maxGradientNorm: settings.optimizer.maxGradientNorm, scratch: scratch)
    }
}

extension DenoisingPolicy {
    /// The mean reward of `rollouts` stochastic rollouts per example with fixed noise, without updating: before/after checks.
    public func meanReward(_ examples: [Example], rollouts: Int) throws -> Double {
        let rewards = try rollout(examples, rollouts: rollouts, trained: [], update: 1 << 30)
        return rewards.reduce(0, +) / Double(rewards.count)
    }
}
