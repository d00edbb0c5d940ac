import Foundation
import Testing
@testable import Refit

@Suite struct DataSyntheticTests {
    @Test func demoIsDeterministicAndShapedLikeRealFeedback() throws {
        let log = SyntheticDataset.demo()
        let again = SyntheticDataset.demo(seed: 2024)
        #expect(log.users == again.users && log.items == again.items && log.timestamps == again.timestamps)
        #expect(SyntheticDataset.demo(seed: 1).items != log.items)

        let dataset = try DataTestSupport.demo.get()
        #expect(try InteractionDataset(log: log).fingerprint == dataset.fingerprint)
        let s = dataset.statistics
        #expect(s.users == 2_000 && s.items == 1_000)
        #expect((90_000...110_000).contains(s.interactions))
        #expect(s.hasTimestamps && !s.hasRatings && s.splitMethod.hasPrefix("chronological"))
        // Heavy-tailed activity: the busiest user has many times the median.
        #expect(s.interactionsPerUser.min >= 5)
        #expect(Double(s.interactionsPerUser.max) > 8 * s.interactionsPerUser.median)
        // Popularity skew: the top 10% of items hold well over 10% of interactions.
        let popularity = dataset.train.columnCounts().sorted(by: >)
        #expect(Double(popularity.prefix(100).reduce(0, +)) > 0.3 * Double(dataset.train.nonzeroCount))
    }

    /// The data must be learnable: an item-based cosine scorer (a model that can only exploit co-occurrence
    /// structure) clearly beats the popularity ranking on validation Recall@20.
    @Test func collaborativeScorerBeatsPopularity() throws {
        let dataset = try DataTestSupport.demo.get()
        let train = dataset.train, valid = dataset.valid
        let items = dataset.itemCount

        // Item–item co-occurrence from training rows, then cosine similarity.
        var cooccurrence = [Float](repeating: 0, count: items * items)
        cooccurrence.withUnsafeMutableBufferPointer { c in
            for u in 0..<train.rowCount {
                let row = train.row(u)
                for i in row { for j in row { c[Int(i) * items + Int(j)] += 1 } }
            }
            let norms = (0..<items).map { c[$0 * items + $0].squareRoot() }
            for i in 0..<items { for j in 0..<items where norms[i] > 0 && norms[j] > 0 { c[i * items + j] /= norms[i] * norms[j] } }
        }
        let popularity = train.columnCounts().map(Float.init)

        var popularityRecall = 0.0, cosineRecall = 0.0, evaluated = 0
        var scores = [Float](repeating: 0, count: items)
        for u in 0..<dataset.userCount where valid.rowLength(u) > 0 {
            evaluated += 1
            popularityRecall += recall(popularity, train.row(u), valid.row(u))
            scores.withUnsafeMutableBufferPointer { s in
                for j in 0..<items { s[j] = 0 }
                cooccurrence.withUnsafeBufferPointer { c in
                    for i in train.row(u) {
                        let base = Int(i) * items
                        for j in 0..<items { s[j] += c[base + j] }
                    }
                }
            }
            cosineRecall += recall(scores, train.row(u), valid.row(u))
        }
        popularityRecall /= Double(evaluated)
        cosineRecall /= Double(evaluated)
        print("builtin:demo validation Recall@20: popularity \(popularityRecall), item cosine \(cosineRecall)")
        #expect(popularityRecall > 0.01)
        #expect(cosineRecall > 1.5 * popularityRecall)
    }

    /// Recall@20 of one user's scores, with the training items masked.
    private func recall(_ scores: [Float], _ seen: ArraySlice<Int32>, _ truth: ArraySlice<Int32>) -> Double {
        let masked = Set(seen)
        var top: [(score: Float, item: Int32)] = []
        for (j, score) in scores.enumerated() where !masked.contains(Int32(j)) {
            if top.count == 20, score <= top[19].score { continue }
            let at = top.firstIndex { $0.score < score } ?? top.count
            top.insert((score, Int32(j)), at: at)
            if top.count > 20 { top.removeLast() }
        }
        return Double(top.filter { truth.contains($0.item) }.count) / Double(truth.count)
    }
}
