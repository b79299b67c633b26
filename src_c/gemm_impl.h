/* gemm_impl.h -- template body of gemm.c, included once per dtype (see there).
 * No include guard on purpose.  Uses FNN_REAL, FNN_(name), FNN_UKR(isa) (the dtype's micro-kernel
 * entry of an fnn_gemm_isa, with its tile and cache blocks) and FNN_EPILOGUE (the epilogue type). */

/* One call, possibly transposed: the loops below compute C(i,j) = sum_p A(i,p) B(p,j) with
 * C(i,j) at C[i*rsc + j*csc].  The epilogue gets its blocks in the caller's orientation. */
typedef struct {
    int m, n, k;
    const FNN_REAL *A; ptrdiff_t rsa, csa;
    const FNN_REAL *B; ptrdiff_t rsb, csb;
    FNN_REAL *C; ptrdiff_t rsc, csc;
    fnn_gemm_plan plan;
    const FNN_(ukr) *ukr;
    FNN_EPILOGUE ep; void *ep_ctx;
    FNN_REAL *C_user; ptrdiff_t ldc;   /* the caller's C, for the epilogue */
    char *ws;
} FNN_(gemm_job);

/* Hand block (i0, j0, mb, nb) of the computed orientation to the epilogue. */
static void FNN_(gemm_epilogue)(const FNN_(gemm_job) *job, int i0, int j0, int mb, int nb)
{
    if (job->plan.transposed) {
        const int t = i0; i0 = j0; j0 = t;
        const int u = mb; mb = nb; nb = u;
    }
    job->ep(job->ep_ctx, job->C_user + (ptrdiff_t)i0 * job->ldc + j0, job->ldc, i0, j0, mb, nb);
}

/* Prefetch the lines of an mr x nr tile of C (row stride rsc, column stride csc) for writing. */
static inline void FNN_(prefetch_tile)(const FNN_REAL *c, ptrdiff_t rsc, ptrdiff_t csc, int mr,
                                       int nr)
{
    if (csc == 1) {
        for (int i = 0; i < mr; i++) {
            __builtin_prefetch(c + i * rsc, 1, 3);
            __builtin_prefetch(c + i * rsc + nr - 1, 1, 3);
        }
    } else {
        for (int j = 0; j < nr; j++) {
            __builtin_prefetch(c + j * csc, 1, 3);
            __builtin_prefetch(c + j * csc + mr * rsc - rsc, 1, 3);
        }
    }
}

/* The share of thread `tid` of `nthr`: a rectangle of micro-tiles of C.  Columns (micro-panels
 * of NR) are split first; rows (micro-panels of MR) only when there are fewer column panels than
 * threads.  Any split gives the same bits (see gemm_kernels.h), so this may use nthr freely.
 *
 * Shared A: when every thread of the team owns a column range over all rows, each would pack the
 * same A blocks.  Instead the team packs each A block once into a shared region of ws (thread t
 * packs its share of the block's micro-panels), meets at a barrier and then every thread runs its
 * own columns against it.  The shared region is double-buffered: a thread packing block i+1
 * overwrites the buffer of block i-1, which every thread finished before the barrier of block i.
 * For the barriers to match, every thread runs the same number of column blocks, passes and row
 * blocks (a thread whose column block is empty still packs and waits). */
