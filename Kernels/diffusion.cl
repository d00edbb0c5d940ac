// Diffusion-specific element-wise operations: timestep embeddings and the gradients of the Gaussian step
// log-probability and of the MSE loss. (Their per-row reductions are in reduce.cl.)

// Sinusoidal embedding: [cos(t f_j) for j < h, sin(t f_j) for j < h], f_j = 10000^(-j/h), h = dim / 2.
// Global size (dim / 2, rows).
__kernel void timestep_embedding(__global const int* timesteps, __global float* y, int rows, int dim) {
    int j = get_global_id(0), r = get_global_id(1);
    int half_dim = dim / 2;
    if (j >= half_dim || r >= rows) return;
    float frequency = exp(-log(10000.0f) * (float)j / (float)half_dim);
    float angle = (float)timesteps[r] * frequency;
    y[r * dim + j] = cos(angle);
    y[r * dim + half_dim + j] = sin(angle);
}

// dMean = dLogp[r] * (x - mu) / (columns * sigma_r^2)
__kernel void gaussian_log_probability_backward(__global const float* x, __global const float* mean,
                                                __global const float* logStd, __global const float* dLogp,
                                                __global float* dMean, int columns, int n) {
    int i = get_global_id(0);
    if (i >= n) return;
    int r = i / columns;
    float inverseStd = exp(-logStd[r]);
    dMean[i] = dLogp[r] * (x[i] - mean[i]) * inverseStd * inverseStd / (float)columns;
}

// dPrediction = w[r] * 2 (prediction - target) / columns
__kernel void squared_error_backward(__global const float* prediction, __global const float* target,
                                     __global const float* weights, __global float* dPrediction, int columns, int n) {
    int i = get_global_id(0);
    if (i >= n) return;
    dPrediction[i] = weights[i / columns] * 2.0f * (prediction[i] - target[i]) / (float)columns;
}
