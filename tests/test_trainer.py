"""Training: the compiled step against the oracle, determinism, thread independence, control."""
import math
import os
import subprocess
import sys

import numpy as np
import pytest

import fastnn as fn
from fastnn import reference as ref

# Subprocesses run outside the source tree, so they import the installed fastnn.
HERE = os.path.dirname(os.path.abspath(__file__))


def layer_dicts(model):
    return [dict(units=l.units, activation=l.activation, keep_prob=l.keep_prob,
                 batch_norm=l.batch_norm) for l in model.layers]


@pytest.fixture(scope="module")
def digits_split():
    X, y = fn.datasets.digits()
    return fn.data.train_dev_test_split(X, y, 0.15, 0.15, seed=0, stratify=True)


@pytest.mark.parametrize("opt_name", ["sgd", "momentum", "rmsprop", "adam"])
def test_training_steps_match_reference_loop(opt_name):
    """Every step of fit (permutation, gather, dropout, forward, backward, L2, update) replayed
    with the NumPy oracle in float64."""
    rng = np.random.default_rng(3)
    N, bs, l2 = 53, 16, 0.4
    X = rng.standard_normal((N, 5))
    y = rng.integers(0, 3, N)
    model = fn.MLP(5, [fn.Dense(8, "tanh", keep_prob=0.75), fn.Dense(6, "relu"),
                       fn.Dense(3, "softmax")], dtype="float64", seed=1)
    params = model.get_weights()
    config = {"name": opt_name, "lr": 0.05}
    trainer = fn.Trainer(model, optimizer=config, l2=l2, batch_size=bs, seed=7)
    trainer.fit(X, y, epochs=2, progress=False)

    layers = layer_dicts(model)
    hyper = {k: v for k, v in fn.optim.get_optimizer(config).get_config().items() if k != "name"}
    if opt_name == "momentum":
        hyper["beta1"] = hyper.pop("beta")
    v = {k: np.zeros_like(p) for k, p in params.items()}
    s = {k: np.zeros_like(p) for k, p in params.items()}
    step = 0
    for epoch in range(2):
        order = np.random.default_rng((7, epoch)).permutation(N)
        for start in range(0, N, bs):
            idx = order[start:start + bs]
            masks = ref.mlp_dropout_masks(layers, len(idx), 7, step)
            # training objective over N examples: dW gets (l2/N) W, i.e. l2' / m with l2' = l2 m/N
            _, grads = ref.mlp_loss_and_grads(params, layers, X[idx], y[idx],
                                              l2=l2 * len(idx) / N, masks=masks, training=True)
            step += 1
            for key in params:
                params[key], v[key], s[key] = ref.optim_step(opt_name, params[key], grads[key],
                                                             v[key], s[key], step, **hyper)
    got = model.get_weights()
    for key, want in params.items():
        np.testing.assert_allclose(got[key], want, rtol=1e-10, atol=1e-12, err_msg=key)


def test_digits_accuracy(digits_split):
    Xtr, Xd, Xte, ytr, yd, yte = digits_split
    model = fn.MLP(64, [fn.Dense(128, "relu"), fn.Dense(64, "relu"), fn.Dense(10, "softmax")])
    model.standardizer = fn.data.Standardizer().fit(Xtr)
    history = fn.Trainer(model, batch_size=32).fit(Xtr, ytr, epochs=20,
                                                   validation_data=(Xd, yd), progress=False)
    assert (model.predict(Xte) == yte).mean() >= 0.96
    assert history["loss"][-1] < history["loss"][0] / 5
    assert len(history) == 20 and history["val_error"][-1] < 0.08
    # the reading of the last epoch: training error ~0, dev error a few percent
    d = history.diagnose(tol=0.02)
    assert d.avoidable_bias == pytest.approx(history["error"][-1])
    assert d.variance == pytest.approx(history["val_error"][-1] - history["error"][-1])


