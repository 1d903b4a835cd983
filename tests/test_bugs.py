"""The planted-bug catalogue: each bug is caught by exactly the kinds of check it claims.

The checks run in 'random' mode (8 random directions per input instead of every
element): a wrong gradient shows in almost every direction, and the whole
catalogue then takes seconds instead of minutes. One thread: the shapes are tiny.
"""

import math
import re

import numpy as np
import pytest

from tinyconvmixer.engine import dispatch, ops
from tinyconvmixer.functional import im2col, normalization
from tinyconvmixer.gradcheck import bugs, main, parity
from tinyconvmixer.gradcheck import suite as checksuite

HAVE_TORCH = parity.load_torch() is not None
ALL = tuple(checksuite.KINDS)


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    monkeypatch.setenv("TINYCONVMIXER_THREADS", "1")


def test_stand_in_swaps_and_restores_even_on_error():
    def fake(cols, padded_shape, stride):
        return "fake"
    with pytest.raises(RuntimeError, match="inside"):
        with dispatch.stand_in((im2col.col2im, fake)):
            assert im2col.col2im(None, None, None) == "fake"
            raise RuntimeError("inside")
    assert dispatch.standing_in(im2col.col2im) is None
    with pytest.raises(TypeError, match="neither a Function class nor marked @replaceable"):
        with dispatch.stand_in((im2col.col2im, fake), (im2col.pad2d, fake)):   # pad2d: not replaceable
            pass
    assert dispatch.standing_in(im2col.col2im) is None      # the first stand-in was undone too


def test_every_bug_restores_the_engine():
    references = [ref for bug in bugs.BUGS for ref, _ in bug.swaps()]
    for bug in bugs.BUGS:
        with bug.plant():
            assert all(dispatch.standing_in(ref) is not None for ref, _ in bug.swaps())
    assert all(dispatch.standing_in(ref) is None for ref in references)


def test_catalogue_covers_the_lessons():
    """At least 10 bugs, and each lesson of the catalogue has an example."""
    assert len(bugs.BUGS) >= 10 and len(bugs.BY_NAME) == len(bugs.BUGS)
    caught = {b.name: set(b.caught_by) for b in bugs.BUGS}
    assert all(c <= set(ALL) and c for c in caught.values())
    assert any({"op"} <= c and "model" not in c for c in caught.values())       # per-op only
    assert any("model" in c and not {"op", "ones"} & c for c in caught.values())  # model only
    assert any("op" in c and "ones" not in c for c in caught.values())          # random u only
    assert any(c == {"parity"} for c in caught.values())                          # no gradient check
    assert any(c == {"optim"} for c in caught.values())
    for bug in bugs.BUGS:
        assert bug.summary and len(bug.name) + len(bug.summary) < 110 and bug.where and bug.explanation


def test_no_bug_no_failure(xp):
    """The baseline: without a bug, every kind passes (else 'caught' would mean nothing)."""
    for kind in ALL:
        rows = checksuite.run_kind(kind, xp, mode="random")
        assert checksuite.verdict(rows) == ("missed" if HAVE_TORCH or kind == "optim" else "skipped"), \
            [r for r in rows if r.failed]


@pytest.mark.parametrize("bug", bugs.BUGS, ids=[b.name for b in bugs.BUGS])
def test_bug_is_caught_by_exactly_the_kinds_it_claims(bug, xp):
    """On the CPU every kind runs: the claimed ones catch the bug, the others miss it. On the
    GPU the claimed kinds alone: that the others miss it is the checks' design, the same on
    every device (and on the stand-in every kind of every bug took two minutes of CI)."""
    kinds = ALL if xp is np else tuple(k for k in ALL if k in bug.caught_by)
    by_kind = checksuite.run_planted(bug, kinds, xp, None, "random", 0)
    measured = {kind: checksuite.verdict(rows) for kind, rows in by_kind.items()}
    expected = {kind: "caught" if kind in bug.caught_by else "missed" for kind in kinds}
    if not HAVE_TORCH and "parity" in kinds:
        expected["parity"] = "skipped"
        if bug.caught_by == ("optim",):
            expected["optim"] = "caught"              # the decay check needs no PyTorch
    assert measured == expected, {k: sorted({r.check for r in rows if r.failed}) for k, rows in by_kind.items()}


