// Philox4x32-10 counter-based random numbers, bit-identical to Sources/RefitCompute/Core/Philox.swift.
// Element n of a stream is a pure function of (seed, n). The normal transform uses only + - * and bit
// operations, whose IEEE results are the same on every device, and contraction into FMA is off here so
// that the compiler cannot change a single rounding. (Native log, sqrt, sin and cos differ by device.)
#pragma OPENCL FP_CONTRACT OFF

// Every kernel below runs eight Philox blocks per work-item, one per lane of uint8/float8 vectors: PoCL's implicit
// vectoriser leaves the scalar round loop scalar (no zmm instruction in its output), while explicit vectors become
// AVX-512 instructions, 4-6x faster on 2 Zen 5 cores; a GPU runs the lanes as a short unrolled loop. Each lane's
// arithmetic is the scalar definition's, operation for operation, so the streams stay bit-identical to Philox.swift.

// Philox4x32-10 on eight counters (c0, c1, c2, c3) at once, in place. The 32x32->64-bit products are written as
// ulong8 multiplies (one vpmuludq each), not mul_hi, which PoCL expands lane by lane.
inline void philox8(uint8* c0, uint8* c1, uint8* c2, uint8* c3, uint k0, uint k1) {
    for (int round = 0; round < 10; ++round) {
        if (round > 0) { k0 += 0x9E3779B9u; k1 += 0xBB67AE85u; }
        ulong8 p0 = convert_ulong8(*c0) * (ulong)0xD2511F53u, p1 = convert_ulong8(*c2) * (ulong)0xCD9E8D57u;
        uint8 hi0 = convert_uint8(p0 >> 32), lo0 = convert_uint8(p0);
        uint8 hi1 = convert_uint8(p1 >> 32), lo1 = convert_uint8(p1);
        uint8 n0 = hi1 ^ *c1 ^ k0, n2 = hi0 ^ *c3 ^ k1;
        *c0 = n0; *c1 = lo1; *c2 = n2; *c3 = lo0;
    }
}

// Eight consecutive 64-bit counters from `first`, as low and high words (the carry propagated by hand: vector
// comparisons are -1 where true).
inline void counters8(ulong first, uint8* lo, uint8* hi) {
    uint base = (uint)first;
    *lo = (uint8)(base) + (uint8)(0, 1, 2, 3, 4, 5, 6, 7);
    *hi = (uint8)((uint)(first >> 32)) - as_uint8(*lo < (uint8)(base));
}

// (floor(u / 2^8) + 1) * 2^-24, in (0, 1], exactly.
inline float8 unit_interval8(uint8 bits) { return convert_float8((bits >> 8) + 1u) * 0x1p-24f; }

inline float8 exact_log8(float8 u) {
    uint8 bits = as_uint8(u);
    int8 exponent = as_int8((bits >> 23) & 0xFFu) - 127;
    float8 m = as_float8((bits & 0x007FFFFFu) | 0x3F800000u);
    int8 high = m > 1.41421356f;  // -1 where true
    m = high ? m * 0.5f : m;
    exponent -= high;
    float8 f = m - 1.0f;
    float8 p = 6.544440985e-02f;
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
    return convert_float8(exponent) * 0.693147182f + p;
}

inline float8 exact_sqrt8(float8 x) {
    float8 r = as_float8((uint8)0x5F3759DFu - (as_uint8(x) >> 1));
    float8 half_x = x * 0.5f;
    r = r * (1.5f - half_x * r * r);
    r = r * (1.5f - half_x * r * r);
    r = r * (1.5f - half_x * r * r);
    return x <= 0.0f ? (float8)(0.0f) : x * r;
}

