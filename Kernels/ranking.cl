// Dense rows of a CSR matrix and masked top-K selection.

// dense[r, columnIndices[e]] = values[e] (1 when hasValues is 0) for the entries e of CSR row rows[r]; the host zeroes
// dense first. One work-group per row; its work-items take the row's entries in turn.
__kernel void densify_rows(__global const int* rowPointers, __global const int* columnIndices, __global const float* values,
                           int hasValues, __global const int* rows, __global float* dense, int columns) {
    int r = get_group_id(0);
    int row = rows[r];
    __global float* out = dense + (size_t)r * columns;
    int end = rowPointers[row + 1];
    for (int e = rowPointers[row] + (int)get_local_id(0); e < end; e += (int)get_local_size(0))
        out[columnIndices[e]] = hasValues ? values[e] : 1.0f;
}

// Whether (v, i) ranks above (w, j) in a top-K: a higher score, or an equal score at a lower column.
inline bool ranks_above(float v, int i, float w, int j) { return v > w || (v == w && i < j); }

// The k best columns of each row, descending, ties to the lower column; masked columns and scores that are not above
// -INFINITY (so NaN too) are skipped, and a row with fewer than k others pads with column -1 and -INFINITY.
// maskKind: 0 none, 1 CSR (the masked columns of CSR row maskRows[r], ascending within the row), 2 dense (non-zero masks).
//
// One work-group of L work-items per row (L a power of two ≥ 2; CPUs run top_k_serial). Pass 1: work-item l scans columns l, l+L, …
// in ascending order and keeps its own best `capacity` = min(k, ceil(columns / L)) in local memory, sorted, inserting
// a column only when it ranks strictly above the current last, so equal scores stay in column order. No list can
// overflow: it holds all the work-item's columns, or k of them. Pass 2: k rounds of a fixed tree of comparisons over
// the L list heads pick the next best; its owner advances. Selection does no arithmetic: the result is exact and the
// same for any L.
// Whether column c is masked for a row: in its CSR row (sorted columns; *next walks forward through them as c
// grows) or in its dense mask row. Shared by both top-K kernels.
inline bool top_k_masked(int c, int maskKind, __global const int* columnIndices, int* next, int end,
                         __global const float* denseMaskRow) {
    if (maskKind == 1) {
        while (*next < end && columnIndices[*next] < c) ++*next;
        return *next < end && columnIndices[*next] == c;
    }
    return maskKind == 2 && denseMaskRow[c] != 0.0f;
}

__kernel void top_k(__global const float* scores, int columns, int k, int capacity, int maskKind,
                    __global const int* rowPointers, __global const int* columnIndices, __global const int* maskRows,
                    __global const float* denseMask, __global int* indices, __global float* values,
                    __local float* listValue, __local int* listIndex,
                    __local float* headValue, __local int* headIndex, __local int* headOwner) {
    int r = get_group_id(0), lid = get_local_id(0), size = get_local_size(0);
    __global const float* row = scores + (size_t)r * columns;
    __local float* myValue = listValue + lid * capacity;
    __local int* myIndex = listIndex + lid * capacity;
    int count = 0;
    float threshold = -INFINITY;  // a score must rank above this to enter: -INFINITY, then the last of a full list
    int nextMasked = 0, endMasked = 0;
    if (maskKind == 1) {
        int maskRow = maskRows[r];
        nextMasked = rowPointers[maskRow];
        endMasked = rowPointers[maskRow + 1];
    }
    for (int c = lid; c < columns; c += size) {
        if (top_k_masked(c, maskKind, columnIndices, &nextMasked, endMasked, denseMask + (size_t)r * columns)) continue;
        float s = row[c];
        if (!(s > threshold)) continue;
        int j = count < capacity ? count++ : capacity - 1;
        while (j > 0 && s > myValue[j - 1]) {
            myValue[j] = myValue[j - 1];
            myIndex[j] = myIndex[j - 1];
            --j;
        }
        myValue[j] = s;
        myIndex[j] = c;
        if (count == capacity) threshold = myValue[capacity - 1];
    }

    __global int* outIndex = indices + (size_t)r * k;
    __global float* outValue = values + (size_t)r * k;
    int head = 0, j = 0;
    for (; j < k; ++j) {
        headValue[lid] = head < count ? myValue[head] : -INFINITY;
        headIndex[lid] = head < count ? myIndex[head] : INT_MAX;
        headOwner[lid] = lid;
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int stride = size / 2; stride > 0; stride >>= 1) {
            if (lid < stride && ranks_above(headValue[lid + stride], headIndex[lid + stride], headValue[lid], headIndex[lid])) {
                headValue[lid] = headValue[lid + stride];
                headIndex[lid] = headIndex[lid + stride];
                headOwner[lid] = headOwner[lid + stride];
            }
            barrier(CLK_LOCAL_MEM_FENCE);
        }
        float bestValue = headValue[0];
        int bestIndex = headIndex[0], owner = headOwner[0];
        barrier(CLK_LOCAL_MEM_FENCE);  // everyone has read the winner before the next round overwrites it
        if (bestValue == -INFINITY) break;  // the same in every work-item: all lists are spent
        if (lid == 0) {
            outIndex[j] = bestIndex;
            outValue[j] = bestValue;
        }
        if (lid == owner) ++head;
    }
    for (int p = j + lid; p < k; p += size) {
        outIndex[p] = -1;
        outValue[p] = -INFINITY;
    }
}

// The same selection with one work-item per row, keeping the list in the outputs themselves: for CPU devices (PoCL runs
// it as fast as a plain loop, and may vectorise across rows) and for k too large for local memory. Global size: rows.
__kernel void top_k_serial(__global const float* scores, int rows, int columns, int k, int maskKind,
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
        if (top_k_masked(c, maskKind, columnIndices, &nextMasked, endMasked, denseMask + (size_t)r * columns)) continue;
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
