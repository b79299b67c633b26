/* net_impl.h -- template body of net.c, compiled once per dtype through instantiate.h.  Not a
 * public header; see fastnn.h, "the network", for the contract.  T is the element type and
 * P(name) the dtype-lettered name, short for FNN_REAL and FNN_(name) in this long file. */
#define T FNN_REAL
#define P(name) FNN_(name)

void *fnn_aligned_alloc(size_t bytes);
void fnn_aligned_free(void *p);

/* A layer with its arrays resolved to pointers into the flat buffers. */
typedef struct {
    int n_in, n_out;
    fnn_act act;
    double keep_prob;
    int batch_norm;
    double bn_momentum;
    T *W, *b, *gamma, *beta;
    T *dW, *db, *dgamma, *dbeta;
    T *running_mean, *running_var;
} P(layer);

struct P(net) {
    int n_layers;
    fnn_loss loss;
    int max_rows, max_threads, max_width;
    T *params, *grads;             /* the caller's flat buffers ... */
    ptrdiff_t n_params, n_buffers; /* ... and their lengths, checked at create */
    P(layer) *layers;     /* the caller's table, resolved */
    T **A;                /* A[l]: (max_rows, n_out_l) output of layer l (logits for the last) */
    T **Zhat;             /* batch norm: normalised Z of layer l, else NULL */
    T **bn_stats;         /* batch norm: mean, var, rstd of layer l (3 * n_out), else NULL */
    uint8_t **mask;       /* dropout: (max_rows, n_out_l) keep mask of the step, else NULL */
    void *gemm_ws;        /* GEMM packing buffers, gemm_ws_bytes */
    size_t gemm_ws_bytes;
    T *D[2];              /* ping-pong gradient buffers (max_rows, max_width) */
    T *Xb;                /* gathered mini-batch rows (max_rows, n_in_0) */
    T *Yb;                /* gathered float targets (max_rows, n_out_last) */
    int32_t *labels_b;    /* gathered labels (max_rows) */
    void *block;          /* the one allocation behind all of the above */
};

/* ---- epilogues --------------------------------------------------------------------------- */

/* Forward of a layer on a block of Z: Z += b; A = g(Z); A *= mask/keep_prob (mask drawn here). */
typedef struct {
    const T *b;
    const T *bn_mean, *bn_r, *gamma, *beta;  /* batch norm at inference (bn_infer), else NULL */
    fnn_act act;
    uint8_t *mask;        /* NULL: no dropout */
    int n_out;
    uint64_t seed, step;
    uint32_t layer, threshold;
    T inv_keep;
} P(fwd_ctx);

static void P(fwd_epilogue)(void *vctx, T *C, ptrdiff_t ldc, int i0, int j0, int mb, int nb)
{
    const P(fwd_ctx) *ctx = (const P(fwd_ctx) *)vctx;
    for (int r = 0; r < mb; r++) {
        T *restrict c = C + (ptrdiff_t)r * ldc;
        if (ctx->b) {
            const T *restrict b = ctx->b + j0;
            for (int j = 0; j < nb; j++) c[j] += b[j];
        }
        if (ctx->bn_r) {  /* the same operations as bn_infer, in the same order */
            for (int j = 0; j < nb; j++) {
                const T h = (c[j] - ctx->bn_mean[j0 + j]) * ctx->bn_r[j0 + j];
                c[j] = ctx->gamma[j0 + j] * h + ctx->beta[j0 + j];
            }
        }
        if (ctx->act != FNN_LINEAR && ctx->act != FNN_SOFTMAX) P(act_forward)(ctx->act, c, nb);
        if (ctx->mask) {
            int64_t e0 = (int64_t)(i0 + r) * ctx->n_out + j0;
            uint8_t *mk = ctx->mask + e0;
            P(dropout_forward)(ctx->seed, ctx->step, ctx->layer, e0, nb, ctx->threshold,
                               ctx->inv_keep, c, mk, 1);
        }
    }
}

/* The forward epilogue over all m rows of Z, in row blocks over the threads (for batch-norm
 * layers, whose normalisation needs the whole batch before the activation).  Elementwise, so
 * the result does not depend on the thread count. */
static void P(rows_epilogue)(P(fwd_ctx) *ctx, T *Z, ptrdiff_t ldz, int m, int n, int n_threads)
{
    const int rows = 16;
    const int n_blocks = (m + rows - 1) / rows;
    if ((double)m * n < 32768.0) n_threads = 1;
    const unsigned fp_mode = fnn_fp_mode();
    FNN_PRAGMA(omp parallel num_threads(n_threads))
    {
        const unsigned fp_saved = fnn_fp_enter(fp_mode); /* the caller's FTZ/DAZ */
        FNN_PRAGMA(omp for schedule(static))
        for (int blk = 0; blk < n_blocks; blk++) {
            const int i0 = blk * rows, mb = m - i0 < rows ? m - i0 : rows;
            P(fwd_epilogue)(ctx, Z + (ptrdiff_t)i0 * ldz, ldz, i0, 0, mb, n);
        }
        fnn_fp_leave(fp_saved);
    }
    (void)n_threads;
}

/* Backward into layer l-1 on a block of dA_prev: dZ = dA * mask/keep_prob * g'(A).  A is the
 * dropped-out output, so where kept g(z) = A*keep_prob: A is rescaled in place (it is not read
 * again in this step) and the derivative taken from that output. */
typedef struct {
    T *A;                 /* output of layer l-1, row stride n */
    int n;
    fnn_act act;
    const uint8_t *mask;  /* NULL: no dropout */
    T keep, inv_keep;
} P(bwd_ctx);

static void P(bwd_epilogue)(void *vctx, T *C, ptrdiff_t ldc, int i0, int j0, int mb, int nb)
{
    const P(bwd_ctx) *ctx = (const P(bwd_ctx) *)vctx;
    for (int r = 0; r < mb; r++) {
        T *restrict c = C + (ptrdiff_t)r * ldc;
        ptrdiff_t off = (ptrdiff_t)(i0 + r) * ctx->n + j0;
        T *restrict a = ctx->A + off;
        if (ctx->mask)
            for (int j = 0; j < nb; j++) a[j] *= ctx->keep;
        P(act_backward)(ctx->act, a, c, nb);
        if (ctx->mask) P(dropout_apply)(c, ctx->mask + off, nb, ctx->inv_keep);
    }
}

/* dW block += l2_coef * W block. */
typedef struct {
    const T *W;
    int n_out;
    T coef;
} P(l2_ctx);

