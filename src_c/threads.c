/* threads.c -- what the build knows about OpenMP. */
#define _GNU_SOURCE   /* dl_iterate_phdr */
#include <string.h>
#include "fastnn.h"
#include "omp_compat.h"
#include "fpmode.h"

#if defined(_OPENMP) && defined(__APPLE__)
#include <dlfcn.h>
#elif defined(_OPENMP) && (defined(__linux__) || defined(__FreeBSD__))
#include <link.h>
#endif

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

static int copy_path(const char *path, char *out, size_t size)
{
    size_t len = path ? strlen(path) : 0;
    if (len == 0 || len >= size)
        return -1;
    memcpy(out, path, len + 1);
    return 0;
}

#if defined(_OPENMP) && !defined(__APPLE__) && (defined(__linux__) || defined(__FreeBSD__))
/* dl_iterate_phdr rather than dladdr: glibc 2.34 moved dladdr into libc under a new symbol
 * version, which would raise a wheel's glibc floor; dl_iterate_phdr has been in libc all along. */
struct find_object { uintptr_t addr; const char *name; };

static int object_holding(struct dl_phdr_info *info, size_t info_size, void *data)
{
    struct find_object *find = data;
    (void)info_size;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t start = (uintptr_t)info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_LOAD && find->addr >= start && find->addr < start + ph->p_memsz) {
            find->name = info->dlpi_name;
            return 1;
        }
    }
    return 0;
}
#endif

int fnn_openmp_runtime_path(char *out, size_t size)
{
#if !defined(_OPENMP)
    (void)out; (void)size;
    return -1;
#elif defined(__APPLE__)
    Dl_info info;
    if (!dladdr((const void *)(uintptr_t)&omp_get_max_threads, &info))
        return -1;
    return copy_path(info.dli_fname, out, size);
#elif defined(__linux__) || defined(__FreeBSD__)
    struct find_object find = { (uintptr_t)&omp_get_max_threads, NULL };
    dl_iterate_phdr(object_holding, &find);
    return copy_path(find.name, out, size);   /* "" is the executable: a static runtime */
#else
    (void)out; (void)size;
    return -1;
#endif
}
