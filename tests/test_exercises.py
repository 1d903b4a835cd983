"""The exercises' checker: stubs are "not written yet", the solutions pass, feedback a student can act
on, honesty, time limits, seeds, and every line within 80 columns.

The class of wrong and right solutions is in test_student_solutions.py; grading (JSON,
Gradescope, rubric, hidden seeds) in test_grading.py; the capstone in test_capstone.py.
"""

import json
import re
import shutil
import time
import types

import numpy as np
import pytest

from tinyconvmixer.engine import ops
from tinyconvmixer.exercises import EXERCISES, calls, find, forms, honesty
from tinyconvmixer.exercises.__main__ import main
from tinyconvmixer.exercises.checker import SOLUTIONS, STUBS, check_exercise
from tinyconvmixer.gradcheck import parity


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    monkeypatch.setenv("TINYCONVMIXER_THREADS", "1")


def _solution_with(tmp_path, name, right, wrong):
    """The reference solution of `name` with one change, in tmp_path; returns (exercise, path)."""
    exercise = find(name)
    text = (SOLUTIONS / exercise.file).read_text()
    assert right in text, right
    (tmp_path / exercise.file).write_text(text.replace(right, wrong))
    return exercise, tmp_path / exercise.file


def _file(tmp_path, name, code):
    exercise = find(name)
    (tmp_path / exercise.file).write_text(code)
    return exercise, tmp_path / exercise.file


def test_untouched_stubs_fail_with_not_written_yet(tmp_path, capsys):
    folder = tmp_path / "mine"
    assert main(["new", str(folder)]) == 0
    assert sorted(p.name for p in folder.iterdir()) == sorted(e.file for e in EXERCISES)
    capsys.readouterr()
    assert main(["check", "--dir", str(folder), "--seed", "1"]) == 1
    out = capsys.readouterr().out
    for e in EXERCISES:
        assert re.search(rf"^{e.number} {e.name}\s+not written yet: \w+: not written yet", out, re.M), e.name
    assert f"{len(EXERCISES)} not written yet" in out and "0 of 100 points" in out


def test_solutions_pass(capsys):
    assert main(["check", "--solutions", "--seed", "5"]) == 0
    out = capsys.readouterr().out
    assert out.count(" PASS: ") == len(EXERCISES) and f"{len(EXERCISES)} PASS" in out
    assert "100 of 100 points" in out and out.startswith("seed 5 (to repeat this run: --seed 5)")
    if parity.load_torch() is not None:
        assert "beside PyTorch" in out


def test_a_fresh_seed_is_printed_and_repeats_the_run(capsys):
    assert main(["check", "sum_mean", "--solutions"]) == 0
    first = capsys.readouterr().out
    seed = int(re.match(r"seed (\d+) \(to repeat this run: --seed \1\)", first).group(1))
    assert main(["check", "sum_mean", "--solutions", "--json", "--seed", str(seed)]) == 0
    again = json.loads(capsys.readouterr().out)
    assert main(["check", "sum_mean", "--solutions", "--json", "--seed", str(seed)]) == 0
    assert json.loads(capsys.readouterr().out)["exercises"] == again["exercises"]
    assert main(["check", "sum_mean", "--solutions", "--json", "--seed", str(seed + 1)]) == 0
    other = json.loads(capsys.readouterr().out)
    cases = lambda r: [line["case"] for line in r["exercises"][0]["lines"]]   # noqa: E731
    assert cases(other) != cases(again)                 # other random forms, from another seed


def test_calls_cover_every_form_the_engine_uses():
    """keepdims with mean, every kind of axis, prepended size-1 axes, square shapes, channels-last."""
    rng = np.random.default_rng(0)
    labels = [c.label for c in forms.draw("sum_mean", rng)]
    for form in ("axis=None, keepdims=True", "axis=None, keepdims=False", "axis=-1", "axis=(2, 0), keepdims=True",
                 "axis=(-1, 0)", "shape=(3, 3), axis=1"):
        assert any(form in label and label.startswith("mean_backward") for label in labels), form
    labels = [c.label for c in forms.draw("unbroadcast", rng)]
    for form in ("grad (1, 3, 4), shape=(1, 4)", "grad (3, 4), shape=()", "grad (2, 3, 4), shape=(3, 1)"):
        assert any(form in label for label in labels), form
    labels = [c.label for c in forms.draw("batchnorm", rng)]
    assert any("channels-last" in label for label in labels) and any("weight None" in label for label in labels)
    assert any(label.startswith("batchnorm_backward(g (6, 3)") for label in labels)
    assert all(forms.draw(name, rng)[-1].float32 for name in forms.DRAW)


