import Foundation
import Testing
@testable import Refit
import RefitCompute

/// Ranking metrics with DiffRec's conventions, on examples worked out by hand.
@Suite struct RankingMetricsTests {
    static func close(_ a: Double, _ b: Double, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(abs(a - b) <= 1e-12, "\(what): \(a), expected \(b)", sourceLocation: sourceLocation)
    }

    /// Five users at K = 3 and 5 (1/log2(2) = 1, 1/log2(3) = 0.6309297535714575, 1/log2(4) = 0.5,
    /// 1/log2(5) = 0.43067655807339306, 1/log2(6) = 0.38685280723454163):
    /// - A: ranked 5 1 7 2 9, truth {1, 2, 3}. @3: one hit at rank 2: P 1/3, R 1/3, NDCG 0.6309/2.1309 = 0.29608,
    ///   MRR 1/2. @5: hits at ranks 2 and 4: P 2/5, R 2/3, NDCG (0.6309 + 0.4307)/2.1309 = 0.49819, MRR 1/2.
    /// - B: ranked 4 0 8 6 3, truth {4}. @3: P 1/3, R 1, NDCG 1, MRR 1. @5: P 1/5, R 1, NDCG 1, MRR 1.
    /// - C: no ground truth: counts as zero everywhere, but is in the average.
    /// - D: ranked 10 11 12 20 13, truth {10 … 15} (6 items, more than K). @3: P 1, R 3/6 (denominator |GT|, not
    ///   min(|GT|, K)), NDCG 1 (IDCG over min(6, 3) = 3 positions), MRR 1. @5: hits at 1, 2, 3, 5: P 4/5, R 4/6,
    ///   NDCG (1 + 0.6309 + 0.5 + 0.3869)/(1 + 0.6309 + 0.5 + 0.4307 + 0.3869) = 0.85393, MRR 1.
    /// - E: ranked 2 7 then nothing (−1: fewer candidates than K), truth {7, 30}. @3 and @5: one hit at rank 2:
    ///   P 1/K (hits/K even when fewer than K were ranked), R 1/2, NDCG 0.6309/1.6309 = 0.38685, MRR 1/2.
    @Test func handWorkedExampleWithDiffRecConventions() {
        var m = RankingMetrics(cutoffs: [5, 3])
        m.add(ranked: [5, 1, 7, 2, 9] as [Int32], groundTruth: [1, 2, 3])
        m.add(ranked: [4, 0, 8, 6, 3] as [Int32], groundTruth: [4])
        m.add(ranked: [0, 1, 2, 3, 4] as [Int32], groundTruth: [])
        m.add(ranked: [10, 11, 12, 20, 13] as [Int32], groundTruth: [10, 11, 12, 13, 14, 15])
        m.add(ranked: [2, 7, -1, -1, -1] as [Int32], groundTruth: [7, 30])
        #expect(m.users == 5)
        #expect(m.cutoffs == [3, 5])

        // @3: P (1/3 + 1/3 + 0 + 1 + 1/3)/5; R (1/3 + 1 + 0 + 1/2 + 1/2)/5; MRR (1/2 + 1 + 0 + 1 + 1/2)/5.
        Self.close(m.precision(at: 3), 0.4, "precision@3")
        Self.close(m.recall(at: 3), 0.4666666666666667, "recall@3")
        Self.close(m.ndcg(at: 3), 0.5365869436400814, "ndcg@3")  // (0.29608 + 1 + 0 + 1 + 0.38685)/5
        Self.close(m.mrr(at: 3), 0.6, "mrr@3")
        // @5: P (2/5 + 1/5 + 0 + 4/5 + 1/5)/5; R (2/3 + 1 + 0 + 4/6 + 1/2)/5.
        Self.close(m.precision(at: 5), 0.32, "precision@5")
        Self.close(m.recall(at: 5), 0.5666666666666667, "recall@5")
        Self.close(m.ndcg(at: 5), 0.5477947429716497, "ndcg@5")  // (0.49819 + 1 + 0 + 0.85393 + 0.38685)/5
        Self.close(m.mrr(at: 5), 0.6, "mrr@5")

        // The metrics.jsonl keys, and NaN for a cut-off that was not computed.
        let keys = m.values.map(\.key)
        #expect(keys == ["precision@3", "recall@3", "ndcg@3", "mrr@3", "precision@5", "recall@5", "ndcg@5", "mrr@5"])
        #expect(m.recall(at: 10).isNaN)
        #expect(RankingMetrics(cutoffs: [3]).recall(at: 3).isNaN)  // no users: undefined, not zero
    }

