"""Exact GELU with the kernels of gelu.cu: the output in one pass, the input's gradient in another.

GELUKernel (below) is the variant of functional/activation.py's GELU that
runs them, registered for exact GELU on arrays the kernels take (launch.active);
the reference's plain xp code is what the kernels are tested against. As the
reference, it keeps only its input (on the tape anyway) for the backward pass,
which recomputes the slope from it inside the kernel: no slope array.
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


def backward(x, g):
    """dx = g * dGELU/dx at x, in g's memory layout where x and g share it, else in C order."""
    (dx,), (fdx, fg, fx) = _flat(g, x)
    n = fx.size
    launch.kernel("gelu", "gelu_backward", x.dtype)(*launch.grid_stride(n), (fx, fg, fdx, launch.i64(n)))
    return dx


class GELUKernel(GELU):
    """Exact GELU by the kernels of gelu.cu, keeping only the input for the backward pass."""

    def forward(self, x):
        y, _ = forward(x, want_slope=False)
        self.x = x
        return y

    def backward(self, g):
        return backward(self.x, g)


def when(x, approximate="none", **settings):
    return approximate == "none" and launch.active(x)
