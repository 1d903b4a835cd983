"""Train ConvMixer on CIFAR-10: `python -m tinyconvmixer.train --help`.

The defaults are the ConvMixer paper's CIFAR-10 recipe: ConvMixer-256/8 with
5x5 depthwise kernels and 2x2 patches, 25 epochs of AdamW (batch 512, weight
decay 0.005) under a triangular learning-rate schedule peaking at 0.05, with
RandAugment(2, 12). `--smoke` trains a tiny model on the bundled sample in
about a minute, to check that everything works.

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

Exactness under interrupts: Ctrl-C or SIGTERM may come at any moment. The
optimiser's update, the batch counters and a copy of the model's buffers
(BatchNorm's running statistics, which change during the forward pass) are one
step, run with signals held back (interrupts.py). A checkpoint always saves the
parameters and that copy of the buffers: the state after the last completed
step, whatever the moment of the signal.

No host synchronisation per step: the loss and the correct count stay on the
device (progress.EpochMeter) and are read every CHECK_EVERY steps at most, when
the progress bar is redrawn and at the end of the epoch; each read checks
that the losses were finite (the NaN guard), and no checkpoint is ever written
with a NaN in it (checkpoint.py).

Exit codes: 0 done, 1 the loss became NaN/inf, 2 bad input (data, device,
checkpoint, arguments, run folder, a write that failed), 130 interrupted with
Ctrl-C, 143 with SIGTERM, 129 with SIGHUP (a checkpoint is saved first).
"""

import contextlib
import dataclasses
import math
import os
import platform
import statistics
import sys
import time
import warnings

import numpy as np

from . import __version__, backend, cpu_estimate, interrupts, nn
from . import functional as F
from .checkpoint import CheckpointError, NonFiniteCheckpoint, first_non_finite, read_meta, restore, \
    save_checkpoint
from .data import DataError, TestTransform, get_batch, iterate_batches, load_cifar10
from .data.loader import num_batches
from .diagnostics import Diagnostics
from .optim import AdamW, clip_grad_norm_, triangular_lr
from .plots import plot_curves, plot_filters, run_title
from .progress import EpochMeter, Progress, ProgressError
from .runfolder import RunFolder, RunFolderError
from .runid import RunIdentityError, check_data, compare_args, refuse_conflicts
from .runlog import ProgressBar, epoch_line, make_row, write_json, write_metrics
from .tensor import Tensor, no_grad
# The arguments live in trainargs.py; these names are also train.build_parser() etc.
from .trainargs import (COMMAND, IMAGE_SIZE, NOT_RESUMED, SMOKE, build_parser, check_args,  # noqa: F401
                        parse_args, train_transform)

CHECK_EVERY = 10                    # read the loss from the device (and check it) at least this often


class NonFiniteLoss(RuntimeError):
    """The training or test loss became NaN or infinite."""


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


def forward_backward(model, x, y):
    """Loss and gradients for one batch; returns (loss, number correct) as 0-d arrays on the device.

    Nothing is read back to the host here (no .item()): the caller accumulates
    both on the device and checks the loss for NaN when it reads them.
    """
    model.zero_grad()
    logits = model(x)                                   # (N, 10)
    loss = F.cross_entropy(logits, y)
    loss.backward()
    correct = (logits.data.argmax(axis=1) == y).sum()
    return loss.data, correct


