/* optim.c -- fused optimizer updates over flat parameter buffers.
 *
 * Bodies in optim_impl.h, included once per dtype (FNN_REAL, FNN_(name), FNN_M(fn) as in
 * activations.c).  Each update is one pass over p, g and the state, elementwise, so any split
 * over threads gives the same bits.  Parallel (static schedule) only above FNN_OPTIM_PAR_MIN
 * elements: below it a parallel region costs more than it saves.
 */
#include <math.h>
#include "fastnn.h"
#include "omp_compat.h"

#define FNN_OPTIM_PAR_MIN 32768

#define FNN_REAL float
#define FNN_(name) fnn_s##name
#define FNN_M(fn) fn##f
#include "optim_impl.h"
#undef FNN_REAL
#undef FNN_
#undef FNN_M

#define FNN_REAL double
#define FNN_(name) fnn_d##name
#define FNN_M(fn) fn
#include "optim_impl.h"
#undef FNN_REAL
#undef FNN_
#undef FNN_M
