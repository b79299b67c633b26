"""The optimization toolkit: optimizers on their own, gradient checks through batch norm,
checkpoints, divergence, schedules, the EWA-smoothed loss, and the course's optimizer comparison.

Oracles: ``fastnn.reference`` (NumPy), the product's formulas written out here, central
differences, and a second run of the same deterministic training.
"""
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastnn as fn
from fastnn import reference as ref

from safetensors_edit import rewrite

TOL = {"float64": dict(rtol=1e-12, atol=1e-14), "float32": dict(rtol=2e-5, atol=1e-6)}

OPTIMIZERS = {
    "sgd": (fn.optim.SGD, dict(lr=0.1), {}),
    "momentum": (fn.optim.Momentum, dict(lr=0.1, beta=0.8), dict(beta1=0.8)),
    "rmsprop": (fn.optim.RMSprop, dict(lr=0.01, beta2=0.9, eps=1e-6), dict(beta2=0.9, eps=1e-6)),
    "adam": (fn.optim.Adam, dict(lr=0.01, beta1=0.8, beta2=0.95, eps=1e-6),
             dict(beta1=0.8, beta2=0.95, eps=1e-6)),
    "adamw": (fn.optim.AdamW, dict(lr=0.01, beta1=0.8, beta2=0.95, eps=1e-6, weight_decay=0.5),
              dict(beta1=0.8, beta2=0.95, eps=1e-6, weight_decay=0.5)),
}
STATE_KEYS = {"sgd": {"step"}, "momentum": {"step", "exp_avg"}, "rmsprop": {"step", "exp_avg_sq"},
              "adam": {"step", "exp_avg", "exp_avg_sq"},
              "adamw": {"step", "exp_avg", "exp_avg_sq"}}


# ---- optimizers on their own: opt.step(params, grads) ------------------------------------------

@settings(max_examples=30, deadline=None)
@given(name=st.sampled_from(sorted(OPTIMIZERS)), dtype=st.sampled_from(["float32", "float64"]),
       shapes=st.lists(st.tuples(st.integers(1, 9), st.integers(1, 40)), min_size=1, max_size=3),
       n_steps=st.integers(1, 6), seed=st.integers(0, 2**31), threads=st.sampled_from([1, 2]))
def test_step_on_dicts_matches_reference(name, dtype, shapes, n_steps, seed, threads):
    cls, kwargs, hyper = OPTIMIZERS[name]
    rng = np.random.default_rng(seed)
    params = {}
    for i, (a, b) in enumerate(shapes):
        params[f"{i}.W"] = rng.standard_normal((a, b)).astype(dtype)
        params[f"{i}.b"] = rng.standard_normal(b).astype(dtype)
    want = {k: p.astype(np.float64) for k, p in params.items()}
    v = {k: np.zeros_like(p) for k, p in want.items()}
    s = {k: np.zeros_like(p) for k, p in want.items()}
    opt = cls(**kwargs)
    fn.set_num_threads(threads)
    try:
        for t in range(1, n_steps + 1):
            grads = {k: rng.standard_normal(p.shape).astype(dtype) for k, p in params.items()}
            opt.step(params, grads)
            for k in want:
                want[k], v[k], s[k] = ref.optim_step(name, want[k], grads[k].astype(np.float64),
                                                     v[k], s[k], t, lr=kwargs["lr"], **hyper)
    finally:
        fn.set_num_threads(None)
    assert set(opt.state) == STATE_KEYS[name] and opt.state["step"] == n_steps
    for k, p in params.items():
        assert p.dtype == dtype
        np.testing.assert_allclose(p, want[k], **TOL[dtype], err_msg=k)
        if "exp_avg" in opt.state:
            assert opt.state["exp_avg"][k].shape == p.shape
            np.testing.assert_allclose(opt.state["exp_avg"][k], v[k], **TOL[dtype])
        if "exp_avg_sq" in opt.state:
            np.testing.assert_allclose(opt.state["exp_avg_sq"][k], s[k], **TOL[dtype])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_formulas_written_out(dtype):
    """The formulas by hand for three steps, independent of fastnn.reference."""
    rng = np.random.default_rng(0)
    p0 = rng.standard_normal(50)
    gs = [rng.standard_normal(50) for _ in range(3)]
    lr, b1, b2, eps, wd = 0.05, 0.7, 0.9, 1e-4, 0.3

    def run(opt):
        p = {"w": p0.astype(dtype)}
        for g in gs:
            opt.step(p, {"w": g.astype(dtype)})
        return p["w"]

    def formula(kind):
        p, v, s = p0.copy(), 0.0, 0.0
        for t, g in enumerate(gs, start=1):
            if kind == "sgd":
                p = p - lr * g
            elif kind == "momentum":
                v = b1 * v + (1 - b1) * g
                p = p - lr * v
            elif kind == "rmsprop":
                s = b2 * s + (1 - b2) * g ** 2
                p = p - lr * g / (np.sqrt(s) + eps)
            else:
                if kind == "adamw":
                    p = p * (1 - lr * wd)
                v = b1 * v + (1 - b1) * g
                s = b2 * s + (1 - b2) * g ** 2
                p = p - lr * (v / (1 - b1 ** t)) / (np.sqrt(s / (1 - b2 ** t)) + eps)
        return p

    got = {"sgd": run(fn.optim.SGD(lr)), "momentum": run(fn.optim.Momentum(lr, beta=b1)),
           "rmsprop": run(fn.optim.RMSprop(lr, beta2=b2, eps=eps)),
           "adam": run(fn.optim.Adam(lr, beta1=b1, beta2=b2, eps=eps)),
           "adamw": run(fn.optim.AdamW(lr, beta1=b1, beta2=b2, eps=eps, weight_decay=wd))}
    for kind, value in got.items():
        np.testing.assert_allclose(value, formula(kind), **TOL[dtype], err_msg=kind)


