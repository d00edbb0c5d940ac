import Foundation

/// The sequence-model operations of the reference backend (SASRec, DreamRec): Float accumulation in the order the
/// kernels in Kernels/sequence.cl use, so that the two agree to rounding.
extension CPUBackend {
    public func gatherRows(_ table: Tensor, indices: Tensor, into y: Tensor) {
        let (rows, d) = (table.rows, table.columns)
        precondition(y.rows == indices.count && y.columns == d, "gatherRows shapes")
        let tp = floats(table), ip = ints(indices), yp = floats(y)
        for r in 0..<indices.count {
            let index = Int(ip[r])
            precondition(index < rows, "gatherRows index \(index) out of range")
            for c in 0..<d { yp[r * d + c] = index < 0 ? 0 : tp[index * d + c] }
        }
    }

    public func scatterAddRows(_ dY: Tensor, plan: ScatterPlan, into dTable: Tensor) {
        let d = dTable.columns
        precondition(dY.columns == d, "scatterAddRows: dY and dTable differ in width")
        let targets = ints(plan.targets), offsets = ints(plan.offsets), sources = ints(plan.sources)
        let g = floats(dY), out = floats(dTable)
        for u in 0..<plan.count {
            let target = Int(targets[u])
            precondition(target >= 0 && target < dTable.rows, "scatterAddRows target \(target) out of range")
            for c in 0..<d {
                var acc: Float = 0
                for j in Int(offsets[u])..<Int(offsets[u + 1]) { acc += g[Int(sources[j]) * d + c] }
                out[target * d + c] += acc
            }
        }
    }

    public func layerNormForward(_ x: Tensor, gamma: Tensor, beta: Tensor, epsilon: Float, into y: Tensor, mean: Tensor, rstd: Tensor) {
        let (rows, d) = (x.rows, x.columns)
        precondition(y.count == x.count && gamma.count == d && beta.count == d && mean.count == rows && rstd.count == rows,
                     "layerNormForward shapes")
        let xp = floats(x), yp = floats(y), gp = floats(gamma), bp = floats(beta), mp = floats(mean), sp = floats(rstd)
        for r in 0..<rows {
            let row = xp + r * d
            var total: Float = 0
            for c in 0..<d { total += row[c] }
            let mu = total / Float(d)
            var squares: Float = 0
            for c in 0..<d { squares += (row[c] - mu) * (row[c] - mu) }
            let rs = 1 / (squares / Float(d) + epsilon).squareRoot()
            mp[r] = mu
            sp[r] = rs
            for c in 0..<d { yp[r * d + c] = (row[c] - mu) * rs * gp[c] + bp[c] }
        }
    }

    public func layerNormBackward(_ x: Tensor, gamma: Tensor, mean: Tensor, rstd: Tensor, dY: Tensor,
                                  dX: Tensor, dGamma: Tensor, dBeta: Tensor) {
        let (rows, d) = (x.rows, x.columns)
        precondition(dY.count == x.count && dX.count == x.count && gamma.count == d && dGamma.count == d && dBeta.count == d
                     && mean.count == rows && rstd.count == rows, "layerNormBackward shapes")
        let xp = floats(x), gp = floats(gamma), mp = floats(mean), sp = floats(rstd), g = floats(dY), out = floats(dX)
        let dgp = floats(dGamma), dbp = floats(dBeta)
        // The parameter gradients first: dX may alias dY.
        for c in 0..<d {
            var accGamma: Float = 0, accBeta: Float = 0
            for r in 0..<rows {
                accGamma += g[r * d + c] * ((xp[r * d + c] - mp[r]) * sp[r])
                accBeta += g[r * d + c]
            }
            dgp[c] += accGamma
            dbp[c] += accBeta
        }
        // dX = rstd·(ĝ − mean(ĝ) − x̂·mean(ĝ ⊙ x̂)) with ĝ = dY ⊙ gamma.
        for r in 0..<rows {
            var sumG: Float = 0, sumGX: Float = 0
            for c in 0..<d {
                let gHat = g[r * d + c] * gp[c]
                sumG += gHat
                sumGX += gHat * ((xp[r * d + c] - mp[r]) * sp[r])
            }
            let meanG = sumG / Float(d), meanGX = sumGX / Float(d)
            for c in 0..<d {
                let xHat = (xp[r * d + c] - mp[r]) * sp[r]
                out[r * d + c] = sp[r] * (g[r * d + c] * gp[c] - meanG - xHat * meanGX)
            }
        }
    }

    public func gelu(_ x: Tensor, into y: Tensor) {
        precondition(x.count == y.count, "gelu shapes")
        let xp = floats(x), yp = floats(y)
        for i in 0..<x.count { yp[i] = 0.5 * xp[i] * (1 + Foundation.erf(xp[i] * 0.70710678)) }
    }

    public func geluBackward(_ x: Tensor, dY: Tensor, into dX: Tensor) {
        precondition(x.count == dY.count && x.count == dX.count, "geluBackward shapes")
        let xp = floats(x), g = floats(dY), out = floats(dX)
        for i in 0..<x.count {
            let v = xp[i]
            let cdf = 0.5 * (1 + Foundation.erf(v * 0.70710678))
            let pdf = Foundation.exp(-0.5 * v * v) * 0.39894228
            out[i] = g[i] * (cdf + v * pdf)
        }
    }

