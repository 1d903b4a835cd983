"""Differentiable functions on Tensors, named as in torch.nn.functional.

    import tinyconvmixer.functional as F
    y = F.gelu(F.conv2d(x, w, b, stride=1, padding='same', groups=C))
"""

from .activation import gelu
from .basic import global_avg_pool2d, linear
from .conv import conv2d
from .loss import cross_entropy, log_softmax
from .normalization import batch_norm

__all__ = ["conv2d", "gelu", "batch_norm", "global_avg_pool2d", "linear",
           "log_softmax", "cross_entropy"]
