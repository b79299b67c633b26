"""Gradient checking: backpropagation against central differences, the course's way.

    d_num[i] = (J(theta + eps e_i) - J(theta - eps e_i)) / (2 eps)
    difference = ||d_num - d||_2 / (||d_num||_2 + ||d||_2)

computed in float64.  Two forms:

* ``gradcheck(f, params)`` checks any function ``f(params) -> (cost, grads)`` over a dict of
  arrays, such as a learner's own forward and backward pass: the arrays are laid end to end into
  one vector (the course's ``dictionary_to_vector``), every entry is nudged in turn, and the
  difference is reported over the whole vector and for each array.
* ``gradcheck(model, X, y)`` checks ``model.loss_and_grads`` of the very object given, a
  subclass's own method or one set on the instance included: a float64 model's own weights are
  nudged (each restored exactly), a float32 model is checked through a float64 copy of the same
  class.  With dropout layers the masks are held fixed by ``seed``; batch-norm layers use batch
  statistics and their running averages are restored after every evaluation, so checking leaves
  the model unchanged.
"""
import copy
import types
from collections.abc import Mapping
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
        The same ratio for each array (a model's weight keys, or the keys of ``params``).
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


def gradcheck(model, X=None, y=None, *, l2=0.0, eps=1e-7, max_entries=None, seed=0,
              threshold=2e-7):
    """Compare analytic gradients with central differences of the cost.

    Two forms::

        gradcheck(f, params, *, eps=1e-7, max_entries=None, seed=0, threshold=2e-7)
        gradcheck(model, X, y, *, l2=0.0, eps=1e-7, max_entries=None, seed=0, threshold=2e-7)

    Parameters
    ----------
    model : MLP, or callable ``f(params) -> (cost, grads)``
        A model: its own ``loss_and_grads(X, y, l2=, training=, seed=)`` is checked (the method of
        a subclass, or a callable set on the instance).  A function: ``cost`` is a real scalar
        and ``grads`` a dict holding, for every key ``k`` of ``params``, the gradient of ``cost``
        with respect to ``params[k]`` under the key ``k`` or ``"d" + k`` (the course's ``dW1``
        for ``W1``), with the same shape; other keys (``dA1``, ``dZ1``, ...) are ignored.
    X : array-like of shape (n_samples, n_inputs), or dict of str -> array
        With a model, the data the cost is computed on (all rows: m = len(X)).  With a
        function, ``params``: the point at which to check.  The function is called with a dict
        of float64 copies of these arrays, the entry being checked nudged by ``±eps``.
    y : array-like
        With a model, the targets; not used with a function.
    l2 : float, default 0.0
        With a model, the L2 strength passed to ``loss_and_grads``.
    eps : float, default 1e-7
    max_entries : int or None, default None
        Check at most this many entries per array, chosen at random (seeded); None checks all.
    seed : int, default 0
        Fixes the dropout masks (model form) and the choice of entries.
    threshold : float, default 2e-7
        ``passed`` means ``difference <= threshold`` (the course's graded checker uses 2e-7; its
        rule of thumb is about 1e-7).

    Returns
    -------
    GradcheckResult

    Examples
    --------
    >>> import numpy as np
    >>> def f(p):   # J = sum(W**2) / 2 + 3 b
    ...     return 0.5 * np.sum(p["W"] ** 2) + 3 * p["b"][0], {"dW": p["W"], "db": np.array([3.0])}
    >>> gradcheck(f, {"W": np.array([[1.0, -2.0]]), "b": np.zeros(1)}).passed
    True
    """
    from .model import MLP
    eps = check_scalar(eps, "eps", "float", low=0.0, low_inclusive=False)
    threshold = check_scalar(threshold, "threshold", "float", low=0.0)
    seed = check_random_seed(seed) or 0
    if max_entries is not None:
        max_entries = check_scalar(max_entries, "max_entries", "int", low=1)
    if isinstance(model, MLP):
        if X is None or y is None:
            raise TypeError("gradcheck(model, X, y): X and y are required with a model")
        f, params = _model_function(model, X, y, check_scalar(l2, "l2", "float", low=0.0), seed)
    elif callable(model):
        if y is not None or l2 != 0.0:
            raise TypeError("gradcheck(f, params) takes no y or l2 (they belong to the model "
                            "form gradcheck(model, X, y)); put them inside f")
        f, params = model, _float64_params(X)
    else:
        raise TypeError(f"model must be a fastnn.MLP or a function f(params) -> (cost, grads), "
                        f"got {_describe(model)}")
    return _check(f, params, eps, max_entries, seed, threshold)


# ---- the two forms, brought to one: f(params) over a dict of float64 arrays ------------------

def _float64_params(params):
    """Float64 copies of the learner's arrays (the checked point)."""
    if not isinstance(params, Mapping):
        raise TypeError(f"params must be a dict of str -> array, got {_describe(params)}")
    if not params:
        raise ValueError("params must hold at least one array, got an empty dict")
    out = {}
    for key, value in params.items():
        if not isinstance(key, str):
            raise TypeError(f"params keys must be str, got {_describe(key)}")
        arr = np.asarray(value)
        if arr.dtype.kind not in "iuf":
            raise TypeError(f"params[{key!r}] must be a real numeric array, got dtype "
                            f"{arr.dtype}")
        arr = np.array(arr, dtype=np.float64, order="C", copy=True)
        if not np.isfinite(arr).all():
            raise ValueError(f"params[{key!r}] must be finite, got NaN or infinity")
        out[key] = arr
    return out


def _float64_twin(model):
    """The model itself when it is float64; otherwise a float64 copy of the same class with the
    same attributes, so a subclass's methods and a method set on the instance still run."""
    if model.dtype == np.float64:
        return model
    twin = copy.copy(model)  # __getstate__/__setstate__: no compiled network, a fresh lock
    for name in ("_params", "_grads", "_buffers"):
        twin.__dict__[name] = getattr(model, name).astype(np.float64)
    twin.__dict__["dtype"] = np.dtype(np.float64)
    twin.__dict__["_nets"] = {}
    own = model.__dict__.get("loss_and_grads")
    if own is not None:
        if isinstance(own, types.MethodType) and own.__self__ is model:
            twin.__dict__["loss_and_grads"] = types.MethodType(own.__func__, twin)
        else:
            raise TypeError("model.loss_and_grads is set on this float32 instance as a "
                            f"{type(own).__name__}, not as a method bound to it, so a float64 "
                            "copy cannot run it; check a float64 model, or the function "
                            "itself with gradcheck(f, params)")
    return twin


def _model_function(model, X, y, l2, seed):
    """``f(params)`` for the model form: ``params`` are views into the (float64) model's own
    parameter buffer, so nudging them changes what its ``loss_and_grads`` computes."""
    net = _float64_twin(model)
    training = any(l.keep_prob < 1.0 or l.batch_norm for l in net.layers)
    buffers = net._buffers.copy()

    def f(params):
        try:
            return net.loss_and_grads(X, y, l2=l2, training=training, seed=seed)
        finally:
            net._buffers[...] = buffers  # batch norm: leave the running averages untouched

    return f, {key: net._array(key) for key in net._param_layout}


def _evaluate(f, params, where):
    """``(cost, grads)`` from f with the result's form checked."""
    out = f(params)
    if not (isinstance(out, tuple) and len(out) == 2):
        raise TypeError(f"f must return (cost, grads), got {_describe(out)}")
    cost, grads = out
    c = np.asarray(cost)
    if c.size != 1 or c.dtype.kind not in "iuf":
        raise TypeError(f"the cost f returned must be a real scalar, got {_describe(cost)}")
    c = float(c.reshape(()))
    if not np.isfinite(c):
        raise ValueError(f"f returned a non-finite cost ({c!r}) {where}")
    return c, grads


def _gradient(grads, key, shape):
    if not isinstance(grads, Mapping):
        raise TypeError(f"the grads f returned must be a dict, got {_describe(grads)}")
    for name in (key, "d" + key):
        if name in grads:
            g = np.asarray(grads[name])
            if g.dtype.kind not in "iuf":
                raise TypeError(f"grads[{name!r}] must be a real numeric array, got dtype "
                                f"{g.dtype}")
            if g.shape != shape:
                raise ValueError(f"grads[{name!r}] must have the shape of params[{key!r}], "
                                 f"{shape}, got {g.shape}")
            return g.astype(np.float64).reshape(-1)
    raise ValueError(f"the grads f returned hold no gradient for params[{key!r}] (looked for "
                     f"the keys {key!r} and {'d' + key!r}); keys: {sorted(map(str, grads))}")


def _check(f, params, eps, max_entries, seed, threshold):
    _, grads = _evaluate(f, params, "at the given params")
    analytic = {key: _gradient(grads, key, arr.shape) for key, arr in params.items()}
    rng = np.random.default_rng(seed)
    all_num, all_ana, per_array = [], [], {}
    for key, arr in params.items():
        theta = arr.reshape(-1)  # a view: nudging it nudges what f sees
        n = theta.size
        idx = np.arange(n) if max_entries is None or max_entries >= n else \
            np.sort(rng.choice(n, size=max_entries, replace=False))
        num = np.empty(idx.size)
        for j, i in enumerate(idx):
            old = theta[i]
            try:
                theta[i] = old + eps
                plus, _ = _evaluate(f, params, f"at params[{key!r}] entry {i} + eps")
                theta[i] = old - eps
                minus, _ = _evaluate(f, params, f"at params[{key!r}] entry {i} - eps")
            finally:
                theta[i] = old
            num[j] = (plus - minus) / (2.0 * eps)
        ana = analytic[key][idx]
        per_array[key] = _ratio(num, ana)
        all_num.append(num)
        all_ana.append(ana)
    num, ana = np.concatenate(all_num), np.concatenate(all_ana)
    diff = _ratio(num, ana)
    return GradcheckResult(difference=diff, per_array=per_array, threshold=threshold,
                           passed=diff <= threshold, n_checked=int(num.size))
