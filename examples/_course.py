"""What the course examples share: the course's own weight draws, the course's mini-batch order,
the command-line options and the figures.

The course writes a layer's weights as ``W[l]`` of shape ``(n_l, n_{l-1})`` and draws them one
layer after the other from NumPy's global generator; fastnn holds ``W`` as ``(n_in, n_out)``, so a
course draw is loaded transposed.  Loading the very same numbers is what lets these examples
reproduce the course's figures, not just their trend.
"""
import argparse
import os

import numpy as np

import fastnn as fn


def course_weights(dims, scale, seed=3):
    """The course's initialisation: ``np.random.seed(seed)``, then for l = 1..L
    ``W[l] = np.random.randn(dims[l], dims[l-1]) * scale(dims[l-1])`` and ``b[l] = 0``,
    returned as a fastnn weight dict (``"{l-1}.W"`` of shape ``(dims[l-1], dims[l])``)."""
    np.random.seed(seed)
    weights = {}
    for layer in range(1, len(dims)):
        W = np.random.randn(dims[layer], dims[layer - 1]) * scale(dims[layer - 1])
        weights[f"{layer - 1}.W"] = np.ascontiguousarray(W.T)
        weights[f"{layer - 1}.b"] = np.zeros(dims[layer])
    return weights


def he(n_prev):
    """He et al.: ``sqrt(2 / n_{l-1})``."""
    return np.sqrt(2.0 / n_prev)


def course_moons():
    """The optimisation exercise's data: ``np.random.seed(3)``, then
    ``sklearn.datasets.make_moons(n_samples=300, noise=.2)``."""
    import sklearn.datasets
    np.random.seed(3)
    return sklearn.datasets.make_moons(n_samples=300, noise=0.2)


def mlp(dims, activations, dense=None):
    """A float64 ``fastnn.MLP`` with layer sizes ``dims`` (inputs first); ``dense[i]`` holds
    extra ``fastnn.Dense`` arguments of layer i."""
    dense = dense or {}
    layers = [fn.Dense(units, act, **dense.get(i, {}))
              for i, (units, act) in enumerate(zip(dims[1:], activations))]
    return fn.MLP(dims[0], layers, dtype="float64")


def fit_in_course_order(trainer, X, y, epochs, seed=10):
    """Train as the course's ``model()`` does: before each epoch ``seed += 1``,
    ``np.random.seed(seed)``, and the mini-batches walk ``X[np.random.permutation(m)]`` in
    order (the last one smaller).

    fastnn's own shuffling draws other permutations, so each epoch here is one ``fit`` call on
    the data in the course's order with ``trainer.shuffle = False``; the optimizer state, the
    step counter and the schedule's epoch carry on from call to call."""
    trainer.shuffle = False
    for _ in range(epochs):
        seed += 1
        np.random.seed(seed)
        order = np.random.permutation(X.shape[0])
        trainer.fit(X[order], y[order], epochs=1, progress=False)
    return trainer.history


def accuracy(model, X, y):
    return float(np.mean(model.predict(X) == y))


def options(doc, argv):
    """``--out DIR`` (where the PNG goes) and ``--quick`` (a short run for the tests)."""
    p = argparse.ArgumentParser(description=doc.strip().splitlines()[0])
    p.add_argument("--out", default=".", help="folder for the figure (default: here)")
    p.add_argument("--quick", action="store_true",
                   help="a short run (fewer epochs): same steps, smaller figures")
    return p.parse_args(argv)


def pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save(fig, out, name):
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, name)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"figure written to {path}")
    return path


def boundary(ax, model, X, y, title):
    """The model's decision regions over the data (binary classifiers)."""
    pad = 0.5
    xs = np.linspace(X[:, 0].min() - pad, X[:, 0].max() + pad, 200)
    ys = np.linspace(X[:, 1].min() - pad, X[:, 1].max() + pad, 200)
    gx, gy = np.meshgrid(xs, ys)
    grid = np.column_stack([gx.ravel(), gy.ravel()])
    ax.contourf(gx, gy, model.predict(grid).reshape(gx.shape), alpha=0.3, cmap="coolwarm")
    ax.scatter(X[:, 0], X[:, 1], c=y, s=8, cmap="coolwarm", edgecolors="k", linewidths=0.2)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
