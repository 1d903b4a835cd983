"""chunked_map (the CPU's cache-blocked elementwise work) and GELU's chunked variant
(fast/cpu/gelu.py) against plain NumPy expressions."""

import numpy as np
import pytest

from tinyconvmixer.engine import backend
from tinyconvmixer.fast.cpu.chunked import chunked_map
from tinyconvmixer.fast.cpu.gelu import GELUChunked
from tinyconvmixer.functional.activation import normal_cdf


def axpy(out, a, b):
    np.multiply(a, 2.0, out=out)
    out += b


def layouts(rng, shape=(5, 7, 9, 11)):
    base = rng.standard_normal(shape).astype(np.float32)
    channels_last = backend.channels_last(base)
    return {"C order": base, "channels-last": channels_last,
            "strided (gaps)": rng.standard_normal((5, 7, 9, 22)).astype(np.float32)[..., ::2]}


@pytest.mark.parametrize("name_a", ["C order", "channels-last", "strided (gaps)"])
@pytest.mark.parametrize("name_b", ["C order", "channels-last"])
def test_matches_numpy_for_any_layouts(name_a, name_b, rng):
    a, b = layouts(rng)[name_a], layouts(rng)[name_b]
    out = chunked_map(axpy, a, b)
    np.testing.assert_array_equal(out, 2.0 * a + b)
    if name_a == name_b and name_a != "strided (gaps)":
        assert out.strides == a.strides                     # the result keeps the layout


def test_many_chunks_and_a_ragged_end(rng, monkeypatch):
    import tinyconvmixer.fast.cpu.chunked as chunked
    monkeypatch.setattr(chunked, "CHUNK", 1000)
    a, b = rng.standard_normal(123_457).astype(np.float32), rng.standard_normal(123_457).astype(np.float32)
    np.testing.assert_array_equal(chunked_map(axpy, a, b), 2.0 * a + b)


def test_several_outputs(rng):
    a = rng.standard_normal((3, 50_000)).astype(np.float32)

    def two(s, d, x):
        np.add(x, 1.0, out=s)
        np.multiply(x, 2.0, out=d)
    s, d = chunked_map(two, a, outputs=2)
    np.testing.assert_array_equal(s, a + 1.0)
    np.testing.assert_array_equal(d, 2.0 * a)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("layout", ["C order", "channels-last"])
def test_gelu_output_and_slope_match_the_plain_formulas(rng, approximate, layout):
    x = 3 * layouts(rng, (4, 8, 6, 6))[layout]                # float32: the CPU's fast erf
    f = GELUChunked(approximate=approximate)
    y = f.forward(x)
    x64 = x.astype(np.float64)
    if approximate == "none":
        cdf = normal_cdf(x64)
        y_ref, slope_ref = x64 * cdf, cdf + x64 * np.exp(-0.5 * x64 * x64) / np.sqrt(2 * np.pi)
    else:
        c = np.sqrt(2 / np.pi)
        t = np.tanh(c * (x64 + 0.044715 * x64 ** 3))
        y_ref = 0.5 * x64 * (1 + t)
        slope_ref = 0.5 * (1 + t) + 0.5 * x64 * (1 - t * t) * c * (1 + 3 * 0.044715 * x64 ** 2)
    np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-6)
    # float32 tanh: 1 - t^2 cancels where |t| is near 1 (an error of about 1e-6 at |x| = 5)
    np.testing.assert_allclose(f.slope, slope_ref, rtol=1e-5, atol=1e-6 if approximate == "none" else 5e-6)
    assert y.dtype == f.slope.dtype == np.float32 and y.strides == x.strides
    g = rng.standard_normal(x.shape).astype(np.float32)
    np.testing.assert_array_equal(f.backward(g), g * f.slope)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_under_no_grad_gives_the_same_values(rng, dtype, approximate):
    import tinyconvmixer.functional as F
    from tinyconvmixer import Tensor, no_grad
    x = (3 * rng.standard_normal((3, 70_000))).astype(dtype)
    import tinyconvmixer.fast.cpu.gelu as activation
    with_slope = F.gelu(Tensor(x, requires_grad=True), approximate=approximate)
    name = "_tanh_gelu" if approximate == "tanh" else "_exact_gelu"
    real = getattr(activation, name)
    setattr(activation, name, lambda *a: pytest.fail("the slope was computed under no_grad"))
    try:
        with no_grad():
            y = F.gelu(Tensor(x, requires_grad=True), approximate=approximate)
    finally:
        setattr(activation, name, real)
    np.testing.assert_array_equal(y.data, with_slope.data)
