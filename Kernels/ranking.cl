// Dense rows of a CSR matrix and masked top-K selection.

// dense[r, columnIndices[e]] = 1 for the entries e of row rows[r]; dense is zeroed first by the host.
__kernel void densify_rows(__global const int* rowPointers, __global const int* columnIndices,
                           __global const int* rows, __global float* dense, int batch, int columns) {
    int r = get_global_id(0);
    if (r >= batch) return;
    int row = rows[r];
    for (int e = rowPointers[row]; e < rowPointers[row + 1]; ++e) dense[(size_t)r * columns + columnIndices[e]] = 1.0f;
}

// The k best columns of each row, descending, ties to the lower column; one work-item per row.
// maskKind: 0 none, 1 CSR (the masked columns of row maskRows[r], sorted ascending), 2 dense (non-zero masks).
// Columns are visited in ascending order and inserted only when strictly better than the current k-th,
// so an equal score never displaces an earlier (lower) column. -INFINITY scores count as masked.
__kernel void top_k(__global const float* scores, int rows, int columns, int k, int maskKind,
                    __global const int* rowPointers, __global const int* columnIndices, __global const int* maskRows,
                    __global const float* denseMask, __global int* indices, __global float* values) {
    int r = get_global_id(0);
    if (r >= rows) return;
    __global const float* row = scores + (size_t)r * columns;
    __global int* bestIndex = indices + (size_t)r * k;
    __global float* bestValue = values + (size_t)r * k;
    for (int j = 0; j < k; ++j) { bestIndex[j] = -1; bestValue[j] = -INFINITY; }
    int nextMasked = 0, endMasked = 0;
    if (maskKind == 1) {
        int maskRow = maskRows[r];
        nextMasked = rowPointers[maskRow];
        endMasked = rowPointers[maskRow + 1];
    }
    float threshold = -INFINITY;
    for (int c = 0; c < columns; ++c) {
        if (maskKind == 1) {
            while (nextMasked < endMasked && columnIndices[nextMasked] < c) ++nextMasked;
            if (nextMasked < endMasked && columnIndices[nextMasked] == c) continue;
        } else if (maskKind == 2 && denseMask[(size_t)r * columns + c] != 0.0f) {
            continue;
        }
        float s = row[c];
        if (!(s > threshold)) continue;
        int j = k - 1;
        while (j > 0 && s > bestValue[j - 1]) {
            bestValue[j] = bestValue[j - 1];
            bestIndex[j] = bestIndex[j - 1];
            --j;
        }
        bestValue[j] = s;
        bestIndex[j] = c;
        threshold = bestValue[k - 1];
    }
}
