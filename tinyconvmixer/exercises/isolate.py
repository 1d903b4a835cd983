"""Running a student's checks where they can be stopped: a child process, and a deadline per check.

A student's function may loop forever (a `while stack:` that never pops), eat
all memory, or end the process (os._exit, a crash in C code). None of that may
hang or end a class's grading run. So the checks of one exercise run in a forked
child process that reports each check's result as one line of JSON on a pipe;
the parent waits at most `timeout` seconds for each, and when one does not come
it kills the child, reports "timed out after N s" for that check, and goes on
with the next checks in a new child. A child that dies is reported the same way
("the process ended: ..."). The child's memory is capped (4 GiB above what it
starts with) where the system allows it, so a runaway list ends in a MemoryError.

Where fork() is missing (Windows) or unsafe (a GPU: CUDA does not survive a fork),
the checks run in this process, under an alarm (SIGALRM) where there is one.

    for message in run(job, start, timeout):      # job(start) yields dicts, each with "i"
        ...                                       # plus {"i": k, "timeout": s} or {"i": k, "ended": why}
"""

import contextlib
import faulthandler
import io
import json
import os
import select
import signal
import sys
import threading
import time

MEMORY_HEADROOM = 4 << 30


class Timeout(BaseException):
    """Raised in this process by the alarm of `in_process` (a BaseException: student code that
    catches Exception does not swallow it)."""


def can_fork():
    return hasattr(os, "fork")


def _limit_memory():
    try:
        import resource
        with open("/proc/self/statm") as f:
            used = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        cap = used + MEMORY_HEADROOM
        if hard == resource.RLIM_INFINITY or cap < hard:
            resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    except (ImportError, OSError, ValueError):
        pass                                      # no /proc (macOS) or no rlimits: no cap


def _child(job, start, write_fd, quiet):
    """The child: run the job, one JSON line per message; never returns."""
    code = 0
    try:
        faulthandler.disable()                     # a crash is reported by the parent, in one line
        _limit_memory()
        if "torch" in sys.modules:                # one thread: its pool does not survive fork()
            sys.modules["torch"].set_num_threads(1)
        if quiet:                                  # --json: the student's prints must not mix in
            sys.stdout = open(os.devnull, "w")
        with os.fdopen(write_fd, "w", buffering=1) as out:
            for message in job(start):
                out.write(json.dumps(message) + "\n")
                out.flush()
    except BaseException as exc:                  # noqa: BLE001  (report, whatever it is)
        code = 3
        try:
            os.write(2, f"exercise checker child: {type(exc).__name__}: {exc}\n".encode())
        except OSError:
            pass
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except Exception:                          # noqa: BLE001
            pass
        os._exit(code)


def _ended(status):
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        return f"the process was killed by {name}" + (" (out of memory?)" if sig == signal.SIGKILL else "")
    return f"the process exited with code {os.WEXITSTATUS(status)} (sys.exit or os._exit in the code?)"


def forked(job, start, timeout, quiet=False):
    """Run job(start) in a child; yield its messages, then at most one timeout or ended message."""
    read_fd, write_fd = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        _child(job, start, write_fd, quiet)
    os.close(write_fd)
    buffer, current, done = b"", start, False
    try:
        deadline = time.monotonic() + timeout
        while True:
            if b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                message = json.loads(line)
                current = message["i"] + 1 if message.get("i", -1) >= 0 else current
                deadline = time.monotonic() + timeout
                yield message
                continue
            left = deadline - time.monotonic()
            ready = select.select([read_fd], [], [], max(left, 0))[0] if left > 0 else []
            if not ready:
                os.kill(pid, signal.SIGKILL)
                yield {"i": current, "timeout": timeout}
                return
            chunk = os.read(read_fd, 1 << 16)
            if not chunk:
                done = True
                break
            buffer += chunk
    finally:
        os.close(read_fd)
        if not done:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _, status = os.waitpid(pid, 0)
    if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
        return
    yield {"i": current, "ended": _ended(status)}


def in_process(job, start, timeout, quiet=False):
    """Run job(start) here, each step under an alarm where there is one (Unix, main thread)."""
    alarm = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    steps, current = job(start), start

    def ring(signum, frame):
        raise Timeout()
    old = signal.signal(signal.SIGALRM, ring) if alarm else None
    try:
        while True:
            if alarm:
                signal.setitimer(signal.ITIMER_REAL, timeout)
            try:
                with contextlib.redirect_stdout(io.StringIO()) if quiet else contextlib.nullcontext():
                    message = next(steps)
            except StopIteration:
                return
            except Timeout:
                yield {"i": current, "timeout": timeout}
                return
            finally:
                if alarm:
                    signal.setitimer(signal.ITIMER_REAL, 0)
            current = message["i"] + 1 if message.get("i", -1) >= 0 else current
            yield message
    finally:
        if alarm:
            signal.signal(signal.SIGALRM, old)


def run(job, start, timeout, fork=True, quiet=False):
    """The messages of job(start), in a child process where fork is wanted and possible."""
    if fork and can_fork():
        return forked(job, start, timeout, quiet)
    return in_process(job, start, timeout, quiet)
