/* fastnn.h -- the contract of fastnn's C kernels.
 *
 * Design: three layers, one direction.  These C99 kernels know nothing of Python: raw pointers,
 * explicit row strides, caller-supplied output buffers, an explicit thread count.  The Cython
 * layer (fastnn/_core.pyx) converts arrays to pointers and releases the GIL; the Python layer
 * validates every argument before anything here runs, so the kernels trust their inputs.
 *
 * Every kernel exists for float32 (letter `s`) and float64 (letter `d`).  The `s` prototype
 * carries the documentation; the `d` one is the same with double.
 *
 * Layout: all matrices are row-major.  `X` is (m, n_in), `W` is (n_in, n_out), `Z`, `A` are
 * (m, n_out).  `ld*` is a row stride in elements.  `m` is the number of rows of the mini-batch.
 *
 * Threads: every kernel with an `n_threads` argument runs on at most that many OpenMP threads
 * (1 without OpenMP) and never splits a reduction over k or over rows in a way that depends on
 * n_threads, so its results are bit-identical for any thread count.
 */
#ifndef FASTNN_H
#define FASTNN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- status codes ------------------------------------------------------------------------
 * Entry points that check their arguments return one of these (0 on success).  They check what
 * they cannot trust the caller to have got right: sizes against the buffers they were given. */
#define FNN_OK 0
#define FNN_EINVAL (-1)      /* an argument out of range, or sizes that disagree */
#define FNN_EWORKSPACE (-2)  /* the workspace is too small or not 64-byte aligned */
#define FNN_ENOMEM (-3)      /* out of memory */

/* ---- tables ------------------------------------------------------------------------------ */

/* Activations.  The value is stored in model files: never renumber. */
typedef enum {
    FNN_LINEAR = 0,
    FNN_RELU = 1,
    FNN_LEAKY_RELU = 2, /* slope 0.01 for z < 0 */
    FNN_TANH = 3,
    FNN_SIGMOID = 4,
    FNN_SOFTMAX = 5     /* output layer only; row-wise */
} fnn_act;

/* Losses, chosen by the output activation: softmax -> cross-entropy, sigmoid -> binary
 * cross-entropy, linear -> mean squared error. */
typedef enum { FNN_LOSS_XENT = 0, FNN_LOSS_BCE = 1, FNN_LOSS_MSE = 2 } fnn_loss;

/* Optimizers. */
typedef enum { FNN_SGD = 0, FNN_MOMENTUM = 1, FNN_RMSPROP = 2, FNN_ADAM = 3, FNN_ADAMW = 4 } fnn_optim;

#define FNN_LEAKY_SLOPE 0.01
#define FNN_BN_EPS 1e-5     /* batch-norm epsilon */

/* ---- build / threads (threads.c) ---------------------------------------------------------- */

int fnn_has_openmp(void);          /* 1 when compiled with OpenMP */
int fnn_omp_max_threads(void);     /* omp_get_max_threads(), 1 without OpenMP */
/* The file of the OpenMP runtime this library calls (the loaded shared object that defines
 * omp_get_max_threads), NUL-terminated in out[0..size).  Returns 0, or -1 when it cannot be told:
 * no OpenMP, a runtime linked statically, a platform without a way to ask, or size too small. */
int fnn_openmp_runtime_path(char *out, size_t size);
const char *fnn_gemm_kernel_name(void); /* the GEMM micro-kernel table in use: "generic",
                                           "avx2-fma" or "avx512" */
int fnn_gemm_tile(int isa, int dtype_size, int *mr, int *nr, int *kc, int *mc, int *nc);
                                   /* the blocking of an ISA's GEMM (elements); FNN_EINVAL for an
                                      ISA not compiled or a dtype_size other than 4 or 8 */