def _train_weights(threads, seed=0, keep=0.8):
    X, y = fn.datasets.spiral(n=300, seed=1)
    model = fn.MLP(2, [fn.Dense(32, "relu", keep_prob=keep), fn.Dense(16, "tanh"),
                       fn.Dense(3, "softmax")], seed=seed)
    fn.set_num_threads(threads)
    try:
        fn.Trainer(model, batch_size=37, seed=seed, l2=0.01).fit(X, y, epochs=3, progress=False)
    finally:
        fn.set_num_threads(None)
    return model.get_weights()


def test_same_seed_bit_identical():
    a, b = _train_weights(2), _train_weights(2)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    c = _train_weights(2, seed=1)
    assert not np.array_equal(a["0.W"], c["0.W"])


def test_thread_count_does_not_change_training():
    """Dropout masks (and, with kernels that never split a reduction by thread, everything
    else) are independent of the number of threads."""
    a, b = _train_weights(1), _train_weights(2)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


def test_dropout_masks_same_under_env_thread_counts(tmp_path):
    code = ("import numpy as np, fastnn as fn\n"
            "m = np.zeros(100003, np.uint8)\n"
            "fn._core.dropout_mask(5, 9, 2, 17, 0.7, m)\n"
            "X, y = fn.datasets.moons(n=64, seed=0)\n"
            "model = fn.MLP(2, [fn.Dense(40, 'relu', keep_prob=0.6), fn.Dense(2, 'softmax')])\n"
            "c, g = model.loss_and_grads(X, y, training=True, seed=3)\n"
            "print(fn.get_num_threads(), m.tobytes().hex()[:64], m.sum(), g['0.W'].tobytes().hex())\n")
    outs = []
    for n in ("1", "2"):
        env = dict(os.environ, FASTNN_NUM_THREADS=n)
        res = subprocess.run([sys.executable, "-c", code], env=env, cwd=HERE, capture_output=True,
                             text=True, check=True)
        outs.append(res.stdout.split())
    assert outs[0][0] == "1" and outs[1][0] == "2"
    assert outs[0][1:] == outs[1][1:]


def test_last_partial_batch_is_used():
    X, y = fn.datasets.blobs(n=10, seed=0)
    model = fn.MLP(2, [fn.Dense(3, "softmax")], dtype="float64")
    trainer = fn.Trainer(model, optimizer=fn.optim.SGD(0.1), batch_size=4, shuffle=False)
    trainer.fit(X, y, epochs=1, progress=False)
    assert trainer.step == 3 and trainer.optimizer.state["step"] == 3
    # the same three steps by hand: rows 0-3, 4-7, 8-9
    manual = fn.MLP(2, [fn.Dense(3, "softmax")], dtype="float64")
    w = manual.get_weights()
    for rows in (slice(0, 4), slice(4, 8), slice(8, 10)):
        _, g = ref.mlp_loss_and_grads(w, layer_dicts(manual), X[rows], y[rows])
        w = {k: w[k] - 0.1 * g[k] for k in w}
    for k in w:
        np.testing.assert_allclose(model.get_weights()[k], w[k], rtol=1e-12)


def test_fit_continues_and_lr_change_takes_effect():
    X, y = fn.datasets.moons(n=200, seed=0)
    model = fn.MLP(2, [fn.Dense(16, "relu"), fn.Dense(2, "softmax")])
    trainer = fn.Trainer(model, optimizer=fn.optim.Adam(1e-2), batch_size=32)
    trainer.fit(X, y, epochs=2, progress=False)
    t = trainer.optimizer.state["step"]
    trainer.optimizer.lr = 1e-3
    h = trainer.fit(X, y, epochs=1, progress=False)
    assert trainer.optimizer.state["step"] == t + 7
    assert h["lr"] == [1e-2, 1e-2, 1e-3] and h["epoch"] == [0, 1, 2]


