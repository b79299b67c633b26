"""Every compiled kernel of fastnn._core against the NumPy oracle (fastnn.reference).

Every test runs once per instruction-set variant of the kernels (generic, avx2, avx512: the
module's `isa` fixture); a variant this CPU cannot run skips, naming it.  tests/test_isa.py
compares the variants with each other bit for bit.

Shapes are awkward on purpose (STYLE.md, habit 4): batches of one row, primes, and sizes just off
every block size of the C code -- GEMM micro-tiles MR x NR (12 x 32 / 12 x 16 AVX-512, 6 x 16 /
6 x 8 AVX2, 4 x 8 generic), cache blocks KC = 256 / 512, MC = 144 / 72, NC = 512 / 256
(src_c/gemm.c, `_core.gemm_tile`), the
optimizer's parallel threshold 32768 (src_c/optim.c), batch norm's 64-column blocks and 16384
parallel threshold (src_c/batchnorm.c), the dropout groups of 16 / 64 / 128 elements (generic /
AVX2 / AVX-512) and the 16384-element parallel threshold of the fused dropout (src_c/dropout.c).  Both dtypes, 1 and 2 threads.

Tolerances: the largest error relative to the largest magnitude of the reference result, 1e-12
for float64 and 1e-5 for float32.  float32 kernels are checked against the reference evaluated in
float64 on the same (upcast) inputs, i.e. against the exact answer, not against NumPy's own
float32 rounding.  Where the exact gradient is bounded by a known scale (softmax / sigmoid
gradients are bounded by `scale`) that bound also floors the denominator: the reference's
`p - 1` loses relative precision as p -> 1, and the kernel is more accurate there, not less.
Likewise a summed loss is compared relative to the size of the terms summed, and a network's
gradients relative to its largest gradient, times batch norm's 1/sqrt(var + eps) where that
amplifies the rounding of the dtype (see test_batchnorm_network_loss_and_grads).
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import fastnn as fn
from fastnn import _core
from fastnn import reference as ref
from fastnn._threads import threads

from isa_support import ISA_PARAMS, using_isa

DTYPES = [np.float32, np.float64]
TOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12}

# fnn_act / fnn_loss / fnn_optim values of src_c/fastnn.h ("never renumber": pinned here).
ACT = {"linear": 0, "relu": 1, "leaky_relu": 2, "tanh": 3, "sigmoid": 4}
SOFTMAX = 5
LOSS = {"xent": 0, "bce": 1, "mse": 2}
OPTIM = {"sgd": 0, "momentum": 1, "rmsprop": 2, "adam": 3, "adamw": 4}

THREADS = [1, 2]


@pytest.fixture(scope="module", params=ISA_PARAMS, autouse=True)
def isa(request):
    """Every test of this module, once per instruction-set variant (module scope: hypothesis
    runs each test's examples under one variant)."""
    with using_isa(request.param):
        yield request.param

# GEMM sizes: 0, 1, small primes, and every block size +-1 (MR 4/6/12, NR 8/16/32, KC 256/512,
# MC 72/144, NC 256/512).
GEMM_SIZES = sorted({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 15, 16, 17, 31, 32, 33, 37, 71, 72,
                     73, 97, 143, 144, 145, 251, 255, 256, 257, 511, 512, 513})
# Elementwise sizes: 0..~1000, odd sizes and vector widths +-1.
ELEM_SIZES = st.one_of(
    st.sampled_from([0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 129,
                     255, 257, 511, 513, 997, 1001]),
    st.integers(0, 1024))
ROWS = st.sampled_from([1, 2, 3, 5, 7, 13, 17, 31, 64, 65])
COLS = st.sampled_from([1, 2, 3, 5, 7, 8, 9, 10, 16, 17, 31, 33])


def assert_close(got, want, dtype, floor=0.0, what="", amp=1.0):
    """max |got - want| <= amp * tol(dtype) * max(max |want|, floor); exact when that is 0.

    ``amp`` >= 1 is a known amplification of rounding errors by the computation (batch norm's
    1/sqrt(var + eps)); it is 1 everywhere else."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    assert np.all(np.isfinite(got) == np.isfinite(want)), f"{what}: non-finite mismatch"
    if got.size == 0:
        return
    fin = np.isfinite(want)
    assert np.array_equal(got[~fin], want[~fin]), f"{what}: infinities differ"
    scale = max(float(np.max(np.abs(want[fin]), initial=0.0)), floor)
    err = float(np.max(np.abs(got[fin] - want[fin]), initial=0.0))
    tol = amp * TOL[np.dtype(dtype)] * scale
    assert err <= tol, (f"{what}: max abs error {err:.3e} > {tol:.3e} "
                        f"(relative {err / scale if scale else np.inf:.3e}, dtype "
                        f"{np.dtype(dtype).name})")


def up(x):
    """float64 copy of x: the reference is evaluated on the exact values of the inputs."""
    return None if x is None else np.asarray(x, dtype=np.float64)


# ---- GEMM -------------------------------------------------------------------------------------

def make_operand(rng, rows, cols, dtype, layout):
    """A (rows, cols) operand as a view with the given layout (values drawn once, then laid out)."""
    M = rng.standard_normal((rows, cols)).astype(dtype)
    if layout == "c":
        return M
    if layout == "t":                     # the transpose of a C-contiguous (cols, rows) array
        return np.ascontiguousarray(M.T).T
    if layout == "strided":               # every other row, every third column of a bigger array
        big = np.zeros((2 * rows + 1, 3 * cols + 2), dtype=dtype)
        big[1::2, 2::3][:rows, :cols] = M
        return big[1::2, 2::3][:rows, :cols]
    if layout == "reversed":              # negative strides
        return np.ascontiguousarray(M[::-1, ::-1])[::-1, ::-1]
    raise AssertionError(layout)


LAYOUTS = st.sampled_from(["c", "t", "strided", "reversed"])


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=60, deadline=None)
@given(m=st.sampled_from(GEMM_SIZES), n=st.sampled_from(GEMM_SIZES),
       k=st.sampled_from(GEMM_SIZES), la=LAYOUTS, lb=LAYOUTS, seed=st.integers(0, 2**32 - 1))
@example(m=1, n=1, k=1, la="c", lb="c", seed=0)
@example(m=0, n=5, k=3, la="c", lb="c", seed=0)
@example(m=5, n=0, k=3, la="c", lb="c", seed=0)
@example(m=5, n=3, k=0, la="c", lb="c", seed=0)
@example(m=0, n=0, k=0, la="t", lb="t", seed=0)
@example(m=1, n=513, k=257, la="c", lb="t", seed=1)       # one row, several nc blocks, 2 kc passes
@example(m=513, n=1, k=257, la="t", lb="c", seed=2)       # one column (narrow, transposed path)
@example(m=145, n=9, k=257, la="c", lb="c", seed=3)       # narrow n: C^T = B^T A^T path
@example(m=145, n=17, k=513, la="t", lb="strided", seed=4)  # mc+1 rows, 3 passes over k
@example(m=73, n=257, k=255, la="strided", lb="t", seed=5)  # double mc+1, nc+1
@example(m=97, n=513, k=17, la="c", lb="c", seed=6)       # float nc+1, parallel
@example(m=7, n=16, k=256, la="reversed", lb="c", seed=7)  # one column panel: A read in place
def test_gemm_matches_float64_matmul(dtype, m, n, k, la, lb, seed):
    rng = np.random.default_rng(seed)
    A = make_operand(rng, m, k, dtype, la)
    B = make_operand(rng, k, n, dtype, lb)
    want = up(A) @ up(B)                          # independent oracle: NumPy/BLAS in float64
    results = []
    for n_threads in THREADS:
        C = np.full((m, n), np.nan, dtype=dtype)  # "written, never read": NaN must not survive
        _core.gemm(A, B, C, n_threads=n_threads)
        results.append(C)
    assert_close(results[0], want, dtype, what=f"gemm {m}x{n}x{k} {la}/{lb}")
    np.testing.assert_array_equal(results[0], results[1],
                                  err_msg=f"gemm {m}x{n}x{k}: 1 and 2 threads differ")
    if k == 0:
        assert np.all(results[0] == 0) and not np.any(np.signbit(results[0]))


@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_large_parallel_bit_identical_across_threads(dtype):
    """A call well above the parallel threshold, split over 2 and 3 threads (more than cores)."""
    rng = np.random.default_rng(11)
    m, n, k = 289, 530, 300
    A = rng.standard_normal((m, k)).astype(dtype)
    B = rng.standard_normal((n, k)).astype(dtype).T
    out = {}
    for n_threads in (1, 2, 3):
        C = np.empty((m, n), dtype=dtype)
        _core.gemm(A, B, C, n_threads=n_threads)
        out[n_threads] = C
    assert_close(out[1], up(A) @ up(B), dtype, what="gemm large")
    np.testing.assert_array_equal(out[1], out[2])
    np.testing.assert_array_equal(out[1], out[3])


# ---- activations ------------------------------------------------------------------------------

def activation_inputs(rng, size, dtype):
    """Normal values of mixed scales, with zeros, tiny and saturating values sprinkled in."""
    z = rng.standard_normal(size) * rng.choice([0.1, 1.0, 5.0, 40.0], size=size)
    special = np.array([0.0, -0.0, 1e-30, -1e-30, 1000.0, -1000.0, 88.0, -88.0, 710.0, -710.0])
    if size:
        pos = rng.integers(0, size, size=min(size, 10))
        z[pos] = special[:len(pos)]
    return z.astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(ACT))
@settings(max_examples=15, deadline=None)
@given(size=ELEM_SIZES, seed=st.integers(0, 2**32 - 1))
def test_act_forward_backward(dtype, name, size, seed):
    rng = np.random.default_rng(seed)
    z = activation_inputs(rng, size, dtype)
    a = z.copy()
    _core.act_forward(ACT[name], a)
    with np.errstate(over="ignore"):
        want_a = ref.act_forward(name, up(z))
    assert np.all(np.isfinite(a))
    assert_close(a, want_a, dtype, what=f"act_forward {name}")

    dA = (rng.standard_normal(size) * 3).astype(dtype)
    dZ = dA.copy()
    _core.act_backward(ACT[name], a, dZ)
    want_dZ = ref.act_backward(name, up(a), up(dA))     # derivative from the kernel's own output
    assert_close(dZ, want_dZ, dtype, what=f"act_backward {name}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_tanh_saturate_without_inf_or_nan(dtype):
    z = np.array([1000, -1000, 1e30, -1e30, np.inf, -np.inf, 100, -100], dtype=dtype)
    want = {"sigmoid": [1, 0, 1, 0, 1, 0, 1, 0], "tanh": [1, -1, 1, -1, 1, -1, 1, -1]}
    for name in ("sigmoid", "tanh"):
        a = z.copy()
        _core.act_forward(ACT[name], a)
        assert np.all(np.isfinite(a)), (name, a)
        np.testing.assert_allclose(a, want[name], atol=1e-30, rtol=0, err_msg=name)
        dA = np.ones_like(a)
        _core.act_backward(ACT[name], a, dA)
        # g'(a) of a saturated output: finite, >= 0 and at most sigmoid(-100) ~ 4e-44
        assert np.all(np.isfinite(dA)) and np.all((dA >= 0) & (dA < 1e-30)), (name, dA)


@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_passes_nan_and_softmax_act_is_a_no_op(dtype):
    z = np.array([np.nan, -1.0, 2.0], dtype=dtype)
    for name in ("relu", "leaky_relu"):
        a = z.copy()
        _core.act_forward(ACT[name], a)
        assert np.isnan(a[0]) and a[2] == 2, (name, a)
    a = z[1:].copy()
    _core.act_forward(SOFTMAX, a)                   # softmax is row-wise, in loss.c
    np.testing.assert_array_equal(a, z[1:])


# ---- softmax and losses -----------------------------------------------------------------------

def logits(rng, m, n, dtype, spread):
    """Logits with a per-row offset up to +-1000 (softmax is shift-invariant: stability test)."""
    Z = rng.standard_normal((m, n)) * spread + rng.uniform(-1000, 1000, size=(m, 1))
    return Z.astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=30, deadline=None)
@given(m=ROWS, n=COLS, spread=st.sampled_from([0.0, 0.5, 3.0, 20.0]),
       seed=st.integers(0, 2**32 - 1), alias=st.booleans())
def test_softmax_rows(dtype, m, n, spread, seed, alias):
    rng = np.random.default_rng(seed)
    Z = logits(rng, m, n, dtype, spread)
    want = ref.softmax(up(Z))
    if alias:                                       # P may alias Z
        P = Z.copy()
        _core.softmax_rows(P, P)
    else:
        P = np.full_like(Z, np.nan)
        _core.softmax_rows(Z, P)
    assert_close(P, want, dtype, what="softmax_rows")
    assert np.all(P >= 0)


def loss_inputs(rng, loss, m, n, dtype, spread):
    if loss == "xent":
        Z = logits(rng, m, n, dtype, spread)
        return Z, rng.integers(0, n, size=m).astype(np.int32), None
    Z = (rng.standard_normal((m, n)) * spread).astype(dtype)
    if loss == "bce":
        Y = rng.integers(0, 2, size=(m, n)).astype(dtype)
    else:
        Y = (rng.standard_normal((m, n)) * spread).astype(dtype)
    return Z, None, Y


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss", list(LOSS))
@settings(max_examples=25, deadline=None)
@given(m=ROWS, n=COLS, spread=st.sampled_from([0.1, 1.0, 4.0, 30.0]),
       seed=st.integers(0, 2**32 - 1), alias=st.booleans(),
       scale_kind=st.sampled_from(["mean", "one", "odd"]))
def test_loss_grad(dtype, loss, m, n, spread, seed, alias, scale_kind):
    rng = np.random.default_rng(seed)
    Z, labels, Y = loss_inputs(rng, loss, m, n, dtype, spread)
    scale = {"mean": 1.0 / m if loss == "xent" else 1.0 / (m * n), "one": 1.0,
             "odd": 0.37}[scale_kind]
    want_sum, want_dZ = ref.loss_grad(loss, up(Z), labels if loss == "xent" else up(Y), scale)
    if alias:                                       # dZ may alias Z
        dZ = Z.copy()
        total = _core.loss_grad(LOSS[loss], dZ, labels, Y, dZ, scale)
    else:
        dZ = np.full_like(Z, np.nan)
        total = _core.loss_grad(LOSS[loss], Z, labels, Y, dZ, scale)
    # The summed loss: relative to the size of what is summed (per row |logits|), since each
    # per-example term is a difference of O(|z|) quantities in both implementations.
    terms = np.abs(up(Z)).max(axis=1).sum() + m * n
    err = abs(total - want_sum)
    assert err <= TOL[np.dtype(dtype)] * (abs(want_sum) + terms), \
        f"{loss} sum: got {total!r}, want {want_sum!r}"
    # softmax/sigmoid gradients are bounded by |scale|; mse's is not (floor 0).
    floor = abs(scale) if loss != "mse" else 0.0
    assert_close(dZ, want_dZ, dtype, floor=floor, what=f"{loss} dZ")


@pytest.mark.parametrize("dtype", DTYPES)
def test_xent_confident_rows_are_exact(dtype):
    """p_y -> 1: the label's gradient is -(sum of the others)/sum, no cancellation to 0."""
    Z = np.array([[40.0, 0.0, 0.0], [0.0, 0.0, 0.0]], dtype=dtype)
    labels = np.array([0, 2], dtype=np.int32)
    dZ = np.empty_like(Z)
    total = _core.loss_grad(LOSS["xent"], Z, labels, None, dZ, 1.0)
    other = 2 * np.exp(-40.0)
    np.testing.assert_allclose(dZ[0, 0], -other / (1 + other), rtol=TOL[np.dtype(dtype)])
    np.testing.assert_allclose(total, np.log1p(other) + np.log(3.0), rtol=1e-6)


# ---- Philox and dropout -----------------------------------------------------------------------

PHILOX_KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8)),
    ((0xffffffff,) * 4, (0xffffffff,) * 2, (0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd)),
    ((0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344), (0xa4093822, 0x299f31d0),
     (0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1)),
]


