"""Argument validation at fastnn's public boundary.

Design: every public function checks its arguments once, here, before any compiled code runs;
private numeric helpers and the C kernels trust what they are given.  Each message names the
argument and the value (or its type, shape, dtype) received, and the exception type follows
NumPy/scikit-learn: ``TypeError`` for a wrong kind of object (non-numeric, complex, a float where
an integer is required), ``ValueError`` for a right kind with a wrong value (NaN, shape, range).
"""

import numbers

import numpy as np

from . import _core

__all__ = [
    "NotFittedError",
    "check_scalar",
    "check_random_seed",
    "validate_X",
    "validate_y",
    "validate_X_y",
]


class NotFittedError(ValueError, AttributeError):
    """Raised when an estimator-like object is used before ``fit``.

    A ``ValueError`` (fastnn raises ``ValueError``/``TypeError`` for bad use) and an
    ``AttributeError`` (so ``hasattr`` style checks keep working), as in scikit-learn.
    """


def _describe(value):
    """Short description of a value for error messages (never its whole content)."""
    if isinstance(value, np.ndarray):
        return f"array of shape {value.shape} and dtype {value.dtype}"
    text = repr(value)
    if len(text) > 80:
        text = text[:77] + "..."
    return f"{text} (type {type(value).__name__})"


def check_scalar(value, name, kind, *, low=None, high=None, low_inclusive=True,
                 high_inclusive=True):
    """Check a scalar argument and return it as a Python ``int`` or ``float``.

    Parameters
    ----------
    value : object
        The argument received.
    name : str
        Its name, used in error messages.
    kind : {"int", "float"}
        ``"int"`` accepts Python and NumPy integers (not ``bool``); ``"float"`` accepts any real
        number (not ``bool``) and requires it to be finite.
    low, high : float or None, default None
        Bounds; ``None`` means unbounded.
    low_inclusive, high_inclusive : bool, default True
        Whether each bound itself is allowed.

    Returns
    -------
    int or float

    Raises
    ------
    TypeError
        If ``value`` is not of the requested kind.
    ValueError
        If it is not finite or out of bounds.
    """
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a{'n integer' if kind == 'int' else ' real number'}, "
                        f"got {_describe(value)}")
    if kind == "int":
        if not isinstance(value, numbers.Integral):
            raise TypeError(f"{name} must be an integer, got {_describe(value)}")
        value = int(value)
    elif kind == "float":
        if not isinstance(value, numbers.Real):
            raise TypeError(f"{name} must be a real number, got {_describe(value)}")
        value = float(value)
        if not np.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value!r}")
    else:  # pragma: no cover - programming error inside fastnn
        raise ValueError(f"kind must be 'int' or 'float', got {kind!r}")
    if low is not None and (value < low or (value == low and not low_inclusive)):
        raise ValueError(f"{name} must be {'>=' if low_inclusive else '>'} {low}, got {value!r}")
    if high is not None and (value > high or (value == high and not high_inclusive)):
        raise ValueError(f"{name} must be {'<=' if high_inclusive else '<'} {high}, got {value!r}")
    return value


def check_random_seed(seed, name="seed"):
    """Check a seed: ``None`` or an integer in ``[0, 2**64)`` (the compiled code keys its
    random streams with an unsigned 64-bit seed); return it unchanged (as ``int`` or
    ``None``)."""
    if seed is None:
        return None
    seed = check_scalar(seed, name, "int", low=0)
    if seed >= 2 ** 64:
        raise ValueError(f"{name} must be < 2**64, got {seed!r}")
    return seed


def _as_numeric_array(value, name):
    """``np.asarray`` with fastnn's messages for non-numeric and complex input."""
    if value is None:
        raise TypeError(f"{name} must be an array-like of numbers, got None")
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be an array-like of numbers, got {_describe(value)}")
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as exc:  # ragged nested sequences
        raise ValueError(f"{name} could not be converted to an array: {exc}") from None
    if arr.dtype.kind == "c":
        raise TypeError(f"{name} must be real-valued, got complex dtype {arr.dtype}")
    if arr.dtype.kind == "O":
        try:
            arr = arr.astype(np.float64)
        except (ValueError, TypeError):
            raise TypeError(f"{name} must contain only numbers, got an object array "
                            f"with non-numeric entries") from None
    elif arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be numeric, got dtype {arr.dtype}")
    return arr