def test_schedule_lr_in_history():
    X, y = fn.datasets.moons(n=64, seed=0)
    model = fn.MLP(2, [fn.Dense(2, "softmax")])
    sched = fn.schedules.InverseTimeDecay(decay_rate=1.0)
    h = fn.Trainer(model, optimizer=fn.optim.SGD(0.5), schedule=sched).fit(
        X, y, epochs=3, progress=False)
    np.testing.assert_allclose(h["lr"], [0.5, 0.25, 0.5 / 3])


def test_divergence_raises_and_keeps_finite_weights():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 4)) * 1e3
    y = rng.standard_normal(64) * 1e3
    model = fn.MLP(4, [fn.Dense(32, "relu"), fn.Dense(1, "linear")], dtype="float32")
    trainer = fn.Trainer(model, optimizer=fn.optim.SGD(10.0), batch_size=8)
    with pytest.raises(fn.DivergedError, match="epoch") as info:
        trainer.fit(X, y, epochs=50, progress=False)
    assert math.isfinite(info.value.last_finite_loss)
    for value in model.get_weights().values():
        assert np.all(np.isfinite(value))


def test_early_stopping_restores_best():
    X, y = fn.datasets.moons(n=200, seed=1, noise=0.3)
    Xtr, Xd, _, ytr, yd, _ = fn.data.train_dev_test_split(X, y, 0.3, 0.01, seed=0)
    model = fn.MLP(2, [fn.Dense(64, "relu"), fn.Dense(64, "relu"), fn.Dense(2, "softmax")])
    es = fn.EarlyStopping(patience=2)
    h = fn.Trainer(model, optimizer=fn.optim.Adam(0.05), batch_size=8).fit(
        Xtr, ytr, epochs=200, validation_data=(Xd, yd), early_stopping=es, progress=False)
    assert len(h) < 200
    best = int(np.argmin(h["val_loss"]))
    assert es.best_epoch == best
    assert model.evaluate(Xd, yd)[0] == pytest.approx(h["val_loss"][best], rel=1e-6)


def test_callbacks_can_stop_training():
    X, y = fn.datasets.moons(n=64, seed=0)
    model = fn.MLP(2, [fn.Dense(2, "softmax")])
    seen = []

    def cb(trainer, epoch, logs):
        seen.append((epoch, logs["loss"]))
        if epoch == 1:
            trainer.stop_training = True

    fn.Trainer(model).fit(X, y, epochs=10, callbacks=[cb], progress=False)
    assert [e for e, _ in seen] == [0, 1]


def test_keyboard_interrupt_stops_at_step_boundary():
    X, y = fn.datasets.moons(n=256, seed=0)
    model = fn.MLP(2, [fn.Dense(8, "relu"), fn.Dense(2, "softmax")], dtype="float64")

    def interrupt(trainer, epoch, logs):
        raise KeyboardInterrupt

    trainer = fn.Trainer(model, optimizer=fn.optim.SGD(0.1), batch_size=32, shuffle=False)
    with pytest.raises(KeyboardInterrupt):
        trainer.fit(X, y, epochs=5, callbacks=[interrupt], progress=False)
    assert trainer.step == 8 and trainer.optimizer.state["step"] == 8
    # the model is the one of the last completed step: continuing equals never stopping
    trainer.fit(X, y, epochs=1, progress=False)
    straight = fn.MLP(2, [fn.Dense(8, "relu"), fn.Dense(2, "softmax")], dtype="float64")
    fn.Trainer(straight, optimizer=fn.optim.SGD(0.1), batch_size=32, shuffle=False).fit(
        X, y, epochs=2, progress=False)
    for k, v in straight.get_weights().items():
        np.testing.assert_array_equal(model.get_weights()[k], v)


def test_progress_bar_and_epoch_lines(capsys):
    X, y = fn.datasets.moons(n=64, seed=0)
    model = fn.MLP(2, [fn.Dense(2, "softmax")])
    fn.Trainer(model).fit(X, y, epochs=2, validation_data=(X, y), progress=True)
    out = capsys.readouterr().out
    assert "epoch   0" in out and "val_error" in out