@pytest.mark.parametrize("ctr, key, want", PHILOX_KAT)
def test_philox_known_answers(ctr, key, want):
    assert list(_core.philox4x32(ctr, key)) == list(want)
    assert [int(w) for w in ref.philox4x32(ctr, key)] == list(want)   # the oracle, too


U32 = st.integers(0, 2**32 - 1)


@settings(max_examples=50, deadline=None)
@given(ctr=st.tuples(U32, U32, U32, U32), key=st.tuples(U32, U32))
def test_philox_matches_reference(ctr, key):
    assert list(_core.philox4x32(ctr, key)) == [int(w) for w in ref.philox4x32(ctr, key)]


E0 = st.one_of(st.integers(0, 70), st.integers(0, 2**40),
               # around the carry out of the low counter word (element 4 * 2**32), inside a
               # vector group
               st.integers(4 * 2**32 - 200, 4 * 2**32 + 200),
               st.integers(0, 2**62))
COUNT = st.one_of(st.sampled_from([0, 1, 2, 3, 4, 5, 63, 64, 65, 67, 127, 128, 129, 255, 257]),
                  st.integers(0, 1500))
KEEP = st.one_of(st.sampled_from([0.5, 0.8, 0.9, 1e-9, 1 - 1e-9, 1.0]),
                 st.floats(0.01, 0.99))


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 2**64 - 1), step=st.integers(0, 2**64 - 1), layer=U32, e0=E0,
       count=COUNT, keep_prob=KEEP)
