"""Learning-rate decay: ``lr = schedule(lr0, epoch)``, epoch = 0, 1, 2, ...

Smaller steps near the minimum let mini-batch gradient descent settle instead of wandering.
Every schedule is a small immutable object, callable as ``(lr0, epoch) -> lr``, with a JSON-able
:meth:`~Schedule.get_config` (carrying its ``"name"``) and :meth:`Schedule.from_config`, so a
checkpoint can store it.  Any plain callable ``(lr0, epoch) -> lr`` also works where a schedule is
expected (but cannot be saved).
"""

from dataclasses import asdict, dataclass, fields

from fastnn._validation import check_scalar

__all__ = [
    "Schedule",
    "Constant",
    "InverseTimeDecay",
    "ExponentialDecay",
    "StepDecay",
    "resolve_schedule",
]

_REGISTRY = {}


def _check_call(lr0, epoch):
    lr0 = check_scalar(lr0, "lr0", "float", low=0.0)
    epoch = check_scalar(epoch, "epoch", "int", low=0)
    return lr0, epoch


class Schedule:
    """Base class: subclasses are frozen dataclasses implementing ``_rate(lr0, epoch)``."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _REGISTRY[cls.__name__] = cls

    def __call__(self, lr0, epoch):
        """Learning rate for ``epoch`` (int >= 0) given the initial rate ``lr0`` (float >= 0)."""
        lr0, epoch = _check_call(lr0, epoch)
        return float(self._rate(lr0, epoch))

    def get_config(self):
        """JSON-able description: ``{"name": class name, **parameters}``."""
        return {"name": type(self).__name__, **asdict(self)}

    @staticmethod
    def from_config(config):
        """Rebuild a schedule from :meth:`get_config`'s output.

        Parameters
        ----------
        config : dict
            ``{"name": "Constant" | "InverseTimeDecay" | "ExponentialDecay" | "StepDecay",
            **parameters}``.

        Returns
        -------
        Schedule

        Raises
        ------
        ValueError
            Unknown name, unknown or invalid parameters.
        """
        if not isinstance(config, dict):
            raise TypeError(f"config must be a dict with a 'name', got {config!r:.80}")
        params = dict(config)
        name = params.pop("name", None)
        if name not in _REGISTRY:
            raise ValueError(f"config['name'] must be one of {sorted(_REGISTRY)}, got {name!r}")
        cls = _REGISTRY[name]
        allowed = {f.name for f in fields(cls)}
        unknown = sorted(set(params) - allowed)
        if unknown:
            raise ValueError(f"unknown parameters {unknown} for {name}; expected "
                             f"{sorted(allowed)}")
        return cls(**params)


@dataclass(frozen=True)
class Constant(Schedule):
    """No decay: ``lr = lr0``."""

    def _rate(self, lr0, epoch):
        return lr0


@dataclass(frozen=True)
class InverseTimeDecay(Schedule):
    """The course's decay: ``lr = lr0 / (1 + decay_rate · floor(epoch / time_interval))``.

    Parameters
    ----------
    decay_rate : float >= 0
    time_interval : int >= 1, default 1
        Epochs between decreases (1: decay every epoch).
    """

    decay_rate: float
    time_interval: int = 1

    def __post_init__(self):
        object.__setattr__(self, "decay_rate",
                           check_scalar(self.decay_rate, "decay_rate", "float", low=0.0))
        object.__setattr__(self, "time_interval",
                           check_scalar(self.time_interval, "time_interval", "int", low=1))

    def _rate(self, lr0, epoch):
        return lr0 / (1 + self.decay_rate * (epoch // self.time_interval))


@dataclass(frozen=True)
class ExponentialDecay(Schedule):
    """Exponential decay: ``lr = lr0 · rate^epoch``.

    Parameters
    ----------
    rate : float in (0, 1], default 0.95
    """

    rate: float = 0.95

    def __post_init__(self):
        object.__setattr__(self, "rate", check_scalar(self.rate, "rate", "float", low=0.0,
                                                      high=1.0, low_inclusive=False))

    def _rate(self, lr0, epoch):
        return lr0 * self.rate ** epoch


@dataclass(frozen=True)
class StepDecay(Schedule):
    """Stepwise decay: ``lr = lr0 · factor^floor(epoch / step_size)``.

    Parameters
    ----------
    step_size : int >= 1
        Epochs between decreases.
    factor : float in (0, 1], default 0.5
    """

    step_size: int
    factor: float = 0.5

    def __post_init__(self):
        object.__setattr__(self, "step_size",
                           check_scalar(self.step_size, "step_size", "int", low=1))
        object.__setattr__(self, "factor", check_scalar(self.factor, "factor", "float", low=0.0,
                                                        high=1.0, low_inclusive=False))

    def _rate(self, lr0, epoch):
        return lr0 * self.factor ** (epoch // self.step_size)


def resolve_schedule(obj):
    """Turn what a user passed as ``schedule=`` into something callable as ``(lr0, epoch)``.

    Parameters
    ----------
    obj : None, Schedule, dict or callable
        ``None`` -> :class:`Constant`; a :class:`Schedule` as it is; a dict from
        :meth:`Schedule.get_config` -> the schedule it describes; any other callable
        ``(lr0, epoch) -> lr`` as it is.

    Returns
    -------
    Schedule or callable

    Raises
    ------
    TypeError
        Anything else.
    """
    if obj is None:
        return Constant()
    if isinstance(obj, Schedule):
        return obj
    if isinstance(obj, dict):
        return Schedule.from_config(obj)
    if callable(obj):
        return obj
    raise TypeError(f"schedule must be None, a fastnn.schedules.Schedule, a config dict or a "
                    f"callable (lr0, epoch) -> lr, got {obj!r:.80}")