def train_one_epoch(run, progress):
    """Train on the remaining batches of epoch `progress.epoch` (all, unless resumed)."""
    args, model, optimizer, (images, labels) = run.args, run.model, run.optimizer, run.train
    epoch = progress.epoch
    model.train()
    later = args.epochs - epoch - 1
    seconds = [r["seconds"] for r in progress.history]
    bar = ProgressBar(f"epoch {epoch + 1}/{args.epochs}", run.n_batches, start_done=progress.step,
                      elapsed_before=progress.train_seconds, later_epochs=later,
                      epoch_seconds=statistics.median(seconds) if seconds else None)
    start = time.perf_counter() - progress.train_seconds
    order = iterate_batches(len(labels), args.batch_size, np.random.default_rng([args.seed, epoch]),
                            drop_last=run.drop_last)
    for i, idx in enumerate(order):
        if i < progress.step:
            continue                                    # done before the checkpoint we resumed from
        x, y = get_batch(images, labels, idx, run.device)         # uint8 (N, 32, 32, 3) on the device
        x = Tensor(run.augment(x, np.random.default_rng([args.seed, epoch, i])))   # float32 (N, 3, 32, 32)
        if run.diagnostics:
            run.diagnostics.before_step(epoch, i)       # every few steps: probe the layers (diagnostics.py)
        loss, correct = forward_backward(model, x, y)   # (BatchNorm's buffers change here)
        with interrupts.deferred():                     # a signal waits: the whole step or none of it
            optimizer.lr = run.lr_at(epoch + (i + 1) / run.n_batches)   # the schedule, every step
            if args.clip_norm:
                clip_grad_norm_(model.parameters(), args.clip_norm)
            optimizer.step()
            if run.diagnostics:
                run.diagnostics.after_step(optimizer.lr)
            run.meter.add(loss, correct, len(idx))
            progress.step, progress.seen = progress.step + 1, progress.seen + len(idx)
            progress.train_seconds = max(time.perf_counter() - start, 1e-9)
            run.commit_buffers()
        last = progress.step == run.n_batches
        if last or bar.due() or progress.step % CHECK_EVERY == 0:
            loss_sum, n_correct = run.read_meter()      # the only host reads of the epoch (NaN check)
            bar.update(progress.step, loss_sum / progress.seen, 100 * n_correct / progress.seen,
                       progress.seen / progress.train_seconds, force=last)
    bar.close()


def evaluate(model, images, labels, batch_size, device):
    """Mean loss and accuracy (a fraction) on a data set, in eval mode (BatchNorm running stats).

    The sums stay on the device and are read once, at the end.
    """
    model.eval()
    transform = TestTransform()
    xp = backend.xp_for(device)
    loss_sum, correct = xp.zeros((), dtype=xp.float64), xp.zeros((), dtype=xp.int64)
    with no_grad():
        for start in range(0, len(labels), batch_size):
            x = Tensor(transform(backend.to_device(images[start:start + batch_size], device)))
            y = backend.to_device(labels[start:start + batch_size], device)
            logits = model(x)
            loss_sum = loss_sum + F.cross_entropy(logits, y).data.astype(xp.float64) * len(y)
            correct = correct + (logits.data.argmax(axis=1) == y).sum()
    loss_sum, correct = (float(v) for v in backend.to_numpy(xp.stack([loss_sum, correct.astype(xp.float64)])))
    if not math.isfinite(loss_sum):
        raise NonFiniteLoss(f"the test loss became {loss_sum / len(labels)}")
    return loss_sum / len(labels), int(correct) / len(labels)


class Run:
    """Everything a run needs, built from the arguments (and a checkpoint to resume)."""

    def __init__(self, args, checkpoint, out=None):
        self.args, self.out = args, out
        self.device = backend.resolve_device(args.device)
        if self.device == "cpu":
            backend.keep_freed_memory()            # no page faults for every new array (backend.py)
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
        run.start_epoch()
        train_one_epoch(run, progress)
        try:
            test_loss, test_acc = evaluate(run.model, *run.test, args.eval_batch_size, run.device)
        except NonFiniteLoss as exc:
            raise NonFiniteLoss(f"{exc} in the evaluation after epoch {progress.epoch + 1}") from exc
        loss_sum, correct = run.read_meter()
        row = make_row(progress.epoch + 1, loss_sum / progress.seen, correct / progress.seen, test_loss, test_acc,
                       run.optimizer.lr, time.perf_counter() - epoch_start, progress.seen / progress.train_seconds)
        with interrupts.deferred():                     # the epoch's record and files: all or nothing
            improved = row["test_acc"] > progress.best_acc
            progress.finish_epoch(row)
            run.meter = None
            write_metrics(run.path("metrics.csv"), progress.history)
            run.save("last.npz")
            if improved:
                run.save("best.npz")
            print(epoch_line(row, args.epochs), flush=True)      # (once its files are on disk)
        plot_curves(progress.history, run.path("curves.png"), run.lr_at, args.epochs,
                    title=run_title(args, run.device, len(run.train[1]), len(run.test[1])))
        if run.diagnostics:
            run.diagnostics.save(run.out)               # one copy from the device per epoch
    return finish(run)


