// Philox4x32-10 counter-based random numbers, bit-identical to Sources/RefitCompute/Core/Philox.swift.
// Element n of a stream is a pure function of (seed, n). The normal transform uses only + - * and bit
// operations, whose IEEE results are the same on every device, and contraction into FMA is off here so
// that the compiler cannot change a single rounding. (Native log, sqrt, sin and cos differ by device.)
#pragma OPENCL FP_CONTRACT OFF

inline uint4 philox4x32_10(uint4 c, uint k0, uint k1) {
    for (int round = 0; round < 10; ++round) {
        if (round > 0) { k0 += 0x9E3779B9u; k1 += 0xBB67AE85u; }
        // 32×32→64-bit products written out: PoCL vectorises these, but not mul_hi.
        ulong p0 = (ulong)0xD2511F53u * (ulong)c.x, p1 = (ulong)0xCD9E8D57u * (ulong)c.z;
        uint hi0 = (uint)(p0 >> 32), lo0 = (uint)p0;
        uint hi1 = (uint)(p1 >> 32), lo1 = (uint)p1;
        c = (uint4)(hi1 ^ c.y ^ k0, lo1, hi0 ^ c.w ^ k1, lo0);
    }
    return c;
}

// (floor(u / 2^8) + 1) * 2^-24, in (0, 1], exactly.
inline float unit_interval(uint bits) { return (float)((bits >> 8) + 1u) * 0x1p-24f; }

inline float exact_log(float u) {
    uint bits = as_uint(u);
    int exponent = (int)((bits >> 23) & 0xFFu) - 127;
    float m = as_float((bits & 0x007FFFFFu) | 0x3F800000u);
    int high = m > 1.41421356f;  // selects rather than branches: PoCL vectorises branch-free loops
    m = high ? m * 0.5f : m;
    exponent += high;
    float f = m - 1.0f;
    float p = 6.544440985e-02f;
    p = p * f + -1.178408414e-01f;
    p = p * f + 1.206534430e-01f;
    p = p * f + -1.240121126e-01f;
    p = p * f + 1.418882459e-01f;
    p = p * f + -1.666656137e-01f;
    p = p * f + 2.000413537e-01f;
    p = p * f + -2.500011921e-01f;
    p = p * f + 3.333325982e-01f;
    p = p * f + -4.999999702e-01f;
    p = p * f + 1.0f;
    p = p * f;
    return (float)exponent * 0.693147182f + p;
}

inline float exact_sqrt(float x) {
    float r = as_float(0x5F3759DFu - (as_uint(x) >> 1));
    float half_x = x * 0.5f;
    r = r * (1.5f - half_x * r * r);
    r = r * (1.5f - half_x * r * r);
    r = r * (1.5f - half_x * r * r);
    return x <= 0.0f ? 0.0f : x * r;
}

// (cos 2*pi*v, sin 2*pi*v) for v in [0, 1).
inline float2 exact_cos_sin_2pi(float v) {
    float scaled = v * 4.0f;
    int quadrant = (int)scaled;
    float d = (scaled - (float)quadrant) - 0.5f;
    float c = -1.757220161e-05f;
    c = c * d + -1.117116699e-04f;
    c = c * d + 6.499454612e-04f;
    c = c * d + 3.310066648e-03f;
    c = c * d + -1.475269999e-02f;
    c = c * d + -5.635114759e-02f;
    c = c * d + 1.793714315e-01f;
    c = c * d + 4.567655921e-01f;
    c = c * d + -8.723580241e-01f;
    c = c * d + -1.110720754e+00f;
    c = c * d + 7.071067691e-01f;
    float s = -1.757231257e-05f;
    s = s * d + 1.117116335e-04f;
    s = s * d + 6.499455194e-04f;
    s = s * d + -3.310066648e-03f;
    s = s * d + -1.475269999e-02f;
    s = s * d + 5.635114759e-02f;
    s = s * d + 1.793714315e-01f;
    s = s * d + -4.567655921e-01f;
    s = s * d + -8.723580241e-01f;
    s = s * d + 1.110720754e+00f;
    s = s * d + 7.071067691e-01f;
    int q = quadrant & 3;
    float cq = q == 0 ? c : q == 1 ? -s : q == 2 ? -c : s;
    float sq = q == 0 ? s : q == 1 ? c : q == 2 ? -s : -c;
    return (float2)(cq, sq);
}

