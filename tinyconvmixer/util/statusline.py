"""A status line on stderr: redrawn in place on a terminal, plain lines in a log.

On a terminal the line is rewritten with a carriage return ("\\r") at most every
`min_interval` seconds (0.1 s), so it costs nothing to call `show` often. When
the stream is a file or a pipe (a log, CI), "\\r" would pile up, so a whole line
is printed instead, at most every `log_interval` seconds (30 s); the first call
always prints, so a log shows what started. Used for the training progress bar
(runlog.py), the first decode of a data set (data/dataset.py) and the data-set
download (data/download.py has its own bar of bytes).
"""

import math
import sys
import time


def format_seconds(seconds):
    """0:42, 12:05, 3:02:15: a duration for people (None or nan: "?")."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = int(round(max(seconds, 0)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class StatusLine:
    def __init__(self, stream=None, min_interval=0.1, log_interval=30.0):
        self.stream = sys.stderr if stream is None else stream
        self.interactive = getattr(self.stream, "isatty", lambda: False)()
        self.min_interval = min_interval if self.interactive else log_interval
        self.last_draw = -math.inf
        self.drawn = 0                           # length of the text on screen

    def due(self):
        """Whether `show` would draw now (callers skip building the text otherwise)."""
        return time.perf_counter() - self.last_draw >= self.min_interval

    def show(self, text, force=False):
        """Draw `text` if the interval has passed (or `force`)."""
        if not force and not self.due():
            return
        self.last_draw = time.perf_counter()
        if not self.interactive:                 # a log file: whole lines, no redrawing
            self.stream.write(text + "\n")
        else:
            self.stream.write("\r" + text.ljust(self.drawn))
            self.drawn = len(text)
        self.stream.flush()

    def close(self, final=None):
        """Erase the line (on a terminal); then print `final` as a line of its own, if given."""
        if self.drawn:
            self.stream.write("\r" + " " * self.drawn + "\r")
            self.drawn = 0
        if final is not None:
            self.stream.write(final + "\n")
        self.stream.flush()
