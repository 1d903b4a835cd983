"""Elementwise work in cache-sized chunks, shared among the CPU threads.

NumPy evaluates `g * (cdf + x * c * exp(-0.5 * x * x))` one operator at a time:
six passes over 8 MB arrays, each writing a new 8 MB temporary that falls out of
the cache before the next pass reads it. `chunked_map` evaluates such an
expression on one chunk at a time instead, small enough that the chunk's
inputs, outputs and temporaries all stay in one core's share of the caches
(machine.core_cache_bytes: 131,072 float32 elements for GELU on the project's
AMD EPYC), and hands blocks of chunks to threads (threads.run_blocks). The
temporaries are scratch chunks allocated once per block and filled with `out=`,
so the hot loop allocates nothing; a kernel's constants are 0-d arrays made once
(`constants`).

It walks the arrays in memory order, so it works for any dense layout
(channels-last included) as long as all arrays share it; otherwise it copies
them to C order first. The results have the layout of the first array.
On the GPU there is nothing to gain from chunks: it is one call on the whole arrays.
"""

import functools

import numpy as np

from ...engine import backend
from . import machine
from .threads import run_blocks

CHUNKS_PER_BLOCK = 4             # chunks a thread takes at a time (threads.run_blocks)


def chunk_elements(itemsize=4, arrays=6, largest=131072):
    """Elements per chunk: `arrays` chunk-sized arrays of `itemsize` bytes in one core's cache
    budget (machine.core_cache_bytes), rounded down to a power of two in [8192, largest].

    Each NumPy call costs about a microsecond besides its work, and more where the threads
    wait for each other between calls (Python's GIL), so chunks that spill from the L2 into
    the L3 still win until the L3's share is full. Measured on the 2-core AMD EPYC (512 KiB
    L2, 8 MiB L3): GELU forward and backward on one thread, 4,096-element chunks 71 ms,
    16,384 39 ms, 32,768 to 131,072 32-34 ms; GELU's forward pass at batch 32 on both
    threads, 65,536 12.0 ms, 131,072 10.9 ms, 262,144 12.9 ms."""
    n = machine.core_cache_bytes() // (arrays * itemsize)
    return int(min(largest, max(8192, 1 << max(0, n.bit_length() - 1))))


@functools.lru_cache(maxsize=None)
def constants(dtype, *values):
    """values as 0-d arrays of dtype, made once: NumPy's cheapest operands.

    Measured on the project's AMD EPYC, a multiply of 16 float32 elements by a 0-d array
    takes 0.9 us, by a Python float 1.9 (converted on every call). A kernel asks once per
    chunk for all its constants: a look-up per operation took as long as the operation
    itself, and the threads wait for each other while Python runs (the GIL)."""
    return tuple(np.array(v, dtype=dtype) for v in values)


def chunked_map(kernel, *arrays, outputs=1, scratch=0, into=None):
    """Elementwise kernel over arrays, chunk by chunk.

    kernel(out_1, ..., out_k, *chunks, *scratch_chunks) fills the k = `outputs` output
    chunks in place; `scratch` more chunk-sized arrays of the first array's dtype are
    given for its temporaries (their contents are undefined). Returns the output array,
    or a tuple of them when outputs > 1. `into`: an array like the first that the caller
    no longer needs, one of `arrays` included, to hold the one output instead of a new array
    (where the layouts differ, a new one all the same): writing over an array that is read
    anyway moves a third less memory than writing a new one. If it is one of `arrays`, the
    kernel must read each element of it before writing there (np.multiply(a, b, out=b) does).
    """
    if into is not None and outputs != 1:
        raise ValueError(f"chunked_map: into= holds one output, not {outputs}")
    xp = backend.get_array_module(*arrays)
    outs = [into] if into is not None else [xp.empty_like(arrays[0]) for _ in range(outputs)]
    if xp is not np:
        kernel(*outs, *arrays, *[xp.empty_like(arrays[0]) for _ in range(scratch)])
        return outs[0] if outputs == 1 else tuple(outs)
    views = memory_order_views([*outs, *arrays])
    if views is None:                                     # layouts differ: copy to C order
        arrays = [xp.ascontiguousarray(a) for a in arrays]
        outs = [xp.empty_like(arrays[0]) for _ in range(outputs)]
        views = [a.reshape(-1) for a in (*outs, *arrays)]
    chunk = chunk_elements(arrays[0].dtype.itemsize, len(views) + scratch)

    def run(b0, b1):
        temps = [xp.empty(min(chunk, b1 - b0), dtype=arrays[0].dtype) for _ in range(scratch)]
        for s in range(b0, b1, chunk):
            e = min(s + chunk, b1)
            kernel(*[v[s:e] for v in views], *[t[:e - s] for t in temps])
    run_blocks(run, views[0].size, CHUNKS_PER_BLOCK * chunk, xp)
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
