// Reductions: whole-tensor sums, per-column sums, and every per-row reduction (row sums, log-softmax, the Gaussian
// log-density and the squared error of the diffusion losses).
//
// Per-row kernels run one work-group per row (global size rows × L, local size L, a power of two chosen by the host
// for the device): work-item l accumulates columns l, l+L, l+2L, … (adjacent work-items read adjacent addresses, so a
// GPU's loads coalesce), then the group adds its L partial results in a fixed tree in local memory. The order of
// additions depends only on the row length and L, so a result is the same from run to run on a device.
// The column loops step over whole blocks of L columns, the same number of times in every work-item, with the tail
// guarded inside: PoCL can then run the L work-items as the lanes of one vector loop.

// The sum over the work-group of one value per work-item, by a fixed tree; every work-item receives it.
// scratch: one float per work-item. The local size must be a power of two.
float work_group_total(float value, __local float* scratch) {
    int lid = get_local_id(0);
    scratch[lid] = value;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int stride = get_local_size(0) / 2; stride > 0; stride >>= 1) {
        if (lid < stride) scratch[lid] += scratch[lid + stride];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    float total = scratch[0];
    barrier(CLK_LOCAL_MEM_FENCE);  // before anyone reuses scratch
    return total;
}

// The maximum over the work-group, as work_group_total.
float work_group_maximum(float value, __local float* scratch) {
    int lid = get_local_id(0);
    scratch[lid] = value;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int stride = get_local_size(0) / 2; stride > 0; stride >>= 1) {
        if (lid < stride) scratch[lid] = fmax(scratch[lid], scratch[lid + stride]);
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    float maximum = scratch[0];
    barrier(CLK_LOCAL_MEM_FENCE);
    return maximum;
}

// y[r] = sum of row r.
__kernel void sum_rows(__global const float* x, __global float* y, int columns, __local float* scratch) {
    int r = get_group_id(0), lid = get_local_id(0), size = get_local_size(0);
    __global const float* row = x + (size_t)r * columns;
    float acc = 0.0f;
    for (int block = 0; block < columns; block += size) {
        int c = block + lid;
        if (c < columns) acc += row[c];
    }
    float total = work_group_total(acc, scratch);
    if (lid == 0) y[r] = total;
}

// Row-wise log-softmax: y = (x - max) - log(sum exp(x - max)), or its exp (the softmax) when `probabilities`. May
// alias: every pass over the row ends at a barrier before the first write, and each work-item writes only the columns
// it reads. Subtracting the maximum first, and log(sum) last, keeps entries near 0 exact to their own precision even
// for logits of magnitude 80 (x - (max + log sum) would round to the spacing of max).
__kernel void log_softmax_rows(__global const float* x, __global float* y, int columns, int probabilities,
                               __local float* scratch) {
    int r = get_group_id(0), lid = get_local_id(0), size = get_local_size(0);
    __global const float* row = x + (size_t)r * columns;
    __global float* out = y + (size_t)r * columns;
    float maximum = -INFINITY;
    for (int block = 0; block < columns; block += size) {
        int c = block + lid;
        if (c < columns) maximum = fmax(maximum, row[c]);
    }
    maximum = work_group_maximum(maximum, scratch);
    float acc = 0.0f;
    for (int block = 0; block < columns; block += size) {
        int c = block + lid;
        if (c < columns) acc += exp(row[c] - maximum);
    }
    float logTotal = log(work_group_total(acc, scratch));
    for (int block = 0; block < columns; block += size) {
        int c = block + lid;
        if (c < columns) {
            float logp = (row[c] - maximum) - logTotal;
            out[c] = probabilities ? exp(logp) : logp;
        }
    }
}