def _check_finite(arr, name):
    if (arr.ndim == 2 and arr.dtype in (np.float32, np.float64) and arr.flags.c_contiguous
            and _core.all_finite(arr)):
        return  # the common case, read once without a temporary
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        n_nan = int(np.isnan(arr).sum())
        n_inf = int(np.isinf(arr).sum())
        raise ValueError(f"{name} must not contain NaN or infinity, got {n_nan} NaN and "
                         f"{n_inf} infinite values")


def _converted_finite(arr, dtype, name):
    """arr as a C-contiguous array of dtype; finite values beyond the dtype's range (1e39 for
    float32) would become infinite: refused with the range named."""
    with np.errstate(over="ignore"):  # reported below, with the range
        out = np.ascontiguousarray(arr, dtype=dtype)
    if out.dtype.kind == "f" and not np.isfinite(out).all():
        raise ValueError(f"{name} has values beyond the range of {out.dtype} (largest "
                         f"{np.finfo(out.dtype).max:.3g} in magnitude)")
    return out


def validate_X(X, name="X", n_features=None, dtype=None):
    """Validate a 2-D feature matrix and return it as a C-contiguous floating array.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Real numbers (bool and integer dtypes are accepted and converted), finite, with at least
        one row and one column.
    name : str, default "X"
        Name used in error messages.
    n_features : int or None, default None
        If given, the required number of columns.
    dtype : {None, "float32", "float64"} or numpy dtype, default None
        Result dtype.  ``None`` keeps ``float32``/``float64`` input as it is and converts
        anything else to ``float64``.

    Returns
    -------
    ndarray of shape (n_samples, n_features)
        ``X`` itself when it already has the right dtype and layout (read-only arrays stay
        read-only), otherwise a converted copy.

    Raises
    ------
    TypeError
        Non-numeric or complex data.
    ValueError
        Wrong number of dimensions, no rows or no columns, NaN or infinity, or a column count
        other than ``n_features``.
    """
    if (type(X) is np.ndarray and X.ndim == 2 and X.flags.c_contiguous and X.size
            and X.dtype == (dtype if dtype is not None else X.dtype) and X.dtype.kind == "f"
            and (n_features is None or X.shape[1] == n_features)):
        _check_finite(X, name)   # the common case, an array ready for the kernels: no copy
        return X
    arr = _as_numeric_array(X, name)
    if arr.ndim != 2:
        hint = " (reshape a single feature with X.reshape(-1, 1))" if arr.ndim == 1 else ""
        raise ValueError(f"{name} must be 2-D (n_samples, n_features), got {arr.ndim}-D array "
                         f"of shape {arr.shape}{hint}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} must have at least one sample and one feature, got shape "
                         f"{arr.shape}")
    if n_features is not None and arr.shape[1] != n_features:
        raise ValueError(f"{name} must have {n_features} features (columns), got "
                         f"{arr.shape[1]} (shape {arr.shape})")
    target = _result_dtype(arr, dtype, name)
    _check_finite(arr, name)
    arr = _converted_finite(arr, target, name)
    return arr


def _result_dtype(arr, dtype, name):
    if dtype is None:
        return arr.dtype if arr.dtype in (np.float32, np.float64) else np.dtype(np.float64)
    try:
        target = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be 'float32' or 'float64', got {dtype!r}") from None
    if target not in (np.float32, np.float64):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    return target


