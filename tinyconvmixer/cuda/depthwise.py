"""Depthwise convolution with the direct kernels of depthwise.cu (stride 1, NHWC arrays).

functional/depthwise.py calls these when `supported(...)` holds and keeps its
per-tap xp code as the reference for everything else (strides, huge kernels).
All arrays here are channels-last: x (N, H, W, C), tap weights (kh, kw, C).
"""

from .. import backend
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


def supported(x, w, b, stride, padding):
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
