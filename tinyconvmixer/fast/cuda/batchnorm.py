"""Training-mode batch norm with the kernels of batchnorm.cu.

The kernels see an (M, C) array: the N*H*W pixels of a channels-last
(N, C, H, W) tensor as rows, or an (N, C) input as it is. These are the passes
of fast/rows.py's BatchNormRows on the GPU (BatchNormKernels, below); cpu/rowwise.py
has the same four functions (mean_var, normalize, grad_sums, backward) for the
CPU, and functional/normalization.py is the reference both are tested against.
"""

import types

from ...engine import backend
from ..rows import BatchNormRows, applies
from . import launch

RY = 8                    # rows per block of the channel_sums kernel (blockDim.y)
THREADS = max(32 * RY, launch.grid_stride(1)[1][0])   # the largest block of any kernel of batchnorm.cu
PARTIAL_ROWS = 128        # block rows of channel_sums: partial sums the caller adds up


def defines():
    return dict(RY=RY)


def _kernel(function, dtype):
    return launch.kernel("batchnorm", function, dtype, **defines())


def channel_sums(a, b):
    """(sum of a, sum of a * b) over the rows of two (M, C) arrays: float64 C-vectors."""
    xp = backend.get_array_module(a)
    M, C = a.shape
    rows = min(PARTIAL_ROWS, launch.blocks(M, RY))
    partial = xp.empty((rows, 2, C), dtype=xp.float64)
    _kernel("channel_sums", a.dtype)(
        (launch.blocks(C, 32), rows), (32, RY), (a, b, partial, launch.i64(M), launch.i32(C)))
    sums = partial.sum(axis=0)
    return sums[0], sums[1]


def mean_var(x):
    """Per-column mean and biased variance of (M, C) x: E[x] and E[x^2] - E[x]^2 from one
    read of x. The sums are float64, so the difference does not cancel away float32 digits."""
    xp = backend.get_array_module(x)
    s1, s2 = channel_sums(x, x)
    mean = s1 / x.shape[0]
    return mean.astype(x.dtype), xp.maximum(s2 / x.shape[0] - mean * mean, 0).astype(x.dtype)


def grad_sums(g, x, mean):
    """Per column: sum of g and sum of g * (x - mean), from float64 sums of g and g * x."""
    sum_g, sum_gx = channel_sums(g, x)
    return sum_g, sum_gx - mean * sum_g


def _elementwise(name, out, *arrays):
    n, C = out.shape
    _kernel(name, out.dtype)(*launch.grid_stride(n * C), (*arrays, out, launch.i64(n * C), launch.i32(C)))
    return out


def normalize(x, mean, scale, shift, out):
    """out = (x - mean) * scale + shift, per channel of (M, C) arrays."""
    return _elementwise("bn_normalize", out, x, mean, scale, shift)


def backward(g, x, mean, kg, kx, k0, out):
    """out = dx = kg * g - kx * (x - mean) - k0, per channel of (M, C) arrays."""
    return _elementwise("bn_backward", out, g, x, mean, kg, kx, k0)


class BatchNormKernels(BatchNormRows):
    """BatchNorm by the kernels of batchnorm.cu."""

    impl = types.SimpleNamespace(mean_var=mean_var, normalize=normalize, grad_sums=grad_sums,
                                 backward=backward)


def when(x, weight=None, bias=None, **settings):
    """Arrays the kernels take (launch.active): CuPy, float32 or float64, one dtype."""
    return applies(x, weight, bias) and launch.active(*[a for a in (x, weight, bias) if a is not None])
