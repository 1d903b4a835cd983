"""Exercise 1: summing a broadcast gradient back (walkthrough Step 4).

NumPy lets `a + b` combine a (3, 1) array with a (4,) array: it broadcasts both
to (3, 4) in two moves, (1) prepending size-1 axes on the left until both have
as many axes, (2) stretching every size-1 axis to the other operand's size.
The op's backward gets `grad`, the gradient of the (3, 4) result, and must
return the gradient of each input, in the input's own shape.

Derive. Call the broadcast copy of a (3, 1) input `a` by `A`, so that
A[i, j] = a[i, 0] for every j. The loss depends on a[i, 0] through each of
A[i, 0], ..., A[i, 3], so by the chain rule (a sum over every use)

    dL/da[i, 0] = sum over j of dL/dA[i, j] = sum over j of grad[i, j].

Work out the same for the (4,) input: which axis was prepended, which values
of grad belong to b[j]? Then state the general rule: sum grad over the
prepended axes (they disappear) and over the stretched axes (they stay, with
size 1).

Write unbroadcast(grad, shape) below. Every binary op of the engine (+, -,
*, /, @) calls it for both of its inputs.

Check: python -m tinyconvmixer.exercises check unbroadcast

Hints (one at a time):
  1. grad.ndim - len(shape) axes were prepended: they are the first ones.
  2. After summing those away, axis i was stretched where shape[i] == 1 and
     grad.shape[i] != 1.
  3. ndarray.sum(axis=tuple_of_axes, keepdims=True) keeps the summed axes
     with size 1. An empty tuple of axes needs care: sum(axis=()) sums nothing.
"""


def unbroadcast(grad, shape):
    """Sum `grad` down to `shape`, undoing NumPy broadcasting (shape is a tuple)."""
    raise NotImplementedError("unbroadcast: not written yet (exercise 1; its docstring says how)")
