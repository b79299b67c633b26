"""Pruners: which trials stop early.  Before a trial is handed out, the pruner condenses the
finished trials' learning curves into a small state sent with it; inside the trial,
:func:`fastnn.search.report` compares each epoch's value with that state.
"""
import collections

import numpy as np

from .._validation import _describe, check_scalar

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
