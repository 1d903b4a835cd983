"""A decoded-array cache, so the second start does not decode CIFAR-10 again.

Decoding 60,000 JPEGs takes seconds; loading the same arrays back from an
uncompressed .npz takes a fraction of one. The cache file is

    <cache folder>/<source name>.decoded-<path digest>-<content digest>.npz

The cache folder is the default data folder (``$TINYCONVMIXER_DATA`` or
``~/.cache/tinyconvmixer``), never the folder of the source: a data folder may
be shared with others or read-only. The path digest hashes the source's
absolute path; the content digest hashes the bytes of every file the source
is made of (and their names), so a source edited in place gets a new cache even
when its size and modification time were kept. Hashing costs a read of the
source at every start, much less than decoding (measured 2026-11-30 on the
project's shared 2-core machine, files in the page cache: the 19 MB JPEG archive
18-34 ms, a 170 MB file 0.19-0.27 s, an extracted folder of 60,000 JPEGs
1.5-1.8 s). When a new cache is written, older ones of the same path are deleted.

A cache also records a fingerprint of the decoded arrays themselves (the
"data identity" that checkpoints store: the same images and labels give the
same fingerprint, whatever file format they came from).

Caches hold plain uint8/int64 arrays, are written atomically (a temporary
file renamed into place, see ../atomic.py: a crash never leaves half a cache),
are read with ``allow_pickle=False`` (a cache file cannot run code) and are
checked on reading (shapes, dtypes, labels in 0..9); a cache that fails a
check is ignored with a one-line warning and the source is decoded again.
"""

import hashlib
import os
import stat
import warnings
import zipfile

import numpy as np

from ..util.atomic import atomic_write, remove_stale_temp_files, writable_dir
from ..util.paths import quoted
from .archive import archive_stem
from .errors import DataError

FORMAT_VERSION = 2      # bump when the decoders or the cache layout change
KEYS = ("train_x", "train_y", "test_x", "test_y")
KINDS = ("binary", "python", "image-folder")
N_CLASSES = 10
CHUNK = 1 << 20


class CacheWarning(UserWarning):
    """The cache could not be read or written; the data is decoded (again) instead."""


def content_digest(source, files):
    """SHA-256 (hex, 16 digits) of the names and bytes of `files`, relative to `source`.

    Plain os.open/os.read: for a folder of 60,000 small images, opening the files
    costs more than hashing them, and this is about 3 times faster than open().
    """
    digest = hashlib.sha256(f"v{FORMAT_VERSION}|".encode())
    prefix = len(os.path.join(source, ""))
    for path in files:
        digest.update(os.fsencode(f"{path[prefix:] if path != source else ''}|"))   # (any name, any bytes)
        # O_NONBLOCK: opening a named pipe must not wait for a writer (it is refused just below)
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NONBLOCK", 0))
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise DataError(f"{quoted(path)}: not a regular file (a pipe, socket or device); refusing to "
                                "read it")
            while chunk := os.read(fd, CHUNK):
                digest.update(chunk)
        finally:
            os.close(fd)
        digest.update(b"|")
    return digest.hexdigest()[:16]


def fingerprint(arrays):
    """SHA-256 (hex, 16 digits) of the decoded arrays: the identity of the data set."""
    digest = hashlib.sha256()
    for key in KEYS:
        a = np.ascontiguousarray(arrays[key])
        digest.update(f"{key}|{a.dtype.str}|{a.shape}|".encode())
        digest.update(memoryview(a).cast("B"))
    return digest.hexdigest()[:16]


def cache_path(source, files, cache_dir):
    """Where the cache of `source` (made of `files`) lives in `cache_dir`."""
    where = hashlib.sha256(os.fsencode(os.path.realpath(source))).hexdigest()[:8]
    name = f"{archive_stem(os.path.normpath(source))}.decoded-{where}-{content_digest(source, files)}.npz"
    return os.path.join(cache_dir, name)


def _check(arrays, kind):
    """Raise ValueError unless the arrays are what the decoders produce."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}")
    for split in ("train", "test"):
        x, y = arrays[f"{split}_x"], arrays[f"{split}_y"]
        if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != (32, 32, 3) or y.dtype != np.int64 \
                or y.shape != x.shape[:1]:
            raise ValueError(f"unexpected {split} arrays {x.dtype} {x.shape} / {y.dtype} {y.shape}")
        if y.size and (y.min() < 0 or y.max() >= N_CLASSES):
            raise ValueError(f"{split} labels outside 0..{N_CLASSES - 1} ({y.min()}..{y.max()})")


def load(path):
    """(arrays, kind, fingerprint) from the cache at `path`, or None if it is absent or unusable."""
    if not os.path.isfile(path):
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in KEYS}
            kind, fp = str(npz["kind"]), str(npz["fingerprint"])
        _check(arrays, kind)
    except (OSError, ValueError, KeyError, EOFError, MemoryError, zipfile.BadZipFile) as exc:
        detail = " ".join(str(exc).split())
        warnings.warn(f"ignoring unreadable cache {quoted(path)} ({detail}); decoding the data again",
                      CacheWarning)
        return None
    return arrays, kind, fp


def save(path, arrays, kind, fp):
    """Write the cache; returns its path, or None (with a warning) where it cannot be written.

    Older caches of the same source (other content digests) in the folder are
    removed, and temporary files of killed writers with them. Failing to write
    a cache only costs time next start, so it warns instead of raising.
    """
    _check(arrays, kind)

    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, kind=np.array(kind), fingerprint=np.array(fp), **{k: arrays[k] for k in KEYS})
        os.chmod(tmp, 0o644)               # a cache may be shared, whatever the umask

    folder = os.path.dirname(path)
    try:
        os.makedirs(folder, exist_ok=True)
        if not writable_dir(folder):
            raise PermissionError(f"the folder {folder} is not writable")
        remove_stale_temp_files(folder)
        atomic_write(path, write)          # also on Ctrl-C: never half a cache, no temporary file left
    except OSError as exc:
        warnings.warn(f"could not write the data cache {quoted(path)} ({exc.strerror or exc}); the data "
                      "will be decoded again next time", CacheWarning)
        return None
    _remove_stale(path)
    return path


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