    @Test func mergingSplitsOfTheUsersGivesTheSameMeans() {
        let users: [([Int32], Set<Int32>)] = [([5, 1, 7], [1, 2, 3]), ([4, 0, 8], [4]), ([0, 1, 2], []), ([3, 2, 1], [9])]
        var all = RankingMetrics(cutoffs: [1, 3]), first = RankingMetrics(cutoffs: [1, 3]), second = RankingMetrics(cutoffs: [1, 3])
        for (i, (ranked, truth)) in users.enumerated() {
            all.add(ranked: ranked, groundTruth: truth)
            if i < 2 { first.add(ranked: ranked, groundTruth: truth) } else { second.add(ranked: ranked, groundTruth: truth) }
        }
        first.merge(second)
        #expect(first == all)
        Self.close(all.mrr(at: 3), (0.5 + 1) / 4, "mrr@3")
        Self.close(all.precision(at: 1), 1.0 / 4, "precision@1")
    }

    /// Ties in the scores go to the lower item index (the top-K's rule), so the ranking — and the metrics — are
    /// reproducible: scores 0.5 0.9 0.5 0.9 0.1 0.9 rank as 1 3 5 0 2 4.
    @Test(arguments: ["cpu", "opencl"])
    func tiesAreBrokenByTheLowerItemIndex(device: String) throws {
        let backend: any Backend
        if device == "cpu" {
            backend = CPUBackend()
        } else {
            guard let openCL = try PretrainTestSupport.openCLBackend("the tie-breaking test") else { return }
            backend = openCL
        }
        let scores = try backend.tensor([0.5, 0.9, 0.5, 0.9, 0.1, 0.9], shape: [1, 6])
        let indices = try backend.makeTensor([1, 4], .int32), values = try backend.makeTensor([1, 4], .float32)
        backend.topK(scores, k: 4, mask: nil, indices: indices, values: values)
        let ranked = try backend.readInt32s(indices)
        #expect(ranked == [1, 3, 5, 0])
        var m = RankingMetrics(cutoffs: [3, 4])
        m.add(ranked: ranked, groundTruth: [0])
        Self.close(m.recall(at: 3), 0, "recall@3")  // item 0 ties with item 2 at 0.5 but wins the tie: rank 4
        Self.close(m.recall(at: 4), 1, "recall@4")
        Self.close(m.mrr(at: 4), 0.25, "mrr@4")
        Self.close(m.ndcg(at: 4), 1 / log2(5.0), "ndcg@4")  // rank 4: 1/log2(4 + 1)
    }
}

/// The evaluator's masking (train for validation, train + validation for test), batching and averaging, with a
/// hand-made scorer on a hand-made dataset.
@Suite struct TopKEvaluatorTests {
    /// 3 users × 6 items:
    /// - user 0: train {0, 1}, valid {2}, test {3};
    /// - user 1: train {4}, valid {0, 5}, test {1};
    /// - user 2: train {3}, valid {}, test {5}.
    static let dataset = InteractionDataset(
        train: CSRMatrix(columnCount: 6, rows: [[0, 1], [4], [3]]),
        valid: CSRMatrix(columnCount: 6, rows: [[2], [0, 5], []]),
        test: CSRMatrix(columnCount: 6, rows: [[3], [1], [5]]),
        userIDs: ["a", "b", "c"], itemIDs: ["0", "1", "2", "3", "4", "5"], source: "hand-made", format: .auto)

