"""Every op's backward against central finite differences (float64, random upstream)."""

import numpy as np
import pytest

import tinyconvmixer.functional as F
from tinyconvmixer import Tensor
from tinyconvmixer.gradcheck import gradcheck
from tinyconvmixer.gradcheck.cases import CASES


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_gradcheck_case(case, xp):
    fn, inputs, names = case.build(np.random.default_rng(7), xp)
    result = gradcheck(fn, inputs, names=names)
    assert result.passed, result.inputs
    for r in result.inputs:
        assert r.max_rel < 1e-6


def t64(rng, xp, *shape):
    return Tensor(xp.asarray(rng.standard_normal(shape)), requires_grad=True)


@pytest.mark.parametrize("x_shape,w_shape,kw", [
    ((1, 3, 4, 4), (2, 3, 3, 3), dict(padding=1)),                      # batch of 1
    ((2, 6, 4, 5), (6, 2, 1, 1), dict(groups=3)),                       # 1x1 grouped
    ((2, 4, 7, 6), (4, 1, 2, 3), dict(groups=4, stride=(3, 2))),        # depthwise, stride > kernel
    ((2, 6, 5, 5), (3, 2, 3, 3), dict(groups=3, padding=(0, 1))),       # groups neither 1 nor C
])
def test_conv_edge_cases(x_shape, w_shape, kw, xp, rng):
    x, w, b = t64(rng, xp, *x_shape), t64(rng, xp, *w_shape), t64(rng, xp, w_shape[0])
    assert gradcheck(lambda x, w, b: F.conv2d(x, w, b, **kw), [x, w, b]).passed


def test_conv_non_contiguous_input(xp, rng):
    base = xp.asarray(rng.standard_normal((2, 5, 6, 3)))
    x = Tensor(base.transpose(0, 3, 1, 2), requires_grad=True)          # (2, 3, 5, 6), not contiguous
    assert not x.data.flags.c_contiguous
    w = t64(rng, xp, 4, 3, 3, 3)
    assert gradcheck(lambda x, w: F.conv2d(x, w, padding="same"), [x, w]).passed
    wd = t64(rng, xp, 3, 1, 3, 3)
    assert gradcheck(lambda x, w: F.conv2d(x, w, padding=1, groups=3), [x, wd]).passed


def test_random_direction_mode(xp, rng):
    x, w = t64(rng, xp, 2, 8, 9, 9), t64(rng, xp, 8, 1, 5, 5)
    result = gradcheck(lambda x, w: F.gelu(F.conv2d(x, w, padding="same", groups=8)),
                       [x, w], mode="random", n_directions=6)
    assert result.passed, result.inputs


def test_large_logits_are_stable(xp):
    z = Tensor(xp.asarray([[1000.0, 0.0, -1000.0], [5e4, 5e4, 0.0]]), requires_grad=True)
    loss = F.cross_entropy(z, xp.asarray([0, 2]))
    loss.backward()
    assert np.isfinite(loss.item())
    assert loss.item() == pytest.approx(5e4 / 2 + np.log(2) / 2)
    assert np.isfinite(Tensor(z.grad).numpy()).all()
    assert np.isfinite(F.log_softmax(z).numpy()).all()
