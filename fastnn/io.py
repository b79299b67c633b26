"""Model and checkpoint files: safetensors containers, written atomically, checked before use.

Design: the arrays go under their weight keys (``"0.W"``, ...; a checkpoint adds
``"optim.exp_avg.0.W"``, ...); everything else is JSON in the string metadata: ``format``,
``format_version``, ``architecture``, ``dtype``, ``standardizer``, ``classes``, ``training`` (a
checkpoint adds ``state``) and a SHA-256 ``checksum`` of the whole file, taken with the
checksum's own 64 hex digits read as zeros, so that a changed bit anywhere (header, metadata or
data) is caught.  Format version 1 files, whose checksum covers the data section only, are still
read, with every other check.

Loading never unpickles and reads regular files only (``fastnn._files``).  It checks, in this
order: the container (header length within the file, header JSON of bounded size and nesting,
dtypes F32/F64, offsets tiling the data section exactly, the file's size); format and version;
the checksum; every metadata field, against the tensor table (layer sizes chaining layer to
layer, dtype, class count, standardizer width, optimizer state, counters); the values (finite,
variances >= 0).  Only then is the model allocated.  Whatever is wrong with the file raises
:class:`FormatError` naming it.  Any safetensors reader (PyTorch, JAX) opens the weights.
"""
import hashlib
import json
import math
import re
import struct

import numpy as np

from ._files import FormatError, atomic_write, check_path, open_regular, parse_json, read_exact
from ._validation import check_scalar
from .data import Standardizer
from .ewa import EWA
from .history import History
from .layers import OUTPUT_LOSSES, Dense, _layout
from .optim import get_optimizer
from .schedules import Constant, Schedule

# load and load_checkpoint: old names, forwarded by __getattr__ below
__all__ = ["FormatError", "read_model", "read_checkpoint", "save_model", "save_checkpoint",  # noqa: F822
           "load", "load_checkpoint"]

FORMAT_VERSION = 2  # 2: the checksum covers the whole file; 1: the data section only
_MODEL, _CHECKPOINT = "fastnn.mlp", "fastnn.checkpoint"
_DTYPES = {"F32": np.dtype("<f4"), "F64": np.dtype("<f8")}
_MAX_HEADER = 100 * 1024 * 1024
_ZERO_DIGEST = "0" * 64
_DIGEST = re.compile(r"[0-9a-f]{64}")

# The metadata fields of each kind of file, and how deep each one's JSON may nest.
_MODEL_FIELDS = {"architecture": 3, "standardizer": 2, "classes": 1, "training": 2}
_CHECKPOINT_FIELDS = dict(_MODEL_FIELDS, state=3)
_FIXED_FIELDS = ("format", "format_version", "dtype", "checksum")
_TRAINING_KEYS = {"optimizer", "schedule", "l2", "batch_size", "shuffle", "seed"}
_STATE_KEYS = {"epoch", "step", "optimizer_step", "history"}  # and optionally "loss_ewa"
_MOMENTS = ("exp_avg", "exp_avg_sq")


# ---- writing --------------------------------------------------------------------------------

def _serialize(tensors, metadata):
    """safetensors bytes whose metadata holds the SHA-256 of the whole file (taken with the
    checksum's digits as zeros)."""
    from safetensors.numpy import save
    tensors = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
    out = bytearray(save(tensors, metadata=dict(metadata, checksum=_ZERO_DIGEST)))
    n = struct.unpack("<Q", out[:8])[0]
    field = b'"checksum":"' + _ZERO_DIGEST.encode() + b'"'
    at = out.find(field, 8, 8 + n)
    if at < 0 or out.find(field, at + 1, 8 + n) >= 0:
        raise RuntimeError("safetensors wrote the checksum field in an unexpected form")
    start = at + len(b'"checksum":"')
    out[start:start + 64] = hashlib.sha256(out).hexdigest().encode()
    return out


