"""The checks that `python -m tinyconvmixer.gradcheck` runs: every op on small shapes.

Each case builds fresh float64 inputs from a seeded generator and returns
(fn, inputs, names); gradcheck then compares fn's backward with finite
differences for every input that requires grad. Shapes are tiny so the whole
table runs in seconds (full mode costs two forward passes per input element).
"""

from dataclasses import dataclass
from typing import Callable

from .. import functional as F
from ..engine import Tensor, backend


@dataclass
class Case:
    name: str
    build: Callable   # (numpy Generator, xp) -> (fn, inputs, names)


def _t(rng, xp, *shape, requires_grad=True, scale=1.0):
    """A float64 tensor of standard-normal values on xp's device."""
    return Tensor(xp.asarray(scale * rng.standard_normal(shape)), requires_grad=requires_grad)


def conv_case(name, x_shape, w_shape, bias=True, **kw):
    def build(rng, xp):
        x, w = _t(rng, xp, *x_shape), _t(rng, xp, *w_shape)
        inputs, names = [x, w], ["x", "weight"]
        if bias:
            inputs.append(_t(rng, xp, w_shape[0]))
            names.append("bias")
        return (lambda *a: F.conv2d(*a, **kw)), inputs, names
    return Case(name, build)


def bn_case(name, shape, training, affine=True, layout="C"):
    """layout 'C': C order; 'channels-last': NHWC memory, as ConvMixer's layers make it, and
    (N, C) in C order: BatchNorm's rows path on the CPU; 'F': an (N, C) array in Fortran order."""
    def build(rng, xp):
        C = shape[1]
        x = _t(rng, xp, *shape, scale=2.0)
        if layout == "channels-last":
            x = Tensor(backend.channels_last(x.data), requires_grad=True)
        elif layout == "F":
            x = Tensor(xp.asfortranarray(x.data), requires_grad=True)
        rm, rv = xp.asarray(rng.standard_normal(C)), xp.asarray(rng.uniform(0.5, 2.0, C))
        inputs, names = [x], ["x"]
        if affine:
            inputs += [_t(rng, xp, C), _t(rng, xp, C)]
            names += ["weight", "bias"]
        def fn(x, w=None, b=None):
            return F.batch_norm(x, rm, rv, w, b, training=training)
        return fn, inputs, names
    return Case(name, build)


def unary_case(name, f, *shape, scale=1.0):
    def build(rng, xp):
        return f, [_t(rng, xp, *shape, scale=scale)], ["x"]
    return Case(name, build)


def binary_case(name, f, shape_a, shape_b, positive_b=False):
    def build(rng, xp):
        a, b = _t(rng, xp, *shape_a), _t(rng, xp, *shape_b)
        if positive_b:
            b.data = xp.abs(b.data) + 0.5
        return f, [a, b], ["a", "b"]
    return Case(name, build)


def linear_case(rng, xp):
    return F.linear, [_t(rng, xp, 4, 5), _t(rng, xp, 3, 5), _t(rng, xp, 3)], ["x", "weight", "bias"]


def cross_entropy_case(rng, xp):
    target = xp.asarray(rng.integers(0, 5, size=6))
    return (lambda z: F.cross_entropy(z, target)), [_t(rng, xp, 6, 5, scale=3.0)], ["logits"]


def tiny_convmixer_case(rng, xp):
    """Patch conv -> GELU -> BN -> residual depthwise block -> pointwise -> pool -> linear -> CE."""
    C = 4
    names = ["x", "w_patch", "w_dw", "w_pw", "w_fc", "b_fc"]
    shapes = [(2, 3, 6, 6), (C, 3, 2, 2), (C, 1, 3, 3), (C, C, 1, 1), (3, C), (3,)]
    inputs = [_t(rng, xp, *s) for s in shapes]
    target = xp.asarray(rng.integers(0, 3, size=2))
    stats = [(xp.zeros(C), xp.ones(C)) for _ in range(3)]

    def fn(x, w_patch, w_dw, w_pw, w_fc, b_fc):
        def bn(h, k):
            return F.batch_norm(h, *stats[k], training=True)
        h = bn(F.gelu(F.conv2d(x, w_patch, stride=2)), 0)
        h = h + bn(F.gelu(F.conv2d(h, w_dw, padding="same", groups=C)), 1)
        h = bn(F.gelu(F.conv2d(h, w_pw)), 2)
        return F.cross_entropy(F.linear(F.global_avg_pool2d(h), w_fc, b_fc), target)
    return fn, inputs, names


