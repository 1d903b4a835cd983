"""Tensor and the tape: reverse-mode automatic differentiation.

A `Tensor` wraps an ndarray (NumPy on the CPU, CuPy on the GPU). When an op is
applied to tensors that require gradients, it records a `Function` node that
remembers its inputs and whatever it needs for the backward pass; the output
tensor points to that node. An input made by another op is remembered as a
`Stub`: the tensor without its data, unless backward needs that data and no
cheap op can compute it again (see `Stub`), so the tape holds what backward
reads and no more. The nodes form a directed acyclic graph (the
"tape"). `loss.backward()` walks that graph once, from the loss back to the
leaves, in reverse topological order, applying the chain rule at each node:

    grad_input = d(output)/d(input)^T  @  grad_output      (a vector-Jacobian product)

Each `Function` subclass only has to implement `forward` on plain arrays and
`backward`, which turns the gradient of its output into gradients of its inputs.
"""

from __future__ import annotations

import contextlib
import weakref
from typing import Any, Iterator, Optional, Sequence, Union

import numpy as np   # only for type checks on host numbers (np.generic); arrays come via backend

from . import backend, dispatch
from .dispatch import replaceable

Array = Any          # a NumPy or CuPy ndarray

_grad_enabled = True


@contextlib.contextmanager
def no_grad() -> Iterator[None]:
    """Context manager: ops inside it record no graph (evaluation, optimiser steps)."""
    global _grad_enabled
    previous, _grad_enabled = _grad_enabled, False
    try:
        yield
    finally:
        _grad_enabled = previous


def is_grad_enabled() -> bool:
    return _grad_enabled


class Function:
    """One node of the graph. Subclasses implement forward() and backward().

    forward(*arrays) gets the raw arrays of the tensor inputs and returns one array.
    backward(grad) gets the gradient of the output (an array of the output's shape)
    and returns one gradient per tensor input (or None where none is needed);
    gradients for optional inputs that were not given (a missing bias) are ignored.
    Non-tensor settings (stride, axis, ...) are passed to __init__ as keywords.
    forward may read self.recording (False under no_grad(), or when no input needs a
    gradient) to skip what only backward would use, as GELU does with its slope.
    backward reads an input's data as self.inputs[i].data where i is in `saves`; a node
    whose output is cheap to make again says so (can_recompute) and makes it (output).

    apply() runs the class asked for, or a faster variant of it where one is
    registered and applies (dispatch.py): the reference ops never see that choice.
    """

    def __init__(self, **settings):
        self.__dict__.update(settings)

    inputs: Optional[list] = None     # the inputs (leaves, or Stubs), kept while the node is on the tape
    needs_grad: list = ()
    recording: bool = True             # apply() sets it; a Function called directly keeps its state
    saves: tuple = ()                  # inputs whose data backward reads, as self.inputs[i].data

    def can_recompute(self, depth: int = 1) -> bool:
        """Can output() make this node's output again, cheaply, from kept data (through at most
        `depth` more such recomputations, so that a long chain never recurses deeply)?"""
        return False

    def output(self) -> Array:
        raise NotImplementedError

    @classmethod
    def apply(cls, *inputs, **settings) -> "Tensor":
        """Run the op on tensors and, if gradients are wanted, record the node."""
        tensors = [as_tensor(x, like=inputs) for x in inputs]
        arrays = [t.data for t in tensors]
        fn = dispatch.pick(cls, *arrays, **settings)(**settings)   # cls, or a faster variant
        xp = backend.get_array_module(*arrays)
        fn.needs_grad = [t.requires_grad for t in tensors]
        fn.recording = _grad_enabled and any(fn.needs_grad)     # forward may skip what backward needs
        out = Tensor(xp.asarray(fn.forward(*arrays)))   # 0-d results stay arrays
        if fn.recording:
            fn.inputs = [t if t._fn is None else Stub.of(t) for t in tensors]
            for i in fn.saves:     # keep the data backward reads, unless a cheap op can remake it
                kept = fn.inputs[i] if i < len(tensors) else None
                if isinstance(kept, Stub) and kept._data is None and not kept._fn.can_recompute():
                    kept._data = arrays[i]
            out.requires_grad = True
            out._fn = fn
        return out

    def forward(self, *arrays: Array) -> Array:
        raise NotImplementedError

    def backward(self, grad: Array) -> Union[Array, tuple]:
        raise NotImplementedError


