"""Checkpoints: everything needed to continue a run exactly, in one .npz file.

Layout of the archive (plain arrays only, so it loads with allow_pickle=False):

    model/<key>            the model's state dict ("model/3.0.fn.0.weight", ...)
    optim/<i>/exp_avg      AdamW's moments for parameter number i
    optim/<i>/exp_avg_sq
    meta                   a 0-d unicode array holding JSON: format and version,
                           the optimiser's settings and step counts, and whatever
                           the caller adds (epoch, step in epoch, args, history...)

Writing is atomic (see atomic.py): the archive goes to a temporary file in
the same folder, is flushed to disk, then renamed over the old file with
os.replace. A crash or Ctrl-C while writing leaves the previous checkpoint intact.
"""

import contextlib
import json
import os
import signal
import threading
import zipfile
from collections import OrderedDict

import numpy as np

from . import backend
from .atomic import atomic_write

FORMAT = "tinyconvmixer-checkpoint"
VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, unreadable or not one of ours."""


def save_checkpoint(path, model, optimizer, meta):
    """Write model, optimiser and `meta` (a JSON-serialisable dict) to `path` atomically."""
    arrays = {f"model/{k}": backend.to_numpy(v) for k, v in model.state_dict().items()}
    opt = optimizer.state_dict()
    steps = {}
    for i, state in opt["state"].items():
        for name, value in state.items():
            if name == "step":
                steps[str(i)] = int(value)
            else:
                arrays[f"optim/{i}/{name}"] = backend.to_numpy(value)
    header = {"format": FORMAT, "version": VERSION,
              "optimizer": {"param_groups": opt["param_groups"], "steps": steps}, **meta}
    arrays["meta"] = np.array(json.dumps(header))           # 0-d unicode, not an object array

    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    atomic_write(path, write)


def load_checkpoint(path):
    """Read a checkpoint: {"model": state dict, "optimizer": state dict, "meta": dict}."""
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint not found: {path}")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"cannot read checkpoint {path}: not a valid .npz archive (not a zip file)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except ValueError as exc:
        if "pickle" in str(exc):
            raise CheckpointError(f"{path} holds pickled Python objects; they are never loaded "
                                  f"(unpickling can run arbitrary code)") from exc
        raise CheckpointError(f"cannot read checkpoint {path}: not a valid .npz archive ({exc})") from exc
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: not a valid .npz archive ({exc})") from exc
    if "meta" not in arrays or arrays["meta"].dtype.kind != "U" or arrays["meta"].ndim != 0:
        raise CheckpointError(f"{path} is not a tinyconvmixer checkpoint (no 'meta' entry)")
    try:
        meta = json.loads(str(arrays.pop("meta")))
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: the 'meta' entry is not valid JSON ({exc})") from exc
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise CheckpointError(f"{path} is not a version-{VERSION} tinyconvmixer checkpoint "
                              f"(format {meta.get('format')!r}, version {meta.get('version')!r})")
    model = OrderedDict((k[len("model/"):], v) for k, v in arrays.items() if k.startswith("model/"))
    saved = meta.pop("optimizer")
    state = {int(i): {"step": step} for i, step in saved["steps"].items()}
    for key, value in arrays.items():
        if key.startswith("optim/"):
            _, i, name = key.split("/")
            state.setdefault(int(i), {})[name] = value
    groups = [{k: tuple(v) if isinstance(v, list) else v for k, v in g.items()}   # betas
              for g in saved["param_groups"]]
    return {"model": model, "optimizer": {"state": state, "param_groups": groups}, "meta": meta}


def restore(checkpoint, model, optimizer):
    """Load a checkpoint's arrays into `model` and `optimizer` (on their device).

    A model of a different configuration fails here with nn.StateDictError,
    whose message lists the missing/unexpected keys and mismatched shapes.
    """
    model.load_state_dict(checkpoint["model"], strict=True)
    optimizer.load_state_dict(checkpoint["optimizer"])
    return checkpoint["meta"]


@contextlib.contextmanager
def interrupts_deferred():
    """Hold back Ctrl-C until the block ends, then raise KeyboardInterrupt.

    The training loop wraps "optimizer step + count the batch" in this, so an
    interrupt never lands between the two: the checkpoint written on Ctrl-C
    always has parameters and batch counter that agree, and --resume redoes
    nothing twice. (Only the main thread may install signal handlers.)
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        raise KeyboardInterrupt
