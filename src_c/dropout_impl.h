/* dropout_impl.h -- template body of dropout.c: the dropout kernels of one instruction set.
 * No include guard on purpose: dropout.c includes it once per ISA.  Parameters:
 *   FNN_TARGET          the ISA's function attribute (empty for generic)
 *   FNN_VBYTES          bytes per vector: 16, 32 or 64 (VL = FNN_VBYTES / 4 uint32 lanes)
 *   FNN_K(name)         name with the ISA suffix (fnn_dropout_range_avx2 from dropout_range)
 *   FNN_NV              vectors per group (a multiple of 4): independent Philox chains in flight
 *   FNN_MUL_EVEN(a, b)  on vectors of VL / 2 uint64 lanes: (a & 0xffffffff) * (b & 0xffffffff)
 *                       in each lane (the 32 x 32 -> 64-bit product of the even uint32 lanes)
 *
 * Layout: a vector holds VL / 4 whole Philox blocks, block b in uint32 lanes 4b .. 4b + 3 (words
 * 0-3), i.e. uint64 lane 2b is (c0, c1) = the 64-bit block number and lane 2b + 1 is (c2, c3) =
 * (layer, step low).  So the words come out in element order (lane l of the vector of block q0 is
 * element 4 q0 + l) and are applied to x, or narrowed to mask bytes, with no transpose; and the
 * block number is a 64-bit lane, so a carry out of its low word needs no special case.  A round
 * maps (c0, c1, c2, c3) to (hi(M1 c2) ^ c1 ^ k0, lo(M1 c2), hi(M0 c0) ^ c3 ^ k1, lo(M0 c0)): with
 * p = (M0 c0, M1 c2) as two 64-bit products, i.e. uint32 lanes (lo0, hi0, lo1, hi1), that is
 * p's four uint32 lanes reversed, XORed with (c1, 0, c3, 0) = the block's uint64 lanes shifted
 * right by 32, and with (k0, 0, k1, 0).
 *
 * The dtype-generic part (a mask only, float x, double x) is one body with a constant `kind`
 * argument (FNN_DROP_MASK, FNN_DROP_F32, FNN_DROP_F64; each call site passes a constant and the
 * function is always inlined), so each variant is compiled branch-free. */

typedef uint32_t FNN_K(u32) __attribute__((vector_size(FNN_VBYTES)));
typedef int32_t FNN_K(i32) __attribute__((vector_size(FNN_VBYTES)));
typedef int32_t FNN_K(i32h) __attribute__((vector_size(FNN_VBYTES / 2)));
typedef uint64_t FNN_K(u64) __attribute__((vector_size(FNN_VBYTES)));
typedef int64_t FNN_K(i64) __attribute__((vector_size(FNN_VBYTES)));
typedef float FNN_K(f32) __attribute__((vector_size(FNN_VBYTES)));
typedef double FNN_K(f64) __attribute__((vector_size(FNN_VBYTES)));
typedef uint8_t FNN_K(u8) __attribute__((vector_size(FNN_VBYTES)));
typedef int16_t FNN_K(i16) __attribute__((vector_size(FNN_VBYTES)));
typedef int8_t FNN_K(i8q) __attribute__((vector_size(FNN_VBYTES / 4)));
#define U32 FNN_K(u32)
#define I32 FNN_K(i32)
#define I32H FNN_K(i32h)
#define U64 FNN_K(u64)
#define I64 FNN_K(i64)
#define F32 FNN_K(f32)
#define F64 FNN_K(f64)
#define U8 FNN_K(u8)
#define VL (FNN_VBYTES / 4)

/* Each group of four uint32 lanes reversed: (lo0, hi0, lo1, hi1) -> (hi1, lo1, hi0, lo0). */
FNN_TARGET static inline __attribute__((always_inline)) U32 FNN_K(reverse4)(U32 p)
{
#if FNN_HAVE_SHUFFLEVECTOR && FNN_VBYTES == 16
    return __builtin_shufflevector(p, p, 3, 2, 1, 0);
#elif FNN_HAVE_SHUFFLEVECTOR && FNN_VBYTES == 32
    return __builtin_shufflevector(p, p, 3, 2, 1, 0, 7, 6, 5, 4);
#elif FNN_HAVE_SHUFFLEVECTOR && FNN_VBYTES == 64
    return __builtin_shufflevector(p, p, 3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12);
#else
    U32 r;
    for (int l = 0; l < VL; l++) r[l] = p[l ^ 3];
    return r;
#endif
}

