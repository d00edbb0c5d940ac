import Foundation

/// Linear layers, matrix products, element-wise operations and memory.
extension KernelCases {
    /// (rows, inner, columns) of a product: 1, 7, 33, 257 in every position, non-multiples of the 12 × 32 (CPU) and
    /// 64 × 64 (GPU) tiles and of the 256-deep packed panel, and a tall transposed A (≥ 2048 rows: the CPU family
    /// splits its rows into blocks).
    static let productShapes: [(m: Int, k: Int, n: Int)] = [
        (7, 33, 257), (1, 1, 1), (1, 7, 33), (257, 7, 33), (33, 257, 7), (12, 256, 32), (13, 257, 31), (65, 513, 97), (2100, 40, 70),
    ]

    static let linear: [KernelCase] = linearForward + linearBackward + matmul

    /// Every activation, with and without bias, on every shape; and DiffRec's first layer at ML-1M (a batch of 400,
    /// 2810 items and 10 timestep dimensions to 600).
    static let linearForward: [KernelCase] = productShapes.flatMap { m, k, n in
        Activation.allCases.flatMap { activation in [true, false].map { forward(m, k, n, activation, withBias: $0) } }
    } + [forward(400, 2820, 600, .tanh, withBias: true)]

    static func forward(_ m: Int, _ k: Int, _ n: Int, _ activation: Activation, withBias: Bool) -> KernelCase {
        KernelCase(.linear, "linear forward \(activation)\(withBias ? " + bias" : "")", "\(dims(m, k)) · \(dims(n, k))ᵀ", .products(inner: k)) { be in
            let x = try be.tensor(CheckInputs.uniform(m * k, seed: 11), shape: [m, k])
            let w = try be.tensor(CheckInputs.uniform(n * k, seed: 12), shape: [n, k])
            let b = try be.tensor(CheckInputs.uniform(n, seed: 13), shape: [n])
            let y = try be.tensor(CheckInputs.nan(m * n), shape: [m, n])
            return .init({ be.linearForward(x: x, weight: w, bias: withBias ? b : nil, activation: activation, into: y) }, output: y)
        }
    }

    /// `linearBackward` (batch, inputs, outputs): activation backward, dX = dPre·W, dW += dPreᵀ·X and db += Σ dPre, each
    /// within the products' tolerance for its inner size; the last shape's dW is a tall transposed product.
    static let linearBackward: [KernelCase] = [(7, 33, 257), (1, 1, 1), (33, 257, 7), (65, 513, 97), (40, 70, 2100)].flatMap { batch, k, n in
        Activation.allCases.map { activation in
            KernelCase(.linear, "linear backward \(activation)", "\(dims(batch, k)) → \(n)", .products(inner: batch)) { be in
                let x = try be.tensor(CheckInputs.uniform(batch * k, seed: 21), shape: [batch, k])
                let w = try be.tensor(CheckInputs.uniform(n * k, seed: 22), shape: [n, k])
                let y = try be.tensor(CheckInputs.uniform(batch * n, seed: 23), shape: [batch, n])
                let dY = try be.tensor(CheckInputs.uniform(batch * n, seed: 24), shape: [batch, n])
                let dX = try be.tensor(CheckInputs.nan(batch * k), shape: [batch, k])
                let dW = try be.tensor(CheckInputs.uniform(n * k, seed: 25), shape: [n, k])  // accumulated into
                let dB = try be.tensor(CheckInputs.uniform(n, seed: 26), shape: [n])
                return .init({ be.linearBackward(x: x, weight: w, y: y, activation: activation, dY: dY, dX: dX, dWeight: dW, dBias: dB) },
                             outputs: [.init(dY, "dPre", tolerance: elementwiseRounding), .init(dX, "dX", tolerance: .products(inner: n)),
                                       .init(dW, "dW"), .init(dB, "db")])
            }
        }
    }

    /// Every transpose combination on every shape; the four (α, β) pairs rotate over the shapes, so each combination
    /// meets each pair, and the third pair adds a bias.
    /// Then the DiffRec layer's backward products at ML-1M: dX = dY'·W, and dW += dY'ᵀ·X for both
    /// layers, the last tall enough (2810 rows) for the CPU family to split its rows into blocks.
    static let matmul: [KernelCase] = productShapes.enumerated().flatMap { index, shape in
        let (m, k, n) = shape
        return [(false, false), (true, false), (false, true), (true, true)].enumerated().map { combination, transposes in
            let (alpha, beta): (Float, Float) = [(1, 0), (1, 1), (0.5, -2), (-1.5, 0)][(index + combination) % 4]
            return product(m, k, n, transposeA: transposes.0, transposeB: transposes.1, alpha: alpha, beta: beta,
                           bias: (index + combination) % 4 == 2)
        }
    } + [product(400, 600, 2820, transposeA: false, transposeB: false, alpha: 1, beta: 0),
         product(600, 400, 2820, transposeA: true, transposeB: false, alpha: 1, beta: 1),
         product(2810, 400, 600, transposeA: true, transposeB: false, alpha: 1, beta: 1)]

