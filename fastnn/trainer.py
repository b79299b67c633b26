"""Training: seeded shuffled mini-batches, whole runs of steps in one compiled call.

Design: ``fit`` validates and converts the data once, binds the optimizer's moments to flat
buffers matching the model's parameter buffer, and then hands runs of mini-batch steps (each:
gather, forward, loss, backward, update) to one nogil call, ``_core.Net.train_steps``.  Python
is re-entered between runs, about every 50 ms and always at a step boundary, for the progress
bar and Ctrl-C, and after every epoch for callbacks; the per-epoch permutation is derived
from (seed, epoch), so a checkpoint needs only the epoch and step counters to resume exactly
at an epoch boundary.  Ctrl-C in the middle of an epoch leaves the trainer holding its
position (the steps taken and their per-step results), and the next ``fit`` goes on from the
next batch of the same permutation; an epoch's loss and error are summed from its per-step
results at its end, so they do not depend on where it was interrupted (or on how the steps were
grouped into compiled calls).
"""
import contextlib
import math
import time
import warnings

import numpy as np

from . import _core
from ._interrupt import _DeferredInterrupt
from ._threads import get_num_threads, team_size
from ._validation import _describe, check_random_seed, check_scalar
from .ewa import EWA
from .history import History
from .io import read_checkpoint, save_checkpoint
from .model import MLP
from .optim import Adam, get_optimizer
from .schedules import resolve_schedule

__all__ = ["Trainer", "History", "EarlyStopping", "DivergedError"]

# Python is re-entered about this often during an epoch (progress bar, callbacks, Ctrl-C); the
# steps in between run in one compiled call.
_CHUNK_SECONDS = 0.05

# Smoothing of the per-step training loss shown by the progress bar and history["loss_ewa"].
_EWA_BETA = 0.98


class _EpochPosition:
    """Where an interrupted epoch stopped: its first ``k`` steps are taken, ``results`` holds
    their per-step results (cost terms, errors) and ``elapsed`` the time spent on them.  The
    rest (``n_samples``, ``batch_size``, ``shuffle``, ``seed``) says which walk through the
    data it was, so that only the same walk continues it."""

    def __init__(self, epoch, k, n_samples, batch_size, shuffle, seed, results, elapsed):
        self.epoch, self.k, self.results, self.elapsed = epoch, k, results, elapsed
        self.walk = (n_samples, batch_size, shuffle, seed)

    def __str__(self):
        n_samples, batch_size = self.walk[:2]
        return f"after {self.k} of the {-(-n_samples // batch_size)} steps of epoch {self.epoch}"


class DivergedError(ArithmeticError):
    """Training produced a NaN or infinite loss (or parameters).

    The model keeps the weights on which the last finite loss was measured: the state before
    the update that led to the non-finite loss, so its outputs on that mini-batch are finite.
    ``epoch`` is the epoch in which the loss went non-finite, ``step`` the steps of the state
    kept (``trainer.step``), ``last_finite_loss`` the loss of that state.  When that state lies
    in the previous epoch, the trainer goes back into it (``trainer.epoch`` and the history lose
    that epoch).  Only when the very first step of a ``fit`` call diverges is there no earlier
    state: the model is then as it was when ``fit`` was called.
    """

    def __init__(self, epoch, step, last_finite_loss):
        self.epoch, self.step, self.last_finite_loss = epoch, step, last_finite_loss
        super().__init__(f"training diverged in epoch {epoch} (step {step}): the loss became "
                         f"NaN or infinite; last finite loss {last_finite_loss!r}. The model "
                         f"keeps the weights that loss was measured on; lower the learning "
                         f"rate.")