    /// Checks the attention shapes and returns B and d.
    private func attentionShapes(_ q: Tensor, _ k: Tensor, _ v: Tensor, start: Tensor, length: Int,
                                 probabilities: Tensor, _ others: Tensor...) -> (Int, Int) {
        precondition(length >= 1 && q.rows % length == 0, "attention: \(q.rows) rows are not whole sequences of \(length)")
        let (batch, d) = (q.rows / length, q.columns)
        for t in [k, v] + others { precondition(t.rows == q.rows && t.columns == d, "attention shapes") }
        precondition(start.count == batch && probabilities.rows == q.rows && probabilities.columns == length, "attention shapes")
        let sp = ints(start)
        for b in 0..<batch { precondition(sp[b] >= 0 && Int(sp[b]) <= length, "attention start \(sp[b]) outside 0…\(length)") }
        return (batch, d)
    }

    public func causalAttentionForward(q: Tensor, k: Tensor, v: Tensor, start: Tensor, length: Int, scale: Float,
                                       probabilities: Tensor, into out: Tensor) {
        let (batch, d) = attentionShapes(q, k, v, start: start, length: length, probabilities: probabilities, out)
        let qp = floats(q), kp = floats(k), vp = floats(v), sp = ints(start), pp = floats(probabilities), op = floats(out)
        for b in 0..<batch {
            let first = Int(sp[b])
            for i in 0..<length {
                let row = b * length + i
                let p = pp + row * length
                for j in 0..<length { p[j] = 0 }
                for c in 0..<d { op[row * d + c] = 0 }
                guard i >= first else { continue }
                var maximum = -Float.infinity
                for j in first...i {
                    var dot: Float = 0
                    for c in 0..<d { dot += qp[row * d + c] * kp[(b * length + j) * d + c] }
                    p[j] = scale * dot
                    maximum = max(maximum, p[j])
                }
                var total: Float = 0
                for j in first...i {
                    p[j] = Foundation.exp(p[j] - maximum)
                    total += p[j]
                }
                for j in first...i { p[j] /= total }
                for c in 0..<d {
                    var acc: Float = 0
                    for j in first...i { acc += p[j] * vp[(b * length + j) * d + c] }
                    op[row * d + c] = acc
                }
            }
        }
    }

    public func causalAttentionBackward(q: Tensor, k: Tensor, v: Tensor, start: Tensor, length: Int, scale: Float,
                                        probabilities: Tensor, dOut: Tensor, dQ: Tensor, dK: Tensor, dV: Tensor) {
        let (batch, d) = attentionShapes(q, k, v, start: start, length: length, probabilities: probabilities, dOut, dQ, dK, dV)
        let qp = floats(q), kp = floats(k), vp = floats(v), sp = ints(start), pp = floats(probabilities), g = floats(dOut)
        let dq = floats(dQ), dk = floats(dK), dv = floats(dV)
        // dS_ij = P_ij·(dP_ij − Σ_j' P_ij'·dP_ij') with dP_ij = dOut_i·v_j; dQ_i = scale·Σ_j dS_ij·k_j,
        // dK_j = scale·Σ_i dS_ij·q_i, dV_j = Σ_i P_ij·dOut_i.
        var dS = [Float](repeating: 0, count: length * length)
        for b in 0..<batch {
            let first = Int(sp[b])
            for i in 0..<length * length { dS[i] = 0 }
            for i in first..<length {
                let row = b * length + i
                var dP = [Float](repeating: 0, count: length)
                var delta: Float = 0
                for j in first...i {
                    for c in 0..<d { dP[j] += g[row * d + c] * vp[(b * length + j) * d + c] }
                    delta += pp[row * length + j] * dP[j]
                }
                for j in first...i { dS[i * length + j] = pp[row * length + j] * (dP[j] - delta) }
            }
            for i in 0..<length {
                let row = b * length + i
                for c in 0..<d {
                    var accQ: Float = 0, accK: Float = 0, accV: Float = 0
                    if i >= first {
                        for j in first...i { accQ += scale * dS[i * length + j] * kp[(b * length + j) * d + c] }
                        for later in i..<length {
                            accK += scale * dS[later * length + i] * qp[(b * length + later) * d + c]
                            accV += pp[(b * length + later) * length + i] * g[(b * length + later) * d + c]
                        }
                    }
                    dq[row * d + c] = accQ
                    dk[row * d + c] = accK
                    dv[row * d + c] = accV
                }
            }
        }
    }

    public func softmaxCrossEntropy(_ logits: Tensor, targets: Tensor, gradientScale: Float, loss: Tensor, dLogits: Tensor?) {
        let (rows, n) = (logits.rows, logits.columns)
        precondition(targets.count == rows && loss.count == rows && (dLogits?.count ?? logits.count) == logits.count,
                     "softmaxCrossEntropy shapes")
        let xp = floats(logits), tp = ints(targets), lp = floats(loss), dp = dLogits.map(floats)
        for r in 0..<rows {
            let row = xp + r * n
            let target = Int(tp[r])
            precondition(target < n, "softmaxCrossEntropy target \(target) outside \(n) columns")
            guard target >= 0 else {
                lp[r] = 0
                if let dp { for c in 0..<n { dp[r * n + c] = 0 } }
                continue
            }
            var maximum = -Float.infinity
            for c in 0..<n { maximum = max(maximum, row[c]) }
            var total: Float = 0
            for c in 0..<n { total += Foundation.exp(row[c] - maximum) }
            // (max − x_t) + log Σ, for the same reason as logSoftmaxRows: a small loss stays exact.
            lp[r] = (maximum - row[target]) + Foundation.log(total)
            if let dp {
                for c in 0..<n {
                    let softmax = Foundation.exp(row[c] - maximum) / total
                    dp[r * n + c] = gradientScale * (c == target ? softmax - 1 : softmax)
                }
            }
        }
    }
}
