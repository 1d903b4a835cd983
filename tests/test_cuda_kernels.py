"""The CUDA kernels (tinyconvmixer/fast/cuda/*.cu) against the reference ops they stand in for.

Each test runs an op twice on the same inputs: through its kernel variant and on
the reference alone (dispatch.reference_only()). Where this machine has no GPU,
"emulated" runs the very same kernel text on NumPy arrays through the CPU
emulator (tests/support/cuda_emulator.py, needs g++); "gpu" runs it on CuPy arrays
and skips without a GPU. tests/test_nvrtc_compile.py compiles every kernel for the
GPU with NVRTC.
"""

import numpy as np
import pytest

import tinyconvmixer.functional as F
from tinyconvmixer import Tensor
import cuda_emulator as emulate
from tinyconvmixer.engine import backend, dispatch
from tinyconvmixer.fast.cuda import launch
from tinyconvmixer.gradcheck import gradcheck


@pytest.fixture(params=["emulated", "gpu"])
def where(request, monkeypatch):
    """Yields the array module; records which kernel files the code under test launched."""
    compiled = []
    real_kernel = launch.kernel

    def spy(name, function, dtype, **defines):
        compiled.append(name)
        return real_kernel(name, function, dtype, **defines)
    monkeypatch.setattr(launch, "kernel", spy)
    if request.param == "gpu":
        if not backend.gpu_available():
            pytest.skip("no CuPy GPU on this machine")
        yield backend.xp_for("gpu"), compiled
    else:
        if not emulate.available():
            pytest.skip("the CUDA emulator needs g++ with C++20")
        with emulate.emulated():
            yield np, compiled


def fast_and_plain(fn):
    """fn() with the kernels on, then on the references alone; both results as NumPy arrays."""
    fast = [backend.to_numpy(a) for a in fn()]
    with dispatch.reference_only():
        plain = [backend.to_numpy(a) for a in fn()]
    return fast, plain


def assert_close(fast, plain, dtype):
    rtol, atol = (2e-5, 1e-5) if dtype == np.float32 else (1e-12, 1e-12)
    for a, b in zip(fast, plain):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


def channels_last(xp, a):
    """a's values on xp's device, NCHW-shaped with NHWC memory (made there: cupy.asarray
    of a NumPy array would give a C-order copy)."""
    return backend.channels_last(xp.asarray(a))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,k,padding", [
    ((2, 5, 7, 9), 3, 1),          # channels not a multiple of a block's, non-square image
    ((1, 40, 10, 12), 5, "same"),  # two channel blocks, two tiles each way
    ((2, 3, 6, 6), 3, 0),          # no padding: the input gradient pads by k - 1
    ((1, 4, 9, 9), 9, 4),          # ConvMixer-256/8's k=9
])
def test_depthwise_conv(where, dtype, shape, k, padding, rng):
    xp, compiled = where
    C = shape[1]
    x = rng.standard_normal(shape).astype(dtype)
    w, b = rng.standard_normal((C, 1, k, k)).astype(dtype), rng.standard_normal(C).astype(dtype)

    def run():
        X = Tensor(channels_last(xp, x), requires_grad=True)
        W, B = (Tensor(xp.asarray(a), requires_grad=True) for a in (w, b))
        y = F.conv2d(X, W, B, padding=padding, groups=C)
        y.backward(Tensor(xp.asarray(np.random.default_rng(1).standard_normal(y.shape).astype(dtype))))
        return y.data, X.grad, W.grad, B.grad
    fast, plain = fast_and_plain(run)
    assert "depthwise" in compiled
    assert_close(fast, plain, dtype)


def test_depthwise_falls_back_where_the_kernel_does_not_apply(where, rng):
    xp, compiled = where
    x = Tensor(xp.asarray(rng.standard_normal((1, 4, 8, 8)).astype(np.float32)), requires_grad=True)
    w = Tensor(xp.asarray(rng.standard_normal((4, 1, 3, 3)).astype(np.float32)), requires_grad=True)
    F.conv2d(x, w, stride=2, padding=1, groups=4).sum().backward()     # stride 2: the plain path
    assert "depthwise" not in compiled and x.grad.shape == (1, 4, 8, 8)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", ["C order", "channels-last", "strided"])
def test_gelu(where, dtype, layout, rng):
    xp, compiled = where
    x = (3 * rng.standard_normal((2, 6, 5, 7))).astype(dtype)

    def run():
        on_device = {"C order": lambda: xp.asarray(x), "channels-last": lambda: channels_last(xp, x),
                     "strided": lambda: xp.asarray(x)[:, ::2]}[layout]()
        X = Tensor(on_device, requires_grad=True)
        y = F.gelu(X)
        y.backward(Tensor(xp.asarray(np.random.default_rng(1).standard_normal(y.shape).astype(dtype))))
        return y.data, X.grad
    fast, plain = fast_and_plain(run)
    assert compiled == ["gelu"] * (len(compiled)) and compiled
    assert_close(fast, plain, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,layout", [((3, 5, 4, 6), "channels-last"), ((3, 40, 3, 3), "C order"),
                                          ((7, 33), "C order")])
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm(where, dtype, shape, layout, training, rng):
    xp, compiled = where
    C = shape[1]
    x = (2 * rng.standard_normal(shape) + 1).astype(dtype)
    w, b = rng.standard_normal(C).astype(dtype), rng.standard_normal(C).astype(dtype)

    def run():
        rm = xp.asarray(np.linspace(-1, 1, C).astype(dtype))
        rv = xp.asarray(np.linspace(0.5, 2, C).astype(dtype))
        X = Tensor(channels_last(xp, x) if layout == "channels-last" else xp.asarray(x), requires_grad=True)
        W, B = (Tensor(xp.asarray(a), requires_grad=True) for a in (w, b))
        y = F.batch_norm(X, rm, rv, W, B, training=training)
        y.backward(Tensor(xp.asarray(np.random.default_rng(1).standard_normal(y.shape).astype(dtype))))
        return y.data, X.grad, W.grad, B.grad, rm, rv
    fast, plain = fast_and_plain(run)
    assert "batchnorm" in compiled
    assert_close(fast, plain, dtype)


