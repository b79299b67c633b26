"""The instruction-set variants of the kernels give the same bits, and compiled calls leave the
caller's floating-point mode alone.

Each kernel family with variants (GEMM micro-kernels and packers, dropout masks, the optimizer
pass) is one source compiled per ISA, with one fused multiply-add per step of every GEMM sum in
increasing k (fastnn.h, "instruction sets"); so every pair of ISAs the CPU runs must agree bit for
bit, here over awkward GEMM shapes, whole networks (loss_grad and a short training run) and the
elementwise kernels.  The oracle tests (test_kernels.py) check each variant against NumPy.

Floating point: the network's entry points run with flush-to-zero / denormals-are-zero on every
thread of the team and restore each thread's mode (fastnn.h, "floating point").
"""
import os
import subprocess
import sys

import numpy as np
import pytest

import fastnn as fn
from fastnn import _core
from fastnn import reference as ref

from isa_support import ISA_PARAMS, PAIR_PARAMS, RUNNABLE, using_isa

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DTYPES = [np.float32, np.float64]
OPTIM = {"sgd": 0, "momentum": 1, "rmsprop": 2, "adam": 3, "adamw": 4}


def run_under(isa, fn_, *args):
    with using_isa(isa):
        return fn_(*args)


def assert_same_bits(a, b, what):
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype and a.shape == b.shape, what
    # bytes, not values: -0 vs +0 and NaN payloads count
    if not np.array_equal(a.view(np.uint8), b.view(np.uint8)):
        diff = np.flatnonzero(a.reshape(-1) != b.reshape(-1))
        raise AssertionError(f"{what}: {diff.size} of {a.size} elements differ, first at flat "
                             f"index {diff[:5].tolist()}")


# ---- GEMM ---------------------------------------------------------------------------------------

def _tile_edges():
    """Every micro-tile size of every compiled ISA (both dtypes), +-1, with 1, 2, 3."""
    sizes = {1, 2, 3}
    for isa in _core.isas_compiled():
        for itemsize in (4, 8):
            t = _core.gemm_tile(isa, itemsize)
            for x in (t["mr"], t["nr"]):
                sizes |= {x - 1, x, x + 1}
    return sorted(s for s in sizes if s > 0)


def _depths():
    """k = 0, 1, a prime, and every cache depth kc of every ISA +-1 (one or two passes)."""
    ks = {0, 1, 7}
    for isa in _core.isas_compiled():
        for itemsize in (4, 8):
            kc = _core.gemm_tile(isa, itemsize)["kc"]
            ks |= {kc - 1, kc, kc + 1}
    return sorted(ks)


def gemm_cases():
    """(m, n, k) of awkward shapes: tile edges in m and n against narrow and wide partners, the
    depths around kc, and a few large parallel ones."""
    edges = _tile_edges()
    cases = [(m, n, 37) for m in edges for n in (1, 10, 33)]
    cases += [(m, n, 29) for n in edges for m in (1, 13, 128)]
    cases += [(m, n, k) for k in _depths() for (m, n) in ((1, 1), (13, 33), (31, 10))]
    cases += [(128, 512, 784), (784, 256, 128), (128, 784, 512), (145, 530, 300), (289, 77, 1025)]
    return cases


def _operand(rng, rows, cols, dtype, layout):
    M = rng.standard_normal((rows, cols)).astype(dtype)
    if layout == "t":
        return np.ascontiguousarray(M.T).T
    if layout == "strided":
        big = np.zeros((2 * rows + 1, 3 * cols + 2), dtype=dtype)
        big[1::2, 2::3][:rows, :cols] = M
        return big[1::2, 2::3][:rows, :cols]
    return M


