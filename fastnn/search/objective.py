"""The built-in objective: build an MLP and a Trainer from a config, train, score on dev.
"""
import inspect

import numpy as np

from .._validation import check_scalar
from ..data import infer_task
from .spaces import Choice, IntUniform, LogUniform, OneMinusLogUniform, Uniform, _jsonable
from .trials import _check_cancelled, _report_epoch

# ---- the built-in objective ------------------------------------------------------------------

_DEFAULTS = {
    "optimizer": "adam", "lr": 1e-3, "beta": 0.9, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8,
    "weight_decay": 0.01, "n_layers": 1, "n_hidden": 64, "hidden": None, "activation": "relu",
    "keep_prob": 1.0, "batch_norm": False, "init": None, "batch_size": 64, "l2": 0.0,
    "epochs": 10, "lr_decay": 0.0, "decay_interval": 1, "schedule": None, "patience": None,
}
_INIT_ONLY = {"dtype": "float32", "standardize": True, "task": None}


class MLPObjective:
    """The built-in objective: build an MLP and a Trainer from a config, train, score on dev.

    ``objective(config, seed)`` merges ``{**defaults, **base, **config}`` and returns the last
    epoch's ``loss`` and ``error`` (training), ``val_loss`` and ``val_error`` (dev, inference
    mode, after restoring the best weights when ``patience`` is set) and ``epochs`` run.

    Config keys (defaults in brackets):

    - ``optimizer`` ["adam"]: "sgd", "momentum", "rmsprop", "adam", "adamw"; with ``lr``
      [1e-3], ``beta`` [0.9] (momentum), ``beta1`` [0.9], ``beta2`` [0.999], ``eps`` [1e-8],
      ``weight_decay`` [0.01] (adamw).  Keys the chosen optimizer does not take are ignored, so
      one space can search over optimizers.
    - ``n_layers`` [1] hidden layers of ``n_hidden`` [64] units, or ``hidden``: a list of units;
      ``activation`` ["relu"], ``keep_prob`` [1.0], ``batch_norm`` [False], ``init`` [None]
      apply to every hidden layer.  The output is softmax over the classes (classification) or
      linear (regression).
    - ``batch_size`` [64], ``l2`` [0.0], ``epochs`` [10], ``patience`` [None: no early stopping].
    - ``lr_decay`` [0.0]: the course's decay ``lr0 / (1 + lr_decay * floor(epoch /
      decay_interval))`` with ``decay_interval`` [1]; or ``schedule``: a schedule config dict.

    ``base`` may also hold ``dtype`` ["float32"], ``standardize`` [True] (a Standardizer fitted
    on the training set, applied once to both sets) and ``task`` ["classification" for integer,
    boolean or string labels ``y``, else "regression"]; the data are converted once and shared
    by all trials.
    For regression use ``metric="val_loss"``.
    """

    def __init__(self, X, y, X_dev, y_dev, base=None):
        from .._validation import validate_X
        from ..data import Standardizer

        base = dict(base or {})
        unknown = sorted(set(base) - set(_DEFAULTS) - set(_INIT_ONLY))
        if unknown:
            raise ValueError(f"base has unknown keys {unknown}; known: "
                             f"{sorted(set(_DEFAULTS) | set(_INIT_ONLY))}")
        settings = {**_INIT_ONLY, **{k: base.pop(k) for k in list(base) if k in _INIT_ONLY}}
        if settings["dtype"] not in ("float32", "float64"):
            raise ValueError(f"base['dtype'] must be 'float32' or 'float64', got "
                             f"{settings['dtype']!r}")
        self.base = base
        self.settings_ = settings
        self.dtype = settings["dtype"]
        X = validate_X(X, "X", dtype=self.dtype)
        X_dev = validate_X(X_dev, "X_dev", n_features=X.shape[1], dtype=self.dtype)
        y, y_dev = np.asarray(y), np.asarray(y_dev)
        for name, a, b in (("y", y, X), ("y_dev", y_dev, X_dev)):
            if a.ndim not in (1, 2) or a.shape[0] != b.shape[0]:
                raise ValueError(f"{name} must have one row per sample ({b.shape[0]}), got "
                                 f"shape {a.shape}")
        task = settings["task"]
        if task is None:
            task = infer_task(y)
        if task not in ("classification", "regression"):
            raise ValueError(f"base['task'] must be 'classification' or 'regression', got "
                             f"{task!r}")
        self.task = task
        if task == "classification":
            if y.ndim != 1 or y_dev.ndim != 1:
                raise ValueError("classification needs 1-D labels y and y_dev")
            self.classes = np.unique(y)
            if self.classes.size < 2:
                raise ValueError(f"y must hold at least 2 classes, got {self.classes.tolist()}")
            unseen = np.setdiff1d(np.unique(y_dev), self.classes)
            if unseen.size:
                raise ValueError(f"y_dev holds labels not in y, such as {unseen[0]!r}")
            y = np.searchsorted(self.classes, y).astype(np.int32)
            y_dev = np.searchsorted(self.classes, y_dev).astype(np.int32)
            self.n_outputs = int(self.classes.size)
        else:
            self.classes = None
            y = np.ascontiguousarray(y, dtype=self.dtype)
            y_dev = np.ascontiguousarray(y_dev, dtype=self.dtype)
            self.n_outputs = 1 if y.ndim == 1 else y.shape[1]
        self.standardizer = None
        if settings["standardize"]:
            sd = Standardizer().fit(X)
            X = np.ascontiguousarray(sd.transform(X), dtype=self.dtype)
            X_dev = np.ascontiguousarray(sd.transform(X_dev), dtype=self.dtype)
            self.standardizer = sd
        self.X, self.y, self.X_dev, self.y_dev = X, y, X_dev, y_dev
        self._fingerprint = None

    def fingerprint(self):
        """What the trials' results depend on besides their configs: a SHA-256 of the data as
        trained on (training and dev sets, and the class labels) and the fixed settings."""
        if self._fingerprint is None:
            from ..data import fingerprint
            arrays = [self.X, self.y, self.X_dev, self.y_dev]
            if self.classes is not None:
                arrays.append(self.classes)
            self._fingerprint = {
                "data": fingerprint(*arrays), "n_train": int(self.X.shape[0]),
                "n_dev": int(self.X_dev.shape[0]), "n_features": int(self.X.shape[1]),
                "task": self.task, "dtype": self.dtype,
                "standardize": bool(self.settings_["standardize"]),
                "base": _jsonable(self.base, "base")}
        return self._fingerprint

    def settings(self, config):
        """The full settings of a trial: defaults, then ``base``, then ``config``."""
        unknown = sorted(set(config) - set(_DEFAULTS))
        if unknown:
            raise ValueError(f"config has unknown keys {unknown}; the built-in objective knows "
                             f"{sorted(_DEFAULTS)}")
        return {**_DEFAULTS, **self.base, **config}

    def build(self, config, seed):
        """``(model, trainer, settings)`` for a config, seeded with ``seed``."""
        from ..model import MLP, Dense
        from ..optim import _CLASSES
        from ..schedules import InverseTimeDecay
        from ..trainer import Trainer

        c = self.settings(config)
        name = c["optimizer"]
        if name not in _CLASSES:
            raise ValueError(f"optimizer must be one of {sorted(_CLASSES)}, got {name!r}")
        accepted = inspect.signature(_CLASSES[name]).parameters
        optimizer = _CLASSES[name](**{k: c[k] for k in accepted if k in c})
        hidden = c["hidden"]
        if hidden is None:
            hidden = [c["n_hidden"]] * check_scalar(c["n_layers"], "n_layers", "int", low=0)
        layers = [Dense(int(u), c["activation"], init=c["init"], keep_prob=c["keep_prob"],
                        batch_norm=c["batch_norm"]) for u in hidden]
        layers.append(Dense(self.n_outputs,
                            "softmax" if self.task == "classification" else "linear"))
        model = MLP(self.X.shape[1], layers, dtype=self.dtype, seed=seed)
        schedule = c["schedule"]
        if schedule is None and c["lr_decay"]:
            schedule = InverseTimeDecay(c["lr_decay"], c["decay_interval"])
        trainer = Trainer(model, optimizer=optimizer, schedule=schedule, l2=c["l2"],
                          batch_size=c["batch_size"], seed=seed)
        return model, trainer, c

    def __call__(self, config, seed):
        from ..trainer import EarlyStopping

        model, trainer, c = self.build(config, seed)
        stop = None if c["patience"] is None else EarlyStopping(c["patience"])
        h = trainer.fit(self.X, self.y, epochs=c["epochs"], validation_data=(self.X_dev,
                        self.y_dev), early_stopping=stop,
                        callbacks=[_check_cancelled, _report_epoch], progress=False)
        val_loss, val_error = model.evaluate(self.X_dev, self.y_dev)
        best_epoch = len(h) - 1 if stop is None or stop.best_epoch is None else stop.best_epoch
        return {"val_error": val_error, "val_loss": val_loss, "loss": h["loss"][-1],
                "error": h["error"][-1], "epochs": len(h), "best_epoch": best_epoch}

    def final_model(self, config, seed, include_dev=False, epochs=None):
        """The model of a config, trained again as its trial was (same seed) and ready to
        use: its ``standardizer`` and ``classes_`` are set, so it takes the raw features and
        predicts the original labels.

        ``include_dev=True`` trains on the training and dev sets together, with no dev set
        left to stop on: for ``epochs`` (default: the config's epochs).
        """
        from ..trainer import EarlyStopping

        model, trainer, c = self.build(config, seed)
        if include_dev:
            X = np.concatenate([self.X, self.X_dev])
            y = np.concatenate([self.y, self.y_dev])
            trainer.fit(X, y, epochs=c["epochs"] if epochs is None else epochs, progress=False)
        else:
            stop = None if c["patience"] is None else EarlyStopping(c["patience"])
            trainer.fit(self.X, self.y, epochs=c["epochs"] if epochs is None else epochs,
                        validation_data=(self.X_dev, self.y_dev), early_stopping=stop,
                        progress=False)
        model.standardizer = self.standardizer
        model.classes_ = None if self.classes is None else self.classes.copy()
        model.training_config_ = trainer.get_config()
        return model


def default_space():
    """The space ``fastnn search`` explores, following the course's priorities: Adam's
    learning rate first (log scale), then hidden units, the momentum term beta1 (as 1 - beta1,
    log scale) and the mini-batch size, then layers, learning-rate decay and L2."""
    return {
        "optimizer": "adam",
        "lr": LogUniform(1e-4, 1e-1),
        "beta1": OneMinusLogUniform(0.8, 0.99),
        "n_hidden": IntUniform(16, 256, log=True),
        "batch_size": Choice([32, 64, 128, 256]),
        "n_layers": IntUniform(1, 3),
        "lr_decay": Uniform(0.0, 0.5),
        "l2": LogUniform(1e-4, 1.0),
    }
