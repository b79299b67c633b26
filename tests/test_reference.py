"""The NumPy oracle (fastnn.reference) against independent formulas, finite differences and,
where it is installed, PyTorch.  Everything that checks to ~1e-12 runs in float64."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from fastnn import reference as ref

HIDDEN = ["linear", "relu", "leaky_relu", "tanh", "sigmoid"]
OUTPUTS = ["softmax", "sigmoid", "linear"]


def rng_(seed=0):
    return np.random.default_rng(seed)


def away_from_zero(rng, shape, low=0.1, high=2.0):
    """Values whose |z| is in [low, high], so relu kinks never sit inside a finite difference."""
    return rng.uniform(low, high, size=shape) * rng.choice([-1.0, 1.0], size=shape)


def numeric_grad(f, x, eps=1e-6):
    """Central differences of the scalar f() with respect to every entry of x (in place)."""
    g = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        old = x[idx]
        x[idx] = old + eps
        fp = f()
        x[idx] = old - eps
        fm = f()
        x[idx] = old
        g[idx] = (fp - fm) / (2 * eps)
    return g


def rel_diff(a, b):
    """The course's gradient-check difference ||a - b|| / (||a|| + ||b||)."""
    a, b = np.ravel(a), np.ravel(b)
    denom = np.linalg.norm(a) + np.linalg.norm(b)
    return 0.0 if denom == 0 else np.linalg.norm(a - b) / denom


# ---- activations ------------------------------------------------------------------------------

EXPLICIT = {
    "linear": lambda z: z,
    "relu": lambda z: np.where(z > 0, z, 0.0),
    "leaky_relu": lambda z: np.where(z > 0, z, 0.01 * z),
    "tanh": lambda z: (np.exp(z) - np.exp(-z)) / (np.exp(z) + np.exp(-z)),
    "sigmoid": lambda z: 1.0 / (1.0 + np.exp(-z)),
}


@pytest.mark.parametrize("name", HIDDEN)
def test_act_forward_matches_explicit_formula(name):
    z = rng_().normal(scale=3, size=(7, 5))
    np.testing.assert_allclose(ref.act_forward(name, z), EXPLICIT[name](z), rtol=1e-13,
                               atol=1e-15)


@pytest.mark.parametrize("name", HIDDEN)
def test_act_backward_from_output_equals_finite_difference(name):
    rng = rng_(1)
    z = away_from_zero(rng, (6, 4))
    dA = rng.normal(size=z.shape)
    a = ref.act_forward(name, z)
    h = 1e-6
    expected = dA * (EXPLICIT[name](z + h) - EXPLICIT[name](z - h)) / (2 * h)
    np.testing.assert_allclose(ref.act_backward(name, a, dA), expected, rtol=1e-7, atol=1e-9)


def test_act_backward_values_at_the_kink_follow_the_c_contract():
    a = np.array([0.0, 0.0])
    dA = np.array([1.0, 2.0])
    np.testing.assert_array_equal(ref.act_backward("relu", a, dA), [0.0, 0.0])
    np.testing.assert_array_equal(ref.act_backward("leaky_relu", a, dA), [0.01, 0.02])


@pytest.mark.parametrize("name", HIDDEN + ["softmax"])
def test_activations_keep_float32(name):
    z = rng_().normal(size=(3, 4)).astype(np.float32)
    a = ref.act_forward(name, z)
    assert a.dtype == np.float32
    if name != "softmax":
        assert ref.act_backward(name, a, z).dtype == np.float32


def test_sigmoid_is_finite_and_exact_at_extremes():
    z = np.array([-1000.0, -40.0, 0.0, 40.0, 1000.0])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        a = ref.act_forward("sigmoid", z)
    np.testing.assert_allclose(a, [0.0, np.exp(-40.0) / (1 + np.exp(-40.0)), 0.5, 1.0, 1.0],
                               rtol=1e-15, atol=0)


def test_activation_errors():
    with pytest.raises(ValueError, match="activation must be one of .*'swish'"):
        ref.act_forward("swish", np.zeros(3))
    with pytest.raises(ValueError, match="softmax"):
        ref.act_backward("softmax", np.zeros((2, 2)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="same shape"):
        ref.act_backward("relu", np.zeros(3), np.zeros(4))


# ---- softmax and losses -----------------------------------------------------------------------

@settings(max_examples=50, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(1, 6), st.integers(1, 6)),
              elements=st.floats(-700, 700)))
