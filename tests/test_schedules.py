"""fastnn.schedules: their formulas, config round trips and resolve_schedule."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastnn.schedules import (
    Constant,
    ExponentialDecay,
    InverseTimeDecay,
    Schedule,
    StepDecay,
    resolve_schedule,
)

ALL = [Constant(), InverseTimeDecay(0.5), InverseTimeDecay(1.0, time_interval=3),
       ExponentialDecay(), ExponentialDecay(0.8), StepDecay(10), StepDecay(2, factor=0.1)]


def test_constant():
    assert [Constant()(0.3, e) for e in (0, 1, 100)] == [0.3, 0.3, 0.3]


def test_inverse_time_decay_is_the_course_formula():
    s = InverseTimeDecay(decay_rate=1.0)
    assert [s(0.2, e) for e in range(4)] == pytest.approx([0.2, 0.1, 0.2 / 3, 0.05])
    s = InverseTimeDecay(decay_rate=0.5, time_interval=2)
    assert [s(1.0, e) for e in range(6)] == pytest.approx([1, 1, 1 / 1.5, 1 / 1.5, 0.5, 0.5])


def test_exponential_decay():
    s = ExponentialDecay()
    assert s.rate == 0.95
    assert s(0.1, 0) == 0.1
    assert s(0.1, 3) == pytest.approx(0.1 * 0.95 ** 3)


def test_step_decay():
    s = StepDecay(step_size=10)
    assert s.factor == 0.5
    assert [s(1.0, e) for e in (0, 9, 10, 19, 20, 25)] == [1, 1, 0.5, 0.5, 0.25, 0.25]


@given(lr0=st.floats(0, 10), epoch=st.integers(0, 500), index=st.integers(0, len(ALL) - 1))
def test_decays_never_exceed_lr0_and_never_increase(lr0, epoch, index):
    s = ALL[index]
    lr = s(lr0, epoch)
    assert isinstance(lr, float)
    assert 0 <= lr <= lr0
    assert s(lr0, epoch + 1) <= lr


@pytest.mark.parametrize("schedule", ALL, ids=repr)
def test_config_round_trips_through_json(schedule):
    config = schedule.get_config()
    assert config["name"] == type(schedule).__name__
    again = Schedule.from_config(json.loads(json.dumps(config)))
    assert again == schedule and type(again) is type(schedule)
    assert [again(0.1, e) for e in range(30)] == [schedule(0.1, e) for e in range(30)]


def test_from_config_errors():
    with pytest.raises(ValueError, match="config\\['name'\\] must be one of .* got 'Cosine'"):
        Schedule.from_config({"name": "Cosine"})
    with pytest.raises(ValueError, match=r"unknown parameters \['gamma'\] for StepDecay"):
        Schedule.from_config({"name": "StepDecay", "step_size": 2, "gamma": 0.1})
    with pytest.raises(ValueError, match="step_size must be >= 1, got 0"):
        Schedule.from_config({"name": "StepDecay", "step_size": 0})
    with pytest.raises(TypeError, match="config must be a dict"):
        Schedule.from_config("StepDecay")


def test_resolve_schedule():
    assert resolve_schedule(None) == Constant()
    s = StepDecay(3)
    assert resolve_schedule(s) is s
    assert resolve_schedule({"name": "ExponentialDecay", "rate": 0.9}) == ExponentialDecay(0.9)

    def halve(lr0, epoch):
        return lr0 / 2

    assert resolve_schedule(halve) is halve
    with pytest.raises(TypeError, match="schedule must be None, .* got 0.1"):
        resolve_schedule(0.1)


@pytest.mark.parametrize("make, pattern", [
    (lambda: InverseTimeDecay(-1.0), "decay_rate must be >= 0.0, got -1.0"),
    (lambda: InverseTimeDecay(1.0, time_interval=0), "time_interval must be >= 1, got 0"),
    (lambda: ExponentialDecay(0.0), "rate must be > 0.0, got 0.0"),
    (lambda: ExponentialDecay(1.5), "rate must be <= 1.0, got 1.5"),
    (lambda: StepDecay(5, factor=2.0), "factor must be <= 1.0, got 2.0"),
    (lambda: Constant()(0.1, -1), "epoch must be >= 0, got -1"),
    (lambda: Constant()(-0.1, 0), "lr0 must be >= 0.0, got -0.1"),
])
def test_value_errors(make, pattern):
    with pytest.raises(ValueError, match=pattern):
        make()


@pytest.mark.parametrize("make, pattern", [
    (lambda: StepDecay(2.5), "step_size must be an integer, got 2.5"),
    (lambda: InverseTimeDecay("fast"), "decay_rate must be a real number"),
    (lambda: Constant()(0.1, 1.0), "epoch must be an integer, got 1.0"),
    (lambda: Constant()(0.1, True), "epoch must be an integer, got True"),
])
def test_type_errors(make, pattern):
    with pytest.raises(TypeError, match=pattern):
        make()


def test_schedules_are_immutable():
    s = StepDecay(3)
    with pytest.raises(AttributeError):
        s.step_size = 4
