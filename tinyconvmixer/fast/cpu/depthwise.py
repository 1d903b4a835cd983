"""Depthwise convolution on the CPU in cache-sized tiles: the variant of functional/depthwise.py.

The same multiply-adds of shifted views as the reference, arranged for the
cache and the cores (stride 1, padding at most the kernel size - 1: ConvMixer's
"same" convolutions; other settings keep the reference):

* The output is cut into tiles: a few whole images, or for large images a band
  of output rows of one image, small enough that the tile's padded input, its
  output and one scratch buffer stay in the core's cache (machine.py) for all
  kh*kw taps. The tiles are shared among threads (threads.run_blocks; NumPy
  releases the GIL inside its loops).
* No padded copy of the batch is made, nor kept for the backward pass: each
  tile's padded input is built in a per-thread buffer whose zero borders are
  written once. The backward pass keeps the input itself (which the tape holds
  anyway), the tap weights and nothing else.
* The input's gradient is the same correlation again, of g with the flipped
  kernel (padding kh-1-ph): dx[a, b] = sum over taps of g[a + ph - i, b + pw - j]
  w[i, j] (see the reference), so it runs on the same tiles, each writing its
  own rows of dx. The weight gradient of a tap is one einsum per tile (the
  product and the sum fused), added in tile order, so the result does not
  depend on the threads.
* The weight of a tap is a C-vector; it is tiled to a (Wo, C) row once per
  call, because NumPy multiplies two arrays whose last two axes are both
  contiguous in one long inner loop, but repeats a short C-long loop for a
  broadcast C-vector (2.4x slower, measured).
"""

import threading

import numpy as np

from ...engine import backend
from ...functional.depthwise import DepthwiseConv2d, output_hw
from . import machine
from .threads import add_in_order, run_blocks

_local = threading.local()         # per-thread tile buffers (see _padded_tile)


class DepthwiseBlocked(DepthwiseConv2d):
    """Depthwise conv by cache-sized tiles on the CPU's threads (stride 1)."""

    def forward(self, x, w, b=None):
        xp = backend.get_array_module(x)
        N, C, _, _ = x.shape
        kh, kw = w.shape[2:]
        Ho, Wo = output_hw(x.shape, (kh, kw), self.stride, self.padding)
        xh = x.transpose(0, 2, 3, 1)                                     # NHWC view: no copy
        wt = w.reshape(C, kh, kw).transpose(1, 2, 0).copy()              # (kh, kw, C)
        out = xp.empty((N, Ho, Wo, C), dtype=x.dtype)
        correlate(xh, wt, self.padding, out, bias=b)
        self.wt = wt
        return out.transpose(0, 3, 1, 2)                                 # NCHW shape, NHWC memory

    def backward(self, g):
        xp = backend.get_array_module(g)
        kh, kw, C = self.wt.shape
        xh = self.inputs[0].data.transpose(0, 2, 3, 1)                   # NHWC view: no copy
        N, H, W, _ = xh.shape
        ph, pw = self.padding
        gh = xp.ascontiguousarray(g.transpose(0, 2, 3, 1))               # (N, Ho, Wo, C)
        dx = xp.empty((N, H, W, C), dtype=g.dtype)
        flipped = xp.ascontiguousarray(self.wt[::-1, ::-1])
        correlate(gh, flipped, (kh - 1 - ph, kw - 1 - pw), dx)           # dx: g with the flipped kernel
        dwt = weight_grad(xh, gh, (kh, kw), self.padding)
        dw = dwt.transpose(2, 0, 1).reshape(C, 1, kh, kw)
        return dx.transpose(0, 3, 1, 2), dw, gh.reshape(-1, C).sum(axis=0)


def when(x, w, b=None, stride=(1, 1), padding=(0, 0), **settings):
    kh, kw = w.shape[2:]
    return (backend.get_array_module(x) is np and tuple(stride) == (1, 1)
            and 0 <= padding[0] <= kh - 1 and 0 <= padding[1] <= kw - 1)


