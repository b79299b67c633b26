"""fastnn.gradcheck: the function form over a dict of arrays, and the model form on the object it
is given (subclass and instance overrides of ``loss_and_grads`` included)."""
import types

import numpy as np
import pytest

import fastnn as fn

# ---- a learner's own network, written the course's way (columns are examples) -----------------

def _relu(z):
    return np.maximum(z, 0.0)


def course_net(X, Y, bug=None):
    """``f(params) -> (cost, grads)`` of a 3-layer relu/relu/sigmoid network, cross-entropy cost,
    X of shape (n_x, m); the gradients carry the course's keys (dW1, db1, ... and dZ, dA)."""
    m = X.shape[1]

    def f(p):
        Z1 = p["W1"] @ X + p["b1"]
        A1 = _relu(Z1)
        Z2 = p["W2"] @ A1 + p["b2"]
        A2 = _relu(Z2)
        Z3 = p["W3"] @ A2 + p["b3"]
        A3 = 1.0 / (1.0 + np.exp(-Z3))
        cost = -np.sum(Y * np.log(A3) + (1 - Y) * np.log(1 - A3)) / m
        dZ3 = A3 - Y
        dW3 = dZ3 @ A2.T / m
        db3 = dZ3.sum(axis=1, keepdims=True) / m
        dA2 = p["W3"].T @ dZ3
        dZ2 = dA2 * (A2 > 0)
        dW2 = dZ2 @ A1.T / m * (2.0 if bug == "dW2 x2" else 1.0)
        db2 = dZ2.sum(axis=1, keepdims=True) / m
        dA1 = p["W2"].T @ dZ2
        dZ1 = dA1 * (A1 > 0)
        dW1 = dZ1 @ X.T / m
        db1 = dZ1.sum(axis=1, keepdims=True) * (4.0 if bug == "db1 4/m" else 1.0) / m
        return cost, {"dZ3": dZ3, "dW3": dW3, "db3": db3, "dA2": dA2, "dZ2": dZ2, "dW2": dW2,
                      "db2": db2, "dA1": dA1, "dZ1": dZ1, "dW1": dW1, "db1": db1}
    return f


def course_params(seed=1):
    rng = np.random.default_rng(seed)
    return {"W1": rng.standard_normal((5, 4)), "b1": rng.standard_normal((5, 1)),
            "W2": rng.standard_normal((3, 5)), "b2": rng.standard_normal((3, 1)),
            "W3": rng.standard_normal((1, 3)), "b3": rng.standard_normal((1, 1))}


