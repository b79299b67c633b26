"""Data tools of the course: train/dev/test splits, input normalisation, mini-batches, one-hot;
and the one place that reads data files and decides what targets are (task, labels).

Everything here is seeded and deterministic: the same seed gives the same split and the same
mini-batches on every machine (NumPy's ``default_rng``, PCG64).
"""

import hashlib
import numbers
import os

import numpy as np

from fastnn import datasets
from fastnn._files import load_csv, load_csv_labelled, load_npy, load_npz
from fastnn._validation import (
    NotFittedError,
    check_random_seed,
    check_scalar,
    validate_X,
    validate_X_y,
    validate_y,
)

__all__ = [
    "train_dev_test_split",
    "Standardizer",
    "minibatches",
    "one_hot",
    "fingerprint",
    "validate_X",
    "validate_y",
    "validate_X_y",
    "load_data",
    "BUILTIN_DATASETS",
    "infer_task",
    "as_labels",
    "encode_labels",
]


def _as_samples(value, name):
    """An array with a first (samples) axis, any dtype; no copy when already an array."""
    if value is None:
        raise TypeError(f"{name} must be an array-like, got None")
    arr = np.asarray(value)
    if arr.ndim == 0:
        raise ValueError(f"{name} must have at least one dimension (n_samples, ...), got a "
                         f"scalar {arr!r}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} must not be empty, got shape {arr.shape}")
    return arr


def _split_count(size, name, n_samples):
    """Number of samples for a split given as a fraction in [0, 1) or a count."""
    if isinstance(size, (bool, np.bool_)) or not isinstance(size, numbers.Real):
        raise TypeError(f"{name} must be a fraction (float in [0, 1)) or a count (int >= 0), "
                        f"got {size!r}")
    if isinstance(size, numbers.Integral):
        count = check_scalar(size, name, "int", low=0)
        if count >= n_samples:
            raise ValueError(f"{name}={count} must be smaller than the number of samples "
                             f"({n_samples})")
        return count
    frac = check_scalar(size, name, "float", low=0.0, high=1.0, high_inclusive=False)
    # round(), not ceil(): 0.7 * 10 is 7.000000000000001.  Never round a nonzero request to 0.
    count = int(round(frac * n_samples))
    return max(count, 1) if frac > 0 else 0


def _allocate(total, counts):
    """Split ``total`` over groups in proportion to ``counts`` (largest remainder), capped."""
    counts = np.asarray(counts, dtype=np.int64)
    exact = total * counts / counts.sum()
    alloc = np.minimum(np.floor(exact).astype(np.int64), counts)
    # Hand out what rounding left over, largest remainders first, to groups with room left.
    order = np.argsort(-(exact - alloc), kind="stable")
    short = total - int(alloc.sum())
    while short > 0:
        progressed = False
        for g in order:
            if short == 0:
                break
            if alloc[g] < counts[g]:
                alloc[g] += 1
                short -= 1
                progressed = True
        if not progressed:  # pragma: no cover - total never exceeds counts.sum()
            raise ValueError("cannot allocate more samples than there are")
    return alloc


def train_dev_test_split(X, y, dev_size, test_size, seed=0, stratify=False):
    """Split a data set into shuffled train, dev and test sets.

    The dev set chooses between models and hyperparameters; the test set, if any, gives an
    unbiased estimate of the chosen model's real-world error.  With large data a fixed count is
    natural: 10M examples with 100k dev and 100k test is ``dev_size=100_000, test_size=100_000``.

    Parameters
    ----------
    X : array-like of shape (n_samples, ...)
    y : array-like of shape (n_samples, ...)
    dev_size, test_size : float in [0, 1) or int >= 0
        A fraction of ``n_samples`` (rounded to the nearest count, at least 1 when nonzero) or a
        count.  ``0`` gives an empty set.  At least one sample must be left for training.
    seed : int or None, default 0
        Seed of the shuffle; ``None`` draws fresh entropy.
    stratify : bool, default False
        Keep the class proportions of ``y`` (1-D labels) in every set (largest-remainder
        rounding per class).

    Returns
    -------
    X_train, X_dev, X_test, y_train, y_dev, y_test : ndarray
        Copies, rows in shuffled order, dtypes kept.

    Raises
    ------
    ValueError
        Lengths differ, empty input, sizes out of range or leaving no training sample,
        ``stratify`` with multi-column ``y``.
    """
    X = _as_samples(X, "X")
    y = _as_samples(y, "y")
    n = X.shape[0]
    if y.shape[0] != n:
        raise ValueError(f"X and y must have the same number of samples, got {n} and "
                         f"{y.shape[0]}")
    n_dev = _split_count(dev_size, "dev_size", n)
    n_test = _split_count(test_size, "test_size", n)
    if n_dev + n_test >= n:
        raise ValueError(f"dev_size ({n_dev} samples) + test_size ({n_test} samples) must "
                         f"leave at least one training sample out of {n}")
    if not isinstance(stratify, (bool, np.bool_)):
        raise TypeError(f"stratify must be True or False, got {stratify!r}")
    rng = np.random.default_rng(check_random_seed(seed))

    if not stratify:
        perm = rng.permutation(n)
        dev, test, train = np.split(perm, [n_dev, n_dev + n_test])
    else:
        if y.ndim != 1:
            raise ValueError(f"stratify=True needs 1-D class labels y, got shape {y.shape}")
        classes, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
        dev_per_class = _allocate(n_dev, counts)
        test_per_class = _allocate(n_test, counts - dev_per_class)
        parts = {"dev": [], "test": [], "train": []}
        for c in range(classes.size):
            members = rng.permutation(np.flatnonzero(inverse == c))
            d, t = dev_per_class[c], test_per_class[c]
            parts["dev"].append(members[:d])
            parts["test"].append(members[d:d + t])
            parts["train"].append(members[d + t:])
        dev, test, train = (rng.permutation(np.concatenate(parts[k]))
                            for k in ("dev", "test", "train"))
    return X[train], X[dev], X[test], y[train], y[dev], y[test]