def _gemm(A, B, n_threads):
    C = np.full((A.shape[0], B.shape[1]), np.nan, dtype=A.dtype)
    _core.gemm(A, B, C, n_threads=n_threads)
    return C


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("pair", PAIR_PARAMS)
def test_gemm_bit_identical_across_isas(pair, dtype):
    """Every case in every operand layout (row-major, transposed, strided), on 1, 2 and 3
    threads: the two ISAs store the same bytes."""
    layouts = [("c", "c"), ("t", "c"), ("c", "t"), ("strided", "t")]
    rng = np.random.default_rng(1)
    n_compared = 0
    for ci, (m, n, k) in enumerate(gemm_cases()):
        la, lb = layouts[ci % len(layouts)]
        A = _operand(rng, m, k, dtype, la)
        B = _operand(rng, k, n, dtype, lb)
        for n_threads in (1, 2, 3) if m * n * k < 2e6 or ci % 2 else (2,):
            a, b = (run_under(isa, _gemm, A, B, n_threads) for isa in pair)
            assert_same_bits(a, b, f"{pair} gemm {m}x{n}x{k} {la}/{lb} threads={n_threads}")
            n_compared += 1
    assert n_compared > 300


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("isa", ISA_PARAMS)
def test_gemm_few_rows_same_bits_as_inside_a_larger_call(isa, dtype):
    """With at most MR rows the kernel reads B (the weights of a forward product) in place
    instead of packing it, and packs only a last partial column panel.  Each row must come out
    bit for bit as it does inside a 3*MR+5-row call (which packs B), for contiguous B, B with a
    row stride past its width (a column slice) and transposed B (always packed), around every
    column-panel edge, one and two passes over k, on 1, 2 and 3 threads; and match NumPy."""
    rng = np.random.default_rng(29)
    t = _core.gemm_tile(isa, np.dtype(dtype).itemsize)
    MR, NR, kc, nc = t["mr"], t["nr"], t["kc"], t["nc"]
    for n in (NR + 1, 2 * NR - 1, 3 * NR, nc + NR + 3):
        for k in (kc - 1, kc + 3):
            A = rng.standard_normal((3 * MR + 5, k)).astype(dtype)
            Bs = rng.standard_normal((k, n + 7)).astype(dtype)
            for layout, B in (("c", np.ascontiguousarray(Bs[:, :n])), ("slice", Bs[:, 3:3 + n]),
                              ("t", np.ascontiguousarray(Bs[:, :n].T).T)):
                with using_isa(isa):
                    whole = _gemm(A, B, 1)
                    for m in sorted({1, 2, MR - 1, MR, MR + 1}):
                        for n_threads in (1, 2, 3):
                            part = _gemm(A[:m], B, n_threads)
                            assert_same_bits(part, whole[:m], f"{isa} {m}x{n}x{k} B {layout} "
                                                              f"threads={n_threads}")
                want = A.astype(np.float64) @ B.astype(np.float64)
                tol = 1e-4 if dtype == np.float32 else 1e-12
                np.testing.assert_allclose(whole, want, rtol=tol, atol=tol * np.sqrt(k))


@pytest.mark.parametrize("pair", PAIR_PARAMS)
def test_gemm_accumulates_signed_zeros_and_specials_alike(pair):
    """Zeros of both signs, infinities, NaN and huge products (inf - inf) in the operands."""
    rng = np.random.default_rng(3)
    for dtype in DTYPES:
        A = rng.standard_normal((37, 41)).astype(dtype)
        B = rng.standard_normal((41, 35)).astype(dtype)
        A[::5, :] = -0.0
        A[3, 7] = np.inf
        B[7, 2] = -np.inf
        A[9, 9] = np.nan
        A[11, :] = np.finfo(dtype).max
        a, b = (run_under(isa, _gemm, A, B, 1) for isa in pair)
        assert_same_bits(a, b, f"{pair} specials {np.dtype(dtype).name}")


# ---- whole networks -------------------------------------------------------------------------------

def _mlp(dtype, seed=3):
    return fn.MLP(23, [fn.Dense(37, "relu", keep_prob=0.8),
                       fn.Dense(33, "tanh", batch_norm=True),
                       fn.Dense(10, "softmax")], dtype=dtype, seed=seed)


def _data(dtype, m=70):
    rng = np.random.default_rng(7)
    return rng.standard_normal((m, 23)).astype(dtype), rng.integers(0, 10, m).astype(np.int32)


