"""Checking a student's exercise: refuse a borrowed answer, load the file, run every check, report.

`check_exercise(exercise, path, xp, seed)` returns an Outcome (outcome.py):

  PASS              every check passes
  FAIL              some do not: each failing check says which call or which check of the
                    engine, and why (the worst element: expected and actual values; a shape,
                    a dtype; the line of the student's file that raised)
  not written yet   a function still raises the stub's NotImplementedError
  does not load     the file has a syntax error, lacks a function, or loops while loading
  refused           it imports the engine's own code (honesty.py)
  file missing

The checks of one exercise (`plan`): its direct calls (calls.py; graphs.py for the
topological order), then the engine's gradient checks and PyTorch comparisons with
the student's function plugged in. Each is drawn from the seed, the exercise and its
place in the list, so one seed repeats a run exactly. They run in a child process,
each under a time limit (isolate.py), on the reference ops (dispatch.reference_only):
the code the students read.
"""

import importlib.util
import math
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..engine import dispatch
from ..gradcheck import gradcheck, parity
from ..gradcheck.cases import CASES
from ..gradcheck.text import width, wrap
from . import calls, forms, graphs, honesty, isolate
from .outcome import ExerciseError, Line, Outcome

HERE = Path(__file__).resolve().parent
STUBS, SOLUTIONS = HERE / "stubs", HERE / "solutions"
TIMEOUT = 20.0                       # seconds per check
MAX_TIMEOUTS = 2                     # after this many time-outs, an exercise's other checks are not run
RECURSION_LIMIT = 1000               # Python's default: a student's file may raise it, the caller's does not count
MODEL = next(c for c in CASES if c.name == "tiny convmixer stack")


class NotWrittenYet(Exception):
    pass


@dataclass
class Check:
    kind: str                        # call, order, gradcheck, pytorch
    label: str
    run: Callable                    # (module, xp, path) -> [Line], in the child process


def check_seed(seed, exercise, k):
    """The seed of check k of an exercise: one run's checks are independent draws."""
    return int(np.random.SeedSequence([seed, exercise.number, k]).generate_state(1)[0])


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
    """'line 12 of ex02_matmul.py (ga = g @ b)' for the deepest frame in the student's file."""
    while exc is not None:
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename).resolve() == path.resolve()]
        if frames:
            f = frames[-1]
            return f"line {f.lineno} of {path.name}" + (f" ({f.line.strip()})" if f.line else "")
        exc = exc.__cause__
    return ""


def error_line(kind, label, exc, path):
    """An ERROR line for an exception raised by a check (not written yet: NotWrittenYet)."""
    if isinstance(exc, NotImplementedError) and "not written yet" in str(exc):
        raise NotWrittenYet(str(exc)) from exc
    where = _where(exc, path)
    if isinstance(exc, ExerciseError):
        text = str(exc)
    else:
        text = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
    return Line(kind, label, status="ERROR", message=f"{where}: {text}" if where else text)


def _engine_line(kind, label, report, directions):
    """A Line from a gradcheck or parity InputReport, with the worst element's two values."""
    line = Line(kind, label, report.name, "PASS" if report.passed else "FAIL",
                error=report.max_abs if math.isfinite(report.max_abs) else math.nan)
    if report.passed:
        return line
    if report.problem:
        line.message = f"{report.name}: {report.problem}"
        return line
    reference = "finite differences" if kind == "gradcheck" else "PyTorch"
    if directions:
        at = f"for {report.name}, in random direction {report.worst_index[0]} of 8"
    else:
        index = ", ".join(map(str, report.worst_index or ()))
        at = f"at {report.name}[{index}]" if index else f"at {report.name}"
    line.message = f"max error {report.max_abs:.2e} {at}: {reference} {report.expected:.6g}, yours {report.actual:.6g}"
    if report.factor is not None:
        line.message += f"; yours is {report.factor:.4g} x the expected everywhere: a scale missing or extra?"
    return line


