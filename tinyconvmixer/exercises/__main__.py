"""python -m tinyconvmixer.exercises new|list|check: see the package docstring (__init__.py).

Exit codes: 0 everything checked passes; 1 some exercise does not pass (check);
2 bad input (an unknown exercise, a missing folder or file), with a one-line error.
"""

import argparse
import shutil
import sys
from pathlib import Path

from ..engine import backend
from . import EXERCISES, find
from .checker import SOLUTIONS, STUBS, check_exercise, print_outcome

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
        print(f"next: `python -m tinyconvmixer.exercises check{where}` (they all pass: break one to see a failure)")
    else:
        print(f"next: read {EXERCISES[0].file}, write the function, then "
              f"`python -m tinyconvmixer.exercises check {EXERCISES[0].name}{where}`")
    return 0


def cmd_list(args, xp):
    folder = _folder(args)
    print(f"{'exercise':<22}{'file':<29}{'walkthrough':<16}status")
    passed = 0
    for exercise in EXERCISES:
        path = folder / exercise.file
        status = check_exercise(exercise, path, xp).status if path.is_file() else "file missing"
        passed += status == "PASS"
        print(f"{f'{exercise.number} {exercise.name}':<22}{exercise.file:<29}{exercise.step:<16}{status}")
    print(f"\n{passed} of {len(EXERCISES)} pass ({'the reference solutions' if args.solutions else args.dir})")
    return 0


def cmd_check(args, xp):
    folder = _folder(args)
    chosen = _selected(args.names)
    paths = [_path(folder, e) for e in chosen]
    outcomes = []
    for exercise, path in zip(chosen, paths):
        outcome = check_exercise(exercise, path, xp)
        print_outcome(outcome)
        outcomes.append(outcome)
    counts = {}
    for o in outcomes:
        counts[o.status] = counts.get(o.status, 0) + 1
    order = ("PASS", "FAIL", "not written yet", "does not load")
    source = "the reference solutions" if args.solutions else args.dir
    print(f"\n{len(outcomes)} checked ({source}): " + ", ".join(f"{counts[s]} {s}" for s in order if s in counts))
    return 0 if all(o.passed for o in outcomes) else 1


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tinyconvmixer.exercises",
                                     description="Write the key backward passes yourself, and check them.")
    sub = parser.add_subparsers(dest="command", required=True)
    new = sub.add_parser("new", help="copy the exercise stubs into a folder (never overwrites a file)")
    new.add_argument("dir", nargs="?", default=DEFAULT_DIR, help=f"the folder (default: {DEFAULT_DIR})")
    new.add_argument("--solutions", action="store_true", help="copy the reference solutions instead")
    for name, text in (("list", "the exercises, and which pass"), ("check", "check exercises (default: all)")):
        p = sub.add_parser(name, help=text)
        if name == "check":
            p.add_argument("names", nargs="*", metavar="NAME", help="exercise names or numbers")
        source = p.add_mutually_exclusive_group()
        source.add_argument("--dir", default=DEFAULT_DIR, help=f"the folder of your files (default: {DEFAULT_DIR})")
        source.add_argument("--solutions", action="store_true", help="the reference solutions (for instructors)")
        p.add_argument("--device", default="cpu", choices=["cpu", "gpu"])
    args = parser.parse_args(argv)
    try:
        if args.command == "new":
            return cmd_new(args)
        xp = backend.xp_for(args.device)
        return cmd_list(args, xp) if args.command == "list" else cmd_check(args, xp)
    except (BadInput, backend.DeviceError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:            # `... | head` stopped reading: not an error of ours
        sys.stdout = None
        sys.exit(0)
