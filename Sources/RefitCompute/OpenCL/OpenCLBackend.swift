import COpenCL
import Foundation

/// The backend that runs Kernels/*.cl on one OpenCL device (an NVIDIA GPU, or a CPU through PoCL).
///
/// Launches go to one in-order queue and return at once; reads block. A failed enqueue is remembered and
/// thrown by the next read or `synchronize()`, like CUDA's sticky errors, so operations need not throw.
public final class OpenCLBackend: Backend, @unchecked Sendable {
    let context: OpenCLContext
    private var kernels: [String: cl_kernel] = [:]
    private var kernelGroupLimits: [String: Int] = [:]
    private var pendingError: OpenCLError?
    /// Partial totals of `sum` and `sumOfSquares` between their two launches (`WorkGroups.totalGroups` floats).
    private var partialTotals: Tensor?
    /// Scratch that one operation passes between its own launches (see `scratch(_:)`).
    private var scratchTensor: Tensor?
    /// A transposed matmul operand, laid out again for the CPU linear kernel (see `gemm`).
    private var transposedOperandTensor: Tensor?
    /// The linear kernel family, when set, instead of the device's choice: tests run the GPU family on a CPU device.
    var linearFamily: LinearTuning.Family?
    /// When set, every launch is waited for and its time added to its kernel's row (`refit bench diffrec --profile`).
    public var profile: KernelProfile?
    /// What the program was built with and every launch is sized by. Only the host-side parameters may change after
    /// the build (`refit tune` tries those without rebuilding; tests set GPU work-group shapes on a CPU device).
    public internal(set) var parameters: KernelParameters {
        didSet { precondition(parameters.defines == oldValue.defines, "compile-time kernel parameters need a new backend") }
    }
    /// Where `parameters` came from: a tuning-table row, the defaults for the device's kind, or the caller.
    public let parametersSource: String

    /// Builds every embedded kernel for `device` with the parameters the installed tuning table gives it (see
    /// `KernelTuningTable`); a malformed table, or a build failure, throws (the latter with the compiler's log).
    public convenience init(device: OpenCLDeviceInfo) throws {
        let chosen = try KernelTuningTable.installed().parameters(for: device)
        try self.init(device: device, parameters: chosen.parameters, source: chosen.source)
    }

    public convenience init(device: OpenCLDeviceInfo, parameters: KernelParameters, source: String = "given") throws {
        try parameters.validate()
        try self.init(device: device, parameters: parameters, source: source, buildOptions: parameters.buildOptions)
    }

    /// `buildOptions` other than `parameters.buildOptions` are for tests (such as building with the kernel files' own
    /// defaults).
    init(device: OpenCLDeviceInfo, parameters: KernelParameters, source: String, buildOptions: String) throws {
        context = try OpenCLContext(device: device, buildOptions: buildOptions)
        self.parameters = parameters
        parametersSource = source
    }

    deinit { for kernel in kernels.values { clReleaseKernel(kernel) } }

    public var deviceInfo: OpenCLDeviceInfo { context.info }
    public var deviceDescription: String { "OpenCL \(context.info.selector): \(context.info.description)" }
    public var viewAlignment: Int { max(1, context.info.baseAddressAlignmentBytes / 4) }

    // MARK: Launching

    private func record(_ status: cl_int, _ call: @autoclosure () -> String) {
        if status != CL_SUCCESS, pendingError == nil { pendingError = OpenCLError(call: call(), status: status) }
    }

    private func kernel(_ name: String) -> cl_kernel? {
        if let kernel = kernels[name] { return kernel }
        do {
            let kernel = try context.makeKernel(name)
            kernels[name] = kernel
            return kernel
        } catch let error as OpenCLError {
            if pendingError == nil { pendingError = error }
        } catch {}
        return nil
    }

    /// The largest power of two ≤ `limit` that kernel `name` may run as one work-group here (at least 1).
    func powerOfTwoGroup(_ name: String, atMost limit: Int) -> Int {
        if kernelGroupLimits[name] == nil, let kernel = kernel(name) {
            var size = 0
            let status = clGetKernelWorkGroupInfo(kernel, context.info.device, cl_kernel_work_group_info(CL_KERNEL_WORK_GROUP_SIZE),
                                                  MemoryLayout<Int>.size, &size, nil)
            kernelGroupLimits[name] = status == CL_SUCCESS && size > 0 ? size : 1
        }
        let cap = min(limit, context.info.maxWorkGroupSize, kernelGroupLimits[name] ?? 1)
        var size = 1
        while size * 2 <= cap { size *= 2 }
        return size
    }

