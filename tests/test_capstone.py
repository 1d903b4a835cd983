"""The capstone: the smoke training on the student's nine functions, beside the reference run.

A tiny version of it (16 channels, one block, 256 images, 8 steps): on the reference solutions
the two runs agree step by step, and the test accuracies too; a wrong function parts them
at the step after its first use in an update. (The real command trains one epoch of --smoke.)
"""

import re

import pytest

from tinyconvmixer.exercises import EXERCISES, capstone, find
from tinyconvmixer.exercises.__main__ import main
from tinyconvmixer.exercises.checker import SOLUTIONS

TINY = ["--hdim", "16", "--depth", "1", "--train-subset", "256", "--test-subset", "100", "--epochs", "2"]


@pytest.fixture(autouse=True)
def narrow(monkeypatch):
    monkeypatch.setenv("TINYCONVMIXER_THREADS", "1")
    monkeypatch.setenv("COLUMNS", "80")


def _table(out):
    return [(int(m[1]), float(m[2]), float(m[3])) for m in
            re.finditer(r"^\s+(\d+)\s+(\d+\.\d+)\s+(\d+\.\d+)\s+\S+", out, re.M)]


def test_the_reference_solutions_train_as_the_reference(capsys):
    assert main(["train", "--solutions"] + TINY) == 0
    out = capsys.readouterr().out
    rows = _table(out)
    assert [r[0] for r in rows] == list(range(1, 9))
    assert all(abs(a - b) <= capstone.AGREE for _, a, b in rows)
    ref, yours = re.search(r"test accuracy after 8 steps: reference (\S+)%, yours (\S+)%", out).groups()
    assert ref == yours
    assert "the first 8 steps agree to 1e-06" in out and "tinyconvmixer.fast off" in " ".join(out.split())
    calls = dict(re.findall(r"(\w+) (\d+)", out.split("calls of your functions in your run:")[1]))
    assert int(calls["batchnorm_backward"]) == 8 * 3 and int(calls["topological_order"]) == 8
    assert all(len(line) <= 80 for line in out.splitlines())


def test_a_wrong_function_parts_the_runs(tmp_path, capsys):
    main(["new", str(tmp_path), "--solutions"])
    path = tmp_path / find("batchnorm").file
    path.write_text(path.read_text().replace(" - through_var", ""))
    capsys.readouterr()
    assert main(["train", "--dir", str(tmp_path), "--only", "batchnorm"] + TINY) == 1
    out = capsys.readouterr().out
    rows = _table(out)
    assert rows[0][1] == rows[0][2]                     # the same forward pass: step 1 agrees
    assert abs(rows[1][1] - rows[1][2]) > capstone.AGREE  # the first update differs
    assert re.search(r"^\s+2\s.*<- the runs part here$", out, re.M)
    assert "the runs part at step 2" in out and "plugged in: your batchnorm" in out


def test_what_the_capstone_refuses(tmp_path, capsys):
    assert main(["train", "--solutions", "--only", "nope"] + TINY) == 2
    main(["new", str(tmp_path)])
    for e in EXERCISES[:8]:
        (tmp_path / e.file).write_text((SOLUTIONS / e.file).read_text())
    capsys.readouterr()
    assert main(["train", "--dir", str(tmp_path), "--steps", "2"] + TINY) == 1       # ex09 is still a stub
    assert "cross_entropy_backward: not written yet" in " ".join(capsys.readouterr().out.split())
    (tmp_path / EXERCISES[1].file).write_text("from tinyconvmixer.engine.ops import MatMul\n")
    assert main(["train", "--dir", str(tmp_path), "--only", "matmul"] + TINY) == 2
    assert "imports MatMul from tinyconvmixer.engine.ops" in " ".join(capsys.readouterr().err.split())
    assert main(["train", "--solutions", "--hdim", "0"]) == 2


def test_parting():
    assert capstone.parting([2.3, 2.2, 2.1], [2.3, 2.2, 2.1]) is None
    assert capstone.parting([2.3, 2.2, 2.1], [2.3, 2.2 + 1e-5, 2.1]) == 2
    assert capstone.parting([2.3, 2.2], [2.3, float("nan")]) == 2
    assert capstone.parting([1.0] * 20, [1.0] * 12 + [1.1] * 8) is None   # past the compared steps: accuracy