inline float philox_uniform(ulong seed, ulong index) {
    ulong block = index >> 2;
    uint4 w = philox4x32_10((uint4)((uint)block, (uint)(block >> 32), 0u, 0u), (uint)seed, (uint)(seed >> 32));
    uint lane = (uint)(index & 3);
    uint word = lane == 0 ? w.x : lane == 1 ? w.y : lane == 2 ? w.z : w.w;
    return unit_interval(word);
}

inline float philox_normal(ulong seed, ulong index) {
    ulong pair = index >> 1;
    uint4 w = philox4x32_10((uint4)((uint)pair, (uint)(pair >> 32), 1u, 0u), (uint)seed, (uint)(seed >> 32));
    float radius = exact_sqrt(-2.0f * exact_log(unit_interval(w.x)));
    float2 cs = exact_cos_sin_2pi((float)(w.y >> 8) * 0x1p-24f);
    return radius * ((index & 1) == 0 ? cs.x : cs.y);
}

// The fill kernels give each work-item one Philox block and let it write every element that block serves:
// four uniforms (words 0-3), or the cosine and sine normals of one Box-Muller pair. The streams are exactly
// those of philox_uniform / philox_normal; only the redundant block computations are gone.
// Global size: the number of blocks touched by elements [offset, offset + n).

inline uint word_of(uint4 w, uint lane) { return lane == 0 ? w.x : lane == 1 ? w.y : lane == 2 ? w.z : w.w; }

__kernel void fill_uniform(__global float* y, ulong seed, ulong offset, int n) {
    ulong block = (offset >> 2) + (ulong)get_global_id(0);
    if (block > ((offset + (ulong)n - 1) >> 2)) return;
    uint4 w = philox4x32_10((uint4)((uint)block, (uint)(block >> 32), 0u, 0u), (uint)seed, (uint)(seed >> 32));
    for (uint lane = 0; lane < 4; ++lane) {
        ulong index = (block << 2) + lane;
        if (index >= offset && index < offset + (ulong)n) y[index - offset] = unit_interval(word_of(w, lane));
    }
}

// 32-bit index arithmetic only (the 64-bit pair counter is split into words and carried by hand), which
// PoCL's work-group vectoriser handles far better than ulong. Element e = 2·g − skip of the tensor takes the
// cosine branch of pair (pairLo, pairHi) + g, element e + 1 the sine branch; skip = offset & 1.
__kernel void fill_normal(__global float* y, uint seedLo, uint seedHi, uint pairLo, uint pairHi, int skip, int n) {
    int g = get_global_id(0);
    uint lo = pairLo + (uint)g;
    uint hi = pairHi + (lo < pairLo ? 1u : 0u);
    uint4 w = philox4x32_10((uint4)(lo, hi, 1u, 0u), seedLo, seedHi);
    float radius = exact_sqrt(-2.0f * exact_log(unit_interval(w.x)));
    float2 cs = exact_cos_sin_2pi((float)(w.y >> 8) * 0x1p-24f);
    int e = 2 * g - skip;
    if (e >= 0 && e < n) y[e] = radius * cs.x;
    if (e + 1 < n) y[e + 1] = radius * cs.y;
}

// Inverted dropout: keep when uniform >= p, scale kept entries by 1/(1-p); one Philox block per work-item.
__kernel void dropout(__global const float* x, __global float* y, float p, float keepScale,
                      ulong seed, ulong offset, int n) {
    ulong block = (offset >> 2) + (ulong)get_global_id(0);
    if (block > ((offset + (ulong)n - 1) >> 2)) return;
    uint4 w = philox4x32_10((uint4)((uint)block, (uint)(block >> 32), 0u, 0u), (uint)seed, (uint)(seed >> 32));
    for (uint lane = 0; lane < 4; ++lane) {
        ulong index = (block << 2) + lane;
        if (index >= offset && index < offset + (ulong)n) {
            ulong i = index - offset;
            y[i] = unit_interval(word_of(w, lane)) >= p ? x[i] * keepScale : 0.0f;
        }
    }
}

#pragma OPENCL FP_CONTRACT ON
