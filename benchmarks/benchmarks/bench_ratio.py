"""Speed-ups measured back to back in one process: fastnn against its NumPy baseline.

On a noisy machine a ratio of two timings taken alternately in the same process is a steadier
regression signal than either timing alone.  Each track_ returns fastnn's time / the baseline's
time, so that lower is better, as asv assumes for every figure (``asv continuous`` flags a
rise as a regression): 0.05 means fastnn takes 5 % of the baseline's time (20x faster).  The
GEMM-floor figure is fastnn's step time as a multiple of the time of the step's matrix products
alone through NumPy's BLAS (target: <= 1.3).
"""
import numpy as np

import fastnn as fn
from fastnn import reference as ref

from .bench_gemm import operands
from .common import (ADAM_KIND, ReferenceTrainer, alternate, batch, layer_specs, make_model,
                     mnist)

N_RATIO = 4096     # examples per timed epoch in the ratio benchmarks


class Ratios:
    """fastnn time / baseline time, 784-512-256-10 float32, batch 128, all threads."""
    timeout = 600
    number = 1
    repeat = 1

    def setup(self):
        self.X, self.y = mnist()
        self.X, self.y = self.X[:N_RATIO], self.y[:N_RATIO]
        self.n_threads = fn.get_num_threads()

    def track_epoch_time_vs_reference(self):
        model = make_model()
        trainer = fn.Trainer(model, fn.optim.Adam(1e-3), batch_size=128, seed=0)
        baseline = ReferenceTrainer(make_model(), 128)
        trainer.fit(self.X, self.y, epochs=1, progress=False)
        t_fast, t_ref = alternate(
            [lambda: trainer.fit(self.X, self.y, epochs=1, progress=False),
             lambda: baseline.epoch(self.X, self.y)], repeat=3)
        return t_fast / t_ref
    track_epoch_time_vs_reference.unit = "fastnn/baseline"

    def track_loss_and_grads_time_vs_reference(self):
        model = make_model()
        params, layers = model.get_weights(), layer_specs(model)
        X, y = batch(128)
        t_fast, t_ref = alternate(
            [lambda: model.loss_and_grads(X, y), lambda: ref.mlp_loss_and_grads(params, layers,
                                                                               X, y)],
            number=20, repeat=5)
        return t_fast / t_ref
    track_loss_and_grads_time_vs_reference.unit = "fastnn/baseline"

    def track_adam_time_vs_reference(self):
        rng = np.random.default_rng(0)
        p = rng.standard_normal(535_818).astype(np.float32)
        g = rng.standard_normal(p.size).astype(np.float32) * 1e-3
        v, s = np.zeros_like(p), np.zeros_like(p)
        t_fast, t_ref = alternate(
            [lambda: fn._core.optim_step(ADAM_KIND, 1e-3, 0.9, 0.999, 1e-8, 0.0, 1, p, g, v, s,
                                         self.n_threads),
             lambda: ref.adam_step(p, g, v, s, 1, lr=1e-3)], number=20, repeat=5)
        return t_fast / t_ref
    track_adam_time_vs_reference.unit = "fastnn/baseline"

    def track_gemm_fwd1_time_vs_blas(self):
        A, B, C, _ = operands("fwd1", "float32")
        t_fast, t_blas = alternate([lambda: fn._core.gemm(A, B, C, self.n_threads),
                                    lambda: np.matmul(A, B, out=C)], number=50, repeat=5)
        return t_fast / t_blas
    track_gemm_fwd1_time_vs_blas.unit = "fastnn/baseline"

    def track_step_over_gemm_floor(self):
        """fastnn's epoch time / the time of its 8 GEMMs per step through NumPy's BLAS."""
        sizes = (784, 512, 256, 10)
        rng = np.random.default_rng(0)
        W = [rng.standard_normal((a, b)).astype(np.float32) for a, b in zip(sizes, sizes[1:])]
        dW = [np.empty_like(w) for w in W]
        Z = [np.empty((128, b), np.float32) for b in sizes[1:]]
        dZ = [rng.standard_normal((128, b)).astype(np.float32) for b in sizes[1:]]
        dA = [np.empty((128, b), np.float32) for b in sizes[1:]]
        n_steps = N_RATIO // 128

        def floor():
            for k in range(n_steps):
                A = self.X[k * 128:(k + 1) * 128]
                for i in range(3):
                    np.matmul(A, W[i], out=Z[i])
                    A = Z[i]
                for i in (2, 1, 0):
                    A_prev = self.X[k * 128:(k + 1) * 128] if i == 0 else Z[i - 1]
                    np.matmul(A_prev.T, dZ[i], out=dW[i])
                    if i:
                        np.matmul(dZ[i], W[i].T, out=dA[i - 1])
        trainer = fn.Trainer(make_model(), fn.optim.Adam(1e-3), batch_size=128, seed=0)
        X, y = self.X[:n_steps * 128], self.y[:n_steps * 128]
        trainer.fit(X, y, epochs=1, progress=False)
        floor()
        t_fast, t_floor = alternate([lambda: trainer.fit(X, y, epochs=1, progress=False), floor],
                                    repeat=5)
        return t_fast / t_floor
    track_step_over_gemm_floor.unit = "x floor"