def test_bug_lives_in_the_path_it_names(xp):
    """Paths: col2im-overwrite breaks only im2col convolutions with overlapping windows; the
    BatchNorm bugs reach both BatchNorm paths (plain and channels-last rows)."""
    with bugs.BY_NAME["col2im-overwrite"].plant():
        failing = {r.check for r in checksuite.run_kind("op", xp, op="conv2d", mode="random") if r.failed}
    assert "conv2d" in failing and "conv2d depthwise x2 multiplier" in failing       # im2col, k > stride
    assert not failing & {"conv2d patch k=2 stride=2", "conv2d pointwise 1x1",       # no overlap
                          "conv2d depthwise same", "conv2d depthwise stride=2"}     # the depthwise path
    with bugs.BY_NAME["bn-no-var-path"].plant():
        failing = {r.check for r in checksuite.run_kind("op", xp, op="batch_norm", mode="random") if r.failed}
    assert {"batch_norm train", "batch_norm train channels-last", "batch_norm train (N, C)"} <= failing
    assert not failing & {"batch_norm eval", "batch_norm eval channels-last"}


def test_mystery_draws_every_bug_and_reveal_names_it(capsys):
    n = len(bugs.BUGS)
    for start in (0, n, 5 * n):                 # every run of n consecutive seeds deals each bug once
        assert sorted(bugs.mystery(seed).name for seed in range(start, start + n)) == sorted(bugs.BY_NAME)
    assert [bugs.mystery(s).name for s in range(n)] != [b.name for b in bugs.BUGS]   # not in order
    assert main(["--reveal", "5"]) == 0
    assert bugs.mystery(5).name in capsys.readouterr().out


