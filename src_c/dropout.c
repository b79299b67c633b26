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
 * Design: the mask kernel and the fused forward (mask + scaling of x) are one source,
 * dropout_impl.h, written with GCC/Clang vector extensions and compiled once per instruction set
 * with a function attribute: generic (16-byte vectors, 1 Philox block per vector, groups of 4
 * vectors = 16 elements), avx2 (32 bytes, 2 blocks, groups of 8 vectors = 64 elements) and avx512
 * (64 bytes, 4 blocks, groups of 8 vectors = 128 elements).  8 independent Philox chains per
 * group hide the multiply latency: 4 measured slower with AVX2 and no faster with AVX-512, 16
 * slower with both (register spills).  The ISA in use (cpu.c)
 * picks the entry of a table, read once per call.  Every variant applies the same integer rounds
 * and the same IEEE multiply to each element, so all give the same bits (tested for every ISA the
 * CPU runs, against the scalar fnn_philox4x32 and fastnn.reference).  The one per-ISA primitive
 * is the even-lane 32 x 32 -> 64-bit multiply (pmuludq): written portably, (a & 0xffffffff) * b
 * on uint64 lanes, gcc 12 emits a full 64-bit multiply (three pmuludq) instead.  A build for
 * another architecture has the generic variant only, with the portable multiply.
 * fnn_{s,d}dropout_apply (the backward pass, with a mask already made) is plain C that gcc
 * vectorises for the baseline.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>
#include "fastnn.h"
#include "omp_compat.h"
#include "fpmode.h"

/* fnn_{s,d}dropout_forward run in parallel from this many elements: below it (8 to 25 us of work
 * on one core, by ISA) a parallel region costs more than it saves. */
#define FNN_DROPOUT_PAR_MIN 16384
/* Thread boundaries fall on multiples of this many elements (absolute index e): whole 64-byte
 * lines of float x and of the mask. */
#define FNN_DROPOUT_CHUNK 64

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u /* golden ratio */
#define PHILOX_W1 0xBB67AE85u /* sqrt(3) - 1 */

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define FNN_DROPOUT_X86 1
#include <immintrin.h>
#endif

#if defined(__has_builtin)
#if __has_builtin(__builtin_shufflevector)
#define FNN_HAVE_SHUFFLEVECTOR 1
#endif
#endif
#ifndef FNN_HAVE_SHUFFLEVECTOR
#define FNN_HAVE_SHUFFLEVECTOR 0
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

/* What a range computes: the mask only, or the fused forward on float or double x. */
enum { FNN_DROP_MASK, FNN_DROP_F32, FNN_DROP_F64 };

/* ---- the kernels, one source (dropout_impl.h) per instruction set ------------------------- */

#define FNN_CAT3(a, b, c) a##b##c
#define FNN_XCAT3(a, b, c) FNN_CAT3(a, b, c)

#define FNN_TARGET
#define FNN_VBYTES 16
#define FNN_NV 4
#define FNN_K(name) FNN_XCAT3(fnn_, name, _generic)
#if defined(__SSE2__)
#define FNN_MUL_EVEN(a, b) ((fnn_u64_generic)_mm_mul_epu32((__m128i)(a), (__m128i)(b)))
#else
#define FNN_MUL_EVEN(a, b) (((a) & 0xFFFFFFFFu) * ((b) & 0xFFFFFFFFu))
#endif
#include "dropout_impl.h"
#undef FNN_TARGET
#undef FNN_VBYTES
#undef FNN_NV
#undef FNN_K
#undef FNN_MUL_EVEN

#ifdef FNN_DROPOUT_X86
#define FNN_TARGET __attribute__((target("avx2,fma")))
#define FNN_VBYTES 32
#define FNN_NV 8
#define FNN_K(name) FNN_XCAT3(fnn_, name, _avx2)
#define FNN_MUL_EVEN(a, b) ((fnn_u64_avx2)_mm256_mul_epu32((__m256i)(a), (__m256i)(b)))
#include "dropout_impl.h"
#undef FNN_TARGET
#undef FNN_VBYTES
#undef FNN_NV
#undef FNN_K
#undef FNN_MUL_EVEN

#define FNN_TARGET __attribute__((target("avx2,fma,avx512f,avx512bw,avx512dq,avx512vl")))
#define FNN_VBYTES 64
#define FNN_NV 8
#define FNN_K(name) FNN_XCAT3(fnn_, name, _avx512)
#define FNN_MUL_EVEN(a, b) ((fnn_u64_avx512)_mm512_mul_epu32((__m512i)(a), (__m512i)(b)))
#include "dropout_impl.h"
#undef FNN_TARGET
#undef FNN_VBYTES
#undef FNN_NV
#undef FNN_K
#undef FNN_MUL_EVEN
#endif

