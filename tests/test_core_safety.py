"""A core users can trust: workspaces that fit every call, sizes checked at the compiled
boundary, an architecture that cannot change under the buffers, concurrent inference that is
correct, training that is exclusive, and fork.

Processes that could crash or hang run in subprocesses with timeouts.
"""
import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import fastnn as fn
from fastnn import _core

from isa_support import ISA_PARAMS, using_isa

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def run_python(code, timeout=120, env=None):
    """Run `code` in a fresh interpreter that imports this checkout's fastnn."""
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (os.path.dirname(os.path.dirname(fn.__file__)), full_env.get("PYTHONPATH"))
        if p)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout, env=full_env, cwd=HERE)


# ---- the GEMM workspace ------------------------------------------------------------------------

# Shapes around the micro-tiles (6 x 16 float and 6 x 8 double AVX2, 4 x 8 generic), including the
# narrow ones that the GEMM computes transposed for some row counts and not for others.
WS_SHAPES = [(64, 17, 64), (64, 18, 10), (130, 17, 11), (64, 10, 17), (52, 40, 7), (33, 3, 600),
             (7, 70, 129), (129, 33, 512)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_threads", [1, 2, 3])
@pytest.mark.parametrize("shape", WS_SHAPES)
def test_gemm_workspace_serves_every_smaller_call(shape, n_threads, dtype):
    """A workspace of gemm_ws_size(M, N, K) serves every call with m <= M, n <= N, k <= K: a
    training workspace is sized once for the full mini-batch and reused by the last, smaller
    one.  The size was not monotone (a smaller m may turn the product around), which overflowed
    the workspace in one-thread training with hidden widths 17 and 18."""
    M, N, K = shape
    ws = _core.gemm_ws_size(M, N, K, n_threads, np.dtype(dtype).itemsize)
    rng = np.random.default_rng(M * N + K)
    A = rng.standard_normal((M, K)).astype(dtype)
    B = rng.standard_normal((K, N)).astype(dtype)
    for m in sorted({1, 2, M // 3, M // 2 + 1, max(1, M - 12), M - 1, M} - {0}):
        for n in sorted({1, N // 2, N - 1, N} - {0}):
            for k in sorted({0, 1, K // 2, K}):
                for a, b in ((A[:m, :k], B[:k, :n]), (A[:m, :k].T.copy().T, B[:k, :n])):
                    C = np.empty((m, n), dtype=dtype)
                    _core.gemm(a, b, C, n_threads, ws_bytes=ws)   # raises if ws is too small
                    want = a.astype(np.float64) @ b.astype(np.float64)
                    tol = 1e-4 if dtype == np.float32 else 1e-12
                    assert np.allclose(C, want, rtol=tol, atol=tol * max(1, k)), (m, n, k)


def test_gemm_refuses_a_workspace_too_small_or_shapes_that_disagree():
    A = np.ones((64, 64), np.float32)
    B = np.ones((64, 64), np.float32)
    C = np.empty((64, 64), np.float32)
    with pytest.raises(ValueError, match="workspace"):
        _core.gemm(A, B, C, 1, ws_bytes=64)
    with pytest.raises(ValueError, match="disagree"):
        _core.gemm(A, B[:10], C, 1)
    with pytest.raises(ValueError, match="disagree"):
        _core.gemm(A, B, C[:3], 1)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_one_thread_training_with_a_smaller_last_batch(dtype):
    """The reported reproducer: float32, one thread, hidden width 17 or 18, 500 rows in batches
    of 64 (a last batch of 52) died with 'free(): invalid pointer'.  Every width around the
    tiles, trained to the end, in a subprocess; the weights must equal those of 2 threads."""
    code = f"""
        import numpy as np, fastnn as fn
        X = np.random.default_rng(0).normal(size=(500, 64)).astype("{dtype}")
        y = np.arange(500) % 10
        for w in range(1, 41):
            ws = []
            for t in (1, 2):
                fn.set_num_threads(t)
                m = fn.MLP(64, [fn.Dense(w), fn.Dense(10, "softmax")], dtype="{dtype}")
                fn.Trainer(m, batch_size=64).fit(X, y, epochs=2, progress=False)
                ws.append(m.get_weights())
            for k in ws[0]:
                assert np.array_equal(ws[0][k], ws[1][k]), (w, k)
                assert np.all(np.isfinite(ws[0][k])), (w, k)
        print("ok")
    """
    r = run_python(code, env={"FASTNN_NUM_THREADS": "1"})
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr[-2000:]


# ---- the shape sweep, once per kernel family -----------------------------------------------------

@pytest.mark.parametrize("isa", ISA_PARAMS)
def test_shape_sweep_against_the_oracle(isa):
    """Every hidden width 1-70 and batch size 1-70, 127-130 and 512 (nets built for more rows
    than they run), 1-3 threads, both dtypes, dropout and batch norm, against fastnn.reference:
    once per instruction-set variant this CPU runs."""
    sys.path.insert(0, HERE)
    try:
        import shape_sweep
    finally:
        sys.path.remove(HERE)
    with using_isa(isa):
        n, failures = shape_sweep.run()
    assert not failures, failures[:10]
    assert n > 5000


# ---- the architecture is fixed --------------------------------------------------------------------

def small_model(**kw):
    return fn.MLP(8, [fn.Dense(5), fn.Dense(3, "softmax")], **kw)


@pytest.mark.parametrize("attr, value", [("units", 100000), ("activation", "tanh"),
                                         ("keep_prob", 0.5), ("batch_norm", True),
                                         ("init", "zeros"), ("bn_momentum", 0.5)])
def test_dense_layers_are_immutable(attr, value):
    """Setting units or activation on a built model rebuilt the compiled net over the old
    buffers (SIGSEGV in the packer), or left memory and the saved file disagreeing."""
    m = small_model()
    before = m.predict_proba(np.ones((2, 8)))
    with pytest.raises(AttributeError, match="cannot be changed"):
        setattr(m.layers[0], attr, value)
    np.testing.assert_array_equal(m.predict_proba(np.ones((2, 8))), before)


@pytest.mark.parametrize("attr, value", [("n_inputs", 5000), ("layers", []), ("dtype", "float64"),
                                         ("task", "regression"), ("loss_kind", 2)])
def test_model_architecture_is_read_only(attr, value):
    m = small_model()
    with pytest.raises(AttributeError, match="cannot be changed"):
        setattr(m, attr, value)
    assert isinstance(m.layers, tuple)
    m.seed = 3                   # not part of the architecture
    m.standardizer = None


def test_trainer_settings_are_checked_when_set():
    t = fn.Trainer(small_model())
    for attr, bad in (("batch_size", 0), ("batch_size", 2.5), ("l2", -1.0), ("seed", -1),
                      ("shuffle", "yes")):
        with pytest.raises((ValueError, TypeError), match=attr):
            setattr(t, attr, bad)
    with pytest.raises(AttributeError):
        t.model = small_model()
    t.batch_size = 7
    t.fit(np.ones((20, 8)), np.arange(20) % 3, epochs=1, progress=False)


# ---- the compiled boundary checks what it is given --------------------------------------------

def test_compiled_net_refuses_another_dtype_and_wrong_sizes():
    """A float32 net given float64 arrays ran the double kernels over float buffers."""
    m = small_model()
    net = m._net(4, 1)
    X64 = np.ones((2, 8), np.float64)
    with pytest.raises(TypeError, match="float32"):
        net.forward(X64, np.empty((2, 3), np.float64), False, 0, 0, 1)
    with pytest.raises(TypeError, match="float32"):
        net.infer(X64, np.empty((2, 3), np.float64), 1)
    X = np.ones((5, 8), np.float32)
    with pytest.raises(ValueError, match="rows"):
        net.forward(X, np.empty((5, 3), np.float32), False, 0, 0, 1)   # more rows than max_rows
    with pytest.raises(ValueError, match="columns"):
        net.infer(np.ones((2, 7), np.float32), np.empty((2, 3), np.float32), 1)
    with pytest.raises(ValueError, match="out"):
        net.infer(X, np.empty((5, 2), np.float32), 1)
    labels = np.array([0, 1, 3], np.int32)   # 3 is not a class of a 3-unit softmax
    with pytest.raises(ValueError, match="disagree"):
        net.loss_grad(X[:3], labels, None, False, 0, 0, 0.0, 1)
    with pytest.raises(ValueError, match="disagree"):
        net.evaluate(X[:3], labels, None, 1)
    res = np.zeros(4, dtype=_core.PASS_RESULT_DTYPE)
    v = np.zeros(m.n_params, np.float32)
    s = np.zeros(m.n_params, np.float32)
    y = np.zeros(5, np.int32)
    with pytest.raises(ValueError, match="disagree"):   # a row index outside X
        net.train_steps(np.array([0, 5], np.int64), 2, X, y, None, 0, 0, 0.0, 3, 1e-3, 0.9,
                        0.999, 1e-8, 0.0, 1, v, s, 1, res)
    with pytest.raises(ValueError, match="bs"):
        net.train_steps(np.array([0, 1], np.int64), 5, X, y, None, 0, 0, 0.0, 3, 1e-3, 0.9,
                        0.999, 1e-8, 0.0, 1, v, s, 1, res)
    with pytest.raises(ValueError, match="s has"):
        net.train_steps(np.array([0, 1], np.int64), 2, X, y, None, 0, 0, 0.0, 3, 1e-3, 0.9,
                        0.999, 1e-8, 0.0, 1, v, s[:3], 1, res)


def test_compiled_net_checks_the_layer_table_against_the_buffers():
    p = np.zeros(10, np.float32)
    table = [(8, 5, 1, 1.0, 0, 0.9, 0, 40, -1, -1, -1, -1)]   # W of 40 in a buffer of 10
    with pytest.raises(ValueError, match="layer table"):
        _core.Net(table, 0, p, p.copy(), np.zeros(0, np.float32), 4, 1)
    p = np.zeros(100, np.float32)
    chain = [(8, 5, 1, 1.0, 0, 0.9, 0, 40, -1, -1, -1, -1),
             (6, 3, 5, 1.0, 0, 0.9, 45, 63, -1, -1, -1, -1)]     # 5 outputs feed 6 inputs
    with pytest.raises(ValueError, match="layer table"):
        _core.Net(chain, 0, p, p.copy(), np.zeros(0, np.float32), 4, 1)
    with pytest.raises(TypeError):
        _core.Net(chain, 0, p, p.astype(np.float64), np.zeros(0, np.float32), 4, 1)


@pytest.mark.parametrize("fn_name, args", [
    ("gather_rows", lambda: (np.ones((3, 2), np.float32), np.array([0, 3], np.int64),
                             np.empty((2, 2), np.float32))),
    ("act_backward", lambda: (1, np.ones(4, np.float32), np.ones(3, np.float32))),
    ("dropout_apply", lambda: (np.ones(4, np.float32), np.ones(3, np.uint8), 0.5)),
    ("softmax_rows", lambda: (np.ones((2, 3), np.float32), np.empty((2, 2), np.float32))),
    ("loss_grad", lambda: (0, np.ones((2, 3), np.float32), np.array([0, 3], np.int32), None,
                           np.empty((2, 3), np.float32), 1.0)),
    ("optim_step", lambda: (3, 1e-3, 0.9, 0.999, 1e-8, 0.0, 1, np.ones(4, np.float32),
                            np.ones(4, np.float32), np.ones(4, np.float32),
                            np.ones(2, np.float32))),
])
def test_single_kernels_check_their_sizes(fn_name, args):
    with pytest.raises(ValueError):
        getattr(_core, fn_name)(*args())


# ---- threads ------------------------------------------------------------------------------------

def trained_model(seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((3000, 32)).astype(np.float32)
    y = (X[:, :10].argmax(axis=1)).astype(np.int64)
    m = fn.MLP(32, [fn.Dense(64, batch_norm=True), fn.Dense(48), fn.Dense(10, "softmax")],
               seed=seed)
    fn.Trainer(m, batch_size=128, seed=seed).fit(X, y, epochs=2, progress=False)
    return m, X, y


def test_concurrent_inference_on_one_model_is_correct():
    """predict from 4 threads on one model gave up to 39 % wrong labels: every call shared the
    net's one workspace.  Now each call has its own: results equal one thread's, bit for bit."""
    m, X, y = trained_model()
    want_p = m.predict_proba(X)
    want_loss = m.evaluate(X, y)
    errors = []

    def worker(i):
        for _ in range(15):
            for lo, hi in ((0, 3000), (i * 100, i * 100 + 517), (7, 8)):
                got = m.predict_proba(X[lo:hi])
                if not np.array_equal(got, want_p[lo:hi]):
                    errors.append((i, lo, hi))
            if m.evaluate(X, y) != want_loss:
                errors.append((i, "evaluate"))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:5]


def test_predict_during_fit_does_not_change_the_training():
    """predict in one thread while fit ran in another made the trained weights differ (4 of 5
    runs): both used the net's one workspace."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((4000, 32)).astype(np.float32)
    y = (X[:, :10].argmax(axis=1)).astype(np.int64)

    def fit(model):
        fn.Trainer(model, batch_size=64, seed=2).fit(X, y, epochs=3, progress=False)

    quiet = fn.MLP(32, [fn.Dense(64), fn.Dense(10, "softmax")], seed=4)
    fit(quiet)
    busy = fn.MLP(32, [fn.Dense(64), fn.Dense(10, "softmax")], seed=4)
    done = threading.Event()
    n_predicts = [0]

    def predictor():
        while not done.is_set():
            busy.predict(X[:1000])
            n_predicts[0] += 1

    t = threading.Thread(target=predictor)
    t.start()
    try:
        fit(busy)
    finally:
        done.set()
        t.join()
    assert n_predicts[0] > 0
    for key, value in quiet.get_weights().items():
        np.testing.assert_array_equal(busy.get_weights()[key], value, err_msg=key)


def test_training_one_model_from_two_threads_raises():
    """Two trainers on one model gave a spurious DivergedError.  Now the second raises
    RuntimeError at once, and the first finishes as if alone."""
    rng = np.random.default_rng(2)
    X = rng.standard_normal((500, 8)).astype(np.float32)
    y = rng.integers(0, 3, 500)
    m = small_model()
    inside, release = threading.Event(), threading.Event()
    seen = []

    def hold(trainer, epoch, logs):   # a callback: runs inside fit, with the lock held
        inside.set()
        release.wait(30)

    t1 = fn.Trainer(m, seed=0)
    th = threading.Thread(target=lambda: t1.fit(X, y, epochs=2, callbacks=[hold],
                                                progress=False))
    th.start()
    try:
        assert inside.wait(30)
        for attempt in (lambda: fn.Trainer(m).fit(X, y, epochs=1, progress=False),
                        lambda: m.loss_and_grads(X[:10], y[:10]),
                        lambda: m.forward(X[:10], training=True)):
            with pytest.raises(RuntimeError, match="another thread"):
                attempt()
            seen.append(1)
        m.predict(X)              # inference is not blocked by training
    finally:
        release.set()
        th.join()
    assert len(seen) == 3
    alone = small_model()
    fn.Trainer(alone, seed=0).fit(X, y, epochs=2, progress=False)
    for key, value in alone.get_weights().items():
        np.testing.assert_array_equal(m.get_weights()[key], value, err_msg=key)
    fn.Trainer(m).fit(X, y, epochs=1, progress=False)   # the lock was released


# ---- fork ----------------------------------------------------------------------------------------

@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_child_can_train_after_the_parent_trained():
    """A child made by fork that trained after its parent trained on several threads waited
    forever in the OpenMP barrier (5 of 5).  Now it trains on one thread, to the same bits."""
    code = """
        import os, sys, numpy as np, fastnn as fn
        X = np.random.default_rng(0).normal(size=(2000, 64)).astype("f4")
        y = np.arange(2000) % 10
        def train():
            m = fn.MLP(64, [fn.Dense(256), fn.Dense(10, "softmax")])
            fn.Trainer(m, batch_size=256).fit(X, y, epochs=2, progress=False)
            return m.get_weights()["0.W"]
        fn.set_num_threads(2)
        parent = train()
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            child = train()
            ok = np.array_equal(child, parent) and fn.get_num_threads() == 1
            os.write(w, b"same" if ok else b"differ")
            os._exit(0)
        os.close(w)
        msg = os.read(r, 16)
        _, status = os.waitpid(pid, 0)
        print(msg.decode(), status)
    """
    r = run_python(code, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == ["same", "0"]


# ---- non-finite results ---------------------------------------------------------------------------

def test_prediction_never_turns_nan_into_a_class():
    """Weights that overflow float32 gave NaN probabilities that predict mapped to class 0."""
    m = fn.MLP(4, [fn.Dense(8), fn.Dense(3, "softmax")])
    w = m.get_weights()
    w["0.W"][...] = 1e30
    w["1.W"][...] = 1e30
    m.set_weights(w)
    X = np.ones((5, 4), np.float32)
    for call in (m.predict, m.predict_proba, m.forward):
        with pytest.raises(ValueError, match="NaN or infinite for 5 of 5 rows"):
            call(X)
    big = fn.MLP(4, [fn.Dense(3, "linear")])
    big.set_weights({"0.W": np.ones((4, 3), np.float32), "0.b": np.zeros(3, np.float32)})
    with pytest.raises(ValueError, match="NaN or infinite"):
        big.predict(np.full((2, 4), 3e38, np.float32))   # finite inputs, overflowing products


@pytest.mark.parametrize("task, y", [("regression", [1e39, 0.0]), ("binary", [1e39, 0.0])])
def test_targets_beyond_the_dtype_range_are_refused(task, y):
    """y of 1e39 passed for a float32 model (it became infinite in the conversion)."""
    out = {"regression": "linear", "binary": "sigmoid"}[task]
    m = fn.MLP(2, [fn.Dense(1, out)])
    with pytest.raises(ValueError, match="range of float32"):
        fn.Trainer(m).fit(np.ones((2, 2)), np.array(y), epochs=1, progress=False)
    with pytest.raises(ValueError, match="range of float32"):
        m.predict(np.array([[1e39, 0.0]]))


def test_after_divergence_the_kept_weights_give_finite_outputs():
    """SGD(1e10) in float32: the weights kept after DivergedError ('the last finite step') gave
    NaN for every row, because the update of the last finite step had made them overflow.  Now
    the model keeps the weights on which the last finite loss was measured."""
    X, y = fn.datasets.digits()
    X, y = X[:50].astype(np.float32), y[:50]
    m = fn.MLP(64, [fn.Dense(32), fn.Dense(10, "softmax")])
    t = fn.Trainer(m, optimizer=fn.optim.SGD(1e10), batch_size=16)
    with pytest.raises(fn.DivergedError) as info:
        t.fit(X, y, epochs=3, progress=False)
    P = m.predict_proba(X)            # raises on a non-finite output
    assert np.all(np.isfinite(P))
    assert t.step == info.value.step == t.optimizer.state["step"]