class Tensor:
    """An n-dimensional array that can remember how it was computed.

    Tensor(data, requires_grad=False) takes an ndarray (kept as is, on its device)
    or anything array-like (a list, a number), which becomes a NumPy array;
    Python floats become float32, as in PyTorch (NumPy arrays keep their dtype).
    """

    __array_priority__ = 1000   # make `ndarray + Tensor` call Tensor.__radd__

    data: Array
    grad: Optional[Array]
    requires_grad: bool

    def __init__(self, data: Any, requires_grad: bool = False):
        if isinstance(data, Tensor):
            data = data.data
        xp = backend.get_array_module(data)
        if not isinstance(data, xp.ndarray):
            from_python = type(data) in (bool, int, float, list, tuple)   # not np.float64
            data = xp.asarray(data)
            if from_python and data.dtype == xp.float64:
                data = data.astype(xp.float32)
        if requires_grad and data.dtype.kind != "f":
            raise TypeError(f"only floating-point tensors can require gradients, got {data.dtype}")
        self.data = data
        self.grad = None
        self.requires_grad = bool(requires_grad)
        self._fn = None          # the Function that produced this tensor (None for leaves)
        self._stub = None        # what the nodes that use this tensor keep of it (a Stub)

    # ----- plain properties --------------------------------------------------
    shape = property(lambda self: self.data.shape)
    dtype = property(lambda self: self.data.dtype)
    ndim = property(lambda self: self.data.ndim)
    size = property(lambda self: self.data.size)
    device = property(lambda self: backend.device_of(self.data))
    is_leaf = property(lambda self: self._fn is None)

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        grad = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor({backend.to_numpy(self.data)!r}{grad}, device='{self.device}')"

    def numpy(self) -> np.ndarray:
        """The values as a NumPy array (copied from the GPU if needed)."""
        return backend.to_numpy(self.data)

    def item(self) -> Union[float, int, bool]:
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        return self.data.item()

    def to(self, device: str) -> "Tensor":
        """A copy on `device` ('cpu' or 'gpu'); the same tensor if already there."""
        if self.device == backend.check_device(device):
            return self
        return Tensor(backend.to_device(self.data, device), requires_grad=self.requires_grad)

    def detach(self) -> "Tensor":
        """The same data, cut from the graph."""
        return Tensor(self.data)

    # ----- backward -----------------------------------------------------------
    def backward(self, grad: Any = None) -> None:
        """Accumulate d(self)/d(leaf) into `.grad` of every leaf that requires grad.

        `grad` is the upstream gradient (same shape as self); it may be omitted
        only for a single-element tensor such as a loss, where it is 1.
        """
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad "
                               "(was it computed inside no_grad(), or from constants only?)")
        xp = backend.get_array_module(self.data)
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(f"backward() without a gradient needs a single-element "
                                   f"tensor, got shape {self.shape}; pass grad=")
            grad = xp.ones_like(self.data)
        grad = grad.data if isinstance(grad, Tensor) else xp.asarray(grad, dtype=self.dtype)
        if grad.shape != self.shape:
            raise ValueError(f"backward(grad): grad has shape {grad.shape}, tensor has {self.shape}")

        grads = {id(self): grad}             # gradients of nodes not yet processed
        stored = set()                       # ids of arrays already stored as a leaf's .grad
        for node in topological_order(self):
            g = grads.pop(id(node), None)     # every consumer has contributed: g is complete
            if g is None:                     # (None: each consumer's backward returned None for it)
                continue
            fn = node._fn
            if fn is None:                    # a leaf: store the gradient for the user
                if g.base is not None or id(g) in stored:   # a view, or shared with another leaf
                    g = g.copy(order="K")                   # (x + y hands both the same g): own it,
                                                            # in its own memory layout (a fast copy)
                stored.add(id(g))
                node.grad = g if node.grad is None else node.grad + g
                continue
            if fn.inputs is None:
                raise RuntimeError("backward() through a graph that was already freed: "
                                   "each forward pass supports one backward pass")
            input_grads = fn.backward(g)
            if not isinstance(input_grads, tuple):
                input_grads = (input_grads,)
            for t, need, gi in zip(fn.inputs, fn.needs_grad, input_grads):
                if need and gi is not None:
                    if not isinstance(gi, xp.ndarray) or gi.dtype != t.dtype:
                        gi = xp.asarray(gi, dtype=t.dtype)   # an input's gradient has its dtype
                    accumulate(grads, id(t), gi)
            fn.__dict__ = {"inputs": None}   # free the graph (and its saved arrays) as we go

    # The operators (+, -, *, /, @, **, [], sum, mean, reshape, ...) are attached by ops.py,
    # once the ops they call exist.


