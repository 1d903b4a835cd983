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

A process killed in the middle of a write (SIGKILL, a power cut) cannot delete
its temporary file. `remove_stale_temp_files(folder)` deletes those left by
processes that no longer run; the training command calls it at start-up on its
run folder, the data cache calls it on the cache folder.
"""

import contextlib
import itertools
import os
import re
import stat

_counter = itertools.count()     # next() on it is atomic under the GIL: unique per call
_TEMP_NAME = re.compile(r"^.+\.tmp-(\d+)-\d+(\..*)?$")    # what temp_path makes; group 1 is the pid


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
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        if isinstance(exc, OSError) and exc.errno is not None and exc.filename in (None, tmp):
            exc.filename = os.fspath(path)          # name the file the user knows, not the temporary one
        raise
    return path


def _process_alive(pid):
    """Whether a process with this id exists (it may be another user's)."""
    if pid == os.getpid() or os.name == "nt":       # on Windows os.kill(pid, 0) would end the process
        return True
    try:
        os.kill(pid, 0)                 # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except (PermissionError, OSError, OverflowError):
        return True                     # exists but is not ours, or we cannot tell: keep the file
    return True


def remove_stale_temp_files(folder, only_dead=True):
    """Delete temporary files in `folder` (see temp_path) whose writer process is gone.

    Returns the names removed. Files of live processes are kept: they may be
    writing right now (two runs sharing a data cache folder, say). With
    only_dead=False every temporary file but this process's own goes: for a
    folder that only its locker writes in (a run folder), where a killed
    writer's process id may already belong to another process.
    """
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        match = _TEMP_NAME.match(name)
        if match is None:
            continue
        pid = int(match.group(1))
        if pid == os.getpid() or (only_dead and _process_alive(pid)):
            continue
        with contextlib.suppress(OSError):
            os.remove(os.path.join(folder, name))
            removed.append(name)
    return sorted(removed)


def writable_dir(path):
    """Whether we may create files in the folder `path`.

    os.access alone is not enough: for root it says yes to every folder,
    even one whose permission bits mark it read-only (like a shared,
    read-only data folder), so we also honour the owner's write bit.
    """
    try:
        return os.access(path, os.W_OK) and bool(os.stat(path).st_mode & stat.S_IWUSR)
    except OSError:
        return False
