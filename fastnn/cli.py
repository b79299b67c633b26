"""The ``fastnn`` command: train, predict, search, gradcheck, bench.

``fastnn train`` with no arguments trains on the built-in digits data: a stratified
train/dev/test split, a Standardizer fitted on the training part, an MLP trained with Adam, the
per-epoch train/dev metrics, the test accuracy, the course's bias/variance reading, and the model
saved to ``fastnn-model.safetensors``; Ctrl-C saves the model of the last finished epoch
instead.

Every error is one line on stderr (``fastnn <command>: error: ...``) and exit status 2: bad
options are caught by the parser, bad files and values by the library's own checks, which
name the argument and the value received.  Output paths are checked before any training.
"""
import argparse
import os
import sys
import warnings
import zipfile

import numpy as np

__all__ = ["main"]

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

_BUILTIN = ("digits", "flower", "moons", "circles", "spiral", "blobs", "synthetic_mnist")


def load_data(spec, seed=0, target=True):
    """(X, y) from a built-in dataset name or a .csv/.npy/.npz file.

    CSV and NPY: a 2-D table whose last column is the target (a CSV header row is skipped when it
    is not numeric; a CSV target column may hold text labels); with ``target=False`` the whole
    table is X and y is None.  NPZ: arrays
    ``X`` and ``y`` (``y`` only when ``target``).  Regular files only, checked before anything is
    allocated for them (``fastnn._files``); no pickle is ever loaded."""
    from . import datasets
    from ._files import load_csv, load_csv_labelled, load_npy, load_npz
    if spec in _BUILTIN:
        fn = getattr(datasets, spec)
        return fn() if spec == "digits" else fn(seed=seed)
    if os.path.isdir(spec):
        raise ValueError(f"data {spec!r} is a directory; expected a built-in dataset or a "
                         f".csv/.npy/.npz file")
    if not os.path.exists(spec):
        raise ValueError(f"data must be one of {list(_BUILTIN)} or an existing .csv/.npy/.npz "
                         f"file, got {spec!r}")
    ext = os.path.splitext(spec)[1].lower()
    if ext not in (".csv", ".npy", ".npz"):
        raise ValueError(f"data file must end in .csv, .npy or .npz, got {spec!r}")
    if ext == ".npz":
        return load_npz(spec, ("X", "y")) if target else (load_npz(spec, ("X",))[0], None)
    if ext == ".csv" and target:
        return load_csv_labelled(spec)
    table = load_npy(spec) if ext == ".npy" else load_csv(spec)
    if not target:
        return table, None
    if table.ndim != 2 or table.shape[1] < 2:
        raise ValueError(f"{spec}: expected a 2-D table with features and a last target column, "
                         f"got shape {table.shape}")
    return table[:, :-1], table[:, -1]


def _is_classification(y):
    y = np.asarray(y)
    return y.ndim == 1 and (y.dtype.kind in "iubUS" or
                            (y.dtype.kind == "f" and np.all(y == np.round(y)) and
                             len(np.unique(y)) <= max(2, int(0.05 * len(y)) + 1)))


