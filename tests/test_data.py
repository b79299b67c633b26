"""fastnn.data (splits, Standardizer, mini-batches, one-hot) and fastnn._validation."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastnn._validation import NotFittedError, check_scalar, validate_X, validate_X_y, validate_y
from fastnn.data import Standardizer, minibatches, one_hot, train_dev_test_split


def rows_of(n, n_features=3):
    """X whose first column is the row index, so a split's rows can be traced back."""
    X = np.zeros((n, n_features))
    X[:, 0] = np.arange(n)
    return X


# ---- train_dev_test_split ---------------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(n=st.integers(3, 200), dev=st.floats(0, 0.45), test=st.floats(0, 0.45),
       seed=st.integers(0, 2**32))
def test_split_is_a_partition_with_aligned_labels(n, dev, test, seed):
    X, y = rows_of(n), np.arange(n) * 10
    try:
        X_tr, X_dv, X_te, y_tr, y_dv, y_te = train_dev_test_split(X, y, dev, test, seed=seed)
    except ValueError as exc:                 # only when nothing is left to train on
        assert "at least one training sample" in str(exc)
        return
    ids = np.concatenate([X_tr[:, 0], X_dv[:, 0], X_te[:, 0]]).astype(int)
    np.testing.assert_array_equal(np.sort(ids), np.arange(n))
    for Xs, ys in ((X_tr, y_tr), (X_dv, y_dv), (X_te, y_te)):
        np.testing.assert_array_equal(ys, Xs[:, 0] * 10)
    assert len(X_dv) == (max(1, round(dev * n)) if dev > 0 else 0)
    assert len(X_te) == (max(1, round(test * n)) if test > 0 else 0)


def test_split_counts_fractions_and_dtypes():
    X = rows_of(1000).astype(np.float32)
    y = np.arange(1000) % 3
    X_tr, X_dv, X_te, y_tr, y_dv, y_te = train_dev_test_split(X, y, 100, 0.2, seed=1)
    assert (len(X_tr), len(X_dv), len(X_te)) == (700, 100, 200)
    assert X_tr.dtype == np.float32 and y_tr.dtype == y.dtype
    # 0.7 * 10 is 7.000000000000001: rounding, not ceil, gives 7.
    parts = train_dev_test_split(rows_of(10), np.arange(10), 0.7, 0)
    assert (len(parts[0]), len(parts[1]), len(parts[2])) == (3, 7, 0)


def test_split_is_seeded():
    X, y = rows_of(50), np.arange(50)
    a = train_dev_test_split(X, y, 0.2, 0.2, seed=3)
    b = train_dev_test_split(X, y, 0.2, 0.2, seed=3)
    c = train_dev_test_split(X, y, 0.2, 0.2, seed=4)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a[0], c[0])


def test_split_shuffles_rows_of_images_too():
    X = np.arange(40.0).reshape(10, 2, 2)
    X_tr, X_dv, X_te, *_ = train_dev_test_split(X, np.arange(10), 2, 2, seed=0)
    assert X_tr.shape == (6, 2, 2) and X_dv.shape == (2, 2, 2)
    np.testing.assert_array_equal(np.sort(np.concatenate([X_tr, X_dv, X_te])[:, 0, 0]),
                                  np.arange(0, 40, 4))


@settings(max_examples=40, deadline=None)
@given(counts=st.lists(st.integers(1, 60), min_size=2, max_size=5),
       dev=st.floats(0.05, 0.4), test=st.floats(0.05, 0.4), seed=st.integers(0, 1000))
def test_stratified_split_keeps_class_proportions(counts, dev, test, seed):
    y = np.repeat(np.arange(len(counts)), counts)
    n = y.size
    X = rows_of(n)
    try:
        X_tr, X_dv, X_te, y_tr, y_dv, y_te = train_dev_test_split(X, y, dev, test, seed=seed,
                                                                  stratify=True)
    except ValueError:
        return
    np.testing.assert_array_equal(np.sort(np.concatenate([X_tr, X_dv, X_te])[:, 0]), np.arange(n))
    for ys in (y_dv, y_te):
        got = np.bincount(ys, minlength=len(counts))
        # Largest-remainder rounding: each class within one sample of its exact share (test
        # shares come from what dev left, hence the slack of 2).
        exact = len(ys) * np.array(counts) / n
        assert np.all(np.abs(got - exact) <= 2)
    np.testing.assert_array_equal(
        np.bincount(y_tr, minlength=len(counts)) + np.bincount(y_dv, minlength=len(counts))
        + np.bincount(y_te, minlength=len(counts)), counts)