# ----- tiles ----------------------------------------------------------------------------------
def tiles(N, Ho, Wo, C, kernel, itemsize):
    """[(n0, n1, h0, h1)]: images n0..n1, output rows h0..h1, each tile's working set (padded
    input rows, output rows and a scratch copy of them) within one core's cache budget."""
    kh, kw = kernel
    row_in, row_out = (Wo + kw - 1) * C * itemsize, Wo * C * itemsize
    budget = machine.core_cache_bytes()
    per_image = (Ho + kh - 1) * row_in + 2 * Ho * row_out
    if per_image <= budget:                                  # whole images, as many as fit
        n = max(1, min(N, budget // per_image, -(-N // 2)))  # (and at least two tiles)
        return [(n0, min(n0 + n, N), 0, Ho) for n0 in range(0, N, n)]
    rows = max(1, (budget - (kh - 1) * row_in) // (row_in + 2 * row_out))
    return [(n, n + 1, h0, min(h0 + rows, Ho)) for n in range(N) for h0 in range(0, Ho, rows)]


def _padded_tile(src, n0, n1, h0, h1, kernel, padding):
    """The padded input that output rows h0..h1 of images n0..n1 see: (n, h1-h0+kh-1, W+2pw, C),
    in this thread's buffer (its left and right pw zero columns are never overwritten: the
    buffer is made again only where its width, dtype or size does not fit)."""
    (kh, kw), (ph, pw) = kernel, padding
    _, H, W, C = src.shape
    shape = (n1 - n0, h1 - h0 + kh - 1, W + 2 * pw, C)
    buf = getattr(_local, "tile", None)
    if (buf is None or buf.dtype != src.dtype or buf.shape[2:] != shape[2:]
            or buf.shape[0] < shape[0] or buf.shape[1] < shape[1]):
        buf = _local.tile = np.zeros(shape, dtype=src.dtype)
    tile = buf[:shape[0], :shape[1]]
    r0, r1 = max(0, h0 - ph), min(H, h1 + kh - 1 - ph)              # input rows inside the image
    top, bottom = r0 - (h0 - ph), (h1 + kh - 1 - ph) - r1            # padding rows above, below
    tile[:, :top] = 0
    tile[:, shape[1] - bottom:] = 0
    tile[:, top:shape[1] - bottom, pw:pw + W] = src[n0:n1, r0:r1]
    return tile


def correlate(src, taps, padding, out, bias=None):
    """out[n, h, w] = sum over taps (i, j) of src_padded[n, h + i, w + j] * taps[i, j] (+ bias),
    for src (N, H, W, C), taps (kh, kw, C), out (N, Ho, Wo, C), stride 1, tile by tile."""
    N, Ho, Wo, C = out.shape
    kh, kw, _ = taps.shape
    wrow = np.ascontiguousarray(np.broadcast_to(taps[:, :, None, :], (kh, kw, Wo, C)))
    work = tiles(N, Ho, Wo, C, (kh, kw), src.dtype.itemsize)

    def run(t0, t1):
        for n0, n1, h0, h1 in work[t0:t1]:
            tile = _padded_tile(src, n0, n1, h0, h1, (kh, kw), padding)
            o = out[n0:n1, h0:h1]
            t = np.empty_like(o)
            rows = h1 - h0
            for i in range(kh):
                for j in range(kw):
                    view = tile[:, i:i + rows, j:j + Wo]                   # (n, rows, Wo, C)
                    if i == 0 and j == 0:
                        np.multiply(view, wrow[0, 0], out=o)
                        if bias is not None:
                            o += bias
                    else:
                        np.multiply(view, wrow[i, j], out=t)
                        o += t
    run_blocks(run, len(work), 1, np)


def weight_grad(src, g, kernel, padding):
    """(kh, kw, C): dW[i, j] = sum over n, h, w of g[n, h, w] * src_padded[n, h + i, w + j]."""
    N, Ho, Wo, C = g.shape
    kh, kw = kernel
    work = tiles(N, Ho, Wo, C, kernel, src.dtype.itemsize)

    def run(t0, t1):
        parts = []
        for n0, n1, h0, h1 in work[t0:t1]:
            tile = _padded_tile(src, n0, n1, h0, h1, kernel, padding)
            gs, rows = g[n0:n1, h0:h1], h1 - h0
            dwt = np.empty((kh, kw, C), dtype=g.dtype)
            for i in range(kh):
                for j in range(kw):   # einsum fuses the product and the sum: no product array
                    dwt[i, j] = np.einsum("nhwc,nhwc->c", tile[:, i:i + rows, j:j + Wo], gs)
            parts.append(dwt)
        return parts
    parts = [p for share in run_blocks(run, len(work), 1, np) for p in share]
    return add_in_order(parts) if parts else np.zeros((kh, kw, C), dtype=g.dtype)
