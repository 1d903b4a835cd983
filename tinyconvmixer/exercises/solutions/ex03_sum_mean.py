"""Exercise 3, a reference solution: the gradients of sum and mean."""

import math

from tinyconvmixer.engine import backend


def _axes(shape, axis):
    """axis (None, an int or a tuple, possibly negative) as a sorted tuple of axes of `shape`."""
    if axis is None:
        return tuple(range(len(shape)))
    axes = (axis,) if isinstance(axis, int) else axis
    return tuple(sorted(a % len(shape) for a in axes))


def sum_backward(g, shape, axis, keepdims):
    """dL/dx for y = x.sum(axis, keepdims), where x had shape `shape` and g = dL/dy."""
    xp = backend.get_array_module(g)
    axes = _axes(shape, axis)
    if not keepdims:
        g = xp.expand_dims(g, axes)          # the summed axes back, with size 1
    return xp.broadcast_to(g, shape)         # g copied along them


def mean_backward(g, shape, axis, keepdims):
    """dL/dx for y = x.mean(axis, keepdims), where x had shape `shape` and g = dL/dy."""
    n = math.prod(shape[a] for a in _axes(shape, axis))     # values behind each mean
    return sum_backward(g, shape, axis, keepdims) / n
