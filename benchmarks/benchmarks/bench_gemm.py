"""GEMM: fastnn's kernel (fn._core.gemm) against NumPy's BLAS (np.matmul), same threads.

The shapes are the products of one batch-128 training step of the 784-512-256-10 network:
forward ``Z = A W``, weight gradient ``dW = A^T dZ`` (transposed left operand) and input
gradient ``dA = dZ W^T`` (transposed right operand).
"""
import numpy as np

import fastnn as fn

from .common import median_time

M = 128
SHAPES = {   # name: (m, k, n, transposed operand)
    "fwd1": (M, 784, 512, None),
    "fwd3": (M, 256, 10, None),
    "dW1": (784, M, 512, "A"),
    "dW2": (512, M, 256, "A"),
    "dX2": (M, 256, 512, "B"),
    "dX3": (M, 10, 256, "B"),
}


def operands(name, dtype):
    m, k, n, trans = SHAPES[name]
    rng = np.random.default_rng(0)
    A = rng.standard_normal((k, m) if trans == "A" else (m, k)).astype(dtype)
    B = rng.standard_normal((n, k) if trans == "B" else (k, n)).astype(dtype)
    A = A.T if trans == "A" else A
    B = B.T if trans == "B" else B
    return A, B, np.empty((m, n), dtype=dtype), 2.0 * m * k * n


class Gemm:
    """C = A @ B for the step's shapes; track_gflops reports the achieved rate."""
    params = (["fastnn", "numpy"], list(SHAPES), ["float32", "float64"])
    param_names = ["impl", "shape", "dtype"]

    def setup(self, impl, shape, dtype):
        self.A, self.B, self.C, self.flop = operands(shape, dtype)
        self.n_threads = fn.get_num_threads()
        self.call = ((lambda: fn._core.gemm(self.A, self.B, self.C, self.n_threads))
                     if impl == "fastnn" else (lambda: np.matmul(self.A, self.B, out=self.C)))
        self.call()

    def time_gemm(self, impl, shape, dtype):
        self.call()

    def track_gflops(self, impl, shape, dtype):
        number = max(1, int(2e9 / self.flop))     # about 2 GFLOP per round
        return self.flop / median_time(self.call, number=number, repeat=5) / 1e9
    track_gflops.unit = "GFLOP/s"
