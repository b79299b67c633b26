# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# Design: this module only checks, converts and releases the GIL.  The C kernels of src_c/
# (contract in src_c/fastnn.h) do the work; the Python layer (fastnn/*.py) validates user
# arguments with messages for users before anything here is called.  This layer still checks
# every size a kernel would trust (shapes that must agree, indices inside their arrays, the dtype
# a compiled network was built for), so that no call from Python can make a kernel read or write
# outside its buffers: a slip raises ValueError/TypeError, never crashes the process.  Typed
# memoryviews refuse a wrong dtype or a non-contiguous array.  One fused type covers
# float32/float64: `if floating is float` picks the s- or d-kernel.
from cython cimport floating
from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport malloc, free

import os
import threading

import numpy as np


cdef extern from "fastnn.h" nogil:
    ctypedef enum fnn_act:
        FNN_LINEAR
        FNN_RELU
        FNN_LEAKY_RELU
        FNN_TANH
        FNN_SIGMOID
        FNN_SOFTMAX
    ctypedef enum fnn_loss:
        FNN_LOSS_XENT
        FNN_LOSS_BCE
        FNN_LOSS_MSE
    ctypedef enum fnn_optim:
        FNN_SGD
        FNN_MOMENTUM
        FNN_RMSPROP
        FNN_ADAM
        FNN_ADAMW
    ctypedef void (*fnn_sepilogue)(void *, float *, Py_ssize_t, int, int, int, int)
    ctypedef void (*fnn_depilogue)(void *, double *, Py_ssize_t, int, int, int, int)

    int fnn_has_openmp()
    int fnn_omp_max_threads()
    int fnn_openmp_runtime_path(char *out, size_t size)
    const char *fnn_gemm_kernel_name()
    int fnn_gemm_tile(int isa, int dtype_size, int *mr, int *nr, int *kc, int *mc, int *nc)
    int FNN_ISA_COUNT
    const char *fnn_isa_name(int isa)
    int fnn_isa_from_name(const char *name)
    int fnn_isa_compiled(int isa)
    int fnn_isa_supported(int isa)
    int fnn_isa_best()
    int fnn_isa_active()
    int fnn_isa_requested()
    int fnn_isa_set(int isa)
    unsigned fnn_fp_status()
    int fnn_team_fp_modes(int n_threads, unsigned *out)

    size_t fnn_gemm_ws_size(int m, int n, int k, int n_threads, size_t elem_size)
    int FNN_OK, FNN_EINVAL, FNN_EWORKSPACE, FNN_ENOMEM
    int fnn_sgemm(int m, int n, int k, const float *A, Py_ssize_t rsa, Py_ssize_t csa,
                  const float *B, Py_ssize_t rsb, Py_ssize_t csb, float *C, Py_ssize_t ldc,
                  fnn_sepilogue ep, void *ep_ctx, void *ws, size_t ws_bytes, int n_threads)
    int fnn_dgemm(int m, int n, int k, const double *A, Py_ssize_t rsa, Py_ssize_t csa,
                  const double *B, Py_ssize_t rsb, Py_ssize_t csb, double *C, Py_ssize_t ldc,
                  fnn_depilogue ep, void *ep_ctx, void *ws, size_t ws_bytes, int n_threads)

    void fnn_sact_forward(fnn_act act, float *x, Py_ssize_t count)
    void fnn_dact_forward(fnn_act act, double *x, Py_ssize_t count)
    void fnn_sact_backward(fnn_act act, const float *a, float *dA, Py_ssize_t count)
    void fnn_dact_backward(fnn_act act, const double *a, double *dA, Py_ssize_t count)

    void fnn_ssoftmax_rows(int m, int n, const float *Z, Py_ssize_t ldz, float *P, Py_ssize_t ldp)
    void fnn_dsoftmax_rows(int m, int n, const double *Z, Py_ssize_t ldz, double *P, Py_ssize_t ldp)
    double fnn_sloss_grad(fnn_loss loss, int m, int n, const float *Z, Py_ssize_t ldz,
                          const int32_t *labels, const float *Y, Py_ssize_t ldy,
                          float *dZ, float scale)
    double fnn_dloss_grad(fnn_loss loss, int m, int n, const double *Z, Py_ssize_t ldz,
                          const int32_t *labels, const double *Y, Py_ssize_t ldy,
                          double *dZ, double scale)

    void fnn_philox4x32(const uint32_t *ctr, const uint32_t *key, uint32_t *out)
    uint32_t fnn_keep_threshold(double keep_prob)
    void fnn_dropout_mask(uint64_t seed, uint64_t step, uint32_t layer, int64_t e0,
                          Py_ssize_t count, uint32_t threshold, uint8_t *mask)
    void fnn_sdropout_apply(float *x, const uint8_t *mask, Py_ssize_t count, float inv_keep)
    void fnn_ddropout_apply(double *x, const uint8_t *mask, Py_ssize_t count, double inv_keep)
    void fnn_sdropout_forward(uint64_t seed, uint64_t step, uint32_t layer, int64_t e0,
                              Py_ssize_t count, uint32_t threshold, float inv_keep, float *x,
                              uint8_t *mask, int n_threads)
    void fnn_ddropout_forward(uint64_t seed, uint64_t step, uint32_t layer, int64_t e0,
                              Py_ssize_t count, uint32_t threshold, double inv_keep, double *x,
                              uint8_t *mask, int n_threads)

    void fnn_sgather_rows(int m, int n, const float *X, Py_ssize_t ldx, const int64_t *idx, float *out)
    void fnn_dgather_rows(int m, int n, const double *X, Py_ssize_t ldx, const int64_t *idx, double *out)
    void fnn_igather(int m, const int32_t *y, const int64_t *idx, int32_t *out)

    ctypedef struct fnn_optim_params:
        fnn_optim kind
        double lr, beta1, beta2, eps, weight_decay
        int64_t t
    void fnn_soptim_step(const fnn_optim_params *op, Py_ssize_t count, float *p, const float *g,
                         float *v, float *s, int n_threads)
    void fnn_doptim_step(const fnn_optim_params *op, Py_ssize_t count, double *p, const double *g,
                         double *v, double *s, int n_threads)

    ctypedef struct fnn_layer_spec:
        int n_in, n_out
        fnn_act act
        double keep_prob
        int batch_norm
        double bn_momentum
        Py_ssize_t W, b, gamma, beta
        Py_ssize_t running_mean, running_var
    ctypedef struct fnn_pass_result:
        double loss
        double sum_w2
        int64_t n_errors
    ctypedef struct fnn_snet:
        pass
    ctypedef struct fnn_dnet:
        pass
    fnn_snet *fnn_snet_create(int n_layers, const fnn_layer_spec *layers, fnn_loss loss,
                              float *params, Py_ssize_t n_params, float *grads, float *buffers,
                              Py_ssize_t n_buffers, int max_rows, int max_threads, int *status)
    fnn_dnet *fnn_dnet_create(int n_layers, const fnn_layer_spec *layers, fnn_loss loss,
                              double *params, Py_ssize_t n_params, double *grads, double *buffers,
                              Py_ssize_t n_buffers, int max_rows, int max_threads, int *status)
    void fnn_snet_free(fnn_snet *net)
    void fnn_dnet_free(fnn_dnet *net)
    int fnn_snet_forward(fnn_snet *net, int m, const float *X, Py_ssize_t ldx, int training,
                         uint64_t seed, uint64_t step, float *out, Py_ssize_t ldo, int n_threads)
    int fnn_dnet_forward(fnn_dnet *net, int m, const double *X, Py_ssize_t ldx, int training,
                         uint64_t seed, uint64_t step, double *out, Py_ssize_t ldo, int n_threads)
    size_t fnn_snet_infer_ws_size(const fnn_snet *net, int m, int n_threads)
    size_t fnn_dnet_infer_ws_size(const fnn_dnet *net, int m, int n_threads)
    size_t fnn_snet_evaluate_ws_size(const fnn_snet *net, int m, int n_threads)
    size_t fnn_dnet_evaluate_ws_size(const fnn_dnet *net, int m, int n_threads)
    ctypedef struct fnn_input_map:
        const double *mean
        const double *scale
    int fnn_snet_infer(const fnn_snet *net, int m, const float *X, Py_ssize_t ldx,
                       const fnn_input_map *in_map, float *out, Py_ssize_t ldo, void *ws,
                       size_t ws_bytes, int n_threads)
    int fnn_dnet_infer(const fnn_dnet *net, int m, const double *X, Py_ssize_t ldx,
                       const fnn_input_map *in_map, double *out, Py_ssize_t ldo, void *ws,
                       size_t ws_bytes, int n_threads)
    int fnn_snet_evaluate(const fnn_snet *net, int m, const float *X, Py_ssize_t ldx,
                          const fnn_input_map *in_map, const int32_t *labels, const float *Y,
                          Py_ssize_t ldy, void *ws, size_t ws_bytes, int n_threads,
                          fnn_pass_result *res)
    int fnn_dnet_evaluate(const fnn_dnet *net, int m, const double *X, Py_ssize_t ldx,
                          const fnn_input_map *in_map, const int32_t *labels, const double *Y,
                          Py_ssize_t ldy, void *ws, size_t ws_bytes, int n_threads,
                          fnn_pass_result *res)
    int fnn_snet_loss_grad(fnn_snet *net, int m, const float *X, Py_ssize_t ldx,
                           const int32_t *labels, const float *Y, Py_ssize_t ldy,
                           int training, uint64_t seed, uint64_t step, double l2_coef,
                           int n_threads, fnn_pass_result *res)
    int fnn_dnet_loss_grad(fnn_dnet *net, int m, const double *X, Py_ssize_t ldx,
                           const int32_t *labels, const double *Y, Py_ssize_t ldy,
                           int training, uint64_t seed, uint64_t step, double l2_coef,
                           int n_threads, fnn_pass_result *res)
    int fnn_snet_train_steps(fnn_snet *net, int64_t count, int bs, const int64_t *idx,
                             const float *X, int64_t n_rows, Py_ssize_t ldx,
                             const int32_t *labels, const float *Y, Py_ssize_t ldy,
                             uint64_t seed, uint64_t step0, double l2_coef,
                             const fnn_optim_params *op, float *v, float *s,
                             int n_threads, fnn_pass_result *res, int *n_done)
    int fnn_dnet_train_steps(fnn_dnet *net, int64_t count, int bs, const int64_t *idx,
                             const double *X, int64_t n_rows, Py_ssize_t ldx,
                             const int32_t *labels, const double *Y, Py_ssize_t ldy,
                             uint64_t seed, uint64_t step0, double l2_coef,
                             const fnn_optim_params *op, double *v, double *s,
                             int n_threads, fnn_pass_result *res, int *n_done)


