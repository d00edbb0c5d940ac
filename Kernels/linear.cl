// Linear layers and general matrix products, row-major, fp32:
//   C = alpha * op(A) * op(B) + beta * C, then optionally + bias (per column) and tanh.
// A is (M, K) after op, B is (K, N) after op, C is (M, N). Both kernels take A and B as base pointers plus two
// element strides, so one kernel serves every transpose combination:
//   A(i, k) = a[i * asi + k * ask]      (not transposed: asi = K, ask = 1; transposed: asi = 1, ask = M)
//   B(k, j) = b[k * bsk + j * bsj]      (not transposed: bsk = N, bsj = 1; transposed: bsk = 1, bsj = K)
// The fused layer forward Y = act(X W^T + b) is A = X, B = W^T (bsk = 1, bsj = K), alpha = 1, beta = 0.
// flags: bit 0 adds bias[j] (after alpha and beta), bit 1 applies tanh (last). With beta == 0, C is never read
// (it may hold NaNs). K == 0 gives C = beta * C (+ bias, tanh).
//
// Two families, chosen by the host per device (OpenCLBackend+Linear.swift):
//   linear_gemm_cpu: for CPU devices (PoCL). One work-item per work-group; a work-item owns a column panel of
//     16*LIN_CPU_NV columns and a block of rows. For each block of kc inner indices it packs that panel of B into
//     local memory (kc rows of the panel width, zero past N: this packing also transposes B for the forward pass),
//     then sweeps its rows LIN_CPU_MR at a time, keeping an LIN_CPU_MR x (16*LIN_CPU_NV) tile of C in float16
//     registers (24 of AVX-512's 32 for 12 x 32) and doing, per inner index, LIN_CPU_NV vector loads of the packed
//     panel and LIN_CPU_MR broadcasts of A into 24 FMAs. Partial sums go through C between kc blocks (one read and
//     one write per kc FMAs). The forward pass's panel (rows of W) is transposed 16 x 16 in registers. When A is
//     stored transposed (dW = dY'^T X) its MR values per inner index are adjacent but a row of M apart from the
//     next index's, so each tile first gathers them into a contiguous local block (or, for products with
//     many panels, the host lays A out again first with linear_transpose: see LIN_CPU_TRANSPOSE). PoCL turns each float16
//     operation into one AVX-512 instruction; larger work-groups or local-memory sharing between work-items do not
//     pay on a CPU, where a work-group is a loop on one core. Measured on 2 AVX-512 cores (PoCL 3.1): about 210-250
//     GFLOP/s of core time for the forward and dX products at DiffRec's shapes, 180-240 for dW.
//   linear_gemm_gpu: for GPUs. A classic tiled kernel: a work-group of LIN_GPU_TS/LIN_GPU_WPT squared work-items
//     computes a LIN_GPU_TS x LIN_GPU_TS tile of C, staging LIN_GPU_TSK-deep slices of A and B in local memory
//     (loaded coalesced along whichever stride is 1); each work-item accumulates LIN_GPU_WPT x LIN_GPU_WPT outputs
//     spaced LIN_GPU_TS/LIN_GPU_WPT apart, so that neighbouring work-items write neighbouring columns.
// Edges (any M, N, K): the CPU kernel clamps A's row index (extra rows are computed, never stored), zero-fills
// the packed panel past N and stores a partial panel element by element; the GPU kernel zero-fills its tiles.

// Tuning knobs. The host passes each as -D NAME=VALUE from its table (Sources/RefitCompute/OpenCL/KernelKnobs.swift,
// where the reasons for the values are), since it sizes launches and local buffers by them; the defaults here, the
// same values, only let this file compile alone.
#ifndef LIN_CPU_MR
#define LIN_CPU_MR 12 // rows of C per register tile
#endif
#ifndef LIN_CPU_NV
#define LIN_CPU_NV 2 // float16 vectors per register-tile row: the panel is 16 * LIN_CPU_NV columns
#endif
#define LIN_CPU_NR (16 * LIN_CPU_NV)

