// Element-wise operations. One work-item per element; n is the element count (global size may be larger).

__kernel void add(__global const float* a, __global const float* b, __global float* c, int n) {
    int i = get_global_id(0);
    if (i < n) c[i] = a[i] + b[i];
}

__kernel void multiply(__global const float* a, __global const float* b, __global float* c, int n) {
    int i = get_global_id(0);
    if (i < n) c[i] = a[i] * b[i];
}

__kernel void axpy(float alpha, __global const float* x, __global float* y, int n) {
    int i = get_global_id(0);
    if (i < n) y[i] += alpha * x[i];
}

__kernel void scale(__global float* x, float alpha, int n) {
    int i = get_global_id(0);
    if (i < n) x[i] *= alpha;
}

__kernel void tanh_forward(__global const float* x, __global float* y, int n) {
    int i = get_global_id(0);
    if (i < n) y[i] = tanh(x[i]);
}

// dPre = dY * act'(y), written through the output y: tanh' = 1 - y^2. act: 0 identity, 1 tanh.
__kernel void activation_backward(__global const float* dY, __global const float* y, __global float* dPre,
                                  int act, int n) {
    int i = get_global_id(0);
    if (i >= n) return;
    float g = dY[i];
    if (act == 1) g *= 1.0f - y[i] * y[i];
    dPre[i] = g;
}

// Copies a block of columns row by row; global size (width, rows).
__kernel void copy_columns(__global const float* src, int srcColumns, int srcColumn,
                           __global float* dst, int dstColumns, int dstColumn, int width, int rows) {
    int c = get_global_id(0), r = get_global_id(1);
    if (c < width && r < rows) dst[r * dstColumns + dstColumn + c] = src[r * srcColumns + srcColumn + c];
}

// z = xs[row] * x + ys[row] * y; q-sample, posterior mean and noisy steps are this one operation.
__kernel void combine_rows(__global const float* x, __global const float* xs, __global const float* y,
                           __global const float* ys, __global float* z, int columns, int n) {
    int i = get_global_id(0);
    if (i >= n) return;
    int r = i / columns;
    z[i] = xs[r] * x[i] + ys[r] * y[i];
}

// y[r] = table[indices[r]]
__kernel void gather(__global const float* table, __global const int* indices, __global float* y, int n) {
    int i = get_global_id(0);
    if (i < n) y[i] = table[indices[i]];
}