def _labels(y):
    """Class labels as users wrote them: whole numbers stored as floats (a numeric CSV column)
    become integers, so classes print as ``3``, not ``3.0``."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"classification needs one label per row, got targets of shape "
                         f"{y.shape}")
    if y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y)) \
            and np.all(np.abs(y) < 2 ** 53):
        return y.astype(np.int64)
    return y


def _int_list(text):
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")
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
        task = "classification" if _is_classification(y) else "regression"
    classes = None
    if task == "classification":
        y = _labels(y)
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
                   help=f"built-in dataset ({', '.join(_BUILTIN)}) or a .csv/.npy/.npz file "
                        f"(default digits)")
    p.add_argument("--task", choices=("auto", "classification", "regression"), default="auto")
    p.add_argument("--dev-size", type=float, default=dev_size, metavar="FRACTION",
                   help=f"fraction held out as dev set (default {dev_size})")
    p.add_argument("--test-size", type=float, default=test_size, metavar="FRACTION",
                   help=f"fraction held out as test set (default {test_size})")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--threads", type=_threads, default=None,
                   help="kernel threads (default: every core this process may use)")


# name -> (option, argparse keywords, train default); in a search a given option fixes that
# hyperparameter for every trial.
_HYPERPARAMETERS = {
    "hidden": ("--layers", {"type": _int_list, "help": "hidden layer sizes, comma-separated"},
               [128, 64]),
    "activation": ("--activation", {"choices": ("relu", "leaky_relu", "tanh", "sigmoid",
                                                "linear")}, "relu"),
    "init": ("--init", {"choices": ("zeros", "random", "xavier", "he")}, None),
    "optimizer": ("--optimizer", {"choices": ("sgd", "momentum", "rmsprop", "adam", "adamw")},
                  "adam"),
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


# ---- train ----------------------------------------------------------------------------------

def _add_train(sub):
    p = sub.add_parser("train", help="train an MLP (default: the built-in digits data)")
    add_data_arguments(p)
    add_hyperparameter_arguments(p)
    start = p.add_mutually_exclusive_group()
    start.add_argument("--resume", metavar="CHECKPOINT", default=None,
                       help="continue the training saved by --checkpoint (model, optimizer "
                            "state, schedule, batch size; the model and optimizer options are "
                            "not used) for --epochs more epochs")
    start.add_argument("--finetune", metavar="MODEL", default=None,
                       help="start from a saved model (its weights, standardizer and classes) "
                            "with a new optimizer")
    p.add_argument("--checkpoint", metavar="PATH", type=_output_file, default=None,
                   help="also save a checkpoint (model and optimizer state) that --resume "
                        "continues")
    p.add_argument("--base-error", type=_fraction, default=0.0, metavar="FRACTION",
                   help="base (human-level) error for the bias/variance diagnosis (default 0)")
    p.add_argument("--output", "-o", type=_output_file, default="fastnn-model.safetensors")
    p.add_argument("--plot", type=_output_file, default=None,
                   help="write learning curves to this PNG (needs matplotlib)")
    p.add_argument("--verbose", dest="verbosity", type=int, choices=(0, 1, 2), default=1,
                   help="0: summary only; 1: progress bar (on a terminal) and a line per epoch "
                        "(default); 2: a line per epoch")
    p.add_argument("--no-progress", action="store_true", help="the same as --verbose 2")
    p.set_defaults(func=_train)


def _start(args, n_features, task):
    """``(model, trainer, what)``: a new model, one fine-tuned from ``--finetune`` or the
    training of ``--resume``."""
    import fastnn as fn
    if args.resume is not None:
        _check_input_file(args.resume, "--resume", "a checkpoint written by --checkpoint")
        trainer = fn.Trainer.load_checkpoint(args.resume)
        return trainer.model, trainer, f"resuming {args.resume} after epoch {trainer.epoch - 1}"
    if args.finetune is not None:
        _check_input_file(args.finetune, "--finetune", "a model written by fastnn")
        model = fn.load(args.finetune)
        what = f"fine-tuning {args.finetune}"
    else:
        model, what = None, None
    if model is None:
        hidden = [fn.Dense(u, args.activation, init=args.init, keep_prob=args.keep_prob,
                           batch_norm=args.batch_norm) for u in args.hidden]
        out = (fn.Dense(task["n_classes"], "softmax") if task["name"] == "classification"
               else fn.Dense(task["n_outputs"], "linear"))
        model = fn.MLP(n_features, hidden + [out], dtype=args.dtype, seed=args.seed)
    opt_config = {"name": args.optimizer, "lr": args.lr}
    if args.beta is not None:
        opt_config["beta" if args.optimizer == "momentum" else "beta1"] = args.beta
    schedule = fn.schedules.InverseTimeDecay(args.lr_decay) if args.lr_decay > 0 else None
    trainer = fn.Trainer(model, optimizer=fn.optim.get_optimizer(opt_config), schedule=schedule,
                         l2=args.l2, batch_size=args.batch_size, seed=args.seed)
    return model, trainer, what


def _check_input_file(path, option, what):
    if os.path.isdir(path) or not os.path.exists(path):
        raise ValueError(f"{option} must be an existing file, {what}; got {path!r}")


def _check_model_fits(model, n_features, task, classes):
    """A saved model continued on data of --data: same features, same kind of target, and
    labels among the model's classes."""
    if model.n_inputs != n_features:
        raise ValueError(f"the model takes {model.n_inputs} features; --data {n_features}")
    model_task = "regression" if model.task == "regression" else "classification"
    if model_task != task:
        raise ValueError(f"the model's output is for {model_task}; --data is a {task} task")
    if classes is not None and model.classes_ is not None:
        unseen = np.setdiff1d(classes, model.classes_)
        if unseen.size:
            raise ValueError(f"--data has labels the model does not know, such as "
                             f"{unseen[0].item()!r}; its classes: {model.classes_.tolist()}")