@example(seed=2**64 - 1, step=2**64 - 1, layer=2**32 - 1, e0=3, count=130, keep_prob=0.5)
@example(seed=0, step=0, layer=0, e0=4 * 2**32 - 64, count=300, keep_prob=0.5)
def test_dropout_mask_matches_reference(seed, step, layer, e0, count, keep_prob):
    mask = np.full(count, 7, dtype=np.uint8)
    _core.dropout_mask(seed, step, layer, e0, keep_prob, mask)
    want = ref.dropout_mask(seed, step, layer, e0, count, keep_prob)
    np.testing.assert_array_equal(mask, want)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**64 - 1), step=st.integers(0, 2**32), layer=st.integers(0, 9),
       e0=st.integers(0, 2**33), keep_prob=st.floats(0.05, 0.95),
       cuts=st.lists(st.integers(0, 1200), min_size=1, max_size=6))
def test_dropout_mask_of_a_range_is_a_slice_of_a_bigger_one(seed, step, layer, e0, keep_prob,
                                                            cuts):
    total = 1200
    big = np.empty(total, dtype=np.uint8)
    _core.dropout_mask(seed, step, layer, e0, keep_prob, big)
    bounds = sorted(set([0, total] + cuts))
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        part = np.empty(hi - lo, dtype=np.uint8)
        _core.dropout_mask(seed, step, layer, e0 + lo, keep_prob, part)
        np.testing.assert_array_equal(part, big[lo:hi], err_msg=f"[{lo}, {hi}) of e0={e0}")


