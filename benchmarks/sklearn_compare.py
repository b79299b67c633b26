"""fastnn.sklearn against sklearn.neural_network, same settings: test score and fit time.

Each case fits scikit-learn's estimator and fastnn's drop-in with identical parameters
(``random_state=0``; fastnn trains the same network up to rounding, so both run the same
number of epochs, printed) on the same split, interleaving the two ``--repeat`` times and
keeping the median fit time.  The speed-up is scikit-learn's time over fastnn's.  Both use
every core by default (scikit-learn through its BLAS); ``--fastnn-threads 1,2`` times fastnn
at each of these thread counts as well.

    python benchmarks/sklearn_compare.py [--repeat 3] [--fastnn-threads 1] [--json out.json]
    python benchmarks/sklearn_compare.py --quick        # tiny sizes: a smoke test
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time
import warnings

import numpy as np

from fastnn.bench import _cpu_name


def _cases(quick):
    """(name, kind, X_train, X_test, y_train, y_test, params) for every case."""
    from sklearn.datasets import load_digits, make_classification, make_friedman1
    from sklearn.model_selection import train_test_split

    scale = 0.02 if quick else 1.0
    X, y = load_digits(return_X_y=True)
    digits = train_test_split(X / 16.0, y, test_size=0.25, random_state=0, stratify=y)
    n_big = int(125_000 * scale)
    X, y = make_classification(n_samples=n_big, n_features=50, n_informative=20, n_classes=3,
                               random_state=0)
    big = train_test_split(X, y, test_size=0.2, random_state=0, stratify=y)
    big32 = [a.astype(np.float32) if a.dtype == np.float64 else a for a in big]
    X, y = make_friedman1(n_samples=int(25_000 * scale), n_features=10, noise=1.0,
                          random_state=0)
    reg = train_test_split(X, (y - y.mean()) / y.std(), test_size=0.2, random_state=0)
    epochs = 2 if quick else None
    return [
        (f"digits, {len(digits[0]):,} × 64, 10 classes, adam", "classifier", *digits,
         dict(max_iter=epochs or 200)),
        ("digits, lbfgs", "classifier", *digits, dict(solver="lbfgs", max_iter=epochs or 200)),
        (f"synthetic {len(big[0]):,} × 50, 3 classes, adam, {epochs or 10} epochs", "classifier",
         *big, dict(max_iter=epochs or 10)),
        ("the same in float32", "classifier", *big32, dict(max_iter=epochs or 10)),
        (f"Friedman #1 regression, {len(reg[0]):,} × 10, adam", "regressor", *reg,
         dict(max_iter=epochs or 50)),
    ]


def _fit_time(make, X, y):
    est = make()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # ConvergenceWarning at a fixed number of epochs
        t0 = time.perf_counter()
        est.fit(X, y)
        return time.perf_counter() - t0, est


def run(repeat=3, quick=False, fastnn_threads=()):
    import sklearn
    from sklearn import neural_network as sk

    import fastnn
    from fastnn import sklearn as fs

    rows = []
    for name, kind, X_train, X_test, y_train, y_test, params in _cases(quick):
        params = dict(params, hidden_layer_sizes=(100,), random_state=0)
        peers = {"scikit-learn": lambda: getattr(sk, "MLP" + kind.title())(**params),
                 "fastnn": lambda: getattr(fs, "MLP" + kind.title())(**params)}
        times = {peer: [] for peer in peers}
        for n in fastnn_threads:
            times[f"fastnn, {n} thread(s)"] = []
        fitted = {}
        for _ in range(repeat):
            for peer in times:
                make = peers.get(peer, peers["fastnn"])
                if peer.startswith("fastnn, "):
                    with fastnn.threads(int(peer.split()[1])):
                        seconds, est = _fit_time(make, X_train, y_train)
                else:
                    seconds, est = _fit_time(make, X_train, y_train)
                times[peer].append(seconds)
                fitted[peer] = est
        row = {"case": name, "metric": "accuracy" if kind == "classifier" else "R²"}
        for peer, values in times.items():
            est = fitted[peer]
            row[peer] = {"score": float(est.score(X_test, y_test)), "n_iter": int(est.n_iter_),
                         "seconds": statistics.median(values), "all_seconds": values}
        rows.append(row)
        print(_format_row(row), flush=True)
    env = {"cpu": _cpu_name(), "cores": os.cpu_count(),
           "fastnn_threads": fastnn.get_num_threads(), "sklearn": sklearn.__version__,
           "numpy": np.__version__, "python": platform.python_version(),
           "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
           "repeat": repeat}
    return {"env": env, "rows": rows}


def _format_row(row):
    sk_, ours = row["scikit-learn"], row["fastnn"]
    cells = [row["case"], f"{sk_['score']:.3f} / {ours['score']:.3f}",
             f"{sk_['n_iter']} / {ours['n_iter']}",
             f"{sk_['seconds']:.2f} / {ours['seconds']:.2f}",
             f"{sk_['seconds'] / ours['seconds']:.1f}×"]
    for peer in row:
        if peer.startswith("fastnn, "):
            cells.append(f"{row[peer]['seconds']:.2f} s ({sk_['seconds'] / row[peer]['seconds']:.1f}×)")
    return "| " + " | ".join(cells) + " |"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    parser.add_argument("--fastnn-threads", default="",
                        help="comma-separated thread counts to time fastnn at as well")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    threads = [int(t) for t in args.fastnn_threads.split(",") if t.strip()]
    extra = "".join(f" fastnn, {n} thread(s) |" for n in threads)
    print("| case | score: scikit-learn / fastnn | epochs | fit s: scikit-learn / fastnn "
          f"| speed-up |{extra}")
    print("|---|---|---|---|---|" + "---|" * len(threads))
    result = run(repeat=args.repeat, quick=args.quick, fastnn_threads=threads)
    env = result["env"]
    print(f"\n{env['cpu']}, {env['cores']} cores; fastnn {env['fastnn_threads']} threads; "
          f"scikit-learn {env['sklearn']}, NumPy {env['numpy']}, Python {env['python']}; "
          f"load average at the end {env['load_average']}; median of {env['repeat']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