def test_step_validates_and_keeps_state_per_key():
    opt = fn.optim.Adam(0.1)
    p = {"a": np.ones(3), "b": np.ones((2, 2))}
    with pytest.raises(ValueError, match="same keys"):
        opt.step(p, {"a": np.ones(3)})
    with pytest.raises(TypeError, match="dtype"):
        opt.step(p, {"a": np.ones(3, np.float32), "b": np.ones((2, 2))})
    with pytest.raises(ValueError, match="shape"):
        opt.step(p, {"a": np.ones(4), "b": np.ones((2, 2))})
    ro = np.ones(3)
    ro.setflags(write=False)
    with pytest.raises(ValueError, match="writeable"):
        opt.step({"a": ro}, {"a": np.ones(3)})
    assert opt.state["step"] == 0 and opt.state["exp_avg"] == {}
    opt.step(p, {"a": np.full(3, 2.0), "b": np.zeros((2, 2))})
    np.testing.assert_allclose(opt.state["exp_avg"]["a"], 0.2)
    np.testing.assert_allclose(opt.state["exp_avg_sq"]["a"], 0.004)
    np.testing.assert_array_equal(opt.state["exp_avg"]["b"], 0.0)
    np.testing.assert_allclose(p["a"], 1 - 0.1 * 2 / (2 + 1e-8), rtol=1e-14)  # first Adam step


def test_trainer_state_is_named_and_survives_fit_calls():
    """Inside the Trainer the moments live in flat buffers; opt.state shows them per key, and a
    second fit continues them: 2 + 1 epochs equal 3 epochs straight, bit for bit."""
    X, y = fn.datasets.blobs(n=60, seed=0)

    def build():
        return fn.MLP(2, [fn.Dense(5, "tanh", batch_norm=True), fn.Dense(3, "softmax")],
                      dtype="float64")

    model, opt = build(), fn.optim.Adam(0.01)
    trainer = fn.Trainer(model, optimizer=opt, batch_size=20)
    trainer.fit(X, y, epochs=2, progress=False)
    trainable = {"0.W", "0.gamma", "0.beta", "1.W", "1.b"}
    assert set(opt.state) == {"step", "exp_avg", "exp_avg_sq"}
    assert set(opt.state["exp_avg"]) == set(opt.state["exp_avg_sq"]) == trainable
    assert opt.state["step"] == 6
    assert opt.state["exp_avg"]["0.W"].shape == (2, 5)
    assert np.all(opt.state["exp_avg_sq"]["1.b"] > 0)
    v_before = opt.state["exp_avg"]["1.W"].copy()
    trainer.fit(X, y, epochs=1, progress=False)
    assert opt.state["step"] == 9
    assert not np.array_equal(opt.state["exp_avg"]["1.W"], v_before)
    fresh = build()
    fresh_tr = fn.Trainer(fresh, optimizer=fn.optim.Adam(0.01), batch_size=20)
    fresh_tr.fit(X, y, epochs=3, progress=False)
    for k in trainable:
        for which in ("exp_avg", "exp_avg_sq"):
            np.testing.assert_array_equal(fresh_tr.optimizer.state[which][k],
                                          opt.state[which][k])
    for k, value in fresh.get_weights().items():
        np.testing.assert_array_equal(model.get_weights()[k], value)


