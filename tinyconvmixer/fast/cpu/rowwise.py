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


BLOCK_ELEMENTS = 262144    # the most elements of an array in one block of rows (1 MiB of float32)
WIDE = 16384               # elements in a row of a block's wide view (_lanes)


def _repeats(C):
    """Rows of C elements in one row of a wide view."""
    return max(1, WIDE // C)


def _row_blocks(fn, x, arrays=4):
    """[fn(r0, r1, scratch) for consecutive blocks of rows of the (M, C) array x], computed by
    the CPU threads, in block order. scratch: a block-sized array of x's dtype for fn's
    temporaries; `arrays`: how many block-sized arrays fn works on (for the block size).

    A block fills a core's share of the caches, as GELU's chunks do, but up to twice as
    many elements (BLOCK_ELEMENTS): its passes are a handful of NumPy calls, and the
    threads that make them wait for each other (Python's GIL) between calls; fewer, longer
    calls share the cores better. Measured on the 2-core AMD EPYC, batch 32, 256 channels
    at 16x16: BatchNorm forward and backward 12.9-14.3 ms with blocks of 65,536 elements,
    10.8-12.5 with twice that, 11.1-11.3 four times."""
    M, C = x.shape
    k = _repeats(C)                 # every block but the last a whole number of wide rows
    rows = max(k, chunk_elements(x.dtype.itemsize, arrays, BLOCK_ELEMENTS) // C // k * k)

    def run(i0, i1):                # one thread's share: blocks i0 .. i1 - 1, one scratch block
        scratch = np.empty((min(rows, M), C), dtype=x.dtype)
        return [fn(i * rows, min(i * rows + rows, M), scratch[:min(rows, M - i * rows)])
                for i in range(i0, i1)]
    shares = run_blocks(run, -(-M // rows), CHUNKS_PER_BLOCK, np)   # the same blocks on any
    return [result for share in shares for result in share]           # number of threads


def _tile(C, *vectors):
    """The per-column vectors, each repeated _repeats(C) times: the rows of a wide view.
    (By a broadcast copy: np.tile takes 30 us for 16,384 elements, this 3.)"""
    tiled = [np.empty((_repeats(C), C), dtype=v.dtype) for v in vectors]
    for t, v in zip(tiled, vectors):
        t[...] = v
    return [t.reshape(-1) for t in tiled]


def _lanes(n, vectors, tiled):
    """How a block of n rows meets per-column vectors: (view, vectors) where `view` turns an
    (n, C) block into (n / k, k C) rows and `vectors` are the tiled ones, if k divides n;
    else the block and vectors as they are.

    NumPy broadcasts a vector down the rows of a block at the speed of plain arrays only
    when the rows are long: measured on the project's AMD EPYC, 0.38 ns an element for rows
    of 256 elements, 0.34 for 4,096, 0.22 for 16,384 (as plain arrays). Blocks of rows are
    made multiples of k (_row_blocks); only the batch's last one may not be."""
    C = vectors[0].size
    if n % _repeats(C):
        return (lambda a: a), vectors
    return (lambda a: a.reshape(-1, tiled[0].size)), tiled


def _check_out(out, like):
    """The blocks write through views of `out`: a reshape of a non-contiguous one would be a
    copy, and the result would be lost."""
    if out.shape != like.shape or not out.flags.c_contiguous:
        raise ValueError(f"out: a C-contiguous {like.shape} array needed, got "
                         f"{out.shape}{'' if out.flags.c_contiguous else ', not C-contiguous'}")


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
        wide, (m_r,) = _lanes(n, [m], _tile(C, m))
        np.subtract(wide(x[r0:r1]), m_r, out=wide(d))
        s = d.sum(axis=0).astype(np.float64)
        q = np.einsum("mc,mc->c", d, d).astype(np.float64)
        return n, m + s / n, q - s * s / n
    parts = _row_blocks(block_sums, x, 2)
    mean = add_in_order([n * m for n, m, _ in parts]) / M
    spread = add_in_order([q + n * (m - mean) ** 2 for n, m, q in parts])
    return mean.astype(x.dtype), (spread / M).astype(x.dtype)


def normalize(x, mean, scale, shift, out):
    """out = (x - mean) * scale + shift, per column. (Not x * scale + (shift - mean * scale):
    where |mean| is large against the spread, that cancels float32 digits.)"""
    _check_out(out, x)
    vectors = [mean, scale, shift]
    tiled = _tile(x.shape[1], *vectors)

    def run(r0, r1, _):                    # (_r: the vectors as the block's rows take them)
        wide, (mean_r, scale_r, shift_r) = _lanes(r1 - r0, vectors, tiled)
        y = wide(out[r0:r1])
        np.subtract(wide(x[r0:r1]), mean_r, out=y)
        y *= scale_r
        y += shift_r
    _row_blocks(run, x, 2)
    return out


def grad_sums(g, x, mean):
    """Per column: sum of g and sum of g * (x - mean). (Not sum(g x) - mean sum(g): where
    |mean| is large against the spread, that difference cancels float32 digits.)"""
    tiled = _tile(x.shape[1], mean)

    def sums(r0, r1, d):
        wide, (mean_r,) = _lanes(r1 - r0, [mean], tiled)
        np.subtract(wide(x[r0:r1]), mean_r, out=wide(d))
        return g[r0:r1].sum(axis=0), np.einsum("mc,mc->c", g[r0:r1], d)
    parts = _row_blocks(sums, g, 3)
    return add_in_order([p[0] for p in parts]), add_in_order([p[1] for p in parts])


def backward(g, x, mean, kg, kx, k0, out):
    """out = dx = kg * g - kx * (x - mean) - k0, per column."""
    _check_out(out, g)
    vectors = [mean, kg, kx, k0]
    tiled = _tile(x.shape[1], *vectors)

    def run(r0, r1, centred):
        wide, (mean_r, kg_r, kx_r, k0_r) = _lanes(r1 - r0, vectors, tiled)
        dx, centred = wide(out[r0:r1]), wide(centred)
        np.subtract(wide(x[r0:r1]), mean_r, out=centred)
        centred *= kx_r
        np.multiply(wide(g[r0:r1]), kg_r, out=dx)
        dx -= centred
        dx -= k0_r
    _row_blocks(run, g, 4)
    return out


class BatchNormCPU(BatchNormRows):
    """BatchNorm by blocks of rows on the CPU's threads (this module's four passes)."""

    impl = types.SimpleNamespace(mean_var=mean_var, normalize=normalize, grad_sums=grad_sums,
                                 backward=backward)


def when(x, weight=None, bias=None, **settings):
    """A NumPy batch that is already rows in memory (channels-last, or (N, C))."""
    return backend.get_array_module(x) is np and applies(x, weight, bias) and is_rows(x)
