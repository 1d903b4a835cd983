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

Run `python -m tinyconvmixer.gradcheck` to check every op on small shapes.
"""

import argparse
import sys
import time
import warnings
from dataclasses import dataclass

import numpy as np

from . import backend
from .tensor import Tensor, no_grad


@dataclass
class InputReport:
    """How well one input's analytic gradient matches the numerical one."""
    name: str
    max_abs: float       # max |analytic - numeric|
    max_rel: float       # max_abs / max |numeric| (error relative to the gradient's scale)
    worst_index: tuple   # where |analytic - numeric| is largest (direction index in 'random' mode)
    passed: bool


@dataclass
class GradcheckResult:
    inputs: list
    passed: bool

    def __bool__(self):
        return self.passed


def _scalar(fn, inputs, upstream):
    """L = sum(u * f(x)) without recording a graph."""
    with no_grad():
        out = fn(*inputs)
    return float((out.data * upstream).sum())


def gradcheck(fn, inputs, eps=1e-6, atol=1e-8, rtol=1e-6, mode="full", n_directions=8,
              seed=0, names=None):
    """Check fn's backward against central differences for every input that requires grad.

    fn: callable taking the tensors in `inputs` and returning one Tensor.
    mode='full' perturbs every element (2 evaluations of fn per element);
    mode='random' checks `n_directions` random directions v per input instead,
    comparing (L(x + h v) - L(x - h v)) / 2h with <dL/dx, v> (cheap for large tensors).
    An input passes when max |analytic - numeric| <= atol + rtol * max |numeric|.
    Returns a GradcheckResult (truthy when every input passed).
    """
    if mode not in ("full", "random"):
        raise ValueError(f"gradcheck: mode must be 'full' or 'random', got {mode!r}")
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

    # Analytic gradients with a random upstream gradient u.
    for _, t in checked:
        t.grad = None
    out = fn(*inputs)
    upstream = xp.asarray(rng.standard_normal(out.shape)).astype(out.dtype)
    out.backward(Tensor(upstream))

    reports = []
    for i, t in checked:
        analytic = backend.to_numpy(t.grad).astype(np.float64)
        if mode == "full":
            numeric = np.empty(t.size)
            for k, idx in enumerate(np.ndindex(*t.shape)):   # works for non-contiguous data too
                old = t.data[idx].item()
                t.data[idx] = old + eps
                plus = _scalar(fn, inputs, upstream)
                t.data[idx] = old - eps
                minus = _scalar(fn, inputs, upstream)
                t.data[idx] = old
                numeric[k] = (plus - minus) / (2 * eps)
            analytic = analytic.reshape(-1)
        else:
            numeric, directional = np.empty(n_directions), np.empty(n_directions)
            original = t.data.copy()
            for k in range(n_directions):
                v = rng.standard_normal(t.shape)
                v_dev = xp.asarray(v).astype(t.dtype)
                t.data[...] = original + eps * v_dev
                plus = _scalar(fn, inputs, upstream)
                t.data[...] = original - eps * v_dev
                minus = _scalar(fn, inputs, upstream)
                numeric[k] = (plus - minus) / (2 * eps)
                directional[k] = float((analytic * v).sum())
            t.data[...] = original
            analytic = directional
        err = np.abs(analytic - numeric)
        k = int(err.argmax())
        worst = np.unravel_index(k, t.shape) if mode == "full" else (k,)
        scale = float(np.abs(numeric).max())
        max_abs = float(err.max())
        reports.append(InputReport(
            name=names[i] if names else f"input{i}", max_abs=max_abs,
            max_rel=max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else np.inf),
            worst_index=tuple(int(j) for j in worst),
            passed=bool(max_abs <= atol + rtol * scale) and bool(np.isfinite(numeric).all())))
    return GradcheckResult(inputs=reports, passed=all(r.passed for r in reports))


# ---------------------------------------------------------------------------------
# The command: every op on small shapes, one table row per check.
# ---------------------------------------------------------------------------------

def main(argv=None):
    from .gradcheck_cases import CASES   # the list of checks lives in its own file

    parser = argparse.ArgumentParser(
        prog="python -m tinyconvmixer.gradcheck",
        description="Check every op's backward against central finite differences (float64).")
    parser.add_argument("--op", help="only run checks whose name contains this text")
    parser.add_argument("--device", default="cpu", choices=["cpu", "gpu"])
    parser.add_argument("--list", action="store_true", help="list the checks and exit")
    parser.add_argument("--mode", default="full", choices=["full", "random"],
                        help="'random' checks random directions instead of every element")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    cases = [c for c in CASES if args.op is None or args.op in c.name]
    if args.list:
        print("\n".join(c.name for c in CASES))
        return 0
    if not cases:
        print(f"no check matches --op {args.op!r}; see --list", file=sys.stderr)
        return 2
    try:
        xp = backend.xp_for(args.device)
    except backend.DeviceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    print(f"{'check':<34} {'input':<8} {'max abs err':>12} {'max rel err':>12}  {'worst at':<16} result")
    failures, start = 0, time.perf_counter()
    for case in cases:
        rng = np.random.default_rng(args.seed)
        fn, inputs, names = case.build(rng, xp)
        result = gradcheck(fn, inputs, mode=args.mode, names=names, seed=args.seed)
        for r in result.inputs:
            failures += not r.passed
            print(f"{case.name:<34} {r.name:<8} {r.max_abs:>12.2e} {r.max_rel:>12.2e}  "
                  f"{str(r.worst_index):<16} {'PASS' if r.passed else 'FAIL'}")
    print(f"\n{len(cases)} checks on {args.device} in {time.perf_counter() - start:.1f} s: "
          f"{'all passed' if not failures else f'{failures} input(s) FAILED'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