cdef int _check_status(int rc, what) except -1:
    """Raise for a C status code (the C side checks what it was given; see fastnn.h)."""
    if rc == FNN_OK:
        return 0
    if rc == FNN_EWORKSPACE:
        raise ValueError(f"{what}: the workspace is too small for this call")
    if rc == FNN_ENOMEM:
        raise MemoryError(f"{what}: out of memory")
    raise ValueError(f"{what}: sizes that disagree with the compiled network")


cdef char *_aligned_in(arr, list keep):
    """The first 64-byte aligned byte of the uint8 array `arr` (which has 64 bytes to spare);
    `keep` holds the array while the pointer is used."""
    keep.append(arr)
    cdef uint8_t[::1] view = arr
    cdef char *p = <char *>&view[0]
    return p + ((64 - (<size_t>p) % 64) % 64)


cdef char *_aligned_ws(size_t nbytes, list keep):
    """A 64-byte aligned scratch of nbytes; `keep` holds the array that owns it."""
    return _aligned_in(np.empty(nbytes + 64, dtype=np.uint8), keep)


# An inference workspace up to this size stays with its thread between calls (the packed
# weights of a model of ~4 million float32 parameters, with the team's row blocks).
_KEEP_WS_BYTES = 1 << 25


def all_finite(const floating[:, ::1] a):
    """True when every element of the C-contiguous 2-D array `a` is finite, read once with no
    temporary: an exponent field of all ones is NaN or infinity (integer tests, which the
    compiler vectorises)."""
    cdef Py_ssize_t i, n = a.shape[0] * a.shape[1]
    cdef const uint32_t *p32
    cdef const uint64_t *p64
    cdef uint32_t bad32 = 0
    cdef uint64_t bad64 = 0
    cdef uint64_t exp64 = (<uint64_t>0x7ff) << 52
    if n == 0:
        return True
    with nogil:
        if floating is float:
            p32 = <const uint32_t *>&a[0, 0]
            for i in range(n):
                bad32 |= <uint32_t>((p32[i] & 0x7f800000u) == 0x7f800000u)
        else:
            p64 = <const uint64_t *>&a[0, 0]
            for i in range(n):
                bad64 |= <uint64_t>((p64[i] & exp64) == exp64)
    return bad32 == 0 and bad64 == 0


