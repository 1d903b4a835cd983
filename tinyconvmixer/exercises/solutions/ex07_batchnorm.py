"""Exercise 7, a reference solution: BatchNorm's training backward."""


def batchnorm_backward(g, xhat, invstd, weight):
    """(dx, dweight, dbias) of training-mode BatchNorm."""
    axes = (0,) + tuple(range(2, g.ndim))                 # every axis but the channels
    cs = (1, -1) + (1,) * (g.ndim - 2)                    # a (C,) vector, broadcastable
    dbias = g.sum(axis=axes)
    dweight = (g * xhat).sum(axis=axes)
    dxhat = g if weight is None else g * weight.reshape(cs)
    through_mean = dxhat.mean(axis=axes, keepdims=True)
    through_var = xhat * (dxhat * xhat).mean(axis=axes, keepdims=True)
    dx = invstd.reshape(cs) * (dxhat - through_mean - through_var)
    return dx, dweight, dbias