static void P(l2_epilogue)(void *vctx, T *C, ptrdiff_t ldc, int i0, int j0, int mb, int nb)
{
    const P(l2_ctx) *ctx = (const P(l2_ctx) *)vctx;
    for (int r = 0; r < mb; r++) {
        T *restrict c = C + (ptrdiff_t)r * ldc;
        const T *restrict w = ctx->W + (ptrdiff_t)(i0 + r) * ctx->n_out + j0;
        for (int j = 0; j < nb; j++) c[j] += ctx->coef * w[j];
    }
}

/* ---- create / free ----------------------------------------------------------------------- */

static size_t P(take)(size_t *off, size_t bytes)
{
    size_t at = *off;
    *off += (bytes + 63) & ~(size_t)63;
    return at;
}

/* Everything create checks of the layer table: sizes that chain, enums in range, and every
 * array inside the caller's buffers.  Returns FNN_OK or FNN_EINVAL. */
static int P(check_spec)(int L, const fnn_layer_spec *layers, fnn_loss loss, ptrdiff_t n_params,
                         ptrdiff_t n_buffers)
{
    if (L < 1 || (unsigned)loss > FNN_LOSS_MSE) return FNN_EINVAL;
    for (int l = 0; l < L; l++) {
        const fnn_layer_spec *ly = &layers[l];
        const ptrdiff_t n_in = ly->n_in, n_out = ly->n_out;
        if (n_in < 1 || n_out < 1 || (l > 0 && n_in != layers[l - 1].n_out)) return FNN_EINVAL;
        if ((unsigned)ly->act > FNN_SOFTMAX || (ly->act == FNN_SOFTMAX && l != L - 1))
            return FNN_EINVAL;
        if (!(ly->keep_prob > 0.0 && ly->keep_prob <= 1.0)) return FNN_EINVAL;
        if (!(ly->bn_momentum >= 0.0 && ly->bn_momentum < 1.0)) return FNN_EINVAL;
        /* (offset, length, buffer length): each array present lies inside its buffer */
        const ptrdiff_t arrays[6][3] = {
            {ly->W, n_in * n_out, n_params},  {ly->b, n_out, n_params},
            {ly->gamma, n_out, n_params},     {ly->beta, n_out, n_params},
            {ly->running_mean, n_out, n_buffers}, {ly->running_var, n_out, n_buffers}};
        for (int a = 0; a < 6; a++) {
            const ptrdiff_t off = arrays[a][0], len = arrays[a][1], cap = arrays[a][2];
            if (off < -1 || (off >= 0 && (off > cap || len > cap - off))) return FNN_EINVAL;
        }
        if (ly->W < 0) return FNN_EINVAL;
        if (ly->batch_norm ? (ly->gamma < 0 || ly->beta < 0 || ly->running_mean < 0 ||
                              ly->running_var < 0 || ly->b >= 0)
                           : ly->b < 0)
            return FNN_EINVAL;
    }
    return FNN_OK;
}

/* Bytes of GEMM workspace for every product of a step on up to `rows` rows. */
static size_t P(gemm_ws_for)(int L, const fnn_layer_spec *layers, int rows, int n_threads)
{
    size_t ws = 0, w;
    for (int l = 0; l < L; l++) {
        const fnn_layer_spec *ly = &layers[l];
        w = fnn_gemm_ws_size(rows, ly->n_out, ly->n_in, n_threads, sizeof(T));   /* Z = A W */
        if (w > ws) ws = w;
        w = fnn_gemm_ws_size(ly->n_in, ly->n_out, rows, n_threads, sizeof(T));   /* dW */
        if (w > ws) ws = w;
        w = fnn_gemm_ws_size(rows, ly->n_in, ly->n_out, n_threads, sizeof(T));   /* dA_prev */
        if (w > ws) ws = w;
    }
    return ws;
}

P(net) *P(net_create)(int n_layers, const fnn_layer_spec *layers, fnn_loss loss, T *params,
                      ptrdiff_t n_params, T *grads, T *buffers, ptrdiff_t n_buffers,
                      int max_rows, int max_threads, int *status)
{
    int dummy;
    if (!status) status = &dummy;
    *status = FNN_EINVAL;
    if (max_rows < 1 || n_params < 0 || n_buffers < 0 || !layers || !params || !grads) return NULL;
    if (P(check_spec)(n_layers, layers, loss, n_params, n_buffers) != FNN_OK) return NULL;
    if (n_buffers > 0 && !buffers) return NULL;
    *status = FNN_ENOMEM;
    if (max_threads < 1) max_threads = 1;
    P(net) *net = (P(net) *)calloc(1, sizeof(P(net)));
    if (!net) return NULL;
    net->n_layers = n_layers;
    net->loss = loss;
    net->max_rows = max_rows;
    net->max_threads = max_threads;
    net->params = params;
    net->grads = grads;
    net->n_params = n_params;
    net->n_buffers = n_buffers;
    const int L = n_layers;
    const size_t rows = (size_t)max_rows;
    int width = 1;
    for (int l = 0; l < L; l++)
        if (layers[l].n_out > width) width = layers[l].n_out;
    const size_t gemm_ws = P(gemm_ws_for)(L, layers, max_rows, max_threads);
    net->max_width = width;

    /* Lay out every buffer in one block: offsets first, then one allocation. */
    size_t off = 0;
    size_t o_layers = P(take)(&off, sizeof(P(layer)) * L);
    size_t o_A = P(take)(&off, sizeof(T *) * L), o_Zhat = P(take)(&off, sizeof(T *) * L);
    size_t o_stats = P(take)(&off, sizeof(T *) * L), o_mask = P(take)(&off, sizeof(uint8_t *) * L);
    size_t *o_Al = (size_t *)calloc((size_t)L * 4, sizeof(size_t));
    if (!o_Al) { free(net); return NULL; }
    for (int l = 0; l < L; l++) {
        const fnn_layer_spec *ly = &layers[l];
        o_Al[4 * l + 0] = P(take)(&off, sizeof(T) * rows * ly->n_out);
        o_Al[4 * l + 1] = ly->batch_norm ? P(take)(&off, sizeof(T) * rows * ly->n_out) : 0;
        o_Al[4 * l + 2] = ly->batch_norm ? P(take)(&off, sizeof(T) * 3 * ly->n_out) : 0;
        o_Al[4 * l + 3] = ly->keep_prob < 1.0 ? P(take)(&off, rows * ly->n_out) : 0;
    }
    size_t o_D0 = P(take)(&off, sizeof(T) * rows * width);
    size_t o_D1 = P(take)(&off, sizeof(T) * rows * width);
    size_t o_Xb = P(take)(&off, sizeof(T) * rows * layers[0].n_in);
    size_t o_Yb = P(take)(&off, sizeof(T) * rows * layers[L - 1].n_out);
    size_t o_lab = P(take)(&off, sizeof(int32_t) * rows);
    size_t o_ws = P(take)(&off, gemm_ws);

    char *blk = (char *)fnn_aligned_alloc(off);
    if (!blk) { free(o_Al); free(net); return NULL; }
    memset(blk, 0, off);
    net->block = blk;
    net->layers = (P(layer) *)(blk + o_layers);
    for (int l = 0; l < L; l++) {
        const fnn_layer_spec *sp = &layers[l];
        P(layer) *ly = &net->layers[l];
        ly->n_in = sp->n_in;
        ly->n_out = sp->n_out;
        ly->act = sp->act;
        ly->keep_prob = sp->keep_prob;
        ly->batch_norm = sp->batch_norm;
        ly->bn_momentum = sp->bn_momentum;
        ly->W = params + sp->W;
        ly->dW = grads + sp->W;
        ly->b = sp->b >= 0 ? params + sp->b : NULL;
        ly->db = sp->b >= 0 ? grads + sp->b : NULL;
        ly->gamma = sp->gamma >= 0 ? params + sp->gamma : NULL;
        ly->dgamma = sp->gamma >= 0 ? grads + sp->gamma : NULL;
        ly->beta = sp->beta >= 0 ? params + sp->beta : NULL;
        ly->dbeta = sp->beta >= 0 ? grads + sp->beta : NULL;
        ly->running_mean = sp->running_mean >= 0 ? buffers + sp->running_mean : NULL;
        ly->running_var = sp->running_var >= 0 ? buffers + sp->running_var : NULL;
    }
    net->A = (T **)(blk + o_A);
    net->Zhat = (T **)(blk + o_Zhat);
    net->bn_stats = (T **)(blk + o_stats);
    net->mask = (uint8_t **)(blk + o_mask);
    for (int l = 0; l < L; l++) {
        net->A[l] = (T *)(blk + o_Al[4 * l + 0]);
        net->Zhat[l] = layers[l].batch_norm ? (T *)(blk + o_Al[4 * l + 1]) : NULL;
        net->bn_stats[l] = layers[l].batch_norm ? (T *)(blk + o_Al[4 * l + 2]) : NULL;
        net->mask[l] = layers[l].keep_prob < 1.0 ? (uint8_t *)(blk + o_Al[4 * l + 3]) : NULL;
    }
    free(o_Al);
    net->D[0] = (T *)(blk + o_D0);
    net->D[1] = (T *)(blk + o_D1);
    net->Xb = (T *)(blk + o_Xb);
    net->Yb = (T *)(blk + o_Yb);
    net->labels_b = (int32_t *)(blk + o_lab);
    net->gemm_ws = blk + o_ws;
    net->gemm_ws_bytes = gemm_ws;
    *status = FNN_OK;
    return net;
}