def test_softmax_rows_sum_to_one_and_are_shift_invariant(z):
    p = ref.softmax(z)
    assert np.all(p >= 0) and np.all(np.isfinite(p))
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(ref.softmax(z - 5.0), p, rtol=1e-9, atol=1e-300)


def test_softmax_matches_definition():
    z = rng_().normal(size=(4, 3))
    e = np.exp(z)
    np.testing.assert_allclose(ref.softmax(z), e / e.sum(axis=1, keepdims=True), rtol=1e-14)


def _targets(loss, rng, m, n):
    if loss == "xent":
        return rng.integers(0, n, size=m)
    if loss == "bce":
        return rng.integers(0, 2, size=(m, n)).astype(np.float64)
    return rng.normal(size=(m, n))


@pytest.mark.parametrize("loss", ["xent", "bce", "mse"])
@pytest.mark.parametrize("shape", [(1, 1), (1, 3), (5, 1), (7, 4)])
def test_loss_grad_is_the_gradient_of_the_summed_loss(loss, shape):
    if loss == "xent" and shape[1] == 1:
        shape = (shape[0], 2)
    rng = rng_(2)
    Z = rng.normal(scale=2, size=shape)
    y = _targets(loss, rng, *shape)
    scale = 0.37
    _, dZ = ref.loss_grad(loss, Z, y, scale)
    num = numeric_grad(lambda: ref.loss_grad(loss, Z, y, scale)[0], Z)
    np.testing.assert_allclose(dZ, scale * num, rtol=1e-7, atol=1e-9)


def test_xent_equals_minus_log_softmax_of_the_label():
    rng = rng_(3)
    Z = rng.normal(size=(6, 4))
    y = rng.integers(0, 4, size=6)
    total, dZ = ref.loss_grad("xent", Z, y, 1.0)
    p = np.exp(Z) / np.exp(Z).sum(axis=1, keepdims=True)
    assert total == pytest.approx(-np.log(p[np.arange(6), y]).sum(), rel=1e-13)
    onehot = np.eye(4)[y]
    np.testing.assert_allclose(dZ, p - onehot, rtol=1e-13, atol=1e-15)


def test_bce_equals_the_textbook_formula():
    rng = rng_(4)
    Z = rng.normal(scale=3, size=(5, 3))
    Y = rng.integers(0, 2, size=(5, 3)).astype(float)
    p = 1 / (1 + np.exp(-Z))
    expected = -(Y * np.log(p) + (1 - Y) * np.log(1 - p)).sum()
    total, dZ = ref.loss_grad("bce", Z, Y, 1.0)
    assert total == pytest.approx(expected, rel=1e-12)
    np.testing.assert_allclose(dZ, p - Y, rtol=1e-13, atol=1e-15)


def test_mse_equals_squared_error_and_accepts_a_1d_target_for_one_output():
    Z = np.array([[1.0], [2.0], [-1.0]])
    y = np.array([0.5, 2.0, 1.0])
    total, dZ = ref.loss_grad("mse", Z, y, 0.5)
    assert total == pytest.approx(0.25 + 0.0 + 4.0)
    np.testing.assert_allclose(dZ, 0.5 * 2 * (Z - y[:, None]))


