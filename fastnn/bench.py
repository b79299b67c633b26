"""Head-to-head benchmark: fastnn against PyTorch, scikit-learn and its NumPy oracle.

Design: every peer trains the same network on the same data in this one process, one timed
epoch after a warm-up epoch, peers interleaved round by round (``--repeat`` rounds, medians
reported) so that the machine's noise hits them alike.  Peers that are not installed are
skipped with the reason.  Besides the training cases it times the pieces the performance targets
name: the GEMM floor of the step (its 8 matrix products through NumPy's BLAS), the fused GEMM
against BLAS, one Adam step, dropout masks, thread scaling, peak memory, inference (predict on
1, 64 and 10,000 rows against PyTorch and scikit-learn with the same weights; concurrent
predict from several threads) and the peak GEMM rate of the machine.  The *peak floor* of a training case is its epoch's matrix FLOP divided by the
best large-GEMM rate any library reaches in this process (NumPy's BLAS, PyTorch's where installed,
fastnn's own): no implementation can train faster on this machine.  ``--isa`` runs a chosen
instruction-set variant of fastnn's kernels (``fastnn.show_config()`` lists them).

Run it as ``python -m fastnn.bench``, ``python benchmarks/compare.py`` or ``fastnn bench``;
``--json PATH`` writes everything measured together with the BLAS/OpenMP thread pools in use
(threadpoolctl) and the relevant environment variables.
"""
import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings

import numpy as np

__all__ = ["CASES", "add_arguments", "run", "main"]

# ---- the cases --------------------------------------------------------------------------------

_MNIST = (784, 512, 256, 10)
_TINY = (2, 20, 20, 2)

CASES = {
    # name: (kind, settings)
    "mnist-b32": ("train", dict(data="mnist", sizes=_MNIST, batch=32, dtype="float32")),
    "mnist-b128": ("train", dict(data="mnist", sizes=_MNIST, batch=128, dtype="float32")),
    "mnist-b512": ("train", dict(data="mnist", sizes=_MNIST, batch=512, dtype="float32")),
    "tiny-b64": ("train", dict(data="moons", sizes=_TINY, batch=64, dtype="float32")),
    "mnist-f64-b128": ("train", dict(data="mnist", sizes=_MNIST, batch=128, dtype="float64")),
    "scaling-b512": ("scaling", dict(data="mnist", sizes=_MNIST, batch=512, dtype="float32")),
    "gemm": ("gemm", dict(sizes=_MNIST, batch=128, dtype="float32")),
    "gemm-f64": ("gemm", dict(sizes=_MNIST, batch=128, dtype="float64")),
    "adam": ("adam", dict(sizes=_MNIST, dtype="float32")),
    "dropout": ("dropout", dict(shape=(512, 512), keep_prob=0.9, dtype="float32")),
    "memory": ("memory", dict(data="mnist", sizes=_MNIST, batch=128, dtype="float32")),
    "threads": ("threads", dict(data="mnist", sizes=_MNIST, batch=128, dtype="float32")),
    "infer": ("infer", dict(sizes=_MNIST, rows=(1, 64, 10000), dtypes=("float32", "float64"),
                            batch_norm=(False, True))),
    "infer-threads": ("infer_threads", dict(sizes=_MNIST, rows=64, callers=4, dtype="float32")),
    "peak": ("peak", dict(sizes={"float32": 2048, "float64": 1536})),
}
"""Every case the comparison knows, in the order they run."""

_N_SAMPLES = {"mnist": 60000, "moons": 10000}
_N_SAMPLES_QUICK = {"mnist": 1024, "moons": 1000}
_PEERS = ("fastnn", "torch", "sklearn", "reference", "gemm_floor")
# Pause between peers: OpenBLAS's idle workers spin for about 2**28 cycles (~0.1 s) after a call
# and libgomp's for a while too; a peer timed meanwhile would share its cores with them.
_SETTLE_S = 0.25
_ENV_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
             "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "MKL_NUM_THREADS", "FASTNN_NUM_THREADS")


def _pause(args):
    time.sleep(0.0 if args.quick else _SETTLE_S)


def epoch_flop(sizes, n_samples):
    """FLOP of one training epoch: forward, dW and dX products (dX of the first layer skipped).

    ``2·m·k·n`` per product; elementwise work is not counted.  784-512-256-10 over 60,000
    examples gives 1.44e11.
    """
    fwd = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    dx = sum(a * b for a, b in zip(sizes[1:-1], sizes[2:]))
    return 2.0 * n_samples * (2 * fwd + dx)


def _layers_spec(sizes):
    acts = ["relu"] * (len(sizes) - 2) + ["softmax"]
    return [{"units": u, "activation": a} for u, a in zip(sizes[1:], acts)]


def _make_data(name, n, dtype):
    import fastnn as fn
    if name == "mnist":
        X, y = fn.datasets.synthetic_mnist(n, seed=0, dtype=dtype)
    else:
        X, y = fn.datasets.moons(n, seed=0, noise=0.2)
        X = np.ascontiguousarray(X, dtype=dtype)
    return X, y.astype(np.int64)


def _make_model(sizes, dtype, keep_prob=1.0):
    import fastnn as fn
    acts = ["relu"] * (len(sizes) - 2) + ["softmax"]
    layers = [fn.Dense(u, a, keep_prob=keep_prob if a != "softmax" else 1.0)
              for u, a in zip(sizes[1:], acts)]
    return fn.MLP(sizes[0], layers, dtype=dtype, seed=0)


def _median(xs):
    return statistics.median(xs) if xs else float("nan")


# ---- peers: each returns a callable that trains one epoch ------------------------------------

def _fastnn_epoch(X, y, sizes, batch, dtype):
    import fastnn as fn
    trainer = fn.Trainer(_make_model(sizes, dtype), fn.optim.Adam(1e-3), batch_size=batch, seed=0)

    def epoch():
        history = trainer.fit(X, y, epochs=1, progress=False)
        return history["time"][-1]      # the epoch loop alone (fit's input checks excluded)
    return epoch, {"optimizer": "fastnn.optim.Adam (fused, flat buffers)"}


