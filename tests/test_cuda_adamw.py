"""The fused AdamW kernel (cuda/adamw.cu) against the per-parameter reference update of optim.py.

The same training run goes through both paths: in the CPU emulator on NumPy
arrays, and on the GPU when there is one.
"""

import contextlib

import numpy as np
import pytest

from tinyconvmixer.engine import backend, dispatch
from tinyconvmixer import nn
import cuda_emulator as emulate
from tinyconvmixer.fast.cuda import adamw as cuda_adamw
from tinyconvmixer.optim import AdamW

CHUNK = cuda_adamw.CHUNK
# Sizes below, at, just above and over two chunks, and an empty parameter.
SHAPES = [(3, 4), (CHUNK,), (CHUNK + 1,), (2, 3, 3, 3), (2 * CHUNK + 100,), (7,), (0, 3)]
LRS = [0.1, 0.05, 0.3, 0.001, 0.02]
NO_GRAD = 3                      # this parameter has no gradient at steps 0 and 2


def fused_context(where):
    """(array module, context) in which the fused path is active: the emulator, or the GPU."""
    if where == "gpu":
        if not backend.gpu_available():
            pytest.skip("no CuPy GPU on this machine")
        return backend.xp_for("gpu"), contextlib.nullcontext()
    if not emulate.available():
        pytest.skip("no C++20 compiler (g++ 11+) for the CUDA emulator")
    return np, emulate.emulated()


def strided(xp, a):
    """A non-contiguous view holding a's values."""
    out = xp.zeros(a.shape + (2,), a.dtype)
    out[..., 0] = a
    return out[..., 0]


def to_cpu(a):
    return backend.to_device(a, "cpu")


def snapshot(param, state):
    """Copies of a parameter's values and optimiser state, on the CPU."""
    return {"p": np.array(to_cpu(param.data)), **{k: np.array(to_cpu(v)) for k, v in state.items()}}


def train(xp, dtype, grads):
    """Five steps over two parameter groups with different settings, lr and weight decay changing
    between steps. Returns the parameters and the optimiser."""
    rng = np.random.default_rng(0)
    params = [nn.Parameter(xp.asarray(rng.standard_normal(s).astype(dtype))) for s in SHAPES]
    opt = AdamW([{"params": params[:4], "weight_decay": 0.05},
                 {"params": params[4:], "betas": (0.8, 0.99), "eps": 1e-6}], lr=0.1)
    for t, (lr, gs) in enumerate(zip(LRS, grads)):
        opt.param_groups[0]["lr"], opt.param_groups[1]["lr"] = lr, 2 * lr
        opt.param_groups[1]["weight_decay"] = 0.01 * t
        for p, g in zip(params, gs):
            p.grad = None if g is None else xp.asarray(g.astype(dtype))
        params[0].grad = strided(xp, params[0].grad)          # non-contiguous gradients
        params[2].grad = strided(xp, params[2].grad)
        before = snapshot(params[NO_GRAD], opt.state.get(NO_GRAD, {}))
        opt.step()
        if gs[NO_GRAD] is None:                               # untouched without a gradient
            np.testing.assert_equal(snapshot(params[NO_GRAD], opt.state.get(NO_GRAD, {})), before)
    return params, opt




@pytest.mark.parametrize("where", ["emulator", "gpu"])
@pytest.mark.parametrize("dtype, rtol", [(np.float32, 1e-6), (np.float64, 1e-12)])
def test_fused_matches_reference(where, dtype, rtol, monkeypatch):
    xp, context = fused_context(where)
    rng = np.random.default_rng(1)
    grads = [[rng.standard_normal(s) for s in SHAPES] for _ in LRS]
    grads[0][NO_GRAD] = grads[2][NO_GRAD] = None

    with dispatch.reference_only():
        expected, ref_opt = train(xp, dtype, grads)

    launches, fused_step = [], cuda_adamw.adamw_step

    def counting_step(entries):
        launches.append(len(entries))
        fused_step(entries)
    monkeypatch.setattr(cuda_adamw, "adamw_step", counting_step)
    with context:
        params, opt = train(xp, dtype, grads)
    assert launches == [6, 7, 6, 7, 7]                 # one launch per step, of every parameter with a grad

    # Values are O(1); atol covers those near 0, where the GPU's fused multiply-adds (one rounding
    # instead of two) may differ from the reference by an ulp of the terms, not of the result.
    atol = rtol
    for i, (p, q) in enumerate(zip(params, expected)):
        assert p.dtype == dtype
        np.testing.assert_allclose(to_cpu(p.data), to_cpu(q.data), rtol=rtol, atol=atol, err_msg=f"param {i}")
        for name in ("exp_avg", "exp_avg_sq"):
            np.testing.assert_allclose(to_cpu(opt.state[i][name]), to_cpu(ref_opt.state[i][name]),
                                       rtol=rtol, atol=atol, err_msg=f"{name} of param {i}")
        assert opt.state[i]["step"] == ref_opt.state[i]["step"] == (3 if i == NO_GRAD else 5)


@pytest.mark.skipif(not emulate.available(), reason="no C++20 compiler (g++ 11+) for the CUDA emulator")
def test_mixed_dtypes_take_the_reference_path(monkeypatch):
    monkeypatch.setattr(cuda_adamw, "adamw_step", lambda entries: pytest.fail("fused with mixed dtypes"))
    params = [nn.Parameter(np.ones(3, np.float32)), nn.Parameter(np.ones(3, np.float64))]
    for p in params:
        p.grad = np.ones(3, p.dtype)
    with emulate.emulated():
        AdamW(params, lr=0.1, weight_decay=0.0).step()
    for p in params:
        np.testing.assert_allclose(p.data, 0.9, rtol=1e-6)

