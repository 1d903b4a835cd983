"""The kinds of check, and the command `python -m tinyconvmixer.gradcheck` that runs them.

    ones    every per-op case of cases.py, with upstream gradient u = 1
    op      the same cases with a random upstream gradient (the real check)
    model   the tiny ConvMixer stack of cases.py, checked as one function
    parity  the ops beside PyTorch: outputs, gradients, running statistics (parity.py)
    optim   AdamW: its decoupled decay, and four steps beside PyTorch's (parity.py)

Without options the command runs `op` and `model`, the table of walkthrough Step
3e. `--kind` picks others; `--inject NAME` runs every kind with one bug of
bugs.py planted and says which kinds catch it and whether that is what the
catalogue expects; `--mystery SEED` does the same without naming the bug.
`--impl` says which code the checks run: the reference ops (the default), their
faster variants of fast/ where one applies, or both in turn.
"""

import argparse
import contextlib
import math
import sys
import time
from dataclasses import dataclass

import numpy as np

from ..engine import backend, dispatch
from . import bugs, parity
from .cases import CASES
from .check import gradcheck
from .text import Column, paragraph, table, wrap

IMPLS = {"reference": "the reference ops alone",
         "fast": "the faster variants of tinyconvmixer.fast where they apply"}

KINDS = {
    "ones": "per-op gradcheck, upstream gradient u = 1",
    "op": "per-op gradcheck, random upstream gradient",
    "model": "gradcheck of a tiny ConvMixer stack",
    "parity": "beside PyTorch: outputs, gradients, buffers",
    "optim": "AdamW: decay alone, and beside PyTorch",
}
DEFAULT_KINDS = ("op", "model")
MODEL_CASE = "tiny convmixer stack"


@dataclass
class Row:
    """One line of the table: one input (or output, or buffer) of one check."""
    kind: str
    check: str
    part: str
    max_abs: float
    max_rel: float
    worst: tuple
    status: str          # PASS, FAIL, ERROR (the check raised) or SKIP
    note: str = ""
    directions: bool = False   # 'random' mode: worst is the index of a random direction

    @property
    def failed(self):
        return self.status in ("FAIL", "ERROR")


def _rows_from_reports(kind, check, reports, directions=False):
    return [Row(kind, check, r.name, r.max_abs, r.max_rel, r.worst_index,
                "PASS" if r.passed else "FAIL", r.problem, directions) for r in reports]


def _error_row(kind, check, exc):
    message = f"{type(exc).__name__}: {exc}".splitlines()[0]
    return Row(kind, check, "-", math.nan, math.nan, None, "ERROR", message[:300])


def checks_of(kind, op=None):
    """The names of the checks a kind runs (those whose name contains `op`, if given)."""
    if kind in ("ones", "op", "model"):
        names = [c.name for c in CASES if (c.name == MODEL_CASE) == (kind == "model")]
    else:
        names = [c.name for c in (parity.PARITY_CASES if kind == "parity" else parity.OPTIM_CASES)]
    return [n for n in names if op is None or op in n]


def run_kind(kind, xp, op=None, mode="full", seed=0):
    """Run one kind of check; returns its rows. A check that raises is an ERROR row."""
    rows, wanted = [], set(checks_of(kind, op))
    if kind in ("ones", "op", "model"):
        upstream = "ones" if kind == "ones" else "random"
        for case in CASES:
            if case.name not in wanted:
                continue
            try:
                fn, inputs, names = case.build(np.random.default_rng(seed), xp)
                result = gradcheck(fn, inputs, mode=mode, names=names, seed=seed, upstream=upstream)
                rows += _rows_from_reports(kind, case.name, result.inputs, mode == "random")
            except Exception as exc:       # a planted bug may crash the op: that is a finding too
                rows.append(_error_row(kind, case.name, exc))
        return rows
    torch = parity.load_torch()
    cases = parity.PARITY_CASES if kind == "parity" else parity.OPTIM_CASES
    for case in cases:
        if case.name not in wanted:
            continue
        if torch is None and (kind == "parity" or case.needs_torch):
            rows.append(Row(kind, case.name, "-", math.nan, math.nan, None, "SKIP", "PyTorch is not installed"))
            continue
        try:
            reports = (parity.run_case(case, xp, torch, seed) if kind == "parity"
                       else case.run(xp, torch, seed))
            rows += _rows_from_reports(kind, case.name, reports)
        except Exception as exc:
            rows.append(_error_row(kind, case.name, exc))
    return rows


