"""What checking an exercise finds: one Line per check (and output), one Outcome per exercise.

A Line is plain data (strings and numbers), so that a check run in a child process
(isolate.py) can send it back as JSON, and `check --json` can print it as is.

Statuses of a line:   PASS, FAIL (a wrong value, shape or dtype), ERROR (the code raised,
                      or broke a rule such as writing into its input), TIMEOUT, SKIP.
Statuses of an exercise: PASS, FAIL, not written yet, does not load, refused (it uses the
                      engine's own code), file missing.
"""

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

KINDS = {"call": "called directly, beside the engine's own code",
         "order": "its order checked on a graph",
         "gradcheck": "plugged into the engine, gradient checked",
         "pytorch": "plugged into the engine, beside PyTorch"}


class ExerciseError(Exception):
    """The student's function returned something the engine cannot use (the message says what)."""


@dataclass
class Line:
    """One check (or one output of one check): what was checked, how it went, and why."""
    kind: str                 # call, order, gradcheck, pytorch (KINDS)
    case: str                 # the call as it reads, or the name of the engine's check
    part: str = "-"           # the output (ga, dx, ...) or the input of a gradcheck (x, weight, ...)
    status: str = "PASS"      # PASS, FAIL, ERROR, TIMEOUT, SKIP
    message: str = ""         # why it failed (empty when it passed)
    error: float = math.nan   # the largest absolute error (nan where there is none to give)

    @property
    def failed(self):
        return self.status in ("FAIL", "ERROR", "TIMEOUT")

    def as_dict(self):
        d = asdict(self)
        d["error"] = None if not math.isfinite(self.error) else self.error
        return d

    @classmethod
    def from_dict(cls, d):
        return cls(**{**d, "error": math.nan if d.get("error") is None else d["error"]})


@dataclass
class Outcome:
    exercise: object
    path: Path
    status: str = "PASS"
    message: str = ""
    lines: list = field(default_factory=list)

    @property
    def passed(self):
        return self.status == "PASS"

    @property
    def failing(self):
        return [line for line in self.lines if line.failed]

    def finish(self):
        """Set the status from the lines (once every check ran)."""
        if self.status == "PASS" and self.failing:
            self.status = "FAIL"
        return self