def _train(args):
    import fastnn as fn
    from .trainer import _print_epoch
    if args.plot:
        _require_matplotlib("--plot")
    if args.threads is not None:
        fn.set_num_threads(args.threads)
    verbosity = 2 if args.no_progress else args.verbosity
    task = args.task
    if args.resume is not None or args.finetune is not None:
        task = "auto"  # the saved model's output decides
    task, classes, (Xtr, ytr), (Xdev, ydev), (Xte, yte) = _split(args, task)
    shape = {"name": task, "n_classes": None if classes is None else len(classes),
             "n_outputs": 1 if np.ndim(ytr) == 1 else np.shape(ytr)[1]}
    model, trainer, what = _start(args, Xtr.shape[1], shape)
    if what is None:
        model.standardizer = fn.data.Standardizer().fit(Xtr)
        model.classes_ = classes
    else:
        if model.task == "regression" and task == "classification":
            task, classes = "regression", None
            ytr, ydev, yte = (np.asarray(a, dtype=np.float64) for a in (ytr, ydev, yte))
        _check_model_fits(model, Xtr.shape[1], task, classes)
        if model.standardizer is None:
            model.standardizer = fn.data.Standardizer().fit(Xtr)
    if task == "classification" and model.classes_ is None:
        raise ValueError("the saved model has no class labels; it cannot be trained on "
                         "labelled data from the command line")
    early = fn.EarlyStopping(args.patience) if args.patience is not None else None
    print(f"fastnn {fn.__version__}: {args.data}: {len(Xtr)} train / {len(Xdev)} dev / "
          f"{len(Xte)} test examples, {Xtr.shape[1]} features; {model}; "
          f"{fn.get_num_threads()} thread(s)" + (f"; {what}" if what else ""), flush=True)
    finished = _LastEpoch()
    callbacks = [finished]
    if verbosity == 2 or (verbosity == 1 and not sys.stderr.isatty()):
        callbacks.append(lambda trainer, epoch, logs: _print_epoch(logs))
    progress = verbosity == 1 and sys.stderr.isatty()  # no bar residue in logs and pipes
    epochs_before = trainer.epoch
    try:
        history = trainer.fit(Xtr, ytr, epochs=args.epochs, validation_data=(Xdev, ydev),
                              early_stopping=early, callbacks=callbacks, progress=progress)
    except KeyboardInterrupt:
        if args.checkpoint:
            trainer.save_checkpoint(args.checkpoint)
        return finished.save_after_interrupt(trainer, early, args.output)
    model.training_config_ = trainer.get_config()
    if early is not None and trainer.stop_training:
        restored = (f"; the weights of epoch {early.best_epoch} (dev loss {early.best:.4f}) "
                    f"restored" if early.restore_best and early.best_epoch is not None else "")
        print(f"early stopping after epoch {trainer.epoch - 1}: the dev loss did not improve "
              f"for {early.patience + 1} epoch(s){restored}")
    elif early is not None:
        print(f"early stopping did not fire in {trainer.epoch - epochs_before} epoch(s)")
    # Bias/variance from inference-mode errors on the train and dev sets.
    train_loss, train_err = model.evaluate(Xtr, ytr)
    dev_loss, dev_err = model.evaluate(Xdev, ydev)
    test = model.evaluate(Xte, yte) if len(Xte) else None
    if task == "classification":
        print(f"train error {train_err:.4f}  dev error {dev_err:.4f}"
              + (f"  test accuracy {1 - test[1]:.4f}" if test else ""))
        fired = early is not None and trainer.stop_training
        print(fn.diagnose(train_err, dev_err, base_error=args.base_error,
                          stopped_epoch=trainer.epoch - 1 if fired else None,
                          best_epoch=early.best_epoch if fired and early.restore_best else None))
    else:
        print(f"train MSE {train_loss:.4f}  dev MSE {dev_loss:.4f}"
              + (f"  test MSE {test[0]:.4f}" if test else ""))
    model.save(args.output)
    print(f"model saved to {args.output}")
    if args.checkpoint:
        trainer.save_checkpoint(args.checkpoint)
        print(f"checkpoint saved to {args.checkpoint} (continue with --resume)")
    if args.plot:
        history.plot(args.plot)
        print(f"learning curves written to {args.plot}")
    return 0


