"""Depthwise convolution with the direct kernels of depthwise.cu (stride 1, NHWC arrays).

DepthwiseKernels (below) is the variant of functional/depthwise.py's
DepthwiseConv2d that runs them, registered where `supported(...)` holds; the
reference's per-tap xp code does everything else (strides, other kernel sizes)
and is what the kernels are tested against. All arrays here are channels-last:
x (N, H, W, C), tap weights (kh, kw, C).
"""

from ...engine import backend
from ...functional.depthwise import DepthwiseConv2d, output_hw
from . import batchnorm as cuda_bn
from . import launch

TILE = 8                                   # output tile of one block: TILE x TILE pixels
SHARED_LIMIT = 48 * 1024                   # bytes of static shared memory a block may use
PARTIAL_ROWS = 64                          # block rows of the weight-gradient kernel
# Square kernels the kernels are compiled for (each size is its own compiled module, every
# one checked by NVRTC in CI: tests/test_nvrtc_compile.py); other shapes take the plain path.
KERNEL_SIZES = (1, 3, 5, 7, 9)


def _channels_per_block(dtype):
    return 32 if dtype.itemsize == 4 else 16       # float: 32 x 8 = 256 threads; double: 128


def threads(dtype):
    """Threads of a block: CT channels x TILE output rows."""
    return _channels_per_block(dtype) * TILE


def defines(dtype, kh, kw):
    """The compile-time constants of depthwise.cu for this element type and kernel size."""
    return dict(KH=kh, KW=kw, TH=TILE, TW=TILE, CT=_channels_per_block(dtype))


def _kernel(function, dtype, kh, kw):
    return launch.kernel("depthwise", function, dtype, **defines(dtype, kh, kw))


def supported(x, w, b=None, stride=(1, 1), padding=(0, 0), **settings):
    """Can the kernels do this convolution? (Else the caller takes the plain path.)

    CuPy launches a grid with a zero dimension as if it were 1, so an empty batch must
    not get here; grid.y and grid.z may not exceed 65535 (tiles of an image, images)."""
    kh, kw = w.shape[2:]
    N, _, H, W = x.shape
    ct, item = _channels_per_block(x.dtype), x.dtype.itemsize
    shared = ((TILE + kh - 1) * (TILE + kw - 1) + TILE * TILE + TILE) * ct * item   # the wgrad kernel's
    tiles = launch.blocks(H + 2 * padding[0] - kh + 1, TILE) * launch.blocks(W + 2 * padding[1] - kw + 1, TILE)
    return (launch.active(*[a for a in (x, w, b) if a is not None]) and tuple(stride) == (1, 1)
            and kh == kw and kh in KERNEL_SIZES
            and 0 < N <= 65535 and x.size > 0 and tiles <= 65535
            and padding[0] <= kh - 1 and padding[1] <= kw - 1 and shared <= SHARED_LIMIT)


def conv(x, w_taps, bias, padding, out_hw):
    """(N, Ho, Wo, C) output of the stride-1 depthwise conv of x (N, H, W, C) with (kh, kw, C) taps."""
    xp = backend.get_array_module(x)
    N, H, W, C = x.shape
    kh, kw, _ = w_taps.shape
    (Ho, Wo), (ph, pw) = out_hw, padding
    ct = _channels_per_block(x.dtype)
    tiles_h, tiles_w = launch.blocks(Ho, TILE), launch.blocks(Wo, TILE)
    out = xp.empty((N, Ho, Wo, C), dtype=x.dtype)
    kernel = _kernel("dw_conv_nhwc", x.dtype, kh, kw)
    i32 = launch.i32
    kernel((launch.blocks(C, ct), tiles_h * tiles_w, N), (ct, TILE),
           (x, w_taps, w_taps if bias is None else bias, out, i32(H), i32(W), i32(C),
            i32(Ho), i32(Wo), i32(ph), i32(pw), i32(tiles_w), i32(bias is not None)))
    return out


def input_grad(g, w_taps, padding, in_hw):
    """dL/dx (N, H, W, C) from g (N, Ho, Wo, C): the conv of g with the flipped kernel."""
    xp = backend.get_array_module(g)
    kh, kw, _ = w_taps.shape
    flipped = xp.ascontiguousarray(w_taps[::-1, ::-1])
    return conv(g, flipped, None, (kh - 1 - padding[0], kw - 1 - padding[1]), in_hw)


def weight_grad(x, g, kernel_hw, padding):
    """dL/dw as (kh, kw, C) taps, from x (N, H, W, C) and g (N, Ho, Wo, C)."""
    xp = backend.get_array_module(x)
    N, H, W, C = x.shape
    _, Ho, Wo, _ = g.shape
    kh, kw = kernel_hw
    ct = _channels_per_block(x.dtype)
    tiles_h, tiles_w = launch.blocks(Ho, TILE), launch.blocks(Wo, TILE)
    rows = min(PARTIAL_ROWS, N * tiles_h * tiles_w)
    partial = xp.empty((rows, kh, kw, C), dtype=x.dtype)
    kernel = _kernel("dw_wgrad_nhwc", x.dtype, kh, kw)
    i32 = launch.i32
    kernel((launch.blocks(C, ct), rows), (ct, TILE),
           (x, g, partial, i32(N), i32(H), i32(W), i32(C), i32(Ho), i32(Wo),
            i32(padding[0]), i32(padding[1]), i32(tiles_h), i32(tiles_w)))
    return partial.sum(axis=0)


class DepthwiseKernels(DepthwiseConv2d):
    """Stride-1 depthwise conv by the kernels of depthwise.cu: one launch forward, two backward."""

    def forward(self, x, w, b=None):
        xp = backend.get_array_module(x)
        N, C, H, W = x.shape
        kh, kw = w.shape[2:]
        Ho, Wo = output_hw(x.shape, (kh, kw), self.stride, self.padding)
        x_nhwc = xp.ascontiguousarray(x.transpose(0, 2, 3, 1))       # no copy if channels-last
        self.wt = w.reshape(C, kh, kw).transpose(1, 2, 0).copy()
        bias = None if b is None else xp.ascontiguousarray(b)
        out = conv(x_nhwc, self.wt, bias, self.padding, (Ho, Wo))
        return out.transpose(0, 3, 1, 2)

    def backward(self, g):
        xp = backend.get_array_module(g)
        kh, kw, C = self.wt.shape
        x_nhwc = xp.ascontiguousarray(self.inputs[0].data.transpose(0, 2, 3, 1))   # the kept x
        N, H, W, _ = x_nhwc.shape
        gh = xp.ascontiguousarray(g.transpose(0, 2, 3, 1))               # (N, Ho, Wo, C)
        dx = input_grad(gh, self.wt, self.padding, (H, W))
        dwt = weight_grad(x_nhwc, gh, (kh, kw), self.padding)
        dw = dwt.transpose(2, 0, 1).reshape(C, 1, kh, kw)
        g2 = gh.reshape(-1, C)
        db = cuda_bn.channel_sums(g2, g2)[0].astype(g.dtype)             # coalesced column sums
        return dx.transpose(0, 3, 1, 2), dw, db
