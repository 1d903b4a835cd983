"""Seeded parameter initialisation, with PyTorch's default rules.

All initial weights are drawn on the host from one NumPy Generator, so a run
is reproducible: call `manual_seed(seed)` before building a model (like
torch.manual_seed) and the same seed gives the same weights on any device.

PyTorch's Conv2d and Linear initialise their weight with
kaiming_uniform_(a=sqrt(5)), which works out to U(-b, b) with
    b = gain * sqrt(3 / fan_in),  gain = sqrt(2 / (1 + a^2)) = sqrt(1/3)
      = 1 / sqrt(fan_in)
and their bias with U(-1/sqrt(fan_in), 1/sqrt(fan_in)) as well, where fan_in is
the number of inputs one output sees: in_channels/groups * kh * kw for a conv,
in_features for a linear layer.
"""

import math

import numpy as np

_generator = np.random.default_rng(0)


def manual_seed(seed):
    """Reset the generator that all later initialisations draw from."""
    global _generator
    _generator = np.random.default_rng(seed)
    return _generator


def default_generator():
    """The generator used when a layer is given no `rng`."""
    return _generator


def fan_in(shape):
    """Inputs per output of a weight of shape (out, in, *kernel): in * prod(kernel)."""
    if len(shape) < 2:
        raise ValueError(f"fan_in needs a weight with at least 2 dims, got shape {shape}")
    return int(np.prod(shape[1:]))


def uniform(shape, bound, dtype, rng=None):
    """A host (NumPy) array drawn from U(-bound, bound), cast to `dtype`."""
    rng = _generator if rng is None else rng
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


def kaiming_uniform_default(shape, dtype, rng=None):
    """PyTorch's default weight init for Conv2d/Linear: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    return uniform(shape, 1.0 / math.sqrt(fan_in(shape)), dtype, rng)