def _torch_epoch(X, y, sizes, batch, dtype, threads):
    import torch
    torch.set_num_threads(threads)
    tdtype = torch.float32 if dtype == "float32" else torch.float64
    weights = _make_model(sizes, dtype).get_weights()
    mods = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        lin = torch.nn.Linear(n_in, n_out, dtype=tdtype)
        with torch.no_grad():       # fastnn's W is (n_in, n_out); torch stores its transpose
            lin.weight.copy_(torch.from_numpy(weights[f"{i}.W"].T.copy()))
            lin.bias.copy_(torch.from_numpy(weights[f"{i}.b"]))
        mods.append(lin)
        if i < len(sizes) - 2:
            mods.append(torch.nn.ReLU())
    net = torch.nn.Sequential(*mods)
    opt, how = None, None
    try:
        opt = torch.optim.Adam(net.parameters(), lr=1e-3, fused=True)
        how = "torch.optim.Adam(fused=True)"
        loss = net(torch.zeros(2, sizes[0], dtype=tdtype)).sum()
        loss.backward()
        opt.step()      # fused may be refused only at the first step
        opt.zero_grad(set_to_none=True)
    except (RuntimeError, TypeError, ValueError) as exc:
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        how = f"torch.optim.Adam (default foreach; fused refused: {exc})"
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    gen = torch.Generator().manual_seed(0)
    n = X.shape[0]
    loss_fn = torch.nn.functional.cross_entropy

    def epoch():
        t0 = time.perf_counter()
        perm = torch.randperm(n, generator=gen)
        for k in range(0, n, batch):
            idx = perm[k:k + batch]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(net(Xt[idx]), yt[idx])
            loss.backward()
            opt.step()
        return time.perf_counter() - t0
    return epoch, {"optimizer": how, "version": torch.__version__,
                   "torch_threads": torch.get_num_threads()}


def _sklearn_epoch(X, y, sizes, batch, dtype):
    import sklearn
    from sklearn.neural_network import MLPClassifier
    clf = MLPClassifier(hidden_layer_sizes=tuple(sizes[1:-1]), activation="relu", solver="adam",
                        alpha=0.0, batch_size=batch, learning_rate_init=1e-3, max_iter=1,
                        shuffle=True, random_state=0, early_stopping=False)
    classes = np.arange(sizes[-1])
    state = {"first": True}

    def epoch():
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if state["first"]:      # partial_fit is one epoch over the data
                clf.partial_fit(X, y, classes=classes)
                state["first"] = False
            else:
                clf.partial_fit(X, y)
        return time.perf_counter() - t0
    note = "MLPClassifier(solver='adam', alpha=0), partial_fit = 1 epoch"
    if sizes[-1] == 2:
        note += "; binary: 1 logistic output unit instead of a 2-way softmax"
    return epoch, {"optimizer": note, "version": sklearn.__version__}


def _reference_epoch(X, y, sizes, batch, dtype):
    from fastnn import reference as ref
    params = {k: v for k, v in _make_model(sizes, dtype).get_weights().items()}
    layers = _layers_spec(sizes)
    v = {k: np.zeros_like(p) for k, p in params.items()}
    s = {k: np.zeros_like(p) for k, p in params.items()}
    rng = np.random.default_rng(0)
    state = {"t": 0}
    n = X.shape[0]

    def epoch():
        t0 = time.perf_counter()
        perm = rng.permutation(n)
        for k in range(0, n, batch):
            idx = perm[k:k + batch]
            _, grads = ref.mlp_loss_and_grads(params, layers, X[idx], y[idx])
            state["t"] += 1
            for key, g in grads.items():
                params[key], v[key], s[key] = ref.adam_step(params[key], g, v[key], s[key],
                                                            state["t"], lr=1e-3)
        return time.perf_counter() - t0
    return epoch, {"optimizer": "fastnn.reference.adam_step per array (NumPy)"}


def _gemm_floor_epoch(X, sizes, batch, dtype):
    """The 8 matrix products of every step of an epoch through NumPy's BLAS, nothing else."""
    rng = np.random.default_rng(0)
    L = len(sizes) - 1
    W = [rng.standard_normal((a, b)).astype(dtype) * 0.05 for a, b in zip(sizes[:-1], sizes[1:])]
    dW = [np.empty_like(w) for w in W]
    n = X.shape[0]

    def bufs(m):
        Z = [np.empty((m, b), dtype=dtype) for b in sizes[1:]]
        dZ = [rng.standard_normal((m, b)).astype(dtype) for b in sizes[1:]]
        dA = [np.empty((m, b), dtype=dtype) for b in sizes[1:]]
        return Z, dZ, dA
    full, tail = bufs(batch), bufs(n % batch) if n % batch else None

    def epoch():
        t0 = time.perf_counter()
        for k in range(0, n, batch):
            Xb = X[k:k + batch]
            Z, dZ, dA = full if Xb.shape[0] == batch else tail
            A = Xb
            for i in range(L):                      # forward: Z_i = A_{i-1} W_i
                np.matmul(A, W[i], out=Z[i])
                A = Z[i]
            for i in reversed(range(L)):            # backward: dW_i and dA_{i-1}
                A_prev = Xb if i == 0 else Z[i - 1]
                np.matmul(A_prev.T, dZ[i], out=dW[i])
                if i > 0:
                    np.matmul(dZ[i], W[i].T, out=dA[i - 1])
        return time.perf_counter() - t0
    return epoch, {"note": "3 forward + 3 dW + 2 dX GEMMs per step, NumPy BLAS"}


def _run_train_case(name, cfg, args, threads):
    n = (_N_SAMPLES_QUICK if args.quick else _N_SAMPLES)[cfg["data"]]
    X, y = _make_data(cfg["data"], n, cfg["dtype"])
    sizes, batch, dtype = cfg["sizes"], cfg["batch"], cfg["dtype"]
    flop = epoch_flop(sizes, n)
    peers = {}
    skipped = {}
    makers = {
        "fastnn": lambda: _fastnn_epoch(X, y, sizes, batch, dtype),
        "torch": lambda: _torch_epoch(X, y, sizes, batch, dtype, threads),
        "sklearn": lambda: _sklearn_epoch(X, y, sizes, batch, dtype),
        "reference": lambda: _reference_epoch(X, y, sizes, batch, dtype),
        "gemm_floor": lambda: _gemm_floor_epoch(X, sizes, batch, dtype),
    }
    for peer in _PEERS:
        if peer not in args.peers:
            continue
        try:
            peers[peer] = makers[peer]()
        except ImportError as exc:
            skipped[peer] = f"not installed ({exc})"
    times = {p: [] for p in peers}
    for p, (epoch, _) in peers.items():     # warm-up epoch
        epoch()
        _pause(args)
    for _ in range(args.repeat):
        for p, (epoch, _) in peers.items():
            times[p].append(epoch())
            _pause(args)
    base = _median(times.get("fastnn", []))
    results = {}
    for p, (_, info) in peers.items():
        med = _median(times[p])
        results[p] = dict(info, times_s=times[p], median_s=med, samples_per_s=n / med,
                          gflops=flop / med / 1e9,
                          ratio_to_fastnn=med / base if base == base else float("nan"))
    for p, why in skipped.items():
        results[p] = {"skipped": why}
    return {"case": name, "kind": "train", "n_samples": n, "sizes": list(sizes),
            "batch_size": batch, "dtype": dtype, "flop_per_epoch": flop, "results": results}


