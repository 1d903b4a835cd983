"""2-D convolution: the general im2col path and the lean depthwise path.

`conv2d(x, weight, bias=None, stride=1, padding=0, groups=1)` mirrors
torch.nn.functional.conv2d (NCHW input, weight (C_out, C_in/groups, kh, kw)).
It checks its arguments, then picks one of two Functions:

* `Conv2dIm2col`: any groups. Windows are gathered into a column matrix
  (im2col) and the convolution is a (batched over groups) matrix product.
  The column matrix is kh*kw times larger than the input.
* `DepthwiseConv2d`: groups == C_in == C_out (each channel has its own kernel,
  as in ConvMixer's spatial mixing). A matrix product would multiply tiny
  (1 x kh*kw) matrices, and the column array would be 25x (k=5) or 81x (k=9)
  the input. Instead we loop over the kh*kw kernel taps and multiply-accumulate
  whole shifted views: no column array at all.
"""

from ..engine import Function, Tensor, as_tensor
from .depthwise import DepthwiseConv2d
from .im2col import col2im, im2col_view, output_size, pad2d, unpad2d


class Conv2dIm2col(Function):
    """Convolution as im2col + matrix product; settings: stride, padding, groups.

    Rows of the column matrix are output pixels (n, ho, wo), columns are the
    (c, i, j) entries of one window, so out = cols @ W^T comes out as
    (N*Ho*Wo, C_out): channels last. We return it as an (N, C, H, W)-shaped
    view of that NHWC memory ("channels-last", like PyTorch's memory format),
    so a following 1x1 conv needs no copy at all: its cols *are* the input.
    """

    saves = (0,)            # x: backward makes its columns again (a view for a 1x1 conv)

    def forward(self, x, w, b=None):
        G = self.groups
        F = w.shape[0]
        cols, (Ho, Wo) = self.columns(x, w.shape)
        N = x.shape[0]
        wmat = w.reshape(G, F // G, -1)
        out = cols @ wmat.transpose(0, 2, 1)                           # (G, N*Ho*Wo, F/G)
        out = out.reshape(G, N, Ho, Wo, F // G).transpose(1, 2, 3, 0, 4).reshape(N, Ho, Wo, F)
        if b is not None:
            out += b                                                   # NHWC: bias on the last axis
        self.wmat, self.w_shape = wmat, w.shape
        return out.transpose(0, 3, 1, 2)                               # NCHW shape, NHWC memory

    def columns(self, x, w_shape):
        """(cols, (Ho, Wo)): cols[g, (n, ho, wo), (c, i, j)], (G, N*Ho*Wo, Cg*kh*kw). Made in the
        forward pass and again in the backward pass, rather than kept: for a 1x1 conv on a
        channels-last input they are x itself, elsewhere kh*kw times its size."""
        G, (N, C, _, _), (F, Cg, kh, kw) = self.groups, x.shape, w_shape
        xp_ = pad2d(x, self.padding)
        Ho = output_size(xp_.shape[2], kh, self.stride[0])
        Wo = output_size(xp_.shape[3], kw, self.stride[1])
        windows = im2col_view(xp_, (kh, kw), self.stride)              # (N, C, kh, kw, Ho, Wo), a view
        # This reshape is the real copy (none for a 1x1 conv on a channels-last input).
        cols = (windows.reshape(N, G, Cg, kh, kw, Ho, Wo)
                .transpose(1, 0, 5, 6, 2, 3, 4).reshape(G, N * Ho * Wo, Cg * kh * kw))
        self.padded_shape = xp_.shape
        return cols, (Ho, Wo)

    def backward(self, g):
        G, (F, Cg, kh, kw) = self.groups, self.w_shape
        cols, (Ho, Wo) = self.columns(self.inputs[0].data, self.w_shape)
        N, C = self.padded_shape[:2]
        gmat = (g.transpose(0, 2, 3, 1).reshape(N, Ho, Wo, G, F // G)
                .transpose(3, 0, 1, 2, 4).reshape(G, N * Ho * Wo, F // G))
        dw = (gmat.transpose(0, 2, 1) @ cols).reshape(self.w_shape)          # dW = dOut^T @ cols
        dcols = gmat @ self.wmat                                             # dcols = dOut @ W
        dcols = (dcols.reshape(G, N, Ho, Wo, Cg, kh, kw)
                 .transpose(1, 0, 4, 5, 6, 2, 3).reshape(N, C, kh, kw, Ho, Wo))
        dx = unpad2d(col2im(dcols, self.padded_shape, self.stride), self.padding)
        db = g.sum(axis=(0, 2, 3))
        return dx, dw, db


def _pair(value, name):
    if isinstance(value, int):
        return (value, value)
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return tuple(value)
    raise ValueError(f"conv2d: {name} must be an int or a pair of ints, got {value!r}")


def conv_arguments(x, weight, bias, stride, padding, groups):
    """Check shapes and settings; return (stride pair, padding pair). Errors name the problem."""
    if x.ndim != 4:
        raise ValueError(f"conv2d: input must be 4-D (N, C, H, W), got shape {x.shape}")
    if weight.ndim != 4:
        raise ValueError(f"conv2d: weight must be 4-D (C_out, C_in/groups, kh, kw), got shape {weight.shape}")
    if not isinstance(groups, int) or groups < 1:
        raise ValueError(f"conv2d: groups must be a positive int, got {groups!r}")
    C, F, (kh, kw) = x.shape[1], weight.shape[0], weight.shape[2:]
    if C % groups:
        raise ValueError(f"conv2d: groups={groups} does not divide the {C} input channels")
    if F % groups:
        raise ValueError(f"conv2d: groups={groups} does not divide the {F} output channels (weight.shape[0])")
    if weight.shape[1] * groups != C:
        raise ValueError(f"conv2d: input has {C} channels but weight {weight.shape} with groups={groups} "
                         f"expects {weight.shape[1] * groups}")
    if bias is not None and bias.shape != (F,):
        raise ValueError(f"conv2d: bias must have shape ({F},), got {bias.shape}")
    for t in (weight, bias):
        if t is not None and t.device != x.device:
            raise ValueError(f"conv2d: input is on '{x.device}' but a parameter is on '{t.device}'")
        if t is not None and t.dtype != x.dtype:
            raise TypeError(f"conv2d: input dtype {x.dtype} differs from parameter dtype {t.dtype}")
    stride = _pair(stride, "stride")
    if min(stride) < 1:
        raise ValueError(f"conv2d: stride must be >= 1, got {stride}")
    if padding == "same":
        if stride != (1, 1) or kh % 2 == 0 or kw % 2 == 0:
            raise ValueError(f"conv2d: padding='same' needs stride 1 and an odd kernel, "
                             f"got stride {stride} and kernel {(kh, kw)}")
        padding = ((kh - 1) // 2, (kw - 1) // 2)
    elif padding == "valid":
        padding = (0, 0)
    else:
        padding = _pair(padding, "padding")
        if min(padding) < 0:
            raise ValueError(f"conv2d: padding must be >= 0, got {padding}")
    Hp, Wp = x.shape[2] + 2 * padding[0], x.shape[3] + 2 * padding[1]
    if Hp < kh or Wp < kw:
        raise ValueError(f"conv2d: kernel {(kh, kw)} is larger than the padded input {(Hp, Wp)}")
    return stride, padding


def conv2d(x: Tensor, weight: Tensor, bias: Tensor = None, stride=1, padding=0, groups: int = 1) -> Tensor:
    """2-D convolution over an NCHW batch (see the module docstring)."""
    x, weight = as_tensor(x, like=(weight,)), as_tensor(weight, like=(x,))
    stride, padding = conv_arguments(x, weight, bias, stride, padding, groups)
    depthwise = groups == x.shape[1] == weight.shape[0]
    op = DepthwiseConv2d if depthwise else Conv2dIm2col
    inputs = (x, weight) if bias is None else (x, weight, bias)
    return op.apply(*inputs, stride=stride, padding=padding, groups=groups)
