"""Exercise 6: col2im, the backward of im2col (walkthrough Step 7).

A convolution's forward pass lays every window of the padded input out as a
view (im2col):

    cols[n, c, i, j, p, q] = x_padded[n, c, p * s_h + i, q * s_w + j]

for kernel tap (i, j) (0 <= i < kh, 0 <= j < kw), output pixel (p, q)
(0 <= p < Ho, 0 <= q < Wo) and stride (s_h, s_w). Backward gets dcols, the
gradient of cols, and must return dx_padded, the gradient of x_padded.

Derive. Each entry of cols is a copy of one input pixel, and a pixel can be
copied into several windows (when the kernel is larger than the stride). A
copy's gradient flows back to the pixel it came from, and a pixel used k
times gets the sum of k gradients:

    dx_padded[n, c, y, x] = sum of dcols[n, c, i, j, p, q]
                            over all (i, j, p, q) with p*s_h + i = y and q*s_w + j = x.

Loop over the kh * kw taps (i, j), never over pixels: for one tap, the
pixels (p*s_h + i, q*s_w + j) form a strided slice of x_padded, and the whole
(N, C, Ho, Wo) block dcols[:, :, i, j] adds onto it at once.

Check: python -m tinyconvmixer.exercises check col2im

Hints:
  1. Start from zeros: xp.zeros(padded_shape, dtype=cols.dtype).
  2. Rows of tap i: i, i + s_h, ..., i + s_h * (Ho - 1), i.e.
     slice(i, i + s_h * (Ho - 1) + 1, s_h); the same for columns.
  3. Use +=, not =: two taps can reach the same pixel.
"""

from tinyconvmixer.engine import backend


def col2im(cols, padded_shape, stride):
    """Add cols (N, C, kh, kw, Ho, Wo) back onto an array of padded_shape (N, C, Hp, Wp);
    stride is a pair (s_h, s_w)."""
    raise NotImplementedError("col2im: not written yet (exercise 6; its docstring says how)")
