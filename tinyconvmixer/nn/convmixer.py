"""ConvMixer ("Patches Are All You Need?", Trockman & Kolter), as in the paper's code.

    patch embedding:  Conv2d(3, dim, p, stride=p) -> GELU -> BatchNorm
    depth x:          Residual(depthwise Conv2d(dim, dim, k, groups=dim, "same") -> GELU -> BN)
                      -> pointwise Conv2d(dim, dim, 1) -> GELU -> BN
    head:             global average pool -> flatten -> Linear(dim, n_classes)

Shapes for a CIFAR batch (N, 3, 32, 32) with patch size p: the patch embedding
gives (N, dim, 32/p, 32/p); every block keeps that shape; the head gives (N, n_classes).

The model is one Sequential with the same indices as the paper's nn.Sequential
(block i is index 3 + i, then the pool at depth + 3 and the flatten at depth + 4;
the Linear is index depth + 5, the last of depth + 6), so state-dict keys map
1:1 onto the PyTorch model's.
"""

from .containers import Residual, Sequential
from .layers import GELU, BatchNorm2d, Conv2d, Flatten, GlobalAvgPool2d, Linear


class ConvMixer(Sequential):
    """ConvMixer-dim/depth. ConvMixer(256, 8, kernel_size=5, patch_size=2, n_classes=10)
    is the CIFAR-10 recipe's model (594,186 parameters)."""

    def __init__(self, dim, depth, kernel_size=9, patch_size=7, n_classes=1000):
        blocks = [Sequential(
            Residual(Sequential(
                Conv2d(dim, dim, kernel_size, groups=dim, padding="same"),   # spatial mixing
                GELU(),
                BatchNorm2d(dim))),
            Conv2d(dim, dim, kernel_size=1),                                  # channel mixing
            GELU(),
            BatchNorm2d(dim)) for _ in range(depth)]
        super().__init__(
            Conv2d(3, dim, kernel_size=patch_size, stride=patch_size),        # patch embedding
            GELU(),
            BatchNorm2d(dim),
            *blocks,
            GlobalAvgPool2d(),
            Flatten(),
            Linear(dim, n_classes))
        self.config = dict(dim=dim, depth=depth, kernel_size=kernel_size,
                           patch_size=patch_size, n_classes=n_classes)


def count_parameters(model):
    """Number of trainable scalars."""
    return sum(int(p.size) for p in model.parameters())
