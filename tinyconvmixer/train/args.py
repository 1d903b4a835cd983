"""The training command's arguments: the recipe's defaults, --smoke, and checks before anything starts.

`python -m tinyconvmixer.train --help` lists them all with their defaults. The
defaults come in layers (see `parse_args`): the ConvMixer paper's CIFAR-10
recipe, then --smoke's tiny settings, then, with --resume, the checkpoint's own
settings; whatever is given on the command line wins. `check_args` refuses
values that cannot work with a one-line argparse error (exit code 2) before
any data is loaded, instead of a traceback minutes later.
"""

import argparse
import math
import os
import re
import sys

from .checkpoint import CheckpointError, load_checkpoint
from ..data import TrainTransform
from .runid import RunIdentityError, check_saved_args

COMMAND = "python -m tinyconvmixer.train"
IMAGE_SIZE = 32                     # CIFAR-10 images are 32x32
# --smoke: a tiny ConvMixer on the bundled sample (2,500 train / 500 test images).
SMOKE = dict(data="sample", hdim=48, depth=3, kernel_size=5, patch_size=4, epochs=6,
             batch_size=64, lr_max=0.02, ra_n=1, ra_m=8)
# Settings that --resume takes from the checkpoint unless given on the command line.
NOT_RESUMED = ("resume", "out", "device", "smoke", "overwrite", "reference")
# The whole-number arguments and their bounds (inclusive): far beyond anything useful, and small
# enough that no product or float of them overflows, so a flag given as 10**400 is a one-line
# error instead of an OverflowError minutes later. (The float arguments must be finite, which
# 1e400 is not, and within the ranges check_args and TrainTransform give them.)
BOUNDS = dict(hdim=(1, 16384), depth=(1, 1024), kernel_size=(1, 63), patch_size=(1, IMAGE_SIZE),
              epochs=(1, 100_000), batch_size=(1, 1_000_000), eval_batch_size=(1, 1_000_000),
              train_subset=(1, 10**8), test_subset=(1, 10**8), val_split=(0, 10**8),
              ra_n=(0, 100), ra_m=(0, 30), seed=(0, 2**63 - 1))
