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
import os
import platform
import time

import numpy as np

from .. import __version__, nn
from ..data import load_cifar10
from ..data.loader import num_batches
from ..engine import backend
from ..fast.cpu import tuning
from ..optim import AdamW, triangular_lr
from .args import IMAGE_SIZE, train_transform
from .checkpoint import CheckpointError, first_non_finite, restore, save_checkpoint
from .files import interrupts
from .files.runlog import epoch_line, write_json, write_metrics
from .progress import EpochMeter, NonFiniteLoss, Progress, ProgressError
from .report.diagnostics import Diagnostics
from .report.plots import plot_curves, plot_filters, run_title
from .runid import check_data, compare_args, refuse_conflicts


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


def class_balanced_subset(labels, n):
    """Indices of n examples, as equal a number from each class as possible.

    Drawn with a fixed seed (not --seed), so the same N always picks the same
    images and runs with different seeds are compared on the same data.
    """
    if n is None or n >= len(labels):
        return np.arange(len(labels))
    perm = np.random.default_rng(12345).permutation(len(labels))
    y = labels[perm]
    rank = np.zeros(len(perm), dtype=np.int64)         # position of each example within its class
    for c in np.unique(y):
        rank[y == c] = np.arange(int((y == c).sum()))
    take = np.lexsort((np.arange(len(perm)), rank))[:n]   # round robin over classes
    return np.sort(perm[take])


