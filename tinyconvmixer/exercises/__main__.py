"""python -m tinyconvmixer.exercises new|list|check|train: see the package docstring (__init__.py).

Exit codes: 0 everything checked passes (train: the two runs agree); 1 some exercise does
not pass (train: the runs part); 2 bad input (an unknown exercise, a missing folder or
file, a bad rubric or seed file), with a one-line error.
"""

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from ..engine import backend
from ..gradcheck import parity
from ..gradcheck.text import paragraph, wrap
from . import EXERCISES, find, grading
from .checker import SOLUTIONS, STUBS, TIMEOUT, check_exercise, print_outcome

DEFAULT_DIR = "exercises"


class BadInput(Exception):
    pass


def _folder(args):
    """The folder whose files are checked: --solutions, or --dir (default ./exercises)."""
    if getattr(args, "solutions", False):
        return SOLUTIONS
    folder = Path(args.dir)
    if not folder.is_dir():
        raise BadInput(f"no folder {str(folder)!r}: create it with `python -m tinyconvmixer.exercises new "
                       f"{args.dir}`, or point --dir at yours")
    return folder


def _selected(names):
    chosen = []
    for name in names:
        exercise = find(name)
        if exercise is None:
            raise BadInput(f"unknown exercise {name!r}: choose from "
                           f"{', '.join(e.name for e in EXERCISES)} (or their numbers 1-{len(EXERCISES)})")
        chosen.append(exercise)
    return chosen or EXERCISES


def _path(folder, exercise):
    path = folder / exercise.file
    if not path.is_file():
        raise BadInput(f"{path} is missing: `python -m tinyconvmixer.exercises new {folder}` copies "
                       f"the missing stubs (it never overwrites a file)")
    return path


def _say(text, indent=""):
    print("\n".join(wrap(text, indent=indent)))


def cmd_new(args):
    folder = Path(args.dir)
    if folder.exists() and not folder.is_dir():
        raise BadInput(f"{str(folder)!r} exists and is not a folder")
    folder.mkdir(parents=True, exist_ok=True)
    source = SOLUTIONS if args.solutions else STUBS
    copied, kept = [], []
    for exercise in EXERCISES:
        target = folder / exercise.file
        if target.exists():
            kept.append(exercise.file)
        else:
            shutil.copyfile(source / exercise.file, target)
            copied.append(exercise.file)
    what = "reference solutions" if args.solutions else "exercise stubs"
    print(f"copied {len(copied)} {what} into {folder}/" + (f" (kept your {len(kept)} existing files)" if kept else ""))
    for exercise in EXERCISES:
        print(f"  {exercise.file:<28} {exercise.number} {exercise.name} (walkthrough {exercise.step})")
    where = "" if str(folder) == DEFAULT_DIR else f" --dir {folder}"
    if args.solutions:
        _say(f"next: `python -m tinyconvmixer.exercises check{where}` (they all pass: break one to see a failure)")
    else:
        _say(f"next: read {EXERCISES[0].file}, write the function, then "
             f"`python -m tinyconvmixer.exercises check {EXERCISES[0].name}{where}`")
    return 0


def _seed(args):
    seed, hidden = grading.choose_seed(args.seed, args.seed_file)
    return seed, hidden


def cmd_list(args, xp):
    folder = _folder(args)
    seed, hidden = _seed(args)
    print(f"{'exercise':<21}{'file':<27}{'walkthrough':<16}status")
    passed = 0
    for exercise in EXERCISES:
        outcome = check_exercise(exercise, folder / exercise.file, xp, seed, args.timeout)
        passed += outcome.passed
        print(f"{f'{exercise.number} {exercise.name}':<21}{exercise.file:<27}{exercise.step:<16}{outcome.status}")
    print(f"\n{passed} of {len(EXERCISES)} pass ({'the reference solutions' if args.solutions else args.dir}); "
          f"{grading.seed_line(seed, hidden)}")
    return 0


