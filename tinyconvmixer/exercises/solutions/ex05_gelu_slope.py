"""Exercise 5, a reference solution: GELU's slope."""

import math

from tinyconvmixer.engine import backend
from tinyconvmixer.functional.activation import normal_cdf


def gelu_slope(x):
    """d/dx [x Phi(x)] = Phi(x) + x phi(x), elementwise, for an array x."""
    xp = backend.get_array_module(x)
    pdf = xp.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
    return normal_cdf(x) + x * pdf
