"""Gradient checking: compare backward() with central finite differences.

For a function f of tensors x1..xk returning a tensor y, pick a random upstream
gradient u (the same shape as y) and look at the scalar L = sum(u * f(x)).
Backward gives dL/dx analytically. Numerically, for each input element,

    dL/dx[i] ~ (L(x + h e_i) - L(x - h e_i)) / (2h)          (central difference)

whose error shrinks like h^2, until float rounding (about 1e-16 / h) takes over:
h = 1e-6 in float64 gives about 1e-10. In float32 the rounding term is 1e-7 / h,
so no h gives a trustworthy answer: check in float64.

Why a *random* u: with u = 1 you check only the gradient of sum(f(x)); for
BatchNorm, sum(output) = sum(bias) whatever x is, so a wrong input gradient
would go unnoticed.

Run `python -m tinyconvmixer.gradcheck` to check every op on small shapes, and
`python -m tinyconvmixer.gradcheck --inject NAME` to see which checks catch a
planted bug (the command is in suite.py, the bugs in bugs.py).
"""

import warnings
from dataclasses import dataclass

import numpy as np

from ..engine import Tensor, backend, no_grad


@dataclass
class InputReport:
    """How well one input's analytic gradient matches the numerical one."""
    name: str
    max_abs: float       # max |analytic - numeric|
    max_rel: float       # max_abs / max |numeric| (error relative to the gradient's scale)
    worst_index: tuple   # where |analytic - numeric| is largest (direction index in 'random' mode)
    passed: bool
    first_bad_index: tuple = None   # the first element (in C order) outside the tolerance, if any
    problem: str = ""    # set when there is no gradient to compare (none, or the wrong shape)
    factor: float = None  # when it fails by a constant factor: analytic = factor * numeric everywhere
    expected: float = None   # at worst_index: the numeric value (finite differences, or the reference)
    actual: float = None     # ... and the analytic one (backward's)


@dataclass
class GradcheckResult:
    inputs: list
    passed: bool

    def __bool__(self):
        return self.passed


def _scalar(fn, inputs, u):
    """L = sum(u * f(x)) without recording a graph."""
    with no_grad():
        out = fn(*inputs)
    return float((out.data * u).sum())


def _missing_gradient(t, name):
    """A failed report when backward left `t` no gradient of its own shape (else None)."""
    if t.grad is None:
        problem = "backward gave it no gradient"
    elif tuple(t.grad.shape) != tuple(t.shape):
        problem = f"its gradient has shape {tuple(t.grad.shape)}, the input {tuple(t.shape)}"
    else:
        return None
    return InputReport(name, np.inf, np.inf, None, False, problem=problem)