def test_regression_learns_smooth_function():
    rng = np.random.default_rng(0)
    X = rng.uniform(-2, 2, (512, 1))
    y = np.sin(X[:, 0])
    model = fn.MLP(1, [fn.Dense(32, "tanh"), fn.Dense(1, "linear")], dtype="float64")
    fn.Trainer(model, optimizer=fn.optim.Adam(0.01), batch_size=32).fit(
        X, y, epochs=60, progress=False)
    assert np.mean((model.predict(X) - y) ** 2) < 0.01


def test_ctrl_c_stops_at_a_step_boundary_with_consistent_counters():
    """A real SIGINT in the middle of an epoch: KeyboardInterrupt is re-raised at a boundary of
    the compiled run, with the step counters matching the optimizer's and finite weights."""
    import signal
    import threading
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals reach the main thread only")
    X, y = fn.datasets.synthetic_mnist(6000, seed=0)
    model = fn.MLP(784, [fn.Dense(256, "relu"), fn.Dense(10, "softmax")], seed=0)
    trainer = fn.Trainer(model, batch_size=32)
    before = model.get_weights()["0.W"]
    timer = threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            trainer.fit(X, y, epochs=1000, progress=False)
    finally:
        timer.cancel()
    assert 0 < trainer.step == trainer.optimizer.state["step"]
    assert trainer.epoch == len(trainer.history)
    after = model.get_weights()
    assert not np.array_equal(after["0.W"], before)
    assert all(np.all(np.isfinite(a)) for a in after.values())
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


# A child process interrupts fit with a real SIGINT at chosen steps (sent by a stand-in progress
# bar when the epoch reaches them), continues, and compares with a run that was never stopped.
_RESUME_CHILD = r"""
import os, signal, sys, warnings
import numpy as np
import fastnn as fn
from fastnn import trainer as T

class Bar:
    '''Sends SIGINT to this process once the epoch reaches each (epoch, step) of ``stops``.'''
    stops = []
    def __init__(self, progress, total, epoch, **kw):
        self.epoch, self.n = epoch, kw.get("initial", 0)
    def update(self, n):
        self.n += n
        if Bar.stops and Bar.stops[0][0] == self.epoch and self.n >= Bar.stops[0][1]:
            Bar.stops.pop(0)
            os.kill(os.getpid(), signal.SIGINT)
    def set_postfix(self, **kw):
        pass
    def close(self):
        pass

T._progress_bar = Bar

X, y = fn.datasets.spiral(n=500, seed=1)
Xd, yd = fn.datasets.spiral(n=100, seed=2)
EPOCHS, BS = 4, 8
N_STEPS = -(-len(X) // BS)

def new_trainer():
    model = fn.MLP(2, [fn.Dense(24, "relu", keep_prob=0.8), fn.Dense(16, "tanh", batch_norm=True),
                       fn.Dense(3, "softmax")], dtype="float64", seed=3)
    return fn.Trainer(model, optimizer=fn.optim.Adam(0.01), l2=0.01, batch_size=BS, seed=5)

def fit(trainer, epochs):
    return trainer.fit(X, y, epochs=epochs, validation_data=(Xd, yd), progress=False)

def compare(a, b, what):
    assert a.step == b.step == EPOCHS * N_STEPS, (what, a.step, b.step)
    assert a.epoch == b.epoch == EPOCHS and a.optimizer.state["step"] == a.step, what
    wa, wb = a.model.get_weights(), b.model.get_weights()
    for k in wa:
        assert np.array_equal(wa[k], wb[k]), (what, k)
    for k in fn.Trainer(a.model).history.KEYS:
        if k != "time":
            assert np.array_equal(a.history[k], b.history[k]), (what, k, a.history[k], b.history[k])

straight = new_trainer()
fit(straight, EPOCHS)

scenarios = {
    "once mid-epoch": [(1, 5)],
    "twice in one epoch": [(1, 5), (1, 40)],
    "in two epochs": [(0, 20), (2, 3)],
    "after the last step of an epoch": [(2, N_STEPS)],
}
for what, stops in scenarios.items():
    Bar.stops = list(stops)
    trainer = new_trainer()
    interrupts = 0
    while trainer.epoch < EPOCHS:
        try:
            fit(trainer, EPOCHS - trainer.epoch)
        except KeyboardInterrupt:
            interrupts += 1
            assert 0 < trainer.step - trainer.epoch * N_STEPS <= N_STEPS, (what, trainer.step)
        assert interrupts <= len(stops), what
    assert interrupts == len(stops) and not Bar.stops, what
    compare(trainer, straight, what)

# Another batch size (or other data) cannot continue the interrupted epoch: it starts again.
Bar.stops = [(1, 5)]
trainer = new_trainer()
try:
    fit(trainer, EPOCHS)
except KeyboardInterrupt:
    pass
with warnings.catch_warnings(record=True) as caught:  # the file holds no mid-epoch position
    warnings.simplefilter("always")
    trainer.save_checkpoint(sys.argv[1])
assert any("starts epoch 1 again" in str(w.message) for w in caught), caught
trainer.batch_size = 16
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    fit(trainer, 1)
assert any("starts again" in str(w.message) for w in caught), [str(w.message) for w in caught]
assert trainer.step == N_STEPS + 5 + -(-len(X) // 16), trainer.step

# Ctrl-C while an epoch is evaluated or its callbacks run: fit stops at that epoch's end (also
# after the last epoch), it neither trains on nor returns as if nothing had happened.
def ctrl_c_at(epoch):
    def callback(trainer, e, logs):
        if e == epoch:
            os.kill(os.getpid(), signal.SIGINT)
    return callback
for at in (1, EPOCHS - 1):
    trainer = new_trainer()
    try:
        trainer.fit(X, y, epochs=EPOCHS, callbacks=[ctrl_c_at(at)], progress=False)
        raise AssertionError(f"Ctrl-C in epoch {at}'s callback was ignored")
    except KeyboardInterrupt:
        pass
    assert trainer.epoch == at + 1 and trainer.step == (at + 1) * N_STEPS, (at, trainer.step)
print("ok")
"""


