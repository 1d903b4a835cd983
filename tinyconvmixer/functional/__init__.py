"""The reference ops: differentiable functions on Tensors, named as in torch.nn.functional.

    import tinyconvmixer.functional as F
    y = F.gelu(F.conv2d(x, w, b, stride=1, padding='same', groups=C))

Each file is plain xp code (NumPy or CuPy, through engine/backend.py) that reads
on its own: the truth that the faster variants of fast/ are tested against.

    conv.py            conv2d: checks its arguments, then im2col or depthwise
    im2col.py          windows as a strided view, and col2im
    depthwise.py       depthwise conv as multiply-adds of shifted views
    activation.py      GELU
    normalization.py   batch norm
    pooling.py         global average pooling
    linear.py          the linear layer
    loss.py            log-softmax and cross-entropy
"""

from .activation import gelu
from .conv import conv2d
from .linear import linear
from .loss import cross_entropy, log_softmax
from .normalization import batch_norm
from .pooling import global_avg_pool2d

__all__ = ["conv2d", "gelu", "batch_norm", "global_avg_pool2d", "linear",
           "log_softmax", "cross_entropy"]