def plan(exercise, seed):
    """The checks of one exercise, in the order they run (the same in every process)."""
    checks = []
    if exercise.name == "topological_order":
        for k, (name, build) in enumerate(graphs.GRAPHS):
            rng = np.random.default_rng(check_seed(seed, exercise, k))
            checks.append(Check("order", f"topological_order on {name}",
                                lambda m, xp, path, name=name, build=build, rng=rng:
                                graphs.run(name, build, m.topological_order, rng)))
    for call in forms.draw(exercise.name, np.random.default_rng(check_seed(seed, exercise, 0))):
        who = forms.function_of(call.label)
        checks.append(Check("call", call.label, lambda m, xp, path, call=call, who=who:
                            calls.run(call, getattr(m, who), who, xp)))
    engine = [(case, "full") for case in exercise.gradchecks] + ([(MODEL, "random")] if exercise.model else [])
    for case, mode in engine:
        s = check_seed(seed, exercise, len(checks))

        def run(m, xp, path, case=case, mode=mode, s=s):
            with dispatch.stand_in(*exercise.plug(m)):
                fn, inputs, names = case.build(np.random.default_rng(s), xp)
                result = gradcheck(fn, inputs, names=names, seed=s, mode=mode)
            return [_engine_line("gradcheck", case.name, r, mode == "random") for r in result.inputs]
        checks.append(Check("gradcheck", case.name, run))
    for case in exercise.parity:
        s = check_seed(seed, exercise, len(checks))

        def run(m, xp, path, case=case, s=s):
            torch = parity.load_torch()
            if torch is None:
                return [Line("pytorch", case.name, status="SKIP", message="PyTorch is not installed")]
            with dispatch.stand_in(*exercise.plug(m)):
                return [_engine_line("pytorch", case.name, r, False) for r in parity.run_case(case, xp, torch, s)]
        checks.append(Check("pytorch", case.name, run))
    return checks


def _job(exercise, path, xp, checks):
    """What the child process runs: load the file, then each check from `start` on."""
    def job(start):
        limit = sys.getrecursionlimit()
        sys.setrecursionlimit(RECURSION_LIMIT)     # Python's default, whatever the caller raised it to
        try:
            yield from steps(start)
        finally:
            sys.setrecursionlimit(limit)

    def steps(start):
        try:
            module = load(path, exercise)
            honesty.check_module(module, path)
        except honesty.Refused as exc:
            yield {"i": -1, "load": "refused", "message": str(exc)}
            return
        except Exception as exc:               # noqa: BLE001  (a student's file may raise anything)
            if isinstance(exc, SyntaxError):
                where = f"line {exc.lineno} of {path.name}: "
            else:
                where = (_where(exc, path) + ": ") if _where(exc, path) else ""
            text = str(exc) if isinstance(exc, ExerciseError) else f"{type(exc).__name__}: {exc}"
            yield {"i": -1, "load": "does not load", "message": where + text}
            return
        yield {"i": -1, "load": "ok"}
        with dispatch.reference_only():
            for k in range(start, len(checks)):
                check = checks[k]
                try:
                    with np.errstate(all="ignore"):
                        lines = check.run(module, xp, path)
                except NotWrittenYet as exc:
                    yield {"i": k, "not_written": str(exc)}
                    return
                except Exception as exc:       # noqa: BLE001
                    try:
                        lines = [error_line(check.kind, check.label, exc, path)]
                    except NotWrittenYet as nwy:
                        yield {"i": k, "not_written": str(nwy)}
                        return
                yield {"i": k, "lines": [line.as_dict() for line in lines]}
    return job


_warm = []


def _warm_up():
    """Import PyTorch and run two of its ops once in this process: their first call imports
    more libraries (a second or two), which each child process would pay again otherwise."""
    torch = parity.load_torch()
    if torch is None or _warm:
        return
    for case in parity.PARITY_CASES:
        if case.name in ("conv2d k=3 padding=1", "gelu exact"):
            with np.errstate(all="ignore"):
                parity.run_case(case, np, torch, 0)
    _warm.append(True)


