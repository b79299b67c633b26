/* gemm.c -- C = A B with general operand strides, BLIS-style, and a fused epilogue.
 *
 * Design: the blocking loops (gemm_impl.h, compiled here for float and double) pack B into
 * kc x NR micro-panels and A into MR x kc micro-panels and call one micro-kernel per MR x NR tile
 * of C.  The micro-kernels and packers (gemm_kernels.h: one source compiled per instruction set)
 * sit behind a table with one entry per ISA, read once per call from cpu.c's choice, so nothing
 * else names an instruction set.  Each entry carries its own tile and cache blocks (elements):
 *
 *                        float                       double
 *                        MR x NR   kc   mc   nc      MR x NR   kc   mc   nc
 *   generic              4 x 8     512  144  512     4 x 8     256  72   256
 *   avx2 (x86-64-v3)     6 x 16    512  144  512     6 x 8     256  72   256
 *   avx512 (x86-64-v4)   12 x 32   256  144  512     12 x 16   256  72   256
 *
 * kc keeps a B micro-panel (kc x NR) in L1, mc x kc of A in L2, kc x nc of B in L2/L3.  kc, mc and
 * nc are balanced (k = 784 runs as 2 passes of 392, not 512 + 272).  AVX2 float's kc was 256 until
 * measured: 512 is 3-16 % faster on the MNIST-shaped products and 11-18 % on a 1536^3 one (2
 * threads, builds alternating in one process); double gained nothing from 384 or 512.
 * The workspace bound (fnn_gemm_ws_size) is the largest over every compiled entry, so a
 * workspace sized under one ISA serves a call under another.
 *
 * Epilogue blocks: one mb x nb block (mb <= mc, nb <= nc) per row block of each thread's column
 * block, called right after the last pass over k stored it.  Blocks need not span whole rows.
 *
 * Few rows (m <= MR, e.g. predicting one sample): C has one row panel, so every B element is used
 * once and packing B would cost as much as the product; when B's columns are contiguous (the
 * weights W of Z = A W) the kernel reads B in place, row p of a micro-panel at B + p*rsb, and
 * only a last partial column panel is packed (a full-width read would run past B's rows).
 *
 * Narrow outputs (n <= NR, e.g. the 10-class output layer): C has one column panel, so every A
 * element is used once and packing A would be pure overhead; the kernel reads A in place through
 * its strides, and threads split the rows.  When the padding of n to NR would waste much more than
 * a strided store of C costs (narrow n, long k: gemm_plan's cost model), the call computes
 * C^T = B^T A^T instead.  Multiplication commutes exactly, so both orders give the same bits.
 *
 * Threads: a thread owns a rectangle of C's micro-tiles (column panels first, rows when n is
 * narrow), packs B into its own slice of ws, and runs the whole k range.  When every thread owns
 * columns over all rows, the team packs each A block once into a shared, double-buffered region
 * of ws (one barrier per block) instead of each thread packing the same block.  Every element is
 * one running sum over p in increasing order whatever the blocking, so the bits do not depend
 * on n_threads.  Calls below FNN_GEMM_PAR_FLOPS stay on the calling thread (no parallel region).
 */
#include <stdlib.h>
#include <string.h>

#include "fastnn.h"
#include "omp_compat.h"
#include "fpmode.h"
#include "gemm_kernels.h"

/* Below this many flops (2 m n k) a parallel region costs more than it saves. */
#define FNN_GEMM_PAR_FLOPS 2.0e6

/* ---- the micro-kernel table: one entry per instruction set (fnn_isa) ---------------------- */

typedef struct {
    int mr, nr;          /* micro-tile */
    int kc, mc, nc;      /* cache blocks (elements): the table in the header comment */
    void (*pack)(float *restrict, const float *restrict, ptrdiff_t, ptrdiff_t, int, int, int);
    void (*kernel)(int, const float *restrict, ptrdiff_t, ptrdiff_t, const float *restrict,
                   ptrdiff_t, float *restrict, ptrdiff_t, ptrdiff_t, int, int, int);
    void (*wide)(int, const float *restrict, ptrdiff_t, ptrdiff_t, int, const float *restrict,
                 ptrdiff_t, float *restrict, ptrdiff_t, int, int);
} fnn_sukr;