static void FNN_(gemm_thread)(const FNN_(gemm_job) *job, int tid, int nthr)
{
    const FNN_(ukr) *u = job->ukr;
    const int MR = u->mr, NR = u->nr;
    const fnn_gemm_plan *pl = &job->plan;
    const int col_panels = (job->n + NR - 1) / NR, row_panels = (job->m + MR - 1) / MR;
    const int tn = nthr < col_panels ? nthr : col_panels;
    int tm = nthr / tn;
    if (tm > row_panels) tm = row_panels;
    if (tid >= tn * tm) return;
    const int tc = tid % tn, tr = tid / tn;
    const int jb = (int)((long)tc * col_panels / tn) * NR;
    const int je = imin((int)((long)(tc + 1) * col_panels / tn) * NR, job->n);
    const int ib = (int)((long)tr * row_panels / tm) * MR;
    const int ie = imin((int)((long)(tr + 1) * row_panels / tm) * MR, job->m);
    /* Every thread of the team has columns (tn == nthr, so tm == 1 and all rows): share A. */
    const int share_a = nthr > 1 && tn == nthr && !pl->a_in_place;
    if (!share_a && (jb >= je || ib >= ie)) return;

    /* Packing buffers: the shared A blocks first, then each thread's own slice of ws. */
    char *slice = job->ws + (nthr > 1 ? 2 * pl->ws_a : 0) + (size_t)tid * pl->ws_thread;
    FNN_REAL *Ap = (FNN_REAL *)slice;
    FNN_REAL *Bp = (FNN_REAL *)(slice + pl->ws_a);
    int shared_buf = 0;

    /* Column blocks: as many for every thread when sharing (the widest range decides). */
    const int widest = share_a ? (col_panels + tn - 1) / tn * NR : je - jb;
    const int n_jc = (widest + pl->nc_max - 1) / pl->nc_max;
    const int nc = je > jb ? round_up((je - jb + n_jc - 1) / n_jc, NR) : NR;
    const int mc = balanced_block(ie - ib, pl->mc_max, MR);
    const int kc_full = pl->kc;

    /* Loop 5: column blocks of C (nc wide); the packed B block is shared by all row blocks. */
    for (int jcb = 0; jcb < n_jc; jcb++) {
        const int jc = jb + jcb * nc;
        const int nb = imin(nc, je - jc);     /* <= 0: nothing to compute, only to pack */
        /* Loop 4: passes over k (kc deep); the first pass writes C, later ones add to it. */
        for (int pc = 0, pass = 0; pass < pl->n_passes; pc += kc_full, pass++) {
            const int kc = imin(kc_full, job->k - pc);
            const int last = pass == pl->n_passes - 1;
            /* B in place: only a last partial micro-panel is packed (into Bp's first panel) */
            const int nb_full = pl->b_in_place ? nb / NR * NR : 0;
            if (nb > nb_full)
                u->pack(Bp, job->B + pc * job->rsb + (jc + nb_full) * job->csb, job->csb, job->rsb,
                        nb - nb_full, kc, NR);
            /* Loop 3: row blocks of C (mc tall); the packed A block stays in L2. */
            for (int ic = ib; ic < ie; ic += mc) {
                const int mb = imin(mc, ie - ic);
                /* With a single column panel each A element is used once: read A in place. */
                const FNN_REAL *A_blk = job->A + ic * job->rsa + pc * job->csa;
                ptrdiff_t rsa = job->rsa, csa = job->csa;
                /* one or two rows with B in place: the full panels go to the wide row kernel,
                 * which reads A in place too (each element is used once per column chunk) */
                const int wide = nb_full > 0 && mb <= 2 && job->csc == 1;
                if (share_a) {
                    FNN_REAL *As = (FNN_REAL *)(job->ws + (size_t)shared_buf * pl->ws_a);
                    shared_buf ^= 1;
                    const int panels = (mb + MR - 1) / MR;
                    const int p0 = (int)((long)tid * panels / nthr);
                    const int p1 = (int)((long)(tid + 1) * panels / nthr);
                    if (p1 > p0)
                        u->pack(As + (ptrdiff_t)p0 * MR * kc, A_blk + (ptrdiff_t)p0 * MR * rsa,
                                rsa, csa, imin((p1 - p0) * MR, mb - p0 * MR), kc, MR);
                    FNN_PRAGMA(omp barrier)
                    A_blk = As; rsa = 1; csa = MR;
                } else if (!pl->a_in_place && !wide) {
                    u->pack(Ap, A_blk, job->rsa, job->csa, mb, kc, MR);
                    A_blk = Ap; rsa = 1; csa = MR;
                }
                if (nb <= 0) continue;
                int jr0 = 0;
                if (wide) {
                    u->wide(kc, A_blk, rsa, csa, mb, job->B + pc * job->rsb + jc * job->csb,
                            job->rsb, job->C + ic * job->rsc + jc, job->rsc, nb_full, pass > 0);
                    jr0 = nb_full;
                }
                /* Loop 2: B micro-panels (kc x NR); each stays in L1 across loop 1. */
                for (int jr = jr0; jr < nb; jr += NR) {
                    const FNN_REAL *b = Bp + (ptrdiff_t)(jr - nb_full) * kc;
                    ptrdiff_t ldb = NR;
                    if (jr < nb_full) {
                        b = job->B + pc * job->rsb + (jc + jr) * job->csb;
                        ldb = job->rsb;
                    }
                    /* Loop 1: A micro-panels (MR x kc): one micro-kernel call per MR x NR tile.
                     * The next tile of C is prefetched while this one computes: its lines come
                     * from L3 or memory, and the kernel would otherwise wait for them. */
                    for (int ir = 0; ir < mb; ir += MR) {
                        const int nir = ir + MR < mb ? ir + MR : 0;
                        const int njr = ir + MR < mb ? jr : jr + NR;
                        if (njr < nb)
                            FNN_(prefetch_tile)(job->C + (ic + nir) * job->rsc + (jc + njr) * job->csc,
                                                job->rsc, job->csc, imin(MR, mb - nir),
                                                imin(NR, nb - njr));
                        u->kernel(kc, A_blk + ir * (pl->a_in_place ? rsa : kc), rsa, csa, b, ldb,
                                  job->C + (ic + ir) * job->rsc + (jc + jr) * job->csc,
                                  job->rsc, job->csc, imin(MR, mb - ir), imin(NR, nb - jr), pass > 0);
                    }
                }
                /* The mb x nb block now holds its final values and is still in cache. */
                if (last && job->ep) FNN_(gemm_epilogue)(job, ic, jc, mb, nb);
            }
        }
    }
}

