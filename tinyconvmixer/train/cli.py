"""The command `python -m tinyconvmixer.train`: start or resume a run, and end it cleanly.

The defaults are the ConvMixer paper's CIFAR-10 recipe: ConvMixer-256/8 with
5x5 depthwise kernels and 2x2 patches, 25 epochs of AdamW (batch 512, weight
decay 0.005) under a triangular learning-rate schedule peaking at 0.05, with
RandAugment(2, 12). `--smoke` trains a tiny model on the bundled sample in
about a minute, to check that everything works. The ops run on the faster
variants of tinyconvmixer.fast; `--reference` (or TINYCONVMIXER_REFERENCE=1)
runs them on the reference ops alone.

Exit codes: 0 done, 1 the loss became NaN/inf, 2 bad input (data, device,
checkpoint, arguments, run folder, a write that failed), 130 interrupted with
Ctrl-C, 143 with SIGTERM, 129 with SIGHUP (a checkpoint is saved first).
"""

import contextlib
import os
import sys
import warnings

from .. import nn
from ..data import DataError
from ..engine import backend, dispatch
from ..util import streams
from ..util.paths import quoted, shown
from .args import COMMAND, parse_args
from .checkpoint import CheckpointError, NonFiniteCheckpoint, read_meta
from .cpu_estimate import warning as cpu_warning
from .files import interrupts
from .files.runfolder import RunFolder, RunFolderError
from .files.runlog import write_json, write_metrics
from .loop import fit
from .progress import NonFiniteLoss
from .run import NO_BEST, Run, SettingsError, new_run_folder
from .runid import RunIdentityError


def run_folder(args):
    """The RunFolder of this run: --out, the resumed checkpoint's folder, or a new runs/<date-time>."""
    if args.out:
        return RunFolder(args.out)
    if args.resume:
        return RunFolder(os.path.dirname(os.path.abspath(args.resume)))
    try:
        return RunFolder(new_run_folder(), created=True)
    except OSError as exc:
        raise RunFolderError(f"cannot create a run folder in {quoted(os.path.abspath('runs'))} "
                             f"({exc.strerror or exc}); give one with --out DIR") from exc


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
    val = f"{len(run.val[1])} validation / " if run.val is not None else ""
    print(f"ConvMixer {run.model.config}: {nn.count_parameters(run.model):,} parameters on {run.device}; "
          f"{len(run.train[1])} train / {val}{len(run.test[1])} test images; writing to {shown(run.out)}",
          flush=True)
    if run.batch_note:
        print(run.batch_note, flush=True)
    if args.resume:
        if run.overridden:
            print(f"overridden on resume: {'; '.join(run.overridden)}", flush=True)
        if p.epoch >= args.epochs and p.step:
            raise SettingsError(f"{quoted(args.resume)} is at epoch {p.epoch + 1}, batch {p.step}, past --epochs "
                                f"{args.epochs}; give --epochs {p.epoch + 1} or more")
        repaired = run.repair()                  # the files a kill left behind, from the checkpoint
        if repaired:
            what = ("written again in this version's format" if run.upgraded
                    else "repaired after an interrupted write")
            print(f"{what}: {', '.join(repaired)} (brought in line with last.npz, {p.where(run.n_batches)})",
                  flush=True)
        if p.epoch >= args.epochs:
            return finished(run)
        print(f"resuming at epoch {p.epoch + 1}, batch {p.step}/{run.n_batches} (from {shown(args.resume)})",
              flush=True)
    elif run.val is None:
        print(f"note: {NO_BEST}", flush=True)
    if run.device == "cpu":
        val_images = 0 if run.val is None else len(run.val[1])
        warning = cpu_warning(args, len(run.train[1]), len(run.test[1]) + val_images)
        if warning:
            print(warning, file=sys.stderr, flush=True)
    write_json(run.path("args.json"), dict(vars(args), resolved_device=run.device))
    return fit(run)


def finished(run):
    """Resuming a run that has done all its epochs: say so, and how to train further."""
    args, p = run.args, run.progress
    print(f"this run has finished: all {p.epoch} epochs are done ({run.result()}). To train further, give "
          f"more epochs: {COMMAND} --resume {shown(args.resume)} --epochs {p.epoch + 5} (the learning-rate "
          "schedule is then stretched to the new length)")
    return 0


def use_fast(args):
    """The faster variants of tinyconvmixer.fast, unless --reference (or TINYCONVMIXER_REFERENCE=1)."""
    if getattr(args, "reference", False) or not dispatch.fast_enabled():
        dispatch.set_fast(False)
        return
    import tinyconvmixer.fast  # noqa: F401  (registers the variants; __main__.py made OpenBLAS's setting)


def error(message):
    print(f"error: {message}", file=sys.stderr, flush=True)
    return 2


def main(argv=None):
    with streams.guarded(), warnings.catch_warnings(), interrupts.handled():
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
        use_fast(args)
        folder = run_folder(args)
        folder.claim(resume=args.resume, overwrite=args.overwrite, describe=describe)
        run = Run(args, checkpoint, folder.path)
    except START_ERRORS as exc:
        return error(exc) if folder is None else _release(folder, error(exc))
    except OSError as exc:
        where = f"{quoted(exc.filename)}: " if exc.filename else ""
        return _release(folder, error(f"{where}{exc.strerror or exc}"))
    except KeyboardInterrupt as exc:
        print("\ninterrupted before training started", file=sys.stderr)
        return _release(folder, interrupts.Interrupted(interrupts.signal_of(exc)).exit_code)
    except MemoryError as exc:
        return _release(folder, error(f"out of memory while setting up the run ({exc or 'MemoryError'}); "
                                      "try a smaller --hdim, --depth or data subset"))
    except Exception as exc:            # anything else reading the inputs: still one line, never a traceback
        detail = " ".join(str(exc).split())
        return _release(folder, error(f"could not start the run: {type(exc).__name__}: {detail}"))
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
    return f"the last good checkpoint is {quoted(path)} ({where})" + (", intact" if intact else "")


def diverged(run, exc):
    print(f"\nerror: {exc} (lr {run.optimizer.lr:.3g}); stopping. Try a lower --lr-max or --clip-norm; "
          f"{_kept(run)}.", file=sys.stderr)
    return 1


def interrupted(run, exc):
    """Ctrl-C or SIGTERM: save the state after the last completed step, then stop."""
    signal_name = interrupts.Interrupted(interrupts.signal_of(exc))
    try:
        with contextlib.suppress(KeyboardInterrupt), interrupts.deferred():   # a second Ctrl-C waits for the save
            if run.diagnostics:
                run.diagnostics.save(run.out)     # (before last.npz: rows past a checkpoint are dropped)
            run.save("last.npz")
            write_metrics(run.path("metrics.csv"), run.progress.history)
    except (NonFiniteLoss, NonFiniteCheckpoint) as err:
        return diverged(run, err)
    except OSError as err:
        return write_failed(run, err)
    p = run.progress
    where = ("after the last epoch, while writing the final files" if p.epoch >= run.args.epochs
             else f"at epoch {p.epoch + 1}, batch {p.step}/{run.n_batches}")
    print(f"\ninterrupted ({signal_name.name}) {where}; saved {shown(run.path('last.npz'))}. Continue with: "
          f"{COMMAND} --resume {shown(run.path('last.npz'))}", file=sys.stderr)
    return signal_name.exit_code


def write_failed(run, exc):
    what = quoted(exc.filename) if exc.filename else "a file of the run"
    kept = _kept(run, intact=True)
    return error(f"could not write {what} ({exc.strerror or exc}); stopping. {kept[0].upper()}{kept[1:]}")