void P(net_free)(P(net) *net)
{
    if (!net) return;
    fnn_aligned_free(net->block);
    free(net);
}

/* ---- batch norm at inference ----------------------------------------------------------------
 * With the running statistics the normalisation is a fixed affine map per column:
 *   Zhat = (Z - running_mean) * r,  r = 1/sqrt(running_var + eps);  Zt = gamma * Zhat + beta,
 * so its backward is  dbeta = sum_i dY,  dgamma = sum_i dY * Zhat,  dZ = dY * gamma * r.
 * (Used when gradients are asked of a model in inference mode; training uses batchnorm.c.) */
static void P(bn_rstd)(const P(layer) *ly, T *r)
{
    for (int j = 0; j < ly->n_out; j++)
        r[j] = (T)(1.0 / sqrt((double)ly->running_var[j] + FNN_BN_EPS));
}

static void P(bn_infer)(int m, const P(layer) *ly, T *Z, ptrdiff_t ldz, T *Zhat, T *r)
{
    const int n = ly->n_out;
    P(bn_rstd)(ly, r);
    for (int i = 0; i < m; i++) {
        T *restrict z = Z + (ptrdiff_t)i * ldz;
        for (int j = 0; j < n; j++) {
            const T h = (z[j] - ly->running_mean[j]) * r[j];
            if (Zhat) Zhat[(ptrdiff_t)i * n + j] = h;   /* kept for backward only */
            z[j] = ly->gamma[j] * h + ly->beta[j];
        }
    }
}

static void P(bn_infer_backward)(int m, const P(layer) *ly, T *dY, const T *Zhat, const T *r)
{
    const int n = ly->n_out;
    for (int j = 0; j < n; j++) ly->dgamma[j] = ly->dbeta[j] = 0;
    for (int i = 0; i < m; i++) {
        T *restrict d = dY + (ptrdiff_t)i * n;
        const T *restrict h = Zhat + (ptrdiff_t)i * n;
        for (int j = 0; j < n; j++) {
            ly->dbeta[j] += d[j];
            ly->dgamma[j] += d[j] * h[j];
            d[j] *= ly->gamma[j] * r[j];
        }
    }
}

/* ---- forward ----------------------------------------------------------------------------- */

/* Where a forward pass writes: the net's own training workspace, or a caller's inference
 * workspace (fnn_snet_infer), so that inference never touches the buffers a training step uses
 * and any number of threads can run it on one net at once. */
typedef struct {
    T **A;                /* A[l]: output of layer l (row stride n_out_l) */
    T **Zhat;             /* batch norm: normalised Z, kept for backward (NULL: not kept) */
    T **stats;            /* batch norm: 3 * n_out_l scratch (mean, var, rstd) */
    uint8_t **mask;       /* dropout masks (training only) */
    void *gemm_ws;
    size_t gemm_ws_bytes;
} P(bufs);

static P(bufs) P(train_bufs)(P(net) *net)
{
    P(bufs) b = {net->A, net->Zhat, net->bn_stats, net->mask, net->gemm_ws, net->gemm_ws_bytes};
    return b;
}

/* Forward through every layer.  The last layer's logits land in `out` (row stride ldo) when out
 * is not NULL, else in A[L-1].  Returns FNN_OK or the GEMM's error. */
