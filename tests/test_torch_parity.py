"""Outputs and gradients match PyTorch (float64) on random shapes. Skips without torch."""

import numpy as np
import pytest

import tinyconvmixer.functional as F
from tinyconvmixer import Tensor

torch = pytest.importorskip("torch")
TF = torch.nn.functional


def both(arrays, device):
    """The same float64 values as tinyconvmixer tensors (on `device`) and torch tensors."""
    ours = [Tensor(a.copy(), requires_grad=True).to(device) for a in arrays]
    for t in ours:
        t.requires_grad = True
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    return ours, theirs


def check(our_fn, torch_fn, arrays, device, rng, rtol=1e-10):
    ours, theirs = both(arrays, device)
    out, ref = our_fn(*ours), torch_fn(*theirs)
    np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), rtol=rtol, atol=1e-12)
    g = rng.standard_normal(ref.shape)
    out.backward(Tensor(g).to(device) if out.ndim else None)
    ref.backward(torch.tensor(g) if ref.ndim else None)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(Tensor(a.grad).numpy(), b.grad.numpy(), rtol=rtol, atol=1e-11)


def random_conv_setting(rng):
    """A random conv configuration: groups, kernel, stride, padding."""
    groups = int(rng.choice([1, 2, 3]))
    C = groups * int(rng.integers(1, 4))
    F_ = groups * int(rng.integers(1, 4))
    kh, kw = int(rng.integers(1, 6)), int(rng.integers(1, 6))
    stride = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    padding = (int(rng.integers(0, 3)), int(rng.integers(0, 3)))
    H, W = kh + int(rng.integers(0, 8)), kw + int(rng.integers(0, 8))
    return (int(rng.integers(1, 4)), C, H, W), (F_, C // groups, kh, kw), dict(stride=stride, padding=padding,
                                                                                groups=groups)


@pytest.mark.parametrize("seed", range(12))
def test_conv2d_random_settings(seed, device):
    rng = np.random.default_rng(100 + seed)
    x_shape, w_shape, kw = random_conv_setting(rng)
    arrays = [rng.standard_normal(x_shape), rng.standard_normal(w_shape), rng.standard_normal(w_shape[0])]
    check(lambda x, w, b: F.conv2d(x, w, b, **kw), lambda x, w, b: TF.conv2d(x, w, b, **kw),
          arrays, device, rng)


@pytest.mark.parametrize("k,C,stride", [(5, 7, 1), (9, 4, 1), (3, 5, 2)])
def test_depthwise_same(k, C, stride, device, rng):
    pad = "same" if stride == 1 else k // 2
    arrays = [rng.standard_normal((3, C, 10, 9)), rng.standard_normal((C, 1, k, k)), rng.standard_normal(C)]
    check(lambda x, w, b: F.conv2d(x, w, b, stride=stride, padding=pad, groups=C),
          lambda x, w, b: TF.conv2d(x, w, b, stride=stride, padding=pad, groups=C), arrays, device, rng)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu(approximate, device, rng):
    check(lambda x: F.gelu(x, approximate), lambda x: TF.gelu(x, approximate=approximate),
          [3 * rng.standard_normal((4, 5, 6))], device, rng)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(5, 3, 4, 6), (7, 4)])
def test_batch_norm(training, shape, device, rng):
    C = shape[1]
    rm, rv = rng.standard_normal(C), rng.uniform(0.5, 2, C)
    ours_stats = [Tensor(a.copy()).to(device).data for a in (rm, rv)]
    torch_stats = [torch.tensor(a) for a in (rm, rv)]
    arrays = [2 + 3 * rng.standard_normal(shape), rng.standard_normal(C), rng.standard_normal(C)]
    check(lambda x, w, b: F.batch_norm(x, *ours_stats, w, b, training=training, momentum=0.3),
          lambda x, w, b: TF.batch_norm(x, *torch_stats, w, b, training=training, momentum=0.3),
          arrays, device, rng)
    for a, b in zip(ours_stats, torch_stats):        # running statistics updated identically
        np.testing.assert_allclose(Tensor(a).numpy(), b.numpy(), rtol=1e-12)


def test_pool_linear_log_softmax_cross_entropy(device, rng):
    check(F.global_avg_pool2d, lambda x: x.mean(dim=(2, 3)), [rng.standard_normal((3, 4, 5, 6))], device, rng)
    check(F.linear, TF.linear, [rng.standard_normal((6, 5)), rng.standard_normal((4, 5)),
                                rng.standard_normal(4)], device, rng)
    check(lambda z: F.log_softmax(z, axis=1), lambda z: TF.log_softmax(z, dim=1),
          [10 * rng.standard_normal((6, 7))], device, rng)
    target = rng.integers(0, 7, size=6)
    from tinyconvmixer.engine import backend
    check(lambda z: F.cross_entropy(z, backend.to_device(target, device)),
          lambda z: TF.cross_entropy(z, torch.tensor(target)), [50 * rng.standard_normal((6, 7))], device, rng)


def test_tensor_ops(device, rng):
    a, b = rng.standard_normal((3, 4)), rng.uniform(0.5, 2.0, (4,))
    check(lambda a, b: ((a * b - a / b) ** 2 @ (a.T + 1.0)).sum(axis=0).mean(),
          lambda a, b: ((a * b - a / b) ** 2 @ (a.T + 1.0)).sum(dim=0).mean(), [a, b], device, rng)
