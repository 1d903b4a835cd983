"""Exercises: the student writes the key backward passes, and the engine runs on them.

    python -m tinyconvmixer.exercises new exercises      copy the stubs into ./exercises
    python -m tinyconvmixer.exercises list               the exercises, and which pass
    python -m tinyconvmixer.exercises check [NAME ...]   check them (all, or those named)

`--dir DIR` points `list` and `check` at another folder (default ./exercises);
`check --solutions` checks the reference solutions instead (for instructors).

Each exercise is one file in stubs/: a function that raises NotImplementedError
("... not written yet"), with the formula to derive and hints in its docstring.
The reference solutions are in solutions/, apart. To check an exercise, the
checker loads the student's file, plugs its function into the engine in place
of the engine's own (engine/dispatch.py's stand_in, as the planted bugs of
gradcheck/bugs.py are), and runs gradient checks of the ops that use it
(gradcheck/check.py) and, where PyTorch is installed, comparisons with PyTorch
(gradcheck/parity.py). checker.py does the
checking; this file says, for each exercise, what is plugged where and which
checks run.
"""

from dataclasses import dataclass
from typing import Callable

from .. import functional as F
from ..engine import Function, Tensor, ops, tensor
from ..functional import activation, im2col, loss, normalization
from ..functional.activation import normal_cdf
from ..gradcheck import parity
from ..gradcheck.cases import CASES, Case, binary_case, unary_case


class ExerciseError(Exception):
    """The student's function returned something the engine cannot use (the message says what)."""


@dataclass
class Exercise:
    number: int
    name: str
    file: str
    functions: tuple      # the names the student writes
    step: str             # where the walkthrough explains it
    plug: Callable        # student module -> [(reference, replacement)], for dispatch.stand_in
    gradchecks: list      # gradcheck Cases (gradcheck_cases.py) that run through the plugged code
    parity: list          # parity.ParityCases that do
    model: bool = False   # also check the tiny ConvMixer stack (in random directions: it is larger)
    note: str = ""        # which code path the plug takes, where that matters


def _shape(who, what, array, shape):
    if not hasattr(array, "shape"):
        raise ExerciseError(f"{who} returned {type(array).__name__} for {what}; it must be an array")
    if tuple(array.shape) != tuple(shape):
        raise ExerciseError(f"{who} returned {what} of shape {tuple(array.shape)}; it must be {tuple(shape)}")
    return array


def _pair(who, result, names):
    if not isinstance(result, tuple) or len(result) != len(names):
        raise ExerciseError(f"{who} must return a tuple ({', '.join(names)})")
    return result


# ----- the plugs: the student's function in the engine's place ----------------------------------

def _plug_unbroadcast(m):
    def unbroadcast(grad, shape):
        return _shape("unbroadcast", f"the gradient (grad {tuple(grad.shape)}, shape={tuple(shape)})",
                      m.unbroadcast(grad, tuple(shape)), shape)
    return [(ops.unbroadcast, unbroadcast)]


def _plug_matmul(m):
    class MatMul(ops.MatMul):
        def backward(self, g):
            ga, gb = _pair("matmul_backward", m.matmul_backward(self.a, self.b, g), ("ga", "gb"))
            return (_shape("matmul_backward", "ga", ga, self.a.shape),
                    _shape("matmul_backward", "gb", gb, self.b.shape))
    return [(ops.MatMul, MatMul)]


class _Mean(Function):
    """mean as one Function, so that its backward can be the student's (the engine's mean
    is a Sum times 1/n)."""
    def forward(self, a):
        self.shape = a.shape
        return a.mean(axis=self.axis, keepdims=self.keepdims)

    def backward(self, g):
        return _shape("mean_backward", "dx", self.student(g, self.shape, self.axis, self.keepdims),
                      self.shape)


def _plug_sum_mean(m):
    class Sum(ops.Sum):
        def backward(self, g):
            return _shape("sum_backward", "dx", m.sum_backward(g, self.shape, self.axis, self.keepdims),
                          self.shape)

    def mean(a, axis=None, keepdims=False):
        return _Mean.apply(a, axis=axis, keepdims=keepdims, student=m.mean_backward)
    return [(ops.Sum, Sum), (ops.mean, mean)]


def _describe(t):
    return f"the {type(t._fn).__name__} output {tuple(t.shape)}" if t._fn else f"a leaf {tuple(t.shape)}"


