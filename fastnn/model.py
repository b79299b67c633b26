"""The model: ``Dense`` layers chained into an ``MLP`` over one flat parameter buffer.

Design: an MLP owns a flat parameter buffer and a flat gradient buffer (every trainable array of
every layer is a view into them, so one fused optimizer call updates the whole model) and a flat
buffer for the batch-norm running statistics.  The compiled network (``_core.Net``) holds
pointers into those buffers plus its workspace; it is built once per (rows, threads) and cached.
Validation happens here, before any compiled code runs.

The architecture is fixed at construction: a ``Dense`` layer and an ``MLP``'s ``n_inputs``,
``layers`` and ``dtype`` cannot be changed afterwards (the buffers and the compiled networks are
laid out for them); build a new model instead.

Threads: inference (``forward``, ``predict``, ``predict_proba``, ``evaluate``) runs over a
workspace of each call's own, so any number of threads may use one model at once.  Training
(``Trainer.fit``, ``loss_and_grads``, ``forward(training=True)``) holds the model's training lock:
a second training of the same model from another thread raises ``RuntimeError``.
"""
import contextlib
import functools
import threading

import numpy as np

from . import _core
from ._threads import enter_call, get_num_threads, leave_call
from ._validation import _describe, check_random_seed, check_scalar, validate_X, validate_y
from .data import encode_labels
from .io import FormatError, read_model, save_model
from .layers import ACTIVATION_CODES, INITS, OUTPUT_LOSSES, Dense, _layout, _size

__all__ = ["Dense", "MLP", "load", "ACTIVATIONS", "INITS"]  # Dense and the tables: fastnn.layers

# Old names of the tables of fastnn.layers, kept for callers.
ACTIVATIONS = ACTIVATION_CODES
LOSSES = OUTPUT_LOSSES

# Rows per compiled evaluation call: bounds the logits that evaluate keeps in its workspace
# (inference streams any number of rows through a workspace that does not grow with them).
_CHUNK_ROWS = 4096
# Rows per compiled inference call: the kernels count rows in a C int.
_INFER_ROWS = 1 << 30


def _check_output(out):
    """Refuse a non-finite network output rather than return it (or a class made of it)."""
    if _core.all_finite(out):
        return
    bad = ~np.isfinite(out).all(axis=1)
    if bad.any():
        raise ValueError(f"the network's output is NaN or infinite for {int(bad.sum())} of "
                         f"{out.shape[0]} rows (first: row {int(np.argmax(bad))}): the activations "
                         f"overflow {out.dtype}; the inputs are too large for these weights, or "
                         f"the weights diverged in training")


