"""What a training run reports as it goes: a progress bar, metrics.csv and JSON files.

The files are rewritten atomically (see atomic.py): a crash never leaves half a file.

The progress bar is plain text on stderr, redrawn in place with a carriage
return ("\\r") at most ten times a second on a terminal; when stderr is a file or
a pipe (a log, CI), it prints a plain line at most every 30 seconds instead.
"""

import csv
import json
import math
import sys
import time

from .atomic import atomic_write

METRIC_FIELDS = ["epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr",
                 "seconds", "images_per_s"]


class ProgressBar:
    """One line like `epoch 3/25 [#######.......] 41/98 loss 1.234 acc 55.1% 1234 img/s`."""

    def __init__(self, label, total, stream=None, width=24, min_interval=0.1):
        self.label, self.total, self.width = label, total, width
        self.stream = sys.stderr if stream is None else stream
        self.interactive = getattr(self.stream, "isatty", lambda: False)()
        self.min_interval = min_interval if self.interactive else 30.0
        self.last_draw = -math.inf
        self.drawn = 0                           # length of the text on screen

    def update(self, done, loss, acc, images_per_s, force=False):
        now = time.perf_counter()
        if not force and now - self.last_draw < self.min_interval:
            return
        self.last_draw = now
        filled = int(self.width * done / max(self.total, 1))
        bar = "#" * filled + "." * (self.width - filled)
        text = (f"{self.label} [{bar}] {done}/{self.total} loss {loss:.4f} "
                f"acc {100 * acc:.1f}% {images_per_s:.0f} img/s")
        if not self.interactive:                 # a log file: whole lines, no redrawing
            self.stream.write(text + "\n")
            self.stream.flush()
            return
        self.stream.write("\r" + text.ljust(self.drawn))
        self.stream.flush()
        self.drawn = len(text)

    def close(self):
        """Erase the bar, so the per-epoch summary line takes its place."""
        if self.drawn:
            self.stream.write("\r" + " " * self.drawn + "\r")
            self.stream.flush()
            self.drawn = 0


def epoch_line(row, epochs):
    """The one line printed per epoch."""
    width = len(str(epochs))
    return (f"epoch {row['epoch']:>{width}}/{epochs} | train loss {row['train_loss']:.4f} "
            f"acc {100 * row['train_acc']:.2f}% | test loss {row['test_loss']:.4f} "
            f"acc {100 * row['test_acc']:.2f}% | lr {row['lr']:.6f} | "
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
    return value if isinstance(value, int) else repr(float(value))   # repr: exact round trip


def write_json(path, data):
    """Pretty JSON, written atomically."""
    def write(tmp):
        with open(tmp, "w") as f:
            json.dump(data, f, indent=2, sort_keys=False)
            f.write("\n")

    atomic_write(path, write)