#ifndef LIN_GPU_TS
#define LIN_GPU_TS 64 // rows and columns of C per work-group
#endif
#ifndef LIN_GPU_WPT
#define LIN_GPU_WPT 4 // rows and columns of C per work-item: work-groups are (TS/WPT) x (TS/WPT) = 16 x 16
#endif
#ifndef LIN_GPU_TSK
#define LIN_GPU_TSK 16 // inner indices per local-memory stage
#endif
#define LIN_GPU_RTS (LIN_GPU_TS / LIN_GPU_WPT)

// Swaps bit B of the row index with bit B of the lane index in rows (X, Y) = (i, i + B): one step of a 16 x 16
// register transpose. Four steps (B = 8, 4, 2, 1) over all row pairs transpose the block.
#define LIN_SWAP8(X, Y) { float16 t_ = (float16)(X.lo, Y.lo); Y = (float16)(X.hi, Y.hi); X = t_; }
#define LIN_SWAP4(X, Y) { float16 t_ = (float16)(X.s0123, Y.s0123, X.s89ab, Y.s89ab); \
                          Y = (float16)(X.s4567, Y.s4567, X.scdef, Y.scdef); X = t_; }
#define LIN_SWAP2(X, Y) { float16 t_ = (float16)(X.s01, Y.s01, X.s45, Y.s45, X.s89, Y.s89, X.scd, Y.scd); \
                          Y = (float16)(X.s23, Y.s23, X.s67, Y.s67, X.sab, Y.sab, X.sef, Y.sef); X = t_; }
#define LIN_SWAP1(X, Y) { float16 t_ = (float16)(X.s0, Y.s0, X.s2, Y.s2, X.s4, Y.s4, X.s6, Y.s6, \
                                                 X.s8, Y.s8, X.sa, Y.sa, X.sc, Y.sc, X.se, Y.se); \
                          Y = (float16)(X.s1, Y.s1, X.s3, Y.s3, X.s5, Y.s5, X.s7, Y.s7, \
                                        X.s9, Y.s9, X.sb, Y.sb, X.sd, Y.sd, X.sf, Y.sf); X = t_; }
#define LIN_TRANSPOSE16(r0, r1, r2, r3, r4, r5, r6, r7, r8, r9, r10, r11, r12, r13, r14, r15) { \
    LIN_SWAP8(r0, r8) LIN_SWAP8(r1, r9) LIN_SWAP8(r2, r10) LIN_SWAP8(r3, r11) \
    LIN_SWAP8(r4, r12) LIN_SWAP8(r5, r13) LIN_SWAP8(r6, r14) LIN_SWAP8(r7, r15) \
    LIN_SWAP4(r0, r4) LIN_SWAP4(r1, r5) LIN_SWAP4(r2, r6) LIN_SWAP4(r3, r7) \
    LIN_SWAP4(r8, r12) LIN_SWAP4(r9, r13) LIN_SWAP4(r10, r14) LIN_SWAP4(r11, r15) \
    LIN_SWAP2(r0, r2) LIN_SWAP2(r1, r3) LIN_SWAP2(r4, r6) LIN_SWAP2(r5, r7) \
    LIN_SWAP2(r8, r10) LIN_SWAP2(r9, r11) LIN_SWAP2(r12, r14) LIN_SWAP2(r13, r15) \
    LIN_SWAP1(r0, r1) LIN_SWAP1(r2, r3) LIN_SWAP1(r4, r5) LIN_SWAP1(r6, r7) \
    LIN_SWAP1(r8, r9) LIN_SWAP1(r10, r11) LIN_SWAP1(r12, r13) LIN_SWAP1(r14, r15) }

