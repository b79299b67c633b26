"""Search spaces: what a trial's hyperparameters are drawn from.

Every space samples on its own *sampling scale* (log10 for :class:`LogUniform`, log10(1 - beta)
for :class:`OneMinusLogUniform`, the values themselves for :class:`Uniform`) and narrows to a box
on that scale.  A trial is identified by ``(seed, round, index)``; its config and its seed are
drawn from generators keyed by those numbers (and the hyperparameter's name), never from a
shared stream.  Space files are read here too (:func:`load_space`).
"""
import inspect
import json
import math
import os
import zlib

import numpy as np

from .._validation import _describe, check_scalar

# ---- spaces ----------------------------------------------------------------------------------

class Space:
    """One hyperparameter's distribution.

    Subclasses sample on a *sampling scale* ``t = to_scale(value)`` uniformly between
    ``bounds``, map back with ``from_scale(t)``, and ``narrow(values)`` to the box (on that scale)
    around some values.  ``log`` says whether plots use a log axis.
    """

    log = False

    def sample(self, rng):
        """One value drawn with ``rng`` (a ``numpy.random.Generator``)."""
        raise NotImplementedError

    def to_scale(self, value):
        """``value`` on the sampling scale (a float)."""
        raise NotImplementedError

    def from_scale(self, t):
        """The value whose sampling-scale position is ``t``."""
        raise NotImplementedError

    @property
    def bounds(self):
        """``(lo, hi)``: the space on its sampling scale."""
        return tuple(sorted((self.to_scale(self.low), self.to_scale(self.high))))

    def narrow(self, values, margin=0.1):
        """The same kind of space over the box around ``values`` on the sampling scale.

        The box ``[min t, max t]`` is widened by ``margin`` times the current width on each side
        (so one value does not collapse the range) and clipped to the current space.
        """
        raise NotImplementedError

    def __eq__(self, other):
        return type(self) is type(other) and self._key() == other._key()

    def __hash__(self):
        return hash((type(self).__name__, json.dumps(self._key())))

    def _key(self):
        return (self.low, self.high)

    def to_dict(self):
        """The space as JSON-able data (``{"type": ..., ...}``); :func:`space_from_dict` reads
        it back."""
        return {"type": _TYPE_NAMES[type(self)], "low": self.low, "high": self.high}

    def __repr__(self):
        return f"{type(self).__name__}({self.low!r}, {self.high!r})"


def _check_rng(rng):
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {_describe(rng)}")
    return rng


def _box(ts, lo, hi, margin):
    """[min ts, max ts] widened by margin * (hi - lo) each side, clipped to [lo, hi]."""
    pad = margin * (hi - lo)
    return max(lo, min(ts) - pad), min(hi, max(ts) + pad)


def _narrow_values(space, values):
    values = list(values)
    if not values:
        raise ValueError("narrow needs at least one value")
    return values


class _Continuous(Space):
    """A real interval sampled uniformly on a monotone scale ``_fwd``."""

    def __init__(self, low, high):
        low = check_scalar(low, "low", "float")
        high = check_scalar(high, "high", "float")
        if low > high:
            raise ValueError(f"low must be <= high, got low={low!r}, high={high!r}")
        self._check_domain(low, high)
        self.low, self.high = low, high

    def _check_domain(self, low, high):
        pass

    def to_scale(self, value):
        return float(self._fwd(float(value)))

    def from_scale(self, t):
        return float(self._inv(float(t)))

    def sample(self, rng):
        lo, hi = self.bounds
        value = self.from_scale(_check_rng(rng).uniform(lo, hi))
        return min(max(value, self.low), self.high)  # rounding in _inv may step out by an ulp

    def narrow(self, values, margin=0.1):
        values = [float(v) for v in _narrow_values(self, values)]
        lo, hi = self.bounds
        a, b = _box([self.to_scale(v) for v in values], lo, hi, margin)
        ends = sorted((self.from_scale(a), self.from_scale(b)))
        # Keep every given value inside despite rounding, and stay inside the current space.
        low = max(self.low, min(ends[0], min(values)))
        high = min(self.high, max(ends[1], max(values)))
        return type(self)(low, high)


class Uniform(_Continuous):
    """A real number uniform on ``[low, high]`` (linear scale: e.g. ``keep_prob``)."""

    def _fwd(self, v):
        return v

    def _inv(self, t):
        return t


class LogUniform(_Continuous):
    """A positive real whose exponent is uniform: ``10**U(log10 low, log10 high)``.

    ``LogUniform(1e-4, 1e-1)`` draws the learning rate as the course does: ``a ~ U(-4, -1)``,
    ``lr = 10**a``, so each decade gets the same share of trials.
    """

    log = True

    def _check_domain(self, low, high):
        if low <= 0:
            raise ValueError(f"LogUniform needs 0 < low <= high, got low={low!r}")

    def _fwd(self, v):
        return math.log10(v)

    def _inv(self, t):
        return 10.0 ** t