// logp[r] = -mean_c ((x - mu) / sigma_r)^2 / 2 - log(2 pi) / 2 - log sigma_r.
// Standardising before squaring keeps tiny sigmas (~1e-4) well conditioned: (x - mu)^2 alone would be ~1e-8.
__kernel void gaussian_log_probability(__global const float* x, __global const float* mean,
                                       __global const float* logStd, __global float* logp, int columns,
                                       __local float* scratch) {
    int r = get_group_id(0), lid = get_local_id(0), size = get_local_size(0);
    size_t base = (size_t)r * columns;
    float inverseStd = exp(-logStd[r]);
    float acc = 0.0f;
    for (int block = 0; block < columns; block += size) {
        int c = block + lid;
        if (c < columns) {
            float z = (x[base + c] - mean[base + c]) * inverseStd;
            acc += z * z;
        }
    }
    float total = work_group_total(acc, scratch);
    if (lid == 0) logp[r] = -0.5f * total / (float)columns - 0.918938533f - logStd[r];
}

// loss[r] = mean_c (prediction - target)^2.
__kernel void squared_error_rows(__global const float* prediction, __global const float* target,
                                 __global float* loss, int columns, __local float* scratch) {
    int r = get_group_id(0), lid = get_local_id(0), size = get_local_size(0);
    size_t base = (size_t)r * columns;
    float acc = 0.0f;
    for (int block = 0; block < columns; block += size) {
        int c = block + lid;
        if (c < columns) {
            float d = prediction[base + c] - target[base + c];
            acc += d * d;
        }
    }
    float total = work_group_total(acc, scratch);
    if (lid == 0) loss[r] = total / (float)columns;
}

// y[c] = beta * y[c] + sum over rows of x[., c]. Work-groups of (C columns, S row slices), global size
// (columns rounded up to C, S): work-item (c, s) adds rows s, s+S, … of column c (a row of C work-items reads C adjacent
// floats), then the S slices of each column are added in a tree in local memory. scratch: C × S floats.
__kernel void sum_columns(__global const float* x, __global float* y, float beta, int rows, int columns,
                          __local float* scratch) {
    int c = get_global_id(0), lc = get_local_id(0), s = get_local_id(1);
    int width = get_local_size(0), slices = get_local_size(1);
    float acc = 0.0f;
    if (c < columns) {
        for (int r = s; r < rows; r += slices) acc += x[(size_t)r * columns + c];
    }
    scratch[s * width + lc] = acc;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int stride = slices / 2; stride > 0; stride >>= 1) {
        if (s < stride) scratch[s * width + lc] += scratch[(s + stride) * width + lc];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (s == 0 && c < columns) y[c] = (beta == 0.0f ? 0.0f : beta * y[c]) + scratch[lc];
}

// Whole-tensor sum (squares == 0) or sum of squares (squares == 1) of x[0, n), in two launches of this kernel: G
// work-groups each write the total of their own contiguous part of x to out[group], then one group adds those G
// partial totals (squares == 0) into the result. G and L depend only on n and the device, so the order is fixed.
// A group reads its part in blocks of L × TOTAL_BLOCK elements, work-item l taking elements l, l + L, … of a block
// (coalesced on a GPU, consecutive when L = 1 on a CPU); each block goes into a fresh float before it is added to the
// work-item's total, so no float takes a long run of additions (3.6M gradients: runs of 64, then ~900).
// The host passes TOTAL_BLOCK as -D from its table (Sources/RefitCompute/OpenCL/KernelKnobs.swift), since it splits a
// sum into groups by it; this default, the same value, only lets the file compile alone.
#ifndef TOTAL_BLOCK
#define TOTAL_BLOCK 64
#endif
__kernel void reduce_total(__global const float* x, __global float* out, int n, int squares, __local float* scratch) {
    long size = get_local_size(0), groups = get_num_groups(0);
    long part = ((n + groups - 1) / groups + 63) / 64 * 64;  // whole cache lines per group
    long start = get_group_id(0) * part;
    long end = min(start + part, (long)n);
    float acc = 0.0f;
    for (long block = start; block < end; block += size * TOTAL_BLOCK) {
        float blockTotal = 0.0f;
        for (int j = 0; j < TOTAL_BLOCK; ++j) {
            long i = block + j * size + get_local_id(0);
            if (i < end) {
                float v = x[i];
                blockTotal += squares ? v * v : v;
            }
        }
        acc += blockTotal;
    }
    float total = work_group_total(acc, scratch);
    if (get_local_id(0) == 0) out[get_group_id(0)] = total;
}