    /// Scores a user's train items 30, valid items 20, test items 10, the rest 0: without the right mask the
    /// top of each list is a seen item and the metrics drop.
    static func score(_ backend: any Backend, users: Tensor, input: Tensor, calls: inout [[Int32]]) throws -> Tensor {
        let batch = try backend.readInt32s(users)
        calls.append(batch)
        // The scorer gets each user's dense training row.
        let dense = try backend.readFloats(input)
        for (r, u) in batch.enumerated() {
            let expected = (0..<6).map { dataset.train.contains(Int(u), $0) ? Float(1) : 0 }
            #expect(Array(dense[(r * 6)..<((r + 1) * 6)]) == expected, "input row of user \(u)")
        }
        var values: [Float] = []
        for u in batch.map(Int.init) {
            values += (0..<6).map { i in
                dataset.train.contains(u, i) ? 30 : dataset.valid.contains(u, i) ? 20 : dataset.test.contains(u, i) ? 10 : 0
            }
        }
        return try backend.tensor(values, shape: [batch.count, 6])
    }

    @Test(arguments: ["cpu", "opencl"])
    func masksTrainForValidationAndTrainPlusValidationForTest(device: String) throws {
        let backend: any Backend
        if device == "cpu" {
            backend = CPUBackend()
        } else {
            guard let openCL = try PretrainTestSupport.openCLBackend("the evaluator test") else { return }
            backend = openCL
        }
        let evaluator = try TopKEvaluator(backend: backend, dataset: Self.dataset, batchSize: 2, cutoffs: [1, 2, 3, 6])
        var calls: [[Int32]] = []
        let valid = try evaluator.evaluate(.valid) { users, input in try Self.score(backend, users: users, input: input, calls: &calls) }
        #expect(calls == [[0, 1], [2]])  // batches of 2, the last one partial
        // Validation, train masked (worked by hand):
        // - user 0: ranks 2 3 4 5 (then −1 −1); truth {2}: a hit at rank 1.
        // - user 1: ranks 0 5 1 2 3 (then −1); 0 and 5 tie at 20 → 0 first; truth {0, 5}: hits at ranks 1 and 2.
        // - user 2: no validation item: zero.
        let expectedValid: [Int: (p: Double, r: Double, n: Double, m: Double)] = [
            1: (2.0 / 3, (1 + 0.5) / 3, 2.0 / 3, 2.0 / 3),
            2: ((0.5 + 1) / 3, 2.0 / 3, 2.0 / 3, 2.0 / 3),
            3: ((1.0 / 3 + 2.0 / 3) / 3, 2.0 / 3, 2.0 / 3, 2.0 / 3),
            6: ((1.0 / 6 + 2.0 / 6) / 3, 2.0 / 3, 2.0 / 3, 2.0 / 3),
        ]
        for (k, e) in expectedValid {
            RankingMetricsTests.close(valid.precision(at: k), e.p, "\(device) valid precision@\(k)")
            RankingMetricsTests.close(valid.recall(at: k), e.r, "\(device) valid recall@\(k)")
            RankingMetricsTests.close(valid.ndcg(at: k), e.n, "\(device) valid ndcg@\(k)")
            RankingMetricsTests.close(valid.mrr(at: k), e.m, "\(device) valid mrr@\(k)")
        }

        // Test, train + valid masked: every user's first unmasked item is its test item (user 0: 3 4 5; user 1:
        // 1 2 3; user 2: 5 0 1 …), so recall, NDCG and MRR are 1 at every K and precision is 1/K.
        let test = try evaluator.evaluate(.test) { users, input in try Self.score(backend, users: users, input: input, calls: &calls) }
        #expect(test.users == 3)
        for k in [1, 2, 3, 6] {
            RankingMetricsTests.close(test.precision(at: k), 1 / Double(k), "\(device) test precision@\(k)")
            RankingMetricsTests.close(test.recall(at: k), 1, "\(device) test recall@\(k)")
            RankingMetricsTests.close(test.ndcg(at: k), 1, "\(device) test ndcg@\(k)")
            RankingMetricsTests.close(test.mrr(at: k), 1, "\(device) test mrr@\(k)")
        }
    }
}