typedef struct {
    int mr, nr;
    int kc, mc, nc;
    void (*pack)(double *restrict, const double *restrict, ptrdiff_t, ptrdiff_t, int, int, int);
    void (*kernel)(int, const double *restrict, ptrdiff_t, ptrdiff_t, const double *restrict,
                   ptrdiff_t, double *restrict, ptrdiff_t, ptrdiff_t, int, int, int);
    void (*wide)(int, const double *restrict, ptrdiff_t, ptrdiff_t, int, const double *restrict,
                 ptrdiff_t, double *restrict, ptrdiff_t, int, int);
} fnn_dukr;

typedef struct {
    const char *name;
    fnn_sukr s;
    fnn_dukr d;
} fnn_gemm_isa;

static const fnn_gemm_isa fnn_gemm_isas[FNN_ISA_COUNT] = {
    [FNN_ISA_GENERIC] = {"generic",
        {FNN_GEN_MR, FNN_GEN_SNR, 512, 144, 512, fnn_spack_generic, fnn_skernel_generic,
         fnn_swide_generic},
        {FNN_GEN_MR, FNN_GEN_DNR, 256, 72, 256, fnn_dpack_generic, fnn_dkernel_generic,
         fnn_dwide_generic}},
#ifdef FNN_GEMM_X86
    [FNN_ISA_AVX2] = {"avx2-fma",
        {FNN_AVX2_MR, FNN_AVX2_SNR, 512, 144, 512, fnn_spack_avx2, fnn_skernel_avx2,
         fnn_swide_avx2},
        {FNN_AVX2_MR, FNN_AVX2_DNR, 256, 72, 256, fnn_dpack_avx2, fnn_dkernel_avx2,
         fnn_dwide_avx2}},
    [FNN_ISA_AVX512] = {"avx512",
        {FNN_AVX512_MR, FNN_AVX512_SNR, 256, 144, 512, fnn_spack_avx512, fnn_skernel_avx512,
         fnn_swide_avx512},
        {FNN_AVX512_MR, FNN_AVX512_DNR, 256, 72, 256, fnn_dpack_avx512, fnn_dkernel_avx512,
         fnn_dwide_avx512}},
#endif
};

/* The table of the instruction set in use (cpu.c), read once per call. */
static const fnn_gemm_isa *fnn_gemm_isa_get(void)
{
    return &fnn_gemm_isas[fnn_isa_active()];
}

const char *fnn_gemm_kernel_name(void)
{
    return fnn_gemm_isa_get()->name;
}

/* ---- planning: everything here depends on (m, n, k) and the kernel only ------------------ */

static inline int imin(int a, int b) { return a < b ? a : b; }
static inline int round_up(int x, int unit) { return (x + unit - 1) / unit * unit; }
static inline size_t round_up64(size_t bytes) { return (bytes + 63) & ~(size_t)63; }

/* A block of at most `max` (a multiple of unit) splitting `len` into equal multiples of unit. */
static int balanced_block(int len, int max, int unit)
{
    if (len <= 0) return unit;
    const int n_blocks = (len + max - 1) / max;
    return round_up((len + n_blocks - 1) / n_blocks, unit);
}

typedef struct {
    int transposed;      /* compute C^T = B^T A^T (narrow n) */
    int a_in_place;      /* one column panel: the kernel reads A unpacked */
    int b_in_place;      /* one row panel, B's columns contiguous: the kernel reads B unpacked
                          * (set by the caller of gemm_plan, which knows B's strides) */
    int kc, n_passes;    /* depth of a pass over k and their number (1 pass of 0 when k == 0) */
    int mc_max, nc_max;  /* largest row / column block, multiples of MR / NR */
    int tiles;           /* MR x NR micro-tiles of C: the most threads worth starting */
    size_t ws_a;         /* bytes of a thread's packed A block (64-byte multiple) */
    size_t ws_thread;    /* bytes of a thread's slice of ws: A block then B block */
} fnn_gemm_plan;

