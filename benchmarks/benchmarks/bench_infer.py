"""Inference: predict_proba of the 784-512-256-10 network, latency (1 row) to throughput
(10,000 rows), with and without batch norm; and PyTorch's time on the same call as a ratio
measured back to back in one process (``track_``), which this noisy host's drift hits alike."""
import time

import numpy as np

from .common import make_model, mnist

ROWS = [1, 64, 10_000]


def _inputs(rows, dtype):
    X, _ = mnist(10_000, dtype)
    return np.array(X[:rows])  # a writable copy (torch.from_numpy warns on read-only)


class Predict:
    params = (ROWS, ["float32", "float64"], ["plain", "batchnorm"])
    param_names = ["rows", "dtype", "variant"]

    def setup(self, rows, dtype, variant):
        self.model = make_model(dtype=dtype, variant=variant)
        self.X = _inputs(rows, dtype)
        self.model.predict_proba(self.X)

    def time_predict_proba(self, rows, dtype, variant):
        self.model.predict_proba(self.X)


class PredictVsTorch:
    """torch time / fastnn time for the same predict_proba, weights copied; > 1 is faster."""
    params = (ROWS,)
    param_names = ["rows"]
    unit = "x"

    def setup(self, rows):
        from fastnn.bench import _infer_models  # the comparison's own same-weights peers
        self.model, peers, skipped = _infer_models((784, 512, 256, 10), "float32", False)
        if "torch" not in peers:
            raise NotImplementedError(skipped["torch"])
        self.torch_predict = peers["torch"]
        self.X = _inputs(rows, "float32")
        self.number = max(1, 20_000 // rows)

    def _time(self, f):
        best = []
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(self.number):
                f()
            best.append(time.perf_counter() - t0)
        return float(np.median(best))

    def track_torch_time_over_fastnn(self, rows):
        X = self.X
        ratios = []
        for _ in range(3):
            fast = self._time(lambda: self.model.predict_proba(X))
            ratios.append(self._time(lambda: self.torch_predict(X)) / fast)
        return float(np.median(ratios))
