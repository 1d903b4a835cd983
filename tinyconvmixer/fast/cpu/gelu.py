"""GELU on the CPU in cache-sized chunks: the variant of functional/activation.py's GELU.

Like the reference, the forward pass computes y alone and keeps nothing that
the tape does not hold already: its input x (the tape holds it) and its output
y (the next op's input), so no slope array waits for the backward pass. The
backward pass gets the slope back from those two with one exp and no erf:

    exact:  slope = Phi(x) + x phi(x),  and Phi(x) = y / x, the forward's own value
    'tanh': slope = h + 2 x h (1 - h) u',  h = (1 + t) / 2 = y / x,  u' as in the reference

(where |x| < 1e-30, h is Phi(0) = 1/2). Both passes run chunk by chunk on the
CPU's threads (chunked.py), with every temporary a scratch chunk filled with
`out=`. For float32, Phi in the forward pass is normal_cdf.py's rational
function instead of SciPy's erf (no transcendental call at all; beyond its
clamp, |x| > 4 sqrt 2, y is within an ulp of x or of 0); float64 keeps the
reference's erf.
"""

import math

import numpy as np

from ...engine import backend
from ...functional.activation import GELU
from .chunked import chunked_map
from .normal_cdf import constant as _k, normal_cdf_into

_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_C = 0.044715
_TINY = 1e-30                    # below this |x|, y / x is no longer Phi(x) (0/0, subnormals)


class GELUChunked(GELU):
    """GELU in cache-sized chunks on the CPU's threads; the slope recomputed from x and y."""

    def forward(self, x):
        tanh = self.approximate == "tanh"
        y = chunked_map(_tanh_value if tanh else _exact_value, x, scratch=3)
        if self.recording:
            self.x, self.y = x, y             # both on the tape anyway: no new memory
        return y

    def backward(self, g):
        tanh = self.approximate == "tanh"
        return chunked_map(_tanh_grad if tanh else _exact_grad, g, self.x, self.y, scratch=2)


def when(x, **settings):
    return backend.get_array_module(x) is np


def _exact_value(y, x, xc, x2, q):
    """y = x Phi(x)."""
    normal_cdf_into(y, x, xc, x2, q)
    y *= x


def _phi_from_output(h, x, y, mask_scratch):
    """h = y / x, which is Phi(x) (exact GELU) or (1 + t) / 2 (tanh); 1/2 where |x| < _TINY."""
    d = x.dtype
    with np.errstate(divide="ignore", invalid="ignore"):
        np.divide(y, x, out=h)
    np.abs(x, out=mask_scratch)
    np.copyto(h, _k(0.5, d), where=mask_scratch < _k(_TINY, d))


def _exact_grad(dx, g, x, y, e, m):
    """dx = g (Phi(x) + x phi(x)), with Phi(x) = y / x and phi(x) = exp(-x^2/2) / sqrt(2 pi)."""
    d = x.dtype
    np.multiply(x, x, out=e)
    e *= _k(-0.5, d)
    np.exp(e, out=e)
    e *= x
    e *= _k(_INV_SQRT_2PI, d)                        # x phi(x)
    _phi_from_output(dx, x, y, m)                     # Phi(x)
    dx += e
    dx *= g


def _tanh_value(y, x, u, t, _):
    """y = x (1 + t) / 2 with t = tanh(sqrt(2/pi) (x + c x^3))."""
    d = x.dtype
    np.multiply(x, x, out=u)
    u *= _k(_C, d)
    u += _k(1.0, d)
    u *= x
    u *= _k(_SQRT_2_OVER_PI, d)
    np.tanh(u, out=t)
    t += _k(1.0, d)
    t *= _k(0.5, d)
    np.multiply(x, t, out=y)


def _tanh_grad(dx, g, x, y, a, m):
    """dx = g (h + 2 x h (1 - h) u'), h = y / x = (1 + t) / 2, u' = sqrt(2/pi) (1 + 3 c x^2)."""
    d = x.dtype
    _phi_from_output(dx, x, y, m)                     # h
    np.multiply(x, x, out=a)
    a *= _k(3.0 * _C, d)
    a += _k(1.0, d)
    a *= _k(2.0 * _SQRT_2_OVER_PI, d)
    a *= x                                            # 2 x u'
    a *= dx
    np.subtract(_k(1.0, d), dx, out=m)                # (m: free again after _phi_from_output)
    a *= m                                            # 2 x u' h (1 - h)
    dx += a
    dx *= g
