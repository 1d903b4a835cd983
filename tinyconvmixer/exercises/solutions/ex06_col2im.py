"""Exercise 6, a reference solution: col2im."""

from tinyconvmixer.engine import backend


def col2im(cols, padded_shape, stride):
    """Add cols (N, C, kh, kw, Ho, Wo) back onto an array of padded_shape (N, C, Hp, Wp);
    stride is a pair (s_h, s_w)."""
    xp = backend.get_array_module(cols)
    N, C, kh, kw, Ho, Wo = cols.shape
    sh, sw = stride
    dx = xp.zeros(padded_shape, dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            rows = slice(i, i + sh * (Ho - 1) + 1, sh)
            columns = slice(j, j + sw * (Wo - 1) + 1, sw)
            dx[:, :, rows, columns] += cols[:, :, i, j]     # overlapping windows add up
    return dx
