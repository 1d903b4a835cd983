"""Exercise 5: GELU's slope (walkthrough Step 6).

GELU(x) = x * Phi(x), where Phi is the standard normal CDF and
phi(x) = exp(-x^2 / 2) / sqrt(2 pi) its density (Phi' = phi). The engine
computes the output and, in the same pass, the slope dGELU/dx, which it saves:
the backward pass is then g * slope. Write the slope.

Derive dGELU/dx with the product rule. Then check two values by hand: at
x = 0 the slope is 1/2, and far to the right (x -> +inf) it tends to 1.
Where is it negative? (Below x = -0.75 or so: GELU dips before it rises.)

Check: python -m tinyconvmixer.exercises check gelu_slope

Hints:
  1. normal_cdf(x) (imported below) is Phi(x) on either device.
  2. xp = backend.get_array_module(x); xp.exp, math.sqrt, math.pi.
  3. The product rule: (u v)' = u' v + u v', with u = x and v = Phi(x).
"""

import math

from tinyconvmixer.engine import backend
from tinyconvmixer.functional.activation import normal_cdf


def gelu_slope(x):
    """d/dx [x Phi(x)], elementwise, for an array x."""
    raise NotImplementedError("gelu_slope: not written yet (exercise 5; its docstring says how)")
