"""What the commands share: the error format, argument types, the data and hyperparameter
options, loading and splitting the data."""
import argparse
import os
import zipfile

import numpy as np

from .._core import OPTIMIZER_CODES
from ..data import BUILTIN_DATASETS, as_labels, infer_task, load_data
from ..layers import ACTIVATION_CODES, INITS

# What a bad invocation raises (besides the parser's own errors): wrong values and files
# (ValueError, TypeError, the file errors of OSError, numpy's readers' EOFError and
# BadZipFile), sizes beyond the memory (MemoryError), values beyond C's integers and
# training that diverged (ArithmeticError: OverflowError, fastnn.DivergedError).
_ERRORS = (ValueError, TypeError, OSError, EOFError, zipfile.BadZipFile, MemoryError,
           ArithmeticError)


def _error_line(exc):
    """An exception as the one line the command prints."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, MemoryError):
        return f"not enough memory: {text}"
    return text


class _Parser(argparse.ArgumentParser):
    """``argparse`` with fastnn's error format: one line on stderr, exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} "
                     f"(see {self.prog} --help)\n")


def _int_range(low, high=None):
    """An argparse type: an integer in [low, high]."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low or (high is not None and value > high):
            bound = f">= {low}" if high is None else f"between {low} and {high}"
            raise argparse.ArgumentTypeError(f"must be {bound}, got {text!r}")
        return value
    return parse


def _nonnegative_float(text):
    """An argparse type: a finite float >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (np.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return value


def _fraction(text):
    """An argparse type: a number in [0, 1]."""
    value = _nonnegative_float(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"must be a fraction between 0 and 1, got {text!r}")
    return value


# Seeds are unsigned 64-bit integers in the compiled code (checked again by the library).
_seed = _int_range(0, 2 ** 64 - 1)


def _usable_cores():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


# More kernel threads than this many per usable core only make them wait for each other.
_THREADS_PER_CORE = 4


def _threads(text):
    """An argparse type: a thread count from 1 to a few per core this process may use."""
    cores = _usable_cores()
    high = _THREADS_PER_CORE * cores
    try:
        return _int_range(1, high)(text)
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"{exc} ({_THREADS_PER_CORE} per core; this process may "
                                         f"use {cores} core(s))") from None


def _require_matplotlib(option):
    """Fail before any work when ``option`` needs matplotlib and it is not installed."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ValueError(f"{option} needs matplotlib: pip install 'fastnn[plot]'") from None


def _output_file(text):
    """An argparse type: a file that can be written (checked before any work is done)."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"expected a file name, got {text!r}")
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text!r} is a directory, expected a file name")
    folder = os.path.dirname(os.path.abspath(text))
    if not os.path.isdir(folder):
        raise argparse.ArgumentTypeError(f"folder {folder!r} of {text!r} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK) or (os.path.exists(text)
                                                    and not os.access(text, os.W_OK)):
        raise argparse.ArgumentTypeError(f"{text!r} cannot be written (permission denied)")
    return text

def _int_list(text):
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got "
                                         f"{text!r}") from None
    if any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"layer sizes must be >= 1, got {text!r}")
    if any(v >= 2 ** 31 for v in values):
        raise argparse.ArgumentTypeError(f"layer sizes must be < 2**31, got {text!r}")
    return values


def _split(args, task="auto"):
    """The data of ``--data`` split by ``--dev-size``/``--test-size``/``--seed`` (stratified
    for classification): ``(task, classes, train, dev, test)``, each set ``(X, y)`` with the
    labels as given (not yet class indices)."""
    import fastnn as fn
    X, y = load_data(args.data, seed=args.seed)
    if task == "auto":
        task = infer_task(y, from_file=True)
    classes = None
    if task == "classification":
        y = as_labels(y)
        classes = np.unique(y)
        if len(classes) < 2:
            raise ValueError(f"classification needs at least 2 classes, got {len(classes)}")
    elif np.asarray(y).dtype.kind in "US":
        raise ValueError(f"--task regression needs numeric targets; {args.data} has text "
                         f"labels such as {str(np.asarray(y)[0])!r}")
    Xtr, Xdev, Xte, ytr, ydev, yte = fn.data.train_dev_test_split(
        X, y, args.dev_size, args.test_size, seed=args.seed, stratify=task == "classification")
    return task, classes, (Xtr, ytr), (Xdev, ydev), (Xte, yte)


def add_data_arguments(p, dev_size=0.15, test_size=0.15):
    """The options saying which data to use and how to split it (train and search)."""
    p.add_argument("--data", default="digits",
                   help=f"built-in dataset ({', '.join(BUILTIN_DATASETS)}) or a .csv/.npy/.npz "
                        f"file (default digits)")
    p.add_argument("--task", choices=("auto", "classification", "regression"), default="auto")
    p.add_argument("--dev-size", type=float, default=dev_size, metavar="FRACTION",
                   help=f"fraction held out as dev set (default {dev_size})")
    p.add_argument("--test-size", type=float, default=test_size, metavar="FRACTION",
                   help=f"fraction held out as test set (default {test_size})")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--threads", type=_threads, default=None,
                   help="kernel threads (default: every core this process may use)")


# The activations of hidden layers: every one but softmax (output layers only).
_HIDDEN_ACTIVATIONS = tuple(name for name in ACTIVATION_CODES if name != "softmax")

# name -> (option, argparse keywords, train default); in a search a given option fixes that
# hyperparameter for every trial.
_HYPERPARAMETERS = {
    "hidden": ("--layers", {"type": _int_list, "help": "hidden layer sizes, comma-separated"},
               [128, 64]),
    "activation": ("--activation", {"choices": _HIDDEN_ACTIVATIONS}, "relu"),
    "init": ("--init", {"choices": INITS}, None),
    "optimizer": ("--optimizer", {"choices": tuple(OPTIMIZER_CODES)}, "adam"),
    "lr": ("--lr", {"type": float, "help": "learning rate"}, 1e-3),
    "beta": ("--beta", {"type": float, "help": "momentum beta / Adam beta1"}, None),
    "lr_decay": ("--decay", {"type": _nonnegative_float,
                             "help": "inverse-time learning-rate decay rate (0: constant)"}, 0.0),
    "epochs": ("--epochs", {"type": _int_range(1)}, 30),
    "batch_size": ("--batch-size", {"type": _int_range(1)}, 32),
    "l2": ("--l2", {"type": float}, 0.0),
    "keep_prob": ("--keep-prob", {"type": float, "help": "dropout keep_prob of hidden layers"},
                  1.0),
    "batch_norm": ("--batch-norm", {"action": "store_true", "help": "batch norm on hidden layers"},
                   False),
    "patience": ("--patience", {"type": _int_range(0), "help": "early stopping patience"}, None),
}


def add_hyperparameter_arguments(p, fixed=False):
    """The model and training options of ``fastnn train``.  With ``fixed`` (``fastnn search``)
    they have no defaults: an option given fixes that hyperparameter in every trial."""
    for name, (option, kwargs, default) in _HYPERPARAMETERS.items():
        kwargs = dict(kwargs)
        if kwargs.get("action") != "store_true":
            kwargs["metavar"] = option.lstrip("-").upper().replace("-", "_")
        if fixed:
            kwargs["default"] = argparse.SUPPRESS
            kwargs["help"] = (kwargs.get("help", "") + " (fixed in every trial)").strip()
        else:
            kwargs["default"] = default
            if default not in (None, False):
                shown = ",".join(map(str, default)) if isinstance(default, list) else default
                kwargs["help"] = f"{kwargs.get('help', '')} (default {shown})".strip()
        p.add_argument(option, dest=name, **kwargs)
