"""The per-epoch record of a training run (``Trainer.history``), kept in checkpoints."""
import math

from .diagnose import diagnose

__all__ = ["History"]


class History:
    """Per-epoch training record: ``history["loss"]`` etc. and ``history.history`` (a dict).

    Keys: ``epoch``, ``loss`` (mean training cost of the epoch's steps, L2 term included),
    ``error`` (training error rate over the epoch's steps, training mode), ``val_loss``,
    ``val_error`` (inference mode), ``lr``, ``loss_ewa`` (bias-corrected exponentially weighted
    average of the step losses at the end of the epoch; the average runs on across ``fit`` calls
    and checkpoints), ``time``.
    """

    KEYS = ("epoch", "loss", "error", "val_loss", "val_error", "lr", "loss_ewa", "time")

    def __init__(self):
        self.history = {k: [] for k in self.KEYS}
        self.stopped_epoch = None   # the epoch after which early stopping ended training
        self.best_epoch = None      # ... and the epoch whose weights it restored

    def __getitem__(self, key):
        return self.history[key]

    def __len__(self):
        return len(self.history["epoch"])

    def append(self, logs):
        for k in self.KEYS:
            self.history[k].append(logs.get(k, float("nan")))

    def _pop(self):
        for k in self.KEYS:
            self.history[k].pop()

    def diagnose(self, base_error=0.0, tol=0.02):
        """The course's bias/variance reading of the last epoch (needs validation data)."""
        if not len(self) or math.isnan(self.history["val_error"][-1]):
            raise ValueError("diagnose needs a classification history with validation data "
                             "(fit(..., validation_data=(X_dev, y_dev)))")
        return diagnose(self.history["error"][-1], self.history["val_error"][-1],
                        base_error=base_error, tol=tol, stopped_epoch=self.stopped_epoch,
                        best_epoch=self.best_epoch if self.stopped_epoch is not None else None)

    def plot(self, path=None):
        """Learning curves (loss and error, train and dev) with matplotlib; saved to ``path``
        when given.  Returns the figure."""
        try:
            import matplotlib
            if path is not None:
                matplotlib.use("Agg", force=False)
            import matplotlib.pyplot as plt
        except ImportError as exc:  # optional extra
            raise ImportError("History.plot needs matplotlib: pip install 'fastnn[plot]'") from exc
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        ep = self.history["epoch"]
        for ax, key in zip(axes, ("loss", "error")):
            ax.plot(ep, self.history[key], label=f"train {key}")
            if not all(math.isnan(v) for v in self.history[f"val_{key}"]):
                ax.plot(ep, self.history[f"val_{key}"], label=f"dev {key}")
            if key == "loss":
                ax.plot(ep, self.history["loss_ewa"], "--", label="train loss (EWA)")
            ax.set_xlabel("epoch")
            ax.set_ylabel(key)
            ax.legend()
        fig.tight_layout()
        if path is not None:
            fig.savefig(path)
        return fig

    def __repr__(self):
        return f"History({len(self)} epochs)"
