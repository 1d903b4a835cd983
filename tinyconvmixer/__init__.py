"""tinyconvmixer: a from-scratch autograd engine on NumPy/CuPy that trains ConvMixer."""

from .tensor import Tensor, no_grad, is_grad_enabled

__version__ = "0.1.0"
__all__ = ["Tensor", "no_grad", "is_grad_enabled"]
