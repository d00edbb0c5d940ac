import Foundation
import RefitCompute

/// EASE (Steck, WWW 2019): a linear item–item model with a closed form. With G = XᵀX the training Gram matrix and
/// P = (G + λI)⁻¹, the weights are `B_ij = −P_ij / P_jj` (zero diagonal) and a user's scores are `x_u·B`.
///
/// It is a strong simple baseline and a collaborative teacher for ReFiT's rewards (`Teacher.ease`). Its cost is O(I²) memory and O(I³) time for the inverse, once:
/// fine for thousands of items, refused above `maximumItems`.
public final class EASEModel {
    public static let maximumItems = ItemToItemModel.maximumItems
    public let lambda: Double
    public var itemCount: Int { linear.itemCount }
    /// B as an item-to-item model: scores are x_u·B.
    let linear: ItemToItemModel
    /// B, row-major (I, I), on the device.
    var weights: Tensor { linear.weights }

    public init(backend: any Backend, train: CSRMatrix, lambda: Double) throws {
        let n = train.columnCount
        try ItemToItemModel.checkSize(train, "EASE")
        guard lambda > 0 else { throw ModelError.unsupported("EASE's L2 weight λ must be positive") }
        self.lambda = lambda
        let inverse = try Self.inverseOfSymmetricPositiveDefinite(Self.regularisedGram(train, lambda: lambda), size: n)
        var b = [Float](repeating: 0, count: n * n)
        for i in 0..<n {
            for j in 0..<n where i != j { b[i * n + j] = Float(-inverse[i * n + j] / inverse[j * n + j]) }
        }
        linear = try ItemToItemModel(name: "EASE (λ = \(ItemToItemModel.format(lambda)))", weights: b, itemCount: n, backend: backend)
    }

    /// G + λI in Float64, row-major; G = XᵀX counts the users who have both items. O(Σ_u |x_u|²).
    static func regularisedGram(_ train: CSRMatrix, lambda: Double) -> [Double] { ItemToItemModel.gram(train, diagonal: lambda) }

    /// A⁻¹ for a symmetric positive-definite A (row-major, n×n), in Float64: A = LLᵀ (Cholesky), then
    /// X = L⁻¹ by forward substitution, then A⁻¹ = XᵀX. Every inner loop runs along a row, so it is contiguous
    /// and vectorises. Throws when A is not positive definite.
    static func inverseOfSymmetricPositiveDefinite(_ a: [Double], size n: Int) throws -> [Double] {
        var l = [Double](repeating: 0, count: n * n)
        var x = [Double](repeating: 0, count: n * n)
        var inverse = [Double](repeating: 0, count: n * n)
        try l.withUnsafeMutableBufferPointer { lp in
            let l = lp.baseAddress!
            for i in 0..<n {
                let li = l + i * n
                for j in 0...i {
                    let lj = l + j * n
                    // Four partial sums: the reduction then has independent chains to overlap.
                    var s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0
                    var k = 0
                    while k + 4 <= j {
                        s0 += li[k] * lj[k]; s1 += li[k + 1] * lj[k + 1]; s2 += li[k + 2] * lj[k + 2]; s3 += li[k + 3] * lj[k + 3]
                        k += 4
                    }
                    while k < j { s0 += li[k] * lj[k]; k += 1 }
                    let s = a[i * n + j] - ((s0 + s1) + (s2 + s3))
                    if i == j {
                        guard s > 0 else { throw ModelError.unsupported("the regularised Gram matrix is not positive definite (pivot \(i))") }
                        li[i] = s.squareRoot()
                    } else {
                        li[j] = s / lj[j]
                    }
                }
            }
        }
        l.withUnsafeBufferPointer { lp in
            x.withUnsafeMutableBufferPointer { xp in
                let l = lp.baseAddress!, x = xp.baseAddress!
                // Row i of X = L⁻¹: (e_i − Σ_{k<i} L_ik·X_k) / L_ii, where row k of X is zero beyond column k.
                for i in 0..<n {
                    let xi = x + i * n
                    for k in 0..<i {
                        let c = l[i * n + k]
                        if c == 0 { continue }
                        let xk = x + k * n
                        for j in 0...k { xi[j] -= c * xk[j] }
                    }
                    xi[i] += 1
                    let d = 1 / l[i * n + i]
                    for j in 0...i { xi[j] *= d }
                }
            }
        }
        x.withUnsafeBufferPointer { xp in
            inverse.withUnsafeMutableBufferPointer { ip in
                let x = xp.baseAddress!, out = ip.baseAddress!
                // (XᵀX)_ij = Σ_k X_ki·X_kj, with X_k zero beyond column k: the lower triangle, then mirrored.
                for k in 0..<n {
                    let xk = x + k * n
                    for i in 0...k {
                        let c = xk[i]
                        if c == 0 { continue }
                        let row = out + i * n
                        for j in 0...i { row[j] += c * xk[j] }
                    }
                }
                for i in 0..<n { for j in 0..<i { out[j * n + i] = out[i * n + j] } }
            }
        }
        return inverse
    }

    /// Scores (B, I) for dense training rows `input` (B, I). Overwritten by the next call with the same batch size.
    public func scores(_ input: Tensor) throws -> Tensor { try linear.scores(input) }
}
