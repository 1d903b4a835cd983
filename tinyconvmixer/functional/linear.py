"""The linear layer, written with Tensor ops (its gradient comes for free from theirs)."""

from ..engine import Tensor


def linear(x: Tensor, weight: Tensor, bias: Tensor = None) -> Tensor:
    """y = x @ weight^T + bias, with weight (out_features, in_features) as in PyTorch."""
    if weight.ndim != 2 or x.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: input with {x.shape[-1]} features (shape {x.shape}) does not match "
                         f"weight of shape {weight.shape} (out_features, in_features)")
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"linear: bias must have shape ({weight.shape[0]},), got {bias.shape}")
    y = x @ weight.T
    return y if bias is None else y + bias