@pytest.mark.parametrize("keep_prob", [0.05, 0.5, 0.8, 0.97])
def test_dropout_keep_rate_within_5_sigma(keep_prob):
    count = 400_003
    mask = np.empty(count, dtype=np.uint8)
    _core.dropout_mask(12345, 7, 3, 1, keep_prob, mask)
    assert set(np.unique(mask)) <= {0, 1}
    sigma = np.sqrt(keep_prob * (1 - keep_prob) / count)
    assert abs(mask.mean() - keep_prob) <= 5 * sigma, mask.mean()
    # and the masks of two layers are not the same stream
    other = np.empty(count, dtype=np.uint8)
    _core.dropout_mask(12345, 7, 4, 1, keep_prob, other)
    assert not np.array_equal(mask, other)


# fused forward: from 0 elements to past the parallel threshold (16384) and the vector groups
FORWARD_COUNT = st.one_of(st.sampled_from([0, 1, 2, 3, 5, 63, 64, 65, 129, 16383, 16384, 16385,
                                           40_003, 100_001]),
                          st.integers(0, 1500))
FORWARD_E0 = st.one_of(st.integers(0, 70), st.integers(0, 2**40).map(lambda e: 4 * e + 1),
                       st.integers(4 * 2**32 - 300, 4 * 2**32 + 300), st.integers(0, 2**62))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n_threads", THREADS)
