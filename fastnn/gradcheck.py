"""Gradient checking: backpropagation against central differences, the course's way.

    d_num[i] = (J(theta + eps e_i) - J(theta - eps e_i)) / (2 eps)
    difference = ||d_num - d||_2 / (||d_num||_2 + ||d||_2)

computed in float64 (a float32 model is checked through a float64 copy).  With dropout layers the
masks are held fixed by ``seed``; batch-norm layers use batch statistics and their running
averages are restored after every evaluation, so checking leaves the model unchanged.
"""
from dataclasses import dataclass, field

import numpy as np

from ._validation import _describe, check_random_seed, check_scalar

__all__ = ["gradcheck", "GradcheckResult"]


@dataclass(frozen=True)
class GradcheckResult:
    """Outcome of :func:`gradcheck`.

    Attributes
    ----------
    difference : float
        ``||d_num - d||_2 / (||d_num||_2 + ||d||_2)`` over every checked entry.
    per_array : dict of str -> float
        The same ratio for each weight array.
    threshold : float
    passed : bool
        ``difference <= threshold``.
    n_checked : int
        Number of entries compared.
    """

    difference: float
    per_array: dict = field(repr=False)
    threshold: float
    passed: bool
    n_checked: int

    def __str__(self):
        verdict = "passed" if self.passed else "FAILED"
        return (f"gradient check {verdict}: difference {self.difference:.3e} "
                f"(threshold {self.threshold:.0e}, {self.n_checked} entries)")


def _ratio(num, ana):
    denom = np.linalg.norm(num) + np.linalg.norm(ana)
    return 0.0 if denom == 0 else float(np.linalg.norm(num - ana) / denom)


def gradcheck(model, X, y, *, l2=0.0, eps=1e-7, max_entries=None, seed=0, threshold=2e-7):
    """Compare ``model.loss_and_grads`` with central differences of the cost.

    Parameters
    ----------
    model : MLP
    X, y : the data the cost is computed on (all rows: m = len(X))
    l2 : float, default 0.0
    eps : float, default 1e-7
    max_entries : int or None, default None
        Check at most this many entries per array, chosen at random (seeded); None checks all.
    seed : int, default 0
        Fixes the dropout masks and the choice of entries.
    threshold : float, default 2e-7
        ``passed`` means ``difference <= threshold`` (the course's graded checker uses 2e-7; its
        rule of thumb is about 1e-7).

    Returns
    -------
    GradcheckResult
    """
    from .model import MLP
    if not isinstance(model, MLP):
        raise TypeError(f"model must be a fastnn.MLP, got {_describe(model)}")
    eps = check_scalar(eps, "eps", "float", low=0.0, low_inclusive=False)
    threshold = check_scalar(threshold, "threshold", "float", low=0.0)
    l2 = check_scalar(l2, "l2", "float", low=0.0)
    seed = check_random_seed(seed) or 0
    if max_entries is not None:
        max_entries = check_scalar(max_entries, "max_entries", "int", low=1)
    m64 = model.copy(dtype="float64")
    training = any(l.keep_prob < 1.0 or l.batch_norm for l in m64.layers)
    X = m64._prepare_X(X)
    m64.standardizer = None  # X is already transformed
    buffers = m64._buffers.copy()

    def cost():
        c, _ = m64.loss_and_grads(X, y, l2=l2, training=training, seed=seed)
        m64._buffers[...] = buffers  # batch norm: leave the running averages untouched
        return c

    _, grads = m64.loss_and_grads(X, y, l2=l2, training=training, seed=seed)
    m64._buffers[...] = buffers
    rng = np.random.default_rng(seed)
    all_num, all_ana, per_array = [], [], {}
    for key in m64._param_layout:
        theta = m64._array(key).reshape(-1)  # a view into the model's parameters
        n = theta.size
        idx = np.arange(n) if max_entries is None or max_entries >= n else \
            np.sort(rng.choice(n, size=max_entries, replace=False))
        num = np.empty(idx.size)
        for j, i in enumerate(idx):
            old = theta[i]
            theta[i] = old + eps
            plus = cost()
            theta[i] = old - eps
            minus = cost()
            theta[i] = old
            num[j] = (plus - minus) / (2.0 * eps)
        ana = grads[key].reshape(-1)[idx]
        per_array[key] = _ratio(num, ana)
        all_num.append(num)
        all_ana.append(ana)
    num, ana = np.concatenate(all_num), np.concatenate(all_ana)
    diff = _ratio(num, ana)
    return GradcheckResult(difference=diff, per_array=per_array, threshold=threshold,
                           passed=diff <= threshold, n_checked=int(num.size))
