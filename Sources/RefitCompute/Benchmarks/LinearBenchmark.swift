import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Times the linear layer's three products on a backend, in GFLOP/s, beside the CPU reference measured in the same
/// run and, when the machine has one, OpenBLAS:
/// - forward `y = tanh(x·Wᵀ + b)` (`linearForward`, bias and tanh fused),
/// - the input gradient `dX = dY'·W` (`matmul`, no transposes),
/// - the weight gradient `dW += dY'ᵀ·X` (`matmul`, A transposed, beta 1).
///
/// Each product counts 2·B·K·N floating-point operations. The device runs each product a few times first (PoCL
/// compiles each kernel at its first launch), then `repeats` times, each waited for; the table gives the median and
/// the best. The CPU reference is a plain triple loop (about 1 GFLOP/s): it computes only `referenceRows` rows of the
/// batch, once — for dW that shortens the inner dimension — which is enough to measure its rate. OpenBLAS is
/// loaded at run time (`dlopen`), so Refit neither links nor needs it.
public struct LinearBenchmark: Sendable {
    /// One layer: a batch of `batch` rows of `inputs` features mapped to `outputs`.
    public struct Shape: Sendable, Equatable, CustomStringConvertible {
        public var batch: Int
        public var inputs: Int
        public var outputs: Int

        public init(batch: Int, inputs: Int, outputs: Int) {
            (self.batch, self.inputs, self.outputs) = (batch, inputs, outputs)
        }

        public var description: String { "\(batch)×\(inputs)→\(outputs)" }
    }

    public enum Product: String, Sendable, CaseIterable, CustomStringConvertible {
        case forward
        case inputGradient
        case weightGradient

        public var description: String {
            switch self {
            case .forward: "forward tanh(x·Wᵀ+b)"
            case .inputGradient: "dX = dY'·W    (NN)"
            case .weightGradient: "dW += dY'ᵀ·X  (TN)"
            }
        }
    }

    public struct Measurement: Sendable {
        public let shape: Shape
        public let product: Product
        /// 2·B·K·N.
        public let operations: Double
        /// Seconds per product on the benchmarked backend: the median and the best of the repeats.
        public let medianSeconds: Double
        public let bestSeconds: Double
        public let referenceGFLOPS: Double?
        public let blasGFLOPS: Double?

        public var medianGFLOPS: Double { operations / medianSeconds / 1e9 }
        public var bestGFLOPS: Double { operations / bestSeconds / 1e9 }
    }

    public struct Report: Sendable {
        public let device: String
        /// For an OpenCL device: its kernel parameters and their source (a tuning-table row or the defaults).
        public let parameters: KernelParameters?
        public let parametersSource: String?
        public let measurements: [Measurement]
        public let notes: [String]

        /// The results for scripts (Tools/bench-vs-pytorch.sh): the device and one row per measurement.
        public struct Summary: Codable, Sendable {
            public struct Row: Codable, Sendable {
                public var shape: String, product: String
                public var medianGFLOPS: Double, bestGFLOPS: Double, referenceGFLOPS: Double?, blasGFLOPS: Double?
            }
            public var device: String
            /// The kernel parameters the device ran with (every one by name) and where they came from.
            public var parameters: [String: Int]?
            public var parametersSource: String?
            public var rows: [Row]
        }

        public var summary: Summary {
            Summary(device: device, parameters: parameters?.values, parametersSource: parametersSource, rows: measurements.map {
                .init(shape: $0.shape.description, product: $0.product.rawValue, medianGFLOPS: $0.medianGFLOPS,
                      bestGFLOPS: $0.bestGFLOPS, referenceGFLOPS: $0.referenceGFLOPS, blasGFLOPS: $0.blasGFLOPS)
            })
        }

        /// The results as an aligned text table with its notes.
        public var table: String {
            let header = ["shape B×K→N", "product", "median GFLOP/s", "best GFLOP/s", "ms (median)", "CPU reference", "OpenBLAS"]
            func number(_ value: Double?, _ digits: Int = 1) -> String { value.map { String(format: "%.\(digits)f", $0) } ?? "–" }
            var rows: [[String]] = []
            for m in measurements {
                rows.append([m.product == .forward ? m.shape.description : "", m.product.description,
                             number(m.medianGFLOPS), number(m.bestGFLOPS), number(m.medianSeconds * 1000, 2),
                             number(m.referenceGFLOPS, 2), number(m.blasGFLOPS)])
            }
            let widths = header.indices.map { c in max(header[c].count, rows.map { $0[c].count }.max() ?? 0) }
            func line(_ cells: [String]) -> String {
                cells.enumerated().map { c, cell in
                    let pad = String(repeating: " ", count: widths[c] - cell.count)
                    return c < 2 ? cell + pad : pad + cell
                }.joined(separator: "  ")
            }
            var text = ["Linear layer benchmark on \(device)"]
            if let parameters, let parametersSource {
                text.append("kernel parameters: \(parametersSource)")
                text.append("  " + KernelParameters.entries.filter { $0.name.hasPrefix("LIN_") }
                    .map { "\($0.name)=\(parameters[keyPath: $0.keyPath])" }.joined(separator: " "))
            }
            text.append("")
            text.append(line(header))
            text.append(widths.map { String(repeating: "-", count: $0) }.joined(separator: "  "))
            text += rows.map(line)
            text.append("")
            text += notes
            return text.joined(separator: "\n")
        }
    }