// (cos 2*pi*v, sin 2*pi*v) for v in [0, 1).
inline void exact_cos_sin_2pi8(float8 v, float8* cosine, float8* sine) {
    float8 scaled = v * 4.0f;
    int8 quadrant = convert_int8(scaled);
    float8 d = (scaled - convert_float8(quadrant)) - 0.5f;
    float8 c = -1.757220161e-05f;
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
    float8 s = -1.757231257e-05f;
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
    int8 q = quadrant & 3;
    *cosine = q == 0 ? c : q == 1 ? -s : q == 2 ? -c : s;
    *sine = q == 0 ? s : q == 1 ? c : q == 2 ? -s : -c;
}

// The uniform kernels: work-item g computes Philox blocks (offset >> 2) + 8g + lane, each serving four elements
// (words 0-3); element e = 32g + 4·lane + word - (offset & 3) of the tensor. Global size: ceil(blocks / 8).
#define UNIFORM_BLOCKS8(seed, offset)                                                                   \
    uint8 w0, w1, w2 = 0u, w3 = 0u;                                                                     \
    counters8(((offset) >> 2) + 8 * (ulong)get_global_id(0), &w0, &w1);                                 \
    philox8(&w0, &w1, &w2, &w3, (uint)(seed), (uint)((seed) >> 32));                                    \
    float u[32];                                                                                        \
    vstore8(unit_interval8(w0), 0, u); vstore8(unit_interval8(w1), 1, u);                               \
    vstore8(unit_interval8(w2), 2, u); vstore8(unit_interval8(w3), 3, u);                               \
    int first = 32 * (int)get_global_id(0) - (int)((offset) & 3);

__kernel void fill_uniform(__global float* y, ulong seed, ulong offset, int n) {
    UNIFORM_BLOCKS8(seed, offset)
    for (int lane = 0; lane < 8; ++lane)
        for (int word = 0; word < 4; ++word) {
            int e = first + 4 * lane + word;
            if (e >= 0 && e < n) y[e] = u[8 * word + lane];
        }
}

// Inverted dropout: keep when uniform >= p, scale kept entries by 1/(1-p).
__kernel void dropout(__global const float* x, __global float* y, float p, float keepScale,
                      ulong seed, ulong offset, int n) {
    UNIFORM_BLOCKS8(seed, offset)
    for (int lane = 0; lane < 8; ++lane)
        for (int word = 0; word < 4; ++word) {
            int e = first + 4 * lane + word;
            if (e >= 0 && e < n) y[e] = u[8 * word + lane] >= p ? x[e] * keepScale : 0.0f;
        }
}

// Box-Muller normals: work-item g computes pairs (pairLo, pairHi) + 8g + lane; pair k's cosine is element
// 2k - skip of the tensor and its sine the next (skip = offset & 1). Counters (pair, 1, 0): the third word keeps
// the normal stream apart from the uniform one. Global size: ceil(pairs / 8).
__kernel void fill_normal(__global float* y, uint seedLo, uint seedHi, uint pairLo, uint pairHi, int skip, int n) {
    int g = get_global_id(0);
    uint8 lo, hi, w2 = 1u, w3 = 0u;
    ulong first = (((ulong)pairHi << 32) | pairLo) + 8 * (ulong)g;
    counters8(first, &lo, &hi);
    philox8(&lo, &hi, &w2, &w3, seedLo, seedHi);
    float8 radius = exact_sqrt8(-2.0f * exact_log8(unit_interval8(lo)));
    float8 cosine, sine;
    exact_cos_sin_2pi8(convert_float8(hi >> 8) * 0x1p-24f, &cosine, &sine);
    float16 pairs = shuffle2(radius * cosine, radius * sine, (uint16)(0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15));
    int e = 16 * g - skip;
    if (e >= 0 && e + 16 <= n) {
        vstore16(pairs, 0, y + e);
    } else {
        float v[16];
        vstore16(pairs, 0, v);
        for (int i = 0; i < 16; ++i) if (e + i >= 0 && e + i < n) y[e + i] = v[i];
    }
}

#pragma OPENCL FP_CONTRACT ON