def _loss_grad(dtype, n_threads):
    model = _mlp(dtype)
    X, y = _data(dtype)
    net = model._net(96, n_threads)
    loss, sum_w2, n_err = net.loss_grad(X, y, None, True, 11, 5, 1e-3, n_threads)
    out = np.empty((X.shape[0], 10), dtype=dtype)
    net.infer(X, out, n_threads)
    return loss, sum_w2, n_err, model._grads.copy(), model._buffers.copy(), out


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("pair", PAIR_PARAMS)
def test_network_loss_grad_bit_identical_across_isas(pair, dtype, n_threads):
    """Dropout, batch norm and softmax in one net: loss, gradients, running statistics and the
    inference output."""
    a, b = (run_under(isa, _loss_grad, dtype, n_threads) for isa in pair)
    assert a[:3] == b[:3], f"{pair}: loss / sum_w2 / errors {a[:3]} vs {b[:3]}"
    for what, x, y in zip(("grads", "running stats", "infer"), a[3:], b[3:]):
        assert_same_bits(x, y, f"{pair} {what}")


def _train(dtype, n_threads, optimizer):
    model = _mlp(dtype, seed=5)
    X, y = _data(dtype, m=300)
    tr = fn.Trainer(model, optimizer=optimizer, l2=1e-3, batch_size=32, seed=9)
    with fn.threads(n_threads):
        hist = tr.fit(X, y, epochs=2, progress=False)
    return np.asarray(hist["loss"]), model._params.copy(), model._buffers.copy()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("pair", PAIR_PARAMS)
def test_training_run_bit_identical_across_isas(pair, dtype):
    """Two epochs of Adam (and of SGD with momentum) through Trainer.fit, on 1 and 2 threads:
    the same losses, parameters and running statistics, bit for bit."""
    for n_threads, opt in ((1, "adam"), (2, "adam"), (2, "momentum")):
        a, b = (run_under(isa, _train, dtype, n_threads, opt) for isa in pair)
        for what, x, y in zip(("losses", "params", "buffers"), a, b):
            assert_same_bits(x, y, f"{pair} {opt} threads={n_threads} {what}")


# ---- dropout and the optimizer ---------------------------------------------------------------------

def _masks():
    out = []
    for e0, count in ((0, 1), (3, 130), (5, 100_001), (4 * 2**32 - 70, 300), (2**40 + 1, 5000)):
        mask = np.empty(count, dtype=np.uint8)
        _core.dropout_mask(2**63 + 5, 17, 2, e0, 0.7, mask)
        out.append(mask)
        for dtype in DTYPES:
            for n_threads in (1, 2):
                x = np.linspace(-3, 3, count).astype(dtype)
                m2 = np.empty(count, dtype=np.uint8)
                _core.dropout_forward(x, m2, 9, 3, 1, e0, 0.6, n_threads)
                out += [x, m2]
    return out


@pytest.mark.parametrize("pair", PAIR_PARAMS)
def test_dropout_masks_bit_identical_across_isas(pair):
    a, b = (run_under(isa, _masks) for isa in pair)
    assert len(a) == len(b)
    for i, (x, y) in enumerate(zip(a, b)):
        assert_same_bits(x, y, f"{pair} dropout array {i}")


# Each variant runs groups of 4 x 8 (generic), 8 x 8 (avx2) or 16 x 8 (avx512) elements, one
# Philox block per 4 uint32 lanes, and element by element from one vector before the first
# multiple of 4 and after the last whole group.  Counts around those sizes and the 64-element
# thread chunks; starts off a multiple of 4; and starts from 1 to 140 elements before 4 * 2**32,
# where the low counter word of the block number wraps, at every position in a group.
DROPOUT_CASES = ([(e0, count) for e0 in (0, 1, 2, 3, 6)
                  for count in (1, 2, 3, 4, 5, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129,
                                255, 256, 257, 300)]
                 + [(4 * 2**32 - t, 300) for t in range(1, 141)]
                 + [(2**62 + 5, 20_000), (4 * 2**32 - 9_000, 40_003)])