class EarlyStopping:
    """Stop when ``val_loss`` has not improved by more than ``min_delta`` for ``patience``
    epochs; with ``restore_best`` the model gets back the weights of its best epoch."""

    def __init__(self, patience=5, min_delta=0.0, restore_best=True):
        self.patience = check_scalar(patience, "patience", "int", low=0)
        self.min_delta = check_scalar(min_delta, "min_delta", "float", low=0.0)
        self.restore_best = bool(restore_best)
        self.best = math.inf
        self.best_epoch = None
        self.best_weights = None
        self.wait = 0

    def on_epoch_end(self, trainer, epoch, logs):
        val = logs.get("val_loss", float("nan"))
        if math.isnan(val):
            raise ValueError("EarlyStopping needs validation_data in fit")
        if val < self.best - self.min_delta:
            self.best, self.best_epoch, self.wait = val, epoch, 0
            if self.restore_best:
                self.best_weights = trainer.model.get_weights()
        else:
            self.wait += 1
            if self.wait > self.patience:
                trainer.stop_training = True
                trainer.history.stopped_epoch = epoch

    def on_train_end(self, trainer):
        if self.restore_best and self.best_weights is not None:
            trainer.model.set_weights(self.best_weights)
            if trainer.history.stopped_epoch is not None:
                trainer.history.best_epoch = self.best_epoch


