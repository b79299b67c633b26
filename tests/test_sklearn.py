"""fastnn.sklearn: scikit-learn's estimator checks, parity with scikit-learn's MLP, the alpha and
solver mappings, and the usual tools (GridSearchCV, cross_val_score, Pipeline, pickle)."""
import pickle
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn.base import clone  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import (GridSearchCV, cross_val_score,  # noqa: E402
                                     train_test_split)
from sklearn.neural_network import MLPClassifier as SkMLPClassifier  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import fastnn as fn  # noqa: E402
from fastnn.sklearn import MLPClassifier, MLPRegressor  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


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


@pytest.fixture(scope="module")
def digits_split():
    X, y = fn.datasets.digits()
    return train_test_split(X / 16.0, y, test_size=0.3, random_state=0, stratify=y)


def test_digits_accuracy_matches_scikit_learn(digits_split):
    X_train, X_test, y_train, y_test = digits_split
    settings = dict(hidden_layer_sizes=(64,), max_iter=60, alpha=1e-4, batch_size=64,
                    learning_rate_init=1e-3, random_state=0)
    ours = MLPClassifier(**settings).fit(X_train, y_train).score(X_test, y_test)
    theirs = SkMLPClassifier(**settings).fit(X_train, y_train).score(X_test, y_test)
    assert ours > 0.9 and theirs > 0.9
    assert abs(ours - theirs) < 0.03


def test_pipeline_cross_val_and_grid_search(digits_split):
    X_train, _, y_train, _ = digits_split
    X, y = X_train[:600], y_train[:600]
    pipe = make_pipeline(StandardScaler(), MLPClassifier((32,), max_iter=30,
                                                        learning_rate_init=1e-2, random_state=0))
    scores = cross_val_score(pipe, X, y, cv=3)
    assert scores.shape == (3,) and scores.min() > 0.8
    grid = GridSearchCV(MLPClassifier(max_iter=20, learning_rate_init=1e-2, random_state=0),
                        {"hidden_layer_sizes": [(16,), (32,)], "alpha": [1e-4, 1e-2]}, cv=3)
    grid.fit(X, y)
    assert set(grid.best_params_) == {"hidden_layer_sizes", "alpha"}
    assert grid.best_score_ > 0.8
    assert grid.predict(X[:5]).shape == (5,)


def test_string_labels_round_trip():
    rng = np.random.default_rng(0)
    centers = np.array([[0.0, 0.0], [4.0, 4.0], [0.0, 4.0]])
    y_idx = rng.integers(0, 3, 300)
    X = centers[y_idx] + rng.normal(size=(300, 2)) * 0.5
    names = np.array(["cat", "dog", "eel"])
    settings = dict(hidden_layer_sizes=(16,), max_iter=100, learning_rate_init=1e-2,
                    random_state=0)
    clf = MLPClassifier(**settings).fit(X, names[y_idx])
    assert list(clf.classes_) == ["cat", "dog", "eel"]
    pred = clf.predict(X)
    assert pred.dtype == names.dtype and set(pred) <= set(names)
    assert np.mean(pred == names[y_idx]) > 0.95
    assert clf.predict_proba(X).shape == (300, 3)
    # binary: one sigmoid unit, as scikit-learn; predict_proba still has two columns
    mask = y_idx < 2
    binary = MLPClassifier(**settings).fit(X[mask], names[y_idx[mask]])
    assert binary.model_.layers[-1].activation == "sigmoid" and binary.n_outputs_ == 1
    assert binary.out_activation_ == "logistic"
    proba = binary.predict_proba(X[mask])
    assert proba.shape == (mask.sum(), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert np.mean(binary.predict(X[mask]) == names[y_idx[mask]]) > 0.95
    # model_ carries the labels too (fastnn.MLP.predict maps through classes_)
    assert list(binary.model_.predict(X[mask][:5])) == list(binary.predict(X[mask][:5]))


def test_multilabel_indicator_targets():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(400, 4))
    Y = np.column_stack([X[:, 0] > 0, X[:, 1] + X[:, 2] > 0, X[:, 3] < 0.5]).astype(int)
    clf = MLPClassifier((32,), max_iter=200, random_state=0).fit(X, Y)
    assert clf.model_.layers[-1].activation == "sigmoid" and clf.n_outputs_ == 3
    assert clf.predict(X).shape == Y.shape and clf.predict_proba(X).shape == Y.shape
    assert np.mean(clf.predict(X) == Y) > 0.9


def test_regressor_smooth_function_and_output_shapes():
    rng = np.random.default_rng(0)
    X = rng.uniform(-3, 3, size=(800, 2))
    y = np.sin(X[:, 0]) + 0.5 * np.cos(X[:, 1])
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    reg = MLPRegressor((64, 64), max_iter=300, learning_rate_init=1e-2, random_state=0)
    reg.fit(X_train, y_train)
    assert reg.predict(X_test).shape == (len(X_test),)
    assert reg.predict(X_test).dtype == np.float64
    assert reg.score(X_test, y_test) > 0.9
    Y2 = np.column_stack([y_train, -y_train])
    reg2 = MLPRegressor((32,), max_iter=5, random_state=0).fit(X_train, Y2)
    assert reg2.predict(X_test).shape == (len(X_test), 2)
    reg1 = MLPRegressor((32,), max_iter=5, random_state=0).fit(X_train, y_train[:, None])
    assert reg1.predict(X_test).shape == (len(X_test), 1)   # shape follows y


