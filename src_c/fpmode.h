/* fpmode.h -- private: the flush-to-zero / denormals-are-zero mode of a thread.
 *
 * The network's entry points run with subnormals flushed (fastnn.h, "floating point"): on Intel
 * cores an operation on a subnormal takes about 100 cycles, and Adam's first moment of a weight
 * whose gradient stays zero decays into that range by the thousand.  The mode is per thread, so
 *   - an entry point sets it on the calling thread and restores the caller's on exit, and
 *   - every parallel region hands the calling thread's mode to each thread of its team and
 *     restores each thread's own at the end of the region,
 * so a kernel's result never depends on which thread of the team computed it, and no thread is
 * left in another mode than it had (Python's, or a worker another library reuses).
 *
 * x86: MXCSR bits FTZ (15) and DAZ (6).  aarch64: FPCR.FZ (24), which does both.  Elsewhere the
 * functions do nothing (results then keep their subnormals).
 */
#ifndef FNN_FPMODE_H
#define FNN_FPMODE_H

#if defined(__SSE2__) || defined(__x86_64__)
#include <xmmintrin.h>
#define FNN_FP_FLUSH 0x8040u
static inline unsigned fnn_fp_state(void) { return _mm_getcsr(); }
static inline void fnn_fp_load(unsigned state) { _mm_setcsr(state); }
#elif defined(__aarch64__) && defined(__GNUC__)
#define FNN_FP_FLUSH (1u << 24)
static inline unsigned fnn_fp_state(void) { return (unsigned)__builtin_aarch64_get_fpcr(); }
static inline void fnn_fp_load(unsigned state) { __builtin_aarch64_set_fpcr(state); }
#else
#define FNN_FP_FLUSH 0u
static inline unsigned fnn_fp_state(void) { return 0u; }
static inline void fnn_fp_load(unsigned state) { (void)state; }
#endif

/* The flush bits of the calling thread: what a parallel region hands to its team. */
static inline unsigned fnn_fp_mode(void)
{
    return fnn_fp_state() & FNN_FP_FLUSH;
}

/* Set this thread's flush bits to `mode` (FNN_FP_FLUSH or 0); returns the state to restore. */
static inline unsigned fnn_fp_enter(unsigned mode)
{
    const unsigned saved = fnn_fp_state();
    const unsigned want = (saved & ~FNN_FP_FLUSH) | (mode & FNN_FP_FLUSH);
    if (want != saved) fnn_fp_load(want);
    return saved;
}

static inline void fnn_fp_leave(unsigned saved)
{
    if (fnn_fp_state() != saved) fnn_fp_load(saved);
}

#endif /* FNN_FPMODE_H */