class Trainer:
    """Mini-batch training of an :class:`MLP`.

    Parameters
    ----------
    model : MLP
    optimizer : Optimizer, str or dict, default Adam(lr=1e-3)
    schedule : callable (lr0, epoch) -> lr, or None
        Learning-rate decay per epoch (``fastnn.schedules``); lr0 is ``optimizer.lr``.
    l2 : float, default 0.0
        L2 strength lambda over the whole training set of N examples: each step adds
        ``(lambda/N) W`` to dW and the cost reports ``lambda/(2N) sum ||W||^2``.
    batch_size : int, default 64
        The last smaller batch of an epoch is kept.
    shuffle : bool, default True
        Permute the data every epoch (seeded by (seed, epoch)).
    seed : int, default 0
        Seeds the permutations and the dropout masks.
    """

    def __init__(self, model, optimizer=None, schedule=None, l2=0.0, batch_size=64,
                 shuffle=True, seed=0):
        if not isinstance(model, MLP):
            raise TypeError(f"model must be a fastnn.MLP, got {_describe(model)}")
        self._model = model
        self.optimizer = Adam(1e-3) if optimizer is None else get_optimizer(optimizer)
        self.schedule = resolve_schedule(schedule)
        self.l2 = l2
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0          # epochs completed over all fit calls
        self.step = 0           # steps completed over all fit calls
        self.stop_training = False
        self.history = History()
        self._flat = None       # (optimizer, v, s) bound to the model's layout
        # EWA of the step losses; continues across fit calls (and checkpoints)
        self._smooth = EWA(_EWA_BETA)
        # Set when Ctrl-C stopped fit inside an epoch; the next fit continues that epoch.
        self._position = None

    # ---- settings: validated whenever they are set, so fit never starts from a bad one -------

    @property
    def model(self):
        """The model being trained (fixed: the optimizer state is laid out for it)."""
        return self._model

    @property
    def l2(self):
        return self._l2

    @l2.setter
    def l2(self, value):
        self._l2 = check_scalar(value, "l2", "float", low=0.0)

    @property
    def batch_size(self):
        return self._batch_size

    @batch_size.setter
    def batch_size(self, value):
        self._batch_size = check_scalar(value, "batch_size", "int", low=1)

    @property
    def shuffle(self):
        return self._shuffle

    @shuffle.setter
    def shuffle(self, value):
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"shuffle must be a bool, got {_describe(value)}")
        self._shuffle = bool(value)

    @property
    def seed(self):
        return self._seed

    @seed.setter
    def seed(self, value):
        self._seed = check_random_seed(value, "seed") or 0

    # ---- helpers -----------------------------------------------------------------------------

    def _moments(self):
        opt = self.optimizer
        if self._flat is None or self._flat[0] is not opt:
            v, s = opt._bind_flat(self.model._param_layout, self.model.n_params, self.model.dtype)
            self._flat = (opt, v, s)
        return self._flat[1], self._flat[2]

    def _lr(self, epoch):
        lr = self.schedule(self.optimizer.lr, epoch)
        if not (isinstance(lr, (int, float, np.floating)) and math.isfinite(lr) and lr >= 0):
            raise ValueError(f"schedule returned an invalid learning rate {lr!r} for epoch {epoch}")
        return float(lr)

    def _order(self, epoch, n):
        if not self.shuffle:
            return np.arange(n, dtype=np.int64)
        return np.random.default_rng((self.seed, epoch)).permutation(n).astype(np.int64)

    def _resume(self, epoch, n, bs, results):
        """Steps of ``epoch`` already taken by an interrupted fit (0 for a fresh epoch); their
        results are copied into ``results``.  A position left by another walk through the data
        (other sample count, batch size, shuffling or seed) cannot be continued: the epoch
        starts again, with a warning."""
        pos, self._position = self._position, None
        if pos is None or pos.epoch != epoch:
            return 0, 0.0
        if pos.walk != (n, bs, self.shuffle, self.seed):
            warnings.warn(f"fit was interrupted {pos}; this call has another sample count, "
                          f"batch size, shuffling or seed, so epoch {epoch} starts again from its "
                          f"first batch", RuntimeWarning, stacklevel=3)
            return 0, 0.0
        results[:pos.k] = pos.results
        return pos.k, pos.elapsed

    # ---- fit ---------------------------------------------------------------------------------

    def fit(self, X, y, epochs=10, validation_data=None, early_stopping=None, callbacks=(),
            progress=True):
        """Train for ``epochs`` more epochs; returns the :class:`History` (all fit calls).

        Parameters
        ----------
        X : array-like (n_samples, n_inputs);  y : targets for the model's output
        epochs : int
            Epochs to finish; an epoch interrupted by Ctrl-C is continued from its next batch
            and counts as one of them, so after ``fit(epochs=E)`` was interrupted,
            ``fit(epochs=E - trainer.epoch)`` ends where the uninterrupted call would have,
            with the same weights and history.
        validation_data : (X_dev, y_dev) or None
            Evaluated in inference mode after every epoch (``val_loss``, ``val_error``).
        early_stopping : EarlyStopping or None
        callbacks : sequence
            Objects with ``on_epoch_end(trainer, epoch, logs)`` (and optionally
            ``on_train_end(trainer)``) or callables ``f(trainer, epoch, logs)``; setting
            ``trainer.stop_training = True`` stops after the epoch.
        progress : bool
            A tqdm progress bar per epoch.

        Raises
        ------
        DivergedError
            A NaN/inf loss (or parameters); the model keeps the weights on which the last finite
            loss was measured (see DivergedError).
        KeyboardInterrupt
            Re-raised after stopping at a step boundary (the model is the last completed step;
            Ctrl-C during an epoch's evaluation or callbacks stops at that epoch's end).
        RuntimeError
            The model is being trained in another thread at the same time.
        """
        with self.model._training("Trainer.fit"):
            return self._fit(X, y, epochs, validation_data, early_stopping, callbacks, progress)

    def _fit(self, X, y, epochs, validation_data, early_stopping, callbacks, progress):
        """The steps of fit: check the arguments, then run the epochs (each: its runs of
        compiled steps, its logs, the callbacks), then end the training."""
        epochs = check_scalar(epochs, "epochs", "int", low=0)
        X, labels, Y, val, callbacks = self._check_fit_data(X, y, validation_data,
                                                            early_stopping, callbacks)
        self._run_epochs(X, labels, Y, val, epochs, callbacks, progress)
        for cb in callbacks:
            if hasattr(cb, "on_train_end"):
                cb.on_train_end(self)
        return self.history

    def _check_fit_data(self, X, y, validation_data, early_stopping, callbacks):
        """The training and validation data converted once (``(X, labels, Y)`` each) and the
        callbacks, early stopping last."""
        model = self.model
        X = model._prepare_X(X)
        labels, Y = model._prepare_y(y, X.shape[0])
        val = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ValueError(f"validation_data must be a tuple (X_dev, y_dev), got "
                                 f"{_describe(validation_data)}")
            Xv = model._prepare_X(validation_data[0], "validation_data[0]")
            lv, Yv = model._prepare_y(validation_data[1], Xv.shape[0], "validation_data[1]")
            val = (Xv, lv, Yv)
        if early_stopping is not None and not isinstance(early_stopping, EarlyStopping):
            raise TypeError(f"early_stopping must be a fastnn.EarlyStopping, got "
                            f"{_describe(early_stopping)}")
        if early_stopping is not None and val is None:
            raise ValueError("early_stopping needs validation_data")
        callbacks = list(callbacks) + ([early_stopping] if early_stopping is not None else [])
        for cb in callbacks:
            if not (callable(cb) or hasattr(cb, "on_epoch_end")):
                raise TypeError(f"callbacks must be callables or have on_epoch_end, got "
                                f"{_describe(cb)}")

        return X, labels, Y, val, callbacks

    def _end_epoch(self, epoch, logs, callbacks, progress):
        """Record an epoch, then call the callbacks (in order) and print its line."""
        self.epoch += 1
        self.history.append(logs)
        for cb in callbacks:
            if hasattr(cb, "on_epoch_end"):
                cb.on_epoch_end(self, epoch, logs)
            else:
                cb(self, epoch, logs)
        if progress:
            _print_epoch(logs)

    def _run_epochs(self, X, labels, Y, val, epochs, callbacks, progress):
        """The epochs, each a sequence of runs of compiled steps (see the module docstring)."""
        model = self.model
        n = X.shape[0]
        bs = min(self.batch_size, n)
        _check_batch_norm_rows(model, n, bs, self.batch_size)
        n_threads = get_num_threads()
        net = model._net(bs, n_threads)
        v, s = self._moments()
        opt = self.optimizer
        kind, beta1, beta2, eps, wd = opt.kernel_params()
        l2_coef = self.l2 / n
        units = 1 if model.task == "multiclass" else model.n_outputs
        smooth = self._smooth
        self.stop_training = False
        self.history.stopped_epoch = self.history.best_epoch = None
        n_steps = -(-n // bs)
        # Per-step results of the current epoch; its loss and error are summed from them.
        results = np.zeros(n_steps, dtype=_core.PASS_RESULT_DTYPE)
        # rows in each step of an epoch: bs, and what is left for the last one
        sizes = np.full(n_steps, bs, dtype=np.float64)
        sizes[-1] = n - (n_steps - 1) * bs
        bar = None
        snaps = [None, None]  # training-state copies: this epoch's start, the previous one's
        prev = None           # (snapshot, run, first step) of the previous epoch of this call
        with _DeferredInterrupt() as sigint, contextlib.ExitStack() as bars:
            bars.callback(lambda: bar is not None and bar.close())
            for _ in range(epochs):
                epoch = self.epoch
                lr = self._lr(epoch)
                order = self._order(epoch, n)
                # k0 > 0: an interrupted epoch goes on from its next batch
                k0, spent = self._resume(epoch, n, bs, results)
                epoch_start = self.step - k0
                bar = _progress_bar(progress, n_steps, epoch, initial=k0)
                t0 = time.perf_counter() - spent
                if k0:
                    last_finite = float(results["loss"][k0 - 1]
                                        + self.l2 / (2.0 * n) * results["sum_w2"][k0 - 1])
                else:
                    last_finite = self.history["loss"][-1] if len(self.history) else float("nan")

                def run(k, count, order=order, lr=lr):
                    """Steps k .. k+count-1 of the epoch in one compiled call; the steps taken
                    are counted at once.  Returns (costs, errors, diverged)."""
                    out = results[k:k + count]
                    done = net.train_steps(
                        order[k * bs:(k + count) * bs], bs, X, labels, Y, self.seed, self.step,
                        l2_coef, kind, lr, beta1, beta2, eps, wd, opt.state["step"] + 1,
                        v, s, team_size(n_threads), out)
                    costs = out["loss"][:done] + self.l2 / (2.0 * n) * out["sum_w2"][:done]
                    finite = np.isfinite(costs)
                    taken = done if finite.all() else int(np.argmin(finite))
                    opt.state["step"] += taken
                    self.step += taken
                    return costs[:taken], out["n_errors"][:taken], taken < done

                try:
                    # The state where this call starts the epoch (finite: checked at every
                    # epoch end), kept with the previous epoch's: a divergence goes back to the
                    # state before the last update by replaying from one of them.
                    snaps[0], snaps[1] = self._snapshot(v, s, snaps[1]), snaps[0]
                    snap = snaps[0]
                    # replay runs within this epoch, while k0 is still its own (B023)
                    replay = lambda j: run(k0 + j, 1)  # noqa: E731, B023
                    k, chunk = k0, 1
                    while k < n_steps:
                        count = min(chunk, n_steps - k)
                        tic = time.perf_counter()
                        costs, errors, diverged = run(k, count)
                        elapsed = time.perf_counter() - tic
                        smooth.update_many(costs)
                        if costs.size:
                            last_finite = float(costs[-1])
                        k += costs.size
                        if diverged:
                            last_finite = self._roll_back(snap, replay, k - k0, prev, v, s,
                                                          last_finite)
                            raise DivergedError(epoch, self.step, last_finite)
                        # Python comes back about every _CHUNK_SECONDS: progress, Ctrl-C.
                        chunk = max(1, min(4 * count,
                                           int(_CHUNK_SECONDS * count / max(elapsed, 1e-9))))
                        if bar is not None:
                            bar.set_postfix(loss=f"{smooth.value:.4f}", refresh=False)
                            bar.update(k - bar.n)
                        if sigint.pending:
                            raise KeyboardInterrupt
                    if bar is not None:
                        bar.close()
                        bar = None
                    if not self._finite(v, s):  # the last step's update overflowed
                        last_finite = self._roll_back(snap, replay, n_steps - k0, prev, v, s,
                                                      last_finite)
                        raise DivergedError(epoch, self.step, last_finite)
                    costs = results["loss"] + self.l2 / (2.0 * n) * results["sum_w2"]
                    logs = {"epoch": epoch, "loss": float(costs @ sizes) / n,
                            "error": (int(results["n_errors"].sum()) / (n * units)
                                      if model.task != "regression" else float("nan")),
                            "lr": lr, "loss_ewa": smooth.value, "time": time.perf_counter() - t0}
                    if val is not None:
                        logs["val_loss"], logs["val_error"] = model._evaluate_prepared(*val)
                except KeyboardInterrupt:
                    k = self.step - epoch_start
                    self._position = _EpochPosition(epoch, k, n, bs, self.shuffle, self.seed,
                                                    results[:k].copy(), time.perf_counter() - t0)
                    raise
                prev = (snap, run, k0, n_steps, float(costs[-1]))
                self._end_epoch(epoch, logs, callbacks, progress)
                if sigint.pending:  # Ctrl-C during the epoch's evaluation or callbacks
                    raise KeyboardInterrupt
                if self.stop_training:
                    break

    # ---- divergence ----------------------------------------------------------------------------

    def _finite(self, v, s):
        model = self.model
        return all(a is None or bool(np.isfinite(a).all())
                   for a in (model._params, model._buffers, v, s))

    def _snapshot(self, v, s, into=None):
        """Copies of the training state (into the arrays of ``into`` when given)."""
        arrays = (self.model._params, self.model._buffers, v, s)
        if into is None:
            copies = [None if a is None else a.copy() for a in arrays]
        else:
            copies = into[:4]
            for dst, a in zip(copies, arrays):
                if a is not None:
                    np.copyto(dst, a)
        return (*copies, self.optimizer.state["step"], self.step)

    def _restore(self, snap, v, s):
        params, buffers, v0, s0, opt_step, step = snap
        self.model._params[...] = params
        self.model._buffers[...] = buffers
        if v is not None:
            v[...] = v0
        if s is not None:
            s[...] = s0
        self.optimizer.state["step"], self.step = opt_step, step

    def _roll_back(self, snap, replay, taken, prev, v, s, last_finite):
        """After a divergence, with ``taken`` steps of this epoch done since ``snap``: go back to
        the state on which the last finite loss was measured, the one before the last update,
        by replaying from a snapshot (training is deterministic for a given seed).  Returns the
        loss of the state kept."""
        if taken >= 1:
            self._restore(snap, v, s)
            for j in range(taken - 1):
                replay(j)
            return last_finite
        if prev is None:  # the first step of this fit call: no earlier state is held
            self._restore(snap, v, s)
            return last_finite
        psnap, prun, pk0, n_steps, last_cost = prev  # the previous epoch, before its last update
        self._restore(psnap, v, s)
        for j in range(pk0, n_steps - 1):
            prun(j, 1)
        self.epoch -= 1
        self.history._pop()
        self._position = None
        return last_cost

    # ---- checkpoints -------------------------------------------------------------------------

    def save_checkpoint(self, path):
        """Write model, optimizer state, counters and history to ``path`` (safetensors).

        The file holds no position inside an epoch: after Ctrl-C in the middle of one, this
        trainer continues it exactly, but a trainer loaded from the file starts that epoch
        again from its first batch (a ``RuntimeWarning`` says so).
        """
        if self._position is not None:
            warnings.warn(f"this trainer was interrupted {self._position}; the checkpoint does "
                          f"not hold that position, so a trainer loaded from it starts epoch "
                          f"{self._position.epoch} again from its first batch (this one "
                          f"continues it)", RuntimeWarning, stacklevel=2)
        save_checkpoint(self, path)

    @classmethod
    def load_checkpoint(cls, path):
        """A Trainer restored from :meth:`save_checkpoint`: continuing it gives bit-identical
        weights to never having stopped.  Errors as for :func:`fastnn.load`."""
        saved = read_checkpoint(path)
        model = MLP._from_saved(saved.model)
        trainer = cls(model, optimizer=saved.optimizer, schedule=saved.schedule,
                      **saved.trainer_kwargs)
        optimizer, state = saved.optimizer, saved.state
        for (which, key), arr in saved.moments.items():
            optimizer.state[which][key] = arr.copy()
        optimizer.state["step"] = state["optimizer_step"]
        trainer.epoch, trainer.step = state["epoch"], state["step"]
        if saved.loss_ewa is not None:
            trainer._smooth = saved.loss_ewa
        for key, values in state["history"].items():
            trainer.history.history[key] = [float("nan") if v is None else v for v in values]
        return trainer

    def get_config(self):
        return {"optimizer": self.optimizer.get_config(),
                "schedule": _schedule_config(self.schedule),
                "l2": self.l2, "batch_size": self.batch_size, "shuffle": self.shuffle,
                "seed": self.seed}


def load_checkpoint(path):
    """A Trainer restored from a checkpoint file: :meth:`Trainer.load_checkpoint`."""
    return Trainer.load_checkpoint(path)


def _check_batch_norm_rows(model, n, bs, batch_size):
    """Batch norm normalises over the rows of a training batch: one row has no variance (as
    in PyTorch, which raises "Expected more than 1 value per channel when training")."""
    if not any(layer.batch_norm for layer in model.layers):
        return
    last = n - (-(-n // bs) - 1) * bs
    if bs == 1 or last == 1:
        where = ("1 training example" if n == 1 else
                 f"batch_size={batch_size}" if bs == 1 else
                 f"batch_size={batch_size} with {n} training examples, which leaves a last "
                 f"batch of 1 row")
        raise ValueError(f"batch norm needs more than 1 row in every training batch (the "
                         f"variance of one row is 0); {where}: choose another batch_size or "
                         f"leave out a training example")


def _schedule_config(schedule):
    get = getattr(schedule, "get_config", None)
    return get() if get is not None else None


def _progress_bar(progress, total, epoch, initial=0):
    if not progress:
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, initial=initial, desc=f"epoch {epoch}", unit="step", leave=False,
                mininterval=0.2)


def _print_epoch(logs):
    parts = [f"epoch {logs['epoch']:3d}", f"loss {logs['loss']:.4f}"]
    if not math.isnan(logs.get("error", float("nan"))):
        parts.append(f"error {logs['error']:.4f}")
    if not math.isnan(logs.get("val_loss", float("nan"))):
        parts.append(f"val_loss {logs['val_loss']:.4f}")
    if not math.isnan(logs.get("val_error", float("nan"))):
        parts.append(f"val_error {logs['val_error']:.4f}")
    parts.append(f"lr {logs['lr']:.3g}")
    parts.append(f"{logs['time']:.2f}s")
    print("  ".join(parts), flush=True)
