"""Shared, seeded and cached inputs of the asv suite.

Design: every benchmark builds its data in ``setup`` from these helpers (cached per process,
so a class's grid does not regenerate the same arrays) and times only the call.  The network is
the MNIST-shaped one (784 -> 512 -> 256 -> 10) unless a class says otherwise; the
training benchmarks use 10,000 examples so that an epoch stays around a second.
"""
import functools
import time

import numpy as np

import fastnn as fn
from fastnn import reference as ref

N_TRAIN = 10_000
MNIST_HIDDEN = (512, 256)
ADAM_KIND = 3         # fnn_optim's FNN_ADAM
KINDS = {"sgd": 0, "momentum": 1, "rmsprop": 2, "adam": 3}


@functools.lru_cache(maxsize=None)
def mnist(n=N_TRAIN, dtype="float32"):
    """Read-only (X, y) MNIST-shaped synthetic data, seed 0."""
    X, y = fn.datasets.synthetic_mnist(n, seed=0, dtype=dtype)
    X.setflags(write=False)
    y.setflags(write=False)
    return X, y


def batch(m, dtype="float32"):
    """The first m rows of the cached data set (contiguous views)."""
    X, y = mnist(N_TRAIN, dtype)
    return X[:m], y[:m]


def hidden_sizes(name):
    """'512-256' -> (512, 256)."""
    return tuple(int(u) for u in name.split("-"))


def make_model(hidden=MNIST_HIDDEN, dtype="float32", variant="plain", n_inputs=784,
               n_classes=10):
    """An MLP with ReLU hidden layers; variant 'dropout' (keep 0.9) or 'batchnorm' on them."""
    layers = [fn.Dense(u, "relu", keep_prob=0.9 if variant == "dropout" else 1.0,
                       batch_norm=variant == "batchnorm") for u in hidden]
    return fn.MLP(n_inputs, layers + [fn.Dense(n_classes, "softmax")], dtype=dtype, seed=0)


def layer_specs(model):
    """fastnn.reference's layer dicts for a model."""
    return [{"units": l.units, "activation": l.activation, "keep_prob": l.keep_prob,
             "batch_norm": l.batch_norm} for l in model.layers]


def flop_per_example(n_inputs, hidden, n_classes):
    """Forward + dW + dX FLOP per example of one training step (dX of layer 0 skipped)."""
    sizes = (n_inputs,) + tuple(hidden) + (n_classes,)
    fwd = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    dx = sum(a * b for a, b in zip(sizes[1:-1], sizes[2:]))
    return 2.0 * (2 * fwd + dx)


class ReferenceTrainer:
    """The NumPy training loop: fastnn.reference's forward/backward and Adam per array."""

    def __init__(self, model, batch_size, seed=0):
        self.params = model.get_weights()
        self.layers = layer_specs(model)
        self.v = {k: np.zeros_like(p) for k, p in self.params.items()}
        self.s = {k: np.zeros_like(p) for k, p in self.params.items()}
        self.batch_size = batch_size
        self.rng = np.random.default_rng(seed)
        self.t = 0

    def epoch(self, X, y):
        n, bs = X.shape[0], self.batch_size
        order = self.rng.permutation(n)
        for k in range(0, n, bs):
            idx = order[k:k + bs]
            _, grads = ref.mlp_loss_and_grads(self.params, self.layers, X[idx], y[idx],
                                              training=True)
            self.t += 1
            for key, g in grads.items():
                self.params[key], self.v[key], self.s[key] = ref.adam_step(
                    self.params[key], g, self.v[key], self.s[key], self.t, lr=1e-3)


def median_time(func, number=1, repeat=5, settle=0.25):
    """Median over ``repeat`` rounds of the mean time of ``number`` calls (for track_ ratios)."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            func()
        times.append((time.perf_counter() - t0) / number)
        time.sleep(settle)
    return float(np.median(times))


def alternate(funcs, number=1, repeat=5, settle=0.25):
    """Median times of several callables measured back to back, round by round.

    ``settle`` seconds between calls let NumPy's OpenBLAS workers, which spin about 0.1 s after
    a call, go to sleep before fastnn's OpenMP team is timed (else they share its cores)."""
    times = [[] for _ in funcs]
    for _ in range(repeat):
        for i, func in enumerate(funcs):
            t0 = time.perf_counter()
            for _ in range(number):
                func()
            times[i].append((time.perf_counter() - t0) / number)
            time.sleep(settle)
    return [float(np.median(t)) for t in times]
