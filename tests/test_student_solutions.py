"""A class's solutions, checked as a grader would: every wrong one fails and says why, every right one
passes; with PyTorch, and with PyTorch gone (a child Python in which `import torch` fails).

The set is tests/student_solutions.py: the ways students are wrong (issue 19's 42 kinds and
more, about eight per exercise, honesty and time-outs included) and right-but-unusual
solutions (einsum, Kahn's algorithm, np.add.at, a derivation node by node, ...). The message
must point at the mistake: each wrong solution names a pattern that its report must show.
"""

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from student_solutions import RIGHT, WRONG
from tinyconvmixer.exercises import find
from tinyconvmixer.exercises.checker import check_exercise, print_outcome
from tinyconvmixer.gradcheck import parity

SEED = 2024
TIMEOUT = 2.0                   # an endless loop: stopped after 2 s, twice, then the rest is not run
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    monkeypatch.setenv("TINYCONVMIXER_THREADS", "1")


def _write(tmp_path, name, code):
    exercise = find(name)
    (tmp_path / exercise.file).write_text(code)
    return exercise, tmp_path / exercise.file


def _report(outcome):
    """The report as printed, unwrapped (a wide terminal), for the patterns."""
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100000"
    try:
        import io
        out = io.StringIO()
        print_outcome(outcome, shown=10 ** 6, file=out)
        return out.getvalue()
    finally:
        if old is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = old


@pytest.mark.parametrize("name, what, code, pattern", WRONG, ids=[f"{w[0]}: {w[1]}" for w in WRONG])
def test_every_wrong_solution_fails_and_says_why(name, what, code, pattern, tmp_path):
    exercise, path = _write(tmp_path, name, code)
    outcome = check_exercise(exercise, path, np, SEED, timeout=TIMEOUT)
    report = _report(outcome)
    assert outcome.status in ("FAIL", "refused"), report
    assert re.search(pattern, report), f"the report does not point at the mistake ({pattern}):\n{report}"


@pytest.mark.parametrize("name, what, code", RIGHT, ids=[f"{r[0]}: {r[1]}" for r in RIGHT])
def test_every_right_solution_passes(name, what, code, tmp_path):
    exercise, path = _write(tmp_path, name, code)
    outcome = check_exercise(exercise, path, np, SEED, timeout=30)
    assert outcome.passed, _report(outcome)
    if parity.load_torch() is not None and exercise.parity:
        assert any(line.kind == "pytorch" and line.status == "PASS" for line in outcome.lines)


def test_the_set_is_a_class(capsys):
    """Enough of each: every exercise has wrong solutions (42 kinds at least) and right ones."""
    assert len(WRONG) >= 42 and len(RIGHT) >= 10
    for name in {w[0] for w in WRONG} | {r[0] for r in RIGHT}:
        assert sum(w[0] == name for w in WRONG) >= 5, name
    assert {w[0] for w in WRONG} == {r[0] for r in RIGHT}


# ----- without PyTorch: a child Python where `import torch` fails ------------------------------

BLOCK_TORCH = textwrap.dedent('''
    import importlib.abc, sys

    class NoTorch(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ImportError("PyTorch is hidden for this test")
            return None

    sys.meta_path.insert(0, NoTorch())
    sys.modules.pop("torch", None)
''')

RUN_SET = textwrap.dedent('''
    import json, sys, tempfile
    from pathlib import Path
    import numpy as np
    sys.path.insert(0, sys.argv[1])
    from student_solutions import RIGHT, WRONG
    from tinyconvmixer.exercises import find
    from tinyconvmixer.exercises.checker import check_exercise
    from tinyconvmixer.gradcheck import parity
    assert parity.load_torch() is None
    results = []
    for kind, items in (("wrong", WRONG), ("right", RIGHT)):
        for k, item in enumerate(items):
            exercise = find(item[0])
            folder = Path(tempfile.mkdtemp())
            (folder / exercise.file).write_text(item[2])
            timeout = float(sys.argv[3]) if kind == "wrong" else 30.0
            o = check_exercise(exercise, folder / exercise.file, np, int(sys.argv[2]), timeout=timeout)
            messages = [f"{l.case}\\n{l.message}" for l in o.failing] + [f"{o.status}: {o.message}"]
            results.append([kind, k, o.status, "\\n".join(messages),
                            sum(l.status == "SKIP" for l in o.lines)])
    print(json.dumps(results))
''')


def test_without_pytorch_every_wrong_one_fails_and_every_right_one_passes(tmp_path):
    script = tmp_path / "run_set.py"
    script.write_text(BLOCK_TORCH + RUN_SET)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "TINYCONVMIXER_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(script), str(REPO / "tests"), str(SEED), str(TIMEOUT)],
                          capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout)
    assert len(results) == len(WRONG) + len(RIGHT)
    for kind, k, status, messages, skipped in results:
        if kind == "wrong":
            name, what, _, pattern = WRONG[k]
            assert status in ("FAIL", "refused"), (name, what, messages)
            assert re.search(pattern.replace(r"\n\s+", r"\n"), messages), (name, what, pattern, messages)
        else:
            name, what, _ = RIGHT[k]
            assert status == "PASS", (name, what, messages)
            assert skipped == len(find(name).parity), (name, what)     # the PyTorch checks: skipped
