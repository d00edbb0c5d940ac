/// The simple baselines under the evaluator's protocol: full ranking, seen items masked.
extension EASEModel {
    public func evaluate(_ split: EvaluationSplit, with evaluator: TopKEvaluator) throws -> RankingMetrics {
        try evaluator.evaluate(split) { _, input in try scores(input) }
    }
}

extension PopularityBaseline {
    public func evaluate(_ split: EvaluationSplit, with evaluator: TopKEvaluator) throws -> RankingMetrics {
        try evaluator.evaluate(split) { users, _ in try scores(batch: users.count) }
    }
}
