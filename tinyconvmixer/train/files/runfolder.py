"""The run folder: one run per folder, one live process per run.

Before a run writes anything, `RunFolder.claim`:

1. refuses a path that is a file, or a folder it cannot write in;
2. locks the folder (an advisory `flock` on the folder itself: no lock file to
   go stale; the system drops the lock when the process ends, even on SIGKILL),
   so a second run started with the same --out stops with a clear message
   instead of both writing the same files;
3. refuses a folder that already holds a run (any of RUN_FILES), unless it is
   the run being resumed (its last.npz is the --resume checkpoint) or the user
   asked for --overwrite (then the old run's files are deleted first);
4. deletes temporary files that killed writers left behind (see atomic.py):
   while we hold the lock, nobody else writes in the folder.

Every refusal is a RunFolderError whose message says what to do instead.
Where fcntl is missing (Windows), folders are not locked.
"""

import contextlib
import os
import warnings

from ...util.atomic import remove_stale_temp_files, writable_dir

try:
    import fcntl
except ImportError:           # Windows: no flock
    fcntl = None

RUN_FILES = ("args.json", "metrics.csv", "last.npz", "best.npz", "curves.png", "filters.png", "summary.json")
COMMAND = "python -m tinyconvmixer.train"


class RunFolderError(RuntimeError):
    """The run folder cannot be used (see the message)."""


class RunFolder:
    def __init__(self, path):
        self.path = path
        self.fd = None
        self.created = False

    def claim(self, resume=None, overwrite=False, describe=None):
        """Check, create, lock and tidy the folder (see the module docstring).

        resume: the checkpoint being resumed, if any. describe(path) -> str says
        what a last.npz holds, for the message about a folder in use.
        """
        path = self.path
        if os.path.exists(path) and not os.path.isdir(path):
            raise RunFolderError(f"the run folder {path} is a file, not a folder; choose another --out")
        try:
            self.created = not os.path.exists(path)
            os.makedirs(path, exist_ok=True)
        except OSError as exc:
            raise RunFolderError(f"cannot create the run folder {path} ({exc.strerror or exc}); "
                                 "choose another --out") from exc
        if not writable_dir(path):
            raise RunFolderError(f"the run folder {path} is read-only; choose another --out "
                                 "(to continue a run stored there, --resume it with --out NEW_FOLDER)")
        self._lock()
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

    def _holds_a_run(self, present, last, describe):
        what = describe(last) if describe and "last.npz" in present else None
        held = f"a run ({what})" if what else f"another run's files ({', '.join(present)})"
        cont = (f"to continue that run: {COMMAND} --resume {last}; " if "last.npz" in present
                else "it has no checkpoint to continue from; ")
        return (f"the run folder {self.path} already holds {held}. {cont[0].upper()}{cont[1:]}to start a new "
                "run, choose another --out (or leave --out out for a new runs/<date-time> folder); to replace "
                "that run, add --overwrite")

    def _lock(self):
        if fcntl is None:
            return
        self.fd = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:         # held by another process
            os.close(self.fd)
            self.fd = None
            raise RunFolderError(f"the run folder {self.path} is in use by another training run that is "
                                 "still going; wait for it to finish, or choose another --out") from exc
        except OSError as exc:                 # a file system without locks (some network mounts)
            warnings.warn(f"could not lock the run folder {self.path} ({exc.strerror or exc}); nothing stops "
                          "a second run from using it at the same time")

    def release(self, remove_if_unused=False):
        """Unlock; with remove_if_unused, delete the folder if this run created it and wrote nothing."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        if remove_if_unused and self.created:
            with contextlib.suppress(OSError):
                os.rmdir(self.path)          # only succeeds while empty


def _same_file(a, b):
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False