def verdict(rows):
    """'caught' if any row failed, 'skipped' if nothing ran, else 'missed'."""
    if any(r.failed for r in rows):
        return "caught"
    return "skipped" if all(r.status == "SKIP" for r in rows) else "missed"


# ----- printing ------------------------------------------------------------------------------
# Every table and paragraph fits 80 columns, or the terminal where it is wider (text.py): in a
# narrow terminal the relative error is left out first, then long check names wrap.

def _number(x):
    return f"{x:.2e}" if not math.isnan(x) else "-"


def print_table(rows, with_kind=False, part_header="input"):
    """The table: one row per input of each check; a row's note (why it failed) goes under it."""
    columns = [Column("kind", gap=0), Column("check", gap=2 if with_kind else 0), Column(part_header),
               Column("max abs err", ">", gap=2), Column("max rel err", ">", gap=2, optional=1),
               Column("worst at", gap=2), Column("result", gap=2)]
    cells, notes = [], []
    for r in rows:
        where = "-" if not r.worst else f"direction {r.worst[0]}" if r.directions else str(r.worst)
        cells.append([r.kind, r.check, r.part, _number(r.max_abs), _number(r.max_rel), where, r.status])
        notes.append(r.note)
    if not with_kind:
        columns, cells = columns[1:], [c[1:] for c in cells]
    for line in table(columns, cells, notes=notes, flex=1 if with_kind else 0):
        print(line)


def _count(rows):
    """(failing checks, checks) of a kind's rows."""
    checks = list(dict.fromkeys(r.check for r in rows))
    return sum(any(r.failed for r in rows if r.check == c) for c in checks), len(checks)


def print_summary(by_kind, expected=None):
    """One line per kind: how many checks fail, the verdict (and the catalogue's), what it runs."""
    columns = [Column("kind", gap=0), Column("failing", ">", gap=2), Column("verdict", gap=2)]
    columns += [Column("expected", gap=2)] if expected else []
    columns.append(Column("what it runs", gap=2))
    cells = []
    for kind, rows in by_kind.items():
        failing, total = _count(rows)
        cells.append([kind, f"{failing} of {total}", verdict(rows)]
                     + (["caught" if kind in expected else "missed"] if expected else []) + [KINDS[kind]])
    for line in table(columns, cells, flex=len(columns) - 1):
        print(line)


# ----- the planted-bug game -----------------------------------------------------------------

def run_planted(bug, kinds, xp, op, mode, seed):
    """Run the kinds of check with `bug` planted: {kind: rows}."""
    with bug.plant():
        return {kind: run_kind(kind, xp, op, mode, seed) for kind in kinds}


def as_expected(bug, by_kind):
    """Whether every kind that ran did what the catalogue says (skipped kinds do not count)."""
    return all(verdict(rows) == ("caught" if kind in bug.caught_by else "missed")
               for kind, rows in by_kind.items() if verdict(rows) != "skipped")


def _kind_list(kinds):
    return ", ".join(kinds) if kinds else "none"


def _paragraph(label, text):
    return paragraph(label, text)


def _run_and_show(bug, kinds, xp, op, mode, seed, expected=None):
    """Run the kinds of check with the bug planted; print the failing rows and the summary."""
    by_kind = run_planted(bug, kinds, xp, op, mode, seed)
    failing = [r for rows in by_kind.values() for r in rows if r.failed]
    print()
    if failing:
        print_table(failing, with_kind=True)
        print()
    print_summary(by_kind, expected=expected)
    return by_kind, failing


