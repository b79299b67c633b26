"""fastnn.diagnose: bias/variance diagnosis with the course's advice."""

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import fastnn as fn
from fastnn.diagnose import BIAS_ADVICE, VARIANCE_ADVICE, Diagnosis, diagnose


@pytest.mark.parametrize("train, dev, base, kind", [
    (0.01, 0.11, 0.0, "high variance"),                 # the course's four examples
    (0.15, 0.16, 0.0, "high bias"),
    (0.15, 0.30, 0.0, "high bias and high variance"),
    (0.005, 0.01, 0.0, "good fit"),
    (0.15, 0.16, 0.15, "good fit"),                     # 15 % is as good as people do
    (0.15, 0.16, 0.10, "high bias"),
    (0.08, 0.10, 0.075, "good fit"),                    # 0.10 - 0.08 > 0.02 in floating point
    (0.08, 0.1001, 0.075, "high variance"),
])
def test_course_examples(train, dev, base, kind):
    d = diagnose(train, dev, base_error=base)
    assert d.kind == kind
    assert d.avoidable_bias == pytest.approx(train - base)
    assert d.variance == pytest.approx(dev - train)


def test_threshold_is_strict_and_tol_is_used():
    # Values exact in binary, so the comparison is on the boundary itself.
    assert diagnose(0.25, 0.25, tol=0.25).kind == "good fit"
    assert diagnose(0.25, 0.5, tol=0.25).kind == "good fit"
    assert diagnose(0.5, 0.5, tol=0.25).kind == "high bias"
    assert diagnose(0.0, 0.5, tol=0.25).kind == "high variance"
    assert diagnose(0.05, 0.06).kind == "high bias"
    assert diagnose(0.05, 0.06, tol=0.1).kind == "good fit"


def test_advice_is_the_course_advice():
    bias = diagnose(0.2, 0.21)
    assert bias.advice == BIAS_ADVICE
    text = " ".join(bias.advice)
    for word in ("bigger network", "longer", "optimizer", "initialization", "learning rate"):
        assert word in text
    var = diagnose(0.0, 0.2)
    assert var.advice == VARIANCE_ADVICE
    text = " ".join(var.advice)
    for word in ("more", "data", "L2", "dropout", "early stopping"):
        assert word in text
    both = diagnose(0.2, 0.5)
    assert both.advice == BIAS_ADVICE + VARIANCE_ADVICE
    assert "test set" in " ".join(diagnose(0.0, 0.0).advice)


def test_diagnosis_is_frozen_and_readable():
    d = diagnose(0.15, 0.30)
    assert isinstance(d, Diagnosis)
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.kind = "good fit"
    text = str(d)
    assert text.splitlines()[0] == ("high bias and high variance (avoidable bias 15.00%, "
                                    "variance 15.00%)")
    assert all(f"  - {a}" in text for a in d.advice)
    assert len(text.splitlines()) == 1 + len(d.advice)


@given(train=st.floats(0, 1), dev=st.floats(0, 1), base=st.floats(0, 1),
       tol=st.floats(1e-6, 0.5))
def test_kind_follows_the_two_gaps(train, dev, base, tol):
    assume(abs(train - base - tol) > 1e-9 and abs(dev - train - tol) > 1e-9)
    d = diagnose(train, dev, base, tol)
    high_bias = train - base > tol
    high_var = dev - train > tol
    assert ("high bias" in d.kind) == high_bias
    assert ("high variance" in d.kind) == high_var
    assert (d.kind == "good fit") == (not high_bias and not high_var)


