import Foundation
import Testing
@testable import Refit
import RefitCompute

/// Shared pieces of the DiffRec pre-training tests: a tiny structured dataset, tiny settings, temporary folders
/// and the optional OpenCL device.
enum PretrainTestSupport {
    /// A small dataset with cluster structure (users of cluster c mostly take items ≡ c mod 3), deterministic.
    /// Every user has 5–8 training items, one validation and one test item; a few users have no validation item,
    /// so DiffRec's "empty ground truth counts as zero" rule is exercised.
    static func tinyDataset(users: Int = 40, items: Int = 30, seed: UInt64 = 7) -> InteractionDataset {
        var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        func next(_ n: Int) -> Int {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            return Int(state % UInt64(n))
        }
        var train: [[Int32]] = [], valid: [[Int32]] = [], test: [[Int32]] = []
        for u in 0..<users {
            let cluster = u % 3
            var chosen: [Int32] = []
            let count = 7 + next(4)
            while chosen.count < count {
                // Mostly in-cluster, sometimes any item.
                let item = next(5) == 0 ? next(items) : (next(items / 3) * 3 + cluster) % items
                if !chosen.contains(Int32(item)) { chosen.append(Int32(item)) }
            }
            let hasValid = u % 10 != 9
            test.append([chosen[0]])
            valid.append(hasValid ? [chosen[1]] : [])
            train.append(Array(chosen[(hasValid ? 2 : 1)...]))
        }
        return InteractionDataset(
            train: CSRMatrix(columnCount: items, rows: train), valid: CSRMatrix(columnCount: items, rows: valid),
            test: CSRMatrix(columnCount: items, rows: test),
            userIDs: (0..<users).map { "u\($0)" }, itemIDs: (0..<items).map { "i\($0)" },
            source: "tiny", format: .auto)
    }

    /// A tiny DiffRec: dims [8], T = 5, one batch for the whole tiny dataset.
    static func tinySettings(epochs: Int = 4, batchSize: Int = 16) -> DiffRecSettings {
        var s = DiffRecSettings()
        s.dims = [8]
        s.steps = 5
        s.batchSize = batchSize
        s.epochs = epochs
        s.evalEvery = 100
        s.learningRate = 1e-2
        s.seed = 3
        return s
    }

    /// A fresh empty folder, removed when `body` returns.
    static func withTemporaryFolder<T>(_ body: (String) throws -> T) throws -> T {
        let folder = FileManager.default.temporaryDirectory
            .appendingPathComponent("refit-pretrain-tests-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        return try body(folder)
    }

    /// The OpenCL backend of the device `--device auto` takes, or nil with a printed note.
    static func openCLBackend(_ what: String) throws -> (any Backend)? {
        guard let device = DeviceSelection.automaticDevice else {
            print("note: no OpenCL device; \(what) runs on the CPU reference only")
            return nil
        }
        return try OpenCLBackend(device: device)
    }

    /// The named parameter tensors of a model (values, or another buffer of its store).
    static func named(_ store: ParameterStore, _ buffer: Tensor) throws -> [String: [Float]] {
        Dictionary(uniqueKeysWithValues: try store.namedTensors(of: buffer).map { ($0.name, $0.values) })
    }
}

/// Asserts |a − b| ≤ absolute + relative·|b| element-wise, naming the worst element.
func expectAllClose(_ a: [Float], _ b: [Float], absolute: Float, relative: Float, _ what: String,
                    sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(a.count == b.count, "\(what): \(a.count) vs \(b.count) elements", sourceLocation: sourceLocation)
    guard a.count == b.count, !a.isEmpty else { return }
    var worst = 0, worstExcess = -Float.infinity
    for i in a.indices {
        let excess = a[i].isFinite && b[i].isFinite ? abs(a[i] - b[i]) - (absolute + relative * abs(b[i])) : .infinity
        if excess > worstExcess { worst = i; worstExcess = excess }
    }
    #expect(worstExcess <= 0, "\(what): element \(worst) differs: \(a[worst]) vs \(b[worst])", sourceLocation: sourceLocation)
}