    /// DiffRec's ML-1M layers at batch 400 (dims [200, 600], 2810 items plus a 10-wide time embedding).
    public static let diffRecML1M: [Shape] = [
        Shape(batch: 400, inputs: 2820, outputs: 600), Shape(batch: 400, inputs: 600, outputs: 200),
        Shape(batch: 400, inputs: 200, outputs: 600), Shape(batch: 400, inputs: 600, outputs: 2810),
    ]
    public static let cube = Shape(batch: 1024, inputs: 1024, outputs: 1024)

    public var shapes: [Shape]
    public var repeats: Int
    public var warmUps: Int
    /// Batch rows the CPU reference computes (0: skip it).
    public var referenceRows: Int
    public var compareWithBLAS: Bool

    public init(shapes: [Shape] = LinearBenchmark.diffRecML1M + [LinearBenchmark.cube], repeats: Int = 20, warmUps: Int = 2,
                referenceRows: Int = 8, compareWithBLAS: Bool = true) {
        precondition(repeats >= 1 && warmUps >= 0 && referenceRows >= 0)
        self.shapes = shapes
        self.repeats = repeats
        self.warmUps = warmUps
        self.referenceRows = referenceRows
        self.compareWithBLAS = compareWithBLAS
    }

    /// Runs every shape and product on `backend`, then the CPU reference and OpenBLAS (last, since OpenBLAS's threads
    /// keep spinning for a while after each call). `progress` hears one line per step.
    public func run(on backend: any Backend, progress: (String) -> Void = { _ in }) throws -> Report {
        let onReference = backend is CPUBackend
        var notes: [String] = []
        var timings: [(shape: Shape, measured: Shape, product: Product, seconds: [Double])] = []
        for shape in shapes {
            progress("timing \(shape) on \(backend.deviceDescription)")
            let rows = onReference ? min(shape.batch, max(referenceRows, 1)) : shape.batch
            let layer = try Layer(backend, shape, rows: rows)
            for product in Product.allCases {
                for _ in 0..<(onReference ? 0 : warmUps) { layer.run(product) }
                try backend.synchronize()
                var seconds: [Double] = []
                for _ in 0..<(onReference ? 1 : repeats) {
                    seconds.append(try Self.time { layer.run(product); try backend.synchronize() })
                }
                timings.append((shape, Shape(batch: rows, inputs: shape.inputs, outputs: shape.outputs), product, seconds))
            }
        }
        if onReference {
            notes.append("The CPU reference is the benchmarked device: it computes \(max(referenceRows, 1)) rows of each batch, once.")
        } else {
            notes.append("Each product: \(warmUps) warm-up runs, then the median and best of \(repeats), each waited for.")
        }

        var reference: [String: Double] = [:]
        if referenceRows > 0 && !onReference {
            let cpu = CPUBackend()
            for shape in shapes {
                progress("timing \(shape) on the CPU reference (\(referenceRows) rows)")
                let layer = try Layer(cpu, shape, rows: min(referenceRows, shape.batch))
                for product in Product.allCases {
                    let seconds = try Self.time { layer.run(product) }
                    reference["\(shape) \(product)"] = layer.operations / seconds / 1e9
                }
            }
            notes.append("CPU reference: plain Swift, \(referenceRows) rows of each batch (for dW: an inner dimension of \(referenceRows)), one run.")
        }

        var blas: [String: Double] = [:]
        if compareWithBLAS {
            if let library = BLASLibrary.load() {
                for shape in shapes {
                    progress("timing \(shape) on \(library.description)")
                    for product in Product.allCases {
                        blas["\(shape) \(product)"] = library.gigaflops(product, shape, repeats: max(3, repeats / 2))
                    }
                }
                notes.append("\(library.description): cblas_sgemm on the host arrays, the same products (bias and tanh left out), median of \(max(3, repeats / 2)).")
                if library.description.contains("Prescott") {
                    notes.append("OpenBLAS took its generic x86-64 kernels here (it misdetects some CPUs); OPENBLAS_CORETYPE=SkylakeX selects its AVX-512 ones.")
                }
            } else {
                notes.append("OpenBLAS: not found (libopenblas.so.0), so not compared.")
            }
        }

        let measurements = timings.map { shape, measured, product, seconds in
            let sorted = seconds.sorted()
            let key = "\(shape) \(product)"
            return Measurement(shape: measured, product: product, operations: 2 * Double(measured.batch * measured.inputs * measured.outputs),
                               medianSeconds: sorted[sorted.count / 2], bestSeconds: sorted[0],
                               referenceGFLOPS: reference[key], blasGFLOPS: blas[key])
        }
        let openCL = backend as? OpenCLBackend
        return Report(device: backend.deviceDescription, parameters: openCL?.parameters, parametersSource: openCL?.parametersSource,
                      measurements: measurements, notes: notes)
    }

