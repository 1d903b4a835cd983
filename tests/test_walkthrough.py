"""walkthrough.md is executable: this test runs it like a notebook and checks what it shows.

How the walkthrough is read (the conventions are also stated at the top of walkthrough.md):

* Every ```python block runs, in order, in ONE shared namespace, with the test's
  working directory set to a fresh temporary folder (so files the blocks write
  land there, and TINYCONVMIXER_DATA points into it, so data caches do too).
  stdout is captured per block; NumPy's print options and nn.init's generator are
  restored afterwards, so the rest of the suite is unaffected.
* The blocks run as a student runs them, in a session that has not imported
  tinyconvmixer.fast: on the reference ops. conftest.py imports tinyconvmixer.fast
  for the whole suite, so the blocks run under dispatch.set_fast(False) (the old
  value comes back afterwards, also when a block fails). A side road that wants
  the faster variants turns them on itself, in its text.
* A ```text block that follows a python block with only whitespace in between is
  the output that block must print. A python block without one must print nothing.
* Comparison: both texts are split into tokens (numbers, and runs of other
  non-space characters), so whitespace does not matter. Text tokens must be equal.
  Numbers must agree within rtol=1e-3 and atol=1e-6 (float noise, tiny error
  magnitudes such as 3e-10 vs 4e-10); two integers (no '.', no exponent) must be
  equal exactly, because integers in the walkthrough are counts and shapes.
  A token `...` in the expected text matches any run of tokens (also none),
  like doctest's ELLIPSIS, for parts that vary (timings, paths, machines).
* A block that raises is reported and the run goes on with the next block, so one
  test run names every block that fails, not only the first.
* The core path alone: a second run leaves out every block of a 'Side road:' section
  and of an optional exercise (docs/reading_time.py finds them), as a reader who
  skips them, and holds the remaining blocks to the same outputs. Each step seeds
  its own generator, so skipping changes no number.
* ```bash blocks are NOT run, except those preceded by the HTML comment
  `<!-- walkthrough: run -->` (cheap commands such as the gradcheck of one op);
  those run from the repository root (`python` is this interpreter) and their
  combined stdout+stderr is compared with the following text block the same way.
* Every relative link [..](path) and image ![..](path) must name a file or folder
  that exists, relative to the repository root; every #anchor must name a heading;
  every figure under docs/figures/ must be written by docs/figures/make_figures.py.
* The minutes the contents state for every step are recounted by
  docs/reading_time.py, and docs/teaching.md's lesson plan must state the same.
"""

import contextlib
import io
import math
import re
import shlex
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
WALKTHROUGH = REPO / "walkthrough.md"
RUN_MARK = "<!-- walkthrough: run -->"
RTOL, ATOL = 1e-3, 1e-6


# --------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------

@dataclass
class Block:
    lang: str           # "python", "text", "bash", ...
    code: str
    line: int           # 1-based line of the opening fence in walkthrough.md
    end: int            # 1-based line of the closing fence
    run_mark: bool      # a bash block preceded by RUN_MARK
    expected: "Block" = None   # the text block right after it, if any
    number: int = 0     # 1-based number among the python blocks (0 for others)


FENCE = re.compile(r"^(\s*)(```+)\s*([\w+-]*)\s*$")


def parse(text):
    """The fenced code blocks of a markdown text, each linked to the text block after it."""
    lines = text.split("\n")
    blocks, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, lang = m.group(1), m.group(2), m.group(3).lower()
        start, body, i = i, [], i + 1
        while i < len(lines) and lines[i].strip() != fence:
            body.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i])
            i += 1
        if i == len(lines):
            raise AssertionError(f"walkthrough.md:{start + 1}: code block is never closed")
        prev = next((lines[k].strip() for k in range(start - 1, -1, -1) if lines[k].strip()), "")
        blocks.append(Block(lang, "\n".join(body) + "\n", start + 1, i + 1, prev == RUN_MARK))
        i += 1
    # link each runnable block to a text block that follows it with only blank lines between
    for a, b in zip(blocks, blocks[1:]):
        between = lines[a.end:b.line - 1]
        if b.lang == "text" and all(not s.strip() for s in between):
            a.expected = b
    n = 0
    for b in blocks:
        if b.lang == "python":
            n += 1
            b.number = n
    return blocks


