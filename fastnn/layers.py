"""Layers: the ``Dense`` layer spec, the activation and loss tables, and where each layer's arrays
live in a model's flat buffers.

Design: nothing here allocates or calls compiled code; a model (``fastnn.model``) and a model
file's checks (``fastnn.io``) both build on this arithmetic, so neither needs the other.
"""
import math

import numpy as np

from . import _core
from ._validation import _describe, check_scalar

__all__ = ["Dense", "ACTIVATION_CODES", "OUTPUT_LOSSES", "INITS"]

# name -> the C enum value (src_c/fastnn.h, fnn_act), as the compiled module exports it.  Stored
# in model files: never renumbered.
ACTIVATION_CODES = dict(_core.ACTIVATION_CODES)
# output activation -> (C loss enum, task of the targets)
OUTPUT_LOSSES = {"softmax": (_core.LOSS_CODES["xent"], "multiclass"),
                 "sigmoid": (_core.LOSS_CODES["bce"], "binary"),
                 "linear": (_core.LOSS_CODES["mse"], "regression")}
INITS = ("zeros", "random", "xavier", "he")


class Dense:
    """A fully connected layer: ``output = activation(dot(input, W) + b)``, then dropout.

    With ``batch_norm=True``: ``Z = dot(input, W)`` (no bias), ``Z~ = gamma * (Z - mu) /
    sqrt(var + 1e-5) + beta`` with batch statistics in training and running averages at
    inference, then the activation.  With ``keep_prob < 1`` (training only): inverted dropout,
    ``A = A * mask / keep_prob`` with ``mask ~ Bernoulli(keep_prob)``.

    Parameters
    ----------
    units : int
        Number of outputs (``n_out``).
    activation : {"relu", "leaky_relu", "tanh", "sigmoid", "linear", "softmax"}, default "relu"
        ``leaky_relu`` has slope 0.01; ``softmax`` only on the output layer.
    init : {"zeros", "random", "xavier", "he"} or None, default None
        ``random``: N(0, 1) * 0.01; ``xavier``: N(0, 1/n_in); ``he``: N(0, 2/n_in).  ``None``:
        ``he`` for relu/leaky_relu, ``xavier`` otherwise.
    keep_prob : float in (0, 1], default 1.0
        Dropout keep probability (1: no dropout).  Not allowed on the output layer.
    batch_norm : bool, default False
    bn_momentum : float in [0, 1), default 0.9
        ``running = bn_momentum * running + (1 - bn_momentum) * batch_stat`` (PyTorch's
        ``momentum`` is ``1 - bn_momentum``).
    """

    def __init__(self, units, activation="relu", *, init=None, keep_prob=1.0, batch_norm=False,
                 bn_momentum=0.9):
        self.units = check_scalar(units, "units", "int", low=1)
        if not isinstance(activation, str) or activation not in ACTIVATION_CODES:
            raise ValueError(f"activation must be one of {sorted(ACTIVATION_CODES)}, got "
                             f"{_describe(activation)}")
        self.activation = activation
        if init is None:
            init = "he" if activation in ("relu", "leaky_relu") else "xavier"
        if not isinstance(init, str) or init not in INITS:
            raise ValueError(f"init must be one of {list(INITS)} or None, got {_describe(init)}")
        self.init = init
        self.keep_prob = check_scalar(keep_prob, "keep_prob", "float", low=0.0, high=1.0,
                                      low_inclusive=False)
        if not isinstance(batch_norm, (bool, np.bool_)):
            raise TypeError(f"batch_norm must be a bool, got {_describe(batch_norm)}")
        self.batch_norm = bool(batch_norm)
        self.bn_momentum = check_scalar(bn_momentum, "bn_momentum", "float", low=0.0, high=1.0,
                                        high_inclusive=False)
        object.__setattr__(self, "_frozen", True)

    def __setattr__(self, name, value):
        if getattr(self, "_frozen", False):
            raise AttributeError(f"Dense layers cannot be changed after construction (setting "
                                 f"{name!r}); build a new Dense layer and a new MLP instead")
        object.__setattr__(self, name, value)

    def get_config(self):
        """JSON-able description; ``Dense(**config)`` rebuilds the layer."""
        return {"units": self.units, "activation": self.activation, "init": self.init,
                "keep_prob": self.keep_prob, "batch_norm": self.batch_norm,
                "bn_momentum": self.bn_momentum}

    def __repr__(self):
        defaults = {"keep_prob": 1.0, "batch_norm": False, "bn_momentum": 0.9}
        extra = "".join(f", {k}={v!r}" for k, v in self.get_config().items()
                        if k in defaults and v != defaults[k])
        return f"Dense({self.units}, {self.activation!r}, init={self.init!r}{extra})"


def _layout(n_inputs, layers):
    """Where every array of a chain of layers lives in the flat buffers: ``{key: (offset,
    shape)}`` for the trainable parameters and for the batch-norm running statistics.  Pure
    arithmetic, nothing allocated: a model file's claims are checked against it first."""
    param_layout, buffer_layout = {}, {}
    p_off = b_off = 0
    n_in = n_inputs
    for i, layer in enumerate(layers):
        n_out = layer.units
        names = [("W", (n_in, n_out))]
        names += ([("gamma", (n_out,)), ("beta", (n_out,))] if layer.batch_norm
                  else [("b", (n_out,))])
        for name, shape in names:
            param_layout[f"{i}.{name}"] = (p_off, shape)
            p_off += math.prod(shape)
        if layer.batch_norm:
            for name in ("running_mean", "running_var"):
                buffer_layout[f"{i}.{name}"] = (b_off, (n_out,))
                b_off += n_out
        n_in = n_out
    return param_layout, buffer_layout


def _size(layout):
    """Elements in the flat buffer of a layout."""
    return sum(math.prod(shape) for _, shape in layout.values())
