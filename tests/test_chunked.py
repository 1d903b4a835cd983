"""chunked_map (the CPU's cache-blocked elementwise path) against plain NumPy expressions."""

import numpy as np
import pytest

from tinyconvmixer.functional.activation import _exact_gelu_grad
from tinyconvmixer.functional.chunked import chunked_map
from tinyconvmixer.functional.normal_cdf import normal_cdf


def axpy(out, a, b):
    np.multiply(a, 2.0, out=out)
    out += b


def layouts(rng, shape=(5, 7, 9, 11)):
    base = rng.standard_normal(shape).astype(np.float32)
    channels_last = np.ascontiguousarray(base.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
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
    import tinyconvmixer.functional.chunked as chunked
    monkeypatch.setattr(chunked, "CHUNK", 1000)
    a, b = rng.standard_normal(123_457).astype(np.float32), rng.standard_normal(123_457).astype(np.float32)
    np.testing.assert_array_equal(chunked_map(axpy, a, b), 2.0 * a + b)


def test_gelu_backward_kernel_matches_the_plain_formula(rng):
    x = (3 * rng.standard_normal((4, 8, 6, 6))).astype(np.float32)
    g = rng.standard_normal(x.shape).astype(np.float32)
    cdf = normal_cdf(x)
    plain = g * (cdf + x * np.exp(-0.5 * x * x) / np.sqrt(2 * np.pi))
    np.testing.assert_allclose(chunked_map(_exact_gelu_grad, g, x, cdf), plain, rtol=1e-6, atol=1e-6)