static int P(forward)(const P(net) *net, const P(bufs) *bf, int m, const T *X, ptrdiff_t ldx,
                      int training, uint64_t seed, uint64_t step, T *out, ptrdiff_t ldo,
                      int n_threads)
{
    const int L = net->n_layers;
    const T *in = X;
    ptrdiff_t ld_in = ldx;
    for (int l = 0; l < L; l++) {
        const P(layer) *ly = &net->layers[l];
        const int last = (l == L - 1);
        T *Z = (last && out) ? out : bf->A[l];
        ptrdiff_t ldz = (last && out) ? ldo : ly->n_out;
        P(fwd_ctx) ctx;
        ctx.b = ly->batch_norm ? NULL : ly->b;
        ctx.bn_mean = ctx.bn_r = ctx.gamma = ctx.beta = NULL;
        ctx.act = last ? FNN_LINEAR : ly->act;
        ctx.mask = (training && !last && ly->keep_prob < 1.0) ? bf->mask[l] : NULL;
        ctx.n_out = ly->n_out;
        ctx.seed = seed;
        ctx.step = step;
        ctx.layer = (uint32_t)l;
        ctx.threshold = ly->keep_prob < 1.0 ? fnn_keep_threshold(ly->keep_prob) : 0;
        ctx.inv_keep = (T)(1.0 / ly->keep_prob);
        const int rc = P(gemm)(m, ly->n_out, ly->n_in, in, ld_in, 1, ly->W, ly->n_out, 1, Z, ldz,
                               ly->batch_norm ? NULL : P(fwd_epilogue),
                               ly->batch_norm ? NULL : &ctx, bf->gemm_ws, bf->gemm_ws_bytes,
                               n_threads);
        if (rc != FNN_OK) return rc;
        if (ly->batch_norm) {
            T *st = bf->stats[l];
            if (training)
                P(batchnorm_forward_train)(m, ly->n_out, Z, ldz, ly->gamma, ly->beta, FNN_BN_EPS,
                                           ly->bn_momentum, bf->Zhat[l], ly->n_out, Z, ldz,
                                           st, st + ly->n_out, st + 2 * ly->n_out,
                                           ly->running_mean, ly->running_var, n_threads);
            else
                P(bn_infer)(m, ly, Z, ldz, bf->Zhat ? bf->Zhat[l] : NULL, st + 2 * ly->n_out);
            P(rows_epilogue)(&ctx, Z, ldz, m, ly->n_out, n_threads);
        }
        in = Z;
        ld_in = ldz;
    }
    return FNN_OK;
}

/* The output activation applied to the logits in place: probabilities or values. */
static void P(output_activation)(const P(net) *net, int m, T *out, ptrdiff_t ldo)
{
    const P(layer) *last = &net->layers[net->n_layers - 1];
    if (last->act == FNN_SOFTMAX) {
        P(softmax_rows)(m, last->n_out, out, ldo, out, ldo);
    } else if (last->act != FNN_LINEAR) {
        for (int i = 0; i < m; i++) P(act_forward)(last->act, out + (ptrdiff_t)i * ldo, last->n_out);
    }
}

/* The checks every entry point makes of a batch before it runs: m rows of X (row stride ldx)
 * fit the net, and n_threads is clamped to the team the workspace was sized for. */
static int P(check_batch)(const P(net) *net, int m, int max_rows, const T *X, ptrdiff_t ldx)
{
    if (m < 0 || m > max_rows || (m > 0 && !X) || ldx < net->layers[0].n_in) return FNN_EINVAL;
    return FNN_OK;
}

static int P(clamp_threads)(const P(net) *net, int n_threads)
{
    if (n_threads < 1) return 1;
    return n_threads > net->max_threads ? net->max_threads : n_threads;
}

/* Targets: labels in [0, n) for cross-entropy, a Y of row stride >= n otherwise. */
static int P(check_targets)(const P(net) *net, int m, const int32_t *labels, const T *Y,
                            ptrdiff_t ldy)
{
    const int n = net->layers[net->n_layers - 1].n_out;
    if (net->loss == FNN_LOSS_XENT) {
        if (m > 0 && !labels) return FNN_EINVAL;
        for (int i = 0; i < m; i++)
            if (labels[i] < 0 || labels[i] >= n) return FNN_EINVAL;
    } else if (m > 0 && (!Y || ldy < n)) {
        return FNN_EINVAL;
    }
    return FNN_OK;
}

static int P(net_forward_run)(P(net) *net, int m, const T *X, ptrdiff_t ldx, int training,
                   uint64_t seed, uint64_t step, T *out, ptrdiff_t ldo, int n_threads)
{
    if (P(check_batch)(net, m, net->max_rows, X, ldx) != FNN_OK || !out ||
        ldo < net->layers[net->n_layers - 1].n_out)
        return FNN_EINVAL;
    if (m == 0) return FNN_OK;
    n_threads = P(clamp_threads)(net, n_threads);
    const P(bufs) bf = P(train_bufs)(net);
    const int rc = P(forward)(net, &bf, m, X, ldx, training, seed, step, out, ldo, n_threads);
    if (rc == FNN_OK) P(output_activation)(net, m, out, ldo);
    return rc;
}

int P(net_forward)(P(net) *net, int m, const T *X, ptrdiff_t ldx, int training,
                   uint64_t seed, uint64_t step, T *out, ptrdiff_t ldo, int n_threads)
{
    const unsigned fp_saved = fnn_fp_enter_call(n_threads);  /* see net.c */
    const int rc = P(net_forward_run)(net, m, X, ldx, training, seed, step, out, ldo, n_threads);
    fnn_fp_leave(fp_saved);
    return rc;
}

/* ---- inference over a caller's workspace -------------------------------------------------
 * Two ways through the layers, with the same bits (every element is the same running sum, and
 * the epilogue the same operations in the same order):
 *   - few rows (m <= MR of the ISA in use): layer by layer with fnn_?gemm, which reads the
 *     weights in place (packing them would cost as much as the product);
 *   - more rows: streamed.  One parallel region: the team packs every layer's weights once
 *     (fnn_?gemm_pack_b, a share each), meets at one barrier, then each thread takes row blocks
 *     of X (as tall as the GEMM's cache block mc, fewer when that leaves a thread idle) and runs
 *     each block through every layer in a thread-private pair of activation buffers that stay in
 *     its cache, bias/batch norm/activation in each product's epilogue and the output activation
 *     on the block's rows of out.  No temporary the size of X, no barrier per layer.
 * Workspace layout for m rows, each piece on a 64-byte boundary: the logits (m, n_out_last; for
 * evaluate only); L pointers to packed weights and L to batch-norm 1/sqrt(var + eps); the packed
 * weights; those rstd vectors; then either the layer-by-layer buffers (two (m, max_width)
 * activation buffers, a batch-norm scratch, L pointers each for A and stats, the GEMM's packing
 * buffers) or one slice per thread (two (rb, max_width) activation buffers and the A block of
 * fnn_?gemm_packed).  Sized for the larger of the two ways and every compiled ISA. */
typedef struct {
    size_t logits, ptrs, packed, rstd, rest;          /* offsets in bytes */
    size_t act, xs, scratch, lptrs, gemm, gemm_bytes;  /* layer by layer, from rest */
    size_t thread_bytes;                               /* streamed: slice per thread, from rest */
    int rb;                                            /* streamed: rows per block, at most */
    size_t total;
} P(infer_layout);