def test_stratified_split_exact_on_round_numbers():
    y = np.repeat([0, 1, 2], [500, 300, 200])
    _, _, _, y_tr, y_dv, y_te = train_dev_test_split(rows_of(1000), y, 0.1, 0.2, seed=0,
                                                     stratify=True)
    assert np.bincount(y_dv).tolist() == [50, 30, 20]
    assert np.bincount(y_te).tolist() == [100, 60, 40]
    assert np.bincount(y_tr).tolist() == [350, 210, 140]


def test_split_errors():
    X, y = rows_of(10), np.arange(10)
    with pytest.raises(ValueError, match="same number of samples, got 10 and 9"):
        train_dev_test_split(X, y[:9], 0.1, 0.1)
    with pytest.raises(ValueError, match="at least one training sample"):
        train_dev_test_split(X, y, 5, 5)
    with pytest.raises(ValueError, match=r"dev_size must be < 1.0, got 1.0"):
        train_dev_test_split(X, y, 1.0, 0.1)
    with pytest.raises(ValueError, match=r"test_size must be >= 0, got -1"):
        train_dev_test_split(X, y, 0.1, -1)
    with pytest.raises(ValueError, match=r"dev_size=10 must be smaller"):
        train_dev_test_split(X, y, 10, 0)
    with pytest.raises(TypeError, match="dev_size must be a fraction .* got True"):
        train_dev_test_split(X, y, True, 0.1)
    with pytest.raises(TypeError, match="test_size must be a fraction .* got '0.1'"):
        train_dev_test_split(X, y, 0.1, "0.1")
    with pytest.raises(ValueError, match="stratify=True needs 1-D class labels"):
        train_dev_test_split(X, np.zeros((10, 2)), 0.1, 0.1, stratify=True)
    with pytest.raises(ValueError, match="X must not be empty"):
        train_dev_test_split(np.zeros((0, 2)), [], 0.1, 0.1)
    with pytest.raises(ValueError, match="seed must be >= 0, got -1"):
        train_dev_test_split(X, y, 0.1, 0.1, seed=-1)


# ---- Standardizer -----------------------------------------------------------------------------

def test_standardizer_zero_mean_unit_variance_and_constant_columns():
    rng = np.random.default_rng(0)
    X = rng.normal(loc=[5.0, -3.0, 0.0], scale=[2.0, 0.1, 1.0], size=(200, 3))
    X[:, 2] = 7.0
    s = Standardizer()
    Xt = s.fit_transform(X)
    np.testing.assert_allclose(Xt[:, :2].mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(Xt[:, :2].std(axis=0), 1, rtol=1e-12)
    np.testing.assert_array_equal(Xt[:, 2], 0.0)
    assert s.scale_[2] == 1.0
    np.testing.assert_allclose(s.mean_, X.mean(axis=0))
    np.testing.assert_allclose(s.scale_[:2], X[:, :2].std(axis=0))
    np.testing.assert_allclose(s.inverse_transform(Xt), X, rtol=1e-12)


def test_standardizer_uses_training_statistics_for_new_data():
    s = Standardizer().fit(np.array([[0.0, 10.0], [2.0, 30.0]]))
    np.testing.assert_allclose(s.transform([[1.0, 20.0], [3.0, 40.0]]), [[0, 0], [2, 2]])


def test_standardizer_keeps_float32_and_converts_ints():
    s = Standardizer().fit(np.arange(12).reshape(6, 2))
    assert s.mean_.dtype == np.float64
    assert s.transform(np.ones((2, 2), dtype=np.float32)).dtype == np.float32
    assert s.transform(np.ones((2, 2), dtype=np.int32)).dtype == np.float64


def test_standardizer_to_dict_round_trips_through_json_exactly():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(30, 4)) * 3.3 + 1 / 3
    s = Standardizer().fit(X)
    state = json.loads(json.dumps(s.to_dict()))
    s2 = Standardizer.from_dict(state)
    np.testing.assert_array_equal(s2.mean_, s.mean_)
    np.testing.assert_array_equal(s2.scale_, s.scale_)
    np.testing.assert_array_equal(s2.transform(X), s.transform(X))
    empty = Standardizer.from_dict(Standardizer().to_dict())
    assert empty.mean_ is None


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6), min_size=2, max_size=6),
       st.floats(0, 1e-9), st.integers(0, 2**32 - 1))
def test_standardizer_from_dict_accepts_whatever_fit_produces(means, spread, seed):
    """Near-constant columns included: the scale bound of from_dict is fit's own."""
    rng = np.random.default_rng(seed)
    X = np.asarray(means) + spread * rng.standard_normal((5, len(means))) * np.abs(means)
    s = Standardizer().fit(X)
    s2 = Standardizer.from_dict(json.loads(json.dumps(s.to_dict())))
    np.testing.assert_array_equal(s2.scale_, s.scale_)


