// Linear layers and general matrix products, row-major, fp32.
//   linear_forward: Y = act(X W^T + b), X (B, K), W (N, K), Y (B, N)
//   matmul:         C = alpha op(A) op(B) + beta C, C (M, N)
// Version 1: one work-item per output element. Global size (N, rows).

__kernel void linear_forward(__global const float* x, __global const float* w, __global const float* bias,
                             int hasBias, int act, __global float* y, int batch, int inputs, int outputs) {
    int n = get_global_id(0), r = get_global_id(1);
    if (n >= outputs || r >= batch) return;
    __global const float* xr = x + (size_t)r * inputs;
    __global const float* wn = w + (size_t)n * inputs;
    float acc = 0.0f;
    for (int k = 0; k < inputs; ++k) acc += xr[k] * wn[k];
    if (hasBias) acc += bias[n];
    y[(size_t)r * outputs + n] = act == 1 ? tanh(acc) : acc;
}

__kernel void matmul(__global const float* a, int transposeA, __global const float* b, int transposeB,
                     __global float* c, float alpha, float beta, int M, int N, int K) {
    int j = get_global_id(0), i = get_global_id(1);
    if (j >= N || i >= M) return;
    float acc = 0.0f;
    for (int p = 0; p < K; ++p) {
        float av = transposeA ? a[(size_t)p * M + i] : a[(size_t)i * K + p];
        float bv = transposeB ? b[(size_t)j * K + p] : b[(size_t)p * N + j];
        acc += av * bv;
    }
    size_t o = (size_t)i * N + j;
    c[o] = alpha * acc + (beta == 0.0f ? 0.0f : beta * c[o]);
}
