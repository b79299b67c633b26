/* gemm_kernels.h -- private to gemm.c: the GEMM micro-kernels and panel packers, one source
 * (gemm_ukr_impl.h) compiled for each instruction set with a function attribute.
 *
 * Micro-kernel contract (every kernel here, both dtypes):
 *
 *   C(i,j) = [C(i,j) +] sum_{p < kc} a[i*rsa + p*csa] * Bp[p*NR + j]    0 <= i < mr, 0 <= j < nr
 *
 *   kc          depth of this pass, >= 0 (kc == 0 stores zeros, or leaves C as is if accumulate)
 *   a, rsa, csa the A micro-panel: packed (rsa = 1, csa = MR) or A itself in place (used when C
 *               has a single column panel, so each A element is read once); rows >= mr are
 *               never read
 *   Bp          packed B micro-panel: kc rows of NR values, lanes >= nr zero-filled; 64-byte aligned
 *   C           element (i,j) is C[i*rsc + j*csc]; csc == 1 is the fast path (row-major tile),
 *               anything else (the transposed problem of gemm.c) goes through a tile buffer
 *   mr, nr      the valid part of the MR x NR tile, 1 <= mr <= MR, 1 <= nr <= NR; only it is
 *               read and written (no element outside it is touched)
 *   accumulate  0: C is written, never read.  1: the sum starts from C's current value.
 *
 * Accumulation order: each C(i,j) is one running sum over p in increasing order, started from 0
 * (or from C), with one fused multiply-add (one rounding) per p, in every kernel.  So splitting k
 * into passes, tiling C differently, using edge tiles, or another instruction set never changes a
 * result: the generic kernel rounds with fmaf/fma (exact, if slow, on a CPU without FMA) and the
 * vector ones with FMA instructions, and the build compiles with -ffp-contract=off so that the
 * compiler fuses nothing else.
 *
 * Packers: pack a block of `width` lanes (A rows or B columns) into consecutive W-lane
 * micro-panels, dst[panel][p][lane] = src[lane*ls + p*ks], zero-filling the lanes past `width`
 * in the last panel (W is MR or NR).  ls is the stride between lanes, ks along k.
 *
 * Tiles (MR x NR):        float     double     why
 *   generic               4 x 8     4 x 8      portable; 2 / 4 16-byte vectors per row
 *   avx2 (x86-64-v3)      6 x 16    6 x 8      12 ymm accumulators hide the FMA latency
 *   avx512 (x86-64-v4)    12 x 32   12 x 16    24 zmm accumulators + 2 of B + 1 broadcast
 */
#ifndef FNN_GEMM_KERNELS_H
#define FNN_GEMM_KERNELS_H

#include <math.h>
#include <stddef.h>
#include <string.h>

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define FNN_GEMM_X86 1
#include <immintrin.h>
#endif

/* k-contiguous packing transposes blocks of this many values along k. */
#define FNN_PACK_KB 8

#define FNN_CAT3(a, b, c) a##b##c
#define FNN_XCAT3(a, b, c) FNN_CAT3(a, b, c)

/* ---- generic: portable C; the fused multiply-add of each lane through fmaf / fma ---------- */

typedef float fnn_gen_vs __attribute__((vector_size(16)));
typedef double fnn_gen_vd __attribute__((vector_size(16)));

static inline fnn_gen_vs fnn_gen_fmas(fnn_gen_vs a, fnn_gen_vs b, fnn_gen_vs c)
{
    for (int l = 0; l < 4; l++) c[l] = fmaf(a[l], b[l], c[l]);
    return c;
}

static inline fnn_gen_vd fnn_gen_fmad(fnn_gen_vd a, fnn_gen_vd b, fnn_gen_vd c)
{
    for (int l = 0; l < 2; l++) c[l] = fma(a[l], b[l], c[l]);
    return c;
}

#define FNN_TARGET
#define FNN_VBYTES 16
#define FNN_MR 4

#define FNN_REAL float
#define FNN_K(name) FNN_XCAT3(fnn_s, name, _generic)
#define FNN_NV 2
#define FNN_VFMA(a, b, c) fnn_gen_fmas(a, b, c)
#include "gemm_ukr_impl.h"
#undef FNN_REAL
#undef FNN_K
#undef FNN_NV
#undef FNN_VFMA

#define FNN_REAL double
#define FNN_K(name) FNN_XCAT3(fnn_d, name, _generic)
#define FNN_NV 4
#define FNN_VFMA(a, b, c) fnn_gen_fmad(a, b, c)
#include "gemm_ukr_impl.h"
#undef FNN_REAL
#undef FNN_K
#undef FNN_NV
#undef FNN_VFMA

#undef FNN_TARGET
#undef FNN_VBYTES
#undef FNN_MR

#define FNN_GEN_MR 4
#define FNN_GEN_SNR 8
#define FNN_GEN_DNR 8

#ifdef FNN_GEMM_X86

/* ---- avx2: x86-64-v3 (AVX2 + FMA) ----------------------------------------------------------- */

#define FNN_TARGET __attribute__((target("avx2,fma")))
#define FNN_VBYTES 32
#define FNN_MR 6
#define FNN_NV 2

#define FNN_REAL float
#define FNN_K(name) FNN_XCAT3(fnn_s, name, _avx2)
#define FNN_VFMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#include "gemm_ukr_impl.h"
#undef FNN_REAL
#undef FNN_K
#undef FNN_VFMA

#define FNN_REAL double
#define FNN_K(name) FNN_XCAT3(fnn_d, name, _avx2)
#define FNN_VFMA(a, b, c) _mm256_fmadd_pd(a, b, c)
#include "gemm_ukr_impl.h"
#undef FNN_REAL
#undef FNN_K
#undef FNN_VFMA

#undef FNN_TARGET
#undef FNN_VBYTES
#undef FNN_MR
#undef FNN_NV

#define FNN_AVX2_MR 6
#define FNN_AVX2_SNR 16
#define FNN_AVX2_DNR 8

/* ---- avx512: x86-64-v4 (AVX-512 F, BW, DQ, VL) ---------------------------------------------- */

#define FNN_TARGET __attribute__((target("avx2,fma,avx512f,avx512bw,avx512dq,avx512vl")))
#define FNN_VBYTES 64
#define FNN_MR 12
#define FNN_NV 2

#define FNN_REAL float
#define FNN_K(name) FNN_XCAT3(fnn_s, name, _avx512)
#define FNN_VFMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#include "gemm_ukr_impl.h"
#undef FNN_REAL
#undef FNN_K
#undef FNN_VFMA

#define FNN_REAL double
#define FNN_K(name) FNN_XCAT3(fnn_d, name, _avx512)
#define FNN_VFMA(a, b, c) _mm512_fmadd_pd(a, b, c)
#include "gemm_ukr_impl.h"
#undef FNN_REAL
#undef FNN_K
#undef FNN_VFMA

#undef FNN_TARGET
#undef FNN_VBYTES
#undef FNN_MR
#undef FNN_NV

#define FNN_AVX512_MR 12
#define FNN_AVX512_SNR 32
#define FNN_AVX512_DNR 16

#endif /* FNN_GEMM_X86 */

#endif /* FNN_GEMM_KERNELS_H */