# The layout of fnn_pass_result, for arrays of per-step results.
PASS_RESULT_DTYPE = np.dtype([("loss", np.float64), ("sum_w2", np.float64),
                              ("n_errors", np.int64)])


# ---- tables ------------------------------------------------------------------------------

# The C enums of fastnn.h under the names the Python layer uses: every table and choice list of
# fastnn (layers, optimizers, the CLI) is built from these, so a value is written down only once.
ACTIVATION_CODES = {"linear": FNN_LINEAR, "relu": FNN_RELU, "leaky_relu": FNN_LEAKY_RELU,
                    "tanh": FNN_TANH, "sigmoid": FNN_SIGMOID, "softmax": FNN_SOFTMAX}
LOSS_CODES = {"xent": FNN_LOSS_XENT, "bce": FNN_LOSS_BCE, "mse": FNN_LOSS_MSE}
OPTIMIZER_CODES = {"sgd": FNN_SGD, "momentum": FNN_MOMENTUM, "rmsprop": FNN_RMSPROP,
                   "adam": FNN_ADAM, "adamw": FNN_ADAMW}


# A compiled network's layer table crosses into C as rows of this dtype: the fields of
# fnn_layer_spec (fastnn.h), offsets -1 where the layer has no such array.
LAYER_SPEC_DTYPE = np.dtype([("n_in", np.int32), ("n_out", np.int32), ("act", np.int32),
                             ("keep_prob", np.float64), ("batch_norm", np.int32),
                             ("bn_momentum", np.float64), ("W", np.intp), ("b", np.intp),
                             ("gamma", np.intp), ("beta", np.intp), ("running_mean", np.intp),
                             ("running_var", np.intp)])


# ---- build facts ---------------------------------------------------------------------------

def has_openmp():
    """True when the kernels were compiled with OpenMP."""
    return bool(fnn_has_openmp())


def omp_max_threads():
    """omp_get_max_threads() of fastnn's OpenMP runtime (1 without OpenMP)."""
    return fnn_omp_max_threads()


cdef extern from *:
    """
    #ifdef Py_LIMITED_API
    #define FNN_PY_LIMITED_API Py_LIMITED_API
    #else
    #define FNN_PY_LIMITED_API 0
    #endif
    """
    long FNN_PY_LIMITED_API


def build_info():
    """What only the build knows, as a dict.

    ``limited_api``: the Python Limited API version this module was compiled for (``"3.11"``: one
    ``abi3`` module for CPython 3.11 and later), or ``None`` for a build for one Python version.
    ``openmp``: compiled with OpenMP.  ``openmp_runtime``: the file of the OpenMP runtime that
    the kernels call, as loaded in this process (the copy a wheel bundles, or the compiler's own
    for a source build); ``"unknown"`` where it cannot be told, ``None`` without OpenMP.
    """
    cdef char path[4096]
    runtime = None
    if fnn_has_openmp():
        runtime = (os.path.normpath(os.fsdecode(<bytes>path))
                   if fnn_openmp_runtime_path(path, sizeof(path)) == 0 else "unknown")
    limited = FNN_PY_LIMITED_API
    return {"limited_api": f"{limited >> 24}.{(limited >> 16) & 0xFF}" if limited else None,
            "openmp": bool(fnn_has_openmp()),
            "openmp_runtime": runtime}


def gemm_kernel_name():
    """Name of the GEMM micro-kernel table in use ("generic", "avx2-fma", "avx512")."""
    return fnn_gemm_kernel_name().decode()


# ---- instruction sets (src_c/cpu.c; fastnn.h, "instruction sets") -----------------------------

def isa_names():
    """Every instruction-set variant fastnn knows, slowest first: ("generic", "avx2", "avx512")."""
    return tuple(fnn_isa_name(i).decode() for i in range(FNN_ISA_COUNT))


def _isa_code(name):
    code = fnn_isa_from_name(str(name).encode())
    if code < 0:
        raise ValueError(f"unknown instruction set {name!r}; expected one of {isa_names()}")
    return code


def isas_compiled():
    """The instruction sets this build has kernels for."""
    return tuple(n for i, n in enumerate(isa_names()) if fnn_isa_compiled(i))


def isas_supported():
    """The instruction sets this build has AND this CPU (and OS) runs."""
    return tuple(n for i, n in enumerate(isa_names()) if fnn_isa_supported(i))


def get_isa():
    """The instruction set in use."""
    return fnn_isa_name(fnn_isa_active()).decode()


def isa_requested():
    """What FASTNN_ISA asked for (the name as given when unknown to fastnn), or None."""
    code = fnn_isa_requested()
    if code < 0:
        return None
    if code >= FNN_ISA_COUNT:
        import os
        return os.environ.get("FASTNN_ISA")
    return fnn_isa_name(code).decode()


