"""BatchNorm's per-channel work on (M, C) rows, on the CPU, in cache-sized blocks.

A channels-last (N, C, H, W) batch is, in memory, M = N*H*W rows of C channels
(an (N, C) batch already is). Per-channel work then means: sums down the
columns, and rows scaled by C-vectors. The reference, functional/normalization.py,
makes about seven passes over the whole batch with batch-sized temporaries; here
each block of rows (about 256 KB) goes through all its steps while it is in the
cache, and the blocks are shared among threads (threads.run_blocks). Partial
column sums are added in block order, so results do not depend on the threads.

These are the passes of fast/rows.py's BatchNormRows on the CPU; the same four
functions exist for the GPU in cuda/batchnorm.py, with kernels.
"""

import types

import numpy as np

from ...engine import backend
from ..rows import BatchNormRows, applies, is_rows
from .threads import add_in_order, run_blocks

CHUNK = 65536                            # elements per block of rows: 256 KB of float32


def _row_blocks(fn, M, C):
    """[fn(r0, r1) for consecutive blocks of rows], computed by the CPU threads, in block order."""
    rows = max(1, CHUNK // C)

    def run(b0, b1):                                   # one thread's share: several blocks of rows
        return [fn(r0, min(r0 + rows, b1)) for r0 in range(b0, b1, rows)]
    shares = run_blocks(run, M, 16 * rows, np)
    return [result for share in shares for result in share]


def mean_var(x):
    """Per-column mean and biased variance of (M, C) x, in two passes: a first mean m, then
    the sums of d = x - m and of d^2. Their float32 rounding is corrected for, as in the
    "corrected two-pass" algorithm: mean = m + sum(d)/M, var = (sum(d^2) - sum(d)^2/M) / M."""
    M, C = x.shape
    m = add_in_order(_row_blocks(lambda r0, r1: x[r0:r1].sum(axis=0), M, C)) / M

    def centred_sums(r0, r1):
        d = x[r0:r1] - m
        return d.sum(axis=0), (d * d).sum(axis=0)
    parts = _row_blocks(centred_sums, M, C)
    s1, s2 = add_in_order([p[0] for p in parts]), add_in_order([p[1] for p in parts])
    xp = backend.get_array_module(x)
    return m + s1 / M, xp.maximum((s2 - s1 * s1 / M) / M, 0)     # rounding can dip below 0


def normalize(x, mean, scale, shift):
    """y = (x - mean) * scale + shift, per column. (Not x * scale + (shift - mean * scale):
    where |mean| is large against the spread, that cancels float32 digits.)"""
    xp = backend.get_array_module(x)
    y = xp.empty_like(x)

    def run(r0, r1):
        out = y[r0:r1]
        xp.subtract(x[r0:r1], mean, out=out)
        out *= scale
        out += shift
    _row_blocks(run, *x.shape)
    return y


def grad_sums(g, x, mean):
    """Per column: sum of g and sum of g * (x - mean). (Not sum(g x) - mean sum(g): where
    |mean| is large against the spread, that difference cancels float32 digits.)"""
    xp = backend.get_array_module(g)

    def sums(r0, r1):
        return g[r0:r1].sum(axis=0), xp.einsum("mc,mc->c", g[r0:r1], x[r0:r1] - mean)
    parts = _row_blocks(sums, *g.shape)
    return add_in_order([p[0] for p in parts]), add_in_order([p[1] for p in parts])


def backward(g, x, mean, kg, kx, k0):
    """dx = kg * g - kx * (x - mean) - k0, per column."""
    xp = backend.get_array_module(g)
    dx = xp.empty_like(g)

    def run(r0, r1):
        out = dx[r0:r1]
        centred = x[r0:r1] - mean
        centred *= kx
        xp.multiply(g[r0:r1], kg, out=out)
        out -= centred
        out -= k0
    _row_blocks(run, *g.shape)
    return dx


class BatchNormCPU(BatchNormRows):
    """BatchNorm by blocks of rows on the CPU's threads (this module's four passes)."""

    impl = types.SimpleNamespace(mean_var=mean_var, normalize=normalize, grad_sums=grad_sums,
                                 backward=backward)


def when(x, weight=None, bias=None, **settings):
    """A NumPy batch that is already rows in memory (channels-last, or (N, C))."""
    return backend.get_array_module(x) is np and applies(x, weight, bias) and is_rows(x)
