/* gemm_ukr_impl.h -- template body of gemm_kernels.h: the micro-kernel and the packer of one
 * dtype for one instruction set.  No include guard on purpose.  Parameters:
 *   FNN_REAL          element type
 *   FNN_K(name)       name with dtype letter and ISA suffix (fnn_skernel_avx512 from skernel)
 *   FNN_TARGET        the ISA's function attribute (empty for generic)
 *   FNN_VBYTES        bytes per vector
 *   FNN_MR, FNN_NV    rows of the micro-tile, vectors per row (NR = FNN_NV lanes-per-vector)
 *   FNN_VFMA(a, b, c) a*b + c, rounded once, on every lane
 * Contract and accumulation order: gemm_kernels.h. */

typedef FNN_REAL FNN_K(vec) __attribute__((vector_size(FNN_VBYTES)));
#define V FNN_K(vec)
#define VL ((int)(FNN_VBYTES / sizeof(FNN_REAL)))
#define MR FNN_MR
#define NR (FNN_NV * VL)

/* The R x NR tile at t (row stride rs): [t +] a b over kc steps of p, for rows i < R; rows past
 * mr re-read row 0 of a (in bounds; the caller never stores them to C).  R is a constant at each
 * call site (always inlined), so the accumulators are registers and the loops unroll. */
FNN_TARGET static inline __attribute__((always_inline)) void
FNN_K(tile)(const int R, const int packed, const int packed_b, int kc,
            const FNN_REAL *restrict a, ptrdiff_t rsa, ptrdiff_t csa, int mr,
            const FNN_REAL *restrict b, ptrdiff_t ldb, FNN_REAL *restrict t, ptrdiff_t rs,
            int accumulate)
{
    /* packed A (rsa = 1, csa = MR), packed B (ldb = NR): constant offsets, no strides or row
     * pointers to keep in registers */
    if (packed) {
        rsa = 1;
        csa = MR;
    }
    if (packed_b) ldb = NR;
    V acc[MR][FNN_NV];
    const FNN_REAL *ai[MR];
#pragma GCC unroll 16
    for (int i = 0; i < R; i++) ai[i] = a + (i < mr ? i : 0) * rsa;
#pragma GCC unroll 16
    for (int i = 0; i < R; i++)
#pragma GCC unroll 4
        for (int v = 0; v < FNN_NV; v++) {
            if (accumulate)
                memcpy(&acc[i][v], t + i * rs + v * VL, sizeof(V));
            else
                acc[i][v] = (V){0};
        }
    /* two steps of p per iteration: +4-7 % for AVX-512 double, +0-4 % float (1 thread, both
     * builds alternating in one process); the order of the FMAs is the same */
#pragma GCC unroll 2
    for (int p = 0; p < kc; p++, b += ldb) {
        const ptrdiff_t o = p * csa;
        V bv[FNN_NV];
#pragma GCC unroll 4
        for (int v = 0; v < FNN_NV; v++) memcpy(&bv[v], b + v * VL, sizeof(V));
#pragma GCC unroll 16
        for (int i = 0; i < R; i++) {
            /* a broadcast: x - (+0) is x for every x, -0 and NaN included */
            const V x = ai[i][o] - (V){0};
#pragma GCC unroll 4
            for (int v = 0; v < FNN_NV; v++) acc[i][v] = FNN_VFMA(x, bv[v], acc[i][v]);
        }
    }
#pragma GCC unroll 16
    for (int i = 0; i < R; i++)
#pragma GCC unroll 4
        for (int v = 0; v < FNN_NV; v++) memcpy(t + i * rs + v * VL, &acc[i][v], sizeof(V));
}

/* The tile with its rows rounded up to 1, 2, 4, 6, ... MR: the row edge (batch 32 = 2 x 12 + 8)
 * skips the FMAs of rows never stored; each stored element gets the same FMAs in the same order.
 * PK, PB: constants at each call site, as in tile. */
FNN_TARGET static inline __attribute__((always_inline)) void
FNN_K(tile_rows)(const int PK, const int PB, int kc, const FNN_REAL *restrict a, ptrdiff_t rsa,
                 ptrdiff_t csa, int mr, const FNN_REAL *restrict b, ptrdiff_t ldb,
                 FNN_REAL *restrict t, ptrdiff_t rs, int accumulate)
{
    if (mr <= 1)
        FNN_K(tile)(1, PK, PB, kc, a, rsa, csa, mr, b, ldb, t, rs, accumulate);
    else if (mr <= 2)
        FNN_K(tile)(2, PK, PB, kc, a, rsa, csa, mr, b, ldb, t, rs, accumulate);
    else if (mr <= 4 || MR <= 4)
        FNN_K(tile)(MR < 4 ? MR : 4, PK, PB, kc, a, rsa, csa, mr, b, ldb, t, rs, accumulate);
    else if (mr <= 6 || MR <= 6)
        FNN_K(tile)(MR < 6 ? MR : 6, PK, PB, kc, a, rsa, csa, mr, b, ldb, t, rs, accumulate);
    else if (mr <= 8 || MR <= 8)
        FNN_K(tile)(MR < 8 ? MR : 8, PK, PB, kc, a, rsa, csa, mr, b, ldb, t, rs, accumulate);
    else if (mr <= 10 || MR <= 10)
        FNN_K(tile)(MR < 10 ? MR : 10, PK, PB, kc, a, rsa, csa, mr, b, ldb, t, rs, accumulate);
    else
        FNN_K(tile)(MR, PK, PB, kc, a, rsa, csa, mr, b, ldb, t, rs, accumulate);
}

