"""How many threads fastnn's kernels use: the one place that decides it.

Design: every compiled call receives an explicit ``n_threads``, taken from
:func:`get_num_threads` at the moment of the call.  The default is every core the process may
use, capped by OpenMP's own limit, so ``threadpoolctl.threadpool_limits`` (which lowers the
OpenMP runtime's limit) and ``OMP_NUM_THREADS`` limit fastnn too.  ``FASTNN_NUM_THREADS`` or
:func:`set_num_threads` override it.  fastnn's training step makes no BLAS call, so fastnn's one
OpenMP team never competes with a BLAS thread pool inside a step.
"""
import os

from . import _core
from ._validation import check_scalar

__all__ = ["get_num_threads", "set_num_threads"]

_explicit = None


def _usable_cores():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def get_num_threads():
    """Number of threads the next kernel call will use.

    ``set_num_threads`` wins, then the ``FASTNN_NUM_THREADS`` environment variable, then
    ``min(usable cores, OpenMP's max threads)``.  Always 1 when built without OpenMP.
    """
    if not _core.has_openmp():
        return 1
    if _explicit is not None:
        return _explicit
    env = os.environ.get("FASTNN_NUM_THREADS", "").strip()
    if env:
        try:
            n = int(env)
        except ValueError:
            raise ValueError(f"FASTNN_NUM_THREADS must be a positive integer, got {env!r}") from None
        if n < 1:
            raise ValueError(f"FASTNN_NUM_THREADS must be a positive integer, got {env!r}")
        return n
    return max(1, min(_usable_cores(), _core.omp_max_threads()))


def set_num_threads(n):
    """Use ``n`` threads in fastnn's kernels from now on (``None`` restores the default)."""
    global _explicit
    _explicit = None if n is None else check_scalar(n, "n", "int", low=1)