def set_isa(name):
    """Use the instruction set `name` from now on, in this process; returns the previous one.

    For tests that compare the variants bit for bit in one process.  ValueError for a name
    fastnn does not know or an ISA this CPU (or build) cannot run."""
    code = _isa_code(name)
    prev = fnn_isa_set(code)
    if prev < 0:
        raise ValueError(f"instruction set {name!r} is not supported here "
                         f"(supported: {isas_supported()})")
    return fnn_isa_name(prev).decode()


def gemm_tile(name, int itemsize):
    """The GEMM blocking of an instruction set for a dtype of `itemsize` bytes:
    dict(mr, nr, kc, mc, nc) in elements."""
    cdef int mr = 0, nr = 0, kc = 0, mc = 0, nc = 0
    if fnn_gemm_tile(_isa_code(name), itemsize, &mr, &nr, &kc, &mc, &nc) != FNN_OK:
        raise ValueError(f"no GEMM kernels for {name!r} with itemsize {itemsize} in this build")
    return dict(mr=mr, nr=nr, kc=kc, mc=mc, nc=nc)


def fp_status():
    """The calling thread's floating-point control register: MXCSR on x86, FPCR on aarch64,
    0 elsewhere (tests check that fastnn's calls leave it as they found it)."""
    return fnn_fp_status()


def team_fp_modes(int n_threads):
    """The flush-to-zero bits of each thread of an OpenMP team of n_threads, read in a region
    that sets nothing (tests: fastnn's calls restore every thread's mode)."""
    cdef unsigned modes[256]
    n_threads = max(1, min(n_threads, 256))
    cdef int size = fnn_team_fp_modes(n_threads, modes)
    return [modes[i] for i in range(size)]


# ---- single kernels (the tests compare each with fastnn.reference) ---------------------------

def gemm(const floating[:, :] A, const floating[:, :] B, floating[:, ::1] C, int n_threads=1,
         ws_bytes=None):
    """C = A @ B; A and B may be any strided 2-D views (transposes are strides).  # OUT: C

    The workspace is ``gemm_ws_size(m, n, k, n_threads)`` bytes, or exactly ``ws_bytes`` (the
    test of the workspace contract: the kernel refuses one too small with ValueError)."""
    cdef int m = A.shape[0], k = A.shape[1], n = B.shape[1]
    if B.shape[0] != k or C.shape[0] != m or C.shape[1] != n:
        raise ValueError(f"gemm: shapes {(A.shape[0], A.shape[1])} @ {(B.shape[0], B.shape[1])} -> {(C.shape[0], C.shape[1])} disagree")
    cdef Py_ssize_t rsa = A.strides[0] // sizeof(floating), csa = A.strides[1] // sizeof(floating)
    cdef Py_ssize_t rsb = B.strides[0] // sizeof(floating), csb = B.strides[1] // sizeof(floating)
    cdef size_t wsb = (fnn_gemm_ws_size(m, n, k, n_threads, sizeof(floating)) if ws_bytes is None
                       else ws_bytes)
    keep = []
    cdef char *wsp = _aligned_ws(wsb, keep)
    cdef const floating *pa = &A[0, 0] if m > 0 and k > 0 else NULL
    cdef const floating *pb = &B[0, 0] if k > 0 and n > 0 else NULL
    cdef floating *pc = &C[0, 0] if m > 0 and n > 0 else NULL
    cdef int rc
    with nogil:
        if floating is float:
            rc = fnn_sgemm(m, n, k, pa, rsa, csa, pb, rsb, csb, pc, C.shape[1], NULL, NULL, wsp,
                           wsb, n_threads)
        else:
            rc = fnn_dgemm(m, n, k, pa, rsa, csa, pb, rsb, csb, pc, C.shape[1], NULL, NULL, wsp,
                           wsb, n_threads)
    _check_status(rc, "gemm")


def gemm_ws_size(int m, int n, int k, int n_threads, int itemsize):
    """Bytes of workspace that serve every GEMM of at most (m, n, k) on n_threads threads."""
    return fnn_gemm_ws_size(m, n, k, n_threads, itemsize)


cdef int _check_act(int act, what) except -1:
    if act < 0 or act > 5:
        raise ValueError(f"{what}: activation code {act} is not an activation")
    return 0


cdef int _check_len(Py_ssize_t got, Py_ssize_t want, name) except -1:
    if got != want:
        raise ValueError(f"{name} has {got} elements, expected {want}")
    return 0


def act_forward(int act, floating[::1] x):
    """x = g(x) in place.  # IN/OUT: x"""
    _check_act(act, "act_forward")
    if x.shape[0] == 0:
        return
    with nogil:
        if floating is float:
            fnn_sact_forward(<fnn_act>act, &x[0], x.shape[0])
        else:
            fnn_dact_forward(<fnn_act>act, &x[0], x.shape[0])


def act_backward(int act, const floating[::1] a, floating[::1] dA):
    """dA *= g'(.) from the output a.  # IN: a  # IN/OUT: dA"""
    _check_act(act, "act_backward")
    _check_len(dA.shape[0], a.shape[0], "dA")
    if a.shape[0] == 0:
        return
    with nogil:
        if floating is float:
            fnn_sact_backward(<fnn_act>act, &a[0], &dA[0], a.shape[0])
        else:
            fnn_dact_backward(<fnn_act>act, &a[0], &dA[0], a.shape[0])


def softmax_rows(const floating[:, ::1] Z, floating[:, ::1] P):
    """P = row-wise softmax(Z).  # OUT: P"""
    if P.shape[0] != Z.shape[0] or P.shape[1] != Z.shape[1]:
        raise ValueError(f"P has shape {(P.shape[0], P.shape[1])}, Z {(Z.shape[0], Z.shape[1])}")
    if Z.shape[0] == 0 or Z.shape[1] == 0:
        return
    with nogil:
        if floating is float:
            fnn_ssoftmax_rows(Z.shape[0], Z.shape[1], &Z[0, 0], Z.shape[1], &P[0, 0], P.shape[1])
        else:
            fnn_dsoftmax_rows(Z.shape[0], Z.shape[1], &Z[0, 0], Z.shape[1], &P[0, 0], P.shape[1])