/* The largest row tile (MR) and row block (mc) of the compiled ISAs for this dtype. */
static void P(row_tiles)(int *mr_max, int *mc_max)
{
    *mr_max = 1; *mc_max = 1;
    for (int i = 0; i < FNN_ISA_COUNT; i++) {
        int mr, nr, kc, mc, nc;
        if (fnn_gemm_tile(i, (int)sizeof(T), &mr, &nr, &kc, &mc, &nc) != FNN_OK) continue;
        if (mr > *mr_max) *mr_max = mr;
        if (mc > *mc_max) *mc_max = mc;
    }
}

static P(infer_layout) P(infer_plan)(const P(net) *net, int m, int n_threads, int with_logits)
{
    P(infer_layout) lo;
    const int L = net->n_layers;
    const size_t rows = m > 0 ? (size_t)m : 1;
    int mr_max, mc_max;
    P(row_tiles)(&mr_max, &mc_max);
    size_t off = 0;
    lo.logits = P(take)(&off, with_logits ? sizeof(T) * rows * (size_t)net->layers[L - 1].n_out : 0);
    lo.ptrs = P(take)(&off, 2 * sizeof(T *) * (size_t)L);
    lo.packed = off;
    for (int l = 0; l < L; l++)
        P(take)(&off, fnn_gemm_packed_b_size(net->layers[l].n_in, net->layers[l].n_out, sizeof(T)));
    lo.rstd = off;
    for (int l = 0; l < L; l++)
        if (net->layers[l].batch_norm) P(take)(&off, sizeof(T) * (size_t)net->layers[l].n_out);
    lo.rest = off;

    /* layer by layer: only m <= MR of some ISA takes it (more rows are streamed) */
    size_t ll = 0;
    lo.act = lo.xs = lo.scratch = lo.lptrs = lo.gemm = lo.gemm_bytes = 0;
    if ((int)rows <= mr_max) {
        lo.act = P(take)(&ll, 2 * sizeof(T) * rows * (size_t)net->max_width);
        lo.xs = P(take)(&ll, sizeof(T) * rows * (size_t)net->layers[0].n_in);
        lo.scratch = P(take)(&ll, 3 * sizeof(T) * (size_t)net->max_width);
        lo.lptrs = P(take)(&ll, 2 * sizeof(T *) * (size_t)L);
        for (int l = 0; l < L; l++) {
            const size_t w = fnn_gemm_ws_size((int)rows, net->layers[l].n_out,
                                              net->layers[l].n_in, n_threads, sizeof(T));
            if (w > lo.gemm_bytes) lo.gemm_bytes = w;
        }
        lo.gemm = P(take)(&ll, lo.gemm_bytes);
    }

    /* streamed: one slice per thread */
    lo.rb = (int)rows < mc_max ? (int)rows : mc_max;
    size_t st = 0, a_blk = 0;
    P(take)(&st, 2 * sizeof(T) * (size_t)lo.rb * (size_t)net->max_width);
    P(take)(&st, sizeof(T) * (size_t)lo.rb * (size_t)net->layers[0].n_in);  /* standardised X */
    for (int l = 0; l < L; l++) {
        const size_t w = fnn_gemm_packed_ws_size(lo.rb, net->layers[l].n_in, sizeof(T));
        if (w > a_blk) a_blk = w;
    }
    P(take)(&st, a_blk);
    lo.thread_bytes = st;
    const size_t streamed = st * (size_t)(n_threads < 1 ? 1 : n_threads);
    lo.total = lo.rest + (ll > streamed ? ll : streamed);
    return lo;
}

size_t P(net_infer_ws_size)(const P(net) *net, int m, int n_threads)
{
    return P(infer_plan)(net, m, n_threads < 1 ? 1 : n_threads, 0).total;
}

size_t P(net_evaluate_ws_size)(const P(net) *net, int m, int n_threads)
{
    return P(infer_plan)(net, m, n_threads < 1 ? 1 : n_threads, 1).total;
}

/* The forward epilogue of layer l at inference: bias or batch norm, then the hidden activation
 * (the last layer's output stays logits; see output_activation). */
static P(fwd_ctx) P(infer_ctx)(const P(net) *net, int l, const T *rstd)
{
    const P(layer) *ly = &net->layers[l];
    P(fwd_ctx) ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.b = ly->batch_norm ? NULL : ly->b;
    if (ly->batch_norm) {
        ctx.bn_mean = ly->running_mean;
        ctx.bn_r = rstd;
        ctx.gamma = ly->gamma;
        ctx.beta = ly->beta;
    }
    ctx.act = l == net->n_layers - 1 ? FNN_LINEAR : ly->act;
    ctx.n_out = ly->n_out;
    return ctx;
}

static void P(output_activation)(const P(net) *net, int m, T *out, ptrdiff_t ldo);

/* Row blocks of at most this many micro-tiles read the weights in place (infer_stream). */
#ifndef FNN_INFER_INPLACE_TILES
#define FNN_INFER_INPLACE_TILES 3
#endif

/* dst (m, n; row stride n) = the input map of m rows of X (fastnn.h, fnn_input_map). */
static void P(map_rows)(const fnn_input_map *map, int m, int n, const T *X, ptrdiff_t ldx, T *dst)
{
    for (int i = 0; i < m; i++) {
        const T *restrict x = X + (ptrdiff_t)i * ldx;
        T *restrict d = dst + (ptrdiff_t)i * n;
        for (int j = 0; j < n; j++) d[j] = (T)(((double)x[j] - map->mean[j]) / map->scale[j]);
    }
}