@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**64 - 1), step=st.integers(0, 2**64 - 1), layer=U32, e0=FORWARD_E0,
       count=FORWARD_COUNT, keep_prob=st.one_of(st.sampled_from([0.5, 0.9, 1.0]),
                                                st.floats(0.01, 0.99)),
       data_seed=st.integers(0, 2**32 - 1))
@example(seed=1, step=2, layer=3, e0=4 * 2**32 - 7, count=40_003, keep_prob=0.9, data_seed=0)
@example(seed=1, step=2, layer=3, e0=5, count=100_001, keep_prob=0.5, data_seed=0)
def test_dropout_forward_is_mask_then_apply_bit_for_bit(dtype, n_threads, seed, step, layer, e0,
                                                        count, keep_prob, data_seed):
    rng = np.random.default_rng(data_seed)
    x = (rng.standard_normal(count) * 10).astype(dtype)
    if count >= 3:
        x[:3] = [np.inf, np.nan, -0.0]
    want_mask = np.empty(count, dtype=np.uint8)
    _core.dropout_mask(seed, step, layer, e0, keep_prob, want_mask)
    want = x.copy()
    _core.dropout_apply(want, want_mask, keep_prob)
    got = x.copy()
    mask = np.full(count, 7, dtype=np.uint8)
    _core.dropout_forward(got, mask, seed, step, layer, e0, keep_prob, n_threads)
    np.testing.assert_array_equal(mask, want_mask)
    np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))   # bits, NaN and -0
    no_mask = x.copy()
    _core.dropout_forward(no_mask, None, seed, step, layer, e0, keep_prob, n_threads)
    np.testing.assert_array_equal(no_mask.view(np.uint8), want.view(np.uint8))


def test_dropout_forward_rejects_a_mask_of_another_length():
    with pytest.raises(ValueError):
        _core.dropout_forward(np.ones(10, np.float32), np.empty(9, np.uint8), 0, 0, 0, 0, 0.5, 1)


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=25, deadline=None)
@given(size=ELEM_SIZES, keep_prob=st.floats(0.01, 1.0), seed=st.integers(0, 2**32 - 1))
def test_dropout_apply_matches_formula(dtype, size, keep_prob, seed):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(size) * 10).astype(dtype)
    if size >= 3:
        x[:3] = [np.inf, np.nan, -0.0]
    # any nonzero byte means kept
    mask = (rng.integers(0, 2, size=size) * rng.integers(1, 4, size=size)).astype(np.uint8)
    got = x.copy()
    _core.dropout_apply(got, mask, keep_prob)
    inv_keep = dtype(1.0 / keep_prob)               # the kernel scales in the model's dtype
    with np.errstate(invalid="ignore"):
        want = np.where(mask != 0, x * inv_keep, dtype(0))
    np.testing.assert_array_equal(got, want)
    assert not np.any(np.signbit(got[mask == 0])), "a dropped element must be +0.0"


# ---- gather -----------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=25, deadline=None)
@given(n_samples=st.sampled_from([1, 2, 7, 31, 257]), n=COLS,
       m=st.sampled_from([1, 2, 3, 17, 64, 301]), seed=st.integers(0, 2**32 - 1))
def test_gather_rows(dtype, n_samples, n, m, seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_samples, n)).astype(dtype)
    idx = rng.integers(0, n_samples, size=m).astype(np.int64)
    idx[0] = n_samples - 1                          # the last row
    out = np.full((m, n), np.nan, dtype=dtype)
    _core.gather_rows(X, idx, out)
    np.testing.assert_array_equal(out, ref.gather_rows(X, idx))


# ---- optimizers -------------------------------------------------------------------------------

