/* dropout.c -- counter-based dropout masks (Philox4x32-10) and the inverted-dropout scaling.
 *
 * Philox4x32-10 (Salmon, Moraes, Dror, Shaw, "Parallel random numbers: as easy as 1, 2, 3",
 * SC11; the Random123 library).  One call maps a 128-bit counter and a 64-bit key to 128 random
 * bits: 10 rounds of
 *     (hi0, lo0) = M0 * c0,  (hi1, lo1) = M1 * c2                  (32x32 -> 64-bit products)
 *     c = (hi1 ^ c1 ^ k0,  lo1,  hi0 ^ c3 ^ k1,  lo0)
 * with the key bumped k += (W0, W1) between rounds.  Element e of layer `layer` at step `step`
 * uses word e % 4 of philox(ctr = (e/4 low, e/4 high, layer, step low), key = (seed low, seed
 * high)), so a mask is a pure function of (seed, step, layer, e): any thread count, any split of
 * the range, gives the same bits.
 *
 * On x86, when the ISA in use (cpu.c) is avx2 or avx512, the aligned middle of a range runs 16
 * counters at once with AVX2 instructions; it produces exactly the bytes of the portable path
 * (tested for every ISA the CPU runs).  The avx512 ISA uses the AVX2 path too: the 16-lane
 * version is not written yet.  Define FNN_NO_SIMD_DISPATCH to build the portable path only.
 */
#include <math.h>
#include <string.h>
#include "fastnn.h"
#include "omp_compat.h"
#include "fpmode.h"

/* fnn_{s,d}dropout_forward run in parallel from this many elements: below it (about 15 us of
 * work on one core) a parallel region costs more than it saves. */
#define FNN_DROPOUT_PAR_MIN 16384
/* Thread boundaries fall on multiples of this many elements (absolute index e): whole AVX2
 * groups of 16 Philox blocks, and 64-byte lines of float x and of the mask. */
#define FNN_DROPOUT_CHUNK 64

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u /* golden ratio */
#define PHILOX_W1 0xBB67AE85u /* sqrt(3) - 1 */

#if !defined(FNN_NO_SIMD_DISPATCH) && defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define FNN_DROPOUT_AVX2 1
#include <immintrin.h>
#endif

/* out = Philox4x32-10(ctr, key).  Known answer: ctr = 0, key = 0 -> 6627e8d5 e169c58d bc57ac4c
 * 9b00dbd8.  out may alias ctr. */
