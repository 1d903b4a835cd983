"""GELU, the activation ConvMixer uses everywhere: GELU(x) = x * Phi(x).

Phi is the standard normal CDF, Phi(x) = (1 + erf(x / sqrt 2)) / 2, so GELU
weights each input by the probability that a standard normal falls below it.
  exact:  d/dx [x Phi(x)] = Phi(x) + x phi(x),   phi(x) = exp(-x^2/2) / sqrt(2 pi)
  'tanh': the approximation 0.5 x (1 + tanh(u)),  u = sqrt(2/pi) (x + 0.044715 x^3),
          whose slope is (1 + t) / 2 + x (1 - t^2) u' / 2  with t = tanh(u),
          u' = sqrt(2/pi) (1 + 3 * 0.044715 x^2)

The forward pass computes the output alone and keeps only its input x, which
the tape holds anyway (it is this node's input). The backward pass computes the
local slope dy/dx from x when it needs it (`slope`, below) and multiplies:
g * slope. So no array of its own per GELU waits for the backward pass, as in
PyTorch; the price is computing Phi(x) a second time.

This plain code is the reference; fast/ has faster variants of it (cache-sized
chunks and a quicker erf on the CPU, one CUDA kernel on the GPU).
"""

import functools
import math

from ..engine import Function, Tensor, backend

_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_C = 0.044715


def normal_cdf(x):
    """Phi(x) = (1 + erf(x / sqrt 2)) / 2, with the erf of SciPy (CPU) or CuPy (GPU)."""
    return 0.5 * (1.0 + backend.erf(x * (1.0 / math.sqrt(2.0))))


class GELU(Function):
    """Setting: approximate ('none' or 'tanh')."""

    def forward(self, x):
        self.x = x
        xp = backend.get_array_module(x)
        if self.approximate == "tanh":
            t = xp.tanh(_SQRT_2_OVER_PI * x * (1.0 + _C * (x * x)))
            phi = 0.5 * (1.0 + t)
        else:
            phi = normal_cdf(x)
        return xp.multiply(x, phi, out=xp.empty_like(x))    # y in x's memory layout (channels-last
                                                            # stays so; CuPy's x * phi is C order)

    def backward(self, g):
        return g * self.slope

    @functools.cached_property
    def slope(self):
        """dGELU/dx at the saved input x, computed when the backward pass first asks for it."""
        x, xp = self.x, backend.get_array_module(self.x)
        if self.approximate == "tanh":
            t = xp.tanh(_SQRT_2_OVER_PI * x * (1.0 + _C * (x * x)))
            du = _SQRT_2_OVER_PI * (1.0 + 3.0 * _C * (x * x))
            return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du
        return normal_cdf(x) + x * (xp.exp(-0.5 * (x * x)) * _INV_SQRT_2PI)   # the product rule


def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    """GELU as in torch.nn.functional.gelu; approximate is 'none' (erf) or 'tanh'."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return GELU.apply(x, approximate=approximate)
