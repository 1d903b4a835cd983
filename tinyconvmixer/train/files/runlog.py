"""What a training run reports as it goes: a progress bar, metrics.csv and JSON files.

The files are rewritten atomically (see atomic.py): a crash never leaves half a file.

metrics.csv has one row per finished epoch; its columns (METRIC_FIELDS), with
the digits kept (more would be noise: the loss is a float32 mean, an accuracy
on 10,000 test images moves in steps of 0.01%):

    epoch          1, 2, ...
    train_loss     mean cross-entropy over the epoch's (augmented) batches, 4 decimals
    train_acc      percent of those images classified right, during the epoch, 2 decimals
    test_loss      mean cross-entropy on the test set after the epoch, 4 decimals
    test_acc       percent of the test images classified right, 2 decimals
    lr             the learning rate at the end of the epoch, 6 significant digits
    seconds        wall time of the epoch, evaluation included, 1 decimal
    images_per_s   training images per second during the epoch, 1 decimal

Accuracy is in percent everywhere: the console, metrics.csv, summary.json and
the plots. The progress bar is a status line on stderr (see statusline.py).
"""

import csv
import json
import time

from ...util.atomic import atomic_write
from ...util.statusline import StatusLine, format_seconds

METRIC_FIELDS = ["epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr",
                 "seconds", "images_per_s"]


def make_row(epoch, train_loss, train_acc, test_loss, test_acc, lr, seconds, images_per_s):
    """A metrics row, rounded as documented above; accuracies are given as fractions (0..1)."""
    return dict(epoch=int(epoch), train_loss=round(float(train_loss), 4), train_acc=round(100 * train_acc, 2),
                test_loss=round(float(test_loss), 4), test_acc=round(100 * test_acc, 2),
                lr=float(f"{lr:.6g}"), seconds=round(float(seconds), 1),
                images_per_s=round(float(images_per_s), 1))


class ProgressBar:
    """`epoch 3/25 [#######.......] 41/98 loss 1.2340 acc 55.1% 1234 img/s | 0:41, ETA epoch 0:59, run 23:10`.

    elapsed_before: seconds this epoch had already trained before (a resumed run).
    later_epochs, epoch_seconds: for the run's ETA, the epochs after this one and
    the seconds each is expected to take (None: as long as this one looks to).
    """

    def __init__(self, label, total, stream=None, width=24, min_interval=0.1, start_done=0,
                 elapsed_before=0.0, later_epochs=0, epoch_seconds=None):
        self.label, self.total, self.width = label, total, width
        self.line = StatusLine(stream, min_interval=min_interval)
        self.start, self.start_done, self.elapsed_before = time.perf_counter(), start_done, elapsed_before
        self.later_epochs, self.epoch_seconds = later_epochs, epoch_seconds

    def due(self):
        return self.line.due()

    def eta(self, done):
        """(elapsed, epoch_left, run_left) in seconds; None where unknown yet."""
        spent = time.perf_counter() - self.start
        elapsed = self.elapsed_before + spent
        if done <= self.start_done:
            return elapsed, None, None
        epoch_left = spent / (done - self.start_done) * (self.total - done)
        per_epoch = self.epoch_seconds if self.epoch_seconds is not None else elapsed + epoch_left
        return elapsed, epoch_left, epoch_left + self.later_epochs * per_epoch

    def update(self, done, loss, acc, images_per_s, force=False):
        """Redraw (at most every min_interval s unless force); acc in percent."""
        if not force and not self.line.due():
            return
        elapsed, epoch_left, run_left = self.eta(done)
        filled = int(self.width * done / max(self.total, 1))
        bar = "#" * filled + "." * (self.width - filled)
        text = (f"{self.label} [{bar}] {done}/{self.total} loss {loss:.4f} acc {acc:.1f}% "
                f"{images_per_s:.0f} img/s | {format_seconds(elapsed)}, ETA epoch {format_seconds(epoch_left)}")
        if self.later_epochs:
            text += f", run {format_seconds(run_left)}"
        self.line.show(text, force=True)

    def close(self):
        """Erase the bar, so the per-epoch summary line takes its place."""
        self.line.close()


def epoch_line(row, epochs):
    """The one line printed per epoch."""
    width = len(str(epochs))
    return (f"epoch {row['epoch']:>{width}}/{epochs} | train loss {row['train_loss']:.4f} "
            f"acc {row['train_acc']:.2f}% | test loss {row['test_loss']:.4f} "
            f"acc {row['test_acc']:.2f}% | lr {row['lr']:.6f} | "
            f"{row['seconds']:.1f} s ({row['images_per_s']:.0f} img/s)")


def write_metrics(path, history):
    """(Re)write metrics.csv from all epoch rows so far (atomically, it is small)."""
    def write(tmp):
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=METRIC_FIELDS)
            writer.writeheader()
            for row in history:
                writer.writerow({k: _fmt(row[k]) for k in METRIC_FIELDS})

    atomic_write(path, write)


def read_metrics(path):
    """metrics.csv back as a list of dicts of numbers (epoch as int)."""
    with open(path, newline="") as f:
        return [{k: int(v) if k == "epoch" else float(v) for k, v in row.items()}
                for row in csv.DictReader(f)]


def _fmt(value):
    return value if isinstance(value, int) else repr(float(value))   # repr: the shortest exact text


def write_json(path, data):
    """Pretty JSON, written atomically."""
    def write(tmp):
        with open(tmp, "w") as f:
            json.dump(data, f, indent=2, sort_keys=False)
            f.write("\n")

    atomic_write(path, write)
