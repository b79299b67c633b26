/* threads.c -- what the build knows about OpenMP. */
#include "fastnn.h"
#include "omp_compat.h"

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