void fnn_philox4x32(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4])
{
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int r = 0; r < 10; r++) {
        if (r > 0) {
            k0 += PHILOX_W0;
            k1 += PHILOX_W1;
        }
        const uint64_t p0 = (uint64_t)PHILOX_M0 * c0;
        const uint64_t p1 = (uint64_t)PHILOX_M1 * c2;
        const uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        const uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        c0 = n0;
        c1 = (uint32_t)p1;
        c2 = n2;
        c3 = (uint32_t)p0;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

/* floor(keep_prob * 2^32) for keep_prob in (0, 1): P(u32 < threshold) = keep_prob up to 2^-32.
 * Clamped: keep_prob <= 0 (or NaN) -> 0 (drop all), keep_prob >= 1 -> 0xffffffff (callers skip
 * dropout entirely at keep_prob == 1: with this threshold a word of all ones is still dropped). */
uint32_t fnn_keep_threshold(double keep_prob)
{
    if (!(keep_prob > 0.0))
        return 0u;
    if (keep_prob >= 1.0)
        return 0xFFFFFFFFu;
    return (uint32_t)floor(keep_prob * 4294967296.0); /* exact: scaling by a power of two */
}

/* The four words of counter block `blk`. */
static void philox_block(uint64_t blk, uint32_t layer, uint32_t step_lo, const uint32_t key[2],
                         uint32_t out[4])
{
    const uint32_t ctr[4] = {(uint32_t)blk, (uint32_t)(blk >> 32), layer, step_lo};
    fnn_philox4x32(ctr, key, out);
}

/* Portable: mask[4q + w] = word w of block blk + q < threshold, for q < nblk. */
static void mask_blocks_scalar(uint64_t blk, ptrdiff_t nblk, uint32_t layer, uint32_t step_lo,
                               const uint32_t key[2], uint32_t threshold, uint8_t *mask)
{
    for (ptrdiff_t q = 0; q < nblk; q++) {
        uint32_t u[4];
        philox_block(blk + (uint64_t)q, layer, step_lo, key, u);
        for (int w = 0; w < 4; w++)
            mask[4 * q + w] = (uint8_t)(u[w] < threshold);
    }
}

#ifdef FNN_DROPOUT_AVX2
/* hi, lo of the 32x32 -> 64-bit products a[l] * M in each of the 8 lanes. */
__attribute__((target("avx2"))) static inline void mulhilo8(__m256i a, __m256i M, __m256i *hi,
                                                            __m256i *lo)
{
    const __m256i pe = _mm256_mul_epu32(a, M);                       /* lanes 0, 2, 4, 6 */
    const __m256i po = _mm256_mul_epu32(_mm256_srli_epi64(a, 32), M); /* lanes 1, 3, 5, 7 */
    *lo = _mm256_blend_epi32(pe, _mm256_slli_epi64(po, 32), 0xAA);
    *hi = _mm256_blend_epi32(_mm256_srli_epi64(pe, 32), po, 0xAA);
}

/* 10 Philox rounds on 8 counters at once (lane l of c[w] is word w of counter l). */
__attribute__((target("avx2"))) static inline void philox8(__m256i c[4], uint32_t k0, uint32_t k1)
{
    const __m256i M0 = _mm256_set1_epi32((int)PHILOX_M0), M1 = _mm256_set1_epi32((int)PHILOX_M1);
    for (int r = 0; r < 10; r++) {
        if (r > 0) {
            k0 += PHILOX_W0;
            k1 += PHILOX_W1;
        }
        __m256i hi0, lo0, hi1, lo1;
        mulhilo8(c[0], M0, &hi0, &lo0);
        mulhilo8(c[2], M1, &hi1, &lo1);
        c[0] = _mm256_xor_si256(_mm256_xor_si256(hi1, c[1]), _mm256_set1_epi32((int)k0));
        c[1] = lo1;
        c[2] = _mm256_xor_si256(_mm256_xor_si256(hi0, c[3]), _mm256_set1_epi32((int)k1));
        c[3] = lo0;
    }
}

/* The 32 mask bytes of 8 consecutive blocks from their Philox words c[0..3]. */
__attribute__((target("avx2"))) static inline void store_mask32(const __m256i c[4], uint32_t threshold,
                                                                uint8_t *mask)
{
    const __m256i sign = _mm256_set1_epi32((int)0x80000000u);
    const __m256i thr = _mm256_xor_si256(_mm256_set1_epi32((int)threshold), sign);
    /* byte w*4 + b of a packed 128-bit half -> byte b*4 + w: element order within 4 blocks */
    const __m256i transpose = _mm256_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15,
                                               0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    /* unsigned u < threshold as a signed compare after flipping the sign bits: 0 / -1 */
    const __m256i m0 = _mm256_cmpgt_epi32(thr, _mm256_xor_si256(c[0], sign));
    const __m256i m1 = _mm256_cmpgt_epi32(thr, _mm256_xor_si256(c[1], sign));
    const __m256i m2 = _mm256_cmpgt_epi32(thr, _mm256_xor_si256(c[2], sign));
    const __m256i m3 = _mm256_cmpgt_epi32(thr, _mm256_xor_si256(c[3], sign));
    /* per 128-bit half (blocks 0-3, then 4-7): bytes word-major, w*4 + b */
    const __m256i bytes = _mm256_packs_epi16(_mm256_packs_epi32(m0, m1), _mm256_packs_epi32(m2, m3));
    const __m256i out = _mm256_and_si256(_mm256_shuffle_epi8(bytes, transpose), _mm256_set1_epi8(1));
    _mm256_storeu_si256((__m256i *)mask, out);
}

/* As mask_blocks_scalar, 16 blocks (64 elements) per iteration as two independent groups of 8
 * (lane l of group h is block blk + q + 8h + l).  Bound by the 32x32 multiplies: about 0.9
 * ns/element on a 2.4 GHz Zen core, 6x the portable path.  Iterations whose low counter word
 * would wrap go through the scalar path. */
__attribute__((target("avx2"))) static void mask_blocks_avx2(uint64_t blk, ptrdiff_t nblk,
                                                             uint32_t layer, uint32_t step_lo,
                                                             const uint32_t key[2],
                                                             uint32_t threshold, uint8_t *mask)
{
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i eight = _mm256_set1_epi32(8);
    ptrdiff_t q = 0;
    for (; q + 16 <= nblk; q += 16) {
        const uint64_t b = blk + (uint64_t)q;
        if ((uint32_t)b > 0xFFFFFFF0u) { /* low word wraps inside these 16 blocks */
            mask_blocks_scalar(b, 16, layer, step_lo, key, threshold, mask + 4 * q);
            continue;
        }
        __m256i c[4], d[4];
        c[0] = _mm256_add_epi32(_mm256_set1_epi32((int)(uint32_t)b), lane);
        d[0] = _mm256_add_epi32(c[0], eight);
        c[1] = d[1] = _mm256_set1_epi32((int)(uint32_t)(b >> 32));
        c[2] = d[2] = _mm256_set1_epi32((int)layer);
        c[3] = d[3] = _mm256_set1_epi32((int)step_lo);
        philox8(c, key[0], key[1]);
        philox8(d, key[0], key[1]);
        store_mask32(c, threshold, mask + 4 * q);
        store_mask32(d, threshold, mask + 4 * q + 32);
    }
    if (q < nblk)
        mask_blocks_scalar(blk + (uint64_t)q, nblk - q, layer, step_lo, key, threshold,
                           mask + 4 * q);
}

static int have_avx2(void)
{
    return fnn_isa_active() >= FNN_ISA_AVX2;
}
#endif

/* mask[i] = (word (e % 4) of philox(ctr(e / 4)) < threshold) for e = e0 + i, i < count.
 * e0 >= 0 may be anything (not only a multiple of 4): a partial head block, whole blocks, then a
 * partial tail block. */
void fnn_dropout_mask(uint64_t seed, uint64_t step, uint32_t layer, int64_t e0, ptrdiff_t count,
                      uint32_t threshold, uint8_t *mask)
{
    if (count <= 0)
        return;
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    const uint32_t step_lo = (uint32_t)step;
    uint64_t e = (uint64_t)e0;
    ptrdiff_t i = 0;
    uint32_t u[4];

    if (e & 3u) { /* head: the rest of a partial block */
        philox_block(e >> 2, layer, step_lo, key, u);
        for (unsigned w = (unsigned)(e & 3u); w < 4 && i < count; w++, i++)
            mask[i] = (uint8_t)(u[w] < threshold);
        e += (uint64_t)i;
    }
    const ptrdiff_t nblk = (count - i) / 4;
    if (nblk > 0) {
#ifdef FNN_DROPOUT_AVX2
        if (have_avx2())
            mask_blocks_avx2(e >> 2, nblk, layer, step_lo, key, threshold, mask + i);
        else
#endif
            mask_blocks_scalar(e >> 2, nblk, layer, step_lo, key, threshold, mask + i);
        i += 4 * nblk;
        e += 4 * (uint64_t)nblk;
    }
    if (i < count) { /* tail: the start of a partial block */
        philox_block(e >> 2, layer, step_lo, key, u);
        for (unsigned w = 0; i < count; w++, i++)
            mask[i] = (uint8_t)(u[w] < threshold);
    }
}

/* x[i] = mask[i] ? x[i] * inv_keep : 0 for i < count (inverted dropout; inv_keep = 1/keep_prob).
 * Also the backward pass: dA with the same mask.  The select is an AND of the product's bits with
 * an all-ones/all-zeros word, which gcc vectorises (a ?: on floats it does not); a dropped element
 * becomes +0.0 even when x[i] is inf or NaN. */
void fnn_sdropout_apply(float *restrict x, const uint8_t *restrict mask, ptrdiff_t count,
                        float inv_keep)
{
    for (ptrdiff_t i = 0; i < count; i++) {
        const float y = x[i] * inv_keep;
        uint32_t u;
        memcpy(&u, &y, sizeof u);
        u &= 0u - (uint32_t)(mask[i] != 0);
        memcpy(&x[i], &u, sizeof u);
    }
}

void fnn_ddropout_apply(double *restrict x, const uint8_t *restrict mask, ptrdiff_t count,
                        double inv_keep)
{
    for (ptrdiff_t i = 0; i < count; i++) {
        const double y = x[i] * inv_keep;
        uint64_t u;
        memcpy(&u, &y, sizeof u);
        u &= 0u - (uint64_t)(mask[i] != 0);
        memcpy(&x[i], &u, sizeof u);
    }
}

/* ---- fused inverted dropout: the mask words are applied to x while they are in registers ---- */

/* One element: the byte of fnn_dropout_mask and the value of fnn_{s,d}dropout_apply. */
static inline void sforward_one(uint32_t u, uint32_t threshold, float inv_keep, float *x,
                                uint8_t *mask)
{
    const uint32_t keep = (uint32_t)(u < threshold);
    const float y = *x * inv_keep;
    uint32_t b;
    memcpy(&b, &y, sizeof b);
    b &= 0u - keep;
    memcpy(x, &b, sizeof b);
    if (mask)
        *mask = (uint8_t)keep;
}

static inline void dforward_one(uint32_t u, uint32_t threshold, double inv_keep, double *x,
                                uint8_t *mask)
{
    const uint64_t keep = (uint64_t)(u < threshold);
    const double y = *x * inv_keep;
    uint64_t b;
    memcpy(&b, &y, sizeof b);
    b &= 0u - keep;
    memcpy(x, &b, sizeof b);
    if (mask)
        *mask = (uint8_t)keep;
}

/* Portable: elements 4q + w (q < nblk) from block blk + q. */
static void sforward_blocks_scalar(uint64_t blk, ptrdiff_t nblk, uint32_t layer, uint32_t step_lo,
                                   const uint32_t key[2], uint32_t threshold, float inv_keep,
                                   float *x, uint8_t *mask)
{
    for (ptrdiff_t q = 0; q < nblk; q++) {
        uint32_t u[4];
        philox_block(blk + (uint64_t)q, layer, step_lo, key, u);
        for (int w = 0; w < 4; w++)
            sforward_one(u[w], threshold, inv_keep, x + 4 * q + w, mask ? mask + 4 * q + w : NULL);
    }
}

static void dforward_blocks_scalar(uint64_t blk, ptrdiff_t nblk, uint32_t layer, uint32_t step_lo,
                                   const uint32_t key[2], uint32_t threshold, double inv_keep,
                                   double *x, uint8_t *mask)
{
    for (ptrdiff_t q = 0; q < nblk; q++) {
        uint32_t u[4];
        philox_block(blk + (uint64_t)q, layer, step_lo, key, u);
        for (int w = 0; w < 4; w++)
            dforward_one(u[w], threshold, inv_keep, x + 4 * q + w, mask ? mask + 4 * q + w : NULL);
    }
}

#ifdef FNN_DROPOUT_AVX2
/* Keep masks of 8 blocks (32 elements) in element order: out[j] holds blocks 2j and 2j + 1,
 * words 0-3 each, as 0 / -1 per 32-bit lane; also the 32 mask bytes when mask != NULL. */
__attribute__((target("avx2"))) static inline void keep32(const __m256i c[4], uint32_t threshold,
                                                          uint8_t *mask, __m256i out[4])
{
    const __m256i sign = _mm256_set1_epi32((int)0x80000000u);
    const __m256i thr = _mm256_xor_si256(_mm256_set1_epi32((int)threshold), sign);
    const __m256i m0 = _mm256_cmpgt_epi32(thr, _mm256_xor_si256(c[0], sign));
    const __m256i m1 = _mm256_cmpgt_epi32(thr, _mm256_xor_si256(c[1], sign));
    const __m256i m2 = _mm256_cmpgt_epi32(thr, _mm256_xor_si256(c[2], sign));
    const __m256i m3 = _mm256_cmpgt_epi32(thr, _mm256_xor_si256(c[3], sign));
    if (mask) { /* as store_mask32 */
        const __m256i transpose = _mm256_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11,
                                                   15, 0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7,
                                                   11, 15);
        const __m256i bytes =
            _mm256_packs_epi16(_mm256_packs_epi32(m0, m1), _mm256_packs_epi32(m2, m3));
        _mm256_storeu_si256((__m256i *)mask, _mm256_and_si256(_mm256_shuffle_epi8(bytes, transpose),
                                                              _mm256_set1_epi8(1)));
    }
    /* 4x4 transposes per 128-bit half: t_b = block b (half 0) | block b + 4 (half 1) */
    const __m256i a01l = _mm256_unpacklo_epi32(m0, m1), a01h = _mm256_unpackhi_epi32(m0, m1);
    const __m256i a23l = _mm256_unpacklo_epi32(m2, m3), a23h = _mm256_unpackhi_epi32(m2, m3);
    const __m256i t0 = _mm256_unpacklo_epi64(a01l, a23l), t1 = _mm256_unpackhi_epi64(a01l, a23l);
    const __m256i t2 = _mm256_unpacklo_epi64(a01h, a23h), t3 = _mm256_unpackhi_epi64(a01h, a23h);
    out[0] = _mm256_permute2x128_si256(t0, t1, 0x20); /* blocks 0, 1 */
    out[1] = _mm256_permute2x128_si256(t2, t3, 0x20); /* blocks 2, 3 */
    out[2] = _mm256_permute2x128_si256(t0, t1, 0x31); /* blocks 4, 5 */
    out[3] = _mm256_permute2x128_si256(t2, t3, 0x31); /* blocks 6, 7 */
}

