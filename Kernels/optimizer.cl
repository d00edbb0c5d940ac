// AdamW with PyTorch's semantics: decoupled weight decay, then bias-corrected moments.
// stepSize = lr / (1 - beta1^t); correction2Root = sqrt(1 - beta2^t), both computed on the host.
__kernel void adamw(__global float* p, __global const float* g, __global float* m, __global float* v,
                    float learningRate, float beta1, float beta2, float epsilon, float weightDecay,
                    float stepSize, float correction2Root, int n) {
    int i = get_global_id(0);
    if (i >= n) return;
    float gi = g[i];
    float pi = p[i] * (1.0f - learningRate * weightDecay);
    float mi = beta1 * m[i] + (1.0f - beta1) * gi;
    float vi = beta2 * v[i] + (1.0f - beta2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = pi - stepSize * mi / (sqrt(vi) / correction2Root + epsilon);
}
