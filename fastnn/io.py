"""Model and checkpoint files: safetensors containers, written atomically, checked before use.

Design: the arrays go under their weight keys (``"0.W"``, ...; a checkpoint adds
``"optim.exp_avg.0.W"``, ...); everything else is JSON in the string metadata: ``format``,
``format_version``, ``architecture``, ``dtype``, ``standardizer``, ``classes``, ``training`` and
a SHA-256 ``checksum`` of the data section.  Loading parses and checks the header itself (size,
dtypes F32/F64 only, offsets, shapes chaining layer to layer, format and version, checksum)
before any array is built, and never unpickles; whatever is wrong with the file's content raises
:class:`FormatError` naming it.  Any safetensors reader (PyTorch, JAX) opens the weights.
"""
import hashlib
import json
import math
import os
import struct
import tempfile

import numpy as np

__all__ = ["FormatError", "load", "save_model", "save_checkpoint", "load_checkpoint"]

FORMAT_VERSION = 1
_MODEL, _CHECKPOINT = "fastnn.mlp", "fastnn.checkpoint"
_DTYPES = {"F32": np.dtype("<f4"), "F64": np.dtype("<f8")}
_MAX_HEADER = 100 * 1024 * 1024


class FormatError(ValueError):
    """A file is not a valid fastnn model/checkpoint: truncated, corrupt, foreign or newer."""


# ---- writing --------------------------------------------------------------------------------

def _serialize(tensors, metadata):
    """safetensors bytes with a checksum of the data section in the metadata."""
    from safetensors.numpy import save
    tensors = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
    raw = save(tensors, metadata=dict(metadata, checksum=""))
    n = struct.unpack("<Q", raw[:8])[0]
    digest = hashlib.sha256(raw[8 + n:]).hexdigest()
    out = save(tensors, metadata=dict(metadata, checksum=digest))
    n2 = struct.unpack("<Q", out[:8])[0]
    if out[8 + n2:] != raw[8 + n:]:  # the data section must not depend on the header
        raise RuntimeError("safetensors laid the data out differently between two writes")
    return out