/* ---- the table: one entry per instruction set (fnn_isa) ------------------------------------ */

/* Elements [e, e + count) on the calling thread; x, mask at element e (mask may be NULL). */
typedef void (*fnn_dropout_range)(const uint32_t key[2], uint32_t step_lo, uint32_t layer,
                                  uint64_t e, ptrdiff_t count, uint32_t threshold, void *x,
                                  double inv_keep, uint8_t *mask);

typedef struct {
    fnn_dropout_range mask, sforward, dforward;
} fnn_dropout_isa;

static const fnn_dropout_isa fnn_dropout_isas[FNN_ISA_COUNT] = {
    [FNN_ISA_GENERIC] = {fnn_mask_range_generic, fnn_sforward_range_generic,
                         fnn_dforward_range_generic},
#ifdef FNN_DROPOUT_X86
    [FNN_ISA_AVX2] = {fnn_mask_range_avx2, fnn_sforward_range_avx2, fnn_dforward_range_avx2},
    [FNN_ISA_AVX512] = {fnn_mask_range_avx512, fnn_sforward_range_avx512,
                        fnn_dforward_range_avx512},
#endif
};

static const fnn_dropout_isa *fnn_dropout_isa_get(void)
{
    return &fnn_dropout_isas[fnn_isa_active()];
}

/* mask[i] = (word (e % 4) of philox(ctr(e / 4)) < threshold) for e = e0 + i, i < count.
 * e0 >= 0 may be anything (not only a multiple of 4). */
void fnn_dropout_mask(uint64_t seed, uint64_t step, uint32_t layer, int64_t e0, ptrdiff_t count,
                      uint32_t threshold, uint8_t *mask)
{
    if (count <= 0)
        return;
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    fnn_dropout_isa_get()->mask(key, (uint32_t)step, layer, (uint64_t)e0, count, threshold, NULL,
                                0.0, mask);
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

#ifdef _OPENMP
#define FNN_THREAD_NUM() omp_get_thread_num()
#define FNN_NUM_THREADS() omp_get_num_threads()
#else
#define FNN_THREAD_NUM() 0
#define FNN_NUM_THREADS() 1
#endif

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

/* fnn_{s,d}dropout_forward: `range` is the table's entry for the dtype. */
static void dropout_forward(fnn_dropout_range range, size_t elem_size, uint64_t seed,
                            uint64_t step, uint32_t layer, int64_t e0, ptrdiff_t count,
                            uint32_t threshold, double inv_keep, void *x, uint8_t *mask,
                            int n_threads)
{
    if (count <= 0)
        return;
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    const uint32_t step_lo = (uint32_t)step;
    const uint64_t e = (uint64_t)e0;
    if (n_threads > 1 && count >= FNN_DROPOUT_PAR_MIN) {
        const unsigned fp_mode = fnn_fp_mode();
        FNN_PRAGMA(omp parallel num_threads(n_threads))
        {
            const unsigned fp_saved = fnn_fp_enter(fp_mode); /* the caller's FTZ/DAZ */
            ptrdiff_t lo, hi;
            thread_range(e, count, FNN_THREAD_NUM(), FNN_NUM_THREADS(), &lo, &hi);
            if (lo < hi)
                range(key, step_lo, layer, e + (uint64_t)lo, hi - lo, threshold,
                      (char *)x + (size_t)lo * elem_size, inv_keep, mask ? mask + lo : NULL);
            fnn_fp_leave(fp_saved);
        }
        return;
    }
    range(key, step_lo, layer, e, count, threshold, x, inv_keep, mask);
}

void fnn_sdropout_forward(uint64_t seed, uint64_t step, uint32_t layer, int64_t e0,
                          ptrdiff_t count, uint32_t threshold, float inv_keep, float *x,
                          uint8_t *mask, int n_threads)
{
    dropout_forward(fnn_dropout_isa_get()->sforward, sizeof(float), seed, step, layer, e0, count,
                    threshold, (double)inv_keep, x, mask, n_threads);
}

void fnn_ddropout_forward(uint64_t seed, uint64_t step, uint32_t layer, int64_t e0,
                          ptrdiff_t count, uint32_t threshold, double inv_keep, double *x,
                          uint8_t *mask, int n_threads)
{
    dropout_forward(fnn_dropout_isa_get()->dforward, sizeof(double), seed, step, layer, e0, count,
                    threshold, inv_keep, x, mask, n_threads);
}
