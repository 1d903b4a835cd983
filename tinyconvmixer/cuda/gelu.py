"""Exact GELU and its slope in one pass, with the kernel of gelu.cu.

functional/activation.py calls `forward` when `launch.active(x)` holds; its
chunked xp code stays the reference the kernel is tested against.
"""

from .. import backend
from ..functional.chunked import memory_order_views
from . import launch

THREADS, MAX_BLOCKS = 256, 4096


def forward(x):
    """(y, slope): GELU(x) and dGELU/dx, both with x's memory layout."""
    xp = backend.get_array_module(x)
    y, slope = xp.empty_like(x), xp.empty_like(x)
    views = memory_order_views([y, slope, x])
    if views is None:                              # gaps or odd strides: work on a C-order copy
        x = xp.ascontiguousarray(x)
        y, slope = xp.empty_like(x), xp.empty_like(x)
        views = [a.reshape(-1) for a in (y, slope, x)]
    fy, fslope, fx = views
    n = fx.size
    kernel = launch.module("gelu", x.dtype).get_function("gelu_forward")
    kernel((min(MAX_BLOCKS, launch.blocks(n, THREADS)),), (THREADS,), (fx, fy, fslope, launch.i64(n)))
    return y, slope
