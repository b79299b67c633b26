"""fastnn.sklearn against scikit-learn itself: the estimator checks, the same settings training
the same network (every solver, both estimators, sample weights, sparse and float32 input),
single partial_fit steps from weights set by hand, the L-BFGS objective, and the usual tools
(GridSearchCV, Pipeline, pickle).  scikit-learn's own test module runs in
test_sklearn_upstream.py."""
import os
import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

import scipy.sparse as sp  # noqa: E402
from sklearn import neural_network as sk  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import fastnn as fn  # noqa: E402
from fastnn.sklearn import (  # noqa: E402
    MLPClassifier,
    MLPRegressor,
    _network,  # noqa: E402
)

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

# scikit-learn's MLP has sample_weight and loss="poisson" from 1.7 on: the oracle needs them
SK_SAMPLE_WEIGHT = tuple(int(v) for v in sklearn.__version__.split(".")[:2]) >= (1, 7)
needs_sk_sample_weight = pytest.mark.skipif(
    not SK_SAMPLE_WEIGHT, reason="scikit-learn's MLP takes sample_weight and loss='poisson' "
                                 "from 1.7 on")

OURS = {"classifier": MLPClassifier, "regressor": MLPRegressor}
THEIRS = {"classifier": sk.MLPClassifier, "regressor": sk.MLPRegressor}


@parametrize_with_checks([
    MLPClassifier(hidden_layer_sizes=(20,), max_iter=100, learning_rate_init=0.01),
    MLPRegressor(hidden_layer_sizes=(20,), max_iter=100, learning_rate_init=0.01),
])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_import_fastnn_does_not_import_sklearn():
    code = "import sys, fastnn; sys.exit('sklearn' in sys.modules)"
    here = os.path.dirname(os.path.abspath(__file__))  # outside the source tree
    assert subprocess.run([sys.executable, "-c", code], cwd=here).returncode == 0


# ---- data --------------------------------------------------------------------------------------

def _data(task, n=120, n_features=6, seed=0):
    """Small problems: X (n, n_features) and y for each kind of target."""
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, n_features))
    W = rng.normal(size=(n_features, 3))
    Z = X @ W + 0.3 * rng.normal(size=(n, 3))
    if task == "binary":
        return X, np.where(Z[:, 0] > 0, "yes", "no")
    if task == "multiclass":
        return X, Z.argmax(axis=1) * 10 + 1
    if task == "multilabel":
        return X, (Z > 0).astype(int)
    if task == "regression":
        return X, Z[:, 0]
    return X, Z          # multi-output regression


KIND = {"binary": "classifier", "multiclass": "classifier", "multilabel": "classifier",
        "regression": "regressor", "multioutput": "regressor"}


def _pair(task, **params):
    """(fastnn estimator, scikit-learn estimator) with the same parameters."""
    kind = KIND[task]
    return OURS[kind](**params), THEIRS[kind](**params)


def _assert_same_fit(ours, theirs, rtol, atol=1e-10):
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)
    assert ours.n_iter_ == theirs.n_iter_
    assert ours.loss_ == pytest.approx(theirs.loss_, rel=rtol, abs=atol)


# ---- the same settings train the same network --------------------------------------------------