def finish(run, quiet=False):
    """filters.png and summary.json once all epochs are done."""
    args, p = run.args, run.progress
    plot_filters(run.model, run.path("filters.png"),
                 title=run_title(args, run.device, len(run.train[1]), len(run.test[1])))
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


def versions(device):
    v = dict(tinyconvmixer=__version__, python=platform.python_version(), numpy=np.__version__)
    if device == "gpu":
        v["cupy"] = backend.xp_for("gpu").__version__
    return v


def run_folder_path(args):
    if args.out:
        return args.out
    return os.path.dirname(os.path.abspath(args.resume)) if args.resume else new_run_folder()


def describe(path):
    """What the checkpoint at `path` holds, in a few words (None if unreadable)."""
    meta = read_meta(path)
    try:
        p, epochs = meta["progress"], meta["args"]["epochs"]
        where = f"epoch {p['epoch']} of {epochs} done" + (f", batch {p['step']} of the next" if p["step"] else "")
        return f"last.npz: {where}"
    except (TypeError, KeyError):
        return None


def start(run):
    """Say what is about to happen (and what was resumed), then train. Returns the exit code."""
    args, p = run.args, run.progress
    print(f"ConvMixer {run.model.config}: {nn.count_parameters(run.model):,} parameters on {run.device}; "
          f"{len(run.train[1])} train / {len(run.test[1])} test images; writing to {run.out}", flush=True)
    if run.batch_note:
        print(run.batch_note, flush=True)
    if args.resume:
        if run.overridden:
            print(f"overridden on resume: {'; '.join(run.overridden)}", flush=True)
        if p.epoch >= args.epochs:
            return finished(run)
        print(f"resuming at epoch {p.epoch + 1}, batch {p.step}/{run.n_batches} (from {args.resume})", flush=True)
    if run.device == "cpu":
        warning = cpu_estimate.warning(args, len(run.train[1]), len(run.test[1]))
        if warning:
            print(warning, file=sys.stderr, flush=True)
    write_json(run.path("args.json"), dict(vars(args), resolved_device=run.device))
    return fit(run)


def finished(run):
    """Resuming a run that has done all its epochs: say so, and how to train further."""
    args, p = run.args, run.progress
    if p.step:
        raise SettingsError(f"{args.resume} is at epoch {p.epoch + 1}, batch {p.step}, past --epochs "
                            f"{args.epochs}; give --epochs {p.epoch + 1} or more")
    if not os.path.exists(run.path("summary.json")):
        finish(run, quiet=True)                    # a run stopped just before its final files
    print(f"this run has finished: all {p.epoch} epochs are done (best test accuracy {p.best_acc:.2f}% at "
          f"epoch {p.best_epoch}). To train further, give more epochs: {COMMAND} --resume {args.resume} "
          f"--epochs {p.epoch + 5} (the learning-rate schedule is then stretched to the new length)")
    return 0


def error(message):
    print(f"error: {message}", file=sys.stderr, flush=True)
    return 2


def main(argv=None):
    with warnings.catch_warnings(), interrupts.handled():
        warnings.showwarning = _one_line_warning
        try:
            return _main(argv)
        except KeyboardInterrupt as exc:           # a second signal while the first was being handled
            print("\ninterrupted again; stopping (checkpoints on disk are whole)", file=sys.stderr)
            return interrupts.Interrupted(interrupts.signal_of(exc)).exit_code


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    print(f"warning: {message}", file=sys.stderr if file is None else file, flush=True)


