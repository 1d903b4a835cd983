"""What a training run reports as it goes: a progress bar, metrics.csv and JSON files.

The files are rewritten atomically (see util/atomic.py): a crash never leaves half a file.

metrics.csv has one row per finished epoch; its columns (METRIC_FIELDS), with
the digits kept (more would be noise: the loss is a float32 mean, an accuracy
on 10,000 test images moves in steps of 0.01%):

    epoch          1, 2, ...
    train_loss     mean cross-entropy over the epoch's (augmented) batches, 4 decimals
    train_acc      percent of those images classified right, during the epoch, 2 decimals
    val_loss       mean cross-entropy on the validation images (--val-split) after the
                   epoch, 4 decimals; empty without a validation set
    val_acc        percent of the validation images classified right, 2 decimals; empty
                   without a validation set. best.npz is the epoch where it is highest
    test_loss      mean cross-entropy on the test set after the epoch, 4 decimals
    test_acc       percent of the test images classified right, 2 decimals (reported,
                   never used to choose anything)
    lr             the learning rate at the end of the epoch, 6 significant digits
    seconds        wall time of the epoch, evaluation included, 4 significant digits
    images_per_s   training images per second during the epoch, 4 significant digits

Times and rates keep significant digits, not a fixed number of decimals
(`significant`): an epoch of 0.0123 s on a fast machine is written 0.0123, never
0.0. Accuracy is in percent everywhere: the console, metrics.csv, summary.json
and the plots. The progress bar is a status line on stderr (util/statusline.py)
that fits the terminal's width.
"""

import csv
import json
import math
import time

from ...util.atomic import atomic_write
from ...util.statusline import StatusLine, columns, cut, format_seconds

METRIC_FIELDS = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc", "lr",
                 "seconds", "images_per_s"]
OPTIONAL_FIELDS = ("val_loss", "val_acc")        # empty (None) in a run without a validation set


def significant(x, digits=4):
    """x to `digits` significant digits, and at least one decimal: 0.01235, 12.35, 1234.6.

    For times and rates: a fixed number of decimals would write a fast epoch
    (0.0123 s) as 0.0, and a rate of 0.04 images/s as 0.0.
    """
    x = float(x)
    if x == 0 or not math.isfinite(x):
        return x
    return round(x, max(1, digits - 1 - math.floor(math.log10(abs(x)))))


def short_number(x):
    """A time or rate for the console, 3 significant digits, no exponent below 100: 0.0123, 8.3, 306."""
    return f"{x:.0f}" if abs(x) >= 100 else f"{x:.3g}"


def make_row(epoch, train_loss, train_acc, test_loss, test_acc, lr, seconds, images_per_s,
             val_loss=None, val_acc=None):
    """A metrics row, rounded as documented above; accuracies are given as fractions (0..1).
    val_loss and val_acc are None for a run without a validation set."""
    return dict(epoch=int(epoch), train_loss=round(float(train_loss), 4), train_acc=round(100 * train_acc, 2),
                val_loss=None if val_loss is None else round(float(val_loss), 4),
                val_acc=None if val_acc is None else round(100 * val_acc, 2),
                test_loss=round(float(test_loss), 4), test_acc=round(100 * test_acc, 2),
                lr=float(f"{lr:.6g}"), seconds=significant(seconds), images_per_s=significant(images_per_s))


