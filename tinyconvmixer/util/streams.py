"""The console of a command: never a reason to stop, never a traceback.

A training run prints a line per epoch on stdout and a status line on stderr.
Neither may end the run, whatever the console is:

* closed (`2>&-`, `>&-`, `<&-`, as some job schedulers start jobs): the missing
  descriptor is opened on /dev/null, as daemons do, so that no file the run
  opens later can take its number (and receive what a library writes there);
  Python's sys.stderr is None then, and what would go there is dropped;
* a pipe whose reader has gone (`| head -1`): the first failed write points the
  descriptor at /dev/null and the rest of the output is dropped; training goes
  on and ends with its usual exit code (not "Broken pipe" and exit code 2, as
  if the input were bad);
* an encoding that cannot show a character (a file name with bytes that are
  not UTF-8, PYTHONIOENCODING=ascii, LC_ALL=C): the character is written as an
  escape (\\udcff, \\xe9) instead of raising UnicodeEncodeError.

    with streams.guarded():      # cli.main: sys.stdout and sys.stderr are Guarded inside
        ...
"""

import contextlib
import os
import sys


def reopen_closed_descriptors():
    """Open /dev/null on each of the descriptors 0, 1 and 2 that is closed."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            try:
                opened = os.open(os.devnull, os.O_RDWR)
            except OSError:
                return
            if opened != fd:                    # (the lowest free number is this one: only in theory)
                os.dup2(opened, fd)
                os.close(opened)


class Guarded:
    """A text stream that drops what it cannot write, instead of raising."""

    def __init__(self, stream):
        self.stream = stream
        self.dead = stream is None or getattr(stream, "closed", False)

    def write(self, text):
        if not self.dead:
            try:
                self.stream.write(text)
            except UnicodeEncodeError:
                self._write_escaped(text)
            except (OSError, ValueError):       # EPIPE, EIO (the terminal went away), a closed file
                self._drop()
        return len(text)

    def _write_escaped(self, text):
        encoding = getattr(self.stream, "encoding", None) or "ascii"
        try:
            self.stream.write(text.encode(encoding, "backslashreplace").decode(encoding, "replace"))
        except (OSError, ValueError, LookupError):
            self._drop()

    def flush(self):
        if not self.dead:
            try:
                self.stream.flush()
            except (OSError, ValueError):
                self._drop()

    def isatty(self):
        try:
            return not self.dead and self.stream.isatty()
        except (AttributeError, OSError, ValueError):
            return False

    def fileno(self):
        if self.stream is None:
            raise OSError("the stream is closed")
        return self.stream.fileno()

    @property
    def encoding(self):
        return getattr(self.stream, "encoding", None) or "utf-8"

    def __getattr__(self, name):                # anything else (errors, buffer, ...): the stream's
        return getattr(self.stream, name)

    def _drop(self):
        """Stop writing; what is still buffered for the descriptor goes to /dev/null (so that
        Python's own flush at exit does not fail again and print 'Exception ignored')."""
        self.dead = True
        try:
            fd = self.stream.fileno()
            null = os.open(os.devnull, os.O_WRONLY)
        except (AttributeError, OSError, ValueError):
            return
        try:
            os.dup2(null, fd)
        except OSError:
            pass
        finally:
            os.close(null)


@contextlib.contextmanager
def guarded():
    """Within the block, sys.stdout and sys.stderr never raise (see the module docstring)."""
    reopen_closed_descriptors()
    old = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = Guarded(old[0]), Guarded(old[1])
    try:
        yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            if isinstance(stream, Guarded):
                stream.flush()                  # a reader that went away: found here, not at exit
        sys.stdout, sys.stderr = old
