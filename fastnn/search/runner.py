"""The runner: hands trial specs to threads, worker processes or any executor (a Dask
cluster's), and yields their records as they finish.
"""
import collections
import concurrent.futures as cf
import contextlib
import math
import multiprocessing
import threading
import warnings

from .._interrupt import _DeferredInterrupt
from .._threads import get_num_threads
from .trials import _failed, _init_worker, _reason, _run_trial, _TrialCancelled


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
        limit = (self.workers if s.executor is None or s.n_jobs not in (None, -1)
                 else math.inf)  # an executor of its own size: everything at once
        queue, suspects = _Queue(todo), collections.deque()
        in_flight = {}
        with _DeferredInterrupt() as sigint, _cancelled_on_exit(in_flight):
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


@contextlib.contextmanager
def _cancelled_on_exit(in_flight):
    """On the way out (finished, Ctrl-C or an error), cancel the futures still in flight."""
    try:
        yield
    finally:
        for fut in in_flight:
            fut.cancel()
