"""Elementary differentiable ops: arithmetic, reductions and shape changes.

These back the Tensor operators (`a + b`, `a @ b`, `a.sum()`, ...). Each is a
`Function` with a forward on arrays and a backward that maps the output
gradient to input gradients. Broadcasting needs care: if `a` of shape (3, 1)
is added to `b` of shape (3, 4), `a` was used 4 times, so its gradient is the
output gradient summed over the broadcast axis (see `unbroadcast`).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Union

from . import backend
from .dispatch import replaceable
from .tensor import Array, Function, Tensor

Operand = Union[Tensor, Array, float, int]


@replaceable
def unbroadcast(grad: Array, shape: tuple) -> Array:
    """Sum `grad` down to `shape`, undoing NumPy broadcasting.

    Broadcasting (1) prepends axes and (2) stretches size-1 axes; the gradient
    of a stretched input is the sum over the copies it was stretched into.
    """
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    grad = grad.sum(axis=tuple(range(extra))) if extra else grad       # (1)
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    return grad.sum(axis=axes, keepdims=True) if axes else grad         # (2)


class Add(Function):
    def forward(self, a, b):
        self.shapes = a.shape, b.shape
        if a.shape == b.shape and a.dtype == b.dtype:   # keep a's memory layout (channels-last),
            xp = backend.get_array_module(a)            # which CuPy's a + b would not
            return xp.add(a, b, out=xp.empty_like(a))
        return a + b

    def backward(self, g):
        return unbroadcast(g, self.shapes[0]), unbroadcast(g, self.shapes[1])

    def can_recompute(self, depth=1):
        """Cheap to redo from operands kept or remade by one more cheap op (not leaves: in place)."""
        return depth > 0 and self.inputs is not None and all(
            t._fn is not None and (t._data is not None or t._fn.can_recompute(depth - 1)) for t in self.inputs)

    def output(self):
        return self.forward(self.inputs[0].data, self.inputs[1].data)


class Sub(Function):
    def forward(self, a, b):
        self.shapes = a.shape, b.shape
        return a - b

    def backward(self, g):
        return unbroadcast(g, self.shapes[0]), unbroadcast(-g, self.shapes[1])


class Mul(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, g):
        a, b = self.a, self.b
        return unbroadcast(g * b, a.shape), unbroadcast(g * a, b.shape)


class Div(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a / b

    def backward(self, g):
        a, b = self.a, self.b
        ga = g / b
        return unbroadcast(ga, a.shape), unbroadcast(-ga * a / b, b.shape)   # d(a/b)/db = -a/b^2


class Neg(Function):
    def forward(self, a):
        return -a

    def backward(self, g):
        return -g


class Pow(Function):
    """a ** p for a constant (Python number) exponent p."""

    def forward(self, a):
        self.a = a
        return a ** self.p

    def backward(self, g):
        return g * self.p * self.a ** (self.p - 1)


class Exp(Function):
    def forward(self, a):
        self.out = backend.get_array_module(a).exp(a)
        return self.out

    def backward(self, g):
        return g * self.out


class Log(Function):
    def forward(self, a):
        self.a = a
        return backend.get_array_module(a).log(a)

    def backward(self, g):
        return g / self.a


class MatMul(Function):
    """a @ b for 2-D operands (or a batch of them with matching leading dims).

    For C = A @ B:  dA = dC @ B^T  and  dB = A^T @ dC.
    """

    def forward(self, a, b):
        if a.ndim < 2 or b.ndim < 2:
            raise ValueError(f"matmul needs operands with at least 2 dims, got {a.shape} and {b.shape}")
        if a.shape[-1] != b.shape[-2]:
            raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not align "
                             f"({a.shape[-1]} != {b.shape[-2]})")
        self.a, self.b = a, b
        return a @ b

    def backward(self, g):
        a, b = self.a, self.b
        ga = g @ b.swapaxes(-1, -2)
        gb = a.swapaxes(-1, -2) @ g
        return unbroadcast(ga, a.shape), unbroadcast(gb, b.shape)


class Sum(Function):
    def forward(self, a):
        self.shape = a.shape
        return a.sum(axis=self.axis, keepdims=self.keepdims)

    def backward(self, g):
        # Every input element contributed once: copy g back over the summed axes.
        xp = backend.get_array_module(g)
        if not self.keepdims and self.axis is not None:
            g = xp.expand_dims(g, _normalize_axes(self.axis, len(self.shape)))
        return xp.broadcast_to(g, self.shape)


class Reshape(Function):
    def forward(self, a):
        self.in_shape = a.shape
        return a.reshape(self.shape)

    def backward(self, g):
        return g.reshape(self.in_shape)


class Transpose(Function):
    def forward(self, a):
        self.axes = self.axes or tuple(reversed(range(a.ndim)))
        return a.transpose(self.axes)

    def backward(self, g):
        inverse = [0] * len(self.axes)
        for i, ax in enumerate(self.axes):
            inverse[ax] = i
        return g.transpose(inverse)


class GetItem(Function):
    """a[index] for basic indexing (ints, slices); the gradient scatters back."""

    def forward(self, a):
        self.a_shape, self.a_dtype = a.shape, a.dtype
        return a[self.index]

    def backward(self, g):
        xp = backend.get_array_module(g)
        ga = xp.zeros(self.a_shape, dtype=self.a_dtype)
        ga[self.index] = g
        return ga


def _normalize_axes(axis, ndim):
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    return tuple(sorted(a % ndim for a in axes))


# ----- the functions behind the Tensor operators -------------------------------------
def add(a: Operand, b: Operand) -> Tensor: return Add.apply(a, b)
def sub(a: Operand, b: Operand) -> Tensor: return Sub.apply(a, b)
def mul(a: Operand, b: Operand) -> Tensor: return Mul.apply(a, b)
def div(a: Operand, b: Operand) -> Tensor: return Div.apply(a, b)
def neg(a: Tensor) -> Tensor: return Neg.apply(a)
def exp(a: Tensor) -> Tensor: return Exp.apply(a)
def log(a: Tensor) -> Tensor: return Log.apply(a)
def matmul(a: Operand, b: Operand) -> Tensor: return MatMul.apply(a, b)


def getitem(a: Tensor, index: Any) -> Tensor:
    parts = index if isinstance(index, tuple) else (index,)
    if not all(isinstance(i, (int, slice)) or i is None or i is Ellipsis for i in parts):
        raise TypeError(f"Tensor indexing supports ints, slices, None and ... (basic indexing), "
                        f"got {index!r}")
    return GetItem.apply(a, index=index)


def pow(a: Tensor, exponent: float) -> Tensor:
    if isinstance(exponent, Tensor) or not isinstance(exponent, (int, float)):
        raise TypeError("only a constant (Python number) exponent is supported: tensor ** 2.0")
    return Pow.apply(a, p=exponent)


def sum(a: Tensor, axis: Optional[Union[int, Sequence[int]]] = None, keepdims: bool = False) -> Tensor:
    return Sum.apply(a, axis=axis, keepdims=keepdims)


@replaceable
def mean(a: Tensor, axis: Optional[Union[int, Sequence[int]]] = None, keepdims: bool = False) -> Tensor:
    if a.dtype.kind != "f":
        raise TypeError(f"mean() needs a floating-point tensor, got {a.dtype} (as in PyTorch)")
    n = a.size if axis is None else 1
    if axis is not None:
        for ax in _normalize_axes(axis, a.ndim):
            n *= a.shape[ax]
    return Sum.apply(a, axis=axis, keepdims=keepdims) * (1.0 / n)


def reshape(a: Tensor, *shape: Any) -> Tensor:
    shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
    return Reshape.apply(a, shape=shape)


def transpose(a: Tensor, *axes: Any) -> Tensor:
    axes = tuple(axes[0]) if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else axes
    return Transpose.apply(a, axes=axes or None)


# ----- the Tensor's operators, attached now that the ops exist ------------------------
Tensor.__add__ = lambda self, other: add(self, other)
Tensor.__radd__ = lambda self, other: add(other, self)
Tensor.__sub__ = lambda self, other: sub(self, other)
Tensor.__rsub__ = lambda self, other: sub(other, self)
Tensor.__mul__ = lambda self, other: mul(self, other)
Tensor.__rmul__ = lambda self, other: mul(other, self)
Tensor.__truediv__ = lambda self, other: div(self, other)
Tensor.__rtruediv__ = lambda self, other: div(other, self)
Tensor.__neg__ = lambda self: neg(self)
Tensor.__pow__ = lambda self, exponent: pow(self, exponent)
Tensor.__matmul__ = lambda self, other: matmul(self, other)
Tensor.__rmatmul__ = lambda self, other: matmul(other, self)
Tensor.__getitem__ = lambda self, index: getitem(self, index)
Tensor.sum = lambda self, axis=None, keepdims=False: sum(self, axis, keepdims)
Tensor.mean = lambda self, axis=None, keepdims=False: mean(self, axis, keepdims)
Tensor.reshape = lambda self, *shape: reshape(self, *shape)
Tensor.transpose = lambda self, *axes: transpose(self, *axes)
Tensor.exp = lambda self: exp(self)
Tensor.log = lambda self: log(self)
Tensor.T = property(lambda self: transpose(self))
