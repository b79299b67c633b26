"""Inference: the compiled forward-only path against the layer-by-layer forward and the oracle.

Inference takes one of two ways through the layers (src_c/net_impl.h): with at most MR rows
(the micro-tile height of the ISA in use) layer by layer, each product reading the weights in
place; with more, streamed, the weights packed once per call and row blocks of X run through
every layer on the thread that took them, bias, batch norm and activation in the GEMM epilogue.
Every element is the same running sum either way, so both must give the bits of the training
workspace's forward in inference mode (``Net.forward(..., training=False)``), on every ISA the CPU
runs, at every row count around the tile, block and team edges, on 1, 2 and 3 threads; and one
row predicted alone must give the bits it gets inside any batch.  The oracle
(``fastnn.reference.mlp_forward``) checks the values.
"""
import threading

import numpy as np
import pytest

import fastnn as fn
from fastnn import _core
from fastnn import reference as ref

from isa_support import ISA_PARAMS, using_isa

DTYPES = ["float32", "float64"]
TOL = {"float32": 2e-5, "float64": 1e-12}


def _model(dtype, bn, n_in=37, widths=(70, 33), n_out=10, out_act="softmax", seed=0):
    layers = [fn.Dense(w, "relu" if i == 0 else "tanh", batch_norm=bn)
              for i, w in enumerate(widths)]
    model = fn.MLP(n_in, layers + [fn.Dense(n_out, out_act)], dtype=dtype, seed=seed)
    rng = np.random.default_rng(seed + 1)
    w = model.get_weights()
    for key in w:  # non-trivial biases and running statistics
        if key.endswith((".b", ".beta", ".running_mean")):
            w[key] = (rng.standard_normal(w[key].shape) * 0.3).astype(dtype)
        elif key.endswith((".gamma", ".running_var")):
            w[key] = rng.uniform(0.5, 2.0, w[key].shape).astype(dtype)
    model.set_weights(w)
    return model


def _layer_dicts(model):
    return [dict(units=l.units, activation=l.activation, keep_prob=l.keep_prob,
                 batch_norm=l.batch_norm) for l in model.layers]


def _row_counts(isa, dtype):
    t = _core.gemm_tile(isa, np.dtype(dtype).itemsize)
    mr, mc = t["mr"], t["mc"]
    return sorted({1, 2, 3, mr - 1, mr, mr + 1, 2 * mr + 1, mc - 1, mc, mc + 1, 2 * mc + 5, 1001})


def _bits_equal(a, b, what):
    assert a.shape == b.shape and a.dtype == b.dtype, what
    if not np.array_equal(a.view(np.uint8), b.view(np.uint8)):
        bad = np.argwhere(a != b)
        raise AssertionError(f"{what}: {len(bad)} of {a.size} differ, first at {bad[:3].tolist()}")