def test_standardizer_errors():
    with pytest.raises(NotFittedError, match="not fitted yet"):
        Standardizer().transform(np.ones((2, 2)))
    assert issubclass(NotFittedError, ValueError)
    s = Standardizer().fit(np.ones((3, 2)))
    with pytest.raises(ValueError, match="X must have 2 features .* got 3"):
        s.transform(np.ones((3, 3)))
    with pytest.raises(ValueError, match="X must not contain NaN"):
        Standardizer().fit(np.array([[1.0, np.nan]]))
    with pytest.raises(ValueError, match="dict from Standardizer.to_dict"):
        Standardizer.from_dict({"name": "MinMax"})
    with pytest.raises(ValueError, match="equal length"):
        Standardizer.from_dict({"name": "Standardizer", "mean": [0.0, 1.0], "scale": [1.0]})
    for scale in (0.0, -1.0, 1e-300, 2e-13):  # fit never produces a scale <= 10 eps max(|mean|, 1)
        with pytest.raises(ValueError, match="not a scale fit produces"):
            Standardizer.from_dict({"name": "Standardizer", "mean": [0.0, 100.0],
                                    "scale": [1.0, scale]})
    with pytest.raises(ValueError, match="must be finite"):
        Standardizer.from_dict({"name": "Standardizer", "mean": [0.0], "scale": [float("inf")]})
    with pytest.raises(ValueError, match="missing 'scale'"):
        Standardizer.from_dict({"name": "Standardizer", "mean": [0.0]})


# ---- minibatches ------------------------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 300), batch_size=st.integers(1, 100), seed=st.integers(0, 2**31))
def test_minibatches_cover_every_sample_once_keeping_the_last_small_batch(n, batch_size, seed):
    X, y = rows_of(n, 2), np.arange(n) * 2
    batches = list(minibatches(X, y, batch_size, seed))
    sizes = [len(xb) for xb, _ in batches]
    assert sizes[:-1] == [batch_size] * (len(sizes) - 1)
    assert sizes[-1] == (n % batch_size or batch_size)
    ids = np.concatenate([xb[:, 0] for xb, _ in batches]).astype(int)
    np.testing.assert_array_equal(np.sort(ids), np.arange(n))
    for xb, yb in batches:
        np.testing.assert_array_equal(yb, xb[:, 0] * 2)


def test_minibatches_seeded_and_unshuffled():
    X, y = rows_of(20), np.arange(20)
    first = [yb for _, yb in minibatches(X, y, 6, seed=5)]
    again = [yb for _, yb in minibatches(X, y, 6, seed=5)]
    other = [yb for _, yb in minibatches(X, y, 6, seed=6)]
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))
    ordered = [yb for _, yb in minibatches(X, y, 6, shuffle=False)]
    np.testing.assert_array_equal(np.concatenate(ordered), np.arange(20))
    assert all(yb is None for _, yb in minibatches(X, None, 7))


def test_minibatches_validate_at_the_call():
    X = rows_of(5)
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        minibatches(X, None, 0)
    with pytest.raises(TypeError, match="batch_size must be an integer, got 2.5"):
        minibatches(X, None, 2.5)
    with pytest.raises(ValueError, match="same number of samples, got 5 and 4"):
        minibatches(X, np.arange(4), 2)


# ---- one_hot ----------------------------------------------------------------------------------

