"""The compiled network against the NumPy oracle (fastnn.reference), gradient checks, the API."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastnn as fn
from fastnn import reference as ref

HIDDEN = ["relu", "leaky_relu", "tanh", "sigmoid", "linear"]
OUTPUTS = ["softmax", "sigmoid", "linear"]
TOL = {"float64": 1e-12, "float32": 1e-5}


def layer_dicts(model):
    return [dict(units=l.units, activation=l.activation, keep_prob=l.keep_prob,
                 batch_norm=l.batch_norm) for l in model.layers]


def targets(out, m, k, rng):
    if out == "softmax":
        return rng.integers(0, k, m)
    if out == "sigmoid":
        return rng.integers(0, 2, (m, k)).astype(float)
    return rng.standard_normal((m, k))


def randomize(model, rng, scale=0.1):
    """Non-zero biases and betas: keeps ReLU kinks off z = 0 for finite differences."""
    w = model.get_weights()
    for key in w:
        if key.endswith((".b", ".beta")):
            w[key] = (rng.standard_normal(w[key].shape) * scale).astype(model.dtype)
        if key.endswith(".gamma"):
            w[key] = (1 + rng.standard_normal(w[key].shape) * scale).astype(model.dtype)
    model.set_weights(w)


def rel_err(a, b):
    return np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30)


@settings(max_examples=40, deadline=None)
@given(m=st.integers(1, 37), n_in=st.integers(1, 21), h1=st.integers(1, 40),
       h2=st.integers(1, 19), k=st.integers(2, 11), act=st.sampled_from(HIDDEN),
       out=st.sampled_from(OUTPUTS), dtype=st.sampled_from(["float32", "float64"]),
       keep=st.sampled_from([1.0, 0.5, 0.83]), l2=st.sampled_from([0.0, 0.7]),
       threads=st.sampled_from([1, 2]), seed=st.integers(0, 2**31))
def test_loss_and_grads_match_reference(m, n_in, h1, h2, k, act, out, dtype, keep, l2, threads,
                                        seed):
    rng = np.random.default_rng(seed)
    model = fn.MLP(n_in, [fn.Dense(h1, act, keep_prob=keep), fn.Dense(h2, act),
                          fn.Dense(k, out)], dtype=dtype, seed=seed % 1000)
    randomize(model, rng)
    X = rng.standard_normal((m, n_in)).astype(dtype)
    y = targets(out, m, k, rng)
    fn.set_num_threads(threads)
    try:
        cost, grads = model.loss_and_grads(X, y, l2=l2, training=True, seed=seed % 97)
    finally:
        fn.set_num_threads(None)
    w64 = {key: v.astype(np.float64) for key, v in model.get_weights().items()}
    masks = ref.mlp_dropout_masks(layer_dicts(model), m, seed % 97, 0)
    rcost, rgrads = ref.mlp_loss_and_grads(w64, layer_dicts(model), X.astype(np.float64), y,
                                           l2=l2, masks=masks, training=True)
    tol = TOL[dtype]
    assert abs(cost - rcost) <= tol * max(1.0, abs(rcost)) * 10
    for key, g in rgrads.items():
        assert grads[key].dtype == model.dtype
        scale = max(np.max(np.abs(g)), 1.0 if dtype == "float32" else 1e-30)
        assert np.max(np.abs(grads[key] - g)) <= tol * 10 * scale, key


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("out", OUTPUTS)
def test_forward_matches_reference(dtype, out):
    rng = np.random.default_rng(1)
    model = fn.MLP(13, [fn.Dense(33, "tanh"), fn.Dense(17, "relu"), fn.Dense(5, out)],
                   dtype=dtype, seed=3)
    randomize(model, rng)
    X = rng.standard_normal((5000, 13))  # more rows than one inference chunk
    got = model.forward(X)
    w64 = {key: v.astype(np.float64) for key, v in model.get_weights().items()}
    want = ref.mlp_forward(w64, layer_dicts(model), X.astype(dtype).astype(np.float64))
    assert rel_err(got, want) <= TOL[dtype] * 10
    if out == "softmax":
        np.testing.assert_array_equal(model.predict(X), got.argmax(axis=1))
        np.testing.assert_allclose(model.predict_proba(X).sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("act", HIDDEN)
@pytest.mark.parametrize("out", OUTPUTS)
def test_gradcheck_every_activation_and_loss(act, out):
    rng = np.random.default_rng(7)
    model = fn.MLP(6, [fn.Dense(9, act), fn.Dense(7, act), fn.Dense(4, out)],
                   dtype="float64", seed=2)
    randomize(model, rng)
    X = rng.standard_normal((12, 6))
    y = targets(out, 12, 4, rng)
    result = fn.gradcheck(model, X, y, l2=0.3)
    assert result.passed and result.difference < 1e-7, result


@pytest.mark.parametrize("act", ["relu", "tanh", "sigmoid"])
def test_gradcheck_with_dropout(act):
    rng = np.random.default_rng(8)
    model = fn.MLP(6, [fn.Dense(11, act, keep_prob=0.6), fn.Dense(8, act, keep_prob=0.8),
                       fn.Dense(3, "softmax")], dtype="float64", seed=4)
    randomize(model, rng)
    X = rng.standard_normal((10, 6))
    y = rng.integers(0, 3, 10)
    result = fn.gradcheck(model, X, y, l2=0.1, seed=11)
    assert result.difference < 1e-7, result
    # The masks really drop units: the training cost differs from the inference cost.
    c_train, _ = model.loss_and_grads(X, y, training=True, seed=11)
    c_infer, _ = model.loss_and_grads(X, y, training=False)
    assert c_train != c_infer


def test_gradcheck_float32_model_checked_in_float64():
    rng = np.random.default_rng(9)
    model = fn.MLP(5, [fn.Dense(6, "tanh"), fn.Dense(3, "softmax")], seed=0)
    randomize(model, rng)
    X, y = rng.standard_normal((8, 5)), rng.integers(0, 3, 8)
    assert fn.gradcheck(model, X, y, max_entries=10).passed
    assert model.dtype == np.float32


def test_gradcheck_detects_a_wrong_gradient(monkeypatch):
    rng = np.random.default_rng(10)
    model = fn.MLP(4, [fn.Dense(5, "tanh"), fn.Dense(3, "softmax")], dtype="float64")
    randomize(model, rng)
    X, y = rng.standard_normal((6, 4)), rng.integers(0, 3, 6)
    original = fn.MLP.loss_and_grads

    def broken(self, *args, **kwargs):
        cost, grads = original(self, *args, **kwargs)
        grads["0.W"] = grads["0.W"] * 1.001
        return cost, grads

    monkeypatch.setattr(fn.MLP, "loss_and_grads", broken)
    result = fn.gradcheck(model, X, y)
    assert not result.passed and result.per_array["0.W"] > 1e-4


@pytest.mark.parametrize("init,act,var", [("he", "relu", 2.0), ("xavier", "tanh", 1.0),
                                          ("random", "relu", None), ("zeros", "relu", 0.0)])
def test_initialisation(init, act, var):
    n_in = 400
    model = fn.MLP(n_in, [fn.Dense(300, act, init=init), fn.Dense(2, "softmax")],
                   dtype="float64", seed=5)
    W = model.get_weights()["0.W"]
    if init == "random":
        assert abs(W.std() - 0.01) < 0.0005
    else:
        assert abs(W.var() - var / n_in) <= 0.03 * max(var / n_in, 1e-12) + (var == 0) * 0
    assert np.all(model.get_weights()["0.b"] == 0)
    again = fn.MLP(n_in, [fn.Dense(300, act, init=init), fn.Dense(2, "softmax")],
                   dtype="float64", seed=5)
    np.testing.assert_array_equal(again.get_weights()["0.W"], W)


def test_default_init_follows_activation():
    assert fn.Dense(3, "relu").init == "he"
    assert fn.Dense(3, "leaky_relu").init == "he"
    assert fn.Dense(3, "tanh").init == "xavier"
    assert fn.Dense(3, "softmax").init == "xavier"


def test_weights_roundtrip_and_keys():
    model = fn.MLP(4, [fn.Dense(5, "relu", batch_norm=True), fn.Dense(3, "softmax")], seed=1)
    w = model.get_weights()
    assert set(w) == {"0.W", "0.gamma", "0.beta", "0.running_mean", "0.running_var", "1.W", "1.b"}
    w["1.b"][:] = 7
    assert not np.any(model.get_weights()["1.b"] == 7)  # copies
    model.set_weights(w)
    assert np.all(model.get_weights()["1.b"] == 7)
    with pytest.raises(ValueError, match="1.W"):
        bad = dict(w)
        bad["1.W"] = np.zeros((3, 3), np.float32)
        model.set_weights(bad)
    # Another floating dtype is cast to the model's, as torch's load_state_dict copies it.
    w64 = {k: v.astype(np.float64) + 0.1 for k, v in w.items()}
    model.set_weights(w64)
    for k, v in model.get_weights().items():
        assert v.dtype == np.float32
        np.testing.assert_array_equal(v, w64[k].astype(np.float32))
    with pytest.raises(ValueError, match=r"1\.b.*finite in the model's float32"):
        bad = dict(w)
        bad["1.b"] = np.full(3, 1e300)  # finite in float64, infinite in float32
        model.set_weights(bad)
    with pytest.raises(ValueError, match=r"1\.b.*floating dtype"):
        bad = dict(w)
        bad["1.b"] = np.zeros(3, np.int64)
        model.set_weights(bad)
    np.testing.assert_array_equal(model.get_weights()["1.b"], w64["1.b"].astype(np.float32))
    with pytest.raises(ValueError, match="missing"):
        model.set_weights({"0.W": w["0.W"]})


def test_read_only_and_non_contiguous_inputs():
    rng = np.random.default_rng(0)
    model = fn.MLP(6, [fn.Dense(4, "relu"), fn.Dense(3, "softmax")], seed=0)
    X = rng.standard_normal((20, 12))[:, ::2]  # non-contiguous float64
    expected = model.forward(np.ascontiguousarray(X, dtype=np.float32))
    np.testing.assert_array_equal(model.forward(X), expected)
    Xr = np.ascontiguousarray(X, dtype=np.float32)
    Xr.setflags(write=False)
    np.testing.assert_array_equal(model.forward(Xr), expected)
    y = np.arange(20) % 3
    y.setflags(write=False)
    model.loss_and_grads(Xr, y)


BAD_X = [
    (np.array([[1.0, np.nan, 0.0]]), ValueError, "NaN"),
    (np.array([[1.0, np.inf, 0.0]]), ValueError, "infinity"),
    (np.zeros((0, 3)), ValueError, "X"),
    (np.zeros((4, 2)), ValueError, "3 features"),
    (np.zeros(3), ValueError, "2-D"),
    (np.array([["a", "b", "c"]]), TypeError, "X"),
    (np.zeros((2, 3), dtype=complex), TypeError, "X"),
]


@pytest.fixture
def no_kernels(monkeypatch):
    """Any construction of a compiled network fails the test: validation must come first."""
    def forbidden(*args, **kwargs):
        raise AssertionError("a compiled kernel was reached with invalid input")
    monkeypatch.setattr(fn.model._core, "Net", forbidden)


@pytest.mark.parametrize("X,exc,msg", BAD_X)
def test_bad_X_raises_before_any_kernel(X, exc, msg, no_kernels):
    model = fn.MLP(3, [fn.Dense(4, "relu"), fn.Dense(2, "softmax")])
    with pytest.raises(exc, match=msg):
        model.predict(X)
    with pytest.raises(exc, match=msg):
        fn.Trainer(model).fit(X, np.zeros(max(len(X), 1), int)[:len(X)] if X.ndim else [0],
                              epochs=1, progress=False)


@pytest.mark.parametrize("y,exc,msg", [
    (np.array([0, 1, 2, 5]), ValueError, "class indices in"),
    (np.array([0, 1, -1, 0]), ValueError, ">= 0"),
    (np.array([0, 1, 0.5, 0]), ValueError, "integral"),
    (np.array([0, 1, 0]), ValueError, "4 entries"),
    (np.array([0, 1, np.nan, 0]), ValueError, "NaN"),
])
def test_bad_labels(y, exc, msg, no_kernels):
    model = fn.MLP(3, [fn.Dense(4, "relu"), fn.Dense(3, "softmax")])
    with pytest.raises(exc, match=msg):
        model.loss_and_grads(np.zeros((4, 3)), y)


def test_bad_binary_targets():
    model = fn.MLP(3, [fn.Dense(1, "sigmoid")])
    with pytest.raises(ValueError, match="0/1"):
        model.loss_and_grads(np.zeros((2, 3)), np.array([0, 2]))


@pytest.mark.parametrize("make,msg", [
    (lambda: fn.Dense(0), "units"),
    (lambda: fn.Dense(3, "swish"), "activation"),
    (lambda: fn.Dense(3, keep_prob=0.0), "keep_prob"),
    (lambda: fn.Dense(3, keep_prob=1.5), "keep_prob"),
    (lambda: fn.Dense(3, init="orthogonal"), "init"),
    (lambda: fn.MLP(3, [fn.Dense(2, "softmax", keep_prob=0.5)]), "output"),
    (lambda: fn.MLP(3, [fn.Dense(2, "softmax"), fn.Dense(2, "softmax")]), "softmax"),
    (lambda: fn.MLP(3, [fn.Dense(2, "relu")]), "output layer"),
    (lambda: fn.MLP(3, []), "layers"),
    (lambda: fn.MLP(0, [fn.Dense(2, "softmax")]), "n_inputs"),
    (lambda: fn.MLP(3, [fn.Dense(2, "softmax")], dtype="float16"), "dtype"),
])
def test_bad_architecture(make, msg):
    with pytest.raises(ValueError, match=msg):
        make()


def test_bad_batch_size_and_l2():
    model = fn.MLP(3, [fn.Dense(2, "softmax")])
    with pytest.raises(ValueError, match="batch_size"):
        fn.Trainer(model, batch_size=0)
    with pytest.raises(ValueError, match="l2"):
        fn.Trainer(model, l2=-1.0)
    with pytest.raises(TypeError, match="batch_size"):
        fn.Trainer(model, batch_size=2.5)


def test_pickle_roundtrip():
    import pickle
    model = fn.MLP(3, [fn.Dense(4, "relu"), fn.Dense(2, "softmax")], seed=3)
    X = np.random.default_rng(0).standard_normal((5, 3))
    before = model.forward(X)
    clone = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(clone.forward(X), before)