@pytest.mark.parametrize("isa", ISA_PARAMS)
def test_dropout_of_each_isa_matches_the_reference(isa):
    """fnn_dropout_mask against fastnn.reference, and the fused forward (mask kept or not, 1-3
    threads, both dtypes) against that mask applied with NumPy, under each ISA."""
    seed, step, layer, keep_prob = 2**64 - 3, 2**33 + 7, 5, 0.6
    with using_isa(isa):
        for e0, count in DROPOUT_CASES:
            want_mask = ref.dropout_mask(seed, step, layer, e0, count, keep_prob)
            mask = np.full(count, 7, dtype=np.uint8)
            _core.dropout_mask(seed, step, layer, e0, keep_prob, mask)
            np.testing.assert_array_equal(mask, want_mask, err_msg=f"{isa} e0={e0} count={count}")
            for dtype in DTYPES:
                x = np.linspace(-3, 3, count).astype(dtype)
                x[:3] = [np.inf, np.nan, -0.0][:min(3, count)]
                inv_keep = dtype(1.0 / keep_prob)
                with np.errstate(invalid="ignore"):
                    want = np.where(want_mask != 0, x * inv_keep, dtype(0))
                threads = (1, 2, 3) if count >= 16384 else (1,)
                for n_threads in threads:
                    for keep in (True, False):
                        got, m = x.copy(), (np.full(count, 7, np.uint8) if keep else None)
                        _core.dropout_forward(got, m, seed, step, layer, e0, keep_prob, n_threads)
                        what = f"{isa} {np.dtype(dtype).name} e0={e0} count={count} threads={n_threads}"
                        assert_same_bits(got, want, what)
                        if keep:
                            np.testing.assert_array_equal(m, want_mask, err_msg=what)


def _optim(kind, dtype, count, n_threads):
    rng = np.random.default_rng(count)
    p = rng.standard_normal(count).astype(dtype)
    v = np.zeros(count, dtype)
    s = np.zeros(count, dtype)
    for t in range(1, 4):
        g = (rng.standard_normal(count) * rng.choice([1e-6, 1.0, 1e3])).astype(dtype)
        g[::7] = 0.0
        _core.optim_step(OPTIM[kind], 0.01, 0.9, 0.999, 1e-8, 0.01, t, p, g, v, s,
                         n_threads=n_threads)
    return p, v, s


@pytest.mark.parametrize("kind", list(OPTIM))
@pytest.mark.parametrize("pair", PAIR_PARAMS)
def test_optimizer_bit_identical_across_isas(pair, kind):
    """Counts around every vector width and the parallel threshold (32768), 1 and 2 threads."""
    for dtype in DTYPES:
        for count in (1, 7, 15, 16, 17, 33, 1001, 32769, 50_001):
            for n_threads in (1, 2):
                a, b = (run_under(isa, _optim, kind, dtype, count, n_threads) for isa in pair)
                for what, x, y in zip("pvs", a, b):
                    assert_same_bits(x, y, f"{pair} {kind} {np.dtype(dtype).name} "
                                           f"count={count} threads={n_threads} {what}")


# ---- choosing the ISA -----------------------------------------------------------------------------

def _fresh(code, **env_vars):
    env = {k: v for k, v in os.environ.items() if k not in ("FASTNN_ISA", "FASTNN_GEMM_KERNEL")}
    # the fastnn this process imported (a source tree holds no compiled core)
    env.update(env_vars, PYTHONPATH=os.path.dirname(os.path.dirname(fn.__file__)))
    return subprocess.run([sys.executable, "-W", "always", "-c", code], env=env,
                          capture_output=True, text=True, timeout=120, cwd=HERE)


@pytest.mark.parametrize("isa", ISA_PARAMS)
def test_fastnn_isa_selects_the_variant(isa):
    r = _fresh("import fastnn; print(fastnn._core.get_isa())", FASTNN_ISA=isa)
    assert r.returncode == 0 and r.stdout.strip() == isa, r.stderr[-2000:]
    assert "RuntimeWarning" not in r.stderr


