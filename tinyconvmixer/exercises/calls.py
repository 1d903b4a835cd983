"""The direct checks: each student function called on random inputs, beside the engine's own code.

A gradient check through the engine says that something is wrong; calling the
function directly says what. A Call (forms.py draws them) is one call of a
student's function: its arguments, drawn from the run's seed in one of the
forms the engine calls it with, and the expected results, computed by the
engine's reference code in float64. No PyTorch is needed.

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

from ..engine import backend
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


__all__ = ["Call", "run", "call_student", "compare", "write_message"]