def check_order(order, root):
    """Raise ExerciseError naming the first tensor that the order puts in the wrong place."""
    order = list(order)
    position = {}
    for k, t in enumerate(order):
        if id(t) in position:
            raise ExerciseError(f"topological_order lists {_describe(t)} twice (at {position[id(t)]} and {k})")
        position[id(t)] = k
    if not order or order[0] is not root:
        raise ExerciseError("topological_order must start with the root (the tensor backward starts from)")
    for t in order:
        if not t.requires_grad:
            raise ExerciseError(f"topological_order lists {_describe(t)}, which needs no gradient (a "
                                "constant): follow only the inputs whose needs_grad is True")
    for t in order:
        if t._fn is None:
            continue
        for parent, need in zip(t._fn.inputs, t._fn.needs_grad):
            if not need:
                continue
            if id(parent) not in position:
                raise ExerciseError(f"topological_order misses {_describe(parent)}, an input of {_describe(t)}")
            if position[id(parent)] < position[id(t)]:
                raise ExerciseError(
                    f"topological_order puts {_describe(parent)} (at {position[id(parent)]}) before "
                    f"{_describe(t)} (at {position[id(t)]}), which uses it: its gradient would be "
                    f"passed on before that op added its part")
    return order


def _plug_topological_order(m):
    def order(root):
        return check_order(m.topological_order(root), root)
    return [(tensor.topological_order, order)]


def _plug_gelu(m):
    class GELU(activation.GELU):
        def forward(self, x):
            if self.approximate != "none":
                return super().forward(x)
            self.slope = _shape("gelu_slope", "the slope", m.gelu_slope(x), x.shape)
            return x * normal_cdf(x)
    return [(activation.GELU, GELU)]


def _plug_col2im(m):
    def col2im(cols, padded_shape, stride):
        return _shape("col2im", "dx_padded", m.col2im(cols, tuple(padded_shape), tuple(stride)), padded_shape)
    return [(im2col.col2im, col2im)]


def _plug_batchnorm(m):
    class BatchNorm(normalization.BatchNorm):
        def backward(self, g):
            if not self.training:
                return super().backward(g)
            C = g.shape[1]
            dx, dw, db = _pair("batchnorm_backward",
                               m.batchnorm_backward(g, self.xhat, self.invstd.reshape(-1), self.weight),
                               ("dx", "dweight", "dbias"))
            _shape("batchnorm_backward", "dx", dx, g.shape)
            if self.weight is not None:
                _shape("batchnorm_backward", "dweight", dw, (C,))
                _shape("batchnorm_backward", "dbias", db, (C,))
            return dx, dw, db
    return [(normalization.BatchNorm, BatchNorm)]


def _plug_log_softmax(m):
    class LogSoftmax(loss.LogSoftmax):
        def backward(self, g):
            return _shape("log_softmax_backward", "dz", m.log_softmax_backward(g, self.out, self.axis),
                          g.shape)
    return [(loss.LogSoftmax, LogSoftmax)]


def _plug_cross_entropy(m):
    class CrossEntropy(loss.CrossEntropy):
        def backward(self, g):
            return _shape("cross_entropy_backward", "dz",
                          m.cross_entropy_backward(self.logp, self.target, g), self.logp.shape)
    return [(loss.CrossEntropy, CrossEntropy)]


# ----- the checks of each exercise --------------------------------------------------------------

def _cases(*names):
    by_name = {c.name: c for c in CASES}
    return [by_name[n] for n in names]


def _parity(*names):
    by_name = {c.name: c for c in parity.PARITY_CASES}
    return [by_name[n] for n in names]


def _residual_case(rng, xp):
    """x reaches the output in one step and in four: the order matters (exercise 4)."""
    def fn(x, w):
        h = (x * w).exp()
        return x + ((h * h).log() * 0.5 + h).sum(axis=1, keepdims=True)
    return fn, [Tensor(xp.asarray(rng.standard_normal((3, 4))), requires_grad=True),
                Tensor(xp.asarray(rng.standard_normal(4)), requires_grad=True)], ["x", "w"]

def _uneven_stride_case(rng, xp):
    """Rows and columns with different strides (1 and 2), the kernel larger than both: a col2im
    that mixes up the two strides fails here (exercise 6)."""
    x = Tensor(xp.asarray(rng.standard_normal((2, 2, 5, 7))), requires_grad=True)
    w = Tensor(xp.asarray(rng.standard_normal((3, 2, 3, 3))), requires_grad=True)
    return (lambda x, w: F.conv2d(x, w, stride=(1, 2))), [x, w], ["x", "w"]


_IM2COL_CONVS = ("conv2d", "conv2d stride=2 padding=1", "conv2d padding=(1,2) no bias", "conv2d padding=same",
                 "conv2d patch k=2 stride=2", "conv2d stride 3 > kernel 2", "conv2d pointwise 1x1",
                 "conv2d groups=2", "conv2d depthwise x2 multiplier")