# ---- gradient checking through batch norm ------------------------------------------------------

def _randomize(model, rng):
    w = model.get_weights()
    for key in w:
        if key.endswith((".b", ".beta")):
            w[key] = rng.uniform(-0.5, 0.5, w[key].shape)
        elif key.endswith(".gamma"):
            w[key] = rng.uniform(0.6, 1.6, w[key].shape)
    model.set_weights(w)


@pytest.mark.parametrize("act", ["relu", "tanh", "sigmoid", "leaky_relu"])
@pytest.mark.parametrize("out", ["softmax", "sigmoid", "linear"])
def test_gradcheck_through_batchnorm(act, out):
    rng = np.random.default_rng(hash((act, out)) % 2**32)
    k = 3 if out == "softmax" else 2
    model = fn.MLP(4, [fn.Dense(7, act, batch_norm=True), fn.Dense(5, act),
                       fn.Dense(6, "tanh", batch_norm=True, bn_momentum=0.5),
                       fn.Dense(k, out)], dtype="float64", seed=1)
    _randomize(model, rng)
    X = rng.standard_normal((13, 4))
    y = {"softmax": rng.integers(0, k, 13), "sigmoid": rng.integers(0, 2, (13, k)).astype(float),
         "linear": rng.standard_normal((13, k))}[out]
    buffers = model._buffers.copy()
    result = fn.gradcheck(model, X, y, l2=0.3)
    assert result.difference < 1e-7, str(result)
    assert result.passed and result.n_checked == model.n_params
    assert set(result.per_array) >= {"0.gamma", "0.beta", "2.gamma", "2.beta"}
    np.testing.assert_array_equal(model._buffers, buffers)   # the model is left untouched


def test_gradcheck_batchnorm_with_dropout_and_float32_model():
    rng = np.random.default_rng(5)
    model = fn.MLP(3, [fn.Dense(8, "relu", batch_norm=True, keep_prob=0.7),
                       fn.Dense(4, "softmax")], seed=2)                # float32
    w = model.get_weights()
    w["0.gamma"] = rng.uniform(0.6, 1.6, 8).astype(np.float32)
    w["0.beta"] = rng.uniform(-0.5, 0.5, 8).astype(np.float32)
    model.set_weights(w)
    X = rng.standard_normal((11, 3))
    y = rng.integers(0, 4, 11)
    result = fn.gradcheck(model, X, y, seed=3)
    assert result.difference < 1e-7, str(result)


def test_gradcheck_catches_a_wrong_batchnorm_gradient(monkeypatch):
    """The check has teeth: perturb dgamma and it fails."""
    rng = np.random.default_rng(6)
    model = fn.MLP(3, [fn.Dense(6, "tanh", batch_norm=True), fn.Dense(2, "softmax")],
                   dtype="float64")
    _randomize(model, rng)
    X, y = rng.standard_normal((9, 3)), rng.integers(0, 2, 9)
    original = fn.MLP._grads_dict

    def wrong(self):
        g = original(self)
        g["0.gamma"] = g["0.gamma"] * 1.001
        return g

    monkeypatch.setattr(fn.MLP, "_grads_dict", wrong)
    result = fn.gradcheck(model, X, y)
    assert not result.passed and result.per_array["0.gamma"] > 1e-5


# ---- checkpoints -------------------------------------------------------------------------------

