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
os.replace. A crash, Ctrl-C or a full disk while writing leaves the previous
checkpoint intact. A checkpoint is never written with a NaN or infinite value
in it: `save_checkpoint` refuses (NonFiniteCheckpoint), so the file on disk is
always a good one.

Reading trusts nothing in the file. An .npz is a zip of .npy files, and each
.npy header declares a shape and a dtype; NumPy would allocate whatever a
header declares before reading the data, so a 1 KB file declaring a
(10**12,) array would ask for terabytes. `load_checkpoint` therefore checks
every member first (a .npy name, a plain numeric dtype, a declared size that
matches the bytes really there, no more than a few times the file's size in
all) and only then reads, and it checks the meta record's structure; each
problem is a CheckpointError naming the file and what is wrong with it.
"""

import json
import math
import os
import zipfile
from collections import OrderedDict

import numpy as np
from numpy.lib import format as npy_format

from ..engine import backend
from ..util.atomic import atomic_write
from ..util.paths import kind, quoted

FORMAT = "tinyconvmixer-checkpoint"
VERSION = 3             # 2: accuracies in percent, run identity (data fingerprint), checked progress;
                        # 3: a validation split (--val-split) chooses the best epoch, not test accuracy
READABLE = (2, 3)       # version 2 is read as version 3 of a run without a validation set (upgrade)
MAX_MEMBERS = 100_000
MAX_EXPANSION = 8       # declared array bytes at most this times the file's size (+1 MiB)
NUMERIC_KINDS = "biuf"
OPTIM_ARRAYS = ("exp_avg", "exp_avg_sq")
GROUP_KEYS = ("lr", "betas", "eps", "weight_decay")


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, unreadable or not one of ours."""


class NonFiniteCheckpoint(CheckpointError):
    """Refused to write a checkpoint holding NaN or infinite values."""


def save_checkpoint(path, model, optimizer, meta, state=None):
    """Write model, optimiser and `meta` (a JSON-serialisable dict) to `path` atomically.

    state: the model state dict to save (default: model.state_dict()); the
    training loop passes one whose buffers are those of the last completed step.
    Raises NonFiniteCheckpoint, writing nothing, if any array or number in meta
    is NaN or infinite.
    """
    state = model.state_dict() if state is None else state
    arrays = {f"model/{k}": backend.to_numpy(v) for k, v in state.items()}
    opt = optimizer.state_dict()
    steps = {}
    for i, entry in opt["state"].items():
        for name, value in entry.items():
            if name == "step":
                steps[str(i)] = int(value)
            else:
                arrays[f"optim/{i}/{name}"] = backend.to_numpy(value)
    bad = first_non_finite(arrays)
    if bad is not None:
        raise NonFiniteCheckpoint(f"refusing to write {quoted(path)}: {bad} holds NaN or infinite values")
    header = {"format": FORMAT, "version": VERSION,
              "optimizer": {"param_groups": opt["param_groups"], "steps": steps}, **meta}
    try:
        text = json.dumps(header, allow_nan=False)
    except ValueError as exc:
        raise NonFiniteCheckpoint(f"refusing to write {quoted(path)}: its meta record holds NaN or infinity") from exc
    arrays["meta"] = np.array(text)                       # 0-d unicode, not an object array

    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    atomic_write(path, write)


def first_non_finite(arrays):
    """The name of the first float array holding NaN or inf, or None."""
    for name, a in arrays.items():
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            return name
    return None


def _read_arrays(path):
    """The members of the .npz at `path` as {name: array}, every header checked before any data is read."""
    size = os.path.getsize(path)
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
        if len(infos) > MAX_MEMBERS:
            raise CheckpointError(f"{quoted(path)} holds {len(infos):,} members; a checkpoint has far fewer")
        declared = sum(info.file_size for info in infos)
        if declared > MAX_EXPANSION * size + 2**20:
            raise CheckpointError(f"{quoted(path)} declares {declared:,} bytes of arrays in a {size:,}-byte file; "
                                  "refusing to inflate it (not a checkpoint written by tinyconvmixer)")
        arrays = {}
        for info in infos:
            name = info.filename
            if not name.endswith(".npy") or info.is_dir():
                raise CheckpointError(f"{quoted(path)}: member {name!r} is not a .npy array")
            with archive.open(info) as f:
                arrays[name[:-len(".npy")]] = _read_npy(f, info.file_size, f"{quoted(path)}: member {name!r}")
    return arrays


