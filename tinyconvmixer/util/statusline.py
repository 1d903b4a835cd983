"""A status line on stderr: redrawn in place on a terminal, plain lines in a log; never wider than the screen.

On a terminal the line is rewritten with a carriage return ("\\r") at most every
`min_interval` seconds (0.1 s), so it costs nothing to call `show` often. When
the stream is a file or a pipe (a log, CI), "\\r" would pile up, so a whole line
is printed instead, at most every `log_interval` seconds (30 s); the first call
always prints, so a log shows what started. Used for the training progress bar
(train/files/runlog.py), the first decode of a data set (data/dataset.py) and the
data-set download (data/download.py).

Why the width matters: "\\r" only goes back to the start of the screen line the
cursor is on. A text wider than the terminal wraps onto a second line, and every
redraw then leaves a stale copy of the first part behind (a screenful of copies
in a long epoch). So every text is fitted to `width()`: the terminal's columns
minus one (some terminals wrap as soon as the last column is written), $COLUMNS
when it is set, 80 when neither is known (a log, a pipe). Callers that can say
the same in fewer words (the progress bar drops its less useful parts first) ask
`width()` and build their text for it; `show` cuts whatever is still too long.
Widths are counted in terminal columns (a wide CJK character takes two).
"""

import math
import os
import sys
import time
import unicodedata

DEFAULT_COLUMNS = 80


def format_seconds(seconds):
    """0:42, 12:05, 3:02:15: a duration for people (None or nan: "?")."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = int(round(max(seconds, 0)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def columns(text):
    """How many terminal columns `text` takes (wide East Asian characters 2, combining marks 0)."""
    if text.isascii():
        return len(text)
    return sum(0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1
               for c in text)


def cut(text, width):
    """`text` cut to at most `width` columns, ending in "..." when something was cut off."""
    if columns(text) <= width:
        return text
    if width <= 3:
        return "." * max(width, 0)
    out, used = [], 0
    for c in text:
        w = columns(c)
        if used + w > width - 3:
            break
        out.append(c)
        used += w
    return "".join(out) + "..."


def terminal_columns(stream):
    """The columns of the terminal `stream` shows on: $COLUMNS if set, else asked of the
    terminal, else DEFAULT_COLUMNS (80)."""
    env = os.environ.get("COLUMNS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return os.get_terminal_size(stream.fileno()).columns or DEFAULT_COLUMNS
    except (AttributeError, OSError, ValueError):
        return DEFAULT_COLUMNS


class _Nowhere:
    """Where a status line goes when there is no stderr (the process was started with 2>&-)."""

    def write(self, text):
        return len(text)

    def flush(self):
        pass

    def isatty(self):
        return False


class StatusLine:
    def __init__(self, stream=None, min_interval=0.1, log_interval=30.0):
        self.stream = stream if stream is not None else sys.stderr if sys.stderr is not None else _Nowhere()
        try:
            self.interactive = bool(self.stream.isatty())
        except (AttributeError, OSError, ValueError):
            self.interactive = False
        self.min_interval = min_interval if self.interactive else log_interval
        self.last_draw = -math.inf
        self.drawn = 0                           # columns of the text on screen

    def width(self):
        """The most columns a text may take: the terminal's less one."""
        return max(terminal_columns(self.stream) - 1, 4)

    def due(self):
        """Whether `show` would draw now (callers skip building the text otherwise)."""
        return time.perf_counter() - self.last_draw >= self.min_interval

    def _printable(self, text):
        """`text` as the stream can encode it (escapes for what it cannot), so widths stay right."""
        encoding = getattr(self.stream, "encoding", None) or "utf-8"
        try:
            return text.encode(encoding, "backslashreplace").decode(encoding, "replace")
        except LookupError:
            return text

    def show(self, text, force=False):
        """Draw `text`, cut to width(), if the interval has passed (or `force`)."""
        if not force and not self.due():
            return
        self.last_draw = time.perf_counter()
        width = self.width()
        text = cut(" ".join(self._printable(text).split()), width)       # one line, at most `width`
        if not self.interactive:                 # a log file: whole lines, no redrawing
            self.stream.write(text + "\n")
        else:                                    # spaces over what is left of a longer line
            used = columns(text)
            self.stream.write("\r" + text + " " * max(min(self.drawn, width) - used, 0))
            self.drawn = used
        self.stream.flush()

    def close(self, final=None):
        """Erase the line (on a terminal); then print `final` as a line of its own, if given."""
        if self.drawn:
            self.stream.write("\r" + " " * min(self.drawn, self.width()) + "\r")
            self.drawn = 0
        if final is not None:
            self.stream.write(final + "\n")
        self.stream.flush()