def test_fastnn_isa_falls_back_to_the_best_and_says_so():
    best = RUNNABLE[-1]
    missing = [n for n in _core.isa_names() if n not in RUNNABLE]
    for request in missing + ["avx1024"]:
        r = _fresh("import fastnn; print(fastnn._core.get_isa())", FASTNN_ISA=request)
        assert r.returncode == 0 and r.stdout.strip() == best, r.stderr[-2000:]
        assert "RuntimeWarning" in r.stderr and repr(request) in r.stderr, r.stderr


def test_set_isa_switches_and_refuses_what_cannot_run():
    before = _core.get_isa()
    for isa in RUNNABLE:
        with using_isa(isa):
            assert _core.get_isa() == isa
            assert fn.show_config(print_out=False)["isa"] == isa
        assert _core.get_isa() == before
    with pytest.raises(ValueError, match="unknown instruction set"):
        _core.set_isa("avx1024")
    for isa in set(_core.isa_names()) - set(RUNNABLE):
        with pytest.raises(ValueError, match="not supported"):
            _core.set_isa(isa)
    assert _core.get_isa() == before


def test_show_config_reports_build_cpu_and_tiles(capsys):
    cfg = fn.show_config()
    printed = capsys.readouterr().out
    assert cfg["version"] == fn.__version__ and fn.__version__ in printed
    assert cfg["isa"] in cfg["isa_supported"] and set(cfg["isa_supported"]) <= set(cfg["isa_compiled"])
    assert "generic" in cfg["isa_compiled"] and isinstance(cfg["openmp"], bool)
    for isa in cfg["isa_compiled"]:
        for dt in ("float32", "float64"):
            t = cfg["gemm_tiles"][isa][dt]
            assert t["mr"] >= 1 and t["nr"] >= 1 and t["kc"] >= 1
            assert f"{t['mr']:2d} x {t['nr']:2d}" in printed


# ---- floating point: FTZ/DAZ inside compiled calls, the caller's mode outside --------------------

