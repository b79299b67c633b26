"""fastnn.datasets: the shipped digits and the seeded generated sets."""

import hashlib
import importlib.resources
import os
import subprocess
import sys

import numpy as np
import pytest

from fastnn import datasets

DIGITS_SHA256 = "09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22"


# ---- digits -----------------------------------------------------------------------------------

def test_digits_shape_dtypes_values_and_published_class_counts():
    X, y = datasets.digits()
    assert X.shape == (1797, 64) and X.dtype == np.float64
    assert y.shape == (1797,) and y.dtype == np.int64
    assert X.min() == 0 and X.max() == 16
    np.testing.assert_array_equal(X, np.round(X))
    assert np.bincount(y).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    assert X.flags.c_contiguous and y.flags.c_contiguous


def test_digits_first_image_is_a_zero():
    X, y = datasets.digits()
    assert y[0] == 0
    img = X[0].reshape(8, 8)
    # A zero: ink around a hollow centre.
    assert img[3:5, 3:5].mean() < img[1:7, 1:7].mean()
    assert X[0, :8].tolist() == [0, 0, 5, 13, 9, 1, 0, 0]


def test_digits_returns_fresh_arrays():
    X1, y1 = datasets.digits()
    X1[0, 0] = 99
    y1[0] = 9
    X2, y2 = datasets.digits()
    assert X2[0, 0] == 0 and y2[0] == 0


def test_packaged_digits_file_and_attribution():
    data = importlib.resources.files("fastnn").joinpath("_data", "digits.csv.gz").read_bytes()
    assert hashlib.sha256(data).hexdigest() == DIGITS_SHA256
    readme = importlib.resources.files("fastnn").joinpath("_data", "README.md").read_text()
    for needle in ("Alpaydin", "Kaynak", "CC BY 4.0", "archive.ics.uci.edu", DIGITS_SHA256):
        assert needle in readme


def test_digits_does_not_import_sklearn():
    code = ("import sys, fastnn.datasets as d; X, y = d.digits(); "
            "assert X.shape == (1797, 64); print('sklearn' in sys.modules)")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True, cwd=os.path.dirname(os.path.abspath(__file__)))
    assert out.stdout.strip() == "False"


def test_digits_equal_scikit_learn_copy():
    sk = pytest.importorskip("sklearn.datasets")
    ref = sk.load_digits()
    X, y = datasets.digits()
    np.testing.assert_array_equal(X, ref.data)
    np.testing.assert_array_equal(y, ref.target)


# ---- generated sets ---------------------------------------------------------------------------

TWO_D = {
    "flower": (datasets.flower, 400, 2),
    "moons": (datasets.moons, 200, 2),
    "circles": (datasets.circles, 200, 2),
    "spiral": (datasets.spiral, 300, 3),
    "blobs": (datasets.blobs, 300, 3),
}


@pytest.mark.parametrize("name", TWO_D)
def test_generated_defaults_shapes_balance_and_seeding(name):
    make, n, n_classes = TWO_D[name]
    X, y = make()
    assert X.shape == (n, 2) and X.dtype == np.float64 and np.isfinite(X).all()
    assert y.shape == (n,) and y.dtype == np.int64
    counts = np.bincount(y)
    assert counts.size == n_classes and counts.max() - counts.min() <= 1
    X2, y2 = make(seed=0)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)
    X3, _ = make(seed=1)
    assert not np.allclose(X, X3)


@pytest.mark.parametrize("name", TWO_D)
@pytest.mark.parametrize("n", [7, 31])
def test_generated_odd_sizes(name, n):
    X, y = TWO_D[name][0](n=n)
    assert X.shape == (n, 2) and y.shape == (n,)


