/* gather.c -- mini-batch gather: out[r, :] = X[idx[r], :] for r < m.
 * X has n columns and row stride ldx; out is (m, n) dense; idx values are trusted to be rows of X.
 * out must not overlap X. */
#include <string.h>
#include "fastnn.h"

void fnn_sgather_rows(int m, int n, const float *restrict X, ptrdiff_t ldx,
                      const int64_t *restrict idx, float *restrict out)
{
    for (int r = 0; r < m; r++)
        memcpy(out + (ptrdiff_t)r * n, X + (ptrdiff_t)idx[r] * ldx, (size_t)n * sizeof(float));
}

void fnn_dgather_rows(int m, int n, const double *restrict X, ptrdiff_t ldx,
                      const int64_t *restrict idx, double *restrict out)
{
    for (int r = 0; r < m; r++)
        memcpy(out + (ptrdiff_t)r * n, X + (ptrdiff_t)idx[r] * ldx, (size_t)n * sizeof(double));
}

/* out[r] = y[idx[r]] for r < m (labels of the mini-batch). */
void fnn_igather(int m, const int32_t *restrict y, const int64_t *restrict idx,
                 int32_t *restrict out)
{
    for (int r = 0; r < m; r++)
        out[r] = y[idx[r]];
}
