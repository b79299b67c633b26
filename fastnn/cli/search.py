"""``fastnn search``: its options, its data and space, and the run (the search itself is
:mod:`fastnn.search`)."""
import json
import os

import numpy as np

from .. import data
from ..search.objective import MLPObjective, default_space
from ..search.random_search import MAX_TRIALS, RandomSearch
from ..search.spaces import load_space, sample_config
from ._common import (
    _ERRORS,
    _HYPERPARAMETERS,
    _error_line,
    _int_range,
    _output_file,
    _require_matplotlib,
    _split,
    add_data_arguments,
    add_hyperparameter_arguments,
)


def add_cli_arguments(parser):
    """Add the ``fastnn search`` options to an ``argparse`` parser: the data options of
    ``fastnn train``, its model and training options (each one given fixes that
    hyperparameter in every trial), and the search's own."""
    add_data_arguments(parser)
    add_hyperparameter_arguments(parser, fixed=True)
    parser.add_argument("--space", metavar="FILE_OR_JSON", default=None,
                        help="the search space: a .json or .toml file, or JSON text such as "
                             "'{\"lr\": {\"type\": \"log_uniform\", \"low\": 1e-4, "
                             "\"high\": 0.1}}' "
                             "(default: learning rate, beta1, hidden units, batch size, layers, "
                             "decay, L2)")
    parser.add_argument("--trials", type=_int_range(1, MAX_TRIALS), default=20, metavar="N",
                        help="trials per round (default 20)")
    parser.add_argument("--rounds", type=_int_range(1, 1000), default=2, metavar="R",
                        help="coarse-to-fine rounds (default 2)")
    parser.add_argument("--top-k", type=_int_range(1, MAX_TRIALS), default=None, metavar="K",
                        help="best trials of a round that set the next round's box")
    parser.add_argument("--prune", choices=("none", "median", "halving"), default="none",
                        help="stop hopeless trials early: below the median of finished trials "
                             "at the same epoch, or by successive halving (default none)")
    parser.add_argument("--jobs", type=_int_range(1, 100_000), default=None, metavar="N",
                        help="local workers (default: one per core)")
    parser.add_argument("--backend", choices=("thread", "process"), default="thread",
                        help="local workers are threads (default) or processes")
    parser.add_argument("--scheduler", metavar="ADDRESS", default=None,
                        help="run trials on a Dask cluster, e.g. tcp://host:8786")
    parser.add_argument("--journal", metavar="PATH", type=_output_file, default=None,
                        help="JSON-lines journal; running the same search again resumes it")
    parser.add_argument("--fresh", action="store_true",
                        help="start a new journal even if --journal holds another search")
    parser.add_argument("--refit", choices=("train", "train+dev", "none"), default="train",
                        help="train the best configuration again on the training set "
                             "(default), on training and dev sets, or not at all")
    parser.add_argument("--output", "-o", metavar="PATH", type=_output_file,
                        default="fastnn-model.safetensors",
                        help="where the refitted model is saved")
    parser.add_argument("--plot", metavar="PATH", type=_output_file, default=None,
                        help="save the metric-versus-hyperparameter plot as PNG "
                             "(needs matplotlib)")
    return parser


def load_data(path):
    """``(X, y)`` from a data file as ``fastnn train --data`` reads it (.npz with arrays ``X``
    and ``y``, .csv or .npy whose last column is the target); labels that are whole numbers
    become integers.  Regular files only, checked before anything is allocated for them; no
    pickle."""
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in (".npz", ".csv", ".npy"):
        raise ValueError(f"--data must be an .npz, .csv or .npy file, got {path!r}")
    X, y = data.load_data(path)
    y = np.asarray(y)
    if y.ndim == 1 and y.dtype.kind == "f":
        y = data.as_labels(y) if np.all(np.isfinite(y)) and np.all(y == np.round(y)) else y
    return X, y