def _model_metadata(model, kind):
    """The metadata of a model (checked as a loader will check it: a file that would be
    refused is not written)."""
    std = model.standardizer
    classes = None if model.classes_ is None else np.asarray(model.classes_).tolist()
    meta = {"format": kind, "format_version": str(FORMAT_VERSION),
            "architecture": json.dumps(model.get_config()), "dtype": model.dtype.name,
            "standardizer": json.dumps(None if std is None else std.to_dict()),
            "classes": json.dumps(classes)}
    try:
        _check_standardizer("the model's standardizer", json.loads(meta["standardizer"]),
                            model.n_inputs)
        _check_classes("the model's classes_", json.loads(meta["classes"]), model.task,
                       model.n_outputs)
    except FormatError as exc:
        raise ValueError(f"cannot save: {exc}") from None
    return meta


def save_model(model, path):
    """Write ``model`` to ``path`` (see the module docstring); atomic."""
    meta = _model_metadata(model, _MODEL)
    training = getattr(model, "training_config_", None)
    try:
        _check_training("the model's training_config_", json.loads(json.dumps(training)),
                        required=False)
    except (FormatError, TypeError, ValueError) as exc:
        raise ValueError(f"cannot save: {exc}") from None
    meta["training"] = json.dumps(training)
    atomic_write(path, _serialize(model.get_weights(), meta))


def save_checkpoint(trainer, path):
    """Write a Trainer's model, optimizer state, counters and history to ``path``; atomic."""
    model, opt = trainer.model, trainer.optimizer
    tensors = model.get_weights()
    for which in _MOMENTS:
        if which in opt.state:
            # Moments not there yet (no step taken) are zeros, as the first step takes them.
            for key, (_, shape) in model._param_layout.items():
                arr = opt.state[which].get(key)
                if arr is not None and np.shape(arr) != shape:
                    raise ValueError(f"cannot save: the optimizer's {which}[{key!r}] has shape "
                                     f"{np.shape(arr)}, the parameter {shape}")
                tensors[f"optim.{which}.{key}"] = (np.zeros(shape, model.dtype) if arr is None
                                                   else np.array(arr, dtype=model.dtype))
    meta = _model_metadata(model, _CHECKPOINT)
    config = trainer.get_config()
    if config["schedule"] is None and not _is_constant(trainer.schedule):
        raise ValueError("save_checkpoint cannot store a plain-callable schedule; use one of "
                         "fastnn.schedules (they have get_config)")
    meta["training"] = json.dumps(config)
    meta["state"] = json.dumps({"epoch": trainer.epoch, "step": trainer.step,
                                "optimizer_step": opt.state["step"],
                                "loss_ewa": trainer._smooth.to_dict(),
                                "history": trainer.history.history})
    atomic_write(path, _serialize(tensors, meta))


def _is_constant(schedule):
    return isinstance(schedule, Constant)


# ---- reading: the container -----------------------------------------------------------------

class _Container:
    """A checked file: ``tensors`` {key: (dtype, shape, start)}, ``meta`` {field: str}, the
    data section, and the path for messages."""

    def __init__(self, path, tensors, meta, data):
        self.path, self.tensors, self.meta, self.data = path, tensors, meta, data

    def error(self, message):
        return FormatError(f"{self.path}: {message}")

    def field(self, name):
        """A metadata field's JSON, parsed with its nesting bounded."""
        return parse_json(self.meta[name], f"{self.path}: metadata field {name!r}",
                          _CHECKPOINT_FIELDS[name])

    def array(self, key):
        """The tensor ``key`` in native byte order (a view of the data section where that is
        little-endian)."""
        dtype, shape, start = self.tensors[key]
        arr = np.frombuffer(self.data, dtype=dtype, count=math.prod(shape), offset=start)
        return arr.reshape(shape).astype(dtype.newbyteorder("="), copy=False)