/* The 10 round keys, lanes (k0, k1) of round r as uint64 lanes (k0, 0, k1, 0, ...). */
FNN_TARGET static inline __attribute__((always_inline)) void
FNN_K(round_keys)(const uint32_t key[2], U64 kr[10])
{
    uint32_t k0 = key[0], k1 = key[1];
    for (int r = 0; r < 10; r++) {
        if (r > 0) {
            k0 += PHILOX_W0;
            k1 += PHILOX_W1;
        }
        for (int l = 0; l < VL / 2; l++) kr[r][l] = (l & 1) ? k1 : k0;
    }
}

/* The counters of blocks blk .. blk + VL/4 - 1 (layout above). */
FNN_TARGET static inline __attribute__((always_inline)) U64
FNN_K(counters)(uint64_t blk, uint64_t layer_step)
{
    U64 c;
    for (int l = 0; l < VL / 2; l++) c[l] = (l & 1) ? layer_step : blk + (uint64_t)(l / 2);
    return c;
}

/* Philox4x32-10 on the n vectors c[0..n-1] (n a constant at each call site), in place. */
FNN_TARGET static inline __attribute__((always_inline)) void
FNN_K(philox)(const int n, U64 *c, const U64 kr[10])
{
    U64 M;
    for (int l = 0; l < VL / 2; l++) M[l] = (l & 1) ? PHILOX_M1 : PHILOX_M0;
#pragma GCC unroll 10
    for (int r = 0; r < 10; r++)
#pragma GCC unroll 16
        for (int j = 0; j < n; j++) {
            const U64 p = FNN_MUL_EVEN(c[j], M);
            c[j] = (U64)FNN_K(reverse4)((U32)p) ^ (c[j] >> 32) ^ kr[r];
        }
}

/* mask[0 .. 4 VL - 1] = the bytes (0 / 1) of 4 consecutive keep vectors (0 / -1 per uint32
 * lane), in order: a truncation of each lane to its low byte.  64-byte vectors: one conversion
 * per vector (vpmovdb); 16 and 32 bytes: the even 16-bit halves of two vectors, then the even bytes of two such (packs
 * and a lane fix-up; gcc 12 turns a 32 -> 8-bit __builtin_convertvector of a 32-byte vector into
 * per-byte inserts). */
FNN_TARGET static inline __attribute__((always_inline)) void
FNN_K(store_mask)(const I32 k[4], uint8_t *mask)
{
#if FNN_VBYTES == 64
    for (int j = 0; j < 4; j++) {
        const FNN_K(i8q) q = __builtin_convertvector(k[j], FNN_K(i8q)) & 1;
        memcpy(mask + j * VL, &q, sizeof q);
    }
#else
    U8 b;
#if FNN_HAVE_SHUFFLEVECTOR
#if FNN_VBYTES == 16
#define FNN_EVEN16 0, 2, 4, 6, 8, 10, 12, 14
#define FNN_EVEN8 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30
#else
#define FNN_EVEN16 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30
#define FNN_EVEN8 FNN_EVEN16, 32, 34, 36, 38, 40, 42, 44, 46, 48, 50, 52, 54, 56, 58, 60, 62
#endif
    const FNN_K(i16) h01 = __builtin_shufflevector((FNN_K(i16))k[0], (FNN_K(i16))k[1], FNN_EVEN16);
    const FNN_K(i16) h23 = __builtin_shufflevector((FNN_K(i16))k[2], (FNN_K(i16))k[3], FNN_EVEN16);
    b = __builtin_shufflevector((U8)h01, (U8)h23, FNN_EVEN8);
#undef FNN_EVEN16
#undef FNN_EVEN8
#else
    for (int l = 0; l < 4 * VL; l++) b[l] = (uint8_t)k[l / VL][l % VL];
#endif
    b &= 1;
    memcpy(mask, &b, sizeof b);
#endif
}

/* x[l] = keep[l] ? x[l] * inv : +0 for the VL elements at x: the product's bits ANDed with the
 * keep lanes, so a dropped inf or NaN becomes +0 (as fnn_{s,d}dropout_apply). */
