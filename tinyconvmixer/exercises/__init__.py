"""Exercises: the student writes the key backward passes, and the engine runs on them.

    python -m tinyconvmixer.exercises new exercises      copy the stubs into ./exercises
    python -m tinyconvmixer.exercises list               the exercises, and which pass
    python -m tinyconvmixer.exercises check [NAME ...]   check them (all, or those named)
    python -m tinyconvmixer.exercises train              the capstone: train on your functions

`--dir DIR` points the commands at another folder (default ./exercises); `check
--solutions` checks the reference solutions (for instructors); `check --json`,
`--gradescope FILE`, `--rubric FILE` and a hidden seed grade a class (grading.py).

Each exercise is one file in stubs/: a function that raises NotImplementedError
("... not written yet"), with the formula to derive and hints in its docstring.
The reference solutions are in solutions/, apart. Checking an exercise
(checker.py) takes three kinds of check, all on inputs drawn from a seed:

    call       the function called directly, in every form the engine calls it
               with, beside the engine's own code in float64 (calls.py; exercise 4:
               its order on graphs built to catch each mistake, graphs.py)
    gradcheck  the function plugged into the engine in place of the engine's own
               (engine/dispatch.py's stand_in, as the planted bugs of gradcheck/bugs.py
               are), and the ops that use it checked against finite differences
    pytorch    the same, beside PyTorch (where it is installed)

A file that imports the engine's own answer is refused (honesty.py); every check
runs in a child process with a time limit (isolate.py). This file says, for each
exercise, what is plugged where and which engine checks run.
"""

from dataclasses import dataclass
from typing import Callable

from .. import functional as F
from ..engine import Function, Tensor, backend, ops, tensor
from ..functional import activation, im2col, loss, normalization
from ..functional.activation import normal_cdf
from ..gradcheck import parity
from ..gradcheck.cases import CASES, Case, binary_case, unary_case
from .calls import write_message
from .graphs import check_order
from .outcome import ExerciseError


@dataclass
class Exercise:
    number: int
    name: str
    file: str
    functions: tuple      # the names the student writes
    step: str             # where the walkthrough explains it
    plug: Callable        # student module -> [(reference, replacement)], for dispatch.stand_in
    gradchecks: list      # gradcheck Cases (gradcheck/cases.py) that run through the plugged code
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


def _readonly(a):
    """A read-only view of a NumPy array (CuPy has no such flag: its arrays pass as they are)."""
    if isinstance(a, backend.numpy_module().ndarray):
        a = a.view()
        a.flags.writeable = False
    return a


def student(who, fn):
    """fn as the engine calls it, with read-only arrays: a write into an input (g -= ..., which
    changes the gradient that the caller and other ops still hold) is named as such."""
    def call(*args):
        try:
            return fn(*[_readonly(a) for a in args])
        except ValueError as exc:
            if "read-only" in str(exc):
                raise ExerciseError(write_message(who, None)) from exc
            raise
    return call


# ----- the plugs: the student's function in the engine's place ----------------------------------

def _plug_unbroadcast(m):
    fn = student("unbroadcast", m.unbroadcast)

    def unbroadcast(grad, shape):
        return _shape("unbroadcast", f"the gradient (grad {tuple(grad.shape)}, shape={tuple(shape)})",
                      fn(grad, tuple(shape)), shape)
    return [(ops.unbroadcast, unbroadcast)]


def _plug_matmul(m):
    fn = student("matmul_backward", m.matmul_backward)

    class MatMul(ops.MatMul):
        def backward(self, g):
            if self.a.ndim != 2 or self.b.ndim != 2:     # the exercise is 2-D; batches stay the engine's
                return super().backward(g)
            ga, gb = _pair("matmul_backward", fn(self.a, self.b, g), ("ga", "gb"))
            return (_shape("matmul_backward", "ga", ga, self.a.shape),
                    _shape("matmul_backward", "gb", gb, self.b.shape))
    return [(ops.MatMul, MatMul)]


