"""Grading a class: the seed (fresh, given, or hidden), points from a rubric, and machine-readable results.

The seed. Every check draws its inputs from one seed. By default a fresh one is
drawn and printed, so that a student can repeat a run (`--seed N`). For a graded
run the instructor hides it: `--seed-file FILE` (a file the students never see)
or the environment variable TINYCONVMIXER_GRADING_SEED; a hidden seed is never
printed, nor written to the JSON or results.json. Use a long one (the inputs a
failing check shows are drawn from it): python -c "import secrets; print(secrets.randbits(64))".

The rubric. A JSON file with the points of every exercise; rubric.json beside this
file is the default (100 points in all). With "partial_credit": true a failing
exercise earns its points times the fraction of its checks that pass; by default a
failing exercise earns nothing (a backward pass wrong on some inputs is wrong).

    {"points": {"unbroadcast": 10, "matmul": 10, ...}, "partial_credit": false,
     "visibility": "visible"}

The results. `check --json` prints one JSON object (every check of every
exercise); `check --gradescope FILE` writes FILE in the format of Gradescope's
autograders (results.json: https://gradescope-autograders.readthedocs.io/en/latest/specs/),
one test per exercise with its points and the report a student would see.
"""

import io
import json
import os
import secrets
from pathlib import Path

from ..util.atomic import atomic_write
from . import EXERCISES
from .checker import print_outcome

SEED_ENV = "TINYCONVMIXER_GRADING_SEED"
DEFAULT_RUBRIC = Path(__file__).resolve().parent / "rubric.json"
VISIBILITY = ("hidden", "after_due_date", "after_published", "visible")


class GradingError(ValueError):
    """A bad rubric, seed file or results path (the message names it)."""


# ----- the seed --------------------------------------------------------------------------------

def _parse_seed(text, where):
    try:
        seed = int(str(text).strip())
    except ValueError:
        raise GradingError(f"{where} must hold a whole number (0 or more), got {str(text).strip()[:40]!r}") from None
    if seed < 0:
        raise GradingError(f"{where} must hold a whole number 0 or more, got {seed}")
    return seed


