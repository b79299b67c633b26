"""Built-in data sets: one real (``digits``) and several generated, seeded ones.

Each function returns ``(X, y)``: ``X`` of shape ``(n_samples, n_features)`` and ``y`` of shape
``(n_samples,)`` with int64 class indices ``0..n_classes-1``.  The generated sets are
deterministic for a given ``seed`` (NumPy's ``default_rng``); nothing is downloaded.
"""

import gzip
import importlib.resources

import numpy as np

from fastnn._validation import check_random_seed, check_scalar

__all__ = ["digits", "flower", "moons", "circles", "spiral", "blobs", "synthetic_mnist"]


def digits():
    """The real 8×8 handwritten digits: 1,797 images of the digits 0-9.

    The test set of the UCI "Optical Recognition of Handwritten Digits" data set (E. Alpaydin,
    C. Kaynak, 1998; CC BY 4.0), shipped compressed inside fastnn (``fastnn/_data/``, with its
    attribution in ``fastnn/_data/README.md``).  Each 32×32 bitmap was reduced to 8×8 blocks
    counting the set pixels of each 4×4 block, so values are integers 0..16.

    Returns
    -------
    X : ndarray of shape (1797, 64), float64
        Pixel counts 0..16, row-major 8×8 images (``X[i].reshape(8, 8)``).
    y : ndarray of shape (1797,), int64
        Digit 0..9; class counts 178, 182, 177, 183, 181, 182, 181, 179, 174, 180.
    """
    resource = importlib.resources.files("fastnn").joinpath("_data", "digits.csv.gz")
    with resource.open("rb") as raw, gzip.open(raw, "rt", encoding="ascii") as text:
        table = np.loadtxt(text, delimiter=",", dtype=np.int64)
    return table[:, :-1].astype(np.float64), np.ascontiguousarray(table[:, -1])


