// Sequence models (SASRec, DreamRec): embedding gather and its deterministic scatter-add, LayerNorm, GELU, causal
// single-head attention and softmax cross-entropy. Every kernel writes each output from one work-item, in a fixed
// order of additions: no atomics, the same bits from run to run on a device.
// Row-wise kernels use work_group_total / work_group_maximum from reduce.cl (one program; files in name order) and
// follow its conventions: one work-group per row, work-item l takes columns l, l+L, …, and may alias because each
// work-item writes only the columns it reads, after the reductions' barriers.

// y[r, :] = table[indices[r], :], zeros for a negative index. Global size (d, rows).
__kernel void gather_rows(__global const float* table, __global const int* indices, __global float* y, int d, int rows) {
    int c = get_global_id(0), r = get_global_id(1);
    if (c >= d || r >= rows) return;
    int index = indices[r];
    y[(size_t)r * d + c] = index < 0 ? 0.0f : table[(size_t)index * d + c];
}

// dTable[targets[u], c] += sum of dY[sources[j], c] for j in offsets[u] .. offsets[u+1), in increasing j.
// Global size (d, plan entries): each table row is written by one work-item per column.
__kernel void scatter_add_rows(__global const float* dY, __global const int* targets, __global const int* offsets,
                               __global const int* sources, __global float* dTable, int d, int count) {
    int c = get_global_id(0), u = get_global_id(1);
    if (c >= d || u >= count) return;
    float acc = 0.0f;
    for (int j = offsets[u]; j < offsets[u + 1]; ++j) acc += dY[(size_t)sources[j] * d + c];
    dTable[(size_t)targets[u] * d + c] += acc;
}

// y = (x - mean) * rstd * gamma + beta per row, biased variance from a second pass over (x - mean) (no cancellation).
__kernel void layer_norm_forward(__global const float* x, __global const float* gamma, __global const float* beta,
                                 __global float* y, __global float* mean, __global float* rstd, int d, float epsilon,
                                 __local float* scratch) {
    int r = get_group_id(0), lid = get_local_id(0), size = get_local_size(0);
    __global const float* row = x + (size_t)r * d;
    __global float* out = y + (size_t)r * d;
    float acc = 0.0f;
    for (int block = 0; block < d; block += size) {
        int c = block + lid;
        if (c < d) acc += row[c];
    }
    float mu = work_group_total(acc, scratch) / (float)d;
    acc = 0.0f;
    for (int block = 0; block < d; block += size) {
        int c = block + lid;
        if (c < d) acc += (row[c] - mu) * (row[c] - mu);
    }
    float rs = 1.0f / sqrt(work_group_total(acc, scratch) / (float)d + epsilon);
    if (lid == 0) {
        mean[r] = mu;
        rstd[r] = rs;
    }
    for (int block = 0; block < d; block += size) {
        int c = block + lid;
        if (c < d) out[c] = (row[c] - mu) * rs * gamma[c] + beta[c];
    }
}

