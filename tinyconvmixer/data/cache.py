"""A decoded-array cache, so the second start does not decode CIFAR-10 again.

Decoding 60,000 JPEGs takes seconds; loading the same arrays back from an
uncompressed .npz takes a fraction of one. The cache file is

    <source name>.decoded-<path digest>-<state digest>.npz

written next to the source (the archive, or the folder), or in the default
data folder when the source's folder is read-only. The path digest hashes the
source's absolute path; the state digest the size and modification time of
every file the source is made of, so replacing or editing the source makes
the old cache unused (and it is deleted when the new one is written).

Caches hold plain uint8/int64 arrays, are written atomically (a temporary
file renamed into place, see ../atomic.py: a crash never leaves half a cache)
and are read with ``allow_pickle=False``: a cache file cannot run code.
"""

import hashlib
import os
import stat
import warnings
import zipfile

import numpy as np

from ..atomic import atomic_write
from .archive import archive_stem

FORMAT_VERSION = 1      # bump when the decoders change what they produce
KEYS = ("train_x", "train_y", "test_x", "test_y")


def cache_key(source, files):
    """'<path digest>-<state digest>': where the source is, and the sizes and times of its files."""
    where = hashlib.sha256(f"v{FORMAT_VERSION}|{os.path.realpath(source)}".encode())
    state = hashlib.sha256()
    for path in files:
        st = os.stat(path)
        state.update(f"{os.path.relpath(path, source)}|{st.st_size}|{st.st_mtime_ns}|".encode())
    return f"{where.hexdigest()[:8]}-{state.hexdigest()[:12]}"


def writable_dir(path):
    """Whether we may create files in `path`.

    os.access alone is not enough: for root it says yes to every folder,
    even one whose permission bits mark it read-only (like a shared,
    read-only data folder), so we also honour the owner's write bit.
    """
    try:
        return os.access(path, os.W_OK) and bool(os.stat(path).st_mode & stat.S_IWUSR)
    except OSError:
        return False


def cache_paths(source, files, fallback_dir, beside_source=True):
    """The places a cache for `source` may live, best first: beside it, then in `fallback_dir`."""
    file_name = f"{archive_stem(os.path.normpath(source))}.decoded-{cache_key(source, files)}.npz"
    places = [os.path.dirname(os.path.normpath(source))] if beside_source else []
    return list(dict.fromkeys(os.path.join(d, file_name) for d in places + [fallback_dir]))


def load(paths):
    """(arrays, kind, path) of the first readable cache in `paths`, or (None, None, None)."""
    for path in paths:
        if not os.path.isfile(path):
            continue
        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in KEYS}
                kind = str(npz["kind"])
            for split in ("train", "test"):
                x, y = arrays[f"{split}_x"], arrays[f"{split}_y"]
                if x.dtype != np.uint8 or x.shape[1:] != (32, 32, 3) or y.dtype != np.int64 \
                        or y.shape != x.shape[:1]:
                    raise ValueError(f"unexpected {split} arrays {x.dtype} {x.shape} / {y.shape}")
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            warnings.warn(f"ignoring unreadable cache {path} ({exc}); decoding the data again")
            continue
        return arrays, kind, path
    return None, None, None


def save(paths, arrays, kind):
    """Write the cache to the first writable place in `paths`; returns its path (None if nowhere).

    Older caches of the same source (other keys) in that folder are removed.
    Failing to write a cache only costs time next start, so it warns instead
    of raising.
    """
    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, kind=np.array(kind), **{k: arrays[k] for k in KEYS})
        os.chmod(tmp, 0o644)               # a cache may be shared, whatever the umask

    for path in paths:
        folder = os.path.dirname(path)
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError:
            continue
        if not writable_dir(folder):
            continue
        try:
            atomic_write(path, write)      # also on Ctrl-C: never half a cache, no temporary file left
        except OSError as exc:
            warnings.warn(f"could not write the data cache {path} ({exc})")
            continue
        _remove_stale(path)
        return path
    warnings.warn(f"could not write a data cache in any of {[os.path.dirname(p) for p in paths]}; "
                  "the data will be decoded again next time")
    return None


def _remove_stale(path):
    """Delete older caches of the same source (same name and path digest), next to `path`."""
    folder, name = os.path.split(path)
    prefix = name[: name.rindex("-") + 1]          # "<name>.decoded-<path digest>-"
    for other in os.listdir(folder):
        if other.startswith(prefix) and other.endswith(".npz") and other != name:
            try:
                os.remove(os.path.join(folder, other))
            except OSError:
                pass
