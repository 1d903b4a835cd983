"""GELU, the activation ConvMixer uses everywhere: GELU(x) = x * Phi(x).

Phi is the standard normal CDF, Phi(x) = (1 + erf(x / sqrt 2)) / 2, so GELU
weights each input by the probability that a standard normal falls below it.
  exact:  d/dx [x Phi(x)] = Phi(x) + x phi(x),   phi(x) = exp(-x^2/2) / sqrt(2 pi)
  'tanh': the approximation 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
"""

import math

from .. import backend
from ..tensor import Function
from .chunked import chunked_map
from .normal_cdf import normal_cdf

_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_C = 0.044715


class GELU(Function):
    def forward(self, x):
        self.x = x
        if self.approximate == "tanh":
            self.t = backend.get_array_module(x).tanh(_SQRT_2_OVER_PI * (x + _C * x ** 3))
            return 0.5 * x * (1.0 + self.t)
        self.cdf = normal_cdf(x)          # erf-based; a fast float32 path on the CPU (see normal_cdf.py)
        return x * self.cdf

    def backward(self, g):
        x = self.x
        if self.approximate == "tanh":
            t = self.t   # d/dx tanh(u) = (1 - t^2) u',  u' = sqrt(2/pi) (1 + 3c x^2)
            du = _SQRT_2_OVER_PI * (1.0 + 3.0 * _C * x * x)
            return g * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du)
        return chunked_map(_exact_gelu_grad, g, x, self.cdf)


def _exact_gelu_grad(out, g, x, cdf):
    """out = g * (Phi(x) + x phi(x)), with phi(x) = exp(-x^2 / 2) / sqrt(2 pi)."""
    xp = backend.get_array_module(x)
    pdf = x * x
    pdf *= -0.5
    xp.exp(pdf, out=pdf)
    pdf *= _INV_SQRT_2PI
    pdf *= x
    pdf += cdf
    xp.multiply(g, pdf, out=out)


def gelu(x, approximate="none"):
    """GELU as in torch.nn.functional.gelu; approximate is 'none' (erf) or 'tanh'."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return GELU.apply(x, approximate=approximate)
