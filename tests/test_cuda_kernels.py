"""The CUDA kernels (tinyconvmixer/cuda/*.cu) against the plain xp code they replace.

Each test runs an op twice on the same inputs: through its fast kernel and with
the kernels switched off (the readable reference). Where this machine has no GPU,
"emulated" runs the very same kernel text on NumPy arrays through the CPU
emulator (cuda/emulate.py, needs g++); "gpu" runs it on CuPy arrays and skips
without a GPU. nvcc, where installed, also compiles every kernel file to PTX.
"""

import numpy as np
import pytest

import tinyconvmixer.functional as F
from tinyconvmixer import Tensor, backend
from tinyconvmixer.cuda import emulate, launch
from tinyconvmixer.gradcheck import gradcheck


@pytest.fixture(params=["emulated", "gpu"])
def where(request, monkeypatch):
    """Yields the array module; records which kernel files the code under test compiled."""
    compiled = []
    real_module = launch.module

    def spy(name, dtype, **defines):
        compiled.append(name)
        return real_module(name, dtype, **defines)
    monkeypatch.setattr(launch, "module", spy)
    if request.param == "gpu":
        if not backend.gpu_available():
            pytest.skip("no CuPy GPU on this machine")
        yield backend.xp_for("gpu"), compiled
    else:
        if not emulate.available():
            pytest.skip("the CUDA emulator needs g++ with C++20")
        with launch.emulated():
            yield np, compiled


def fast_and_plain(fn):
    """fn() with the kernels on, then off; both results as NumPy arrays."""
    fast = [backend.to_numpy(a) for a in fn()]
    old = launch.set_enabled(False)
    try:
        plain = [backend.to_numpy(a) for a in fn()]
    finally:
        launch.set_enabled(old)
    return fast, plain


def assert_close(fast, plain, dtype):
    rtol, atol = (2e-5, 1e-5) if dtype == np.float32 else (1e-12, 1e-12)
    for a, b in zip(fast, plain):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


def channels_last(a):
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


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
    x = channels_last(rng.standard_normal(shape).astype(dtype))
    w, b = rng.standard_normal((C, 1, k, k)).astype(dtype), rng.standard_normal(C).astype(dtype)

    def run():
        X, W, B = (Tensor(xp.asarray(a), requires_grad=True) for a in (x, w, b))
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
    x = {"C order": x, "channels-last": channels_last(x), "strided": x[:, ::2]}[layout]

    def run():
        X = Tensor(xp.asarray(x), requires_grad=True)
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
    x = channels_last(x) if layout == "channels-last" else x
    w, b = rng.standard_normal(C).astype(dtype), rng.standard_normal(C).astype(dtype)

    def run():
        rm = xp.asarray(np.linspace(-1, 1, C).astype(dtype))
        rv = xp.asarray(np.linspace(0.5, 2, C).astype(dtype))
        X, W, B = (Tensor(xp.asarray(a), requires_grad=True) for a in (x, w, b))
        y = F.batch_norm(X, rm, rv, W, B, training=training)
        y.backward(Tensor(xp.asarray(np.random.default_rng(1).standard_normal(y.shape).astype(dtype))))
        return y.data, X.grad, W.grad, B.grad, rm, rv
    fast, plain = fast_and_plain(run)
    assert "batchnorm" in compiled
    assert_close(fast, plain, dtype)


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


@pytest.mark.parametrize("name,defines", [
    ("depthwise", dict(KH=5, KW=5, TH=8, TW=8, CT=32)),
    ("depthwise", dict(KH=9, KW=9, TH=8, TW=8, CT=32)),
    ("gelu", {}),
    ("batchnorm", dict(RY=8)),
])
def test_kernel_files_compile_with_nvcc(name, defines):
    import shutil
    if shutil.which("nvcc") is None:
        pytest.skip("nvcc is not installed")
    with open(f"{launch._HERE}/{name}.cu") as f:
        body = f.read()
    head = "typedef float T;\n" + "".join(f"#define {k} {v}\n" for k, v in defines.items())
    emulate.nvcc_check(head + body)
