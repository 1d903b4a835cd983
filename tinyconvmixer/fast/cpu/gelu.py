"""GELU on the CPU in cache-sized chunks: the variant of functional/activation.py's GELU.

Like the reference, the forward pass computes y alone and keeps nothing that
the tape does not hold already: its input x (the tape holds it) and its output
y (the next op's input), so no slope array waits for the backward pass. The
backward pass gets the slope back from those two with one exp and no erf:

    exact:  slope = Phi(x) + x phi(x),  and Phi(x) = y / x, the forward's own value
    'tanh': slope = h + 2 x h (1 - h) u',  h = (1 + t) / 2 = y / x,  u' as in the reference

(where |x| < 1e-30, h is Phi(0) = 1/2). Both passes run chunk by chunk on the
CPU's threads (chunked.py), with every temporary a scratch chunk filled with
`out=`. For float32, Phi in the forward pass is a rational function instead of
SciPy's erf, which costs about 12 ns an element here (NumPy's exp about 4 ns,
its multiply 0.25 ns, on the project's AMD EPYC):

    Phi(x) = 1/2 + x P(x^2) / Q(x^2),  x clamped to +-4 sqrt 2

with P of degree 6 and Q of degree 4 in x^2: the float32 erf of Eigen and XLA,
rescaled from erf(z) to Phi(x) = (1 + erf(x / sqrt 2)) / 2. Its largest error
is 4e-8 (against float64); beyond the clamp Phi is 1 or about 3e-8, so y there
is within half an ulp of x or of 0 * x. float64 keeps the reference's erf.
"""

import math

import numpy as np

from ...engine import backend
from ...functional.activation import GELU, normal_cdf
from .chunked import chunked_map

_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_C = 0.044715
_TINY = 1e-30                    # below this |x|, y / x is no longer Phi(x) (0/0, subnormals)
_LIMIT = 4.0 * math.sqrt(2.0)    # the rational Phi is fitted on [-_LIMIT, _LIMIT]
_P = (1.0557466595229365e-10, -2.145990474565118e-08, 3.254634397810506e-06,
      0.00017636187818949488, 0.0045542093071183655, 0.036615067979520334, 0.3989422545398019)
_Q = (6.38202694858039e-05, 0.001869768301664804, 0.029492775302725233, 0.2584459884133409, 1.0)

_constants = {}


def _k(value, dtype):
    """value as a 0-d array of dtype: NumPy's cheapest operand (no conversion per call)."""
    key = (value, dtype)
    if key not in _constants:
        _constants[key] = np.array(value, dtype=dtype)
    return _constants[key]


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


def _phi_into(out, x, xc, x2, q):
    """out = Phi(x): the rational function for float32 (xc, x2, q: scratch), else SciPy's erf."""
    if x.dtype != np.float32:
        out[...] = normal_cdf(x)
        return
    d = x.dtype
    np.clip(x, _k(-_LIMIT, d), _k(_LIMIT, d), out=xc)
    np.multiply(xc, xc, out=x2)
    for p, coefficients in ((out, _P), (q, _Q)):     # Horner: P(x^2) and Q(x^2)
        np.multiply(x2, _k(coefficients[0], d), out=p)
        p += _k(coefficients[1], d)
        for c in coefficients[2:]:
            p *= x2
            p += _k(c, d)
    out *= xc
    out /= q
    out += _k(0.5, d)


def _exact_value(y, x, xc, x2, q):
    """y = x Phi(x)."""
    _phi_into(y, x, xc, x2, q)
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
