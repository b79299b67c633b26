"""The shape sweep of the compiled network: every hidden width and batch size around the
kernels' tile sizes, 1, 2 and 3 threads, both dtypes, dropout and batch norm on and off, each
pass against the NumPy oracle (fastnn.reference).

Each compiled network is built for more rows than the batch it then runs (``max_rows`` of 130 or
512), as a training workspace is: sized once for the full mini-batch and reused by the smaller
last one.  Sizing for exactly the rows of the call hid a workspace overflow of the GEMM for a
whole release.  Run under AddressSanitizer (the sanitizer job of ``.ci/run``) this also proves
that no kernel reads or writes outside its buffers.

``python tests/shape_sweep.py`` runs the whole sweep in this process with the kernels the
environment selects (``FASTNN_ISA``), prints one line and exits non-zero on the first
disagreement; the test suite runs it once per instruction-set variant the CPU runs
(``tests/test_core_safety.py``).
"""
import sys

import numpy as np

import fastnn as fn
from fastnn import reference as ref

TOL = {"float64": 1e-12, "float32": 1e-5}
WIDTHS = list(range(1, 71))
BATCHES = list(range(1, 71)) + [127, 128, 129, 130, 512]
THREADS = (1, 2, 3)
VARIANTS = ((1.0, False), (0.7, False), (1.0, True), (0.7, True))  # (keep_prob, batch_norm)
N_IN, N_CLASSES = 11, 10


def _cases():
    """(width, batch) pairs: every width at a few batch sizes, every batch size at a few widths
    (tile edges of the 12 x 32 / 12 x 16, 6 x 16 / 6 x 8 and 4 x 8 micro-kernels and their
    transposed use)."""
    pairs = [(w, m) for w in WIDTHS for m in (1, 64, 129)]
    pairs += [(w, m) for m in BATCHES for w in (17, 48)]
    return sorted(set(pairs))


def _layer_dicts(model):
    return [dict(units=l.units, activation=l.activation, keep_prob=l.keep_prob,
                 batch_norm=l.batch_norm) for l in model.layers]


def check_case(width, m, dtype, keep, bn, n_threads, rng):
    """One forward/backward on m rows of a net built for more rows, against the oracle.
    Returns an error message, or None."""
    model = fn.MLP(N_IN, [fn.Dense(width, "tanh", keep_prob=keep, batch_norm=bn),
                          fn.Dense(N_CLASSES, "softmax")], dtype=dtype, seed=width)
    w = model.get_weights()
    for key in w:
        if key.endswith((".b", ".beta")):
            w[key] = (rng.standard_normal(w[key].shape) * 0.1).astype(dtype)
    model.set_weights(w)
    X = rng.standard_normal((m, N_IN)).astype(dtype)
    y = rng.integers(0, N_CLASSES, m).astype(np.int32)
    max_rows = 130 if m < 130 else 512
    net = model._net(max_rows, n_threads)
    seed, l2 = 5, 0.3
    loss, sum_w2, _ = net.loss_grad(X, y, None, True, seed, 0, l2 / m, n_threads)
    grads = model._grads_dict()
    w64 = {k: v.astype(np.float64) for k, v in model.get_weights().items()}
    # batch norm's running averages were updated by the call: the oracle takes the ones before
    for key in w64:
        if key.endswith("running_mean"):
            w64[key][:] = 0.0
        elif key.endswith("running_var"):
            w64[key][:] = 1.0
    masks = ref.mlp_dropout_masks(_layer_dicts(model), m, seed, 0)
    rcost, rgrads = ref.mlp_loss_and_grads(w64, _layer_dicts(model), X.astype(np.float64), y,
                                           l2=l2, masks=masks, training=True)
    cost = loss + l2 / (2.0 * m) * sum_w2
    tol = TOL[dtype] * 10
    if not abs(cost - rcost) <= tol * max(1.0, abs(rcost)):
        return f"cost {cost!r} vs oracle {rcost!r}"
    for key, g in rgrads.items():
        scale = max(np.max(np.abs(g)), 1.0 if dtype == "float32" else 1e-30)
        err = np.max(np.abs(grads[key] - g))
        if not err <= tol * scale:
            return f"{key}: max error {err:.3g} (scale {scale:.3g})"
    # inference through a workspace of its own, on the same net
    out = np.empty((m, N_CLASSES), dtype=dtype)
    net.infer(X, out, n_threads)
    # (with the running statistics the training pass has just updated)
    w_now = {k: v.astype(np.float64) for k, v in model.get_weights().items()}
    want = ref.mlp_forward(w_now, _layer_dicts(model), X.astype(np.float64))
    err = np.max(np.abs(out - want))
    if not err <= tol:
        return f"infer: max error {err:.3g}"
    return None


def run(cases=None, threads=THREADS, dtypes=("float32", "float64"), variants=VARIANTS):
    """Every case; returns (number checked, list of failures)."""
    rng = np.random.default_rng(0)
    failures, n = [], 0
    for width, m in (cases or _cases()):
        for dtype in dtypes:
            for keep, bn in variants:
                if bn and m == 1:
                    continue  # batch statistics of one row: a degenerate case of its own
                for t in threads:
                    msg = check_case(width, m, dtype, keep, bn, t, rng)
                    n += 1
                    if msg:
                        failures.append(f"width={width} m={m} {dtype} keep={keep} bn={bn} "
                                        f"threads={t}: {msg}")
    return n, failures


if __name__ == "__main__":
    n, failures = run()
    kernel = fn._core.get_isa()
    for f in failures[:20]:
        print(f)
    print(f"shape sweep ({kernel}): {n - len(failures)} passed, {len(failures)} failed")
    sys.exit(1 if failures else 0)
