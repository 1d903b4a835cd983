"""The inputs of the direct checks: each exercise's function in every form the engine calls it with.

`draw(name, rng)` returns the Calls (calls.py) of one exercise, drawn from a seeded
generator: fixed forms that every run has (the ones each known mistake fails on),
a few random ones, and the first again in float32 (a training run's dtype). The
expected results come from the engine's own reference code, in float64:

    unbroadcast     prepended axes (of size 1 too), stretched axes, both, a scalar, square shapes
    matmul          square and non-square, a dimension of 1
    sum, mean       axis None, an int, a negative int, tuples in any order; keepdims True and False
    gelu_slope      from -40 to 40, 0 and +-1, channels-last memory
    col2im          windows that overlap, touch or leave gaps; unequal strides; 1 x 1; leftovers
    batchnorm       (N, C) and (N, C, H, W), channels-last memory, no weight, N = 1, C = 1
    log_softmax     every axis of 1-D, 2-D and 3-D arrays, square shapes
    cross_entropy   N = 1, two classes, logits ~1000, g not 1

Exercise 4 (the topological order) is checked on graphs instead: graphs.py.
"""

import numpy as np

from ..engine import Tensor, backend, ops
from ..functional import activation, im2col, loss, normalization
from .calls import Call


def _shape(a):
    return str(tuple(a.shape))


# ----- the reference results --------------------------------------------------------------------

def _sum_reference(g, shape, axis, keepdims):
    fn = ops.Sum(axis=axis, keepdims=keepdims)
    fn.forward(np.zeros(shape))
    return np.asarray(fn.backward(g))


def _mean_reference(g, shape, axis, keepdims):
    x = Tensor(np.zeros(shape), requires_grad=True)
    ops.mean.__wrapped__(x, axis, keepdims).backward(Tensor(g))
    return x.grad


def _float32(call):
    """The same call with float32 arrays (a training run's dtype)."""
    args = tuple(a.astype(np.float32) if isinstance(a, np.ndarray) and a.dtype == np.float64 else a
                 for a in call.args)
    return Call(call.label + " in float32", args, call.names, call.outputs, call.expected, call.single,
                call.shown, call.context, float32=True)


# ----- the inputs of each exercise --------------------------------------------------------------

def _broadcast_forms(rng):
    """(grad shape, input shape) pairs: every way broadcasting can make one from the other."""
    forms = [((3, 4), (3, 4)), ((2, 3, 4), (3, 4)), ((5, 3), (3,)), ((3, 4), (3, 1)), ((3, 4), (1, 4)),
             ((3, 4), (1, 1)), ((2, 3, 4), (1, 3, 1)), ((2, 3, 4), (3, 1)), ((2, 3, 4), (1, 4)),
             ((5, 3, 2, 4), (3, 1, 1)), ((2, 3, 4, 5), (1, 5)), ((3, 4), ()), ((3, 1, 4), (1, 1, 4)),
             ((4, 4), (4, 1)), ((4, 4), (4,)), ((1, 3, 4), (1, 4)), ((5, 3, 1, 4), (3, 1, 1))]
    for _ in range(4):
        shape = tuple(int(rng.choice([1, 1, 2, 3, 4])) for _ in range(int(rng.integers(0, 4))))
        stretched = tuple(int(rng.integers(2, 5)) if n == 1 and rng.random() < 0.7 else n for n in shape)
        prepended = tuple(int(rng.integers(1, 5)) for _ in range(int(rng.integers(0, 3))))
        forms.append((prepended + stretched, shape))
    return forms


def _unbroadcast(rng):
    calls = []
    for grad_shape, shape in _broadcast_forms(rng):
        grad = rng.standard_normal(grad_shape)
        calls.append(Call(f"unbroadcast(grad {grad_shape}, shape={shape})", (grad, shape), ("grad", "shape"),
                          ("result",), (np.asarray(ops.unbroadcast.__wrapped__(grad, shape)),)))
    return calls


def _matmul(rng):
    sizes = [(3, 4, 2), (3, 3, 3), (1, 4, 1), (4, 1, 3), (2, 5, 5), (5, 5, 2)]
    sizes += [tuple(int(n) for n in rng.integers(1, 6, 3)) for _ in range(2)]
    calls = []
    for n, k, m in sizes:
        a, b, g = rng.standard_normal((n, k)), rng.standard_normal((k, m)), rng.standard_normal((n, m))
        fn = ops.MatMul()
        fn.forward(a, b)
        ga, gb = fn.backward(g)
        calls.append(Call(f"matmul_backward(a {(n, k)}, b {(k, m)}, g {(n, m)})", (a, b, g), ("a", "b", "g"),
                          ("ga", "gb"), (ga, gb), single=False))
    return calls


