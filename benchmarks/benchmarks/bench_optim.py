"""One optimizer step over the flat parameters of the MNIST-shaped network (535,818 values)."""
import numpy as np

import fastnn as fn
from fastnn import reference as ref

from .common import KINDS, make_model


class OptimizerStep:
    """fastnn's fused in-place pass (fn._core.optim_step) against fastnn.reference and torch."""
    params = (["fastnn", "reference", "torch_fused"], ["sgd", "momentum", "rmsprop", "adam"],
              ["float32", "float64"])
    param_names = ["impl", "optimizer", "dtype"]

    def setup(self, impl, optimizer, dtype):
        self.impl, self.optimizer = impl, optimizer
        model = make_model(dtype=dtype)
        rng = np.random.default_rng(0)
        self.p = model._params.copy()
        self.g = (rng.standard_normal(self.p.size) * 1e-3).astype(dtype)
        self.v = np.zeros_like(self.p)
        self.s = np.zeros_like(self.p)
        self.t = 0
        self.n_threads = fn.get_num_threads()
        if impl == "torch_fused":
            try:
                import torch
            except ImportError:
                raise NotImplementedError("torch is not installed")
            torch.set_num_threads(self.n_threads)
            self.tparams = []
            for key, w in model.get_weights().items():
                param = torch.nn.Parameter(torch.from_numpy(w))
                param.grad = torch.from_numpy(rng.standard_normal(w.shape).astype(dtype) * 1e-3)
                self.tparams.append(param)
            cls = {"sgd": torch.optim.SGD, "momentum": torch.optim.SGD,
                   "rmsprop": torch.optim.RMSprop, "adam": torch.optim.Adam}[optimizer]
            kw = {"momentum": 0.9} if optimizer == "momentum" else {}
            try:
                self.topt = cls(self.tparams, lr=1e-3, fused=True, **kw)
                self.topt.step()
            except (RuntimeError, TypeError, ValueError) as exc:
                raise NotImplementedError(f"torch has no fused CPU {optimizer}: {exc}")
        self._step()

    def _step(self):
        self.t += 1
        if hasattr(self, "topt"):
            self.topt.step()
        elif self.impl == "fastnn":
            fn._core.optim_step(KINDS[self.optimizer], 1e-3, 0.9, 0.999, 1e-8, 0.0, self.t,
                                self.p, self.g, self.v, self.s, self.n_threads)
        else:
            self.p, self.v, self.s = ref.optim_step(self.optimizer, self.p, self.g, self.v,
                                                    self.s, self.t, lr=1e-3)

    def time_step(self, impl, optimizer, dtype):
        self._step()

