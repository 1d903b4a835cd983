"""A training run: its data, model and optimiser, where it stands, and the files it writes.

`Run(args, checkpoint, out)` builds everything from the command's arguments
(and, with --resume, from a checkpoint, checked thoroughly first); loop.py
trains it. Reproducibility: the weights come from nn.init seeded with --seed;
epoch e visits the images in the order drawn by np.random.default_rng([seed, e])
and batch b of it is augmented with np.random.default_rng([seed, e, b]). So
--resume can continue a run mid-epoch exactly: regenerate the epoch's order,
skip the batches already done.
"""

import dataclasses
import json
import os
import platform
import shutil
import sys
import time

import numpy as np

from .. import __version__, nn
from ..data import load_cifar10
from ..data.loader import num_batches
from ..engine import backend
from ..fast.cpu import tuning
from ..optim import AdamW, triangular_lr
from ..util.atomic import atomic_write
from ..util.paths import quoted, shown
from .args import IMAGE_SIZE, RECIPE_VAL_SPLIT, train_transform
from .checkpoint import CheckpointError, first_non_finite, read_meta, restore, save_checkpoint
from .files import interrupts
from .files.runlog import epoch_line, metrics_text, short_number, significant, write_json, write_metrics
from .progress import EpochMeter, NonFiniteLoss, Progress, ProgressError
from .report.diagnostics import Diagnostics
from .report.plots import plot_curves, plot_filters, run_title
from .runid import check_data, compare_args, refuse_conflicts

SUBSET_SEED = 12345         # the draw of --train-subset and --test-subset
VALIDATION_SEED = 271828    # the draw of --val-split: its own, so that N and M choose independently
NO_BEST = (f"no validation set (--val-split 0), so no best.npz: choosing an epoch by test accuracy would "
           f"select the model on the test set; --val-split {RECIPE_VAL_SPLIT} holds out images to choose by")


class SettingsError(ValueError):
    """Settings that cannot train on this data (found once the data is loaded)."""


