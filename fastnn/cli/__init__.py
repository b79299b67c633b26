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
import sys
import warnings

from ..data import load_data
from ._common import _ERRORS, _error_line, _Parser
from .commands import _add_gradcheck, _add_predict, _add_train

__all__ = ["main", "build_parser", "load_data"]


# ---- search and bench (their modules own the options, imported when the parser is built) -----

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
                        help="with --version: also what the build knows (Limited API, "
                             "OpenMP runtime)")
    sub = parser.add_subparsers(dest="command")
    _add_train(sub)
    _add_predict(sub)
    _add_delegated(sub, "search", "random hyperparameter search, coarse to fine, in parallel",
                   "cli.search", "add_cli_arguments", "run_cli")
    _add_gradcheck(sub)
    _add_delegated(sub, "bench", "head-to-head speed comparison (fastnn, PyTorch, sklearn)",
                   "bench", "add_arguments", "run")
    return parser


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    print(f"fastnn: warning: {' '.join(str(message).split())}", file=sys.stderr if file is None
          else file)


def _print_version(verbose):
    from .. import _core
    from .._version import __version__
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