def test_feedback_names_the_worst_element_its_inputs_and_both_values(tmp_path):
    exercise, path = _solution_with(tmp_path, "gelu_slope", "normal_cdf(x) + x * pdf", "normal_cdf(x)")
    outcome = check_exercise(exercise, path, np, seed=3)
    line = next(line for line in outcome.failing if line.kind == "call")
    m = re.fullmatch(r"the slope\[(\d+), (\d+)\] \(x = (\S+)\): expected (\S+), yours (\S+); (\d+) of 12 values "
                     r"differ", line.message)
    assert m, line.message
    x, expected, yours = (float(v) for v in m.group(3, 4, 5))
    phi = np.exp(-x * x / 2) / np.sqrt(2 * np.pi)
    assert abs(expected - yours - x * phi) < 1e-5              # exactly the missing x phi(x)


def test_an_error_is_traced_to_the_output_that_is_wrong(tmp_path):
    """BatchNorm without its variance term: dx fails, dweight and dbias are named right."""
    exercise, path = _solution_with(tmp_path, "batchnorm", " - through_var", "")
    outcome = check_exercise(exercise, path, np, seed=3)
    calls_failing = {line.part for line in outcome.failing if line.kind == "call"}
    assert calls_failing == {"dx"}
    from tinyconvmixer.exercises.checker import failure_lines
    assert any("(dweight, dbias: right)" in text for text in failure_lines(outcome))


def test_a_write_into_g_is_named_in_the_engine_too(tmp_path):
    """Through the engine (log_softmax(x) + c: both are handed the same g), the write is named."""
    exercise, path = _solution_with(tmp_path, "log_softmax", "return g - xp.exp(y) * g.sum(axis=axis, keepdims=True)",
                                    "g -= xp.exp(y) * g.sum(axis=axis, keepdims=True)\n    return g")
    outcome = check_exercise(exercise, path, np, seed=3)
    engine = [line for line in outcome.failing if line.kind == "gradcheck"]
    assert engine and all("log_softmax_backward writes into one of the arrays it was given" in line.message
                          and "line 9 of ex08_log_softmax.py" in line.message for line in engine)
    assert all("writes into g, an input" in line.message for line in outcome.failing if line.kind == "call")


def test_scale_hints_only_where_they_mean_something():
    e = np.array([[0.5, -1.0], [2.0, 0.25]])
    assert "a factor 1/6 missing" in calls._scale_hint(6 * e, e)
    assert "1/4 of the expected" in calls._scale_hint(e / 4, e)
    assert "minus the expected" in calls._scale_hint(-e, e)
    assert calls._scale_hint(e + 0.1, e) == ""                  # not one factor
    assert calls._scale_hint(e, 1e-9 * e) == ""                 # the expected values are about zero
    assert calls._scale_hint(1e-5 * e, e) == ""                 # a factor of 1e-5 means nothing


def test_an_endless_loop_is_stopped_and_the_rest_skipped(tmp_path):
    exercise, path = _file(tmp_path, "matmul", "def matmul_backward(a, b, g):\n    while True:\n        pass\n")
    start = time.monotonic()
    outcome = check_exercise(exercise, path, np, seed=1, timeout=1.0)
    assert time.monotonic() - start < 30
    statuses = [line.status for line in outcome.lines]
    assert statuses[:2] == ["TIMEOUT", "TIMEOUT"] and set(statuses[2:]) == {"ERROR"}
    assert "timed out after 1 s and was stopped: an endless loop?" in outcome.lines[0].message
    assert "not run: 2 checks of this exercise timed out already" in outcome.lines[2].message


def test_a_loop_while_loading_and_a_process_that_ends(tmp_path):
    exercise, path = _file(tmp_path, "matmul", "while True:\n    pass\n")
    outcome = check_exercise(exercise, path, np, seed=1, timeout=1.0)
    assert outcome.status == "does not load" and "timed out after 1 s while loading" in outcome.message
    exercise, path = _file(tmp_path, "matmul", "import os\n\ndef matmul_backward(a, b, g):\n    os._exit(3)\n")
    outcome = check_exercise(exercise, path, np, seed=1, timeout=5.0)
    assert outcome.status == "FAIL"
    assert "the process exited with code 3" in outcome.lines[0].message
    exercise, path = _file(tmp_path, "col2im", "import ctypes\n\ndef col2im(cols, padded_shape, stride):\n"
                                               "    return ctypes.string_at(0)\n")
    outcome = check_exercise(exercise, path, np, seed=1, timeout=5.0)
    assert outcome.status == "FAIL" and "the process was killed by SIGSEGV" in outcome.lines[0].message


