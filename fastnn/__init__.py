"""fastnn: fast multilayer-perceptron training on CPUs.

Fused C/OpenMP kernels (src_c/), a typed Cython layer (fastnn/_core.pyx) and a small Python API:
``MLP`` and ``Dense`` layers, ``Trainer`` with the optimizers of ``fastnn.optim`` and the
schedules of ``fastnn.schedules``, data tools, gradient checking, bias/variance diagnosis and
hyperparameter search.
"""
from . import _core
from ._threads import get_num_threads, set_num_threads
from .model import MLP, Dense

__version__ = "0.1.0"