@pytest.mark.parametrize("bn", [False, True], ids=["plain", "batchnorm"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("isa", ISA_PARAMS)
def test_inference_same_bits_as_layer_by_layer_forward(isa, dtype, bn):
    model = _model(dtype, bn)
    rng = np.random.default_rng(3)
    w64 = {k: v.astype(np.float64) for k, v in model.get_weights().items()}
    with using_isa(isa):
        for m in _row_counts(isa, dtype):
            X = rng.standard_normal((m, model.n_inputs)).astype(dtype)
            want = ref.mlp_forward(w64, _layer_dicts(model), X.astype(np.float64))
            for n_threads in (1, 2, 3):
                net = model._net(m, n_threads)
                ref_out = np.empty((m, model.n_outputs), dtype=dtype)
                net.forward(X, ref_out, False, 0, 0, n_threads)
                out = np.full((m, model.n_outputs), np.nan, dtype=dtype)
                net.infer(X, out, n_threads)
                _bits_equal(out, ref_out, f"{isa} {dtype} bn={bn} m={m} threads={n_threads}")
            np.testing.assert_allclose(out, want, rtol=0, atol=TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("isa", ISA_PARAMS)
def test_a_row_predicted_alone_gets_its_bits_inside_any_batch(isa, dtype):
    """Wide layers (several column panels, two passes over k) so that the one-row kernel that
    reads the weights in place, the tile kernel and the streamed path all take part."""
    model = _model(dtype, True, n_in=600, widths=(300, 70), n_out=3, out_act="sigmoid")
    X = np.random.default_rng(4).standard_normal((300, 600)).astype(dtype)
    with using_isa(isa):
        batch = model.forward(X)
        for i in (0, 1, 150, 299):
            for rows in (slice(i, i + 1), slice(max(0, i - 1), i + 1)):
                _bits_equal(model.forward(X[rows]), batch[rows], f"{isa} rows {rows}")
        # the strided view of every other row: the compiled path takes its row stride
        _bits_equal(model.forward(X[::2]), batch[::2], f"{isa} every other row")


@pytest.mark.parametrize("dtype", DTYPES)
def test_regression_and_evaluate_through_the_streamed_path(dtype):
    model = _model(dtype, False, out_act="linear", n_out=4)
    rng = np.random.default_rng(5)
    X = rng.standard_normal((777, model.n_inputs)).astype(dtype)
    Y = rng.standard_normal((777, 4)).astype(dtype)
    w64 = {k: v.astype(np.float64) for k, v in model.get_weights().items()}
    want = ref.mlp_forward(w64, _layer_dicts(model), X.astype(np.float64))
    np.testing.assert_allclose(model.predict(X), want, rtol=0, atol=TOL[dtype] * 10)
    loss, error = model.evaluate(X, Y)
    want_loss = np.mean((want - Y.astype(np.float64)) ** 2)   # mean over rows and outputs
    assert loss == pytest.approx(want_loss, rel=1e-5 if dtype == "float32" else 1e-11)
    assert np.isnan(error)


def test_concurrent_predictions_on_one_model_are_each_right():
    """Four Python threads predicting 64-row batches on one model at once (each call has its own
    workspace; the weights are packed into it, never into the model)."""
    model = _model("float32", True, n_in=200, widths=(256, 128))
    rng = np.random.default_rng(6)
    batches = [rng.standard_normal((64, 200)).astype(np.float32) for _ in range(8)]
    want = [model.predict_proba(X) for X in batches]
    errors = []

    def worker(t):
        for r in range(20):
            i = (t + r) % len(batches)
            got = model.predict_proba(batches[i])
            if not np.array_equal(got, want[i]):
                errors.append((t, r))

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("isa", ISA_PARAMS)
def test_standardised_inputs_same_bits_as_numpy_standardising_first(isa, dtype):
    """A model with a standardizer standardises X inside the compiled call, block by block as the
    first layer reads it: the outputs and evaluate's loss are those of Standardizer.transform
    followed by the network, bit for bit, at every row count (both ways through the layers)."""
    rng = np.random.default_rng(8)
    model = _model(dtype, False)
    fit_rows = (rng.standard_normal((500, model.n_inputs)) * rng.uniform(0.1, 30, model.n_inputs)
                + rng.uniform(-50, 50, model.n_inputs))
    model.standardizer = fn.data.Standardizer().fit(fit_rows)
    with using_isa(isa):
        for m in (1, 2, 13, 200):
            X = (rng.standard_normal((m, model.n_inputs)) * 20 + 5).astype(dtype)
            Xs = np.ascontiguousarray(model.standardizer.transform(X), dtype=dtype)
            want = np.empty((m, model.n_outputs), dtype=dtype)
            model._net(1, 1).infer(Xs, want, 2)
            _bits_equal(model.predict_proba(X), want, f"{isa} {dtype} m={m}")
            y = rng.integers(0, model.n_outputs, m)
            got = model.evaluate(X, y)
            assert got == model._evaluate_prepared(Xs, *model._prepare_y(y, m)), (m, got)


@pytest.mark.parametrize("dtype", DTYPES)
def test_finite_scan_agrees_with_numpy_on_every_special_value(dtype):
    """_core.all_finite (the no-temporary scan of inputs and outputs) against np.isfinite: one
    special value at a time, at every position of a vector-sized run and past it."""
    info = np.finfo(dtype)
    specials = [np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, info.max, -info.max, info.tiny,
                info.tiny / 2, info.eps]
    payload = np.array([np.nan], dtype=dtype)
    payload.view(np.uint32 if dtype == "float32" else np.uint64)[0] |= 1  # another NaN payload
    specials.append(payload[0])
    for shape in ((1, 1), (3, 7), (5, 33)):
        for v in specials:
            for pos in (0, shape[0] * shape[1] // 2, shape[0] * shape[1] - 1):
                a = np.ones(shape, dtype=dtype)
                a.reshape(-1)[pos] = v
                assert _core.all_finite(a) == bool(np.isfinite(a).all()), (shape, v, pos)