def _ckpt_setup():
    X, y = fn.datasets.spiral(n=150, seed=4)
    model = fn.MLP(2, [fn.Dense(16, "relu", keep_prob=0.8),
                       fn.Dense(12, "tanh", batch_norm=True, bn_momentum=0.85),
                       fn.Dense(3, "softmax")], seed=7)
    trainer = fn.Trainer(model, optimizer=fn.optim.Adam(0.02),
                         schedule=fn.schedules.StepDecay(step_size=3, factor=0.5), l2=0.1,
                         batch_size=32, seed=11)
    return X, y, model, trainer


def _same_history(a, b):
    for key in fn.History.KEYS:
        if key != "time":
            np.testing.assert_array_equal(np.asarray(a[key], float), np.asarray(b[key], float),
                                          err_msg=key)


def test_checkpoint_round_trip_is_bit_identical(tmp_path):
    X, y, model, trainer = _ckpt_setup()
    Xd, yd = fn.datasets.spiral(n=60, seed=5)
    straight = trainer.fit(X, y, epochs=10, validation_data=(Xd, yd), progress=False)

    X, y, model2, trainer2 = _ckpt_setup()
    trainer2.fit(X, y, epochs=5, validation_data=(Xd, yd), progress=False)
    path = tmp_path / "ckpt.safetensors"
    trainer2.save_checkpoint(path)
    trainer2.fit(X, y, epochs=5, validation_data=(Xd, yd), progress=False)  # without stopping
    resumed = fn.Trainer.load_checkpoint(path)
    assert resumed.epoch == 5 and resumed.step == 25 and resumed.optimizer.state["step"] == 25
    assert isinstance(resumed.schedule, fn.schedules.StepDecay)
    history = resumed.fit(X, y, epochs=5, validation_data=(Xd, yd), progress=False)

    for other, hist in ((trainer2, trainer2.history), (resumed, history)):
        for key, value in model.get_weights().items():
            np.testing.assert_array_equal(other.model.get_weights()[key], value, err_msg=key)
        for which in ("exp_avg", "exp_avg_sq"):
            for key, value in trainer.optimizer.state[which].items():
                np.testing.assert_array_equal(other.optimizer.state[which][key], value)
        assert other.optimizer.state["step"] == trainer.optimizer.state["step"] == 50
        _same_history(hist, straight)       # loss, error, lr, val_*, and the EWA-smoothed loss
    assert straight["lr"] == [0.02] * 3 + [0.01] * 3 + [0.005] * 3 + [0.0025]


def _nan_in(name):
    def mutate(header, data):
        start = header[name]["data_offsets"][0]
        size = 4 if header[name]["dtype"] == "F32" else 8
        data[start:start + size] = np.array(np.nan, np.float32 if size == 4 else np.float64
                                            ).tobytes()
    return mutate


def _drop(name):
    def mutate(header):
        del header[name]
    return mutate


def _meta(**fields):
    return lambda h: h["__metadata__"].update(fields)


# Header edits get a correct checksum, so that the check each one aims at is the one that objects.
CORRUPT = {
    "truncated": dict(truncate=300),
    "flipped data byte": dict(mutate_data=lambda h, d: d.__setitem__(7, d[7] ^ 0x40)),
    "newer version": dict(mutate_header=_meta(format_version="99"), fix_checksum=True),
    "model file, not a checkpoint": dict(mutate_header=_meta(format="fastnn.mlp"),
                                         fix_checksum=True),
    "optimizer moment missing": dict(mutate_header=_drop("optim.exp_avg.1.gamma"),
                                     fix_checksum=True),
    "NaN optimizer moment": dict(mutate_data=_nan_in("optim.exp_avg_sq.0.W"), fix_checksum=True),
    "NaN weight": dict(mutate_data=_nan_in("2.b"), fix_checksum=True),
    "state not JSON": dict(mutate_header=_meta(state="{oops"), fix_checksum=True),
    "state missing a counter": dict(mutate_header=_meta(state=json.dumps({"epoch": 1})),
                                    fix_checksum=True),
    "training config broken": dict(mutate_header=_meta(training=json.dumps({"l2": 0.0})),
                                   fix_checksum=True),
    "unknown optimizer": dict(mutate_header=_meta(training=json.dumps(
        {"optimizer": {"name": "lion"}, "schedule": None, "l2": 0.0, "batch_size": 8,
         "shuffle": True, "seed": 0})), fix_checksum=True),
}