    /// Work-items per work-group for a row-wise kernel over rows of `columns` entries.
    private func rowGroup(_ name: String, columns: Int) -> Int {
        powerOfTwoGroup(name, atMost: min(parameters.groups.rowReduction, max(columns, 1).nextPowerOfTwo))
    }

    /// Launches a per-row reduction: one work-group per row, with one float of local scratch per work-item.
    func launchRows(_ name: String, rows: Int, columns: Int, _ arguments: [KernelArgument]) {
        guard rows > 0 else { return }
        let size = rowGroup(name, columns: columns)
        launch(name, global: [rows * size], local: [size], arguments + [.local(bytes: size * 4)])
    }

    /// At least `count` floats of device memory for passing values between the launches of one operation: the queue
    /// runs in order, so the next operation's use of it begins after them. Nil, with the error kept, when allocation fails.
    func scratch(_ count: Int) -> Tensor? { grown(&scratchTensor, to: count) }

    /// At least `count` floats for `gemm`'s re-laid-out operand, kept apart from `scratch` so that an operation using
    /// scratch may call matmul.
    func transposedOperand(_ count: Int) -> Tensor? { grown(&transposedOperandTensor, to: count) }

    private func grown(_ slot: inout Tensor?, to count: Int) -> Tensor? {
        if let existing = slot, existing.count >= count { return existing }
        do {
            slot = try makeTensor([max(count, 1)], .float32)
            return slot
        } catch let error as OpenCLError {
            if pendingError == nil { pendingError = error }
        } catch {}
        return nil
    }

    @inline(__always) static func memory(_ t: Tensor) -> cl_mem {
        guard let buffer = t.storage as? DeviceBuffer else { preconditionFailure("\(t) does not live on an OpenCL backend") }
        return buffer.memory
    }

    /// Enqueues `name` over `global` work-items (rounded up to a multiple of `local` when given).
    func launch(_ name: String, global: [Int], local: [Int]? = nil, _ arguments: [KernelArgument]) {
        guard let kernel = kernel(name) else { return }
        for (index, argument) in arguments.enumerated() {
            let i = cl_uint(index)
            let status: cl_int
            switch argument {
            case .buffer(let t):
                var m: cl_mem? = Self.memory(t)
                status = clSetKernelArg(kernel, i, MemoryLayout<cl_mem>.size, &m)
            case .int(var v): status = clSetKernelArg(kernel, i, 4, &v)
            case .uint(var v): status = clSetKernelArg(kernel, i, 4, &v)
            case .ulong(var v): status = clSetKernelArg(kernel, i, 8, &v)
            case .float(var v): status = clSetKernelArg(kernel, i, 4, &v)
            case .local(let bytes): status = clSetKernelArg(kernel, i, bytes, nil)
            }
            record(status, "clSetKernelArg(\(name), \(index))")
        }
        if global.contains(0) { return }
        let started = profile.map { _ in clFinish(context.queue); return DispatchTime.now().uptimeNanoseconds }
        defer {
            if let started, let profile {
                clFinish(context.queue)
                profile.add(name, seconds: Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9)
            }
        }
        var globalSize = global
        if let local { for d in global.indices { globalSize[d] = (global[d] + local[d] - 1) / local[d] * local[d] } }
        let status = globalSize.withUnsafeBufferPointer { g in
            if var local { return clEnqueueNDRangeKernel(context.queue, kernel, cl_uint(g.count), nil, g.baseAddress, &local, 0, nil, nil) }
            return clEnqueueNDRangeKernel(context.queue, kernel, cl_uint(g.count), nil, g.baseAddress, nil, 0, nil, nil)
        }
        record(status, "clEnqueueNDRangeKernel(\(name), global \(globalSize))")
    }

    // MARK: Memory