class MLP:
    """A multilayer perceptron: a chain of :class:`Dense` layers with one dtype.

    Parameters
    ----------
    n_inputs : int
        Number of input features.
    layers : sequence of Dense
        The last layer's activation picks the loss: softmax -> cross-entropy (integer labels
        ``0..units-1``), sigmoid -> binary cross-entropy (0/1 targets), linear -> mean squared
        error (float targets).
    dtype : {"float32", "float64"}, default "float32"
    seed : int, default 0
        Seeds the initial weights (same seed, same weights) and the default dropout seed.

    Attributes
    ----------
    standardizer : fastnn.data.Standardizer or None
        When set, applied to every input (``forward``, ``predict``, ``loss_and_grads``,
        ``Trainer.fit``) and saved in the model file.
    classes_ : ndarray or None
        Original class labels of a softmax/sigmoid model (``predict`` maps indices to them).

    ``n_inputs``, ``layers`` (a tuple) and ``dtype`` are read-only: the buffers are laid out for
    them.
    """

    _ARCHITECTURE = ("n_inputs", "layers", "dtype", "loss_kind", "task")

    def __init__(self, n_inputs, layers, dtype="float32", seed=0):
        n_inputs = check_scalar(n_inputs, "n_inputs", "int", low=1)
        if isinstance(layers, Dense) or not hasattr(layers, "__iter__"):
            raise TypeError(f"layers must be a list of fastnn.Dense, got {_describe(layers)}")
        layers = list(layers)
        if not layers:
            raise ValueError("layers must hold at least one fastnn.Dense layer, got []")
        for i, layer in enumerate(layers):
            if not isinstance(layer, Dense):
                raise TypeError(f"layers[{i}] must be a fastnn.Dense, got {_describe(layer)}")
            if layer.activation == "softmax" and i != len(layers) - 1:
                raise ValueError(f"layers[{i}]: softmax is allowed on the output layer only")
        out = layers[-1]
        if out.activation not in OUTPUT_LOSSES:
            raise ValueError(f"the output layer's activation must be 'softmax', 'sigmoid' or "
                             f"'linear' (it picks the loss), got {out.activation!r}")
        if out.keep_prob != 1.0:
            raise ValueError(f"keep_prob of the output layer must be 1.0 (no dropout on the "
                             f"output), got {out.keep_prob!r}")
        if out.batch_norm:
            raise ValueError("batch_norm is not allowed on the output layer")
        if out.activation == "softmax" and out.units < 2:
            raise ValueError(f"a softmax output needs at least 2 units, got {out.units}")
        if isinstance(dtype, str) and dtype in ("float32", "float64"):
            dtype = np.dtype(dtype)
        elif dtype in (np.float32, np.float64) and not isinstance(dtype, str):
            dtype = np.dtype(dtype)
        else:
            raise ValueError(f"dtype must be 'float32' or 'float64', got {_describe(dtype)}")
        self.seed = check_random_seed(seed, "seed")
        if self.seed is None:
            self.seed = 0
        loss_kind, task = OUTPUT_LOSSES[out.activation]
        arch = {"n_inputs": n_inputs, "layers": tuple(layers), "dtype": dtype,
                "loss_kind": loss_kind, "task": task}
        for name, value in arch.items():
            object.__setattr__(self, name, value)
        self.standardizer = None
        self.classes_ = None
        self._train_lock = threading.Lock()
        self._build_buffers()
        self.reset_parameters()
        self._nets = {}

    def __setattr__(self, name, value):
        if name in self._ARCHITECTURE and name in self.__dict__:
            raise AttributeError(f"MLP.{name} cannot be changed after construction (the buffers "
                                 f"are laid out for it); build a new MLP instead")
        object.__setattr__(self, name, value)

    @contextlib.contextmanager
    def _training(self, what):
        """Hold the training lock for `what`; RuntimeError if another thread holds it."""
        if not self._train_lock.acquire(blocking=False):
            raise RuntimeError(f"{what}: this model is being trained in another thread; training "
                               f"one model from two threads at once is not supported (give each "
                               f"thread its own model.copy())")
        try:
            yield
        finally:
            self._train_lock.release()

    # ---- layout ------------------------------------------------------------------------------

    @functools.cached_property
    def _macs_per_row(self):
        """Multiply-adds of one row's forward pass (the architecture is fixed: read once)."""
        return sum(int(np.prod(shape)) for key, (_, shape) in self._param_layout.items()
                   if key.endswith(".W"))

    def _build_buffers(self):
        """Lay every array out in the flat buffers; keep (name -> (offset, shape)) tables."""
        self._param_layout, self._buffer_layout = _layout(self.n_inputs, self.layers)
        self._params = np.zeros(_size(self._param_layout), dtype=self.dtype)
        self._grads = np.zeros(_size(self._param_layout), dtype=self.dtype)
        self._buffers = np.zeros(_size(self._buffer_layout), dtype=self.dtype)

    def _view(self, flat, layout, key):
        off, shape = layout[key]
        return flat[off:off + int(np.prod(shape))].reshape(shape)

    @property
    def n_outputs(self):
        return self.layers[-1].units

    @property
    def n_params(self):
        """Number of trainable scalars."""
        return self._params.size

    def reset_parameters(self, seed=None):
        """(Re-)initialise every weight from ``seed`` (default: the model's seed)."""
        rng = np.random.default_rng(self.seed if seed is None else check_random_seed(seed))
        n_in = self.n_inputs
        for i, layer in enumerate(self.layers):
            W = self._view(self._params, self._param_layout, f"{i}.W")
            shape = (n_in, layer.units)
            if layer.init == "zeros":
                W[...] = 0.0
            elif layer.init == "random":
                W[...] = rng.standard_normal(shape) * 0.01
            elif layer.init == "xavier":
                W[...] = rng.standard_normal(shape) * np.sqrt(1.0 / n_in)
            else:  # he
                W[...] = rng.standard_normal(shape) * np.sqrt(2.0 / n_in)
            if layer.batch_norm:
                self._view(self._params, self._param_layout, f"{i}.gamma")[...] = 1.0
                self._view(self._params, self._param_layout, f"{i}.beta")[...] = 0.0
                self._view(self._buffers, self._buffer_layout, f"{i}.running_mean")[...] = 0.0
                self._view(self._buffers, self._buffer_layout, f"{i}.running_var")[...] = 1.0
            else:
                self._view(self._params, self._param_layout, f"{i}.b")[...] = 0.0
            n_in = layer.units

    def _layer_table(self):
        """The layer table _core.Net takes: one row of ``_core.LAYER_SPEC_DTYPE`` per layer
        (offsets into the flat buffers, -1 where absent)."""
        table = np.full(len(self.layers), -1, dtype=_core.LAYER_SPEC_DTYPE)
        n_in = self.n_inputs
        for i, (row, layer) in enumerate(zip(table, self.layers)):
            row["n_in"], row["n_out"] = n_in, layer.units
            row["act"] = ACTIVATION_CODES[layer.activation]
            row["keep_prob"], row["batch_norm"] = layer.keep_prob, layer.batch_norm
            row["bn_momentum"] = layer.bn_momentum
            for name in ("W", "b", "gamma", "beta"):
                if f"{i}.{name}" in self._param_layout:
                    row[name] = self._param_layout[f"{i}.{name}"][0]
            for name in ("running_mean", "running_var"):
                if f"{i}.{name}" in self._buffer_layout:
                    row[name] = self._buffer_layout[f"{i}.{name}"][0]
            n_in = layer.units
        return table

    def _net(self, max_rows, n_threads):
        """The compiled network for batches of up to max_rows rows (built once, cached).  Any of
        them serves inference, whose workspace is each call's own."""
        key = (int(max_rows), int(n_threads))
        nets = self._nets  # one dict per call: another thread may replace self._nets
        net = nets.get(key)
        if net is None:
            net = _core.Net(self._layer_table(), self.loss_kind, self._params, self._grads,
                            self._buffers, key[0], key[1])
            if len(nets) >= 4:
                nets = {}
            nets[key] = net
            self._nets = nets
        return net

    # ---- weights -----------------------------------------------------------------------------

    def _all_keys(self):
        keys = []
        for i, layer in enumerate(self.layers):
            keys.append(f"{i}.W")
            if layer.batch_norm:
                keys += [f"{i}.gamma", f"{i}.beta", f"{i}.running_mean", f"{i}.running_var"]
            else:
                keys.append(f"{i}.b")
        return keys

    def _array(self, key):
        if key in self._param_layout:
            return self._view(self._params, self._param_layout, key)
        return self._view(self._buffers, self._buffer_layout, key)

    def get_weights(self):
        """Copies of every array: ``{"{i}.W", "{i}.b"}`` and, for batch-norm layers,
        ``{"{i}.gamma", "{i}.beta", "{i}.running_mean", "{i}.running_var"}``."""
        return {key: self._array(key).copy() for key in self._all_keys()}

    def set_weights(self, weights):
        """Copy ``weights`` (a dict as returned by :meth:`get_weights`) into the model.

        Every key must be present, with the same shape, a floating dtype (cast to the model's:
        float64 weights load into a float32 model, as ``torch``'s ``load_state_dict`` copies
        them), and finite values, also after the cast; nothing is copied unless all are."""
        if not isinstance(weights, dict):
            raise TypeError(f"weights must be a dict of arrays, got {_describe(weights)}")
        expected = self._all_keys()
        missing = [k for k in expected if k not in weights]
        extra = [k for k in weights if k not in expected]
        if missing or extra:
            raise ValueError(f"weights keys do not match the model: missing {missing}, "
                             f"unexpected {extra}")
        checked = {}
        for key in expected:
            value = weights[key]
            if not isinstance(value, np.ndarray):
                raise TypeError(f"weights[{key!r}] must be a numpy array, got {_describe(value)}")
            target = self._array(key)
            if value.shape != target.shape:
                raise ValueError(f"weights[{key!r}] must have shape {target.shape}, got "
                                 f"{value.shape}")
            if value.dtype.kind != "f":
                raise ValueError(f"weights[{key!r}] must have a floating dtype (it is cast to "
                                 f"the model's {self.dtype}), got {value.dtype}")
            if not np.all(np.isfinite(value)):
                raise ValueError(f"weights[{key!r}] must be finite, got NaN or infinity")
            if value.dtype != self.dtype:
                with np.errstate(over="ignore"):
                    value = value.astype(self.dtype)
                if not np.all(np.isfinite(value)):
                    raise ValueError(f"weights[{key!r}] must be finite in the model's "
                                     f"{self.dtype}; some values overflow it")
            if key.endswith("running_var") and np.any(value < 0):
                raise ValueError(f"weights[{key!r}] must be >= 0 (a variance)")
            checked[key] = value
        for key, value in checked.items():
            self._array(key)[...] = value

    def _grads_dict(self):
        return {key: self._view(self._grads, self._param_layout, key).copy()
                for key in self._param_layout}

    # ---- inputs ------------------------------------------------------------------------------

    def _prepare_X(self, X, name="X", standardize=True):
        """X validated and converted to the model's dtype; with standardize, also standardised
        (a NumPy pass; inference leaves that to the compiled call, see _input_map)."""
        X = validate_X(X, name, n_features=self.n_inputs, dtype=self.dtype)
        if standardize and self.standardizer is not None:
            X = np.ascontiguousarray(self.standardizer.transform(X), dtype=self.dtype)
        return X

    def _input_map(self):
        """The standardizer's (mean, scale) as the compiled inference applies them to each row
        block as the first layer reads it (the arithmetic of Standardizer.transform: float64,
        rounded once to the model's dtype), or (None, None)."""
        st = self.standardizer
        if st is None:
            return None, None
        mean = np.ascontiguousarray(st.mean_, dtype=np.float64)
        scale = np.ascontiguousarray(st.scale_, dtype=np.float64)
        if mean.shape != (self.n_inputs,) or scale.shape != (self.n_inputs,):
            raise ValueError(f"the standardizer was fitted on {mean.shape[0]} features, the "
                             f"model takes {self.n_inputs}")
        return mean, scale

    def _prepare_y(self, y, n_samples, name="y"):
        """Targets as the kernels take them: (labels int32, None) or (None, Y 2-D float)."""
        if self.task == "multiclass":
            if self.classes_ is not None:
                y = self._encode_labels(y, name)
            labels = validate_y(y, name, task="multiclass", n_samples=n_samples,
                                n_classes=self.n_outputs)
            return labels.astype(np.int32), None
        if self.task == "binary" and self.classes_ is not None and self.n_outputs == 1:
            y = self._encode_labels(y, name)
        Y = validate_y(y, name, task=self.task, n_samples=n_samples, n_outputs=self.n_outputs,
                       dtype=self.dtype)
        return None, np.ascontiguousarray(Y.reshape(n_samples, self.n_outputs))

    def _encode_labels(self, y, name):
        """Labels as indices into ``classes_``; labels not among them raise ``ValueError``."""
        return encode_labels(y, self.classes_, name)

    # ---- inference ---------------------------------------------------------------------------

    def forward(self, X, training=False, seed=None):
        """Network output on X: probabilities (softmax/sigmoid) or values (linear).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_inputs)
        training : bool, default False
            True applies dropout (masks drawn from ``seed``, default the model's seed) and batch
            statistics (which also updates the batch-norm running averages, as in PyTorch).

        Returns
        -------
        ndarray of shape (n_samples, n_outputs), the model's dtype

        Raises
        ------
        ValueError
            The output is NaN or infinite for some rows: the activations overflow the model's
            dtype (inputs too large for these weights, or weights that diverged).  No NaN is ever
            returned, nor turned into a class by ``predict``.
        """
        X = self._prepare_X(X, standardize=training)
        seed = self.seed if seed is None else check_random_seed(seed)
        n = X.shape[0]
        out = np.empty((n, self.n_outputs), dtype=self.dtype)
        n_threads = get_num_threads()
        if training:  # batch statistics need the whole batch in one call
            self._check_batch_statistics(n, training)
            with self._training("forward(training=True)"):
                self._net(n, n_threads).forward(X, out, True, seed, 0, n_threads)
            _check_output(out)
            return out
        _check_output(self._infer(X, out, n_threads, standardized=False))
        return out

    def _check_batch_statistics(self, m, training):
        """Batch norm in training mode normalises over the rows: one row has no variance (as in
        PyTorch, which raises "Expected more than 1 value per channel when training")."""
        if training and m == 1 and any(layer.batch_norm for layer in self.layers):
            raise ValueError("batch norm needs more than 1 row of X in training mode (the "
                             "variance of one row is 0); got 1 row with training=True")

    def _infer(self, X, out=None, n_threads=None, standardized=True):
        """Inference output on prepared X into out (allocated when None), NaN and all: the
        unchecked form of ``forward`` for callers that handle non-finite outputs themselves.
        standardized=False: X is not standardised yet; the compiled call does it."""
        mean, scale = (None, None) if standardized else self._input_map()
        if out is None:
            out = np.empty((X.shape[0], self.n_outputs), dtype=self.dtype)
        if n_threads is None:
            n_threads = get_num_threads()
        net = self._net(1, 1)  # inference reads the net; its workspace is the thread's own
        n = X.shape[0]
        # a call worth ~0.1 ms or more sizes its team for the load of the moment
        team = enter_call(n_threads, n * self._macs_per_row >= 5e6)
        try:
            if n <= _INFER_ROWS:
                net.infer(X, out, team, mean, scale)
                return out
            for start in range(0, n, _INFER_ROWS):
                stop = min(n, start + _INFER_ROWS)
                net.infer(X[start:stop], out[start:stop], team, mean, scale)
        finally:
            leave_call()
        return out

    def predict_proba(self, X):
        """Output probabilities of a softmax (n_samples, n_classes) or sigmoid
        (n_samples, units) model."""
        if self.task == "regression":
            raise ValueError("predict_proba needs a softmax or sigmoid output; this model's "
                             "output is linear (use predict)")
        return self.forward(X)

    def predict(self, X):
        """Labels (softmax: argmax, mapped through ``classes_``; sigmoid: output > 0.5) or
        values (linear).  One output unit gives shape (n_samples,)."""
        out = self.forward(X)
        if self.task == "multiclass":
            idx = out.argmax(axis=1)
            return self.classes_[idx] if self.classes_ is not None else idx
        if self.task == "binary":
            pred = (out > 0.5).astype(np.int64)
            if self.classes_ is not None:
                pred = self.classes_[pred]
            return pred[:, 0] if self.n_outputs == 1 else pred
        return out[:, 0] if self.n_outputs == 1 else out

    def evaluate(self, X, y):
        """Inference-mode ``(loss, error)`` on (X, y): the mean data loss (no L2 term) and the
        error rate (fraction misclassified; NaN for a linear output)."""
        X = self._prepare_X(X, standardize=False)
        labels, Y = self._prepare_y(y, X.shape[0])
        return self._evaluate_prepared(X, labels, Y, standardized=False)

    def _evaluate_prepared(self, X, labels, Y, standardized=True):
        mean, scale = (None, None) if standardized else self._input_map()
        n = X.shape[0]
        n_threads = get_num_threads()
        net = self._net(1, 1)  # inference reads the net; its workspace is each call's own
        total_loss, total_err = 0.0, 0
        team = enter_call(n_threads, n * self._macs_per_row >= 5e6)
        try:
            for start in range(0, n, _CHUNK_ROWS):
                stop = min(n, start + _CHUNK_ROWS)
                loss, err = net.evaluate(X[start:stop],
                                         None if labels is None else labels[start:stop],
                                         None if Y is None else Y[start:stop], team,
                                         mean, scale)
                total_loss += loss * (stop - start)
                total_err += err
        finally:
            leave_call()
        units = 1 if self.task == "multiclass" else self.n_outputs
        error = total_err / (n * units) if self.task != "regression" else float("nan")
        return total_loss / n, error

    def loss_and_grads(self, X, y, *, l2=0.0, training=False, seed=None):
        """Cost and gradients on (X, y) in one forward/backward pass.

        ``cost = J + l2/(2m) * sum_layers ||W||^2`` with ``m = len(X)``; ``dW`` includes
        ``(l2/m) W``.  ``training=True`` applies dropout (masks fixed by ``seed``, default the
        model's seed: same seed, same masks) and batch statistics.

        Returns
        -------
        cost : float
        grads : dict of str -> ndarray
            Keyed like :meth:`get_weights` (trainable arrays only: W, b, gamma, beta).
        """
        X = self._prepare_X(X)
        labels, Y = self._prepare_y(y, X.shape[0])
        l2 = check_scalar(l2, "l2", "float", low=0.0)
        seed = self.seed if seed is None else check_random_seed(seed)
        m = X.shape[0]
        self._check_batch_statistics(m, training)
        n_threads = get_num_threads()
        with self._training("loss_and_grads"):
            loss, sum_w2, _ = self._net(m, n_threads).loss_grad(X, labels, Y, bool(training),
                                                                seed, 0, l2 / m, n_threads)
        cost = loss + l2 / (2.0 * m) * sum_w2
        return float(cost), self._grads_dict()

    # ---- files -------------------------------------------------------------------------------

    def get_config(self):
        """JSON-able architecture: ``MLP.from_config(config)`` rebuilds it (untrained)."""
        return {"n_inputs": self.n_inputs, "layers": [l.get_config() for l in self.layers],
                "dtype": self.dtype.name, "seed": self.seed}

    @classmethod
    def from_config(cls, config):
        return cls(config["n_inputs"], [Dense(**c) for c in config["layers"]],
                   dtype=config["dtype"], seed=config["seed"])

    def save(self, path):
        """Write the model to ``path`` as a safetensors file (see :func:`fastnn.load`)."""
        save_model(self, path)

    @classmethod
    def _from_saved(cls, saved):
        """The model of a checked file (``fastnn.io.SavedModel``)."""
        config = saved.config
        try:
            model = cls(config["n_inputs"], saved.layers, dtype=config["dtype"],
                        seed=config["seed"])
        except (TypeError, ValueError) as exc:  # a chain no MLP takes (softmax inside, ...)
            raise FormatError(f"{saved.path}: invalid architecture: {exc}") from None
        model.set_weights(saved.weights)
        model.standardizer, model.classes_ = saved.standardizer, saved.classes
        if saved.training is not None:
            model.training_config_ = saved.training
        return model

    def copy(self, dtype=None):
        """An independent copy (optionally converted to another dtype)."""
        config = self.get_config()
        if dtype is not None:
            config["dtype"] = np.dtype(dtype).name
        clone = MLP.from_config(config)
        clone.set_weights({k: v.astype(clone.dtype) for k, v in self.get_weights().items()})
        clone.standardizer = self.standardizer
        clone.classes_ = None if self.classes_ is None else self.classes_.copy()
        return clone

    def __repr__(self):
        inner = ", ".join(repr(l) for l in self.layers)
        return f"MLP(n_inputs={self.n_inputs}, layers=[{inner}], dtype={self.dtype.name!r})"

    def __getstate__(self):
        # The compiled networks hold raw pointers and a lock is no state: neither is kept.
        state = self.__dict__.copy()
        state["_nets"] = {}
        state.pop("_train_lock", None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.__dict__["_train_lock"] = threading.Lock()
        if isinstance(self.__dict__.get("layers"), list):
            self.__dict__["layers"] = tuple(self.__dict__["layers"])
        # Buffers loaded read-only (e.g. joblib's mmap_mode="r") are copied: kernels write them.
        for name in ("_params", "_grads", "_buffers"):
            arr = getattr(self, name)
            if not (arr.flags.writeable and arr.flags.c_contiguous):
                setattr(self, name, np.array(arr, order="C", copy=True))


def load(path):
    """Load a model written by ``MLP.save`` (or the model of a checkpoint).

    Raises
    ------
    TypeError
        ``path`` is not a str or os.PathLike.
    FormatError
        The file is truncated, corrupt, foreign, of a newer format version, inconsistent, or
        not a regular file (a ValueError).
    OSError
        The file cannot be opened.
    """
    return MLP._from_saved(read_model(path))
