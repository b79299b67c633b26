"""Coarse-to-fine random search on a log scale, on the handwritten digits.

The course's advice for hyperparameters: sample at random, never on a grid; sample a learning
rate on a log scale (``lr = 10 ** U(-4, -1)``), a momentum term as ``1 - beta`` on a log scale;
search coarse first, then zoom in on the region that works best.  ``fastnn.search.RandomSearch``
does exactly that: round 1 samples the whole space, round 2 samples the box (on each
hyperparameter's sampling scale) around round 1's best trials.  Trials run in parallel threads
(the compiled kernels release the GIL; workers x threads stay within the cores).

Data: the 1,797 8x8 handwritten digits shipped with fastnn (the same images as scikit-learn's
``load_digits``), split 60 / 20 / 20 into train, dev and test; a 64-h-10 network trained with
Adam; the search minimises the dev error.

    python examples/search.py [--out DIR] [--quick]
"""
import sys

import numpy as np

import fastnn as fn
from fastnn.search import IntUniform, LogUniform, OneMinusLogUniform, RandomSearch

import _course as course

SPACE = {
    "optimizer": "adam",
    "lr": LogUniform(1e-4, 1e-1),
    "beta1": OneMinusLogUniform(0.8, 0.99),
    "n_hidden": IntUniform(16, 256, log=True),
    "l2": LogUniform(1e-4, 1.0),
}


def data():
    X, y = fn.datasets.digits()
    return fn.data.train_dev_test_split(X, y, dev_size=0.2, test_size=0.2, seed=0,
                                        stratify=True)


def run(quick=False):
    """The fitted :class:`RandomSearch`."""
    X, X_dev, _, y, y_dev, _ = data()
    search = RandomSearch(SPACE, n_trials=6 if quick else 16, rounds=2, top_k=2 if quick else 4,
                          seed=0, base={"epochs": 4 if quick else 20, "batch_size": 32})
    return search.fit(X, y, X_dev, y_dev)


def main(argv=None):
    args = course.options(__doc__, argv)
    search = run(args.quick)
    for r, space in enumerate(search.spaces, 1):
        print(f"round {r}: lr in [{space['lr'].low:.2g}, {space['lr'].high:.2g}], "
              f"n_hidden in [{space['n_hidden'].low}, {space['n_hidden'].high}], "
              f"l2 in [{space['l2'].low:.2g}, {space['l2'].high:.2g}]")
        ok = [t for t in search.results if t["round"] == r - 1 and t["status"] == "ok"]
        errors = [t["metrics"]["val_error"] for t in ok]
        print(f"  {len(ok)} trials, dev error best {min(errors):.1%}, median "
              f"{np.median(errors):.1%}")
    best = search.best
    config = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                       for k, v in best["config"].items())
    print(f"best: dev error {best['metrics']['val_error']:.1%} with {config}")

    plt = course.pyplot()
    names = [k for k, v in SPACE.items() if isinstance(v, fn.search.Space)]
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3.4), sharey=True)
    for ax, name in zip(axes, names):
        for r in range(len(search.spaces)):
            trials = [t for t in search.results if t["round"] == r and t["status"] == "ok"]
            xs = [t["config"][name] for t in trials]
            if isinstance(SPACE[name], OneMinusLogUniform):
                xs = [1 - x for x in xs]
            ax.scatter(xs, [t["metrics"]["val_error"] for t in trials], s=14,
                       label=f"round {r + 1}")
        ax.set_xscale("log" if SPACE[name].log else "linear")
        ax.set_xlabel(f"1 - {name}" if isinstance(SPACE[name], OneMinusLogUniform) else name)
    axes[0].set_ylabel("dev error")
    axes[0].legend(fontsize=7)
    course.save(fig, args.out, "search.png")
    return search


if __name__ == "__main__":
    main(sys.argv[1:])