/* The streamed path (see above): m > MR rows, logits or outputs into dst (row stride ld). */
static int P(infer_stream)(const P(net) *net, int m, const T *X, ptrdiff_t ldx,
                           const fnn_input_map *in_map, T *dst, ptrdiff_t ld, int activate,
                           char *base, const P(infer_layout) *lo, int n_threads)
{
    const int L = net->n_layers;
    const int isa = fnn_isa_active();   /* one ISA for the packs and the products */
    int mr, nr, kc, mc, nc;
    if (fnn_gemm_tile(isa, (int)sizeof(T), &mr, &nr, &kc, &mc, &nc) != FNN_OK) return FNN_EINVAL;
    /* row blocks: balanced multiples of MR up to mc, at least one per thread when m allows */
    int n_blocks = (m + mc - 1) / mc;
    if (n_blocks < n_threads) n_blocks = n_threads;
    int rb = ((m + n_blocks - 1) / n_blocks + mr - 1) / mr * mr;
    if (rb > lo->rb) rb = lo->rb / mr * mr > 0 ? lo->rb / mr * mr : lo->rb;
    n_blocks = (m + rb - 1) / rb;
    int nthr = n_threads < n_blocks ? n_threads : n_blocks;
    double flops = 0;
    for (int l = 0; l < L; l++) flops += 2.0 * m * net->layers[l].n_in * net->layers[l].n_out;
    if (flops < 4.0e6) nthr = 1;   /* as fnn_?gemm: a team costs more than it saves */
    /* Short row blocks read the weights in place: a block of at most FNN_INFER_INPLACE_TILES
     * micro-tiles of rows uses each weight that many times, and packing all of them (written,
     * then read back by every thread) would cost more than reading them where they are. */
    const int in_place = rb <= FNN_INFER_INPLACE_TILES * mr;

    T **Wp = (T **)(base + lo->ptrs), **rstd = Wp + L;
    size_t off = lo->packed, roff = lo->rstd;
    for (int l = 0; l < L; l++) {
        Wp[l] = (T *)(base + off);
        P(take)(&off, fnn_gemm_packed_b_size(net->layers[l].n_in, net->layers[l].n_out, sizeof(T)));
        rstd[l] = NULL;
        if (net->layers[l].batch_norm) {
            rstd[l] = (T *)(base + roff);
            P(take)(&roff, sizeof(T) * (size_t)net->layers[l].n_out);
        }
    }
    int rc = FNN_OK;
    const unsigned fp_mode = fnn_fp_mode();
    FNN_PRAGMA(omp parallel num_threads(nthr))
    {
        const unsigned fp_saved = fnn_fp_enter(fp_mode);
        int tid = 0, nt = 1;
#ifdef _OPENMP
        tid = omp_get_thread_num();
        nt = omp_get_num_threads();
#endif
        for (int l = 0; l < L; l++) {
            const P(layer) *ly = &net->layers[l];
            if (!in_place)
                P(gemm_pack_b)(isa, ly->n_in, ly->n_out, ly->W, ly->n_out, 1, Wp[l], tid, nt);
            if (rstd[l] && l % nt == tid) P(bn_rstd)(ly, rstd[l]);
        }
        FNN_PRAGMA(omp barrier)
        char *slice = base + lo->rest + (size_t)tid * lo->thread_bytes;
        size_t soff = 0;
        T *act[2];
        act[0] = (T *)(slice + P(take)(&soff, 2 * sizeof(T) * (size_t)lo->rb * net->max_width));
        act[1] = act[0] + (size_t)lo->rb * net->max_width;
        T *xs = (T *)(slice + P(take)(&soff, sizeof(T) * (size_t)lo->rb * net->layers[0].n_in));
        char *a_ws = slice + soff;
        const size_t a_bytes = lo->thread_bytes - (size_t)(a_ws - slice);
        FNN_PRAGMA(omp for schedule(dynamic, 1))
        for (int blk = 0; blk < n_blocks; blk++) {
            const int i0 = blk * rb, mb = m - i0 < rb ? m - i0 : rb;
            const T *in = X + (ptrdiff_t)i0 * ldx;
            ptrdiff_t ld_in = ldx;
            if (in_map) {
                P(map_rows)(in_map, mb, net->layers[0].n_in, in, ldx, xs);
                in = xs;
                ld_in = net->layers[0].n_in;
            }
            for (int l = 0; l < L; l++) {
                const P(layer) *ly = &net->layers[l];
                const int last = l == L - 1;
                T *Z = last ? dst + (ptrdiff_t)i0 * ld : act[l & 1];
                const ptrdiff_t ldz = last ? ld : ly->n_out;
                P(fwd_ctx) ctx = P(infer_ctx)(net, l, rstd[l]);
                const int r = in_place
                    ? P(gemm_b_in_place)(isa, mb, ly->n_out, ly->n_in, in, ld_in, 1, ly->W,
                                         ly->n_out, Z, ldz, P(fwd_epilogue), &ctx, a_ws, a_bytes)
                    : P(gemm_packed)(isa, mb, ly->n_out, ly->n_in, in, ld_in, 1, Wp[l], Z, ldz,
                                     P(fwd_epilogue), &ctx, a_ws, a_bytes);
                if (r != FNN_OK) {
                    FNN_PRAGMA(omp atomic write)
                    rc = r;
                }
                in = Z;
                ld_in = ldz;
            }
            if (activate) P(output_activation)(net, mb, dst + (ptrdiff_t)i0 * ld, ld);
        }
        fnn_fp_leave(fp_saved);
    }
    return rc;
}

/* Forward in inference mode over the caller's workspace; the logits land in the workspace's
 * logits buffer (returned through *logits) or, when out != NULL, in out, and with `activate`
 * become outputs (probabilities or values). */
static int P(infer_into)(const P(net) *net, int m, const T *X, ptrdiff_t ldx,
                         const fnn_input_map *in_map, T *out, ptrdiff_t ldo, void *ws,
                         size_t ws_bytes, int n_threads, T **logits, int activate)
{
    if (P(check_batch)(net, m, INT32_MAX, X, ldx) != FNN_OK) return FNN_EINVAL;
    if (in_map && (!in_map->mean || !in_map->scale)) return FNN_EINVAL;
    if (m == 0) return FNN_OK;
    if (n_threads < 1) n_threads = 1;
    const P(infer_layout) lo = P(infer_plan)(net, m, n_threads, out == NULL);
    if (!ws || ((uintptr_t)ws & 63) != 0 || ws_bytes < lo.total) return FNN_EWORKSPACE;
    char *base = (char *)ws;
    const int L = net->n_layers;
    T *dst = out ? out : (T *)(base + lo.logits);
    const ptrdiff_t ld = out ? ldo : net->layers[L - 1].n_out;
    if (logits) *logits = dst;
    int mr, nr, kc, mc, nc;
    if (fnn_gemm_tile(fnn_isa_active(), (int)sizeof(T), &mr, &nr, &kc, &mc, &nc) != FNN_OK)
        return FNN_EINVAL;
    if (m > mr)
        return P(infer_stream)(net, m, X, ldx, in_map, dst, ld, activate, base, &lo, n_threads);

    char *rest = base + lo.rest;
    T *act = (T *)(rest + lo.act);
    T **A = (T **)(rest + lo.lptrs), **stats = A + L;
    for (int l = 0; l < L; l++) {
        A[l] = act + (size_t)(l & 1) * (size_t)m * (size_t)net->max_width;
        stats[l] = (T *)(rest + lo.scratch);
    }
    if (in_map) {
        T *xs = (T *)(rest + lo.xs);
        P(map_rows)(in_map, m, net->layers[0].n_in, X, ldx, xs);
        X = xs;
        ldx = net->layers[0].n_in;
    }
    const P(bufs) bf = {A, NULL, stats, NULL, rest + lo.gemm, lo.gemm_bytes};
    const int rc = P(forward)(net, &bf, m, X, ldx, 0, 0, 0, dst, ld, n_threads);
    if (rc == FNN_OK && activate) P(output_activation)(net, m, dst, ld);
    return rc;
}