FNN_TARGET static inline __attribute__((always_inline)) void
FNN_K(apply)(const int kind, I32 keep, void *x, double inv_keep)
{
    if (kind == FNN_DROP_F32) {
        float *xs = (float *)x;
        F32 v;
        memcpy(&v, xs, sizeof v);
        const I32 y = (I32)(v * (float)inv_keep) & keep;
        memcpy(xs, &y, sizeof y);
    } else if (kind == FNN_DROP_F64) {
        double *xd = (double *)x;
        for (int h = 0; h < 2; h++) {
            I32H kh;
            memcpy(&kh, (const char *)&keep + h * sizeof kh, sizeof kh);
            const I64 k64 = __builtin_convertvector(kh, I64); /* 0 / -1 in 64 bits */
            F64 v;
            memcpy(&v, xd + h * (VL / 2), sizeof v);
            const I64 y = (I64)(v * inv_keep) & k64;
            memcpy(xd + h * (VL / 2), &y, sizeof y);
        }
    }
}

/* One element: the byte of fnn_dropout_mask and the value of fnn_{s,d}dropout_apply. */
FNN_TARGET static inline __attribute__((always_inline)) void
FNN_K(one)(const int kind, uint32_t u, uint32_t threshold, void *x, ptrdiff_t i, double inv_keep,
           uint8_t *mask)
{
    const uint32_t keep = (uint32_t)(u < threshold);
    if (kind == FNN_DROP_F32) {
        float *xs = (float *)x + i;
        const float y = *xs * (float)inv_keep;
        uint32_t b;
        memcpy(&b, &y, sizeof b);
        b &= 0u - keep;
        memcpy(xs, &b, sizeof b);
    } else if (kind == FNN_DROP_F64) {
        double *xd = (double *)x + i;
        const double y = *xd * inv_keep;
        uint64_t b;
        memcpy(&b, &y, sizeof b);
        b &= 0u - (uint64_t)keep;
        memcpy(xd, &b, sizeof b);
    }
    if (mask)
        mask[i] = (uint8_t)keep;
}

/* Elements [e, e + n) from the one vector of blocks e/4 .. e/4 + VL/4 - 1, element by element:
 * the head of a range and a short tail, n <= VL - e % 4.  x and mask point at element e. */
FNN_TARGET static inline __attribute__((always_inline)) void
FNN_K(partial)(const int kind, uint64_t e, ptrdiff_t n, uint64_t layer_step, const U64 kr[10],
               uint32_t threshold, void *x, double inv_keep, uint8_t *mask)
{
    U64 c = FNN_K(counters)(e >> 2, layer_step);
    FNN_K(philox)(1, &c, kr);
    uint32_t u[VL];
    memcpy(u, &c, sizeof u);
    for (ptrdiff_t t = 0; t < n; t++)
        FNN_K(one)(kind, u[(e & 3u) + (uint64_t)t], threshold, x, t, inv_keep, mask);
}

/* Elements [e, e + count) of one thread's range (x, mask at element e; mask may be NULL): the
 * head up to a multiple of 4 element by element, groups of FNN_NV vectors, then the tail: up to
 * FNN_NV / 4 vectors element by element, or one more group of which only the part in the range is
 * used. */
