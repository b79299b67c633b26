/* net.c -- a dense network's forward, backward and training step over one workspace.
 *
 * Design: the orchestration of the per-layer kernels (gemm.c, activations.c, dropout.c,
 * batchnorm.c, loss.c, optim.c) for a whole step, so that Python makes one call per step.
 * net_impl.h holds the code once; instantiate.h compiles it for float (s) and double (d).
 */
#define _POSIX_C_SOURCE 200112L /* posix_memalign under -std=c11 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fastnn.h"
#include "omp_compat.h"
#include "fpmode.h"

void *fnn_aligned_alloc(size_t bytes)
{
    void *p = NULL;
    if (bytes == 0) bytes = 64;
    bytes = (bytes + 63) & ~(size_t)63;
#if defined(_WIN32)
    p = _aligned_malloc(bytes, 64);
#else
    if (posix_memalign(&p, 64, bytes) != 0) p = NULL;
#endif
    return p;
}

void fnn_aligned_free(void *p)
{
#if defined(_WIN32)
    _aligned_free(p);
#else
    free(p);
#endif
}

#define FNN_TEMPLATE "net_impl.h"
#include "instantiate.h"