/* ---- instruction sets (cpu.c) ---------------------------------------------------------------
 *
 * The kernels with variants per instruction set (GEMM micro-kernels and packers, the dropout
 * masks and fused dropout forward, the optimizer pass) are each ONE source compiled per target
 * with function attributes (gemm_ukr_impl.h, dropout_impl.h, optim_impl.h), and picked at run
 * time from fnn_isa_active() (GEMM and dropout through a table indexed by the ISA):
 *   FNN_ISA_GENERIC  portable C (any CPU; the only one off x86)
 *   FNN_ISA_AVX2     x86-64-v3: AVX2 + FMA
 *   FNN_ISA_AVX512   x86-64-v4: AVX-512 F/BW/DQ/VL, with the OS saving the zmm state
 * Every variant gives the same bits as every other: a GEMM element is one running sum over p in
 * increasing order with one fused multiply-add per p (fmaf/fma in the generic code); the
 * optimizer uses the same IEEE operations in the same order (division and sqrt are correctly
 * rounded everywhere); a dropout mask is a function of its counter, and the fused forward applies
 * one IEEE multiply per kept element in every variant.  Elementwise epilogues,
 * activations, losses and batch norm are compiled once, for the baseline, and shared.
 *
 * The ISA in use is chosen once per process at first use: FASTNN_ISA=generic|avx2|avx512, or
 * the best the CPU runs; a request the CPU or the build cannot honour falls back to the best
 * available (fnn_isa_requested() keeps the request so that callers can report it).
 * FASTNN_GEMM_KERNEL=generic is read as FASTNN_ISA=generic.  fnn_isa_set switches in-process
 * (tests); a call that is running keeps the variant it started with.
 */
typedef enum { FNN_ISA_GENERIC = 0, FNN_ISA_AVX2 = 1, FNN_ISA_AVX512 = 2, FNN_ISA_COUNT = 3 } fnn_isa;

const char *fnn_isa_name(int isa);       /* "generic", "avx2", "avx512"; NULL out of range */
int fnn_isa_from_name(const char *name); /* the fnn_isa of a name, FNN_EINVAL if none */
int fnn_isa_compiled(int isa);           /* 1 when this build has the ISA's kernels */
int fnn_isa_supported(int isa);          /* 1 when compiled and this CPU and OS run it */
int fnn_isa_best(void);                  /* the best supported */
int fnn_isa_active(void);                /* the one in use */
int fnn_isa_requested(void);             /* FASTNN_ISA's request: an fnn_isa, FNN_ISA_COUNT for
                                            an unknown name, -1 when unset */
int fnn_isa_set(int isa);                /* use isa from now on; returns the previous one, or
                                            FNN_EINVAL (nothing changed) when not supported */

/* ---- floating point ------------------------------------------------------------------------
 * The network's entry points (fnn_?net_forward, _infer, _evaluate, _loss_grad, _train_steps) run
 * with subnormal inputs and results flushed to zero (x86: MXCSR FTZ and DAZ; aarch64: FPCR.FZ),
 * as TensorFlow runs its CPU kernels: an operation on a subnormal costs about 100 cycles on Intel
 * cores.  The mode is set on every thread of every OpenMP team the call starts and each thread's
 * own mode is restored on exit: the caller's floating-point state is left as it was (and the
 * team is started in the caller's mode first, since a new worker inherits its starter's).  The single
 * kernels run in the caller's mode, which each parallel region hands to its team.
 * fnn_fp_status() is the calling thread's MXCSR (x86), FPCR (aarch64), else 0. */
unsigned fnn_fp_status(void);
int fnn_team_fp_modes(int n_threads, unsigned *out);  /* tests: each team thread's flush bits */

/* ---- GEMM (gemm.c) ------------------------------------------------------------------------
 *
 * C[i,j] = sum_p A(i,p) * B(p,j)            0 <= i < m, 0 <= j < n, 0 <= p < k
 *
 * A(i,p) is A[i*rsa + p*csa] and B(p,j) is B[p*rsb + j*csb] (general strides: a transposed
 * operand is the same matrix with its strides swapped); C is row-major with row stride ldc and is
 * written, never read.  k == 0 gives C = 0.
 *
 * Epilogue: when `ep` is not NULL, each block of C is handed to ep(ctx, Cblock, ldc, i0, j0, mb,
 * nb) exactly once, by the thread that computed it, right after its final value is stored (while
 * it is in cache); Cblock = C + i0*ldc + j0.  The blocks partition C.  The epilogue may modify
 * the block in place.
 *
 * Work is split over blocks of C, never over k: bit-identical for any n_threads.
 * ws: ws_bytes of scratch, 64-byte aligned, not shared with a concurrent call; the call allocates
 * nothing.  fnn_gemm_ws_size(m, n, k, n_threads, sizeof(elem)) bytes serve every call with at most
 * m rows, n columns, depth k and n_threads threads (a workspace sized once for the largest
 * mini-batch serves the smaller last one).  Returns FNN_OK, FNN_EINVAL for negative sizes, or
 * FNN_EWORKSPACE (nothing computed) when ws is smaller than this call needs or misaligned.
 */
