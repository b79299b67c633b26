"""The estimators' legal parameter values, declared once as data and checked by one function.

Each entry of ``CONSTRAINTS`` is a tuple of accepted forms; a value is legal when one form
accepts it.  ``check_params`` runs at the start of ``fit``/``partial_fit`` (never in
``__init__``, as scikit-learn requires) and raises one message format naming the parameter
and the value received: ``TypeError`` when no form takes the value's type, ``ValueError`` when
the type is right and the value is not.
"""
import numbers

import numpy as np

from .._validation import _describe

# scikit-learn's hidden activation names and fastnn's -> fastnn's
HIDDEN_ACTIVATIONS = {"identity": "linear", "logistic": "sigmoid", "tanh": "tanh",
                      "relu": "relu", "linear": "linear", "sigmoid": "sigmoid",
                      "leaky_relu": "leaky_relu"}
# scikit-learn's solvers, then fastnn's course forms of momentum and RMSprop
SOLVERS = ("lbfgs", "sgd", "adam", "momentum", "rmsprop")
STOCHASTIC_SOLVERS = ("sgd", "adam", "momentum", "rmsprop")


class Interval:
    """A real (``kind="float"``) or integer (``kind="int"``) number in an interval; ``None``
    bounds are open ends, ``closed`` is one of "left", "right", "both", "neither"."""

    def __init__(self, kind, low, high, closed):
        self.kind, self.low, self.high, self.closed = kind, low, high, closed

    def accepts_type(self, value):
        if isinstance(value, (bool, np.bool_)):
            return False
        base = numbers.Integral if self.kind == "int" else numbers.Real
        return isinstance(value, base)

    def accepts(self, value):
        if not self.accepts_type(value) or (self.kind == "float" and not np.isfinite(value)):
            return False
        if self.low is not None:
            if value < self.low or (value == self.low and self.closed in ("right", "neither")):
                return False
        if self.high is not None:
            if value > self.high or (value == self.high and self.closed in ("left", "neither")):
                return False
        return True

    def __str__(self):
        what = "an int" if self.kind == "int" else "a real number"
        left = "[" if self.closed in ("left", "both") else "("
        right = "]" if self.closed in ("right", "both") else ")"
        low = "-inf" if self.low is None else self.low
        high = "inf" if self.high is None else self.high
        return f"{what} in {left}{low}, {high}{right}"


class Options:
    """One of a fixed set of values (compared with ``==`` after a type check)."""

    def __init__(self, kind, values):
        self.kind, self.values = kind, tuple(values)

    def accepts_type(self, value):
        return isinstance(value, self.kind) and not isinstance(value, (bool, np.bool_))

    def accepts(self, value):
        return self.accepts_type(value) and any(value == v for v in self.values)

    def __str__(self):
        return "one of " + ", ".join(repr(v) for v in self.values)


class Boolean:
    def accepts_type(self, value):
        return isinstance(value, (bool, np.bool_))

    accepts = accepts_type

    def __str__(self):
        return "a bool"


class NoneValue:
    def accepts_type(self, value):
        return value is None

    accepts = accepts_type

    def __str__(self):
        return "None"


class RandomState:
    def accepts_type(self, value):
        return value is None or isinstance(value, np.random.RandomState) or (
            isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_)))

    def accepts(self, value):
        return self.accepts_type(value) and (
            not isinstance(value, numbers.Integral) or 0 <= value < 2**32)

    def __str__(self):
        return "None, an int in [0, 2**32) or a numpy.random.RandomState"


CONSTRAINTS = {
    "loss": (Options(str, ("squared_error", "poisson")),),
    "activation": (Options(str, tuple(HIDDEN_ACTIVATIONS)),),
    "solver": (Options(str, SOLVERS),),
    "alpha": (Interval("float", 0, None, "left"),),
    "batch_size": (Options(str, ("auto",)), Interval("int", 1, None, "left")),
    "learning_rate": (Options(str, ("constant", "invscaling", "adaptive")),),
    "learning_rate_init": (Interval("float", 0, None, "neither"),),
    "power_t": (Interval("float", 0, None, "left"),),
    "max_iter": (Interval("int", 1, None, "left"),),
    "shuffle": (Boolean(),),
    "random_state": (RandomState(),),
    "tol": (Interval("float", 0, None, "left"),),
    "verbose": (Boolean(), Interval("int", 0, None, "left")),
    "warm_start": (Boolean(),),
    "momentum": (Interval("float", 0, 1, "both"),),
    "nesterovs_momentum": (Boolean(),),
    "early_stopping": (Boolean(),),
    "validation_fraction": (Interval("float", 0, 1, "left"),),
    "beta_1": (Interval("float", 0, 1, "left"),),
    "beta_2": (Interval("float", 0, 1, "left"),),
    "epsilon": (Interval("float", 0, None, "neither"),),
    "n_iter_no_change": (Interval("int", 1, None, "left"), Options(float, (np.inf,))),
    "max_fun": (Interval("int", 1, None, "left"),),
    "keep_prob": (Interval("float", 0, 1, "right"),),
    "batch_norm": (Boolean(),),
    "dtype": (NoneValue(), Options(str, ("float32", "float64"))),
}


def check_params(params):
    """Check a ``get_params()`` dict against ``CONSTRAINTS``; returns the hidden layer sizes
    as a list of ints."""
    for name, forms in CONSTRAINTS.items():
        if name not in params:
            continue
        value = params[name]
        if any(form.accepts(value) for form in forms):
            continue
        error = ValueError if any(form.accepts_type(value) for form in forms) else TypeError
        raise error(f"{name} must be " + " or ".join(str(f) for f in forms) +
                    f", got {_describe(value)}")
    return hidden_sizes(params["hidden_layer_sizes"])


def hidden_sizes(value):
    """``hidden_layer_sizes`` (an int or a sequence of ints, ``()`` for no hidden layer) as a
    list of ints >= 1."""
    sizes = [value] if isinstance(value, numbers.Integral) else value
    try:
        sizes = list(sizes)
    except TypeError:
        raise TypeError(f"hidden_layer_sizes must be an int or a sequence of ints, got "
                        f"{_describe(value)}") from None
    for s in sizes:
        if not isinstance(s, numbers.Integral) or isinstance(s, (bool, np.bool_)):
            raise TypeError(f"hidden_layer_sizes must hold ints, got {_describe(value)}")
    if any(s <= 0 for s in sizes):
        raise ValueError(f"hidden_layer_sizes must be > 0, got {sizes}.")
    return [int(s) for s in sizes]
