/* gemm_kernels.h -- private to gemm.c: the GEMM micro-kernels and the panel packers.
 *
 * Micro-kernel contract (every kernel here, both dtypes):
 *
 *   C(i,j) = [C(i,j) +] sum_{p < kc} a[i*rsa + p*csa] * Bp[p*NR + j]    0 <= i < mr, 0 <= j < nr
 *
 *   kc          depth of this pass, >= 0 (kc == 0 stores zeros, or leaves C as is if accumulate)
 *   a, rsa, csa the A micro-panel: packed (rsa = 1, csa = MR) or A itself in place (used when C
 *               has a single column panel, so each A element is read once); rows >= mr are
 *               never read
 *   Bp          packed B micro-panel: kc rows of NR values, lanes >= nr zero-filled; 32-byte aligned
 *   C           element (i,j) is C[i*rsc + j*csc]; csc == 1 is the fast path (row-major tile),
 *               anything else (the transposed problem of gemm.c) goes through a register tile
 *   mr, nr      the valid part of the MR x NR tile, 1 <= mr <= MR, 1 <= nr <= NR; only it is
 *               read and written (no element outside it is touched)
 *   accumulate  0: C is written, never read.  1: the sum starts from C's current value.
 *
 * Accumulation order: each C(i,j) is one running sum over p in increasing order, started from 0
 * (or from C), with one fused multiply-add per p (plain multiply then add in the generic
 * kernels).  So splitting k into passes, tiling C differently or using edge tiles never changes a
 * result: the answer depends only on the kernel family (AVX2 or generic) and on (A, B).
 *
 * Packers: pack a block of `width` lanes (A rows or B columns) into consecutive W-lane
 * micro-panels, dst[panel][p][lane] = src[lane*ls + p*ks], zero-filling the lanes past `width`
 * in the last panel.  ls is the stride between lanes, ks along k.  Three cases: lanes contiguous
 * (ls == 1: B row-major, A transposed as in dW = A_prev^T dZ) is a row copy (vector copies for
 * the 16-lane float B panels, the 8-lane double B panels and the 6-lane A panels); k contiguous (ks == 1: A row-major, B
 * transposed as W^T in dX) is a transpose done 8 x 8 (AVX2) or in small cache blocks (generic);
 * anything else is a gather.
 */
#ifndef FNN_GEMM_KERNELS_H
#define FNN_GEMM_KERNELS_H

#include <stddef.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#define FNN_GEMM_X86 1
#include <immintrin.h>
#define FNN_AVX2 __attribute__((target("avx2,fma")))
#endif

/* ---- generic packers (plain C) ----------------------------------------------------------- */

/* k-contiguous source (ks == 1): transposed in blocks of FNN_PACK_KB values along k, so each
 * lane's source row is read a cache line at a time and the writes stay in one small block. */
#define FNN_PACK_KB 16

#define FNN_DEFINE_PACK(NAME, T)                                                                 \
static void NAME(T *restrict dst, const T *restrict src, ptrdiff_t ls, ptrdiff_t ks,             \
                 int width, int kc, int W)                                                       \
{                                                                                                \
    for (int r0 = 0; r0 < width; r0 += W, dst += (ptrdiff_t)W * kc) {                            \
        const int w = width - r0 < W ? width - r0 : W;                                           \
        const T *s = src + r0 * ls;                                                              \
        if (ls == 1) {                                                                           \
            for (int p = 0; p < kc; p++) {                                                       \
                for (int r = 0; r < w; r++) dst[p * W + r] = s[p * ks + r];                      \
                for (int r = w; r < W; r++) dst[p * W + r] = 0;                                  \
            }                                                                                    \
        } else if (ks == 1) {                                                                    \
            for (int p0 = 0; p0 < kc; p0 += FNN_PACK_KB) {                                       \
                const int pb = kc - p0 < FNN_PACK_KB ? kc - p0 : FNN_PACK_KB;                    \
                for (int r = 0; r < w; r++)                                                      \
                    for (int q = 0; q < pb; q++) dst[(p0 + q) * W + r] = s[r * ls + p0 + q];     \
                for (int q = 0; q < pb; q++)                                                     \
                    for (int r = w; r < W; r++) dst[(p0 + q) * W + r] = 0;                       \
            }                                                                                    \
        } else {                                                                                 \
            for (int p = 0; p < kc; p++) {                                                       \
                for (int r = 0; r < w; r++) dst[p * W + r] = s[r * ls + p * ks];                 \
                for (int r = w; r < W; r++) dst[p * W + r] = 0;                                  \
            }                                                                                    \
        }                                                                                        \
    }                                                                                            \
}
FNN_DEFINE_PACK(fnn_spack_generic, float)
FNN_DEFINE_PACK(fnn_dpack_generic, double)
#undef FNN_DEFINE_PACK

