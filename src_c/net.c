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
#include <unistd.h>
#define fnn_getpid() ((long)getpid())

#include "fastnn.h"
#include "omp_compat.h"
#include "fpmode.h"

void *fnn_aligned_alloc(size_t bytes)
{
    void *p = NULL;
    if (bytes == 0) bytes = 64;
    bytes = (bytes + 63) & ~(size_t)63;
    if (posix_memalign(&p, 64, bytes) != 0) p = NULL;
    return p;
}

void fnn_aligned_free(void *p)
{
    free(p);
}

/* Enter the flush-to-zero mode of the network's entry points (fastnn.h, "floating point") on the
 * calling thread; returns the state to restore.  A new OpenMP worker inherits the FP mode of the
 * thread that starts it, and would then keep flush-to-zero as its own mode after the call: so the
 * team of n_threads is started first, in the caller's mode (an empty region).  The OpenMP runtime
 * keeps a calling thread's workers, so that is needed once per calling thread and team size: a
 * region costs a wake-up of the team (microseconds when idle, far more when another process holds
 * the other core), which a one-row prediction would otherwise pay on every call.  The process id
 * is kept with the size: a forked child starts with no workers. */
static unsigned fnn_fp_enter_call(int n_threads)
{
#ifdef _OPENMP
    static _Thread_local int started_threads;   /* largest team this thread started ... */
    static _Thread_local long started_pid;      /* ... in this process */
    if (n_threads > 1) {
        const long pid = fnn_getpid();
        if (started_pid != pid || started_threads < n_threads) {
            volatile int sink = 0;   /* a body the compiler cannot drop (an empty region is) */
            FNN_PRAGMA(omp parallel num_threads(n_threads))
            if (omp_get_thread_num() < 0) sink = 1;
            (void)sink;
            if (started_pid != pid) started_threads = 0;
            if (started_threads < n_threads) started_threads = n_threads;
            started_pid = pid;
        }
    }
#else
    (void)n_threads;
#endif
    return fnn_fp_enter(FNN_FP_FLUSH);
}

#define FNN_TEMPLATE "net_impl.h"
#include "instantiate.h"
