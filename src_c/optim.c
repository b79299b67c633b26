/* optim.c -- fused optimizer updates over flat parameter buffers.
 *
 * Bodies in optim_impl.h, included once per dtype (FNN_REAL, FNN_(name), FNN_M(fn) as in
 * activations.c).  Each update is one pass over p, g and the state, elementwise, so any split
 * over threads gives the same bits.  Parallel (one contiguous chunk per thread) only above
 * FNN_OPTIM_PAR_MIN elements: below it a parallel region costs more than it saves.
 */
#include <math.h>
#include "fastnn.h"
#include "omp_compat.h"

#define FNN_OPTIM_PAR_MIN 32768

/* sqrt and two divisions per element make Adam compute-bound at SSE2 width (about 1 ns/element
 * in cache): on x86 an AVX2 clone of the loops is chosen at run time.  It uses only IEEE
 * +, -, *, /, sqrt (no FMA), so both clones give the same bits (NaN payloads aside).  Define FNN_NO_SIMD_DISPATCH for
 * the baseline only. */
#if !defined(FNN_NO_SIMD_DISPATCH) && defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define FNN_OPTIM_AVX2 1
static int optim_have_avx2(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2");
}
#endif

#ifdef __GNUC__
#define FNN_ALWAYS_INLINE __attribute__((always_inline))
#else
#define FNN_ALWAYS_INLINE
#endif

#define FNN_TEMPLATE "optim_impl.h"
#include "instantiate.h"
