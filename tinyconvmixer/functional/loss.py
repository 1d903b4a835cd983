"""log-softmax and cross-entropy, computed stably with the log-sum-exp trick.

softmax(z)_k = exp(z_k) / sum_j exp(z_j) overflows for large logits (exp(1000)
is inf in float64). Subtracting the row maximum m first changes nothing
mathematically but keeps every exponent <= 0:
    log_softmax(z)_k = z_k - m - log(sum_j exp(z_j - m))
Cross-entropy with integer targets t and mean reduction over N rows:
    loss = -(1/N) sum_n log_softmax(z_n)_{t_n}
    dloss/dz = (softmax(z) - onehot(t)) / N
"""

from ..engine import Function, Tensor, backend
from ..engine.dispatch import replaceable


@replaceable
def stable_log_softmax(z, axis):
    """log(softmax(z)) along axis of an array, with the row maximum subtracted first."""
    xp = backend.get_array_module(z)
    shifted = z - z.max(axis=axis, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))


class LogSoftmax(Function):
    def forward(self, z):
        self.out = stable_log_softmax(z, self.axis)
        return self.out

    def backward(self, g):
        # y = z - lse(z):  dz = g - softmax(z) * sum(g)
        xp = backend.get_array_module(g)
        return g - xp.exp(self.out) * g.sum(axis=self.axis, keepdims=True)


class CrossEntropy(Function):
    def forward(self, z):
        xp = backend.get_array_module(z)
        self.logp = stable_log_softmax(z, axis=1)
        rows = xp.arange(z.shape[0])
        return -self.logp[rows, self.target].mean()

    def backward(self, g):
        xp = backend.get_array_module(g)
        N = self.logp.shape[0]
        dz = xp.exp(self.logp)                           # softmax
        dz[xp.arange(N), self.target] -= 1.0             # minus one-hot
        return dz * (g / N)


def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    """log(softmax(x)) along `axis` (PyTorch calls it dim)."""
    return LogSoftmax.apply(x, axis=axis)


def cross_entropy(logits: Tensor, target) -> Tensor:
    """Mean cross-entropy of (N, K) logits against N integer class labels.

    Targets outside 0..K-1 are refused when they are host (NumPy) arrays. On the
    GPU they are not checked here: that would copy them back to the host and make
    the CPU wait for the GPU at every step. The data set's labels are checked
    once, on the host, when it is loaded (data/cifar.py, data/cache.py); code
    that makes its own GPU targets must check them before copying them over.
    """
    target = target.data if isinstance(target, Tensor) else target
    np_ = backend.numpy_module()
    on_host = backend.get_array_module(target) is np_
    if on_host:
        target = np_.asarray(target)
    if logits.ndim != 2:
        raise ValueError(f"cross_entropy: logits must be (N, classes), got shape {logits.shape}")
    if target.shape != (logits.shape[0],):
        raise ValueError(f"cross_entropy: target must have shape ({logits.shape[0]},) to match "
                         f"logits {logits.shape}, got {target.shape}")
    if target.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy: target must hold integer class indices, got dtype {target.dtype}")
    if on_host and target.size and (target.min() < 0 or target.max() >= logits.shape[1]):
        raise ValueError(f"cross_entropy: target values must be in [0, {logits.shape[1] - 1}], "
                         f"got range [{int(target.min())}, {int(target.max())}]")
    xp = backend.get_array_module(logits.data)
    return CrossEntropy.apply(logits, target=xp.asarray(target))     # (host targets copied to the GPU)
