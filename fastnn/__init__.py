"""fastnn: fast multilayer-perceptron training on CPUs.

Fused C/OpenMP kernels (src_c/), a typed Cython layer (fastnn/_core.pyx) and a small Python API:
``MLP`` and ``Dense`` layers, ``Trainer`` with the optimizers of ``fastnn.optim`` and the
schedules of ``fastnn.schedules``, data tools, gradient checking, bias/variance diagnosis and
hyperparameter search.
"""
from ._threads import get_num_threads, set_num_threads, threads  # first: loads the runtime

# isort: split
from . import data, datasets, optim, reference, schedules, search
from ._config import _warn_if_isa_fell_back, show_config
from ._version import __version__
from .diagnose import Diagnosis, diagnose
from .ewa import EWA, ewa
from .gradcheck import GradcheckResult, gradcheck
from .io import FormatError
from .model import MLP, Dense, load
from .trainer import DivergedError, EarlyStopping, History, Trainer

_warn_if_isa_fell_back()

__all__ = ["MLP", "Dense", "Trainer", "History", "EarlyStopping", "DivergedError", "optim",
           "schedules", "data", "datasets", "reference", "diagnose", "Diagnosis", "ewa", "EWA",
           "gradcheck", "GradcheckResult", "load", "FormatError", "get_num_threads",
           "set_num_threads", "threads", "search", "show_config", "__version__"]