/* 32 floats: x = keep ? x * inv_keep : +0 (the product's bits ANDed with the lane mask). */
__attribute__((target("avx2"))) static inline void sapply32(const __m256i k[4], __m256 inv,
                                                            float *x)
{
    for (int j = 0; j < 4; j++) {
        const __m256 y = _mm256_mul_ps(_mm256_loadu_ps(x + 8 * j), inv);
        _mm256_storeu_ps(x + 8 * j, _mm256_and_ps(y, _mm256_castsi256_ps(k[j])));
    }
}

__attribute__((target("avx2"))) static inline void dapply32(const __m256i k[4], __m256d inv,
                                                            double *x)
{
    for (int j = 0; j < 4; j++) {
        const __m256i lo = _mm256_cvtepi32_epi64(_mm256_castsi256_si128(k[j]));
        const __m256i hi = _mm256_cvtepi32_epi64(_mm256_extracti128_si256(k[j], 1));
        const __m256d y0 = _mm256_mul_pd(_mm256_loadu_pd(x + 8 * j), inv);
        const __m256d y1 = _mm256_mul_pd(_mm256_loadu_pd(x + 8 * j + 4), inv);
        _mm256_storeu_pd(x + 8 * j, _mm256_and_pd(y0, _mm256_castsi256_pd(lo)));
        _mm256_storeu_pd(x + 8 * j + 4, _mm256_and_pd(y1, _mm256_castsi256_pd(hi)));
    }
}