    /// C = α·op(A)·op(B) + β·C (+ bias). C starts as NaN when β is 0: it must not be read. |α| scales the products; β·C
    /// and the bias add at most |β| + 1 to an output, which the relative term absorbs.
    static func product(_ m: Int, _ k: Int, _ n: Int, transposeA: Bool, transposeB: Bool, alpha: Float, beta: Float,
                        bias withBias: Bool = false) -> KernelCase {
        KernelCase(.linear, "matmul A\(transposeA ? "ᵀ" : "")·B\(transposeB ? "ᵀ" : "")\(withBias ? " + bias" : "")",
                   "\(dims(m, k)) · \(dims(k, n)), α \(alpha) β \(beta)", .products(inner: k, scale: Double(abs(alpha)))) { be in
            let a = try be.tensor(CheckInputs.uniform(m * k, seed: UInt64(m * 31 + k)), shape: transposeA ? [k, m] : [m, k])
            let b = try be.tensor(CheckInputs.uniform(k * n, seed: UInt64(n * 17 + k)), shape: transposeB ? [n, k] : [k, n])
            let c = try be.tensor(beta == 0 ? CheckInputs.nan(m * n) : CheckInputs.uniform(m * n, seed: 5), shape: [m, n])
            let bias = withBias ? try be.tensor(CheckInputs.uniform(n, seed: 7), shape: [n]) : nil
            return .init({ be.matmul(a, transposeA: transposeA, b, transposeB: transposeB, into: c, alpha: alpha, beta: beta, bias: bias) },
                         output: c)
        }
    }

    // MARK: Element-wise

    /// `a·x + y`, which OpenCL C may contract into one fused multiply-add (FP_CONTRACT is on by default): one rounding
    /// apart, 2⁻²³ relative plus 1e-7 absolute for results near zero.
    static let elementwiseRounding = Tolerance(absolute: 1e-7, relative: 1.2e-7)