@pytest.mark.parametrize("name", sorted(CORRUPT))
def test_corrupt_checkpoint_refused(tmp_path, name):
    X, y, model, trainer = _ckpt_setup()
    trainer.fit(X[:64], y[:64], epochs=1, progress=False)
    path = tmp_path / "ckpt.safetensors"
    trainer.save_checkpoint(path)
    fn.Trainer.load_checkpoint(path)  # intact: loads
    rewrite(path, **CORRUPT[name])
    with pytest.raises(fn.FormatError):
        fn.Trainer.load_checkpoint(path)


def test_checkpoint_refuses_plain_callable_schedule(tmp_path):
    model = fn.MLP(2, [fn.Dense(2, "softmax")])
    trainer = fn.Trainer(model, schedule=lambda lr0, e: lr0)
    with pytest.raises(ValueError, match="schedule"):
        trainer.save_checkpoint(tmp_path / "c.safetensors")
    assert not (tmp_path / "c.safetensors").exists()


# ---- divergence --------------------------------------------------------------------------------

def _full_batch_run(X, y, dtype, act, lr, epochs):
    model = fn.MLP(X.shape[1], [fn.Dense(16, act), fn.Dense(1, "linear")], dtype=dtype, seed=1)
    trainer = fn.Trainer(model, optimizer=fn.optim.SGD(lr), batch_size=len(X), shuffle=False)
    return model, trainer, trainer.fit(X, y, epochs=epochs, progress=False)


@pytest.mark.parametrize("dtype, act, lr, scale, overflow", [
    ("float64", "linear", 1.0, 1.0, False),  # the loss overflows, the weights stay finite
    ("float32", "tanh", 10.0, 1e3, True),    # a finite loss whose update overflows the weights
    ("float32", "relu", 1.0, 1e5, True),
])
def test_divergence_raises_with_the_weights_of_the_last_finite_step(dtype, act, lr, scale,
                                                                     overflow):
    """Full-batch gradient descent (one step per epoch): after DivergedError the model equals,
    bit for bit, the same training stopped after ``error.epoch`` epochs, and it is finite."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((32, 4)) * scale
    y = X @ np.array([1.0, -2.0, 3.0, 0.5]) + rng.standard_normal(32) * scale
    model = fn.MLP(4, [fn.Dense(16, act), fn.Dense(1, "linear")], dtype=dtype, seed=1)
    trainer = fn.Trainer(model, optimizer=fn.optim.SGD(lr), batch_size=32, shuffle=False)
    with pytest.raises(fn.DivergedError, match=r"epoch \d+") as info:
        trainer.fit(X, y, epochs=500, progress=False)
    err = info.value
    assert f"epoch {err.epoch}" in str(err) and 0 < err.epoch < 500
    # one step per epoch: the state before the last update is the start of the epoch whose
    # update overflowed, or (a loss that overflowed) the end of the epoch before
    assert trainer.epoch == (err.epoch if overflow else err.epoch - 1) == len(trainer.history)
    assert trainer.step == err.step == trainer.optimizer.state["step"] == trainer.epoch
    weights = model.get_weights()
    for value in weights.values():
        assert np.all(np.isfinite(value))
    ref_model = fn.MLP(4, [fn.Dense(16, act), fn.Dense(1, "linear")], dtype=dtype, seed=1)
    fn.Trainer(ref_model, optimizer=fn.optim.SGD(lr), batch_size=32, shuffle=False).fit(
        X, y, epochs=trainer.epoch, progress=False)
    for key, value in ref_model.get_weights().items():
        np.testing.assert_array_equal(weights[key], value, err_msg=key)
    # the kept weights are those the last finite loss was measured on: their outputs are finite
    assert math.isfinite(err.last_finite_loss)
    assert err.last_finite_loss == pytest.approx(model.evaluate(X, y)[0], rel=1e-5)
    assert np.all(np.isfinite(model.predict(X)))


def test_divergence_mid_epoch_with_batchnorm_and_momentum_keeps_a_finite_state():
    """An update that overflows in the middle of an epoch (float32, batch norm, momentum):
    model, running statistics and the optimizer's moments all stay finite, counters agree."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((96, 5)) * 1e3
    y = rng.standard_normal((96, 2)) * 1e3
    model = fn.MLP(5, [fn.Dense(32, "tanh", batch_norm=True), fn.Dense(16, "relu"),
                       fn.Dense(2, "linear")], seed=0)
    trainer = fn.Trainer(model, optimizer=fn.optim.Momentum(10.0, beta=0.5), batch_size=16)
    with pytest.raises(fn.DivergedError) as info:
        trainer.fit(X, y, epochs=200, progress=False)
    assert trainer.epoch in (info.value.epoch, info.value.epoch - 1)
    assert 0 < info.value.step == trainer.step
    for key, value in model.get_weights().items():
        assert np.all(np.isfinite(value)), key
    for value in trainer.optimizer.state["exp_avg"].values():
        assert np.all(np.isfinite(value))
    assert trainer.optimizer.state["step"] == trainer.step
    assert np.all(np.isfinite(model.predict(X)))