/* ---- generic micro-kernels (plain C; the compiler vectorizes the j loops) ----------------- */

#define FNN_GEN_MR 4
#define FNN_GEN_NR 8

#define FNN_DEFINE_GENERIC_KERNEL(NAME, T)                                                       \
static void NAME(int kc, const T *restrict a, ptrdiff_t rsa, ptrdiff_t csa, const T *restrict b,  \
                 T *restrict c, ptrdiff_t rsc, ptrdiff_t csc, int mr, int nr, int accumulate)    \
{                                                                                                \
    T acc[FNN_GEN_MR][FNN_GEN_NR];                                                               \
    const T *ai[FNN_GEN_MR];                                                                     \
    for (int i = 0; i < FNN_GEN_MR; i++) ai[i] = a + (i < mr ? i : 0) * rsa;                     \
    for (int i = 0; i < FNN_GEN_MR; i++)                                                         \
        for (int j = 0; j < FNN_GEN_NR; j++)                                                     \
            acc[i][j] = (accumulate && i < mr && j < nr) ? c[i * rsc + j * csc] : (T)0;          \
    for (int p = 0; p < kc; p++, b += FNN_GEN_NR)                                                \
        for (int i = 0; i < FNN_GEN_MR; i++)                                                     \
            for (int j = 0; j < FNN_GEN_NR; j++) acc[i][j] += ai[i][p * csa] * b[j];             \
    for (int i = 0; i < mr; i++)                                                                 \
        for (int j = 0; j < nr; j++) c[i * rsc + j * csc] = acc[i][j];                           \
}
FNN_DEFINE_GENERIC_KERNEL(fnn_skernel_generic, float)
FNN_DEFINE_GENERIC_KERNEL(fnn_dkernel_generic, double)
#undef FNN_DEFINE_GENERIC_KERNEL

#ifdef FNN_GEMM_X86

/* ---- AVX2 packers --------------------------------------------------------------------------
 * Same contract as the generic ones; the k-contiguous case transposes 8 x 8 (float) or 4 x 4
 * (double) tiles in registers.  Lanes past `width` read nothing and are stored as zeros. */