# --------------------------------------------------------------------------------------
# Comparing outputs
# --------------------------------------------------------------------------------------

NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|nan|inf")
TOKEN = re.compile(r"\.\.\.|[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[^\s\d.+-]+|\S")


def tokens(text):
    """Numbers, '...', and runs of other characters; whitespace only separates."""
    return TOKEN.findall(text)


def _is_int(tok):
    return re.fullmatch(r"[-+]?\d+", tok) is not None


def _is_number(tok):
    return NUMBER.fullmatch(tok) is not None and tok not in ("+", "-")


def token_equal(expected, got):
    if expected == got:
        return True
    if _is_number(expected) and _is_number(got):
        if _is_int(expected) and _is_int(got):
            return int(expected) == int(got)
        a, b = float(expected), float(got)
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return abs(a - b) <= ATOL + RTOL * abs(a)
    return False


def output_matches(expected, got):
    """Whether `got` matches `expected` (tokens, float tolerance, '...' wildcards)."""
    exp, out = tokens(expected), tokens(got)
    memo = {}

    def match(i, j):
        key = (i, j)
        if key in memo:
            return memo[key]
        if i == len(exp):
            result = j == len(out)
        elif exp[i] == "...":
            result = any(match(i + 1, k) for k in range(j, len(out) + 1))
        else:
            result = j < len(out) and token_equal(exp[i], out[j]) and match(i + 1, j + 1)
        memo[key] = result
        return result

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 4 * (len(exp) + len(out)) + 1000))
    return match(0, 0)


def first_difference(expected, got):
    """A short description of where two outputs part (line by line, for the message)."""
    exp_lines = [ln for ln in expected.strip("\n").split("\n")]
    got_lines = [ln for ln in got.strip("\n").split("\n")]
    for k in range(max(len(exp_lines), len(got_lines))):
        e = exp_lines[k] if k < len(exp_lines) else "<nothing>"
        g = got_lines[k] if k < len(got_lines) else "<nothing>"
        if "..." in e:
            continue
        if not output_matches(e, g):
            return f"first differing line {k + 1}:\n    expected: {e}\n    got:      {g}"
    return "(the lines differ only where '...' spans several lines)"


def describe(kind, block, expected, got):
    return (f"{kind} at walkthrough.md line {block.line}: output does not match the text block at "
            f"line {block.expected.line}.\n{first_difference(expected, got)}\n"
            f"--- expected ---\n{expected.rstrip()}\n--- got ---\n{got.rstrip()}\n")


# --------------------------------------------------------------------------------------
# The tests
# --------------------------------------------------------------------------------------

BLOCKS = parse(WALKTHROUGH.read_text(encoding="utf-8"))


def test_comparison_rules():
    """The rules the walkthrough's outputs are held to (so the main test means what it says)."""
    assert output_matches("[0.1234 -0.5]", "[ 0.1234  -0.5 ]")
    assert output_matches("max abs err 3e-10", "max abs err 4e-10")        # atol
    assert not output_matches("loss 2.3026", "loss 2.3126")                # rtol 1e-3
    assert output_matches("loss 2.3026", "loss 2.3027")
    assert not output_matches("706570 parameters", "706571 parameters")    # integers exact
    assert output_matches("took ... s\ndone", "took 12.5 s\ndone")
    assert output_matches("a ... b", "a b")
    assert not output_matches("a ... b", "a c")
    assert output_matches("shape (2, 3)", "shape (2,3)")
    assert not output_matches("float32", "float64")