def _net_calls(model, X, y, n_threads):
    """Every compiled entry point of the network once."""
    dtype = X.dtype
    net = model._net(len(X), n_threads)
    out = np.empty((len(X), 10), dtype=dtype)
    net.forward(X, out, True, 1, 0, n_threads)
    net.loss_grad(X, y, None, True, 1, 0, 0.0, n_threads)
    net.infer(X, out, n_threads)
    net.evaluate(X, y, None, n_threads)
    v = np.zeros(model._params.size, dtype)
    s = np.zeros(model._params.size, dtype)
    res = np.zeros(-(-len(X) // 32), dtype=_core.PASS_RESULT_DTYPE)
    net.train_steps(np.arange(len(X), dtype=np.int64), 32, X, y, None, 1, 0, 0.0, OPTIM["adam"],
                    1e-3, 0.9, 0.999, 1e-8, 0.0, 1, v, s, n_threads, res)


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("dtype", DTYPES)
def test_compiled_calls_leave_the_callers_fp_mode(dtype, n_threads):
    """(a) MXCSR (FPCR) of the calling thread is the same after every entry point; the team's
    threads are restored too (read in a region of no fastnn kernel); and a 2-thread GEMM called
    afterwards, in the caller's mode, keeps subnormal results on every thread's tiles."""
    # large enough that every kind of parallel region runs on 2 threads (GEMM, dropout, batch
    # norm, the row epilogue, the optimizer)
    model = fn.MLP(300, [fn.Dense(256, "relu", keep_prob=0.8),
                         fn.Dense(256, "tanh", batch_norm=True),
                         fn.Dense(10, "softmax")], dtype=dtype, seed=2)
    rng = np.random.default_rng(4)
    X = rng.standard_normal((160, 300)).astype(dtype)
    y = rng.integers(0, 10, 160).astype(np.int32)
    before = _core.fp_status()
    _net_calls(model, X, y, n_threads)
    assert _core.fp_status() == before
    tiny = np.finfo(dtype).smallest_normal
    A = np.full((256, 300), tiny, dtype=dtype)
    B = np.full((300, 256), 1.0 / 1024, dtype=dtype)     # every product is subnormal
    for _ in range(3):
        C1 = _gemm(A, B, 1)
        C2 = _gemm(A, B, 2)
        assert_same_bits(C1, C2, "subnormal GEMM, 1 vs 2 threads")
        assert np.all(C1 > 0) and np.all(C1 < tiny), "subnormals flushed in the caller's mode"
        before = _core.fp_status()   # now with the sticky flags these subnormals raised
        _net_calls(model, X, y, 2)
        assert _core.fp_status() == before
        assert _core.team_fp_modes(2) == [0] * len(_core.team_fp_modes(2)), "a worker kept FTZ"


@pytest.mark.skipif(not _core.has_openmp(), reason="no OpenMP team")
def test_workers_started_inside_a_call_keep_the_callers_mode():
    """A new OpenMP worker inherits the FP mode of the thread that starts it.  A team larger than
    any before (7 threads) is started by the first call that asks for it: the call must start it
    in the caller's mode, not in the flush-to-zero mode it runs in."""
    model = fn.MLP(300, [fn.Dense(256, "relu", keep_prob=0.8), fn.Dense(10, "softmax")], seed=2)
    rng = np.random.default_rng(5)
    X = rng.standard_normal((160, 300)).astype(np.float32)
    y = rng.integers(0, 10, 160).astype(np.int32)
    before = _core.fp_status()
    _net_calls(model, X, y, 7)
    assert _core.fp_status() == before
    modes = _core.team_fp_modes(7)
    assert modes == [0] * len(modes), f"workers left in flush-to-zero mode: {modes}"


@pytest.mark.skipif(_core.fp_status() == 0, reason="no flush-to-zero control on this platform")
@pytest.mark.parametrize("dtype", DTYPES)
def test_adam_first_moment_flushes_inside_training(dtype):
    """(c) Weights whose gradient is exactly zero (their input column is zero) have a first
    moment v that decays by beta1 per step.  Started at the smallest normal number, one step
    takes it into the subnormal range: inside a training call it is flushed to 0 (FTZ), while
    the single optimizer kernel, run in Python's mode, keeps the subnormal beta1 * v."""
    model = fn.MLP(4, [fn.Dense(10, "softmax")], dtype=dtype, seed=1)
    X = np.random.default_rng(0).standard_normal((32, 4)).astype(dtype)
    X[:, 0] = 0.0                                        # row 0 of W gets a zero gradient
    y = np.arange(32, dtype=np.int32) % 10
    tiny = np.finfo(dtype).smallest_normal
    n = model._params.size
    v = np.full(n, tiny, dtype)
    s = np.zeros(n, dtype)
    res = np.zeros(1, dtype=_core.PASS_RESULT_DTYPE)
    net = model._net(32, 1)
    assert net.train_steps(np.arange(32, dtype=np.int64), 32, X, y, None, 1, 0, 0.0,
                           OPTIM["adam"], 1e-3, 0.9, 0.999, 1e-8, 0.0, 1, v, s, 1, res) == 1
    W_rows = slice(0, 10)                               # 0.W is (4, 10): its first row
    assert np.all(model._grads[W_rows] == 0)
    assert np.all(v[W_rows] == 0), v[W_rows]           # 0.9 * tiny, flushed
    assert np.all(v[10:40] != 0)                        # the other rows learn as usual
    # the same update through the single kernel, in the caller's (non-flushing) mode
    p = model._params.copy()
    g = np.zeros(n, dtype)
    v2 = np.full(n, tiny, dtype)
    s2 = np.zeros(n, dtype)
    _core.optim_step(OPTIM["adam"], 1e-3, 0.9, 0.999, 1e-8, 0.0, 1, p, g, v2, s2)
    assert np.all(v2 == dtype(0.9) * dtype(tiny)) and np.all((v2 > 0) & (v2 < tiny))
