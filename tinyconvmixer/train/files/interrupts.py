"""Ctrl-C (SIGINT), SIGTERM and SIGHUP during training: stop cleanly, never half-way through an update.

A signal can arrive at any moment: in the forward pass, in the backward pass, in
the middle of the optimiser's update or while a checkpoint is being written.
Python turns SIGINT into a KeyboardInterrupt raised wherever the main thread
happens to be; SIGTERM (what `kill`, `timeout` and job schedulers send) would end
the process at once, without saving, and so would SIGHUP (the terminal closed).
Two tools make all three safe:

    with interrupts.handled():      # the whole run: these signals raise Interrupted
        ...
        with interrupts.deferred():   # a block that must run all or nothing (the update and
            ...                       # its counters): a signal waits until the block ends

`Interrupted` is a KeyboardInterrupt that remembers which signal came (its
`exit_code` is 128 + the signal number: 130 for SIGINT, 143 for SIGTERM, 129 for
SIGHUP, as shells report). Nested `deferred` blocks are fine: only the outermost raises.
Signal handlers can only be set from the main thread; elsewhere both are no-ops.
"""

import contextlib
import signal
import threading

# SIGHUP: the terminal went away (an ssh session dropped); not on Windows.
SIGNALS = (signal.SIGINT, signal.SIGTERM) + ((signal.SIGHUP,) if hasattr(signal, "SIGHUP") else ())
_deferring = []          # holds the list of signals received, while a deferred() block is open


class Interrupted(KeyboardInterrupt):
    """SIGINT, SIGTERM or SIGHUP arrived."""

    def __init__(self, signum=signal.SIGINT):
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self):
        return "Ctrl-C" if self.signum == signal.SIGINT else signal.Signals(self.signum).name

    @property
    def exit_code(self):
        return 128 + int(self.signum)


def signal_of(exc):
    """The signal number behind a KeyboardInterrupt (a plain one is SIGINT)."""
    return getattr(exc, "signum", signal.SIGINT)


def _on_signal(signum, frame):
    """The handler: note the signal inside a deferred block, raise Interrupted elsewhere."""
    if _deferring:
        _deferring[0].append(signum)
    else:
        raise Interrupted(signum)


def _main_thread():
    return threading.current_thread() is threading.main_thread()


def _install():
    """Put _on_signal in place for SIGNALS; returns the handlers it replaced.

    A signal that is ignored (SIG_IGN: `nohup` ignores SIGHUP, a shell ignores
    SIGINT for a background job) stays ignored: that was the user's choice.
    """
    replaced = {}
    for s in SIGNALS:
        old = signal.getsignal(s)
        if old is not _on_signal and old is not signal.SIG_IGN:
            signal.signal(s, _on_signal)
            replaced[s] = old
    return replaced


def _restore(replaced):
    for s, handler in replaced.items():
        signal.signal(s, signal.SIG_DFL if handler is None else handler)


@contextlib.contextmanager
def handled():
    """Within the block, SIGNALS raise Interrupted; the old handlers come back after."""
    if not _main_thread():
        yield
        return
    replaced = _install()
    try:
        yield
    finally:
        _restore(replaced)


@contextlib.contextmanager
def deferred():
    """Hold back SIGNALS until the block ends, then raise Interrupted.

    The training loop wraps "optimizer step + count the batch + keep a copy of
    the buffers" in this, so an interrupt never lands between them: a checkpoint
    is always the state after a whole number of steps.
    """
    if not _main_thread() or _deferring:
        yield                                    # another thread, or inside a deferred block already
        return
    received, replaced = [], {}
    try:
        _deferring.append(received)
        replaced = _install()
        yield
    finally:
        _deferring.clear()
        _restore(replaced)
    if received:
        raise Interrupted(received[0])