/* Transpose the 8 x 8 float tile whose row r is r[0..7] (in place). */
FNN_AVX2 static inline void fnn_transpose8_ps(__m256 r[8])
{
    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    r[0] = _mm256_permute2f128_ps(u0, u4, 0x20); r[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
    r[1] = _mm256_permute2f128_ps(u1, u5, 0x20); r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
    r[2] = _mm256_permute2f128_ps(u2, u6, 0x20); r[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
    r[3] = _mm256_permute2f128_ps(u3, u7, 0x20); r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

/* Transpose the 4 x 4 double tile whose row r is r[0..3] (in place). */
FNN_AVX2 static inline void fnn_transpose4_pd(__m256d r[4])
{
    __m256d t0 = _mm256_unpacklo_pd(r[0], r[1]), t1 = _mm256_unpackhi_pd(r[0], r[1]);
    __m256d t2 = _mm256_unpacklo_pd(r[2], r[3]), t3 = _mm256_unpackhi_pd(r[2], r[3]);
    r[0] = _mm256_permute2f128_pd(t0, t2, 0x20); r[2] = _mm256_permute2f128_pd(t0, t2, 0x31);
    r[1] = _mm256_permute2f128_pd(t1, t3, 0x20); r[3] = _mm256_permute2f128_pd(t1, t3, 0x31);
}

/* Store the first n lanes of v (AMD's masked stores are slow: use plain ones). */
FNN_AVX2 static inline void fnn_store_lanes_ps(float *d, __m256 v, int n)
{
    if (n == 8) {
        _mm256_storeu_ps(d, v);
    } else if (n == 6) {
        _mm_storeu_ps(d, _mm256_castps256_ps128(v));
        _mm_storel_pi((__m64 *)(d + 4), _mm256_extractf128_ps(v, 1));
    } else {
        float t[8];
        _mm256_storeu_ps(t, v);
        for (int i = 0; i < n; i++) d[i] = t[i];
    }
}

FNN_AVX2 static void fnn_spack_avx2(float *restrict dst, const float *restrict src, ptrdiff_t ls,
                                    ptrdiff_t ks, int width, int kc, int W)
{
    if (ls == 1 && W == 16) {
        /* lanes contiguous: full panels are two vector copies per p, taken row by row (the
         * source is read along its rows, the panels are written as parallel streams) */
        const int full = width / 16;
        for (int p = 0; p < kc; p++) {
            const float *s = src + p * ks;
            float *d = dst + p * 16;
            for (int q = 0; q < full; q++, s += 16, d += (ptrdiff_t)16 * kc) {
                _mm256_store_ps(d, _mm256_loadu_ps(s));
                _mm256_store_ps(d + 8, _mm256_loadu_ps(s + 8));
            }
        }
        if (width > full * 16)
            fnn_spack_generic(dst + (ptrdiff_t)full * 16 * kc, src + full * 16, ls, ks,
                              width - full * 16, kc, W);
        return;
    }
    if (ls == 1 && W == 6) {
        /* lanes contiguous, 6-lane A panels (the transposed activations of dW): per p one
         * 4-lane and one 2-lane copy; two p per step so the stores form 12 contiguous floats */
        for (; width >= 6; width -= 6, src += 6, dst += (ptrdiff_t)6 * kc) {
            const float *s = src;
            float *d = dst;
            int p = 0;
            for (; p + 2 <= kc; p += 2, s += 2 * ks, d += 12) {
                const __m128 x0 = _mm_loadu_ps(s), x1 = _mm_loadu_ps(s + ks);
                const __m128 h0 = _mm_loadl_pi(_mm_setzero_ps(), (const __m64 *)(s + 4));
                const __m128 h = _mm_loadh_pi(h0, (const __m64 *)(s + ks + 4));
                /* d[0..3] = x0, d[4..5] = h.lo, d[6..9] = x1, d[10..11] = h.hi */
                _mm_storeu_ps(d, x0);
                _mm_storeu_ps(d + 4, _mm_movelh_ps(h, x1));
                _mm_storeu_ps(d + 8, _mm_shuffle_ps(x1, h, _MM_SHUFFLE(3, 2, 3, 2)));
            }
            for (; p < kc; p++, s += ks, d += 6) {
                _mm_storeu_ps(d, _mm_loadu_ps(s));
                _mm_storel_pi((__m64 *)(d + 4), _mm_loadl_pi(_mm_setzero_ps(), (const __m64 *)(s + 4)));
            }
        }
        if (width > 0) fnn_spack_generic(dst, src, ls, ks, width, kc, W);
        return;
    }
    if (ks != 1 || ls == 1) {
        fnn_spack_generic(dst, src, ls, ks, width, kc, W);
        return;
    }
    /* k contiguous: lanes in groups of 8, k in steps of 8, one register transpose each. */
    for (int r0 = 0; r0 < width; r0 += W, dst += (ptrdiff_t)W * kc) {
        const int w = width - r0 < W ? width - r0 : W;
        const float *s = src + r0 * ls;
        const int kc8 = kc & ~7;
        for (int g = 0; g < W; g += 8) {
            const int gl = W - g < 8 ? W - g : 8;              /* lanes of this group in the panel */
            const int gv = w - g < 0 ? 0 : (w - g < gl ? w - g : gl); /* of which valid */
            for (int p = 0; p < kc8; p += 8) {
                __m256 r[8];
                for (int q = 0; q < 8; q++)
                    r[q] = q < gv ? _mm256_loadu_ps(s + (g + q) * ls + p) : _mm256_setzero_ps();
                fnn_transpose8_ps(r);
                for (int q = 0; q < 8; q++) fnn_store_lanes_ps(dst + (p + q) * W + g, r[q], gl);
            }
            for (int p = kc8; p < kc; p++)
                for (int q = 0; q < gl; q++) dst[p * W + g + q] = q < gv ? s[(g + q) * ls + p] : 0.0f;
        }
    }
}

FNN_AVX2 static void fnn_dpack_avx2(double *restrict dst, const double *restrict src, ptrdiff_t ls,
                                    ptrdiff_t ks, int width, int kc, int W)
{
    if (ls == 1 && W == 8) {
        for (; width >= 8; width -= 8, src += 8, dst += (ptrdiff_t)8 * kc)
            for (int p = 0; p < kc; p++) {
                _mm256_store_pd(dst + p * 8, _mm256_loadu_pd(src + p * ks));
                _mm256_store_pd(dst + p * 8 + 4, _mm256_loadu_pd(src + p * ks + 4));
            }
        if (width > 0) fnn_dpack_generic(dst, src, ls, ks, width, kc, W);
        return;
    }
    if (ls == 1 && W == 6) {
        for (; width >= 6; width -= 6, src += 6, dst += (ptrdiff_t)6 * kc)
            for (int p = 0; p < kc; p++) {
                _mm256_storeu_pd(dst + p * 6, _mm256_loadu_pd(src + p * ks));
                _mm_storeu_pd(dst + p * 6 + 4, _mm_loadu_pd(src + p * ks + 4));
            }
        if (width > 0) fnn_dpack_generic(dst, src, ls, ks, width, kc, W);
        return;
    }
    if (ks != 1 || ls == 1 || (W & 1) != 0) {
        fnn_dpack_generic(dst, src, ls, ks, width, kc, W);
        return;
    }
    for (int r0 = 0; r0 < width; r0 += W, dst += (ptrdiff_t)W * kc) {
        const int w = width - r0 < W ? width - r0 : W;
        const double *s = src + r0 * ls;
        const int kc4 = kc & ~3;
        for (int g = 0; g < W; g += 4) {
            const int gl = W - g < 4 ? W - g : 4;              /* 4, or 2 at the end of W = 6 */
            const int gv = w - g < 0 ? 0 : (w - g < gl ? w - g : gl);
            for (int p = 0; p < kc4; p += 4) {
                __m256d r[4];
                for (int q = 0; q < 4; q++)
                    r[q] = q < gv ? _mm256_loadu_pd(s + (g + q) * ls + p) : _mm256_setzero_pd();
                fnn_transpose4_pd(r);
                for (int q = 0; q < 4; q++) {
                    if (gl == 4) _mm256_storeu_pd(dst + (p + q) * W + g, r[q]);
                    else _mm_storeu_pd(dst + (p + q) * W + g, _mm256_castpd256_pd128(r[q]));
                }
            }
            for (int p = kc4; p < kc; p++)
                for (int q = 0; q < gl; q++) dst[p * W + g + q] = q < gv ? s[(g + q) * ls + p] : 0.0;
        }
    }
}

/* ---- AVX2 + FMA micro-kernels ---------------------------------------------------------------
 * float: MR = 6, NR = 16; double: MR = 6, NR = 8.  12 accumulators (6 rows x 2 vectors) hide the
 * FMA latency on two FMA pipes; per p: 2 loads of B, 6 broadcasts of A, 12 FMAs.
 * Edge tiles (mr < MR, nr < NR, or csc != 1) go through a register-sized buffer, so the inner
 * loop is the same for every tile. */

#define FNN_S_MR 6
#define FNN_S_NR 16
#define FNN_D_MR 6
#define FNN_D_NR 8

FNN_AVX2 static void fnn_skernel_avx2(int kc, const float *restrict a, ptrdiff_t rsa,
                                      ptrdiff_t csa, const float *restrict b, float *restrict c,
                                      ptrdiff_t rsc, ptrdiff_t csc, int mr, int nr, int accumulate)
{
    const int full = csc == 1 && mr == FNN_S_MR && nr == FNN_S_NR;
    float buf[FNN_S_MR * FNN_S_NR] __attribute__((aligned(32)));
    float *t = full ? c : buf;                      /* the tile as a row-major block */
    const ptrdiff_t rs = full ? rsc : FNN_S_NR;
    __m256 c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51;

    if (accumulate) {
        if (!full) {
            memset(buf, 0, sizeof buf);
            for (int i = 0; i < mr; i++)
                for (int j = 0; j < nr; j++) buf[i * FNN_S_NR + j] = c[i * rsc + j * csc];
        }
        c00 = _mm256_loadu_ps(t + 0 * rs); c01 = _mm256_loadu_ps(t + 0 * rs + 8);
        c10 = _mm256_loadu_ps(t + 1 * rs); c11 = _mm256_loadu_ps(t + 1 * rs + 8);
        c20 = _mm256_loadu_ps(t + 2 * rs); c21 = _mm256_loadu_ps(t + 2 * rs + 8);
        c30 = _mm256_loadu_ps(t + 3 * rs); c31 = _mm256_loadu_ps(t + 3 * rs + 8);
        c40 = _mm256_loadu_ps(t + 4 * rs); c41 = _mm256_loadu_ps(t + 4 * rs + 8);
        c50 = _mm256_loadu_ps(t + 5 * rs); c51 = _mm256_loadu_ps(t + 5 * rs + 8);
    } else {
        c00 = c01 = c10 = c11 = c20 = c21 = _mm256_setzero_ps();
        c30 = c31 = c40 = c41 = c50 = c51 = _mm256_setzero_ps();
    }

    /* Rows past mr re-read row 0: in bounds, and their results are never stored. */
    const float *a0 = a, *a1 = a + (mr > 1) * rsa, *a2 = a + (mr > 2) * 2 * rsa;
    const float *a3 = a + (mr > 3) * 3 * rsa, *a4 = a + (mr > 4) * 4 * rsa, *a5 = a + (mr > 5) * 5 * rsa;
    /* Row tiles of 1-2 or 3-4 rows (the row edge: batch 32 = 5 x 6 + 2) skip the FMAs of rows
     * that are never stored; every stored element gets the same FMAs in the same order. */
#define FNN_SK_ROW(ap, x0, x1) \
        ai = _mm256_broadcast_ss(ap + o); x0 = _mm256_fmadd_ps(ai, b0, x0); x1 = _mm256_fmadd_ps(ai, b1, x1);
#define FNN_SK_LOOP(BODY)                                                                        \
    for (int p = 0; p < kc; p++, b += FNN_S_NR) {                                                \
        const ptrdiff_t o = p * csa;                                                             \
        const __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);                         \
        __m256 ai;                                                                               \
        BODY                                                                                     \
    }
    if (mr > 4) {
        FNN_SK_LOOP(FNN_SK_ROW(a0, c00, c01) FNN_SK_ROW(a1, c10, c11) FNN_SK_ROW(a2, c20, c21)
                    FNN_SK_ROW(a3, c30, c31) FNN_SK_ROW(a4, c40, c41) FNN_SK_ROW(a5, c50, c51))
    } else if (mr > 2) {
        FNN_SK_LOOP(FNN_SK_ROW(a0, c00, c01) FNN_SK_ROW(a1, c10, c11) FNN_SK_ROW(a2, c20, c21)
                    FNN_SK_ROW(a3, c30, c31))
    } else {
        FNN_SK_LOOP(FNN_SK_ROW(a0, c00, c01) FNN_SK_ROW(a1, c10, c11))
    }
#undef FNN_SK_LOOP
#undef FNN_SK_ROW

    _mm256_storeu_ps(t + 0 * rs, c00); _mm256_storeu_ps(t + 0 * rs + 8, c01);
    _mm256_storeu_ps(t + 1 * rs, c10); _mm256_storeu_ps(t + 1 * rs + 8, c11);
    _mm256_storeu_ps(t + 2 * rs, c20); _mm256_storeu_ps(t + 2 * rs + 8, c21);
    _mm256_storeu_ps(t + 3 * rs, c30); _mm256_storeu_ps(t + 3 * rs + 8, c31);
    _mm256_storeu_ps(t + 4 * rs, c40); _mm256_storeu_ps(t + 4 * rs + 8, c41);
    _mm256_storeu_ps(t + 5 * rs, c50); _mm256_storeu_ps(t + 5 * rs + 8, c51);
    if (!full)
        for (int i = 0; i < mr; i++)
            for (int j = 0; j < nr; j++) c[i * rsc + j * csc] = buf[i * FNN_S_NR + j];
}

FNN_AVX2 static void fnn_dkernel_avx2(int kc, const double *restrict a, ptrdiff_t rsa,
                                      ptrdiff_t csa, const double *restrict b, double *restrict c,
                                      ptrdiff_t rsc, ptrdiff_t csc, int mr, int nr, int accumulate)
{
    const int full = csc == 1 && mr == FNN_D_MR && nr == FNN_D_NR;
    double buf[FNN_D_MR * FNN_D_NR] __attribute__((aligned(32)));
    double *t = full ? c : buf;                      /* the tile as a row-major block */
    const ptrdiff_t rs = full ? rsc : FNN_D_NR;
    __m256d c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51;

    if (accumulate) {
        if (!full) {
            memset(buf, 0, sizeof buf);
            for (int i = 0; i < mr; i++)
                for (int j = 0; j < nr; j++) buf[i * FNN_D_NR + j] = c[i * rsc + j * csc];
        }
        c00 = _mm256_loadu_pd(t + 0 * rs); c01 = _mm256_loadu_pd(t + 0 * rs + 4);
        c10 = _mm256_loadu_pd(t + 1 * rs); c11 = _mm256_loadu_pd(t + 1 * rs + 4);
        c20 = _mm256_loadu_pd(t + 2 * rs); c21 = _mm256_loadu_pd(t + 2 * rs + 4);
        c30 = _mm256_loadu_pd(t + 3 * rs); c31 = _mm256_loadu_pd(t + 3 * rs + 4);
        c40 = _mm256_loadu_pd(t + 4 * rs); c41 = _mm256_loadu_pd(t + 4 * rs + 4);
        c50 = _mm256_loadu_pd(t + 5 * rs); c51 = _mm256_loadu_pd(t + 5 * rs + 4);
    } else {
        c00 = c01 = c10 = c11 = c20 = c21 = _mm256_setzero_pd();
        c30 = c31 = c40 = c41 = c50 = c51 = _mm256_setzero_pd();
    }

    /* Rows past mr re-read row 0: in bounds, and their results are never stored. */
    const double *a0 = a, *a1 = a + (mr > 1) * rsa, *a2 = a + (mr > 2) * 2 * rsa;
    const double *a3 = a + (mr > 3) * 3 * rsa, *a4 = a + (mr > 4) * 4 * rsa, *a5 = a + (mr > 5) * 5 * rsa;
    for (int p = 0; p < kc; p++, b += FNN_D_NR) {
        const ptrdiff_t o = p * csa;
        const __m256d b0 = _mm256_load_pd(b), b1 = _mm256_load_pd(b + 4);
        __m256d ai;
        ai = _mm256_broadcast_sd(a0 + o); c00 = _mm256_fmadd_pd(ai, b0, c00); c01 = _mm256_fmadd_pd(ai, b1, c01);
        ai = _mm256_broadcast_sd(a1 + o); c10 = _mm256_fmadd_pd(ai, b0, c10); c11 = _mm256_fmadd_pd(ai, b1, c11);
        ai = _mm256_broadcast_sd(a2 + o); c20 = _mm256_fmadd_pd(ai, b0, c20); c21 = _mm256_fmadd_pd(ai, b1, c21);
        ai = _mm256_broadcast_sd(a3 + o); c30 = _mm256_fmadd_pd(ai, b0, c30); c31 = _mm256_fmadd_pd(ai, b1, c31);
        ai = _mm256_broadcast_sd(a4 + o); c40 = _mm256_fmadd_pd(ai, b0, c40); c41 = _mm256_fmadd_pd(ai, b1, c41);
        ai = _mm256_broadcast_sd(a5 + o); c50 = _mm256_fmadd_pd(ai, b0, c50); c51 = _mm256_fmadd_pd(ai, b1, c51);
    }

    _mm256_storeu_pd(t + 0 * rs, c00); _mm256_storeu_pd(t + 0 * rs + 4, c01);
    _mm256_storeu_pd(t + 1 * rs, c10); _mm256_storeu_pd(t + 1 * rs + 4, c11);
    _mm256_storeu_pd(t + 2 * rs, c20); _mm256_storeu_pd(t + 2 * rs + 4, c21);
    _mm256_storeu_pd(t + 3 * rs, c30); _mm256_storeu_pd(t + 3 * rs + 4, c31);
    _mm256_storeu_pd(t + 4 * rs, c40); _mm256_storeu_pd(t + 4 * rs + 4, c41);
    _mm256_storeu_pd(t + 5 * rs, c50); _mm256_storeu_pd(t + 5 * rs + 4, c51);
    if (!full)
        for (int i = 0; i < mr; i++)
            for (int j = 0; j < nr; j++) c[i * rsc + j * csc] = buf[i * FNN_D_NR + j];
}

#endif /* FNN_GEMM_X86 */

#endif /* FNN_GEMM_KERNELS_H */