class OneMinusLogUniform(_Continuous):
    """A beta in ``[low, high]`` with ``1 - beta`` log-uniform (for momentum, Adam's betas).

    ``OneMinusLogUniform(0.9, 0.999)``: ``r ~ U(-3, -1)``, ``beta = 1 - 10**r``: beta from 0.9 to
    0.99 is as likely as from 0.99 to 0.999, as it should be since beta averages over about
    ``1 / (1 - beta)`` values.  The sampling scale is ``log10(1 - beta)``.
    """

    log = True

    def _check_domain(self, low, high):
        if not (0.0 <= low and high < 1.0):
            raise ValueError(f"OneMinusLogUniform needs 0 <= low <= high < 1, got low={low!r}, "
                             f"high={high!r}")

    def _fwd(self, v):
        return math.log10(1.0 - v)

    def _inv(self, t):
        return 1.0 - 10.0 ** t


class IntUniform(Space):
    """An integer uniform on ``{low, ..., high}`` (both included).

    With ``log=True`` (``low >= 1``) it is drawn as ``floor(10**U(log10 low, log10(high+1)))``,
    a log-uniform spread over the integers (e.g. hidden units 16 .. 512); the sampling scale is
    then ``log10(value)``.
    """

    def __init__(self, low, high, log=False):
        low = check_scalar(low, "low", "int")
        high = check_scalar(high, "high", "int")
        if low > high:
            raise ValueError(f"low must be <= high, got low={low!r}, high={high!r}")
        if not isinstance(log, (bool, np.bool_)):
            raise TypeError(f"log must be True or False, got {_describe(log)}")
        if log and low < 1:
            raise ValueError(f"IntUniform(log=True) needs low >= 1, got low={low!r}")
        self.low, self.high, self.log = low, high, bool(log)

    def _key(self):
        return (self.low, self.high, self.log)

    def to_dict(self):
        return {"type": "int_uniform", "low": self.low, "high": self.high, "log": self.log}

    def __repr__(self):
        extra = ", log=True" if self.log else ""
        return f"IntUniform({self.low!r}, {self.high!r}{extra})"

    def to_scale(self, value):
        return math.log10(value) if self.log else float(value)

    def from_scale(self, t):
        return round(10.0 ** t if self.log else t)

    def sample(self, rng):
        rng = _check_rng(rng)
        if not self.log:
            return int(rng.integers(self.low, self.high + 1))
        value = math.floor(10.0 ** rng.uniform(math.log10(self.low), math.log10(self.high + 1)))
        return min(max(value, self.low), self.high)

    def narrow(self, values, margin=0.1):
        values = [int(v) for v in _narrow_values(self, values)]
        lo, hi = self.bounds
        a, b = _box([self.to_scale(v) for v in values], lo, hi, margin)
        if self.log:
            a, b = 10.0 ** a, 10.0 ** b
        low = max(self.low, min(math.floor(a + 1e-9), min(values)))
        high = min(self.high, max(math.ceil(b - 1e-9), max(values)))
        return IntUniform(low, high, log=self.log)


def _jsonable(value, name):
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be JSON-serialisable (numbers, strings, booleans, None, "
                        f"lists, dicts) so the journal can record it, got {_describe(value)}") \
            from None


class Choice(Space):
    """One of ``options``, each equally likely (optimizer, activation, batch size ...).

    Options must be JSON-serialisable and distinct.  Narrowing keeps the options that occur
    among the given values; the sampling scale is the option's index (for plots only).
    """

    def __init__(self, options):
        if isinstance(options, (str, bytes, dict)) or not hasattr(options, "__iter__"):
            raise TypeError(f"options must be a list of values, got {_describe(options)}")
        options = [_jsonable(o, f"options[{i}]") for i, o in enumerate(options)]
        if not options:
            raise ValueError("options must not be empty")
        keys = [json.dumps(o, sort_keys=True) for o in options]
        if len(set(keys)) != len(keys):
            raise ValueError(f"options must be distinct, got {options!r}")
        self.options = options
        self.low, self.high = 0, len(options) - 1

    def _key(self):
        return self.options

    def to_dict(self):
        return {"type": "choice", "options": self.options}

    def __repr__(self):
        return f"Choice({self.options!r})"

    def index(self, value):
        value = _jsonable(value, "value")
        for i, o in enumerate(self.options):
            if o == value and type(o) is type(value):
                return i
        raise ValueError(f"{value!r} is not one of the options {self.options!r}")

    def to_scale(self, value):
        return float(self.index(value))

    def from_scale(self, t):
        return self.options[min(max(round(t), 0), len(self.options) - 1)]

    @property
    def bounds(self):
        return (0.0, float(len(self.options) - 1))

    def sample(self, rng):
        return self.options[int(_check_rng(rng).integers(len(self.options)))]

    def narrow(self, values, margin=0.1):
        keep = {self.index(v) for v in _narrow_values(self, values)}
        return Choice([o for i, o in enumerate(self.options) if i in keep])


# How a space is written as data (journal headers, space files): {"type": name, **arguments}.
_TYPES = {"uniform": Uniform, "log_uniform": LogUniform,
          "one_minus_log_uniform": OneMinusLogUniform, "int_uniform": IntUniform,
          "choice": Choice}