def _sklearn_sgd_reference(weights, X, y, alpha, lr, momentum, batch_size):
    """One epoch of scikit-learn's SGD (heavy-ball momentum, unshuffled) on an MLP with one
    relu hidden layer and one linear output, scikit-learn's loss mean((p - y)**2)/2 +
    alpha/(2m) ||W||^2 per batch, written out in NumPy."""
    W0, b0, W1, b1 = (weights[k].copy() for k in ("0.W", "0.b", "1.W", "1.b"))
    params = [W0, b0, W1, b1]
    velocity = [np.zeros_like(p) for p in params]
    for start in range(0, len(X), batch_size):
        Xb, yb = X[start:start + batch_size], y[start:start + batch_size, None]
        m = len(Xb)
        Z = Xb @ W0 + b0
        H = np.maximum(Z, 0.0)
        delta = H @ W1 + b1 - yb
        dH = (delta @ W1.T) * (Z > 0)
        grads = [(Xb.T @ dH + alpha * W0) / m, dH.mean(0), (H.T @ delta + alpha * W1) / m,
                 delta.mean(0)]
        for p, v, g in zip(params, velocity, grads):
            v *= momentum
            v -= lr * g
            p += v
    return params


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_alpha_and_sgd_follow_scikit_learn_exactly(momentum):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + 0.1 * rng.normal(size=40)
    reg = MLPRegressor((5,), solver="sgd", alpha=0.3, batch_size=20, learning_rate_init=0.05,
                       momentum=momentum, shuffle=False, max_iter=1, warm_start=True,
                       dtype="float64", random_state=0)
    reg.fit(X, y)
    start = reg.model_.get_weights()
    reg.fit(X, y)   # one more epoch (two batches of 20) from `start`, fresh optimizer state
    expected = _sklearn_sgd_reference(start, X, y, 0.3, 0.05, momentum, 20)
    got = reg.model_.get_weights()
    for key, value in zip(("0.W", "0.b", "1.W", "1.b"), expected):
        np.testing.assert_allclose(got[key], value, rtol=1e-10, atol=1e-12, err_msg=key)
    # the reported loss is on scikit-learn's scale: half the MSE plus alpha/(2m)||W||^2
    assert reg.n_iter_ == 2 and len(reg.loss_curve_) == 2