# ---- schedules and the EWA-smoothed loss in the history -----------------------------------------

SCHEDULES = [
    (None, lambda lr0, e: lr0),
    (fn.schedules.Constant(), lambda lr0, e: lr0),
    (fn.schedules.InverseTimeDecay(decay_rate=0.5, time_interval=2),
     lambda lr0, e: lr0 / (1 + 0.5 * (e // 2))),
    (fn.schedules.ExponentialDecay(rate=0.9), lambda lr0, e: lr0 * 0.9 ** e),
    (fn.schedules.StepDecay(step_size=3, factor=0.25), lambda lr0, e: lr0 * 0.25 ** (e // 3)),
    (lambda lr0, e: lr0 / (e + 1) ** 0.5, lambda lr0, e: lr0 / (e + 1) ** 0.5),
]


@pytest.mark.parametrize("i", range(len(SCHEDULES)))
def test_history_lr_follows_schedule_across_fit_calls(i):
    schedule, formula = SCHEDULES[i]
    X, y = fn.datasets.moons(n=40, seed=0)
    model = fn.MLP(2, [fn.Dense(2, "softmax")])
    trainer = fn.Trainer(model, optimizer=fn.optim.SGD(0.3), schedule=schedule, batch_size=16)
    trainer.fit(X, y, epochs=4, progress=False)
    h = trainer.fit(X, y, epochs=3, progress=False)   # the epoch count continues
    np.testing.assert_allclose(h["lr"], [formula(0.3, e) for e in range(7)], rtol=1e-15)


def test_scheduled_lr_is_the_one_applied():
    """With SGD, weights after epoch e moved by exactly lr_e times the summed step gradients:
    a schedule that drops to 0 freezes the model."""
    X, y = fn.datasets.moons(n=40, seed=0)
    model = fn.MLP(2, [fn.Dense(3, "tanh"), fn.Dense(2, "softmax")], dtype="float64")
    trainer = fn.Trainer(model, optimizer=fn.optim.SGD(0.3),
                         schedule=lambda lr0, e: lr0 if e < 2 else 0.0, batch_size=16)
    trainer.fit(X, y, epochs=2, progress=False)
    frozen = model.get_weights()
    h = trainer.fit(X, y, epochs=2, progress=False)
    assert h["lr"] == [0.3, 0.3, 0.0, 0.0]
    for key, value in frozen.items():
        np.testing.assert_array_equal(model.get_weights()[key], value)


def test_loss_ewa_is_the_bias_corrected_ewa_of_the_step_losses():
    """Full-batch training has one step per epoch, so history["loss"] *is* the step-loss
    sequence: history["loss_ewa"] must equal fn.ewa of it (beta 0.98, bias-corrected), also
    across fit calls."""
    X, y = fn.datasets.moons(n=50, seed=2)
    model = fn.MLP(2, [fn.Dense(4, "tanh"), fn.Dense(2, "softmax")], dtype="float64")
    trainer = fn.Trainer(model, optimizer=fn.optim.Adam(0.05), batch_size=50, l2=0.2)
    trainer.fit(X, y, epochs=7, progress=False)
    h = trainer.fit(X, y, epochs=5, progress=False)
    assert len(h) == 12
    losses = np.array(h["loss"])
    assert losses[-1] < losses[0]
    np.testing.assert_allclose(h["loss_ewa"], fn.ewa(losses, 0.98), rtol=1e-12)
    # the first value is the first loss (bias correction), not 2% of it
    assert h["loss_ewa"][0] == pytest.approx(losses[0], rel=1e-12)


def test_loss_ewa_with_constant_loss_is_that_constant():
    """lr = 0: every step loss is the same value c; the bias-corrected EWA is c at once."""
    X, y = fn.datasets.blobs(n=70, seed=1)
    model = fn.MLP(2, [fn.Dense(3, "softmax")], dtype="float64")
    c = model.evaluate(X, y)[0]
    h = fn.Trainer(model, optimizer=fn.optim.SGD(0.1), schedule=lambda lr0, e: 0.0,
                   batch_size=70).fit(X, y, epochs=3, progress=False)
    np.testing.assert_allclose(h["loss"], c, rtol=1e-12)
    np.testing.assert_allclose(h["loss_ewa"], c, rtol=1e-12)


# ---- the course's optimizer comparison ----------------------------------------------------------

COMPARISON_SEEDS = (0, 1, 2, 3, 4)


def _compare(seed, epochs=2000):
    """moons (300 points, noise 0.2), the course's 2-5-2-1 network (relu, relu, sigmoid; He
    init), mini-batches of 64, the same epochs: mini-batch GD, momentum, Adam."""
    X, y = fn.datasets.moons(n=300, seed=seed, noise=0.2)
    out = {}
    for name, opt in (("gd", fn.optim.SGD(0.0007)), ("momentum", fn.optim.Momentum(0.0007, 0.9)),
                      ("adam", fn.optim.Adam(0.0007))):
        model = fn.MLP(2, [fn.Dense(5, "relu"), fn.Dense(2, "relu"), fn.Dense(1, "sigmoid")],
                       seed=seed)
        h = fn.Trainer(model, optimizer=opt, batch_size=64, seed=seed).fit(
            X, y, epochs=epochs, progress=False)
        out[name] = (h["loss"][-1], float((model.predict(X) == y).mean()))
    return out


def test_course_optimizer_comparison_adam_wins():
    """Measured (float32, 2000 epochs; cost / training accuracy):
    seed 0: GD 0.573/0.787  momentum 0.574/0.787  Adam 0.043/0.990
    seed 1: GD 0.662/0.720  momentum 0.662/0.723  Adam 0.067/0.980
    seed 2: GD 0.554/0.733  momentum 0.555/0.733  Adam 0.097/0.973
    seed 3: GD 0.407/0.883  momentum 0.407/0.883  Adam 0.281/0.890
    seed 4: GD 0.495/0.757  momentum 0.495/0.757  Adam 0.053/0.977
    Over seeds 0-19 Adam's cost is below GD's on every seed whose ReLU network is alive at
    initialisation (seeds 5 and 10 start dead and all three stay at log 2)."""
    fn.set_num_threads(1)
    try:
        results = {seed: _compare(seed) for seed in COMPARISON_SEEDS}
    finally:
        fn.set_num_threads(None)
    gd = np.array([[r["gd"][0], r["gd"][1]] for r in results.values()])
    mom = np.array([[r["momentum"][0], r["momentum"][1]] for r in results.values()])
    adam = np.array([[r["adam"][0], r["adam"][1]] for r in results.values()])
    # per seed: Adam never loses, and lowers the cost by at least 25%
    assert np.all(adam[:, 0] < 0.75 * gd[:, 0]), results
    assert np.all(adam[:, 1] >= gd[:, 1]), results
    # on average: a clearly lower cost and a clearly higher accuracy
    assert adam[:, 0].mean() < 0.35 * gd[:, 0].mean(), results
    assert adam[:, 1].mean() > gd[:, 1].mean() + 0.10, results
    assert adam[:, 1].mean() > 0.93
    # momentum with this tiny learning rate tracks plain mini-batch GD (the course's finding)
    np.testing.assert_allclose(mom[:, 0], gd[:, 0], atol=0.01)
