/* loss_impl.h -- template body of loss.c, included once per dtype (see there).
 * No include guard on purpose. */

/* max_j z[j] over one row (n >= 1). */
static FNN_REAL FNN_(row_max)(const FNN_REAL *z, int n)
{
    FNN_REAL mx = z[0];
    for (int j = 1; j < n; j++)
        mx = z[j] > mx ? z[j] : mx;
    return mx;
}

/* P[i,:] = exp(Z[i,:] - max Z[i,:]) / sum_j exp(Z[i,j] - max Z[i,:]) for i < m.
 * The sum is accumulated in double.  P may alias Z (then ldp == ldz). */
void FNN_(softmax_rows)(int m, int n, const FNN_REAL *Z, ptrdiff_t ldz, FNN_REAL *P,
                        ptrdiff_t ldp)
{
    if (n <= 0)
        return;
    for (int i = 0; i < m; i++) {
        const FNN_REAL *z = Z + (ptrdiff_t)i * ldz;
        FNN_REAL *p = P + (ptrdiff_t)i * ldp;
        const FNN_REAL mx = FNN_(row_max)(z, n);
        double sum = 0.0;
        for (int j = 0; j < n; j++) {
            const FNN_REAL e = FNN_M(exp)(z[j] - mx);
            p[j] = e;
            sum += e;
        }
        const FNN_REAL s = (FNN_REAL)sum;
        for (int j = 0; j < n; j++)
            p[j] /= s;
    }
}

/* Returns sum over the batch of the per-example loss (double, rows in order); if dZ != NULL also
 * dZ = scale * dLoss_sum/dZ (row stride ldz; dZ may alias Z):
 *   XENT: loss_i = logsumexp(Z[i,:]) - Z[i,y_i];            dZ = scale (softmax(Z) - onehot(y))
 *   BCE:  per element max(z,0) - z y + log1p(exp(-|z|));    dZ = scale (sigmoid(z) - y)
 *   MSE:  per element (z - y)^2;                            dZ = scale 2 (z - y)
 * The loss terms are evaluated in double (also for float32), the gradients in the model dtype
 * except BCE's sigmoid, which reuses the double exp(-|z|), and XENT's label entry, taken as
 * -(sum_{j != y} exp(z_j - max)) / sum_j exp(z_j - max) in double (exact as p_y -> 1). */
double FNN_(loss_grad)(fnn_loss loss, int m, int n, const FNN_REAL *Z, ptrdiff_t ldz,
                       const int32_t *labels, const FNN_REAL *Y, ptrdiff_t ldy,
                       FNN_REAL *dZ, FNN_REAL scale)
{
    double total = 0.0;
    if (m <= 0 || n <= 0)
        return 0.0;
    switch (loss) {
    case FNN_LOSS_XENT:
        for (int i = 0; i < m; i++) {
            const FNN_REAL *z = Z + (ptrdiff_t)i * ldz;
            const int y = labels[i];
            const FNN_REAL mx = FNN_(row_max)(z, n);
            const FNN_REAL zy = z[y]; /* read before dZ (maybe Z) is written */
            /* sum = (sum over j != y) + exp(z_y - max), in this order with or without dZ, so the
             * loss is the same bits either way; p_y - 1 = -(that first sum) / sum is then free
             * of cancellation when p_y -> 1 */
            FNN_REAL *d = dZ ? dZ + (ptrdiff_t)i * ldz : NULL;
            double other = 0.0, ey = 0.0;
            for (int j = 0; j < n; j++) {
                const FNN_REAL e = FNN_M(exp)(z[j] - mx);
                if (d)
                    d[j] = e;
                if (j != y)
                    other += e;
                else
                    ey = e;
            }
            const double sum = other + ey;
            if (d) {
                const FNN_REAL s = (FNN_REAL)sum;
                for (int j = 0; j < n; j++)
                    d[j] = scale * (d[j] / s);
                d[y] = (FNN_REAL)(-(double)scale * (other / sum));
            }
            total += ((double)mx + log(sum)) - (double)zy;
        }
        break;
    case FNN_LOSS_BCE:
        for (int i = 0; i < m; i++) {
            const FNN_REAL *z = Z + (ptrdiff_t)i * ldz;
            const FNN_REAL *y = Y + (ptrdiff_t)i * ldy;
            FNN_REAL *d = dZ ? dZ + (ptrdiff_t)i * ldz : NULL;
            for (int j = 0; j < n; j++) {
                const double zj = z[j], yj = y[j];
                const double e = exp(-fabs(zj));
                total += ((zj > 0 ? zj : 0.0) - zj * yj) + log1p(e);
                if (d) {
                    const double r = 1.0 / (1.0 + e);
                    const double sig = zj >= 0 ? r : e * r;
                    d[j] = (FNN_REAL)((double)scale * (sig - yj));
                }
            }
        }
        break;
    case FNN_LOSS_MSE:
        for (int i = 0; i < m; i++) {
            const FNN_REAL *z = Z + (ptrdiff_t)i * ldz;
            const FNN_REAL *y = Y + (ptrdiff_t)i * ldy;
            FNN_REAL *d = dZ ? dZ + (ptrdiff_t)i * ldz : NULL;
            for (int j = 0; j < n; j++) {
                const double r = (double)z[j] - (double)y[j];
                total += r * r;
                if (d)
                    d[j] = scale * ((FNN_REAL)2 * (z[j] - y[j]));
            }
        }
        break;
    default:
        break;
    }
    return total;
}
