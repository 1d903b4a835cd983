"""The direct checks: each student function called on random inputs, beside the engine's own code.

A gradient check through the engine says that something is wrong; calling the
function directly says what. For each exercise, `draw(name, rng)` builds Calls:
inputs drawn from the run's seed, in every form the engine calls the function
with (every broadcasting form for unbroadcast; axis None, an int, a negative int
and tuples, keepdims True and False for sum and mean; square and non-square
matrices; overlapping, touching and gapped windows for col2im; 2-D, 4-D,
channels-last and weightless BatchNorms; ...), and the expected results,
computed by the engine's reference code in float64. No PyTorch is needed.

`run(call, fn)` calls the student's function the way the engine would, except
that every array it is given is read-only (a write into the upstream gradient
`g` changes what the caller, and any other op handed the same array, sees), and
compares each result with the reference: its type, its shape, its dtype, then
its values. A wrong value is reported at the worst element: the index, the
expected and the actual value, the inputs there where they have the output's
shape, and a scale factor where the whole result is off by one.
"""

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..engine import Tensor, backend, ops
from ..functional import activation, im2col, loss, normalization
from .outcome import ExerciseError, Line

RTOL, ATOL = 1e-7, 1e-9          # float64 on both sides: only the order of the sums may differ
RTOL32 = 1e-4                    # float32 inputs: float32 rounding


@dataclass
class Call:
    label: str                   # the call as it reads: "unbroadcast(grad (2, 3, 4), shape=(3, 1))"
    args: tuple                  # the arguments: float64 NumPy arrays, shapes, axes, None
    names: tuple                 # the names of the arguments
    outputs: tuple               # the names of the results, in order
    expected: tuple              # the reference's result for each output (None: not compared)
    single: bool = True          # one array is returned (else a tuple of len(outputs))
    shown: tuple = ()            # arguments shown at the worst element (those of the output's shape)
    context: Callable = None     # (output, index) -> a few words about that element
    float32: bool = False        # the inputs are float32 (the dtype of a training run)


def _f(x):
    return f"{x:.6g}"


def _shape(a):
    return str(tuple(a.shape))


def _readonly(a, xp):
    """A read-only copy of `a` on xp's device (on the CPU its flag cannot be turned back on)."""
    if not isinstance(a, np.ndarray):
        return a
    if xp is np:
        c = a.copy()
        c.flags.writeable = False
        return c.view()                 # a view of a read-only array stays read-only
    return xp.asarray(a)


def _is_readonly_error(exc):
    return isinstance(exc, ValueError) and "read-only" in str(exc)


def call_student(fn, call, xp, readonly=None):
    """fn(*args) on copies of the arguments (read-only ones: all, or those in `readonly`)."""
    args = [_readonly(a, xp) if isinstance(a, np.ndarray) and (readonly is None or k in readonly)
            else (xp.asarray(a.copy()) if isinstance(a, np.ndarray) else a)
            for k, a in enumerate(call.args)]
    with np.errstate(all="ignore"):
        return fn(*args), args


def written_input(fn, call, xp):
    """The name of the argument that fn writes into, found by making one read-only at a time."""
    for k, a in enumerate(call.args):
        if not isinstance(a, np.ndarray):
            continue
        try:
            call_student(fn, call, xp, readonly={k})
        except Exception as exc:             # noqa: BLE001  (any failure: only read-only ones count)
            if _is_readonly_error(exc):
                return call.names[k]
    return None


def write_message(who, name):
    target = name or "one of the arrays it was given"
    return (f"{who} writes into {target}, an input: the caller still uses it (in the engine another op "
            f"may hold the very same array, and its gradient changes too). Make a new array instead: "
            f"{name or 'g'} = {name or 'g'} - ... rather than {name or 'g'} -= ..., or .copy() first")


def _scale_hint(yours, expected):
    """'yours is 6 x the expected everywhere ...' where the whole result is off by one factor, and
    the factor means something (the expected values are not about zero, the fit is exact)."""
    a, e = np.ravel(yours).astype(np.float64), np.ravel(expected).astype(np.float64)
    big = float(np.abs(e).max()) if e.size else 0.0
    if big < 1e-6 or not (np.isfinite(a).all() and np.isfinite(e).all()):
        return ""
    if int((np.abs(e) > 1e-6 * big).sum()) < 3:       # one or two values always "fit" a factor
        return ""
    k = float(a @ e) / float(e @ e)
    if not (1e-3 < abs(k) < 1e3) or abs(k - 1) < 1e-6 or np.abs(a - k * e).max() > 1e-6 * big:
        return ""
    if abs(k + 1) < 1e-6:
        return "; yours is minus the expected everywhere: a sign?"
    n = round(k)
    if n >= 2 and abs(k - n) < 1e-6 * k:
        return f"; yours is {n} x the expected everywhere: a factor 1/{n} missing?"
    n = round(1 / k)
    if n >= 2 and abs(1 / k - n) < 1e-6 * n:
        return f"; yours is 1/{n} of the expected everywhere: a factor 1/{n} too many?"
    return f"; yours is {k:.4g} x the expected everywhere: a scale missing or extra?"