REFUSED = [
    "from tinyconvmixer.engine.ops import unbroadcast",
    "from tinyconvmixer.engine.ops import unbroadcast as mine\nunbroadcast = mine",
    "from tinyconvmixer.engine import ops\nunbroadcast = ops.unbroadcast",
    "import tinyconvmixer.engine.ops as o\ndef unbroadcast(grad, shape):\n    return o.unbroadcast(grad, shape)",
    "import tinyconvmixer\ndef unbroadcast(grad, shape):\n    return tinyconvmixer.engine.ops.unbroadcast(grad, shape)",
    "from tinyconvmixer import engine\nunbroadcast = engine.ops.unbroadcast",
    "from tinyconvmixer.exercises.solutions.ex01_unbroadcast import unbroadcast",
    "def unbroadcast(grad, shape):\n    return __import__('tinyconvmixer.engine.ops').engine.ops.unbroadcast(grad, shape)",
    "from importlib import import_module\nunbroadcast = import_module('tinyconvmixer.engine.ops').unbroadcast",
    "from tinyconvmixer.engine import backend\ndef unbroadcast(grad, shape):\n"
    "    return getattr(backend, '__spec__')",
    "from tinyconvmixer.functional.activation import normal_cdf\ndef unbroadcast(grad, shape):\n"
    "    return normal_cdf.__globals__['ops'].unbroadcast(grad, shape)",
    "import torch\ndef unbroadcast(grad, shape):\n    return grad",
]


@pytest.mark.parametrize("code", REFUSED)
def test_the_engines_own_answer_is_refused(code, tmp_path, capsys):
    (tmp_path / "ex01_unbroadcast.py").write_text(code + "\n")
    assert main(["check", "unbroadcast", "--dir", str(tmp_path), "--seed", "1"]) == 1
    out = capsys.readouterr().out
    assert re.search(r"^1 unbroadcast\s+refused: ex01_unbroadcast.py, line \d+: ", out, re.M), out
    assert "0 of 10 points" in out


def test_a_name_brought_in_any_other_way_is_refused_once_loaded(tmp_path):
    module = types.ModuleType("student")
    module.unbroadcast = ops.unbroadcast
    with pytest.raises(honesty.Refused, match="'unbroadcast' is tinyconvmixer.engine.ops.unbroadcast"):
        honesty.check_module(module, tmp_path / "ex01_unbroadcast.py")
    module.unbroadcast, module.o = (lambda grad, shape: grad), ops
    with pytest.raises(honesty.Refused, match="'o' is tinyconvmixer.engine.ops"):
        honesty.check_module(module, tmp_path / "ex01_unbroadcast.py")


def test_what_the_stubs_use_is_allowed(tmp_path):
    for e in EXERCISES:
        honesty.check_source(STUBS / e.file)
        honesty.check_source(SOLUTIONS / e.file)
    (tmp_path / "ex01_unbroadcast.py").write_text(
        "import tinyconvmixer.engine.backend as b\nfrom tinyconvmixer.engine.backend import get_array_module\n"
        "from tinyconvmixer.functional.activation import normal_cdf\n"
        '"""Docs may say tinyconvmixer.engine.ops; only code that fetches it is refused."""\n')
    honesty.check_source(tmp_path / "ex01_unbroadcast.py")


def test_bad_input_is_one_error_and_exit_2(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)                     # short paths: long ones are never broken
    assert main(["check", "--dir", str(tmp_path / "nowhere")]) == 2
    assert main(["check", "no_such_exercise", "--solutions"]) == 2
    assert main(["check", "11", "--solutions"]) == 2
    assert main(["check", "--solutions", "--seed", "-4"]) == 2
    assert main(["check", "--solutions", "--timeout", "0"]) == 2
    main(["new", "mine"])
    (tmp_path / "mine" / EXERCISES[5].file).unlink()
    capsys.readouterr()
    assert main(["check", "col2im", "--dir", "mine"]) == 2
    assert main(["list", "--dir", "nowhere"]) == 2
    err = capsys.readouterr().err
    errors = re.split(r"\n(?=error: )", err.strip())
    assert len(errors) == 2 and all(e.startswith("error: ") for e in errors)
    assert "mine/ex06_col2im.py is missing" in " ".join(errors[0].split()) and "no folder" in errors[1]
    assert all(len(line) <= 80 for line in err.splitlines())


