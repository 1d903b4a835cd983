"""Depthwise convolution (groups == C_in == C_out) without a column array.

Each channel has its own kh x kw kernel, so

    out[n, ho, wo, c] = sum over taps (i, j) of  w[c, 0, i, j] * x_padded[n, ho*s + i, wo*s + j, c]

We loop over the kh*kw taps and multiply-accumulate whole shifted views. The
work happens in NHWC memory: one tap is then a (block, Ho, Wo, C) view whose
rows are contiguous, and the weight of a tap is a C-vector broadcast along the
last axis. (The output goes back as an NCHW-shaped view of NHWC memory,
"channels-last".)

On the CPU the batch is cut into blocks of a few images, small enough that the
input tile, output tile and one scratch buffer stay in cache for all taps, and
the blocks are shared among threads (NumPy releases the GIL inside its loops).
On the GPU, blocks would only add kernel launches: the whole batch is one block.
"""

from .. import backend
from ..tensor import Function
from .im2col import output_size, tap_slices


class DepthwiseConv2d(Function):
    """Settings: stride, padding (pairs), groups (== channels)."""

    def forward(self, x, w, b=None):
        xp = backend.get_array_module(x)
        N, C, H, W = x.shape
        kh, kw = w.shape[2:]
        (ph, pw), (sh, sw) = self.padding, self.stride
        Ho, Wo = output_size(H + 2 * ph, kh, sh), output_size(W + 2 * pw, kw, sw)
        xh = xp.zeros((N, H + 2 * ph, W + 2 * pw, C), dtype=x.dtype)     # padded input, NHWC
        xh[:, ph:ph + H, pw:pw + W, :] = x.transpose(0, 2, 3, 1)
        wt = w.reshape(C, kh, kw).transpose(1, 2, 0).copy()              # (kh, kw, C): a C-vector per tap
        out = xp.empty((N, Ho, Wo, C), dtype=x.dtype)
        block = _block_size(xp, x)

        def run(n0, n1):
            xs, o = xh[n0:n1], out[n0:n1]
            t = xp.empty_like(o)                                          # scratch, cache-sized
            for i in range(kh):
                for j in range(kw):
                    rows, cols = tap_slices(i, j, (Ho, Wo), self.stride)
                    tap = xs[:, rows, cols]                               # (block, Ho, Wo, C) view
                    if i == 0 and j == 0:
                        xp.multiply(tap, wt[0, 0], out=o)
                    else:
                        xp.multiply(tap, wt[i, j], out=t)
                        o += t
        backend.run_blocks(run, N, block, xp)
        if b is not None:
            out += b
        self.xh, self.wt, self.out_hw, self.block = xh, wt, (Ho, Wo), block
        return out.transpose(0, 3, 1, 2)                                 # NCHW shape, NHWC memory

    def backward(self, g):
        xp = backend.get_array_module(g)
        (Ho, Wo), (ph, pw) = self.out_hw, self.padding
        kh, kw, C = self.wt.shape
        N, Hp, Wp, _ = self.xh.shape
        gh = xp.ascontiguousarray(g.transpose(0, 2, 3, 1))               # (N, Ho, Wo, C)
        dxh = xp.zeros_like(self.xh)
        partial_dw = {}                                                  # block start -> its (kh, kw, C) sum

        def run(n0, n1):
            gs, xs, dxs = gh[n0:n1], self.xh[n0:n1], dxh[n0:n1]
            t = xp.empty_like(gs)
            dwt = xp.empty_like(self.wt)
            for i in range(kh):
                for j in range(kw):
                    taps = (slice(None),) + tap_slices(i, j, (Ho, Wo), self.stride)
                    xp.multiply(xs[taps], gs, out=t)                     # dW[tap] = sum of g * input at tap
                    dwt[i, j] = t.reshape(-1, C).sum(axis=0)
                    xp.multiply(gs, self.wt[i, j], out=t)                # dX[tap] += g * W[tap]
                    dxs[taps] += t
            partial_dw[n0] = dwt
        backend.run_blocks(run, N, self.block, xp)
        dwt = xp.zeros_like(self.wt)
        for n0 in sorted(partial_dw):                                    # a fixed order: deterministic sums
            dwt += partial_dw[n0]
        dx = dxh[:, ph:Hp - ph, pw:Wp - pw, :].transpose(0, 3, 1, 2)
        dw = dwt.transpose(2, 0, 1).reshape(C, 1, kh, kw)
        return dx, dw, gh.reshape(-1, C).sum(axis=0)


def _block_size(xp, x):
    """Images per block: about 256 KB of input on the CPU, the whole batch on the GPU."""
    if xp is not backend.numpy_module():
        return x.shape[0]
    per_image = max(1, x.size // max(1, x.shape[0])) * x.dtype.itemsize
    return max(1, min(x.shape[0], (256 * 1024) // per_image))