def _reduction_forms(rng):
    forms = [((3, 4), None, False), ((3, 4), None, True), ((3, 4), 1, False), ((3, 3), 1, False),
             ((3, 4), 0, True), ((3, 4), -1, False), ((2, 3, 4), (0, 2), False), ((2, 3, 4), (2, 0), True),
             ((2, 3, 4), (-1, 0), False), ((2, 3, 4, 5), (2, 3), False), ((2, 3, 4, 5), (0, 2, 3), True),
             ((5,), 0, False), ((4, 5), 1, True)]
    for _ in range(3):
        shape = tuple(int(n) for n in rng.integers(1, 5, int(rng.integers(1, 5))))
        axes = [a for a in range(len(shape)) if rng.random() < 0.5] or [len(shape) - 1]
        axis = (axes[0] - len(shape) if rng.random() < 0.5 else axes[0]) if len(axes) == 1 else tuple(axes)
        forms.append((shape, axis, bool(rng.random() < 0.5)))
    return forms


def _sum_mean(rng):
    calls = []
    for shape, axis, keepdims in _reduction_forms(rng):
        out_shape = np.zeros(shape).sum(axis=axis, keepdims=keepdims).shape
        for name, reference in (("sum_backward", _sum_reference), ("mean_backward", _mean_reference)):
            g = rng.standard_normal(out_shape)
            calls.append(Call(f"{name}(g {out_shape}, shape={shape}, axis={axis}, keepdims={keepdims})",
                              (g, shape, axis, keepdims), ("g", "shape", "axis", "keepdims"), ("dx",),
                              (reference(g, shape, axis, keepdims),)))
    return calls


def _gelu(rng):
    xs = [2 * rng.standard_normal((3, 4)),
          backend.channels_last(3 * rng.standard_normal((2, 3, 4, 5))),
          np.concatenate([np.linspace(-8, 8, 41), [0.0, 1.0, -1.0, -0.75, 0.75, 40.0, -40.0]]),
          rng.uniform(-1.5, 1.5, (1,))]
    calls = []
    for x in xs:
        fn = activation.GELU(approximate="none")
        fn.forward(x)
        label = f"gelu_slope(x {_shape(x)}" + (", channels-last memory" if not x.flags.c_contiguous else "") + ")"
        calls.append(Call(label, (x,), ("x",), ("the slope",), (fn.slope,), shown=("x",)))
    return calls


def _col2im(rng):
    forms = [(2, 3, 3, 3, 1, 1, 5, 5), (1, 2, 2, 2, 2, 2, 4, 4), (2, 2, 1, 1, 1, 1, 3, 3), (1, 2, 3, 3, 2, 2, 7, 7),
             (1, 1, 3, 2, 1, 2, 5, 7), (1, 2, 2, 2, 3, 3, 8, 8), (1, 1, 4, 4, 2, 3, 9, 10), (2, 1, 5, 5, 1, 1, 6, 6),
             (1, 2, 3, 3, 1, 1, 3, 3)]
    for _ in range(3):
        kh, kw, sh, sw = (int(n) for n in rng.integers(1, 4, 4))
        forms.append((int(rng.integers(1, 3)), int(rng.integers(1, 3)), kh, kw, sh, sw,
                      kh + int(rng.integers(0, 6)), kw + int(rng.integers(0, 6))))
    calls = []
    for N, C, kh, kw, sh, sw, Hp, Wp in forms:
        Ho, Wo = (Hp - kh) // sh + 1, (Wp - kw) // sw + 1
        cols = rng.standard_normal((N, C, kh, kw, Ho, Wo))
        shape, stride = (N, C, Hp, Wp), (sh, sw)
        reference = im2col.col2im.__wrapped__
        windows = reference(np.ones_like(cols), shape, stride)

        def context(out, index, windows=windows):
            n = int(windows[index])
            return (f"a pixel in {n} windows" if n != 1 else "a pixel in 1 window") if n else "a pixel in no window"
        calls.append(Call(f"col2im(cols {cols.shape}, padded_shape={shape}, stride={stride})",
                          (cols, shape, stride), ("cols", "padded_shape", "stride"), ("dx_padded",),
                          (np.array(reference(cols, shape, stride)),), context=context))
    return calls