    public func makeTensor(_ shape: [Int], _ elementType: ElementType) throws -> Tensor {
        let bytes = max(shape.reduce(1, *), 1) * 4
        var status: cl_int = 0
        guard let memory = clCreateBuffer(context.context, cl_mem_flags(CL_MEM_READ_WRITE), bytes, nil, &status) else {
            throw OpenCLError(call: "clCreateBuffer(\(bytes) bytes)", status: status)
        }
        let t = Tensor(shape: shape, elementType: elementType, storage: DeviceBuffer(memory: memory))
        var zero: Float = 0
        let fillStatus = clEnqueueFillBuffer(context.queue, memory, &zero, 4, 0, bytes, 0, nil, nil)
        try OpenCLError.check(fillStatus, "clEnqueueFillBuffer(\(bytes) bytes)")
        return t
    }

    public func view(_ parent: Tensor, offset: Int, shape: [Int]) -> Tensor {
        let count = shape.reduce(1, *)
        precondition(offset >= 0 && offset + count <= parent.count, "view out of bounds")
        precondition(offset % viewAlignment == 0, "view offset \(offset) is not a multiple of \(viewAlignment) elements")
        // OpenCL has no sub-buffers of sub-buffers: a view of a view is cut from the root buffer, at the summed offset.
        var root = parent.storage as! DeviceBuffer
        var origin = offset * 4
        if let grandparent = root.parent {
            var parentOrigin = 0
            let status = clGetMemObjectInfo(root.memory, cl_mem_info(CL_MEM_OFFSET), MemoryLayout<Int>.size, &parentOrigin, nil)
            precondition(status == CL_SUCCESS, "clGetMemObjectInfo(CL_MEM_OFFSET) failed with \(OpenCLError.name(of: status))")
            origin += parentOrigin
            root = grandparent
        }
        // Nor are there empty sub-buffers: an empty view holds the root itself, which no operation will touch.
        guard count > 0 else {
            clRetainMemObject(root.memory)
            return Tensor(shape: shape, elementType: parent.elementType, storage: DeviceBuffer(memory: root.memory, parent: root))
        }
        var region = cl_buffer_region(origin: origin, size: count * 4)
        var status: cl_int = 0
        let memory = clCreateSubBuffer(root.memory, cl_mem_flags(CL_MEM_READ_WRITE),
                                       cl_buffer_create_type(CL_BUFFER_CREATE_TYPE_REGION), &region, &status)
        guard let memory else { preconditionFailure("clCreateSubBuffer failed with \(OpenCLError.name(of: status))") }
        return Tensor(shape: shape, elementType: parent.elementType, storage: DeviceBuffer(memory: memory, parent: root))
    }

    // Transfers are blocking: a non-blocking write from a Swift array's temporary pointer would outlive it.
    public func write(_ values: [Float], to tensor: Tensor) {
        precondition(values.count == tensor.count && tensor.elementType == .float32, "writing \(values.count) floats into \(tensor)")
        guard !values.isEmpty else { return }
        record(values.withUnsafeBytes { clEnqueueWriteBuffer(context.queue, Self.memory(tensor), cl_bool(CL_TRUE), 0, $0.count, $0.baseAddress, 0, nil, nil) },
               "clEnqueueWriteBuffer")
    }

    public func write(_ values: [Int32], to tensor: Tensor) {
        precondition(values.count == tensor.count && tensor.elementType == .int32, "writing \(values.count) ints into \(tensor)")
        guard !values.isEmpty else { return }
        record(values.withUnsafeBytes { clEnqueueWriteBuffer(context.queue, Self.memory(tensor), cl_bool(CL_TRUE), 0, $0.count, $0.baseAddress, 0, nil, nil) },
               "clEnqueueWriteBuffer")
    }


    public func readFloats(_ tensor: Tensor) throws -> [Float] {
        precondition(tensor.elementType == .float32, "\(tensor) is not float32")
        var values = [Float](repeating: 0, count: tensor.count)
        if !values.isEmpty {
            record(values.withUnsafeMutableBytes { clEnqueueReadBuffer(context.queue, Self.memory(tensor), cl_bool(CL_TRUE), 0, $0.count, $0.baseAddress, 0, nil, nil) },
                   "clEnqueueReadBuffer")
        }
        try synchronize()
        return values
    }