def test_interrupted_fit_continues_bit_identically(tmp_path):
    """Ctrl-C in the middle of an epoch (one or more times), then fit again: the same
    permutation, the next batch, the same step counter: weights and history equal those of a
    run that was never interrupted, bit for bit."""
    res = subprocess.run([sys.executable, "-c", _RESUME_CHILD, str(tmp_path / "c.safetensors")],
                         cwd=HERE, capture_output=True, text=True, timeout=240)
    assert res.returncode == 0 and res.stdout.strip().endswith("ok"), res.stdout + res.stderr


@pytest.mark.parametrize("seed", [2 ** 64, 2 ** 70, 10 ** 30])
def test_seeds_beyond_64_bits_are_refused_at_construction(seed):
    """The compiled code takes unsigned 64-bit seeds: a larger one is a ValueError naming the
    seed when the model or trainer is built, not an OverflowError inside fit."""
    with pytest.raises(ValueError, match="seed must be < 2\\*\\*64"):
        fn.MLP(2, [fn.Dense(2, "softmax")], seed=seed)
    model = fn.MLP(2, [fn.Dense(2, "softmax")], seed=2 ** 64 - 1)
    with pytest.raises(ValueError, match="seed must be < 2\\*\\*64"):
        fn.Trainer(model, seed=seed)
    X, y = fn.datasets.moons(n=32, seed=0)
    fn.Trainer(model, seed=2 ** 64 - 1).fit(X, y, epochs=1, progress=False)  # the largest works


# ---- labels a model knows, and batch norm over one row ----------------------------------------

def _blobs_model(output, units, classes):
    X, y = fn.datasets.blobs(n=90, n_features=3, centers=3, seed=2)
    model = fn.MLP(3, [fn.Dense(5, "tanh"), fn.Dense(units, output)], seed=4)
    model.classes_ = np.asarray(classes)
    return X, y, model