START_ERRORS = (backend.DeviceError, DataError, CheckpointError, RunFolderError, RunIdentityError, SettingsError)


def _main(argv):
    folder = None
    try:
        args, checkpoint = parse_args(argv)
        folder = RunFolder(run_folder_path(args))
        folder.claim(resume=args.resume, overwrite=args.overwrite, describe=describe)
        run = Run(args, checkpoint, folder.path)
    except START_ERRORS as exc:
        return error(exc) if folder is None else _release(folder, error(exc))
    except OSError as exc:
        return _release(folder, error(f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": ")))
    except KeyboardInterrupt as exc:
        print("\ninterrupted before training started", file=sys.stderr)
        return _release(folder, interrupts.Interrupted(interrupts.signal_of(exc)).exit_code)
    except MemoryError as exc:
        return _release(folder, error(f"out of memory while setting up the run ({exc or 'MemoryError'}); "
                                      "try a smaller --hdim, --depth or data subset"))
    except Exception as exc:            # anything else reading the inputs: still one line, never a traceback
        return _release(folder, error(f"could not start the run: {type(exc).__name__}: {exc}"))
    try:
        return start(run)
    except (NonFiniteLoss, NonFiniteCheckpoint) as exc:
        return diverged(run, exc)
    except KeyboardInterrupt as exc:
        return interrupted(run, exc)
    except SettingsError as exc:
        return error(exc)
    except OSError as exc:
        return write_failed(run, exc)
    except MemoryError as exc:
        p = run.progress
        kept = _kept(run, intact=True)
        return error(f"out of memory at epoch {p.epoch + 1}, batch {p.step + 1} ({exc or 'MemoryError'}); "
                     f"try a smaller --batch-size (or model). {kept[0].upper()}{kept[1:]}")
    finally:
        folder.release(remove_if_unused=True)     # (a folder it created and left empty goes again)


def _release(folder, code):
    if folder is not None:
        folder.release(remove_if_unused=True)
    return code


def _kept(run, intact=False):
    if run.last_good is None:
        return "no checkpoint had been written yet"
    path, where = run.last_good
    return f"the last good checkpoint is {path} ({where})" + (", intact" if intact else "")


def diverged(run, exc):
    print(f"\nerror: {exc} (lr {run.optimizer.lr:.3g}); stopping. Try a lower --lr-max or --clip-norm; "
          f"{_kept(run)}.", file=sys.stderr)
    return 1


def interrupted(run, exc):
    """Ctrl-C or SIGTERM: save the state after the last completed step, then stop."""
    signal_name = interrupts.Interrupted(interrupts.signal_of(exc))
    try:
        with contextlib.suppress(KeyboardInterrupt), interrupts.deferred():   # a second Ctrl-C waits for the save
            run.save("last.npz")
            write_metrics(run.path("metrics.csv"), run.progress.history)
    except (NonFiniteLoss, NonFiniteCheckpoint) as err:
        return diverged(run, err)
    except OSError as err:
        return write_failed(run, err)
    p = run.progress
    where = ("after the last epoch, while writing the final files" if p.epoch >= run.args.epochs
             else f"at epoch {p.epoch + 1}, batch {p.step}/{run.n_batches}")
    print(f"\ninterrupted ({signal_name.name}) {where}; saved {run.path('last.npz')}. Continue with: "
          f"{COMMAND} --resume {run.path('last.npz')}", file=sys.stderr)
    return signal_name.exit_code


def write_failed(run, exc):
    what = exc.filename or "a file of the run"
    kept = _kept(run, intact=True)
    return error(f"could not write {what} ({exc.strerror or exc}); stopping. {kept[0].upper()}{kept[1:]}")


if __name__ == "__main__":
    sys.exit(main())