    static func time(_ work: () throws -> Void) throws -> Double {
        let elapsed = try ContinuousClock().measure(work)
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
    }

    /// One layer's tensors on a backend, `rows` of its batch.
    struct Layer {
        let backend: any Backend
        let x, weight, bias, y, dY, dX, dWeight: Tensor
        let operations: Double

        init(_ backend: any Backend, _ shape: Shape, rows: Int) throws {
            self.backend = backend
            let (b, k, n) = (rows, shape.inputs, shape.outputs)
            func random(_ dims: [Int], _ seed: UInt64, scale: Float) throws -> Tensor {
                let t = try backend.makeTensor(dims, .float32)
                backend.fillUniform(t, seed: seed, offset: 0)
                backend.scale(t, by: scale)
                return t
            }
            x = try random([b, k], 1, scale: 1)
            weight = try random([n, k], 2, scale: 1 / Float(k).squareRoot())
            bias = try random([n], 3, scale: 0.01)
            y = try backend.makeTensor([b, n], .float32)
            dY = try random([b, n], 4, scale: 1)
            dX = try backend.makeTensor([b, k], .float32)
            dWeight = try backend.makeTensor([n, k], .float32)
            operations = 2 * Double(b * k * n)
            try backend.synchronize()
        }

        func run(_ product: Product) {
            switch product {
            case .forward: backend.linearForward(x: x, weight: weight, bias: bias, activation: .tanh, into: y)
            case .inputGradient: backend.matmul(dY, transposeA: false, weight, transposeB: false, into: dX, alpha: 1, beta: 0)
            case .weightGradient: backend.matmul(dY, transposeA: true, x, transposeB: false, into: dWeight, alpha: 1, beta: 1)
            }
        }
    }
}

/// OpenBLAS's `cblas_sgemm`, found at run time.
struct BLASLibrary: CustomStringConvertible {
    typealias SGEMM = @convention(c) (Int32, Int32, Int32, Int32, Int32, Int32, Float, UnsafePointer<Float>?, Int32,
                                      UnsafePointer<Float>?, Int32, Float, UnsafeMutablePointer<Float>?, Int32) -> Void
    typealias CoreName = @convention(c) () -> UnsafePointer<CChar>?
    let sgemm: SGEMM
    let description: String

    static func load() -> BLASLibrary? {
        for name in ["libopenblas.so.0", "libopenblas.so", "libopenblas.dylib"] {
            guard let handle = dlopen(name, RTLD_NOW | RTLD_LOCAL), let symbol = dlsym(handle, "cblas_sgemm") else { continue }
            var description = "OpenBLAS"
            if let core = dlsym(handle, "openblas_get_corename"), let text = unsafeBitCast(core, to: CoreName.self)() {
                description += " (\(String(cString: text)) kernels)"
            }
            return BLASLibrary(sgemm: unsafeBitCast(symbol, to: SGEMM.self), description: description)
        }
        return nil
    }

    /// The median rate of `repeats` runs of one product at `shape`, after one warm-up.
    func gigaflops(_ product: LinearBenchmark.Product, _ shape: LinearBenchmark.Shape, repeats: Int) -> Double? {
        let (b, k, n) = (Int32(shape.batch), Int32(shape.inputs), Int32(shape.outputs))
        let (rowMajor, noTrans, trans): (Int32, Int32, Int32) = (101, 111, 112)
        let x = [Float](repeating: 0.5, count: shape.batch * shape.inputs)
        let w = [Float](repeating: 0.25, count: shape.outputs * shape.inputs)
        let dY = [Float](repeating: 0.125, count: shape.batch * shape.outputs)
        var out = [Float](repeating: 0, count: max(shape.batch * shape.outputs, shape.batch * shape.inputs, shape.outputs * shape.inputs))
        func run() {
            out.withUnsafeMutableBufferPointer { c in
                switch product {
                case .forward: sgemm(rowMajor, noTrans, trans, b, n, k, 1, x, k, w, k, 0, c.baseAddress, n)
                case .inputGradient: sgemm(rowMajor, noTrans, noTrans, b, k, n, 1, dY, n, w, k, 0, c.baseAddress, k)
                case .weightGradient: sgemm(rowMajor, trans, noTrans, n, k, b, 1, dY, n, x, k, 1, c.baseAddress, k)
                }
            }
        }
        run()
        var seconds: [Double] = []
        for _ in 0..<repeats { seconds.append((try? LinearBenchmark.time(run)) ?? .infinity) }
        let median = seconds.sorted()[seconds.count / 2]
        return median.isFinite && median > 0 ? 2 * Double(shape.batch * shape.inputs * shape.outputs) / median / 1e9 : nil
    }
}
