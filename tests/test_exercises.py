"""The exercises: stubs fail with "not written yet", the solutions pass, and a solution with a
planted mistake fails with a message that points at the wrong part."""

import re
import shutil

import pytest

from tinyconvmixer.gradcheck import parity
from tinyconvmixer.exercises import EXERCISES, find
from tinyconvmixer.exercises.__main__ import main
from tinyconvmixer.exercises.checker import SOLUTIONS, STUBS

BREADTH_FIRST = '''
def topological_order(root):
    order, seen, queue = [], {id(root)}, [root]
    while queue:
        t = queue.pop(0)
        order.append(t)
        if t._fn is not None:
            for parent, need in zip(t._fn.inputs, t._fn.needs_grad):
                if need and id(parent) not in seen:
                    seen.add(id(parent))
                    queue.append(parent)
    return order
'''

UNBROADCAST_AXES_TOO_EARLY = '''
def unbroadcast(grad, shape):
    extra = grad.ndim - len(shape)
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)   # counted too early
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad
'''

# exercise -> (text in the solution, the mistake, what the output must show, what it must not);
# a key "name:what" is a second mistake in the same exercise. Text None: the mistake replaces the
# solution's functions. The ": ..." ones were found by a student trial that the first cases let pass.
MISTAKES = {
    "unbroadcast": ("grad.sum(axis=stretched, keepdims=True)", "grad.sum(axis=stretched)",
                    [r"unbroadcast returned the gradient \(grad \(3, 4\), shape=\(3, 1\)\) of shape \(3,\); "
                     r"it must be \(3, 1\)"], [r"gradcheck add broadcast"]),
    "matmul": ("ga = g @ b.T", "ga = g @ b  ",
               [r"matmul square\s+a\s+max error", r"of ex02_matmul.py \(ga = g @ b"], [r"matmul square\s+b\s"]),
    "sum_mean": ("keepdims) / n", "keepdims)",
                 [r"mean axis=-1\s+x\s+max error"], [r"sum all", r"sum axis=\(0, 2\) keepdims"]),
    "topological_order": (None, BREADTH_FIRST,
                          [r"topological_order puts the \w+ output .* before the \w+ output .*which uses it"], []),
    "gelu_slope": ("normal_cdf(x) + x * pdf", "normal_cdf(x)", [r"gelu exact\s+x\s+max error"], []),
    "col2im": ("+= cols", "= cols", [r"gradcheck conv2d\s+x\s+max error"],
               [r"patch k=2 stride=2", r"pointwise 1x1", r"conv2d\s+weight"]),
    "batchnorm": (" - through_var", "",
                  [r"batch_norm train\s+x\s+max error"], [r"batch_norm train\s+(weight|bias)"]),
    "log_softmax": ("xp.exp(y) * g.sum(axis=axis, keepdims=True)", "xp.exp(y)",
                    [r"gradcheck log_softmax\s+x\s+max error"], []),
    "cross_entropy": ("dz * (g / N)", "dz * g", [r"gradcheck cross_entropy\s+logits\s+max error",
                                                 r"yours is 6 x the expected everywhere"], []),
    "unbroadcast:axes counted before the prepended ones go": (
        None, UNBROADCAST_AXES_TOO_EARLY,
        [r"add \(1, 4\) \+ \(1, 3, 4\).*of shape \(3, 4\); it must be \(1, 4\)"], []),
    "col2im:the row stride used for the columns": (
        "j + sw * (Wo - 1) + 1, sw)", "j + sh * (Wo - 1) + 1, sh)",
        [r"conv2d stride=\(1, 2\) k=3\s+x\s+max error"], [r"gradcheck conv2d\s+x\s"]),
    "topological_order:constants followed too": (
        "                if need:\n                    visit(parent)", "                visit(parent)",
        [r"needs no gradient \(a constant\): follow only the inputs whose needs_grad is True"], []),
}


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    monkeypatch.setenv("TINYCONVMIXER_THREADS", "1")