@pytest.mark.parametrize("task", list(KIND))
@pytest.mark.parametrize("solver, extra", [
    ("adam", {}),
    ("sgd", {"momentum": 0.9, "nesterovs_momentum": True}),
    ("sgd", {"momentum": 0.5, "nesterovs_momentum": False, "learning_rate": "invscaling",
             "power_t": 0.3}),
    ("sgd", {"momentum": 0.0}),
    ("lbfgs", {"max_iter": 15}),
])
def test_fit_follows_scikit_learn(task, solver, extra):
    X, y = _data(task)
    params = dict(hidden_layer_sizes=(7, 5), activation="tanh", solver=solver, alpha=0.01,
                  batch_size=32, learning_rate_init=0.01, max_iter=4, random_state=3)
    params.update(extra)
    ours, theirs = _pair(task, **params)
    ours.fit(X, y)
    theirs.fit(X, y)
    _assert_same_fit(ours, theirs, rtol=1e-6)
    if solver != "lbfgs":
        np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-9)
        assert ours.t_ == theirs.t_ == 4 * len(X)
        assert ours._optimizer.learning_rate == pytest.approx(theirs._optimizer.learning_rate)
    assert ours.out_activation_ == theirs.out_activation_
    assert ours.n_layers_ == theirs.n_layers_ and ours.n_outputs_ == theirs.n_outputs_
    np.testing.assert_allclose(ours.predict(X) if KIND[task] == "regressor"
                               else ours.predict_proba(X),
                               theirs.predict(X) if KIND[task] == "regressor"
                               else theirs.predict_proba(X), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("task", ["binary", "regression"])
def test_early_stopping_follows_scikit_learn(task):
    X, y = _data(task, n=200)
    if task == "binary":
        y = (y == "yes").astype(int)   # string labels with early stopping need scikit-learn 1.8
    params = dict(hidden_layer_sizes=(8,), early_stopping=True, validation_fraction=0.25,
                  n_iter_no_change=3, tol=1e-3, max_iter=200, learning_rate_init=0.05,
                  random_state=0)
    ours, theirs = _pair(task, **params)
    ours.fit(X, y)
    theirs.fit(X, y)
    assert ours.n_iter_ == theirs.n_iter_ < 200
    np.testing.assert_allclose(ours.validation_scores_, theirs.validation_scores_, rtol=1e-7)
    assert ours.best_validation_score_ == max(ours.validation_scores_)
    assert ours.best_loss_ is None and ours._no_improvement_count == 4
    _assert_same_fit(ours, theirs, rtol=1e-6)     # the best weights are kept, as scikit-learn


def test_adaptive_learning_rate_follows_scikit_learn():
    X, y = _data("binary", n=60)
    params = dict(hidden_layer_sizes=(4,), solver="sgd", learning_rate="adaptive", tol=0.05,
                  n_iter_no_change=2, learning_rate_init=0.1, max_iter=500, random_state=0)
    ours, theirs = _pair("binary", **params)
    ours.fit(X, y)
    theirs.fit(X, y)
    assert ours.n_iter_ == theirs.n_iter_ < 500
    assert ours._optimizer.learning_rate == theirs._optimizer.learning_rate <= 1e-6
    _assert_same_fit(ours, theirs, rtol=1e-6)


@needs_sk_sample_weight
@pytest.mark.parametrize("task", ["multiclass", "multilabel", "multioutput"])
@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
def test_sample_weight_follows_scikit_learn(task, solver):
    X, y = _data(task, n=90)
    sw = np.random.RandomState(1).choice([0.0, 0.5, 1.0, 3.0], size=len(X))
    params = dict(hidden_layer_sizes=(6,), solver=solver, alpha=0.1, batch_size=20,
                  learning_rate_init=0.01, max_iter=3, random_state=0)
    ours, theirs = _pair(task, **params)
    ours.fit(X, y, sample_weight=sw)
    theirs.fit(X, y, sample_weight=sw)
    _assert_same_fit(ours, theirs, rtol=1e-6)


def test_integer_sample_weight_is_row_repetition():
    """Second oracle, independent of scikit-learn: for lbfgs (the whole data in one objective)
    weight k on a row is k copies of it."""
    X, y = _data("multiclass", n=40)
    sw = np.random.RandomState(0).randint(1, 4, size=len(X))
    params = dict(hidden_layer_sizes=(5,), solver="lbfgs", alpha=0.3, max_iter=20,
                  random_state=0)
    weighted = MLPClassifier(**params).fit(X, y, sample_weight=sw)
    repeated = MLPClassifier(**params).fit(np.repeat(X, sw, axis=0), np.repeat(y, sw))
    _assert_same_fit(weighted, repeated, rtol=1e-7)


@needs_sk_sample_weight
def test_poisson_follows_scikit_learn():
    X, y_reg = _data("regression", n=100)
    y = np.random.RandomState(0).poisson(np.exp(0.3 * y_reg))
    params = dict(loss="poisson", hidden_layer_sizes=(4,), solver="lbfgs", alpha=0.01,
                  max_iter=30, random_state=0)
    ours = MLPRegressor(**params).fit(X, y)
    theirs = sk.MLPRegressor(**params).fit(X, y)
    assert ours.out_activation_ == "exp"
    _assert_same_fit(ours, theirs, rtol=1e-5)
    np.testing.assert_allclose(ours.predict(X), theirs.predict(X), rtol=1e-6)
    with pytest.raises(ValueError, match="y must hold values >= 0"):
        MLPRegressor(loss="poisson").fit(X, -y)


# ---- single steps from weights set by hand -------------------------------------------------

def _hand_set(est, X, units, seed):
    rng = np.random.RandomState(seed)
    est.coefs_ = [rng.uniform(-0.5, 0.5, (a, b)) for a, b in zip(units[:-1], units[1:])]
    est.intercepts_ = [rng.uniform(-0.5, 0.5, b) for b in units[1:]]
    return est


@pytest.mark.parametrize("task", list(KIND))
@pytest.mark.parametrize("solver, extra", [
    ("sgd", {"momentum": 0.9, "nesterovs_momentum": True}),
    ("sgd", {"momentum": 0.9, "nesterovs_momentum": False}),
    ("sgd", {"momentum": 0.0}),
    ("adam", {}),
])
def test_partial_fit_steps_from_hand_set_weights_match_scikit_learn(task, solver, extra):
    """First partial_fit on both, then the weights replaced by hand in both, then three more
    partial_fit epochs (two batches each, weighted rows) must agree step for step."""
    X, y = _data(task, n=50)
    sw = np.where(np.arange(len(X)) % 3 == 0, 2.0, 1.0)
    params = dict(hidden_layer_sizes=(4,), activation="logistic", solver=solver, alpha=0.05,
                  batch_size=25, learning_rate_init=0.1, shuffle=False, random_state=0,
                  **extra)
    ours, theirs = _pair(task, **params)
    fit_kw = {"classes": np.unique(y)} if task in ("binary", "multiclass") else {}
    if task == "multilabel":
        fit_kw = {"classes": np.arange(y.shape[1])}
    ours.partial_fit(X, y, **fit_kw)
    theirs.partial_fit(X, y, **fit_kw)
    units = [X.shape[1], 4, ours.n_outputs_]
    _hand_set(ours, X, units, seed=5)
    _hand_set(theirs, X, units, seed=5)
    weighted = {"sample_weight": sw} if SK_SAMPLE_WEIGHT else {}
    for _ in range(3):
        ours.partial_fit(X, y, **weighted)
        theirs.partial_fit(X, y, **weighted)
        _assert_same_fit(ours, theirs, rtol=1e-10, atol=1e-13)
    assert ours.t_ == theirs.t_ and ours.n_iter_ == theirs.n_iter_ == 1


def test_worked_example_step():
    """scikit-learn's worked example: one SGD step of a 3-2-1 logistic network from given
    weights, by hand and by scikit-learn."""
    X, y = np.array([[0.6, 0.8, 0.7]]), np.array([0])
    results = []
    for cls in (MLPClassifier, sk.MLPClassifier):
        est = cls(solver="sgd", learning_rate_init=0.1, alpha=0.1, activation="logistic",
                  random_state=1, max_iter=1, hidden_layer_sizes=2, momentum=0)
        est.partial_fit(X, y, classes=[0, 1])
        est.coefs_ = [np.array([[0.1, 0.2], [0.3, 0.1], [0.5, 0]]), np.array([[0.1], [0.2]])]
        est.intercepts_ = [np.array([0.1, 0.1]), np.array([1.0])]
        est.partial_fit(X, y)
        results.append(est)
    ours, theirs = results
    np.testing.assert_allclose(ours.coefs_[0], [[0.098, 0.195756], [0.2956664, 0.096008],
                                                [0.4939998, -0.002244]], atol=1e-3)
    _assert_same_fit(ours, theirs, rtol=1e-12)
    assert ours.predict_proba(X)[0, 1] == pytest.approx(0.739, abs=1e-3)


@pytest.mark.parametrize("task", list(KIND))
def test_lbfgs_objective_equals_scikit_learn(task):
    X, y = _data(task, n=70)
    sw = np.random.RandomState(0).uniform(0.5, 2.0, len(X))
    params = dict(hidden_layer_sizes=(5, 3), activation="relu", solver="lbfgs", alpha=0.2,
                  max_iter=2, random_state=0)
    ours, theirs = _pair(task, **params)
    ours.fit(X, y)
    theirs.fit(X, y)
    Y = theirs._label_binarizer.transform(y) if KIND[task] == "classifier" else y
    Y = np.asarray(Y).reshape(len(X), -1)
    packed = np.random.RandomState(1).normal(size=sum(c.size for c in ours.coefs_ +
                                                      ours.intercepts_))
    units = [X.shape[1], 5, 3, Y.shape[1]]
    buffers = ([X] + [None] * 3, [None] * 3,
               [np.empty((a, b)) for a, b in zip(units[:-1], units[1:])],
               [np.empty(b) for b in units[1:]])
    for weights in (None, sw) if SK_SAMPLE_WEIGHT else (None,):
        loss, grad = ours._loss_grad_lbfgs(packed, X, Y, weights)
        args = (weights, *buffers) if SK_SAMPLE_WEIGHT else buffers
        sk_loss, sk_grad = theirs._loss_grad_lbfgs(packed, X, Y, *args)
        np.testing.assert_allclose(grad, sk_grad, rtol=1e-9, atol=1e-12)
        assert loss == pytest.approx(sk_loss, rel=1e-9)


def test_lbfgs_max_fun_and_convergence_warning():
    X, y = _data("multiclass")
    with pytest.warns(ConvergenceWarning, match="lbfgs failed to converge"):
        clf = MLPClassifier((10,), solver="lbfgs", max_fun=5, random_state=0).fit(X, y)
    assert clf.n_iter_ <= 5
    assert not hasattr(clf, "loss_curve_") and not hasattr(clf, "partial_fit")
    assert not hasattr(MLPRegressor(solver="lbfgs"), "partial_fit")


# ---- inputs --------------------------------------------------------------------------------

@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
@pytest.mark.parametrize("fmt", [sp.csr_matrix, sp.csc_matrix, sp.csr_array])
def test_sparse_input_gives_the_dense_results_batch_by_batch(solver, fmt, monkeypatch):
    X, y = _data("multiclass", n=150)
    X[np.abs(X) < 0.8] = 0.0
    params = dict(hidden_layer_sizes=(6,), solver=solver, batch_size=40, max_iter=3,
                  random_state=0)
    dense = MLPClassifier(**params).fit(X, y)
    dense_proba = dense.predict_proba(X)
    rows = []
    real = sp.csr_matrix.toarray

    def recording_toarray(self, *args, **kwargs):
        if self.shape[1] == X.shape[1]:     # pieces of X (not the encoded targets)
            rows.append(self.shape[0])
        return real(self, *args, **kwargs)
    monkeypatch.setattr(sp.csr_matrix, "toarray", recording_toarray)
    monkeypatch.setattr(_network, "CHUNK_ROWS", 64)
    sparse = MLPClassifier(**params).fit(fmt(X), y)
    assert rows and max(rows) <= 64 < len(X)      # never the whole matrix at once
    _assert_same_fit(sparse, dense, rtol=1e-12)
    np.testing.assert_allclose(sparse.predict_proba(fmt(X)), dense_proba, rtol=1e-12)


@pytest.mark.parametrize("kind", ["classifier", "regressor"])
def test_float32_input_stays_float32(kind):
    X, y = _data("multiclass" if kind == "classifier" else "regression")
    est64 = OURS[kind](hidden_layer_sizes=(8,), max_iter=5, random_state=0).fit(X, y)
    est32 = OURS[kind](hidden_layer_sizes=(8,), max_iter=5, random_state=0).fit(
        X.astype(np.float32), y)
    assert est32.model_.dtype == np.float32 and est64.model_.dtype == np.float64
    assert all(a.dtype == np.float32 for a in est32.coefs_ + est32.intercepts_)
    out32 = est32.predict(X.astype(np.float32)) if kind == "regressor" else \
        est32.predict_proba(X.astype(np.float32))
    out64 = est64.predict(X) if kind == "regressor" else est64.predict_proba(X)
    assert out32.dtype == np.float32
    np.testing.assert_allclose(out32, out64, rtol=1e-3, atol=1e-4)
    forced = OURS[kind](hidden_layer_sizes=(8,), max_iter=1, dtype="float32").fit(X, y)
    assert forced.coefs_[0].dtype == np.float32
    forced.set_params(dtype="float64").partial_fit(X, y)   # the weights carry over, converted
    assert forced.coefs_[0].dtype == np.float64 and forced._optimizer.fits(forced.model_._params)


def test_hand_set_weights_predict_as_scikit_learn():
    X, y = _data("multiclass")
    ours, theirs = _pair("multiclass", hidden_layer_sizes=(5,), max_iter=2, random_state=0)
    ours.fit(X, y)
    theirs.fit(X, y)
    _hand_set(ours, X, [X.shape[1], 5, 3], seed=2)
    _hand_set(theirs, X, [X.shape[1], 5, 3], seed=2)
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), rtol=1e-12)
    ours.coefs_[1][:] = 0.0        # in place, as on scikit-learn's arrays
    theirs.coefs_[1][:] = 0.0
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), rtol=1e-12)
    ours.coefs_[0] = np.zeros((2, 5))
    with pytest.raises(ValueError, match=r"coefs_\[0\] must have shape \(6, 5\)"):
        ours.predict(X)


