/* threads.c -- what the build knows about OpenMP. */
#include "fastnn.h"
#include "omp_compat.h"
#include "fpmode.h"

/* 1 when this library was compiled with OpenMP, else 0. */
int fnn_has_openmp(void)
{
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

/* omp_get_max_threads(): the team size a parallel region gets by default; 1 without OpenMP. */
int fnn_omp_max_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

/* For tests: out[t] = the flush-to-zero bits (fpmode.h) of thread t of an OpenMP team of
 * n_threads, in a region that sets nothing, i.e. the mode fastnn's calls left each thread in.
 * Returns the team's size (threads past it are not written). */
int fnn_team_fp_modes(int n_threads, unsigned *out)
{
    int size = 1;
    if (n_threads < 1) n_threads = 1;
#ifdef _OPENMP
    FNN_PRAGMA(omp parallel num_threads(n_threads))
    {
        out[omp_get_thread_num()] = fnn_fp_mode();
        FNN_PRAGMA(omp single)
        size = omp_get_num_threads();
    }
#else
    out[0] = fnn_fp_mode();
#endif
    return size;
}