    public func readInt32s(_ tensor: Tensor) throws -> [Int32] {
        precondition(tensor.elementType == .int32, "\(tensor) is not int32")
        var values = [Int32](repeating: 0, count: tensor.count)
        if !values.isEmpty {
            record(values.withUnsafeMutableBytes { clEnqueueReadBuffer(context.queue, Self.memory(tensor), cl_bool(CL_TRUE), 0, $0.count, $0.baseAddress, 0, nil, nil) },
                   "clEnqueueReadBuffer")
        }
        try synchronize()
        return values
    }

    public func fill(_ tensor: Tensor, with value: Float) {
        guard tensor.count > 0 else { return }
        var pattern: UInt32 = tensor.elementType == .int32 ? UInt32(bitPattern: Int32(value)) : value.bitPattern
        record(clEnqueueFillBuffer(context.queue, Self.memory(tensor), &pattern, 4, 0, tensor.byteCount, 0, nil, nil), "clEnqueueFillBuffer")
    }

    public func copy(_ source: Tensor, to destination: Tensor) {
        precondition(source.count == destination.count && source.elementType == destination.elementType)
        guard source.count > 0 else { return }
        record(clEnqueueCopyBuffer(context.queue, Self.memory(source), Self.memory(destination), 0, 0, source.byteCount, 0, nil, nil),
               "clEnqueueCopyBuffer")
    }

    public func synchronize() throws {
        record(clFinish(context.queue), "clFinish")
        if let error = pendingError {
            pendingError = nil
            throw error
        }
    }

    // Linear layers: OpenCLBackend+Linear.swift

    public func sumColumns(_ x: Tensor, into y: Tensor, beta: Float) {
        precondition(y.count == x.columns)
        let slices = powerOfTwoGroup("sum_columns", atMost: min(parameters.groups.columnSlices, max(x.rows, 1).nextPowerOfTwo))
        let width = max(1, powerOfTwoGroup("sum_columns", atMost: parameters.groups.columnSlices * parameters.groups.columnWidth) / slices)
        launch("sum_columns", global: [x.columns, slices], local: [width, slices], [
            .buffer(x), .buffer(y), .float(beta), .int(Int32(x.rows)), .int(Int32(x.columns)), .local(bytes: width * slices * 4),
        ])
    }

    // MARK: Element-wise

    private func sameCount(_ tensors: Tensor...) -> Int32 {
        let n = tensors[0].count
        for t in tensors { precondition(t.count == n, "element-wise shapes differ: \(tensors)") }
        return Int32(n)
    }

    public func add(_ a: Tensor, _ b: Tensor, into c: Tensor) {
        launch("add", global: [c.count], [.buffer(a), .buffer(b), .buffer(c), .int(sameCount(a, b, c))])
    }

    public func multiply(_ a: Tensor, _ b: Tensor, into c: Tensor) {
        launch("multiply", global: [c.count], [.buffer(a), .buffer(b), .buffer(c), .int(sameCount(a, b, c))])
    }

    public func axpy(_ alpha: Float, _ x: Tensor, _ y: Tensor) {
        launch("axpy", global: [y.count], [.float(alpha), .buffer(x), .buffer(y), .int(sameCount(x, y))])
    }

    public func scale(_ x: Tensor, by alpha: Float) {
        launch("scale", global: [x.count], [.buffer(x), .float(alpha), .int(Int32(x.count))])
    }

    public func tanh(_ x: Tensor, into y: Tensor) {
        launch("tanh_forward", global: [y.count], [.buffer(x), .buffer(y), .int(sameCount(x, y))])
    }

    public func dropout(_ x: Tensor, probability: Float, seed: UInt64, offset: UInt64, into y: Tensor) {
        precondition(probability >= 0 && probability < 1, "dropout probability \(probability) is not in [0, 1)")
        launch("dropout", global: [Self.philoxWorkItems(offset: offset, count: y.count, perBlock: 4)], [
            .buffer(x), .buffer(y), .float(probability), .float(1 / (1 - probability)), .ulong(seed), .ulong(offset),
            .int(sameCount(x, y)),
        ])
    }

    public func copyColumns(_ source: Tensor, sourceColumn: Int, into destination: Tensor, destinationColumn: Int, width: Int) {
        precondition(source.rows == destination.rows, "copyColumns: row counts differ")
        precondition(sourceColumn + width <= source.columns && destinationColumn + width <= destination.columns)
        launch("copy_columns", global: [width, source.rows], [
            .buffer(source), .int(Int32(source.columns)), .int(Int32(sourceColumn)),
            .buffer(destination), .int(Int32(destination.columns)), .int(Int32(destinationColumn)),
            .int(Int32(width)), .int(Int32(source.rows)),
        ])
    }