/* C(i,j) = [C(i,j) +] sum_p a(i,p) b[p*ldb + j] for the mr x nr part of one MR x NR tile.  Edge
 * tiles (mr < MR, nr < NR, or a transposed C) are computed in a tile-sized buffer and copied. */
FNN_TARGET static void FNN_K(kernel)(int kc, const FNN_REAL *restrict a, ptrdiff_t rsa,
                                     ptrdiff_t csa, const FNN_REAL *restrict b, ptrdiff_t ldb,
                                     FNN_REAL *restrict c, ptrdiff_t rsc, ptrdiff_t csc, int mr,
                                     int nr, int accumulate)
{
    const int full = csc == 1 && mr == MR && nr == NR;
    FNN_REAL buf[MR * NR] __attribute__((aligned(64)));
    FNN_REAL *t = full ? c : buf;
    const ptrdiff_t rs = full ? rsc : NR;
    if (!full && accumulate) {
        memset(buf, 0, sizeof buf);
        for (int i = 0; i < mr; i++)
            for (int j = 0; j < nr; j++) buf[i * NR + j] = c[i * rsc + j * csc];
    }
    /* B in place (ldb != NR) only ever comes with packed A: one row panel of C (gemm_impl.h) */
    if (rsa == 1 && csa == MR) {
        if (ldb == NR)
            FNN_K(tile_rows)(1, 1, kc, a, rsa, csa, mr, b, ldb, t, rs, accumulate);
        else
            FNN_K(tile_rows)(1, 0, kc, a, rsa, csa, mr, b, ldb, t, rs, accumulate);
    } else {
        FNN_K(tile_rows)(0, 1, kc, a, rsa, csa, mr, b, ldb, t, rs, accumulate);
    }
    if (!full)
        for (int i = 0; i < mr; i++)
            for (int j = 0; j < nr; j++) c[i * rsc + j * csc] = buf[i * NR + j];
}

/* One or two rows of C against B read in place (row stride ldb, columns contiguous): the
 * product of a prediction on one sample, where every B element is used once per row and the
 * MR x NR tile would keep only 2 accumulator chains per row busy.  Here NW vectors of a row
 * (NW a constant) run side by side, so each step of p loads NW*VL contiguous B values and issues
 * R*NW independent FMAs.  Same sums as the tile: one running FMA sum per element over p in
 * increasing order, from 0 or from C.  a(i,p) = a[i*rsa + p*csa]; c row stride ldc. */
FNN_TARGET static inline __attribute__((always_inline)) void
FNN_K(wide_tile)(const int R, const int NW, int kc, const FNN_REAL *restrict a, ptrdiff_t rsa,
                 ptrdiff_t csa, const FNN_REAL *restrict b, ptrdiff_t ldb, FNN_REAL *restrict c,
                 ptrdiff_t ldc, int accumulate)
{
    V acc[2][8];
#pragma GCC unroll 2
    for (int i = 0; i < R; i++)
#pragma GCC unroll 8
        for (int v = 0; v < NW; v++) {
            if (accumulate)
                memcpy(&acc[i][v], c + i * ldc + v * VL, sizeof(V));
            else
                acc[i][v] = (V){0};
        }
    for (int p = 0; p < kc; p++, b += ldb) {
        V bv[8];
#pragma GCC unroll 8
        for (int v = 0; v < NW; v++) memcpy(&bv[v], b + v * VL, sizeof(V));
#pragma GCC unroll 2
        for (int i = 0; i < R; i++) {
            const V x = a[i * rsa + p * csa] - (V){0};
#pragma GCC unroll 8
            for (int v = 0; v < NW; v++) acc[i][v] = FNN_VFMA(x, bv[v], acc[i][v]);
        }
    }
#pragma GCC unroll 2
    for (int i = 0; i < R; i++)
#pragma GCC unroll 8
        for (int v = 0; v < NW; v++) memcpy(c + i * ldc + v * VL, &acc[i][v], sizeof(V));
}