def plan_batches(n, batch_size, patch_size):
    """(n_batches, drop_last, note) for n training images.

    BatchNorm normalises each channel over batch x height x width values; with
    a single one (a last batch of 1 image and 1x1 patches) there is nothing to
    normalise (PyTorch refuses it). Such a last batch is dropped, as PyTorch's
    DataLoader(drop_last=True) would, and the note says so.
    """
    tokens = (IMAGE_SIZE // patch_size) ** 2
    if min(n, batch_size) * tokens < 2:
        raise SettingsError(f"{n} training image(s) in batches of {batch_size} with 1x1 patches give "
                            "BatchNorm one value per channel; use more images or a smaller --patch-size")
    if (n % batch_size) * tokens == 1:
        return num_batches(n, batch_size, drop_last=True), True, (
            f"note: the last batch of every epoch would hold 1 image of 1x1 patches, one value per channel "
            f"for BatchNorm; it is dropped (as PyTorch's drop_last=True): {n - 1} of {n} images per epoch")
    return num_batches(n, batch_size), False, None


def class_balanced_subset(labels, n, seed=SUBSET_SEED):
    """Indices of n examples, as equal a number from each class as possible.

    Drawn with a fixed seed (not --seed), so the same N always picks the same
    images and runs with different seeds are compared on the same data.
    """
    if n is None or n >= len(labels):
        return np.arange(len(labels))
    perm = np.random.default_rng(seed).permutation(len(labels))
    y = labels[perm]
    rank = np.zeros(len(perm), dtype=np.int64)         # position of each example within its class
    for c in np.unique(y):
        rank[y == c] = np.arange(int((y == c).sum()))
    take = np.lexsort((np.arange(len(perm)), rank))[:n]   # round robin over classes
    return np.sort(perm[take])


def validation_split(labels, n):
    """(validation indices, the other indices) of the training labels: n images held out,
    class-balanced, drawn with a fixed seed of their own (not --seed, so runs with different
    seeds are chosen on the same images). With n = 0 there is no validation set."""
    everything = np.arange(len(labels))
    if not n:
        return everything[:0], everything
    if n >= len(labels):
        raise SettingsError(f"--val-split {n} would leave no training images: the data has "
                            f"{len(labels):,} (hold out fewer, e.g. {len(labels) // 10:,})")
    val = class_balanced_subset(labels, n, seed=VALIDATION_SEED)
    return val, np.setdiff1d(everything, val)


def run_split(data, args):
    """(train, validation, test) index arrays into data's train and test arrays, as the
    arguments ask: the validation images first, then --train-subset from the rest."""
    val, rest = validation_split(data.train_y, getattr(args, "val_split", 0))
    train = rest[class_balanced_subset(data.train_y[rest], args.train_subset)]
    return train, val, class_balanced_subset(data.test_y, args.test_subset)


class Run:
    """Everything a run needs, built from the arguments (and a checkpoint to resume)."""

    def __init__(self, args, checkpoint, out=None):
        self.args, self.out = args, out
        self.device = backend.resolve_device(args.device)
        if self.device == "cpu":
            tuning.keep_freed_memory()             # no page faults for every new array (fast/cpu/tuning.py)
        data = load_cifar10(args.data, download=not args.no_download)
        tr, va, te = run_split(data, args)
        self.train, self.test = (data.train_x[tr], data.train_y[tr]), (data.test_x[te], data.test_y[te])
        self.val = (data.train_x[va], data.train_y[va]) if len(va) else None
        self.data_source, self.n_classes = data.source, len(data.classes)
        self.data_identity = dict(fingerprint=data.fingerprint, source=data.path, train_images=len(tr),
                                  val_images=len(va), test_images=len(te))
        self.n_batches, self.drop_last, self.batch_note = plan_batches(len(tr), args.batch_size, args.patch_size)
        self.augment = train_transform(args)
        nn.init.manual_seed(args.seed)
        self.model = nn.ConvMixer(args.hdim, args.depth, kernel_size=args.kernel_size,
                                  patch_size=args.patch_size, n_classes=self.n_classes).to(self.device)
        self.optimizer = AdamW(self.model.parameters(), lr=args.lr_max, weight_decay=args.wd)
        self.progress = Progress()
        self.last_good = None                      # (path, where) of the last checkpoint known to be good
        self.overridden, self.upgraded = [], False
        if checkpoint is not None:
            self._resume(checkpoint)
        self.meter = None
        self.commit_buffers()
        self.diagnostics = (Diagnostics.for_run(self.model, self.n_batches, args.epochs, out,
                                                self.progress.epoch * self.n_batches + self.progress.step)
                            if getattr(args, "diagnostics", False) and out else None)

    def _resume(self, checkpoint):
        path, meta = self.args.resume, checkpoint["meta"]
        missing = [k for k in ("args", "progress", "data", "config") if k not in meta]
        if missing:
            raise CheckpointError(f"cannot resume from {quoted(path)}: missing metadata key(s) {', '.join(missing)} "
                                  "(it was not written by tinyconvmixer.train, or by another version)")
        conflicts, self.overridden = compare_args(meta["args"], self.args)
        refuse_conflicts(conflicts, path)
        check_data(meta["data"], **{k: self.data_identity[k] for k in ("train_images", "val_images", "test_images")},
                   data_fingerprint=self.data_identity["fingerprint"], checkpoint=path)
        try:
            progress = Progress.from_saved(meta["progress"])
        except ProgressError as exc:
            raise CheckpointError(f"cannot resume from {quoted(path)}: {exc}") from exc
        bad = first_non_finite({**{f"model/{k}": v for k, v in checkpoint["model"].items()},
                                **{f"optim/{i}/{k}": v for i, s in
                                checkpoint["optimizer"]["state"].items() for k, v in s.items() if k != "step"}})
        negative = [f"optim/{i}/exp_avg_sq" for i, s in checkpoint["optimizer"]["state"].items()
                    if (s["exp_avg_sq"] < 0).any()]
        if negative:
            raise CheckpointError(f"cannot resume from {quoted(path)}: {negative[0]} holds negative values (a mean of "
                                  "squares cannot be negative: the file is damaged)")
        if bad is not None:
            raise CheckpointError(f"cannot resume from {quoted(path)}: {bad} holds NaN or infinite values (the run "
                                  "had diverged); resume from an earlier checkpoint, or start again with a "
                                  "lower --lr-max or with --clip-norm")
        try:
            restore(checkpoint, self.model, self.optimizer)
        except (nn.StateDictError, ValueError) as exc:
            detail = "; ".join(line.strip() for line in str(exc).splitlines())
            raise CheckpointError(f"cannot resume from {quoted(path)}: it does not fit this model "
                                  f"({self.model.config}): {detail}") from exc
        expected_seen = min(progress.step * self.args.batch_size, len(self.train[1]))
        if progress.step > self.n_batches or progress.seen != expected_seen:
            raise CheckpointError(f"cannot resume from {quoted(path)}: it stopped at batch {progress.step} with "
                                  f"{progress.seen} images seen, which does not fit epochs of {self.n_batches} "
                                  f"batches of {self.args.batch_size}")
        for group in self.optimizer.param_groups:        # --wd may be overridden on resume (lr: every step)
            group["weight_decay"] = self.args.wd
        self.progress = progress
        self.last_good = (path, progress.where(self.n_batches))
        self.upgraded = meta.get("upgraded_from") is not None     # (its files are of the older version)

    def path(self, name):
        return os.path.join(self.out, name)

    # ----- the state after the last completed step --------------------------------------------
    def commit_buffers(self):
        """Keep a copy of the buffers as they are after this step (what a checkpoint saves)."""
        self.committed = {name: b.copy() for name, b in self.model.named_buffers()}

    def start_epoch(self):
        xp = backend.xp_for(self.device)
        self.meter = EpochMeter(xp, self.progress.loss_sum, self.progress.correct, first_step=self.progress.step)

    def read_meter(self):
        """(loss_sum, correct) of the epoch so far, from the device; raises NonFiniteLoss on a bad step."""
        if self.meter is None:
            return self.progress.loss_sum, self.progress.correct
        loss_sum, correct, bad = self.meter.read()
        if bad is not None:
            step, value = bad
            raise NonFiniteLoss(f"the training loss became {value} at epoch {self.progress.epoch + 1}, "
                                f"batch {step + 1}")
        return loss_sum, correct

    def save(self, name):
        """Checkpoint the state after the last completed step (NonFiniteLoss if the loss was not finite)."""
        loss_sum, correct = self.read_meter()
        progress = dict(dataclasses.asdict(self.progress), loss_sum=loss_sum, correct=correct)
        state = self.model.state_dict()
        state.update(self.committed)
        meta = {"progress": progress, "args": vars(self.args), "config": self.model.config,
                "device": self.device, "data": self.data_identity, "drop_last": self.drop_last,
                "rng": "order: default_rng([seed, epoch]); augmentation: default_rng([seed, epoch, batch])"}
        save_checkpoint(self.path(name), self.model, self.optimizer, meta, state=state)
        if name == "last.npz":
            self.last_good = (self.path(name), self.progress.where(self.n_batches))

    def lr_at(self, t):
        return triangular_lr(t, self.args.epochs, self.args.lr_max)

    # ----- the files of a run -----------------------------------------------------------------
    #
    # The checkpoint set of an epoch is written in one order, last.npz first. last.npz is the
    # commit point: it holds the whole history and which epoch is the best, and best.npz (a copy
    # of it when the epoch is the best), metrics.csv and summary.json are derived from it. A run
    # killed between any two of these writes (SIGKILL, the OOM killer, a power cut) leaves
    # last.npz at the old epoch (then every file agrees with it) or at the new one with some
    # derived files behind; `repair`, run on every resume, brings those up to date from last.npz
    # and says so. diagnostics.csv goes before last.npz (its rows past a checkpoint are dropped
    # on resume), curves.png after (redrawn on resume), filters.png and the final summary.json
    # at the end (rewritten on resume when the run finished without them).

    def end_epoch(self, row):
        """Record a finished epoch: its files (in the order above), the console line, the curves."""
        args, progress = self.args, self.progress
        if self.diagnostics:
            self.diagnostics.save(self.out)             # one copy from the device per epoch
        with interrupts.deferred():                     # the epoch's record and files: all or nothing
            improved = progress.finish_epoch(row)
            self.meter = None
            self.save("last.npz")                       # the commit point
            if improved:
                self.copy_checkpoint(self.path("last.npz"), "best.npz")
            write_metrics(self.path("metrics.csv"), progress.history)
            write_json(self.path("summary.json"), self.summary())
            print(epoch_line(row, args.epochs), flush=True)      # (once its files are on disk)
        self.plot_curves()

    def copy_checkpoint(self, source, name):
        """Copy the checkpoint file `source` to `name` in the run folder, atomically."""
        atomic_write(self.path(name), lambda tmp: shutil.copyfile(source, tmp))

    def plot_curves(self):
        plot_curves(self.progress.history, self.path("curves.png"), self.lr_at, self.args.epochs,
                    title=self.title())

    def title(self):
        return run_title(self.args, self.device, len(self.train[1]), len(self.test[1]),
                         val_images=0 if self.val is None else len(self.val[1]))

    def summary(self, finished=False):
        """What summary.json holds: the state after the last finished epoch, and which checkpoint
        is the best by what (or that none is chosen, and why)."""
        p, args = self.progress, self.args
        last = p.history[-1] if p.history else {}
        best = None
        if p.best_epoch:
            row = p.history[p.best_epoch - 1]
            best = dict(checkpoint="best.npz", chosen_by="val_acc", epoch=p.best_epoch, val_acc=row["val_acc"],
                        test_acc=row["test_acc"])
        return dict(finished=finished, epochs=len(p.history), epochs_planned=args.epochs,
                    final_test_acc=last.get("test_acc"), final_val_acc=last.get("val_acc"), best=best,
                    best_note=NO_BEST if self.val is None else None, accuracy_unit="percent",
                    total_seconds=significant(p.total_seconds), params=nn.count_parameters(self.model),
                    config=self.model.config, device=self.device, train_images=len(self.train[1]),
                    val_images=0 if self.val is None else len(self.val[1]), test_images=len(self.test[1]),
                    val_split=getattr(args, "val_split", 0), data=self.data_source,
                    data_fingerprint=self.data_identity["fingerprint"], versions=versions(self.device))

    def finish(self, quiet=False):
        """filters.png and the final summary.json once all epochs are done. Returns 0, the exit code."""
        p = self.progress
        plot_filters(self.model, self.path("filters.png"), title=self.title())
        write_json(self.path("summary.json"), self.summary(finished=True))
        if not quiet:
            print(f"done: {self.result()}, {short_number(p.total_seconds)} s; files in {shown(self.out)}")
        return 0

    def result(self):
        """'final test accuracy 51.80%' and, with a validation set, what best.npz holds."""
        p = self.progress
        text = f"final test accuracy {p.history[-1]['test_acc']:.2f}%"
        if p.best_epoch:
            row = p.history[p.best_epoch - 1]
            text += (f"; best.npz is epoch {p.best_epoch} (validation accuracy {row['val_acc']:.2f}%, "
                     f"test accuracy {row['test_acc']:.2f}%)")
        return text

    # ----- resuming: the derived files brought in line with the checkpoint --------------------
    def repair(self):
        """Make best.npz, metrics.csv and summary.json (and, for a finished run, filters.png)
        agree with the checkpoint resumed from, rewriting those a kill left behind; redraw the
        curves. Returns the names of the files repaired in the run's own folder (a resume into
        another folder writes them there without counting them)."""
        p, source = self.progress, self.args.resume
        own = _same_file(source, self.path("last.npz"))
        repaired = []
        if p.best_epoch and not self.holds_best(self.path("best.npz")):
            if p.epoch == p.best_epoch and p.step == 0:          # the checkpoint is the best epoch itself
                self.copy_checkpoint(source, "best.npz")
                repaired += ["best.npz"] if own else []
            elif not own and self.holds_best(os.path.join(os.path.dirname(os.path.abspath(source)), "best.npz")):
                self.copy_checkpoint(os.path.join(os.path.dirname(os.path.abspath(source)), "best.npz"), "best.npz")
            else:
                print(f"warning: {quoted(self.path('best.npz'))} does not hold epoch {p.best_epoch}, the best "
                      "so far, and cannot be rebuilt from the checkpoint (was it deleted or replaced?); it "
                      "is written again when an epoch beats it", file=sys.stderr, flush=True)
        if not p.history:
            return repaired
        if _read_text(self.path("metrics.csv")) != metrics_text(p.history):
            write_metrics(self.path("metrics.csv"), p.history)
            repaired += ["metrics.csv"] if own else []
        finished = p.epoch >= self.args.epochs and p.step == 0
        on_disk, expected = _read_json(self.path("summary.json")), self.summary(finished)
        keys = ("epochs", "final_test_acc", "best")
        stale = not isinstance(on_disk, dict) or any(on_disk.get(k) != expected[k] for k in keys)
        no_filters = not os.path.isfile(self.path("filters.png"))
        if finished and (stale or on_disk.get("finished") is not True or no_filters):
            self.finish(quiet=True)
            repaired += (["filters.png"] if no_filters else []) + ["summary.json"] if own else []
        elif not finished and (stale or on_disk.get("finished") is not False):
            write_json(self.path("summary.json"), expected)    # (a finished run given more epochs: no repair)
            repaired += ["summary.json"] if own and stale else []
        self.plot_curves()
        return repaired

    def holds_best(self, path):
        """Whether the checkpoint at `path` is this run's best epoch (its state right after it)."""
        meta = read_meta(path)
        p = self.progress
        try:
            saved = meta["progress"]
            return saved["epoch"] == p.best_epoch and saved["step"] == 0 and \
                saved["history"] == p.history[:p.best_epoch]
        except (TypeError, KeyError):
            return False


def new_run_folder(root="runs", prefix=""):
    """Create a new folder root/<prefix>YYYYmmdd-HHMMSS (-1, -2, ... added when taken) and return
    its path. It is made here, with os.mkdir, which fails when the name exists: two runs started
    in the same second (a sweep) get two folders, never the same one."""
    os.makedirs(root, exist_ok=True)
    base = os.path.join(root, prefix + time.strftime("%Y%m%d-%H%M%S"))
    path, i = base, 1
    while True:
        try:
            os.mkdir(path)
            return path
        except FileExistsError:
            path, i = f"{base}-{i}", i + 1


def _same_file(a, b):
    try:
        return os.path.samefile(a, b)
    except (OSError, TypeError, ValueError):
        return False


def _read_text(path):
    try:
        with open(path, newline="", encoding="ascii") as f:
            return f.read()
    except (OSError, ValueError):
        return None


def _read_json(path):
    try:
        with open(path, encoding="ascii") as f:
            return json.load(f)
    except (OSError, ValueError, RecursionError):
        return None


def versions(device):
    v = dict(tinyconvmixer=__version__, python=platform.python_version(), numpy=np.__version__)
    if device == "gpu":
        v["cupy"] = backend.xp_for("gpu").__version__
    return v
