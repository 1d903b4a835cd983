"""Linear layers and pooling, written with Tensor ops (their gradients come for free)."""


def linear(x, weight, bias=None):
    """y = x @ weight^T + bias, with weight (out_features, in_features) as in PyTorch."""
    if weight.ndim != 2 or x.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: input with {x.shape[-1]} features (shape {x.shape}) does not match "
                         f"weight of shape {weight.shape} (out_features, in_features)")
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"linear: bias must have shape ({weight.shape[0]},), got {bias.shape}")
    y = x @ weight.T
    return y if bias is None else y + bias


def global_avg_pool2d(x):
    """Average over the spatial axes: (N, C, H, W) -> (N, C)."""
    if x.ndim != 4:
        raise ValueError(f"global_avg_pool2d: input must be 4-D (N, C, H, W), got shape {x.shape}")
    return x.mean(axis=(2, 3))