def _batchnorm(rng):
    forms = [((4, 3, 3, 3), True, False), ((4, 3, 2, 2), False, False), ((6, 3), True, False), ((6, 3), False, False),
             ((3, 4, 3, 2), True, True), ((1, 2, 3, 3), True, False), ((5, 1), True, False), ((2, 2, 2, 2), False, True)]
    shape = (int(rng.integers(2, 5)), int(rng.integers(1, 5))) + tuple(int(n) for n in rng.integers(1, 4, 2))
    forms.append((shape, bool(rng.random() < 0.5), False))
    calls = []
    for shape, affine, channels_last in forms:
        C = shape[1]
        x, g = 2 + 3 * rng.standard_normal(shape), rng.standard_normal(shape)
        w, b = (rng.standard_normal(C), rng.standard_normal(C)) if affine else (None, None)
        if channels_last:
            x, g = backend.channels_last(x), backend.channels_last(g)
        fn = normalization.BatchNorm(running_mean=None, running_var=None, training=True, momentum=0.1, eps=1e-5)
        fn.forward(x, w, b) if affine else fn.forward(x)
        fn.inputs = [Tensor(x)]                  # what apply() would give it: the input, kept
        xhat, invstd = fn.xhat.copy(order="K"), fn.invstd.reshape(-1).copy()
        dx, dw, db = fn.backward(g)
        layout = ", channels-last memory" if channels_last else ""
        label = (f"batchnorm_backward(g {shape}{layout}, xhat, invstd ({C},), "
                 f"weight {'(' + str(C) + ',)' if affine else None})")
        calls.append(Call(label, (g, xhat, invstd, w), ("g", "xhat", "invstd", "weight"),
                          ("dx", "dweight", "dbias"), (dx, dw if affine else None, db if affine else None),
                          single=False, shown=("g", "xhat")))
    return calls


def _log_softmax(rng):
    forms = [((3, 5), -1), ((3, 5), 1), ((4, 3), 0), ((2, 3, 4), 1), ((2, 3, 4), -1), ((2, 3, 4), 0), ((5,), 0),
             ((4, 4), 0), ((4, 4), 1)]
    shape = tuple(int(n) for n in rng.integers(1, 5, int(rng.integers(2, 4))))
    forms.append((shape, int(rng.integers(-len(shape), len(shape)))))
    calls = []
    for shape, axis in forms:
        z, g = 3 * rng.standard_normal(shape), rng.standard_normal(shape)
        fn = loss.LogSoftmax(axis=axis)
        y = fn.forward(z)
        calls.append(Call(f"log_softmax_backward(g {shape}, y {shape}, axis={axis})", (g, y.copy(), axis),
                          ("g", "y", "axis"), ("dz",), (fn.backward(g),), shown=("g", "y")))
    return calls


def _cross_entropy(rng):
    forms = [(6, 5, 3.0, 1.0), (1, 3, 3.0, 0.37), (4, 10, 3.0, 2.5), (3, 2, 3.0, -1.3), (4, 5, 1000.0, 0.8)]
    forms.append((int(rng.integers(2, 8)), int(rng.integers(2, 8)), 3.0, float(rng.uniform(0.2, 3.0))))
    calls = []
    for N, K, scale, g in forms:
        z, target = scale * rng.standard_normal((N, K)), rng.integers(0, K, N)
        fn = loss.CrossEntropy(target=target)
        fn.forward(z)
        g = np.asarray(g)
        logp = fn.logp.copy()

        def context(out, index, target=target):
            return f"row {index[0]}, class {index[1]}: " + ("the target" if target[index[0]] == index[1]
                                                              else f"the target is {int(target[index[0]])}")
        logits = ", logits ~1000" if scale > 100 else ""
        calls.append(Call(f"cross_entropy_backward(logp ({N}, {K}){logits}, target ({N},), g = {float(g):g})",
                          (logp, target, g), ("logp", "target", "g"), ("dz",), (fn.backward(g),),
                          shown=("logp",), context=context))
    return calls


DRAW = {"unbroadcast": _unbroadcast, "matmul": _matmul, "sum_mean": _sum_mean, "gelu_slope": _gelu,
        "col2im": _col2im, "batchnorm": _batchnorm, "log_softmax": _log_softmax, "cross_entropy": _cross_entropy}


def draw(name, rng):
    """The Calls of exercise `name` (empty for one that is checked otherwise), the first also in float32."""
    if name not in DRAW:
        return []
    with np.errstate(all="ignore"):
        calls = DRAW[name](rng)
    return calls + [_float32(calls[0])]


def function_of(call_label):
    """'mean_backward' for 'mean_backward(g (3,), ...)': which of an exercise's functions a call is of."""
    return call_label.split("(", 1)[0]


__all__ = ["DRAW", "draw", "function_of"]