def _read_container(path, kinds):
    """Read and check a file's container, format, version and checksum (see the module
    docstring); nothing is allocated beyond the file's own size."""
    path = check_path(path)
    f, size = open_regular(path)
    with f:
        if size < 8:
            raise FormatError(f"{path}: truncated file ({size} bytes; no safetensors header)")
        prefix = read_exact(f, 8, path)
        n = struct.unpack("<Q", prefix)[0]
        if n > min(size - 8, _MAX_HEADER):
            raise FormatError(f"{path}: header size {n} exceeds the file ({size} bytes): "
                              f"truncated or not a safetensors file")
        raw = read_exact(f, n, path)
        tensors, meta, data_size = _parse_header(path, raw)
        kind = meta.get("format")
        if kind not in kinds:
            raise FormatError(f"{path}: format {kind!r} is not {' or '.join(map(repr, kinds))}")
        version = meta.get("format_version")
        if version not in [str(v) for v in range(1, FORMAT_VERSION + 1)]:
            if isinstance(version, str) and version.isdigit() and int(version) > FORMAT_VERSION:
                raise FormatError(f"{path}: format_version {version} is newer than this fastnn "
                                  f"understands ({FORMAT_VERSION}); upgrade fastnn")
            raise FormatError(f"{path}: bad format_version {version!r}")
        fields = _CHECKPOINT_FIELDS if kind == _CHECKPOINT else _MODEL_FIELDS
        expected = set(_FIXED_FIELDS) | set(fields)
        unknown, missing = sorted(set(meta) - expected), sorted(expected - set(meta))
        if unknown or missing:
            raise FormatError(f"{path}: metadata fields: unknown {unknown}, missing {missing}")
        if 8 + n + data_size != size:
            raise FormatError(f"{path}: the header accounts for {8 + n + data_size} bytes, the "
                              f"file has {size}: truncated or extended")
        data = read_exact(f, data_size, path)
    checksum = meta["checksum"]
    if not _DIGEST.fullmatch(checksum):
        raise FormatError(f"{path}: the checksum {checksum[:80]!r} is not a SHA-256 digest")
    if version == "1":
        digest = hashlib.sha256(data).hexdigest()
    else:
        if raw.count(checksum.encode()) != 1:
            raise FormatError(f"{path}: checksum mismatch: the file is corrupt")
        h = hashlib.sha256(prefix)
        h.update(raw.replace(checksum.encode(), _ZERO_DIGEST.encode()))
        h.update(data)
        digest = h.hexdigest()
    if digest != checksum:
        raise FormatError(f"{path}: checksum mismatch: the file is corrupt")
    return _Container(path, tensors, meta, data)


def _parse_header(path, raw):
    """(tensors, metadata, size of the data section) from the header bytes."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise FormatError(f"{path}: the header is not UTF-8 text") from None
    header = parse_json(text, f"{path}: the header", 3)
    if not isinstance(header, dict):
        raise FormatError(f"{path}: the header is not a JSON object")
    meta = header.pop("__metadata__", None)
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise FormatError(f"{path}: no fastnn metadata (not a fastnn file)")
    tensors, spans = {}, []
    for key, entry in header.items():
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            raise FormatError(f"{path}: tensor {key!r} has a malformed entry")
        if not isinstance(entry["dtype"], str) or entry["dtype"] not in _DTYPES:
            raise FormatError(f"{path}: tensor {key!r} has dtype {entry['dtype']!r:.40}; only "
                              f"F32 and F64 are allowed")
        shape, offs = entry["shape"], entry["data_offsets"]
        if (not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape)
                or not isinstance(offs, list) or len(offs) != 2
                or not all(_is_int(o) for o in offs)):
            raise FormatError(f"{path}: tensor {key!r} has a malformed shape or offsets")
        dtype = _DTYPES[entry["dtype"]]
        if offs[1] - offs[0] != math.prod(shape) * dtype.itemsize:
            raise FormatError(f"{path}: tensor {key!r}: offsets {offs} do not hold shape "
                              f"{shape} of {entry['dtype']}")
        tensors[key] = (dtype, tuple(shape), offs[0])
        spans.append((offs[0], offs[1], key))
    end = 0
    for start, stop, key in sorted(spans):  # the tensors must tile the data section
        if start != end:
            raise FormatError(f"{path}: tensor {key!r} at offsets [{start}, {stop}] "
                              f"{'overlaps another' if start < end else 'leaves a gap'}: the "
                              f"data section must be covered exactly once")
        end = stop
    return tensors, meta, end


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


# ---- reading: the metadata, cross-checked ---------------------------------------------------

def _check_standardizer(what, state, n_inputs):
    """A Standardizer from its saved state (or None), fitted, of the model's width."""
    if state is None:
        return None
    try:
        std = Standardizer.from_dict(state)
    except (KeyError, TypeError, ValueError) as exc:
        raise FormatError(f"{what}: invalid standardizer: {exc}") from None
    if std.mean_ is None:
        raise FormatError(f"{what}: the standardizer is not fitted")
    if std.n_features_in_ != n_inputs:
        raise FormatError(f"{what}: the standardizer has {std.n_features_in_} features, the "
                          f"model {n_inputs} inputs")
    return std


