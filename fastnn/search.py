"""Random hyperparameter search, coarse to fine, with trials run in parallel (caviar strategy).

Design: a *space* is a dict ``name -> Space`` (or a constant).  Every space samples on its own
*sampling scale* (log10 for :class:`LogUniform`, log10(1 - beta) for :class:`OneMinusLogUniform`,
the values themselves for :class:`Uniform`) and narrows to a box on that scale, so the coarse to
fine zoom of round r+1 is the box around the best ``top_k`` trials of round r, on the scale the
values were drawn on.  A trial is identified by ``(seed, round, index)``; its config and its
seed are drawn from generators keyed by those numbers (and the hyperparameter's name), never from
a shared stream, so they do not depend on the order in which trials finish, on the executor or on
how often the search was restarted.  That is what makes the journal work: a resumed search
re-samples the same configs, skips the trial ids the journal already holds and, since rounds
narrow from the journalled metrics, continues exactly as if it had never stopped.

Trials run where the caller says: in threads of this process by default (the compiled kernels
release the GIL, so threads share the training data without copies), in worker processes
(``backend="process"``: spawn or forkserver, never fork after OpenMP has started), or on any
``concurrent.futures.Executor`` such as a Dask cluster's ``Client(address).get_executor()``.
Workers x kernel threads stays within the cores: each trial runs under
``fastnn._threads.threads(cores // workers)``, a thread-local override, because
``set_num_threads`` is process-wide.  Results come back to the calling thread, which alone
writes the journal (one JSON line per trial, flushed and fsynced; never a pickle).  The
journal's first line says which search wrote it (the objective's fingerprint, e.g. a SHA-256
of the data, its fixed settings, the space, the metric and the pruner): a journal is resumed
only by the same search, so it never hands back another search's results.

Pruning works wherever trials run: before a trial is handed out, the pruner condenses the
finished trials' learning curves into a small state sent with it; inside the trial,
:func:`report` compares each epoch's value with that state and stops a hopeless trial.

The pieces, in order: spaces (what is sampled), trials and :func:`report` (running one),
pruners (stopping one early), the journal (the only code that touches files), the search
(rounds, ranking, results, refit, plot), the runner (executors and workers), the built-in
objective and the command line.
"""
import collections
import concurrent.futures as cf
import inspect
import json
import math
import multiprocessing
import numbers
import os
import pickle
import signal
import threading
import time
import warnings
import zlib

import numpy as np

from ._threads import get_num_threads, threads
from ._validation import NotFittedError, _describe, check_random_seed, check_scalar

__all__ = ["Space", "LogUniform", "OneMinusLogUniform", "Uniform", "IntUniform", "Choice",
           "space_to_dict", "space_from_dict", "load_space", "Pruner", "MedianPruner",
           "SuccessiveHalvingPruner", "TrialPruned", "report", "RandomSearch", "MLPObjective",
           "default_space", "sample_config", "read_journal", "load_data", "add_cli_arguments",
           "run_cli", "MAX_TRIALS"]


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


# ---- running one trial (in a worker) ---------------------------------------------------------

_WORKER_OBJECTIVE = None  # set once per worker process by _init_worker (backend="process")


def _init_worker(objective, lifeline):
    """Set up a worker process: Ctrl-C is the search's to handle (the terminal sends it to the
    whole process group), and the worker exits as soon as the search process is gone, however
    it ended (even ``kill -9``): ``lifeline`` is the reading end of a pipe whose only writer
    is the search process, so it reads end-of-file exactly then."""
    global _WORKER_OBJECTIVE
    _WORKER_OBJECTIVE = objective
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch():
        try:
            lifeline.recv_bytes()
        except (EOFError, OSError):
            pass
        os._exit(1)

    threading.Thread(target=watch, name="fastnn-search-lifeline", daemon=True).start()


class _TrialCancelled(BaseException):
    """Stops a built-in trial running in a thread once the search has been interrupted; not an
    ``Exception``, so the trial is not recorded as failed (it did not finish)."""


class TrialPruned(Exception):
    """Raised by :func:`report` inside a trial that the search's pruner stops early; the
    trial is recorded with status ``"pruned"`` and its last reported value."""


class _TrialContext:
    """What a running trial knows of its search: the cancellation event (thread workers), the
    pruner with the state it prepared from the finished trials, the dev metric, and the values
    the trial reported so far (its learning curve)."""

    def __init__(self, cancel, pruner, prepared, metric):
        self.cancel, self.pruner, self.prepared, self.metric = cancel, pruner, prepared, metric
        self.curve = []


# The context of the trial the current thread runs (None outside trials).
_TRIAL = threading.local()


def _check_cancelled(trainer=None, epoch=None, logs=None):
    """Raise :class:`_TrialCancelled` if this thread's trial belongs to an interrupted search
    (also a ``fit`` callback: built-in trials stop at the end of their current epoch)."""
    context = getattr(_TRIAL, "context", None)
    if context is not None and context.cancel is not None and context.cancel.is_set():
        raise _TrialCancelled


def report(step, value):
    """Report a trial's dev metric after ``step`` (an epoch, say) from inside an objective.

    The value joins the trial's learning curve (recorded in the journal); if the search has a
    pruner and it finds the trial hopeless at this step, :class:`TrialPruned` is raised: let it
    propagate.  Outside a search's trial this does nothing.  The built-in objective reports
    after every epoch.

    Parameters
    ----------
    step : int >= 0
        Steps must increase from one report to the next.
    value : float
        The value of the search's ``metric`` (lower is better); non-finite values are not
        recorded.
    """
    context = getattr(_TRIAL, "context", None)
    if context is None:
        return
    step = check_scalar(step, "step", "int", low=0)
    if context.curve and step <= context.curve[-1][0]:
        raise ValueError(f"report: steps must increase, got {step} after "
                         f"{context.curve[-1][0]}")
    value = check_scalar(value, "value", "float")
    if not math.isfinite(value):
        return
    context.curve.append([step, value])
    if context.pruner is not None and context.pruner.prune(context.prepared, step, value):
        raise TrialPruned(f"pruned at step {step}: {context.metric} = {value:.4g}")


def _report_epoch(trainer, epoch, logs):
    """A ``fit`` callback: report the search's metric after each epoch of a built-in trial."""
    context = getattr(_TRIAL, "context", None)
    if context is not None and context.metric in logs:
        report(epoch, logs[context.metric])


# ---- pruners: which trials stop early ---------------------------------------------------------

class Pruner:
    """Stops hopeless trials early from the learning curves of the trials that finished.

    A pruner works in two halves, so that trials can run anywhere (threads, processes, a
    cluster): :meth:`prepare` runs in the search process before a trial is handed out and
    condenses the finished trials' records into a small picklable state; :meth:`prune` runs
    inside the trial at each :func:`report` and decides from that state alone.
    """

    def prepare(self, records, metric):
        """State for :meth:`prune` from the finished trials' records (``record["curve"]``:
        ``[[step, value], ...]``)."""
        raise NotImplementedError

    def prune(self, prepared, step, value):
        """Whether the trial that reports ``value`` at ``step`` stops."""
        raise NotImplementedError

    def get_config(self):
        """JSON-able settings (recorded in the journal: pruning changes trials' results)."""
        raise NotImplementedError


def _values_by_step(records, statuses):
    by_step = collections.defaultdict(list)
    for rec in records:
        if rec["status"] in statuses:
            for step, value in rec.get("curve") or ():
                by_step[step].append(value)
    return by_step


class MedianPruner(Pruner):
    """Stop a trial whose value at a step is worse than the median, at that step, of the
    trials that ran to the end (the rule of Google Vizier and Optuna's ``MedianPruner``).

    Parameters
    ----------
    n_startup_trials : int, default 5
        No pruning until this many trials have finished unpruned.
    n_warmup_steps : int, default 1
        No pruning at steps below this (the first epochs are noisy).
    """

    def __init__(self, n_startup_trials=5, n_warmup_steps=1):
        self.n_startup_trials = check_scalar(n_startup_trials, "n_startup_trials", "int", low=0)
        self.n_warmup_steps = check_scalar(n_warmup_steps, "n_warmup_steps", "int", low=0)

    def prepare(self, records, metric):
        complete = [r for r in records if r["status"] == "ok"]
        if len(complete) < max(1, self.n_startup_trials):
            return {}
        return {step: float(np.median(v))
                for step, v in _values_by_step(complete, ("ok",)).items()}

    def prune(self, prepared, step, value):
        median = prepared.get(step)
        return step >= self.n_warmup_steps and median is not None and value > median

    def get_config(self):
        return {"name": "median", "n_startup_trials": self.n_startup_trials,
                "n_warmup_steps": self.n_warmup_steps}

    def __repr__(self):
        return (f"MedianPruner(n_startup_trials={self.n_startup_trials}, "
                f"n_warmup_steps={self.n_warmup_steps})")


