"""Elementwise work in cache-sized chunks, shared among the CPU threads.

NumPy evaluates `g * (cdf + x * c * exp(-0.5 * x * x))` one operator at a time:
six passes over 8 MB arrays, each writing a new 8 MB temporary that falls out of
the cache before the next pass reads it. `chunked_map` evaluates such an
expression on 65,536 elements (256 KB) at a time instead, so the temporaries stay
in the cache, and hands blocks of chunks to threads (backend.run_blocks).

It walks the arrays in memory order, so it works for any dense layout
(channels-last included) as long as all arrays share it; otherwise it copies
them to C order first. The result has the layout of the first array.
On the GPU there is nothing to gain from chunks: it is one call on the whole arrays.
"""

from .. import backend

CHUNK = 65536                                     # elements: 256 KB of float32, about an L2 cache


def chunked_map(kernel, *arrays):
    """out = kernel(*arrays), computed chunk by chunk; kernel(out, *chunks) fills out in place."""
    xp = backend.get_array_module(*arrays)
    ref = arrays[0]
    out = xp.empty_like(ref)                              # same memory layout as ref
    if xp is not backend.numpy_module():
        kernel(out, *arrays)
        return out
    views = _memory_order_views([out, *arrays])
    if views is None:                                     # layouts differ: copy to C order
        arrays = [xp.ascontiguousarray(a) for a in arrays]
        out = xp.empty_like(arrays[0])
        views = [a.reshape(-1) for a in (out, *arrays)]
    flat_out, flat_in = views[0], views[1:]

    def run(b0, b1):
        for s in range(b0, b1, CHUNK):
            e = min(s + CHUNK, b1)
            kernel(flat_out[s:e], *[a[s:e] for a in flat_in])
    backend.run_blocks(run, flat_out.size, 16 * CHUNK, xp)
    return out


def _memory_order_views(arrays):
    """1-D views of arrays that share one dense layout, in memory order (else None)."""
    ref = arrays[0]
    if any(a.shape != ref.shape or a.strides != ref.strides for a in arrays):
        return None
    order = sorted(range(ref.ndim), key=lambda axis: -ref.strides[axis])
    if not ref.transpose(order).flags.c_contiguous:
        return None                                       # gaps or overlaps in memory
    return [a.transpose(order).reshape(-1) for a in arrays]
