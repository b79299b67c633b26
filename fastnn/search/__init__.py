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

The pieces, one module each, in order: :mod:`~fastnn.search.spaces` (what is sampled),
:mod:`~fastnn.search.trials` (running one trial, :func:`report`), :mod:`~fastnn.search.pruners`
(stopping one early), :mod:`~fastnn.search.journal` (the only code that touches files),
:mod:`~fastnn.search.runner` (executors and workers), :mod:`~fastnn.search.random_search` (rounds,
ranking, refit), :mod:`~fastnn.search.results` (the rows, table and plot) and
:mod:`~fastnn.search.objective` (the built-in objective).  The
``fastnn search`` command lives with the other commands, in ``fastnn.cli.search``.
"""
from .journal import _HEADER_KEY, read_journal  # noqa: F401 (_HEADER_KEY: the journal's tests)
from .objective import MLPObjective, default_space
from .pruners import MedianPruner, Pruner, SuccessiveHalvingPruner
from .random_search import MAX_TRIALS, RandomSearch
from .spaces import (
    Choice,
    IntUniform,
    LogUniform,
    OneMinusLogUniform,
    Space,
    Uniform,
    load_space,
    sample_config,
    space_from_dict,
    space_to_dict,
)
from .trials import TrialPruned, report

__all__ = ["Space", "LogUniform", "OneMinusLogUniform", "Uniform", "IntUniform", "Choice",
           "space_to_dict", "space_from_dict", "load_space", "Pruner", "MedianPruner",
           "SuccessiveHalvingPruner", "TrialPruned", "report", "RandomSearch", "MLPObjective",
           "default_space", "sample_config", "read_journal", "load_data", "add_cli_arguments",
           "run_cli", "MAX_TRIALS"]

_COMMAND_LINE = ("load_data", "add_cli_arguments", "run_cli")


def __getattr__(name):
    # The command line of the search lives with the other commands; its names here keep working.
    if name in _COMMAND_LINE:
        from ..cli import search
        return getattr(search, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