// Transposes the row-major (rows x cols) matrix src into dst (cols x rows), one 16 x 16 block per work-item moved
// through registers (edge blocks element by element). The host passes a transposed A (dW = dY'^T X) through this before
// linear_gemm_cpu when the product has enough column panels (LIN_CPU_TRANSPOSE): the tiles then stream contiguous rows
// of A, as in the forward pass, instead of gathering A's values a row of M apart again for every panel.
__kernel void linear_transpose(__global const float* src, int rows, int cols, __global float* dst) {
    const int c0 = get_global_id(0) * 16, r0 = get_global_id(1) * 16;
    if (r0 >= rows || c0 >= cols) return;
    if (r0 + 16 <= rows && c0 + 16 <= cols) {
        __global const float* s = src + (size_t)r0 * cols + c0;
        float16 r0_ = vload16(0, s), r1 = vload16(0, s + cols), r2 = vload16(0, s + 2 * cols), r3 = vload16(0, s + 3 * cols),
                r4 = vload16(0, s + 4 * cols), r5 = vload16(0, s + 5 * cols), r6 = vload16(0, s + 6 * cols),
                r7 = vload16(0, s + 7 * cols), r8 = vload16(0, s + 8 * cols), r9 = vload16(0, s + 9 * cols),
                r10 = vload16(0, s + 10 * cols), r11 = vload16(0, s + 11 * cols), r12 = vload16(0, s + 12 * cols),
                r13 = vload16(0, s + 13 * cols), r14 = vload16(0, s + 14 * cols), r15 = vload16(0, s + 15 * cols);
        LIN_TRANSPOSE16(r0_, r1, r2, r3, r4, r5, r6, r7, r8, r9, r10, r11, r12, r13, r14, r15);
        __global float* d = dst + (size_t)c0 * rows + r0;
        vstore16(r0_, 0, d); vstore16(r1, 0, d + rows); vstore16(r2, 0, d + 2 * rows); vstore16(r3, 0, d + 3 * rows);
        vstore16(r4, 0, d + 4 * rows); vstore16(r5, 0, d + 5 * rows); vstore16(r6, 0, d + 6 * rows);
        vstore16(r7, 0, d + 7 * rows); vstore16(r8, 0, d + 8 * rows); vstore16(r9, 0, d + 9 * rows);
        vstore16(r10, 0, d + 10 * rows); vstore16(r11, 0, d + 11 * rows); vstore16(r12, 0, d + 12 * rows);
        vstore16(r13, 0, d + 13 * rows); vstore16(r14, 0, d + 14 * rows); vstore16(r15, 0, d + 15 * rows);
    } else {
        for (int r = r0; r < min(rows, r0 + 16); ++r)
            for (int c = c0; c < min(cols, c0 + 16); ++c) dst[(size_t)c * rows + r] = src[(size_t)r * cols + c];
    }
}

// tanh for the CPU kernel's stores: (1 - e)/(1 + e) with e = exp(-2|x|), and x - x^3/3 + 2x^5/15 below |x| = 1/16,
// where 1 - e would cancel. Relative error below 3e-7 (measured against double precision); about 1.6 times as fast
// as PoCL's tanh, which matters on layers with few inputs (200 -> 600: 15% of the product's time).
float16 lin_tanh16(float16 x) {
    const float16 ax = fabs(x);
    const float16 e = exp(-2.0f * ax);
    const float16 large = (1.0f - e) / (1.0f + e);
    const float16 x2 = x * x;
    const float16 small = ax * fma(x2, fma(x2, 2.0f / 15.0f, -1.0f / 3.0f), 1.0f);
    return copysign(select(large, small, ax < 0.0625f), x);
}

// One inner step of the register tile: LIN_CPU_NV vector loads of the packed panel row, LIN_CPU_MR broadcasts of
// A(i0 + r, k) = A_OF_R, LIN_CPU_MR * LIN_CPU_NV fused multiply-adds.
#define LIN_CPU_STEP(A_OF_R) {                                                                  \
        float16 bv[LIN_CPU_NV];                                                                 \
        _Pragma("unroll") for (int v = 0; v < LIN_CPU_NV; ++v) bv[v] = vload16(v, bk);          \
        bk += LIN_CPU_NR;                                                                       \
        _Pragma("unroll") for (int r = 0; r < LIN_CPU_MR; ++r) {                                \
            const float16 av = (float16)(A_OF_R);                                               \
            _Pragma("unroll") for (int v = 0; v < LIN_CPU_NV; ++v) acc[r][v] = fma(av, bv[v], acc[r][v]); \
        }                                                                                       \
    }