typedef void (*fnn_sepilogue)(void *ctx, float *Cblock, ptrdiff_t ldc, int i0, int j0, int mb, int nb);
typedef void (*fnn_depilogue)(void *ctx, double *Cblock, ptrdiff_t ldc, int i0, int j0, int mb, int nb);

size_t fnn_gemm_ws_size(int m, int n, int k, int n_threads, size_t elem_size);

int fnn_sgemm(int m, int n, int k,
              const float *A, ptrdiff_t rsa, ptrdiff_t csa,
              const float *B, ptrdiff_t rsb, ptrdiff_t csb,
              float *C, ptrdiff_t ldc,
              fnn_sepilogue ep, void *ep_ctx, void *ws, size_t ws_bytes, int n_threads);
int fnn_dgemm(int m, int n, int k,
              const double *A, ptrdiff_t rsa, ptrdiff_t csa,
              const double *B, ptrdiff_t rsb, ptrdiff_t csb,
              double *C, ptrdiff_t ldc,
              fnn_depilogue ep, void *ep_ctx, void *ws, size_t ws_bytes, int n_threads);

/* ---- GEMM against a packed B (gemm.c) -----------------------------------------------------
 *
 * For a chain of products that reuses each B many times (inference streams row blocks of X
 * through every layer's weights), B is packed once and each product then packs only its block of
 * A.  The packed layout belongs to one instruction set: `isa` (an fnn_isa the build compiled,
 * normally fnn_isa_active() read once by the caller) must be the same for the pack and the
 * products that use it.
 *
 * fnn_gemm_packed_b_size(k, n, elem_size): bytes of a packed k x n B, the most over every
 *   compiled ISA (64-byte multiple).
 * fnn_?gemm_pack_b(isa, k, n, B, rsb, csb, Bp, part, n_parts): pack part `part` of `n_parts`
 *   (a share of B's column panels) into Bp (64-byte aligned); the parts of 0..n_parts-1 together
 *   pack all of B, each writing its own bytes, so a team may pack in parallel.
 * fnn_gemm_packed_ws_size(m, k, elem_size): bytes of ws for a product of up to m rows, depth k.
 * fnn_?gemm_packed(isa, m, n, k, A, rsa, csa, Bp, C, ldc, ep, ctx, ws, ws_bytes): C = A B on the
 *   calling thread, B as packed by pack_b with the same isa, k and n; the epilogue gets C's row
 *   blocks (full width, i0 relative to this call).  Same bits as fnn_?gemm.  Returns FNN_OK,
 *   FNN_EINVAL, or FNN_EWORKSPACE.
 * fnn_?gemm_b_in_place(isa, m, n, k, A, rsa, csa, B, rsb, C, ldc, ep, ctx, ws, ws_bytes): the
 *   same with B unpacked (row stride rsb >= n, columns contiguous), for products of few rows
 *   where packing B would cost more than reading it where it is; ws as for gemm_packed. */
size_t fnn_gemm_packed_b_size(int k, int n, size_t elem_size);
int fnn_sgemm_b_in_place(int isa, int m, int n, int k, const float *A, ptrdiff_t rsa,
                         ptrdiff_t csa, const float *B, ptrdiff_t rsb, float *C, ptrdiff_t ldc,
                         fnn_sepilogue ep, void *ep_ctx, void *ws, size_t ws_bytes);
int fnn_dgemm_b_in_place(int isa, int m, int n, int k, const double *A, ptrdiff_t rsa,
                         ptrdiff_t csa, const double *B, ptrdiff_t rsb, double *C, ptrdiff_t ldc,
                         fnn_depilogue ep, void *ep_ctx, void *ws, size_t ws_bytes);
size_t fnn_gemm_packed_ws_size(int m, int k, size_t elem_size);
int fnn_sgemm_pack_b(int isa, int k, int n, const float *B, ptrdiff_t rsb, ptrdiff_t csb,
                     float *Bp, int part, int n_parts);