def _check_classes(what, classes, task, n_outputs):
    """Class labels (or None): one per softmax unit (two for a sigmoid output), all of one JSON
    type, strictly increasing (labels are looked up by binary search)."""
    if classes is None:
        return None
    if task == "regression":
        raise FormatError(f"{what}: classes given for a model with a linear output")
    want = n_outputs if task == "multiclass" else 2
    if not isinstance(classes, list) or len(classes) != want:
        got = f"{len(classes)} labels" if isinstance(classes, list) else type(classes).__name__
        raise FormatError(f"{what}: classes must be a list of {want} labels for this output "
                          f"layer, got {got}")
    kinds = {type(label) for label in classes}
    if len(kinds) != 1 or not kinds <= {str, int, float, bool}:
        raise FormatError(f"{what}: classes must all be strings, all integers, all floats or "
                          f"all booleans, got {sorted(k.__name__ for k in kinds)}")
    labels = np.asarray(classes)
    if labels.dtype.kind not in "USifb" or not np.all(labels[1:] > labels[:-1]):
        raise FormatError(f"{what}: classes must be sorted and distinct, got "
                          f"{classes[:10]!r}{' ...' if len(classes) > 10 else ''}")
    return labels


def _check_training(what, config, required):
    """(optimizer, schedule, Trainer keyword arguments) from a Trainer config, or None."""
    if config is None and not required:
        return None
    if not isinstance(config, dict) or set(config) != _TRAINING_KEYS:
        raise FormatError(f"{what}: the training config must be an object with exactly the "
                          f"keys {sorted(_TRAINING_KEYS)}")
    try:
        if not isinstance(config["optimizer"], dict):
            raise TypeError("the optimizer config must be an object")
        optimizer = get_optimizer(config["optimizer"])
        schedule = config["schedule"]
        if schedule is not None:
            schedule = Schedule.from_config(schedule)
        if not isinstance(config["shuffle"], bool):
            raise TypeError(f"shuffle must be a bool, got {config['shuffle']!r}")
        kwargs = {"l2": check_scalar(config["l2"], "l2", "float", low=0.0),
                  "batch_size": check_scalar(config["batch_size"], "batch_size", "int", low=1),
                  "shuffle": config["shuffle"],
                  "seed": check_scalar(config["seed"], "seed", "int", low=0)}
    except (KeyError, TypeError, ValueError) as exc:
        raise FormatError(f"{what}: invalid training config: {exc}") from None
    return optimizer, schedule, kwargs