def _read_npy(f, file_size, where):
    """One .npy member: check its header (magic, dtype, shape against the bytes there), then read it."""
    version = npy_format.read_magic(f)
    if version == (1, 0):
        shape, fortran, dtype = npy_format.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, fortran, dtype = npy_format.read_array_header_2_0(f)
    else:
        raise ValueError(f".npy format version {version} is not supported")
    if dtype.hasobject:
        raise CheckpointError(f"{where} holds pickled Python objects; they are never loaded "
                              "(unpickling can run arbitrary code)")
    if dtype.kind not in NUMERIC_KINDS + "U" or dtype.fields is not None or dtype.subdtype is not None:
        raise CheckpointError(f"{where} has dtype {dtype}; a checkpoint holds plain numbers")
    count = math.prod(shape)
    nbytes = count * dtype.itemsize
    if f.tell() + nbytes != file_size:
        raise CheckpointError(f"{where} declares shape {shape} of {dtype} ({nbytes:,} bytes), but holds "
                              f"{file_size - f.tell():,} bytes of data")
    data = f.read(nbytes)
    array = np.frombuffer(data, dtype=dtype, count=count).reshape(shape, order="F" if fortran else "C")
    return array.copy()                                    # writable, and not tied to `data`


def load_checkpoint(path):
    """Read a checkpoint: {"model": state dict, "optimizer": state dict, "meta": dict}."""
    what = kind(path)
    if what is None:
        raise CheckpointError(f"checkpoint not found: {quoted(path)}")
    if what.startswith("not "):
        raise CheckpointError(f"cannot read the checkpoint {quoted(path)}: it is {what}")
    if what != "a file":
        raise CheckpointError(f"the checkpoint {quoted(path)} is {what}, not a checkpoint file (last.npz)")
    try:
        is_zip = zipfile.is_zipfile(path)
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {quoted(path)} ({exc.strerror or exc})") from exc
    if not is_zip:
        raise CheckpointError(f"cannot read checkpoint {quoted(path)}: not a valid .npz archive (not a zip file)")
    try:
        arrays = _read_arrays(path)
    except CheckpointError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, NotImplementedError, RuntimeError) as exc:
        raise CheckpointError(f"cannot read checkpoint {quoted(path)}: not a valid .npz archive ({exc})") from exc
    meta = _parse_meta(arrays.pop("meta", None), path)
    return _split(arrays, meta, path)


def read_meta(path):
    """Only the meta record of a checkpoint (quick: the arrays are not read), or None if unreadable."""
    if kind(path) != "a file":                  # (a pipe or a device would block or never end)
        return None
    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo("meta.npy")
            if info.file_size > MAX_EXPANSION * os.path.getsize(path) + 2**20:
                return None
            with archive.open(info) as f:
                return _parse_meta(_read_npy(f, info.file_size, path), path)
    except (CheckpointError, KeyError, ValueError, OSError, EOFError, zipfile.BadZipFile, RuntimeError):
        return None


def _parse_meta(array, path):
    if array is None or array.dtype.kind != "U" or array.ndim != 0:
        raise CheckpointError(f"{quoted(path)} is not a tinyconvmixer checkpoint (no 'meta' entry)")
    try:
        meta = json.loads(str(array))
    except (ValueError, RecursionError) as exc:       # (not JSON, too deep, a number of 5,000 digits)
        raise CheckpointError(f"{quoted(path)}: the 'meta' entry is not valid JSON "
                              f"({' '.join(str(exc).split())[:200]})") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("version") not in READABLE:
        found = (meta.get("format"), meta.get("version")) if isinstance(meta, dict) else (None, None)
        raise CheckpointError(f"{quoted(path)} is not a tinyconvmixer checkpoint of version "
                              f"{' or '.join(map(str, READABLE))} (format {found[0]!r}, version {found[1]!r})")
    return upgrade(meta)