def _run_scaling_case(name, cfg, args, threads):
    import fastnn as fn
    n = (_N_SAMPLES_QUICK if args.quick else _N_SAMPLES)[cfg["data"]]
    X, y = _make_data(cfg["data"], n, cfg["dtype"])
    counts = sorted({1, threads})
    epochs = {}
    for t in counts:
        fn.set_num_threads(t)
        epochs[t] = _fastnn_epoch(X, y, cfg["sizes"], cfg["batch"], cfg["dtype"])[0]
        epochs[t]()
    times = {t: [] for t in counts}
    for _ in range(args.repeat):
        for t in counts:
            fn.set_num_threads(t)
            times[t].append(epochs[t]())
            _pause(args)
    fn.set_num_threads(threads)
    med = {t: _median(times[t]) for t in counts}
    return {"case": name, "kind": "scaling", "n_samples": n, "sizes": list(cfg["sizes"]),
            "batch_size": cfg["batch"], "dtype": cfg["dtype"],
            "results": {f"fastnn_{t}t": {"times_s": times[t], "median_s": med[t]} for t in counts},
            "speedup": med[1] / med[threads]}


def _median_time(fn_, number, repeat):
    """Median over ``repeat`` blocks of the mean time of ``number`` calls."""
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn_()
        out.append((time.perf_counter() - t0) / number)
    return _median(out)


def _interleaved(calls, number, args, reset=None):
    """Median seconds per call of each of ``calls`` (name -> callable), timed in interleaved
    rounds: each round times a block of ``number`` calls of every callable in turn, with a pause
    between them, so that the machine's drift hits all alike.  ``reset`` runs before each block."""
    times = {k: [] for k in calls}
    for _ in range(args.repeat):
        for k, f in calls.items():
            if reset is not None:
                reset()
            times[k].append(_median_time(f, number, 1))
            _pause(args)
    return {k: _median(v) for k, v in times.items()}


def _run_gemm_case(name, cfg, args, threads):
    """fastnn's GEMM against np.matmul for each product of the step, same threads."""
    import fastnn as fn
    from threadpoolctl import threadpool_limits
    dtype, m = cfg["dtype"], cfg["batch"]
    sizes = cfg["sizes"]
    rng = np.random.default_rng(0)
    shapes = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        X = rng.standard_normal((m, a)).astype(dtype)
        W = rng.standard_normal((a, b)).astype(dtype)
        dZ = rng.standard_normal((m, b)).astype(dtype)
        shapes.append((f"fwd{i + 1} ({m}x{a})@({a}x{b})", X, W))
        shapes.append((f"dW{i + 1} ({a}x{m})@({m}x{b})", X.T, dZ))
        if i > 0:
            shapes.append((f"dX{i + 1} ({m}x{b})@({b}x{a})", dZ, W.T))
    number = 5 if args.quick else 50
    results = {}
    with threadpool_limits(limits=threads, user_api="blas"):
        for label, A, B in shapes:
            C = np.empty((A.shape[0], B.shape[1]), dtype=dtype)
            flop = 2.0 * A.shape[0] * A.shape[1] * B.shape[1]
            np.matmul(A, B, out=C)
            fn._core.gemm(A, B, C, threads)
            _pause(args)       # BLAS workers asleep before fastnn is timed
            t = _interleaved({"fastnn": lambda: fn._core.gemm(A, B, C, threads),
                              "blas": lambda: np.matmul(A, B, out=C)}, number, args)
            t_f, t_b = t["fastnn"], t["blas"]
            results[label] = {"fastnn_s": t_f, "blas_s": t_b, "fastnn_gflops": flop / t_f / 1e9,
                              "blas_gflops": flop / t_b / 1e9, "fastnn_vs_blas": t_b / t_f}
    return {"case": name, "kind": "gemm", "dtype": dtype, "batch_size": m,
            "kernel": fn._core.gemm_kernel_name(), "results": results}


