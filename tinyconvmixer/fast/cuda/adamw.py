"""The fused AdamW update: every parameter in one launch of adamw.cu (multi-tensor apply).

It is registered (fast/__init__.py) as the variant of optim.adamw_updates, the
reference that updates one parameter after another, where launch.active() holds
for all the arrays (`when`, below); the reference stays the readable truth that
the tests compare this with. Here the parameters become three small tables that the
kernel reads (see adamw.cu): the addresses of each parameter's four arrays,
its hyper-parameters, and which chunk of which parameter each block updates.
"""

import numpy as np

from ...engine import backend
from . import launch

CHUNK = 2048          # elements per block: 8 per thread at 256 threads
THREADS = 256


def defines(chunk=CHUNK):
    return dict(CHUNK=chunk)


def fused(entries):
    """optim.adamw_updates in one launch (gradients copied to contiguous arrays where needed)."""
    xp = backend.get_array_module(entries[0][0])
    adamw_step([(p, xp.ascontiguousarray(g), m, v, h) for p, g, m, v, h, _ in entries])


def when(entries):
    """Every array active for the kernels (launch.active), and p, m, v C-contiguous."""
    arrays = [a for entry in entries for a in entry[:4]]
    return (launch.active(*arrays)
            and all(a.flags.c_contiguous for p, _, m, v, *rest in entries for a in (p, m, v)))


def adamw_step(entries, chunk=CHUNK, threads=THREADS):
    """Update all parameters in place with one kernel launch.

    entries: (p, grad, exp_avg, exp_avg_sq, hyper) per parameter: four
    C-contiguous arrays of one dtype and size on one device, and hyper the six
    floats (decay, beta1, beta2, eps, step_size, sqrt_bc2) of adamw.cu.
    """
    if not entries:
        return
    arrays = [e[:4] for e in entries]
    xp = backend.get_array_module(arrays[0][0])
    sizes = np.array([a[0].size for a in arrays], np.int64)
    ptrs = np.array([[launch.ptr(x) for x in a] for a in arrays], np.int64)
    hyper = np.array([e[4] for e in entries], np.float64)

    # Chunk b of the launch is chunk j of tensor k: chunk_tensor[b] = k, chunk_start[b] = j * chunk.
    per_tensor = -(-sizes // chunk)
    chunk_tensor = np.repeat(np.arange(len(entries), dtype=np.int32), per_tensor)
    first = np.repeat(np.cumsum(per_tensor) - per_tensor, per_tensor)   # index of each tensor's chunk 0
    chunk_start = (np.arange(chunk_tensor.size, dtype=np.int64) - first) * chunk
    if chunk_tensor.size == 0:                # only empty parameters
        return

    # On the GPU the tables are uploaded; the kernel runs later on the same stream, and CuPy
    # hands freed memory out again only in stream order, so local references are enough.
    tables = [xp.asarray(t) for t in (ptrs, sizes, hyper, chunk_tensor, chunk_start)]
    kernel = launch.kernel("adamw", "adamw_multi", arrays[0][0].dtype, **defines(chunk))
    kernel((chunk_tensor.size,), (threads,), tuple(tables))
