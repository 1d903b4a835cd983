"""The training loop: forward, backward, step; evaluate; one epoch after another.

    for each batch:                         train_one_epoch
        x, y = augment(batch)               uint8 (N, 32, 32, 3) -> float32 (N, 3, 32, 32)
        model.zero_grad()                   forward_backward
        loss = cross_entropy(model(x), y)
        loss.backward()                     gradients of every parameter
        optimizer.lr = triangular_lr(t)     t = epochs done so far, fractional
        optimizer.step()                    AdamW update
    evaluate(model, validation images)      model.eval(): BatchNorm's running statistics, no_grad();
    evaluate(model, test images)            the validation set (--val-split) chooses best.npz,
                                            the test set is only reported

Everything else a run needs (the data, the model, checkpoints, the files it
writes) is in run.py; this file is the loop alone.

Exactness under interrupts: Ctrl-C or SIGTERM may come at any moment. The
optimiser's update, the batch counters and a copy of the model's buffers
(BatchNorm's running statistics, which change during the forward pass) are one
step, run with signals held back (files/interrupts.py). A checkpoint always saves
the parameters and that copy of the buffers: the state after the last completed
step, whatever the moment of the signal.

No host synchronisation per step: the loss and the correct count stay on the
device (progress.EpochMeter) and are read every CHECK_EVERY steps at most, when
the progress bar is redrawn and at the end of the epoch; each read checks
that the losses were finite (the NaN guard).
"""

import math
import statistics
import time

import numpy as np

from .. import functional as F
from ..data import TestTransform, get_batch, iterate_batches
from ..engine import Tensor, backend, no_grad
from ..optim import clip_grad_norm_
from .files import interrupts
from .files.runlog import ProgressBar, make_row
from .progress import NonFiniteLoss

CHECK_EVERY = 10                    # read the loss from the device (and check it) at least this often


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


def evaluate(model, images, labels, batch_size, device, what="test"):
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
        raise NonFiniteLoss(f"the {what} loss became {loss_sum / len(labels)}")
    return loss_sum / len(labels), int(correct) / len(labels)


def fit(run):
    """The epoch loop: train, evaluate, log, checkpoint. Returns the exit code."""
    args, progress = run.args, run.progress
    while progress.epoch < args.epochs:
        epoch_start = time.perf_counter() - progress.train_seconds
        run.start_epoch()
        train_one_epoch(run, progress)
        val_loss = val_acc = None
        try:
            if run.val is not None:
                val_loss, val_acc = evaluate(run.model, *run.val, args.eval_batch_size, run.device, "validation")
            test_loss, test_acc = evaluate(run.model, *run.test, args.eval_batch_size, run.device)
        except NonFiniteLoss as exc:
            raise NonFiniteLoss(f"{exc} in the evaluation after epoch {progress.epoch + 1}") from exc
        loss_sum, correct = run.read_meter()
        row = make_row(progress.epoch + 1, loss_sum / progress.seen, correct / progress.seen, test_loss, test_acc,
                       run.optimizer.lr, time.perf_counter() - epoch_start, progress.seen / progress.train_seconds,
                       val_loss=val_loss, val_acc=val_acc)
        run.end_epoch(row)                              # last.npz, best.npz, metrics.csv, summary.json (run.py)
    return run.finish()