def _run_adam_case(name, cfg, args, threads):
    """One Adam step over the MNIST model's 535,818 parameters."""
    import fastnn as fn
    from fastnn import reference as ref
    sizes, dtype = cfg["sizes"], cfg["dtype"]
    shapes = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        shapes += [(a, b), (b,)]
    count = sum(int(np.prod(s)) for s in shapes)
    rng = np.random.default_rng(0)
    p = rng.standard_normal(count).astype(dtype)
    g = rng.standard_normal(count).astype(dtype) * 1e-3
    v, s = np.zeros_like(p), np.zeros_like(p)
    number = 20 if args.quick else 200
    state = {"t": 0}

    def fastnn_step():
        state["t"] += 1
        fn._core.optim_step(3, 1e-3, 0.9, 0.999, 1e-8, 0.0, state["t"], p, g, v, s, threads)
    results = {}
    fastnn_step()
    results["fastnn"] = {"step_s": _median_time(fastnn_step, number, args.repeat)}
    _pause(args)
    refp, refv, refs = p.copy(), v.copy(), s.copy()
    rt = {"t": 0}

    def ref_step():
        nonlocal refp, refv, refs
        rt["t"] += 1
        refp, refv, refs = ref.adam_step(refp, g, refv, refs, rt["t"], lr=1e-3)
    results["reference"] = {"step_s": _median_time(ref_step, max(2, number // 10), args.repeat)}
    _pause(args)
    try:
        import torch
        torch.set_num_threads(threads)
        tparams = [torch.nn.Parameter(torch.from_numpy(rng.standard_normal(s).astype(dtype)))
                   for s in shapes]
        for tp in tparams:
            tp.grad = torch.from_numpy(rng.standard_normal(tp.shape).astype(dtype) * 1e-3)
        for label, kw in (("torch_fused", {"fused": True}), ("torch_foreach", {"foreach": True})):
            try:
                topt = torch.optim.Adam(tparams, lr=1e-3, **kw)
                topt.step()
            except (RuntimeError, TypeError, ValueError) as exc:
                results[label] = {"skipped": str(exc)}
                continue
            results[label] = {"step_s": _median_time(topt.step, number, args.repeat)}
            _pause(args)
    except ImportError as exc:
        results["torch_fused"] = {"skipped": f"not installed ({exc})"}
    base = results["fastnn"]["step_s"]
    for r in results.values():
        if "step_s" in r:
            r["ratio_to_fastnn"] = r["step_s"] / base
    return {"case": name, "kind": "adam", "dtype": dtype, "n_params": count, "results": results}


def _run_dropout_case(name, cfg, args, threads):
    """Dropout (mask + apply) on one activation: fastnn's fused, threaded Philox kernel
    (dropout_forward, keeping the mask for the backward pass, on all `threads` as torch uses its
    threads) against torch and NumPy."""
    import fastnn as fn
    shape, keep, dtype = cfg["shape"], cfg["keep_prob"], cfg["dtype"]
    count = int(np.prod(shape))
    rng = np.random.default_rng(0)
    x0 = rng.standard_normal(count).astype(dtype)
    x = x0.copy()
    mask = np.empty(count, dtype=np.uint8)
    number = 10 if args.quick else 100
    state = {"step": 0}

    def fastnn_dropout():
        state["step"] += 1
        fn._core.dropout_forward(x, mask, 0, state["step"], 0, 0, keep, threads)

    nrng = np.random.default_rng(0)

    def numpy_dropout():
        return x0 * (nrng.random(count, dtype=np.float32) < keep) / np.float32(keep)
    calls = {"fastnn": fastnn_dropout, "numpy": numpy_dropout}
    skipped = {}
    try:
        import torch
        torch.set_num_threads(threads)
        xt = torch.from_numpy(x0.reshape(shape))
        drop = torch.nn.functional.dropout

        def torch_dropout():
            return drop(xt, p=1.0 - keep, training=True)
        calls["torch"] = torch_dropout
    except ImportError as exc:
        skipped["torch"] = {"skipped": f"not installed ({exc})"}
    for f in calls.values():
        f()
    # x is reset before each block so that the repeated in-place scaling stays finite
    t = _interleaved(calls, number, args, reset=lambda: np.copyto(x, x0))
    results = {k: {"call_s": t[k]} for k in calls}
    results.update(skipped)
    base = results["fastnn"]["call_s"]
    for r in results.values():
        if "call_s" in r:
            r["ns_per_element"] = r["call_s"] / count * 1e9
            r["ratio_to_fastnn"] = r["call_s"] / base
    return {"case": name, "kind": "dropout", "shape": list(shape), "keep_prob": keep,
            "results": results}


def _memory_child(data_path, sizes, batch, dtype, threads):
    """Run in a fresh process: peak resident memory of a 2-epoch fit above the imports."""
    import fastnn as fn

    def status(key):
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
        return None
    fn.set_num_threads(threads)
    base = status("VmRSS")
    with np.load(data_path) as z:
        X, y = z["X"], z["y"]
    model = _make_model(sizes, dtype)
    trainer = fn.Trainer(model, fn.optim.Adam(1e-3), batch_size=batch, seed=0)
    try:    # reset the high-water mark so data loading does not count
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        reset = True
    except OSError:
        reset = False
    trainer.fit(X, y, epochs=2, progress=False)
    peak = status("VmHWM")
    itemsize = np.dtype(dtype).itemsize
    budget = (X.nbytes + y.nbytes + 4 * model.n_params * itemsize
              + 3 * batch * sum(sizes) * itemsize + 60 * 2**20)
    print(json.dumps({"rss_before_data": base, "peak_rss": peak, "peak_above_imports":
                      peak - base if peak and base else None, "budget": budget,
                      "hwm_reset": reset, "data_bytes": X.nbytes + y.nbytes,
                      "n_params": model.n_params}))


def _run_memory_case(name, cfg, args, threads):
    if not os.path.exists("/proc/self/status"):
        return {"case": name, "kind": "memory", "results": {"skipped": "needs Linux /proc"}}
    n = (_N_SAMPLES_QUICK if args.quick else _N_SAMPLES)[cfg["data"]]
    X, y = _make_data(cfg["data"], n, cfg["dtype"])
    with tempfile.TemporaryDirectory(prefix="fastnn-bench-") as tmp:
        path = os.path.join(tmp, "data.npz")
        np.savez(path, X=X, y=y)
        code = ("import sys, json; from fastnn.bench import _memory_child; "
                "_memory_child(sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), "
                "sys.argv[4], int(sys.argv[5]))")
        proc = subprocess.run([sys.executable, "-c", code, path, json.dumps(cfg["sizes"]),
                               str(cfg["batch"]), cfg["dtype"], str(threads)],
                              capture_output=True, text=True, env=os.environ.copy())
    if proc.returncode != 0:
        return {"case": name, "kind": "memory",
                "results": {"skipped": f"child failed: {proc.stderr.strip()[-500:]}"}}
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"case": name, "kind": "memory", "n_samples": n, "batch_size": cfg["batch"],
            "results": res}


class _ThreadSampler:
    """Samples this process's OS threads from /proc/self/task about every millisecond in a
    background thread: for each sample, how many (other than the sampler) are runnable (state
    R: running or waiting for a core, spinning included) and how many exist.  Oversubscription
    is more runnable threads than cores, whichever pool (fastnn's OpenMP, BLAS, ...) they are
    from."""

    def __init__(self, interval_s=0.001):
        self.interval_s = interval_s
        self.samples = []           # (runnable, total)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fastnn-thread-sampler",
                                        daemon=True)

    @staticmethod
    def available():
        return os.path.isdir("/proc/self/task")

    def _run(self):
        me = str(threading.get_native_id())
        while not self._stop.is_set():
            runnable = total = 0
            for tid in os.listdir("/proc/self/task"):
                if tid == me:
                    continue
                try:
                    with open(f"/proc/self/task/{tid}/stat") as f:
                        stat = f.read()
                except OSError:         # the thread ended meanwhile
                    continue
                total += 1
                runnable += stat[stat.rindex(")") + 2] == "R"
            self.samples.append((runnable, total))
            time.sleep(self.interval_s)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        return False

    def summary(self):
        runnable = [r for r, _ in self.samples]
        hist = {}
        for r in runnable:
            hist[r] = hist.get(r, 0) + 1
        return {"n_samples": len(self.samples), "max_runnable": max(runnable, default=0),
                "max_threads": max((t for _, t in self.samples), default=0),
                "runnable_histogram": {str(k): hist[k] for k in sorted(hist)}}


def _run_threads_case(name, cfg, args, threads):
    """No oversubscription: runnable OS threads of this process sampled during a fit (fastnn's
    OpenMP team and every BLAS pool loaded, numpy's and torch's included), against the cores."""
    import fastnn as fn
    if not _ThreadSampler.available():
        return {"case": name, "kind": "threads", "results": {"skipped": "needs Linux /proc"}}
    n = (_N_SAMPLES_QUICK if args.quick else _N_SAMPLES)[cfg["data"]]
    X, y = _make_data(cfg["data"], n, cfg["dtype"])
    trainer = fn.Trainer(_make_model(cfg["sizes"], cfg["dtype"]), fn.optim.Adam(1e-3),
                         batch_size=cfg["batch"], seed=0)
    trainer.fit(X, y, epochs=1, progress=False)
    np.dot(X[:256].T, X[:256])      # wake the BLAS pool, as a user's script would have
    _pause(args)
    with _ThreadSampler() as sampler:
        trainer.fit(X, y, epochs=1, progress=False)
    res = sampler.summary()
    res.update(cores=_cores(), fastnn_threads=fn.get_num_threads())
    try:
        from threadpoolctl import threadpool_info
        res["pools"] = [{"api": p.get("internal_api"), "num_threads": p.get("num_threads"),
                         "library": os.path.basename(p.get("filepath", ""))}
                        for p in threadpool_info()]
    except ImportError:
        res["pools"] = []
    return {"case": name, "kind": "threads", "n_samples": n, "batch_size": cfg["batch"],
            "results": res}


def _run_peak_case(name, cfg, args, threads):
    """The most FLOP/s this machine gives a GEMM: a large square product through NumPy's BLAS,
    PyTorch's (where installed) and fastnn's GEMM, on 1 and on all threads, per dtype.  The speed
    targets are set against it: the peak floor of a case is its FLOP at this rate."""
    import fastnn as fn
    from threadpoolctl import threadpool_limits
    try:
        import torch
    except ImportError:
        torch = None
    rng = np.random.default_rng(0)
    results = {}
    for dtype, size in cfg["sizes"].items():
        size = 256 if args.quick else size
        A = rng.standard_normal((size, size)).astype(dtype)
        B = rng.standard_normal((size, size)).astype(dtype)
        C = np.empty((size, size), dtype=dtype)
        flop = 2.0 * size ** 3
        number = 2 if args.quick else max(1, int(4e9 / flop))
        for t in sorted({1, threads}):
            calls = {"fastnn": lambda: fn._core.gemm(A, B, C, t),
                     "blas": lambda: np.matmul(A, B, out=C)}
            if torch is not None:
                tA, tB, tC = torch.from_numpy(A), torch.from_numpy(B), torch.from_numpy(C)
                calls["torch"] = lambda: torch.matmul(tA, tB, out=tC)
            with threadpool_limits(limits=t, user_api="blas"):
                prev = torch.get_num_threads() if torch is not None else None
                if torch is not None:
                    torch.set_num_threads(t)
                try:
                    for call in calls.values():
                        call()
                    _pause(args)
                    tm = _interleaved(calls, number, args)
                finally:
                    if torch is not None:
                        torch.set_num_threads(prev)
            results[f"{dtype}_{t}t"] = {"size": size, "threads": t,
                                        **{f"{k}_gflops": flop / v / 1e9 for k, v in tm.items()}}
    return {"case": name, "kind": "peak", "threads": threads, "results": results}


# ---- inference ----------------------------------------------------------------------------------

def _infer_models(sizes, dtype, batch_norm):
    """The same trained-looking network in fastnn, PyTorch and scikit-learn (where installed):
    fastnn's initial weights, random biases and batch-norm running statistics copied into the
    others.  Returns (fastnn model, {peer: predict_proba callable of X}, {peer: skip reason})."""
    import fastnn as fn
    rng = np.random.default_rng(1)
    acts = ["relu"] * (len(sizes) - 2) + ["softmax"]
    model = fn.MLP(sizes[0], [fn.Dense(u, a, batch_norm=batch_norm and a != "softmax")
                              for u, a in zip(sizes[1:], acts)], dtype=dtype, seed=0)
    w = model.get_weights()
    for key in w:
        if key.endswith((".b", ".beta", ".running_mean")):
            w[key] = (rng.standard_normal(w[key].shape) * 0.1).astype(dtype)
        elif key.endswith((".gamma", ".running_var")):
            w[key] = rng.uniform(0.5, 1.5, w[key].shape).astype(dtype)
    model.set_weights(w)
    peers = {"fastnn": model.predict_proba}
    skipped = {}
    try:
        import torch
        td = getattr(torch, dtype)
        mods = []
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            lin = torch.nn.Linear(n_in, n_out, bias=f"{i}.b" in w, dtype=td)
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(w[f"{i}.W"].T)))
                if f"{i}.b" in w:
                    lin.bias.copy_(torch.from_numpy(w[f"{i}.b"]))
            mods.append(lin)
            if f"{i}.gamma" in w:
                bn = torch.nn.BatchNorm1d(n_out, eps=1e-5, dtype=td)
                with torch.no_grad():
                    for name, key in (("weight", "gamma"), ("bias", "beta"),
                                      ("running_mean", "running_mean"),
                                      ("running_var", "running_var")):
                        getattr(bn, name).copy_(torch.from_numpy(w[f"{i}.{key}"]))
                mods.append(bn)
            mods.append(torch.nn.ReLU() if i < len(sizes) - 2 else torch.nn.Softmax(dim=1))
        tmodel = torch.nn.Sequential(*mods).eval()

        def torch_predict(X):
            with torch.inference_mode():
                return tmodel(torch.from_numpy(X)).numpy()
        peers["torch"] = torch_predict
    except ImportError as exc:
        skipped["torch"] = f"not installed ({exc})"
    if batch_norm:
        skipped["sklearn"] = "no batch norm in scikit-learn's MLP"
    else:
        try:
            from sklearn.neural_network import MLPClassifier
            clf = MLPClassifier(hidden_layer_sizes=sizes[1:-1], max_iter=1)
            Xs = rng.standard_normal((sizes[-1] * 2, sizes[0])).astype(dtype)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                clf.fit(Xs, np.arange(sizes[-1] * 2) % sizes[-1])
            clf.coefs_ = [w[f"{i}.W"] for i in range(len(sizes) - 1)]
            clf.intercepts_ = [w[f"{i}.b"] for i in range(len(sizes) - 1)]
            peers["sklearn"] = clf.predict_proba
        except ImportError as exc:
            skipped["sklearn"] = f"not installed ({exc})"
    return model, peers, skipped


