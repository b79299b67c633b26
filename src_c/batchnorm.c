/* batchnorm.c -- batch normalisation over the rows of a mini-batch (columns are features).
 *
 * Bodies in batchnorm_impl.h, included once per dtype (FNN_REAL, FNN_(name), FNN_M(fn) as in
 * activations.c).  Work is split over blocks of FNN_BN_COLS columns; each column is reduced by
 * one thread, rows in order, in double, so results are bit-identical for any n_threads.  The
 * variance takes two passes (mean, then centred squares), never E[z^2] - E[z]^2, which loses
 * every digit in float32 when |mean| >> std.  A block of 64 columns of a batch fits in L1/L2, so
 * the extra pass reads from cache.
 */
#include <math.h>
#include "fastnn.h"
#include "omp_compat.h"
#include "fpmode.h"

#define FNN_BN_COLS 64
#define FNN_BN_PAR_MIN 16384 /* m * n below which one thread does it all */

#define FNN_TEMPLATE "batchnorm_impl.h"
#include "instantiate.h"
