/// A sparse 0/1 matrix (users × items) in compressed-sparse-row form.
///
/// Int32 throughout, because the arrays go to the device unchanged (`DeviceCSR`, kernel arguments are Int32).
/// Within a row the columns are sorted and unique, which makes `contains` a binary search and makes two
/// matrices with the same entries byte-identical (the dataset fingerprint relies on that).
public struct CSRMatrix: Sendable, Equatable {
    public let rowCount: Int
    public let columnCount: Int
    /// `rowCount + 1` offsets into `columns`; row r is `columns[rowPointers[r] ..< rowPointers[r + 1]]`.
    public let rowPointers: [Int32]
    public let columns: [Int32]

    /// Builds the matrix from (row, column) pairs in any order; duplicates collapse to one entry.
    public init(rowCount: Int, columnCount: Int, rows: [Int32], columns: [Int32]) {
        precondition(rows.count == columns.count, "rows and columns differ in length")
        var counts = [Int32](repeating: 0, count: rowCount + 1)
        for r in rows {
            precondition(r >= 0 && Int(r) < rowCount, "row \(r) outside 0..<\(rowCount)")
            counts[Int(r) + 1] += 1
        }
        for r in 0..<rowCount { counts[r + 1] += counts[r] }
        // Counting sort by row; each row is then sorted and deduplicated in place.
        var next = counts
        var sorted = [Int32](repeating: 0, count: columns.count)
        for (r, c) in zip(rows, columns) {
            precondition(c >= 0 && Int(c) < columnCount, "column \(c) outside 0..<\(columnCount)")
            sorted[Int(next[Int(r)])] = c
            next[Int(r)] += 1
        }
        var pointers = [Int32](repeating: 0, count: rowCount + 1)
        var write = 0
        for r in 0..<rowCount {
            let start = Int(counts[r]), end = Int(counts[r + 1])
            sorted[start..<end].sort()
            var previous: Int32 = -1
            for k in start..<end where sorted[k] != previous {
                previous = sorted[k]
                sorted[write] = previous
                write += 1
            }
            pointers[r + 1] = Int32(write)
        }
        sorted.removeSubrange(write...)
        self.init(rowCount: rowCount, columnCount: columnCount, rowPointers: pointers, uncheckedColumns: sorted)
    }

    /// Builds the matrix from per-row column lists (each may be unsorted or hold duplicates).
    public init(columnCount: Int, rows: [[Int32]]) {
        var pointers: [Int32] = [0]
        pointers.reserveCapacity(rows.count + 1)
        var columns: [Int32] = []
        columns.reserveCapacity(rows.reduce(0) { $0 + $1.count })
        for row in rows {
            var previous: Int32 = -1
            for c in row.sorted() where c != previous {
                precondition(c >= 0 && Int(c) < columnCount, "column \(c) outside 0..<\(columnCount)")
                columns.append(c)
                previous = c
            }
            pointers.append(Int32(columns.count))
        }
        self.init(rowCount: rows.count, columnCount: columnCount, rowPointers: pointers, uncheckedColumns: columns)
    }

    private init(rowCount: Int, columnCount: Int, rowPointers: [Int32], uncheckedColumns: [Int32]) {
        precondition(uncheckedColumns.count <= Int(Int32.max), "more than 2^31 entries do not fit Int32 offsets")
        self.rowCount = rowCount
        self.columnCount = columnCount
        self.rowPointers = rowPointers
        self.columns = uncheckedColumns
    }

    /// The number of stored entries.
    public var nonzeroCount: Int { columns.count }

    /// The sorted columns of row `r`, without copying.
    @inlinable
    public func row(_ r: Int) -> ArraySlice<Int32> {
        columns[Int(rowPointers[r])..<Int(rowPointers[r + 1])]
    }

    @inlinable
    public func rowLength(_ r: Int) -> Int { Int(rowPointers[r + 1] - rowPointers[r]) }

    public func contains(_ r: Int, _ c: Int) -> Bool { entry(r, c) != nil }

    /// The position of (r, c) in `columns` (a binary search of the sorted row), or nil when it is not stored.
    public func entry(_ r: Int, _ c: Int) -> Int? {
        let entries = row(r)
        var low = entries.startIndex, high = entries.endIndex
        while low < high {
            let mid = (low + high) / 2
            if Int(entries[mid]) < c { low = mid + 1 } else { high = mid }
        }
        return low < entries.endIndex && Int(entries[low]) == c ? low : nil
    }

    /// The items × users matrix: item-based scorers and co-occurrence graphs walk columns as rows.
    public func transposed() -> CSRMatrix {
        var rows = [Int32](repeating: 0, count: nonzeroCount)
        for r in 0..<rowCount {
            for k in Int(rowPointers[r])..<Int(rowPointers[r + 1]) { rows[k] = Int32(r) }
        }
        return CSRMatrix(rowCount: columnCount, columnCount: rowCount, rows: columns, columns: rows)
    }

    /// Entries per column (item popularity when rows are users).
    public func columnCounts() -> [Int] {
        var counts = [Int](repeating: 0, count: columnCount)
        for c in columns { counts[Int(c)] += 1 }
        return counts
    }
}