class Stub(Tensor):
    """What a node keeps of an input that another op made: the same tensor for the graph
    (its node, shape, dtype, requires_grad) without its data; one per tensor, shared by
    its users, so that gradients meet under one key. `.data` is there where a backward
    reads it (Function.saves): the tensor's own while the user holds it, else kept from
    the forward pass or, where the op that made it is cheap (an addition, BatchNorm's
    normalisation), computed again when first read. So a tensor no backward reads is
    freed as soon as the user's code lets it go."""

    def __init__(self, t: Tensor):
        self._fn, self.requires_grad, self.grad = t._fn, t.requires_grad, None
        self._data, self._meta, self._tensor = None, (t.shape, t.dtype, t.device), weakref.ref(t)

    @staticmethod
    def of(t: Tensor) -> "Stub":
        if isinstance(t, Stub):                # (an op applied to a node's input, say)
            return t
        if t._stub is None:
            t._stub = Stub(t)
        return t._stub

    shape = property(lambda self: self._meta[0])
    dtype = property(lambda self: self._meta[1])
    device = property(lambda self: self._meta[2])
    ndim = property(lambda self: len(self._meta[0]))
    size = property(lambda self: int(np.prod(self._meta[0])))
    __len__ = lambda self: self._meta[0][0]   # noqa: E731

    @property
    def data(self) -> Array:
        if self._data is None:
            t = self._tensor()                 # the tensor itself, if the user still holds it
            if t is not None:
                return t.data
            if self._fn.inputs is None:
                raise RuntimeError("backward() through a graph that was already freed: "
                                   "each forward pass supports one backward pass")
            if not self._fn.can_recompute():
                op = dispatch.reference_of(type(self._fn)).__name__   # GELU, not its variant
                raise RuntimeError(f"the data of a {op} output was not "
                                   f"kept: list it in its reader's saves")
            self._data = self._fn.output()    # kept until the nodes that read it are freed
        return self._data

    def __repr__(self) -> str:
        return f"Stub(shape={self.shape}, dtype={self.dtype}, of {type(self._fn).__name__})"


def as_tensor(x: Any, like: Sequence = ()) -> Tensor:
    """Wrap a non-tensor operand (a number or array) as a constant Tensor.

    A Python number takes the dtype and device of the tensors it is combined
    with (`like`), so `x * 2` keeps x float32 and on its device.
    """
    if isinstance(x, Tensor):
        return x
    ref = next((t for t in like if isinstance(t, Tensor)), None)
    if ref is None:
        return Tensor(x)
    xp = backend.get_array_module(ref.data)
    number = isinstance(x, (int, float, bool, np.generic))
    if backend.get_array_module(x) is not xp and not number:
        raise ValueError(f"operand is on device '{backend.device_of(x)}' but the tensor "
                         f"is on '{ref.device}'")
    dtype = ref.dtype
    x_kind = x.dtype.kind if hasattr(x, "dtype") else np.asarray(x).dtype.kind
    if dtype.kind != "f" and x_kind == "f":
        dtype = np.float32                     # int tensor * 2.5 must not become int * 2
    return Tensor(xp.asarray(x, dtype=dtype))


@replaceable
def accumulate(grads: dict, key: int, g: Array) -> None:
    """Collect one more gradient for the tensor `key`: a tensor that several ops used
    (or one op used twice, as in x * x) gets the sum of all their contributions."""
    grads[key] = g if key not in grads else grads[key] + g


@replaceable
def topological_order(root: Tensor) -> list:
    """Nodes reachable from `root`, each listed before all the nodes it depends on.

    Iterative depth-first search (an explicit stack instead of recursion), so
    a graph thousands of ops deep does not hit Python's recursion limit.
    """
    order, visited = [], set()
    stack = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if children_done:
            order.append(node)            # post-order: after everything it depends on
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        if node._fn is not None and node._fn.inputs is not None:
            for t, need in zip(node._fn.inputs, node._fn.needs_grad):
                if need and id(t) not in visited:
                    stack.append((t, False))
    return order[::-1]                    # reverse post-order = topological order