int fnn_dgemm_pack_b(int isa, int k, int n, const double *B, ptrdiff_t rsb, ptrdiff_t csb,
                     double *Bp, int part, int n_parts);
int fnn_sgemm_packed(int isa, int m, int n, int k, const float *A, ptrdiff_t rsa, ptrdiff_t csa,
                     const float *Bp, float *C, ptrdiff_t ldc, fnn_sepilogue ep, void *ep_ctx,
                     void *ws, size_t ws_bytes);
int fnn_dgemm_packed(int isa, int m, int n, int k, const double *A, ptrdiff_t rsa, ptrdiff_t csa,
                     const double *Bp, double *C, ptrdiff_t ldc, fnn_depilogue ep, void *ep_ctx,
                     void *ws, size_t ws_bytes);

/* ---- activations (activations.c) ---------------------------------------------------------
 *
 * fnn_sact_forward:   x[i] = g(x[i]) for i < count, in place (not for softmax).
 * fnn_sact_backward:  dA[i] *= g'(.) written from the activation's OUTPUT a = g(z):
 *                     relu: a > 0; leaky: a > 0 ? 1 : 0.01; tanh: 1 - a^2; sigmoid: a (1 - a);
 *                     linear: 1.  (not for softmax: its gradient comes with the loss)
 */
void fnn_sact_forward(fnn_act act, float *x, ptrdiff_t count);
void fnn_dact_forward(fnn_act act, double *x, ptrdiff_t count);
void fnn_sact_backward(fnn_act act, const float *a, float *dA, ptrdiff_t count);
void fnn_dact_backward(fnn_act act, const double *a, double *dA, ptrdiff_t count);

/* ---- output layer: probabilities and losses from logits (loss.c) -------------------------
 *
 * fnn_ssoftmax_rows:  P[i,:] = softmax(Z[i,:]) computed stably (max subtracted); P may alias Z.
 * fnn_sloss_grad:     given logits Z (m, n) and targets, returns the SUM over the batch of the
 *                     per-example loss (double accumulation, rows reduced in a fixed order) and,
 *                     if dZ != NULL, writes dZ = scale * dLoss_sum/dZ:
 *   XENT (softmax):  loss_i = logsumexp(Z[i,:]) - Z[i, y_i];       dZ = scale*(softmax(Z) - onehot(y))
 *                    targets: `labels` (int32, values in [0, n)); `Y` unused.
 *   BCE (sigmoid):   per element  max(z,0) - z*y + log1p(exp(-|z|));  dZ = scale*(sigmoid(z) - y)
 *                    targets: `Y` (m, n) of 0/1 in the model dtype; `labels` unused.
 *   MSE (linear):    per element  (z - y)^2;                       dZ = scale*2*(z - y)
 *                    targets: `Y` (m, n); `labels` unused.
 *   dZ may alias Z.  ldz, ldy are row strides of Z/dZ and Y.
 * The mean losses are sum/m (XENT) and sum/(m*n) (BCE, MSE): the caller divides and
 * passes scale = 1/m or 1/(m*n) accordingly.
 */
void fnn_ssoftmax_rows(int m, int n, const float *Z, ptrdiff_t ldz, float *P, ptrdiff_t ldp);
void fnn_dsoftmax_rows(int m, int n, const double *Z, ptrdiff_t ldz, double *P, ptrdiff_t ldp);
double fnn_sloss_grad(fnn_loss loss, int m, int n, const float *Z, ptrdiff_t ldz,
                      const int32_t *labels, const float *Y, ptrdiff_t ldy,
                      float *dZ, float scale);
double fnn_dloss_grad(fnn_loss loss, int m, int n, const double *Z, ptrdiff_t ldz,
                      const int32_t *labels, const double *Y, ptrdiff_t ldy,
                      double *dZ, double scale);

