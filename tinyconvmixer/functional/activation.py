"""GELU, the activation ConvMixer uses everywhere: GELU(x) = x * Phi(x).

Phi is the standard normal CDF, Phi(x) = (1 + erf(x / sqrt 2)) / 2, so GELU
weights each input by the probability that a standard normal falls below it.
  exact:  d/dx [x Phi(x)] = Phi(x) + x phi(x),   phi(x) = exp(-x^2/2) / sqrt(2 pi)
  'tanh': the approximation 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))

The forward pass computes the output and the local slope dy/dx together and
saves only the slope, so the backward pass is one multiplication, g * slope,
and a single array per GELU waits for the backward pass. (When no backward pass
will follow, under no_grad(), it computes the output alone.) Both are computed in
cache-sized chunks on the CPU (chunked.py), where most of the work is Phi, and
by one CUDA kernel on the GPU (cuda/gelu.cu), with this code as its reference.
"""

import math

from .. import backend
from ..cuda import gelu as cuda_gelu
from ..cuda import launch
from ..tensor import Function
from .chunked import chunked_map
from .normal_cdf import normal_cdf_into

_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_C = 0.044715


class GELU(Function):
    def forward(self, x):
        want_slope = getattr(self, "recording", True)               # not under no_grad()
        if self.approximate == "none" and launch.active(x):        # GPU: one kernel
            y, self.slope = cuda_gelu.forward(x, want_slope)
        elif not want_slope:
            y = chunked_map(_tanh_gelu_value if self.approximate == "tanh" else _exact_gelu_value, x)
        else:
            kernel = _tanh_gelu if self.approximate == "tanh" else _exact_gelu
            y, self.slope = chunked_map(kernel, x, outputs=2)
        return y

    def backward(self, g):
        xp = backend.get_array_module(g)
        return xp.multiply(g, self.slope, out=xp.empty_like(self.slope))    # the slope's layout


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


def gelu(x, approximate="none"):
    """GELU as in torch.nn.functional.gelu; approximate is 'none' (erf) or 'tanh'."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return GELU.apply(x, approximate=approximate)