def _constant_scale(mean):
    """The scale at or below which ``Standardizer.fit`` takes a column for constant."""
    return 10 * np.finfo(np.float64).eps * np.maximum(np.abs(mean), 1.0)


class Standardizer:
    """Standardise features to zero mean and unit variance: ``X' = (X - mean_) / scale_``.

    Fit on the training set only, then use the same ``transform`` for dev, test and production
    data.  The statistics are kept in float64; ``transform`` returns float32 for float32 input
    and float64 otherwise.

    Attributes
    ----------
    mean_ : ndarray of shape (n_features,), float64
        Column means of the training data.
    scale_ : ndarray of shape (n_features,), float64
        Column standard deviations (ddof=0); a constant column gets 1, so it maps to 0.
    n_features_in_ : int

    Examples
    --------
    >>> import numpy as np
    >>> s = Standardizer().fit(np.array([[0., 1.], [2., 1.]]))
    >>> s.transform(np.array([[1., 5.]]))
    array([[0., 4.]])
    """

    def __init__(self):
        self.mean_ = None
        self.scale_ = None
        self.n_features_in_ = None

    def __repr__(self):
        if self.mean_ is None:
            return "Standardizer()"
        return f"Standardizer(n_features={self.n_features_in_})"

    def fit(self, X):
        """Compute ``mean_`` and ``scale_`` from ``X`` of shape (n_samples, n_features).

        Returns
        -------
        self
        """
        X = validate_X(X, "X", dtype=np.float64)
        mean = X.mean(axis=0)
        scale = X.std(axis=0)
        # Constant columns (up to rounding of the mean) would divide by ~0: leave them unscaled.
        scale[scale <= _constant_scale(mean)] = 1.0
        self.mean_, self.scale_, self.n_features_in_ = mean, scale, X.shape[1]
        return self

    def _check_fitted(self):
        if self.mean_ is None:
            raise NotFittedError("this Standardizer is not fitted yet: call fit(X_train) first")

    def transform(self, X):
        """Return ``(X - mean_) / scale_``; shape (n_samples, n_features), float32 or float64."""
        self._check_fitted()
        X = validate_X(X, "X", n_features=self.n_features_in_)
        return ((X - self.mean_) / self.scale_).astype(X.dtype, copy=False)

    def fit_transform(self, X):
        """``fit(X)`` then ``transform(X)``."""
        return self.fit(X).transform(X)

    def inverse_transform(self, X):
        """Return ``X · scale_ + mean_``, undoing :meth:`transform`."""
        self._check_fitted()
        X = validate_X(X, "X", n_features=self.n_features_in_)
        return (X * self.scale_ + self.mean_).astype(X.dtype, copy=False)

    def to_dict(self):
        """JSON-able state, for saving inside a model file.

        Returns
        -------
        dict
            ``{"name": "Standardizer", "mean": [...], "scale": [...]}`` (floats round-trip
            exactly through ``json``), or ``{"name": "Standardizer"}`` when not fitted.
        """
        state = {"name": "Standardizer"}
        if self.mean_ is not None:
            state["mean"] = [float(v) for v in self.mean_]
            state["scale"] = [float(v) for v in self.scale_]
        return state

    @classmethod
    def from_dict(cls, state):
        """Rebuild a Standardizer from :meth:`to_dict`'s output, checking it.

        Raises
        ------
        ValueError, TypeError
            A malformed state (wrong name, lengths differ, a non-finite mean or scale, or a
            scale that ``fit`` never produces: at most ``10 eps max(|mean|, 1)``, which ``fit``
            replaces by 1).
        """
        if not isinstance(state, dict) or state.get("name") != "Standardizer":
            raise ValueError(f"state must be a dict from Standardizer.to_dict(), got "
                             f"{state!r:.80}")
        obj = cls()
        if "mean" not in state and "scale" not in state:
            return obj
        try:
            mean = np.asarray(state["mean"], dtype=np.float64)
            scale = np.asarray(state["scale"], dtype=np.float64)
        except KeyError as exc:
            raise ValueError(f"state is missing {exc.args[0]!r}") from None
        except (TypeError, ValueError):
            raise TypeError("state['mean'] and state['scale'] must be lists of numbers") from None
        if mean.ndim != 1 or mean.shape != scale.shape or mean.size == 0:
            raise ValueError(f"state['mean'] and state['scale'] must be non-empty lists of equal "
                             f"length, got shapes {mean.shape} and {scale.shape}")
        if not (np.isfinite(mean).all() and np.isfinite(scale).all()):
            raise ValueError("state['mean'] and state['scale'] must be finite")
        tiny = ~(scale > _constant_scale(mean))
        if tiny.any():
            j = int(np.argmax(tiny))
            raise ValueError(f"state['scale'][{j}] = {scale[j]!r} is not a scale fit produces "
                             f"(it must exceed 10 eps max(|mean|, 1) = "
                             f"{_constant_scale(mean[j]):.3g}; dividing by it would blow the "
                             f"feature up)")
        obj.mean_, obj.scale_, obj.n_features_in_ = mean, scale, mean.size
        return obj


