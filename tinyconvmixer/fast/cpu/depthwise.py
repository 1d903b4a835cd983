"""Depthwise convolution on the CPU in blocks of images: the variant of functional/depthwise.py.

The same multiply-adds of shifted views as the reference, arranged for the
cache and the cores:

* The batch is cut into blocks of a few images, small enough that the input
  tile, the output tile and one scratch buffer stay in the L2/L3 caches for all
  taps, and the blocks are shared among threads (NumPy releases the GIL inside
  its loops, and takes it back between calls: blocks that are too small make
  many short calls, and the threads then wait for each other; see _block_size).
* The weight of a tap is a C-vector; it is tiled to a (Wo, C) row once per
  call, because NumPy multiplies two arrays whose last two axes are both
  contiguous in one long inner loop, but repeats a short C-long loop for a
  broadcast C-vector (2.4x slower, measured).
* Each tap's product goes into one scratch buffer (no new array per tap), and
  the weight gradient of a tap is one einsum (the product and the sum fused).

Per-block partial weight gradients are added in block order, so the result
does not depend on the threads.
"""

import numpy as np

from ...engine import backend
from ...functional.depthwise import DepthwiseConv2d, output_hw
from ...functional.im2col import tap_slices
from .threads import add_in_order, run_blocks


class DepthwiseBlocked(DepthwiseConv2d):
    """Depthwise conv by blocks of images on the CPU's threads."""

    def forward(self, x, w, b=None):
        xp = backend.get_array_module(x)
        N, C, H, W = x.shape
        kh, kw = w.shape[2:]
        ph, pw = self.padding
        Ho, Wo = output_hw(x.shape, (kh, kw), self.stride, self.padding)
        xh = xp.zeros((N, H + 2 * ph, W + 2 * pw, C), dtype=x.dtype)     # padded input, NHWC
        xh[:, ph:ph + H, pw:pw + W, :] = x.transpose(0, 2, 3, 1)
        wt = w.reshape(C, kh, kw).transpose(1, 2, 0).copy()              # (kh, kw, C): a C-vector per tap
        wrow = _tile_rows(xp, wt, Wo)                                     # (kh, kw, Wo, C)
        out = xp.empty((N, Ho, Wo, C), dtype=x.dtype)
        block = _block_size(x)

        def run(n0, n1):
            xs, o = xh[n0:n1], out[n0:n1]
            t = xp.empty_like(o)                                          # scratch, cache-sized
            for i in range(kh):
                for j in range(kw):
                    rows, cols = tap_slices(i, j, (Ho, Wo), self.stride)
                    tap = xs[:, rows, cols]                               # (block, Ho, Wo, C) view
                    if i == 0 and j == 0:
                        xp.multiply(tap, wrow[0, 0], out=o)
                    else:
                        xp.multiply(tap, wrow[i, j], out=t)
                        o += t
        run_blocks(run, N, block, xp)
        if b is not None:
            out += b
        self.xh, self.wt, self.wrow, self.out_hw, self.block = xh, wt, wrow, (Ho, Wo), block
        return out.transpose(0, 3, 1, 2)                                 # NCHW shape, NHWC memory

    def backward(self, g):
        xp = backend.get_array_module(g)
        (Ho, Wo), (ph, pw) = self.out_hw, self.padding
        kh, kw, C = self.wt.shape
        N, Hp, Wp, _ = self.xh.shape
        gh = xp.ascontiguousarray(g.transpose(0, 2, 3, 1))               # (N, Ho, Wo, C)
        dxh = xp.zeros_like(self.xh)

        def run(n0, n1):
            gs, xs, dxs = gh[n0:n1], self.xh[n0:n1], dxh[n0:n1]
            t = xp.empty_like(gs)
            dwt = xp.empty_like(self.wt)
            for i in range(kh):
                for j in range(kw):
                    taps = (slice(None),) + tap_slices(i, j, (Ho, Wo), self.stride)
                    # dW[tap] = sum over (n, h, w) of g * input at tap; einsum fuses the
                    # product and the sum, so no (block, Ho, Wo, C) product is written
                    dwt[i, j] = xp.einsum("nhwc,nhwc->c", xs[taps], gs)
                    xp.multiply(gs, self.wrow[i, j], out=t)              # dX[tap] += g * W[tap]
                    dxs[taps] += t
            return dwt                                                   # this block's part of dW
        parts = run_blocks(run, N, self.block, xp)
        dwt = add_in_order(parts) if parts else xp.zeros_like(self.wt)    # (an empty batch)
        dx = dxh[:, ph:Hp - ph, pw:Wp - pw, :].transpose(0, 3, 1, 2)
        dw = dwt.transpose(2, 0, 1).reshape(C, 1, kh, kw)
        return dx, dw, gh.reshape(-1, C).sum(axis=0)


def when(x, w, b=None, **settings):
    return backend.get_array_module(x) is np


def _tile_rows(xp, wt, width):
    """(kh, kw, C) tap weights -> (kh, kw, width, C): each C-vector repeated along a row."""
    kh, kw, C = wt.shape
    return xp.ascontiguousarray(xp.broadcast_to(wt[:, :, None, :], (kh, kw, width, C)))


def _block_size(x):
    """Images per block: about 1 MB of input.

    Measured on the 2-core machine (k=5 training step): 256 KB blocks ran as fast
    as 1 MB ones while both threads had a core to themselves, but 1.5x slower when
    they did not (4x as many NumPy calls, each handing the GIL over); 1 MB blocks
    still fit the 32 MB L3 cache."""
    per_image = max(1, x.size // max(1, x.shape[0])) * x.dtype.itemsize
    return max(1, min(x.shape[0], (1024 * 1024) // per_image))
