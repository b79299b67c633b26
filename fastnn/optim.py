"""Optimizers: one fused in-place C pass over every parameter per step.

Design (as ``torch.optim``): an optimizer class holds hyperparameters and state and calls one
functional update, ``_core.optim_step`` (src_c/optim.c; its NumPy twin is
``fastnn.reference.optim_step``).  Inside :class:`fastnn.Trainer` the update runs over the
model's flat parameter buffer in the same compiled call as the forward and backward passes, and
the state (``exp_avg`` v, ``exp_avg_sq`` s) lives in flat buffers too; ``state`` exposes per-key
views of them.  ``step(params, grads)`` updates a dict of arrays in place on its own, so the
course's exercises can be replayed.

Per parameter theta with gradient g, step t = 1, 2, ...; v and s start at 0.  L2 regularisation
enters through g (coupled), as in the course; ``AdamW`` decays the weights directly.
"""
import numpy as np

from . import _core
from ._threads import get_num_threads
from ._validation import _describe, check_scalar

__all__ = ["Optimizer", "SGD", "Momentum", "RMSprop", "Adam", "AdamW", "get_optimizer"]

# name -> C enum value (src_c/fastnn.h, fnn_optim), as the compiled module exports it
_KINDS = dict(_core.OPTIMIZER_CODES)


class Optimizer:
    """Base class: hyperparameters, state and the fused update.

    Attributes
    ----------
    lr : float
        Learning rate; may be changed between ``fit`` calls (the "panda" way).
    state : dict
        ``{"step": t, "exp_avg": {key: v}, "exp_avg_sq": {key: s}}`` (only the moments the
        optimizer uses).
    """

    name = None
    uses_v = False
    uses_s = False

    def __init__(self, lr):
        self.lr = check_scalar(lr, "lr", "float", low=0.0, low_inclusive=False)
        self.state = {"step": 0}
        if self.uses_v:
            self.state["exp_avg"] = {}
        if self.uses_s:
            self.state["exp_avg_sq"] = {}

    # hyperparameters the C kernel takes: (beta1, beta2, eps, weight_decay); each optimizer
    # gives its own
    def _hyper(self):
        return 0.0, 0.0, 0.0, 0.0

    def kernel_params(self):
        """What the fused update kernel takes besides the arrays, the learning rate and the step
        count: ``(kind, beta1, beta2, eps, weight_decay)``, ``kind`` the C enum (``fnn_optim``).
        :meth:`step` and the Trainer's compiled training loop both take them from here."""
        return (_KINDS[self.name], *self._hyper())

    def get_config(self):
        """JSON-able hyperparameters; ``get_optimizer(config)`` rebuilds the optimizer."""
        raise NotImplementedError

    def step(self, params, grads):
        """Update every array of ``params`` in place from ``grads`` (dicts with the same keys;
        C-contiguous, writeable float32/float64 arrays of matching shapes), then count a step."""
        if not isinstance(params, dict) or not isinstance(grads, dict):
            raise TypeError(f"params and grads must be dicts of arrays, got "
                            f"{_describe(params)} and {_describe(grads)}")
        if set(params) != set(grads):
            raise ValueError(f"params and grads must have the same keys, got {sorted(params)} "
                             f"and {sorted(grads)}")
        for key, p in params.items():
            g = grads[key]
            if not isinstance(p, np.ndarray) or not isinstance(g, np.ndarray):
                raise TypeError(f"params[{key!r}] and grads[{key!r}] must be numpy arrays")
            if p.dtype not in (np.float32, np.float64) or g.dtype != p.dtype:
                raise TypeError(f"params[{key!r}] and grads[{key!r}] must share a float32/float64"
                                f" dtype, got {p.dtype} and {g.dtype}")
            if p.shape != g.shape:
                raise ValueError(f"grads[{key!r}] must have shape {p.shape}, got {g.shape}")
            if not (p.flags.c_contiguous and p.flags.writeable):
                raise ValueError(f"params[{key!r}] must be C-contiguous and writeable (it is "
                                 f"updated in place)")
        t = self.state["step"] + 1
        kind, beta1, beta2, eps, wd = self.kernel_params()
        n_threads = get_num_threads()
        for key, p in params.items():
            v = self._moment("exp_avg", key, p)
            s = self._moment("exp_avg_sq", key, p)
            _core.optim_step(kind, self.lr, beta1, beta2, eps, wd, t,
                             p.reshape(-1), np.ascontiguousarray(grads[key]).reshape(-1),
                             None if v is None else v.reshape(-1),
                             None if s is None else s.reshape(-1), n_threads)
        self.state["step"] = t

    def _moment(self, which, key, p):
        if which not in self.state:
            return None
        table = self.state[which]
        m = table.get(key)
        if m is None or m.shape != p.shape or m.dtype != p.dtype:
            m = table[key] = np.zeros_like(p)
        return m

    # ---- flat buffers for the Trainer ---------------------------------------------------------

    def _bind_flat(self, layout, size, dtype):
        """Flat moment buffers (v, s) for a model's parameter layout {key: (offset, shape)}.

        Existing per-key state (from earlier ``fit`` calls or a checkpoint) is copied in, and
        ``state`` is re-pointed at views of the flat buffers."""
        flats = []
        for which in ("exp_avg", "exp_avg_sq"):
            if which not in self.state:
                flats.append(None)
                continue
            flat = np.zeros(size, dtype=dtype)
            old = self.state[which]
            views = {}
            for key, (off, shape) in layout.items():
                view = flat[off:off + int(np.prod(shape))].reshape(shape)
                if key in old and old[key].shape == view.shape:
                    view[...] = old[key]
                views[key] = view
            self.state[which] = views
            flats.append(flat)
        return flats[0], flats[1]

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "name")
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    """Mini-batch gradient descent: ``theta -= lr * g``."""

    name = "sgd"

    def __init__(self, lr=0.01):
        super().__init__(lr)

    def get_config(self):
        return {"name": self.name, "lr": self.lr}


