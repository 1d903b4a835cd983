"""The engine: tensors, the tape and backward, the elementary ops, and the array backend.

Read in this order:
    backend.py   NumPy on the CPU, CuPy on the GPU: get_array_module, devices
    tensor.py    Tensor, Function, backward() and the topological order, no_grad
    ops.py       + - * / @ ** sum mean reshape transpose exp log [], with their gradients
    dispatch.py  which code runs an op: its reference, a faster variant, or a stand-in
"""

from . import backend, dispatch
from .tensor import Function, Tensor, as_tensor, is_grad_enabled, no_grad
from . import ops  # noqa: E402,F401  (attaches Tensor's operators)

__all__ = ["Tensor", "Function", "as_tensor", "no_grad", "is_grad_enabled", "backend", "dispatch", "ops"]