__kernel __attribute__((reqd_work_group_size(1, 1, 1)))
void linear_gemm_cpu(__global const float* a, int asi, int ask,
                     __global const float* b, int bsk, int bsj,
                     __global float* c, int ldc, int M, int N, int K,
                     float alpha, float beta, __global const float* bias, int flags,
                     int rowsPerItem, int kcMax, __local float* panel, __local float* apanel) {
    const int j0 = get_global_id(0) * LIN_CPU_NR;
    const int iStart = get_global_id(1) * rowsPerItem;
    const int iEnd = min(M, iStart + rowsPerItem);
    const int cols = min(LIN_CPU_NR, N - j0);
    if (cols <= 0 || iStart >= iEnd) return;
    int kb = 0;
    do {
        const int kc = min(kcMax, K - kb);
        const bool first = kb == 0, last = kb + kc >= K;
        // Pack B(kb .. kb+kc, j0 .. j0+NR) into panel[k * NR + j], zero past column N.
        if (bsj == 1 && cols == LIN_CPU_NR) {
            for (int k = 0; k < kc; ++k) {
                __global const float* src = b + (size_t)(kb + k) * bsk + j0;
                #pragma unroll
                for (int v = 0; v < LIN_CPU_NV; ++v) vstore16(vload16(v, src), 0, panel + k * LIN_CPU_NR + 16 * v);
            }
        } else if (bsk == 1 && cols == LIN_CPU_NR) {
            // B is stored transposed (the layer's weight): 16 x 16 blocks, transposed in registers.
            const int kc16 = kc & ~15;
            for (int jb = 0; jb < LIN_CPU_NR; jb += 16) {
                __global const float* src = b + (size_t)(j0 + jb) * bsj + kb;
                for (int k = 0; k < kc16; k += 16) {
                    float16 r0 = vload16(0, src + k), r1 = vload16(0, src + bsj + k), r2 = vload16(0, src + 2 * bsj + k),
                            r3 = vload16(0, src + 3 * bsj + k), r4 = vload16(0, src + 4 * bsj + k), r5 = vload16(0, src + 5 * bsj + k),
                            r6 = vload16(0, src + 6 * bsj + k), r7 = vload16(0, src + 7 * bsj + k), r8 = vload16(0, src + 8 * bsj + k),
                            r9 = vload16(0, src + 9 * bsj + k), r10 = vload16(0, src + 10 * bsj + k), r11 = vload16(0, src + 11 * bsj + k),
                            r12 = vload16(0, src + 12 * bsj + k), r13 = vload16(0, src + 13 * bsj + k),
                            r14 = vload16(0, src + 14 * bsj + k), r15 = vload16(0, src + 15 * bsj + k);
                    LIN_TRANSPOSE16(r0, r1, r2, r3, r4, r5, r6, r7, r8, r9, r10, r11, r12, r13, r14, r15);
                    __local float* dst = panel + k * LIN_CPU_NR + jb;
                    vstore16(r0, 0, dst); vstore16(r1, 0, dst + LIN_CPU_NR); vstore16(r2, 0, dst + 2 * LIN_CPU_NR);
                    vstore16(r3, 0, dst + 3 * LIN_CPU_NR); vstore16(r4, 0, dst + 4 * LIN_CPU_NR); vstore16(r5, 0, dst + 5 * LIN_CPU_NR);
                    vstore16(r6, 0, dst + 6 * LIN_CPU_NR); vstore16(r7, 0, dst + 7 * LIN_CPU_NR); vstore16(r8, 0, dst + 8 * LIN_CPU_NR);
                    vstore16(r9, 0, dst + 9 * LIN_CPU_NR); vstore16(r10, 0, dst + 10 * LIN_CPU_NR); vstore16(r11, 0, dst + 11 * LIN_CPU_NR);
                    vstore16(r12, 0, dst + 12 * LIN_CPU_NR); vstore16(r13, 0, dst + 13 * LIN_CPU_NR);
                    vstore16(r14, 0, dst + 14 * LIN_CPU_NR); vstore16(r15, 0, dst + 15 * LIN_CPU_NR);
                }
                for (int j = jb; j < jb + 16; ++j) {
                    __global const float* column = b + (size_t)(j0 + j) * bsj + kb;
                    for (int k = kc16; k < kc; ++k) panel[k * LIN_CPU_NR + j] = column[k];
                }
            }
        } else {
            // The partial last panel, in any layout.
            for (int k = 0; k < kc; ++k) {
                __global const float* src = b + (size_t)(kb + k) * bsk + (size_t)j0 * bsj;
                for (int j = 0; j < LIN_CPU_NR; ++j) panel[k * LIN_CPU_NR + j] = j < cols ? src[(size_t)j * bsj] : 0.0f;
            }
        }
        for (int i0 = iStart; i0 < iEnd; i0 += LIN_CPU_MR) {
            float16 acc[LIN_CPU_MR][LIN_CPU_NV];
            __global const float* ar[LIN_CPU_MR];
            #pragma unroll
            for (int r = 0; r < LIN_CPU_MR; ++r) {
                #pragma unroll
                for (int v = 0; v < LIN_CPU_NV; ++v) acc[r][v] = (float16)(0.0f);
                ar[r] = a + (size_t)min(i0 + r, M - 1) * asi + (size_t)kb * ask;
            }
            __local const float* bk = panel;
            if (ask == 1) {
                // A's rows are contiguous (no transpose): LIN_CPU_MR streams of broadcasts.
                for (int k = 0; k < kc; ++k) LIN_CPU_STEP(ar[r][k])
            } else {
                // A is stored transposed: its LIN_CPU_MR values for one k are adjacent but successive k lie a row of
                // M apart. Gather them into apanel[k * MR + r] first, so the tile streams one contiguous block.
                if (asi == 1 && i0 + LIN_CPU_MR <= M) {
                    for (int k = 0; k < kc; ++k) {
                        __global const float* src = ar[0] + (size_t)k * ask;
#if LIN_CPU_MR == 12
                        vstore8(vload8(0, src), 0, apanel + k * LIN_CPU_MR);  // vector moves: 2-3x faster than a loop
                        vstore4(vload4(0, src + 8), 0, apanel + k * LIN_CPU_MR + 8);
#else
                        #pragma unroll
                        for (int r = 0; r < LIN_CPU_MR; ++r) apanel[k * LIN_CPU_MR + r] = src[r];
#endif
                    }
                } else {
                    for (int k = 0; k < kc; ++k) {
                        #pragma unroll
                        for (int r = 0; r < LIN_CPU_MR; ++r) apanel[k * LIN_CPU_MR + r] = ar[r][(size_t)k * ask];
                    }
                }
                __local const float* ak = apanel;
                for (int k = 0; k < kc; ++k, ak += LIN_CPU_MR) LIN_CPU_STEP(ak[r])
            }
            #pragma unroll
            for (int r = 0; r < LIN_CPU_MR; ++r) {
                if (i0 + r >= iEnd) continue;
                __global float* cr = c + (size_t)(i0 + r) * ldc + j0;
                if (cols == LIN_CPU_NR) {
                    #pragma unroll
                    for (int v = 0; v < LIN_CPU_NV; ++v) {
                        float16 o = alpha * acc[r][v];
                        if (!first) o += vload16(v, cr);
                        else if (beta != 0.0f) o += beta * vload16(v, cr);
                        if (last && (flags & 1)) o += vload16(v, bias + j0);
                        if (last && (flags & 2)) o = lin_tanh16(o);
                        vstore16(o, v, cr);
                    }
                } else {
                    float spill[LIN_CPU_NR];
                    #pragma unroll
                    for (int v = 0; v < LIN_CPU_NV; ++v) vstore16(acc[r][v], v, spill);
                    for (int j = 0; j < cols; ++j) {
                        float o = alpha * spill[j];
                        if (!first) o += cr[j];
                        else if (beta != 0.0f) o += beta * cr[j];
                        if (last && (flags & 1)) o += bias[j0 + j];
                        if (last && (flags & 2)) o = tanh(o);
                        cr[j] = o;
                    }
                }
            }
        }
        kb += kc;
    } while (kb < K);
}

