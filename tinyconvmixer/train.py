"""Train ConvMixer on CIFAR-10: `python -m tinyconvmixer.train --help`.

The defaults are the ConvMixer paper's CIFAR-10 recipe: ConvMixer-256/8 with
5x5 depthwise kernels and 2x2 patches, 25 epochs of AdamW (batch 512, weight
decay 0.005) under a triangular learning-rate schedule peaking at 0.05, with
RandAugment(2, 12). `--smoke` trains a tiny model on the bundled sample in
well under a minute, to check that everything works.

One training step (see `forward_backward` and `train_one_epoch`):

    x = augment(batch)                 uint8 (N, 32, 32, 3) -> float32 (N, 3, 32, 32)
    loss = cross_entropy(model(x), y)  logits (N, 10)
    loss.backward()                    gradients of every parameter
    optimizer.lr = triangular_lr(t)    t = epochs done so far, fractional
    optimizer.step()                   AdamW update

Reproducibility: the weights come from nn.init seeded with --seed; epoch e
visits the images in the order drawn by np.random.default_rng([seed, e]) and
batch b of it is augmented with np.random.default_rng([seed, e, b]). So
--resume can continue a run mid-epoch exactly: regenerate the epoch's order,
skip the batches already done.

Exit codes: 0 done, 1 the loss became NaN/inf, 2 bad input (data, device,
checkpoint, arguments), 130 interrupted with Ctrl-C (a checkpoint is saved).
"""

import argparse
import dataclasses
import math
import os
import platform
import sys
import time

import numpy as np

from . import __version__, backend, nn
from . import functional as F
from .checkpoint import CheckpointError, interrupts_deferred, load_checkpoint, restore, save_checkpoint
from .data import DataError, TestTransform, TrainTransform, get_batch, iterate_batches, load_cifar10
from .diagnostics import Diagnostics
from .optim import AdamW, clip_grad_norm_, triangular_lr
from .plots import plot_curves, plot_filters
from .runlog import ProgressBar, epoch_line, write_json, write_metrics
from .tensor import Tensor, no_grad

# --smoke: a tiny ConvMixer on the bundled sample (2,500 train / 500 test images).
SMOKE = dict(data="sample", hdim=48, depth=3, kernel_size=5, patch_size=4, epochs=6,
             batch_size=64, lr_max=0.02, ra_n=1, ra_m=8)
# Settings that --resume takes from the checkpoint unless given on the command line.
NOT_RESUMED = ("resume", "out", "device", "smoke")
# Arguments that must be at least 1 (when given).
POSITIVE = ("hdim", "depth", "kernel_size", "patch_size", "epochs", "batch_size", "eval_batch_size",
            "train_subset", "test_subset")
IMAGE_SIZE = 32                     # CIFAR-10 images are 32x32


class NonFiniteLoss(RuntimeError):
    """The training loss became NaN or infinite."""


def build_parser():
    p = argparse.ArgumentParser(prog="python -m tinyconvmixer.train",
                                description="Train ConvMixer on CIFAR-10 (the paper's recipe by default).")
    a = p.add_argument
    a("--hdim", type=int, default=256, help="channels (the ConvMixer 'dim')")
    a("--depth", type=int, default=8, help="number of ConvMixer blocks")
    a("--kernel-size", type=int, default=5, help="depthwise kernel size")
    a("--patch-size", type=int, default=2, help="patch size of the embedding")
    a("--epochs", type=int, default=25)
    a("--batch-size", type=int, default=512)
    a("--eval-batch-size", type=int, default=1000)
    a("--lr-max", type=float, default=0.05, help="peak of the triangular schedule")
    a("--wd", type=float, default=0.005, help="AdamW weight decay")
    a("--clip-norm", type=float, default=None, metavar="MAX", help="clip the gradient norm (off by default)")
    a("--ra-n", type=int, default=2, help="RandAugment: operations per image")
    a("--ra-m", type=int, default=12, help="RandAugment: magnitude")
    a("--scale", type=float, default=1.0, help="random-resized-crop minimum scale (1.0: no crop)")
    a("--jitter", type=float, default=0.0, help="colour jitter strength")
    a("--reprob", type=float, default=0.0, help="random-erasing probability")
    a("--device", default="auto", choices=["auto", "cpu", "gpu"])
    a("--data", default=None, metavar="PATH", help='CIFAR-10 folder or archive, or "sample"')
    a("--no-download", action="store_true", help="never download CIFAR-10")
    a("--train-subset", type=int, default=None, metavar="N", help="train on a fixed class-balanced subset")
    a("--test-subset", type=int, default=None, metavar="N", help="test on a fixed class-balanced subset")
    a("--seed", type=int, default=0)
    a("--out", default=None, metavar="DIR", help="run folder (default runs/YYYYmmdd-HHMMSS)")
    a("--resume", default=None, metavar="CHECKPOINT",
      help="continue a run from its last.npz (settings come from it; output goes to its folder unless --out)")
    a("--smoke", action="store_true", help="a tiny model on the bundled sample, under a minute")
    a("--diagnostics", action="store_true",
      help="record per-layer activation, gradient and update statistics: diagnostics.csv and .png")
    return p


