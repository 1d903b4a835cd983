"""Depthwise convolution (groups == C_in == C_out) without a column array.

Each channel has its own kh x kw kernel, so

    out[n, ho, wo, c] = sum over taps (i, j) of  w[c, 0, i, j] * x_padded[n, ho*s + i, wo*s + j, c]

An im2col column array would be kh*kw times the input (25x for k=5, 81x for
k=9) and its matrix products tiny. Instead we loop over the kh*kw taps and
multiply-accumulate whole shifted views of the padded input: tap (i, j) sees
the input pixels x_padded[n, ho*s + i, wo*s + j], one (N, Ho, Wo, C) strided
view, times the tap's C weights.

The backward pass follows from the same sum. Each output pixel used input pixel
(ho*s + i, wo*s + j) with weight w[c, i, j], so, tap by tap,

    dW[c, i, j]                      = sum over n, ho, wo of  g[n, ho, wo, c] * x_padded[n, ho*s + i, wo*s + j, c]
    dx_padded[n, ho*s + i, wo*s + j] += g[n, ho, wo, c] * w[c, i, j]

and the input's gradient is dx_padded with the padding cut off. The work
happens in NHWC memory, where a tap's view has contiguous rows of Wo x C values;
the output goes back as an NCHW-shaped view of that memory ("channels-last", as
conv.py's im2col path does).

This plain code is the reference; fast/ has faster variants of it (blocks of
images on the CPU's threads, direct CUDA kernels on the GPU).
"""

from ..engine import Function, backend
from .im2col import tap_slices


def output_hw(x_shape, kernel, stride, padding):
    """(Ho, Wo): window positions along the padded height and width (as im2col.output_size)."""
    (H, W), (kh, kw), (sh, sw), (ph, pw) = x_shape[2:], kernel, stride, padding
    return (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1


def padded_nhwc(x, padding):
    """The (N, C, H, W) input x zero-padded by (ph, pw), in NHWC memory: (N, H+2ph, W+2pw, C)."""
    xp = backend.get_array_module(x)
    (N, C, H, W), (ph, pw) = x.shape, padding
    xh = xp.zeros((N, H + 2 * ph, W + 2 * pw, C), dtype=x.dtype)
    xh[:, ph:ph + H, pw:pw + W, :] = x.transpose(0, 2, 3, 1)
    return xh


class DepthwiseConv2d(Function):
    """Settings: stride, padding (pairs), groups (== channels).

    The node keeps the input (saves) and the tap weights; the backward pass pads the
    input again rather than keeping the padded copy."""

    saves = (0,)

    def forward(self, x, w, b=None):
        xp = backend.get_array_module(x)
        N, C, H, W = x.shape
        kh, kw = w.shape[2:]
        Ho, Wo = output_hw(x.shape, (kh, kw), self.stride, self.padding)
        xh = padded_nhwc(x, self.padding)                                 # (N, Hp, Wp, C)
        wt = w.reshape(C, kh, kw).transpose(1, 2, 0)                     # (kh, kw, C): a C-vector per tap
        out = xp.zeros((N, Ho, Wo, C), dtype=x.dtype)
        for i in range(kh):
            for j in range(kw):
                rows, cols = tap_slices(i, j, (Ho, Wo), self.stride)
                out += xh[:, rows, cols] * wt[i, j]                      # (N, Ho, Wo, C) view * (C,)
        if b is not None:
            out += b
        self.wt, self.out_hw = wt, (Ho, Wo)
        return out.transpose(0, 3, 1, 2)                                 # NCHW shape, NHWC memory

    def backward(self, g):
        xp = backend.get_array_module(g)
        (Ho, Wo), (ph, pw) = self.out_hw, self.padding
        kh, kw, C = self.wt.shape
        xh = padded_nhwc(self.inputs[0].data, self.padding)              # (N, Hp, Wp, C) again
        N, Hp, Wp, _ = xh.shape
        gh = g.transpose(0, 2, 3, 1)                                     # (N, Ho, Wo, C)
        dxh = xp.zeros_like(xh)
        dwt = xp.zeros_like(self.wt)
        for i in range(kh):
            for j in range(kw):
                rows, cols = tap_slices(i, j, (Ho, Wo), self.stride)
                dwt[i, j] = (xh[:, rows, cols] * gh).sum(axis=(0, 1, 2))
                dxh[:, rows, cols] += gh * self.wt[i, j]
        dx = dxh[:, ph:Hp - ph, pw:Wp - pw, :].transpose(0, 3, 1, 2)
        dw = dwt.transpose(2, 0, 1).reshape(C, 1, kh, kw)
        return dx, dw, gh.sum(axis=(0, 1, 2))