WHY = dict(patch_size=f" (the patches tile {IMAGE_SIZE}x{IMAGE_SIZE} images)")
RECIPE_VAL_SPLIT = 5000             # what the messages suggest: 10% of CIFAR-10's 50,000 training images


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad value is one line (`error: ...`, exit code 2) instead of the usage
    block followed by the message: the line names the problem, --help lists the flags."""

    def error(self, message):
        message = re.sub(r"\d{40,}", lambda m: f"{m.group()[:12]}...({len(m.group())} digits)", message)
        print(f"error: {' '.join(message.split())} (see {COMMAND} --help)", file=sys.stderr)
        sys.exit(2)


def build_parser():
    p = _Parser(
        prog=COMMAND, description="Train ConvMixer on CIFAR-10. The defaults are the ConvMixer paper's "
        "CIFAR-10 recipe (ConvMixer-256/8, 25 epochs), meant for a GPU; --smoke runs a tiny version in a "
        "minute on a CPU.", epilog="Exit codes: 0 done, 1 the loss became NaN/inf, 2 bad input, 130 Ctrl-C, "
        "143 SIGTERM, 129 SIGHUP (these three save a checkpoint first).")
    a = p.add_argument
    a("--hdim", type=int, default=256, help="channels of every layer, the ConvMixer 'dim' (default: %(default)s)")
    a("--depth", type=int, default=8, help="number of ConvMixer blocks (default: %(default)s)")
    a("--kernel-size", type=int, default=5, help="size of the depthwise kernels, odd (default: %(default)s)")
    a("--patch-size", type=int, default=2, help="patch size of the embedding, at most 32 (default: %(default)s)")
    a("--epochs", type=int, default=25, help="epochs to train (default: %(default)s)")
    a("--batch-size", type=int, default=512, help="training batch size (default: %(default)s)")
    a("--eval-batch-size", type=int, default=1000, help="test-set batch size (default: %(default)s)")
    a("--lr-max", type=float, default=0.05, help="peak of the triangular learning-rate schedule "
      "(default: %(default)s)")
    a("--wd", type=float, default=0.005, help="AdamW weight decay (default: %(default)s)")
    a("--clip-norm", type=float, default=None, metavar="MAX",
      help="clip the gradients' joint L2 norm to MAX (default: no clipping)")
    a("--ra-n", type=int, default=2, help="RandAugment: operations per image, 0 for none (default: %(default)s)")
    a("--ra-m", type=int, default=12, help="RandAugment: magnitude, 0..30 (default: %(default)s)")
    a("--scale", type=float, default=1.0, help="random-resized-crop minimum area scale, 1.0 for no crop "
      "(default: %(default)s)")
    a("--jitter", type=float, default=0.0, help="colour jitter strength, 0 for none (default: %(default)s)")
    a("--reprob", type=float, default=0.0, help="random-erasing probability (default: %(default)s)")
    a("--device", default="auto", choices=["auto", "cpu", "gpu"],
      help="auto: the GPU when CuPy finds one, else the CPU; gpu: the GPU or an error; cpu: the CPU "
      "(default: %(default)s)")
    a("--data", default=None, metavar="PATH", help='a CIFAR-10 archive or folder, or "sample" for the 3,000 '
      "images bundled with the package (default: $TINYCONVMIXER_DATA or ~/.cache/tinyconvmixer, where the "
      "official archive is downloaded if it is missing)")
    a("--no-download", action="store_true", help="never download CIFAR-10 (default: download when missing)")
    a("--train-subset", type=int, default=None, metavar="N", help="train on a fixed class-balanced subset of "
      "N images (default: all)")
    a("--test-subset", type=int, default=None, metavar="N", help="test on a fixed class-balanced subset of "
      "N images (default: all)")
    a("--val-split", type=int, default=0, metavar="N", help="hold out N of the training images as a "
      "validation set (class-balanced, a fixed draw independent of --seed; --train-subset then draws from "
      "the rest), evaluated after every epoch: best.npz is the epoch with the best validation accuracy. "
      f"With 0 there is no validation set and no best.npz: test accuracy is reported, never used to "
      f"choose (the paper's recipe; {RECIPE_VAL_SPLIT} is 10%% of CIFAR-10) (default: %(default)s)")
    a("--seed", type=int, default=0, help="seed of the initial weights, the batch order and the augmentation "
      "(default: %(default)s)")
    a("--out", default=None, metavar="DIR", help="run folder; one that holds another run is refused unless "
      "you resume that run or add --overwrite (default: a new runs/YYYYmmdd-HHMMSS, or with --resume the "
      "checkpoint's folder)")
    a("--overwrite", action="store_true", help="replace the run already in --out, deleting its files "
      "(default: off, such a folder is refused)")
    a("--resume", default=None, metavar="CHECKPOINT", help="continue a run from its last.npz; its settings "
      "are the defaults, and those that define the run cannot change (default: start a new run)")
    a("--diagnostics", action="store_true", help="record per-layer activation, gradient and update "
      "statistics every few steps, on the device: diagnostics.csv and diagnostics.png (default: off)")
    a("--reference", action="store_true", help="run every op on its reference (the plain xp code of "
      "functional/) instead of the faster variants of tinyconvmixer.fast; also TINYCONVMIXER_REFERENCE=1 "
      "(default: off)")
    smoke = " ".join(f"--{name.replace('_', '-')} {value}" for name, value in SMOKE.items())
    a("--smoke", action="store_true", help=f"a tiny model on the bundled sample, about a minute on a CPU: "
      f"{smoke} (default: off)")
    return p


def parse_args(argv=None):
    """Parse the command line; returns (args, checkpoint or None).

    Defaults come in layers: the recipe's, then --smoke's, then (with --resume)
    the checkpoint's own settings; anything given on the command line wins.
    """
    parser = build_parser()
    args = _expand(parser.parse_args(argv))
    layers, checkpoint = {}, None
    if args.smoke:
        layers.update(SMOKE)
    if args.resume:
        checkpoint = load_checkpoint(args.resume)
        saved = checkpoint["meta"].get("args")
        try:
            check_saved_args(parser, saved)
        except RunIdentityError as exc:
            raise CheckpointError(f"cannot resume from {args.resume}: {exc}") from exc
        layers.update({k: v for k, v in saved.items() if k not in NOT_RESUMED})
    if layers:
        parser.set_defaults(**layers)
        args = _expand(parser.parse_args(argv))
    check_args(parser, args)
    return args, checkpoint


def _expand(args):
    """~ in --out and --resume is the home folder, as in --data (a shell leaves a quoted ~ alone)."""
    for name in ("out", "resume"):
        if getattr(args, name):
            setattr(args, name, os.path.expanduser(getattr(args, name)))
    return args


def check_args(parser, args):
    """Refuse values the run cannot use with a one-line argparse error (exit code 2),
    before any data is loaded, instead of a traceback minutes later."""
    def refuse(name, problem):
        parser.error(f"--{name.replace('_', '-')} {problem}, got {getattr(args, name)}")

    for name, (low, high) in BOUNDS.items():
        value = getattr(args, name, None)
        if value is not None and value < low:
            refuse(name, f"must be at least {low}")
        if value is not None and value > high:
            refuse(name, f"must be at most {high:,}{WHY.get(name, '')}")
    for name in ("out", "data", "resume"):           # "" would mean the current folder (or a download into it)
        if getattr(args, name, None) == "":
            parser.error(f"--{name} must not be empty (leave it out for the default)")
    for name in ("lr_max", "wd"):
        if not 0 <= getattr(args, name) < math.inf:              # also refuses nan
            refuse(name, "must be a finite number >= 0")
    if args.clip_norm is not None and not 0 < args.clip_norm < math.inf:
        refuse("clip_norm", "must be a finite number > 0 (leave it out for no clipping)")
    if args.kernel_size % 2 == 0:
        refuse("kernel_size", "must be odd (the depthwise convolution pads to the 'same' size)")
    tokens = (IMAGE_SIZE // args.patch_size) ** 2
    smallest = min(args.batch_size, args.train_subset or args.batch_size)
    if smallest * tokens < 2:
        refuse("batch_size", f"of {smallest} image with --patch-size {args.patch_size} (1x1 patches) gives "
               "BatchNorm one value per channel, which it cannot normalise; use batches of 2 or more, or "
               "patches of at most 16")
    try:
        train_transform(args)
    except ValueError as exc:
        parser.error(f"bad augmentation setting (--ra-n, --ra-m, --scale, --jitter, --reprob): {exc}")


def train_transform(args):
    """The training augmentation the arguments ask for (ValueError on impossible settings)."""
    return TrainTransform(ra_n=args.ra_n, ra_m=args.ra_m, scale=args.scale, jitter=args.jitter,
                          reprob=args.reprob)