OPT_COUNTS = st.one_of(st.sampled_from([0, 1, 2, 3, 7, 15, 16, 17, 1001, 32767, 32768, 32769,
                                        32768 + 17, 50_001]),
                       st.integers(0, 3000))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", list(OPTIM))
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(count=OPT_COUNTS, t0=st.sampled_from([1, 2, 10, 1000]), n_steps=st.integers(1, 4),
       lr=st.floats(1e-4, 0.3), beta1=st.sampled_from([0.0, 0.5, 0.9, 0.99]),
       beta2=st.sampled_from([0.9, 0.99, 0.999, 0.9999]), eps=st.sampled_from([1e-8, 1e-6, 1e-3]),
       weight_decay=st.sampled_from([0.0, 0.01, 0.3]), seed=st.integers(0, 2**32 - 1))
@example(count=32769, t0=1, n_steps=3, lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8,
         weight_decay=0.01, seed=0)
def test_optim_step(dtype, kind, count, t0, n_steps, lr, beta1, beta2, eps, weight_decay, seed):
    rng = np.random.default_rng(seed)
    p0 = rng.standard_normal(count).astype(dtype)
    uses_v = kind in ("momentum", "adam", "adamw")
    uses_s = kind in ("rmsprop", "adam", "adamw")
    # fastnn's state (1 and 2 threads) and the reference's, each evolved on its own
    state = {nt: [p0.copy(), np.zeros(count, dtype) if uses_v else None,
                  np.zeros(count, dtype) if uses_s else None] for nt in THREADS}
    rp, rv, rs = up(p0), np.zeros(count) if uses_v else None, np.zeros(count) if uses_s else None
    for t in range(t0, t0 + n_steps):
        g = (rng.standard_normal(count) * rng.choice([1e-4, 1.0, 10.0])).astype(dtype)
        if count:
            g[0] = 0.0                               # zero gradient on zero state: 0/(0+eps)
        for nt, (p, v, s) in state.items():
            _core.optim_step(OPTIM[kind], lr, beta1, beta2, eps, weight_decay, t, p, g, v, s,
                             n_threads=nt)
        rp, rv, rs = ref.optim_step(kind, rp, up(g), rv, rs, t, lr=lr, beta1=beta1, beta2=beta2,
                                    eps=eps, weight_decay=weight_decay)
    (p1, v1, s1), (p2, v2, s2) = state[1], state[2]
    what = f"{kind} count={count} t={t0}..{t0 + n_steps - 1}"
    assert_close(p1, rp, dtype, what=what + " p")
    if uses_v:
        assert_close(v1, rv, dtype, what=what + " v")
    if uses_s:
        assert_close(s1, rs, dtype, what=what + " s")
    for a, b in ((p1, p2), (v1, v2), (s1, s2)):
        if a is not None:
            np.testing.assert_array_equal(a, b, err_msg=what + ": 1 and 2 threads differ")


# ---- batch norm, through the network ----------------------------------------------------------

def ref_layers(model):
    return [{"units": l.units, "activation": l.activation, "keep_prob": l.keep_prob,
             "batch_norm": l.batch_norm} for l in model.layers]


def randomize_bn(model, rng):
    """Non-trivial gamma, beta and running statistics (the defaults 1, 0, 0, 1 hide mistakes)."""
    w = model.get_weights()
    for key, arr in w.items():
        if key.endswith(".gamma"):
            w[key] = rng.uniform(0.5, 1.5, arr.shape).astype(arr.dtype)
        elif key.endswith((".beta", ".running_mean", ".b")):
            w[key] = rng.normal(0, 0.5, arr.shape).astype(arr.dtype)
        elif key.endswith(".running_var"):
            w[key] = rng.uniform(0.2, 3.0, arr.shape).astype(arr.dtype)
    model.set_weights(w)
    return w


def targets(rng, out_act, m, units, dtype):
    if out_act == "softmax":
        return rng.integers(0, units, size=m)
    if out_act == "sigmoid":
        return rng.integers(0, 2, size=(m, units)).astype(dtype)
    return rng.standard_normal((m, units)).astype(dtype)


def ref_train_forward_stats(params, layers, X, masks):
    """Batch variance and new running statistics (var, running_mean, running_var) of every
    batch-norm layer after one training forward (reference)."""
    A, stats = X, {}
    for i, layer in enumerate(layers):
        W = params[f"{i}.W"]
        if layer["batch_norm"]:
            Zt, _, _, var, rm, rv = ref.batchnorm_forward_train(
                A @ W, params[f"{i}.gamma"], params[f"{i}.beta"], params[f"{i}.running_mean"],
                params[f"{i}.running_var"], momentum=0.9)
            stats[i] = (var, rm, rv)
        else:
            Zt = A @ W + params[f"{i}.b"]
        if i == len(layers) - 1:
            break
        A = ref.act_forward(layer["activation"], Zt)
        if i in masks:
            A = np.where(masks[i] != 0, A / layer["keep_prob"], 0.0)
    return stats