class SuccessiveHalvingPruner(Pruner):
    """Asynchronous successive halving (Li et al., "A System for Massively Parallel
    Hyperparameter Tuning", MLSys 2020): rungs at steps ``min_steps * eta**k - 1``; a trial
    goes on past a rung only if its value is among the best ``1/eta`` of the values every
    trial (finished or pruned) had at that rung, itself included.

    Parameters
    ----------
    min_steps : int, default 1
        Steps before the first rung (the first rung is step ``min_steps - 1``).
    reduction_factor : int >= 2, default 3
        ``eta``: about one trial in ``eta`` passes each rung.
    """

    def __init__(self, min_steps=1, reduction_factor=3):
        self.min_steps = check_scalar(min_steps, "min_steps", "int", low=1)
        self.reduction_factor = check_scalar(reduction_factor, "reduction_factor", "int", low=2)

    def _is_rung(self, step):
        n, eta = step + 1, self.reduction_factor
        if n < self.min_steps or n % self.min_steps:
            return False
        n //= self.min_steps
        while n % eta == 0:
            n //= eta
        return n == 1

    def prepare(self, records, metric):
        return {step: sorted(v) for step, v in _values_by_step(records, ("ok", "pruned")).items()
                if self._is_rung(step)}

    def prune(self, prepared, step, value):
        if not self._is_rung(step):
            return False
        values = sorted(prepared.get(step, []) + [value])
        keep = max(1, len(values) // self.reduction_factor)
        return value > values[keep - 1]

    def get_config(self):
        return {"name": "successive_halving", "min_steps": self.min_steps,
                "reduction_factor": self.reduction_factor}

    def __repr__(self):
        return (f"SuccessiveHalvingPruner(min_steps={self.min_steps}, "
                f"reduction_factor={self.reduction_factor})")


_PRUNERS = {"median": MedianPruner, "successive_halving": SuccessiveHalvingPruner}


def _check_pruner(pruner):
    if pruner is None or isinstance(pruner, Pruner):
        return pruner
    if isinstance(pruner, str) and pruner in _PRUNERS:
        return _PRUNERS[pruner]()
    raise ValueError(f"pruner must be None, {sorted(_PRUNERS)} or a fastnn.search.Pruner, got "
                     f"{_describe(pruner)}")


def _clean_metrics(out, metric):
    if not isinstance(out, dict):
        raise TypeError(f"the objective must return a dict of metrics, got {_describe(out)}")
    metrics = {}
    for key, value in out.items():
        if not isinstance(key, str):
            raise TypeError(f"metric names must be strings, got {_describe(key)}")
        if isinstance(value, (bool, np.bool_)) or value is None or isinstance(value, str):
            metrics[key] = value if not isinstance(value, np.bool_) else bool(value)
        elif isinstance(value, numbers.Real):
            value = float(value)
            metrics[key] = value if math.isfinite(value) else None
        else:
            raise TypeError(f"metric {key!r} must be a number or a string, got "
                            f"{_describe(value)}")
    if metric not in out:
        raise KeyError(f"the objective's result has no {metric!r} (the dev metric); it "
                       f"returned {sorted(out)}")
    if metrics[metric] is None or isinstance(metrics[metric], (bool, str)):
        raise ValueError(f"the dev metric {metric!r} must be a finite number, got "
                         f"{out[metric]!r}")
    return metrics


def _run_trial(objective, spec, metric, n_threads, cancel=None, pruner=None, prepared=None):
    """Run one trial; exceptions of the objective become a ``failed`` record, :class:`TrialPruned`
    a ``pruned`` one.  ``cancel`` (a ``threading.Event``, thread workers only) is set when the
    search is interrupted; ``pruner`` decides from ``prepared`` (see :class:`Pruner`)."""
    if objective is None:
        objective = _WORKER_OBJECTIVE
    record = dict(spec)
    t0 = time.perf_counter()
    context = _TrialContext(cancel, pruner, prepared, metric)
    _TRIAL.context = context
    try:
        _check_cancelled()
        with threads(n_threads):
            out = objective(dict(spec["config"]), spec["seed"])
        record.update(status="ok", metrics=_clean_metrics(out, metric), error=None)
    except TrialPruned as exc:
        step, value = context.curve[-1] if context.curve else (None, None)
        record.update(status="pruned", metrics={metric: value, "step": step}, error=str(exc))
    except Exception as exc:  # the search goes on; the reason is recorded
        record.update(status="failed", metrics={}, error=_reason(exc))
    finally:
        _TRIAL.context = None
    record["curve"] = context.curve
    record["time"] = time.perf_counter() - t0
    return record


def _reason(exc):
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 2000 else text[:1997] + "..."


def _failed(spec, reason):
    return dict(spec, status="failed", metrics={}, error=reason, time=None)


# ---- the journal -----------------------------------------------------------------------------

_RECORD_KEYS = {"trial_id": str, "round": int, "index": int, "seed": int, "config": dict,
                "metrics": dict, "status": str}
_STATUSES = ("ok", "pruned", "failed")
# The first line of a journal: which search wrote it (see RandomSearch._fingerprint).
_HEADER_KEY = "fastnn_search_journal"
_JOURNAL_VERSION = 1


def _valid_record(rec):
    if not isinstance(rec, dict):
        return False
    for key, kind in _RECORD_KEYS.items():
        if not isinstance(rec.get(key), kind) or isinstance(rec.get(key), bool):
            return False
    return rec["status"] in _STATUSES


def _read_journal(path):
    """``(header, records, corrupt line numbers)`` of a journal file; ``(None, {}, [])`` when
    it does not exist.  Regular files only (a FIFO or a device is refused unread)."""
    from ._files import open_regular
    try:
        f, _ = open_regular(path, "journal")
    except FileNotFoundError:
        return None, {}, []
    with f:
        data = f.read()
    header, records, bad = None, {}, []
    for lineno, raw in enumerate(data.split(b"\n"), 1):
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            bad.append(lineno)
            continue
        if isinstance(rec, dict) and _HEADER_KEY in rec and header is None and not records:
            header = rec
            continue
        if not _valid_record(rec):
            bad.append(lineno)
            continue
        records.setdefault(rec["trial_id"], rec)
    return header, records, bad


def _warn_corrupt(path, bad, stacklevel):
    if bad:
        shown = ", ".join(map(str, bad[:10])) + (" ..." if len(bad) > 10 else "")
        warnings.warn(f"journal {os.fspath(path)!r}: skipped {len(bad)} corrupt line(s) "
                      f"(line {shown})", RuntimeWarning, stacklevel=stacklevel + 1)


def read_journal(path):
    """The trial records of a journal file, ``trial_id -> record``, first record of an id wins.

    The header line (which search wrote the journal) is not a record.  Lines that are not a
    JSON trial record (such as a last line truncated by a crash) are skipped with a
    ``RuntimeWarning``.  Only a regular file is read (``fastnn.FormatError`` otherwise); JSON
    only: nothing is ever unpickled.
    """
    _, records, bad = _read_journal(path)
    _warn_corrupt(path, bad, 2)
    return records


def _first_difference(a, b, where=""):
    """Where two JSON values first differ, as ``(path, a_part, b_part)``; None if equal."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if key not in a or key not in b:
                return f"{where}{key}", a.get(key, "<absent>"), b.get(key, "<absent>")
            diff = _first_difference(a[key], b[key], f"{where}{key}.")
            if diff:
                return diff
        return None
    return None if a == b else (where.rstrip(".") or "value", a, b)


class _Journal:
    """Appends records as JSON lines, each flushed and fsynced; records each trial id once.

    A new journal starts with a header line describing the search (its fingerprint); it is
    created, or replaced, atomically."""

    def __init__(self, path, known, header=None):
        self.known = set(known)
        self.file = None
        if path is None:
            return
        if header is not None:
            from ._files import atomic_write
            atomic_write(path, json.dumps(header, allow_nan=False, separators=(",", ":"))
                         .encode("utf-8") + b"\n")
        self.file = open(path, "ab")  # noqa: SIM115 - open for the whole search
        # A crash may have left a truncated last line: start on a fresh line.
        if self.file.tell() > 0:
            with open(path, "rb") as f:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    self._write(b"\n")

    def _write(self, data):
        self.file.write(data)
        self.file.flush()
        os.fsync(self.file.fileno())

    def add(self, record):
        """Record a finished trial; False (and nothing written) if its id is already there.

        Ctrl-C while the line is written takes effect once it is written and fsynced (the
        ``KeyboardInterrupt`` is raised then), so every line is whole and counted."""
        if record["trial_id"] in self.known:
            return False
        if self.file is not None:
            from .trainer import _DeferredInterrupt
            line = json.dumps(record, allow_nan=False, separators=(",", ":"))
            with _DeferredInterrupt() as sigint:
                self._write(line.encode("utf-8") + b"\n")
                self.known.add(record["trial_id"])
            if sigint.pending:
                raise KeyboardInterrupt
        self.known.add(record["trial_id"])
        return True

    def close(self):
        if self.file is not None:
            self.file.close()


# Trials per round: far more than a random search needs, few enough to keep every record.
MAX_TRIALS = 1_000_000


class _Prepared:
    """The pruner's state for the next trial, prepared from the finished trials (cached until
    another trial finishes)."""

    def __init__(self, pruner, done, metric):
        self.pruner, self.done, self.metric = pruner, done, metric
        self._state, self._count = None, -1

    def __call__(self):
        if self.pruner is None:
            return None
        if self._count != len(self.done):
            self._state = self.pruner.prepare(list(self.done.values()), self.metric)
            self._count = len(self.done)
        return self._state


def _short(value, limit=80):
    text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


# ---- the search ------------------------------------------------------------------------------

class RandomSearch:
    """Random search over a hyperparameter space, narrowing coarse to fine over ``rounds``.

    Parameters
    ----------
    space : dict
        ``name -> Space`` (sampled) or a constant (JSON-serialisable; passed to every trial).
        Random sampling only, never a grid.
    n_trials : int, default 20
        Trials per round (``n_trials * rounds`` in all), at most ``MAX_TRIALS`` (a million).
    rounds : int, default 1
        Round r+1 samples from the box (on each space's sampling scale, widened by ``margin``)
        around the ``top_k`` best successful trials of round r.
    top_k : int or None, default None
        ``None``: ``min(n_trials, max(2, n_trials // 4))``.
    n_jobs : int or None, default None
        Local workers (never more than ``n_trials``); ``None`` or ``-1``: as many as fastnn's
        thread budget (:func:`fastnn.get_num_threads`, all usable cores by default).  Each trial
        runs its kernels with ``threads_per_trial`` threads, by default
        ``max(1, cores // workers)``, so workers x threads stays within the cores.  ``1`` runs
        the trials one after the other in the calling thread with all the cores.
    executor : concurrent.futures.Executor or None, default None
        Run trials there instead (e.g. ``distributed.Client(address).get_executor()``).  The
        objective is pickled with each trial; a Dask worker's default thread count is its own
        (the nanny sets ``OMP_NUM_THREADS=1``) unless ``threads_per_trial`` is given.
    journal : str, os.PathLike or None, default None
        A JSON-lines file: every finished trial (id, round, index, seed, config, metrics,
        status, error, time, learning curve) is appended, flushed and fsynced, after a header
        line saying which search it is.  Searching again with the same journal resumes:
        finished trials (failed ones too) are never run again.  The header holds the
        objective's ``fingerprint()`` when it has one (the built-in objective's is a SHA-256
        of its data and its fixed settings), so a journal is never resumed with other data.
    seed : int, default 0
        Trial ``(round, index)`` has id ``"s{seed}-r{round}-t{index:04d}"``; its config and its
        own seed (passed to the objective) are drawn deterministically from these numbers.
    objective : callable or None, default None
        ``objective(config, seed) -> dict of metrics`` including ``metric``.  ``None``: the
        built-in :class:`MLPObjective` on the data given to :meth:`fit`.
    metric : str, default "val_error"
        The dev metric to minimise.
    base : dict or None
        Fixed settings of the built-in objective (see :class:`MLPObjective`).
    backend : {"thread", "process"}, default "thread"
        Local workers are threads (data shared, no copies: the kernels release the GIL) or
        processes (``mp_context`` "forkserver" where available, else "spawn"; never "fork",
        which is unsafe once OpenMP has started).  A process that dies takes its trial with it:
        the trials that were running are retried alone, and a trial that kills its worker when
        alone is recorded as failed.
    margin : float in [0, 1], default 0.1
        Widening of each narrowed box, as a fraction of the current width per side.
    threads_per_trial : int or None, default None
    mp_context : {"forkserver", "spawn"} or None, default None
    progress : bool, default False
        Print one line per finished trial.
    pruner : {"median", "successive_halving"}, Pruner or None, default None
        Stops hopeless trials early (:class:`MedianPruner`, :class:`SuccessiveHalvingPruner`
        with their defaults, or an instance), so the cores go to promising ones.  Trials
        report their dev metric with :func:`report` (the built-in objective after every
        epoch); a pruned trial is recorded with status ``"pruned"`` and its last value.  A
        pruner decides from the trials finished when a trial starts: with parallel workers
        which trials are pruned depends on the order in which trials finish.
    resume : bool, default True
        With a journal: go on with the trials it holds, after checking that it was written by
        the same search (same data and fixed settings of the objective, first-round space,
        metric and pruner; ``ValueError`` otherwise).  ``False``: start a new journal in its
        place (its trials are discarded).

    Attributes
    ----------
    results : list of dict
        Every trial of the search (journalled ones included), best first: successful trials by
        ``metrics[metric]``, then failed ones.  Keys: ``trial_id``, ``round``, ``index``,
        ``seed``, ``config``, ``metrics``, ``status`` ("ok"/"pruned"/"failed"), ``error`` (why it
        failed or was pruned), ``time``, ``curve`` (``[[step, value], ...]`` reported).
    best : dict or None
        ``results[0]`` if it finished unpruned.
    spaces : list of dict
        The space of each round.
    n_run : int
        Trials actually run by the last :meth:`fit` (not taken from the journal).
    """

    def __init__(self, space, n_trials=20, rounds=1, top_k=None, n_jobs=None, executor=None,
                 journal=None, seed=0, objective=None, *, metric="val_error", base=None,
                 backend="thread", margin=0.1, threads_per_trial=None, mp_context=None,
                 progress=False, pruner=None, resume=True):
        self.space = _check_space(space)
        self.n_trials = check_scalar(n_trials, "n_trials", "int", low=1, high=MAX_TRIALS)
        self.rounds = check_scalar(rounds, "rounds", "int", low=1)
        if top_k is None:
            top_k = min(self.n_trials, max(2, self.n_trials // 4))
        self.top_k = check_scalar(top_k, "top_k", "int", low=1, high=self.n_trials)
        if n_jobs is not None and n_jobs != -1:
            n_jobs = check_scalar(n_jobs, "n_jobs", "int", low=1)
        self.n_jobs = n_jobs
        if executor is not None and not callable(getattr(executor, "submit", None)):
            raise TypeError(f"executor must be a concurrent.futures.Executor, got "
                            f"{_describe(executor)}")
        self.executor = executor
        if journal is not None and not isinstance(journal, (str, os.PathLike)):
            raise TypeError(f"journal must be a path or None, got {_describe(journal)}")
        self.journal = journal
        self.seed = check_random_seed(seed) or 0
        if objective is not None and not callable(objective):
            raise TypeError(f"objective must be callable (config, seed) -> dict, got "
                            f"{_describe(objective)}")
        self.objective = objective
        if not isinstance(metric, str):
            raise TypeError(f"metric must be a string, got {_describe(metric)}")
        self.metric = metric
        if base is not None and not isinstance(base, dict):
            raise TypeError(f"base must be a dict or None, got {_describe(base)}")
        self.base = dict(base or {})
        if backend not in ("thread", "process"):
            raise ValueError(f"backend must be 'thread' or 'process', got {backend!r}")
        if backend == "process" and executor is not None:
            raise ValueError("backend='process' starts local worker processes; it cannot be "
                             "combined with executor=")
        self.backend = backend
        self.margin = check_scalar(margin, "margin", "float", low=0.0, high=1.0)
        if threads_per_trial is not None:
            threads_per_trial = check_scalar(threads_per_trial, "threads_per_trial", "int", low=1)
        self.threads_per_trial = threads_per_trial
        if mp_context == "fork":
            raise ValueError("mp_context='fork' is unsafe once OpenMP has started; use "
                             "'forkserver' or 'spawn'")
        if mp_context not in (None, "forkserver", "spawn"):
            raise ValueError(f"mp_context must be 'forkserver', 'spawn' or None, got "
                             f"{mp_context!r}")
        self.mp_context = mp_context
        self.progress = bool(progress)
        self.pruner = _check_pruner(pruner)
        if not isinstance(resume, (bool, np.bool_)):
            raise TypeError(f"resume must be True or False, got {_describe(resume)}")
        self.resume = bool(resume)
        self._fitted_objective = None
        self.results = None
        self.best = None
        self.spaces = None
        self.n_run = 0

    # ---- fit ---------------------------------------------------------------------------------

    def fit(self, X=None, y=None, X_dev=None, y_dev=None):
        """Run the search; returns ``self``.

        With the built-in objective pass the training and dev sets; with ``objective=`` pass
        nothing (the objective holds its own data).
        """
        given = [a is not None for a in (X, y, X_dev, y_dev)]
        if self.objective is None:
            if not all(given):
                raise TypeError("fit(X, y, X_dev, y_dev) needs the training and dev sets for "
                                "the built-in objective (or pass objective=)")
            objective = MLPObjective(X, y, X_dev, y_dev, base=self.base)
        else:
            if any(given):
                raise TypeError("fit takes no data when an objective is given: the objective "
                                "holds its own data")
            objective = self.objective
        if self.backend == "process":
            try:  # fail now, not once per trial in the workers
                pickle.dumps(objective)
            except Exception as exc:
                raise TypeError(f"backend='process' sends the objective to worker processes, "
                                f"but it cannot be pickled ({_reason(exc)}); define it at module "
                                f"level or use backend='thread'") from exc

        done, header = self._open_journal(objective)
        journal = _Journal(self.journal, done, header)
        prepared = _Prepared(self.pruner, done, self.metric)
        runner = _Runner(self, objective, prepared)
        space = dict(self.space)
        spaces, mine = [], []
        self.n_run = 0
        try:
            for r in range(self.rounds):
                spaces.append(space)
                self._check_journalled_configs(space, r, done)
                ids = [_trial_id(self.seed, r, i) for i in range(self.n_trials)]
                # Specs are drawn when a worker is free: a search of many trials holds only
                # the ones running.
                todo = (self._spec(space, r, i) for i, tid in enumerate(ids) if tid not in done)
                for record in runner.run(todo):
                    if journal.add(record):
                        done[record["trial_id"]] = record
                        self.n_run += 1
                        if self.progress:
                            self._print_trial(record, r)
                round_records = [done[tid] for tid in ids]
                mine.extend(round_records)
                if r + 1 < self.rounds:
                    space = self._narrow(space, round_records, r)
            runner.close(wait=True)
        finally:
            runner.close(wait=False)
            journal.close()
        self.spaces = spaces
        self.results = sorted(mine, key=self._rank_key)
        self.best = self.results[0] if self.results[0]["status"] == "ok" else None
        self._fitted_objective = objective
        if self.best is None:
            failed = sum(r["status"] == "failed" for r in mine)
            what = (f"all {len(mine)} trials failed" if failed == len(mine) else
                    f"no trial of {len(mine)} finished ({failed} failed, the others pruned)")
            warnings.warn(f"{what}; first reason: {self.results[0]['error']}", RuntimeWarning,
                          stacklevel=2)
        return self

    def _fingerprint(self, objective):
        """What the results of a trial depend on besides its config and seed: the objective's
        own fingerprint (the built-in one: the data and fixed settings), the first round's
        space, the metric and the pruner.  A journal resumes only a search that agrees."""
        fp = getattr(objective, "fingerprint", None)
        return {"space": space_to_dict(self.space), "metric": self.metric,
                "pruner": None if self.pruner is None else self.pruner.get_config(),
                "objective": _jsonable(fp(), "objective.fingerprint()") if callable(fp) else None}

    def _open_journal(self, objective):
        """``(records, header)``: the journal's records (empty for a new journal) and the
        header to write (None when the journal goes on).  A journal of another search (other
        data, fixed settings, space, metric or pruner) is refused unless ``resume=False``."""
        if self.journal is None:
            return {}, None
        fingerprint = self._fingerprint(objective)
        header = {_HEADER_KEY: _JOURNAL_VERSION, "fingerprint": fingerprint}
        if not self.resume:
            return {}, header
        path = os.fspath(self.journal)
        old, records, bad = _read_journal(path)
        if old is None and not records:
            return {}, header  # new or empty: start it
        hint = "use another journal, or resume=False (fastnn search --fresh) to start afresh"
        if old is None:
            raise ValueError(f"journal {path!r} has trial records but no header saying which "
                             f"search wrote them; {hint}")
        if old.get(_HEADER_KEY) != _JOURNAL_VERSION:
            raise ValueError(f"journal {path!r} has format version {old.get(_HEADER_KEY)!r}; "
                             f"this fastnn reads version {_JOURNAL_VERSION}; {hint}")
        diff = _first_difference(old.get("fingerprint"), fingerprint)
        if diff is not None:
            where, was, now = diff
            topic = {"space": "another space", "metric": "another metric",
                     "pruner": "another pruner",
                     "objective": "other data or other fixed settings"}.get(
                         where.split(".")[0], "other settings")
            raise ValueError(f"journal {path!r} was written by a search with {topic} "
                             f"({where}: {_short(was)} there, {_short(now)} here), so its "
                             f"results do not apply; {hint}")
        _warn_corrupt(path, bad, 4)
        return records, None

    def _check_journalled_configs(self, space, r, done):
        """The journal's trials of round ``r`` must be the trials this search draws."""
        for tid, old in done.items():
            if (old["round"] != r or old["index"] >= self.n_trials
                    or tid != _trial_id(self.seed, r, old["index"])):
                continue
            config = sample_config(space, self.seed, r, old["index"])
            if old["config"] != config:
                raise ValueError(
                    f"journal {os.fspath(self.journal)!r} holds trial {tid} with config "
                    f"{old['config']!r}, but this search samples {config!r}: it was written by "
                    f"a search with another space (or top_k, margin); use another journal or "
                    f"seed")

    def _spec(self, space, r, i):
        return {"trial_id": _trial_id(self.seed, r, i), "round": r, "index": i,
                "seed": _trial_seed(self.seed, r, i),
                "config": sample_config(space, self.seed, r, i)}

    def _print_trial(self, rec, r):
        if rec["status"] == "ok":
            what = f"{self.metric} {rec['metrics'][self.metric]:.4g}"
        else:
            what = f"{rec['status']}: {rec['error']}"
        print(f"round {r + 1}/{self.rounds}  trial {rec['trial_id']}  {what}  "
              f"({_fmt(rec['time'])} s)", flush=True)

    def _rank_key(self, rec):
        """Finished trials by the metric, then pruned ones by their last value, then failed
        ones; ties in trial order."""
        value = rec["metrics"].get(self.metric)
        if rec["status"] == "failed" or value is None:
            return (2, 0.0, rec["round"], rec["index"])
        return (0 if rec["status"] == "ok" else 1, value, rec["round"], rec["index"])

    def _narrow(self, space, records, r):
        ok = sorted((rec for rec in records if rec["status"] == "ok"), key=self._rank_key)
        top = ok[:self.top_k]
        if not top:
            warnings.warn(f"round {r}: no successful trial, round {r + 1} keeps its space",
                          RuntimeWarning, stacklevel=3)
            return space
        return {name: sp.narrow([rec["config"][name] for rec in top], self.margin)
                if isinstance(sp, Space) else sp for name, sp in space.items()}

    # ---- results -----------------------------------------------------------------------------

    def _check_fitted(self):
        if self.results is None:
            raise NotFittedError("this RandomSearch has no results yet; call fit first")

    def _searched(self):
        return [name for name, sp in self.space.items() if isinstance(sp, Space)]

    def _rows(self):
        """One flat dict per trial: the config, then the metrics (a metric named like a
        hyperparameter gets a ``metric_`` prefix), then ``time`` and ``reason`` (why a trial
        failed or was pruned; None otherwise)."""
        self._check_fitted()
        rows = []
        for rank, rec in enumerate(self.results, 1):
            row = {"rank": rank, "trial_id": rec["trial_id"], "round": rec["round"],
                   "status": rec["status"]}
            row.update(rec["config"])
            for key, value in rec["metrics"].items():
                row[key if key not in row else f"metric_{key}"] = value
            row["time"] = rec["time"]
            row["reason"] = rec["error"]
            rows.append(row)
        return rows

    def to_table(self, max_rows=None):
        """The results as a text table, best first (``max_rows`` limits the rows shown)."""
        self._check_fitted()
        cols = ["rank", "trial_id", "round", self.metric] + self._searched()
        rows = []
        for row in self._rows()[:max_rows]:
            cells = []
            for c in cols:
                v = row.get(c)
                if c == self.metric and row["status"] == "failed":
                    v = "failed"
                elif c == self.metric and row["status"] == "pruned":
                    v = f"pruned {_fmt(v)}"
                cells.append(_fmt(v))
            rows.append(cells)
        widths = [max(len(c), *(len(r[j]) for r in rows)) if rows else len(c)
                  for j, c in enumerate(cols)]
        lines = ["  ".join(c.rjust(w) for c, w in zip(cols, widths))]
        lines += ["  ".join(v.rjust(w) for v, w in zip(r, widths)) for r in rows]
        pruned = sum(r["status"] == "pruned" for r in self.results)
        if pruned:
            lines.append(f"{pruned} trial(s) pruned (stopped early by {self.pruner!r})")
        failed = [r for r in self.results if r["status"] == "failed"]
        if failed:
            lines.append(f"{len(failed)} failed trial(s); first: {failed[0]['trial_id']}: "
                         f"{failed[0]['error']}")
        return "\n".join(lines)

    def as_dataframe(self):
        """The results as a ``pandas.DataFrame``, one row per trial, best first: ``rank``,
        ``trial_id``, ``round``, ``status``, the config, the metrics (the built-in objective's
        training ``error`` and ``loss`` among them), ``time`` and ``reason`` (why a trial failed
        or was pruned)."""
        try:
            import pandas as pd
        except ImportError as exc:
            raise ImportError("as_dataframe needs pandas (pip install pandas); to_table() and "
                              "results work without it") from exc
        return pd.DataFrame(self._rows())

    def refit(self, include_dev=False):
        """The best configuration trained again into a model ready to use (built-in objective
        only): the same seed as its trial, the standardizer and the class labels attached, so
        ``model.save(path)`` writes a file ``fastnn predict`` takes.

        Parameters
        ----------
        include_dev : bool, default False
            Train on the training and dev sets together (more data for the final model; the
            dev set then no longer measures it).  It trains for as many epochs as the best
            trial needed to reach its best dev value (with ``patience``, the epoch early
            stopping restored).

        Returns
        -------
        MLP
        """
        self._check_fitted()
        objective = self._fitted_objective
        if not isinstance(objective, MLPObjective):
            raise TypeError("refit trains the built-in objective's model; with your own "
                            "objective, train search.best['config'] yourself")
        if self.best is None:
            raise ValueError("refit needs a trial that finished; every trial failed or was "
                             "pruned")
        if not isinstance(include_dev, (bool, np.bool_)):
            raise TypeError(f"include_dev must be True or False, got {_describe(include_dev)}")
        epochs = None
        if include_dev:
            epochs = int(self.best["metrics"].get("best_epoch",
                                                  self.best["metrics"].get("epochs", 0) - 1)) + 1
        return objective.final_model(self.best["config"], self.best["seed"],
                                     include_dev=bool(include_dev), epochs=epochs)

    def plot(self, path=None):
        """The dev metric against each searched hyperparameter, one panel each, coloured by
        round (pruned trials as grey crosses at their last reported value); log axes for
        log-scale spaces (``1 - beta`` for :class:`OneMinusLogUniform`).  Saved to ``path``
        (PNG, or any format matplotlib knows by the extension) when given.  Returns the
        matplotlib figure."""
        self._check_fitted()
        try:
            import matplotlib
            if path is not None:
                matplotlib.use("Agg", force=False)
            import matplotlib.pyplot as plt
            import matplotlib.ticker
        except ImportError as exc:  # optional extra
            raise ImportError("RandomSearch.plot needs matplotlib: pip install "
                              "'fastnn[plot]'") from exc
        names = self._searched()
        ok = [r for r in self.results if r["status"] == "ok"]
        pruned = [r for r in self.results if r["status"] == "pruned"
                  and r["metrics"].get(self.metric) is not None]
        ncols = min(3, max(1, len(names)))
        nrows = max(1, -(-len(names) // ncols))
        fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.4 * nrows), squeeze=False)
        for ax, name in zip(axes.flat, names):
            sp = self.space[name]
            groups = [(f"round {r}", [rec for rec in ok if rec["round"] == r], {})
                      for r in range(self.rounds)]
            groups.append(("pruned", pruned, {"marker": "x", "color": "0.6"}))
            for label, recs, style in groups:
                if not recs:
                    continue
                xs = [rec["config"][name] for rec in recs]
                ys = [rec["metrics"][self.metric] for rec in recs]
                if isinstance(sp, Choice):
                    xs = [sp.index(x) for x in xs]
                elif isinstance(sp, OneMinusLogUniform):
                    xs = [1.0 - x for x in xs]
                ax.scatter(xs, ys, s=18, alpha=0.8, label=label, **style)
            if isinstance(sp, Choice):
                ax.set_xticks(range(len(sp.options)))
                ax.set_xticklabels([str(o) for o in sp.options], rotation=30)
            elif sp.log:
                ax.set_xscale("log")
                ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            ax.set_xlabel(f"1 - {name}" if isinstance(sp, OneMinusLogUniform) else name)
            ax.set_ylabel(self.metric)
            if self.rounds > 1 or pruned:
                ax.legend(fontsize="small")
        for ax in list(axes.flat)[len(names):]:
            ax.set_visible(False)
        fig.tight_layout()
        if path is not None:
            fig.savefig(path)
        return fig

    def __repr__(self):
        return (f"RandomSearch({len(self.space)} hyperparameters, n_trials={self.n_trials}, "
                f"rounds={self.rounds}, top_k={self.top_k})")


def _fmt(v):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


class _Runner:
    """Runs trial specs on the search's executor and yields their records as they finish.

    Own pools are created lazily and kept across rounds.  A broken process pool (a worker
    died) is replaced; the trials that were running are retried one at a time, and a trial
    whose lone worker dies is recorded as failed.

    Ctrl-C while trials run in parallel is held until the records of the trials that have
    finished are handed over (to be journalled); then ``KeyboardInterrupt`` is raised and
    :meth:`close` stops the rest without waiting: worker processes are ended, built-in trials
    in threads stop at the end of their current epoch (other objectives cannot be stopped from
    outside a thread; their results are dropped).
    """

    def __init__(self, search, objective, prepared):
        self.search = search
        self.objective = objective
        self.prepared = prepared  # the pruner's state for the next trial
        self.cores = get_num_threads()
        n = search.n_jobs
        self.workers = self.cores if n is None or n == -1 else n
        self.workers = min(self.workers, search.n_trials)
        if search.executor is None and self.workers > self.cores:
            warnings.warn(f"n_jobs={n} workers exceed fastnn's {self.cores} cores: trials will "
                          f"compete for them", RuntimeWarning, stacklevel=3)
        if search.threads_per_trial is not None:
            self.n_threads = search.threads_per_trial
        elif search.executor is not None:
            self.n_threads = None  # the worker's own default
        else:
            self.n_threads = max(1, self.cores // self.workers)
        self.pool = None
        self.cancel = threading.Event()  # set once the search stops early (thread workers)
        self.lifeline = None             # (reader, writer) of the worker processes' pipe

    def _serial(self):
        return (self.search.executor is None and self.search.backend == "thread"
                and self.workers == 1)

    def _make_pool(self):
        s = self.search
        if s.backend == "thread":
            return cf.ThreadPoolExecutor(self.workers, thread_name_prefix="fastnn-search")
        method = s.mp_context
        if method is None:
            method = ("forkserver" if "forkserver" in multiprocessing.get_all_start_methods()
                      else "spawn")
        context = multiprocessing.get_context(method)
        if self.lifeline is None:
            # Only this process holds the writing end (spawn and forkserver pass children
            # just the descriptors they are given): closing it, or dying, ends the workers.
            self.lifeline = context.Pipe(duplex=False)
        return cf.ProcessPoolExecutor(self.workers, mp_context=context,
                                      initializer=_init_worker,
                                      initargs=(self.objective, self.lifeline[0]))

    def _submit(self, spec):
        s = self.search
        prune = (s.pruner, self.prepared())
        if s.executor is not None:
            return s.executor.submit(_run_trial, self.objective, spec, s.metric, self.n_threads,
                                     None, *prune)
        if self.pool is None:
            self.pool = self._make_pool()
        if s.backend == "process":
            return self.pool.submit(_run_trial, None, spec, s.metric, self.n_threads, None,
                                    *prune)
        return self.pool.submit(_run_trial, self.objective, spec, s.metric, self.n_threads,
                                self.cancel, *prune)

    def run(self, todo):
        """Run the specs of the iterable ``todo`` (drawn only as workers become free); yield
        their records as they finish."""
        s = self.search
        if self._serial():
            for spec in todo:
                yield _run_trial(self.objective, spec, s.metric, self.n_threads, None,
                                 s.pruner, self.prepared())
            return
        from .trainer import _DeferredInterrupt
        limit = (self.workers if s.executor is None or s.n_jobs not in (None, -1)
                 else math.inf)  # an executor of its own size: everything at once
        queue, suspects = _Queue(todo), collections.deque()
        in_flight = {}
        sigint = _DeferredInterrupt()
        try:
            sigint.__enter__()
            # Held Ctrl-C is looked at this often (None: it is not held, it raises at once).
            poll = 0.1 if sigint.holding else None
            while queue or suspects or in_flight:
                if sigint.pending:
                    # Hand over the trials that finished, then stop.
                    yield from self._records([f for f in in_flight if f.done()], in_flight,
                                             finished_only=True)
                    raise KeyboardInterrupt
                if suspects:  # run each suspect alone to find the trial that kills workers
                    if not in_flight:
                        self._submit_one(suspects, in_flight)
                else:
                    while queue and len(in_flight) < max(1, limit):
                        if not self._submit_one(queue, in_flight):
                            break
                if not in_flight:
                    continue  # the pool broke before the submission: it was replaced, retry
                done, _ = cf.wait(in_flight, timeout=poll, return_when=cf.FIRST_COMPLETED)
                if any(_is_broken(f) for f in done):
                    # Every trial that was running is lost with the pool; collect all of them.
                    while cf.wait(in_flight, timeout=poll).not_done and not sigint.pending:
                        pass
                    if sigint.pending:
                        continue
                    done = set(in_flight)
                broken = []
                yield from self._records(done, in_flight, broken=broken)
                if broken:
                    yield from self._after_break(broken, suspects, queue)
            if sigint.pending:  # Ctrl-C after the last trial finished
                raise KeyboardInterrupt
        finally:
            sigint.__exit__(None, None, None)
            for fut in in_flight:
                fut.cancel()

    def _records(self, done, in_flight, broken=None, finished_only=False):
        """The records of the ``done`` futures, in trial order (each leaves ``in_flight``).
        Futures lost with a broken pool go to ``broken``; with ``finished_only`` they, and
        cancelled trials, are left out (they did not finish)."""
        for fut in sorted(done, key=lambda f: in_flight[f]["index"]):
            spec = in_flight.pop(fut)
            if _is_broken(fut):
                if not finished_only:
                    broken.append((spec, fut.exception()))
                continue
            if fut.cancelled() or isinstance(fut.exception(), _TrialCancelled):
                if not finished_only:
                    yield _failed(spec, "cancelled by the executor")
                continue
            try:
                yield fut.result()
            except Exception as exc:  # e.g. distributed.KilledWorker, pickling errors
                yield _failed(spec, _reason(exc))

    def _submit_one(self, specs, in_flight):
        """Submit ``specs[0]``; False (and the spec left in place) if the pool is broken."""
        spec = specs.popleft()
        try:
            fut = self._submit(spec)
        except cf.BrokenExecutor as exc:
            # The trial never started: it is not a suspect.  The running ones will report the
            # break; with nothing running, replace the pool now.
            specs.appendleft(spec)
            if not in_flight:
                if self.search.executor is not None:
                    raise RuntimeError(f"the executor is broken ({_reason(exc)}); finished "
                                       f"trials are in the journal: run the search again with "
                                       f"a working executor to resume") from exc
                self.pool.shutdown(wait=True)
                self.pool = None
            return False
        except Exception as exc:  # e.g. an objective the executor cannot pickle
            fut = cf.Future()
            fut.set_exception(exc)
        in_flight[fut] = spec
        return True

    def _after_break(self, broken, suspects, queue):
        if len(broken) == 1:  # it ran alone: it is the culprit
            spec, exc = broken[0]
            yield _failed(spec, f"worker died while running this trial ({_reason(exc)})")
        else:
            suspects.extend(spec for spec, _ in broken)
        if self.search.executor is not None:
            if suspects or queue:
                raise RuntimeError(
                    f"the executor broke ({_reason(broken[0][1])}); trials were left unrun. "
                    f"Finished trials are in the journal: run the search again with a working "
                    f"executor to resume")
            return
        self.pool.shutdown(wait=True)
        self.pool = None

    def close(self, wait):
        """Shut the own pool down; ``wait=False`` (after an error or Ctrl-C) cancels queued
        trials and stops running ones without waiting for them: worker processes are ended,
        built-in trials in threads stop at the end of their current epoch."""
        if not wait:
            self.cancel.set()
        if self.pool is not None:
            pool, self.pool = self.pool, None
            pool.shutdown(wait=wait, cancel_futures=not wait)
            if not wait and self.search.backend == "process":
                _end_workers(pool)
        if self.lifeline is not None:  # workers still alive read end-of-file and exit
            for end in self.lifeline:
                end.close()
            self.lifeline = None


class _Queue:
    """The ``deque`` operations the runner needs over an iterator, drawn lazily."""

    def __init__(self, items):
        self._items = iter(items)
        self._front = collections.deque()

    def _peek(self):
        if not self._front:
            for item in self._items:
                self._front.append(item)
                break
        return bool(self._front)

    def __bool__(self):
        return self._peek()

    def popleft(self):
        if not self._peek():
            raise IndexError("pop from an empty queue")
        return self._front.popleft()

    def appendleft(self, item):
        self._front.appendleft(item)


def _end_workers(pool):
    """Kill the worker processes of a ``ProcessPoolExecutor`` that was shut down without
    waiting (Python 3.14 has ``kill_workers``; older versions only keep them in
    ``_processes``)."""
    kill = getattr(pool, "kill_workers", None)
    if kill is not None:
        kill()
        return
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        try:
            process.kill()
        except (OSError, ValueError, AttributeError):
            pass  # already gone


def _is_broken(fut):
    return (fut.done() and not fut.cancelled()
            and isinstance(fut.exception(), cf.BrokenExecutor))


# ---- the built-in objective ------------------------------------------------------------------

_DEFAULTS = {
    "optimizer": "adam", "lr": 1e-3, "beta": 0.9, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8,
    "weight_decay": 0.01, "n_layers": 1, "n_hidden": 64, "hidden": None, "activation": "relu",
    "keep_prob": 1.0, "batch_norm": False, "init": None, "batch_size": 64, "l2": 0.0,
    "epochs": 10, "lr_decay": 0.0, "decay_interval": 1, "schedule": None, "patience": None,
}
_INIT_ONLY = {"dtype": "float32", "standardize": True, "task": None}


class MLPObjective:
    """The built-in objective: build an MLP and a Trainer from a config, train, score on dev.

    ``objective(config, seed)`` merges ``{**defaults, **base, **config}`` and returns the last
    epoch's ``loss`` and ``error`` (training), ``val_loss`` and ``val_error`` (dev, inference
    mode, after restoring the best weights when ``patience`` is set) and ``epochs`` run.

    Config keys (defaults in brackets):

    - ``optimizer`` ["adam"]: "sgd", "momentum", "rmsprop", "adam", "adamw"; with ``lr``
      [1e-3], ``beta`` [0.9] (momentum), ``beta1`` [0.9], ``beta2`` [0.999], ``eps`` [1e-8],
      ``weight_decay`` [0.01] (adamw).  Keys the chosen optimizer does not take are ignored, so
      one space can search over optimizers.
    - ``n_layers`` [1] hidden layers of ``n_hidden`` [64] units, or ``hidden``: a list of units;
      ``activation`` ["relu"], ``keep_prob`` [1.0], ``batch_norm`` [False], ``init`` [None]
      apply to every hidden layer.  The output is softmax over the classes (classification) or
      linear (regression).
    - ``batch_size`` [64], ``l2`` [0.0], ``epochs`` [10], ``patience`` [None: no early stopping].
    - ``lr_decay`` [0.0]: the course's decay ``lr0 / (1 + lr_decay * floor(epoch /
      decay_interval))`` with ``decay_interval`` [1]; or ``schedule``: a schedule config dict.

    ``base`` may also hold ``dtype`` ["float32"], ``standardize`` [True] (a Standardizer fitted
    on the training set, applied once to both sets) and ``task`` ["classification" for integer,
    boolean or string labels ``y``, else "regression"]; the data are converted once and shared
    by all trials.
    For regression use ``metric="val_loss"``.
    """

    def __init__(self, X, y, X_dev, y_dev, base=None):
        from ._validation import validate_X
        from .data import Standardizer

        base = dict(base or {})
        unknown = sorted(set(base) - set(_DEFAULTS) - set(_INIT_ONLY))
        if unknown:
            raise ValueError(f"base has unknown keys {unknown}; known: "
                             f"{sorted(set(_DEFAULTS) | set(_INIT_ONLY))}")
        settings = {**_INIT_ONLY, **{k: base.pop(k) for k in list(base) if k in _INIT_ONLY}}
        if settings["dtype"] not in ("float32", "float64"):
            raise ValueError(f"base['dtype'] must be 'float32' or 'float64', got "
                             f"{settings['dtype']!r}")
        self.base = base
        self.settings_ = settings
        self.dtype = settings["dtype"]
        X = validate_X(X, "X", dtype=self.dtype)
        X_dev = validate_X(X_dev, "X_dev", n_features=X.shape[1], dtype=self.dtype)
        y, y_dev = np.asarray(y), np.asarray(y_dev)
        for name, a, b in (("y", y, X), ("y_dev", y_dev, X_dev)):
            if a.ndim not in (1, 2) or a.shape[0] != b.shape[0]:
                raise ValueError(f"{name} must have one row per sample ({b.shape[0]}), got "
                                 f"shape {a.shape}")
        task = settings["task"]
        if task is None:
            task = "classification" if y.dtype.kind in "biuUSO" else "regression"
        if task not in ("classification", "regression"):
            raise ValueError(f"base['task'] must be 'classification' or 'regression', got "
                             f"{task!r}")
        self.task = task
        if task == "classification":
            if y.ndim != 1 or y_dev.ndim != 1:
                raise ValueError("classification needs 1-D labels y and y_dev")
            self.classes = np.unique(y)
            if self.classes.size < 2:
                raise ValueError(f"y must hold at least 2 classes, got {self.classes.tolist()}")
            unseen = np.setdiff1d(np.unique(y_dev), self.classes)
            if unseen.size:
                raise ValueError(f"y_dev holds labels not in y, such as {unseen[0]!r}")
            y = np.searchsorted(self.classes, y).astype(np.int32)
            y_dev = np.searchsorted(self.classes, y_dev).astype(np.int32)
            self.n_outputs = int(self.classes.size)
        else:
            self.classes = None
            y = np.ascontiguousarray(y, dtype=self.dtype)
            y_dev = np.ascontiguousarray(y_dev, dtype=self.dtype)
            self.n_outputs = 1 if y.ndim == 1 else y.shape[1]
        self.standardizer = None
        if settings["standardize"]:
            sd = Standardizer().fit(X)
            X = np.ascontiguousarray(sd.transform(X), dtype=self.dtype)
            X_dev = np.ascontiguousarray(sd.transform(X_dev), dtype=self.dtype)
            self.standardizer = sd
        self.X, self.y, self.X_dev, self.y_dev = X, y, X_dev, y_dev
        self._fingerprint = None

    def fingerprint(self):
        """What the trials' results depend on besides their configs: a SHA-256 of the data as
        trained on (training and dev sets, and the class labels) and the fixed settings."""
        if self._fingerprint is None:
            from .data import fingerprint
            arrays = [self.X, self.y, self.X_dev, self.y_dev]
            if self.classes is not None:
                arrays.append(self.classes)
            self._fingerprint = {
                "data": fingerprint(*arrays), "n_train": int(self.X.shape[0]),
                "n_dev": int(self.X_dev.shape[0]), "n_features": int(self.X.shape[1]),
                "task": self.task, "dtype": self.dtype,
                "standardize": bool(self.settings_["standardize"]),
                "base": _jsonable(self.base, "base")}
        return self._fingerprint

    def settings(self, config):
        """The full settings of a trial: defaults, then ``base``, then ``config``."""
        unknown = sorted(set(config) - set(_DEFAULTS))
        if unknown:
            raise ValueError(f"config has unknown keys {unknown}; the built-in objective knows "
                             f"{sorted(_DEFAULTS)}")
        return {**_DEFAULTS, **self.base, **config}

    def build(self, config, seed):
        """``(model, trainer, settings)`` for a config, seeded with ``seed``."""
        from .model import MLP, Dense
        from .optim import _CLASSES
        from .schedules import InverseTimeDecay
        from .trainer import Trainer

        c = self.settings(config)
        name = c["optimizer"]
        if name not in _CLASSES:
            raise ValueError(f"optimizer must be one of {sorted(_CLASSES)}, got {name!r}")
        accepted = inspect.signature(_CLASSES[name]).parameters
        optimizer = _CLASSES[name](**{k: c[k] for k in accepted if k in c})
        hidden = c["hidden"]
        if hidden is None:
            hidden = [c["n_hidden"]] * check_scalar(c["n_layers"], "n_layers", "int", low=0)
        layers = [Dense(int(u), c["activation"], init=c["init"], keep_prob=c["keep_prob"],
                        batch_norm=c["batch_norm"]) for u in hidden]
        layers.append(Dense(self.n_outputs,
                            "softmax" if self.task == "classification" else "linear"))
        model = MLP(self.X.shape[1], layers, dtype=self.dtype, seed=seed)
        schedule = c["schedule"]
        if schedule is None and c["lr_decay"]:
            schedule = InverseTimeDecay(c["lr_decay"], c["decay_interval"])
        trainer = Trainer(model, optimizer=optimizer, schedule=schedule, l2=c["l2"],
                          batch_size=c["batch_size"], seed=seed)
        return model, trainer, c

    def __call__(self, config, seed):
        from .trainer import EarlyStopping

        model, trainer, c = self.build(config, seed)
        stop = None if c["patience"] is None else EarlyStopping(c["patience"])
        h = trainer.fit(self.X, self.y, epochs=c["epochs"], validation_data=(self.X_dev,
                        self.y_dev), early_stopping=stop,
                        callbacks=[_check_cancelled, _report_epoch], progress=False)
        val_loss, val_error = model.evaluate(self.X_dev, self.y_dev)
        best_epoch = len(h) - 1 if stop is None or stop.best_epoch is None else stop.best_epoch
        return {"val_error": val_error, "val_loss": val_loss, "loss": h["loss"][-1],
                "error": h["error"][-1], "epochs": len(h), "best_epoch": best_epoch}

    def final_model(self, config, seed, include_dev=False, epochs=None):
        """The model of a config, trained again as its trial was (same seed) and ready to
        use: its ``standardizer`` and ``classes_`` are set, so it takes the raw features and
        predicts the original labels.

        ``include_dev=True`` trains on the training and dev sets together, with no dev set
        left to stop on: for ``epochs`` (default: the config's epochs).
        """
        from .trainer import EarlyStopping

        model, trainer, c = self.build(config, seed)
        if include_dev:
            X = np.concatenate([self.X, self.X_dev])
            y = np.concatenate([self.y, self.y_dev])
            trainer.fit(X, y, epochs=c["epochs"] if epochs is None else epochs, progress=False)
        else:
            stop = None if c["patience"] is None else EarlyStopping(c["patience"])
            trainer.fit(self.X, self.y, epochs=c["epochs"] if epochs is None else epochs,
                        validation_data=(self.X_dev, self.y_dev), early_stopping=stop,
                        progress=False)
        model.standardizer = self.standardizer
        model.classes_ = None if self.classes is None else self.classes.copy()
        model.training_config_ = trainer.get_config()
        return model


def default_space():
    """The space ``fastnn search`` explores, following the course's priorities: Adam's
    learning rate first (log scale), then hidden units, the momentum term beta1 (as 1 - beta1,
    log scale) and the mini-batch size, then layers, learning-rate decay and L2."""
    return {
        "optimizer": "adam",
        "lr": LogUniform(1e-4, 1e-1),
        "beta1": OneMinusLogUniform(0.8, 0.99),
        "n_hidden": IntUniform(16, 256, log=True),
        "batch_size": Choice([32, 64, 128, 256]),
        "n_layers": IntUniform(1, 3),
        "lr_decay": Uniform(0.0, 0.5),
        "l2": LogUniform(1e-4, 1.0),
    }


# ---- command line ----------------------------------------------------------------------------

def add_cli_arguments(parser):
    """Add the ``fastnn search`` options to an ``argparse`` parser: the data options of
    ``fastnn train``, its model and training options (each one given fixes that
    hyperparameter in every trial), and the search's own."""
    from .cli import (_int_range, _output_file, add_data_arguments,
                      add_hyperparameter_arguments)
    add_data_arguments(parser)
    add_hyperparameter_arguments(parser, fixed=True)
    parser.add_argument("--space", metavar="FILE_OR_JSON", default=None,
                        help="the search space: a .json or .toml file, or JSON text such as "
                             "'{\"lr\": {\"type\": \"log_uniform\", \"low\": 1e-4, "
                             "\"high\": 0.1}}' "
                             "(default: learning rate, beta1, hidden units, batch size, layers, "
                             "decay, L2)")
    parser.add_argument("--trials", type=_int_range(1, MAX_TRIALS), default=20, metavar="N",
                        help="trials per round (default 20)")
    parser.add_argument("--rounds", type=_int_range(1, 1000), default=2, metavar="R",
                        help="coarse-to-fine rounds (default 2)")
    parser.add_argument("--top-k", type=_int_range(1, MAX_TRIALS), default=None, metavar="K",
                        help="best trials of a round that set the next round's box")
    parser.add_argument("--prune", choices=("none", "median", "halving"), default="none",
                        help="stop hopeless trials early: below the median of finished trials "
                             "at the same epoch, or by successive halving (default none)")
    parser.add_argument("--jobs", type=_int_range(1, 100_000), default=None, metavar="N",
                        help="local workers (default: one per core)")
    parser.add_argument("--backend", choices=("thread", "process"), default="thread",
                        help="local workers are threads (default) or processes")
    parser.add_argument("--scheduler", metavar="ADDRESS", default=None,
                        help="run trials on a Dask cluster, e.g. tcp://host:8786")
    parser.add_argument("--journal", metavar="PATH", type=_output_file, default=None,
                        help="JSON-lines journal; running the same search again resumes it")
    parser.add_argument("--fresh", action="store_true",
                        help="start a new journal even if --journal holds another search")
    parser.add_argument("--refit", choices=("train", "train+dev", "none"), default="train",
                        help="train the best configuration again on the training set "
                             "(default), on training and dev sets, or not at all")
    parser.add_argument("--output", "-o", metavar="PATH", type=_output_file,
                        default="fastnn-model.safetensors",
                        help="where the refitted model is saved")
    parser.add_argument("--plot", metavar="PATH", type=_output_file, default=None,
                        help="save the metric-versus-hyperparameter plot as PNG "
                             "(needs matplotlib)")
    return parser


# Space files are small: a bigger one is not a space file.
_MAX_SPACE_FILE = 1 << 20


def load_space(spec):
    """A search space from a ``.json`` or ``.toml`` file, or from JSON text (see
    :func:`space_from_dict` for the format).  Files are read only if regular and at most
    1 MiB; never unpickled."""
    from ._files import FormatError, open_regular, parse_json
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


def load_data(path):
    """``(X, y)`` from a data file as ``fastnn train --data`` reads it (.npz with arrays ``X``
    and ``y``, .csv or .npy whose last column is the target); labels that are whole numbers
    become integers.  Regular files only, checked before anything is allocated for them; no
    pickle."""
    from .cli import _labels
    from .cli import load_data as load
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in (".npz", ".csv", ".npy"):
        raise ValueError(f"--data must be an .npz, .csv or .npy file, got {path!r}")
    X, y = load(path)
    y = np.asarray(y)
    if y.ndim == 1 and y.dtype.kind == "f":
        y = _labels(y) if np.all(np.isfinite(y)) and np.all(y == np.round(y)) else y
    return X, y


def _cli_space(args):
    """The space of ``fastnn search``: ``--space`` (or :func:`default_space`), with the train
    options given on the command line fixed."""
    from .cli import _HYPERPARAMETERS
    space = load_space(args.space) if args.space else default_space()
    fixed = {name: getattr(args, name) for name in _HYPERPARAMETERS if hasattr(args, name)}
    if "beta" in fixed:  # --beta is momentum's beta, or Adam's beta1
        optimizer = fixed.get("optimizer", space.get("optimizer", "adam"))
        if optimizer != "momentum":
            fixed["beta1"] = fixed.pop("beta")
            space.pop("beta1", None)
    if "hidden" in fixed:  # the layers are given: their count and width are not searched
        space.pop("n_layers", None)
        space.pop("n_hidden", None)
    space.update(fixed)
    return space


def run_cli(args):
    """Run ``fastnn search`` from parsed arguments: the table, the best config, the best
    configuration trained again and saved (``--refit``, ``--output``), its test score and the
    plot.  Returns the exit status."""
    import sys

    import fastnn as fn
    from .cli import _ERRORS, _error_line, _require_matplotlib, _split

    client = None
    try:
        if args.plot:
            _require_matplotlib("--plot")
        if args.threads is not None:
            fn.set_num_threads(args.threads)
        space = _cli_space(args)
        task, _, (Xtr, ytr), (Xd, yd), (Xte, yte) = _split(args, args.task)
        base = {"task": task, "dtype": args.dtype}
        if not len(Xd):
            raise ValueError("--dev-size must leave a dev set: the search scores trials on it")
        objective = MLPObjective(Xtr, ytr, Xd, yd, base=base)
        # Every setting checked before the first trial: a bad fixed value is an error here,
        # not a failed trial each time.
        objective.build(sample_config(space, args.seed, 0, 0), 0)
        executor = None
        if args.scheduler:
            try:
                from distributed import Client
            except ImportError:
                print("fastnn search: --scheduler needs Dask: pip install distributed",
                      file=sys.stderr)
                return 2
            client = Client(args.scheduler)
            executor = client.get_executor()
        pruner = {"none": None, "median": "median", "halving": "successive_halving"}[args.prune]
        search = RandomSearch(space, args.trials, rounds=args.rounds, top_k=args.top_k,
                              n_jobs=args.jobs, executor=executor, journal=args.journal,
                              seed=args.seed, base=base, pruner=pruner, resume=not args.fresh,
                              backend=args.backend if executor is None else "thread",
                              metric="val_error" if task == "classification" else "val_loss",
                              progress=True)
        search.fit(Xtr, ytr, Xd, yd)
    except KeyboardInterrupt:
        journal = args.journal
        print("fastnn search: interrupted; " + (
            f"the finished trials are in the journal {journal}: run the same command to resume"
            if journal else "finished trials are not kept without --journal"), file=sys.stderr)
        return 130
    except _ERRORS as exc:
        print(f"fastnn search: error: {_error_line(exc)}", file=sys.stderr)
        return 2
    finally:
        if client is not None:
            client.close()
    print(search.to_table())
    if search.best is None:
        print("fastnn search: no trial finished; no model saved", file=sys.stderr)
        return 1
    best = search.best
    print(f"\nbest: {best['trial_id']}  {search.metric} = {best['metrics'][search.metric]:.4g}")
    print(json.dumps(best["config"], indent=2))
    if args.refit != "none":
        model = search.refit(include_dev=args.refit == "train+dev")
        on = "training and dev sets" if args.refit == "train+dev" else "training set"
        if len(Xte):
            loss, err = model.evaluate(Xte, yte)
            score = (f"test accuracy {1 - err:.4f}" if task == "classification"
                     else f"test MSE {loss:.4g}")
            print(f"best configuration trained again on the {on}: {score}")
        model.save(args.output)
        print(f"model saved to {args.output}")
    if args.plot:
        search.plot(args.plot)
        print(f"plot saved to {args.plot}")
    return 0