/* As mask_blocks_avx2, applying each group of 64 mask words to x at once. */
#define FNN_FORWARD_BLOCKS_AVX2(NAME, T, VT, SET1, APPLY, SCALAR)                                  \
    __attribute__((target("avx2"))) static void NAME(                                            \
        uint64_t blk, ptrdiff_t nblk, uint32_t layer, uint32_t step_lo, const uint32_t key[2],     \
        uint32_t threshold, T inv_keep, T *x, uint8_t *mask)                                       \
    {                                                                                              \
        const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);                            \
        const __m256i eight = _mm256_set1_epi32(8);                                                \
        const VT inv = SET1(inv_keep);                                                             \
        ptrdiff_t q = 0;                                                                           \
        for (; q + 16 <= nblk; q += 16) {                                                          \
            const uint64_t b = blk + (uint64_t)q;                                                  \
            uint8_t *mq = mask ? mask + 4 * q : NULL;                                              \
            if ((uint32_t)b > 0xFFFFFFF0u) {                                                       \
                SCALAR(b, 16, layer, step_lo, key, threshold, inv_keep, x + 4 * q, mq);            \
                continue;                                                                          \
            }                                                                                      \
            __m256i c[4], d[4], k[4];                                                              \
            c[0] = _mm256_add_epi32(_mm256_set1_epi32((int)(uint32_t)b), lane);                    \
            d[0] = _mm256_add_epi32(c[0], eight);                                                  \
            c[1] = d[1] = _mm256_set1_epi32((int)(uint32_t)(b >> 32));                             \
            c[2] = d[2] = _mm256_set1_epi32((int)layer);                                           \
            c[3] = d[3] = _mm256_set1_epi32((int)step_lo);                                         \
            philox8(c, key[0], key[1]);                                                            \
            philox8(d, key[0], key[1]);                                                            \
            keep32(c, threshold, mq, k);                                                           \
            APPLY(k, inv, x + 4 * q);                                                              \
            keep32(d, threshold, mq ? mq + 32 : NULL, k);                                          \
            APPLY(k, inv, x + 4 * q + 32);                                                         \
        }                                                                                          \
        if (q < nblk)                                                                              \
            SCALAR(blk + (uint64_t)q, nblk - q, layer, step_lo, key, threshold, inv_keep,          \
                   x + 4 * q, mask ? mask + 4 * q : NULL);                                         \
    }