    public func combineRows(_ x: Tensor, scaledBy xScale: Tensor, _ y: Tensor, scaledBy yScale: Tensor, into z: Tensor) {
        precondition(xScale.count == z.rows && yScale.count == z.rows, "combineRows: one scale per row")
        launch("combine_rows", global: [z.count], [
            .buffer(x), .buffer(xScale), .buffer(y), .buffer(yScale), .buffer(z), .int(Int32(z.columns)), .int(sameCount(x, y, z)),
        ])
    }

    // MARK: Reductions

    public func sumRows(_ x: Tensor, into y: Tensor) {
        precondition(y.count == x.rows)
        launchRows("sum_rows", rows: x.rows, columns: x.columns, [.buffer(x), .buffer(y), .int(Int32(x.columns))])
    }

    public func sum(_ x: Tensor, into result: Tensor) { reduceTotal(x, into: result, squares: false) }

    public func sumOfSquares(_ x: Tensor, into result: Tensor) { reduceTotal(x, into: result, squares: true) }

    /// Two launches of `reduce_total`: G work-groups write partial totals, then one group adds them. G depends on the
    /// element count and the device only, so the order of additions, and the result, are fixed.
    private func reduceTotal(_ x: Tensor, into result: Tensor, squares: Bool) {
        precondition(result.count >= 1 && result.elementType == .float32)
        let size = powerOfTwoGroup("reduce_total", atMost: parameters.groups.totalGroupSize)
        let count = parameters.groups.totalGroupCount(elements: x.count, groupSize: size)
        if count == 1 {
            launch("reduce_total", global: [size], local: [size], [
                .buffer(x), .buffer(result), .int(Int32(x.count)), .int(squares ? 1 : 0), .local(bytes: size * 4),
            ])
            return
        }
        if partialTotals == nil {
            do { partialTotals = try makeTensor([WorkGroups.totalGroups], .float32) } catch let error as OpenCLError {
                if pendingError == nil { pendingError = error }
                return
            } catch { return }
        }
        guard let partials = partialTotals else { return }
        launch("reduce_total", global: [count * size], local: [size], [
            .buffer(x), .buffer(partials), .int(Int32(x.count)), .int(squares ? 1 : 0), .local(bytes: size * 4),
        ])
        let finalSize = powerOfTwoGroup("reduce_total", atMost: count.nextPowerOfTwo)
        launch("reduce_total", global: [finalSize], local: [finalSize], [
            .buffer(partials), .buffer(result), .int(Int32(count)), .int(0), .local(bytes: finalSize * 4),
        ])
    }

    public func logSoftmaxRows(_ x: Tensor, into y: Tensor) { softmaxRows(x, into: y, logarithm: true) }

    public func softmaxRows(_ x: Tensor, into y: Tensor) { softmaxRows(x, into: y, logarithm: false) }

    private func softmaxRows(_ x: Tensor, into y: Tensor, logarithm: Bool) {
        precondition(x.count == y.count)
        launchRows("log_softmax_rows", rows: x.rows, columns: x.columns, [.buffer(x), .buffer(y), .int(Int32(x.columns)), .int(logarithm ? 0 : 1)])
    }

    // MARK: Random numbers

    /// Work-items for a random fill: one per eight Philox blocks (each serving `perBlock` elements) of those that
    /// elements [offset, offset + count) touch (Kernels/random.cl runs the eight as vector lanes).
    static func philoxWorkItems(offset: UInt64, count: Int, perBlock: UInt64) -> Int {
        guard count > 0 else { return 0 }
        let blocks = Int((offset + UInt64(count) - 1) / perBlock - offset / perBlock + 1)
        return (blocks + 7) / 8
    }

    public func fillUniform(_ tensor: Tensor, seed: UInt64, offset: UInt64) {
        launch("fill_uniform", global: [Self.philoxWorkItems(offset: offset, count: tensor.count, perBlock: 4)], [.buffer(tensor), .ulong(seed), .ulong(offset), .int(Int32(tensor.count))])
    }