_TYPE_NAMES = {cls: name for name, cls in _TYPES.items()}


def space_to_dict(space):
    """A space (``name -> Space or constant``) as JSON-able data: each :class:`Space` as its
    :meth:`~Space.to_dict`, each constant as itself."""
    space = _check_space(space)
    return {name: sp.to_dict() if isinstance(sp, Space) else sp for name, sp in space.items()}


def space_from_dict(data):
    """The space written by :func:`space_to_dict`, or by hand in a JSON or TOML file.

    Each entry is either a constant (a number, string, boolean, list, or a table without a
    ``"type"`` key) or a table ``{"type": t, ...}`` with ``t`` one of ``"uniform"``,
    ``"log_uniform"``, ``"one_minus_log_uniform"`` (``low``, ``high``), ``"int_uniform"``
    (``low``, ``high``, optional ``log``) or ``"choice"`` (``options``).  For example, in TOML::

        lr = {type = "log_uniform", low = 1e-4, high = 1e-1}
        batch_size = {type = "choice", options = [32, 64, 128]}
        epochs = 20
    """
    if not isinstance(data, dict) or not data:
        raise TypeError(f"a space must be a non-empty table name -> space or constant, got "
                        f"{_describe(data)}")
    space = {}
    for name, entry in data.items():
        if not (isinstance(entry, dict) and "type" in entry):
            space[name] = entry
            continue
        args = dict(entry)
        kind = args.pop("type")
        cls = _TYPES.get(kind) if isinstance(kind, str) else None
        if cls is None:
            raise ValueError(f"space[{name!r}]: type must be one of {sorted(_TYPES)}, got "
                             f"{kind!r}")
        allowed = set(inspect.signature(cls).parameters)
        unknown = sorted(set(args) - allowed)
        missing = sorted(p for p, v in inspect.signature(cls).parameters.items()
                         if v.default is inspect.Parameter.empty and p not in args)
        if unknown or missing:
            raise ValueError(f"space[{name!r}] ({kind}) takes {sorted(allowed)}; "
                             + (f"unknown {unknown}" if unknown else f"missing {missing}"))
        try:
            space[name] = cls(**args)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"space[{name!r}]: {exc}") from None
    return _check_space(space)


def _check_space(space):
    if not isinstance(space, dict) or not space:
        raise TypeError(f"space must be a non-empty dict name -> Space or constant, got "
                        f"{_describe(space)}")
    out = {}
    for name, value in space.items():
        if not isinstance(name, str):
            raise TypeError(f"space keys must be strings, got {_describe(name)}")
        out[name] = value if isinstance(value, Space) else _jsonable(value, f"space[{name!r}]")
    return out


def sample_config(space, seed, round_, index):
    """The config of trial ``(seed, round_, index)``: each hyperparameter drawn from its own
    generator keyed by (seed, round, index, crc32(name)), constants copied."""
    config = {}
    for name, sp in space.items():
        if isinstance(sp, Space):
            rng = np.random.default_rng([seed, round_, index, zlib.crc32(name.encode("utf-8"))])
            config[name] = _jsonable(sp.sample(rng), name)
        else:
            config[name] = sp
    return config


def _trial_seed(seed, round_, index):
    return int(np.random.SeedSequence([seed, round_, index, 0x5EED]).generate_state(1)[0]
               & 0x7FFFFFFF)


def _trial_id(seed, round_, index):
    return f"s{seed}-r{round_}-t{index:04d}"


# Space files are small: a bigger one is not a space file.
_MAX_SPACE_FILE = 1 << 20


def load_space(spec):
    """A search space from a ``.json`` or ``.toml`` file, or from JSON text (see
    :func:`space_from_dict` for the format).  Files are read only if regular and at most
    1 MiB; never unpickled."""
    from .._files import FormatError, open_regular, parse_json
    if not isinstance(spec, str):
        raise TypeError(f"space must be a file name or JSON text, got {_describe(spec)}")
    ext = os.path.splitext(spec)[1].lower()
    if spec.lstrip().startswith("{"):
        return space_from_dict(parse_json(spec, "the space", 16))
    if ext not in (".json", ".toml"):
        raise ValueError(f"space must be a .json or .toml file or JSON text, got {spec!r}")
    f, size = open_regular(spec, "space")
    with f:
        if size > _MAX_SPACE_FILE:
            raise FormatError(f"{spec}: {size} bytes is too large for a space file")
        raw = f.read(_MAX_SPACE_FILE + 1)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FormatError(f"{spec}: not UTF-8 text ({exc})") from None
    if ext == ".json":
        return space_from_dict(parse_json(text, spec, 16))
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        try:
            import tomli as tomllib
        except ImportError:
            raise ImportError("reading a .toml space needs Python 3.11 or tomli (pip install "
                              "tomli); or write the space as .json") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise FormatError(f"{spec}: not valid TOML ({exc})") from None
    return space_from_dict(data)
