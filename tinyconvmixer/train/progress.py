"""Where a training run stands: `Progress` (saved in checkpoints) and `EpochMeter` (on the device).

Progress holds plain numbers and the metrics rows of the finished epochs; every
checkpoint stores it, so --resume continues at the same batch with the same
running sums. `Progress.from_saved` reads it back and refuses anything a
checkpoint written by the training command could not hold (unknown or missing keys, wrong
types, negative counts, non-finite numbers), so a damaged or crafted
checkpoint is a clear error instead of a traceback later.

EpochMeter keeps the current epoch's loss sum and number of correct predictions
as 0-d arrays on the training device. Reading a GPU number on the host makes
the CPU wait until the GPU has finished everything queued, so doing it at every
step (loss.item()) would stall the pipeline at every step. The meter is read
only when the progress bar is redrawn (at most every CHECK_EVERY steps, see
loop.py), at the end of the epoch and before a checkpoint; each read also
checks that every loss since the last read was finite, and says which step was
the first that was not.
"""

import dataclasses
import math

import numpy as np

from ..engine import backend
from .files.runlog import METRIC_FIELDS, OPTIONAL_FIELDS


class NonFiniteLoss(RuntimeError):
    """The training or test loss became NaN or infinite."""


class ProgressError(ValueError):
    """A checkpoint's progress record is not one the training command could have written."""


@dataclasses.dataclass
class Progress:
    """Where a run stands; saved in every checkpoint so --resume continues exactly."""
    epoch: int = 0                 # epochs finished
    step: int = 0                  # batches finished in the current epoch
    loss_sum: float = 0.0          # over the current epoch so far: sum of loss * batch size,
    correct: int = 0               #   correct predictions,
    seen: int = 0                  #   images seen,
    train_seconds: float = 0.0     #   and seconds spent training
    best_val_acc: float = -1.0     # best validation accuracy so far, percent (-1: none, or no validation set)
    best_epoch: int = 0            # the epoch of best_val_acc, which best.npz holds (0: none)
    total_seconds: float = 0.0     # all epochs, evaluation included
    history: list = dataclasses.field(default_factory=list)   # one metrics row per finished epoch

    def finish_epoch(self, row):
        """Record a finished epoch; returns whether it is the new best (by validation accuracy: a
        run without a validation set has no best epoch, its test accuracy never chooses one)."""
        self.history.append(row)
        self.total_seconds += row["seconds"]
        improved = row.get("val_acc") is not None and row["val_acc"] > self.best_val_acc
        if improved:
            self.best_val_acc, self.best_epoch = row["val_acc"], row["epoch"]
        self.epoch, self.step, self.loss_sum, self.correct, self.seen, self.train_seconds = \
            self.epoch + 1, 0, 0.0, 0, 0, 0.0
        return improved

    def where(self, n_batches):
        """'after epoch 2' or 'at epoch 3, batch 14/40': where a checkpoint of this progress stands."""
        if self.step == 0:
            return f"after epoch {self.epoch}" if self.epoch else "before the first step"
        return f"at epoch {self.epoch + 1}, batch {self.step}/{n_batches}"

    @classmethod
    def from_saved(cls, saved):
        """Progress from a checkpoint's record (a dict), checked; ProgressError says what is wrong."""
        if not isinstance(saved, dict):
            raise ProgressError(f"the progress record is a {type(saved).__name__}, not a dict")
        fields = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(saved) - set(fields))
        missing = [f for f in fields if f not in saved]
        if unknown or missing:
            raise ProgressError(f"unknown progress key(s): {', '.join(unknown) or 'none'}; missing: "
                                f"{', '.join(missing) or 'none'} (was it written by another version?)")
        for name in ("epoch", "step", "correct", "seen", "best_epoch"):
            _count(saved[name], name)
        for name in ("loss_sum", "train_seconds", "total_seconds"):
            _number(saved[name], name, low=0)
        _number(saved["best_val_acc"], "best_val_acc", low=-1, high=100)
        history = saved["history"]
        if not isinstance(history, list) or len(history) != saved["epoch"]:
            raise ProgressError(f"history must be a list of one row per finished epoch ({saved['epoch']})")
        for i, row in enumerate(history):
            if not isinstance(row, dict) or sorted(row) != sorted(METRIC_FIELDS) or row["epoch"] != i + 1:
                raise ProgressError(f"history row {i + 1} is not a metrics row {list(METRIC_FIELDS)}")
            for key in METRIC_FIELDS:
                if not (key in OPTIONAL_FIELDS and row[key] is None):
                    _number(row[key], f"history row {i + 1} {key}", low=0)
        if saved["correct"] > saved["seen"]:
            raise ProgressError(f"correct ({saved['correct']}) cannot exceed seen ({saved['seen']})")
        if saved["best_epoch"] > saved["epoch"] or (saved["best_epoch"] == 0) != (saved["best_val_acc"] == -1):
            raise ProgressError(f"best_epoch {saved['best_epoch']} and best_val_acc {saved['best_val_acc']} "
                                f"do not fit {saved['epoch']} finished epochs")
        return cls(**saved)


def _count(value, name):
    if type(value) is not int or value < 0:
        raise ProgressError(f"{name} must be a whole number >= 0, got {value!r}")


def _number(value, name, low=-math.inf, high=math.inf):
    if type(value) not in (int, float) or not math.isfinite(value) or not low <= value <= high:
        raise ProgressError(f"{name} must be a finite number in [{low}, {high}], got {value!r}")


class EpochMeter:
    """The epoch's running loss sum and correct count as 0-d arrays on the device, read rarely."""

    def __init__(self, xp, loss_sum=0.0, correct=0, first_step=0):
        self.xp = xp
        self.loss_sum = xp.asarray(loss_sum, dtype=xp.float64)
        self.correct = xp.asarray(correct, dtype=xp.int64)
        self.unchecked = []              # losses (0-d device arrays) of the steps since the last read
        self.first_unchecked = first_step

    def add(self, loss, correct, n):
        """One step: `loss` (the batch's mean, a 0-d array), `correct` (0-d int), n images. No host read."""
        self.loss_sum = self.loss_sum + loss.astype(self.xp.float64) * n
        self.correct = self.correct + correct
        self.unchecked.append(loss)

    def read(self):
        """(loss_sum, correct, bad): host numbers, one copy from the device.

        bad is None, or (step, value) for the first step since the last read
        whose loss was not finite (steps counted from 0 in the epoch).
        """
        xp = self.xp
        parts = [self.loss_sum, self.correct.astype(xp.float64)] + [x.astype(xp.float64) for x in self.unchecked]
        values = backend.to_numpy(xp.stack(parts))
        losses = values[2:]
        bad = None
        if not np.isfinite(losses).all():
            first = int(np.argmin(np.isfinite(losses)))
            bad = (self.first_unchecked + first, float(losses[first]))
        else:
            self.first_unchecked += len(self.unchecked)
            self.unchecked = []
        return float(values[0]), int(values[1]), bad