class _Mean(Function):
    """mean as one Function, so that its backward can be the student's (the engine's mean is a
    Sum times 1/n: the forward here computes exactly that, to the last bit)."""
    def forward(self, a):
        self.shape = a.shape
        s = a.sum(axis=self.axis, keepdims=self.keepdims)
        n = a.size // max(s.size, 1) if a.size else 1
        return s * backend.get_array_module(a).asarray(1.0 / n, dtype=s.dtype)

    def backward(self, g):
        return _shape("mean_backward", "dx", self.student(g, self.shape, self.axis, self.keepdims), self.shape)


def _plug_sum_mean(m):
    sum_backward, mean_backward = student("sum_backward", m.sum_backward), student("mean_backward", m.mean_backward)

    class Sum(ops.Sum):
        def backward(self, g):
            return _shape("sum_backward", "dx", sum_backward(g, self.shape, self.axis, self.keepdims), self.shape)

    def mean(a, axis=None, keepdims=False):
        if a.dtype.kind != "f":
            raise TypeError(f"mean() needs a floating-point tensor, got {a.dtype} (as in PyTorch)")
        return _Mean.apply(a, axis=axis, keepdims=keepdims, student=mean_backward)
    return [(ops.Sum, Sum), (ops.mean, mean)]


def _plug_topological_order(m):
    def order(root):
        return check_order(m.topological_order(root), root)
    return [(tensor.topological_order, order)]


def _plug_gelu(m):
    fn = student("gelu_slope", m.gelu_slope)

    class GELU(activation.GELU):
        def forward(self, x):
            if self.approximate != "none" or not self.recording:
                return super().forward(x)
            self.slope = _shape("gelu_slope", "the slope", fn(x), x.shape)
            return x * normal_cdf(x)
    return [(activation.GELU, GELU)]


def _plug_col2im(m):
    fn = student("col2im", m.col2im)

    def col2im(cols, padded_shape, stride):
        return _shape("col2im", "dx_padded", fn(cols, tuple(padded_shape), tuple(stride)), padded_shape)
    return [(im2col.col2im, col2im)]


def _plug_batchnorm(m):
    fn = student("batchnorm_backward", m.batchnorm_backward)

    class BatchNorm(normalization.BatchNorm):
        def backward(self, g):
            if not self.training:
                return super().backward(g)
            C = g.shape[1]
            dx, dw, db = _pair("batchnorm_backward", fn(g, self.xhat, self.invstd.reshape(-1), self.weight),
                               ("dx", "dweight", "dbias"))
            _shape("batchnorm_backward", "dx", dx, g.shape)
            if self.weight is not None:
                _shape("batchnorm_backward", "dweight", dw, (C,))
                _shape("batchnorm_backward", "dbias", db, (C,))
            return dx, dw, db
    return [(normalization.BatchNorm, BatchNorm)]


def _plug_log_softmax(m):
    fn = student("log_softmax_backward", m.log_softmax_backward)

    class LogSoftmax(loss.LogSoftmax):
        def backward(self, g):
            return _shape("log_softmax_backward", "dz", fn(g, self.out, self.axis), g.shape)
    return [(loss.LogSoftmax, LogSoftmax)]


def _plug_cross_entropy(m):
    fn = student("cross_entropy_backward", m.cross_entropy_backward)

    class CrossEntropy(loss.CrossEntropy):
        def backward(self, g):
            return _shape("cross_entropy_backward", "dz", fn(self.logp, self.target, g), self.logp.shape)
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


# The direct calls cover col2im's forms (overlaps, gaps, strides); these show it inside conv2d.
_IM2COL_CONVS = ("conv2d", "conv2d stride=2 padding=1", "conv2d patch k=2 stride=2", "conv2d pointwise 1x1",
                 "conv2d groups=2")
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
                unary_case("mean axis=-1", lambda x: x.mean(axis=-1), 3, 5),
                unary_case("x - x.mean(axis=1, keepdims=True)", lambda x: x - x.mean(axis=1, keepdims=True), 3, 4)],
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
                                                 4, 3, scale=3.0),
                                      # c and log_softmax are handed the same g by the addition
                                      binary_case("log_softmax(x) + c", lambda x, c: F.log_softmax(x) + c,
                                                  (3, 4), (3, 4))],
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


__all__ = ["EXERCISES", "Exercise", "ExerciseError", "find", "check_order", "student"]