def validate_y(y, name="y", *, task="multiclass", n_samples=None, n_classes=None,
               n_outputs=None, dtype=None):
    """Validate targets and return them as a C-contiguous array.

    Parameters
    ----------
    y : array-like
        The targets.
    name : str, default "y"
        Name used in error messages.
    task : {"multiclass", "binary", "regression"}, default "multiclass"
        * ``"multiclass"`` (softmax output): shape ``(n_samples,)`` of integral class indices
          ``0..n_classes-1`` (integral floats such as ``2.0`` are accepted); returned as
          ``int64``.
        * ``"binary"`` (sigmoid output): shape ``(n_samples,)`` or ``(n_samples, n_outputs)`` of
          0/1 values; returned in the floating ``dtype``.
        * ``"regression"`` (linear output): shape ``(n_samples,)`` or
          ``(n_samples, n_outputs)`` of finite reals; returned in the floating ``dtype``.
    n_samples : int or None, default None
        If given, the required length (the rows of ``X``).
    n_classes : int or None, default None
        ``"multiclass"`` only: labels must be below it.
    n_outputs : int or None, default None
        ``"binary"``/``"regression"`` only: the required number of columns (1 also admits a 1-D
        ``y``).
    dtype : {None, "float32", "float64"}, default None
        Result dtype for ``"binary"``/``"regression"``; ``None`` keeps float32/float64 and
        converts the rest to float64.

    Returns
    -------
    ndarray

    Raises
    ------
    TypeError
        Non-numeric or complex targets.
    ValueError
        Wrong shape, empty, NaN/inf, non-integral or out-of-range labels, length other than
        ``n_samples``.
    """
    if task not in ("multiclass", "binary", "regression"):
        raise ValueError(f"task must be 'multiclass', 'binary' or 'regression', got {task!r}")
    arr = _as_numeric_array(y, name)
    if task == "multiclass":
        if arr.ndim == 2 and arr.shape[1] == 1:
            arr = arr[:, 0]
        if arr.ndim != 1:
            raise ValueError(f"{name} must be 1-D class indices of shape (n_samples,), got shape "
                             f"{arr.shape}")
    elif arr.ndim not in (1, 2):
        raise ValueError(f"{name} must have shape (n_samples,) or (n_samples, n_outputs), got "
                         f"shape {arr.shape}")
    if arr.shape[0] == 0 or arr.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {arr.shape}")
    if n_samples is not None and arr.shape[0] != n_samples:
        raise ValueError(f"{name} must have {n_samples} entries (one per row of X), got "
                         f"{arr.shape[0]}")
    _check_finite(arr, name)

    if task == "multiclass":
        if arr.dtype.kind == "f" and not np.array_equal(arr, np.floor(arr)):
            raise ValueError(f"{name} must hold integral class indices, got non-integer values "
                             f"such as {arr[arr != np.floor(arr)][0].item()!r}")
        labels = arr.astype(np.int64)
        low, high = int(labels.min()), int(labels.max())
        if low < 0:
            raise ValueError(f"{name} must hold class indices >= 0, got {low}")
        if n_classes is not None and high >= n_classes:
            raise ValueError(f"{name} must hold class indices in [0, {n_classes - 1}], got "
                             f"{high}")
        return np.ascontiguousarray(labels)

    if n_outputs is not None:
        cols = 1 if arr.ndim == 1 else arr.shape[1]
        if cols != n_outputs:
            raise ValueError(f"{name} must have {n_outputs} output column(s), got shape "
                             f"{arr.shape}")
    out = _converted_finite(arr, _result_dtype(arr, dtype, "dtype"), name)
    if task == "binary" and not np.isin(out, (0, 1)).all():
        bad = out[~np.isin(out, (0, 1))][0]
        raise ValueError(f"{name} must hold 0/1 targets for a sigmoid output, got {bad.item()!r}")
    return out


def validate_X_y(X, y, *, task="multiclass", n_features=None, n_classes=None, n_outputs=None,
                 dtype=None, X_name="X", y_name="y"):
    """Validate ``X`` and ``y`` together (the two must have the same number of rows).

    Parameters are those of :func:`validate_X` and :func:`validate_y`; ``dtype`` applies to
    ``X`` and to floating targets alike.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
    y : ndarray
    """
    X = validate_X(X, X_name, n_features=n_features, dtype=dtype)
    y = validate_y(y, y_name, task=task, n_samples=X.shape[0], n_classes=n_classes,
                   n_outputs=n_outputs, dtype=X.dtype if task != "multiclass" else None)
    return X, y