def minibatches(X, y, batch_size, seed=0, *, shuffle=True):
    """Yield ``(X_batch, y_batch)`` over one seeded permutation of the samples.

    Every sample appears exactly once; all batches have ``batch_size`` rows except the last,
    which keeps the remainder (``n_samples % batch_size`` rows) rather than dropping it.

    Parameters
    ----------
    X : array-like of shape (n_samples, ...)
    y : array-like of shape (n_samples, ...) or None
        ``None`` yields ``(X_batch, None)``.
    batch_size : int >= 1
    seed : int or None, default 0
        Seed of the permutation (``None``: fresh entropy).
    shuffle : bool, default True
        ``False`` keeps the original order (``seed`` is then unused).

    Yields
    ------
    X_batch : ndarray of shape (<= batch_size, ...)
    y_batch : ndarray of shape (<= batch_size, ...) or None
    """
    X = _as_samples(X, "X")
    n = X.shape[0]
    if y is not None:
        y = _as_samples(y, "y")
        if y.shape[0] != n:
            raise ValueError(f"X and y must have the same number of samples, got {n} and "
                             f"{y.shape[0]}")
    batch_size = check_scalar(batch_size, "batch_size", "int", low=1)
    seed = check_random_seed(seed)
    order = np.random.default_rng(seed).permutation(n) if shuffle else np.arange(n)
    return _minibatches(X, y, batch_size, order)


def _minibatches(X, y, batch_size, order):
    # A separate generator so that argument errors surface at the call, not at the first next().
    for start in range(0, order.size, batch_size):
        idx = order[start:start + batch_size]
        yield X[idx], (None if y is None else y[idx])


def one_hot(y, n_classes=None, dtype=np.float64):
    """One-hot encode class indices: ``Y[i, y_i] = 1``, zeros elsewhere.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        Integral class indices >= 0.
    n_classes : int or None, default None
        Number of columns; ``None`` uses ``max(y) + 1``.
    dtype : numpy dtype, default float64

    Returns
    -------
    Y : ndarray of shape (n_samples, n_classes)
    """
    if n_classes is not None:
        n_classes = check_scalar(n_classes, "n_classes", "int", low=1)
    labels = validate_y(y, "y", task="multiclass", n_classes=n_classes)
    if n_classes is None:
        n_classes = int(labels.max()) + 1
    Y = np.zeros((labels.size, n_classes), dtype=dtype)
    Y[np.arange(labels.size), labels] = 1
    return Y