def loss_grad(int loss, const floating[:, ::1] Z, const int32_t[::1] labels,
              const floating[:, ::1] Y, floating[:, ::1] dZ, double scale):
    """Sum of the per-example losses; dZ = scale * d(sum)/dZ.  # OUT: dZ"""
    cdef const int32_t *pl = &labels[0] if labels is not None and labels.shape[0] > 0 else NULL
    cdef const floating *py = &Y[0, 0] if Y is not None and Y.shape[0] > 0 else NULL
    cdef Py_ssize_t ldy = Y.shape[1] if Y is not None else 0
    cdef double total
    cdef Py_ssize_t m = Z.shape[0], n = Z.shape[1]
    if loss < 0 or loss > 2:
        raise ValueError(f"loss_grad: loss code {loss} is not a loss")
    if dZ.shape[0] != m or dZ.shape[1] != n:
        raise ValueError(f"dZ has shape {(dZ.shape[0], dZ.shape[1])}, Z {(Z.shape[0], Z.shape[1])}")
    if loss == 0:
        if labels is None:
            raise ValueError("loss_grad: cross-entropy needs labels")
        _check_len(labels.shape[0], m, "labels")
        if m and (np.min(labels) < 0 or np.max(labels) >= n):
            raise ValueError(f"labels must lie in [0, {n})")
    elif Y is None or Y.shape[0] != m or Y.shape[1] != n:
        raise ValueError(f"loss_grad: Y must have shape {(m, n)}")
    if m == 0 or n == 0:
        return 0.0
    with nogil:
        if floating is float:
            total = fnn_sloss_grad(<fnn_loss>loss, Z.shape[0], Z.shape[1], &Z[0, 0], Z.shape[1],
                                   pl, py, ldy, &dZ[0, 0], <float>scale)
        else:
            total = fnn_dloss_grad(<fnn_loss>loss, Z.shape[0], Z.shape[1], &Z[0, 0], Z.shape[1],
                                   pl, py, ldy, &dZ[0, 0], scale)
    return total


def philox4x32(ctr, key):
    """The 4 words of Philox4x32-10 for counter ctr (4 words) and key (2 words)."""
    cdef uint32_t c[4]
    cdef uint32_t k[2]
    cdef uint32_t out[4]
    for i in range(4):
        c[i] = ctr[i]
    k[0] = key[0]
    k[1] = key[1]
    fnn_philox4x32(c, k, out)
    return [out[0], out[1], out[2], out[3]]


def dropout_mask(uint64_t seed, uint64_t step, uint32_t layer, int64_t e0, double keep_prob,
                 uint8_t[::1] mask):
    """mask[i] = 1 if element e0+i of (seed, step, layer) is kept.  # OUT: mask"""
    cdef uint32_t thr = fnn_keep_threshold(keep_prob)
    if mask.shape[0] == 0:
        return
    with nogil:
        fnn_dropout_mask(seed, step, layer, e0, mask.shape[0], thr, &mask[0])


def dropout_apply(floating[::1] x, const uint8_t[::1] mask, double keep_prob):
    """x = mask ? x/keep_prob : 0.  # IN/OUT: x"""
    _check_len(mask.shape[0], x.shape[0], "mask")
    if x.shape[0] == 0:
        return
    with nogil:
        if floating is float:
            fnn_sdropout_apply(&x[0], &mask[0], x.shape[0], <float>(1.0 / keep_prob))
        else:
            fnn_ddropout_apply(&x[0], &mask[0], x.shape[0], 1.0 / keep_prob)


def dropout_forward(floating[::1] x, uint8_t[::1] mask, uint64_t seed, uint64_t step,
                    uint32_t layer, int64_t e0, double keep_prob, int n_threads=1):
    """Fused dropout_mask + dropout_apply in one threaded pass: x = kept ? x/keep_prob : 0, and
    mask[i] = kept(e0 + i) unless mask is None.  # IN/OUT: x; OUT: mask"""
    cdef Py_ssize_t count = x.shape[0]
    cdef uint32_t thr = fnn_keep_threshold(keep_prob)
    cdef uint8_t *pm = NULL
    if mask is not None:
        if mask.shape[0] != count:
            raise ValueError(f"mask has {mask.shape[0]} elements, x has {count}")
        if count > 0:
            pm = &mask[0]
    if count == 0:
        return
    with nogil:
        if floating is float:
            fnn_sdropout_forward(seed, step, layer, e0, count, thr, <float>(1.0 / keep_prob),
                                 &x[0], pm, n_threads)
        else:
            fnn_ddropout_forward(seed, step, layer, e0, count, thr, 1.0 / keep_prob, &x[0], pm,
                                 n_threads)


def gather_rows(const floating[:, ::1] X, const int64_t[::1] idx, floating[:, ::1] out):
    """out[r] = X[idx[r]].  # OUT: out"""
    if out.shape[0] != idx.shape[0] or out.shape[1] != X.shape[1]:
        raise ValueError(f"out has shape {(out.shape[0], out.shape[1])}, expected {(idx.shape[0], X.shape[1])}")
    if idx.shape[0] == 0:
        return
    if np.min(idx) < 0 or np.max(idx) >= X.shape[0]:
        raise ValueError(f"idx must lie in [0, {X.shape[0]})")
    if X.shape[1] == 0:
        return
    with nogil:
        if floating is float:
            fnn_sgather_rows(idx.shape[0], X.shape[1], &X[0, 0], X.shape[1], &idx[0], &out[0, 0])
        else:
            fnn_dgather_rows(idx.shape[0], X.shape[1], &X[0, 0], X.shape[1], &idx[0], &out[0, 0])


