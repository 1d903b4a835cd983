"""Exact GELU and its slope in one pass, with the kernel of gelu.cu.

GELUKernel (below) is the variant of functional/activation.py's GELU that
runs it, registered for exact GELU on arrays the kernels take (launch.active);
the reference's plain xp code is what the kernel is tested against.
"""

from ...engine import backend
from ...functional.activation import GELU
from ..cpu.chunked import memory_order_views
from . import launch


def forward(x, want_slope=True):
    """(y, slope): GELU(x) and dGELU/dx (None unless want_slope), in x's memory layout
    where x is dense (any axis order), else in C order."""
    xp = backend.get_array_module(x)
    for attempt in ("as is", "C order"):
        if attempt == "C order":                   # gaps or odd strides: work on a C-order copy
            x = xp.ascontiguousarray(x)
        y = xp.empty_like(x)
        slope = xp.empty_like(x) if want_slope else y      # y stands in; the kernel will not write it
        views = memory_order_views([y, slope, x])
        if views is not None:
            break
    fy, fslope, fx = views
    n = fx.size
    kernel = launch.kernel("gelu", "gelu_forward", x.dtype)
    kernel(*launch.grid_stride(n), (fx, fy, fslope, launch.i64(n), launch.i32(want_slope)))
    return y, (slope if want_slope else None)


class GELUKernel(GELU):
    """Exact GELU by the kernel of gelu.cu: the output and the slope in one pass."""

    def forward(self, x):
        y, self.slope = forward(x, want_slope=self.recording)
        return y


def when(x, approximate="none", **settings):
    return approximate == "none" and launch.active(x)
