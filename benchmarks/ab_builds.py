"""A/B of two builds of fastnn's compiled core in ONE process, alternating round by round.

This VM drifts by 10-20 % within minutes (other tenants, clock), so two builds timed one after the
other, or process after process, can show a 25 % "gain" that is not there.  Loading both builds
into the same process and alternating them (ABBA...) makes the drift hit both alike; the figure
to quote is the median of the per-round ratios.

    git stash && python setup.py build_ext --inplace && cp fastnn/_core*.so /tmp/old.so
    git stash pop && python setup.py build_ext --inplace
    PYTHONPATH=$PWD python benchmarks/ab_builds.py /tmp/old.so fastnn/_core*.so --what gemm
    PYTHONPATH=$PWD python benchmarks/ab_builds.py /tmp/old.so fastnn/_core*.so --what epoch
    PYTHONPATH=$PWD python benchmarks/ab_builds.py /tmp/old.so fastnn/_core*.so --what infer

Each .so is copied into a package of its own (``_fastnn_ab0._core``, ...); for ``epoch`` every
build constructs its own trainer's compiled network (``fastnn.model`` looks ``_core`` up when it
builds one), and the rest of fastnn is the Python of the current tree.
"""
import argparse
import importlib
import os
import shutil
import sys
import tempfile

import numpy as np

from fastnn.bench import _median_time


def load_builds(paths, tmp):
    mods = []
    for i, path in enumerate(paths):
        pkg = os.path.join(tmp, f"_fastnn_ab{i}")
        os.makedirs(pkg)
        open(os.path.join(pkg, "__init__.py"), "w").close()
        shutil.copy(path, os.path.join(pkg, os.path.basename(path)))
    sys.path.insert(0, tmp)
    for i in range(len(paths)):
        mods.append(importlib.import_module(f"_fastnn_ab{i}._core"))
    return mods


def _report(label, times, flop=None):
    base = np.array(times[0])
    parts = []
    for i, t in enumerate(times):
        med = float(np.median(t))
        rate = f" {flop / med / 1e9:6.1f} GF/s" if flop else f" {med:.3f} s"
        parts.append(f"build{i}{rate} (x{float(np.median(base / np.array(t))):.3f})")
    print(f"{label:<22}" + "  ".join(parts), flush=True)


def ab_gemm(mods, args):
    """The MNIST step's large products at --batch, and a 1536^3 one."""
    rng = np.random.default_rng(0)
    m = args.batch
    dtype = np.dtype(args.dtype)
    shapes = {f"fwd1 {m}x784x512": (m, 784, 512, False), f"dW1 784x{m}x512": (784, m, 512, True),
              f"fwd2 {m}x512x256": (m, 512, 256, False), f"dW2 512x{m}x256": (512, m, 256, True),
              f"dX2 {m}x256x512": (m, 256, 512, False), "square 1536": (1536, 1536, 1536, False)}
    for label, (mm, k, n, transposed) in shapes.items():
        A = (rng.standard_normal((k, mm)).astype(dtype).T if transposed
             else rng.standard_normal((mm, k)).astype(dtype))
        B = rng.standard_normal((k, n)).astype(dtype)
        C = np.empty((mm, n), dtype=dtype)
        flop = 2.0 * mm * n * k
        number = max(1, int(2e8 / flop))
        times = [[] for _ in mods]
        for r in range(args.rounds):
            order = list(enumerate(mods)) if r % 2 == 0 else list(enumerate(mods))[::-1]
            for i, mod in order:
                times[i].append(
                    _median_time(lambda: mod.gemm(A, B, C, args.threads), number, 1))
        _report(label, times, flop)


def ab_epoch(mods, args):
    """One MNIST-shaped training epoch (784-512-256-10, Adam) per build per round."""
    import fastnn as fn
    import fastnn.model as fmodel
    from fastnn import bench
    fn.set_num_threads(args.threads)
    X, y = bench._make_data("mnist", 60000, args.dtype)
    own = fmodel._core
    trainers = []
    try:
        for mod in mods:
            fmodel._core = mod
            tr = fn.Trainer(bench._make_model((784, 512, 256, 10), args.dtype),
                            fn.optim.Adam(1e-3), batch_size=args.batch, seed=0)
            tr.fit(X, y, epochs=1, progress=False)      # warm-up; builds this build's network
            trainers.append(tr)
    finally:
        fmodel._core = own
    times = [[] for _ in mods]
    for r in range(args.rounds):
        order = list(enumerate(trainers)) if r % 2 == 0 else list(enumerate(trainers))[::-1]
        for i, tr in order:
            times[i].append(tr.fit(X, y, epochs=1, progress=False)["time"][-1])
    _report(f"epoch b{args.batch} {args.dtype}", times)


def ab_infer(mods, args):
    """predict_proba of the MNIST-shaped model (784-512-256-10) on 1, 64 and 10,000 rows."""
    import fastnn as fn
    import fastnn.model as fmodel
    from fastnn import bench
    fn.set_num_threads(args.threads)
    own = fmodel._core
    models = []
    try:
        for mod in mods:
            fmodel._core = mod
            model = bench._make_model((784, 512, 256, 10), args.dtype)
            model.predict_proba(np.zeros((1, 784), dtype=args.dtype))  # builds its network
            models.append(model)
    finally:
        fmodel._core = own
    rng = np.random.default_rng(0)
    for rows in (1, 64, 10000):
        X = rng.standard_normal((rows, 784)).astype(args.dtype)
        number = max(1, int(2e4 / rows))
        times = [[] for _ in mods]
        for r in range(args.rounds):
            order = list(enumerate(models)) if r % 2 == 0 else list(enumerate(models))[::-1]
            for i, model in order:
                times[i].append(_median_time(lambda: model.predict_proba(X), number, 1))
        _report(f"predict {rows} rows", times, 2.0 * rows * 535040)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("builds", nargs="+", help="two or more built _core*.so files")
    p.add_argument("--what", choices=("gemm", "epoch", "infer"), default="gemm")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--rounds", type=int, default=10)
    args = p.parse_args(argv)
    if len(args.builds) < 2:
        p.error("give at least two builds")
    with tempfile.TemporaryDirectory(prefix="fastnn-ab-") as tmp:
        mods = load_builds(args.builds, tmp)
        print(f"{args.what}: {', '.join(f'build{i} = {b}' for i, b in enumerate(args.builds))}; "
              f"{args.threads} threads, {args.rounds} alternating rounds; (x: median per-round "
              "speed-up over build0)")
        {"gemm": ab_gemm, "epoch": ab_epoch, "infer": ab_infer}[args.what](mods, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