/* ---- dropout (dropout.c) -----------------------------------------------------------------
 *
 * Philox4x32-10 (Salmon et al., SC11): fnn_philox4x32(ctr, key, out).  Known answer: ctr = 0,
 * key = 0 -> 6627e8d5 e169c58d bc57ac4c 9b00dbd8.
 *
 * Element e (0-based, row-major index in the (m, n_out) activation of one step) of layer `layer`
 * at training step `step` is kept iff  u32(e) < threshold,  where u32(e) is word (e % 4) of
 * philox(ctr = {(e/4) low 32 bits, (e/4) high 32 bits, layer, step low 32 bits}, key = {seed low,
 * seed high}), and threshold = fnn_keep_threshold(keep_prob).  Counter-based: a mask depends only on
 * (seed, step, layer, e), never on the thread count or on how the range is split.
 *
 * fnn_dropout_mask: mask[i] = kept(e0 + i) for i < count (1 kept, 0 dropped).
 * fnn_sdropout_apply: for i < count: x[i] = mask[i] ? x[i] * inv_keep : 0.
 * fnn_sdropout_forward: both in one pass, the mask words applied while in registers: for i < count,
 *   k = kept(e0 + i);  x[i] = k ? x[i] * inv_keep : +0;  mask[i] = k when mask != NULL (the mask
 *   for the backward pass; NULL: not stored).  Bit-identical to fnn_dropout_mask followed by
 *   fnn_sdropout_apply (every ISA's path alike).  Parallel over n_threads from 16384
 *   elements, in ranges whose bounds are multiples of 64 in e: bit-identical for any n_threads.
 */
void fnn_philox4x32(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);
uint32_t fnn_keep_threshold(double keep_prob); /* floor(keep_prob * 2^32), keep_prob in (0, 1) */
void fnn_dropout_mask(uint64_t seed, uint64_t step, uint32_t layer, int64_t e0, ptrdiff_t count,
                      uint32_t threshold, uint8_t *mask);
void fnn_sdropout_apply(float *x, const uint8_t *mask, ptrdiff_t count, float inv_keep);
void fnn_ddropout_apply(double *x, const uint8_t *mask, ptrdiff_t count, double inv_keep);
void fnn_sdropout_forward(uint64_t seed, uint64_t step, uint32_t layer, int64_t e0,
                          ptrdiff_t count, uint32_t threshold, float inv_keep, float *x,
                          uint8_t *mask, int n_threads);
void fnn_ddropout_forward(uint64_t seed, uint64_t step, uint32_t layer, int64_t e0,
                          ptrdiff_t count, uint32_t threshold, double inv_keep, double *x,
                          uint8_t *mask, int n_threads);

/* ---- mini-batch gather (gather.c) ---------------------------------------------------------
 * out[r, :] = X[idx[r], :] for r < m;  X has n columns and row stride ldx; out is (m, n) dense. */
void fnn_sgather_rows(int m, int n, const float *X, ptrdiff_t ldx, const int64_t *idx, float *out);
void fnn_dgather_rows(int m, int n, const double *X, ptrdiff_t ldx, const int64_t *idx, double *out);
void fnn_igather(int m, const int32_t *y, const int64_t *idx, int32_t *out);

/* ---- optimizers over flat buffers (optim.c) -----------------------------------------------
 *
 * One fused in-place pass over `count` parameters p with gradients g; state arrays v, s have
 * the same length; t >= 1 is the step number (after increment).  Parallel over elements.
 *   SGD:      p -= lr*g
 *   MOMENTUM: v = b1*v + (1-b1)*g;  p -= lr*v
 *   RMSPROP:  s = b2*s + (1-b2)*g^2;  p -= lr*g/(sqrt(s)+eps)
 *   ADAM:     v = b1*v + (1-b1)*g;  s = b2*s + (1-b2)*g^2;
 *             p -= (lr/(1-b1^t)) * v / (sqrt(s)/sqrt(1-b2^t) + eps)      (torch.optim.Adam's order)
 *   ADAMW:    p *= 1 - lr*wd, then ADAM                                 (torch.optim.AdamW)
 * Unused state pointers may be NULL.  Bias corrections are computed in double.
 */
typedef struct {
    fnn_optim kind;
    double lr, beta1, beta2, eps, weight_decay;
    int64_t t;
} fnn_optim_params;

void fnn_soptim_step(const fnn_optim_params *op, ptrdiff_t count, float *p, const float *g,
                     float *v, float *s, int n_threads);
void fnn_doptim_step(const fnn_optim_params *op, ptrdiff_t count, double *p, const double *g,
                     double *v, double *s, int n_threads);