class ProgressBar:
    """`epoch 3/25 [#######.......] 41/98 loss 1.2340 acc 55.1% 1234 img/s | 0:41, ETA epoch 0:59, run 23:10`.

    The line fits the terminal (util/statusline.py): where it is narrower than
    all of that, the elapsed time goes first, then the rate, then the bar, then
    the run's ETA, then the epoch's (LAYOUTS); the bar takes what room is left
    (at least MIN_BAR, at most `width` characters). Wider terminals show
    everything and a longer bar.

    elapsed_before: seconds this epoch had already trained before (a resumed run).
    later_epochs, epoch_seconds: for the run's ETA, the epochs after this one and
    the seconds each is expected to take (None: as long as this one looks to).
    """

    MIN_BAR = 8
    LAYOUTS = ((), True), (("elapsed",), True), (("elapsed", "rate"), True), (("elapsed", "rate"), False), \
        (("elapsed", "rate", "run"), False), (("elapsed", "rate", "run", "eta"), True), \
        (("elapsed", "rate", "run", "eta"), False)                       # (what is left out, a bar?)

    def __init__(self, label, total, stream=None, width=30, min_interval=0.1, start_done=0,
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

    def text(self, done, loss, acc, images_per_s, width):
        """The line for `width` columns (see the class docstring)."""
        elapsed, epoch_left, run_left = self.eta(done)
        parts = {"rate": f"{images_per_s:.0f} img/s", "elapsed": format_seconds(elapsed),
                 "eta": f"ETA epoch {format_seconds(epoch_left)}"}
        if self.later_epochs:
            parts["run"] = f"run {format_seconds(run_left)}"
        core = f"{done}/{self.total} loss {loss:.4f} acc {acc:.1f}%"

        def line(keep, bar):
            text = f"{self.label} " + (f"[{bar}] " if bar is not None else "") + core
            if "rate" in keep:
                text += " " + keep["rate"]
            times = [keep[k] for k in ("elapsed", "eta", "run") if k in keep]
            return text + (" | " + ", ".join(times) if times else "")

        for dropped, with_bar in self.LAYOUTS:
            keep = {k: v for k, v in parts.items() if k not in dropped}
            if with_bar:
                room = width - columns(line(keep, ""))
                if room >= self.MIN_BAR:
                    return line(keep, self._bar(done, min(room, self.width)))
            elif columns(line(keep, None)) <= width:
                return line(keep, None)
        return cut(line({}, None), width)

    def _bar(self, done, n):
        filled = min(int(n * done / max(self.total, 1)), n)
        return "#" * filled + "." * (n - filled)

    def update(self, done, loss, acc, images_per_s, force=False):
        """Redraw (at most every min_interval s unless force); acc in percent."""
        if not force and not self.line.due():
            return
        self.line.show(self.text(done, loss, acc, images_per_s, self.line.width()), force=True)

    def close(self):
        """Erase the bar, so the per-epoch summary line takes its place."""
        self.line.close()


def epoch_line(row, epochs):
    """The one line printed per epoch (the validation part only with a validation set)."""
    width = len(str(epochs))
    val = (f"val loss {row['val_loss']:.4f} acc {row['val_acc']:.2f}% | "
           if row.get("val_acc") is not None else "")
    return (f"epoch {row['epoch']:>{width}}/{epochs} | train loss {row['train_loss']:.4f} "
            f"acc {row['train_acc']:.2f}% | {val}test loss {row['test_loss']:.4f} "
            f"acc {row['test_acc']:.2f}% | lr {row['lr']:.6f} | "
            f"{short_number(row['seconds'])} s ({short_number(row['images_per_s'])} img/s)")


def metrics_text(history):
    """The text of metrics.csv for these rows (what write_metrics writes)."""
    import io
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=METRIC_FIELDS)
    writer.writeheader()
    for row in history:
        writer.writerow({k: _fmt(row.get(k)) for k in METRIC_FIELDS})
    return out.getvalue()


def write_metrics(path, history):
    """(Re)write metrics.csv from all epoch rows so far (atomically, it is small)."""
    text = metrics_text(history)

    def write(tmp):
        with open(tmp, "w", newline="", encoding="ascii") as f:
            f.write(text)

    atomic_write(path, write)


def read_metrics(path):
    """metrics.csv back as a list of dicts of numbers (epoch as int; an empty cell as None)."""
    with open(path, newline="", encoding="ascii") as f:
        return [{k: None if v == "" else int(v) if k == "epoch" else float(v) for k, v in row.items()}
                for row in csv.DictReader(f)]


def _fmt(value):
    if value is None:
        return ""
    return value if isinstance(value, int) else repr(float(value))   # repr: the shortest exact text


def write_json(path, data):
    """Pretty JSON, written atomically (ASCII: any name in it is escaped, whatever the locale)."""
    def write(tmp):
        with open(tmp, "w", encoding="ascii") as f:
            json.dump(data, f, indent=2, sort_keys=False)
            f.write("\n")

    atomic_write(path, write)