cdef fnn_optim_params _optim_params(int kind, double lr, double beta1, double beta2, double eps,
                                    double weight_decay, int64_t t):
    cdef fnn_optim_params op
    op.kind = <fnn_optim>kind
    op.lr = lr
    op.beta1 = beta1
    op.beta2 = beta2
    op.eps = eps
    op.weight_decay = weight_decay
    op.t = t
    return op


cdef int _check_optim(int kind, Py_ssize_t n, g, v, s) except -1:
    """The gradient and the state an optimizer kind reads, each of n elements."""
    if kind < 0 or kind > 4:
        raise ValueError(f"optimizer code {kind} is not an optimizer")
    if g is not None:
        _check_len(g.shape[0], n, "g")
    for name, arr, needed in (("v", v, kind != 0 and kind != 2), ("s", s, kind >= 2)):
        if arr is not None:
            _check_len(arr.shape[0], n, name)
        elif needed and n > 0:
            raise ValueError(f"optimizer code {kind} needs its state {name}")
    return 0


def optim_step(int kind, double lr, double beta1, double beta2, double eps, double weight_decay,
               int64_t t, floating[::1] p, const floating[::1] g, floating[::1] v,
               floating[::1] s, int n_threads=1):
    """One fused optimizer pass over flat p, g (and state v, s).  # IN/OUT: p, v, s"""
    cdef fnn_optim_params op = _optim_params(kind, lr, beta1, beta2, eps, weight_decay, t)
    _check_optim(kind, p.shape[0], g, v, s)
    cdef floating *pv = &v[0] if v is not None and v.shape[0] > 0 else NULL
    cdef floating *ps = &s[0] if s is not None and s.shape[0] > 0 else NULL
    if p.shape[0] == 0:
        return
    with nogil:
        if floating is float:
            fnn_soptim_step(&op, p.shape[0], &p[0], &g[0], pv, ps, n_threads)
        else:
            fnn_doptim_step(&op, p.shape[0], &p[0], &g[0], pv, ps, n_threads)


# ---- the network -----------------------------------------------------------------------------