/* ---- batch norm (batchnorm.c) ------------------------------------------------------------
 *
 * Over a mini-batch Z (m, n), m >= 1, whose columns are features (Z = X @ W, no bias); eps is
 * 1e-5 in fastnn; gamma, beta and the statistics are (n,).  Column sums run in double, rows in
 * order, one thread per column: bit-identical for any n_threads.
 *
 * fnn_sbatchnorm_forward_train:
 *   mu = mean_i Z[i,:];  var = mean_i (Z[i,:] - mu)^2 (biased; two passes, never E[z^2]-E[z]^2);
 *   rstd = 1/sqrt(var + eps);  Zhat = (Z - mu) * rstd;  Zt = gamma * Zhat + beta;
 *   running_mean = momentum * running_mean + (1 - momentum) * mu;
 *   running_var  = momentum * running_var  + (1 - momentum) * var * m/(m-1)   (unbiased, as
 *   PyTorch; m == 1, where PyTorch raises, takes the biased var = 0).  momentum is fastnn's
 *   bn_momentum (0.9; PyTorch's momentum=0.1 is 1 - momentum).
 *   Outputs Zhat (row stride ldh) and Zt (ldt); either may alias Z (same stride), not each other.
 *   mu and var may be NULL; rstd may not (backward needs it).  running_mean/running_var are
 *   updated in place, or left alone when NULL.
 * fnn_sbatchnorm_backward, from dY = dLoss/dZt (after the activation derivative):
 *   dbeta = sum_i dY[i,:];  dgamma = sum_i dY[i,:] * Zhat[i,:];
 *   dZ = gamma * rstd / m * (m * dY - dbeta - Zhat * dgamma);  dZ may alias dY (same stride).
 *   dgamma and dbeta are written, not accumulated.
 */
void fnn_sbatchnorm_forward_train(int m, int n, const float *Z, ptrdiff_t ldz,
                                  const float *gamma, const float *beta, double eps,
                                  double momentum, float *Zhat, ptrdiff_t ldh, float *Zt,
                                  ptrdiff_t ldt, float *mu, float *var, float *rstd,
                                  float *running_mean, float *running_var, int n_threads);
void fnn_dbatchnorm_forward_train(int m, int n, const double *Z, ptrdiff_t ldz,
                                  const double *gamma, const double *beta, double eps,
                                  double momentum, double *Zhat, ptrdiff_t ldh, double *Zt,
                                  ptrdiff_t ldt, double *mu, double *var, double *rstd,
                                  double *running_mean, double *running_var, int n_threads);
void fnn_sbatchnorm_backward(int m, int n, const float *dY, ptrdiff_t ldy,
                             const float *Zhat, ptrdiff_t ldh, const float *gamma,
                             const float *rstd, float *dgamma, float *dbeta,
                             float *dZ, ptrdiff_t lddz, int n_threads);
void fnn_dbatchnorm_backward(int m, int n, const double *dY, ptrdiff_t ldy,
                             const double *Zhat, ptrdiff_t ldh, const double *gamma,
                             const double *rstd, double *dgamma, double *dbeta,
                             double *dZ, ptrdiff_t lddz, int n_threads);

/* ---- the network (net.c) ------------------------------------------------------------------
 *
 * A network is a chain of dense layers whose trainable arrays live in ONE flat parameter buffer
 * and ONE flat gradient buffer (so one optimizer call updates everything); a layer holds pointers
 * into them.  Layer l, with A_prev the previous layer's output (the input X for l = 0):
 *   forward   Z = A_prev @ W + b            (batch norm: Z = BN(A_prev @ W), no b)
 *             A = g(Z) * mask / keep_prob   (mask only in training, keep_prob < 1)
 *   backward  dZ = dA * mask / keep_prob * g'(A)       (derivative from the output A)
 *             dW = A_prev^T dZ + l2_coef * W;  db = sum_rows dZ;  dA_prev = dZ W^T
 * The output layer keeps its logits; its probabilities and loss come from loss.c.  One fused
 * kernel per layer: bias, activation and dropout are the GEMM epilogue, applied to each block
 * of Z while it is in cache; the activation derivative and the dropout mask of layer l-1 are
 * the epilogue of the dA_prev GEMM of layer l.
 *
 * fnn_snet_create builds the net from a dtype-neutral layer table whose arrays are given as
 * offsets (in elements) into the caller's flat buffers `params` (W, b, gamma, beta; n_params
 * elements), `grads` (the same offsets and length) and `buffers` (running statistics; n_buffers
 * elements), -1 where a layer has no such array.  It checks the table (sizes that chain layer to
 * layer, enums in range, every array inside its buffer; *status = FNN_EINVAL and NULL otherwise)
 * and allocates the training workspace for batches of up to max_rows rows and up to max_threads
 * threads (*status = FNN_ENOMEM and NULL when out of memory); nothing is allocated afterwards.
 * The buffers stay the caller's and must outlive the net.
 *
 * Every entry point below checks its sizes against the net (rows against max_rows, row strides
 * against the layer widths, labels against the classes, row indices against X) and returns
 * FNN_EINVAL, having run nothing, when they disagree; else FNN_OK.  n_threads is clamped to
 * [1, max_threads].
 *
 * Threads: the training entry points (forward, loss_grad, train_steps) use the net's workspace:
 * one call at a time per net.  Inference (infer, evaluate) uses only a workspace of the caller's
 * and reads the net: any number of threads may run it on one net at once (not while a training
 * call changes the parameters).
 */
