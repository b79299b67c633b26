"""Ctrl-C held until a consistent point: training steps and the search's bookkeeping."""
import signal
import threading


class _DeferredInterrupt:
    """Ctrl-C during a run of compiled steps is held until the run's bookkeeping is done, so the
    model, the optimizer state and the step counters always agree; ``fit`` then raises
    KeyboardInterrupt at that step boundary (the search's journal and runner use it alike).
    Only the main thread receives signals, and only
    Python's default handler is replaced."""

    def __init__(self):
        self.pending = False
        self._old = None

    def _hold(self, signum, frame):
        self.pending = True

    def __enter__(self):
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            self._old = signal.signal(signal.SIGINT, self._hold)
        return self

    @property
    def holding(self):
        """Whether Ctrl-C is being held (False: another handler, or not the main thread)."""
        return self._old is not None

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
            self._old = None
        return False