    public func fillNormal(_ tensor: Tensor, seed: UInt64, offset: UInt64) {
        let pair = offset >> 1
        launch("fill_normal", global: [Self.philoxWorkItems(offset: offset, count: tensor.count, perBlock: 2)], [
            .buffer(tensor), .uint(UInt32(truncatingIfNeeded: seed)), .uint(UInt32(truncatingIfNeeded: seed >> 32)),
            .uint(UInt32(truncatingIfNeeded: pair)), .uint(UInt32(truncatingIfNeeded: pair >> 32)), .int(Int32(offset & 1)),
            .int(Int32(tensor.count)),
        ])
    }

    // MARK: Diffusion

    public func gather(_ table: Tensor, indices: Tensor, into y: Tensor) {
        precondition(indices.count == y.count && indices.elementType == .int32)
        launch("gather", global: [y.count], [.buffer(table), .buffer(indices), .buffer(y), .int(Int32(y.count))])
    }

    public func timestepEmbedding(_ timesteps: Tensor, into y: Tensor) {
        precondition(y.rows == timesteps.count && y.columns % 2 == 0, "timestepEmbedding shapes")
        launch("timestep_embedding", global: [y.columns / 2, y.rows], [
            .buffer(timesteps), .buffer(y), .int(Int32(y.rows)), .int(Int32(y.columns)),
        ])
    }

    public func gaussianLogProbability(_ x: Tensor, mean: Tensor, logStd: Tensor, into logp: Tensor) {
        precondition(x.count == mean.count && logStd.count == x.rows && logp.count == x.rows)
        launchRows("gaussian_log_probability", rows: x.rows, columns: x.columns, [
            .buffer(x), .buffer(mean), .buffer(logStd), .buffer(logp), .int(Int32(x.columns)),
        ])
    }

    public func gaussianLogProbabilityBackward(_ x: Tensor, mean: Tensor, logStd: Tensor, dLogp: Tensor, into dMean: Tensor) {
        launch("gaussian_log_probability_backward", global: [x.count], [
            .buffer(x), .buffer(mean), .buffer(logStd), .buffer(dLogp), .buffer(dMean), .int(Int32(x.columns)),
            .int(sameCount(x, mean, dMean)),
        ])
    }

    public func squaredErrorRows(_ prediction: Tensor, _ target: Tensor, into loss: Tensor) {
        precondition(prediction.count == target.count && loss.count == prediction.rows)
        launchRows("squared_error_rows", rows: prediction.rows, columns: prediction.columns, [
            .buffer(prediction), .buffer(target), .buffer(loss), .int(Int32(prediction.columns)),
        ])
    }

    public func squaredErrorBackward(_ prediction: Tensor, _ target: Tensor, rowWeights: Tensor, into dPrediction: Tensor) {
        launch("squared_error_backward", global: [prediction.count], [
            .buffer(prediction), .buffer(target), .buffer(rowWeights), .buffer(dPrediction), .int(Int32(prediction.columns)),
            .int(sameCount(prediction, target, dPrediction)),
        ])
    }

    // MARK: Optimisation

    public func adamW(parameters: Tensor, gradients: Tensor, m: Tensor, v: Tensor, step: AdamWStep) {
        let correction1 = 1 - Double(step.beta1).power(step.step)
        let correction2 = 1 - Double(step.beta2).power(step.step)
        launch("adamw", global: [parameters.count], [
            .buffer(parameters), .buffer(gradients), .buffer(m), .buffer(v),
            .float(step.learningRate), .float(step.beta1), .float(step.beta2), .float(step.epsilon), .float(step.weightDecay),
            .float(Float(Double(step.learningRate) / correction1)), .float(Float(correction2.squareRoot())),
            .int(sameCount(parameters, gradients, m, v)),
        ])
    }

    // MARK: Ranking

    public func densifyRows(_ matrix: DeviceCSR, rows: Tensor, into dense: Tensor) {
        precondition(dense.rows == rows.count && dense.columns == matrix.columns, "densifyRows shapes")
        fill(dense, with: 0)
        guard rows.count > 0 else { return }
        let size = powerOfTwoGroup("densify_rows", atMost: parameters.groups.densifyGroupSize)
        launch("densify_rows", global: [rows.count * size], local: [size], [
            .buffer(matrix.rowPointers), .buffer(matrix.columnIndices), .buffer(matrix.values ?? matrix.columnIndices),
            .int(matrix.values == nil ? 0 : 1), .buffer(rows), .buffer(dense), .int(Int32(dense.columns)),
        ])
    }

