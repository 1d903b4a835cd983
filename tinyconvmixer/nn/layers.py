"""The layers ConvMixer is built from, with PyTorch's names, arguments and init.

Each layer owns its parameters and calls one function of tinyconvmixer.functional.
Parameters start as float32 NumPy arrays (drawn by nn.init); use
`model.to("gpu")` to move them and `model.double()` for float64.
"""

import numpy as np

from .. import functional as F
from . import init
from .module import Module, Parameter


def _pair(value):
    return (value, value) if isinstance(value, int) else tuple(value)


class Conv2d(Module):
    """2-D convolution: weight (out, in/groups, kh, kw), bias (out,).

    padding is an int, a pair, or "same" (output size = input size, stride 1).
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 groups=1, bias=True):
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"Conv2d: groups={groups} must divide in_channels={in_channels} "
                             f"and out_channels={out_channels}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride = _pair(kernel_size), _pair(stride)
        self.padding = padding if isinstance(padding, str) else _pair(padding)
        self.groups = groups
        shape = (out_channels, in_channels // groups) + self.kernel_size
        self.weight = Parameter(init.kaiming_uniform_default(shape, np.float32))
        if bias:
            bound = 1.0 / np.sqrt(init.fan_in(shape))
            self.bias = Parameter(init.uniform((out_channels,), bound, np.float32))
        else:
            self.bias = None

    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias, stride=self.stride,
                        padding=self.padding, groups=self.groups)

    def extra_repr(self):
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding != (0, 0):
            s += f", padding={self.padding!r}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        return s + ("" if self.bias is not None else ", bias=False")


class Linear(Module):
    """y = x @ weight^T + bias with weight (out_features, in_features)."""

    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter(init.kaiming_uniform_default((out_features, in_features), np.float32))
        if bias:
            self.bias = Parameter(init.uniform((out_features,), 1.0 / np.sqrt(in_features), np.float32))
        else:
            self.bias = None

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class BatchNorm2d(Module):
    """Batch normalisation per channel with learnable scale (weight) and shift (bias).

    Buffers, as in PyTorch: running_mean (zeros), running_var (ones) and
    num_batches_tracked (an int64 scalar counting training forward passes).
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.1):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.weight = Parameter(np.ones(num_features, dtype=np.float32))
        self.bias = Parameter(np.zeros(num_features, dtype=np.float32))
        self.register_buffer("running_mean", np.zeros(num_features, dtype=np.float32))
        self.register_buffer("running_var", np.ones(num_features, dtype=np.float32))
        self.register_buffer("num_batches_tracked", np.zeros((), dtype=np.int64))

    def forward(self, x):
        if x.ndim != 4:
            raise ValueError(f"BatchNorm2d: expected a 4-D (N, C, H, W) input, got shape {x.shape}")
        if self.training:
            self.num_batches_tracked += 1        # in place: a 0-d array on the module's device
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                            training=self.training, momentum=self.momentum, eps=self.eps)

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


class GELU(Module):
    """x * Phi(x); approximate='tanh' for the tanh approximation."""

    def __init__(self, approximate="none"):
        super().__init__()
        self.approximate = approximate

    def forward(self, x):
        return F.gelu(x, approximate=self.approximate)

    def extra_repr(self):
        return "" if self.approximate == "none" else f"approximate={self.approximate!r}"


class GlobalAvgPool2d(Module):
    """Mean over H and W: (N, C, H, W) -> (N, C). Does what AdaptiveAvgPool2d((1, 1))
    followed by Flatten() does in PyTorch's ConvMixer."""

    def forward(self, x):
        return F.global_avg_pool2d(x)


class Flatten(Module):
    """(N, d1, d2, ...) -> (N, d1*d2*...). After GlobalAvgPool2d it changes nothing, but
    it keeps the layer indices (and so the state-dict keys) identical to PyTorch's."""

    def forward(self, x):
        return x.reshape(x.shape[0], -1)