def test_untouched_stubs_fail_with_not_written_yet(tmp_path, capsys):
    folder = tmp_path / "mine"
    assert main(["new", str(folder)]) == 0
    assert sorted(p.name for p in folder.iterdir()) == sorted(e.file for e in EXERCISES)
    capsys.readouterr()
    assert main(["check", "--dir", str(folder)]) == 1
    out = capsys.readouterr().out
    for e in EXERCISES:
        assert re.search(rf"^{e.number} {e.name}\s+not written yet: \w+: not written yet", out, re.M), e.name
    assert f"{len(EXERCISES)} not written yet" in out


def test_solutions_pass(capsys):
    assert main(["check", "--solutions"]) == 0
    out = capsys.readouterr().out
    assert out.count(" PASS: ") == len(EXERCISES) and f"{len(EXERCISES)} PASS" in out
    assert "PyTorch comparison" in out


@pytest.mark.parametrize("name", list(MISTAKES))
def test_a_planted_mistake_fails_and_points_at_it(name, tmp_path, capsys):
    right, wrong, shown, not_shown = MISTAKES[name]
    name = name.split(":")[0]
    exercise = find(name)
    text = (SOLUTIONS / exercise.file).read_text()
    if right is None:
        text = text[:text.index("\ndef ") + 1] + wrong.lstrip()
    else:
        assert right in text
        text = text.replace(right, wrong)
    (tmp_path / exercise.file).write_text(text)
    assert main(["check", name, "--dir", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert re.search(rf"^{exercise.number} {name}\s+FAIL: \d+ of \d+ checks fail", out, re.M), out
    for pattern in shown:
        assert re.search(pattern, out), (pattern, out)
    for pattern in not_shown:
        assert not re.search(pattern, out), (pattern, out)


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["check", "--dir", str(tmp_path / "nowhere")]) == 2
    assert main(["check", "no_such_exercise", "--solutions"]) == 2
    assert main(["check", "11", "--solutions"]) == 2
    main(["new", str(tmp_path / "mine")])
    (tmp_path / "mine" / EXERCISES[5].file).unlink()
    capsys.readouterr()
    assert main(["check", "col2im", "--dir", str(tmp_path / "mine")]) == 2
    assert main(["list", "--dir", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip().split("\n")
    assert len(err) == 2 and all(line.startswith("error: ") for line in err)
    assert "ex06_col2im.py is missing" in err[0] and "no folder" in err[1]


def test_list_shows_progress_and_new_keeps_files(tmp_path, capsys):
    folder = tmp_path / "mine"
    main(["new", str(folder)])
    for e in EXERCISES[:2]:
        shutil.copyfile(SOLUTIONS / e.file, folder / e.file)
    (folder / EXERCISES[2].file).write_text("def sum_backward(:\n")             # a syntax error
    assert main(["new", str(folder)]) == 0                                       # keeps all three
    assert "kept your 9 existing files" in capsys.readouterr().out
    assert main(["list", "--dir", str(folder)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"1 unbroadcast\s+ex01_unbroadcast.py\s+Step 4\s+PASS", out)
    assert re.search(r"3 sum_mean .* does not load", out) and "not written yet" in out
    assert "2 of 9 pass" in out
    assert main(["check", "3", "--dir", str(folder)]) == 1
    assert "line 1 of ex03_sum_mean.py: SyntaxError" in capsys.readouterr().out


def test_without_torch_the_comparisons_skip(monkeypatch, capsys):
    monkeypatch.setattr(parity, "load_torch", lambda: None)
    assert main(["check", "log_softmax", "cross_entropy", "--solutions"]) == 0
    out = capsys.readouterr().out
    assert out.count("skipped (no PyTorch)") == 2 and "0 PyTorch comparisons" in out


def test_stubs_and_solutions_define_the_same_functions():
    for e in EXERCISES:
        for folder in (STUBS, SOLUTIONS):
            text = (folder / e.file).read_text()
            assert all(f"def {f}(" in text for f in e.functions), (folder, e.file)
        assert "not written yet" in (STUBS / e.file).read_text()
        assert "not written yet" not in (SOLUTIONS / e.file).read_text()
    assert len(EXERCISES) >= 8