def _class_sizes(n, n_classes):
    """Sizes of n_classes groups summing to n, as equal as possible (earlier ones larger)."""
    return [n // n_classes + (1 if k < n % n_classes else 0) for k in range(n_classes)]


def _check_common(n, seed, noise, min_n=1):
    n = check_scalar(n, "n", "int", low=min_n)
    seed = check_random_seed(seed)
    noise = check_scalar(noise, "noise", "float", low=0.0)
    return n, np.random.default_rng(seed), noise


def flower(n=400, seed=0, noise=0.2):
    """The course's planar "flower" data: two classes drawn as interleaved rose petals.

    For class ``j`` of ``n/2`` points: ``t = linspace(3.12 j, 3.12 (j+1)) + noise·N(0,1)``,
    ``r = 4 sin(4t) + noise·N(0,1)``, ``x = (r sin t, r cos t)``.  Not linearly separable: a
    logistic regression gets about half of it, a one-hidden-layer tanh network most of it.

    Parameters
    ----------
    n : int >= 2, default 400
    seed : int or None, default 0
    noise : float >= 0, default 0.2

    Returns
    -------
    X : ndarray of shape (n, 2), float64
    y : ndarray of shape (n,), int64 in {0, 1}
    """
    n, rng, noise = _check_common(n, seed, noise, min_n=2)
    X, y = [], []
    for j, size in enumerate(_class_sizes(n, 2)):
        t = np.linspace(j * 3.12, (j + 1) * 3.12, size) + rng.standard_normal(size) * noise
        r = 4 * np.sin(4 * t) + rng.standard_normal(size) * noise
        X.append(np.column_stack([r * np.sin(t), r * np.cos(t)]))
        y.append(np.full(size, j, dtype=np.int64))
    return np.concatenate(X), np.concatenate(y)


def moons(n=200, seed=0, noise=0.1):
    """Two interleaving half circles.

    Class 0: ``(cos θ, sin θ)``; class 1: ``(1 - cos θ, 0.5 - sin θ)``, ``θ`` evenly spaced in
    ``[0, π]``; plus ``noise·N(0, I)``.

    Parameters
    ----------
    n : int >= 2, default 200
    seed : int or None, default 0
    noise : float >= 0, default 0.1

    Returns
    -------
    X : ndarray of shape (n, 2), float64
    y : ndarray of shape (n,), int64 in {0, 1}
    """
    n, rng, noise = _check_common(n, seed, noise, min_n=2)
    n0, n1 = _class_sizes(n, 2)
    t0, t1 = np.linspace(0, np.pi, n0), np.linspace(0, np.pi, n1)
    X = np.concatenate([np.column_stack([np.cos(t0), np.sin(t0)]),
                        np.column_stack([1 - np.cos(t1), 0.5 - np.sin(t1)])])
    X += noise * rng.standard_normal(X.shape)
    y = np.repeat(np.array([0, 1], dtype=np.int64), [n0, n1])
    return X, y


def circles(n=200, seed=0, noise=0.05, factor=0.5):
    """Two concentric circles: class 0 of radius 1, class 1 of radius ``factor``.

    Points at evenly spaced angles, plus ``noise·N(0, I)``.

    Parameters
    ----------
    n : int >= 2, default 200
    seed : int or None, default 0
    noise : float >= 0, default 0.05
    factor : float in (0, 1), default 0.5

    Returns
    -------
    X : ndarray of shape (n, 2), float64
    y : ndarray of shape (n,), int64 in {0, 1}
    """
    n, rng, noise = _check_common(n, seed, noise, min_n=2)
    factor = check_scalar(factor, "factor", "float", low=0.0, high=1.0, low_inclusive=False,
                          high_inclusive=False)
    parts = []
    for radius, size in zip((1.0, factor), _class_sizes(n, 2)):
        angle = np.linspace(0, 2 * np.pi, size, endpoint=False)
        parts.append(radius * np.column_stack([np.cos(angle), np.sin(angle)]))
    X = np.concatenate(parts) + noise * rng.standard_normal((n, 2))
    y = np.repeat(np.array([0, 1], dtype=np.int64), _class_sizes(n, 2))
    return X, y


def spiral(n=300, n_classes=3, seed=0, noise=0.2):
    """``n_classes`` interleaved spiral arms (the CS231n spiral).

    For class ``k``: ``r = linspace(0, 1)``, ``t = linspace(4k, 4(k+1)) + noise·N(0,1)``,
    ``x = (r sin t, r cos t)``.

    Parameters
    ----------
    n : int >= n_classes, default 300
    n_classes : int >= 2, default 3
    seed : int or None, default 0
    noise : float >= 0, default 0.2

    Returns
    -------
    X : ndarray of shape (n, 2), float64
    y : ndarray of shape (n,), int64 in ``0..n_classes-1``
    """
    n_classes = check_scalar(n_classes, "n_classes", "int", low=2)
    n, rng, noise = _check_common(n, seed, noise, min_n=n_classes)
    X, y = [], []
    for k, size in enumerate(_class_sizes(n, n_classes)):
        r = np.linspace(0.0, 1.0, size)
        t = np.linspace(4.0 * k, 4.0 * (k + 1), size) + rng.standard_normal(size) * noise
        X.append(np.column_stack([r * np.sin(t), r * np.cos(t)]))
        y.append(np.full(size, k, dtype=np.int64))
    return np.concatenate(X), np.concatenate(y)


def blobs(n=300, n_features=2, centers=3, seed=0, cluster_std=1.0):
    """Isotropic Gaussian clusters: ``x = center[y] + cluster_std·N(0, I)``.

    Centers are drawn uniformly in ``[-10, 10]^n_features``; classes have equal sizes (up to 1).

    Parameters
    ----------
    n : int >= centers, default 300
    n_features : int >= 1, default 2
    centers : int >= 1, default 3
    seed : int or None, default 0
    cluster_std : float >= 0, default 1.0

    Returns
    -------
    X : ndarray of shape (n, n_features), float64
    y : ndarray of shape (n,), int64 in ``0..centers-1``
    """
    centers = check_scalar(centers, "centers", "int", low=1)
    n_features = check_scalar(n_features, "n_features", "int", low=1)
    n, rng, cluster_std = _check_common(n, seed, cluster_std, min_n=centers)
    means = rng.uniform(-10.0, 10.0, size=(centers, n_features))
    y = np.repeat(np.arange(centers, dtype=np.int64), _class_sizes(n, centers))
    X = means[y] + cluster_std * rng.standard_normal((n, n_features))
    return X, y


_TEMPLATE_SEED = 20230903   # fixed: every seed's samples share the same ten class templates
_MAX_SHIFT = 3              # templates are drawn at every offset in [-3, 3]² pixels


def _mnist_templates():
    """Ten 28×28 "glyphs" in [0, 1], each at 7×7 offsets: shape (10, 49, 784).

    A glyph is a random pen stroke (a random walk of 12 Gaussian dots in the central box).
    """
    rng = np.random.default_rng(_TEMPLATE_SEED)
    rows, cols = np.mgrid[0:28, 0:28]
    shifts = range(-_MAX_SHIFT, _MAX_SHIFT + 1)
    bank = np.zeros((10, len(shifts) ** 2, 28, 28))
    for k in range(10):
        steps = rng.normal(0.0, 2.5, size=(12, 2))
        path = np.clip(np.array([14.0, 14.0]) + np.cumsum(steps, axis=0), 7, 20)
        glyph = np.zeros((28, 28))
        for r0, c0 in path:
            glyph = np.maximum(glyph, np.exp(-((rows - r0) ** 2 + (cols - c0) ** 2) / 4.5))
        for s, (dr, dc) in enumerate((dr, dc) for dr in shifts for dc in shifts):
            bank[k, s] = np.roll(glyph, (dr, dc), axis=(0, 1))
    return bank.reshape(10, len(shifts) ** 2, 784)


def synthetic_mnist(n=60000, seed=0, dtype=np.float32, noise=0.4):
    """MNIST-shaped synthetic data: 784 pixels in [0, 1], 10 balanced, learnable classes.

    ``x = clip(c · shift(template[y]) + noise·N(0, I), 0, 1)`` with a per-image contrast
    ``c ~ U(0.5, 1)`` and a random shift of up to 3 pixels each way.  The ten 28×28 templates
    are fixed (independent of ``seed``), so sets drawn with different seeds (train, test) come
    from the same distribution.  For benchmarks and smoke tests: shaped like MNIST, but not
    handwriting (on 10,000 training images a linear model gets about two thirds of a test set
    right, a 256-unit MLP about 90 %).

    Parameters
    ----------
    n : int >= 1, default 60000
    seed : int or None, default 0
    dtype : {"float32", "float64"}, default float32
    noise : float >= 0, default 0.4

    Returns
    -------
    X : ndarray of shape (n, 784), ``dtype``
    y : ndarray of shape (n,), int64 in ``0..9``, each class ``n/10`` times (up to 1), shuffled
    """
    n, rng, noise = _check_common(n, seed, noise)
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype}")
    bank = _mnist_templates().astype(dtype)
    y = rng.permutation(np.arange(n, dtype=np.int64) % 10)
    shift = rng.integers(0, bank.shape[1], size=n)
    contrast = rng.uniform(0.5, 1.0, size=(n, 1)).astype(dtype)
    X = np.empty((n, 784), dtype=dtype)
    for start in range(0, n, 4096):             # in blocks: no full-size temporaries
        rows = slice(start, min(start + 4096, n))
        block = rng.standard_normal((rows.stop - start, 784), dtype=dtype)
        block *= dtype.type(noise)
        block += contrast[rows] * bank[y[rows], shift[rows]]
        np.clip(block, 0, 1, out=X[rows])
    return X, y