def test_one_hot():
    Y = one_hot([2, 0, 1, 2])
    np.testing.assert_array_equal(Y, [[0, 0, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    assert Y.dtype == np.float64
    assert one_hot([0, 1], n_classes=4, dtype=np.float32).shape == (2, 4)
    np.testing.assert_array_equal(one_hot(np.array([1.0, 0.0])), [[0, 1], [1, 0]])
    with pytest.raises(ValueError, match=r"y must hold class indices in \[0, 2\], got 3"):
        one_hot([0, 3], n_classes=3)
    with pytest.raises(ValueError, match="integral class indices"):
        one_hot([0.5])
    with pytest.raises(ValueError, match="y must hold class indices >= 0, got -1"):
        one_hot([-1, 0])


# ---- validators -------------------------------------------------------------------------------

def test_validate_X_accepts_and_converts():
    assert validate_X([[1, 2], [3, 4]]).dtype == np.float64
    x32 = np.ones((2, 3), dtype=np.float32)
    assert validate_X(x32) is x32
    assert validate_X(x32, dtype="float64").dtype == np.float64
    ro = np.ones((3, 2))
    ro.setflags(write=False)
    assert validate_X(ro) is ro
    strided = np.ones((4, 6))[:, ::2]
    out = validate_X(strided)
    assert out.flags.c_contiguous and out.shape == (4, 3)
    assert validate_X(np.array([[True, False]])).dtype == np.float64
    assert validate_X(np.array([[1, 2]], dtype=object)).dtype == np.float64


@pytest.mark.parametrize("X, exc, pattern", [
    ([["a", "b"]], TypeError, "X_dev must be numeric, got dtype <U1"),
    (np.ones((2, 2), dtype=complex), TypeError, "X_dev must be real-valued"),
    (np.array([[1, "x"]], dtype=object), TypeError, "X_dev must contain only numbers"),
    (None, TypeError, "X_dev must be an array-like of numbers, got None"),
    ("abc", TypeError, "X_dev must be an array-like of numbers"),
    (np.array([[1.0, np.nan]]), ValueError, "X_dev must not contain NaN or infinity, got 1 NaN"),
    (np.array([[np.inf, 1.0]]), ValueError, "got 0 NaN and 1 infinite"),
    (np.ones(3), ValueError, r"X_dev must be 2-D .* got 1-D .*reshape"),
    (np.ones((2, 2, 2)), ValueError, "X_dev must be 2-D"),
    (np.ones((0, 3)), ValueError, r"at least one sample and one feature, got shape \(0, 3\)"),
    (np.ones((3, 0)), ValueError, "at least one sample and one feature"),
    ([[1.0], [2.0, 3.0]], ValueError, "X_dev could not be converted"),
])
def test_validate_X_rejects(X, exc, pattern):
    with pytest.raises(exc, match=pattern):
        validate_X(X, "X_dev")


def test_validate_X_n_features_and_dtype():
    with pytest.raises(ValueError, match=r"X must have 4 features \(columns\), got 3"):
        validate_X(np.ones((2, 3)), n_features=4)
    with pytest.raises(ValueError, match="dtype must be 'float32' or 'float64', got 'int32'"):
        validate_X(np.ones((2, 3)), dtype="int32")


def test_validate_y_multiclass():
    np.testing.assert_array_equal(validate_y([0, 2.0, 1]), [0, 2, 1])
    assert validate_y([0, 2.0, 1]).dtype == np.int64
    np.testing.assert_array_equal(validate_y(np.array([[1], [0]])), [1, 0])
    with pytest.raises(ValueError, match="y_dev must hold integral class indices, got .* 2.5"):
        validate_y([0, 2.5], "y_dev")
    with pytest.raises(ValueError, match=r"in \[0, 2\], got 3"):
        validate_y([0, 3], n_classes=3)
    with pytest.raises(ValueError, match=r"1-D class indices .* got shape \(2, 2\)"):
        validate_y(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="must not contain NaN"):
        validate_y([0.0, np.nan])
    with pytest.raises(ValueError, match="y must not be empty"):
        validate_y([])
    with pytest.raises(ValueError, match="y must have 3 entries .* got 2"):
        validate_y([0, 1], n_samples=3)
    with pytest.raises(TypeError, match="y must be numeric"):
        validate_y(["cat", "dog"])


def test_validate_y_binary_and_regression():
    out = validate_y([0, 1, 1], task="binary", dtype=np.float32)
    assert out.dtype == np.float32
    with pytest.raises(ValueError, match="0/1 targets for a sigmoid output, got 2"):
        validate_y([0, 2], task="binary")
    reg = validate_y(np.ones((4, 2)), task="regression", n_outputs=2)
    assert reg.shape == (4, 2) and reg.dtype == np.float64
    assert validate_y([1.5, 2.5], task="regression", n_outputs=1).shape == (2,)
    with pytest.raises(ValueError, match=r"3 output column\(s\), got shape \(4, 2\)"):
        validate_y(np.ones((4, 2)), task="regression", n_outputs=3)
    with pytest.raises(ValueError, match="task must be"):
        validate_y([0], task="ranking")


def test_validate_X_y_checks_lengths_and_dtypes():
    X, y = validate_X_y(np.ones((3, 2), dtype=np.float32), [0.5, 1.0, 2.0], task="regression")
    assert X.dtype == y.dtype == np.float32
    with pytest.raises(ValueError, match="y must have 3 entries"):
        validate_X_y(np.ones((3, 2)), [0, 1])


def test_check_scalar():
    assert check_scalar(np.int64(3), "n", "int", low=1) == 3
    assert type(check_scalar(np.float32(0.5), "p", "float")) is float
    with pytest.raises(TypeError, match="n must be an integer, got True"):
        check_scalar(True, "n", "int")
    with pytest.raises(TypeError, match="n must be an integer, got 1.0"):
        check_scalar(1.0, "n", "int")
    with pytest.raises(ValueError, match="p must be finite, got nan"):
        check_scalar(float("nan"), "p", "float")
    with pytest.raises(ValueError, match="p must be > 0, got 0.0"):
        check_scalar(0, "p", "float", low=0, low_inclusive=False)
    with pytest.raises(ValueError, match="p must be <= 1, got 2.0"):
        check_scalar(2, "p", "float", high=1)
