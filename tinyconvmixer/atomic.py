"""Atomic file writes: a file is either the old version or the new one, never half of either.

Writing a file in place (open, write, close) has a window in which a crash,
a full disk or Ctrl-C leaves a truncated file behind: a checkpoint that no
longer loads, a metrics.csv cut mid-row. The standard cure, used for every
file this package writes:

1. write the new contents to a temporary file in the same folder,
2. flush it to disk (os.fsync),
3. rename it onto the real name with os.replace, which is atomic on POSIX and
   Windows when both names are on the same file system (hence "same folder").

If anything fails before the rename, the temporary file is deleted and the old
file is untouched. `atomic_write` does all of this around a `write(tmp_path)`
callback, so each writer only says how to produce its bytes:

    atomic_write("metrics.csv", lambda tmp: write_rows(tmp, rows))
    atomic_write("curves.png", fig.savefig)        # dpi etc. via functools.partial

The temporary name keeps the file's extensions ("curves.png" is written as
"curves.tmp-<pid>-<n>.png", "data.tar.gz" as "data.tmp-<pid>-<n>.tar.gz"), so
writers that infer the format from the name (matplotlib, np.savez) still do.
It is unique per process and call, so concurrent writers never share one.
"""

import contextlib
import itertools
import os

_counter = itertools.count()     # next() on it is atomic under the GIL: unique per call


def temp_path(path):
    """A temporary name beside `path` with its extensions: 'runs/a.tar.gz' -> 'runs/a.tmp-<pid>-<n>.tar.gz'."""
    folder, name = os.path.split(os.path.abspath(os.fspath(path)))
    stem, dot, extensions = name[1:].partition(".")          # name[1:]: '.hidden' has no extension
    return os.path.join(folder, f"{name[0]}{stem}.tmp-{os.getpid()}-{next(_counter)}{dot}{extensions}")


def atomic_write(path, write):
    """Create or replace the file `path` atomically; returns `path`.

    `write(tmp)` must create the file `tmp` (a str path) with the complete new
    contents. It is then flushed to disk and renamed onto `path`. On any
    exception, Ctrl-C included, the temporary file is removed and the
    exception re-raised: `path` keeps its previous contents (or stays absent).
    The folder of `path` must exist.
    """
    tmp = temp_path(path)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:     # write access: Windows cannot fsync a read-only handle
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    return path
