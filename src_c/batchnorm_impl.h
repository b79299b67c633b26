/* batchnorm_impl.h -- template body of batchnorm.c, included once per dtype (see there).
 * No include guard on purpose.  Contracts: fastnn.h, "batch norm". */

/* Training forward: batch statistics, normalise, scale and shift, update running averages. */
void FNN_(batchnorm_forward_train)(int m, int n, const FNN_REAL *Z, ptrdiff_t ldz,
                                   const FNN_REAL *gamma, const FNN_REAL *beta, double eps,
                                   double momentum, FNN_REAL *Zhat, ptrdiff_t ldh, FNN_REAL *Zt,
                                   ptrdiff_t ldt, FNN_REAL *mu, FNN_REAL *var, FNN_REAL *rstd,
                                   FNN_REAL *running_mean, FNN_REAL *running_var, int n_threads)
{
    if (m <= 0 || n <= 0)
        return;
    const int n_blocks = (n + FNN_BN_COLS - 1) / FNN_BN_COLS;
    /* unbiased variance for the running average, as PyTorch; m == 1 has none: use the biased 0 */
    const double unbias = m > 1 ? (double)m / (double)(m - 1) : 1.0;
    if (n_threads < 1)
        n_threads = 1;
    (void)n_threads;

    const unsigned fp_mode = fnn_fp_mode();
    FNN_PRAGMA(omp parallel num_threads(n_threads) if (parallel : (ptrdiff_t)m * n > FNN_BN_PAR_MIN))
    {
        const unsigned fp_saved = fnn_fp_enter(fp_mode); /* the caller's FTZ/DAZ */
        FNN_PRAGMA(omp for schedule(static))
        for (int blk = 0; blk < n_blocks; blk++) {
            const int j0 = blk * FNN_BN_COLS;
            const int nb = n - j0 < FNN_BN_COLS ? n - j0 : FNN_BN_COLS;
            double mean[FNN_BN_COLS], ssq[FNN_BN_COLS], rs[FNN_BN_COLS], ga[FNN_BN_COLS], be[FNN_BN_COLS];
            int i, jj;

            for (jj = 0; jj < nb; jj++)
                mean[jj] = 0.0;
            for (i = 0; i < m; i++) {
                const FNN_REAL *z = Z + (ptrdiff_t)i * ldz + j0;
                FNN_PRAGMA(omp simd)
                for (jj = 0; jj < nb; jj++)
                    mean[jj] += z[jj];
            }
            for (jj = 0; jj < nb; jj++) {
                mean[jj] /= m;
                ssq[jj] = 0.0;
            }
            for (i = 0; i < m; i++) {
                const FNN_REAL *z = Z + (ptrdiff_t)i * ldz + j0;
                FNN_PRAGMA(omp simd)
                for (jj = 0; jj < nb; jj++) {
                    const double d = (double)z[jj] - mean[jj];
                    ssq[jj] += d * d;
                }
            }
            for (jj = 0; jj < nb; jj++) {
                const int j = j0 + jj;
                const double v = ssq[jj] / m;
                rs[jj] = 1.0 / sqrt(v + eps);
                ga[jj] = gamma[j];
                be[jj] = beta[j];
                rstd[j] = (FNN_REAL)rs[jj];
                if (mu)
                    mu[j] = (FNN_REAL)mean[jj];
                if (var)
                    var[j] = (FNN_REAL)v;
                if (running_mean)
                    running_mean[j] = (FNN_REAL)(momentum * running_mean[j] + (1.0 - momentum) * mean[jj]);
                if (running_var)
                    running_var[j] = (FNN_REAL)(momentum * running_var[j] + (1.0 - momentum) * (v * unbias));
            }
            /* Zhat and Zt may alias Z: each element is read before either output is written */
            for (i = 0; i < m; i++) {
                const FNN_REAL *z = Z + (ptrdiff_t)i * ldz + j0;
                FNN_REAL *zh = Zhat + (ptrdiff_t)i * ldh + j0;
                FNN_REAL *zt = Zt + (ptrdiff_t)i * ldt + j0;
                FNN_PRAGMA(omp simd)
                for (jj = 0; jj < nb; jj++) {
                    const double h = ((double)z[jj] - mean[jj]) * rs[jj];
                    zh[jj] = (FNN_REAL)h;
                    zt[jj] = (FNN_REAL)(ga[jj] * h + be[jj]);
                }
            }
        }
        fnn_fp_leave(fp_saved);
    }
}

/* Backward: dbeta, dgamma and dZ from dY = dLoss/dZt. */
void FNN_(batchnorm_backward)(int m, int n, const FNN_REAL *dY, ptrdiff_t ldy,
                              const FNN_REAL *Zhat, ptrdiff_t ldh, const FNN_REAL *gamma,
                              const FNN_REAL *rstd, FNN_REAL *dgamma, FNN_REAL *dbeta,
                              FNN_REAL *dZ, ptrdiff_t lddz, int n_threads)
{
    if (m <= 0 || n <= 0)
        return;
    const int n_blocks = (n + FNN_BN_COLS - 1) / FNN_BN_COLS;
    if (n_threads < 1)
        n_threads = 1;
    (void)n_threads;

    const unsigned fp_mode = fnn_fp_mode();
    FNN_PRAGMA(omp parallel num_threads(n_threads) if (parallel : (ptrdiff_t)m * n > FNN_BN_PAR_MIN))
    {
        const unsigned fp_saved = fnn_fp_enter(fp_mode); /* the caller's FTZ/DAZ */
        FNN_PRAGMA(omp for schedule(static))
        for (int blk = 0; blk < n_blocks; blk++) {
            const int j0 = blk * FNN_BN_COLS;
            const int nb = n - j0 < FNN_BN_COLS ? n - j0 : FNN_BN_COLS;
            double db[FNN_BN_COLS], dg[FNN_BN_COLS], c[FNN_BN_COLS];
            int i, jj;
            for (jj = 0; jj < nb; jj++)
                db[jj] = dg[jj] = 0.0;
            for (i = 0; i < m; i++) {
                const FNN_REAL *dy = dY + (ptrdiff_t)i * ldy + j0;
                const FNN_REAL *zh = Zhat + (ptrdiff_t)i * ldh + j0;
                FNN_PRAGMA(omp simd)
                for (jj = 0; jj < nb; jj++) {
                    db[jj] += dy[jj];
                    dg[jj] += (double)dy[jj] * zh[jj];
                }
            }
            for (jj = 0; jj < nb; jj++) {
                dbeta[j0 + jj] = (FNN_REAL)db[jj];
                dgamma[j0 + jj] = (FNN_REAL)dg[jj];
                c[jj] = (double)gamma[j0 + jj] * rstd[j0 + jj] / m;
            }
            /* dZ may alias dY: each element is read before it is written */
            for (i = 0; i < m; i++) {
                const FNN_REAL *dy = dY + (ptrdiff_t)i * ldy + j0;
                const FNN_REAL *zh = Zhat + (ptrdiff_t)i * ldh + j0;
                FNN_REAL *dz = dZ + (ptrdiff_t)i * lddz + j0;
                FNN_PRAGMA(omp simd)
                for (jj = 0; jj < nb; jj++)
                    dz[jj] = (FNN_REAL)(c[jj] * (((double)m * dy[jj] - db[jj]) - zh[jj] * dg[jj]));
            }
        }
        fnn_fp_leave(fp_saved);
    }
}
