"""GELU on the CPU in cache-sized chunks: the variant of functional/activation.py's GELU.

The reference evaluates x Phi(x) and its slope one NumPy operator at a time,
each pass writing a batch-sized temporary that has left the cache before the
next pass reads it. Here chunked.py hands the same arithmetic 65,536 elements
at a time to the CPU's threads, with every temporary chunk-sized, and float32
inputs get Phi from normal_cdf.py's faster erf (float32's own precision).
"""

import math

import numpy as np

from ...engine import backend
from ...functional.activation import GELU
from .chunked import chunked_map
from .normal_cdf import normal_cdf_into

_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_C = 0.044715


class GELUChunked(GELU):
    """GELU and its slope in cache-sized chunks, on the CPU's threads."""

    def forward(self, x):
        tanh = self.approximate == "tanh"
        if not self.recording:                       # no backward pass will follow: y alone
            return chunked_map(_tanh_gelu_value if tanh else _exact_gelu_value, x)
        y, self.slope = chunked_map(_tanh_gelu if tanh else _exact_gelu, x, outputs=2)
        return y

    def backward(self, g):
        xp = backend.get_array_module(g)
        return xp.multiply(g, self.slope, out=xp.empty_like(self.slope))    # the slope's layout


def when(x, **settings):
    return backend.get_array_module(x) is np


def _exact_gelu(y, slope, x):
    """y = x Phi(x);  slope = Phi(x) + x phi(x)."""
    xp = backend.get_array_module(x)
    normal_cdf_into(slope, x)               # slope holds Phi(x) for now (normal_cdf.py)
    xp.multiply(x, slope, out=y)
    pdf = x * x
    pdf *= -0.5
    xp.exp(pdf, out=pdf)
    pdf *= _INV_SQRT_2PI                    # phi(x)
    pdf *= x
    slope += pdf


def _exact_gelu_value(y, x):
    """y = x Phi(x) alone, when no backward pass will follow."""
    normal_cdf_into(y, x)
    y *= x


def _tanh_gelu_value(y, x):
    """y = x (1 + t) / 2 alone (the same operations as _tanh_gelu, so the same values)."""
    xp = backend.get_array_module(x)
    t = xp.tanh(_SQRT_2_OVER_PI * x * (1.0 + _C * (x * x)))
    xp.multiply(x, 0.5 * (1.0 + t), out=y)


def _tanh_gelu(y, slope, x):
    """y = x (1 + t) / 2 with t = tanh(u), u = sqrt(2/pi) (x + c x^3);
    slope = (1 + t) / 2 + x (1 - t^2) u' / 2, with u' = sqrt(2/pi) (1 + 3 c x^2)."""
    xp = backend.get_array_module(x)
    x2 = x * x
    t = xp.tanh(_SQRT_2_OVER_PI * x * (1.0 + _C * x2))
    half = 0.5 * (1.0 + t)
    xp.multiply(x, half, out=y)
    slope[...] = half + 0.5 * x * (1.0 - t * t) * (_SQRT_2_OVER_PI * (1.0 + 3.0 * _C * x2))