def test_fit_takes_the_labels_of_a_model_that_knows_its_classes():
    """String labels train exactly as the class indices they stand for."""
    labels = np.array(["ant", "bee", "cat"])
    X, y, by_label = _blobs_model("softmax", 3, labels)
    _, _, by_index = _blobs_model("softmax", 3, labels)
    by_index.classes_ = None
    fn.Trainer(by_label, batch_size=16).fit(X, labels[y], epochs=3, progress=False,
                                            validation_data=(X, labels[y]))
    fn.Trainer(by_index, batch_size=16).fit(X, y, epochs=3, progress=False)
    for k, v in by_label.get_weights().items():
        np.testing.assert_array_equal(v, by_index.get_weights()[k])
    assert set(by_label.predict(X)) <= set(labels)
    with pytest.raises(ValueError, match="not seen in training, such as 'dog'"):
        fn.Trainer(by_label).fit(X[:2], np.array(["ant", "dog"]), epochs=1, progress=False)
    with pytest.raises(TypeError, match="numeric labels, the model's classes are text"):
        fn.Trainer(by_label).fit(X, y, epochs=1, progress=False)

    # A sigmoid model with two labels: "yes" is the positive class (index 1).
    yes_no = np.array(["no", "yes"])
    X, y, binary = _blobs_model("sigmoid", 1, yes_no)
    _, _, plain = _blobs_model("sigmoid", 1, yes_no)
    plain.classes_ = None
    target = (y > 0).astype(np.int64)
    fn.Trainer(binary, batch_size=16).fit(X, yes_no[target], epochs=3, progress=False)
    fn.Trainer(plain, batch_size=16).fit(X, target, epochs=3, progress=False)
    for k, v in binary.get_weights().items():
        np.testing.assert_array_equal(v, plain.get_weights()[k])
    assert binary.evaluate(X, yes_no[target]) == plain.evaluate(X, target)
    np.testing.assert_array_equal(binary.predict(X), yes_no[plain.predict(X)])


@pytest.mark.parametrize("n,batch_size", [(33, 32), (1, 8), (10, 1), (9, 4)])
def test_batch_norm_refuses_a_training_batch_of_one_row(n, batch_size):
    """As PyTorch ("Expected more than 1 value per channel when training"), before any step."""
    X, y = fn.datasets.blobs(n=n + 2, n_features=3, seed=0)
    X, y = X[:n], y[:n] % 2
    model = fn.MLP(3, [fn.Dense(4, batch_norm=True), fn.Dense(2, "softmax")])
    before = model.get_weights()
    trainer = fn.Trainer(model, batch_size=batch_size)
    with pytest.raises(ValueError, match=r"more than 1 row.*batch_size"):
        trainer.fit(X, y, epochs=1, progress=False)
    assert trainer.step == 0
    for k, v in before.items():
        np.testing.assert_array_equal(v, model.get_weights()[k])
    with pytest.raises(ValueError, match="more than 1 row"):
        model.loss_and_grads(X[:1], y[:1], training=True)
    model.loss_and_grads(X[:1], y[:1], training=False)  # running statistics: fine
    running = {k: v for k, v in model.get_weights().items() if "running" in k}
    with pytest.raises(ValueError, match="more than 1 row"):
        model.forward(X[:1], training=True)
    for k, v in running.items():  # refused before the running averages moved
        np.testing.assert_array_equal(v, model.get_weights()[k])
    model.forward(X[:1])  # inference: fine


def test_batch_norm_with_batches_of_two_rows_or_more_trains():
    X, y = fn.datasets.blobs(n=34, n_features=3, seed=0)
    model = fn.MLP(3, [fn.Dense(4, batch_norm=True), fn.Dense(3, "softmax")])
    fn.Trainer(model, batch_size=16).fit(X, y, epochs=2, progress=False)  # 16, 16, 2
    fn.Trainer(fn.MLP(3, [fn.Dense(4)] + [fn.Dense(3, "softmax")]), batch_size=32).fit(
        X[:33], y[:33], epochs=1, progress=False)  # no batch norm: a 1-row batch is fine