// dGamma[c] += sum_r dY * xhat, dBeta[c] += sum_r dY, laid out as sum_columns in reduce.cl: work-groups of
// (C columns, S row slices), the S slices added in a tree. scratch: 2 x C x S floats. Runs before layer_norm_backward,
// which may overwrite dY.
__kernel void layer_norm_parameter_gradients(__global const float* x, __global const float* mean,
                                             __global const float* rstd, __global const float* dY,
                                             __global float* dGamma, __global float* dBeta, int rows, int d,
                                             __local float* scratch) {
    int c = get_global_id(0), lc = get_local_id(0), s = get_local_id(1);
    int width = get_local_size(0), slices = get_local_size(1);
    __local float* gammaScratch = scratch;
    __local float* betaScratch = scratch + width * slices;
    float accGamma = 0.0f, accBeta = 0.0f;
    if (c < d) {
        for (int r = s; r < rows; r += slices) {
            size_t i = (size_t)r * d + c;
            accGamma += dY[i] * ((x[i] - mean[r]) * rstd[r]);
            accBeta += dY[i];
        }
    }
    gammaScratch[s * width + lc] = accGamma;
    betaScratch[s * width + lc] = accBeta;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int stride = slices / 2; stride > 0; stride >>= 1) {
        if (s < stride) {
            gammaScratch[s * width + lc] += gammaScratch[(s + stride) * width + lc];
            betaScratch[s * width + lc] += betaScratch[(s + stride) * width + lc];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (s == 0 && c < d) {
        dGamma[c] += gammaScratch[lc];
        dBeta[c] += betaScratch[lc];
    }
}

// dX = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dY * gamma, per row. dX may alias dY.
__kernel void layer_norm_backward(__global const float* x, __global const float* gamma, __global const float* mean,
                                  __global const float* rstd, __global const float* dY, __global float* dX, int d,
                                  __local float* scratch) {
    int r = get_group_id(0), lid = get_local_id(0), size = get_local_size(0);
    size_t base = (size_t)r * d;
    float mu = mean[r], rs = rstd[r];
    float accG = 0.0f, accGX = 0.0f;
    for (int block = 0; block < d; block += size) {
        int c = block + lid;
        if (c < d) {
            float g = dY[base + c] * gamma[c];
            accG += g;
            accGX += g * ((x[base + c] - mu) * rs);
        }
    }
    float meanG = work_group_total(accG, scratch) / (float)d;
    float meanGX = work_group_total(accGX, scratch) / (float)d;
    for (int block = 0; block < d; block += size) {
        int c = block + lid;
        if (c < d) {
            float xHat = (x[base + c] - mu) * rs;
            dX[base + c] = rs * (dY[base + c] * gamma[c] - meanG - xHat * meanGX);
        }
    }
}

// The exact GELU, x * Phi(x), and its derivative Phi(x) + x * phi(x). One work-item per element; may alias.
// Φ(v), the standard normal CDF, through Abramowitz & Stegun 7.1.26 for erf (|error| < 1.5e-7): PoCL's built-in
// erf made GELU 8x slower than tanh, and DreamRec's sampler runs two GELUs per step. The CPU reference keeps the
// exact erf; the tests' tolerance (1e-5) is far above the formula's error.
float normal_cdf(float v) {
    float z = fabs(v) * 0.70710678f;
    float t = 1.0f / (1.0f + 0.3275911f * z);
    float poly = t * (0.254829592f + t * (-0.284496736f + t * (1.421413741f + t * (-1.453152027f + t * 1.061405429f))));
    float erf_abs = 1.0f - poly * exp(-z * z);
    return 0.5f * (1.0f + (v < 0.0f ? -erf_abs : erf_abs));
}

__kernel void gelu_forward(__global const float* x, __global float* y, int n) {
    int i = get_global_id(0);
    if (i >= n) return;
    float v = x[i];
    y[i] = v * normal_cdf(v);
}

__kernel void gelu_backward(__global const float* x, __global const float* dY, __global float* dX, int n) {
    int i = get_global_id(0);
    if (i >= n) return;
    float v = x[i];
    float cdf = normal_cdf(v);
    float pdf = exp(-0.5f * v * v) * 0.39894228f;
    dX[i] = dY[i] * (cdf + v * pdf);
}

// The first key a sequence's queries may see; clamped so that a bad start cannot read outside the sequence.
int attention_first(__global const int* start, int b, int length) { return clamp(start[b], 0, length); }

// Causal attention, one work-item per (query i, sequence b); global size (length, B). The probability row doubles as
// the scores' scratch: scores, then exp(score - max), then / total, all written and read by this work-item alone.
__kernel void causal_attention_forward(__global const float* q, __global const float* k, __global const float* v,
                                       __global const int* start, __global float* probabilities, __global float* out,
                                       int batch, int length, int d, float scale) {
    int i = get_global_id(0), b = get_global_id(1);
    if (i >= length || b >= batch) return;
    int first = attention_first(start, b, length);
    size_t row = (size_t)b * length + i;
    __global const float* qi = q + row * d;
    __global const float* keys = k + (size_t)b * length * d;
    __global const float* values = v + (size_t)b * length * d;
    __global float* p = probabilities + row * length;
    __global float* o = out + row * d;
    for (int j = 0; j < length; ++j) p[j] = 0.0f;
    if (i < first) {
        for (int c = 0; c < d; ++c) o[c] = 0.0f;
        return;
    }
    float maximum = -INFINITY;
    for (int j = first; j <= i; ++j) {
        float dot = 0.0f;
        for (int c = 0; c < d; ++c) dot += qi[c] * keys[j * d + c];
        p[j] = scale * dot;
        maximum = fmax(maximum, p[j]);
    }
    float total = 0.0f;
    for (int j = first; j <= i; ++j) {
        p[j] = exp(p[j] - maximum);
        total += p[j];
    }
    for (int j = first; j <= i; ++j) p[j] /= total;
    for (int c = 0; c < d; ++c) {
        float acc = 0.0f;
        for (int j = first; j <= i; ++j) acc += p[j] * values[j * d + c];
        o[c] = acc;
    }
}

// Backward, first of two launches, one work-item per (query i, sequence b): delta_i = sum_j P_ij dP_ij with
// dP_ij = dOut_i . v_j (stored for the second launch), and dQ_i = scale sum_j P_ij (dP_ij - delta_i) k_j.
// dP is recomputed rather than stored: a (B length, length) scratch would cost more than the d-long dot products.
__kernel void causal_attention_backward_queries(__global const float* k, __global const float* v,
                                                __global const int* start, __global const float* probabilities,
                                                __global const float* dOut, __global float* dQ, __global float* deltas,
                                                int batch, int length, int d, float scale) {
    int i = get_global_id(0), b = get_global_id(1);
    if (i >= length || b >= batch) return;
    int first = attention_first(start, b, length);
    size_t row = (size_t)b * length + i;
    __global const float* keys = k + (size_t)b * length * d;
    __global const float* values = v + (size_t)b * length * d;
    __global const float* p = probabilities + row * length;
    __global const float* g = dOut + row * d;
    __global float* dq = dQ + row * d;
    for (int c = 0; c < d; ++c) dq[c] = 0.0f;
    float delta = 0.0f;
    for (int j = first; j <= i; ++j) {
        float dp = 0.0f;
        for (int c = 0; c < d; ++c) dp += g[c] * values[j * d + c];
        delta += p[j] * dp;
    }
    deltas[row] = delta;
    for (int j = first; j <= i; ++j) {
        float dp = 0.0f;
        for (int c = 0; c < d; ++c) dp += g[c] * values[j * d + c];
        float coefficient = scale * (p[j] * (dp - delta));
        for (int c = 0; c < d; ++c) dq[c] += coefficient * keys[j * d + c];
    }
}

// Backward, second launch, one work-item per (key j, sequence b), over the queries i >= j that see it:
// dK_j = scale sum_i P_ij (dP_ij - delta_i) q_i, dV_j = sum_i P_ij dOut_i. Keys before the start get zeros.
__kernel void causal_attention_backward_keys(__global const float* q, __global const float* v,
                                             __global const int* start, __global const float* probabilities,
                                             __global const float* dOut, __global const float* deltas,
                                             __global float* dK, __global float* dV,
                                             int batch, int length, int d, float scale) {
    int j = get_global_id(0), b = get_global_id(1);
    if (j >= length || b >= batch) return;
    int first = attention_first(start, b, length);
    size_t base = (size_t)b * length;
    __global const float* vj = v + (base + j) * d;
    __global float* dk = dK + (base + j) * d;
    __global float* dv = dV + (base + j) * d;
    for (int c = 0; c < d; ++c) {
        dk[c] = 0.0f;
        dv[c] = 0.0f;
    }
    if (j < first) return;
    for (int i = j; i < length; ++i) {
        __global const float* g = dOut + (base + i) * d;
        __global const float* qi = q + (base + i) * d;
        float p = probabilities[(base + i) * length + j];
        float dp = 0.0f;
        for (int c = 0; c < d; ++c) dp += g[c] * vj[c];
        float coefficient = scale * (p * (dp - deltas[base + i]));
        for (int c = 0; c < d; ++c) {
            dk[c] += coefficient * qi[c];
            dv[c] += p * g[c];
        }
    }
}

// loss[r] = (max - x_t) + log sum exp(x - max); with a gradient, dLogits[r] = scale * (softmax - onehot(t)).
// A negative target (or one outside the row, which the host rejects) gives 0 and a zero row. dLogits may alias logits:
// x_t is read before the reductions' barriers, and each work-item then overwrites only the columns it read.
__kernel void softmax_cross_entropy(__global const float* logits, __global const int* targets, __global float* loss,
                                    __global float* dLogits, int hasGradient, float gradientScale, int n,
                                    __local float* scratch) {
    int r = get_group_id(0), lid = get_local_id(0), size = get_local_size(0);
    __global const float* row = logits + (size_t)r * n;
    __global float* dRow = dLogits + (size_t)r * n;
    int target = targets[r];
    if (target < 0 || target >= n) {  // the whole group takes this branch, so no barrier is skipped
        if (lid == 0) loss[r] = 0.0f;
        if (hasGradient) {
            for (int block = 0; block < n; block += size) {
                int c = block + lid;
                if (c < n) dRow[c] = 0.0f;
            }
        }
        return;
    }
    float picked = row[target];
    float maximum = -INFINITY;
    for (int block = 0; block < n; block += size) {
        int c = block + lid;
        if (c < n) maximum = fmax(maximum, row[c]);
    }
    maximum = work_group_maximum(maximum, scratch);
    // The gradient row keeps exp(x - max) between the passes (one exp per entry, not two); each entry is written
    // after its own read, by the one work-item that reads it.
    float acc = 0.0f;
    for (int block = 0; block < n; block += size) {
        int c = block + lid;
        if (c < n) {
            float e = exp(row[c] - maximum);
            acc += e;
            if (hasGradient) dRow[c] = e;
        }
    }
    float total = work_group_total(acc, scratch);
    if (lid == 0) loss[r] = (maximum - picked) + log(total);
    if (!hasGradient) return;
    for (int block = 0; block < n; block += size) {
        int c = block + lid;
        if (c < n) {
            float softmax = dRow[c] / total;
            dRow[c] = gradientScale * (c == target ? softmax - 1.0f : softmax);
        }
    }
}