def parse_args(argv=None):
    """Parse the command line; returns (args, checkpoint or None).

    Defaults come in layers: the recipe's, then --smoke's, then (with --resume)
    the checkpoint's own settings; anything given on the command line wins.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    layers, checkpoint = {}, None
    if args.smoke:
        layers.update(SMOKE)
    if args.resume:
        checkpoint = load_checkpoint(args.resume)
        saved = checkpoint["meta"].get("args", {})
        layers.update({k: v for k, v in saved.items() if k not in NOT_RESUMED})
    if layers:
        parser.set_defaults(**layers)
        args = parser.parse_args(argv)
    check_args(parser, args)
    return args, checkpoint


def check_args(parser, args):
    """Refuse values the run cannot use with a one-line argparse error (exit code 2),
    before any data is loaded, instead of a traceback minutes later."""
    def refuse(name, problem):
        parser.error(f"--{name.replace('_', '-')} {problem}, got {getattr(args, name)}")

    for name in POSITIVE:
        if getattr(args, name) is not None and getattr(args, name) < 1:
            refuse(name, "must be at least 1")
    for name in ("lr_max", "wd"):
        if not 0 <= getattr(args, name) < math.inf:              # also refuses nan
            refuse(name, "must be a finite number >= 0")
    if args.clip_norm is not None and not args.clip_norm > 0:
        refuse("clip_norm", "must be > 0 (leave it out for no clipping)")
    if args.kernel_size % 2 == 0:
        refuse("kernel_size", "must be odd (the depthwise convolution pads to the 'same' size)")
    if args.patch_size > IMAGE_SIZE:
        refuse("patch_size", f"must be at most {IMAGE_SIZE} (the patches tile {IMAGE_SIZE}x{IMAGE_SIZE} images)")
    try:
        train_transform(args)
    except ValueError as exc:
        parser.error(f"bad augmentation setting (--ra-n, --ra-m, --scale, --jitter, --reprob): {exc}")


def train_transform(args):
    """The training augmentation the arguments ask for (ValueError on impossible settings)."""
    return TrainTransform(ra_n=args.ra_n, ra_m=args.ra_m, scale=args.scale, jitter=args.jitter,
                          reprob=args.reprob)


@dataclasses.dataclass
class Progress:
    """Where a run stands; saved in every checkpoint so --resume continues exactly."""
    epoch: int = 0                 # epochs finished
    step: int = 0                  # batches finished in the current epoch
    loss_sum: float = 0.0          # over the current epoch so far: sum of loss * batch size,
    correct: int = 0               #   correct predictions,
    seen: int = 0                  #   images seen,
    train_seconds: float = 0.0     #   and seconds spent training
    best_acc: float = -1.0
    best_epoch: int = 0
    total_seconds: float = 0.0     # all epochs, evaluation included
    history: list = dataclasses.field(default_factory=list)   # one metrics row per finished epoch

    def add_batch(self, loss, correct, n, seconds):
        self.step += 1
        self.loss_sum += loss * n
        self.correct += correct
        self.seen += n
        self.train_seconds = max(seconds, 1e-9)

    def finish_epoch(self, row):
        self.history.append(row)
        self.total_seconds += row["seconds"]
        if row["test_acc"] > self.best_acc:
            self.best_acc, self.best_epoch = row["test_acc"], row["epoch"]
        self.epoch, self.step, self.loss_sum, self.correct, self.seen, self.train_seconds = \
            self.epoch + 1, 0, 0.0, 0, 0, 0.0


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


def forward_backward(model, x, y):
    """Loss and gradients for one batch; returns (loss, number correct). Raises on NaN/inf."""
    model.zero_grad()
    logits = model(x)                                   # (N, 10)
    loss = F.cross_entropy(logits, y)
    value = loss.item()
    if not math.isfinite(value):
        raise NonFiniteLoss(f"the training loss became {value}")
    loss.backward()
    correct = int((logits.data.argmax(axis=1) == y).sum())
    return value, correct


def train_one_epoch(run, progress):
    """Train on the remaining batches of epoch `progress.epoch` (all, unless resumed)."""
    args, model, optimizer, (images, labels) = run.args, run.model, run.optimizer, run.train
    epoch = progress.epoch
    model.train()
    bar = ProgressBar(f"epoch {epoch + 1}/{args.epochs}", run.n_batches)
    start = time.perf_counter() - progress.train_seconds
    order = iterate_batches(len(labels), args.batch_size, np.random.default_rng([args.seed, epoch]))
    for i, idx in enumerate(order):
        if i < progress.step:
            continue                                    # done before the checkpoint we resumed from
        x, y = get_batch(images, labels, idx, run.device)         # uint8 (N, 32, 32, 3) on the device
        x = Tensor(run.augment(x, np.random.default_rng([args.seed, epoch, i])))   # float32 (N, 3, 32, 32)
        if run.diagnostics:
            run.diagnostics.before_step(epoch, i)       # every few steps: probe the layers (diagnostics.py)
        loss, correct = forward_backward(model, x, y)
        with interrupts_deferred():                     # Ctrl-C waits: update and counters stay in step
            optimizer.lr = run.lr_at(epoch + (i + 1) / run.n_batches)   # the schedule, every step
            if args.clip_norm:
                clip_grad_norm_(model.parameters(), args.clip_norm)
            optimizer.step()
            if run.diagnostics:
                run.diagnostics.after_step(optimizer.lr)
            progress.add_batch(loss, correct, len(idx), time.perf_counter() - start)
        bar.update(progress.step, progress.loss_sum / progress.seen, progress.correct / progress.seen,
                   progress.seen / progress.train_seconds, force=progress.step == run.n_batches)
    bar.close()


def evaluate(model, images, labels, batch_size, device):
    """Mean loss and accuracy on a data set, in eval mode (BatchNorm running stats)."""
    model.eval()
    transform = TestTransform()
    loss_sum, correct = 0.0, 0
    with no_grad():
        for start in range(0, len(labels), batch_size):
            x = Tensor(transform(backend.to_device(images[start:start + batch_size], device)))
            y = backend.to_device(labels[start:start + batch_size], device)
            logits = model(x)
            loss = F.cross_entropy(logits, y).item()
            if not math.isfinite(loss):
                raise NonFiniteLoss(f"the test loss became {loss}")
            loss_sum += loss * len(y)
            correct += int((logits.data.argmax(axis=1) == y).sum())
    return loss_sum / len(labels), correct / len(labels)


class Run:
    """Everything a run needs, built from the arguments (and a checkpoint to resume)."""

    def __init__(self, args, checkpoint):
        self.args = args
        self.device = backend.resolve_device(args.device)
        if self.device == "cpu":
            backend.keep_freed_memory()            # no page faults for every new array (backend.py)
        data = load_cifar10(args.data, download=not args.no_download)
        tr = class_balanced_subset(data.train_y, args.train_subset)
        te = class_balanced_subset(data.test_y, args.test_subset)
        self.train, self.test = (data.train_x[tr], data.train_y[tr]), (data.test_x[te], data.test_y[te])
        self.data_source, self.n_classes = data.source, len(data.classes)
        self.n_batches = math.ceil(len(tr) / args.batch_size)
        self.augment = train_transform(args)
        nn.init.manual_seed(args.seed)
        self.model = nn.ConvMixer(args.hdim, args.depth, kernel_size=args.kernel_size,
                                  patch_size=args.patch_size, n_classes=self.n_classes).to(self.device)
        self.optimizer = AdamW(self.model.parameters(), lr=args.lr_max, weight_decay=args.wd)
        self.progress = Progress()
        if checkpoint is not None:
            try:
                meta = restore(checkpoint, self.model, self.optimizer)
            except (nn.StateDictError, ValueError) as exc:
                raise CheckpointError(f"cannot resume from {args.resume}: it does not fit this model "
                                      f"({self.model.config}):\n{exc}") from exc
            if "progress" not in meta:
                raise CheckpointError(f"cannot resume from {args.resume}: it holds no training progress "
                                      f"(it was not written by tinyconvmixer.train)")
            self.progress = Progress(**meta["progress"])
            if self.progress.step > self.n_batches:
                raise CheckpointError(f"cannot resume from {args.resume}: it stopped at batch "
                                      f"{self.progress.step}, but an epoch now has {self.n_batches}")
        self.out = args.out or (os.path.dirname(os.path.abspath(args.resume)) if args.resume else new_run_folder())
        os.makedirs(self.out, exist_ok=True)
        self.diagnostics = (Diagnostics.for_run(self.model, self.n_batches, args.epochs, self.out,
                                                self.progress.epoch * self.n_batches + self.progress.step)
                            if args.diagnostics else None)

    def path(self, name):
        return os.path.join(self.out, name)

    def save(self, name):
        meta = {"progress": dataclasses.asdict(self.progress), "args": vars(self.args),
                "config": self.model.config, "device": self.device,
                "rng": "order: default_rng([seed, epoch]); augmentation: default_rng([seed, epoch, batch])"}
        save_checkpoint(self.path(name), self.model, self.optimizer, meta)

    def lr_at(self, t):
        return triangular_lr(t, self.args.epochs, self.args.lr_max)


def new_run_folder(root="runs", prefix=""):
    """root/<prefix>YYYYmmdd-HHMMSS, with -1, -2, ... added if that exists already."""
    base = os.path.join(root, prefix + time.strftime("%Y%m%d-%H%M%S"))
    path, i = base, 1
    while os.path.exists(path):
        path, i = f"{base}-{i}", i + 1
    return path


def fit(run):
    """The epoch loop: train, evaluate, log, checkpoint. Returns the exit code."""
    args, progress = run.args, run.progress
    while progress.epoch < args.epochs:
        epoch_start = time.perf_counter() - progress.train_seconds
        train_one_epoch(run, progress)
        test_loss, test_acc = evaluate(run.model, *run.test, args.eval_batch_size, run.device)
        row = dict(epoch=progress.epoch + 1, train_loss=progress.loss_sum / progress.seen,
                   train_acc=progress.correct / progress.seen, test_loss=test_loss, test_acc=test_acc,
                   lr=run.optimizer.lr, seconds=time.perf_counter() - epoch_start,
                   images_per_s=progress.seen / progress.train_seconds)
        with interrupts_deferred():
            improved = test_acc > progress.best_acc
            progress.finish_epoch(row)
        print(epoch_line(row, args.epochs), flush=True)
        write_metrics(run.path("metrics.csv"), progress.history)
        run.save("last.npz")
        if improved:
            run.save("best.npz")
        plot_curves(progress.history, run.path("curves.png"), run.lr_at, args.epochs)
        if run.diagnostics:
            run.diagnostics.save(run.out)               # one copy from the device per epoch
    return finish(run)


def finish(run):
    """filters.png and summary.json once all epochs are done."""
    plot_filters(run.model, run.path("filters.png"))
    p = run.progress
    summary = dict(final_test_acc=p.history[-1]["test_acc"], best_test_acc=p.best_acc, best_epoch=p.best_epoch,
                   epochs=run.args.epochs, total_seconds=p.total_seconds,
                   params=nn.count_parameters(run.model), config=run.model.config, device=run.device,
                   train_images=len(run.train[1]), test_images=len(run.test[1]), data=run.data_source,
                   versions=versions(run.device))
    write_json(run.path("summary.json"), summary)
    print(f"done: best test accuracy {100 * p.best_acc:.2f}% (epoch {p.best_epoch}), final "
          f"{100 * summary['final_test_acc']:.2f}%, {p.total_seconds:.1f} s; files in {run.out}")
    return 0


def versions(device):
    v = dict(tinyconvmixer=__version__, python=platform.python_version(), numpy=np.__version__)
    if device == "gpu":
        v["cupy"] = backend.xp_for("gpu").__version__
    return v


def main(argv=None):
    try:
        args, checkpoint = parse_args(argv)
        run = Run(args, checkpoint)
    except (backend.DeviceError, DataError, CheckpointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted before training started", file=sys.stderr)
        return 130
    write_json(run.path("args.json"), dict(vars(args), resolved_device=run.device))
    print(f"ConvMixer {run.model.config}: {nn.count_parameters(run.model):,} parameters on {run.device}; "
          f"{len(run.train[1])} train / {len(run.test[1])} test images; writing to {run.out}", flush=True)
    try:
        return fit(run)
    except NonFiniteLoss as exc:
        p = run.progress
        kept = (f"the last good checkpoint is {run.path('last.npz')} (after epoch {p.epoch})"
                if p.epoch else "no checkpoint had been written yet")
        where = (f"in the evaluation after epoch {p.epoch + 1}" if p.step == run.n_batches
                 else f"at epoch {p.epoch + 1}, batch {p.step + 1}")
        print(f"\nerror: {exc} {where} (lr {run.optimizer.lr:.3g}); stopping. "
              f"Try a lower --lr-max or --clip-norm; {kept}.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        run.save("last.npz")
        p = run.progress
        print(f"\ninterrupted at epoch {p.epoch + 1}, batch {p.step}/{run.n_batches}; saved "
              f"{run.path('last.npz')}. Continue with: python -m tinyconvmixer.train "
              f"--resume {run.path('last.npz')}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