@pytest.mark.parametrize("loss", ["xent", "bce"])
def test_losses_are_stable_for_huge_logits(loss):
    Z = np.array([[1000.0, -1000.0], [-1000.0, 1000.0]])
    y = np.array([0, 0]) if loss == "xent" else np.array([[1.0, 0.0], [1.0, 0.0]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        total, dZ = ref.loss_grad(loss, Z, y, 1.0)
    assert total == pytest.approx(2000.0)  # second row is 2000 off (one or two elements)
    assert np.all(np.isfinite(dZ))


def test_loss_grad_errors():
    Z = np.zeros((2, 3))
    with pytest.raises(ValueError, match="loss must be one of"):
        ref.loss_grad("hinge", Z, [0, 1])
    with pytest.raises(ValueError, match=r"y must hold integer class indices in \[0, 3\)"):
        ref.loss_grad("xent", Z, np.array([0, 3]))
    with pytest.raises(ValueError, match="y must hold 2 class indices"):
        ref.loss_grad("xent", Z, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="shape of Z"):
        ref.loss_grad("mse", Z, np.zeros((2, 2)))


def test_loss_grad_keeps_float32():
    Z = rng_().normal(size=(3, 2)).astype(np.float32)
    for loss, y in (("xent", np.array([0, 1, 1])), ("bce", np.ones((3, 2))),
                    ("mse", np.ones((3, 2)))):
        total, dZ = ref.loss_grad(loss, Z, y, 0.5)
        assert isinstance(total, float) and dZ.dtype == np.float32


# ---- dense layer ------------------------------------------------------------------------------

def test_dense_forward_without_and_with_dropout():
    rng = rng_(5)
    X, W, b = rng.normal(size=(4, 3)), rng.normal(size=(3, 5)), rng.normal(size=5)
    Z = X @ W + b
    np.testing.assert_allclose(ref.dense_forward(X, W, b, None), Z, rtol=1e-14)
    np.testing.assert_allclose(ref.dense_forward(X, W, b, "tanh"), np.tanh(Z), rtol=1e-14)
    mask = rng.integers(0, 2, size=(4, 5)).astype(np.uint8)
    A = ref.dense_forward(X, W, b, "relu", mask=mask, keep_prob=0.8)
    np.testing.assert_allclose(A, np.maximum(Z, 0) * mask / 0.8, rtol=1e-15)
    assert np.all(A[mask == 0] == 0)


@pytest.mark.parametrize("activation, dropout",
                         [(a, d) for a in HIDDEN for d in (False, True)] + [(None, False)])
def test_dense_backward_equals_finite_differences(activation, dropout):
    rng = rng_(6)
    m, n_in, n_out = 5, 3, 4
    X, W, b = rng.normal(size=(m, n_in)), rng.normal(size=(n_in, n_out)), rng.normal(size=n_out)
    W[0] += 0.05   # keep Z away from the relu kink at these values
    keep_prob = 0.7 if dropout else 1.0
    mask = rng.integers(0, 2, size=(m, n_out)).astype(np.uint8) if dropout else None
    C = rng.normal(size=(m, n_out))      # L = Σ C ⊙ A, so dL/dA = C
    l2_scale = 0.3

    def L():
        A = ref.dense_forward(X, W, b, activation, mask=mask, keep_prob=keep_prob)
        return np.sum(C * A) + 0.5 * l2_scale * np.sum(W ** 2)

    A = ref.dense_forward(X, W, b, activation, mask=mask, keep_prob=keep_prob)
    dW, db, dX = ref.dense_backward(X, W, A, C, activation, mask, keep_prob, l2_scale)
    for got, wrt in ((dW, W), (db, b), (dX, X)):
        assert rel_diff(got, numeric_grad(L, wrt)) < 1e-8


def test_dense_backward_l2_term_is_l2_scale_times_W():
    rng = rng_(7)
    X, W, b = rng.normal(size=(3, 2)), rng.normal(size=(2, 2)), np.zeros(2)
    A = ref.dense_forward(X, W, b, "tanh")
    dA = rng.normal(size=A.shape)
    dW0, db0, dX0 = ref.dense_backward(X, W, A, dA, "tanh")
    dW1, db1, dX1 = ref.dense_backward(X, W, A, dA, "tanh", l2_scale=0.25)
    np.testing.assert_allclose(dW1 - dW0, 0.25 * W, rtol=1e-12)
    np.testing.assert_array_equal(db1, db0)
    np.testing.assert_array_equal(dX1, dX0)


def test_dense_errors():
    X, W, b = np.zeros((2, 2)), np.zeros((2, 3)), np.zeros(3)
    with pytest.raises(ValueError, match=r"keep_prob must be in \(0, 1\], got 0"):
        ref.dense_forward(X, W, b, "relu", keep_prob=0)
    with pytest.raises(ValueError, match="mask must have the shape"):
        ref.dense_forward(X, W, b, "relu", mask=np.ones((2, 2)), keep_prob=0.5)
    with pytest.raises(ValueError, match="no dropout on logits"):
        ref.dense_forward(X, W, b, None, mask=np.ones((2, 3)), keep_prob=0.5)


# ---- gather -----------------------------------------------------------------------------------

def test_gather_rows():
    X = np.arange(20.0).reshape(5, 4)
    idx = np.array([4, 0, 0, 2], dtype=np.int64)
    out = ref.gather_rows(X, idx)
    np.testing.assert_array_equal(out, X[[4, 0, 0, 2]])
    assert out.flags.c_contiguous
    np.testing.assert_array_equal(ref.gather_rows(np.arange(5), idx), [4, 0, 0, 2])
    with pytest.raises(ValueError, match=r"idx must be in \[0, 5\)"):
        ref.gather_rows(X, np.array([5]))
    with pytest.raises(ValueError, match="1-D integer"):
        ref.gather_rows(X, np.array([0.0]))


# ---- dropout masks (through the Philox twin) --------------------------------------------------

def test_philox_known_answer_and_mask_properties():
    pytest.importorskip("fastnn._philox_ref")
    out = ref.philox4x32([0, 0, 0, 0], [0, 0])
    assert [int(w) for w in np.ravel(out)] == [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]
    full = ref.dropout_mask(7, 3, 1, 0, 4000, 0.8)
    assert full.dtype == np.uint8 and set(np.unique(full)) <= {0, 1}
    assert abs(full.mean() - 0.8) < 0.03
    # Counter-based: any sub-range equals the slice of the whole.
    np.testing.assert_array_equal(ref.dropout_mask(7, 3, 1, 5, 11, 0.8), full[5:16])
    assert not np.array_equal(ref.dropout_mask(7, 4, 1, 0, 4000, 0.8), full)


def test_mlp_dropout_masks_are_the_layer_masks_reshaped():
    pytest.importorskip("fastnn._philox_ref")
    layers = [dict(units=5, activation="relu", keep_prob=0.5),
              dict(units=3, activation="tanh"),
              dict(units=2, activation="softmax")]
    masks = ref.mlp_dropout_masks(layers, m=4, seed=11, step=2)
    assert list(masks) == [0]
    np.testing.assert_array_equal(masks[0].ravel(), ref.dropout_mask(11, 2, 0, 0, 20, 0.5))
    assert masks[0].shape == (4, 5)


# ---- optimizers -------------------------------------------------------------------------------

def _state(rng, n=17):
    p, g = rng.normal(size=n), rng.normal(size=n)
    v, s = rng.normal(size=n) * 0.1, rng.random(n) * 0.1
    return p, g, v, s


def test_sgd_and_momentum_are_the_course_formulas():
    p, g, v, s = _state(rng_(8))
    p1, v1, s1 = ref.sgd_step(p, g, v, s, 1, lr=0.1)
    np.testing.assert_allclose(p1, p - 0.1 * g, rtol=1e-15)
    assert v1 is v and s1 is s
    p2, v2, _ = ref.momentum_step(p, g, v, s, 1, lr=0.1, beta1=0.8)
    np.testing.assert_allclose(v2, 0.8 * v + 0.2 * g, rtol=1e-13, atol=1e-16)
    np.testing.assert_allclose(p2, p - 0.1 * (0.8 * v + 0.2 * g), rtol=1e-13)


def test_rmsprop_has_eps_outside_the_root():
    p, g, v, s = _state(rng_(9))
    p1, v1, s1 = ref.rmsprop_step(p, g, v, s, 1, lr=0.01, beta2=0.9, eps=0.5)
    s_exp = 0.9 * s + 0.1 * g ** 2
    np.testing.assert_allclose(s1, s_exp, rtol=1e-13)
    np.testing.assert_allclose(p1, p - 0.01 * g / (np.sqrt(s_exp) + 0.5), rtol=1e-13)
    assert v1 is v


@pytest.mark.parametrize("t", [1, 2, 10, 1000])
def test_adam_equals_the_bias_corrected_form(t):
    p, g, v, s = _state(rng_(10))
    b1, b2, eps, lr = 0.9, 0.999, 1e-8, 1e-3
    p1, v1, s1 = ref.adam_step(p, g, v, s, t, lr=lr, beta1=b1, beta2=b2, eps=eps)
    v_exp = b1 * v + (1 - b1) * g
    s_exp = b2 * s + (1 - b2) * g * g
    v_hat, s_hat = v_exp / (1 - b1 ** t), s_exp / (1 - b2 ** t)
    np.testing.assert_allclose(v1, v_exp, rtol=1e-13)
    np.testing.assert_allclose(s1, s_exp, rtol=1e-13)
    np.testing.assert_allclose(p1, p - lr * v_hat / (np.sqrt(s_hat) + eps), rtol=1e-12)


def test_adamw_decays_then_steps():
    p, g, v, s = _state(rng_(11))
    p1, v1, s1 = ref.adamw_step(p, g, v, s, 3, lr=0.01, weight_decay=0.1)
    p2, v2, s2 = ref.adam_step(p * (1 - 0.01 * 0.1), g, v, s, 3, lr=0.01)
    np.testing.assert_array_equal(p1, p2)
    np.testing.assert_array_equal(v1, v2)
    np.testing.assert_array_equal(s1, s2)


@pytest.mark.parametrize("kind", ["sgd", "momentum", "rmsprop", "adam", "adamw"])
def test_optim_step_dispatches_with_the_c_parameter_set(kind):
    p, g, v, s = _state(rng_(12))
    hyper = dict(lr=0.05, beta1=0.7, beta2=0.95, eps=1e-3, weight_decay=0.2)
    got = ref.optim_step(kind, p, g, v, s, 4, **hyper)
    step, names = ref.OPTIMIZERS[kind]
    want = step(p, g, v, s, 4, lr=0.05, **{k: hyper[k] for k in names})
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="t must be an integer step >= 1, got 0"):
        ref.optim_step(kind, p, g, v, s, 0, lr=0.1)
    with pytest.raises(ValueError, match="kind must be one of"):
        ref.optim_step("lion", p, g, v, s, 1, lr=0.1)


def _torch_trajectory(torch, make_opt, p0, grads):
    param = torch.nn.Parameter(torch.tensor(p0, dtype=torch.float64))
    opt = make_opt([param])
    for g in grads:
        param.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
    return param.detach().numpy()


@pytest.mark.parametrize("kind", ["momentum", "rmsprop", "adam", "adamw"])
def test_optimizers_match_torch_over_a_trajectory(kind):
    torch = pytest.importorskip("torch")
    rng = rng_(13)
    p0 = rng.normal(size=11)
    grads = [rng.normal(size=11) for _ in range(25)]
    lr, b1, b2, eps, wd = 0.01, 0.85, 0.99, 1e-6, 0.05
    makers = {
        # The course's momentum is torch's SGD with dampening 0 and lr scaled by (1 - β).
        "momentum": lambda ps: torch.optim.SGD(ps, lr=lr * (1 - b1), momentum=b1, dampening=0),
        "rmsprop": lambda ps: torch.optim.RMSprop(ps, lr=lr, alpha=b2, eps=eps),
        "adam": lambda ps: torch.optim.Adam(ps, lr=lr, betas=(b1, b2), eps=eps),
        "adamw": lambda ps: torch.optim.AdamW(ps, lr=lr, betas=(b1, b2), eps=eps,
                                              weight_decay=wd),
    }
    p, v, s = p0.copy(), np.zeros(11), np.zeros(11)
    for t, g in enumerate(grads, start=1):
        p, v, s = ref.optim_step(kind, p, g, v, s, t, lr=lr, beta1=b1, beta2=b2, eps=eps,
                                 weight_decay=wd)
    expected = _torch_trajectory(torch, makers[kind], p0, grads)
    np.testing.assert_allclose(p, expected, rtol=1e-12, atol=1e-14)


# ---- batch norm -------------------------------------------------------------------------------

def _bn_inputs(rng, m=8, n=5):
    Z = rng.normal(loc=2.0, scale=3.0, size=(m, n))
    gamma, beta = rng.normal(size=n), rng.normal(size=n)
    rm, rv = rng.normal(size=n), rng.random(n) + 0.5
    return Z, gamma, beta, rm, rv


def test_batchnorm_forward_train_explicit():
    Z, gamma, beta, rm, rv = _bn_inputs(rng_(14))
    m = Z.shape[0]
    Zt, Zhat, mu, var, nrm, nrv = ref.batchnorm_forward_train(Z, gamma, beta, rm, rv, 0.9)
    mu_exp = Z.sum(axis=0) / m
    var_exp = ((Z - mu_exp) ** 2).sum(axis=0) / m
    np.testing.assert_allclose(mu, mu_exp, rtol=1e-14)
    np.testing.assert_allclose(var, var_exp, rtol=1e-13)
    np.testing.assert_allclose(Zhat, (Z - mu_exp) / np.sqrt(var_exp + 1e-5), rtol=1e-12)
    np.testing.assert_allclose(Zt, gamma * Zhat + beta, rtol=1e-14)
    np.testing.assert_allclose(nrm, 0.9 * rm + 0.1 * mu_exp, rtol=1e-14)
    np.testing.assert_allclose(nrv, 0.9 * rv + 0.1 * np.var(Z, axis=0, ddof=1), rtol=1e-13)
    np.testing.assert_allclose(Zhat.mean(axis=0), 0, atol=1e-14)


def test_batchnorm_forward_infer_explicit():
    Z, gamma, beta, rm, rv = _bn_inputs(rng_(15))
    np.testing.assert_allclose(ref.batchnorm_forward_infer(Z, gamma, beta, rm, rv),
                               gamma * (Z - rm) / np.sqrt(rv + 1e-5) + beta, rtol=1e-13)


def test_batchnorm_variance_is_two_pass_in_float32():
    # E[z²] - E[z]² in float32 would be off by ~1e4 relative here (PERF-NOTES).
    rng = rng_(16)
    Z = (1000.0 + 0.01 * rng.standard_normal((256, 3))).astype(np.float32)
    ones, zeros = np.ones(3, np.float32), np.zeros(3, np.float32)
    _, _, _, var, _, _ = ref.batchnorm_forward_train(Z, ones, zeros, zeros, ones, 0.9)
    exact = np.var(Z.astype(np.float64), axis=0)
    np.testing.assert_allclose(var, exact, rtol=0.05)


def test_batchnorm_backward_equals_finite_differences():
    rng = rng_(17)
    Z, gamma, beta, rm, rv = _bn_inputs(rng, m=6, n=3)
    dY = rng.normal(size=Z.shape)

    def L():
        return np.sum(dY * ref.batchnorm_forward_train(Z, gamma, beta, rm, rv, 0.9)[0])

    _, Zhat, _, var, _, _ = ref.batchnorm_forward_train(Z, gamma, beta, rm, rv, 0.9)
    dZ, dgamma, dbeta = ref.batchnorm_backward(dY, Zhat, gamma, var)
    assert rel_diff(dZ, numeric_grad(L, Z)) < 1e-8
    assert rel_diff(dgamma, numeric_grad(L, gamma)) < 1e-8
    assert rel_diff(dbeta, numeric_grad(L, beta)) < 1e-8


def test_batchnorm_needs_two_rows():
    with pytest.raises(ValueError, match="at least 2 rows"):
        ref.batchnorm_forward_train(np.ones((1, 3)), 1, 0, 0, 1, 0.9)


def test_batchnorm_matches_torch_batchnorm1d():
    torch = pytest.importorskip("torch")
    rng = rng_(18)
    Z, gamma, beta, rm, rv = _bn_inputs(rng, m=9, n=4)
    dY = rng.normal(size=Z.shape)
    bn = torch.nn.BatchNorm1d(4, eps=1e-5, momentum=1 - 0.9, dtype=torch.float64)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor(gamma))
        bn.bias.copy_(torch.tensor(beta))
        bn.running_mean.copy_(torch.tensor(rm))
        bn.running_var.copy_(torch.tensor(rv))
    z = torch.tensor(Z, requires_grad=True)
    out = bn.train()(z)
    out.backward(torch.tensor(dY))
    Zt, Zhat, _, var, nrm, nrv = ref.batchnorm_forward_train(Z, gamma, beta, rm, rv, 0.9)
    np.testing.assert_allclose(Zt, out.detach().numpy(), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(nrm, bn.running_mean.numpy(), rtol=1e-13)
    np.testing.assert_allclose(nrv, bn.running_var.numpy(), rtol=1e-13)
    dZ, dgamma, dbeta = ref.batchnorm_backward(dY, Zhat, gamma, var)
    np.testing.assert_allclose(dZ, z.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dgamma, bn.weight.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(dbeta, bn.bias.grad.numpy(), rtol=1e-12)
    with torch.no_grad():
        out_eval = bn.eval()(torch.tensor(Z)).numpy()
    np.testing.assert_allclose(ref.batchnorm_forward_infer(Z, gamma, beta, nrm, nrv), out_eval,
                               rtol=1e-12, atol=1e-13)


# ---- the whole network ------------------------------------------------------------------------

def make_net(rng, n_features, spec, m):
    """params, layers for a list of (units, activation, keep_prob, batch_norm)."""
    layers, params, n_in = [], {}, n_features
    for i, (units, act, keep_prob, bn) in enumerate(spec):
        layers.append(dict(units=units, activation=act, keep_prob=keep_prob, batch_norm=bn))
        params[f"{i}.W"] = rng.normal(scale=1 / np.sqrt(n_in), size=(n_in, units))
        if bn:
            params[f"{i}.gamma"] = 1 + 0.3 * rng.normal(size=units)
            params[f"{i}.beta"] = 0.3 * rng.normal(size=units)
            params[f"{i}.running_mean"] = 0.3 * rng.normal(size=units)
            params[f"{i}.running_var"] = 0.5 + rng.random(units)
        else:
            params[f"{i}.b"] = 0.3 * rng.normal(size=units)
        n_in = units
    masks = {i: rng.integers(0, 2, size=(m, layer["units"])).astype(np.uint8)
             for i, layer in enumerate(layers) if layer["keep_prob"] < 1}
    return params, layers, masks


def targets_for(out, rng, m, n):
    if out == "softmax":
        return rng.integers(0, n, size=m)
    if out == "sigmoid":
        return rng.integers(0, 2, size=(m, n)).astype(float)
    return rng.normal(size=(m, n))


def check_grads(params, layers, X, y, l2, masks, training):
    cost, grads = ref.mlp_loss_and_grads(params, layers, X, y, l2=l2, masks=masks,
                                         training=training)
    trainable = {k for k in params if not k.endswith(("running_mean", "running_var"))}
    assert set(grads) == trainable
    for key in trainable:
        num = numeric_grad(lambda: ref.mlp_loss_and_grads(params, layers, X, y, l2=l2,
                                                          masks=masks, training=training)[0],
                           params[key])
        assert grads[key].shape == params[key].shape
        assert rel_diff(grads[key], num) < 1e-7, key
    return cost


@pytest.mark.parametrize("hidden", HIDDEN)
@pytest.mark.parametrize("out", OUTPUTS)
def test_mlp_gradients_equal_finite_differences(hidden, out):
    rng = rng_(19)
    m, n_out = 6, 3
    params, layers, _ = make_net(rng, 4, [(5, hidden, 1.0, False), (4, hidden, 1.0, False),
                                          (n_out, out, 1.0, False)], m)
    X = rng.normal(size=(m, 4))
    y = targets_for(out, rng, m, n_out)
    check_grads(params, layers, X, y, l2=0.7, masks=None, training=False)


@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("out", OUTPUTS)
def test_mlp_gradients_with_batch_norm_and_dropout(training, out):
    rng = rng_(20)
    m = 7
    params, layers, masks = make_net(rng, 3, [(6, "tanh", 0.6, True), (5, "sigmoid", 0.8, False),
                                              (4, "leaky_relu", 1.0, True), (2, out, 1.0, False)],
                                     m)
    X = rng.normal(size=(m, 3))
    y = targets_for(out, rng, m, 2)
    check_grads(params, layers, X, y, l2=0.2, masks=masks, training=training)


@pytest.mark.parametrize("out", OUTPUTS)
def test_mlp_cost_is_the_spec_loss_plus_l2(out):
    rng = rng_(21)
    m, n_out, l2 = 8, 3, 0.4
    params, layers, _ = make_net(rng, 4, [(5, "relu", 1.0, False), (n_out, out, 1.0, False)], m)
    X = rng.normal(size=(m, 4))
    y = targets_for(out, rng, m, n_out)
    P = ref.mlp_forward(params, layers, X)
    if out == "softmax":
        data = -np.mean(np.log(P[np.arange(m), y]))
    elif out == "sigmoid":
        data = -np.mean(y * np.log(P) + (1 - y) * np.log(1 - P))
    else:
        data = np.mean((P - y) ** 2)
    penalty = l2 / (2 * m) * (np.sum(params["0.W"] ** 2) + np.sum(params["1.W"] ** 2))
    cost, _ = ref.mlp_loss_and_grads(params, layers, X, y, l2=l2)
    assert cost == pytest.approx(data + penalty, rel=1e-12)


def test_mlp_forward_equals_chained_dense_layers():
    rng = rng_(22)
    m = 5
    params, layers, masks = make_net(rng, 3, [(4, "relu", 0.5, False), (3, "tanh", 1.0, False),
                                              (2, "softmax", 1.0, False)], m)
    X = rng.normal(size=(m, 3))
    A0 = ref.dense_forward(X, params["0.W"], params["0.b"], "relu", mask=masks[0], keep_prob=0.5)
    A1 = ref.dense_forward(A0, params["1.W"], params["1.b"], "tanh")
    P = ref.dense_forward(A1, params["2.W"], params["2.b"], "softmax")
    np.testing.assert_allclose(ref.mlp_forward(params, layers, X, masks=masks), P, rtol=1e-14)
    # Without masks there is no dropout at all.
    A0 = ref.dense_forward(X, params["0.W"], params["0.b"], "relu")
    A1 = ref.dense_forward(A0, params["1.W"], params["1.b"], "tanh")
    np.testing.assert_allclose(ref.mlp_forward(params, layers, X),
                               ref.dense_forward(A1, params["2.W"], params["2.b"], "softmax"),
                               rtol=1e-14)


def test_mlp_batch_norm_modes():
    rng = rng_(23)
    m = 6
    params, layers, _ = make_net(rng, 3, [(4, "linear", 1.0, True), (2, "linear", 1.0, False)], m)
    X = rng.normal(size=(m, 3))
    Z = X @ params["0.W"]
    args = (params["0.gamma"], params["0.beta"], params["0.running_mean"],
            params["0.running_var"])
    train_hidden = ref.batchnorm_forward_train(Z, *args, 0.9)[0]
    infer_hidden = ref.batchnorm_forward_infer(Z, *args)
    W1, b1 = params["1.W"], params["1.b"]
    np.testing.assert_allclose(ref.mlp_forward(params, layers, X, training=True),
                               train_hidden @ W1 + b1, rtol=1e-13)
    np.testing.assert_allclose(ref.mlp_forward(params, layers, X, training=False),
                               infer_hidden @ W1 + b1, rtol=1e-13)


def test_mlp_matches_torch_autograd_with_batch_norm_and_dropout():
    torch = pytest.importorskip("torch")
    rng = rng_(24)
    m = 10
    params, layers, masks = make_net(rng, 4, [(6, "relu", 0.75, True), (5, "tanh", 1.0, False),
                                              (3, "softmax", 1.0, False)], m)
    X = rng.normal(size=(m, 4))
    y = rng.integers(0, 3, size=m)
    l2 = 0.3
    cost, grads = ref.mlp_loss_and_grads(params, layers, X, y, l2=l2, masks=masks, training=True)

    t = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    z = torch.tensor(X) @ t["0.W"]
    mu, var = z.mean(0), z.var(0, unbiased=False)
    a = torch.relu(t["0.gamma"] * (z - mu) / torch.sqrt(var + 1e-5) + t["0.beta"])
    a = a * torch.tensor(masks[0], dtype=torch.float64) / 0.75
    a = torch.tanh(a @ t["1.W"] + t["1.b"])
    logits = a @ t["2.W"] + t["2.b"]
    loss = torch.nn.functional.cross_entropy(logits, torch.tensor(y))
    loss = loss + l2 / (2 * m) * sum((t[f"{i}.W"] ** 2).sum() for i in range(3))
    loss.backward()
    assert cost == pytest.approx(loss.item(), rel=1e-12)
    for key, g in grads.items():
        np.testing.assert_allclose(g, t[key].grad.numpy(), rtol=1e-10, atol=1e-12, err_msg=key)


def test_mlp_errors():
    rng = rng_(25)
    params, layers, masks = make_net(rng, 3, [(4, "relu", 0.5, False), (2, "softmax", 1.0, False)],
                                     5)
    X = rng.normal(size=(5, 3))
    with pytest.raises(ValueError, match="output activation must be one of"):
        ref.mlp_forward(params, [layers[0], dict(units=2, activation="relu")], X)
    with pytest.raises(ValueError, match="dropout is not allowed on the output layer"):
        ref.mlp_forward(params, [layers[0], dict(units=2, activation="softmax", keep_prob=0.5)],
                        X)
    with pytest.raises(ValueError, match=r"masks\[1\] given but layer 1 has no dropout"):
        ref.mlp_forward(params, layers, X, masks={1: np.ones((5, 2))})
    with pytest.raises(ValueError, match=r"masks\[0\] must have shape \(5, 4\)"):
        ref.mlp_forward(params, layers, X, masks={0: np.ones((4, 4))})
    with pytest.raises(ValueError, match=r"params\['0.W'\] must have shape \(2, 4\)"):
        ref.mlp_forward(params, layers, X[:, :2])
    bad = {k: v for k, v in params.items() if k != "1.b"}
    with pytest.raises(ValueError, match=r"params is missing \['1.b'\]"):
        ref.mlp_forward(bad, layers, X)
    with pytest.raises(ValueError, match="layers must hold at least one layer"):
        ref.mlp_forward(params, [], X)


def test_mlp_keeps_float32():
    rng = rng_(26)
    params, layers, masks = make_net(rng, 3, [(4, "relu", 0.5, True), (2, "softmax", 1.0, False)],
                                     5)
    params32 = {k: v.astype(np.float32) for k, v in params.items()}
    X = rng.normal(size=(5, 3)).astype(np.float32)
    y = np.array([0, 1, 1, 0, 1])
    cost, grads = ref.mlp_loss_and_grads(params32, layers, X, y, l2=0.1, masks=masks,
                                         training=True)
    assert all(g.dtype == np.float32 for g in grads.values())
    cost64, grads64 = ref.mlp_loss_and_grads(params, layers, X.astype(np.float64), y, l2=0.1,
                                             masks=masks, training=True)
    assert cost == pytest.approx(cost64, rel=1e-5)
    for key in grads:
        np.testing.assert_allclose(grads[key], grads64[key], rtol=1e-3, atol=1e-5)
