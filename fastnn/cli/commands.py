"""``fastnn train``, ``fastnn predict`` and ``fastnn gradcheck``."""
import os
import sys

import numpy as np

from ..data import BUILTIN_DATASETS, as_labels, load_data
from ._common import (
    _fraction,
    _int_list,
    _int_range,
    _output_file,
    _require_matplotlib,
    _seed,
    _split,
    add_data_arguments,
    add_hyperparameter_arguments,
)

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

    from ..trainer import _print_epoch
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

    from .._files import atomic_write
    _check_input_file(args.model, "model", "a .safetensors file written by fastnn")
    model = fn.load(args.model)
    X, y = load_data(args.data, target=args.data in BUILTIN_DATASETS or args.has_target)
    pred = model.predict(X)
    rows = np.asarray(pred).reshape(len(pred), -1)
    if model.task != "regression" and rows.dtype.kind == "f":
        rows = as_labels(rows.ravel()).reshape(rows.shape)  # classes stored as floats: 3, not 3.0
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
            truth = as_labels(np.asarray(y).ravel()) if np.asarray(y).dtype.kind == "f" else y
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