def inject(bug, kinds, xp, op, mode, seed):
    print(f"planted: {bug.name} ({bug.op}), in memory only")
    print(_paragraph("  bug:   ", bug.summary))
    print(_paragraph("  where: ", bug.where))
    by_kind, _ = _run_and_show(bug, kinds, xp, op, mode, seed, expected=bug.caught_by)
    missed = [k for k in KINDS if k not in bug.caught_by]
    print("\n" + paragraph("the catalogue: ", f"caught by {_kind_list(bug.caught_by)}; missed by {_kind_list(missed)}"))
    skipped = [f"{k} ({rows[0].note if rows else 'no check of this kind matches --op'})"
               for k, rows in by_kind.items() if verdict(rows) == "skipped"]
    if skipped:
        print(paragraph("not run here: ", ", ".join(skipped)))
    ok = as_expected(bug, by_kind)
    print("every kind that ran did what the catalogue says" if ok else
          "NOT as the catalogue says: see the verdicts above")
    print("\n" + _paragraph("why: ", bug.explanation))
    return 0 if ok else 1


def mystery_check_seed(seed, extra=0):
    """The seed of the checks' inputs in `--mystery seed`: drawn from the mystery seed, so that
    the table is not the one `--inject NAME` prints (its checks use --seed, 0 by default), and
    comparing the two byte by byte names no bug."""
    return int(np.random.SeedSequence([seed, extra, 0x6D797374]).generate_state(1)[0])


def mystery(seed, kinds, xp, op, mode, extra_seed=0):
    bug = bugs.mystery(seed)
    print(f"mystery bug {seed} planted, in memory only. Which op is broken, and how?")
    _, failing = _run_and_show(bug, kinds, xp, op, mode, mystery_check_seed(seed, extra_seed))
    print("\n" + paragraph("", f"`python -m tinyconvmixer.gradcheck --reveal {seed}` names the bug."))
    return 1 if failing else 0


def reveal(seed):
    bug = bugs.mystery(seed)
    missed = [k for k in KINDS if k not in bug.caught_by]
    print(f"mystery bug {seed} is {bug.name} ({bug.op}):")
    print(_paragraph("  bug:   ", bug.summary))
    print(_paragraph("  where: ", bug.where))
    print(_paragraph("  ", f"caught by {_kind_list(bug.caught_by)}; missed by {_kind_list(missed)}"))
    print(_paragraph("  why:   ", bug.explanation))
    print(paragraph("", f"(`python -m tinyconvmixer.gradcheck --inject {bug.name}` plants it by name)"))


def list_bugs():
    name_width = max(len(b.name) for b in bugs.BUGS)
    for b in bugs.BUGS:
        print("\n".join(wrap(b.summary, indent=" " * (name_width + 2), first=f"{b.name:<{name_width}}  ")))
    print(f"\n{len(bugs.BUGS)} bugs; `--inject NAME` plants one and says which kinds of check catch it")


# ----- the command ---------------------------------------------------------------------------

def _parse_kinds(text):
    kinds = tuple(dict.fromkeys(k.strip() for k in text.split(","))) if text != "all" else tuple(KINDS)
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ValueError(f"unknown kind {unknown[0]!r}: choose from {', '.join(KINDS)} or all")
    return kinds


