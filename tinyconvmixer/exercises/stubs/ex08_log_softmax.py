"""Exercise 8: the backward of log-softmax (walkthrough Step 10).

log_softmax(z)_k = z_k - log(sum_j exp(z_j)) along one axis (the classes).
Backward gets g = dL/dy for the output y = log_softmax(z) and returns dL/dz.

Derive. Differentiate y_k with respect to z_m:

    dy_k / dz_m = [k == m] - exp(z_m) / sum_j exp(z_j) = [k == m] - softmax(z)_m.

Then dL/dz_m = sum over k of g_k * dy_k/dz_m. Write it with two terms: one
that is g itself, one that is softmax times a sum of g. You have the output
y, not z: softmax(z) = exp(y), since y = log(softmax(z)).

Check: python -m tinyconvmixer.exercises check log_softmax

Hints:
  1. The sum over k runs along `axis`; keepdims=True keeps it broadcastable.
  2. xp = backend.get_array_module(g); xp.exp(y) is the softmax.
  3. Check your formula on a row where g is one-hot: that is cross-entropy's
     case, and the answer is onehot - softmax times g's one nonzero value.
"""

from tinyconvmixer.engine import backend


def log_softmax_backward(g, y, axis):
    """dL/dz for y = log_softmax(z) along `axis`, given g = dL/dy and the output y."""
    raise NotImplementedError("log_softmax_backward: not written yet (exercise 8; its docstring says how)")
