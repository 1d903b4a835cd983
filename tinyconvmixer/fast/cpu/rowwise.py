"""BatchNorm's per-channel work on (M, C) rows, on the CPU, in cache-sized blocks.

A channels-last (N, C, H, W) batch is, in memory, M = N*H*W rows of C channels
(an (N, C) batch already is). Per-channel work then means: sums down the
columns, and rows scaled by C-vectors. The reference, functional/normalization.py,
makes about seven passes over the whole batch with batch-sized temporaries; here
each block of rows goes through all its steps while it is in the cache (its
size from the machine's caches, as chunked.py's chunks), with its temporaries
in one scratch block filled with `out=`, and the blocks are shared among
threads (threads.run_blocks). Partial column sums are added in block order, so
results do not depend on the threads.

These are the passes of fast/rows.py's BatchNormRows on the CPU; the same four
functions exist for the GPU in cuda/batchnorm.py, with kernels.
"""

import types

import numpy as np

from ...engine import backend
from ..rows import BatchNormRows, applies, is_rows
from .chunked import CHUNKS_PER_BLOCK, chunk_elements
from .threads import add_in_order, run_blocks


def _row_blocks(fn, x, arrays=4):
    """[fn(r0, r1, scratch) for consecutive blocks of rows of the (M, C) array x], computed by
    the CPU threads, in block order. scratch: a block-sized array of x's dtype for fn's
    temporaries; `arrays`: how many block-sized arrays fn works on (for the block size)."""
    M, C = x.shape
    rows = max(1, chunk_elements(x.dtype.itemsize, arrays) // C)

    def run(b0, b1):                                   # one thread's share: several blocks of rows
        scratch = np.empty((min(rows, b1 - b0), C), dtype=x.dtype)
        return [fn(r0, min(r0 + rows, b1), scratch[:min(rows, b1 - r0)]) for r0 in range(b0, b1, rows)]
    shares = run_blocks(run, M, CHUNKS_PER_BLOCK * rows, np)
    return [result for share in shares for result in share]


def mean_var(x):
    """Per-column mean and biased variance of (M, C) x, in one pass over memory.

    Each block of rows, while it is in the cache, gives its own mean m_b (its column sums
    over its n_b rows) and, from d = x - m_b, the sums s_b = sum d (what the rounding of
    m_b left over) and q_b = sum d^2 - s_b^2 / n_b (the sum of squares about the block's
    exact mean): a second pass, but over the cache, with no array written (q_b's sum of
    products is one einsum, in float32: a block's sums are short, and about its own mean
    they cannot cancel). The blocks then combine in float64, without cancellation (Chan
    et al.'s parallel variance):
        mean = sum over blocks of (n_b m_b + s_b) / M,
        M var = sum over blocks of  q_b + n_b (m_b + s_b / n_b - mean)^2."""
    M, C = x.shape

    def block_sums(r0, r1, d):
        n = r1 - r0
        m = x[r0:r1].sum(axis=0) / n
        np.subtract(x[r0:r1], m, out=d)
        s = d.sum(axis=0).astype(np.float64)
        q = np.einsum("mc,mc->c", d, d).astype(np.float64)
        return n, m + s / n, q - s * s / n
    parts = _row_blocks(block_sums, x, 2)
    mean = add_in_order([n * m for n, m, _ in parts]) / M
    spread = add_in_order([q + n * (m - mean) ** 2 for n, m, q in parts])
    return mean.astype(x.dtype), (spread / M).astype(x.dtype)


def normalize(x, mean, scale, shift):
    """y = (x - mean) * scale + shift, per column. (Not x * scale + (shift - mean * scale):
    where |mean| is large against the spread, that cancels float32 digits.)"""
    xp = backend.get_array_module(x)
    y = xp.empty_like(x)

    def run(r0, r1, _):
        out = y[r0:r1]
        xp.subtract(x[r0:r1], mean, out=out)
        out *= scale
        out += shift
    _row_blocks(run, x, 2)
    return y


def grad_sums(g, x, mean):
    """Per column: sum of g and sum of g * (x - mean). (Not sum(g x) - mean sum(g): where
    |mean| is large against the spread, that difference cancels float32 digits.)"""
    xp = backend.get_array_module(g)

    def sums(r0, r1, d):
        xp.subtract(x[r0:r1], mean, out=d)
        return g[r0:r1].sum(axis=0), xp.einsum("mc,mc->c", g[r0:r1], d)
    parts = _row_blocks(sums, g, 3)
    return add_in_order([p[0] for p in parts]), add_in_order([p[1] for p in parts])


def backward(g, x, mean, kg, kx, k0):
    """dx = kg * g - kx * (x - mean) - k0, per column."""
    xp = backend.get_array_module(g)
    dx = xp.empty_like(g)

    def run(r0, r1, centred):
        out = dx[r0:r1]
        xp.subtract(x[r0:r1], mean, out=centred)
        centred *= kx
        xp.multiply(g[r0:r1], kg, out=out)
        out -= centred
        out -= k0
    _row_blocks(run, g, 4)
    return dx


class BatchNormCPU(BatchNormRows):
    """BatchNorm by blocks of rows on the CPU's threads (this module's four passes)."""

    impl = types.SimpleNamespace(mean_var=mean_var, normalize=normalize, grad_sums=grad_sums,
                                 backward=backward)


def when(x, weight=None, bias=None, **settings):
    """A NumPy batch that is already rows in memory (channels-last, or (N, C))."""
    return backend.get_array_module(x) is np and applies(x, weight, bias) and is_rows(x)
