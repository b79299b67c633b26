"""A full training epoch: fastnn's Trainer against the NumPy reference loop."""
import fastnn as fn

from .common import N_TRAIN, ReferenceTrainer, hidden_sizes, make_model, mnist


class TrainEpoch:
    """One epoch of Trainer.fit (Adam) over 10,000 MNIST-shaped examples."""
    params = ([32, 128, 512], ["float32", "float64"], ["128-64", "512-256"],
              ["plain", "dropout", "batchnorm"])
    param_names = ["batch_size", "dtype", "hidden", "variant"]
    number = 1
    repeat = (1, 5, 30.0)
    timeout = 300

    def setup(self, batch_size, dtype, hidden, variant):
        self.X, self.y = mnist(N_TRAIN, dtype)
        try:
            model = make_model(hidden_sizes(hidden), dtype, variant)
        except (NotImplementedError, ValueError, TypeError) as exc:
            raise NotImplementedError(f"{variant} is not supported: {exc}")
        self.trainer = fn.Trainer(model, fn.optim.Adam(1e-3), batch_size=batch_size, seed=0)
        # two steps on a slice build the workspace (cached per batch size) and warm the code
        self.trainer.fit(self.X[:2 * batch_size], self.y[:2 * batch_size], epochs=1,
                         progress=False)

    def time_epoch(self, batch_size, dtype, hidden, variant):
        self.trainer.fit(self.X, self.y, epochs=1, progress=False)


class TrainEpochReference:
    """The baseline of TrainEpoch: fastnn.reference forward/backward + adam_step in NumPy."""
    params = ([32, 128, 512], ["float32", "float64"])
    param_names = ["batch_size", "dtype"]
    number = 1
    repeat = (1, 3, 30.0)
    timeout = 300

    def setup(self, batch_size, dtype):
        self.X, self.y = mnist(N_TRAIN, dtype)
        self.trainer = ReferenceTrainer(make_model(dtype=dtype), batch_size)

    def time_epoch(self, batch_size, dtype):
        self.trainer.epoch(self.X, self.y)


class FitMemory:
    """Peak memory of a whole fit (model, trainer, one epoch) over 10,000 examples."""
    params = ([128], ["float32", "float64"], ["plain", "batchnorm"])
    param_names = ["batch_size", "dtype", "variant"]
    timeout = 300

    def setup(self, batch_size, dtype, variant):
        self.X, self.y = mnist(N_TRAIN, dtype)
        try:
            make_model(dtype=dtype, variant=variant)
        except (NotImplementedError, ValueError, TypeError) as exc:
            raise NotImplementedError(f"{variant} is not supported: {exc}")

    def peakmem_fit(self, batch_size, dtype, variant):
        model = make_model(dtype=dtype, variant=variant)
        fn.Trainer(model, fn.optim.Adam(1e-3), batch_size=batch_size,
                   seed=0).fit(self.X, self.y, epochs=1, progress=False)