def test_a_convmixer_block_keeps_channels_last(where, rng):
    """Every op of a block hands the next a channels-last array, on the device too."""
    xp, _ = where
    x = Tensor(channels_last(xp, rng.standard_normal((2, 8, 6, 6)).astype(np.float32)))
    w, pw = (Tensor(xp.asarray(rng.standard_normal(s).astype(np.float32))) for s in ((8, 1, 3, 3), (8, 8, 1, 1)))
    h = F.batch_norm(F.gelu(F.conv2d(x, w, padding="same", groups=8)), None, None, training=True) + x
    out = F.batch_norm(F.gelu(F.conv2d(h, pw)), None, None, training=True)
    for t in (h, out):
        assert t.data.transpose(0, 2, 3, 1).flags.c_contiguous


def test_empty_batch_and_odd_ranks_take_the_plain_path(where, rng):
    xp, compiled = where
    x = Tensor(xp.zeros((0, 4, 5, 5), np.float32), requires_grad=True)
    w = Tensor(xp.asarray(rng.standard_normal((4, 1, 3, 3)).astype(np.float32)), requires_grad=True)
    assert F.conv2d(x, w, padding=1, groups=4).shape == (0, 4, 5, 5)
    y3 = F.batch_norm(Tensor(xp.asarray(rng.standard_normal((3, 4, 5)).astype(np.float32))),
                      None, None, training=True)                              # (N, C, L): 3-D
    assert y3.shape == (3, 4, 5) and "depthwise" not in compiled


def test_batch_norm_statistics_of_a_large_offset(where, rng):
    """Variance as E[x^2] - E[x]^2 is safe only because the sums are float64: check it."""
    xp, _ = where
    x = (1000 + 0.01 * rng.standard_normal((4, 3, 8, 8))).astype(np.float32)
    rm, rv = xp.zeros(3, np.float32), xp.ones(3, np.float32)
    F.batch_norm(Tensor(xp.asarray(x)), rm, rv, training=True, momentum=1.0)
    var = x.astype(np.float64).var(axis=(0, 2, 3), ddof=1)
    np.testing.assert_allclose(backend.to_numpy(rv), var, rtol=1e-3)


def test_convmixer_block_gradcheck_through_the_kernels(where, rng):
    """float64 finite differences (random directions) through dw conv -> GELU -> BN."""
    xp, compiled = where
    C = 3

    def t(*shape):
        return Tensor(xp.asarray(rng.standard_normal(shape)), requires_grad=True)
    x, w, b, gamma, beta = t(2, C, 5, 5), t(C, 1, 3, 3), t(C), t(C), t(C)

    def block(x, w, b, gamma, beta):
        y = F.gelu(F.conv2d(x, w, b, padding="same", groups=C))
        return F.batch_norm(y, xp.zeros(C), xp.ones(C), gamma, beta, training=True)
    result = gradcheck(block, [x, w, b, gamma, beta], mode="random", n_directions=3)
    assert result.passed, result.inputs
    assert {"depthwise", "gelu", "batchnorm"} <= set(compiled)


def test_gelu_keeps_only_its_slope_and_nothing_without_grad(where, rng):
    from tinyconvmixer import no_grad
    xp, compiled = where
    x = xp.asarray(rng.standard_normal((2, 3, 4, 4)).astype(np.float32))
    X = Tensor(x, requires_grad=True)
    with_grad = F.gelu(X)
    with no_grad():
        without = F.gelu(Tensor(x, requires_grad=True))
    np.testing.assert_array_equal(backend.to_numpy(without.data), backend.to_numpy(with_grad.data))
    assert without._fn is None and "gelu" in compiled
    saved = {k: v for k, v in vars(with_grad._fn).items() if isinstance(v, type(x))}
    assert list(saved) == ["slope"] and with_grad._fn.inputs == [X]   # the slope; x is a leaf here
    launches = compiled.count("gelu")
    with_grad.backward(Tensor(xp.ones_like(x)))
    assert compiled.count("gelu") == launches                 # the backward pass: g * slope, no kernel
    R = Tensor(backend.to_numpy(x).astype(np.float64), requires_grad=True)
    F.gelu(R).backward(Tensor(np.ones(x.shape)))
    np.testing.assert_allclose(backend.to_numpy(X.grad), R.grad, rtol=1e-5, atol=1e-6)


def test_gelu_kernel_on_size_one_axes_with_odd_strides(where):
    """A (N, C, 1, 1) map (a patch as large as the image, or a bug that shrinks the maps) whose
    size-1 axes carry strides that empty_like does not copy: found by the CuPy stand-in, where the
    kernel path gave up on matching layouts and crashed."""
    xp, compiled = where
    x = xp.asarray(np.arange(8, dtype=np.float32) - 4)
    odd = xp.lib.stride_tricks.as_strided(x, (2, 4, 1, 1), (16, 4, 16, 16))
    y = F.gelu(Tensor(odd, requires_grad=True))
    y.backward(Tensor(xp.ones((2, 4, 1, 1), np.float32)))
    assert "gelu" in compiled
    ref = F.gelu(Tensor(np.arange(8, dtype=np.float32).reshape(2, 4, 1, 1) - 4))
    np.testing.assert_allclose(backend.to_numpy(y.data), ref.data, rtol=2e-5, atol=1e-6)