FNN_FORWARD_BLOCKS_AVX2(sforward_blocks_avx2, float, __m256, _mm256_set1_ps, sapply32,
                        sforward_blocks_scalar)
FNN_FORWARD_BLOCKS_AVX2(dforward_blocks_avx2, double, __m256d, _mm256_set1_pd, dapply32,
                        dforward_blocks_scalar)
#undef FNN_FORWARD_BLOCKS_AVX2
#endif

#ifdef _OPENMP
#define FNN_THREAD_NUM() omp_get_thread_num()
#define FNN_NUM_THREADS() omp_get_num_threads()
#else
#define FNN_THREAD_NUM() 0
#define FNN_NUM_THREADS() 1
#endif

static int simd_ok(void)
{
#ifdef FNN_DROPOUT_AVX2
    return have_avx2();
#else
    return 0;
#endif
}

/* Whole blocks through the AVX2 path when avx2 != 0 (and it is compiled), else the portable one. */
#ifdef FNN_DROPOUT_AVX2
#define FNN_FORWARD_BLOCKS(NAME, T, SCALAR, AVX2)                                                  \
    static void NAME(uint64_t blk, ptrdiff_t nblk, uint32_t layer, uint32_t step_lo,               \
                     const uint32_t key[2], uint32_t threshold, T inv_keep, T *x, uint8_t *mask,   \
                     int avx2)                                                                     \
    {                                                                                              \
        if (avx2)                                                                                  \
            AVX2(blk, nblk, layer, step_lo, key, threshold, inv_keep, x, mask);                    \
        else                                                                                       \
            SCALAR(blk, nblk, layer, step_lo, key, threshold, inv_keep, x, mask);                  \
    }