static fnn_gemm_plan gemm_plan(int m, int n, int k, int mr, int nr, int kc_max, int mc_max,
                               int nc_max, size_t elem_size)
{
    fnn_gemm_plan pl;
    /* Cost of each orientation in FMA-cycles: per micro-tile about MR*NR/16 per p, plus storing
     * the tile (cheap direct, ~MR*NR scalar moves transposed).  Transposed wins for narrow n and
     * enough k, e.g. 128 x 10 outputs with k = 256; never for tiny k. */
    const double tile_k = (double)mr * nr / 16.0 * (k > 0 ? k : 0);
    const double direct = (double)((m + mr - 1) / mr) * ((n + nr - 1) / nr) * (tile_k + 2.0 * mr);
    const double transposed = (double)((n + mr - 1) / mr) * ((m + nr - 1) / nr) * (tile_k + 2.0 * mr * nr);
    pl.transposed = n <= 2 * nr && n < m && 5.0 * transposed < 4.0 * direct;
    const int mm = pl.transposed ? n : m, nn = pl.transposed ? m : n;
    pl.a_in_place = nn <= nr;
    pl.b_in_place = 0;

    pl.n_passes = k > 0 ? (k + kc_max - 1) / kc_max : 1;
    pl.kc = k > 0 ? (k + pl.n_passes - 1) / pl.n_passes : 0;
    pl.mc_max = imin(mc_max / mr * mr, round_up(mm, mr));
    pl.nc_max = imin(nc_max / nr * nr, round_up(nn, nr));
    pl.tiles = ((mm + mr - 1) / mr) * ((nn + nr - 1) / nr);
    pl.ws_a = round_up64((size_t)pl.mc_max * pl.kc * elem_size);
    pl.ws_thread = pl.ws_a + round_up64((size_t)pl.nc_max * pl.kc * elem_size);
    return pl;
}

/* Threads worth starting: 1 for small calls, never more than tiles or n_threads. */
static int gemm_team_size(int m, int n, int k, int tiles, int n_threads)
{
#ifdef _OPENMP
    if (n_threads <= 1 || 2.0 * m * n * k < FNN_GEMM_PAR_FLOPS) return 1;
    return n_threads < tiles ? n_threads : tiles;
#else
    (void)m; (void)n; (void)k; (void)tiles; (void)n_threads;
    return 1;
#endif
}

/* Bytes of ws that a call planned as `pl` uses with a team of nthr threads: each thread's slice,
 * plus the two shared A blocks of a team (see gemm_impl.h). */
static size_t plan_ws_bytes(const fnn_gemm_plan *pl, int nthr)
{
    if (nthr <= 1) return pl->ws_thread;
    return 2 * pl->ws_a + (size_t)nthr * pl->ws_thread;
}

/* An upper bound of plan_ws_bytes over every call with m' <= m, n' <= n, k' <= k and a team of
 * at most n_threads.  The plan itself is not monotone in the shape (a smaller m may turn the
 * call around, C^T = B^T A^T, and a larger k may split into shallower passes), so the bound takes
 * both orientations and the deepest pass any k' <= k can have, min(k, kc_max). */
static size_t ws_bound(int m, int n, int k, int n_threads, int mr, int nr, int kc_max, int mc_max,
                       int nc_max, size_t elem_size)
{
    const size_t kc = (size_t)(k < kc_max ? k : kc_max);
    size_t worst = 0;
    for (int turn = 0; turn < 2; turn++) {
        const int mm = turn ? n : m, nn = turn ? m : n;
        const size_t ws_a = round_up64((size_t)imin(mc_max / mr * mr, round_up(mm, mr)) * kc * elem_size);
        const size_t ws_b = round_up64((size_t)imin(nc_max / nr * nr, round_up(nn, nr)) * kc * elem_size);
        const size_t team = n_threads <= 1 ? ws_a + ws_b
                                           : 2 * ws_a + (size_t)n_threads * (ws_a + ws_b);
        if (team > worst) worst = team;
    }
    return worst;
}