cdef class Net:
    """A compiled network over caller-owned flat buffers, with its training workspace.

    `layers` is a NumPy structured array of LAYER_SPEC_DTYPE, one row per layer (the fields of
    fastnn.h's fnn_layer_spec: sizes, activation, dropout and batch-norm settings, and offsets
    into `params`/`grads` (W, b, gamma, beta) and into `buffers` (running_mean, running_var),
    -1 where absent), or anything np.asarray turns into one; the C side checks the table against
    the buffers.  The arrays are kept alive by this object.

    Training methods (forward, loss_grad, train_steps) use the workspace: one call at a time per
    Net (the Python layer serialises them).  ``infer`` and ``evaluate`` use a workspace of their
    own per call and only read the net: any number of threads may run them at once.
    """
    cdef void *_net
    cdef bint _double
    cdef readonly int max_rows, max_threads, n_out, n_in
    cdef readonly Py_ssize_t n_params
    cdef readonly object params, grads, buffers
    cdef object _tls          # per calling thread: .ws, its inference workspace

    def __cinit__(self, layers, int loss, params, grads, buffers, int max_rows, int max_threads):
        cdef int status = FNN_OK
        self._net = NULL
        if params.dtype not in (np.float32, np.float64):
            raise TypeError(f"params must be float32 or float64, got {params.dtype}")
        if grads.dtype != params.dtype or buffers.dtype != params.dtype:
            raise TypeError("params, grads and buffers must share one dtype")
        if grads.shape[0] != params.shape[0]:
            raise ValueError(f"grads has {grads.shape[0]} elements, params {params.shape[0]}")
        layers = np.asarray(layers, dtype=LAYER_SPEC_DTYPE)
        if layers.ndim != 1 or layers.shape[0] < 1:
            raise ValueError("a network needs a 1-D table of at least one layer")
        self._double = params.dtype == np.float64
        self._tls = threading.local()
        self.params, self.grads, self.buffers = params, grads, buffers
        self.n_params = params.shape[0]
        self.max_rows, self.max_threads = max_rows, max_threads
        self.n_in = layers["n_in"][0]
        self.n_out = layers["n_out"][layers.shape[0] - 1]
        if self._double:
            self._net = _make_net[double](layers, loss, params, grads, buffers, max_rows,
                                          max_threads, &status)
        else:
            self._net = _make_net[float](layers, loss, params, grads, buffers, max_rows,
                                         max_threads, &status)
        if self._net == NULL:
            if status == FNN_ENOMEM:
                raise MemoryError("fastnn: cannot allocate the training workspace")
            raise ValueError("fastnn: the layer table disagrees with the buffers")

    def __dealloc__(self):
        if self._net != NULL:
            if self._double:
                fnn_dnet_free(<fnn_dnet *>self._net)
            else:
                fnn_snet_free(<fnn_snet *>self._net)
            self._net = NULL

    cdef int _check(self, bint is_double, Py_ssize_t m, Py_ssize_t n_in, Py_ssize_t max_rows,
                    what) except -1:
        """The dtype this net was built for; m rows of n_in features, at most max_rows."""
        if is_double != self._double:
            raise TypeError(f"{what}: this network is {'float64' if self._double else 'float32'}, "
                            f"got {'float64' if is_double else 'float32'} arrays")
        if n_in != self.n_in:
            raise ValueError(f"{what}: X has {n_in} columns, the network {self.n_in} inputs")
        if m > max_rows:
            raise ValueError(f"{what}: {m} rows, the workspace holds {max_rows}")
        return 0

    cdef char *_infer_ws(self, bint is_double, int m, int n_threads, bint logits, list keep,
                         size_t *wsb):
        """A workspace for inference on m rows that no other thread uses: the calling thread's
        own, kept between its calls (so a prediction allocates nothing but its output) unless
        larger than _KEEP_WS_BYTES; `keep` holds the array while the call runs."""
        if logits:
            wsb[0] = (fnn_dnet_evaluate_ws_size(<fnn_dnet *>self._net, m, n_threads) if is_double
                      else fnn_snet_evaluate_ws_size(<fnn_snet *>self._net, m, n_threads))
        else:
            wsb[0] = (fnn_dnet_infer_ws_size(<fnn_dnet *>self._net, m, n_threads) if is_double
                      else fnn_snet_infer_ws_size(<fnn_snet *>self._net, m, n_threads))
        cached = getattr(self._tls, "ws", None)
        if cached is None or cached.shape[0] < wsb[0] + 64:
            cached = np.empty(wsb[0] + 64, dtype=np.uint8)
            self._tls.ws = cached if wsb[0] <= _KEEP_WS_BYTES else None
        return _aligned_in(cached, keep)

    cdef int _check_targets(self, Py_ssize_t m, const int32_t[::1] labels, Py_ssize_t y_rows,
                            Py_ssize_t y_cols, bint has_y) except -1:
        if labels is not None:
            _check_len(labels.shape[0], m, "labels")
        if has_y and (y_rows != m or y_cols != self.n_out):
            raise ValueError(f"Y has shape {(y_rows, y_cols)}, expected {(m, self.n_out)}")
        return 0

    def forward(self, const floating[:, ::1] X, floating[:, ::1] out, bint training,
                uint64_t seed, uint64_t step, int n_threads):
        """out = network output on X (m <= max_rows) through the training workspace.  # OUT: out"""
        cdef int m = X.shape[0]
        cdef int rc
        self._check(floating is double, m, X.shape[1], self.max_rows, "forward")
        if out.shape[0] != m or out.shape[1] != self.n_out:
            raise ValueError(f"out has shape {(out.shape[0], out.shape[1])}, expected {(m, self.n_out)}")
        if m == 0:
            return
        with nogil:
            if floating is float:
                rc = fnn_snet_forward(<fnn_snet *>self._net, m, &X[0, 0], X.shape[1], training,
                                      seed, step, &out[0, 0], out.shape[1], n_threads)
            else:
                rc = fnn_dnet_forward(<fnn_dnet *>self._net, m, &X[0, 0], X.shape[1], training,
                                      seed, step, &out[0, 0], out.shape[1], n_threads)
        _check_status(rc, "forward")

    cdef int _input_map(self, const double[::1] x_mean, const double[::1] x_scale,
                        fnn_input_map *map, fnn_input_map **use) except -1:
        """The standardisation of the input columns (both arrays or neither)."""
        if x_mean is None and x_scale is None:
            use[0] = NULL
            return 0
        if x_mean is None or x_scale is None:
            raise ValueError("x_mean and x_scale go together")
        _check_len(x_mean.shape[0], self.n_in, "x_mean")
        _check_len(x_scale.shape[0], self.n_in, "x_scale")
        map.mean = &x_mean[0]
        map.scale = &x_scale[0]
        use[0] = map
        return 0

    def infer(self, const floating[:, ::1] X, floating[:, ::1] out, int n_threads,
              const double[::1] x_mean=None, const double[::1] x_scale=None):
        """out = inference-mode output on X (any number of rows) over a workspace of this
        call's own: safe from many threads at once.  With x_mean and x_scale (n_in doubles
        each) the network reads (X - x_mean) / x_scale.  # OUT: out"""
        cdef int m = X.shape[0]
        cdef int rc
        cdef size_t wsb
        cdef char *ws
        cdef fnn_input_map map
        cdef fnn_input_map *in_map
        self._check(floating is double, m, X.shape[1], 2147483647, "infer")
        self._input_map(x_mean, x_scale, &map, &in_map)
        if out.shape[0] != m or out.shape[1] != self.n_out:
            raise ValueError(f"out has shape {(out.shape[0], out.shape[1])}, expected {(m, self.n_out)}")
        if m == 0:
            return
        keep = []
        ws = self._infer_ws(floating is double, m, n_threads, False, keep, &wsb)
        with nogil:
            if floating is float:
                rc = fnn_snet_infer(<fnn_snet *>self._net, m, &X[0, 0], X.shape[1], in_map, &out[0, 0],
                                    out.shape[1], ws, wsb, n_threads)
            else:
                rc = fnn_dnet_infer(<fnn_dnet *>self._net, m, &X[0, 0], X.shape[1], in_map, &out[0, 0],
                                    out.shape[1], ws, wsb, n_threads)
        _check_status(rc, "infer")

    def evaluate(self, const floating[:, ::1] X, const int32_t[::1] labels,
                 const floating[:, ::1] Y, int n_threads, const double[::1] x_mean=None,
                 const double[::1] x_scale=None):
        """Inference loss and errors on X over a workspace of this call's own (safe from many
        threads at once), X standardised as in infer; returns (loss, n_errors)."""
        cdef fnn_input_map map
        cdef fnn_input_map *in_map
        cdef fnn_pass_result res
        cdef const int32_t *pl = &labels[0] if labels is not None and labels.shape[0] > 0 else NULL
        cdef const floating *py = &Y[0, 0] if Y is not None and Y.shape[0] > 0 else NULL
        cdef Py_ssize_t ldy = Y.shape[1] if Y is not None else 0
        cdef int m = X.shape[0]
        cdef int rc
        cdef size_t wsb
        cdef char *ws
        self._check(floating is double, m, X.shape[1], 2147483647, "evaluate")
        self._input_map(x_mean, x_scale, &map, &in_map)
        self._check_targets(m, labels, Y.shape[0] if Y is not None else 0, ldy, Y is not None)
        if m == 0:
            return 0.0, 0
        keep = []
        ws = self._infer_ws(floating is double, m, n_threads, True, keep, &wsb)
        with nogil:
            if floating is float:
                rc = fnn_snet_evaluate(<fnn_snet *>self._net, m, &X[0, 0], X.shape[1], in_map, pl, py,
                                       ldy, ws, wsb, n_threads, &res)
            else:
                rc = fnn_dnet_evaluate(<fnn_dnet *>self._net, m, &X[0, 0], X.shape[1], in_map, pl, py,
                                       ldy, ws, wsb, n_threads, &res)
        _check_status(rc, "evaluate")
        return res.loss, res.n_errors

    def loss_grad(self, const floating[:, ::1] X, const int32_t[::1] labels,
                  const floating[:, ::1] Y, bint training, uint64_t seed, uint64_t step,
                  double l2_coef, int n_threads):
        """Forward + loss + backward into `grads`; returns (loss, sum_w2, n_errors)."""
        cdef fnn_pass_result res
        cdef const int32_t *pl = &labels[0] if labels is not None and labels.shape[0] > 0 else NULL
        cdef const floating *py = &Y[0, 0] if Y is not None and Y.shape[0] > 0 else NULL
        cdef Py_ssize_t ldy = Y.shape[1] if Y is not None else 0
        cdef int m = X.shape[0]
        cdef int rc
        self._check(floating is double, m, X.shape[1], self.max_rows, "loss_grad")
        self._check_targets(m, labels, Y.shape[0] if Y is not None else 0, ldy, Y is not None)
        if m == 0:
            raise ValueError("loss_grad: X has no rows")
        with nogil:
            if floating is float:
                rc = fnn_snet_loss_grad(<fnn_snet *>self._net, m, &X[0, 0], X.shape[1], pl, py,
                                        ldy, training, seed, step, l2_coef, n_threads, &res)
            else:
                rc = fnn_dnet_loss_grad(<fnn_dnet *>self._net, m, &X[0, 0], X.shape[1], pl, py,
                                        ldy, training, seed, step, l2_coef, n_threads, &res)
        _check_status(rc, "loss_grad")
        return res.loss, res.sum_w2, res.n_errors

    def train_steps(self, const int64_t[::1] idx, int bs, const floating[:, ::1] X,
                    const int32_t[::1] labels, const floating[:, ::1] Y,
                    uint64_t seed, uint64_t step0, double l2_coef,
                    int kind, double lr, double beta1, double beta2, double eps,
                    double weight_decay, int64_t t0,
                    floating[::1] v, floating[::1] s, int n_threads, fnn_pass_result[::1] out):
        """Consecutive steps over the rows idx of X in batches of bs, each updating the net's
        params by the optimizer `kind` with state v, s; out[k] gets step k's result.  Returns the
        number of steps run (fewer when a loss was not finite)."""
        cdef fnn_optim_params op = _optim_params(kind, lr, beta1, beta2, eps, weight_decay, t0)
        cdef const int32_t *pl = &labels[0] if labels is not None and labels.shape[0] > 0 else NULL
        cdef const floating *py = &Y[0, 0] if Y is not None and Y.shape[0] > 0 else NULL
        cdef Py_ssize_t ldy = Y.shape[1] if Y is not None else 0
        cdef floating *pv = &v[0] if v is not None and v.shape[0] > 0 else NULL
        cdef floating *ps = &s[0] if s is not None and s.shape[0] > 0 else NULL
        cdef int64_t count = idx.shape[0]
        cdef int64_t n_rows = X.shape[0]
        cdef int done = 0
        cdef int rc
        self._check(floating is double, 0, X.shape[1], self.max_rows, "train_steps")
        if bs < 1 or bs > self.max_rows:
            raise ValueError(f"train_steps: bs must lie in [1, {self.max_rows}], got {bs}")
        self._check_targets(n_rows, labels, Y.shape[0] if Y is not None else 0, ldy, Y is not None)
        _check_optim(kind, self.n_params, None, v, s)
        if count == 0:
            return 0
        if out.shape[0] < (count + bs - 1) // bs:
            raise ValueError("out must hold one result per step")
        with nogil:
            if floating is float:
                rc = fnn_snet_train_steps(<fnn_snet *>self._net, count, bs, &idx[0], &X[0, 0],
                                          n_rows, X.shape[1], pl, py, ldy, seed, step0, l2_coef,
                                          &op, pv, ps, n_threads, &out[0], &done)
            else:
                rc = fnn_dnet_train_steps(<fnn_dnet *>self._net, count, bs, &idx[0], &X[0, 0],
                                          n_rows, X.shape[1], pl, py, ldy, seed, step0, l2_coef,
                                          &op, pv, ps, n_threads, &out[0], &done)
        _check_status(rc, "train_steps")
        return done