@contextlib.contextmanager
def running(impl):
    """Inside the block, ops run on `impl`: 'reference' or 'fast'."""
    if impl == "reference":
        with dispatch.reference_only():
            yield
        return
    import tinyconvmixer.fast  # noqa: F401  (registers the variants)
    old = dispatch.set_fast(True)
    try:
        yield
    finally:
        dispatch.set_fast(old)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m tinyconvmixer.gradcheck",
        description="Check every op's backward against central finite differences (float64), "
                    "and plant bugs to see which checks catch them.")
    parser.add_argument("--op", help="only run checks whose name contains this text")
    parser.add_argument("--kind", help=f"kinds of check, comma-separated, or all: {', '.join(KINDS)} "
                                       f"(default {','.join(DEFAULT_KINDS)}; with --inject/--mystery, all)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "gpu"])
    parser.add_argument("--list", action="store_true", help="list the checks and exit")
    parser.add_argument("--mode", choices=["full", "random"],
                        help="'full' perturbs every element (the default), 'random' checks 8 random directions "
                             "per input (the default of --inject and --mystery: enough to see which checks fail)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the checks' random inputs (default 0; "
                        "--mystery draws its own from the mystery seed and this one)")
    parser.add_argument("--impl", choices=["reference", "fast", "both"], default="reference",
                        help="check the reference ops (the default), their faster variants "
                             "(tinyconvmixer.fast), or both in turn")
    game = parser.add_mutually_exclusive_group()
    game.add_argument("--list-bugs", action="store_true", help="list the bugs that --inject can plant")
    game.add_argument("--inject", metavar="NAME", help="plant the bug NAME and run every kind of check")
    game.add_argument("--mystery", metavar="SEED", type=int, help="plant a bug chosen by SEED, unnamed")
    game.add_argument("--reveal", metavar="SEED", type=int, help="name the bug of --mystery SEED")
    args = parser.parse_args(argv)

    for seed in (args.mystery, args.reveal):
        if seed is not None and seed < 0:
            print(paragraph("error: ", f"the seed must be 0 or more, got {seed}"), file=sys.stderr)
            return 2
    if args.list_bugs:
        list_bugs()
        return 0
    if args.reveal is not None:
        reveal(args.reveal)
        return 0
    if args.inject is not None and args.inject not in bugs.BY_NAME:
        print(paragraph("error: ", f"no bug named {args.inject!r}; --list-bugs lists them"), file=sys.stderr)
        return 2
    playing = args.inject is not None or args.mystery is not None
    args.mode = args.mode or ("random" if playing else "full")
    try:
        kinds = _parse_kinds(args.kind) if args.kind else (tuple(KINDS) if playing else DEFAULT_KINDS)
    except ValueError as exc:
        print(paragraph("error: ", f"{exc}"), file=sys.stderr)
        return 2
    names = {k: checks_of(k, args.op) for k in kinds}
    if args.list:
        for kind in kinds:
            for name in names[kind]:
                print(name if kinds == DEFAULT_KINDS else f"{kind:<8}{name}")
        return 0
    if not any(names.values()):
        print(paragraph("error: ", f"no check matches --op {args.op!r}; see --list"), file=sys.stderr)
        return 2
    try:
        xp = backend.xp_for(args.device)
    except backend.DeviceError as exc:
        print(paragraph("error: ", f"{exc}"), file=sys.stderr)
        return 2

    if args.inject is not None:
        return inject(bugs.BY_NAME[args.inject], kinds, xp, args.op, args.mode, args.seed)
    if args.mystery is not None:
        return mystery(args.mystery, kinds, xp, args.op, args.mode, args.seed)
    impls = ("reference", "fast") if args.impl == "both" else (args.impl,)
    failures = 0
    for n, impl in enumerate(impls):
        if len(impls) > 1:
            print(("\n" if n else "") + f"== {impl}: {IMPLS[impl]}")
        with running(impl):
            failures += _run_checks(kinds, names, xp, args)
    return 1 if failures else 0


def _run_checks(kinds, names, xp, args):
    """Run the kinds of check and print their table; returns the number of failing rows."""
    start = time.perf_counter()
    by_kind = {kind: run_kind(kind, xp, args.op, args.mode, args.seed) for kind in kinds}
    rows = [r for kind_rows in by_kind.values() for r in kind_rows]
    if kinds == DEFAULT_KINDS:                  # one table, as in walkthrough Step 3e
        print_table(rows)
    else:
        for n, (kind, kind_rows) in enumerate(by_kind.items()):
            if n:
                print()
            print(f"{kind}: {KINDS[kind]}")
            print_table(kind_rows, part_header="input" if kind in ("ones", "op", "model") else "part")
    failures = sum(r.failed for r in rows)
    skipped = sum(r.status == "SKIP" for r in rows)
    result = "all passed" if not failures else f"{failures} input(s) FAILED"
    if skipped:
        result += f" ({skipped} skipped: PyTorch is not installed)"
    print(f"\n{sum(map(len, names.values()))} checks on {args.device} in "
          f"{time.perf_counter() - start:.1f} s: {result}")
    return failures