CASES = [
    conv_case("conv2d", (2, 3, 5, 5), (4, 3, 3, 3)),
    conv_case("conv2d stride=2 padding=1", (2, 3, 6, 6), (4, 3, 3, 3), stride=2, padding=1),
    conv_case("conv2d padding=(1,2) no bias", (1, 2, 4, 5), (3, 2, 3, 2), bias=False, padding=(1, 2)),
    conv_case("conv2d padding=same", (2, 2, 5, 5), (3, 2, 3, 3), padding="same"),
    conv_case("conv2d patch k=2 stride=2", (2, 3, 4, 4), (4, 3, 2, 2), stride=2),
    conv_case("conv2d stride 3 > kernel 2", (1, 2, 7, 7), (2, 2, 2, 2), stride=3),
    conv_case("conv2d pointwise 1x1", (2, 4, 3, 3), (5, 4, 1, 1)),
    conv_case("conv2d groups=2", (2, 4, 5, 5), (6, 2, 3, 3), groups=2, padding=1),
    conv_case("conv2d depthwise same", (2, 3, 5, 5), (3, 1, 3, 3), groups=3, padding="same"),
    conv_case("conv2d depthwise k=5 same", (1, 2, 6, 6), (2, 1, 5, 5), groups=2, padding="same"),
    conv_case("conv2d depthwise stride=2", (2, 3, 6, 6), (3, 1, 3, 3), groups=3, stride=2, padding=1),
    conv_case("conv2d depthwise x2 multiplier", (1, 2, 5, 5), (4, 1, 3, 3), groups=2, padding=1),
    bn_case("batch_norm train", (4, 3, 3, 3), training=True),
    bn_case("batch_norm train no affine", (4, 3, 2, 2), training=True, affine=False),
    bn_case("batch_norm train (N, C)", (6, 3), training=True),
    bn_case("batch_norm train (N, C) Fortran order", (6, 3), training=True, layout="F"),
    bn_case("batch_norm eval", (3, 3, 2, 2), training=False),
    bn_case("batch_norm train channels-last", (3, 4, 3, 2), training=True, layout="channels-last"),
    bn_case("batch_norm eval channels-last", (2, 3, 2, 3), training=False, layout="channels-last"),
    unary_case("gelu exact", lambda x: F.gelu(x), 3, 4, scale=2.0),
    unary_case("gelu tanh", lambda x: F.gelu(x, approximate="tanh"), 3, 4, scale=2.0),
    unary_case("global_avg_pool2d", F.global_avg_pool2d, 2, 3, 3, 4),
    Case("linear", linear_case),
    unary_case("log_softmax", lambda x: F.log_softmax(x, axis=-1), 3, 5, scale=3.0),
    Case("cross_entropy", cross_entropy_case),
    binary_case("add broadcast", lambda a, b: a + b, (3, 4), (4,)),
    binary_case("sub broadcast", lambda a, b: a - b, (3, 1), (3, 4)),
    binary_case("mul broadcast", lambda a, b: a * b, (2, 3, 4), (3, 1)),
    binary_case("div broadcast", lambda a, b: a / b, (3, 4), (4,), positive_b=True),
    binary_case("matmul", lambda a, b: a @ b, (3, 4), (4, 2)),
    unary_case("pow 3 and neg", lambda x: -(x ** 3), 3, 4),
    unary_case("sum axis / mean", lambda x: x.sum(axis=1).mean(), 3, 4),
    unary_case("reshape transpose", lambda x: x.reshape(4, 3).transpose(1, 0) * x[0:1].reshape(1, 4), 3, 4),
    unary_case("exp log", lambda x: (x.exp() + 1.0).log(), 3, 4),
    Case("tiny convmixer stack", tiny_convmixer_case),
]
