"""Batch normalisation with PyTorch's semantics (torch.nn.functional.batch_norm).

Training mode, per channel c over the N*H*W values of the batch:
    mean = E[x],  var = E[(x - mean)^2]  (biased),  xhat = (x - mean) / sqrt(var + eps)
    y = weight * xhat + bias
    running_mean <- (1 - momentum) running_mean + momentum * mean
    running_var  <- (1 - momentum) running_var  + momentum * var * M / (M - 1)   (unbiased, M = N*H*W)
Eval mode uses the running statistics instead of the batch's, so y is an affine
function of x.

Backward in training mode must go *through* mean and var, because every output
depends on every input of its channel. With dxhat = dy * weight and M values:
    dx = (1 / sqrt(var + eps)) * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))
(The trap: the *sum* of BN's output does not depend on x at all, since xhat sums
to zero. So checking BN's gradient with an all-ones upstream gradient passes even
when this formula is wrong. Always check with a random upstream gradient.)

The node keeps its input x (Function.saves) and per-channel vectors; xhat is
computed again from x when backward needs it. The output is not kept: it is one
normalisation of x away, so a node that reads it (the convolution after a
residual addition, say) gets it computed again (can_recompute, output).

This plain code is the reference. Faster variants of it (fast/rows.py: the same
math in a few passes over channels-last memory, by blocks of rows on the CPU and
by CUDA kernels on the GPU) are tested against it.
"""

from ..engine import Function, Tensor, backend


def _channel_shape(x):
    """Shape that broadcasts a per-channel vector against x: (1, C, 1, 1) or (1, C)."""
    return (1, x.shape[1]) + (1,) * (x.ndim - 2)


class BatchNorm(Function):
    """Settings: running_mean, running_var (arrays updated in place, or None), training,
    momentum, eps."""

    saves = (0,)                                     # x, read again by backward and by output()

    def forward(self, x, weight=None, bias=None):
        xp = backend.get_array_module(x)
        self.axes = (0,) + tuple(range(2, x.ndim))   # every axis but channels
        self.cs, self.weight, self.bias = _channel_shape(x), weight, bias
        if self.training:
            self.mean = x.mean(axis=self.axes)
        else:                                        # (a copy: the buffer may change before backward)
            self.mean, var = self.running_mean.copy(), self.running_var
        y = self._centred(x)
        if self.training:
            var = (y * y).mean(axis=self.axes)       # biased: divide by M
            self._update_running(self.mean, var, x.size // x.shape[1])
        self.invstd = (1.0 / xp.sqrt(var + self.eps)).reshape(self.cs)
        return self._affine(y)

    def _centred(self, x):
        """x - mean, the first step of y = weight * xhat + bias, built step by step in one new
        array of x's memory layout (channels-last stays so; CuPy's x - mean would be C order)
        and of the dtype NumPy's type promotion gives x, weight and bias together."""
        xp = backend.get_array_module(x)
        dtype = xp.result_type(x, *[a for a in (self.weight, self.bias) if a is not None])
        return xp.subtract(x, self.mean.reshape(self.cs), out=xp.empty_like(x, dtype=dtype))

    def _affine(self, y):
        """(x - mean) in place -> xhat -> weight * xhat + bias."""
        y *= self.invstd
        if self.weight is not None:
            y *= self.weight.reshape(self.cs)
        if self.bias is not None:
            y += self.bias.reshape(self.cs)
        return y

    def can_recompute(self, depth=1):                 # from x, where x was kept
        return self.inputs is not None and getattr(self.inputs[0], "_data", None) is not None

    def output(self):
        """The forward pass's y again, from the kept x (the running statistics stay as they are)."""
        return self._affine(self._centred(self.inputs[0].data))

    @property
    def xhat(self):
        """(x - mean) * invstd, computed again from the kept input when backward asks for it,
        so that no xhat array waits for the backward pass."""
        return (self.inputs[0].data - self.mean.reshape(self.cs)) * self.invstd

    def _update_running(self, mean, var, M):
        if self.running_mean is not None:            # update in place: they are module buffers
            m = self.momentum
            self.running_mean *= 1 - m
            self.running_mean += m * mean
            self.running_var *= 1 - m
            self.running_var += m * var * (M / max(M - 1, 1))

    def backward(self, g):
        xp = backend.get_array_module(g)
        axes, cs, xhat = self.axes, self.cs, self.xhat
        dbias = g.sum(axis=axes)                              # (C,)
        g_xhat = g * xhat
        dweight = g_xhat.sum(axis=axes)                       # (C,)
        scale = self.invstd if self.weight is None else self.invstd * self.weight.reshape(cs)
        if not self.training:                                 # running statistics are constants
            return g * scale, dweight, dbias
        # Through the batch mean and variance (see the module docstring). With dxhat =
        # g * weight, mean(dxhat) = weight * dbias / M and mean(dxhat * xhat) = weight *
        # dweight / M, so dx = scale * (g - dbias / M - xhat * dweight / M) per channel:
        M = g.size // g.shape[1]
        dx = g * scale
        dx -= xp.multiply(xhat, scale * (dweight.reshape(cs) / M), out=g_xhat)   # reuse the buffer
        dx -= scale * (dbias.reshape(cs) / M)
        return dx, dweight, dbias


def batch_norm(x: Tensor, running_mean, running_var, weight: Tensor = None, bias: Tensor = None,
               training: bool = False, momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Batch norm over (N, H, W) per channel; running stats are raw arrays updated in place."""
    if x.ndim < 2:
        raise ValueError(f"batch_norm: input must be (N, C) or (N, C, H, W), got shape {x.shape}")
    C = x.shape[1]
    for name, t in (("running_mean", running_mean), ("running_var", running_var),
                    ("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != (C,):
            raise ValueError(f"batch_norm: {name} must have shape ({C},) for {C} channels, got {t.shape}")
    if not training and (running_mean is None or running_var is None):
        raise ValueError("batch_norm: eval mode (training=False) needs running_mean and running_var")
    if training and x.size // C < 2:
        raise ValueError(f"batch_norm: training needs more than 1 value per channel, got input shape {x.shape}")
    if isinstance(running_mean, Tensor) or isinstance(running_var, Tensor):
        raise TypeError("batch_norm: running_mean and running_var are raw arrays (module buffers), "
                        "not Tensors: pass tensor.data")
    inputs = [x] + [t for t in (weight, bias) if t is not None]
    if weight is None and bias is not None:
        raise ValueError("batch_norm: a bias without a weight is not supported")
    return BatchNorm.apply(*inputs, running_mean=running_mean, running_var=running_var,
                           training=training, momentum=momentum, eps=eps)