def _check_state(c):
    """A checkpoint's counters, smoothed loss and history, checked against each other."""
    state = c.field("state")
    if not (isinstance(state, dict) and _STATE_KEYS <= set(state) <= _STATE_KEYS | {"loss_ewa"}):
        raise c.error(f"state must be an object with the keys {sorted(_STATE_KEYS)} (and "
                      f"optionally 'loss_ewa')")
    for name in ("epoch", "step", "optimizer_step"):
        if not (_is_int(state[name]) and state[name] >= 0):
            raise c.error(f"state[{name!r}] must be an integer >= 0, got {state[name]!r}")
    smooth = state.get("loss_ewa")
    if smooth is not None:  # absent in older checkpoints: starts afresh
        try:
            smooth = EWA.from_dict(smooth)
        except (KeyError, TypeError, ValueError) as exc:
            raise c.error(f"invalid state['loss_ewa']: {exc}") from None
    history, epochs = state["history"], state["epoch"]
    if not isinstance(history, dict) or set(history) != set(History.KEYS):
        raise c.error(f"state['history'] must have exactly the keys {list(History.KEYS)}")
    for key, values in history.items():
        if not isinstance(values, list) or len(values) != epochs:
            raise c.error(f"state['history'][{key!r}] must hold one value per epoch completed "
                          f"({epochs})")
        if not all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))
                   for v in values):
            raise c.error(f"state['history'][{key!r}] must hold numbers")
    if history["epoch"] != list(range(epochs)):
        raise c.error("state['history']['epoch'] must count the epochs 0, 1, ...")
    return state, smooth


def _check_values(c, key, what):
    arr = c.array(key)
    if not np.all(np.isfinite(arr)):
        raise c.error(f"{what} {key!r} holds NaN or infinite values")
    if (key.endswith(".running_var") or key.startswith("optim.exp_avg_sq.")) and np.any(arr < 0):
        raise c.error(f"{what} {key!r} holds negative values (it is a mean of squares)")


class SavedModel:
    """What a model file holds, every part checked; nothing big allocated yet beyond the file's
    own bytes.  ``MLP._from_saved`` builds the model from it.

    Attributes
    ----------
    path : str
        The file, for messages.
    config : dict
        The architecture (``MLP.get_config()``); ``layers`` the ``Dense`` layers it lists.
    weights : dict
        ``{key: array}`` of every parameter and running statistic, shapes checked against the
        architecture, values finite.
    standardizer : fastnn.data.Standardizer or None
    classes : ndarray or None
    training : dict or None
        The saved Trainer config (model files only; ``None`` in a checkpoint's model).
    """

    def __init__(self, c):
        config = c.field("architecture")
        if not isinstance(config, dict) or set(config) != {"n_inputs", "layers", "dtype", "seed"}:
            raise c.error("invalid architecture: must be an object with exactly the keys "
                          "n_inputs, layers, dtype, seed")
        dense_keys = set(Dense(1).get_config())
        try:
            if not (_is_int(config["n_inputs"]) and config["n_inputs"] >= 1):
                raise ValueError(f"n_inputs must be an integer >= 1, got {config['n_inputs']!r}")
            if not (isinstance(config["layers"], list) and config["layers"]):
                raise ValueError("layers must be a non-empty list")
            for i, layer in enumerate(config["layers"]):
                if not isinstance(layer, dict) or set(layer) != dense_keys:
                    raise ValueError(f"layers[{i}] must be an object with exactly the keys "
                                     f"{sorted(dense_keys)}")
            layers = [Dense(**layer) for layer in config["layers"]]
            if layers[-1].activation not in OUTPUT_LOSSES:
                raise ValueError(f"the output activation must be one of {sorted(OUTPUT_LOSSES)}")
        except (TypeError, ValueError) as exc:
            raise c.error(f"invalid architecture: {exc}") from None
        if config["dtype"] not in ("float32", "float64") or c.meta["dtype"] != config["dtype"]:
            raise c.error(f"dtype {c.meta['dtype']!r} does not match the architecture's "
                          f"{config['dtype']!r}")
        params, buffers = _layout(config["n_inputs"], layers)
        shapes = {key: shape for key, (_, shape) in {**params, **buffers}.items()}
        for key, shape in shapes.items():
            if key not in c.tensors:
                raise c.error(f"tensor {key!r} is missing")
            dtype, got, _ = c.tensors[key]
            if got != shape:
                raise c.error(f"tensor {key!r} has shape {got}, the architecture needs {shape} "
                              f"(shapes must chain layer to layer)")
            if dtype.name != config["dtype"]:
                raise c.error(f"tensor {key!r} is {dtype.name}, the model is {config['dtype']}")
        out = layers[-1]
        self.standardizer = _check_standardizer(c.path, c.field("standardizer"),
                                                config["n_inputs"])
        self.classes = _check_classes(c.path, c.field("classes"),
                                      OUTPUT_LOSSES[out.activation][1], out.units)
        self.path, self.config, self.layers = c.path, config, layers
        self.params, self.shapes = params, shapes
        self.weights, self.training = None, None

    def read_weights(self, c):
        """Check the tensors' values and keep them (the last step of reading)."""
        for key in self.shapes:
            _check_values(c, key, "tensor")
        self.weights = {key: c.array(key) for key in self.shapes}

    def error(self, message):
        return FormatError(f"{self.path}: {message}")