def fingerprint(*arrays):
    """SHA-256 (hex) of arrays: each one's dtype, shape and bytes in C order, in turn.

    Two calls agree exactly when the arrays hold the same values with the same dtypes and
    shapes, in the same order: a search journal records it to know which data it was run on.

    Parameters
    ----------
    *arrays : array-like
        Numeric, boolean or string arrays (not Python objects).

    Returns
    -------
    str
        64 hexadecimal digits.
    """
    h = hashlib.sha256()
    for i, a in enumerate(arrays):
        a = np.asarray(a)
        if a.dtype.hasobject:
            raise TypeError(f"arrays[{i}] holds Python objects (dtype object); fingerprint takes "
                            f"numeric, boolean or string arrays")
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape};".encode("ascii"))
        h.update(memoryview(a).cast("B") if a.size else b"")
    return h.hexdigest()


# ---- data from files and built-in sets, targets and labels (the command line and the search) --

BUILTIN_DATASETS = ("digits", "flower", "moons", "circles", "spiral", "blobs", "synthetic_mnist")


def load_data(spec, seed=0, target=True):
    """(X, y) from a built-in dataset name or a .csv/.npy/.npz file.

    CSV and NPY: a 2-D table whose last column is the target (a CSV header row is skipped when it
    is not numeric; a CSV target column may hold text labels); with ``target=False`` the whole
    table is X and y is None.  NPZ: arrays ``X`` and ``y`` (``y`` only when ``target``).
    Regular files only, checked before anything is allocated for them (``fastnn._files``); no
    pickle is ever loaded.  ``seed`` seeds the built-in datasets that are drawn at random."""
    if spec in BUILTIN_DATASETS:
        make = getattr(datasets, spec)
        return make() if spec == "digits" else make(seed=seed)
    if os.path.isdir(spec):
        raise ValueError(f"data {spec!r} is a directory; expected a built-in dataset or a "
                         f".csv/.npy/.npz file")
    if not os.path.exists(spec):
        raise ValueError(f"data must be one of {list(BUILTIN_DATASETS)} or an existing "
                         f".csv/.npy/.npz file, got {spec!r}")
    ext = os.path.splitext(spec)[1].lower()
    if ext not in (".csv", ".npy", ".npz"):
        raise ValueError(f"data file must end in .csv, .npy or .npz, got {spec!r}")
    if ext == ".npz":
        return load_npz(spec, ("X", "y")) if target else (load_npz(spec, ("X",))[0], None)
    if ext == ".csv" and target:
        return load_csv_labelled(spec)
    table = load_npy(spec) if ext == ".npy" else load_csv(spec)
    if not target:
        return table, None
    if table.ndim != 2 or table.shape[1] < 2:
        raise ValueError(f"{spec}: expected a 2-D table with features and a last target column, "
                         f"got shape {table.shape}")
    return table[:, :-1], table[:, -1]


def infer_task(y, *, from_file=False):
    """``"classification"`` or ``"regression"``: what the targets ``y`` ask for.

    Targets of a boolean, integer, string or object dtype are class labels.  Targets read from a
    file (``from_file``, as the command line reads them) have lost their dtype: there only 1-D
    targets are labels, of a boolean, integer or string dtype, or floats that are all whole
    numbers with few distinct values (at most 5 % of the rows + 1, and 2 always).
    """
    y = np.asarray(y)
    if not from_file:
        return "classification" if y.dtype.kind in "biuUSO" else "regression"
    labels = y.ndim == 1 and (y.dtype.kind in "iubUS" or
                              (y.dtype.kind == "f" and np.all(y == np.round(y)) and
                               len(np.unique(y)) <= max(2, int(0.05 * len(y)) + 1)))
    return "classification" if labels else "regression"


def as_labels(y):
    """Class labels as users wrote them: whole numbers stored as floats (a numeric CSV column)
    become integers, so classes print as ``3``, not ``3.0``."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"classification needs one label per row, got targets of shape "
                         f"{y.shape}")
    if y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y)) \
            and np.all(np.abs(y) < 2 ** 53):
        return y.astype(np.int64)
    return y


def encode_labels(y, classes, name="y"):
    """Labels as indices into the sorted ``classes``; labels not among them raise
    ``ValueError``, text labels against numeric classes (or the reverse) ``TypeError``."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"{name} must be 1-D labels, got shape {y.shape}")
    text = y.dtype.kind in "US"
    if text != (classes.dtype.kind in "US") and y.size:
        raise TypeError(f"{name} holds {'text' if text else 'numeric'} labels, the model's "
                        f"classes are {'numbers' if text else 'text'}: {classes.tolist()}")
    idx = np.searchsorted(classes, y)
    idx = np.clip(idx, 0, len(classes) - 1)
    bad = classes[idx] != y
    if np.any(bad):
        raise ValueError(f"{name} holds labels not seen in training, such as "
                         f"{y[bad][0].item()!r}; known classes: {classes.tolist()}")
    return idx