def test_list_shows_progress_and_new_keeps_files(tmp_path, capsys):
    folder = tmp_path / "mine"
    main(["new", str(folder)])
    for e in EXERCISES[:2]:
        shutil.copyfile(SOLUTIONS / e.file, folder / e.file)
    (folder / EXERCISES[2].file).write_text("def sum_backward(:\n")             # a syntax error
    assert main(["new", str(folder)]) == 0                                       # keeps all three
    assert "kept your 9 existing files" in capsys.readouterr().out
    assert main(["list", "--dir", str(folder), "--seed", "2"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"1 unbroadcast\s+ex01_unbroadcast.py\s+Step 4\s+PASS", out)
    assert re.search(r"3 sum_mean .* does not load", out) and "not written yet" in out
    assert "2 of 9 pass" in out and "seed 2" in out
    assert main(["check", "3", "--dir", str(folder)]) == 1
    assert "line 1 of ex03_sum_mean.py: SyntaxError" in capsys.readouterr().out


def test_without_torch_the_comparisons_skip(monkeypatch, capsys):
    monkeypatch.setattr(parity, "load_torch", lambda: None)
    assert main(["check", "log_softmax", "cross_entropy", "--solutions", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    out = " ".join(out.split())
    assert out.count("beside PyTorch skipped (not installed)") == 2 and "PyTorch," not in out


def test_stubs_and_solutions_define_the_same_functions():
    for e in EXERCISES:
        for folder in (STUBS, SOLUTIONS):
            text = (folder / e.file).read_text()
            assert all(f"def {f}(" in text for f in e.functions), (folder, e.file)
        assert "not written yet" in (STUBS / e.file).read_text()
        assert "not written yet" not in (SOLUTIONS / e.file).read_text()
    assert len(EXERCISES) >= 8


def _demo(tmp_path):
    """A folder of solutions with mistakes whose messages are long."""
    folder = tmp_path / "demo"
    main(["new", str(folder), "--solutions"])
    for name, right, wrong in (("col2im", "+= cols", "= cols"), ("batchnorm", " - through_var", ""),
                               ("log_softmax", "return g - xp.exp(y)", "g -= xp.exp(y)"),
                               ("unbroadcast", ", keepdims=True)", ")")):
        path = folder / find(name).file
        path.write_text(path.read_text().replace(right, wrong))
    (folder / find("matmul").file).write_text("from tinyconvmixer.engine.ops import MatMul\n")
    return folder


@pytest.mark.parametrize("columns", [80, 132])
def test_every_line_fits_the_terminal(columns, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", str(columns))
    monkeypatch.chdir(tmp_path)
    folder = _demo(tmp_path).relative_to(tmp_path)
    capsys.readouterr()
    main(["new", "fresh"])
    main(["list", "--dir", "fresh", "--seed", "1"])    # stubs: the longest status, "not written yet"
    if columns == 80:                               # (list runs every check: once is enough)
        main(["list", "--dir", str(folder), "--seed", "1"])
    main(["check", "--dir", str(folder), "--seed", "1", "--all"])
    main(["check", "--dir", "nowhere"])
    main(["check", "--solutions", "--rubric", "none.json"])
    out, err = capsys.readouterr()
    lines = (out + err).splitlines()
    assert max(len(line) for line in lines) <= columns, max(lines, key=len)
    if columns > 80:
        assert max(len(line) for line in lines) > 80            # the room is used where there is some


def test_checks_on_the_gpu(device, tmp_path, capsys):
    """On the GPU the checks run in this process (CUDA does not survive fork), under an alarm;
    CuPy has no read-only arrays, so a write into an input is found by comparing it afterwards."""
    if device != "gpu":
        pytest.skip("the GPU half: the other tests run the CPU")
    assert main(["check", "unbroadcast", "batchnorm", "log_softmax", "--solutions", "--device", "gpu",
                 "--seed", "1"]) == 0
    assert "3 PASS" in capsys.readouterr().out
    exercise, path = _solution_with(tmp_path, "log_softmax", "return g - xp.exp(y) * g.sum(axis=axis, keepdims=True)",
                                    "g -= xp.exp(y) * g.sum(axis=axis, keepdims=True)\n    return g")
    from tinyconvmixer.engine import backend
    outcome = check_exercise(exercise, path, backend.xp_for("gpu"), seed=1)
    assert outcome.status == "FAIL"
    assert any("writes into g, an input" in line.message for line in outcome.failing if line.kind == "call")
