"""The gradient checker itself: it must catch broken backwards, and say so loudly."""

import numpy as np
import pytest

import tinyconvmixer.functional as F
from tinyconvmixer import Tensor
from tinyconvmixer.engine import backend, dispatch, ops
from tinyconvmixer.functional import conv as conv_module
from tinyconvmixer.functional import normalization
from tinyconvmixer.gradcheck import gradcheck, main


def _bn_case(rng):
    x = Tensor(rng.standard_normal((4, 3, 2, 2)), requires_grad=True)
    w = Tensor(rng.standard_normal(3), requires_grad=True)
    b = Tensor(rng.standard_normal(3), requires_grad=True)
    return (lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True)), [x, w, b]


def test_catches_sign_flip_in_batchnorm_input_grad(monkeypatch, rng):
    original = normalization.BatchNorm.backward

    def broken(self, g):
        dx, dw, db = original(self, g)
        return -dx, dw, db
    fn, inputs = _bn_case(rng)
    assert gradcheck(fn, inputs).passed
    monkeypatch.setattr(normalization.BatchNorm, "backward", broken)
    result = gradcheck(fn, inputs)
    assert not result.passed
    assert [r.passed for r in result.inputs] == [False, True, True]


def test_catches_dropped_mean_term_in_batchnorm(monkeypatch, rng):
    """Treating the batch mean and variance as constants (the eval-mode formula g * weight *
    invstd, both paths dropped): caught, and even by an all-ones upstream gradient, because the
    true gradient of sum(BN(x)) is 0 and this one is not (walkthrough Exercise 9.1)."""
    def naive(self, g):
        axes, cs = self.axes, self.cs
        return g * self.weight.reshape(cs) * self.invstd, (g * self.xhat).sum(axis=axes), g.sum(axis=axes)
    fn, inputs = _bn_case(rng)
    monkeypatch.setattr(normalization.BatchNorm, "backward", naive)
    assert not gradcheck(fn, inputs).passed
    assert [r.passed for r in gradcheck(fn, inputs, upstream="ones").inputs] == [False, True, True]


def test_catches_wrong_transpose_in_conv_weight_grad(monkeypatch, rng):
    original = conv_module.Conv2dIm2col.backward

    def broken(self, g):
        dx, dw, db = original(self, g)
        return dx, dw.transpose(0, 1, 3, 2), db       # kh and kw swapped
    x = Tensor(rng.standard_normal((2, 3, 5, 5)), requires_grad=True)
    w = Tensor(rng.standard_normal((4, 3, 3, 3)), requires_grad=True)
    fn = lambda x, w: F.conv2d(x, w, padding=1)
    assert gradcheck(fn, [x, w]).passed
    monkeypatch.setattr(conv_module.Conv2dIm2col, "backward", broken)
    result = gradcheck(fn, [x, w])
    assert [r.passed for r in result.inputs] == [True, False]


def test_random_mode_catches_a_bug_too(rng):
    class OffByOnePercent(conv_module.DepthwiseConv2d):
        def backward(self, g):
            return tuple(1.01 * a for a in super().backward(g))
    x = Tensor(rng.standard_normal((2, 4, 6, 6)), requires_grad=True)
    w = Tensor(rng.standard_normal((4, 1, 3, 3)), requires_grad=True)
    with dispatch.stand_in((conv_module.DepthwiseConv2d, OffByOnePercent)):
        result = gradcheck(lambda x, w: F.conv2d(x, w, padding=1, groups=4), [x, w], mode="random")
    assert not result.passed


def test_first_bad_index_and_shape_problems(monkeypatch, rng):
    class OneWrong(ops.Exp):
        def backward(self, g):
            d = super().backward(g).copy()
            d[1, 2] += 1.0                                   # wrong at one element only
            return d
    x = Tensor(rng.standard_normal((3, 4)), requires_grad=True)
    (report,) = gradcheck(lambda t: OneWrong.apply(t), [x]).inputs
    assert not report.passed and report.first_bad_index == (1, 2) == report.worst_index
    assert gradcheck(lambda t: t.exp(), [x]).inputs[0].first_bad_index is None
    a, b = Tensor(rng.standard_normal((3, 4)), requires_grad=True), Tensor(rng.standard_normal(4), requires_grad=True)
    with dispatch.stand_in((ops.unbroadcast, lambda grad, shape: grad)):   # broadcasting not summed back
        result = gradcheck(lambda a, b: a + b, [a, b], names=["a", "b"])
    assert [r.passed for r in result.inputs] == [True, False]
    assert result.inputs[1].problem == "its gradient has shape (3, 4), the input (4,)"
    monkeypatch.setattr(ops.Mul, "backward", lambda self, g: (g * self.b, None))
    result = gradcheck(lambda a, b: a * b, [a, Tensor(b.data.copy(), requires_grad=True)])
    assert result.inputs[1].problem == "backward gave it no gradient" and not result.passed


def test_float32_warns(rng):
    x = Tensor(rng.standard_normal((3, 4)).astype(np.float32), requires_grad=True)
    with pytest.warns(RuntimeWarning, match="float64"):
        gradcheck(F.gelu, [x])


def test_report_fields(rng):
    x = Tensor(rng.standard_normal((3, 4)), requires_grad=True)
    (report,) = gradcheck(F.gelu, [x], names=["x"]).inputs
    assert report.name == "x" and report.passed
    assert 0 <= report.max_abs < 1e-7 and 0 <= report.max_rel < 1e-6
    assert len(report.worst_index) == 2


def test_no_input_requires_grad():
    with pytest.raises(ValueError, match="no input requires grad"):
        gradcheck(F.gelu, [Tensor(np.ones(3))])


def test_command_passes_and_prints_rows(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "FAIL" not in out and out.count("PASS") > 60
    assert "all passed" in out
    assert max(len(line) for line in out.splitlines()) <= 80        # was 96: long names wrap


def test_a_scale_factor_is_named_only_where_it_means_something():
    """BatchNorm with u = 1: the true gradient is 0 up to rounding, so the ratio of a wrong one
    to it is noise ("-0.0028 x"), and no factor is named; a 1/N missing is named."""
    from tinyconvmixer.gradcheck.check import _constant_factor
    rng = np.random.default_rng(0)
    n = rng.standard_normal(20)
    assert _constant_factor(6 * n, n) == pytest.approx(6)
    assert _constant_factor(-n, n) == pytest.approx(-1)
    assert _constant_factor(rng.standard_normal(20), 1e-10 * n) is None     # the expected is about 0
    assert _constant_factor(1e-5 * n, n) is None                            # a factor of 1e-5 means nothing
    assert _constant_factor(n + 0.1, n) is None


def test_command_op_filter_and_failure_exit(capsys, monkeypatch):
    assert main(["--op", "gelu"]) == 0
    out = capsys.readouterr().out
    assert "gelu exact" in out and "conv2d" not in out
    original = normalization.BatchNorm.backward
    monkeypatch.setattr(normalization.BatchNorm, "backward",           # drops the input's gradient
                        lambda self, g: (0 * g,) + tuple(original(self, g)[1:]))
    assert main(["--op", "batch_norm train"]) == 1
    assert "FAIL" in capsys.readouterr().out
    assert main(["--op", "no such op"]) == 2


def test_command_gpu_without_cupy(capsys):
    if backend.gpu_available():
        pytest.skip("this machine has a GPU")
    assert main(["--device", "gpu", "--op", "gelu"]) == 2
    assert "gpu" in capsys.readouterr().err.lower()