static int P(net_infer_run)(const P(net) *net, int m, const T *X, ptrdiff_t ldx,
                            const fnn_input_map *in_map, T *out, ptrdiff_t ldo, void *ws,
                            size_t ws_bytes, int n_threads)
{
    if (!out || ldo < net->layers[net->n_layers - 1].n_out) return FNN_EINVAL;
    return P(infer_into)(net, m, X, ldx, in_map, out, ldo, ws, ws_bytes, n_threads, NULL, 1);
}

int P(net_infer)(const P(net) *net, int m, const T *X, ptrdiff_t ldx, const fnn_input_map *in_map,
                 T *out, ptrdiff_t ldo, void *ws, size_t ws_bytes, int n_threads)
{
    const unsigned fp_saved = fnn_fp_enter_call(n_threads);  /* see net.c */
    const int rc = P(net_infer_run)(net, m, X, ldx, in_map, out, ldo, ws, ws_bytes, n_threads);
    fnn_fp_leave(fp_saved);
    return rc;
}

/* ---- loss, errors, backward -------------------------------------------------------------- */

static int64_t P(count_errors)(fnn_loss loss, int m, int n, const T *Z, const int32_t *labels,
                               const T *Y, ptrdiff_t ldy)
{
    int64_t wrong = 0;
    if (loss == FNN_LOSS_XENT) {
        for (int i = 0; i < m; i++) {
            const T *z = Z + (ptrdiff_t)i * n;
            int best = 0;
            for (int j = 1; j < n; j++)
                if (z[j] > z[best]) best = j;
            wrong += (best != labels[i]);
        }
    } else if (loss == FNN_LOSS_BCE) {
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
                wrong += ((Z[(ptrdiff_t)i * n + j] > 0) != (Y[(ptrdiff_t)i * ldy + j] > (T)0.5));
    }
    return wrong;
}

static int P(backward)(P(net) *net, int m, const T *X, ptrdiff_t ldx, int training,
                       double l2_coef, int n_threads)
{
    const int L = net->n_layers;
    int cur = 0;  /* net->D[cur] holds dZ of layer l */
    for (int l = L - 1; l >= 0; l--) {
        const P(layer) *ly = &net->layers[l];
        T *dZ = net->D[cur];
        const int n_out = ly->n_out, n_in = ly->n_in;
        if (ly->batch_norm) {
            const T *st = net->bn_stats[l];
            if (training)
                P(batchnorm_backward)(m, n_out, dZ, n_out, net->Zhat[l], n_out, ly->gamma,
                                      st + 2 * n_out, ly->dgamma, ly->dbeta, dZ, n_out,
                                      n_threads);
            else
                P(bn_infer_backward)(m, ly, dZ, net->Zhat[l], st + 2 * n_out);
        }
        const T *A_prev = l > 0 ? net->A[l - 1] : X;
        const ptrdiff_t ld_prev = l > 0 ? net->layers[l - 1].n_out : ldx;
        /* dW = A_prev^T dZ (+ l2_coef W) */
        P(l2_ctx) l2 = {ly->W, n_out, (T)l2_coef};
        int rc = P(gemm)(n_in, n_out, m, A_prev, 1, ld_prev, dZ, n_out, 1, ly->dW, n_out,
                         l2_coef != 0.0 ? P(l2_epilogue) : NULL, &l2, net->gemm_ws,
                         net->gemm_ws_bytes, n_threads);
        if (rc != FNN_OK) return rc;
        /* db = column sums of dZ, rows in order */
        if (!ly->batch_norm) {
            T *restrict db = ly->db;
            for (int j = 0; j < n_out; j++) db[j] = 0;
            for (int i = 0; i < m; i++) {
                const T *restrict d = dZ + (ptrdiff_t)i * n_out;
                for (int j = 0; j < n_out; j++) db[j] += d[j];
            }
        }
        if (l == 0) break;
        /* dA_prev = dZ W^T, with layer l-1's activation derivative and mask as epilogue */
        const P(layer) *prev = &net->layers[l - 1];
        P(bwd_ctx) bc;
        bc.A = net->A[l - 1];
        bc.n = prev->n_out;
        bc.act = prev->act;
        bc.mask = (training && prev->keep_prob < 1.0) ? net->mask[l - 1] : NULL;
        bc.keep = (T)prev->keep_prob;
        bc.inv_keep = (T)(1.0 / prev->keep_prob);
        T *dA = net->D[1 - cur];
        rc = P(gemm)(m, n_in, n_out, dZ, n_out, 1, ly->W, 1, n_out, dA, n_in,
                     P(bwd_epilogue), &bc, net->gemm_ws, net->gemm_ws_bytes, n_threads);
        if (rc != FNN_OK) return rc;
        cur = 1 - cur;
    }
    return FNN_OK;
}

static double P(sum_w2)(const P(net) *net)
{
    double total = 0.0;
    for (int l = 0; l < net->n_layers; l++) {
        const P(layer) *ly = &net->layers[l];
        const ptrdiff_t count = (ptrdiff_t)ly->n_in * ly->n_out;
        double acc = 0.0;
        for (ptrdiff_t i = 0; i < count; i++) acc += (double)ly->W[i] * (double)ly->W[i];
        total += acc;
    }
    return total;
}

static int P(net_evaluate_run)(const P(net) *net, int m, const T *X, ptrdiff_t ldx,
                    const fnn_input_map *in_map, const int32_t *labels, const T *Y, ptrdiff_t ldy, void *ws, size_t ws_bytes,
                    int n_threads, fnn_pass_result *res)
{
    const int n = net->layers[net->n_layers - 1].n_out;
    if (!res || P(check_targets)(net, m, labels, Y, ldy) != FNN_OK) return FNN_EINVAL;
    res->loss = 0.0;
    res->sum_w2 = 0.0;
    res->n_errors = 0;
    T *Z = NULL;
    const int rc = P(infer_into)(net, m, X, ldx, in_map, NULL, 0, ws, ws_bytes, n_threads, &Z, 0);
    if (rc != FNN_OK || m == 0) return rc;
    res->n_errors = P(count_errors)(net->loss, m, n, Z, labels, Y, ldy);
    double denom = net->loss == FNN_LOSS_XENT ? (double)m : (double)m * (double)n;
    res->loss = P(loss_grad)(net->loss, m, n, Z, n, labels, Y, ldy, NULL, (T)0) / denom;
    return FNN_OK;
}