int FNN_(gemm)(int m, int n, int k,
               const FNN_REAL *A, ptrdiff_t rsa, ptrdiff_t csa,
               const FNN_REAL *B, ptrdiff_t rsb, ptrdiff_t csb,
               FNN_REAL *C, ptrdiff_t ldc,
               FNN_EPILOGUE ep, void *ep_ctx, void *ws, size_t ws_bytes, int n_threads)
{
    if (m < 0 || n < 0 || k < 0) return FNN_EINVAL;
    if (m == 0 || n == 0) return FNN_OK;
    const fnn_gemm_isa *isa = fnn_gemm_isa_get();
    FNN_(gemm_job) job;
    job.ukr = &FNN_UKR(isa);
    job.plan = gemm_plan(m, n, k, job.ukr->mr, job.ukr->nr, job.ukr->kc, job.ukr->mc, job.ukr->nc,
                         sizeof(FNN_REAL));
    if (job.plan.transposed) {  /* C^T = B^T A^T: the operands swap roles, C is stored transposed */
        job.m = n; job.n = m;
        job.A = B; job.rsa = csb; job.csa = rsb;
        job.B = A; job.rsb = csa; job.csb = rsa;
        job.rsc = 1; job.csc = ldc;
    } else {
        job.m = m; job.n = n;
        job.A = A; job.rsa = rsa; job.csa = csa;
        job.B = B; job.rsb = rsb; job.csb = csb;
        job.rsc = ldc; job.csc = 1;
    }
    job.k = k;
    /* one row panel and B's columns contiguous: B is read in place (see gemm.c) */
    job.plan.b_in_place = !job.plan.a_in_place && job.m <= job.ukr->mr && job.csb == 1 && k > 0;
    job.C = C; job.C_user = C; job.ldc = ldc;
    job.ep = ep; job.ep_ctx = ep_ctx;
    job.ws = (char *)ws;

    const int nthr = gemm_team_size(m, n, k, job.plan.tiles, n_threads);
    /* The packing buffers must fit in ws, and B's panels are read with aligned loads. */
    if (((uintptr_t)ws & 63) != 0 || ws_bytes < plan_ws_bytes(&job.plan, nthr)) return FNN_EWORKSPACE;
    if (nthr <= 1) {
        FNN_(gemm_thread)(&job, 0, 1);
        return FNN_OK;
    }
#ifdef _OPENMP
    /* The team may be smaller than asked (nested region, thread limit): split over its size. */
    const unsigned fp_mode = fnn_fp_mode();
    FNN_PRAGMA(omp parallel num_threads(nthr))
    {
        const unsigned fp_saved = fnn_fp_enter(fp_mode);   /* the caller's FTZ/DAZ (fpmode.h) */
        FNN_(gemm_thread)(&job, omp_get_thread_num(), omp_get_num_threads());
        fnn_fp_leave(fp_saved);
    }
#endif
    return FNN_OK;
}