HIDDEN = ["linear", "relu", "leaky_relu", "tanh", "sigmoid"]


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(m=st.sampled_from([2, 3, 7, 17, 64, 65]), n_in=st.sampled_from([1, 3, 17]),
       h1=st.sampled_from([1, 5, 16, 17, 63, 65]), h2=st.sampled_from([2, 9]),
       act1=st.sampled_from(HIDDEN), act2=st.sampled_from(HIDDEN),
       out_act=st.sampled_from(["softmax", "sigmoid", "linear"]),
       keep1=st.sampled_from([1.0, 0.7]), keep2=st.sampled_from([1.0, 0.5]),
       bn2=st.booleans(), training=st.booleans(), seed=st.integers(0, 2**31 - 1))
@example(m=257, n_in=17, h1=65, h2=9, act1="relu", act2="tanh", out_act="softmax", keep1=0.7,
         keep2=1.0, bn2=True, training=True, seed=1)   # m*n > 16384: batch norm runs parallel
def test_batchnorm_network_loss_and_grads(dtype, m, n_in, h1, h2, act1, act2, out_act, keep1,
                                          keep2, bn2, training, seed):
    rng = np.random.default_rng(seed)
    units = 3 if out_act == "softmax" else 2
    model = fn.MLP(n_in, [fn.Dense(h1, act1, batch_norm=True, keep_prob=keep1),
                          fn.Dense(h2, act2, batch_norm=bn2, keep_prob=keep2),
                          fn.Dense(units, out_act)], dtype=dtype, seed=seed)
    w0 = randomize_bn(model, rng)
    layers = ref_layers(model)
    X = rng.standard_normal((m, n_in)).astype(dtype)
    y = targets(rng, out_act, m, units, dtype)
    params = {k: up(v) for k, v in w0.items()}
    masks = ref.mlp_dropout_masks(layers, m, model.seed, step=0) if training else None
    want_cost, want_grads = ref.mlp_loss_and_grads(params, layers, up(X), y, masks=masks,
                                                   training=training)
    results = {}
    for nt in THREADS:
        model.set_weights(w0)                       # training also updates running statistics
        with threads(nt):
            results[nt] = model.loss_and_grads(X, y, training=training)
    cost, grads = results[1]
    tol = TOL[np.dtype(dtype)]
    assert abs(cost - want_cost) <= tol * max(abs(want_cost), 1.0), (cost, want_cost)
    assert set(grads) == set(want_grads)
    # Each gradient relative to the largest gradient of the network: a gradient whose exact
    # value cancels to ~0 (e.g. the bias-like gradients in front of a training batch-norm layer,
    # whose input gradient sums to 0 over the rows) is only as accurate as the terms it sums.
    net_scale = max(float(np.abs(g).max()) for g in want_grads.values())
    # Batch norm's backward multiplies by rstd = 1/sqrt(var + eps) (up to 316 for a column of
    # near-equal values, frequent with m = 2): the dtype's rounding of Zhat and dY is amplified
    # by it relative to the other gradients (Z has variance ~1 here, so rstd ~ 1 is the norm).
    if training:
        variances = [v for v, _, _ in ref_train_forward_stats(params, layers, up(X), masks or {})
                     .values()]
    else:
        variances = [params[f"{i}.running_var"] for i, l in enumerate(layers) if l["batch_norm"]]
    amp = max(1.0, max(float(np.max(1 / np.sqrt(v + ref.BN_EPS))) for v in variances))
    for key in want_grads:
        assert_close(grads[key], want_grads[key], dtype, floor=net_scale, amp=amp,
                     what=f"grad {key} (training={training})")
    assert results[2][0] == cost
    for key in grads:
        np.testing.assert_array_equal(results[2][1][key], grads[key],
                                      err_msg=f"{key}: 1 and 2 threads differ")


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(m=st.sampled_from([2, 3, 17, 65]), n_in=st.sampled_from([1, 4, 13]),
       h=st.sampled_from([1, 6, 64, 65]), act=st.sampled_from(HIDDEN),
       keep=st.sampled_from([1.0, 0.6]), seed=st.integers(0, 2**31 - 1))
@example(m=2, n_in=1, h=65, act="tanh", keep=1.0, seed=92)  # float32: rstd amplifies rounding
def test_batchnorm_training_forward_and_running_stats(dtype, m, n_in, h, act, keep, seed):
    rng = np.random.default_rng(seed)
    model = fn.MLP(n_in, [fn.Dense(h, act, batch_norm=True, keep_prob=keep),
                          fn.Dense(5, "tanh", batch_norm=True), fn.Dense(2, "linear")],
                   dtype=dtype, seed=seed)
    w0 = randomize_bn(model, rng)
    layers = ref_layers(model)
    X = (rng.standard_normal((m, n_in)) * 3 + 1).astype(dtype)
    params = {k: up(v) for k, v in w0.items()}
    masks = ref.mlp_dropout_masks(layers, m, model.seed, step=0)
    want_out = ref.mlp_forward(params, layers, up(X), training=True, masks=masks)
    want_stats = ref_train_forward_stats(params, layers, up(X), masks)
    # the output is normalised by rstd = 1/sqrt(var + eps): the dtype's rounding of Z (and of
    # the next layer's input) is amplified by it (up to 316 for a column of near-equal values,
    # frequent with m = 2; see test_batchnorm_network_loss_and_grads)
    amp = max(1.0, max(float(np.max(1 / np.sqrt(v + ref.BN_EPS))) for v, _, _ in want_stats.values()))
    for nt in THREADS:
        model.set_weights(w0)
        with threads(nt):
            out = model.forward(X, training=True)
        assert_close(out, want_out, dtype, amp=amp, what=f"training forward ({nt} threads)")
        w = model.get_weights()
        for i, (_, rm, rv) in want_stats.items():
            assert_close(w[f"{i}.running_mean"], rm, dtype, what=f"{i}.running_mean")
            assert_close(w[f"{i}.running_var"], rv, dtype, what=f"{i}.running_var")
    # inference afterwards uses the new running statistics
    after = {k: up(v) for k, v in model.get_weights().items()}
    assert_close(model.forward(X), ref.mlp_forward(after, layers, up(X)), dtype,
                 what="inference forward")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", HIDDEN)
