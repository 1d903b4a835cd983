"""GELU, the activation ConvMixer uses everywhere: GELU(x) = x * Phi(x).

Phi is the standard normal CDF, Phi(x) = (1 + erf(x / sqrt 2)) / 2, so GELU
weights each input by the probability that a standard normal falls below it.
  exact:  d/dx [x Phi(x)] = Phi(x) + x phi(x),   phi(x) = exp(-x^2/2) / sqrt(2 pi)
  'tanh': the approximation 0.5 x (1 + tanh(u)),  u = sqrt(2/pi) (x + 0.044715 x^3),
          whose slope is (1 + t) / 2 + x (1 - t^2) u' / 2  with t = tanh(u),
          u' = sqrt(2/pi) (1 + 3 * 0.044715 x^2)

The forward pass keeps the local slope dy/dx (one array the size of x) for the
backward pass, which is then one product: g * slope. It keeps neither x nor y:
the op before GELU (a convolution) does not need its output again, so with the
slope saved nothing else holds x, and the op after it (BatchNorm) keeps y as its
own input. The slope costs an exp in the forward pass, and only when a backward
pass will follow (self.recording); under no_grad it is skipped.

This plain code is the reference; fast/ has faster variants of it (cache-sized
chunks and a quicker erf on the CPU, one CUDA kernel on the GPU).
"""

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
        xp = backend.get_array_module(x)
        if self.approximate == "tanh":
            t = xp.tanh(_SQRT_2_OVER_PI * x * (1.0 + _C * (x * x)))
            phi = 0.5 * (1.0 + t)
            if self.recording:                       # the slope of 0.5 x (1 + t), while t is at hand
                du = _SQRT_2_OVER_PI * (1.0 + 3.0 * _C * (x * x))
                self.slope = phi + 0.5 * x * (1.0 - t * t) * du
        else:
            phi = normal_cdf(x)
            if self.recording:                       # the product rule: Phi(x) + x phi(x)
                self.slope = phi + x * (xp.exp(-0.5 * (x * x)) * _INV_SQRT_2PI)
        return xp.multiply(x, phi, out=xp.empty_like(x))    # y in x's memory layout (channels-last
                                                            # stays so; CuPy's x * phi is C order)

    def backward(self, g):
        return g * self.slope


def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    """GELU as in torch.nn.functional.gelu; approximate is 'none' (erf) or 'tanh'."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return GELU.apply(x, approximate=approximate)