def choose_seed(seed=None, seed_file=None, environ=None):
    """(seed, hidden): --seed as given; a --seed-file or $TINYCONVMIXER_GRADING_SEED, hidden;
    else a fresh one (6 digits, easy to type again)."""
    environ = os.environ if environ is None else environ
    if seed is not None:
        return _parse_seed(seed, "--seed"), False
    if seed_file is not None:
        try:
            text = Path(seed_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise GradingError(f"cannot read the seed file {seed_file}: {exc.strerror or exc}") from None
        return _parse_seed(text, f"the seed file {seed_file}"), True
    if environ.get(SEED_ENV, "").strip():
        return _parse_seed(environ[SEED_ENV], f"${SEED_ENV}"), True
    return secrets.randbelow(900_000) + 100_000, False


def seed_line(seed, hidden):
    return "seed: hidden (a graded run)" if hidden else f"seed {seed} (to repeat this run: --seed {seed})"


# ----- the rubric ------------------------------------------------------------------------------

def load_rubric(path=None):
    """The rubric as {"points": {name: float}, "partial_credit": bool, "visibility": str}."""
    path = Path(path) if path else DEFAULT_RUBRIC
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise GradingError(f"cannot read the rubric {path}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise GradingError(f"the rubric {path} is not valid JSON: {exc.msg} at line {exc.lineno}") from None
    if not isinstance(data, dict) or not isinstance(data.get("points"), dict):
        raise GradingError(f'the rubric {path} must be an object with "points": {{"exercise name": points, ...}}')
    unknown = sorted(set(data) - {"points", "partial_credit", "visibility", "comment"})
    names = [e.name for e in EXERCISES]
    if unknown:
        raise GradingError(f"the rubric {path} has unknown keys {', '.join(unknown)} (allowed: points, "
                           "partial_credit, visibility, comment)")
    points = data["points"]
    strangers = [n for n in points if n not in names]
    if strangers:
        raise GradingError(f"the rubric {path} names no exercise {strangers[0]!r}: the names are {', '.join(names)}")
    missing = [n for n in names if n not in points]
    if missing:
        raise GradingError(f"the rubric {path} gives no points for {', '.join(missing)} (give 0 to leave one out)")
    for name, value in points.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
            raise GradingError(f"the rubric {path}: the points of {name} must be a number 0 or more, got {value!r}")
    partial = data.get("partial_credit", False)
    if not isinstance(partial, bool):
        raise GradingError(f'the rubric {path}: "partial_credit" must be true or false, got {partial!r}')
    visibility = data.get("visibility", "visible")
    if visibility not in VISIBILITY:
        raise GradingError(f'the rubric {path}: "visibility" must be one of {", ".join(VISIBILITY)}, got {visibility!r}')
    return {"points": {n: float(points[n]) for n in names}, "partial_credit": partial, "visibility": visibility}


def score(outcome, rubric):
    """(points earned, points possible) for one exercise."""
    possible = rubric["points"][outcome.exercise.name]
    if outcome.passed:
        return possible, possible
    if outcome.status == "FAIL" and rubric["partial_credit"]:
        cases = {(line.kind, line.case) for line in outcome.lines if line.status != "SKIP"}
        bad = {(line.kind, line.case) for line in outcome.failing}
        return round(possible * (len(cases) - len(bad)) / max(len(cases), 1), 2), possible
    return 0.0, possible


# ----- the results -----------------------------------------------------------------------------

def report_text(outcome, shown=20):
    """What the terminal shows for one exercise, as text (80 columns)."""
    out = io.StringIO()
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "80"
    try:
        print_outcome(outcome, shown=shown, file=out)
    finally:
        if old is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old
    return out.getvalue().rstrip("\n")


def as_json(outcomes, rubric, seed, hidden, device, torch_version, seconds):
    """Every check of every exercise, and the points: what `check --json` prints."""
    exercises = []
    for o in outcomes:
        earned, possible = score(o, rubric)
        exercises.append({
            "number": o.exercise.number, "name": o.exercise.name, "file": o.exercise.file, "status": o.status,
            "message": o.message, "score": earned, "max_score": possible,
            "checks": len({(line.kind, line.case) for line in o.lines}),
            "failing": len({(line.kind, line.case) for line in o.failing}),
            "lines": [line.as_dict() for line in o.lines]})
    return {"seed": "hidden" if hidden else seed, "device": device, "pytorch": torch_version,
            "score": round(sum(e["score"] for e in exercises), 2),
            "max_score": round(sum(e["max_score"] for e in exercises), 2),
            "passed": sum(e["status"] == "PASS" for e in exercises), "exercises": exercises,
            "execution_time": round(seconds, 1)}


def as_gradescope(outcomes, rubric, seed, hidden, seconds):
    """results.json in Gradescope's format: one test per exercise."""
    tests = []
    for o in outcomes:
        earned, possible = score(o, rubric)
        tests.append({"name": f"{o.exercise.number} {o.exercise.name}", "number": str(o.exercise.number),
                      "score": earned, "max_score": possible, "status": "passed" if o.passed else "failed",
                      "output": report_text(o), "visibility": rubric["visibility"]})
    passed = sum(o.passed for o in outcomes)
    return {"score": round(sum(t["score"] for t in tests), 2), "execution_time": int(round(seconds)),
            "output": f"{passed} of {len(outcomes)} exercises pass. {seed_line(seed, hidden)}.",
            "stdout_visibility": "hidden", "tests": tests}


def write_gradescope(path, results):
    path = Path(path)
    if not path.parent.is_dir():
        raise GradingError(f"cannot write {path}: the folder {path.parent} does not exist")
    text = json.dumps(results, indent=2) + "\n"
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