class SavedCheckpoint:
    """What a checkpoint holds, every part checked.  ``Trainer.load_checkpoint`` builds the
    trainer from it.

    Attributes
    ----------
    model : SavedModel
    optimizer : fastnn.optim.Optimizer
        Built from its config, with empty state.
    schedule : fastnn.schedules.Schedule or None
    trainer_kwargs : dict
        ``l2``, ``batch_size``, ``shuffle``, ``seed``.
    moments : dict
        ``{(which, key): array}``: the optimizer's moments (``which`` in ``exp_avg``,
        ``exp_avg_sq``) of each parameter.
    state : dict
        ``epoch``, ``step``, ``optimizer_step`` and ``history`` (lists, ``None`` for NaN).
    loss_ewa : fastnn.EWA or None
        The smoothed loss (absent from older checkpoints).
    """

    def __init__(self, c):
        plan = SavedModel(c)
        self.optimizer, self.schedule, self.trainer_kwargs = _check_training(
            c.path, c.field("training"), required=True)
        moments = {}
        for which in _MOMENTS:
            if which not in self.optimizer.state:
                continue
            for key, (_, shape) in plan.params.items():
                name = f"optim.{which}.{key}"
                if name not in c.tensors:
                    raise c.error(f"optimizer state {name!r} is missing")
                dtype, got, _ = c.tensors[name]
                if got != shape or dtype != c.tensors[key][0]:
                    raise c.error(f"optimizer state {name!r} has shape {got} and dtype "
                                  f"{dtype.name}; its parameter has {shape} and "
                                  f"{c.tensors[key][0].name}")
                moments[name] = (which, key)
        _check_no_other_tensors(c, list(plan.shapes) + list(moments))
        self.state, self.loss_ewa = _check_state(c)
        for name in moments:
            _check_values(c, name, "optimizer state")
        plan.read_weights(c)
        self.model = plan
        self.moments = {(which, key): c.array(name) for name, (which, key) in moments.items()}


def _check_no_other_tensors(c, expected):
    extra = sorted(set(c.tensors) - set(expected))
    if extra:
        raise c.error(f"unexpected tensors {extra[:5]}{' ...' if len(extra) > 5 else ''}")


def read_model(path):
    """The checked contents of a model file written by ``MLP.save`` (or the model of a
    checkpoint), for ``fastnn.load`` to build the model from.

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
    c = _read_container(path, (_MODEL, _CHECKPOINT))
    if c.meta["format"] == _CHECKPOINT:
        return SavedCheckpoint(c).model
    saved = SavedModel(c)
    training = c.field("training")
    _check_training(c.path, training, required=False)
    _check_no_other_tensors(c, saved.shapes)
    saved.read_weights(c)
    saved.training = training
    return saved


def read_checkpoint(path):
    """The checked contents of a checkpoint written by ``Trainer.save_checkpoint`` (errors as
    for :func:`read_model`)."""
    return SavedCheckpoint(_read_container(path, (_CHECKPOINT,)))


def __getattr__(name):
    # The loaders build models and trainers, so they live with them (fastnn.load and
    # Trainer.load_checkpoint); their old names here keep working.
    if name == "load":
        from .model import load
        return load
    if name == "load_checkpoint":
        from .trainer import load_checkpoint
        return load_checkpoint
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