def gradcheck(fn, inputs, eps=1e-6, atol=1e-8, rtol=1e-6, mode="full", n_directions=8,
              seed=0, names=None, upstream="random"):
    """Check fn's backward against central differences for every input that requires grad.

    fn: callable taking the tensors in `inputs` and returning one Tensor.
    mode='full' perturbs every element (2 evaluations of fn per element);
    mode='random' checks `n_directions` random directions v per input instead,
    comparing (L(x + h v) - L(x - h v)) / 2h with <dL/dx, v> (cheap for large tensors).
    upstream='random' draws u from a normal distribution; 'ones' uses u = 1, the
    naive check, there to show what it misses (BatchNorm's input gradient, Step 9).
    An input passes when max |analytic - numeric| <= atol + rtol * max |numeric| + noise,
    where noise = 4 ulp(L) / 2h is what rounding L to float64 alone can make of the quotient
    (it matters only where the gradient is near 0 and |L| is large: BatchNorm with u = 1).
    Returns a GradcheckResult (truthy when every input passed).
    """
    if mode not in ("full", "random"):
        raise ValueError(f"gradcheck: mode must be 'full' or 'random', got {mode!r}")
    if upstream not in ("random", "ones"):
        raise ValueError(f"gradcheck: upstream must be 'random' or 'ones', got {upstream!r}")
    checked = [(i, t) for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input requires grad, nothing to check")
    if any(t.dtype != np.float64 for _, t in checked):
        warnings.warn("gradcheck: inputs are not float64; finite differences in float32 are "
                      "dominated by rounding error, so this check cannot be trusted",
                      RuntimeWarning, stacklevel=2)
    xp = backend.get_array_module(checked[0][1].data)
    # A stream of its own, so u is never a copy of inputs drawn with the same seed.
    rng = np.random.default_rng([seed, 271828])

    # Analytic gradients with the upstream gradient u.
    for _, t in checked:
        t.grad = None
    out = fn(*inputs)
    if upstream == "ones":
        u = xp.ones(out.shape, dtype=out.dtype)
    else:
        u = xp.asarray(rng.standard_normal(out.shape)).astype(out.dtype)
    out.backward(Tensor(u))

    reports = []
    for i, t in checked:
        name = names[i] if names else f"input{i}"
        missing = _missing_gradient(t, name)
        if missing:
            reports.append(missing)
            continue
        analytic = backend.to_numpy(t.grad).astype(np.float64)
        largest_L = 0.0                                      # for the rounding noise
        if mode == "full":
            numeric = np.empty(t.size)
            for k, idx in enumerate(np.ndindex(*t.shape)):   # works for non-contiguous data too
                old = t.data[idx].item()
                t.data[idx] = old + eps
                plus = _scalar(fn, inputs, u)
                t.data[idx] = old - eps
                minus = _scalar(fn, inputs, u)
                t.data[idx] = old
                numeric[k] = (plus - minus) / (2 * eps)
                largest_L = max(largest_L, abs(plus), abs(minus))
            analytic = analytic.reshape(-1)
        else:
            numeric, directional = np.empty(n_directions), np.empty(n_directions)
            original = t.data.copy()
            for k in range(n_directions):
                v = rng.standard_normal(t.shape)
                v_dev = xp.asarray(v).astype(t.dtype)
                t.data[...] = original + eps * v_dev
                plus = _scalar(fn, inputs, u)
                t.data[...] = original - eps * v_dev
                minus = _scalar(fn, inputs, u)
                numeric[k] = (plus - minus) / (2 * eps)
                largest_L = max(largest_L, abs(plus), abs(minus))
                directional[k] = float((analytic * v).sum())
            t.data[...] = original
            analytic = directional
        err = np.nan_to_num(np.abs(analytic - numeric), nan=np.inf)   # a NaN is an infinite error
        scale = float(np.abs(numeric).max())
        noise = 4 * float(np.spacing(largest_L)) / (2 * eps) if np.isfinite(largest_L) else 0.0
        bad = err > atol + rtol * scale + noise
        where = (lambda k: np.unravel_index(k, t.shape)) if mode == "full" else (lambda k: (k,))
        index = lambda k: tuple(int(j) for j in where(k))   # noqa: E731
        max_abs, worst = float(err.max()), int(err.argmax())
        reports.append(InputReport(
            name=name, max_abs=max_abs,
            max_rel=max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else np.inf),
            worst_index=index(worst),
            passed=not bad.any() and bool(np.isfinite(numeric).all()),
            first_bad_index=index(int(np.flatnonzero(bad)[0])) if bad.any() else None,
            factor=_constant_factor(analytic, numeric) if bad.any() else None,
            expected=float(numeric[worst]), actual=float(analytic[worst])))
    return GradcheckResult(inputs=reports, passed=all(r.passed for r in reports))


def _constant_factor(analytic, numeric):
    """k if analytic = k * numeric everywhere (to 1e-4), else None: a wrong gradient that is off
    by a constant factor usually misses or doubles a scale (a 1/N, a 1/sqrt(2 pi), a 2).

    Only where the factor means something: the numeric gradient must be well above the rounding
    noise of finite differences (1e-6), or k is a ratio of two noises (BatchNorm's gradient of
    sum(y) is 0: a wrong one is "-0.0028 x" a noise); and k between 1e-3 and 1e3."""
    a, n = np.ravel(analytic), np.ravel(numeric)
    if not (np.isfinite(a).all() and np.isfinite(n).all()) or np.abs(n).max(initial=0.0) < 1e-6:
        return None
    k = float(a @ n) / float(n @ n)
    if not 1e-3 < abs(k) < 1e3:
        return None
    return k if np.abs(a - k * n).max() <= 1e-4 * np.abs(n).max() else None