def run_python_blocks(blocks, tmp_path, monkeypatch, skip=frozenset()):
    """Run the python blocks (but those whose line is in `skip`) in order in one namespace, in
    `tmp_path`, on the reference ops. Returns (problems, summary line)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("TINYCONVMIXER_DATA", str(tmp_path / "data"))   # caches go here, not to ~/.cache
    monkeypatch.delenv("TINYCONVMIXER_THREADS", raising=False)          # restored afterwards, whatever a block does
    namespace = {"__name__": "__walkthrough__"}
    problems = []
    printopts = np.get_printoptions()
    from tinyconvmixer.engine import dispatch
    from tinyconvmixer.nn import init
    generator = init.default_generator()
    timings = []
    fast_before = dispatch.set_fast(False)      # a student's session: the reference ops
    try:
        for block in blocks:
            if block.lang != "python" or block.line in skip:
                continue
            # pad with newlines so tracebacks give the line number in walkthrough.md
            code = compile("\n" * block.line + block.code, str(WALKTHROUGH), "exec")
            out = io.StringIO()
            start = time.perf_counter()
            error = None
            try:
                with contextlib.redirect_stdout(out):
                    exec(code, namespace)
            except BaseException as exc:             # SystemExit too: a command's exit is a failure here
                if isinstance(exc, KeyboardInterrupt):
                    raise
                error = traceback.format_exc()
            timings.append((time.perf_counter() - start, block.number, block.line))
            got = out.getvalue()
            if error is not None:
                problems.append(f"python block {block.number} (walkthrough.md line {block.line}) raised:\n"
                                f"{error}\n--- its output so far ---\n{got}")
            elif block.expected is None:
                if got.strip():
                    problems.append(f"python block {block.number} at walkthrough.md line {block.line} "
                                    f"prints output but no text block follows it:\n{got.rstrip()}\n")
            elif not output_matches(block.expected.code, got):
                problems.append(describe(f"python block {block.number}", block, block.expected.code, got))
    finally:
        dispatch.set_fast(fast_before)
        np.set_printoptions(**printopts)
        init._generator = generator
        if "matplotlib.pyplot" in sys.modules:
            sys.modules["matplotlib.pyplot"].close("all")
    slowest = ", ".join(f"block {n} (line {ln}) {t:.1f} s" for t, n, ln in sorted(timings)[::-1][:3])
    return problems, f"{len(timings)} python blocks in {sum(t for t, _, _ in timings):.1f} s; slowest: {slowest}"


def test_walkthrough_blocks(tmp_path, monkeypatch):
    """Run every python block in order; each must not raise and must print what is shown."""
    assert any(b.lang == "python" for b in BLOCKS), "walkthrough.md has no python blocks"
    problems, summary = run_python_blocks(BLOCKS, tmp_path, monkeypatch)
    print("\n" + summary)
    if problems:
        pytest.fail(f"{len(problems)} block(s) of walkthrough.md fail or print something else than shown:\n\n"
                    + "\n".join(problems), pytrace=False)


def optional_lines(text):
    """1-based lines a reader may skip: the side roads and the optional exercises."""
    reading_time = _load_docs_module("reading_time")
    lines = text.split("\n")
    skip = set(side_road_lines(text))
    for first, last, _, required in reading_time.exercise_regions(lines, reading_time.classify(lines)):
        if not required:
            skip.update(range(first + 1, last + 2))
    return skip


def test_core_path_alone(tmp_path, monkeypatch):
    """A reader who skips every side road and every optional exercise runs the rest and sees
    exactly the outputs shown: no core block depends on what a skipped block drew or defined."""
    text = WALKTHROUGH.read_text(encoding="utf-8")
    skip = optional_lines(text)
    skipped = [b for b in BLOCKS if b.lang == "python" and b.line in skip]
    assert len(skipped) >= 8, "the side roads and optional exercises lost their code"
    problems, summary = run_python_blocks(BLOCKS, tmp_path, monkeypatch, skip=frozenset(skip))
    print(f"\ncore path alone ({len(skipped)} python blocks skipped): {summary}")
    if problems:
        pytest.fail(f"with the side roads and optional exercises skipped, {len(problems)} block(s) of "
                    f"walkthrough.md fail or print something else than shown:\n\n" + "\n".join(problems),
                    pytrace=False)


RUN_BLOCKS = [b for b in BLOCKS if b.lang == "bash" and b.run_mark]


@pytest.mark.parametrize("block", RUN_BLOCKS, ids=[f"line{b.line}" for b in RUN_BLOCKS])
def test_walkthrough_commands(block):
    """The cheap shell commands marked to run, from the repository root."""
    assert block.expected is not None, f"bash block at line {block.line} is marked to run but shows no output"
    outputs = []
    for command in [c for c in block.code.split("\n") if c.strip() and not c.lstrip().startswith("#")]:
        argv = shlex.split(command)
        if argv[0] == "python":
            argv[0] = sys.executable
        proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=120)
        outputs.append(proc.stdout + proc.stderr)
    got = "".join(outputs)
    if not output_matches(block.expected.code, got):
        pytest.fail(describe("bash block", block, block.expected.code, got), pytrace=False)


LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HTML_SRC = re.compile(r"<img[^>]*\ssrc=\"([^\"]+)\"")


def github_anchor(heading):
    """The id GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_walkthrough_links_and_figures():
    """Every relative link, image and #anchor names something that exists."""
    text = WALKTHROUGH.read_text(encoding="utf-8")
    missing, images = [], 0
    in_code = False
    lines = text.split("\n")
    anchors, in_code_h = set(), False
    for line in lines:
        if FENCE.match(line):
            in_code_h = not in_code_h
        elif not in_code_h and line.startswith("#"):
            anchors.add(github_anchor(line.lstrip("#")))
    for n, line in enumerate(lines, start=1):
        if FENCE.match(line):
            in_code = not in_code
            continue
        if in_code:
            continue
        for target in LINK.findall(line) + HTML_SRC.findall(line):
            if target.startswith("#"):
                if target[1:] not in anchors:
                    missing.append(f"line {n}: {target} (no such heading)")
                continue
            if re.match(r"^[a-z]+://|^mailto:", target):
                continue
            path = target.split("#")[0]
            if target.lower().endswith(".png"):
                images += 1
            if not (REPO / path).exists():
                missing.append(f"line {n}: {target}")
    assert not missing, "walkthrough.md links to files that do not exist:\n  " + "\n  ".join(missing)
    assert images > 0, "walkthrough.md shows no figure"
    for png in re.findall(r"\(((?:docs/figures)/[\w.-]+\.png)\)", text):
        data = (REPO / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{png} is not a PNG file"


def test_figure_script_names_every_figure():
    """Each figure the walkthrough shows is written by docs/figures/make_figures.py."""
    script = (REPO / "docs" / "figures" / "make_figures.py").read_text(encoding="utf-8")
    text = WALKTHROUGH.read_text(encoding="utf-8")
    for png in sorted(set(re.findall(r"docs/figures/([\w.-]+\.png)", text))):
        assert png in script, f"docs/figures/{png} is shown but make_figures.py does not make it"


# --------------------------------------------------------------------------------------
# The notebook, the core path and its reading time
# --------------------------------------------------------------------------------------

def _load_docs_module(name):
    """docs/NAME.py, a script rather than a package module."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(name, REPO / "docs" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _load_make_notebook():
    return _load_docs_module("make_notebook")


def test_notebook_is_in_sync():
    """walkthrough.ipynb is what docs/make_notebook.py makes of walkthrough.md: the same python
    blocks, in the same order, as code cells without outputs."""
    import json
    make_notebook = _load_make_notebook()
    wanted = make_notebook.notebook_json(WALKTHROUGH.read_text(encoding="utf-8"))
    current = (REPO / "walkthrough.ipynb").read_text(encoding="utf-8")
    assert current == wanted, "walkthrough.ipynb is out of date: run python docs/make_notebook.py"
    notebook = json.loads(current)
    assert (notebook["nbformat"], notebook["nbformat_minor"]) == (4, 5)
    code = [c for c in notebook["cells"] if c["cell_type"] == "code" and c["id"] != "setup"]
    assert ["".join(c["source"]) + "\n" for c in code] == [b.code for b in BLOCKS if b.lang == "python"]
    assert all(c["outputs"] == [] and c["execution_count"] is None for c in code)
    markdown = "".join("".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "markdown")
    for heading in re.findall(r"^#{2,3} .+$", WALKTHROUGH.read_text(encoding="utf-8"), flags=re.M):
        assert heading in markdown, heading


SIDE_ROAD = re.compile(r"^(#{2,6}) Side road: ")
HEADING = re.compile(r"^(#{1,6}) ")


def side_road_lines(text):
    """1-based line numbers inside the sections whose heading starts with 'Side road:'
    (a section ends at the next heading of the same or a higher level)."""
    inside, level, in_code = set(), None, False
    for n, line in enumerate(text.split("\n"), start=1):
        if FENCE.match(line):
            in_code = not in_code
        heading = None if in_code else HEADING.match(line)
        if heading and level is not None and len(heading.group(1)) <= level:
            level = None
        if heading and SIDE_ROAD.match(line):
            level = len(heading.group(1))
        if level is not None:
            inside.add(n)
    return inside


def _names(code):
    """(names a block defines, names it reads) at any depth, by its syntax tree."""
    import ast
    import builtins
    tree = ast.parse(code)
    defined, used = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (defined if isinstance(node.ctx, (ast.Store, ast.Del)) else used).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, ast.arg):
            defined.add(node.arg)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            defined.update((a.asname or a.name).split(".")[0] for a in node.names)
    return defined, used - set(dir(builtins))


def test_core_path_does_not_need_the_side_roads():
    """A reader who skips every 'Side road' section and every optional exercise can run the rest:
    no block outside them reads a name that only a skipped block defines."""
    skip = optional_lines(WALKTHROUGH.read_text(encoding="utf-8"))
    assert len({b.line for b in BLOCKS if b.line in skip and b.lang == "python"}) >= 8, "side roads lost their code"
    core_names, skipped_only, problems = set(), set(), []
    for block in (b for b in BLOCKS if b.lang == "python"):
        defined, used = _names(block.code)
        if block.line in skip:
            skipped_only |= defined - core_names
            continue
        missing = (used - defined - core_names) & skipped_only
        if missing:
            problems.append(f"block at line {block.line} uses {sorted(missing)}, defined only in a side road "
                            f"or an optional exercise")
        core_names |= defined
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------------------
# How long it takes: the minutes of every step, recounted
# --------------------------------------------------------------------------------------

def test_reading_time_counts_what_is_on_the_page():
    """docs/reading_time.py on a small text whose counts are known by hand."""
    rt = _load_docs_module("reading_time")
    sample = "\n".join([
        "# Title", "", "Intro words here.", "", "## Contents", "",
        "- [Introduction](#title) — 1 min", "1. [Step 1: A](#step-1-a) — 7 min",
        "   (side road: [fast](#side-road-fast), 5 min)", "",
        "Core path: 12 minutes, of which 6 for the required exercises; the side roads add 5 minutes,",
        "and the optional exercises 5.", "",
        "## Step 1: A", "", "Two `x + y` words.", "", "```python", "print(1)", "```", "", "```text", "1", "```", "",
        "```text", "d = 2 a", "c = 3", "```", "", "![a figure](f.png)", "",
        "**Exercise 1.1 (required) — do it.** Now.", "", "<details><summary>A solution</summary>", "",
        "```python", "a = 1", "b = 2", "```", "", "</details>", "",
        "**Exercise 1.2 (optional).** Later.", "", "<details><summary>Hint</summary>", "", "</details>", "",
        "### Side road: fast", "", "word " * 400, ""])
    units = rt.units(sample)
    assert [u.title for u in units] == ["Introduction", "Step 1: A", "Side road: fast"]
    step = units[1]
    t = step.tally
    # words: the heading (4), "Two `x + y` words." (5, 3 of them in a code span), the figure's
    # markup (2), the exercise's first line (7) and "A solution" (2); the optional one is apart
    assert (t.words, t.formula_words, t.code_lines, t.output_lines, t.derivation_lines, t.figures) == \
        (20, 3, 3, 1, 2, 1)
    assert step.required_exercises == [("1.1", 5.0)]             # 2 solution lines * 1.5 < 5: the minimum
    assert step.optional.words == 4 + 1 and step.optional.exercise_minutes == 5.0
    assert units[2].side_road and units[2].tally.words == 4 + 400          # its heading, and the words
    expected = 20 / 100 + 3 / 30 + 2 / 1 + 3 / 4 + 1 / 20 + 1 + 5
    assert abs(step.minutes - expected) < 1e-9
    assert rt.problems(sample) == [], rt.problems(sample)        # 7 stated, 9.1 counted: within 3 minutes
    drifted = sample.replace("— 7 min", "— 20 min")
    assert any("Step 1: A" in p for p in rt.problems(drifted))
    with pytest.raises(ValueError, match="required.*optional"):
        rt.units(sample.replace("(optional).** Later", "**  Later").replace("**Exercise 1.2 ", "**Exercise 1.2"))


def test_stated_minutes_match_the_count():
    """Every step's minutes in the contents, and the totals, are what docs/reading_time.py counts
    (within 3 minutes or 10% a step)."""
    rt = _load_docs_module("reading_time")
    problems = rt.problems(WALKTHROUGH.read_text(encoding="utf-8"))
    assert not problems, ("walkthrough.md states minutes that drift from the count (python docs/reading_time.py "
                          "prints the table):\n  " + "\n  ".join(problems))


def plan_minutes(teaching_text):
    """{name: minutes} from the lesson plan's table in docs/teaching.md ('Step 3 (130)'), and the
    plan's stated total."""
    rt = _load_docs_module("reading_time")
    plan = teaching_text.split("## Lesson plan", 1)[1].split("\n## ", 1)[0]
    entries = {}
    for line in plan.split("\n"):
        if line.startswith("| ") and not line.startswith("| ---") and not line.startswith("| meeting"):
            for name, minutes in rt.PLAN_ENTRY.findall(line.split("|")[2]):
                assert name not in entries, f"docs/teaching.md plans {name} twice"
                entries[name] = int(minutes)
    total = re.search(r"(\d+)\s+minutes\s+of\s+reading,\s+running\s+and\s+required\s+exercises", plan)
    return entries, int(total.group(1)) if total else None


def test_teaching_plan_matches_the_walkthrough():
    """docs/teaching.md's lesson plan gives every unit of the core path once, with the minutes the
    walkthrough states, and the same total."""
    rt = _load_docs_module("reading_time")
    text = WALKTHROUGH.read_text(encoding="utf-8")
    stated, totals = rt.stated_minutes(text)
    wanted = {rt.plan_name(unit): stated[unit.anchor] for unit in rt.units(text) if not unit.side_road}
    planned, total = plan_minutes((REPO / "docs" / "teaching.md").read_text(encoding="utf-8"))
    assert planned == wanted, f"docs/teaching.md plans {planned}, the walkthrough states {wanted}"
    assert total == totals[0], f"docs/teaching.md's total is {total} minutes, the walkthrough's {totals[0]}"
    teaching = (REPO / "docs" / "teaching.md").read_text(encoding="utf-8")
    assert rt.update_plan(teaching, text) == teaching          # what --update would write changes nothing