    /// add, multiply, scale, copies and dropout are single IEEE operations and match bit for bit; tanh may be 5 ulp
    /// off in OpenCL and 1 in glibc.
    static let elementwise: [KernelCase] = binary("add") { $0.add($1, $2, into: $3) } + binary("multiply") { $0.multiply($1, $2, into: $3) }
        + counts.map { n in
            KernelCase(.elementwise, "scale", "\(n)", .exact) { be in
                let x = try be.tensor(CheckInputs.uniform(n, seed: 1), shape: [n])
                return .init({ be.scale(x, by: -1.75) }, output: x)
            }
        } + counts.map { n in
            KernelCase(.elementwise, "axpy", "\(n)", elementwiseRounding) { be in
                let x = try be.tensor(CheckInputs.uniform(n, seed: 3), shape: [n]), y = try be.tensor(CheckInputs.uniform(n, seed: 4), shape: [n])
                return .init({ be.axpy(0.37, x, y) }, output: y)
            }
        } + counts.flatMap { n in
            // Inputs over [−12, 12) reach saturation, where tanh must be exactly ±1 or within an ulp of it.
            [false, true].map { inPlace in
                KernelCase(.elementwise, "tanh", "\(n)\(inPlace ? " in place" : "")", Tolerance(absolute: 1e-7, relative: 1e-6)) { be in
                    let x = try be.tensor(CheckInputs.uniform(n, seed: 5).map { $0 * 12 }, shape: [n])
                    let y = inPlace ? x : try be.tensor(CheckInputs.nan(n), shape: [n])
                    return .init({ be.tanh(x, into: y) }, output: y)
                }
            }
        } + counts.flatMap { n in
            // In place is how linearBackward calls it.
            Activation.allCases.flatMap { activation in
                [false, true].map { inPlace in
                    KernelCase(.elementwise, "activation backward \(activation)", "\(n)\(inPlace ? " in place" : "")", elementwiseRounding) { be in
                        let y = try be.tensor(CheckInputs.uniform(n, seed: 5).map { Foundation.tanh($0 * 12) }, shape: [n])
                        let dY = try be.tensor(CheckInputs.uniform(n, seed: 6), shape: [n])
                        let dPre = inPlace ? dY : try be.tensor(CheckInputs.nan(n), shape: [n])
                        return .init({ be.activationBackward(dY: dY, y: y, activation: activation, into: dPre) }, output: dPre)
                    }
                }
            }
        } + counts.flatMap { n in
            [(Float(0.5), UInt64(1), UInt64(0)), (0.1, 99, 12_345), (0.9, 0xFFFF_FFFF_FFFF, 1 << 40), (0, 5, 5)].map { p, seed, offset in
                KernelCase(.elementwise, "dropout", "\(n), p \(p), seed \(seed), offset \(offset)", .exact) { be in
                    let x = try be.tensor(CheckInputs.uniform(n, seed: 7), shape: [n]), y = try be.tensor(CheckInputs.nan(n), shape: [n])
                    return .init({ be.dropout(x, probability: p, seed: seed, offset: offset, into: y) }, output: y)
                }
            }
        } + rowShapes.flatMap { rows, columns in
            // Into a wider destination: whole, shifted, the second half, the last column (of one column: the whole).
            [(0, 0, columns), (0, 13, columns), (columns / 2, 3, columns - columns / 2), (columns - 1, 0, 1)].prefix(columns == 1 ? 3 : 4).map { from, to, width in
                KernelCase(.elementwise, "copy columns", "\(dims(rows, columns)) [\(from)..+\(width)] → \(dims(rows, columns + 13)) [\(to)]",
                           .exact) { be in
                    let source = try be.tensor(CheckInputs.uniform(rows * columns, seed: 10), shape: [rows, columns])
                    let destination = try be.tensor(CheckInputs.uniform(rows * (columns + 13), seed: 11), shape: [rows, columns + 13])
                    return .init({ be.copyColumns(source, sourceColumn: from, into: destination, destinationColumn: to, width: width) },
                                 output: destination)
                }
            }
        } + rowShapes.flatMap { rows, columns in
            // Two products and a sum: up to two roundings of values ≤ 4 in magnitude.
            ["", " into x", " into y"].map { alias in
                KernelCase(.elementwise, "combine rows", dims(rows, columns) + alias, Tolerance(absolute: 1e-6, relative: 2.4e-7)) { be in
                    let x = try be.tensor(CheckInputs.uniform(rows * columns, seed: 12), shape: [rows, columns])
                    let y = try be.tensor(CheckInputs.uniform(rows * columns, seed: 13), shape: [rows, columns])
                    let a = try be.tensor(CheckInputs.uniform(rows, seed: 14), shape: [rows])
                    let b = try be.tensor(CheckInputs.uniform(rows, seed: 15).map { $0 * 3 }, shape: [rows])
                    let z = alias == " into x" ? x : alias == " into y" ? y : try be.tensor(CheckInputs.nan(rows * columns), shape: [rows, columns])
                    return .init({ be.combineRows(x, scaledBy: a, y, scaledBy: b, into: z) }, output: z)
                }
            }
        }

    static func binary(_ name: String, _ operation: @escaping @Sendable (any Backend, Tensor, Tensor, Tensor) -> Void) -> [KernelCase] {
        counts.map { n in
            KernelCase(.elementwise, name, "\(n)", .exact) { be in
                let a = try be.tensor(CheckInputs.uniform(n, seed: 1), shape: [n]), b = try be.tensor(CheckInputs.uniform(n, seed: 2), shape: [n])
                let c = try be.tensor(CheckInputs.nan(n), shape: [n])
                return .init({ operation(be, a, b, c) }, output: c)
            }
        }
    }

    // MARK: Memory

    /// Fills and copies, exact. (Transfers and views are covered by every other case.)
    static let memory: [KernelCase] = counts.map { n in
        KernelCase(.memory, "fill", "\(n)", .exact) { be in
            let x = try be.tensor(CheckInputs.uniform(n, seed: 1), shape: [n])
            return .init({ be.fill(x, with: -1.5) }, output: x)
        }
    } + counts.map { n in
        KernelCase(.memory, "fill int32", "\(n)", .exact) { be in
            let x = try be.tensor(CheckInputs.integers(n, in: 0..<100, seed: 2), shape: [n])
            return .init({ be.fill(x, with: 123_456) }, output: x)
        }
    } + counts.map { n in
        KernelCase(.memory, "copy", "\(n)", .exact) { be in
            let x = try be.tensor(CheckInputs.uniform(n, seed: 3), shape: [n]), y = try be.tensor(CheckInputs.nan(n), shape: [n])
            return .init({ be.copy(x, to: y) }, output: y)
        }
    }
}