def _current_umask():
    """The process's umask, read without changing it where the kernel reports it (Linux 4.7+:
    /proc/self/status), so that threads creating files meanwhile never see a umask of 0.
    Elsewhere it is read by setting and restoring it."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    umask = os.umask(0)
    os.umask(umask)
    return umask


def _atomic_write(path, data):
    """Write bytes to path via a temporary file in the same folder, fsync, os.replace."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".fastnn-", suffix=".tmp", dir=folder)
    try:
        # mkstemp creates the file 0600; give it the permissions open() would (0666 & ~umask)
        os.chmod(tmp, 0o666 & ~_current_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename durable too (best effort: not every platform opens folders)
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def _model_metadata(model, kind):
    std = model.standardizer
    classes = None if model.classes_ is None else np.asarray(model.classes_).tolist()
    return {"format": kind, "format_version": str(FORMAT_VERSION),
            "architecture": json.dumps(model.get_config()), "dtype": model.dtype.name,
            "standardizer": json.dumps(None if std is None else std.to_dict()),
            "classes": json.dumps(classes)}


def save_model(model, path):
    """Write ``model`` to ``path`` (see the module docstring); atomic."""
    meta = _model_metadata(model, _MODEL)
    meta["training"] = json.dumps(getattr(model, "training_config_", None))
    _atomic_write(path, _serialize(model.get_weights(), meta))


def save_checkpoint(trainer, path):
    """Write a Trainer's model, optimizer state, counters and history to ``path``; atomic."""
    model, opt = trainer.model, trainer.optimizer
    tensors = model.get_weights()
    for which in ("exp_avg", "exp_avg_sq"):
        for key, arr in opt.state.get(which, {}).items():
            tensors[f"optim.{which}.{key}"] = np.array(arr, dtype=model.dtype)
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
    _atomic_write(path, _serialize(tensors, meta))


def _is_constant(schedule):
    from .schedules import Constant
    return isinstance(schedule, Constant)


# ---- reading --------------------------------------------------------------------------------

def _read_container(path, kinds):
    """(header entries, metadata, data bytes) after checking the container's structure."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise FormatError(f"{path}: truncated file ({len(blob)} bytes; no safetensors header)")
    n = struct.unpack("<Q", blob[:8])[0]
    if n > min(len(blob) - 8, _MAX_HEADER):
        raise FormatError(f"{path}: header size {n} exceeds the file ({len(blob)} bytes): "
                          f"truncated or not a safetensors file")
    try:
        header = json.loads(blob[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FormatError(f"{path}: the header is not valid JSON ({exc})") from None
    if not isinstance(header, dict):
        raise FormatError(f"{path}: the header is not a JSON object")
    meta = header.pop("__metadata__", None)
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise FormatError(f"{path}: no fastnn metadata (not a fastnn file)")
    fmt = meta.get("format")
    if fmt not in kinds:
        raise FormatError(f"{path}: format {fmt!r} is not {' or '.join(map(repr, kinds))}")
    try:
        version = int(meta.get("format_version", ""))
    except ValueError:
        raise FormatError(f"{path}: bad format_version {meta.get('format_version')!r}") from None
    if version > FORMAT_VERSION:
        raise FormatError(f"{path}: format_version {version} is newer than this fastnn "
                          f"understands ({FORMAT_VERSION}); upgrade fastnn")
    if version < 1:
        raise FormatError(f"{path}: bad format_version {version}")
    data = blob[8 + n:]
    for key, entry in header.items():
        if not isinstance(entry, dict) or entry.get("dtype") not in _DTYPES:
            dt = entry.get("dtype") if isinstance(entry, dict) else entry
            raise FormatError(f"{path}: tensor {key!r} has dtype {dt!r}; only F32 and F64 are "
                              f"allowed")
        shape, offs = entry.get("shape"), entry.get("data_offsets")
        if (not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape)
                or not isinstance(offs, list) or len(offs) != 2
                or not all(isinstance(o, int) for o in offs)):
            raise FormatError(f"{path}: tensor {key!r} has a malformed shape or offsets")
        size = math.prod(shape) * _DTYPES[entry["dtype"]].itemsize
        if not (0 <= offs[0] <= offs[1] <= len(data)) or offs[1] - offs[0] != size:
            raise FormatError(f"{path}: tensor {key!r} lies outside the data section "
                              f"(truncated or corrupt file)")
    digest = hashlib.sha256(data).hexdigest()
    if meta.get("checksum") != digest:
        raise FormatError(f"{path}: checksum mismatch: the data section is corrupt")
    return header, meta, data


def _json_field(path, meta, name):
    try:
        return json.loads(meta[name])
    except (KeyError, json.JSONDecodeError):
        raise FormatError(f"{path}: metadata field {name!r} is missing or not JSON") from None


def _tensor(header, data, key):
    entry = header[key]
    start, stop = entry["data_offsets"]
    arr = np.frombuffer(data, dtype=_DTYPES[entry["dtype"]], count=math.prod(entry["shape"]),
                        offset=start) if stop > start else np.zeros(0, _DTYPES[entry["dtype"]])
    return arr.reshape(entry["shape"]).astype(_DTYPES[entry["dtype"]].newbyteorder("="))


def _build_model(path, header, meta, data):
    from .data import Standardizer
    from .model import MLP
    config = _json_field(path, meta, "architecture")
    try:
        model = MLP.from_config(config)
    except (KeyError, TypeError, ValueError) as exc:
        raise FormatError(f"{path}: invalid architecture: {exc}") from None
    if meta.get("dtype") != model.dtype.name:
        raise FormatError(f"{path}: dtype {meta.get('dtype')!r} does not match the architecture")
    expected = model.get_weights()
    weights = {}
    for key, ref in expected.items():
        if key not in header:
            raise FormatError(f"{path}: tensor {key!r} is missing")
        if tuple(header[key]["shape"]) != ref.shape:
            raise FormatError(f"{path}: tensor {key!r} has shape {tuple(header[key]['shape'])}, "
                              f"the architecture needs {ref.shape} (shapes must chain layer to "
                              f"layer)")
        if _DTYPES[header[key]["dtype"]] != ref.dtype:
            raise FormatError(f"{path}: tensor {key!r} is {header[key]['dtype']}, the model is "
                              f"{model.dtype.name}")
        arr = _tensor(header, data, key)
        if not np.all(np.isfinite(arr)):
            raise FormatError(f"{path}: tensor {key!r} holds NaN or infinite values")
        weights[key] = arr
    try:
        model.set_weights(weights)
    except (TypeError, ValueError) as exc:
        raise FormatError(f"{path}: {exc}") from None
    std = _json_field(path, meta, "standardizer")
    if std is not None:
        try:
            model.standardizer = Standardizer.from_dict(std)
        except (KeyError, TypeError, ValueError) as exc:
            raise FormatError(f"{path}: invalid standardizer: {exc}") from None
    classes = _json_field(path, meta, "classes")
    if classes is not None:
        if not isinstance(classes, list) or len(classes) < 1:
            raise FormatError(f"{path}: invalid class labels")
        model.classes_ = np.asarray(classes)
    return model


def load(path):
    """Load a model written by ``MLP.save``.

    Raises
    ------
    FormatError
        The file is truncated, corrupt, foreign, or of a newer format version (a ValueError).
    OSError
        The file cannot be opened.
    """
    header, meta, data = _read_container(path, (_MODEL, _CHECKPOINT))
    try:
        return _build_model(path, header, meta, data)
    except FormatError:
        raise
    except Exception as exc:  # the contract: no other exception for a bad file
        raise FormatError(f"{path}: cannot build the model: {exc}") from None


def load_checkpoint(path):
    """A Trainer restored from ``Trainer.save_checkpoint``."""
    from .optim import get_optimizer
    from .schedules import Schedule
    from .trainer import Trainer
    header, meta, data = _read_container(path, (_CHECKPOINT,))
    try:
        model = _build_model(path, header, meta, data)
        config = _json_field(path, meta, "training")
        state = _json_field(path, meta, "state")
        sched = config.get("schedule")
        trainer = Trainer(model, optimizer=get_optimizer(config["optimizer"]),
                          schedule=None if sched is None else Schedule.from_config(sched),
                          l2=config["l2"], batch_size=config["batch_size"],
                          shuffle=config["shuffle"], seed=config["seed"])
        opt = trainer.optimizer
        for which in ("exp_avg", "exp_avg_sq"):
            if which in opt.state:
                for key in model._param_layout:
                    name = f"optim.{which}.{key}"
                    if name not in header:
                        raise FormatError(f"{path}: optimizer state {name!r} is missing")
                    arr = _tensor(header, data, name)
                    if arr.shape != model._param_layout[key][1] or arr.dtype != model.dtype:
                        raise FormatError(f"{path}: optimizer state {name!r} has the wrong "
                                          f"shape or dtype")
                    if not np.all(np.isfinite(arr)):
                        raise FormatError(f"{path}: optimizer state {name!r} holds NaN or "
                                          f"infinite values")
                    opt.state[which][key] = arr
        opt.state["step"] = int(state["optimizer_step"])
        trainer.epoch, trainer.step = int(state["epoch"]), int(state["step"])
        if state.get("loss_ewa") is not None:  # absent in older checkpoints: starts afresh
            from .ewa import EWA
            trainer._smooth = EWA.from_dict(state["loss_ewa"])
        for k, values in state["history"].items():
            if k in trainer.history.history:
                trainer.history.history[k] = [float("nan") if v is None else v for v in values]
        return trainer
    except FormatError:
        raise
    except Exception as exc:
        raise FormatError(f"{path}: invalid checkpoint: {exc}") from None