typedef struct {
    int n_in, n_out;
    fnn_act act;
    double keep_prob;          /* (0, 1]; 1.0: no dropout */
    int batch_norm;            /* 1: Z = BN(A_prev @ W), no bias */
    double bn_momentum;        /* [0, 1): running r = bn_momentum*r + (1-bn_momentum)*batch_stat */
    ptrdiff_t W, b, gamma, beta;          /* offsets into params and grads (b = -1 with BN) */
    ptrdiff_t running_mean, running_var;  /* offsets into buffers (BN only, else -1) */
} fnn_layer_spec;

/* What a forward/backward pass reports. */
typedef struct {
    double loss;      /* mean data loss over the batch (J without the L2 term) */
    double sum_w2;    /* sum over layers of ||W||^2 (computed when l2_coef != 0, else 0) */
    int64_t n_errors; /* misclassified rows (softmax) or elements (sigmoid); 0 for linear */
} fnn_pass_result;

typedef struct fnn_snet fnn_snet;
typedef struct fnn_dnet fnn_dnet;

fnn_snet *fnn_snet_create(int n_layers, const fnn_layer_spec *layers, fnn_loss loss,
                          float *params, ptrdiff_t n_params, float *grads, float *buffers,
                          ptrdiff_t n_buffers, int max_rows, int max_threads, int *status);
fnn_dnet *fnn_dnet_create(int n_layers, const fnn_layer_spec *layers, fnn_loss loss,
                          double *params, ptrdiff_t n_params, double *grads, double *buffers,
                          ptrdiff_t n_buffers, int max_rows, int max_threads, int *status);
void fnn_snet_free(fnn_snet *net);
void fnn_dnet_free(fnn_dnet *net);

/* Training-mode forward (or inference mode through the net's own workspace) on m <= max_rows
 * rows: out (m, n_out_last) = probabilities (softmax, sigmoid) or values (linear).  training = 1:
 * dropout masks of (seed, step) and batch statistics (running averages updated). */
int fnn_snet_forward(fnn_snet *net, int m, const float *X, ptrdiff_t ldx, int training,
                     uint64_t seed, uint64_t step, float *out, ptrdiff_t ldo, int n_threads);
int fnn_dnet_forward(fnn_dnet *net, int m, const double *X, ptrdiff_t ldx, int training,
                     uint64_t seed, uint64_t step, double *out, ptrdiff_t ldo, int n_threads);

/* Standardised inputs: the map x' = (T)(((double)x - mean[j]) / scale[j]) of column j (both
 * arrays of n_in_0 doubles), applied to each row block of X as the first layer reads it, with
 * the arithmetic of standardising in double and rounding once to the dtype.  NULL: X as given. */
typedef struct {
    const double *mean, *scale;
} fnn_input_map;

/* Inference on any number of rows m over the caller's workspace ws (64-byte aligned, at least
 * fnn_snet_infer_ws_size(net, m, n_threads) bytes, which also serves any m' <= m): out as in
 * forward, batch norm with the running statistics, no dropout.  FNN_EWORKSPACE when ws is too
 * small or misaligned. */