int P(net_evaluate)(const P(net) *net, int m, const T *X, ptrdiff_t ldx,
                    const fnn_input_map *in_map, const int32_t *labels, const T *Y,
                    ptrdiff_t ldy, void *ws, size_t ws_bytes, int n_threads, fnn_pass_result *res)
{
    const unsigned fp_saved = fnn_fp_enter_call(n_threads);  /* see net.c */
    const int rc = P(net_evaluate_run)(net, m, X, ldx, in_map, labels, Y, ldy, ws, ws_bytes,
                                       n_threads, res);
    fnn_fp_leave(fp_saved);
    return rc;
}

/* loss_grad without the checks (the entry points check first). */
static int P(loss_grad_run)(P(net) *net, int m, const T *X, ptrdiff_t ldx,
                            const int32_t *labels, const T *Y, ptrdiff_t ldy,
                            int training, uint64_t seed, uint64_t step, double l2_coef,
                            int n_threads, fnn_pass_result *res)
{
    const int L = net->n_layers;
    const int n = net->layers[L - 1].n_out;
    const P(bufs) bf = P(train_bufs)(net);
    int rc = P(forward)(net, &bf, m, X, ldx, training, seed, step, NULL, 0, n_threads);
    if (rc != FNN_OK) return rc;
    T *Z = net->A[L - 1];
    res->n_errors = P(count_errors)(net->loss, m, n, Z, labels, Y, ldy);
    double denom = net->loss == FNN_LOSS_XENT ? (double)m : (double)m * (double)n;
    double sum = P(loss_grad)(net->loss, m, n, Z, n, labels, Y, ldy, net->D[0], (T)(1.0 / denom));
    res->loss = sum / denom;
    res->sum_w2 = l2_coef != 0.0 ? P(sum_w2)(net) : 0.0;
    return P(backward)(net, m, X, ldx, training, l2_coef, n_threads);
}

static int P(net_loss_grad_run)(P(net) *net, int m, const T *X, ptrdiff_t ldx,
                     const int32_t *labels, const T *Y, ptrdiff_t ldy,
                     int training, uint64_t seed, uint64_t step, double l2_coef,
                     int n_threads, fnn_pass_result *res)
{
    if (!res || m < 1 || P(check_batch)(net, m, net->max_rows, X, ldx) != FNN_OK ||
        P(check_targets)(net, m, labels, Y, ldy) != FNN_OK)
        return FNN_EINVAL;
    return P(loss_grad_run)(net, m, X, ldx, labels, Y, ldy, training, seed, step, l2_coef,
                            P(clamp_threads)(net, n_threads), res);
}

int P(net_loss_grad)(P(net) *net, int m, const T *X, ptrdiff_t ldx,
                     const int32_t *labels, const T *Y, ptrdiff_t ldy,
                     int training, uint64_t seed, uint64_t step, double l2_coef,
                     int n_threads, fnn_pass_result *res)
{
    const unsigned fp_saved = fnn_fp_enter_call(n_threads);  /* see net.c */
    const int rc = P(net_loss_grad_run)(net, m, X, ldx, labels, Y, ldy, training, seed, step,
                                        l2_coef, n_threads, res);
    fnn_fp_leave(fp_saved);
    return rc;
}

static int P(net_train_steps_run)(P(net) *net, int64_t count, int bs, const int64_t *idx,
                       const T *X, int64_t n_rows, ptrdiff_t ldx,
                       const int32_t *labels, const T *Y, ptrdiff_t ldy,
                       uint64_t seed, uint64_t step0, double l2_coef,
                       const fnn_optim_params *op, T *v, T *s, int n_threads,
                       fnn_pass_result *res, int *n_done)
{
    const int n_in = net->layers[0].n_in, n_out = net->layers[net->n_layers - 1].n_out;
    if (n_done) *n_done = 0;
    /* Sizes the workspace and the flat buffers were made for; every row index inside X; the
     * targets of every row the steps will read. */
    if (!n_done || !res || !op || count < 0 || bs < 1 || bs > net->max_rows || n_rows < 0 ||
        (count > 0 && (!idx || !X)) || ldx < n_in || (unsigned)op->kind > FNN_ADAMW ||
        (op->kind != FNN_SGD && op->kind != FNN_RMSPROP && !v) ||
        (op->kind != FNN_SGD && op->kind != FNN_MOMENTUM && !s))
        return FNN_EINVAL;
    for (int64_t i = 0; i < count; i++)
        if (idx[i] < 0 || idx[i] >= n_rows) return FNN_EINVAL;
    if (net->loss == FNN_LOSS_XENT) {
        if (count > 0 && !labels) return FNN_EINVAL;
        for (int64_t i = 0; i < count; i++)
            if (labels[idx[i]] < 0 || labels[idx[i]] >= n_out) return FNN_EINVAL;
    } else if (count > 0 && (!Y || ldy < n_out)) {
        return FNN_EINVAL;
    }
    n_threads = P(clamp_threads)(net, n_threads);
    fnn_optim_params opk = *op;
    int k = 0;
    for (int64_t start = 0; start < count; start += bs, k++) {
        const int m = (int)(count - start < bs ? count - start : bs);
        const int64_t *rows = idx + start;
        P(gather_rows)(m, n_in, X, ldx, rows, net->Xb);
        if (labels) fnn_igather(m, labels, rows, net->labels_b);
        if (Y) P(gather_rows)(m, n_out, Y, ldy, rows, net->Yb);
        const int rc = P(loss_grad_run)(net, m, net->Xb, n_in, labels ? net->labels_b : NULL,
                                        Y ? net->Yb : NULL, n_out, 1, seed, step0 + (uint64_t)k,
                                        l2_coef, n_threads, &res[k]);
        if (rc != FNN_OK) { *n_done = k; return rc; }
        /* A non-finite loss leaves the parameters as they were, those of the last finite
         * step, and ends the run. */
        if (!isfinite(res[k].loss) || !isfinite(res[k].sum_w2)) { *n_done = k + 1; return FNN_OK; }
        opk.t = op->t + k;
        P(optim_step)(&opk, net->n_params, net->params, net->grads, v, s, n_threads);
    }
    *n_done = k;
    return FNN_OK;
}

int P(net_train_steps)(P(net) *net, int64_t count, int bs, const int64_t *idx,
                       const T *X, int64_t n_rows, ptrdiff_t ldx,
                       const int32_t *labels, const T *Y, ptrdiff_t ldy,
                       uint64_t seed, uint64_t step0, double l2_coef,
                       const fnn_optim_params *op, T *v, T *s, int n_threads,
                       fnn_pass_result *res, int *n_done)
{
    const unsigned fp_saved = fnn_fp_enter_call(n_threads);  /* see net.c */
    const int rc = P(net_train_steps_run)(net, count, bs, idx, X, n_rows, ldx, labels, Y, ldy,
                                          seed, step0, l2_coef, op, v, s, n_threads, res,
                                          n_done);
    fnn_fp_leave(fp_saved);
    return rc;
}

#undef T
#undef P