def cmd_check(args, xp):
    folder = _folder(args)
    chosen = _selected(args.names)
    paths = [_path(folder, e) for e in chosen]
    rubric = grading.load_rubric(args.rubric)
    seed, hidden = _seed(args)
    quiet = args.json
    start = time.perf_counter()
    if not quiet:
        print(grading.seed_line(seed, hidden))
    outcomes = []
    for exercise, path in zip(chosen, paths):
        outcome = check_exercise(exercise, path, xp, seed, args.timeout, quiet=quiet)
        if not quiet:
            print_outcome(outcome, shown=10 ** 6 if args.all else 5)
        outcomes.append(outcome)
    seconds = time.perf_counter() - start
    if args.gradescope:
        grading.write_gradescope(args.gradescope, grading.as_gradescope(outcomes, rubric, seed, hidden, seconds))
    torch = parity.load_torch()
    if quiet:
        print(json.dumps(grading.as_json(outcomes, rubric, seed, hidden, args.device,
                                         torch.__version__ if torch else None, seconds), indent=2))
    else:
        counts = {}
        for o in outcomes:
            counts[o.status] = counts.get(o.status, 0) + 1
        order = ("PASS", "FAIL", "not written yet", "does not load", "refused")
        source = "the reference solutions" if args.solutions else args.dir
        earned = sum(grading.score(o, rubric)[0] for o in outcomes)
        possible = sum(grading.score(o, rubric)[1] for o in outcomes)
        print()
        _say(f"{len(outcomes)} checked ({source}): " + ", ".join(f"{counts[s]} {s}" for s in order if s in counts)
             + f"; {earned:g} of {possible:g} points" + (f"; results in {args.gradescope}" if args.gradescope else ""))
    return 0 if all(o.passed for o in outcomes) else 1


def cmd_train(args):
    from . import capstone
    folder = _folder(args)
    return capstone.main(folder, args)


def _add_source(p):
    source = p.add_mutually_exclusive_group()
    source.add_argument("--dir", default=DEFAULT_DIR, help=f"the folder of your files (default: {DEFAULT_DIR})")
    source.add_argument("--solutions", action="store_true", help="the reference solutions (for instructors)")


def _add_seed(p):
    seed = p.add_mutually_exclusive_group()
    seed.add_argument("--seed", type=int, help="the seed of the checks' inputs (default: a fresh one, printed; "
                      f"${grading.SEED_ENV} sets a hidden one)")
    seed.add_argument("--seed-file", metavar="FILE", help="read a hidden seed from FILE (a graded run: "
                      "the seed is never printed)")
    p.add_argument("--timeout", type=float, default=TIMEOUT, metavar="S",
                   help=f"seconds each check may take before it is stopped (default: {TIMEOUT:g})")
    p.add_argument("--device", default="cpu", choices=["cpu", "gpu"])


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m tinyconvmixer.exercises",
                                     description="Write the key backward passes yourself, and check them.")
    sub = parser.add_subparsers(dest="command", required=True)
    new = sub.add_parser("new", help="copy the exercise stubs into a folder (never overwrites a file)")
    new.add_argument("dir", nargs="?", default=DEFAULT_DIR, help=f"the folder (default: {DEFAULT_DIR})")
    new.add_argument("--solutions", action="store_true", help="copy the reference solutions instead")
    p = sub.add_parser("list", help="the exercises, and which pass")
    _add_source(p)
    _add_seed(p)
    p = sub.add_parser("check", help="check exercises (default: all)")
    p.add_argument("names", nargs="*", metavar="NAME", help="exercise names or numbers")
    _add_source(p)
    _add_seed(p)
    p.add_argument("--all", action="store_true", help="show every failing check (default: the first 5 of each)")
    p.add_argument("--json", action="store_true", help="print the results as JSON (every check, and the points)")
    p.add_argument("--gradescope", metavar="FILE", help="also write FILE in Gradescope's results.json format")
    p.add_argument("--rubric", metavar="FILE", help="the points of each exercise, a JSON file (default: "
                   "tinyconvmixer/exercises/rubric.json, 100 points)")
    p = sub.add_parser("train", help="the capstone: the smoke training on your functions, beside the reference")
    _add_source(p)
    from .capstone import add_arguments
    add_arguments(p)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        if args.command == "new":
            return cmd_new(args)
        if args.command == "train":
            return cmd_train(args)
        if args.seed is not None and args.seed < 0:
            raise BadInput(f"--seed must be 0 or more, got {args.seed}")
        if not args.timeout > 0:
            raise BadInput(f"--timeout must be more than 0 seconds, got {args.timeout:g}")
        xp = backend.xp_for(args.device)
        return cmd_list(args, xp) if args.command == "list" else cmd_check(args, xp)
    except (BadInput, backend.DeviceError, grading.GradingError) as exc:
        print(paragraph("error: ", str(exc)), file=sys.stderr)
        return 2


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:            # `... | head` stopped reading: not an error of ours
        sys.stdout = None
        sys.exit(0)
