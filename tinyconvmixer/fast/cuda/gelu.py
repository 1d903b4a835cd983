"""Exact GELU with the kernel of gelu.cu: the output and its slope in one pass.

GELUKernel (below) is the variant of functional/activation.py's GELU that
runs them, registered for exact GELU on arrays the kernels take (launch.active);
the reference's plain xp code is what the kernels are tested against. As the
reference, it keeps only the slope for the backward pass, written by the kernel
beside y (and not at all under no_grad); the backward pass is g * slope.
"""

from ...engine import backend
from ...functional.activation import GELU
from ..cpu.chunked import memory_order_views
from . import launch


def _flat(*arrays, outputs=1):
    """(outs, views): `outputs` new arrays in the layout of arrays[0], and 1-D views of the outs
    and the arrays in memory order. Where they do not share one dense layout (gaps, odd
    strides), everything is done again on C-order copies."""
    xp = backend.get_array_module(*arrays)
    for attempt in ("as is", "C order"):
        if attempt == "C order":
            arrays = [xp.ascontiguousarray(a) for a in arrays]
        outs = [xp.empty_like(arrays[0]) for _ in range(outputs)]
        views = memory_order_views(outs + list(arrays))
        if views is not None:
            return outs, views


def forward(x, want_slope=True):
    """(y, slope): GELU(x) and dGELU/dx (None unless want_slope), in x's memory layout
    where x is dense (any axis order), else in C order."""
    outs, views = _flat(x, outputs=2 if want_slope else 1)
    fy, fx = views[0], views[-1]
    fslope = views[1] if want_slope else fy          # y stands in; the kernel will not write it
    n = fx.size
    kernel = launch.kernel("gelu", "gelu_forward", x.dtype)
    kernel(*launch.grid_stride(n), (fx, fy, fslope, launch.i64(n), launch.i32(want_slope)))
    return outs[0], (outs[1] if want_slope else None)


class GELUKernel(GELU):
    """Exact GELU by the kernels of gelu.cu, keeping only the slope for the backward pass."""

    def forward(self, x):
        y, slope = forward(x, want_slope=self.recording)
        if self.recording:
            self.slope = slope
        return y

    def backward(self, g):
        return g * self.slope


def when(x, approximate="none", **settings):
    return approximate == "none" and launch.active(x)
