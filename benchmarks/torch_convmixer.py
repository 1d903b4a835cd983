"""ConvMixer in PyTorch, written here, with the same layer indices as tinyconvmixer's.

Used by the benchmarks and the reference training run to compare the two
engines on identical weights: `load_from_tinyconvmixer` copies a tinyconvmixer
state dict into the torch model key by key (the names match 1:1).
"""

import numpy as np
import torch
from torch import nn


class Residual(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return x + self.fn(x)


def torch_convmixer(dim, depth, kernel_size=9, patch_size=7, n_classes=1000):
    """The paper's ConvMixer as one nn.Sequential."""
    return nn.Sequential(
        nn.Conv2d(3, dim, kernel_size=patch_size, stride=patch_size),
        nn.GELU(),
        nn.BatchNorm2d(dim),
        *[nn.Sequential(
            Residual(nn.Sequential(
                nn.Conv2d(dim, dim, kernel_size, groups=dim, padding="same"),
                nn.GELU(),
                nn.BatchNorm2d(dim))),
            nn.Conv2d(dim, dim, kernel_size=1),
            nn.GELU(),
            nn.BatchNorm2d(dim)) for _ in range(depth)],
        nn.AdaptiveAvgPool2d((1, 1)),
        nn.Flatten(),
        nn.Linear(dim, n_classes))


def load_from_tinyconvmixer(torch_model, state_dict):
    """Copy a tinyconvmixer state dict (name -> array) into the torch model, strictly."""
    ours = {k: torch.from_numpy(np.array(v)) for k, v in state_dict.items()}
    theirs = torch_model.state_dict()
    if set(ours) != set(theirs):
        raise KeyError(f"state dict keys differ: only ours {sorted(set(ours) - set(theirs))[:5]}, "
                       f"only torch {sorted(set(theirs) - set(ours))[:5]}")
    torch_model.load_state_dict({k: v.to(theirs[k].dtype).reshape(theirs[k].shape) for k, v in ours.items()})
    return torch_model
