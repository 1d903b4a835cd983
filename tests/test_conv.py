"""conv2d: the two paths agree, shapes are right, bad input gets a clear error."""

import numpy as np
import pytest

import tinyconvmixer.functional as F
from tinyconvmixer import Tensor
from tinyconvmixer.functional.conv import Conv2dIm2col, DepthwiseConv2d
from tinyconvmixer.functional.im2col import im2col_view, pad2d


def _grads(op, x, w, b, **kw):
    xs = [Tensor(a.copy(), requires_grad=True) for a in (x, w, b)]
    out = op.apply(*xs, **kw)
    out.backward(Tensor(np.random.default_rng(3).standard_normal(out.shape)))
    return out.numpy(), [t.grad for t in xs]


@pytest.mark.parametrize("k,stride,pad", [(3, 1, 1), (5, 1, 2), (9, 1, 4), (3, 2, 1)])
def test_depthwise_path_equals_im2col_path(k, stride, pad, rng):
    C = 6
    x = rng.standard_normal((2, C, 11, 11))
    w = rng.standard_normal((C, 1, k, k))
    b = rng.standard_normal(C)
    kw = dict(stride=(stride, stride), padding=(pad, pad), groups=C)
    out1, g1 = _grads(DepthwiseConv2d, x, w, b, **kw)
    out2, g2 = _grads(Conv2dIm2col, x, w, b, **kw)
    np.testing.assert_allclose(out1, out2, rtol=1e-12, atol=1e-12)
    for a, c in zip(g1, g2):
        np.testing.assert_allclose(a, c, rtol=1e-12, atol=1e-12)


def test_conv2d_picks_the_depthwise_path():
    x = Tensor(np.ones((1, 4, 5, 5)), requires_grad=True)
    w = Tensor(np.ones((4, 1, 3, 3)), requires_grad=True)
    assert isinstance(F.conv2d(x, w, groups=4, padding=1)._fn, DepthwiseConv2d)
    assert isinstance(F.conv2d(x, Tensor(np.ones((4, 4, 1, 1)), requires_grad=True))._fn, Conv2dIm2col)


def test_im2col_view_is_a_view_with_the_right_windows(rng):
    x = rng.standard_normal((2, 3, 6, 7))
    xp_ = pad2d(x, (1, 1))
    win = im2col_view(xp_, (3, 3), (2, 2))
    assert win.shape == (2, 3, 3, 3, 3, 4)
    assert np.shares_memory(win, xp_)                   # zero-copy
    n, c, i, j, p, q = 1, 2, 2, 1, 2, 3
    assert win[n, c, i, j, p, q] == xp_[n, c, 2 * p + i, 2 * q + j]


@pytest.mark.parametrize("x_shape,w_shape,kw,out_shape", [
    ((2, 3, 32, 32), (8, 3, 2, 2), dict(stride=2), (2, 8, 16, 16)),
    ((2, 8, 16, 16), (8, 1, 5, 5), dict(groups=8, padding="same"), (2, 8, 16, 16)),
    ((2, 8, 16, 16), (4, 8, 1, 1), {}, (2, 4, 16, 16)),
    ((1, 2, 7, 7), (2, 2, 3, 3), dict(stride=2, padding=(1, 0)), (1, 2, 4, 3)),
])
def test_output_shapes(x_shape, w_shape, kw, out_shape):
    out = F.conv2d(Tensor(np.zeros(x_shape)), Tensor(np.zeros(w_shape)), **kw)
    assert out.shape == out_shape


@pytest.mark.parametrize("x_shape,w_shape,kw,match", [
    ((2, 3, 8, 8), (4, 2, 3, 3), {}, "input has 3 channels"),
    ((2, 6, 8, 8), (4, 1, 3, 3), dict(groups=4), "does not divide the 6 input channels"),
    ((2, 4, 8, 8), (6, 1, 3, 3), dict(groups=4), "does not divide the 6 output channels"),
    ((3, 8, 8), (4, 3, 3, 3), {}, "input must be 4-D"),
    ((2, 3, 8, 8), (4, 3, 3), {}, "weight must be 4-D"),
    ((2, 3, 8, 8), (4, 3, 4, 4), dict(padding="same"), "odd kernel"),
    ((2, 3, 8, 8), (4, 3, 3, 3), dict(padding="same", stride=2), "stride 1"),
    ((2, 3, 2, 2), (4, 3, 3, 3), {}, "larger than the padded input"),
    ((2, 3, 8, 8), (4, 3, 3, 3), dict(stride=0), "stride must be >= 1"),
    ((2, 3, 8, 8), (4, 3, 3, 3), dict(padding=(1, 2, 3)), "padding must be an int or a pair"),
])
def test_bad_input_errors(x_shape, w_shape, kw, match):
    with pytest.raises(ValueError, match=match):
        F.conv2d(Tensor(np.zeros(x_shape)), Tensor(np.zeros(w_shape)), **kw)


def test_bias_shape_and_dtype_errors():
    x, w = Tensor(np.zeros((1, 2, 4, 4))), Tensor(np.zeros((3, 2, 3, 3)))
    with pytest.raises(ValueError, match=r"bias must have shape \(3,\)"):
        F.conv2d(x, w, Tensor(np.zeros(2)))
    with pytest.raises(TypeError, match="dtype"):
        F.conv2d(x, Tensor(np.zeros((3, 2, 3, 3), dtype=np.float32)))


def test_other_ops_errors():
    with pytest.raises(ValueError, match="running_mean must have shape"):
        F.batch_norm(Tensor(np.zeros((2, 3, 4, 4))), np.zeros(2), np.ones(3), training=True)
    with pytest.raises(ValueError, match="eval mode"):
        F.batch_norm(Tensor(np.zeros((2, 3, 4, 4))), None, None)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        F.batch_norm(Tensor(np.zeros((1, 3))), None, None, training=True)
    with pytest.raises(ValueError, match="does not match weight"):
        F.linear(Tensor(np.zeros((2, 5))), Tensor(np.zeros((3, 4))))
    with pytest.raises(ValueError, match="must be 4-D"):
        F.global_avg_pool2d(Tensor(np.zeros((2, 3))))
    with pytest.raises(ValueError, match="approximate"):
        F.gelu(Tensor(np.zeros(2)), approximate="fast")
    z = Tensor(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"target must have shape \(2,\)"):
        F.cross_entropy(z, np.array([0, 1, 2]))
    with pytest.raises(TypeError, match="integer class indices"):
        F.cross_entropy(z, np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"must be in \[0, 2\]"):
        F.cross_entropy(z, np.array([0, 3]))
    with pytest.raises(ValueError, match=r"logits must be \(N, classes\)"):
        F.cross_entropy(Tensor(np.zeros(3)), np.array([0, 1, 2]))
