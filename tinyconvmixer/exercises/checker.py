"""Checking a student's exercise: load the file, plug it in, run the checks, report.

For one exercise the outcome is one of
  PASS              every gradient check and every PyTorch comparison agrees
  FAIL              some do not: each failing check is listed with its largest error
                    and the first index that differs (or the error the code raised,
                    with the line of the student's file it came from)
  not written yet   a function still raises the stub's NotImplementedError
  does not load     the file has a syntax error, or lacks a function
"""

import importlib.util
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..engine import dispatch
from ..gradcheck import gradcheck, parity
from ..gradcheck.cases import CASES
from . import ExerciseError

HERE = Path(__file__).resolve().parent
STUBS, SOLUTIONS = HERE / "stubs", HERE / "solutions"


@dataclass
class Line:
    """One check of one input: 'gradcheck' or 'pytorch', the case, the input, how it went."""
    check: str
    case: str
    part: str
    max_abs: float
    first_bad: tuple = None
    status: str = "PASS"      # PASS, FAIL, ERROR, SKIP
    note: str = ""
    directions: bool = False  # random mode: first_bad is the index of a random direction
    factor: float = None      # yours = factor x the expected gradient, everywhere


@dataclass
class Outcome:
    exercise: object
    path: Path
    status: str = "PASS"      # PASS, FAIL, not written yet, does not load
    message: str = ""
    lines: list = field(default_factory=list)

    @property
    def passed(self):
        return self.status == "PASS"


class _NotWrittenYet(Exception):
    pass


def load(path, exercise):
    """The student's module, loaded from its file (fresh each time)."""
    spec = importlib.util.spec_from_file_location(f"tinyconvmixer_exercise_{exercise.name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    missing = [f for f in exercise.functions if not callable(getattr(module, f, None))]
    if missing:
        raise ExerciseError(f"{path.name} defines no function {missing[0]}()")
    return module


def _where(exc, path):
    """'line 12 of ex02_matmul.py: ga = g @ b' for the deepest frame in the student's file."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename).resolve() == path.resolve()]
    if not frames:
        return ""
    f = frames[-1]
    return f"line {f.lineno} of {path.name}" + (f" ({f.line.strip()})" if f.line else "")


def _error_line(check, case, exc, path):
    if isinstance(exc, NotImplementedError) and "not written yet" in str(exc):
        raise _NotWrittenYet(str(exc)) from exc
    if isinstance(exc, ExerciseError):
        return Line(check, case, "-", np.nan, status="ERROR", note=str(exc))
    where = _where(exc, path)
    text = f"{type(exc).__name__}: {exc}".splitlines()[0][:160]
    return Line(check, case, "-", np.nan, status="ERROR", note=f"{where}: {text}" if where else text)


def _report_lines(check, case, reports, directions=False):
    return [Line(check, case, r.name, r.max_abs, r.first_bad_index,
                 "PASS" if r.passed else "FAIL", r.problem, directions, getattr(r, "factor", None))
            for r in reports]


MODEL = next(c for c in CASES if c.name == "tiny convmixer stack")


def check_exercise(exercise, path, xp, seed=0):
    """Run every check of one exercise on the student's file; returns an Outcome."""
    outcome = Outcome(exercise, path)
    try:
        module = load(path, exercise)
    except ExerciseError as exc:
        outcome.status, outcome.message = "does not load", str(exc)
        return outcome
    except Exception as exc:
        where = f"line {exc.lineno} of {path.name}: " if isinstance(exc, SyntaxError) else _where(exc, path) + ": "
        outcome.status, outcome.message = "does not load", f"{where}{type(exc).__name__}: {exc}"
        return outcome
    torch = parity.load_torch()
    try:
        with dispatch.stand_in(*exercise.plug(module)):
            runs = [(case, "full") for case in exercise.gradchecks] + ([(MODEL, "random")] if exercise.model else [])
            for case, mode in runs:
                try:
                    fn, inputs, names = case.build(np.random.default_rng(seed), xp)
                    result = gradcheck(fn, inputs, names=names, seed=seed, mode=mode)
                    outcome.lines += _report_lines("gradcheck", case.name, result.inputs, mode == "random")
                except Exception as exc:
                    outcome.lines.append(_error_line("gradcheck", case.name, exc, path))
            for case in exercise.parity:
                if torch is None:
                    outcome.lines.append(Line("pytorch", case.name, "-", np.nan, status="SKIP",
                                              note="PyTorch is not installed"))
                    continue
                try:
                    outcome.lines += _report_lines("pytorch", case.name, parity.run_case(case, xp, torch, seed))
                except Exception as exc:
                    outcome.lines.append(_error_line("pytorch", case.name, exc, path))
    except _NotWrittenYet as exc:
        outcome.status, outcome.message, outcome.lines = "not written yet", str(exc), []
        return outcome
    if any(line.status in ("FAIL", "ERROR") for line in outcome.lines):
        outcome.status = "FAIL"
    return outcome


# ----- printing ------------------------------------------------------------------------------

def _count(n, noun):
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _error(x):
    return "-" if np.isnan(x) else f"{x:.2e}"


def print_outcome(outcome, shown=8):
    """The exercise's line, then (if it failed) its failing checks, at most `shown` of them."""
    e = outcome.exercise
    head = f"{e.number} {e.name:<18} {outcome.status}"
    if outcome.status == "PASS":
        ran = [line for line in outcome.lines if line.status == "PASS"]
        skipped = sum(line.status == "SKIP" for line in outcome.lines)
        largest = max(line.max_abs for line in ran)
        gradchecks = len({line.case for line in ran if line.check == "gradcheck"})
        comparisons = len({line.case for line in ran if line.check == "pytorch"})
        extra = f", {_count(skipped, 'PyTorch comparison')} skipped (no PyTorch)" if skipped else ""
        print(f"{head}: {_count(gradchecks, 'gradcheck')} and {_count(comparisons, 'PyTorch comparison')}, "
              f"largest error {largest:.1e}{extra}")
        return
    if outcome.status != "FAIL":
        print(f"{head}: {outcome.message}")
        return
    failing = [line for line in outcome.lines if line.status in ("FAIL", "ERROR")]
    cases = {(line.check, line.case) for line in outcome.lines}
    bad = {(line.check, line.case) for line in failing}
    print(f"{head}: {len(bad)} of {len(cases)} checks fail, on {_count(len(failing), 'input')}")
    width = max(len(line.case) for line in failing[:shown])
    for line in failing[:shown]:
        if line.status == "ERROR":
            detail = f"error  {line.note}"
        elif line.note:
            detail = f"wrong  {line.note}"
        elif line.directions:
            detail = f"max error {_error(line.max_abs)} (8 random directions), first in direction {line.first_bad[0]}"
        else:
            detail = f"max error {_error(line.max_abs)}, first differs at {line.first_bad}"
        if line.factor is not None:
            detail += f"; yours is {line.factor:.4g} x the expected everywhere (a scale missing or extra?)"
        print(f"    {line.check:<9} {line.case:<{width}}  {line.part:<7} {detail}")
    if len(failing) > shown:
        print(f"    ... and {len(failing) - shown} more")
