"""The fast float32 normal CDF (used by exact GELU on the CPU) against SciPy's erf."""

import numpy as np
import pytest
from scipy.special import ndtr

import tinyconvmixer.functional as F
from tinyconvmixer import Tensor
from tinyconvmixer.fast.cpu.normal_cdf import normal_cdf, normal_cdf_fast


@pytest.mark.parametrize("scale", [0.5, 3.0, 12.0])
def test_fast_path_matches_reference(scale, rng):
    x = (scale * rng.standard_normal(100_003)).astype(np.float32)     # not a multiple of the chunk
    ref = ndtr(x.astype(np.float64))
    assert np.abs(normal_cdf_fast(x) - ref).max() < 1e-6
    assert normal_cdf_fast(x).dtype == np.float32


def test_fast_path_edges():
    x = np.array([0.0, -0.0, 1e-8, -1e-8, 40.0, -40.0, np.inf, -np.inf], dtype=np.float32)
    np.testing.assert_allclose(normal_cdf_fast(x), ndtr(x.astype(np.float64)), atol=1e-7)
    np.testing.assert_array_equal(normal_cdf_fast(x[:2]), [0.5, 0.5])    # the float32 sum at 0


def test_non_contiguous_and_shape(rng):
    x = rng.standard_normal((4, 5, 6)).astype(np.float32).transpose(2, 0, 1)
    out = normal_cdf_fast(x)
    assert out.shape == x.shape
    np.testing.assert_allclose(out, ndtr(x.astype(np.float64)), atol=1e-6)


def test_float64_uses_the_exact_reference(rng):
    x = rng.standard_normal(1000)
    np.testing.assert_allclose(normal_cdf(x), ndtr(x), rtol=1e-14, atol=1e-16)


def test_float32_gelu_matches_float64_gelu(rng):
    x = (3 * rng.standard_normal((8, 16, 5, 5))).astype(np.float32)
    ours = F.gelu(Tensor(x)).numpy()
    ref = F.gelu(Tensor(x.astype(np.float64))).numpy()
    np.testing.assert_allclose(ours, ref, rtol=2e-6, atol=2e-6)