/* ---- against a packed B (fastnn.h): layout, for pass q of depth kc_q (the balanced depth of
 * gemm_plan, the last pass possibly shallower) and column panel j of P = ceil(n / NR):
 *   Bp + q*kc*P*NR + j*kc_q*NR:  kc_q rows of NR lanes, lanes past n zero. */

int FNN_(gemm_pack_b)(int isa, int k, int n, const FNN_REAL *B, ptrdiff_t rsb, ptrdiff_t csb,
                      FNN_REAL *Bp, int part, int n_parts)
{
    if (isa < 0 || isa >= FNN_ISA_COUNT || !fnn_isa_compiled(isa) || k < 0 || n < 0 ||
        n_parts < 1 || part < 0 || part >= n_parts || ((uintptr_t)Bp & 63) != 0)
        return FNN_EINVAL;
    const FNN_(ukr) *u = &FNN_UKR(&fnn_gemm_isas[isa]);
    const int NR = u->nr;
    const int P = (n + NR - 1) / NR;
    const int j0 = (int)((long)part * P / n_parts), j1 = (int)((long)(part + 1) * P / n_parts);
    if (j1 <= j0 || k == 0) return FNN_OK;
    const int n_passes = (k + u->kc - 1) / u->kc, kc = (k + n_passes - 1) / n_passes;
    for (int q = 0, pc = 0; q < n_passes; q++, pc += kc) {
        const int kq = imin(kc, k - pc);
        u->pack(Bp + (ptrdiff_t)q * kc * P * NR + (ptrdiff_t)j0 * kq * NR,
                B + pc * rsb + (ptrdiff_t)j0 * NR * csb, csb, rsb, imin(j1 * NR, n) - j0 * NR, kq,
                NR);
    }
    return FNN_OK;
}

/* C = A B on the calling thread, B either packed by gemm_pack_b (rsb == 0) or read in place
 * (row stride rsb, columns contiguous: each full column panel straight from B, a last partial
 * one packed into ws after the A block). */