size_t fnn_snet_infer_ws_size(const fnn_snet *net, int m, int n_threads);
size_t fnn_dnet_infer_ws_size(const fnn_dnet *net, int m, int n_threads);
int fnn_snet_infer(const fnn_snet *net, int m, const float *X, ptrdiff_t ldx,
                   const fnn_input_map *in_map, float *out,
                   ptrdiff_t ldo, void *ws, size_t ws_bytes, int n_threads);
int fnn_dnet_infer(const fnn_dnet *net, int m, const double *X, ptrdiff_t ldx,
                   const fnn_input_map *in_map, double *out,
                   ptrdiff_t ldo, void *ws, size_t ws_bytes, int n_threads);

/* Inference loss and errors on m rows over the caller's workspace (as for infer, at least
 * fnn_snet_evaluate_ws_size(net, m, n_threads) bytes: infer's and the logits). */
size_t fnn_snet_evaluate_ws_size(const fnn_snet *net, int m, int n_threads);
size_t fnn_dnet_evaluate_ws_size(const fnn_dnet *net, int m, int n_threads);
int fnn_snet_evaluate(const fnn_snet *net, int m, const float *X, ptrdiff_t ldx,
                      const fnn_input_map *in_map,
                      const int32_t *labels, const float *Y, ptrdiff_t ldy, void *ws,
                      size_t ws_bytes, int n_threads, fnn_pass_result *res);
int fnn_dnet_evaluate(const fnn_dnet *net, int m, const double *X, ptrdiff_t ldx,
                      const fnn_input_map *in_map,
                      const int32_t *labels, const double *Y, ptrdiff_t ldy, void *ws,
                      size_t ws_bytes, int n_threads, fnn_pass_result *res);

/* Forward, loss and backward on 1 <= m <= max_rows rows; gradients land in the layers' dW, db,
 * dgamma, dbeta.  training = 1: dropout masks of (seed, step), batch statistics (running averages
 * updated); training = 0: no dropout, running statistics.  Targets as in fnn_sloss_grad. */
int fnn_snet_loss_grad(fnn_snet *net, int m, const float *X, ptrdiff_t ldx,
                       const int32_t *labels, const float *Y, ptrdiff_t ldy,
                       int training, uint64_t seed, uint64_t step, double l2_coef,
                       int n_threads, fnn_pass_result *res);
int fnn_dnet_loss_grad(fnn_dnet *net, int m, const double *X, ptrdiff_t ldx,
                       const int32_t *labels, const double *Y, ptrdiff_t ldy,
                       int training, uint64_t seed, uint64_t step, double l2_coef,
                       int n_threads, fnn_pass_result *res);

/* Consecutive training steps over the rows idx[0..count) of X (n_rows rows; labels and Y have a
 * row per row of X) (Python is re-entered between runs of steps, not between steps).  Step k
 * takes rows idx[k*bs .. min((k+1)*bs, count)) (the last batch may be smaller; 1 <= bs <=
 * max_rows), gathers them into the workspace, runs forward (training: dropout masks of (seed,
 * step0 + k)), loss and backward with dW += l2_coef*W, then the optimizer at step op->t + k over
 * the net's flat buffers params/grads with state v, s (n_params elements each; NULL where the
 * optimizer has no such state).  res[k] receives what step k reported; *n_done the number of
 * steps run.  A step whose loss is not finite updates nothing and ends the run, so the
 * parameters stay those of the last finite step. */
int fnn_snet_train_steps(fnn_snet *net, int64_t count, int bs, const int64_t *idx,
                         const float *X, int64_t n_rows, ptrdiff_t ldx,
                         const int32_t *labels, const float *Y, ptrdiff_t ldy,
                         uint64_t seed, uint64_t step0, double l2_coef,
                         const fnn_optim_params *op, float *v, float *s,
                         int n_threads, fnn_pass_result *res, int *n_done);
int fnn_dnet_train_steps(fnn_dnet *net, int64_t count, int bs, const int64_t *idx,
                         const double *X, int64_t n_rows, ptrdiff_t ldx,
                         const int32_t *labels, const double *Y, ptrdiff_t ldy,
                         uint64_t seed, uint64_t step0, double l2_coef,
                         const fnn_optim_params *op, double *v, double *s,
                         int n_threads, fnn_pass_result *res, int *n_done);

#ifdef __cplusplus
}
#endif
#endif /* FASTNN_H */