#else
#define FNN_FORWARD_BLOCKS(NAME, T, SCALAR, AVX2)                                                  \
    static void NAME(uint64_t blk, ptrdiff_t nblk, uint32_t layer, uint32_t step_lo,               \
                     const uint32_t key[2], uint32_t threshold, T inv_keep, T *x, uint8_t *mask,   \
                     int avx2)                                                                     \
    {                                                                                              \
        (void)avx2;                                                                                \
        SCALAR(blk, nblk, layer, step_lo, key, threshold, inv_keep, x, mask);                      \
    }
#endif
FNN_FORWARD_BLOCKS(sforward_blocks, float, sforward_blocks_scalar, sforward_blocks_avx2)
FNN_FORWARD_BLOCKS(dforward_blocks, double, dforward_blocks_scalar, dforward_blocks_avx2)
#undef FNN_FORWARD_BLOCKS

/* One thread's range [e, e + count): the rest of a partial head block, whole blocks, the start of
 * a partial tail block (as fnn_dropout_mask). */
#define FNN_FORWARD_RANGE(NAME, T, ONE, BLOCKS)                                                    \
    static void NAME(const uint32_t key[2], uint32_t step_lo, uint32_t layer, uint64_t e,          \
                     ptrdiff_t count, uint32_t threshold, T inv_keep, T *x, uint8_t *mask,         \
                     int avx2)                                                                     \
    {                                                                                              \
        ptrdiff_t i = 0;                                                                           \
        uint32_t u[4];                                                                             \
        if (count <= 0)                                                                            \
            return;                                                                                \
        if (e & 3u) {                                                                              \
            philox_block(e >> 2, layer, step_lo, key, u);                                          \
            for (unsigned w = (unsigned)(e & 3u); w < 4 && i < count; w++, i++)                    \
                ONE(u[w], threshold, inv_keep, x + i, mask ? mask + i : NULL);                     \
            e += (uint64_t)i;                                                                      \
        }                                                                                          \
        const ptrdiff_t nblk = (count - i) / 4;                                                    \
        if (nblk > 0) {                                                                            \
            BLOCKS(e >> 2, nblk, layer, step_lo, key, threshold, inv_keep, x + i,                  \
                   mask ? mask + i : NULL, avx2);                                                  \
            i += 4 * nblk;                                                                         \
            e += 4 * (uint64_t)nblk;                                                               \
        }                                                                                          \
        if (i < count) {                                                                           \
            philox_block(e >> 2, layer, step_lo, key, u);                                          \
            for (unsigned w = 0; i < count; w++, i++)                                              \
                ONE(u[w], threshold, inv_keep, x + i, mask ? mask + i : NULL);                     \
        }                                                                                          \
    }
