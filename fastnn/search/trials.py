"""Running one trial, in whichever worker it was handed to: the trial context, :func:`report`
and the pruning check, the objective called, its metrics cleaned into a journal record.
"""
import math
import numbers
import os
import signal
import threading
import time

import numpy as np

from .._threads import threads
from .._validation import _describe, check_scalar

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