def _run_infer_case(name, cfg, args, threads):
    """predict_proba of one network on 1, 64 and 10,000 rows: latency and throughput of each
    peer with the same weights, timed in interleaved rounds; the largest output difference to
    fastnn is reported beside the times."""
    sizes = cfg["sizes"]
    macs = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    results = {}
    rng = np.random.default_rng(0)
    for dtype in cfg["dtypes"]:
        for bn in cfg["batch_norm"]:
            model, peers, skipped = _infer_models(sizes, dtype, bn)
            for rows in cfg["rows"]:
                rows = min(rows, 256) if args.quick else rows
                X = rng.standard_normal((rows, sizes[0])).astype(dtype)
                ref_out = model.predict_proba(X)
                calls = {p: (lambda f=f: f(X)) for p, f in peers.items()}
                diff = {p: float(np.max(np.abs(np.asarray(f(), dtype=np.float64) - ref_out)))
                        for p, f in calls.items()}
                number = max(1, int((3e-3 if args.quick else 0.1) / max(rows * macs / 2e10, 2e-5)))
                tm = _interleaved(calls, number, args)
                key = f"{dtype}{'-bn' if bn else ''}-{rows}"
                results[key] = {
                    "dtype": dtype, "batch_norm": bn, "rows": rows, "flop": 2.0 * rows * macs,
                    **{f"{p}_s": t for p, t in tm.items()},
                    **{f"{p}_max_diff": d for p, d in diff.items() if p != "fastnn"},
                    **{f"{p}_vs_fastnn": t / tm["fastnn"] for p, t in tm.items() if p != "fastnn"},
                    **{f"{p}_skipped": why for p, why in skipped.items()}}
    return {"case": name, "kind": "infer", "sizes": list(sizes), "results": results}


