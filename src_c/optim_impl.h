/* optim_impl.h -- template body of optim.c, included once per dtype (see there).
 * No include guard on purpose. */

/* Elements [lo, hi) of one step, serially; the loops vectorise (p, g, v, s are disjoint).
 * Kept always-inline so that each target clone below gets its own vector code. */
FNN_ALWAYS_INLINE static inline void FNN_(optim_range)(const fnn_optim_params *op, ptrdiff_t lo,
                                                      ptrdiff_t hi, FNN_REAL *restrict p,
                                                      const FNN_REAL *restrict g,
                                                      FNN_REAL *restrict v, FNN_REAL *restrict s)
{
    const FNN_REAL lr = (FNN_REAL)op->lr, eps = (FNN_REAL)op->eps;
    const FNN_REAL b1 = (FNN_REAL)op->beta1, c1 = (FNN_REAL)(1.0 - op->beta1);
    const FNN_REAL b2 = (FNN_REAL)op->beta2, c2 = (FNN_REAL)(1.0 - op->beta2);
    ptrdiff_t i;

    switch (op->kind) {
    case FNN_SGD:
        for (i = lo; i < hi; i++)
            p[i] -= lr * g[i];
        break;
    case FNN_MOMENTUM:
        for (i = lo; i < hi; i++) {
            const FNN_REAL vi = b1 * v[i] + c1 * g[i];
            v[i] = vi;
            p[i] -= lr * vi;
        }
        break;
    case FNN_RMSPROP:
        for (i = lo; i < hi; i++) {
            const FNN_REAL gi = g[i];
            const FNN_REAL si = b2 * s[i] + c2 * gi * gi;
            s[i] = si;
            p[i] -= lr * (gi / (FNN_M(sqrt)(si) + eps));
        }
        break;
    case FNN_ADAM:
    case FNN_ADAMW: {
        const double t = (double)op->t;
        const double bc1 = 1.0 - pow(op->beta1, t), bc2 = 1.0 - pow(op->beta2, t);
        const FNN_REAL step_size = (FNN_REAL)(op->lr / bc1);
        const FNN_REAL bc2_sqrt = (FNN_REAL)sqrt(bc2);
        /* AdamW's decoupled decay; Adam multiplies by exactly 1 (exact, NaN-preserving) */
        const FNN_REAL decay =
            op->kind == FNN_ADAMW ? (FNN_REAL)(1.0 - op->lr * op->weight_decay) : (FNN_REAL)1;
        for (i = lo; i < hi; i++) {
            const FNN_REAL gi = g[i];
            const FNN_REAL vi = b1 * v[i] + c1 * gi;
            const FNN_REAL si = b2 * s[i] + c2 * gi * gi;
            v[i] = vi;
            s[i] = si;
            const FNN_REAL denom = FNN_M(sqrt)(si) / bc2_sqrt + eps;
            p[i] = p[i] * decay - step_size * (vi / denom);
        }
        break;
    }
    default:
        break;
    }
}

static void FNN_(optim_range_base)(const fnn_optim_params *op, ptrdiff_t lo, ptrdiff_t hi,
                                   FNN_REAL *restrict p, const FNN_REAL *restrict g,
                                   FNN_REAL *restrict v, FNN_REAL *restrict s)
{
    FNN_(optim_range)(op, lo, hi, p, g, v, s);
}

#ifdef FNN_OPTIM_X86
__attribute__((target("avx2,fma"))) static void FNN_(optim_range_avx2)(
    const fnn_optim_params *op, ptrdiff_t lo, ptrdiff_t hi, FNN_REAL *restrict p,
    const FNN_REAL *restrict g, FNN_REAL *restrict v, FNN_REAL *restrict s)
{
    FNN_(optim_range)(op, lo, hi, p, g, v, s);
}

__attribute__((target("avx2,fma,avx512f,avx512bw,avx512dq,avx512vl"))) static void
FNN_(optim_range_avx512)(const fnn_optim_params *op, ptrdiff_t lo, ptrdiff_t hi,
                         FNN_REAL *restrict p, const FNN_REAL *restrict g, FNN_REAL *restrict v,
                         FNN_REAL *restrict s)
{
    FNN_(optim_range)(op, lo, hi, p, g, v, s);
}
#endif

/* One step t >= 1 of op->kind over count parameters, in place (g read-only; p, g, v, s disjoint):
 *   SGD:      p -= lr g
 *   MOMENTUM: v = b1 v + (1-b1) g;  p -= lr v
 *   RMSPROP:  s = b2 s + (1-b2) g^2;  p -= lr (g / (sqrt(s) + eps))
 *   ADAM:     v = b1 v + (1-b1) g;  s = b2 s + (1-b2) g^2;
 *             p -= step_size (v / (sqrt(s) / sqrt(bc2) + eps)),  step_size = lr / bc1,
 *             bc1 = 1 - b1^t, bc2 = 1 - b2^t            (torch.optim.Adam's order of operations)
 *   ADAMW:    p *= 1 - lr wd, then ADAM                  (torch.optim.AdamW)
 * Scalars (1 - b, bias corrections, step_size) are formed in double and rounded once to the
 * dtype; the elementwise arithmetic is in the dtype, as torch does for a tensor of that dtype.
 * Above FNN_OPTIM_PAR_MIN elements each of n_threads threads takes one contiguous chunk. */
void FNN_(optim_step)(const fnn_optim_params *op, ptrdiff_t count, FNN_REAL *restrict p,
                      const FNN_REAL *restrict g, FNN_REAL *restrict v, FNN_REAL *restrict s,
                      int n_threads)
{
    void (*range)(const fnn_optim_params *, ptrdiff_t, ptrdiff_t, FNN_REAL *restrict,
                  const FNN_REAL *restrict, FNN_REAL *restrict, FNN_REAL *restrict) =
        FNN_(optim_range_base);
#ifdef FNN_OPTIM_X86
    const int isa = fnn_isa_active();
    if (isa == FNN_ISA_AVX512)
        range = FNN_(optim_range_avx512);
    else if (isa == FNN_ISA_AVX2)
        range = FNN_(optim_range_avx2);
#endif
    if (n_threads > 1 && count > FNN_OPTIM_PAR_MIN) {
        const unsigned fp_mode = fnn_fp_mode();
        FNN_PRAGMA(omp parallel num_threads(n_threads))
        {
            const unsigned fp_saved = fnn_fp_enter(fp_mode);  /* the caller's FTZ/DAZ */
#ifdef _OPENMP
            /* the team may be smaller than asked (nesting, thread limits): split by its size,
             * in chunks of whole 64-byte lines so that threads never share one */
            const ptrdiff_t line = 64 / (ptrdiff_t)sizeof(FNN_REAL), nt = omp_get_num_threads();
            const ptrdiff_t chunk = ((count + nt - 1) / nt + line - 1) / line * line;
            const ptrdiff_t lo = (ptrdiff_t)omp_get_thread_num() * chunk;
            const ptrdiff_t hi = lo + chunk < count ? lo + chunk : count;
            if (lo < hi)
                range(op, lo, hi, p, g, v, s);
#else
            range(op, 0, count, p, g, v, s);
#endif
            fnn_fp_leave(fp_saved);
        }
    } else {
        range(op, 0, count, p, g, v, s);
    }
}