def check_exercise(exercise, path, xp, seed=0, timeout=TIMEOUT, fork=True, quiet=False):
    """Run every check of one exercise on the student's file; returns an Outcome."""
    outcome = Outcome(exercise, Path(path))
    path = Path(path)
    if not path.is_file():
        outcome.status, outcome.message = "file missing", f"{path} is missing"
        return outcome
    try:
        honesty.check_source(path)
    except honesty.Refused as exc:
        outcome.status, outcome.message = "refused", str(exc)
        return outcome
    checks = plan(exercise, seed)
    if any(c.kind == "pytorch" for c in checks):
        _warm_up()                                 # here, once: every child inherits it
    fork = fork and xp is np                       # CUDA does not survive fork()
    start = 0
    while start < len(checks):
        loaded = False
        for message in isolate.run(_job(exercise, path, xp, checks), start, timeout, fork=fork, quiet=quiet):
            k = message["i"]
            if "load" in message:
                if message["load"] != "ok":
                    outcome.status, outcome.message = message["load"], message["message"]
                    return outcome
                loaded = True
            elif "not_written" in message:
                outcome.status, outcome.message, outcome.lines = "not written yet", message["not_written"], []
                return outcome
            elif "lines" in message:
                outcome.lines += [Line.from_dict(d) for d in message["lines"]]
                start = k + 1
            elif not loaded:
                why = (f"timed out after {message['timeout']:g} s" if "timeout" in message else message["ended"])
                outcome.status, outcome.message = "does not load", f"{path.name}: {why} while loading"
                return outcome
            else:
                check = checks[k]
                if "timeout" in message:
                    outcome.lines.append(Line(check.kind, check.label, status="TIMEOUT", message=(
                        f"timed out after {message['timeout']:g} s and was stopped: an endless loop?")))
                else:
                    outcome.lines.append(Line(check.kind, check.label, status="ERROR",
                                              message=f"{message['ended']} during this check"))
                start = k + 1
                if sum(line.status == "TIMEOUT" for line in outcome.lines) >= MAX_TIMEOUTS:
                    outcome.lines += [Line(c.kind, c.label, status="ERROR", message=(
                        f"not run: {MAX_TIMEOUTS} checks of this exercise timed out already"))
                        for c in checks[start:]]
                    start = len(checks)
                break
        else:
            break
    return outcome.finish()


# ----- printing ------------------------------------------------------------------------------

def _count(n, noun):
    return f"{n} {noun}" + ("" if n == 1 else "s")


def summary(outcome):
    """The part of an exercise's line after its status."""
    if outcome.status != "PASS":
        if outcome.status == "FAIL":
            labels = list(dict.fromkeys((line.kind, line.case) for line in outcome.lines))
            bad = list(dict.fromkeys((line.kind, line.case) for line in outcome.failing))
            return f"{len(bad)} of {len(labels)} checks fail"
        return outcome.message
    ran = {}
    for line in outcome.lines:
        if line.status == "PASS":
            ran.setdefault(line.kind, set()).add(line.case)
    skipped = len({line.case for line in outcome.lines if line.status == "SKIP"})
    parts = [_count(len(ran["call"]), "call") if "call" in ran else "",
             _count(len(ran["order"]), "graph") if "order" in ran else "",
             _count(len(ran.get("gradcheck", ())), "gradcheck"),
             f"{len(ran['pytorch'])} beside PyTorch" if "pytorch" in ran else ""]
    total = sum(len(v) for v in ran.values())
    text = f"{total} checks: " + ", ".join(p for p in parts if p)
    return text + (f"; {skipped} beside PyTorch skipped (not installed)" if skipped else "")


def head(outcome):
    e = outcome.exercise
    return f"{e.number} {e.name:<18} {outcome.status}"


_KIND_TITLE = {"call": "", "order": "", "gradcheck": "gradcheck through the engine: ",
               "pytorch": "beside PyTorch, through the engine: "}


def failure_lines(outcome, shown=5):
    """The failing checks as printed lines: each check's call or name, then its parts' messages."""
    limit = width()
    groups = {}
    for line in outcome.failing:
        groups.setdefault((line.kind, line.case), []).append(line)
    out, said = [], set()
    for (kind, case), lines in list(groups.items())[:shown]:
        out += wrap(_KIND_TITLE[kind] + case, indent="      ", first="    ", limit=limit)
        for line in lines:
            message = line.message or f"{line.part}: {line.status}"
            out += wrap(message if message not in said else "the same as above", indent="          ",
                        first="        ", limit=limit)
            said.add(message)
        right = [line.part for line in outcome.lines if (line.kind, line.case) == (kind, case)
                 and line.status == "PASS" and line.part != "-"]
        if right and kind == "call":
            out += wrap(f"({', '.join(right)}: right)", indent="          ", first="        ", limit=limit)
    if len(groups) > shown:
        out.append(f"    ... and {len(groups) - shown} more failing (--all shows every one)")
    return out


def print_outcome(outcome, shown=5, file=None):
    """The exercise's line, then (if it failed) its failing checks, at most `shown` of them."""
    file = file or sys.stdout
    for line in wrap(summary(outcome), indent=" " * 25, first=head(outcome) + ": ", limit=width()):
        print(line, file=file)
    if outcome.status == "FAIL":
        for line in failure_lines(outcome, shown):
            print(line, file=file)