def _run_infer_threads_case(name, cfg, args, threads):
    """Concurrent predict: `callers` Python threads each making 64-row predict_proba calls on
    ONE model, against one thread making the same calls; every output checked."""
    model, _, _ = _infer_models(cfg["sizes"], cfg["dtype"], False)
    rng = np.random.default_rng(0)
    batches = [rng.standard_normal((cfg["rows"], cfg["sizes"][0])).astype(cfg["dtype"])
               for _ in range(cfg["callers"])]
    want = [model.predict_proba(X) for X in batches]
    calls_each = 20 if args.quick else 400
    wrong = []

    def work(i, n):
        for _ in range(n):
            if not np.array_equal(model.predict_proba(batches[i]), want[i]):
                wrong.append(i)

    def one_thread():
        t0 = time.perf_counter()
        for i in range(cfg["callers"]):
            work(i, calls_each)
        return time.perf_counter() - t0

    def many_threads():
        ts = [threading.Thread(target=work, args=(i, calls_each)) for i in range(cfg["callers"])]
        t0 = time.perf_counter()
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        return time.perf_counter() - t0

    times = {"one": [], "many": []}
    for _ in range(args.repeat):
        times["one"].append(one_thread())
        _pause(args)
        times["many"].append(many_threads())
        _pause(args)
    one, many = _median(times["one"]), _median(times["many"])
    return {"case": name, "kind": "infer_threads", "rows": cfg["rows"],
            "callers": cfg["callers"], "calls": calls_each * cfg["callers"],
            "results": {"one_thread_s": one, "threads_s": many, "speedup": one / many,
                        "wrong_outputs": len(wrong)}}


_RUNNERS = {"train": _run_train_case, "scaling": _run_scaling_case, "gemm": _run_gemm_case,
            "adam": _run_adam_case, "dropout": _run_dropout_case, "memory": _run_memory_case,
            "threads": _run_threads_case, "peak": _run_peak_case, "infer": _run_infer_case,
            "infer_threads": _run_infer_threads_case}


# ---- environment and printing -----------------------------------------------------------------

def _environment(threads):
    import fastnn as fn
    env = {"python": sys.version.split()[0], "numpy": np.__version__,
           "fastnn": fn.__version__, "platform": platform.platform(),
           "machine": platform.machine(), "cpu": _cpu_name(), "usable_cores": _cores(),
           "threads": threads, "fastnn_openmp": fn._core.has_openmp(),
           "fastnn_gemm_kernel": fn._core.gemm_kernel_name(), "fastnn_isa": fn._core.get_isa(),
           "isas_supported": list(fn._core.isas_supported()),
           "env": {k: os.environ.get(k) for k in _ENV_VARS}, "loadavg_start": _loadavg()}
    for mod in ("torch", "sklearn"):
        try:
            env[mod] = __import__(mod).__version__
        except ImportError:
            env[mod] = None
    try:
        from threadpoolctl import threadpool_info
        env["threadpools"] = threadpool_info()
    except ImportError:
        env["threadpools"] = []
    return env


def _loadavg():
    try:
        return list(os.getloadavg())
    except (AttributeError, OSError):
        return None


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _cores():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _fmt(x, spec):
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def _print_env(env, out):
    print(f"fastnn {env['fastnn']}  numpy {env['numpy']}  torch {env['torch']}  "
          f"scikit-learn {env['sklearn']}  python {env['python']}", file=out)
    print(f"CPU: {env['cpu']}, {env['usable_cores']} usable cores; threads per peer: "
          f"{env['threads']}; fastnn ISA in use: {env['fastnn_isa']} (CPU runs "
          f"{', '.join(env['isas_supported'])})", file=out)
    load = env.get("loadavg_start")
    if load is not None:
        busy = "  (busy machine: other processes compete for the cores)" if load[0] > 0.5 else ""
        print(f"load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}{busy}", file=out)
    set_vars = {k: v for k, v in env["env"].items() if v is not None}
    print(f"env: {set_vars or 'none of ' + ', '.join(_ENV_VARS[:4]) + ' ... set'}", file=out)
    for pool in env["threadpools"]:
        arch = pool.get("architecture")
        print(f"  pool {pool.get('internal_api')}/{pool.get('user_api')}: "
              f"{pool.get('num_threads')} threads{', kernel ' + arch if arch else ''}"
              f" ({os.path.basename(pool.get('filepath', ''))})", file=out)


def _fmt_time(s):
    return f"{s * 1e6:8.1f} us" if s < 1e-3 else f"{s * 1e3:8.2f} ms"