def test_predictions_follow_fitted_weights_changed_in_place_or_replaced():
    """After fit, coefs_/intercepts_ are views of the network: predict reuses the network, yet
    sees every change -- in place, an array replaced in the list, or the list replaced."""
    X, y = _data("multiclass")
    ours, _ = _pair("multiclass", hidden_layer_sizes=(5,), max_iter=2, random_state=0)
    ours.fit(X, y)

    def manual(est):  # the forward pass by hand, as scikit-learn documents it
        h = np.maximum(X @ est.coefs_[0] + est.intercepts_[0], 0.0)
        z = h @ est.coefs_[1] + est.intercepts_[1]
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    np.testing.assert_allclose(ours.predict_proba(X), manual(ours), rtol=1e-12)
    ours.coefs_[1][:] = 0.5                                   # in place
    np.testing.assert_allclose(ours.predict_proba(X), manual(ours), rtol=1e-12)
    ours.intercepts_[1] = np.array([1.0, -1.0, 0.0])          # one array replaced
    np.testing.assert_allclose(ours.predict_proba(X), manual(ours), rtol=1e-12)
    ours.coefs_ = [c * 2 for c in ours.coefs_]                # the list replaced
    np.testing.assert_allclose(ours.predict_proba(X), manual(ours), rtol=1e-12)


