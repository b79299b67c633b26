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
 * in cache): on x86 the same loops are also compiled for AVX2 and AVX-512 and the ISA in use
 * (cpu.c) picks one.  They use only IEEE +, -, *, / and sqrt, each correctly rounded, in the same
 * order, and -ffp-contract=off keeps the compiler from fusing a multiply and an add in the
 * clones whose target has FMA: every clone gives the same bits (NaN payloads aside). */
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define FNN_OPTIM_X86 1
#endif
#include "fpmode.h"

#ifdef __GNUC__
#define FNN_ALWAYS_INLINE __attribute__((always_inline))
#else
#define FNN_ALWAYS_INLINE
#endif

#define FNN_TEMPLATE "optim_impl.h"
#include "instantiate.h"
