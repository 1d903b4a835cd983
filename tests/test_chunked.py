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


def test_into_takes_the_result_where_the_layouts_agree(rng):
    def product(out, a, b):                 # reads each element of b before writing it: may
        np.multiply(a, b, out=out)          # write over b (axpy, writing out first, may not)
    a = layouts(rng)["channels-last"]
    b = backend.channels_last(rng.standard_normal(a.shape).astype(np.float32))
    expected = a * b
    out = chunked_map(product, a, b, into=b)
    assert out is b
    np.testing.assert_array_equal(out, expected)
    c = rng.standard_normal(a.shape).astype(np.float32)         # C order: not a's layout
    expected = a * c
    out = chunked_map(product, a, c, into=c)
    assert out is not c                                          # a new array all the same
    np.testing.assert_array_equal(out, expected)
    with pytest.raises(ValueError, match="one output"):
        chunked_map(product, a, c, outputs=2, into=c)


def test_gelu_backward_twice_says_what_happened(rng):
    f = GELUChunked(approximate="none")
    x = rng.standard_normal(100).astype(np.float32)
    f.forward(x)
    f.backward(np.ones_like(x))
    with pytest.raises(RuntimeError, match="used up"):
        f.backward(np.ones_like(x))


def test_many_chunks_and_a_ragged_end(rng, monkeypatch):
    import tinyconvmixer.fast.cpu.chunked as chunked
    monkeypatch.setattr(chunked, "chunk_elements", lambda *a: 1000)
    monkeypatch.setenv("TINYCONVMIXER_THREADS", "3")
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


def test_scratch_chunks_are_given_to_the_kernel(rng, monkeypatch):
    import tinyconvmixer.fast.cpu.chunked as chunked
    monkeypatch.setattr(chunked, "chunk_elements", lambda *a: 1000)
    monkeypatch.setenv("TINYCONVMIXER_THREADS", "1")
    sizes = []

    def square_plus_one(out, a, tmp):
        sizes.append(tmp.size)
        np.multiply(a, a, out=tmp)
        np.add(tmp, 1.0, out=out)
    a = rng.standard_normal(2500).astype(np.float32)
    np.testing.assert_array_equal(chunked_map(square_plus_one, a, scratch=1), a * a + 1.0)
    assert sorted(set(sizes)) == [500, 1000]                   # chunk-sized, the last one ragged


def test_chunk_size_follows_the_cache(monkeypatch):
    import tinyconvmixer.fast.cpu.chunked as chunked
    monkeypatch.setattr(chunked.machine, "core_cache_bytes", lambda: 512 * 1024)
    assert chunked.chunk_elements(4, 4) == 32768                # 4 float32 arrays in 512 KiB
    assert chunked.chunk_elements(8, 4) == 16384
    monkeypatch.setattr(chunked.machine, "core_cache_bytes", lambda: 64 * 1024 ** 2)
    assert chunked.chunk_elements(4, 4) == 131072               # capped
    assert chunked.chunk_elements(4, 4, largest=65536) == 65536
    monkeypatch.setattr(chunked.machine, "core_cache_bytes", lambda: 16 * 1024)
    assert chunked.chunk_elements(4, 4) == 8192                 # floored


@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("layout", ["C order", "channels-last"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gelu_output_and_gradient_match_the_plain_formulas(rng, approximate, layout, dtype):
    x = (3 * layouts(rng, (4, 8, 6, 6))[layout]).astype(dtype)  # float32: the CPU's fast Phi
    x.reshape(-1)[:4] = [0.0, -0.0, 1e-35, -1e-35] if layout == "C order" else x.reshape(-1)[:4]
    f = GELUChunked(approximate=approximate)
    y = f.forward(x)
    assert set(vars(f)) == {"approximate", "slope"}        # keeps the slope, neither x nor y
    assert f.slope.strides == x.strides
    x64 = x.astype(np.float64)
    if approximate == "none":
        cdf = normal_cdf(x64)
        y_ref, slope_ref = x64 * cdf, cdf + x64 * np.exp(-0.5 * x64 * x64) / np.sqrt(2 * np.pi)
    else:
        c = np.sqrt(2 / np.pi)
        t = np.tanh(c * (x64 + 0.044715 * x64 ** 3))
        y_ref = 0.5 * x64 * (1 + t)
        slope_ref = 0.5 * (1 + t) + 0.5 * x64 * (1 - t * t) * c * (1 + 3 * 0.044715 * x64 ** 2)
    g = rng.standard_normal(x.shape).astype(dtype)
    dx = f.backward(g)
    tol = 1e-12 if dtype == np.float64 else 1e-6
    np.testing.assert_allclose(y, y_ref, rtol=tol, atol=tol)
    # for 'tanh' the slope multiplies 1 - h, which cancels in float32 where |x| > 3 (an error
    # of about 2e-6 there), as 1 - t^2 does in the reference
    slack = 4e-6 if approximate == "tanh" and dtype == np.float32 else tol
    np.testing.assert_allclose(dx, g * slope_ref, rtol=tol, atol=slack * np.abs(g).max())
    assert y.dtype == dx.dtype == dtype and y.strides == x.strides and dx.strides == g.strides
    assert f.slope is None                                 # read once: dx took its memory


def test_gelu_keeps_no_slope_without_a_backward_pass(rng):
    f = GELUChunked(approximate="none")
    f.recording = False                            # as apply() sets it under no_grad
    f.forward(rng.standard_normal((2, 3, 4, 4)).astype(np.float32))
    assert "slope" not in vars(f)


def test_gelu_slope_at_zero_and_at_tiny_inputs_is_one_half():
    x = np.array([0.0, -0.0, 1e-40, -1e-40, 1e-31, -1e-31], dtype=np.float32)
    f = GELUChunked(approximate="none")
    f.forward(x)
    np.testing.assert_array_equal(f.backward(np.ones_like(x)), np.full(6, 0.5, np.float32))


def test_gelu_far_out_saturates(rng):
    x = np.array([-1e4, -100.0, -6.0, 6.0, 100.0, 1e4], dtype=np.float32)
    f = GELUChunked(approximate="none")
    y = f.forward(x)
    assert np.all(np.abs(y - np.maximum(x, 0)) <= np.spacing(np.abs(x)))   # within an ulp of relu
    np.testing.assert_allclose(f.backward(np.ones_like(x)), [0, 0, 0, 1, 1, 1], atol=1e-7)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_under_no_grad_gives_the_same_values_and_keeps_nothing(rng, dtype, approximate):
    import tinyconvmixer.functional as F
    from tinyconvmixer import Tensor, no_grad
    x = (3 * rng.standard_normal((3, 70_000))).astype(dtype)
    with_grad = F.gelu(Tensor(x, requires_grad=True), approximate=approximate)
    with no_grad():
        y = F.gelu(Tensor(x, requires_grad=True), approximate=approximate)
    np.testing.assert_array_equal(y.data, with_grad.data)
    assert y._fn is None and isinstance(with_grad._fn, GELUChunked)