FNN_FORWARD_RANGE(sforward_range, float, sforward_one, sforward_blocks)
FNN_FORWARD_RANGE(dforward_range, double, dforward_one, dforward_blocks)
#undef FNN_FORWARD_RANGE

/* Thread t of nt takes [b(t), b(t + 1)) with b(t) = e0 + count * t / nt rounded down to a
 * multiple of FNN_DROPOUT_CHUNK in the absolute index (b(0) = e0, b(nt) = e0 + count).  Every
 * element's value depends on its index e only, so the split changes nothing but the speed. */
static void thread_range(uint64_t e0, ptrdiff_t count, int t, int nt, ptrdiff_t *lo, ptrdiff_t *hi)
{
    const uint64_t end = e0 + (uint64_t)count;
    uint64_t b[2];
    for (int j = 0; j < 2; j++) {
        const int k = t + j;
        if (k == 0) {
            b[j] = e0;
        } else if (k >= nt) {
            b[j] = end;
        } else {
            const uint64_t c = (uint64_t)count, n = (uint64_t)nt, kk = (uint64_t)k;
            uint64_t v = e0 + c / n * kk + c % n * kk / n; /* floor(count * k / nt), no overflow */
            v -= v % FNN_DROPOUT_CHUNK;
            b[j] = v < e0 ? e0 : (v > end ? end : v);
        }
    }
    *lo = (ptrdiff_t)(b[0] - e0);
    *hi = (ptrdiff_t)(b[1] - e0);
}

#define FNN_DROPOUT_FORWARD(NAME, T, RANGE)                                                        \
    void NAME(uint64_t seed, uint64_t step, uint32_t layer, int64_t e0, ptrdiff_t count,           \
              uint32_t threshold, T inv_keep, T *x, uint8_t *mask, int n_threads)                  \
    {                                                                                              \
        if (count <= 0)                                                                            \
            return;                                                                                \
        const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};                          \
        const uint32_t step_lo = (uint32_t)step;                                                   \
        const uint64_t e = (uint64_t)e0;                                                           \
        const int avx2 = simd_ok();                                                                \
        if (n_threads > 1 && count >= FNN_DROPOUT_PAR_MIN) {                                       \
            const unsigned fp_mode = fnn_fp_mode();                                                \
            FNN_PRAGMA(omp parallel num_threads(n_threads))                                        \
            {                                                                                      \
                const unsigned fp_saved = fnn_fp_enter(fp_mode); /* the caller's FTZ/DAZ */        \
                ptrdiff_t lo, hi;                                                                  \
                thread_range(e, count, FNN_THREAD_NUM(), FNN_NUM_THREADS(), &lo, &hi);               \
                RANGE(key, step_lo, layer, e + (uint64_t)lo, hi - lo, threshold, inv_keep, x + lo, \
                      mask ? mask + lo : NULL, avx2);                                              \
                fnn_fp_leave(fp_saved);                                                            \
            }                                                                                      \
            return;                                                                                \
        }                                                                                          \
        RANGE(key, step_lo, layer, e, count, threshold, inv_keep, x, mask, avx2);                  \
    }
FNN_DROPOUT_FORWARD(fnn_sdropout_forward, float, sforward_range)
FNN_DROPOUT_FORWARD(fnn_ddropout_forward, double, dforward_range)
#undef FNN_DROPOUT_FORWARD
