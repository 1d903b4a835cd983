"""The im2col convolution on the CPU, its matrix products cut into blocks of rows for our threads.

The variant of functional/conv.py's Conv2dIm2col for groups=1 (ConvMixer's
patch embedding and its 1x1 convolutions, the step's largest matrix products).
The arithmetic is the reference's; only who runs the products changes:

    forward     out  = cols @ W^T       cut into blocks of rows of cols
    backward    dW   = g^T @ cols       one partial product per block of rows,
                                        added in block order (add_in_order)
                dcols = g @ W           cut into blocks of rows of g

Each of our threads (threads.run_blocks) hands its blocks to OpenBLAS, with
OpenBLAS told to use the calling thread alone (blas.single_threaded): its own
worker threads never wake, so they never spin on the cores after the product
(blas.py says why that matters), and the speed does not depend on whether NumPy
was imported before tinyconvmixer. The bias and its gradient are added in the
same blocks, while the rows are in the cache.
"""

import numpy as np

from ...engine import backend
from ...functional.conv import Conv2dIm2col
from ...functional.im2col import col2im, im2col_view, output_size, pad2d, unpad2d
from . import blas, machine
from .threads import add_in_order, run_blocks


def _rows_per_block(M, K, F, itemsize):
    """Rows of a block: its rows of cols (K wide) and of the output (F wide) in one core's
    cache budget (machine.py), a power of two in [256, 4096].

    Measured on the 2-core AMD EPYC, OpenBLAS on one thread: (M, 256) @ (256, 256) ran at
    31-32 GFLOP/s for M = 512 to 4096, but at 9 to 22 GFLOP/s for M = 8192 (the 1x1
    convolution's whole batch at batch 32), so the blocks help even on one thread."""
    n = machine.core_cache_bytes() // ((K + F) * itemsize)
    return int(min(4096, max(256, 1 << max(0, n.bit_length() - 1))))


class Conv2dRows(Conv2dIm2col):
    """Conv2dIm2col (groups=1) with its matrix products in blocks of rows on our threads."""

    def forward(self, x, w, b=None):
        xp = backend.get_array_module(x)
        N, C, _, _ = x.shape
        F, _, kh, kw = w.shape
        padded = pad2d(x, self.padding)
        Ho = output_size(padded.shape[2], kh, self.stride[0])
        Wo = output_size(padded.shape[3], kw, self.stride[1])
        windows = im2col_view(padded, (kh, kw), self.stride)           # (N, C, kh, kw, Ho, Wo)
        # cols[(n, ho, wo), (c, i, j)]: no copy for a 1x1 conv of a channels-last input
        cols = windows.transpose(0, 4, 5, 1, 2, 3).reshape(N * Ho * Wo, C * kh * kw)
        wmat = w.reshape(F, C * kh * kw)
        out = xp.empty((N * Ho * Wo, F), dtype=x.dtype)

        def run(r0, r1):
            xp.matmul(cols[r0:r1], wmat.T, out=out[r0:r1])
            if b is not None:
                out[r0:r1] += b
        with blas.single_threaded():
            run_blocks(run, out.shape[0], _rows_per_block(*cols.shape, F, x.dtype.itemsize), xp)
        self.cols, self.wmat, self.w_shape = cols, wmat, w.shape
        self.padded_shape, self.out_hw = padded.shape, (Ho, Wo)
        return out.reshape(N, Ho, Wo, F).transpose(0, 3, 1, 2)         # NCHW shape, NHWC memory

    def backward(self, g):
        xp = backend.get_array_module(g)
        (F, C, kh, kw), (Ho, Wo) = self.w_shape, self.out_hw
        N = self.padded_shape[0]
        gmat = xp.ascontiguousarray(g.transpose(0, 2, 3, 1)).reshape(N * Ho * Wo, F)  # (no copy if
        cols, wmat = self.cols, self.wmat                                 # g is channels-last)
        want_dx = not self.needs_grad or self.needs_grad[0]    # (not for the images of a patch embedding)
        dcols = xp.empty(cols.shape, dtype=g.dtype) if want_dx else None

        def run(r0, r1):
            if want_dx:
                xp.matmul(gmat[r0:r1], wmat, out=dcols[r0:r1])           # dcols = g @ W
            return gmat[r0:r1].T @ cols[r0:r1], gmat[r0:r1].sum(axis=0)  # parts of dW and db
        with blas.single_threaded():
            parts = run_blocks(run, gmat.shape[0], _rows_per_block(*cols.shape, F, g.dtype.itemsize), xp)
        if parts:
            dw, db = add_in_order([p[0] for p in parts]), add_in_order([p[1] for p in parts])
        else:                                                            # an empty batch
            dw, db = xp.zeros(wmat.shape, dtype=g.dtype), xp.zeros(F, dtype=g.dtype)
        dx = None
        if want_dx:
            dcols = dcols.reshape(N, Ho, Wo, C, kh, kw).transpose(0, 3, 4, 5, 1, 2)
            dx = unpad2d(col2im(dcols, self.padded_shape, self.stride), self.padding)
        return dx, dw.reshape(self.w_shape), db


def when(x, w, b=None, groups=1, **settings):
    """NumPy arrays of one dtype, groups=1 (grouped convolutions keep the reference)."""
    return (backend.get_array_module(x) is np and groups == 1
            and all(a is None or a.dtype == x.dtype for a in (w, b)))
