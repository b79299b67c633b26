/* activations_impl.h -- template body of activations.c, included once per dtype (see there).
 * No include guard on purpose. */

/* x[i] = g(x[i]) for i < count, in place.
 *   linear: z;  relu: max(z, 0);  leaky: z < 0 ? 0.01 z : z;  tanh: tanh(z);
 *   sigmoid: 1/(1+exp(-z)) as r = 1/(1+exp(-|z|)), z >= 0 ? r : exp(-|z|) r (no overflow for any z).
 * relu and leaky test `z < 0`, so NaN passes through (a diverged run stays visible).
 * Softmax is row-wise and lives in loss.c: here it leaves x unchanged. */
void FNN_(act_forward)(fnn_act act, FNN_REAL *x, ptrdiff_t count)
{
    ptrdiff_t i;
    switch (act) {
    case FNN_RELU:
        for (i = 0; i < count; i++)
            x[i] = x[i] < 0 ? (FNN_REAL)0 : x[i];
        break;
    case FNN_LEAKY_RELU:
        for (i = 0; i < count; i++)
            x[i] = x[i] < 0 ? (FNN_REAL)FNN_LEAKY_SLOPE * x[i] : x[i];
        break;
    case FNN_TANH:
        for (i = 0; i < count; i++)
            x[i] = FNN_M(tanh)(x[i]);
        break;
    case FNN_SIGMOID:
        for (i = 0; i < count; i++) {
            const FNN_REAL e = FNN_M(exp)(-FNN_M(fabs)(x[i]));
            const FNN_REAL r = (FNN_REAL)1 / ((FNN_REAL)1 + e);
            x[i] = x[i] >= 0 ? r : e * r;
        }
        break;
    case FNN_LINEAR:
    case FNN_SOFTMAX:
    default:
        break;
    }
}

/* dA[i] *= g'(z[i]) for i < count, written from the OUTPUT a = g(z):
 *   relu: a > 0;  leaky: a > 0 ? 1 : 0.01;  tanh: 1 - a^2;  sigmoid: a (1 - a);  linear: 1.
 * relu is a select (a > 0 ? dA : 0) and leaky a multiply by a factor built from comparisons:
 * the forms gcc vectorises (a `?:` between two constants compiled to a branch per element).
 * As torch's threshold_backward, relu's blocked gradient is 0 even when dA is not finite.
 * a and dA must not overlap.  Softmax: dA unchanged (its gradient comes with the loss). */
void FNN_(act_backward)(fnn_act act, const FNN_REAL *restrict a, FNN_REAL *restrict dA,
                        ptrdiff_t count)
{
    ptrdiff_t i;
    switch (act) {
    case FNN_RELU:
        for (i = 0; i < count; i++)
            dA[i] = a[i] > 0 ? dA[i] : (FNN_REAL)0;
        break;
    case FNN_LEAKY_RELU:
        for (i = 0; i < count; i++)
            dA[i] *= (FNN_REAL)(a[i] > 0) + (FNN_REAL)FNN_LEAKY_SLOPE * (FNN_REAL)(a[i] <= 0);
        break;
    case FNN_TANH:
        for (i = 0; i < count; i++)
            dA[i] *= (FNN_REAL)1 - a[i] * a[i];
        break;
    case FNN_SIGMOID:
        for (i = 0; i < count; i++)
            dA[i] *= a[i] * ((FNN_REAL)1 - a[i]);
        break;
    case FNN_LINEAR:
    case FNN_SOFTMAX:
    default:
        break;
    }
}
