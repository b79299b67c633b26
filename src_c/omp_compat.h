/* omp_compat.h -- private: OpenMP pragmas that vanish cleanly without OpenMP.
 *
 * FNN_PRAGMA(omp ...) expands to the pragma only when the compiler runs with OpenMP, so a build
 * without -fopenmp is serial and still free of -Wunknown-pragmas warnings.
 */
#ifndef FNN_OMP_COMPAT_H
#define FNN_OMP_COMPAT_H

#ifdef _OPENMP
#include <omp.h>
#define FNN_PRAGMA(x) _Pragma(#x)
#else
#define FNN_PRAGMA(x)
#endif

#endif /* FNN_OMP_COMPAT_H */
