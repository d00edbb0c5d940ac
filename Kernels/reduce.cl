// Reductions. Sums run in a fixed order, so results are deterministic from run to run.

#ifndef REDUCE_GROUP
#define REDUCE_GROUP 256 // work-items in the single work-group of the whole-tensor reductions
#endif

// y[r] = sum of row r; one work-item per row.
__kernel void sum_rows(__global const float* x, __global float* y, int rows, int columns) {
    int r = get_global_id(0);
    if (r >= rows) return;
    __global const float* row = x + (size_t)r * columns;
    float acc = 0.0f;
    for (int c = 0; c < columns; ++c) acc += row[c];
    y[r] = acc;
}

// y[c] = beta * y[c] + sum over rows of x[., c]; one work-item per column (coalesced reads on GPUs).
__kernel void sum_columns(__global const float* x, __global float* y, float beta, int rows, int columns) {
    int c = get_global_id(0);
    if (c >= columns) return;
    float acc = 0.0f;
    for (int r = 0; r < rows; ++r) acc += x[(size_t)r * columns + c];
    y[c] = (beta == 0.0f ? 0.0f : beta * y[c]) + acc;
}

// result[0] = sum (squares == 0) or sum of squares (squares == 1) of all n elements.
// One work-group of REDUCE_GROUP work-items: strided partial sums, then a tree in local memory.
__kernel void reduce_total(__global const float* x, __global float* result, int n, int squares) {
    __local float partial[REDUCE_GROUP];
    int lid = get_local_id(0);
    float acc = 0.0f;
    for (int i = lid; i < n; i += REDUCE_GROUP) {
        float v = x[i];
        acc += squares ? v * v : v;
    }
    partial[lid] = acc;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int stride = REDUCE_GROUP / 2; stride > 0; stride /= 2) {
        if (lid < stride) partial[lid] += partial[lid + stride];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (lid == 0) result[0] = partial[0];
}

// Row-wise log-softmax; one work-item per row, three passes (max, sum of exp, write).
__kernel void log_softmax_rows(__global const float* x, __global float* y, int rows, int columns) {
    int r = get_global_id(0);
    if (r >= rows) return;
    __global const float* row = x + (size_t)r * columns;
    float maximum = -INFINITY;
    for (int c = 0; c < columns; ++c) maximum = fmax(maximum, row[c]);
    float total = 0.0f;
    for (int c = 0; c < columns; ++c) total += exp(row[c] - maximum);
    float logNormaliser = maximum + log(total);
    for (int c = 0; c < columns; ++c) y[(size_t)r * columns + c] = row[c] - logNormaliser;
}