@pytest.mark.parametrize("kwargs, exc, pattern", [
    (dict(train_error=-0.1, dev_error=0.1), ValueError, "train_error must be >= 0.0, got -0.1"),
    (dict(train_error=0.1, dev_error=math.nan), ValueError, "dev_error must be finite, got nan"),
    (dict(train_error="0.1", dev_error=0.1), TypeError, "train_error must be a real number"),
    (dict(train_error=0.1, dev_error=0.1, base_error=True), TypeError, "base_error must be"),
    (dict(train_error=0.1, dev_error=0.1, tol=0.0), ValueError, "tol must be > 0.0, got 0.0"),
    (dict(train_error=0.1, dev_error=0.1, stopped_epoch=-1), ValueError, "stopped_epoch must be"),
    (dict(train_error=0.1, dev_error=0.1, stopped_epoch=2.5), TypeError, "stopped_epoch must be"),
    (dict(train_error=0.1, dev_error=0.1, best_epoch=3), ValueError, "best_epoch needs"),
    (dict(train_error=0.1, dev_error=0.1, stopped_epoch=3, best_epoch=4), ValueError,
     "best_epoch must be <= 3, got 4"),
])
def test_argument_errors(kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        diagnose(**kwargs)


@pytest.mark.parametrize("train, base, negative", [
    (0.01, 0.02, True),      # better than people on the training set
    (0.02, 0.02, False),
    (0.08, 0.075, False),
    (0.0, 1e-13, False),     # below only by rounding
])
def test_negative_avoidable_bias_is_noted(train, base, negative):
    d = diagnose(train, train + 0.01, base_error=base)
    assert d.avoidable_bias == pytest.approx(train - base)
    assert (len(d.notes) == 1) == negative
    if negative:
        assert d.avoidable_bias < 0
        assert "below the base error" in d.notes[0] and "negative avoidable bias" in d.notes[0]
        assert d.kind == "good fit"          # a negative gap is not high bias
        assert f"  note: {d.notes[0]}" in str(d)


def test_early_stopping_is_noted_and_changes_the_bias_advice():
    d = diagnose(0.20, 0.21, stopped_epoch=12, best_epoch=9)
    assert d.kind == "high bias"
    assert d.notes == ("early stopping ended the training after epoch 12; the weights kept are "
                       "those of epoch 9",)
    assert d.advice[:len(BIAS_ADVICE)] == BIAS_ADVICE and len(d.advice) == len(BIAS_ADVICE) + 1
    assert "patience" in d.advice[-1]
    v = diagnose(0.0, 0.2, stopped_epoch=4)
    assert v.notes == ("early stopping ended the training after epoch 4",)
    assert v.advice == VARIANCE_ADVICE       # early stopping is already a variance remedy
    both = diagnose(0.001, 0.2, base_error=0.01, stopped_epoch=0, best_epoch=0)
    assert len(both.notes) == 2 and "below the base error" in both.notes[0]
    assert diagnose(0.2, 0.21).notes == ()   # without the information: no note


def test_history_diagnose_says_when_early_stopping_ended_the_training():
    """A fit stopped early records the epoch it stopped after and the one it restored; a later
    fit that runs to the end forgets them."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 4))
    y = (X[:, 0] > 0).astype(int)
    model = fn.MLP(4, [fn.Dense(8, "relu"), fn.Dense(2, "softmax")], dtype="float64", seed=0)
    trainer = fn.Trainer(model, fn.optim.SGD(lr=1e-12), batch_size=50, seed=0)  # ~no change
    history = trainer.fit(X[:150], y[:150], epochs=10, validation_data=(X[150:], y[150:]),
                          early_stopping=fn.EarlyStopping(patience=1, min_delta=1e-3), progress=False)
    assert len(history) == 3                      # epoch 0 best, 1 and 2 without improvement
    assert (history.stopped_epoch, history.best_epoch) == (history["epoch"][-1], history["epoch"][0])
    notes = history.diagnose().notes
    assert any(f"after epoch {history['epoch'][-1]}" in n and f"epoch {history['epoch'][0]}" in n
               for n in notes), notes
    history = trainer.fit(X[:150], y[:150], epochs=1, validation_data=(X[150:], y[150:]),
                          progress=False)
    assert history.stopped_epoch is None
    assert not any("early stopping" in n for n in history.diagnose().notes)