def test_classifier_alpha_is_per_batch_l2():
    """Each step decays W by (alpha / batch_size) W: fastnn's loss_and_grads with l2=alpha on a
    batch of batch_size rows."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 4))
    y = rng.integers(0, 3, 30)
    clf = MLPClassifier((6,), solver="sgd", momentum=0.0, alpha=0.5, batch_size=10,
                        learning_rate_init=0.1, shuffle=False, max_iter=1, warm_start=True,
                        dtype="float64", random_state=0).fit(X, y)
    model = clf.model_.copy()
    clf.fit(X, y)
    for start in range(0, 30, 10):
        _, grads = model.loss_and_grads(X[start:start + 10], y[start:start + 10], l2=0.5)
        weights = model.get_weights()
        model.set_weights({k: weights[k] - 0.1 * grads[k] for k in weights})
    for key, value in model.get_weights().items():
        np.testing.assert_allclose(clf.model_.get_weights()[key], value, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("solver", ["sgd", "adam", "momentum", "rmsprop"])
def test_every_solver_learns(solver, digits_split):
    X_train, X_test, y_train, y_test = digits_split
    lr = {"sgd": 0.01, "adam": 1e-3, "momentum": 0.1, "rmsprop": 1e-3}[solver]
    clf = MLPClassifier((32,), solver=solver, learning_rate_init=lr, max_iter=30, random_state=0)
    assert clf.fit(X_train, y_train).score(X_test, y_test) > 0.85


def test_stopping_rules_and_early_stopping(digits_split):
    X_train, _, y_train, _ = digits_split
    clf = MLPClassifier((32,), max_iter=500, tol=1e-2, n_iter_no_change=2, random_state=0)
    clf.fit(X_train, y_train)
    assert clf.n_iter_ < 500 and len(clf.loss_curve_) == clf.n_iter_
    assert clf.best_loss_ == min(clf.loss_curve_) and clf.loss_ == clf.loss_curve_[-1]
    assert clf.validation_scores_ is None and clf.t_ == clf.n_iter_ * len(X_train)

    es = MLPClassifier((32,), max_iter=500, early_stopping=True, validation_fraction=0.2,
                       n_iter_no_change=3, random_state=0).fit(X_train, y_train)
    assert es.n_iter_ < 500 and len(es.validation_scores_) == es.n_iter_
    assert es.best_validation_score_ == max(es.validation_scores_) and es.best_loss_ is None
    # the best-scoring weights are restored: re-split as fit does (its third seed drawn from
    # random_state) and score them
    rng = np.random.RandomState(0)
    seeds = [rng.randint(2**31 - 1) for _ in range(3)]
    _, X_val, _, y_val = train_test_split(X_train, y_train, test_size=0.2,
                                          random_state=seeds[2], stratify=y_train)
    assert es.score(X_val, y_val) == pytest.approx(es.best_validation_score_)


def test_convergence_warning_when_max_iter_reached():
    X, y = np.random.default_rng(0).normal(size=(50, 3)), np.arange(50) % 2
    with pytest.warns(ConvergenceWarning, match="Maximum iterations"):
        MLPClassifier((4,), max_iter=2, random_state=0).fit(X, y)


def test_warm_start_continues_and_checks_classes():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(60, 3)), np.arange(60) % 3
    clf = MLPClassifier((8,), max_iter=3, warm_start=True, random_state=0).fit(X, y)
    first = clf.coefs_[0].copy()
    clf.fit(X, y)
    assert clf.n_iter_ == 6 and len(clf.loss_curve_) == 6
    assert not np.array_equal(first, clf.coefs_[0])
    with pytest.raises(ValueError, match="same classes"):
        clf.fit(X, y % 2)
    cold = MLPClassifier((8,), max_iter=3, random_state=0)
    assert cold.fit(X, y).n_iter_ == cold.fit(X, y).n_iter_ == 3


def test_fitted_attributes_and_fastnn_options():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(64, 5)), np.arange(64) % 4
    clf = MLPClassifier((16, 8), activation="tanh", keep_prob=0.8, batch_norm=True,
                        dtype="float64", max_iter=3, random_state=0).fit(X, y)
    m = clf.model_
    assert isinstance(m, fn.MLP) and m.dtype == np.float64
    assert [l.activation for l in m.layers] == ["tanh", "tanh", "softmax"]
    assert [l.keep_prob for l in m.layers[:-1]] == [0.8, 0.8]
    assert all(l.batch_norm for l in m.layers[:-1])
    assert [c.shape for c in clf.coefs_] == [(5, 16), (16, 8), (8, 4)]
    assert [b.shape for b in clf.intercepts_] == [(16,), (8,), (4,)]
    assert clf.n_features_in_ == 5 and clf.n_outputs_ == 4 and clf.n_layers_ == 4
    assert clf.out_activation_ == "softmax"
    for sk_name, fn_name in [("identity", "linear"), ("logistic", "sigmoid"), ("relu", "relu")]:
        reg = MLPRegressor((4,), activation=sk_name, max_iter=1, random_state=0).fit(X, X[:, 0])
        assert reg.model_.layers[0].activation == fn_name
        assert reg.out_activation_ == "identity"


def test_pickle_and_clone_round_trip(digits_split):
    X_train, X_test, y_train, _ = digits_split
    clf = MLPClassifier((16,), max_iter=5, random_state=0).fit(X_train, y_train)
    restored = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(restored.predict_proba(X_test), clf.predict_proba(X_test))
    assert clone(clf).get_params() == clf.get_params()


@pytest.mark.parametrize("params, match", [
    ({"solver": "lbfgs"}, "solver"),
    ({"activation": "softplus"}, "activation"),
    ({"alpha": -1.0}, "alpha"),
    ({"hidden_layer_sizes": (10, 0)}, "hidden_layer_sizes"),
    ({"batch_size": "big"}, "batch_size"),
    ({"momentum": 1.0}, "momentum"),
    ({"validation_fraction": 1.0}, "validation_fraction"),
    ({"keep_prob": 0.0}, "keep_prob"),
    ({"dtype": "float16"}, "dtype"),
    ({"max_iter": 0}, "max_iter"),
])
def test_bad_parameters_name_the_argument(params, match):
    X, y = np.zeros((10, 2)), np.arange(10) % 2
    with pytest.raises(ValueError, match=match):
        MLPClassifier(**params).fit(X, y)


def test_bad_inputs_raise_value_error():
    clf = MLPClassifier((4,), max_iter=1)
    with pytest.raises(ValueError, match="NaN"):
        clf.fit(np.array([[np.nan, 1.0], [0.0, 1.0]]), [0, 1])
    with pytest.raises(ValueError, match="Unknown label type"):
        clf.fit(np.zeros((4, 2)), [0.5, 1.5, 2.5, 3.5])
    with pytest.raises(ValueError, match="only one class"):
        clf.fit(np.zeros((4, 2)), [1, 1, 1, 1])
    with pytest.raises(TypeError, match="[Ss]parse"):
        from scipy import sparse
        clf.fit(sparse.csr_matrix(np.eye(4)), [0, 1, 0, 1])


def test_verbose_prints_per_epoch(capsys):
    X, y = np.random.default_rng(0).normal(size=(20, 2)), np.arange(20) % 2
    MLPClassifier((4,), max_iter=2, verbose=True, random_state=0).fit(X, y)
    out = capsys.readouterr().out
    assert "Iteration 1, loss = " in out and "Iteration 2, loss = " in out
