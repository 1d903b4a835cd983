"""Exercise 7: BatchNorm's training backward (walkthrough Step 9).

In training mode BatchNorm normalises each channel over the batch. For one
channel with values x_1 .. x_M (M = N*H*W of them), the forward pass is a
chain of small steps:

    mu    = (1/M) sum_k x_k                  the batch mean
    d_k   = x_k - mu                         centred
    v     = (1/M) sum_k d_k^2                the (biased) batch variance
    r     = 1 / sqrt(v + eps)                invstd
    xhat_k = d_k * r                         normalised
    y_k   = w * xhat_k + b                   scale and shift (w, b: weight, bias)

Backward gets g_k = dL/dy_k and returns (dL/dx, dL/dw, dL/db).

Derive node by node, from the end, as the tape would:
  * dL/db and dL/dw: y_k = w xhat_k + b for every k.
  * dxhat_k = dL/dxhat_k = g_k * w.
  * r is used by every xhat_k: dL/dr = sum_k dxhat_k * d_k.
  * v only feeds r: dL/dv = dL/dr * dr/dv, with dr/dv = -(1/2) (v + eps)^(-3/2) = -r^3 / 2.
  * d_k feeds xhat_k AND v: dL/dd_k = dxhat_k * r + dL/dv * (2 d_k / M).
  * mu feeds every d_k (with factor -1); x_k feeds d_k directly and mu (factor 1/M).
Then simplify: write d_k = xhat_k / r, and use sum_k xhat_k = 0 (the centred values sum
to 0), which makes the path through mu shorter than it looks. You should reach

    dL/dx_k = r * ( dxhat_k - mean(dxhat) - xhat_k * mean(dxhat * xhat) ).

(The second term is the path through the mean, the third the path through the
variance. Forgetting either is the classic bug: try
`python -m tinyconvmixer.gradcheck --inject bn-no-var-path`.)

Your function gets g and xhat of shape (N, C, H, W) or (N, C), with channels on
axis 1; invstd (r, one per channel) and weight as (C,) arrays; weight is None
when the layer has no scale (then w = 1, and there is no weight or bias to train:
what you return for dweight and dbias is ignored, None will do). Every mean above is
over all axes but 1.

Check: python -m tinyconvmixer.exercises check batchnorm

Hints:
  1. axes = (0,) + tuple(range(2, g.ndim)): every axis but the channels.
  2. A (C,) vector broadcasts against (N, C, H, W) after .reshape(1, C, 1, 1);
     against (N, C) after .reshape(1, C). In general (1, C) + (1,) * (g.ndim - 2).
  3. mean(..., axis=axes, keepdims=True) keeps the shapes lined up.
  4. Not the eval-mode formula dx = g * w * r: that treats mu and v as constants.
"""

from tinyconvmixer.engine import backend


def batchnorm_backward(g, xhat, invstd, weight):
    """(dx, dweight, dbias) of training-mode BatchNorm (see above for the shapes)."""
    raise NotImplementedError("batchnorm_backward: not written yet (exercise 7; its docstring says how)")