def test_command_inject_mystery_and_errors(capsys):
    assert main(["--list-bugs"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert all(b.name in out and b.summary in out for b in bugs.BUGS)
    assert main(["--inject", "col2im-overwrite", "--mode", "random", "--kind", "op,model"]) == 0
    out = capsys.readouterr().out
    assert "every kind that ran did what the catalogue says" in out and "conv2d" in out
    assert main(["--inject", "no-such-bug"]) == 2
    assert "no bug named 'no-such-bug'" in capsys.readouterr().err
    assert main(["--kind", "nope"]) == 2
    assert main(["--mystery", "-1"]) == 2 and main(["--reveal", "-3"]) == 2
    seed = next(s for s in range(100) if bugs.mystery(s).name == "ce-no-softmax")
    assert main(["--mystery", str(seed), "--mode", "random", "--kind", "op"]) == 1
    out = capsys.readouterr().out
    assert "cross_entropy" in out and "ce-no-softmax" not in out and "softmax term" not in out
    assert dispatch.standing_in(ops.unbroadcast) is None     # nothing left planted


def test_inject_reports_a_wrong_expectation(capsys, monkeypatch):
    """If a bug stopped being caught where the catalogue says, --inject exits 1."""
    bug = bugs.BY_NAME["sub-sign"]
    monkeypatch.setitem(bugs.BY_NAME, "sub-sign", bugs.Bug(**{**bug.__dict__, "caught_by": ("model",)}))
    assert main(["--inject", "sub-sign", "--mode", "random", "--kind", "op,model"]) == 1
    assert "NOT as the catalogue says" in capsys.readouterr().out


def test_parity_skips_cleanly_without_torch(capsys, monkeypatch):
    monkeypatch.setattr(parity, "load_torch", lambda: None)
    rows = checksuite.run_kind("parity", np)
    assert rows and all(r.status == "SKIP" for r in rows) and checksuite.verdict(rows) == "skipped"
    assert main(["--kind", "parity,optim"]) == 0
    out = capsys.readouterr().out
    assert "PyTorch is not installed" in out and "FAIL" not in out
    assert main(["--inject", "gelu-tanh-for-exact", "--mode", "random", "--kind", "op,parity"]) == 0
    assert "not run here: parity (PyTorch is not installed)" in capsys.readouterr().out


def test_list_honours_op_and_kind(capsys):
    assert main(["--list", "--op", "batch_norm"]) == 0
    listed = capsys.readouterr().out.split("\n")
    assert "batch_norm train" in listed and not any("conv2d" in n for n in listed)
    assert main(["--list", "--kind", "parity", "--op", "gelu"]) == 0
    assert capsys.readouterr().out.split() == ["parity", "gelu", "exact", "parity", "gelu", "tanh"]


def test_long_check_names_keep_the_columns_aligned(capsys, monkeypatch):
    rows = [checksuite.Row("op", "a check name much longer than thirty-four characters", "x",
                           1e-10, 1e-10, (0, 1), "PASS"),
            checksuite.Row("op", "short", "weight", 2e-10, 3e-10, (1,), "PASS")]
    monkeypatch.setenv("COLUMNS", "200")
    checksuite.print_table(rows)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    assert len({line.index("e-10") for line in lines[1:]}) == 1                 # numbers line up
    assert len({line.rindex("PASS") for line in lines[1:]}) == 1
    assert lines[0].index("result") == lines[1].rindex("PASS")
    monkeypatch.setenv("COLUMNS", "80")                                         # narrow: the name wraps
    checksuite.print_table(rows + [checksuite.Row("op", "short", "x", math.inf, math.inf, None, "FAIL",
                                                  "its gradient has shape (3, 4), the input (4,)")])
    lines = capsys.readouterr().out.splitlines()
    assert max(map(len, lines)) <= 80 and "max rel err" not in lines[0]
    assert lines[-1].strip() == "its gradient has shape (3, 4), the input (4,)"   # a note: under its row
    assert len({line.rindex("PASS") for line in lines if "PASS" in line}) == 1


@pytest.mark.parametrize("columns", [80, 120])
def test_the_game_fits_the_terminal(columns, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", str(columns))
    assert main(["--list-bugs"]) == 0
    for seed in range(len(bugs.BUGS)):
        main(["--reveal", str(seed)])
    for name in ("bn-no-var-path", "broadcast-not-summed"):
        main(["--inject", name, "--kind", "op,model"])
    main(["--mystery", "9", "--kind", "op"])
    lines = capsys.readouterr().out.splitlines()
    assert max(map(len, lines)) <= columns, max(lines, key=len)
    if columns > 80:
        assert max(map(len, lines)) > 80


def test_the_mystery_table_is_not_injects(capsys):
    """--mystery draws its checks' inputs from its own seed: its numbers are not --inject's, so a
    byte-by-byte comparison with the 17 --inject tables names nothing; the game stays a game."""
    seed = next(s for s in range(100) if bugs.mystery(s).name == "bn-weight-grad-centred")
    main(["--mystery", str(seed), "--kind", "op"])
    mystery = capsys.readouterr().out
    main(["--inject", "bn-weight-grad-centred", "--kind", "op"])
    inject = capsys.readouterr().out
    numbers = lambda out: re.findall(r"\d\.\d\de[+-]\d\d", out)     # noqa: E731
    assert numbers(mystery) and numbers(inject) and not set(numbers(mystery)) & set(numbers(inject))
    checks = lambda out: sorted(set(re.findall(r"^op\s+(batch_norm[^\n]*?)\s{2}", out, re.M)))   # noqa: E731
    assert checks(mystery) == checks(inject)                # the same checks fail: that is the clue
    main(["--mystery", str(seed), "--kind", "op"])
    assert capsys.readouterr().out == mystery               # and the same seed repeats the same table
    assert checksuite.mystery_check_seed(seed) != checksuite.mystery_check_seed(seed + 1)


def test_a_planted_bug_takes_the_place_of_the_gpu_kernels(monkeypatch, rng):
    """On a GPU, BatchNorm runs cuda/batchnorm.cu and AdamW cuda/adamw.cu. The emulator runs those
    kernels on the CPU: while a bug is planted, the kernels step aside and the bug runs instead
    (and the checks see it)."""
    import cuda_emulator as emulate
    from tinyconvmixer import Tensor
    from tinyconvmixer import functional as F
    from tinyconvmixer import optim
    from tinyconvmixer.fast.cuda import adamw as cuda_adamw, batchnorm as cuda_bn
    from tinyconvmixer.gradcheck import gradcheck
    if not emulate.available():
        pytest.skip("no C++20 compiler for the CUDA emulator")
    fused = []
    step = cuda_adamw.adamw_step
    monkeypatch.setattr(cuda_adamw, "adamw_step", lambda entries: (fused.append(1), step(entries))[1])
    with emulate.emulated():
        x = Tensor(rng.standard_normal((6, 3)), requires_grad=True)
        w = rng.standard_normal(3)
        assert dispatch.pick(normalization.BatchNorm, x.data, w, training=True) is cuda_bn.BatchNormKernels
        fn = lambda x: F.batch_norm(x, None, None, w, None, training=True)   # noqa: E731
        assert gradcheck(fn, [x], mode="random", n_directions=2).passed
        with bugs.BY_NAME["bn-no-var-path"].plant():
            assert dispatch.pick(normalization.BatchNorm, x.data, w, training=True) is not cuda_bn.BatchNormKernels
            assert not gradcheck(fn, [x], mode="random", n_directions=2).passed
        assert parity.adamw_decay(np, None)[0].passed and len(fused) == 5
        with bugs.BY_NAME["adamw-l2"].plant():
            assert not parity.adamw_decay(np, None)[0].passed and len(fused) == 5
    assert dispatch.standing_in(optim.adamw_updates) is None
