"""Tensor basics: the tape, accumulation, broadcasting, no_grad, freeing, devices."""

import numpy as np
import pytest

from tinyconvmixer import Tensor, no_grad
from tinyconvmixer.engine import backend


def test_gradients_accumulate_across_uses(xp):
    x = Tensor(xp.asarray([1.0, 2.0, 3.0]), requires_grad=True)
    y = (x * x + x * 3.0).sum()          # dy/dx = 2x + 3, x used three times
    y.backward()
    np.testing.assert_allclose(Tensor(x.grad).numpy(), [5.0, 7.0, 9.0])
    (x * 2.0).sum().backward()           # a second graph adds to .grad
    np.testing.assert_allclose(Tensor(x.grad).numpy(), [7.0, 9.0, 11.0])


def test_broadcast_gradient_is_summed_back(xp):
    a = Tensor(xp.ones((3, 1)), requires_grad=True)
    b = Tensor(xp.ones((4,)), requires_grad=True)
    (a * b).sum().backward()
    assert a.grad.shape == (3, 1) and b.grad.shape == (4,)
    np.testing.assert_allclose(Tensor(a.grad).numpy(), 4.0)
    np.testing.assert_allclose(Tensor(b.grad).numpy(), 3.0)


def test_scalars_keep_dtype_and_device(xp):
    x = Tensor(xp.ones(3, dtype=xp.float32), requires_grad=True)
    y = 2 * x + 1 - x / 2
    assert y.dtype == np.float32 and y.device == x.device
    assert Tensor(1.5).dtype == np.float32            # Python floats become float32
    assert Tensor(np.float64(1.5)).dtype == np.float64


def test_deep_graph_has_no_recursion_limit():
    x = Tensor(np.array(1.0), requires_grad=True)
    y = x
    for _ in range(5000):
        y = y * 1.0001
    y.backward()
    assert x.grad == pytest.approx(1.0001 ** 5000)


def test_no_grad_builds_no_graph():
    x = Tensor(np.ones(2), requires_grad=True)
    with no_grad():
        y = x * 2
    assert not y.requires_grad and y.is_leaf
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.sum().backward()


def test_graph_is_freed_after_backward():
    x = Tensor(np.ones(2), requires_grad=True)
    y = (x * 2).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="already freed"):
        y.backward()


def test_backward_needs_grad_for_non_scalar():
    x = Tensor(np.ones(2), requires_grad=True)
    with pytest.raises(RuntimeError, match="single-element"):
        (x * 2).backward()
    with pytest.raises(ValueError, match="shape"):
        (x * 2).backward(np.ones(3))


def test_item_numpy_repr_and_to(device):
    x = Tensor(np.arange(3.0)).to(device)
    assert x.device == device
    assert x.sum().item() == 3.0
    assert isinstance(x.numpy(), np.ndarray)
    assert "device='%s'" % device in repr(x)
    with pytest.raises(ValueError, match="one element"):
        x.item()
    with pytest.raises(ValueError, match="unknown device"):
        x.to("tpu")


def test_gpu_without_cupy_is_a_clear_error():
    if backend.gpu_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(backend.DeviceError, match="not available"):
        Tensor(np.ones(2)).to("gpu")


def test_integer_tensor_cannot_require_grad():
    with pytest.raises(TypeError, match="floating-point"):
        Tensor(np.arange(3), requires_grad=True)


def test_matmul_shape_error():
    with pytest.raises(ValueError, match="do not align"):
        Tensor(np.ones((2, 3))) @ Tensor(np.ones((2, 3)))


def test_leaves_never_share_a_gradient_array():
    a = Tensor(np.ones(3), requires_grad=True)
    b = Tensor(np.ones(3), requires_grad=True)
    (a + b).sum().backward()            # Add hands the same array to both inputs
    assert a.grad is not b.grad
    a.grad *= 2
    np.testing.assert_allclose(b.grad, 1.0)


def test_float_numbers_next_to_integer_tensors_are_not_truncated():
    t = Tensor(np.array([1, 2, 3]))
    np.testing.assert_allclose((t * 2.5).numpy(), [2.5, 5.0, 7.5])
    with pytest.raises(TypeError, match="floating-point"):
        t.mean()


def test_gradient_has_the_dtype_of_its_input():
    a = Tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    b = Tensor(np.ones(3), requires_grad=True)                  # float64
    (a * b).sum().backward()
    assert a.grad.dtype == np.float32 and b.grad.dtype == np.float64
    s = Tensor(np.array(2.0), requires_grad=True)               # 0-d leaf
    (s * Tensor(np.ones(4))).sum().backward()
    assert isinstance(s.grad, np.ndarray) and s.grad.shape == () and s.grad == 4.0


def test_getitem_refuses_advanced_indexing():
    x = Tensor(np.arange(4.0), requires_grad=True)
    with pytest.raises(TypeError, match="basic indexing"):
        x[np.array([0, 0, 1])]
    y = x[::-2]
    y.sum().backward()
    np.testing.assert_allclose(x.grad, [0, 1, 0, 1])


def test_empty_batch_through_blocked_cpu_paths():
    import tinyconvmixer.functional as F
    x = Tensor(np.zeros((0, 4, 5, 5), dtype=np.float32), requires_grad=True)
    w = Tensor(np.ones((4, 1, 3, 3), dtype=np.float32), requires_grad=True)
    out = F.conv2d(F.gelu(x), w, padding=1, groups=4)
    assert out.shape == (0, 4, 5, 5)
    out.sum().backward()
    assert x.grad.shape == x.shape and not w.grad.any()


class _FakeCupyArray:
    """Stands in for a CuPy array: its own .data is a memory pointer, not an array."""
    data = object()


def test_get_array_module_sees_cupy_arrays_and_tensors(monkeypatch):
    class FakeCupy:
        ndarray = _FakeCupyArray
    monkeypatch.setattr(backend, "_cupy", FakeCupy)
    arr = _FakeCupyArray()
    assert backend.get_array_module(arr) is FakeCupy

    class Holder:                                                # like a Tensor
        data = arr
    assert backend.get_array_module(Holder()) is FakeCupy
    assert backend.get_array_module(np.ones(2)) is np