static int FNN_(gemm_rows)(int isa, int m, int n, int k, const FNN_REAL *A, ptrdiff_t rsa,
                           ptrdiff_t csa, const FNN_REAL *B, ptrdiff_t rsb, FNN_REAL *C,
                           ptrdiff_t ldc, FNN_EPILOGUE ep, void *ep_ctx, void *ws,
                           size_t ws_bytes)
{
    if (isa < 0 || isa >= FNN_ISA_COUNT || !fnn_isa_compiled(isa) || m < 0 || n < 0 || k < 0 ||
        rsb < 0 || (rsb > 0 && rsb < n))
        return FNN_EINVAL;
    if (m == 0 || n == 0) return FNN_OK;
    const FNN_(ukr) *u = &FNN_UKR(&fnn_gemm_isas[isa]);
    const int MR = u->mr, NR = u->nr;
    const int P = (n + NR - 1) / NR, full = rsb > 0 ? n / NR : P;
    const int n_passes = k > 0 ? (k + u->kc - 1) / u->kc : 1;
    const int kc = k > 0 ? (k + n_passes - 1) / n_passes : 0;
    const int mc = balanced_block(m, u->mc / MR * MR, MR);
    /* one column panel of a packed B: every A element is used once, read in place */
    const int a_in_place = P == 1 && rsb == 0;
    const size_t a_bytes = round_up64((size_t)mc * kc * sizeof(FNN_REAL));
    const size_t need = (a_in_place ? 0 : a_bytes) +
                        (full < P ? (size_t)kc * NR * sizeof(FNN_REAL) : 0);
    if (need > 0 && (((uintptr_t)ws & 63) != 0 || ws_bytes < need)) return FNN_EWORKSPACE;
    FNN_REAL *Ap = (FNN_REAL *)ws;
    FNN_REAL *Bt = (FNN_REAL *)((char *)ws + a_bytes);   /* the partial panel of B in place */
    for (int ic = 0; ic < m; ic += mc) {
        const int mb = imin(mc, m - ic);
        for (int q = 0, pc = 0; q < n_passes; q++, pc += kc) {
            const int kq = imin(kc, k - pc);
            const FNN_REAL *a = A + ic * rsa + pc * csa;
            ptrdiff_t ra = rsa, ca = csa;
            if (!a_in_place) {
                u->pack(Ap, a, rsa, csa, mb, kq, MR);
                a = Ap; ra = 1; ca = MR;
            }
            if (full < P)
                u->pack(Bt, B + pc * rsb + (ptrdiff_t)full * NR, 1, rsb, n - full * NR, kq, NR);
            const FNN_REAL *bq = B + (rsb > 0 ? 0 : (ptrdiff_t)q * kc * P * NR);
            for (int j = 0; j < P; j++) {
                const int nr = imin(NR, n - j * NR);
                const FNN_REAL *b = bq + (ptrdiff_t)j * kq * NR;
                ptrdiff_t ldb = NR;
                if (rsb > 0) {
                    b = j < full ? B + pc * rsb + (ptrdiff_t)j * NR : Bt;
                    ldb = j < full ? rsb : NR;
                }
                for (int ir = 0; ir < mb; ir += MR)
                    u->kernel(kq, a + ir * (a_in_place ? ra : kq), ra, ca, b, ldb,
                              C + (ptrdiff_t)(ic + ir) * ldc + j * NR, ldc, 1,
                              imin(MR, mb - ir), nr, q > 0);
            }
        }
        if (ep) ep(ep_ctx, C + (ptrdiff_t)ic * ldc, ldc, ic, 0, mb, n);
    }
    return FNN_OK;
}

int FNN_(gemm_packed)(int isa, int m, int n, int k, const FNN_REAL *A, ptrdiff_t rsa,
                      ptrdiff_t csa, const FNN_REAL *Bp, FNN_REAL *C, ptrdiff_t ldc,
                      FNN_EPILOGUE ep, void *ep_ctx, void *ws, size_t ws_bytes)
{
    return FNN_(gemm_rows)(isa, m, n, k, A, rsa, csa, Bp, 0, C, ldc, ep, ep_ctx, ws, ws_bytes);
}

int FNN_(gemm_b_in_place)(int isa, int m, int n, int k, const FNN_REAL *A, ptrdiff_t rsa,
                          ptrdiff_t csa, const FNN_REAL *B, ptrdiff_t rsb, FNN_REAL *C,
                          ptrdiff_t ldc, FNN_EPILOGUE ep, void *ep_ctx, void *ws,
                          size_t ws_bytes)
{
    if (rsb < 1) return FNN_EINVAL;
    return FNN_(gemm_rows)(isa, m, n, k, A, rsa, csa, B, rsb, C, ldc, ep, ep_ctx, ws, ws_bytes);
}
