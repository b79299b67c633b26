"""How many threads fastnn's kernels use: the one place that decides it.

Design: every compiled call receives an explicit ``n_threads``, taken from
:func:`get_num_threads` at the moment of the call.  The default is every core the process may
use, capped by OpenMP's own limit, so ``threadpoolctl.threadpool_limits`` (which lowers the
OpenMP runtime's limit) and ``OMP_NUM_THREADS`` limit fastnn too.  ``FASTNN_NUM_THREADS`` or
:func:`set_num_threads` override it.  fastnn's training step makes no BLAS call, so fastnn's one
OpenMP team never competes with a BLAS thread pool inside a step.

``set_num_threads`` is process-wide.  Code that runs several trainings at once in Python threads
(``fastnn.search`` runs trials in threads: the kernels release the GIL) gives each thread its own
budget with the :func:`threads` context manager, a thread-local override that wins over everything
else, so that workers x threads stays within the cores.
"""
import contextlib
import os
import threading
import time

from ._validation import check_scalar

# GOMP_SPINCOUNT (libgomp) and KMP_BLOCKTIME in ms (LLVM/Intel OpenMP) while the runtime loads.
_SPIN = {"GOMP_SPINCOUNT": "3000", "KMP_BLOCKTIME": "1"}
_USER_POLICY = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")


def _user_chose_a_policy():
    return any(k in os.environ for k in _USER_POLICY)


def _set_short_spin():
    """Put the short spin in the environment (unless the user chose a policy); True if it did."""
    if _user_chose_a_policy():
        return False
    os.environ.update(_SPIN)
    return True


def _clear_short_spin():
    for key in _SPIN:
        os.environ.pop(key, None)


def _load_core():
    """Import the compiled core, its OpenMP runtime reading the short spin.

    libgomp reads its settings when it is loaded, LLVM's libomp (bundled in the Linux wheels) at
    its first call: the import and a first call run with the variables set, which then leave the
    environment.
    """
    was_set = _set_short_spin()
    try:
        from . import _core
        _core.omp_max_threads()
    finally:
        if was_set:
            _clear_short_spin()
    return _core


_core = _load_core()

__all__ = ["get_num_threads", "set_num_threads", "threads"]

_explicit = None
_local = threading.local()  # .n: the calling thread's override, set by threads()
_ADAPT_TO_LOAD = True       # team_size shrinks teams on a busy machine (tests turn it off)
_team_started = False       # a kernel of this process was given more than one thread
_forked_after_team = False  # a fork() child of a process whose OpenMP team had started
_spin_set_for_fork = False   # the short spin was put in the environment for a fork


def _before_fork():
    # LLVM's libomp starts anew in the child and reads its settings during fork() itself.
    global _spin_set_for_fork
    _spin_set_for_fork = _set_short_spin()


def _after_fork_in_parent():
    if _spin_set_for_fork:
        _clear_short_spin()


def _after_fork_in_child():
    global _forked_after_team
    if _spin_set_for_fork:
        _clear_short_spin()
    if _team_started:
        _forked_after_team = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent,
                        after_in_child=_after_fork_in_child)


def _usable_cores():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def get_num_threads():
    """Number of threads the next kernel call will use.

    An enclosing ``with threads(n)`` in the calling thread wins, then ``set_num_threads``, then
    the ``FASTNN_NUM_THREADS`` environment variable, then ``min(usable cores, OpenMP's max
    threads)``.  Always 1 when built without OpenMP, and in a child made by ``fork`` after this
    process ran a kernel on several threads (see the module's notes on fork).
    """
    global _team_started
    if not _core.has_openmp() or _forked_after_team:
        return 1
    n = _requested()
    if n > 1:
        _team_started = True
    return n


def _requested():
    local = getattr(_local, "n", None)
    if local is not None:
        return local
    if _explicit is not None:
        return _explicit
    env = os.environ.get("FASTNN_NUM_THREADS", "").strip()
    if env:
        try:
            n = int(env)
        except ValueError:
            raise ValueError(f"FASTNN_NUM_THREADS must be a positive integer, got "
                             f"{env!r}") from None
        if n < 1:
            raise ValueError(f"FASTNN_NUM_THREADS must be a positive integer, got {env!r}")
        return n
    return max(1, min(_usable_cores_recent(), _core.omp_max_threads()))


_cores_seen = (0, -1.0)  # (usable cores, time.monotonic() when read)


def _usable_cores_recent():
    """_usable_cores() as read at most a second ago: asking the OS costs a few microseconds,
    which a one-row prediction would pay on every call."""
    global _cores_seen
    n, when = _cores_seen
    now = time.monotonic()
    if not 0.0 <= now - when < 1.0:
        n = _usable_cores()
        _cores_seen = (n, now)
    return n


def _runnable_elsewhere():
    """Tasks of the machine that are runnable now and not threads of this process (Linux:
    procs_running of /proc/stat less this process's threads in state R); None elsewhere."""
    try:
        with open("/proc/stat", "rb") as f:
            total = next(int(line.split()[1]) for line in f if line.startswith(b"procs_running"))
        ours = 0
        for task in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{task}/stat", "rb") as f:
                    ours += f.read().rsplit(b") ", 1)[1][:1] == b"R"
            except OSError:  # the thread ended meanwhile
                pass
    except (OSError, StopIteration, ValueError, IndexError):
        return None
    return max(0, total - ours)


def team_size(n_threads):
    """The team worth starting now for a call that may use ``n_threads``: fewer when other
    processes keep cores busy (see the module's notes on load); at least 1."""
    if n_threads <= 1 or not _ADAPT_TO_LOAD:
        return max(1, n_threads)
    elsewhere = _runnable_elsewhere()
    if elsewhere is None:
        return n_threads
    return max(1, min(n_threads, _usable_cores() - elsewhere))


_calls_running = 0            # compiled inference calls of this process running now
_calls_lock = threading.Lock()


def enter_call(n_threads, adapt):
    """Start a compiled inference call that may use n_threads; returns its team.  Calls made
    at the same time from several Python threads (the GIL is released while they run) share
    the threads: each gets n_threads // (calls running), at least 1, instead of every call
    starting a full team and the teams spinning against each other.  A call worth it (adapt)
    also leaves the cores that other processes keep busy (team_size).  Pair with leave_call."""
    global _calls_running
    with _calls_lock:
        _calls_running += 1
        running = _calls_running
    team = max(1, n_threads // running)
    if adapt and team > 1:
        team = team_size(team)
    return team


def leave_call():
    global _calls_running
    with _calls_lock:
        _calls_running -= 1


def set_num_threads(n):
    """Use ``n`` threads in fastnn's kernels from now on (``None`` restores the default)."""
    global _explicit
    _explicit = None if n is None else check_scalar(n, "n", "int", low=1)


@contextlib.contextmanager
def threads(n):
    """Use ``n`` threads in the kernels that the *calling thread* runs inside the ``with`` block.

    A thread-local override of :func:`get_num_threads` (``None`` leaves the budget unchanged), so
    Python threads training models at the same time can each get ``cores // workers`` threads;
    :func:`set_num_threads` would change the budget of every thread.  Blocks nest; the previous
    value comes back on exit, also on an exception.

    Examples
    --------
    >>> with threads(1):                 # doctest: +SKIP
    ...     trainer.fit(X, y, epochs=5)  # one thread, whatever set_num_threads says
    """
    n = None if n is None else check_scalar(n, "n", "int", low=1)
    previous = getattr(_local, "n", None)
    if n is not None:
        _local.n = n
    try:
        yield
    finally:
        _local.n = previous
