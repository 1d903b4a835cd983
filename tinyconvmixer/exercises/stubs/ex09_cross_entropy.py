"""Exercise 9: the backward of cross-entropy (walkthrough Step 10).

For logits z of shape (N, K) and integer targets t (N,), the loss is the mean
over the batch of -log softmax(z_n)[t_n]:

    loss = -(1/N) sum_n logp[n, t_n],      logp = log_softmax(z) along axis 1.

Backward gets g = dL/dloss, a 0-d array (1 when the loss is where backward
starts), and the saved logp; it returns dL/dz, of shape (N, K).

Derive. From exercise 8, d logp[n, k] / dz[n, m] = [k == m] - softmax(z_n)_m.
Only the entries k = t_n appear in the loss, each with the factor -1/N. So

    dloss/dz[n, m] = (1/N) (softmax(z_n)_m - [m == t_n]),

the famous "softmax minus one-hot": each row pushes the wrong classes down
in proportion to their probability and pulls the true one up. Multiply by g.

Check: python -m tinyconvmixer.exercises check cross_entropy

Hints:
  1. softmax = xp.exp(logp) (a new array, so you may change it in place).
  2. Subtract 1 at (n, t_n) for every n at once: dz[xp.arange(N), target] -= 1.
  3. Do not forget the 1/N of the mean, nor g.
"""

from tinyconvmixer.engine import backend


def cross_entropy_backward(logp, target, g):
    """dL/dz for loss = mean_n -logp[n, target[n]], given logp = log_softmax(z) and g = dL/dloss."""
    raise NotImplementedError("cross_entropy_backward: not written yet (exercise 9; its docstring says how)")
