"""Bias/variance diagnosis from train and dev errors, with the course's advice.

::

    avoidable_bias = train_error - base_error     (high bias: avoidable_bias > tol)
    variance       = dev_error - train_error      (high variance: variance > tol)

(each up to floating-point rounding: a gap of exactly ``tol`` is not high).

``base_error`` is the best achievable (Bayes, or human-level) error; 0 when the task is easy for
people.  High bias means the model underfits the training set; high variance means it overfits
(fits the training set much better than the dev set).  A training error below the base error
(negative avoidable bias) is worth a note of its own, and so is early stopping, which ends
training before the training error is as low as it could be.
"""

from dataclasses import dataclass

from fastnn._validation import check_scalar

__all__ = ["Diagnosis", "diagnose", "BIAS_ADVICE", "VARIANCE_ADVICE"]

BIAS_ADVICE = (
    "use a bigger network (more hidden units or more layers)",
    "train longer or use a better optimizer (momentum, RMSprop, Adam)",
    "use a better initialization (He for relu, Xavier for tanh)",
    "tune the learning rate",
)
"""What to try against high bias (underfitting)."""

VARIANCE_ADVICE = (
    "get more (or more diverse) training data",
    "add regularization: L2 (l2=...), dropout (keep_prob < 1) or early stopping",
)
"""What to try against high variance (overfitting)."""

_ROUNDING = 1e-12

_NEGATIVE_BIAS_NOTE = (
    "the training error is below the base error (negative avoidable bias): the model fits the "
    "training set better than the best achievable error, so it has learned the training set's "
    "noise (compare the dev error), or the base error is set too high")

_GOOD_FIT_ADVICE = (
    "train and dev errors are both within tolerance: check the error on the test set",
)


@dataclass(frozen=True)
class Diagnosis:
    """Result of :func:`diagnose`.

    Attributes
    ----------
    kind : {"high bias", "high variance", "high bias and high variance", "good fit"}
    avoidable_bias : float
        ``train_error - base_error``.
    variance : float
        ``dev_error - train_error``.
    advice : tuple of str
        What to try next, bias remedies first.
    notes : tuple of str
        Remarks on the reading itself: a negative avoidable bias, early stopping.
    """

    kind: str
    avoidable_bias: float
    variance: float
    advice: tuple
    notes: tuple = ()

    def __str__(self):
        lines = [f"{self.kind} (avoidable bias {self.avoidable_bias:.2%}, "
                 f"variance {self.variance:.2%})"]
        lines += [f"  note: {item}" for item in self.notes]
        lines += [f"  - {item}" for item in self.advice]
        return "\n".join(lines)


def diagnose(train_error, dev_error, base_error=0.0, tol=0.02, *, stopped_epoch=None,
             best_epoch=None):
    """Diagnose bias and variance from error rates.

    ::

        avoidable_bias = train_error - base_error
        variance       = dev_error - train_error
        kind: "high bias" if avoidable_bias > tol, "high variance" if variance > tol,
              "high bias and high variance" if both, "good fit" if neither

    A gap equal to ``tol`` up to floating-point rounding (1e-12) is not high: 8 % train and 10 %
    dev error with ``tol=0.02`` is a good fit, although ``0.10 - 0.08 > 0.02`` in floating point.

    A training error below ``base_error`` (by more than that rounding) adds a note: the model
    fits the training set better than the best achievable error, so it has learned noise, or the
    base error is too high.  When early stopping ended the training (``stopped_epoch`` given), a
    note says so; early stopping halts the descent on the training cost, so with high bias the
    advice also suggests more patience or another regulariser instead.

    Parameters
    ----------
    train_error : float >= 0
        Error on the training set, as a fraction (0.15 for 15 %).
    dev_error : float >= 0
        Error on the dev set.
    base_error : float >= 0, default 0.0
        Best achievable (Bayes or human-level) error.
    tol : float > 0, default 0.02
        How much avoidable bias or variance is tolerated.
    stopped_epoch : int >= 0 or None, default None
        The epoch (as numbered in ``History["epoch"]``) after which early stopping ended the
        training; None when it did not fire.
    best_epoch : int >= 0 or None, default None
        With ``stopped_epoch``: the epoch whose weights early stopping kept.

    Returns
    -------
    Diagnosis

    Examples
    --------
    >>> diagnose(0.01, 0.11).kind
    'high variance'
    >>> diagnose(0.15, 0.16).kind
    'high bias'
    >>> diagnose(0.01, 0.03, base_error=0.02).notes[0][:36]
    'the training error is below the base'
    """
    train_error = check_scalar(train_error, "train_error", "float", low=0.0)
    dev_error = check_scalar(dev_error, "dev_error", "float", low=0.0)
    base_error = check_scalar(base_error, "base_error", "float", low=0.0)
    tol = check_scalar(tol, "tol", "float", low=0.0, low_inclusive=False)
    if stopped_epoch is not None:
        stopped_epoch = check_scalar(stopped_epoch, "stopped_epoch", "int", low=0)
    if best_epoch is not None:
        if stopped_epoch is None:
            raise ValueError("best_epoch needs stopped_epoch (the epoch early stopping ended "
                             "the training after)")
        best_epoch = check_scalar(best_epoch, "best_epoch", "int", low=0, high=stopped_epoch)
    avoidable_bias = train_error - base_error
    variance = dev_error - train_error
    # A gap counts when it exceeds tol by more than rounding: 0.10 - 0.08 is 0.020000000000000004.
    high_bias = avoidable_bias - tol > _ROUNDING
    high_variance = variance - tol > _ROUNDING
    if high_bias and high_variance:
        kind, advice = "high bias and high variance", BIAS_ADVICE + VARIANCE_ADVICE
    elif high_bias:
        kind, advice = "high bias", BIAS_ADVICE
    elif high_variance:
        kind, advice = "high variance", VARIANCE_ADVICE
    else:
        kind, advice = "good fit", _GOOD_FIT_ADVICE
    notes = []
    if avoidable_bias < -_ROUNDING:
        notes.append(_NEGATIVE_BIAS_NOTE)
    if stopped_epoch is not None:
        kept = "" if best_epoch is None else f"; the weights kept are those of epoch {best_epoch}"
        notes.append(f"early stopping ended the training after epoch {stopped_epoch}{kept}")
        if high_bias:
            advice = advice + ("early stopping halted the training while the training error "
                               "was still high: raise its patience, or regularise with L2 or "
                               "dropout instead",)
    return Diagnosis(kind, avoidable_bias, variance, advice, tuple(notes))