class _LastEpoch:
    """A ``fit`` callback keeping the weights of the last finished epoch, so that Ctrl-C in
    the middle of the next one still leaves a model to save."""

    def __init__(self):
        self.epoch = self.weights = None

    def on_epoch_end(self, trainer, epoch, logs):
        self.epoch, self.weights = epoch, trainer.model.get_weights()

    def save_after_interrupt(self, trainer, early, path):
        """Save the model of the last finished epoch (of the best one under early stopping,
        as an uninterrupted run would) to ``path``; one line on stderr; status 130."""
        if self.weights is None:
            print(f"fastnn train: interrupted in epoch {trainer.epoch}, before any epoch "
                  f"finished; no model saved", file=sys.stderr)
            return 130
        epoch, weights, which = self.epoch, self.weights, "the last finished"
        if early is not None and early.restore_best and early.best_weights is not None:
            epoch, weights, which = early.best_epoch, early.best_weights, "the best"
        model = trainer.model
        model.set_weights(weights)
        model.training_config_ = trainer.get_config()
        model.save(path)
        print(f"fastnn train: interrupted in epoch {trainer.epoch}; model of epoch {epoch} "
              f"({which}) saved to {path}", file=sys.stderr)
        return 130


# ---- predict --------------------------------------------------------------------------------

def _add_predict(sub):
    p = sub.add_parser("predict", help="predict with a saved model")
    p.add_argument("model", help="a .safetensors model written by fastnn train / MLP.save")
    p.add_argument("data", help="a .csv/.npy/.npz file of features (or a built-in dataset)")
    p.add_argument("--has-target", action="store_true",
                   help="the table's last column is the target: also report the accuracy or "
                        "the mean squared error (on stderr)")
    p.add_argument("--output", "-o", type=_output_file, default=None,
                   help="write predictions to this .csv instead of printing them")
    p.set_defaults(func=_predict)


def _predict(args):
    import csv
    import io

    import fastnn as fn
    from ._files import atomic_write
    _check_input_file(args.model, "model", "a .safetensors file written by fastnn")
    model = fn.load(args.model)
    X, y = load_data(args.data, target=args.data in _BUILTIN or args.has_target)
    pred = model.predict(X)
    rows = np.asarray(pred).reshape(len(pred), -1)
    if model.task != "regression" and rows.dtype.kind == "f":
        rows = _labels(rows.ravel()).reshape(rows.shape)  # classes stored as floats: 3, not 3.0
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    for row in rows:
        writer.writerow([str(v) for v in row])
    if args.output:
        atomic_write(args.output, text.getvalue().encode("utf-8"))
        print(f"predictions written to {args.output}")
    else:
        sys.stdout.write(text.getvalue())
    if y is not None:
        if model.task == "regression":
            loss, _ = model.evaluate(X, y)
            print(f"mean squared error {loss:.6g} on {len(pred)} examples", file=sys.stderr)
        else:
            truth = _labels(np.asarray(y).ravel()) if np.asarray(y).dtype.kind == "f" else y
            accuracy = np.mean(np.asarray(pred).reshape(len(pred), -1)
                               == np.asarray(truth).reshape(len(pred), -1))
            print(f"accuracy {accuracy:.4f} on {len(pred)} examples", file=sys.stderr)
    return 0


