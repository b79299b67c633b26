"""Exponentially weighted averages (the course's building block for momentum, RMSprop, Adam).

::

    v_0 = 0
    v_t = β v_{t-1} + (1 - β) x_t            t = 1, 2, ...
    v̂_t = v_t / (1 - β^t)                    (bias correction: v_0 = 0 drags early values down)

``v_t`` averages roughly the last ``1/(1 - β)`` values (10 for β = 0.9).
"""

import math

import numpy as np

from fastnn._validation import check_scalar

__all__ = ["ewa", "EWA"]


def _check_beta(beta):
    return check_scalar(beta, "beta", "float", low=0.0, high=1.0, high_inclusive=False)


def ewa(values, beta, bias_correction=True):
    """Exponentially weighted average of a sequence, at every step.

    ``v_t = β v_{t-1} + (1 - β) x_t`` from ``v_0 = 0``; returned as ``v_t / (1 - β^t)`` when
    ``bias_correction`` (the default), else ``v_t``.

    Parameters
    ----------
    values : array-like of shape (n,) or (n, ...)
        The sequence ``x_1..x_n`` along the first axis (later axes are averaged independently).
        Finite real numbers.
    beta : float in [0, 1)
        Weight of the past; 0 returns the values themselves.
    bias_correction : bool, default True

    Returns
    -------
    ndarray of the shape of ``values``, float64

    Examples
    --------
    >>> ewa([1.0, 1.0, 1.0], beta=0.9)
    array([1., 1., 1.])
    >>> ewa([1.0, 1.0], beta=0.5, bias_correction=False)
    array([0.5 , 0.75])
    """
    beta = _check_beta(beta)
    if not isinstance(bias_correction, (bool, np.bool_)):
        raise TypeError(f"bias_correction must be True or False, got {bias_correction!r}")
    x = np.asarray(values)
    if x.dtype.kind not in "biuf":
        raise TypeError(f"values must be real numbers, got dtype {x.dtype}")
    x = x.astype(np.float64)
    if x.ndim == 0:
        raise ValueError(f"values must be a sequence, got a scalar {values!r}")
    if not np.isfinite(x).all():
        raise ValueError("values must be finite, got NaN or infinity")
    out = np.empty_like(x)
    v = np.zeros(x.shape[1:])
    for t in range(x.shape[0]):
        v = beta * v + (1 - beta) * x[t]
        out[t] = v / (1 - beta ** (t + 1)) if bias_correction else v
    return out


class EWA:
    """A running exponentially weighted average: one term of memory.

    Parameters
    ----------
    beta : float in [0, 1)
    bias_correction : bool, default True
        Whether :attr:`value` (and :meth:`update`'s result) is ``v_t / (1 - β^t)`` or ``v_t``.

    Attributes
    ----------
    t : int
        Number of updates so far.
    raw : float
        The uncorrected ``v_t`` (0 before the first update).

    Examples
    --------
    >>> avg = EWA(0.9)
    >>> avg.update(2.0)
    2.0
    >>> avg.t
    1
    """

    def __init__(self, beta, bias_correction=True):
        self.beta = _check_beta(beta)
        if not isinstance(bias_correction, (bool, np.bool_)):
            raise TypeError(f"bias_correction must be True or False, got {bias_correction!r}")
        self.bias_correction = bool(bias_correction)
        self.t = 0
        self.raw = 0.0

    def __repr__(self):
        return f"EWA(beta={self.beta!r}, t={self.t}, value={self.value!r})"

    def update(self, x):
        """Add ``x_t``: ``v_t = β v_{t-1} + (1 - β) x_t``; return :attr:`value`.

        Parameters
        ----------
        x : float
            A finite real number.

        Returns
        -------
        float
        """
        x = check_scalar(x, "x", "float")
        self.t += 1
        self.raw = self.beta * self.raw + (1 - self.beta) * x
        return self.value

    def update_many(self, values):
        """Add every element of ``values`` in order (the same recurrence, and the same bits, as
        calling :meth:`update` on each); validated once.  Returns :attr:`value`."""
        values = np.asarray(values, dtype=np.float64).ravel()
        if not np.all(np.isfinite(values)):
            raise ValueError("values must be finite, got NaN or infinity")
        beta, raw = self.beta, self.raw
        for x in values.tolist():
            raw = beta * raw + (1 - beta) * x
        self.raw = raw
        self.t += values.size
        return self.value

    @property
    def value(self):
        """The current average (bias-corrected if so configured); NaN before any update."""
        if self.t == 0:
            return math.nan
        if self.bias_correction:
            return self.raw / (1 - self.beta ** self.t)
        return self.raw

    def to_dict(self):
        """JSON-able state ``{"beta", "bias_correction", "t", "raw"}``, e.g. for checkpoints."""
        return {"beta": self.beta, "bias_correction": self.bias_correction, "t": self.t,
                "raw": self.raw}

    @classmethod
    def from_dict(cls, state):
        """Rebuild an EWA from :meth:`to_dict`'s output (checked)."""
        if not isinstance(state, dict):
            raise TypeError(f"state must be a dict from EWA.to_dict(), got {state!r:.80}")
        try:
            obj = cls(state["beta"], state.get("bias_correction", True))
            obj.t = check_scalar(state["t"], "state['t']", "int", low=0)
            obj.raw = check_scalar(state["raw"], "state['raw']", "float")
        except KeyError as exc:
            raise ValueError(f"state is missing {exc.args[0]!r}") from None
        return obj
