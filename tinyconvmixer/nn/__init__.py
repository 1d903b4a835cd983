"""Layers and models, named as in torch.nn.

    from tinyconvmixer import nn
    nn.init.manual_seed(0)
    model = nn.ConvMixer(256, 8, kernel_size=5, patch_size=2, n_classes=10)
"""

from . import init
from .containers import Residual, Sequential
from .convmixer import ConvMixer, count_parameters
from .layers import GELU, BatchNorm2d, Conv2d, Flatten, GlobalAvgPool2d, Linear
from .module import Module, Parameter, StateDictError

__all__ = ["init", "Module", "Parameter", "StateDictError", "Sequential", "Residual",
           "Conv2d", "BatchNorm2d", "GELU", "Linear", "GlobalAvgPool2d", "Flatten",
           "ConvMixer", "count_parameters"]