size_t fnn_gemm_ws_size(int m, int n, int k, int n_threads, size_t elem_size)
{
    if (m < 1) m = 1;
    if (n < 1) n = 1;
    if (k < 0) k = 0;
    if (n_threads < 1) n_threads = 1;
    /* The largest over every compiled instruction set: a workspace sized under one serves a
     * call made after fnn_isa_set switched to another. */
    size_t bytes = 64;
    for (int i = 0; i < FNN_ISA_COUNT; i++) {
        if (!fnn_isa_compiled(i)) continue;
        const fnn_gemm_isa *isa = &fnn_gemm_isas[i];
        const size_t b = elem_size == sizeof(float)
            ? ws_bound(m, n, k, n_threads, isa->s.mr, isa->s.nr, isa->s.kc, isa->s.mc, isa->s.nc, elem_size)
            : ws_bound(m, n, k, n_threads, isa->d.mr, isa->d.nr, isa->d.kc, isa->d.mc, isa->d.nc, elem_size);
        if (b > bytes) bytes = b;
    }
    return bytes;
}

/* Bytes of a packed k x n B and of the A block of fnn_?gemm_packed: the most over every
 * compiled ISA, so a size taken under one serves a call under another. */
size_t fnn_gemm_packed_b_size(int k, int n, size_t elem_size)
{
    size_t bytes = 64;
    for (int i = 0; i < FNN_ISA_COUNT; i++) {
        if (!fnn_isa_compiled(i) || k <= 0 || n <= 0) continue;
        const int nr = elem_size == sizeof(float) ? fnn_gemm_isas[i].s.nr : fnn_gemm_isas[i].d.nr;
        const size_t b = round_up64((size_t)round_up(n, nr) * (size_t)k * elem_size);
        if (b > bytes) bytes = b;
    }
    return bytes;
}

size_t fnn_gemm_packed_ws_size(int m, int k, size_t elem_size)
{
    size_t bytes = 64;
    for (int i = 0; i < FNN_ISA_COUNT; i++) {
        if (!fnn_isa_compiled(i) || k <= 0 || m <= 0) continue;
        const int s = elem_size == sizeof(float);
        const int mr = s ? fnn_gemm_isas[i].s.mr : fnn_gemm_isas[i].d.mr;
        const int kc = s ? fnn_gemm_isas[i].s.kc : fnn_gemm_isas[i].d.kc;
        const int mc = s ? fnn_gemm_isas[i].s.mc : fnn_gemm_isas[i].d.mc;
        const int nr = s ? fnn_gemm_isas[i].s.nr : fnn_gemm_isas[i].d.nr;
        /* the A block, and a partial column panel of a B read in place */
        const size_t b = round_up64((size_t)imin(mc / mr * mr, round_up(m, mr)) *
                                    (size_t)imin(k, kc) * elem_size) +
                         (size_t)imin(k, kc) * (size_t)nr * elem_size;
        if (b > bytes) bytes = b;
    }
    return bytes;
}

/* ---- the two dtypes ---------------------------------------------------------------------- */

#define FNN_REAL float
#define FNN_(name) fnn_s##name
#define FNN_UKR(isa) ((isa)->s)
#define FNN_EPILOGUE fnn_sepilogue
#include "gemm_impl.h"
#undef FNN_REAL
#undef FNN_
#undef FNN_UKR
#undef FNN_EPILOGUE

#define FNN_REAL double
#define FNN_(name) fnn_d##name
#define FNN_UKR(isa) ((isa)->d)
#define FNN_EPILOGUE fnn_depilogue
#include "gemm_impl.h"
#undef FNN_REAL
#undef FNN_
#undef FNN_UKR
#undef FNN_EPILOGUE

int fnn_gemm_tile(int isa, int dtype_size, int *mr, int *nr, int *kc, int *mc, int *nc)
{
    if (isa < 0 || isa >= FNN_ISA_COUNT || !fnn_isa_compiled(isa)) return FNN_EINVAL;
    const fnn_gemm_isa *t = &fnn_gemm_isas[isa];
    if (dtype_size == (int)sizeof(float)) {
        *mr = t->s.mr; *nr = t->s.nr; *kc = t->s.kc; *mc = t->s.mc; *nc = t->s.nc;
    } else if (dtype_size == (int)sizeof(double)) {
        *mr = t->d.mr; *nr = t->d.nr; *kc = t->d.kc; *mc = t->d.mc; *nc = t->d.nc;
    } else {
        return FNN_EINVAL;
    }
    return FNN_OK;
}
