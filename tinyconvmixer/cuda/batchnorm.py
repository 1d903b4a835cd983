"""Training-mode batch norm with the kernels of batchnorm.cu.

The kernels see an (M, C) array: the N*H*W pixels of a channels-last
(N, C, H, W) tensor as rows, or an (N, C) input as it is. functional/
normalization.py calls these when `launch.active(...)` holds and keeps its
xp code as the reference.
"""

from .. import backend
from . import launch

RY = 8                    # rows per block of the channel_sums kernel (blockDim.y)
PARTIAL_ROWS = 128        # block rows of channel_sums: partial sums the caller adds up
THREADS, MAX_BLOCKS = 256, 4096


def as_rows(x):
    """(N, C, H, W) or (N, C) -> a C-contiguous (M, C) array (no copy if x is channels-last)."""
    xp = backend.get_array_module(x)
    if x.ndim == 2:
        return xp.ascontiguousarray(x)
    return xp.ascontiguousarray(x.transpose(0, 2, 3, 1)).reshape(-1, x.shape[1])


def from_rows(rows, shape):
    """Inverse of as_rows: (M, C) -> shape, an NCHW-shaped view of NHWC memory."""
    if len(shape) == 2:
        return rows
    N, C, H, W = shape
    return rows.reshape(N, H, W, C).transpose(0, 3, 1, 2)


def _module(dtype):
    return launch.module("batchnorm", dtype, RY=RY)


def channel_sums(a, b):
    """(sum of a, sum of a * b) over the rows of two (M, C) arrays: float64 C-vectors."""
    xp = backend.get_array_module(a)
    M, C = a.shape
    rows = min(PARTIAL_ROWS, launch.blocks(M, RY))
    partial = xp.empty((rows, 2, C), dtype=xp.float64)
    _module(a.dtype).get_function("channel_sums")(
        (launch.blocks(C, 32), rows), (32, RY), (a, b, partial, launch.i64(M), launch.i32(C)))
    sums = partial.sum(axis=0)
    return sums[0], sums[1]


def _elementwise(name, out, *arrays):
    n, C = out.shape
    grid = (min(MAX_BLOCKS, launch.blocks(n * C, THREADS)),)
    _module(out.dtype).get_function(name)(grid, (THREADS,), (*arrays, out, launch.i64(n * C), launch.i32(C)))
    return out


def normalize(x, mean, scale, shift):
    """y = (x - mean) * scale + shift, per channel of an (M, C) array."""
    return _elementwise("bn_normalize", backend.get_array_module(x).empty_like(x), x, mean, scale, shift)


def backward(g, x, mean, kg, kx, k0):
    """dx = kg * g - kx * (x - mean) - k0, per channel of (M, C) arrays."""
    return _elementwise("bn_backward", backend.get_array_module(g).empty_like(g), g, x, mean, kg, kx, k0)