_square = parity._same("matmul square", lambda a, b: a @ b, (3, 3), (3, 3))
_sums = parity._same("sum and mean over axes", lambda x: (x.sum(2) * x.mean(0).sum(1)).mean() + x.sum(),
                     (2, 3, 4))

EXERCISES = [
    Exercise(1, "unbroadcast", "ex01_unbroadcast.py", ("unbroadcast",), "Step 4", _plug_unbroadcast,
             _cases("add broadcast", "sub broadcast", "mul broadcast", "div broadcast", "linear")
             + [binary_case("add (2, 1, 4) + (3, 1)", lambda a, b: a + b, (2, 1, 4), (3, 1)),
                # both stretched and prepended axes at once: count the axes after removing the prepended
                binary_case("add (1, 4) + (1, 3, 4)", lambda a, b: a + b, (1, 4), (1, 3, 4)),
                binary_case("mul (3, 1, 1) * (5, 3, 1, 4)", lambda a, b: a * b, (3, 1, 1), (5, 3, 1, 4))],
             _parity("tensor ops (broadcasting, reuse)", "linear")),
    Exercise(2, "matmul", "ex02_matmul.py", ("matmul_backward",), "Step 5", _plug_matmul,
             _cases("matmul", "linear") + [binary_case("matmul square", lambda a, b: a @ b, (3, 3), (3, 3))],
             [_square] + _parity("linear")),
    Exercise(3, "sum_mean", "ex03_sum_mean.py", ("sum_backward", "mean_backward"), "Steps 3 and 10",
             _plug_sum_mean,
             _cases("sum axis / mean", "global_avg_pool2d")
             + [unary_case("sum all", lambda x: x.sum() * x, 2, 3),
                unary_case("sum axis=(0, 2) keepdims", lambda x: x.sum(axis=(0, 2), keepdims=True) * x, 2, 3, 4),
                unary_case("mean axis=-1", lambda x: x.mean(axis=-1), 3, 5)],
             [_sums] + _parity("global_avg_pool2d")),
    Exercise(4, "topological_order", "ex04_topological_order.py", ("topological_order",), "Step 3a",
             _plug_topological_order,
             _cases("reshape transpose") + [Case("residual: x + f(x)", _residual_case)],
             _parity("tensor ops (broadcasting, reuse)"), model=True),
    Exercise(5, "gelu_slope", "ex05_gelu_slope.py", ("gelu_slope",), "Step 6", _plug_gelu,
             _cases("gelu exact") + [unary_case("gelu exact, wide range", F.gelu, 4, 5, scale=4.0)],
             _parity("gelu exact"),
             note="the exact GELU: its forward computes y = x Phi(x) and saves your slope"),
    Exercise(6, "col2im", "ex06_col2im.py", ("col2im",), "Step 7", _plug_col2im,
             _cases(*_IM2COL_CONVS) + [Case("conv2d stride=(1, 2) k=3", _uneven_stride_case)],
             _parity("conv2d k=3 padding=1", "conv2d k=3 stride=2", "conv2d patch k=2 stride=2",
                     "conv2d groups=2 padding=(1,2)"),
             note="conv2d's im2col path (depthwise convolutions take another path)"),
    Exercise(7, "batchnorm", "ex07_batchnorm.py", ("batchnorm_backward",), "Step 9", _plug_batchnorm,
             _cases("batch_norm train", "batch_norm train no affine", "batch_norm train (N, C)",
                    "batch_norm train channels-last"),
             _parity("batch_norm train", "batch_norm train channels-last"), model=True,
             note="BatchNorm's reference, also for channels-last batches"),
    Exercise(8, "log_softmax", "ex08_log_softmax.py", ("log_softmax_backward",), "Step 10", _plug_log_softmax,
             _cases("log_softmax") + [unary_case("log_softmax axis=0", lambda x: F.log_softmax(x, axis=0),
                                                 4, 3, scale=3.0)],
             _parity("log_softmax")),
    Exercise(9, "cross_entropy", "ex09_cross_entropy.py", ("cross_entropy_backward",), "Step 10",
             _plug_cross_entropy, _cases("cross_entropy"),
             _parity("cross_entropy", "cross_entropy logits ~1000"), model=True),
]

BY_NAME = {e.name: e for e in EXERCISES}


def find(name):
    """An exercise by name or number ('col2im', '6'); None if there is none."""
    if name.isdigit():
        return next((e for e in EXERCISES if e.number == int(name)), None)
    return BY_NAME.get(name)


__all__ = ["EXERCISES", "Exercise", "ExerciseError", "find", "check_order"]