FNN_TARGET static inline __attribute__((always_inline)) void
FNN_K(range)(const int kind, const uint32_t key[2], uint32_t step_lo, uint32_t layer, uint64_t e,
             ptrdiff_t count, uint32_t threshold, void *x, double inv_keep, uint8_t *mask)
{
    const size_t esize = kind == FNN_DROP_F32 ? sizeof(float) : sizeof(double);
    const uint64_t layer_step = (uint64_t)layer | (uint64_t)step_lo << 32;
    U64 kr[10];
    FNN_K(round_keys)(key, kr);
    ptrdiff_t i = 0;
    if (e & 3u) {
        const ptrdiff_t n = count < (ptrdiff_t)(4 - (e & 3u)) ? count : (ptrdiff_t)(4 - (e & 3u));
        FNN_K(partial)(kind, e, n, layer_step, kr, threshold, x, inv_keep, mask);
        i = n;
    }
    U32 thr;
    for (int l = 0; l < VL; l++) thr[l] = threshold;
    /* the counters of the group's vector j: base + j * inc, base += FNN_NV * inc per group */
    U64 base = FNN_K(counters)((e + (uint64_t)i) >> 2, layer_step), inc;
    for (int l = 0; l < VL / 2; l++) inc[l] = (l & 1) ? 0 : VL / 4;
    for (; count - i >= FNN_NV * VL; i += FNN_NV * VL, base += FNN_NV * inc) {
        U64 c[FNN_NV];
#pragma GCC unroll 16
        for (int j = 0; j < FNN_NV; j++) c[j] = base + (uint64_t)j * inc;
        FNN_K(philox)(FNN_NV, c, kr);
        I32 keep[FNN_NV];
#pragma GCC unroll 16
        for (int j = 0; j < FNN_NV; j++) {
            keep[j] = (I32)((U32)c[j] < thr);
            if (kind != FNN_DROP_MASK)
                FNN_K(apply)(kind, keep[j], (char *)x + (size_t)(i + j * VL) * esize, inv_keep);
        }
        if (mask) {
#pragma GCC unroll 4
            for (int j = 0; j < FNN_NV; j += 4) FNN_K(store_mask)(keep + j, mask + i + j * VL);
        }
    }
    const ptrdiff_t rest = count - i; /* < FNN_NV * VL */
    if (rest > FNN_NV * VL / 4) {
        /* one more group, all FNN_NV chains (one chain alone waits on its multiplies: 3 or more
         * vectors cost about as much as the group): whole vectors of x as above, the last
         * partial one element by element */
        const ptrdiff_t nfull = rest / VL;
        U64 c[FNN_NV];
#pragma GCC unroll 16
        for (int j = 0; j < FNN_NV; j++) c[j] = base + (uint64_t)j * inc;
        FNN_K(philox)(FNN_NV, c, kr);
        I32 keep[FNN_NV];
#pragma GCC unroll 16
        for (int j = 0; j < FNN_NV; j++) {
            keep[j] = (I32)((U32)c[j] < thr);
            if (kind != FNN_DROP_MASK && j < nfull)
                FNN_K(apply)(kind, keep[j], (char *)x + (size_t)(i + j * VL) * esize, inv_keep);
        }
        if (mask) {
            uint8_t bytes[FNN_NV * VL];
#pragma GCC unroll 4
            for (int j = 0; j < FNN_NV; j += 4) FNN_K(store_mask)(keep + j, bytes + j * VL);
            memcpy(mask + i, bytes, (size_t)rest);
        }
        if (kind != FNN_DROP_MASK && rest > nfull * VL) {
            uint32_t u[VL];
            memcpy(u, &c[nfull], sizeof u);
            char *xl = (char *)x + (size_t)(i + nfull * VL) * esize;
            for (ptrdiff_t t = 0; t < rest - nfull * VL; t++)
                FNN_K(one)(kind, u[t], threshold, xl, t, inv_keep, NULL);
        }
    } else {
        for (; i < count; i += VL) {
            const ptrdiff_t n = count - i < VL ? count - i : VL;
            FNN_K(partial)(kind, e + (uint64_t)i, n, layer_step, kr, threshold,
                           kind == FNN_DROP_MASK ? x : (char *)x + (size_t)i * esize, inv_keep,
                           mask ? mask + i : NULL);
        }
    }
}

/* The table's entries: a mask only (x unused), float x, double x; mask NULL or not. */
FNN_TARGET static void FNN_K(mask_range)(const uint32_t key[2], uint32_t step_lo, uint32_t layer,
                                         uint64_t e, ptrdiff_t count, uint32_t threshold,
                                         void *x, double inv_keep, uint8_t *mask)
{
    (void)x;
    (void)inv_keep;
    FNN_K(range)(FNN_DROP_MASK, key, step_lo, layer, e, count, threshold, NULL, 0.0, mask);
}

FNN_TARGET static void FNN_K(sforward_range)(const uint32_t key[2], uint32_t step_lo,
                                             uint32_t layer, uint64_t e, ptrdiff_t count,
                                             uint32_t threshold, void *x, double inv_keep,
                                             uint8_t *mask)
{
    if (mask)
        FNN_K(range)(FNN_DROP_F32, key, step_lo, layer, e, count, threshold, x, inv_keep, mask);
    else
        FNN_K(range)(FNN_DROP_F32, key, step_lo, layer, e, count, threshold, x, inv_keep, NULL);
}

FNN_TARGET static void FNN_K(dforward_range)(const uint32_t key[2], uint32_t step_lo,
                                             uint32_t layer, uint64_t e, ptrdiff_t count,
                                             uint32_t threshold, void *x, double inv_keep,
                                             uint8_t *mask)
{
    if (mask)
        FNN_K(range)(FNN_DROP_F64, key, step_lo, layer, e, count, threshold, x, inv_keep, mask);
    else
        FNN_K(range)(FNN_DROP_F64, key, step_lo, layer, e, count, threshold, x, inv_keep, NULL);
}

#undef U32
#undef I32
#undef I32H
#undef U64
#undef I64
#undef F32
#undef F64
#undef U8
#undef VL