def test_batchnorm_one_row_in_training(dtype, act):
    """m == 1: biased var 0 -> Zhat = 0, Zt = beta; running_var takes the biased 0.  The
    kernel's edge, reached directly: the training API refuses a 1-row batch, as PyTorch."""
    rng = np.random.default_rng(5)
    n_in, h, units = 4, 7, 3
    model = fn.MLP(n_in, [fn.Dense(h, act, batch_norm=True), fn.Dense(units, "linear")],
                   dtype=dtype, seed=3)
    w0 = randomize_bn(model, rng)
    X = rng.standard_normal((1, n_in)).astype(dtype)
    y = rng.standard_normal((1, units)).astype(dtype)
    p = {k: up(v) for k, v in w0.items()}
    a0 = ref.act_forward(act, p["0.beta"][None, :])          # Zt = beta
    want_out = a0 @ p["1.W"] + p["1.b"]
    z = up(X) @ p["0.W"]
    with pytest.raises(ValueError, match="more than 1 row"):
        model.loss_and_grads(X, y, training=True)
    cost, _, _ = model._net(1, 1).loss_grad(X, None, y, True, model.seed, 0, 0.0, 1)
    grads = model._grads_dict()
    w = model.get_weights()
    assert_close(w["0.running_mean"], 0.9 * p["0.running_mean"] + 0.1 * z[0], dtype,
                 what="running_mean, m=1")
    assert_close(w["0.running_var"], 0.9 * p["0.running_var"], dtype, what="running_var, m=1")
    model.set_weights(w0)
    with pytest.raises(ValueError, match="more than 1 row"):
        model.forward(X, training=True)
    out = np.empty((1, units), dtype=dtype)
    model._net(1, 1).forward(X, out, True, model.seed, 0, 1)
    assert np.all(np.isfinite(out))
    assert_close(out, want_out, dtype, what="output, m=1")
    # gradients: nothing flows through a normalised single row
    sum_loss, dZ1 = ref.loss_grad("mse", want_out, up(y), 1.0 / units)
    assert abs(cost - sum_loss / units) <= TOL[np.dtype(dtype)] * max(1.0, sum_loss / units)
    dA0 = dZ1 @ p["1.W"].T
    assert_close(grads["1.W"], a0.T @ dZ1, dtype, what="1.W grad, m=1")
    assert_close(grads["0.beta"], ref.act_backward(act, a0, dA0)[0], dtype, what="beta grad")
    assert np.all(grads["0.gamma"] == 0) and np.all(grads["0.W"] == 0)


def test_batchnorm_float32_variance_of_a_large_mean_column():
    """mean 1000, std 0.01 in float32: E[z^2] - E[z]^2 would lose every digit; two passes don't."""
    rng = np.random.default_rng(0)
    m, h = 512, 3
    X = (1000.0 + 0.01 * rng.standard_normal((m, h))).astype(np.float32)
    model = fn.MLP(h, [fn.Dense(h, "linear", batch_norm=True), fn.Dense(h, "linear")],
                   dtype="float32")
    w = model.get_weights()
    w["0.W"] = np.eye(h, dtype=np.float32)
    w["1.W"] = np.eye(h, dtype=np.float32)
    w["1.b"][...] = 0
    w["0.running_var"][...] = 0                     # so that running_var = 0.1 * unbiased var
    model.set_weights(w)
    out = model.forward(X, training=True)
    Xd = X.astype(np.float64)
    true_var = Xd.var(axis=0)
    got_var = model.get_weights()["0.running_var"].astype(np.float64) / 0.1 * (m - 1) / m
    rel = np.abs(got_var - true_var) / true_var
    assert np.all(rel < 1e-3), (got_var, true_var)
    want_out = (Xd - Xd.mean(axis=0)) / np.sqrt(true_var + ref.BN_EPS)
    assert np.max(np.abs(out - want_out)) < 1e-4 * np.max(np.abs(want_out))