def _cli_space(args):
    """The space of ``fastnn search``: ``--space`` (or :func:`default_space`), with the train
    options given on the command line fixed."""
    space = load_space(args.space) if args.space else default_space()
    fixed = {name: getattr(args, name) for name in _HYPERPARAMETERS if hasattr(args, name)}
    if "beta" in fixed:  # --beta is momentum's beta, or Adam's beta1
        optimizer = fixed.get("optimizer", space.get("optimizer", "adam"))
        if optimizer != "momentum":
            fixed["beta1"] = fixed.pop("beta")
            space.pop("beta1", None)
    if "hidden" in fixed:  # the layers are given: their count and width are not searched
        space.pop("n_layers", None)
        space.pop("n_hidden", None)
    space.update(fixed)
    return space


def run_cli(args):
    """Run ``fastnn search`` from parsed arguments: the table, the best config, the best
    configuration trained again and saved (``--refit``, ``--output``), its test score and the
    plot.  Returns the exit status."""
    import sys

    import fastnn as fn


    client = None
    try:
        if args.plot:
            _require_matplotlib("--plot")
        if args.threads is not None:
            fn.set_num_threads(args.threads)
        space = _cli_space(args)
        task, _, (Xtr, ytr), (Xd, yd), (Xte, yte) = _split(args, args.task)
        base = {"task": task, "dtype": args.dtype}
        if not len(Xd):
            raise ValueError("--dev-size must leave a dev set: the search scores trials on it")
        objective = MLPObjective(Xtr, ytr, Xd, yd, base=base)
        # Every setting checked before the first trial: a bad fixed value is an error here,
        # not a failed trial each time.
        objective.build(sample_config(space, args.seed, 0, 0), 0)
        executor = None
        if args.scheduler:
            try:
                from distributed import Client
            except ImportError:
                print("fastnn search: --scheduler needs Dask: pip install distributed",
                      file=sys.stderr)
                return 2
            client = Client(args.scheduler)
            executor = client.get_executor()
        pruner = {"none": None, "median": "median", "halving": "successive_halving"}[args.prune]
        search = RandomSearch(space, args.trials, rounds=args.rounds, top_k=args.top_k,
                              n_jobs=args.jobs, executor=executor, journal=args.journal,
                              seed=args.seed, base=base, pruner=pruner, resume=not args.fresh,
                              backend=args.backend if executor is None else "thread",
                              metric="val_error" if task == "classification" else "val_loss",
                              progress=True)
        search.fit(Xtr, ytr, Xd, yd)
    except KeyboardInterrupt:
        journal = args.journal
        print("fastnn search: interrupted; " + (
            f"the finished trials are in the journal {journal}: run the same command to resume"
            if journal else "finished trials are not kept without --journal"), file=sys.stderr)
        return 130
    except _ERRORS as exc:
        print(f"fastnn search: error: {_error_line(exc)}", file=sys.stderr)
        return 2
    finally:
        if client is not None:
            client.close()
    print(search.to_table())
    if search.best is None:
        print("fastnn search: no trial finished; no model saved", file=sys.stderr)
        return 1
    best = search.best
    print(f"\nbest: {best['trial_id']}  {search.metric} = {best['metrics'][search.metric]:.4g}")
    print(json.dumps(best["config"], indent=2))
    if args.refit != "none":
        model = search.refit(include_dev=args.refit == "train+dev")
        on = "training and dev sets" if args.refit == "train+dev" else "training set"
        if len(Xte):
            loss, err = model.evaluate(Xte, yte)
            score = (f"test accuracy {1 - err:.4f}" if task == "classification"
                     else f"test MSE {loss:.4g}")
            print(f"best configuration trained again on the {on}: {score}")
        model.save(args.output)
        print(f"model saved to {args.output}")
    if args.plot:
        search.plot(args.plot)
        print(f"plot saved to {args.plot}")
    return 0