# ---- stopping rules, warm start ------------------------------------------------------------

def test_convergence_warning_and_stopping_rules():
    X, y = _data("binary", n=50)
    with pytest.warns(ConvergenceWarning, match="Maximum iterations"):
        MLPClassifier((4,), max_iter=2, random_state=0).fit(X, y)
    clf = MLPClassifier((8,), max_iter=500, tol=1e-2, n_iter_no_change=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        clf.fit(X, y)
    assert clf.n_iter_ < 500 and len(clf.loss_curve_) == clf.n_iter_
    assert clf.best_loss_ == min(clf.loss_curve_) and clf.loss_ == clf.loss_curve_[-1]
    assert clf.validation_scores_ is None and clf._no_improvement_count == 3
    never = MLPClassifier((4,), max_iter=30, tol=1e9, n_iter_no_change=np.inf,
                          random_state=0).fit(X, y)
    assert never.n_iter_ == 30 and never._no_improvement_count == 29


def test_warm_start_continues_and_checks_classes():
    X, y = _data("multiclass", n=60)
    clf = MLPClassifier((8,), max_iter=3, warm_start=True, random_state=0).fit(X, y)
    first = clf.coefs_[0].copy()
    model = clf.model_
    clf.fit(X, y)
    assert clf.n_iter_ == 3 and len(clf.loss_curve_) == 6 and clf.t_ == 6 * len(X)
    assert clf.model_ is model and not np.array_equal(first, clf.coefs_[0])
    with pytest.raises(ValueError, match="same classes as in the previous call to fit"):
        clf.fit(X, np.where(y == 1, 11, y))
    clf.set_params(hidden_layer_sizes=(9,))
    with pytest.raises(ValueError, match="hidden_layer_sizes"):
        clf.fit(X, y)
    cold = MLPClassifier((8,), max_iter=3, random_state=0)
    assert cold.fit(X, y).n_iter_ == cold.fit(X, y).n_iter_ == 3


def test_partial_fit_classes_and_unseen_labels():
    X, y = _data("multiclass", n=60)
    clf = MLPClassifier((5,), random_state=0)
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        clf.partial_fit(X, y)
    clf.partial_fit(X[y != 21], y[y != 21], classes=[1, 11, 21])
    assert list(clf.classes_) == [1, 11, 21] and clf.predict_proba(X).shape == (60, 3)
    clf.partial_fit(X, y)
    with pytest.raises(ValueError, match="not the same as on last call"):
        clf.partial_fit(X, y, classes=[1, 11])
    with pytest.raises(ValueError, match="`y` has classes not in `self.classes_`"):
        clf.partial_fit(X, y + 1)
    with pytest.raises(ValueError, match="partial_fit does not support early_stopping"):
        MLPClassifier(early_stopping=True).partial_fit(X, y, classes=[1, 11, 21])


# ---- labels, outputs, fastnn's options -------------------------------------------------------

def test_string_labels_and_binary_output():
    X, y = _data("binary")
    clf = MLPClassifier((16,), max_iter=300, learning_rate_init=1e-2, random_state=0).fit(X, y)
    assert list(clf.classes_) == ["no", "yes"] and clf.n_outputs_ == 1
    assert clf.out_activation_ == "logistic" and clf.model_.layers[-1].activation == "sigmoid"
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert np.mean(clf.predict(X) == y) > 0.95
    np.testing.assert_allclose(clf.predict_log_proba(X), np.log(proba))
    # model_ carries the labels (fastnn.MLP.predict maps through classes_, model files keep them)
    assert list(clf.model_.predict(X[:5])) == list(clf.predict(X[:5]))


def test_single_class_is_predicted_as_scikit_learn():
    X, _ = _data("binary", n=20)
    y = np.full(20, 7)
    ours, theirs = _pair("binary", hidden_layer_sizes=(3,), max_iter=5, random_state=0)
    np.testing.assert_array_equal(ours.fit(X, y).predict(X), theirs.fit(X, y).predict(X))


def test_regressor_output_shapes_follow_scikit_learn():
    X, Y = _data("multioutput")
    for y in (Y[:, 0], Y[:, :1], Y):
        ours, theirs = _pair("regression", hidden_layer_sizes=(4,), max_iter=2, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert ours.fit(X, y).predict(X).shape == theirs.fit(X, y).predict(X).shape


@pytest.mark.parametrize("solver", ["sgd", "adam", "momentum", "rmsprop", "lbfgs"])
def test_every_solver_learns_digits(solver):
    X, y = fn.datasets.digits()
    X = X / 16.0
    lr = {"sgd": 0.1, "adam": 1e-2, "momentum": 0.1, "rmsprop": 1e-3, "lbfgs": 1e-3}[solver]
    clf = MLPClassifier((32,), solver=solver, learning_rate_init=lr, max_iter=30,
                        random_state=0).fit(X[:1200], y[:1200])
    assert clf.score(X[1200:], y[1200:]) > 0.85


def test_fastnn_options():
    X, y = _data("multiclass", n=64)
    clf = MLPClassifier((16, 8), activation="leaky_relu", keep_prob=0.8, batch_norm=True,
                        dtype="float32", max_iter=3, random_state=0).fit(X, y)
    m = clf.model_
    assert isinstance(m, fn.MLP) and m.dtype == np.float32
    assert [l.activation for l in m.layers] == ["leaky_relu", "leaky_relu", "softmax"]
    assert [l.keep_prob for l in m.layers[:-1]] == [0.8, 0.8]
    assert all(l.batch_norm for l in m.layers[:-1])
    assert [c.shape for c in clf.coefs_] == [(6, 16), (16, 8), (8, 3)]
    weights = m.get_weights()
    np.testing.assert_array_equal(clf.intercepts_[0], weights["0.beta"])
    assert clf.predict(X).shape == (64,)
    with pytest.raises(ValueError, match="cannot be combined with batch_norm"):
        MLPClassifier(batch_norm=True).fit(X, y, sample_weight=np.arange(64) % 2 + 1.0)
    with pytest.raises(ValueError, match="keep_prob must be 1.0 and batch_norm False"):
        MLPClassifier(solver="lbfgs", keep_prob=0.5).fit(X, y)


# ---- tools, pickling, errors ----------------------------------------------------------------

def test_pipeline_cross_val_and_grid_search():
    X, y = fn.datasets.digits()
    X, y = X[:600], y[:600]
    pipe = make_pipeline(StandardScaler(), MLPClassifier((32,), max_iter=30,
                                                        learning_rate_init=1e-2, random_state=0))
    scores = cross_val_score(pipe, X, y, cv=3)
    assert scores.shape == (3,) and scores.min() > 0.8
    grid = GridSearchCV(MLPClassifier(max_iter=20, learning_rate_init=1e-2, random_state=0),
                        {"hidden_layer_sizes": [(16,), (32,)], "alpha": [1e-4, 1e-2]}, cv=3)
    grid.fit(X / 16.0, y)
    assert set(grid.best_params_) == {"hidden_layer_sizes", "alpha"}
    assert grid.best_score_ > 0.8


def test_pickle_keeps_coefs_as_views_of_the_network():
    X, y = _data("multiclass")
    clf = MLPClassifier((6,), max_iter=5, random_state=0).fit(X, y)
    restored = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(restored.predict_proba(X), clf.predict_proba(X))
    before = restored.coefs_[0].copy()
    restored.partial_fit(X, y)
    assert not np.array_equal(before, restored.coefs_[0])    # training moved coefs_ itself
    restored.coefs_[1][:] = 0.0        # every row's output is now softmax(intercepts_[1])
    b = restored.intercepts_[1]
    np.testing.assert_allclose(restored.predict_proba(X),
                               np.tile(np.exp(b) / np.exp(b).sum(), (len(X), 1)), rtol=1e-12)
    assert clone(clf).get_params() == clf.get_params()


@pytest.mark.parametrize("params, error, match", [
    ({"solver": "newton"}, ValueError, "solver must be one of"),
    ({"activation": "softplus"}, ValueError, "activation"),
    ({"alpha": -1.0}, ValueError, "alpha"),
    ({"alpha": "big"}, TypeError, "alpha"),
    ({"hidden_layer_sizes": (10, 0)}, ValueError, "hidden_layer_sizes must be > 0"),
    ({"batch_size": "big"}, ValueError, "batch_size"),
    ({"momentum": 1.5}, ValueError, "momentum"),
    ({"validation_fraction": 1.0}, ValueError, "validation_fraction"),
    ({"n_iter_no_change": 0}, ValueError, "n_iter_no_change"),
    ({"learning_rate": "cyclic"}, ValueError, "learning_rate"),
    ({"keep_prob": 0.0}, ValueError, "keep_prob"),
    ({"dtype": "float16"}, ValueError, "dtype"),
    ({"max_iter": 0}, ValueError, "max_iter"),
])
def test_bad_parameters_name_the_argument(params, error, match):
    X, y = np.zeros((10, 2)), np.arange(10) % 2
    with pytest.raises(error, match=match):
        MLPClassifier(**params).fit(X, y)


def test_regressor_loss_comes_first_as_in_scikit_learn():
    with pytest.raises(TypeError, match="pass hidden_layer_sizes by keyword"):
        MLPRegressor((64, 64)).fit(np.zeros((4, 2)), np.zeros(4))


def test_bad_inputs_raise_before_training():
    X, y = np.zeros((6, 2)), np.arange(6) % 2
    clf = MLPClassifier((4,), max_iter=1)
    with pytest.raises(ValueError, match="NaN"):
        clf.fit(np.array([[np.nan, 1.0], [0.0, 1.0]]), [0, 1])
    with pytest.raises(ValueError, match="Unknown label type"):
        clf.fit(np.zeros((4, 2)), [0.5, 1.5, 2.5, 3.5])
    for sw, match in [(-np.ones(6), "sample_weight must be >= 0"),
                      (np.ones(5), r"sample_weight must have shape \(6,\)"),
                      (np.zeros(6), "sample_weight must not be all zero"),
                      (np.full(6, np.inf), "sample_weight must be finite")]:
        with pytest.raises(ValueError, match=match):
            clf.fit(X, y, sample_weight=sw)
    with pytest.raises(ValueError, match="validation set is too small"):
        MLPRegressor(early_stopping=True).fit(X, y.astype(float))


def test_verbose_prints_per_epoch(capsys):
    X, y = _data("binary", n=20)
    MLPClassifier((4,), max_iter=2, verbose=True, random_state=0).fit(X, y)
    out = capsys.readouterr().out
    assert "Iteration 1, loss = " in out and "Iteration 2, loss = " in out


def test_benchmark_script_runs_and_both_train_the_same_network():
    """benchmarks/sklearn_compare.py at tiny sizes: every case runs, and fastnn reaches
    scikit-learn's score in as many epochs (both train the same network)."""
    import importlib.util
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "benchmarks",
                        "sklearn_compare.py")
    if not os.path.isfile(path):
        pytest.skip("no source tree (benchmarks/) beside the tests")
    spec = importlib.util.spec_from_file_location("sklearn_compare", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    result = bench.run(repeat=1, quick=True, fastnn_threads=[1])
    assert len(result["rows"]) == 5
    for row in result["rows"]:
        ours, theirs = row["fastnn"], row["scikit-learn"]
        assert ours["n_iter"] == theirs["n_iter"]
        assert ours["score"] == pytest.approx(theirs["score"], abs=0.02)
        assert ours["seconds"] > 0 and row["fastnn, 1 thread(s)"]["seconds"] > 0
