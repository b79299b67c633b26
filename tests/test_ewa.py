"""fastnn.ewa against the recursion written out, and its closed form."""

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastnn.ewa import EWA, ewa

values_st = st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=60)
beta_st = st.floats(0.0, 0.999)


def test_three_steps_by_hand():
    b = 0.9
    x = [10.0, 20.0, 30.0]
    v1 = 0.1 * 10.0
    v2 = b * v1 + 0.1 * 20.0
    v3 = b * v2 + 0.1 * 30.0
    np.testing.assert_allclose(ewa(x, b, bias_correction=False), [v1, v2, v3], rtol=1e-15)
    np.testing.assert_allclose(ewa(x, b), [v1 / (1 - b), v2 / (1 - b ** 2), v3 / (1 - b ** 3)],
                               rtol=1e-15)


@settings(max_examples=80, deadline=None)
@given(values=values_st, beta=beta_st)
def test_equals_the_closed_form_weighted_sum(values, beta):
    # v_t = (1 - β) Σ_{i<=t} β^(t-i) x_i, and the weights of v̂_t sum to 1.
    x = np.array(values)
    got_raw = ewa(x, beta, bias_correction=False)
    got = ewa(x, beta)
    for t in range(1, len(x) + 1):
        w = (1 - beta) * beta ** np.arange(t - 1, -1, -1)
        raw = np.dot(w, x[:t])
        scale = np.abs(x[:t]).max() + 1e-300
        assert abs(got_raw[t - 1] - raw) <= 1e-12 * scale
        assert abs(got[t - 1] - raw / w.sum()) <= 1e-9 * scale


@given(c=st.floats(-1e3, 1e3), n=st.integers(1, 50), beta=beta_st)
def test_bias_correction_makes_a_constant_sequence_constant(c, n, beta):
    np.testing.assert_allclose(ewa([c] * n, beta), c, rtol=1e-10, atol=1e-12)


def test_beta_zero_is_identity_and_columns_are_independent():
    x = np.array([[1.0, -1.0], [3.0, 5.0], [2.0, 0.0]])
    np.testing.assert_array_equal(ewa(x, 0.0), x)
    out = ewa(x, 0.5)
    assert out.shape == (3, 2)
    np.testing.assert_allclose(out[:, 0], ewa(x[:, 0], 0.5))
    np.testing.assert_allclose(out[:, 1], ewa(x[:, 1], 0.5))


@settings(max_examples=40, deadline=None)
@given(values=values_st, beta=beta_st, correct=st.booleans())
def test_running_ewa_matches_the_array_version(values, beta, correct):
    avg = EWA(beta, bias_correction=correct)
    assert math.isnan(avg.value) and avg.t == 0
    got = [avg.update(x) for x in values]
    np.testing.assert_allclose(got, ewa(values, beta, bias_correction=correct), rtol=1e-12,
                               atol=1e-300)
    assert avg.t == len(values)
    assert avg.value == got[-1]


def test_ewa_state_round_trips_through_json():
    avg = EWA(0.98)
    for x in (1.0, 4.0, 2.5):
        avg.update(x)
    clone = EWA.from_dict(json.loads(json.dumps(avg.to_dict())))
    assert (clone.t, clone.raw, clone.value) == (avg.t, avg.raw, avg.value)
    assert clone.update(7.0) == avg.update(7.0)


@pytest.mark.parametrize("call, exc, pattern", [
    (lambda: ewa([1.0], 1.0), ValueError, r"beta must be < 1.0, got 1.0"),
    (lambda: ewa([1.0], -0.1), ValueError, r"beta must be >= 0.0, got -0.1"),
    (lambda: ewa([1.0, np.nan], 0.9), ValueError, "values must be finite"),
    (lambda: ewa(["a"], 0.9), TypeError, "values must be real numbers"),
    (lambda: ewa(3.0, 0.9), ValueError, "values must be a sequence"),
    (lambda: ewa([1.0], 0.9, bias_correction=1), TypeError, "bias_correction must be True"),
    (lambda: EWA(1.5), ValueError, "beta must be < 1.0, got 1.5"),
    (lambda: EWA(0.9).update(float("inf")), ValueError, "x must be finite"),
    (lambda: EWA(0.9).update("1"), TypeError, "x must be a real number"),
    (lambda: EWA.from_dict({"beta": 0.9}), ValueError, "state is missing 't'"),
])
def test_argument_errors(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


def test_update_many_equals_repeated_update_bit_for_bit():
    rng = np.random.default_rng(3)
    values = rng.standard_normal(257) * 10
    one, many = EWA(0.98), EWA(0.98)
    for x in values:
        one.update(x)
    many.update_many(values[:100])
    many.update_many(values[100:])
    assert many.t == one.t == 257
    assert many.raw == one.raw and many.value == one.value
    with pytest.raises(ValueError, match="finite"):
        many.update_many([1.0, float("nan")])