cdef void *_make_net(layers, int loss, floating[::1] params, floating[::1] grads,
                     floating[::1] buffers, int max_rows, int max_threads, int *status):
    cdef int L = layers.shape[0]
    cdef fnn_layer_spec *tab = <fnn_layer_spec *>malloc(sizeof(fnn_layer_spec) * L)
    cdef void *net
    cdef floating *pb = &buffers[0] if buffers.shape[0] > 0 else NULL
    cdef floating *pp = &params[0] if params.shape[0] > 0 else NULL
    cdef floating *pg = &grads[0] if grads.shape[0] > 0 else NULL
    cdef Py_ssize_t n_params = params.shape[0], n_buffers = buffers.shape[0]
    if tab == NULL:
        status[0] = FNN_ENOMEM
        return NULL
    try:
        for l in range(L):
            row = layers[l]
            tab[l].n_in, tab[l].n_out = row["n_in"], row["n_out"]
            tab[l].act = <fnn_act><int>row["act"]
            tab[l].keep_prob, tab[l].batch_norm = row["keep_prob"], row["batch_norm"]
            tab[l].bn_momentum = row["bn_momentum"]
            tab[l].W, tab[l].b = row["W"], row["b"]
            tab[l].gamma, tab[l].beta = row["gamma"], row["beta"]
            tab[l].running_mean, tab[l].running_var = row["running_mean"], row["running_var"]
    except BaseException:
        free(tab)
        raise
    with nogil:
        if floating is float:
            net = fnn_snet_create(L, tab, <fnn_loss>loss, pp, n_params, pg, pb, n_buffers,
                                  max_rows, max_threads, status)
        else:
            net = fnn_dnet_create(L, tab, <fnn_loss>loss, pp, n_params, pg, pb, n_buffers,
                                  max_rows, max_threads, status)
    free(tab)
    return net