def _print_case(case, out):
    name, kind, res = case["case"], case["kind"], case["results"]
    if kind == "train":
        print(f"\n{name}: {case['n_samples']} x {'-'.join(map(str, case['sizes']))}, batch "
              f"{case['batch_size']}, {case['dtype']}, "
              f"{case['flop_per_epoch'] / 1e9:.1f} GFLOP/epoch", file=out)
        print(f"  {'peer':<11}{'s/epoch':>9}{'samples/s':>12}{'GFLOP/s':>9}{'x fastnn':>10}",
              file=out)
        for peer, r in res.items():
            if "skipped" in r:
                print(f"  {peer:<11}skipped: {r['skipped']}", file=out)
                continue
            print(f"  {peer:<11}{r['median_s']:>9.3f}{r['samples_per_s']:>12,.0f}"
                  f"{r['gflops']:>9.1f}{r['ratio_to_fastnn']:>10.2f}", file=out)
        for peer in ("torch", "sklearn"):
            if "optimizer" in res.get(peer, {}):
                print(f"  {peer}: {res[peer]['optimizer']}", file=out)
    elif kind == "scaling":
        parts = ", ".join(f"{k}: {r['median_s']:.3f} s" for k, r in res.items())
        print(f"\n{name}: fastnn epoch {parts}; speed-up {case['speedup']:.2f}x", file=out)
    elif kind == "gemm":
        print(f"\n{name}: fastnn GEMM ({case['kernel']}) vs NumPy BLAS, batch "
              f"{case['batch_size']}, {case['dtype']}", file=out)
        print(f"  {'product':<28}{'fastnn GF/s':>12}{'BLAS GF/s':>11}{'fastnn/BLAS':>12}",
              file=out)
        for label, r in res.items():
            print(f"  {label:<28}{r['fastnn_gflops']:>12.1f}{r['blas_gflops']:>11.1f}"
                  f"{r['fastnn_vs_blas']:>12.2f}", file=out)
    elif kind in ("adam", "dropout"):
        key = "step_s" if kind == "adam" else "call_s"
        what = (f"one Adam step over {case['n_params']:,} params" if kind == "adam" else
                f"dropout mask+apply on {tuple(case['shape'])}, keep {case['keep_prob']}")
        print(f"\n{name}: {what}", file=out)
        for peer, r in res.items():
            if "skipped" in r:
                print(f"  {peer:<14}skipped: {r['skipped']}", file=out)
            else:
                print(f"  {peer:<14}{r[key] * 1e6:>10.1f} us{r['ratio_to_fastnn']:>8.2f}x",
                      file=out)
    elif kind == "threads":
        if "skipped" in res:
            print(f"\n{name}: skipped: {res['skipped']}", file=out)
        else:
            pools = ", ".join(f"{p['api']} {p['num_threads']}" for p in res["pools"])
            print(f"\n{name}: during a fit (batch {case['batch_size']}, fastnn threads "
                  f"{res['fastnn_threads']}), {res['n_samples']} samples of /proc/self/task: at "
                  f"most {res['max_runnable']} runnable of {res['max_threads']} OS threads on "
                  f"{res['cores']} cores; runnable histogram {res['runnable_histogram']}; "
                  f"pools loaded: {pools}", file=out)
    elif kind == "peak":
        print(f"\n{name}: large square GEMM, GFLOP/s (the most this machine gives)", file=out)
        for label, r in res.items():
            torch_rate = (f"  torch {r['torch_gflops']:7.1f}" if "torch_gflops" in r else "")
            print(f"  {label:<14}{r['size']:>6}^3  fastnn {r['fastnn_gflops']:7.1f}  "
                  f"BLAS {r['blas_gflops']:7.1f}{torch_rate}", file=out)
    elif kind == "infer":
        print(f"\n{name}: predict_proba of {'-'.join(map(str, case['sizes']))}, same weights; "
              f"time per call (x: the peer's time / fastnn's)", file=out)
        for key, r in res.items():
            parts = [f"fastnn {_fmt_time(r['fastnn_s'])}"]
            for p in ("torch", "sklearn"):
                if f"{p}_s" in r:
                    parts.append(f"{p} {_fmt_time(r[p + '_s'])} (x{r[p + '_vs_fastnn']:.2f})")
            print(f"  {key:<20}" + "  ".join(parts), file=out)
    elif kind == "infer_threads":
        print(f"\n{name}: {case['calls']} predict_proba calls of {case['rows']} rows on one "
              f"model: 1 thread {res['one_thread_s']:.3f} s, {case['callers']} threads "
              f"{res['threads_s']:.3f} s (x{res['speedup']:.2f}); wrong outputs "
              f"{res['wrong_outputs']}", file=out)
    elif kind == "memory":
        if "skipped" in res:
            print(f"\n{name}: skipped: {res['skipped']}", file=out)
        else:
            mb = 2**20
            print(f"\n{name}: peak RSS of a fit above the imports "
                  f"{_fmt(res['peak_above_imports'] and res['peak_above_imports'] / mb, '.1f')}"
                  f" MB; budget {res['budget'] / mb:.1f} MB (data {res['data_bytes'] / mb:.1f} MB)",
                  file=out)


# (case, peer, x faster than peer, epoch time / peak floor at most): the speed targets
_SPEED_TARGETS = (("mnist-b512", 1.0, 1.15), ("mnist-b128", 1.5, 1.3), ("mnist-b32", 3.0, 2.0),
                  ("mnist-f64-b128", 1.3, 1.3), ("tiny-b64", 20.0, None))


