/* cpu.c -- which instruction sets this build has, which this CPU runs, and which one is in use.
 *
 * Design: every kernel family with instruction-set variants (GEMM, dropout masks, optimizer)
 * asks fnn_isa_active() which one to run; nothing else reads CPU features.  Detection runs once:
 * the CPU's feature bits (__builtin_cpu_supports) AND the operating system's support for the
 * vector registers (XCR0 through xgetbv: a kernel that does not save the ymm/zmm state on a
 * context switch makes the instructions fault, or corrupt registers, even on a CPU that has them).
 *
 * Choice: FASTNN_ISA=generic|avx2|avx512, read once per process at first use; unset, the best the
 * CPU runs.  An ISA the CPU (or the build) lacks falls back to the best available, and
 * fnn_isa_requested() keeps what was asked so that the Python layer can say so.
 * FASTNN_GEMM_KERNEL=generic, the older switch, is read as FASTNN_ISA=generic.  fnn_isa_set
 * changes the choice in-process (the tests compare the variants bit for bit in one process); a
 * call already running keeps the variant it started with.
 */
#include <stdlib.h>
#include <string.h>

#include "fastnn.h"
#include "fpmode.h"

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define FNN_X86 1
#include <cpuid.h>
#endif

static const char *const isa_names[FNN_ISA_COUNT] = {"generic", "avx2", "avx512"};

const char *fnn_isa_name(int isa)
{
    return isa >= 0 && isa < FNN_ISA_COUNT ? isa_names[isa] : NULL;
}

int fnn_isa_from_name(const char *name)
{
    if (!name) return FNN_EINVAL;
    for (int i = 0; i < FNN_ISA_COUNT; i++)
        if (strcmp(name, isa_names[i]) == 0) return i;
    return FNN_EINVAL;
}

int fnn_isa_compiled(int isa)
{
    if (isa == FNN_ISA_GENERIC) return 1;
#ifdef FNN_X86
    return isa == FNN_ISA_AVX2 || isa == FNN_ISA_AVX512;
#else
    return 0;
#endif
}

#ifdef FNN_X86
/* XCR0: the register states the operating system saves and restores (0 when it has no XSAVE). */
static unsigned long long xcr0(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_OSXSAVE)) return 0;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}
#endif

/* Bit i set: ISA i runs here (compiled, on this CPU, with this OS). */
static unsigned detect(void)
{
    unsigned ok = 1u << FNN_ISA_GENERIC;
#ifdef FNN_X86
    __builtin_cpu_init();
    const unsigned long long x = xcr0();
    const int ymm_os = (x & 0x6) == 0x6;      /* SSE and AVX state */
    const int zmm_os = (x & 0xE6) == 0xE6;    /* + opmask, upper zmm0-15, zmm16-31 */
    if (ymm_os && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        ok |= 1u << FNN_ISA_AVX2;
    if (zmm_os && (ok & (1u << FNN_ISA_AVX2)) && __builtin_cpu_supports("avx512f") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512vl"))
        ok |= 1u << FNN_ISA_AVX512;
#endif
    return ok;
}

/* State, set once by init(): supported ISAs + 1 (0: not yet), what FASTNN_ISA asked for, and the
 * ISA in use.  A race between first callers is harmless: both compute the same values. */
static unsigned g_supported;
static int g_requested = -1;
static int g_active;

static int best_of(unsigned supported)
{
    for (int i = FNN_ISA_COUNT - 1; i > 0; i--)
        if (supported & (1u << i)) return i;
    return FNN_ISA_GENERIC;
}

static unsigned init(void)
{
    unsigned s = __atomic_load_n(&g_supported, __ATOMIC_ACQUIRE);
    if (s) return s - 1;
    const unsigned supported = detect();
    const char *env = getenv("FASTNN_ISA");
    int requested = -1;
    if (env && *env) {
        requested = fnn_isa_from_name(env);
        if (requested < 0) requested = FNN_ISA_COUNT;   /* a name we do not know */
    } else {
        const char *old = getenv("FASTNN_GEMM_KERNEL");
        if (old && strcmp(old, "generic") == 0) requested = FNN_ISA_GENERIC;
    }
    int active = best_of(supported);
    if (requested >= 0 && requested < FNN_ISA_COUNT && (supported & (1u << requested)))
        active = requested;
    __atomic_store_n(&g_requested, requested, __ATOMIC_RELAXED);
    __atomic_store_n(&g_active, active, __ATOMIC_RELAXED);
    __atomic_store_n(&g_supported, supported + 1, __ATOMIC_RELEASE);
    return supported;
}

int fnn_isa_supported(int isa)
{
    return isa >= 0 && isa < FNN_ISA_COUNT && ((init() >> isa) & 1u);
}

int fnn_isa_best(void)
{
    return best_of(init());
}

int fnn_isa_requested(void)
{
    init();
    return __atomic_load_n(&g_requested, __ATOMIC_RELAXED);
}

int fnn_isa_active(void)
{
    init();
    return __atomic_load_n(&g_active, __ATOMIC_RELAXED);
}

int fnn_isa_set(int isa)
{
    if (!fnn_isa_supported(isa)) return FNN_EINVAL;
    return __atomic_exchange_n(&g_active, isa, __ATOMIC_RELAXED);
}

unsigned fnn_fp_status(void)
{
    return fnn_fp_state();
}
