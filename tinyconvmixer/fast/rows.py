"""BatchNorm on rows: the variant of functional/normalization.py for channels-last memory.

A channels-last (N, C, H, W) batch is, in memory, M = N*H*W rows of C channels
(an (N, C) batch already is). BatchNorm's per-channel work then needs only a
few passes over those rows: the statistics; y = (x - mean) * scale + shift; and
backward, two sums per channel and then dx = kg g - kx (x - mean) - k0, from the
kept x (as the reference, the node keeps x, not xhat, and not its output: output()
normalises x again). The passes themselves come from an implementation: blocks of
rows that stay in the cache on the CPU (cpu/rowwise.py), CUDA kernels on the GPU
(cuda/batchnorm.py); both have the same four functions, mean_var, normalize,
grad_sums and backward. The reference, functional/normalization.py, is the truth
they are tested against.
"""

from ..engine import backend
from ..functional.normalization import BatchNorm


def is_rows(x):
    """Is x already (M, C) rows in memory: an (N, C) C-order array or a channels-last batch?"""
    if x.ndim == 2:
        return x.flags.c_contiguous
    return x.ndim == 4 and x.transpose(0, 2, 3, 1).flags.c_contiguous


def as_rows(x):
    """(N, C, H, W) or (N, C) -> a C-contiguous (M, C) array (no copy if is_rows(x))."""
    xp = backend.get_array_module(x)
    if x.ndim == 2:
        return xp.ascontiguousarray(x)
    return xp.ascontiguousarray(x.transpose(0, 2, 3, 1)).reshape(-1, x.shape[1])


def from_rows(rows, shape):
    """Inverse of as_rows: (M, C) -> shape, an NCHW-shaped view of NHWC memory."""
    if len(shape) == 2:
        return rows
    N, C, H, W = shape
    return rows.reshape(N, H, W, C).transpose(0, 3, 1, 2)


def empty_rows(like):
    """An uninitialised array shaped like `like` whose memory is rows, and its (M, C) view.

    Where `like` is rows, the array is a new one (np.empty_like keeps the layout), not a
    view of one: a view would be copied by the engine before it becomes a leaf's .grad
    (8 MB at ConvMixer's shapes: 1.4 ms of BatchNorm's 15 on the CPU)."""
    xp = backend.get_array_module(like)
    if is_rows(like):
        y = xp.empty_like(like)
    else:
        C = like.shape[1]
        y = from_rows(xp.empty((like.size // C, C), dtype=like.dtype), like.shape)
    return y, as_rows(y)                   # (a view: y is rows)


def applies(x, weight=None, bias=None):
    """The shapes the rows variants take: (N, C) or (N, C, H, W), not empty, one dtype
    (mixed dtypes keep the reference's type promotion)."""
    return (x.ndim in (2, 4) and x.size > 0
            and all(a is None or a.dtype == x.dtype for a in (weight, bias)))


class BatchNormRows(BatchNorm):
    """BatchNorm with its passes done by `impl` over (M, C) rows."""

    impl = None             # a module with mean_var, normalize, grad_sums and backward

    def forward(self, x, weight=None, bias=None):
        xp, impl = backend.get_array_module(x), self.impl
        x2 = as_rows(x)
        M = x2.shape[0]
        if self.training:
            mean, var = impl.mean_var(x2)
            self._update_running(mean, var, M)
        else:
            mean, var = self.running_mean.astype(x.dtype), self.running_var.astype(x.dtype)
        invstd = 1.0 / xp.sqrt(var + self.eps)
        scale = invstd if weight is None else invstd * weight
        shift = xp.zeros_like(invstd) if bias is None else xp.ascontiguousarray(bias)
        self.mean, self.invstd, self.weight, self.scale, self.shift = mean, invstd, weight, scale, shift
        return self._normalized(x, x2)

    def output(self):
        x = self.inputs[0].data
        return self._normalized(x, as_rows(x))

    def _normalized(self, x, x2):
        """(x - mean) * scale + shift from x's rows x2, into a new array whose memory is rows."""
        y, y2 = empty_rows(x)
        self.impl.normalize(x2, self.mean, self.scale, self.shift, out=y2)
        return y

    def backward(self, g):
        xp, impl = backend.get_array_module(g), self.impl
        x = self.inputs[0].data
        x2, mean, invstd, scale = as_rows(x), self.mean, self.invstd, self.scale
        M = x2.shape[0]
        g2 = as_rows(g)
        sum_g, sum_gxc = impl.grad_sums(g2, x2, mean)
        dbias = sum_g                                            # sum of g
        dweight = invstd * sum_gxc                               # sum of g * xhat
        if self.training:      # dx = scale (g - dbias/M - xhat dweight/M), xhat = (x - mean) invstd
            kx, k0 = scale * invstd * dweight / M, scale * dbias / M
        else:                  # running statistics are constants: dx = scale g
            kx, k0 = xp.zeros_like(scale), xp.zeros_like(scale)
        dt = g.dtype
        dx, dx2 = empty_rows(x)
        impl.backward(g2, x2, mean, scale, kx.astype(dt), k0.astype(dt), out=dx2)
        return dx, dweight.astype(dt), dbias.astype(dt)