def _squeezed(shape):
    return tuple(n for n in shape if n != 1)


def _shape_hint(got, want):
    if _squeezed(got) == _squeezed(want) and len(got) < len(want):
        return " (its size-1 axes are missing: keepdims=True keeps them)"
    if len(got) > len(want) and _squeezed(got) == _squeezed(want):
        return " (extra size-1 axes)"
    if tuple(reversed(got)) == tuple(want):
        return " (transposed?)"
    return ""


def compare(call, who, out, got, want, dtype_in):
    """A Line for one output: type, shape, dtype, then values at the worst element."""
    part = dict(kind="call", case=call.label, part=out)
    if isinstance(got, float) and want.shape == ():      # a Python float for a 0-d result: the engine takes it
        got = np.asarray(got)
    if not isinstance(got, (np.ndarray, np.generic)) and backend.get_array_module(got) is np:
        return Line(**part, status="FAIL", message=f"{who} returned {type(got).__name__} for {out}; it must "
                    f"be an array (of shape {tuple(want.shape)})")
    got = backend.to_numpy(got)
    if tuple(got.shape) != tuple(want.shape):
        return Line(**part, status="FAIL", message=f"{who} returned {out} of shape {tuple(got.shape)}; it must "
                    f"be {tuple(want.shape)}{_shape_hint(tuple(got.shape), tuple(want.shape))}")
    if got.dtype.kind != "f":
        return Line(**part, status="FAIL", message=f"{who} returned {out} as {got.dtype}: a gradient must be a "
                    f"floating-point array ({dtype_in}, as its inputs)")
    if dtype_in == np.float64 and got.dtype != np.float64:
        return Line(**part, status="FAIL", message=f"{who} returned {out} as {got.dtype}; its inputs are float64, "
                    f"so it must be float64 too: {got.dtype} keeps fewer digits, and the engine, which casts "
                    "it back, cannot restore them (an .astype or a dtype= too many?)")
    if dtype_in == np.float32 and got.dtype not in (np.float32, np.float64):
        return Line(**part, status="FAIL", message=f"{who} returned {out} as {got.dtype} for float32 inputs; "
                    "it must keep their precision (float32)")
    a, e = got.astype(np.float64), want.astype(np.float64)
    err = np.abs(a - e)
    err = np.where(np.isnan(err), np.inf, err)
    scale = max(1.0, float(np.abs(e).max()) if e.size else 0.0)
    bad = err > (ATOL * scale + (RTOL if dtype_in == np.float64 else RTOL32) * np.abs(e)
                 + (0 if dtype_in == np.float64 else RTOL32 * scale))
    max_err = float(err.max()) if err.size else 0.0
    if not bad.any():
        return Line(**part, error=max_err)
    k = int(np.argmax(np.where(bad, err, -1.0)))
    index = tuple(int(i) for i in np.unravel_index(k, e.shape)) if e.ndim else ()
    at = f"{out}[{', '.join(map(str, index))}]" if index else out
    where = [f"{name} = {_f(float(np.asarray(arg)[index]))}" for name, arg in zip(call.names, call.args)
             if name in call.shown and isinstance(arg, np.ndarray) and arg.shape == e.shape]
    if call.context:
        where.append(call.context(out, index))
    there = f" ({', '.join(w for w in where if w)})" if any(where) else ""
    n_bad = int(bad.sum())
    spread = f"; {n_bad} of {bad.size} values differ" if n_bad > 1 else "; only this value differs"
    return Line(**part, status="FAIL", error=max_err,
                message=f"{at}{there}: expected {_f(float(e[index]))}, yours {_f(float(a[index]))}{spread}"
                        f"{_scale_hint(a, e)}")


def run(call, fn, who, xp=np):
    """Check one Call of the student's function `fn`: a list of Lines, one per output."""
    base = dict(kind="call", case=call.label)
    try:
        result, args = call_student(fn, call, xp)
    except Exception as exc:                       # noqa: BLE001  (the student's code may raise anything)
        if _is_readonly_error(exc):
            raise ExerciseError(write_message(who, written_input(fn, call, xp))) from exc
        raise
    changed = [name for name, a, b in zip(call.names, call.args, args)
               if isinstance(a, np.ndarray) and not np.array_equal(a, backend.to_numpy(b), equal_nan=True)]
    if changed:
        raise ExerciseError(write_message(who, changed[0]))
    if call.single:
        results = (result,)
    elif not isinstance(result, (tuple, list)) or len(result) != len(call.outputs):
        what = f"a {type(result).__name__}" + (f" of {len(result)}" if isinstance(result, (tuple, list)) else "")
        return [Line(**base, status="FAIL", message=f"{who} must return a tuple ({', '.join(call.outputs)}); "
                     f"it returned {what}")]
    else:
        results = tuple(result)
    dtype_in = np.float32 if call.float32 else np.float64
    return [compare(call, who, out, got, want, dtype_in)
            for out, got, want in zip(call.outputs, results, call.expected) if want is not None]


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


__all__ = ["Call", "draw", "run", "function_of", "call_student", "write_message"]
