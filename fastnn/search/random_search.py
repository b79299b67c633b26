"""The search: rounds of trials, coarse to fine, ranking, refit; its results are shown by
:mod:`fastnn.search.results`.
"""
import json
import os
import pickle
import warnings

import numpy as np

from .._validation import NotFittedError, _describe, check_random_seed, check_scalar
from .journal import (
    _HEADER_KEY,
    _JOURNAL_VERSION,
    _first_difference,
    _Journal,
    _read_journal,
    _warn_corrupt,
)
from .objective import MLPObjective
from .pruners import _check_pruner
from .results import _fmt, plot_results, result_rows, results_table
from .runner import _Runner
from .spaces import (
    Space,
    _check_space,
    _jsonable,
    _trial_id,
    _trial_seed,
    sample_config,
    space_to_dict,
)
from .trials import _reason

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
        return result_rows(self.results)

    def to_table(self, max_rows=None):
        """The results as a text table, best first (``max_rows`` limits the rows shown)."""
        self._check_fitted()
        return results_table(self.results, self.metric, self._searched(), self.pruner, max_rows)

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
        return plot_results(self.results, self.space, self.metric, self.rounds, path)

    def __repr__(self):
        return (f"RandomSearch({len(self.space)} hyperparameters, n_trials={self.n_trials}, "
                f"rounds={self.rounds}, top_k={self.top_k})")

