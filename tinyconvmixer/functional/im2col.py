"""im2col as a zero-copy strided view, and its adjoint col2im.

A convolution slides a kh x kw window over the (padded) input. im2col lays all
those windows out as one array so that the convolution becomes one matrix
product. Instead of copying windows in a loop, we build a *view* of the input
with two extra axes, using strides: moving one step along the kernel-row axis
moves one row in memory, moving one step along the output-row axis moves
`stride` rows. No data is copied until the matrix product asks for it.

    x_padded : (N, C, Hp, Wp)                  strides (sN, sC, sH, sW)
    windows  : (N, C, kh, kw, Ho, Wo)          strides (sN, sC, sH, sW, sH*stride_h, sW*stride_w)
    windows[n, c, i, j, p, q] == x_padded[n, c, p*stride_h + i, q*stride_w + j]
"""

from ..engine import backend
from ..engine.dispatch import replaceable


def pad2d(x, padding):
    """Zero-pad the last two axes of an NCHW array by (ph, pw) on each side."""
    ph, pw = padding
    if ph == 0 and pw == 0:
        return x
    xp = backend.get_array_module(x)
    return xp.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))


def unpad2d(x, padding):
    """Inverse of pad2d: crop (ph, pw) from each side of the last two axes."""
    ph, pw = padding
    return x[:, :, ph:x.shape[2] - ph, pw:x.shape[3] - pw]


@replaceable
def output_size(size, kernel, stride):
    """Number of window positions along one (already padded) axis."""
    return (size - kernel) // stride + 1


def im2col_view(x_padded, kernel, stride):
    """All kh x kw windows of x_padded as a (N, C, kh, kw, Ho, Wo) strided view (no copy)."""
    xp = backend.get_array_module(x_padded)
    (kh, kw), (sh, sw) = kernel, stride
    N, C, H, W = x_padded.shape
    Ho, Wo = output_size(H, kh, sh), output_size(W, kw, sw)
    sN, sC, sH, sW = x_padded.strides          # in bytes
    shape, strides = (N, C, kh, kw, Ho, Wo), (sN, sC, sH, sW, sH * sh, sW * sw)
    if xp is backend.numpy_module():          # read-only: windows overlap, so writes would be wrong
        return xp.lib.stride_tricks.as_strided(x_padded, shape, strides, writeable=False)
    return xp.lib.stride_tricks.as_strided(x_padded, shape, strides)   # CuPy has no writeable flag


def tap_slices(i, j, out_hw, stride):
    """(row slice, column slice) of the padded input that kernel tap (i, j) sees."""
    (Ho, Wo), (sh, sw) = out_hw, stride
    return slice(i, i + sh * (Ho - 1) + 1, sh), slice(j, j + sw * (Wo - 1) + 1, sw)


def tap(x_padded, i, j, out_hw, stride):
    """The input pixels that kernel tap (i, j) sees: an (N, C, Ho, Wo) strided slice."""
    return x_padded[(slice(None), slice(None)) + tap_slices(i, j, out_hw, stride)]


@replaceable
def col2im(cols, padded_shape, stride):
    """Adjoint of im2col: add every window's gradient back onto the padded input.

    cols: (N, C, kh, kw, Ho, Wo). Overlapping windows add up. We loop over the
    kh*kw kernel taps (25 for a 5x5 kernel), never over pixels, and each tap
    adds one strided slice at once, so no np.add.at is needed.
    """
    xp = backend.get_array_module(cols)
    N, C, kh, kw, Ho, Wo = cols.shape
    if (kh, kw) == (1, 1) and (Ho, Wo) == tuple(padded_shape[2:]):
        return cols[:, :, 0, 0]                   # a 1x1 stride-1 conv: windows never overlap
    dx = xp.zeros(padded_shape, dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            tap(dx, i, j, (Ho, Wo), stride)[...] += cols[:, :, i, j]
    return dx
