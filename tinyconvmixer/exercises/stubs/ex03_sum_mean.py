"""Exercise 3: the gradients of sum and mean (walkthrough Steps 3 and 10).

y = x.sum(axis=axis, keepdims=keepdims) adds up x over some axes (all of them
when axis is None). Backward gets g = dL/dy, of y's shape, and returns dL/dx,
of x's shape. mean is the same sum divided by the number of values summed.

Derive. For x of shape (3, 4) and axis=1, y[i] = sum over j of x[i, j], and
x[i, j] appears in y[i] only, with factor 1, so

    dL/dx[i, j] = g[i]          for every j:  g copied back along the summed axis.

For the mean, y[i] = (1/4) sum over j of x[i, j]: what changes? In general,
dividing by n, where n is the number of values that went into each y.

The care is in the shapes. g has the summed axes already removed (unless
keepdims=True), so g of shape (3,) must become (3, 1) before it can be copied
along axis 1: NumPy broadcasting lines shapes up from the right, and would
pair g's 3 values with x's 4 columns.

Check: python -m tinyconvmixer.exercises check sum_mean

Hints:
  1. axis may be None (every axis), an int (possibly negative) or a tuple.
     Normalise it to a sorted tuple of non-negative axes first: a % len(shape).
  2. xp.expand_dims(g, axes) puts size-1 axes back (when keepdims was False).
  3. xp.broadcast_to(g, shape) copies them out (as a read-only view: fine here),
     and xp is backend.get_array_module(g).
"""

from tinyconvmixer.engine import backend


def sum_backward(g, shape, axis, keepdims):
    """dL/dx for y = x.sum(axis, keepdims), where x had shape `shape` and g = dL/dy."""
    raise NotImplementedError("sum_backward: not written yet (exercise 3; its docstring says how)")


def mean_backward(g, shape, axis, keepdims):
    """dL/dx for y = x.mean(axis, keepdims), where x had shape `shape` and g = dL/dy."""
    raise NotImplementedError("mean_backward: not written yet (exercise 3; its docstring says how)")
