import Foundation
import RefitCompute

/// The least-squares readout of target rows from a DiffRec model's last hidden layer: T ≈ [H, 1]·C over all users,
/// H the activations that enter the output layer at the final reverse step.
///
/// Why it matters for ReFiT: DiffRec's score row is exactly `[H, 1]·W_out` (the last step's posterior mean is its
/// x̂₀), so a reward whose optimum is `x₀_ref + T` (the anchored pathwise objective with a linear reward) can be met
/// by changing the output layer alone only as far as `[H, 1]·C`. What the fitted part adds to the model's ranking is
/// therefore what that fine-tuning can add at most; the whole network can move H as well, and how close fine-tuned
/// runs come to this bound is measured in docs/finetuning-experiments.md.
///
/// The Gram matrix and its inverse are Float64 on the host (once); the (U, I) products run on the device.
struct HiddenLayerFit {
    /// [H, 1], (U, h + 1), on the device.
    let features: Tensor
    /// (AᵀA + εI)⁻¹ in Float64, row-major (h + 1)².
    let inverseGram: [Double]
    let backend: any Backend

    /// `hidden`: (users, width) row-major on the host.
    init(hidden: [Float], width: Int, backend: any Backend) throws {
        precondition(width > 0 && hidden.count % width == 0)
        let users = hidden.count / width, n = width + 1
        var a = [Float](repeating: 1, count: users * n)
        for u in 0..<users { for j in 0..<width { a[u * n + j] = hidden[u * width + j] } }
        var gram = [Double](repeating: 0, count: n * n)
        a.withUnsafeBufferPointer { ap in
            gram.withUnsafeMutableBufferPointer { gp in
                for u in 0..<users {
                    let row = ap.baseAddress! + u * n
                    for i in 0..<n {
                        let ai = Double(row[i]), gi = gp.baseAddress! + i * n
                        for j in i..<n { gi[j] += ai * Double(row[j]) }
                    }
                }
            }
        }
        for i in 0..<n { for j in 0..<i { gram[i * n + j] = gram[j * n + i] } }
        // A tiny ridge keeps the Cholesky defined when hidden units are saturated or collinear; it moves the fit by
        // far less than Float32 rounding does.
        let ridge = 1e-9 * (0..<n).reduce(0.0) { $0 + gram[$1 * n + $1] } / Double(n) + 1e-12
        for i in 0..<n { gram[i * n + i] += ridge }
        inverseGram = try EASEModel.inverseOfSymmetricPositiveDefinite(gram, size: n)
        features = try backend.tensor(a, shape: [users, n])
        self.backend = backend
    }

    /// [H, 1]·C for C = (AᵀA + εI)⁻¹AᵀT: the fitted rows (U, I) of `targets` (U, I), row-major on the host.
    func fit(_ targets: [Float], columns: Int) throws -> [Float] {
        let users = features.rows, n = features.columns
        precondition(targets.count == users * columns)
        let t = try backend.tensor(targets, shape: [users, columns])
        let projected = try backend.makeTensor([n, columns], .float32)
        backend.matmul(features, transposeA: true, t, transposeB: false, into: projected, alpha: 1, beta: 0)
        // C = G⁻¹·(AᵀT) in Float64: G⁻¹ may have a wide range, AᵀT is only (h + 1) × I.
        let at = try backend.readFloats(projected)
        var c = [Float](repeating: 0, count: n * columns)
        var row = [Double](repeating: 0, count: columns)
        for i in 0..<n {
            for j in 0..<columns { row[j] = 0 }
            for k in 0..<n {
                let g = inverseGram[i * n + k]
                for j in 0..<columns { row[j] += g * Double(at[k * columns + j]) }
            }
            for j in 0..<columns { c[i * columns + j] = Float(row[j]) }
        }
        backend.write(c, to: projected)
        backend.matmul(features, transposeA: false, projected, transposeB: false, into: t, alpha: 1, beta: 0)
        return try backend.readFloats(t)
    }
}