class Run:
    """Everything a run needs, built from the arguments (and a checkpoint to resume)."""

    def __init__(self, args, checkpoint, out=None):
        self.args, self.out = args, out
        self.device = backend.resolve_device(args.device)
        if self.device == "cpu":
            tuning.keep_freed_memory()             # no page faults for every new array (fast/cpu/tuning.py)
        data = load_cifar10(args.data, download=not args.no_download)
        tr = class_balanced_subset(data.train_y, args.train_subset)
        te = class_balanced_subset(data.test_y, args.test_subset)
        self.train, self.test = (data.train_x[tr], data.train_y[tr]), (data.test_x[te], data.test_y[te])
        self.data_source, self.n_classes = data.source, len(data.classes)
        self.data_identity = dict(fingerprint=data.fingerprint, source=data.path, train_images=len(tr),
                                  test_images=len(te))
        self.n_batches, self.drop_last, self.batch_note = plan_batches(len(tr), args.batch_size, args.patch_size)
        self.augment = train_transform(args)
        nn.init.manual_seed(args.seed)
        self.model = nn.ConvMixer(args.hdim, args.depth, kernel_size=args.kernel_size,
                                  patch_size=args.patch_size, n_classes=self.n_classes).to(self.device)
        self.optimizer = AdamW(self.model.parameters(), lr=args.lr_max, weight_decay=args.wd)
        self.progress = Progress()
        self.last_good = None                      # (path, where) of the last checkpoint known to be good
        self.overridden = []
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
            raise CheckpointError(f"cannot resume from {path}: missing metadata key(s) {', '.join(missing)} "
                                  "(it was not written by tinyconvmixer.train, or by another version)")
        conflicts, self.overridden = compare_args(meta["args"], self.args)
        refuse_conflicts(conflicts, path)
        check_data(meta["data"], **{k: self.data_identity[k] for k in ("train_images", "test_images")},
                   data_fingerprint=self.data_identity["fingerprint"], checkpoint=path)
        try:
            progress = Progress.from_saved(meta["progress"])
        except ProgressError as exc:
            raise CheckpointError(f"cannot resume from {path}: {exc}") from exc
        bad = first_non_finite({**{f"model/{k}": v for k, v in checkpoint["model"].items()},
                                **{f"optim/{i}/{k}": v for i, s in
                                checkpoint["optimizer"]["state"].items() for k, v in s.items() if k != "step"}})
        negative = [f"optim/{i}/exp_avg_sq" for i, s in checkpoint["optimizer"]["state"].items()
                    if (s["exp_avg_sq"] < 0).any()]
        if negative:
            raise CheckpointError(f"cannot resume from {path}: {negative[0]} holds negative values (a mean of "
                                  "squares cannot be negative: the file is damaged)")
        if bad is not None:
            raise CheckpointError(f"cannot resume from {path}: {bad} holds NaN or infinite values (the run "
                                  "had diverged); resume from an earlier checkpoint, or start again with a "
                                  "lower --lr-max or with --clip-norm")
        try:
            restore(checkpoint, self.model, self.optimizer)
        except (nn.StateDictError, ValueError) as exc:
            detail = "; ".join(line.strip() for line in str(exc).splitlines())
            raise CheckpointError(f"cannot resume from {path}: it does not fit this model "
                                  f"({self.model.config}): {detail}") from exc
        expected_seen = min(progress.step * self.args.batch_size, len(self.train[1]))
        if progress.step > self.n_batches or progress.seen != expected_seen:
            raise CheckpointError(f"cannot resume from {path}: it stopped at batch {progress.step} with "
                                  f"{progress.seen} images seen, which does not fit epochs of {self.n_batches} "
                                  f"batches of {self.args.batch_size}")
        for group in self.optimizer.param_groups:        # --wd may be overridden on resume (lr: every step)
            group["weight_decay"] = self.args.wd
        self.progress = progress
        self.last_good = (path, progress.where(self.n_batches))

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
    def end_epoch(self, row):
        """Record a finished epoch: metrics.csv, last.npz (and best.npz), the console line, the
        curves, the diagnostics."""
        args, progress = self.args, self.progress
        with interrupts.deferred():                     # the epoch's record and files: all or nothing
            improved = row["test_acc"] > progress.best_acc
            progress.finish_epoch(row)
            self.meter = None
            write_metrics(self.path("metrics.csv"), progress.history)
            self.save("last.npz")
            if improved:
                self.save("best.npz")
            print(epoch_line(row, args.epochs), flush=True)      # (once its files are on disk)
        plot_curves(progress.history, self.path("curves.png"), self.lr_at, args.epochs, title=self.title())
        if self.diagnostics:
            self.diagnostics.save(self.out)             # one copy from the device per epoch

    def title(self):
        return run_title(self.args, self.device, len(self.train[1]), len(self.test[1]))

    def finish(self, quiet=False):
        """filters.png and summary.json once all epochs are done. Returns 0, the exit code."""
        run, p = self, self.progress
        plot_filters(run.model, run.path("filters.png"), title=run.title())
        summary = dict(final_test_acc=p.history[-1]["test_acc"], best_test_acc=p.best_acc, best_epoch=p.best_epoch,
                       accuracy_unit="percent", epochs=len(p.history), total_seconds=round(p.total_seconds, 1),
                       params=nn.count_parameters(run.model), config=run.model.config, device=run.device,
                       train_images=len(run.train[1]), test_images=len(run.test[1]), data=run.data_source,
                       data_fingerprint=run.data_identity["fingerprint"], versions=versions(run.device))
        write_json(run.path("summary.json"), summary)
        if not quiet:
            print(f"done: best test accuracy {p.best_acc:.2f}% (epoch {p.best_epoch}), final "
                  f"{summary['final_test_acc']:.2f}%, {p.total_seconds:.1f} s; files in {run.out}")
        return 0


def new_run_folder(root="runs", prefix=""):
    """root/<prefix>YYYYmmdd-HHMMSS, with -1, -2, ... added if that exists already."""
    base = os.path.join(root, prefix + time.strftime("%Y%m%d-%H%M%S"))
    path, i = base, 1
    while os.path.exists(path):
        path, i = f"{base}-{i}", i + 1
    return path


def versions(device):
    v = dict(tinyconvmixer=__version__, python=platform.python_version(), numpy=np.__version__)
    if device == "gpu":
        v["cupy"] = backend.xp_for("gpu").__version__
    return v