def _targets(cases):
    """The target table from the measured cases: (case, target, measured, met, note)."""
    by = {c["case"]: c for c in cases}
    rows = []

    def ratio(case, peer):
        r = by.get(case, {}).get("results", {}).get(peer, {})
        return r.get("ratio_to_fastnn")

    def peak(dtype):
        """Best large-GEMM rate any library reached on all threads for dtype, or None."""
        pk = by.get("peak")
        if pk is None:
            return None
        return max((max(v for k, v in r.items() if k.endswith("_gflops"))
                    for key, r in pk["results"].items()
                    if key.startswith(dtype + "_") and r["threads"] == pk["threads"]),
                   default=None)

    for case, goal, floor_goal in _SPEED_TARGETS:
        if case not in by:
            continue
        c = by[case]
        r = ratio(case, "torch")
        if r is not None:
            rows.append((case, f">= {goal:g}x faster than torch", f"{r:.2f}x", r >= goal, ""))
        best = peak(c["dtype"])
        fast = c["results"].get("fastnn", {}).get("median_s")
        if floor_goal is not None and best and fast:
            floor_s = c["flop_per_epoch"] / (best * 1e9)
            multiple = fast / floor_s
            rows.append((case, f"epoch / peak floor <= {floor_goal:g}", f"{multiple:.2f}",
                         multiple <= floor_goal,
                         f"peak floor {floor_s:.3f} s at {best:.0f} GFLOP/s; fastnn {fast:.3f} s"))
    r = ratio("mnist-b128", "sklearn")
    if r is not None:
        rows.append(("mnist-b128", "faster than scikit-learn", f"{r:.2f}x", r >= 1.0, ""))
    if "scaling-b512" in by:
        s = by["scaling-b512"]["speedup"]
        rows.append(("scaling-b512", ">= 1.7x from 1 to all threads", f"{s:.2f}x", s >= 1.7,
                     ""))
    if "memory" in by and "budget" in by["memory"]["results"]:
        r = by["memory"]["results"]
        if r["peak_above_imports"] is not None:
            rows.append(("memory", "peak <= budget", f"{r['peak_above_imports'] / 2**20:.0f} / "
                         f"{r['budget'] / 2**20:.0f} MB", r["peak_above_imports"] <= r["budget"],
                         ""))
    for gcase in ("gemm", "gemm-f64"):
        if gcase in by:
            for label, r in by[gcase]["results"].items():
                if label.split()[0] in ("fwd1", "dW1", "dX2", "fwd2", "dW2"):
                    rows.append((f"{gcase} {label.split()[0]}", ">= 0.95x OpenBLAS",
                                 f"{r['fastnn_vs_blas']:.2f}x", r["fastnn_vs_blas"] >= 0.95, ""))
    r = ratio("adam", "torch_fused")
    if r is not None:
        rows.append(("adam", ">= 1.5x faster than torch fused", f"{r:.2f}x", r >= 1.5, ""))
    r = ratio("dropout", "torch")
    if r is not None:
        rows.append(("dropout", ">= 20x faster than torch", f"{r:.2f}x", r >= 20.0, ""))
    inf = by.get("infer", {}).get("results", {})
    for key, goal, what in (("float32-10000", 1.2, ">= 1.2x torch's throughput"),
                            ("float32-64", 2.0, ">= 2x faster than torch"),
                            ("float32-1", 2.0, "<= 0.5x torch's latency")):
        if "torch_vs_fastnn" in inf.get(key, {}):
            r = inf[key]["torch_vs_fastnn"]
            rows.append((f"infer {key.split('-')[1]} rows", what, f"{r:.2f}x", r >= goal, ""))
    best = peak("float32")
    if "float32-10000" in inf and best:
        r = inf["float32-10000"]
        floor_s = r["flop"] / (best * 1e9)
        multiple = r["fastnn_s"] / floor_s
        rows.append(("infer 10000 rows", "time / peak floor <= 1.3", f"{multiple:.2f}",
                     multiple <= 1.3, f"peak floor {floor_s * 1e3:.1f} ms at {best:.0f} GFLOP/s"))
    it = by.get("infer-threads", {}).get("results", {})
    if "speedup" in it:
        ok = it["speedup"] >= 1.3 and it["wrong_outputs"] == 0
        rows.append(("infer-threads", ">= 1.3x one thread, all right", f"{it['speedup']:.2f}x",
                     ok, f"{it['wrong_outputs']} wrong outputs"))
    th = by.get("threads", {}).get("results", {})
    if "max_runnable" in th:
        rows.append(("threads", "runnable threads in a fit <= cores",
                     f"{th['max_runnable']} of {th['cores']}", th["max_runnable"] <= th["cores"],
                     f"{th['n_samples']} samples, all pools"))
    return rows


def _print_targets(rows, out):
    if not rows:
        return
    print("\nTargets", file=out)
    print(f"  {'case':<16}{'target':<38}{'measured':>14}  met", file=out)
    for case, target, measured, met, note in rows:
        print(f"  {case:<16}{target:<38}{measured:>14}  {'yes' if met else 'NO ':<3}"
              f"{'  ' + note if note else ''}", file=out)


# ---- command line -----------------------------------------------------------------------------

def add_arguments(parser):
    """Add the comparison's options to an ``argparse`` parser (``fastnn bench`` uses this)."""
    parser.add_argument("--cases", default="all",
                        help="comma-separated cases, or 'all' (default); known: "
                             + ", ".join(CASES))
    parser.add_argument("--peers", default=",".join(_PEERS),
                        help="comma-separated peers for the training cases (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="timed rounds per case; medians are reported (default: 3)")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for every peer (default: all usable cores)")
    parser.add_argument("--quick", action="store_true",
                        help="small data sets: a smoke test, not a measurement")
    parser.add_argument("--json", metavar="PATH", default=None, help="write the results as JSON")
    parser.add_argument("--isa", default=None,
                        help="run fastnn's kernels of this instruction set (generic, avx2, "
                             "avx512; default: the best the CPU runs)")
    return parser


def run(args):
    """Run the comparison described by parsed ``args``; returns the exit status."""
    import fastnn as fn
    names = list(CASES) if args.cases in ("all", "") else [c.strip() for c in
                                                            args.cases.split(",") if c.strip()]
    unknown = [c for c in names if c not in CASES]
    if unknown:
        print(f"fastnn bench: unknown case(s) {unknown}; known: {', '.join(CASES)}",
              file=sys.stderr)
        return 2
    peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    bad = [p for p in peers if p not in _PEERS]
    if bad or "fastnn" not in peers:
        print(f"fastnn bench: --peers must include fastnn and name only {_PEERS}, got {peers}",
              file=sys.stderr)
        return 2
    if args.repeat < 1:
        print(f"fastnn bench: --repeat must be >= 1, got {args.repeat}", file=sys.stderr)
        return 2
    args.peers = peers
    if args.isa is not None:
        try:
            fn._core.set_isa(args.isa)
        except ValueError as exc:
            print(f"fastnn bench: error: --isa: {exc}", file=sys.stderr)
            return 2
    threads = args.threads if args.threads is not None else fn.get_num_threads()
    if threads < 1:
        print(f"fastnn bench: --threads must be >= 1, got {threads}", file=sys.stderr)
        return 2
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        threadpool_limits = None
    out = sys.stdout
    fn.set_num_threads(threads)
    env = _environment(threads)
    _print_env(env, out)
    cases = []
    limiter = (threadpool_limits(limits=threads, user_api="blas") if threadpool_limits
               else _nullcontext())
    try:
        with limiter:
            for name in names:
                kind, cfg = CASES[name]
                case = _RUNNERS[kind](name, cfg, args, threads)
                cases.append(case)
                _print_case(case, out)
                out.flush()
    finally:
        fn.set_num_threads(None)
    rows = _targets(cases)
    _print_targets(rows, out)
    if args.json:
        env["loadavg_end"] = _loadavg()
        doc = {"environment": env, "quick": bool(args.quick), "repeat": args.repeat,
               "cases": cases,
               "targets": [{"case": c, "target": t, "measured": m, "met": bool(ok), "note": nt}
                           for c, t, m, ok, nt in rows]}
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=1, default=_json_default)
        print(f"\nwrote {args.json}", file=out)
    return 0


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    return str(obj)


def main(argv=None):
    """``python -m fastnn.bench [options]``."""
    parser = argparse.ArgumentParser(
        prog="fastnn bench",
        description="Train the same MLP with fastnn, PyTorch, scikit-learn and fastnn's NumPy "
                    "reference in one process and compare.")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