def test_noiseless_shapes_lie_on_their_curves():
    X, y = datasets.circles(n=50, noise=0.0, factor=0.3)
    r = np.hypot(X[:, 0], X[:, 1])
    np.testing.assert_allclose(r[y == 0], 1.0)
    np.testing.assert_allclose(r[y == 1], 0.3)
    X, y = datasets.moons(n=40, noise=0.0)
    np.testing.assert_allclose(np.hypot(X[y == 0, 0], X[y == 0, 1]), 1.0)
    np.testing.assert_allclose(np.hypot(X[y == 1, 0] - 1, X[y == 1, 1] - 0.5), 1.0)
    X, y = datasets.spiral(n=30, n_classes=3, noise=0.0)
    np.testing.assert_allclose(np.hypot(X[y == 2, 0], X[y == 2, 1]), np.linspace(0, 1, 10),
                               atol=1e-15)
    X, y = datasets.flower(n=20, noise=0.0)
    t = np.arctan2(X[:, 0], X[:, 1])        # x = r sin t, y = r cos t (up to the sign of r)
    np.testing.assert_allclose(np.abs(np.hypot(X[:, 0], X[:, 1])), np.abs(4 * np.sin(4 * t)),
                               atol=1e-12)


def test_blobs_cluster_around_their_centres():
    X, y = datasets.blobs(n=3000, n_features=5, centers=4, cluster_std=0.5, seed=3)
    assert X.shape == (3000, 5)
    within = np.mean([X[y == k].std(axis=0).mean() for k in range(4)])
    assert within == pytest.approx(0.5, rel=0.05)
    means = np.array([X[y == k].mean(axis=0) for k in range(4)])
    assert np.all(np.abs(means) <= 10.1)


def test_flower_is_not_linearly_separable_but_learnable():
    X, y = datasets.flower()
    # Best linear direction (least squares on ±1 labels) stays far from perfect.
    A = np.column_stack([X, np.ones(len(X))])
    w = np.linalg.lstsq(A, 2.0 * y - 1, rcond=None)[0]
    assert np.mean((A @ w > 0) == y) < 0.75
    # A 1-nearest-neighbour rule (leave-one-out) does well: the classes are structured.
    d = ((X[:, None, :] - X[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    assert np.mean(y[d.argmin(axis=1)] == y) > 0.8


def test_generated_argument_errors():
    with pytest.raises(ValueError, match="n must be >= 2, got 1"):
        datasets.moons(n=1)
    with pytest.raises(TypeError, match="n must be an integer, got 10.0"):
        datasets.flower(n=10.0)
    with pytest.raises(ValueError, match="noise must be >= 0.0, got -0.1"):
        datasets.circles(noise=-0.1)
    with pytest.raises(ValueError, match="factor must be < 1.0, got 1.0"):
        datasets.circles(factor=1.0)
    with pytest.raises(ValueError, match="n_classes must be >= 2, got 1"):
        datasets.spiral(n_classes=1)
    with pytest.raises(ValueError, match="n must be >= 4, got 3"):
        datasets.blobs(n=3, centers=4)
    with pytest.raises(ValueError, match="seed must be >= 0, got -5"):
        datasets.blobs(seed=-5)
    with pytest.raises(ValueError, match="dtype must be 'float32' or 'float64', got int64"):
        datasets.synthetic_mnist(n=10, dtype=np.int64)


# ---- synthetic MNIST --------------------------------------------------------------------------

def test_synthetic_mnist_shape_range_dtype_balance():
    X, y = datasets.synthetic_mnist(n=1005, seed=0)
    assert X.shape == (1005, 784) and X.dtype == np.float32
    assert X.min() >= 0 and X.max() <= 1
    assert y.dtype == np.int64 and np.bincount(y).tolist() == [101] * 5 + [100] * 5
    X64, y64 = datasets.synthetic_mnist(n=10, seed=0, dtype="float64")
    assert X64.dtype == np.float64
    Xa, ya = datasets.synthetic_mnist(n=50, seed=2)
    Xb, yb = datasets.synthetic_mnist(n=50, seed=2)
    np.testing.assert_array_equal(Xa, Xb)
    np.testing.assert_array_equal(ya, yb)


def test_synthetic_mnist_is_learnable_across_seeds():
    X, y = datasets.synthetic_mnist(n=3000, seed=0, dtype=np.float64)
    Xt, yt = datasets.synthetic_mnist(n=1000, seed=1, dtype=np.float64)
    # Nearest class mean, trained on seed 0 and tested on seed 1: far above chance (0.1),
    # because both seeds share the class templates.
    means = np.array([X[y == k].mean(axis=0) for k in range(10)])
    pred = ((Xt[:, None, :] - means[None]) ** 2).sum(-1).argmin(axis=1)
    assert np.mean(pred == yt) > 0.5
