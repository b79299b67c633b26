"""Dropout masks: fastnn's counter-based Philox kernels against NumPy and torch."""
import numpy as np

import fastnn as fn
from fastnn import reference as ref

KEEP = 0.9


class DropoutMaskApply:
    """Draw a keep mask (keep_prob 0.9) for one activation and apply it (inverted dropout); fastnn
    in one fused pass on fn.get_num_threads() threads, as torch on its threads."""
    params = (["fastnn", "numpy", "torch", "reference"], [65_536, 1_048_576])
    param_names = ["impl", "n_elements"]

    def setup(self, impl, n_elements):
        rng = np.random.default_rng(0)
        self.x0 = rng.standard_normal(n_elements).astype(np.float32)
        self.x = self.x0.copy()
        self.mask = np.empty(n_elements, dtype=np.uint8)
        self.step = 0
        self.rng = np.random.default_rng(0)
        if impl == "torch":
            try:
                import torch
            except ImportError:
                raise NotImplementedError("torch is not installed")
            torch.set_num_threads(fn.get_num_threads())
            self.xt = torch.from_numpy(self.x0)
            self.dropout = torch.nn.functional.dropout
        if impl == "reference" and n_elements > 65_536:
            raise NotImplementedError("the pure-Python Philox reference is too slow at this size")

    def time_mask_apply(self, impl, n_elements):
        self.step += 1
        if impl == "fastnn":
            # fused and threaded, keeping the mask for the backward pass; in place: repeated
            # calls zero most of x and scale the rest, the speed is unchanged
            fn._core.dropout_forward(self.x, self.mask, 0, self.step, 0, 0, KEEP,
                                     fn.get_num_threads())
        elif impl == "numpy":
            self.x0 * (self.rng.random(n_elements, dtype=np.float32) < KEEP) / np.float32(KEEP)
        elif impl == "torch":
            self.dropout(self.xt, p=1 - KEEP, training=True)
        else:
            mask = ref.dropout_mask(0, self.step, 0, 0, n_elements, KEEP)
            self.x0 * mask / np.float32(KEEP)


class DropoutMask:
    """The mask alone: fastnn's Philox kernel against NumPy's PCG64 comparison."""
    params = (["fastnn", "numpy"], [1_048_576])
    param_names = ["impl", "n_elements"]

    def setup(self, impl, n_elements):
        self.mask = np.empty(n_elements, dtype=np.uint8)
        self.rng = np.random.default_rng(0)
        self.step = 0

    def time_mask(self, impl, n_elements):
        self.step += 1
        if impl == "fastnn":
            fn._core.dropout_mask(0, self.step, 0, 0, KEEP, self.mask)
        else:
            np.less(self.rng.random(n_elements, dtype=np.float32), KEEP, out=self.mask,
                    casting="unsafe")