# ---- gradcheck ------------------------------------------------------------------------------

def _add_gradcheck(sub):
    p = sub.add_parser("gradcheck", help="check backpropagation against central differences")
    p.add_argument("--layers", type=_int_list, default=[16, 8])
    p.add_argument("--activation", default="relu",
                   choices=("relu", "leaky_relu", "tanh", "sigmoid", "linear"))
    p.add_argument("--keep-prob", type=float, default=1.0)
    p.add_argument("--batch-norm", action="store_true")
    p.add_argument("--l2", type=float, default=0.1)
    p.add_argument("--rows", type=_int_range(1), default=32, help="digits rows used")
    p.add_argument("--seed", type=_seed, default=0)
    p.set_defaults(func=_gradcheck)


def _gradcheck(args):
    import fastnn as fn
    X, y = fn.datasets.digits()
    X = fn.data.Standardizer().fit_transform(X)[:args.rows]
    y = y[:args.rows]
    hidden = [fn.Dense(u, args.activation, keep_prob=args.keep_prob, batch_norm=args.batch_norm)
              for u in args.layers]
    model = fn.MLP(X.shape[1], hidden + [fn.Dense(10, "softmax")], dtype="float64",
                   seed=args.seed)
    weights = model.get_weights()  # non-zero biases keep ReLUs off their kink at z = 0
    rng = np.random.default_rng(args.seed)
    for key in weights:
        if key.endswith(".b") or key.endswith(".beta"):
            weights[key] = rng.normal(0, 0.1, weights[key].shape)
    model.set_weights(weights)
    result = fn.gradcheck(model, X, y, l2=args.l2, seed=args.seed)
    print(result)
    for key, value in result.per_array.items():
        print(f"  {key:>10}: {value:.3e}")
    return 0 if result.passed else 1


# ---- search and bench (their modules own the options) ---------------------------------------

def _add_delegated(sub, name, help, module, add_options, run):
    """A subcommand whose options and work live in another fastnn module (imported lazily, so
    its optional dependencies are needed only when it runs)."""
    import importlib
    p = sub.add_parser(name, help=help)
    mod = importlib.import_module(f"fastnn.{module}")
    getattr(mod, add_options)(p)
    p.set_defaults(func=lambda args: getattr(mod, run)(args))


def build_parser():
    parser = _Parser(prog="fastnn", description="Fast MLP training on CPUs.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    parser.add_argument("--verbose", action="store_true",
                        help="with --version: also what the build knows (Limited API, OpenMP runtime)")
    sub = parser.add_subparsers(dest="command")
    _add_train(sub)
    _add_predict(sub)
    _add_delegated(sub, "search", "random hyperparameter search, coarse to fine, in parallel",
                   "search", "add_cli_arguments", "run_cli")
    _add_gradcheck(sub)
    _add_delegated(sub, "bench", "head-to-head speed comparison (fastnn, PyTorch, sklearn)",
                   "bench", "add_arguments", "run")
    return parser


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    print(f"fastnn: warning: {' '.join(str(message).split())}", file=sys.stderr if file is None
          else file)


def _print_version(verbose):
    from . import _core
    from ._version import __version__
    print(f"fastnn {__version__}")
    if verbose:
        for key, value in _core.build_info().items():
            print(f"  {key}: {value}")
    return 0


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        return _print_version(args.verbose)
    if args.command is None:
        parser.error("a command is required: train, predict, search, gradcheck or bench")
    with warnings.catch_warnings():
        warnings.showwarning = _one_line_warning
        try:
            return args.func(args)
        except KeyboardInterrupt:
            print(f"fastnn {args.command}: interrupted", file=sys.stderr)
            return 130
        except _ERRORS as exc:
            print(f"fastnn {args.command}: error: {_error_line(exc)}", file=sys.stderr)
            return 2


if __name__ == "__main__":
    sys.exit(main())
