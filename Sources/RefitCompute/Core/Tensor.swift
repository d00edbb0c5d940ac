/// The element types a tensor can hold. Both are 4 bytes, so every buffer is sized alike.
public enum ElementType: Sendable, Equatable {
    case float32
    case int32
}

/// A shaped block of memory owned by one backend: device memory for OpenCL, host memory for the CPU reference.
///
/// Tensors are row-major. A tensor created by `Backend.view` shares its parent's memory and keeps it alive.
/// The storage object is opaque here; each backend knows its own kind.
public final class Tensor: @unchecked Sendable {
    public let shape: [Int]
    public let elementType: ElementType
    /// The backend's storage (`HostBuffer` or `DeviceBuffer`).
    public let storage: AnyObject

    public init(shape: [Int], elementType: ElementType, storage: AnyObject) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
        self.shape = shape
        self.elementType = elementType
        self.storage = storage
    }

    public var count: Int { shape.reduce(1, *) }
    public var byteCount: Int { count * 4 }
    /// Rows of a 2-D tensor (or 1 for a vector), and its columns.
    public var rows: Int { shape.count >= 2 ? shape[0] : 1 }
    public var columns: Int { shape.count >= 2 ? shape.dropFirst().reduce(1, *) : (shape.first ?? 1) }
}

extension Tensor: CustomStringConvertible {
    public var description: String { "Tensor(\(shape.map(String.init).joined(separator: "×")), \(elementType))" }
}

/// A CSR matrix resident on a backend: `rowPointers` (rows+1, int32), `columnIndices` (nnz, int32) and, for a
/// weighted matrix, `values` (nnz, float32; nil: every entry is 1). Within a row the column indices ascend (as
/// `CSRMatrix` stores them): OpenCL's masked top-K walks them in order. Masks read the pattern only.
public struct DeviceCSR: Sendable {
    public let rowPointers: Tensor
    public let columnIndices: Tensor
    public let values: Tensor?
    public let rows: Int
    public let columns: Int

    public init(rowPointers: Tensor, columnIndices: Tensor, values: Tensor? = nil, rows: Int, columns: Int) {
        precondition(rowPointers.elementType == .int32 && columnIndices.elementType == .int32)
        precondition(rowPointers.count == rows + 1, "rowPointers must hold rows + 1 entries")
        precondition(values.map { $0.elementType == .float32 && $0.count == columnIndices.count } ?? true,
                     "values must be float32, one per column index")
        self.rowPointers = rowPointers
        self.columnIndices = columnIndices
        self.values = values
        self.rows = rows
        self.columns = columns
    }
}