/* C (mr <= 2 rows, n columns, a multiple of NR; row-major, row stride ldc) [+]= a B, with B in
 * place: wide_tile over chunks of 8 vectors, then the rest of the columns. */
FNN_TARGET static void FNN_K(wide)(int kc, const FNN_REAL *restrict a, ptrdiff_t rsa,
                                   ptrdiff_t csa, int mr, const FNN_REAL *restrict b,
                                   ptrdiff_t ldb, FNN_REAL *restrict c, ptrdiff_t ldc, int n,
                                   int accumulate)
{
    int j = 0;
    for (; j + 8 * VL <= n; j += 8 * VL) {
        if (mr == 1)
            FNN_K(wide_tile)(1, 8, kc, a, rsa, csa, b + j, ldb, c + j, ldc, accumulate);
        else
            FNN_K(wide_tile)(2, 8, kc, a, rsa, csa, b + j, ldb, c + j, ldc, accumulate);
    }
    for (; j + 2 * VL <= n; j += 2 * VL) {
        if (mr == 1)
            FNN_K(wide_tile)(1, 2, kc, a, rsa, csa, b + j, ldb, c + j, ldc, accumulate);
        else
            FNN_K(wide_tile)(2, 2, kc, a, rsa, csa, b + j, ldb, c + j, ldc, accumulate);
    }
    for (; j + VL <= n; j += VL) {
        if (mr == 1)
            FNN_K(wide_tile)(1, 1, kc, a, rsa, csa, b + j, ldb, c + j, ldc, accumulate);
        else
            FNN_K(wide_tile)(2, 1, kc, a, rsa, csa, b + j, ldb, c + j, ldc, accumulate);
    }
}

/* Panels of W lanes (W = MR or NR, a constant at each call site): dst[panel][p][lane] =
 * src[lane*ls + p*ks], lanes past `width` zero.  Full panels with lanes contiguous (B row-major,
 * A transposed as in dW = A_prev^T dZ) are W-element copies per p; with k contiguous (A
 * row-major, B transposed as W^T in dX) a transpose through an W x FNN_PACK_KB block held in
 * registers; anything else, and the last partial panel, a gather. */
FNN_TARGET static inline __attribute__((always_inline)) void
FNN_K(pack_w)(const int W, FNN_REAL *restrict dst, const FNN_REAL *restrict src, ptrdiff_t ls,
              ptrdiff_t ks, int width, int kc)
{
    if (ls == 1 && width >= W) {
        /* lanes contiguous: row p of the source is read once, left to right, into every full
         * panel (reading panel by panel would stride down the rows once per panel, each time
         * from L3 or memory when the source is larger than L2) */
        const int full = width / W;
        for (int p = 0; p < kc; p++) {
            const FNN_REAL *s = src + p * ks;
            FNN_REAL *d = dst + p * W;
            for (int r = 0; r < full; r++) memcpy(d + (ptrdiff_t)r * W * kc, s + r * W, W * sizeof(FNN_REAL));
        }
        dst += (ptrdiff_t)full * W * kc;
        src += full * W;
        width -= full * W;
    }
    for (int r0 = 0; r0 < width; r0 += W, dst += (ptrdiff_t)W * kc) {
        const int w = width - r0 < W ? width - r0 : W;
        const FNN_REAL *s = src + r0 * ls;
        if (w == W && ks == 1) {
            int p0 = 0;
            for (; p0 + FNN_PACK_KB <= kc; p0 += FNN_PACK_KB) {
                FNN_REAL blk[MR > NR ? MR : NR][FNN_PACK_KB];
#pragma GCC unroll 16
                for (int r = 0; r < W; r++) memcpy(blk[r], s + r * ls + p0, sizeof blk[r]);
#pragma GCC unroll 16
                for (int q = 0; q < FNN_PACK_KB; q++)
#pragma GCC unroll 16
                    for (int r = 0; r < W; r++) dst[(p0 + q) * W + r] = blk[r][q];
            }
            for (; p0 < kc; p0++)
                for (int r = 0; r < W; r++) dst[p0 * W + r] = s[r * ls + p0];
        } else {
            for (int p = 0; p < kc; p++) {
                for (int r = 0; r < w; r++) dst[p * W + r] = s[r * ls + p * ks];
                for (int r = w; r < W; r++) dst[p * W + r] = 0;
            }
        }
    }
}

FNN_TARGET static void FNN_K(pack)(FNN_REAL *restrict dst, const FNN_REAL *restrict src,
                                   ptrdiff_t ls, ptrdiff_t ks, int width, int kc, int W)
{
    if (W == NR)
        FNN_K(pack_w)(NR, dst, src, ls, ks, width, kc);
    else
        FNN_K(pack_w)(MR, dst, src, ls, ks, width, kc);
}

#undef V
#undef VL
#undef MR
#undef NR