    public func topK(_ scores: Tensor, k: Int, mask: RowMask?, indices: Tensor, values: Tensor) {
        let (batch, n) = (scores.rows, scores.columns)
        precondition(indices.rows == batch && indices.columns == k && values.rows == batch && values.columns == k, "topK shapes")
        precondition(indices.elementType == .int32 && values.elementType == .float32, "topK: int32 indices, float32 values")
        guard batch > 0, k > 0 else { return }
        var kind: Int32 = 0
        var (pointers, columns, maskRows, dense) = (indices, indices, indices, scores)
        switch mask {
        case .sparse(let matrix, let rows):
            precondition(rows.count == batch && rows.elementType == .int32, "topK: one int32 mask row per score row")
            kind = 1
            (pointers, columns, maskRows) = (matrix.rowPointers, matrix.columnIndices, rows)
        case .dense(let m):
            precondition(m.count == scores.count, "topK: the dense mask is shaped like the scores")
            kind = 2
            dense = m
        case nil:
            break
        }
        let masks: [KernelArgument] = [.int(kind), .buffer(pointers), .buffer(columns), .buffer(maskRows), .buffer(dense)]
        // The largest power-of-two group whose lists, min(k, ⌈n/L⌉) entries per work-item, fit the local-memory budget;
        // with one work-item per row, the serial kernel does the same with no local memory.
        var size = powerOfTwoGroup("top_k", atMost: parameters.groups.topKGroupSize)
        func capacity(_ size: Int) -> Int { max(1, min(k, (n + size - 1) / size)) }
        func bytes(_ size: Int) -> Int { size * capacity(size) * 8 + size * 12 }
        while size > 1 && bytes(size) > parameters.groups.localMemoryBudget { size /= 2 }
        if size == 1 {
            launch("top_k_serial", global: [batch], [
                .buffer(scores), .int(Int32(batch)), .int(Int32(n)), .int(Int32(k))] + masks + [.buffer(indices), .buffer(values),
            ])
            return
        }
        let listBytes = size * capacity(size) * 4
        launch("top_k", global: [batch * size], local: [size], [
            .buffer(scores), .int(Int32(n)), .int(Int32(k)), .int(Int32(capacity(size)))] + masks + [
            .buffer(indices), .buffer(values), .local(bytes: listBytes), .local(bytes: listBytes),
            .local(bytes: size * 4), .local(bytes: size * 4), .local(bytes: size * 4),
        ])
    }
}

extension Int {
    /// The smallest power of two ≥ self (for self ≥ 1).
    var nextPowerOfTwo: Int { self <= 1 ? 1 : 1 << (Int.bitWidth - (self - 1).leadingZeroBitCount) }
}

extension Double {
    /// `self` to a non-negative integer power, by repeated multiplication (exact for the small steps of Adam).
    fileprivate func power(_ exponent: Int) -> Double {
        var result = 1.0
        for _ in 0..<max(exponent, 0) { result *= self }
        return result
    }
}

/// Wall time per kernel, for finding where a run's time goes: with it set, `OpenCLBackend` waits for each launch.
public final class KernelProfile: @unchecked Sendable {
    public private(set) var rows: [String: (launches: Int, seconds: Double)] = [:]

    public init() {}

    func add(_ kernel: String, seconds: Double) {
        rows[kernel, default: (0, 0)].launches += 1
        rows[kernel, default: (0, 0)].seconds += seconds
    }

    public func reset() { rows = [:] }

    /// One line per kernel, the most time first, with its share of the total.
    public var table: String {
        let total = rows.values.reduce(0) { $0 + $1.seconds }
        return rows.sorted { $0.value.seconds > $1.value.seconds }.map { name, row in
            let share = total > 0 ? 100 * row.seconds / total : 0
            return "\(name.padding(toLength: 28, withPad: " ", startingAt: 0)) \(String(format: "%8d launches %9.3f s %5.1f%%", row.launches, row.seconds, share))"
        }.joined(separator: "\n") + String(format: "\n%@ %27.3f s", "total".padding(toLength: 28, withPad: " ", startingAt: 0), total)
    }
}