def upgrade(meta):
    """A version-2 record as version 3 says it: a run without a validation set (--val-split 0),
    so no epoch is the best one (version 2 chose best.npz by test accuracy; an old best.npz
    stays on disk, untouched, but nothing refers to it)."""
    if meta.get("version") != 2:
        return meta
    meta["version"], meta["upgraded_from"] = VERSION, 2
    if isinstance(meta.get("args"), dict):
        meta["args"].setdefault("val_split", 0)
    if isinstance(meta.get("data"), dict):
        meta["data"].setdefault("val_images", 0)
    progress = meta.get("progress")
    if isinstance(progress, dict) and "best_acc" in progress:
        progress.pop("best_acc")
        progress.update(best_val_acc=-1.0, best_epoch=0)
        for row in progress.get("history", []) if isinstance(progress.get("history"), list) else []:
            if isinstance(row, dict):
                row.setdefault("val_loss", None)
                row.setdefault("val_acc", None)
    return meta


def _split(arrays, meta, path):
    """Arrays and meta into the model's and the optimiser's state dicts, checking the names and numbers."""
    def bad(problem):
        return CheckpointError(f"{quoted(path)} is damaged or not written by tinyconvmixer: {problem}")

    saved = meta.pop("optimizer", None)
    if not isinstance(saved, dict) or not isinstance(saved.get("steps"), dict) \
            or not isinstance(saved.get("param_groups"), list) or not saved["param_groups"]:
        raise bad("missing metadata key 'optimizer' (with 'steps' and 'param_groups')")
    groups = []
    for g in saved["param_groups"]:
        if not isinstance(g, dict) or sorted(g) != sorted(GROUP_KEYS) or not _numbers(g["betas"], 2) \
                or not all(_numbers([g[k]], 1) for k in ("lr", "eps", "weight_decay")):
            raise bad(f"an optimizer parameter group must hold numbers {', '.join(GROUP_KEYS)}, got {g!r}")
        groups.append(dict(g, betas=tuple(g["betas"])))
    state = {}
    for i, step in saved["steps"].items():
        if not i.isdigit() or type(step) is not int or step < 0:
            raise bad(f"optimizer step count {i!r}: {step!r}")
        state[int(i)] = {"step": step}
    model = OrderedDict()
    for key, value in arrays.items():
        parts = key.split("/")
        if parts[0] == "model" and len(parts) == 2 and value.dtype.kind in NUMERIC_KINDS:
            model[parts[1]] = value
        elif parts[0] == "optim" and len(parts) == 3 and parts[1].isdigit() and parts[2] in OPTIM_ARRAYS \
                and int(parts[1]) in state and value.dtype.kind == "f":
            state[int(parts[1])][parts[2]] = value
        else:
            raise bad(f"unexpected array {key!r} ({value.dtype})")
    for i, entry in state.items():
        if sorted(entry) != sorted(("step",) + OPTIM_ARRAYS):
            raise bad(f"optimizer state of parameter {i} lacks {', '.join(set(OPTIM_ARRAYS) - set(entry))}")
    return {"model": model, "optimizer": {"state": state, "param_groups": groups}, "meta": meta}


def _numbers(values, n):
    return isinstance(values, list) and len(values) == n and all(
        type(v) in (int, float) and math.isfinite(v) for v in values)


def restore(checkpoint, model, optimizer):
    """Load a checkpoint's arrays into `model` and `optimizer` (on their device).

    A model of a different configuration fails here with nn.StateDictError,
    whose message lists the missing/unexpected keys and mismatched shapes.
    """
    model.load_state_dict(checkpoint["model"], strict=True)
    optimizer.load_state_dict(checkpoint["optimizer"])
    return checkpoint["meta"]
