"""Elementwise work in cache-sized chunks, shared among the CPU threads.

NumPy evaluates `g * (cdf + x * c * exp(-0.5 * x * x))` one operator at a time:
six passes over 8 MB arrays, each writing a new 8 MB temporary that falls out of
the cache before the next pass reads it. `chunked_map` evaluates such an
expression on 65,536 elements (256 KB) at a time instead, so the temporaries stay
in the cache, and hands blocks of chunks to threads (threads.run_blocks).

It walks the arrays in memory order, so it works for any dense layout
(channels-last included) as long as all arrays share it; otherwise it copies
them to C order first. The result has the layout of the first array.
On the GPU there is nothing to gain from chunks: it is one call on the whole arrays.
"""

import numpy as np

from ...engine import backend
from .threads import run_blocks

CHUNK = 65536                                     # elements: 256 KB of float32, about an L2 cache


def chunked_map(kernel, *arrays, outputs=1):
    """Elementwise kernel over arrays, chunk by chunk.

    kernel(out_1, ..., out_k, *chunks) fills the k = `outputs` output chunks in
    place. Returns the output array, or a tuple of them when outputs > 1.
    """
    xp = backend.get_array_module(*arrays)
    outs = [xp.empty_like(arrays[0]) for _ in range(outputs)]   # same memory layout as arrays[0]
    if xp is not np:
        kernel(*outs, *arrays)
        return outs[0] if outputs == 1 else tuple(outs)
    views = memory_order_views([*outs, *arrays])
    if views is None:                                     # layouts differ: copy to C order
        arrays = [xp.ascontiguousarray(a) for a in arrays]
        outs = [xp.empty_like(arrays[0]) for _ in range(outputs)]
        views = [a.reshape(-1) for a in (*outs, *arrays)]

    def run(b0, b1):
        for s in range(b0, b1, CHUNK):
            e = min(s + CHUNK, b1)
            kernel(*[v[s:e] for v in views])
    run_blocks(run, views[0].size, 16 * CHUNK, xp)
    return outs[0] if outputs == 1 else tuple(outs)


def memory_order_views(arrays):
    """1-D views of arrays that share one dense layout, in memory order (else None).

    The stride of an axis of length 1 is never used to step, and NumPy and CuPy set it
    freely (empty_like need not copy it), so only the other axes' strides must agree."""
    ref = arrays[0]
    used = [axis for axis, n in enumerate(ref.shape) if n > 1]
    if any(a.shape != ref.shape or any(a.strides[i] != ref.strides[i] for i in used) for a in arrays):
        return None
    order = sorted(range(ref.ndim), key=lambda axis: -ref.strides[axis])
    if not ref.transpose(order).flags.c_contiguous:
        return None                                       # gaps or overlaps in memory
    return [a.transpose(order).reshape(-1) for a in arrays]