class Momentum(Optimizer):
    """Gradient descent with momentum, the course's form:

    ``v = beta * v + (1 - beta) * g;  theta -= lr * v``.

    Equivalent to ``torch.optim.SGD(momentum=beta, dampening=0, lr=lr * (1 - beta))``.
    """

    name = "momentum"
    uses_v = True

    def __init__(self, lr=0.01, beta=0.9):
        super().__init__(lr)
        self.beta = check_scalar(beta, "beta", "float", low=0.0, high=1.0, high_inclusive=False)

    def _hyper(self):
        return self.beta, 0.0, 0.0, 0.0

    def get_config(self):
        return {"name": self.name, "lr": self.lr, "beta": self.beta}


class RMSprop(Optimizer):
    """RMSprop: ``s = beta2 * s + (1 - beta2) * g**2;  theta -= lr * g / (sqrt(s) + eps)``.

    eps is outside the square root, as in PyTorch (``torch.optim.RMSprop(alpha=beta2)``) and the
    Adam paper; the course notes write ``sqrt(s + eps)``.
    """

    name = "rmsprop"
    uses_s = True

    def __init__(self, lr=0.001, beta2=0.999, eps=1e-8):
        super().__init__(lr)
        self.beta2 = check_scalar(beta2, "beta2", "float", low=0.0, high=1.0, high_inclusive=False)
        self.eps = check_scalar(eps, "eps", "float", low=0.0)

    def _hyper(self):
        return 0.0, self.beta2, self.eps, 0.0

    def get_config(self):
        return {"name": self.name, "lr": self.lr, "beta2": self.beta2, "eps": self.eps}


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015), identical to ``torch.optim.Adam``::

        v = beta1 * v + (1 - beta1) * g
        s = beta2 * s + (1 - beta2) * g**2
        theta -= lr * v_hat / (sqrt(s_hat) + eps),  v_hat = v / (1 - beta1**t),
                                                    s_hat = s / (1 - beta2**t)
    """

    name = "adam"
    uses_v = uses_s = True

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8):
        super().__init__(lr)
        self.beta1 = check_scalar(beta1, "beta1", "float", low=0.0, high=1.0, high_inclusive=False)
        self.beta2 = check_scalar(beta2, "beta2", "float", low=0.0, high=1.0, high_inclusive=False)
        self.eps = check_scalar(eps, "eps", "float", low=0.0)

    def _hyper(self):
        return self.beta1, self.beta2, self.eps, 0.0

    def get_config(self):
        return {"name": self.name, "lr": self.lr, "beta1": self.beta1, "beta2": self.beta2,
                "eps": self.eps}


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter), as ``torch.optim.AdamW``:
    ``theta *= 1 - lr * weight_decay``, then the Adam update."""

    name = "adamw"

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01):
        super().__init__(lr, beta1, beta2, eps)
        self.weight_decay = check_scalar(weight_decay, "weight_decay", "float", low=0.0)

    def _hyper(self):
        return self.beta1, self.beta2, self.eps, self.weight_decay

    def get_config(self):
        config = super().get_config()
        config["weight_decay"] = self.weight_decay
        return config


_CLASSES = {cls.name: cls for cls in (SGD, Momentum, RMSprop, Adam, AdamW)}


def get_optimizer(spec):
    """An optimizer from an instance, a name ("adam", ...) or a config dict with "name"."""
    if isinstance(spec, Optimizer):
        return spec
    if isinstance(spec, str):
        spec = {"name": spec}
    if isinstance(spec, dict) and spec.get("name") in _CLASSES:
        args = {k: v for k, v in spec.items() if k != "name"}
        return _CLASSES[spec["name"]](**args)
    raise ValueError(f"optimizer must be a fastnn.optim.Optimizer or one of {sorted(_CLASSES)}, "
                     f"got {_describe(spec)}")