def course_data(seed=1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((4, 3)), np.array([[1.0, 1.0, 0.0]])


def test_function_form_passes_a_correct_network():
    X, Y = course_data()
    params = course_params()
    before = {k: v.copy() for k, v in params.items()}
    result = fn.gradcheck(course_net(X, Y), params)
    assert result.passed and result.difference < 1e-7, result
    assert result.n_checked == sum(v.size for v in params.values())
    assert set(result.per_array) == set(params)
    for k in params:                     # the learner's arrays are not touched
        np.testing.assert_array_equal(params[k], before[k])


@pytest.mark.parametrize("bug, key", [("dW2 x2", "W2"), ("db1 4/m", "b1")])
def test_function_form_catches_a_planted_bug_in_the_right_array(bug, key):
    X, Y = course_data()
    result = fn.gradcheck(course_net(X, Y, bug=bug), course_params())
    assert not result.passed and result.difference > 1e-3, result
    assert result.per_array[key] > 0.1          # a factor k off gives (k-1)/(k+1)
    for other, value in result.per_array.items():
        if other != key:
            assert value < 1e-7, (other, value)


@pytest.mark.parametrize("factor", [1.0, 1.01, 1.5, 3.0])
def test_difference_is_the_formula(factor):
    """For J = sum(W^3)/3 the central difference is exactly W^2 + eps^2/3, so the reported
    difference for a gradient factor*W^2 can be written down."""
    W = np.array([[0.5, -1.5, 2.0], [1.25, -0.75, 3.0]])
    eps = 1e-3

    def f(p):
        return np.sum(p["W"] ** 3) / 3.0, {"W": factor * p["W"] ** 2}

    num = W ** 2 + eps ** 2 / 3
    ana = factor * W ** 2
    want = np.linalg.norm(num - ana) / (np.linalg.norm(num) + np.linalg.norm(ana))
    result = fn.gradcheck(f, {"W": W}, eps=eps)
    assert result.difference == pytest.approx(want, rel=1e-6, abs=1e-12)
    assert result.per_array["W"] == result.difference
    assert result.passed == (want <= 2e-7)


def test_function_form_max_entries_and_integer_params():
    def f(p):
        return float(np.sum(p["a"] ** 2)), {"da": 2 * p["a"]}
    result = fn.gradcheck(f, {"a": np.arange(10)}, max_entries=4)
    assert result.passed and result.n_checked == 4


@pytest.mark.parametrize("f, params, exc, words", [
    (lambda p: (0.0, {"W": p["W"]}), [np.ones(2)], TypeError, "params must be a dict"),
    (lambda p: (0.0, {"W": p["W"]}), {}, ValueError, "at least one array"),
    (lambda p: (0.0, {"W": p["W"]}), {"W": np.array([np.nan])}, ValueError, "params['W']"),
    (lambda p: (0.0, {"W": p["W"]}), {"W": np.array(["a"])}, TypeError, "params['W']"),
    (lambda p: 0.0, {"W": np.ones(2)}, TypeError, "(cost, grads)"),
    (lambda p: ("x", {"W": p["W"]}), {"W": np.ones(2)}, TypeError, "real scalar"),
    (lambda p: (np.inf, {"W": p["W"]}), {"W": np.ones(2)}, ValueError, "non-finite cost"),
    (lambda p: (0.0, {"V": p["W"]}), {"W": np.ones(2)}, ValueError, "'dW'"),
    (lambda p: (0.0, {"dW": np.ones(3)}), {"W": np.ones(2)}, ValueError, "shape"),
    (lambda p: (0.0, [p["W"]]), {"W": np.ones(2)}, TypeError, "grads f returned must be a dict"),
])
def test_function_form_bad_input(f, params, exc, words):
    with pytest.raises(exc, match=None) as info:
        fn.gradcheck(f, params)
    assert words in str(info.value)


def test_function_form_refuses_model_arguments_and_non_callables():
    f = course_net(*course_data())
    with pytest.raises(TypeError, match="y or l2"):
        fn.gradcheck(f, course_params(), np.zeros(3))
    with pytest.raises(TypeError, match="y or l2"):
        fn.gradcheck(f, course_params(), l2=0.1)
    with pytest.raises(TypeError, match="model must be"):
        fn.gradcheck(3, course_params())
    model = fn.MLP(2, [fn.Dense(2, "softmax")])
    with pytest.raises(TypeError, match="X and y are required"):
        fn.gradcheck(model, np.zeros((2, 2)))


# ---- the model form checks the object it is given ---------------------------------------------

def _model(dtype, cls=fn.MLP):
    rng = np.random.default_rng(3)
    model = cls(4, [fn.Dense(6, "tanh"), fn.Dense(3, "softmax")], dtype=dtype, seed=1)
    w = model.get_weights()
    w["0.b"] = rng.normal(0, 0.3, 6).astype(dtype)
    model.set_weights(w)
    return model, rng.standard_normal((7, 4)), rng.integers(0, 3, 7)


class ForgetsItsPenalty(fn.MLP):
    """Adds c/2 ||W0||^2 to the cost but forgets its gradient c W0: a learner's bug."""

    def loss_and_grads(self, X, y, **kwargs):
        cost, grads = super().loss_and_grads(X, y, **kwargs)
        W = self.get_weights()["0.W"]
        return cost + 0.5 * np.sum(W ** 2), grads


class KeepsItsPenalty(fn.MLP):
    """The same penalty with its gradient: a correct subclass."""

    def loss_and_grads(self, X, y, **kwargs):
        cost, grads = super().loss_and_grads(X, y, **kwargs)
        W = self.get_weights()["0.W"]
        grads["0.W"] = grads["0.W"] + W
        return cost + 0.5 * np.sum(W ** 2), grads


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_model_form_checks_a_subclass_own_method(dtype):
    bad, X, y = _model(dtype, ForgetsItsPenalty)
    before = bad.get_weights()
    result = fn.gradcheck(bad, X, y)
    assert not result.passed and result.per_array["0.W"] > 1e-2, result
    assert result.per_array["1.W"] < 1e-7 and result.per_array["1.b"] < 1e-7
    for k, v in bad.get_weights().items():      # left as it was
        np.testing.assert_array_equal(v, before[k])
    assert bad.dtype == np.dtype(dtype)
    good, X, y = _model(dtype, KeepsItsPenalty)
    result = fn.gradcheck(good, X, y)
    assert result.passed and result.difference < 1e-7, result


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_model_form_checks_a_method_set_on_the_instance(dtype):
    model, X, y = _model(dtype)

    def broken(self, X, y, **kwargs):
        cost, grads = fn.MLP.loss_and_grads(self, X, y, **kwargs)
        grads["1.b"] = grads["1.b"] * 1.01
        return cost, grads

    model.loss_and_grads = types.MethodType(broken, model)
    result = fn.gradcheck(model, X, y)
    assert not result.passed and result.per_array["1.b"] > 1e-3, result
    assert result.per_array["0.W"] < 1e-7
    other, _, _ = _model(dtype)                  # other instances are unaffected
    assert fn.gradcheck(other, X, y).passed


def test_model_form_with_a_closure_on_the_instance():
    model, X, y = _model("float64")
    plain = model.loss_and_grads

    def broken(X, y, **kwargs):
        cost, grads = plain(X, y, **kwargs)
        grads["0.W"] = -grads["0.W"]
        return cost, grads

    model.loss_and_grads = broken
    result = fn.gradcheck(model, X, y)
    assert not result.passed and result.per_array["0.W"] == pytest.approx(1.0, abs=1e-6)
    model32, X, y = _model("float32")
    model32.loss_and_grads = lambda X, y, **kw: (0.0, {})
    with pytest.raises(TypeError, match="function itself"):
        fn.gradcheck(model32, X, y)


def test_model_form_agrees_with_the_function_form():
    """The same network, checked both ways, gives the same per-array differences."""
    model, X, y = _model("float64")
    weights = model.get_weights()

    def f(p):
        model.set_weights(p)
        return model.loss_and_grads(X, y, l2=0.2)

    by_model = fn.gradcheck(model, X, y, l2=0.2)
    by_function = fn.gradcheck(f, weights)
    model.set_weights(weights)
    assert by_model.n_checked == by_function.n_checked
    for key, value in by_model.per_array.items():
        assert by_function.per_array[key] == pytest.approx(value, rel=1e-6, abs=1e-12)
