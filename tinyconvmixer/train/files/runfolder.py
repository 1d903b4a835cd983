"""The run folder: one run per folder, one live process per run.

Before a run writes anything, `RunFolder.claim`:

1. refuses a path that is not a folder (a file, a device, a broken link), or a
   folder it cannot write in;
2. creates the folder, if it is missing, with os.mkdir (which fails when another
   process made it first), and locks it: an advisory `flock` on the folder
   itself (no lock file to go stale; the system drops the lock when the process
   ends, even on SIGKILL). Whoever gets the lock owns the folder; a run that
   does not (the same --out started twice, at once) stops with one line and
   leaves the folder alone, whoever created it;
3. refuses a folder that already holds a run (any of RUN_FILES), unless it is
   the run being resumed (its last.npz is the --resume checkpoint) or the user
   asked for --overwrite (then the old run's files are deleted first);
4. deletes temporary files that killed writers left behind (see util/atomic.py):
   while we hold the lock, nobody else writes in the folder.

A run that stops before writing anything removes the folder again, but only
one it created itself and still holds the lock on (`release`). Runs without
--out get a folder that run.new_run_folder has just created for them alone.
Every refusal is a RunFolderError whose message says what to do instead.
Where fcntl is missing (Windows), folders are not locked.
"""

import contextlib
import os
import warnings

from ...util.atomic import remove_stale_temp_files, writable_dir
from ...util.paths import kind, quoted

try:
    import fcntl
except ImportError:           # Windows: no flock
    fcntl = None

RUN_FILES = ("args.json", "metrics.csv", "last.npz", "best.npz", "curves.png", "filters.png", "summary.json",
             "diagnostics.csv", "diagnostics.png")
COMMAND = "python -m tinyconvmixer.train"


class RunFolderError(RuntimeError):
    """The run folder cannot be used (see the message)."""


class RunFolder:
    def __init__(self, path, created=False):
        """created: the caller has just made this folder for this run (run.new_run_folder)."""
        self.path = path
        self.fd = None
        self.created = created

    def claim(self, resume=None, overwrite=False, describe=None):
        """Check, create, lock and tidy the folder (see the module docstring).

        resume: the checkpoint being resumed, if any. describe(path) -> str says
        what a last.npz holds, for the message about a folder in use.
        """
        path, q = self.path, quoted(self.path)
        for _ in range(3):                       # (again if the folder was removed while we waited)
            self._create()
            if not writable_dir(path):
                raise RunFolderError(f"the run folder {q} is read-only; choose another --out (to continue a "
                                     "run stored there, --resume it with --out NEW_FOLDER)")
            if self._lock():
                break
        else:
            raise RunFolderError(f"the run folder {q} keeps disappearing (another process removes it); "
                                 "choose another --out")
        present = [name for name in RUN_FILES if os.path.exists(os.path.join(path, name))]
        last = os.path.join(path, "last.npz")
        continuing = resume is not None and os.path.isfile(last) and _same_file(resume, last)
        if present and not continuing:
            if not overwrite:
                self.release()
                raise RunFolderError(self._holds_a_run(present, last, describe))
            for name in present:
                os.remove(os.path.join(path, name))
        remove_stale_temp_files(path, only_dead=False)

    def _create(self):
        """Make the folder unless it is there; only a folder made by this call counts as created."""
        path, q = self.path, quoted(self.path)
        what = kind(path)
        if what == "a folder":
            return
        if what is not None:
            raise RunFolderError(f"the run folder {q} is {what}, not a folder; choose another --out")
        parent = os.path.dirname(os.path.abspath(path))
        try:
            os.makedirs(parent, exist_ok=True)
        except OSError as exc:
            blocker = _first_non_folder(parent)
            why = f"{quoted(blocker)} is {kind(blocker)}" if blocker else exc.strerror or exc
            raise RunFolderError(f"cannot create the run folder {q} ({why}); choose another --out") from exc
        try:
            os.mkdir(path)
            self.created = True
        except FileExistsError:
            if not os.path.isdir(path):           # another process made a file of that name meanwhile
                raise RunFolderError(f"the run folder {q} is {kind(path) or 'gone again'}, not a folder; "
                                     "choose another --out") from None
        except OSError as exc:
            raise RunFolderError(f"cannot create the run folder {q} ({exc.strerror or exc}); "
                                 "choose another --out") from exc

    def _holds_a_run(self, present, last, describe):
        what = describe(last) if describe and "last.npz" in present else None
        held = f"a run ({what})" if what else f"another run's files ({', '.join(present)})"
        cont = (f"to continue that run: {COMMAND} --resume {quoted(last)}; " if "last.npz" in present
                else "it has no checkpoint to continue from; ")
        return (f"the run folder {quoted(self.path)} already holds {held}. {cont[0].upper()}{cont[1:]}to start "
                "a new run, choose another --out (or leave --out out for a new runs/<date-time> folder); to "
                "replace that run, add --overwrite")

    def _lock(self):
        """Lock the folder. False when the folder went away before the lock was taken (try again)."""
        if fcntl is None:
            return True
        try:
            self.fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:                 # removed by the run that made it, a moment ago
            self.created = False
            return False
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:            # held by another process: that run owns the folder
            os.close(self.fd)
            self.fd = None
            self.created = False                  # (never remove a folder another run is using)
            raise RunFolderError(f"the run folder {quoted(self.path)} is in use by another training run that "
                                 "is still going; wait for it to finish, or choose another --out") from exc
        except OSError as exc:                    # a file system without locks (some network mounts)
            warnings.warn(f"could not lock the run folder {quoted(self.path)} ({exc.strerror or exc}); nothing "
                          "stops a second run from using it at the same time")
            return True
        try:                                      # the lock is on the folder that is there now?
            same = os.path.samestat(os.fstat(self.fd), os.stat(self.path))
        except OSError:
            same = False
        if not same:
            os.close(self.fd)
            self.fd, self.created = None, False
        return same

    def release(self, remove_if_unused=False):
        """Unlock; with remove_if_unused, first delete the folder if this run created it, holds its
        lock and wrote nothing in it (with the lock still held, no other run can be using it)."""
        if remove_if_unused and self.created and (self.fd is not None or fcntl is None):
            with contextlib.suppress(OSError):
                os.rmdir(self.path)              # only succeeds while empty
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _first_non_folder(path):
    """The first part of `path` (from the root down) that exists and is not a folder, or None."""
    parts = os.path.abspath(path).split(os.sep)
    for i in range(2, len(parts) + 1):
        part = os.sep.join(parts[:i])
        what = kind(part)
        if what is None:
            return None
        if what != "a folder":
            return part
    return None


def _same_file(a, b):
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False