__kernel __attribute__((reqd_work_group_size(LIN_GPU_RTS, LIN_GPU_RTS, 1)))
void linear_gemm_gpu(__global const float* a, int asi, int ask,
                     __global const float* b, int bsk, int bsj,
                     __global float* c, int ldc, int M, int N, int K,
                     float alpha, float beta, __global const float* bias, int flags) {
    __local float as[LIN_GPU_TSK][LIN_GPU_TS + 1];
    __local float bs[LIN_GPU_TSK][LIN_GPU_TS + 1];
    const int tx = get_local_id(0), ty = get_local_id(1);
    const int lid = ty * LIN_GPU_RTS + tx;
    const int i0 = get_group_id(1) * LIN_GPU_TS, j0 = get_group_id(0) * LIN_GPU_TS;
    float acc[LIN_GPU_WPT][LIN_GPU_WPT];
    #pragma unroll
    for (int wm = 0; wm < LIN_GPU_WPT; ++wm)
        #pragma unroll
        for (int wn = 0; wn < LIN_GPU_WPT; ++wn) acc[wm][wn] = 0.0f;
    // Consecutive work-items load consecutive addresses: along k when that stride is 1, else along i (or j).
    const bool aAlongK = ask == 1, bAlongK = bsk == 1;
    for (int k0 = 0; k0 < K; k0 += LIN_GPU_TSK) {
        for (int e = lid; e < LIN_GPU_TSK * LIN_GPU_TS; e += LIN_GPU_RTS * LIN_GPU_RTS) {
            int kk = aAlongK ? e % LIN_GPU_TSK : e / LIN_GPU_TS;
            int ii = aAlongK ? e / LIN_GPU_TSK : e % LIN_GPU_TS;
            int i = i0 + ii, k = k0 + kk;
            as[kk][ii] = (i < M && k < K) ? a[(size_t)i * asi + (size_t)k * ask] : 0.0f;
            kk = bAlongK ? e % LIN_GPU_TSK : e / LIN_GPU_TS;
            int jj = bAlongK ? e / LIN_GPU_TSK : e % LIN_GPU_TS;
            int j = j0 + jj;
            k = k0 + kk;
            bs[kk][jj] = (j < N && k < K) ? b[(size_t)k * bsk + (size_t)j * bsj] : 0.0f;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        #pragma unroll
        for (int kk = 0; kk < LIN_GPU_TSK; ++kk) {
            float ar[LIN_GPU_WPT], br[LIN_GPU_WPT];
            #pragma unroll
            for (int w = 0; w < LIN_GPU_WPT; ++w) {
                ar[w] = as[kk][ty + w * LIN_GPU_RTS];
                br[w] = bs[kk][tx + w * LIN_GPU_RTS];
            }
            #pragma unroll
            for (int wm = 0; wm < LIN_GPU_WPT; ++wm)
                #pragma unroll
                for (int wn = 0; wn < LIN_GPU_WPT; ++wn) acc[wm][wn] = fma(ar[wm], br[wn], acc[wm][wn]);
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    #pragma unroll
    for (int wm = 0; wm < LIN_GPU_WPT; ++wm) {
        const int i = i0 + ty + wm * LIN_GPU_RTS;
        #pragma unroll
        for (int wn = 0; wn < LIN_GPU_WPT; ++wn) {
            const int j = j0 + tx + wn * LIN_GPU_RTS;
            if (i < M && j < N) {
                __global float* o = c + (size_t)i * ldc + j;
                float v = alpha * acc[wm][wn];
                if (beta != 0.0f) v += beta * *o;
                if (flags & 1) v += bias[j];
                if (flags & 2) v = tanh(v);
                *o = v;
            }
        }
    }
}
