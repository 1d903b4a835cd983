"""AdamW, triangular_lr and clip_grad_norm_ against PyTorch and np.interp."""

import contextlib
import warnings

import numpy as np
import pytest

from tinyconvmixer import Tensor, nn
from tinyconvmixer.engine import backend
from tinyconvmixer.optim import AdamW, clip_grad_norm_, triangular_lr

SHAPES = [(3, 4), (5,), (2, 1, 3, 3)]


def make_params(rng, dtype=np.float64):
    return [nn.Parameter(rng.standard_normal(s).astype(dtype)) for s in SHAPES]


def run_ours(values, grads, lrs, dtype=np.float64, **kw):
    params = [nn.Parameter(v.astype(dtype)) for v in values]
    opt = AdamW(params, **kw)
    for lr, gs in zip(lrs, grads):
        opt.lr = lr
        for p, g in zip(params, gs):
            p.grad = g.astype(dtype)
        opt.step()
    return params, opt


def run_torch(torch, values, grads, lrs, **kw):
    params = [torch.tensor(v, requires_grad=True) for v in values]
    opt = torch.optim.AdamW(params, **kw)
    for lr, gs in zip(lrs, grads):
        opt.param_groups[0]["lr"] = lr
        for p, g in zip(params, gs):
            p.grad = torch.tensor(g)
        opt.step()
    return params, opt


@pytest.mark.parametrize("kw", [{}, dict(betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05)])
def test_adamw_matches_pytorch_over_steps_with_changing_lr(kw):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    values = [rng.standard_normal(s) for s in SHAPES]
    lrs = [0.1, 0.05, 0.3, 0.001, 0.02]
    grads = [[rng.standard_normal(s) for s in SHAPES] for _ in lrs]
    ours, opt = run_ours(values, grads, lrs, **kw)
    theirs, topt = run_torch(torch, values, grads, lrs, **kw)
    for p, q in zip(ours, theirs):
        np.testing.assert_allclose(p.data, q.detach().numpy(), rtol=1e-12, atol=1e-14)
    for i, q in enumerate(theirs):
        np.testing.assert_allclose(opt.state[i]["exp_avg_sq"], topt.state[q]["exp_avg_sq"].numpy(), rtol=1e-12)
        assert opt.state[i]["step"] == int(topt.state[q]["step"])


def test_adamw_single_step_float32_and_lr_aliases():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    values = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    grads = [[rng.standard_normal(s).astype(np.float32) for s in SHAPES]]
    ours, opt = run_ours(values, grads, [0.01], dtype=np.float32)
    theirs, _ = run_torch(torch, values, grads, [0.01])
    for p, q in zip(ours, theirs):
        assert p.dtype == np.float32
        np.testing.assert_allclose(p.data, q.detach().numpy(), rtol=1e-6, atol=1e-7)
    opt.param_groups[0]["lr"] = 0.5
    assert opt.lr == 0.5
    opt.lr = 0.25
    assert opt.param_groups[0]["lr"] == 0.25


def test_adamw_skips_params_without_grad_and_zero_grad():
    rng = np.random.default_rng(2)
    params = make_params(rng)
    before = params[1].data.copy()
    opt = AdamW(params, lr=0.1)
    params[0].grad = np.ones(SHAPES[0])
    opt.step()
    np.testing.assert_array_equal(params[1].data, before)
    assert 1 not in opt.state
    opt.zero_grad()
    assert all(p.grad is None for p in params)


def test_adamw_state_dict_round_trip_continues_identically():
    rng = np.random.default_rng(3)
    values = [rng.standard_normal(s) for s in SHAPES]
    grads = [[rng.standard_normal(s) for s in SHAPES] for _ in range(4)]
    straight, _ = run_ours(values, grads, [0.1] * 4)
    first, opt = run_ours(values, grads[:2], [0.1] * 2)
    saved = {i: {k: (v.copy() if hasattr(v, "copy") else v) for k, v in s.items()}
             for i, s in opt.state_dict()["state"].items()}
    params = [nn.Parameter(p.data.copy()) for p in first]
    opt2 = AdamW(params, lr=0.0)
    opt2.load_state_dict({"state": saved, "param_groups": opt.state_dict()["param_groups"]})
    assert opt2.lr == 0.1
    for gs in grads[2:]:
        for p, g in zip(params, gs):
            p.grad = g
        opt2.step()
    for p, q in zip(params, straight):
        np.testing.assert_array_equal(p.data, q.data)


def test_adamw_load_state_dict_shape_error():
    rng = np.random.default_rng(4)
    opt = AdamW(make_params(rng))
    bad = {"state": {0: {"step": 1, "exp_avg": np.zeros((9,)), "exp_avg_sq": np.zeros((9,))}},
           "param_groups": opt.state_dict()["param_groups"]}
    with pytest.raises(ValueError, match=r"'exp_avg' of parameter 0 has shape \(9,\), the parameter has \(3, 4\)"):
        opt.load_state_dict(bad)


def test_adamw_on_device(device, xp):
    p = nn.Parameter(np.ones(3, np.float32)).to(device)
    p.requires_grad = True
    p.grad = xp.ones(3, dtype=xp.float32)
    AdamW([p], lr=0.1, weight_decay=0.0).step()
    np.testing.assert_allclose(p.numpy(), 0.9, rtol=1e-6)


def test_triangular_lr_matches_interp():
    for epochs in (1, 2, 7, 25):
        for t in np.linspace(0, epochs, 53):
            expected = np.interp([t], [0, epochs * 0.4, epochs * 0.8, epochs], [0, 0.05, 0.0025, 0])[0]
            assert triangular_lr(t, epochs, 0.05) == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert triangular_lr(10, 25, 0.05) == pytest.approx(0.05)
    assert triangular_lr(20, 25, 0.05) == pytest.approx(0.0025)
    assert triangular_lr(25, 25, 0.05) == 0.0


@pytest.mark.parametrize("max_norm", [0.5, 1e3])
def test_clip_grad_norm_matches_pytorch(max_norm):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    grads = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    params = make_params(rng, np.float32)
    for p, g in zip(params, grads):
        p.grad = g.copy()
    tparams = [torch.zeros(s, requires_grad=True) for s in SHAPES]
    for q, g in zip(tparams, grads):
        q.grad = torch.tensor(g)
    total = clip_grad_norm_(params, max_norm)
    ttotal = torch.nn.utils.clip_grad_norm_(tparams, max_norm)
    assert total.shape == () and backend.device_of(total) == "cpu"       # an array, like torch's tensor
    assert float(total) == pytest.approx(float(ttotal), rel=1e-6)
    for p, q in zip(params, tparams):
        np.testing.assert_allclose(p.grad, q.grad.numpy(), rtol=1e-6)


def test_clip_grad_norm_accepts_a_generator_and_no_grads():
    m = nn.Linear(3, 2)
    assert clip_grad_norm_(m.parameters(), 1.0) == 0.0
    m.weight.grad = np.full((2, 3), 10.0, np.float32)
    total = clip_grad_norm_(m.parameters(), 1.0)
    assert float(total) == pytest.approx(np.sqrt(600))
    assert np.sqrt((m.weight.grad ** 2).sum()) == pytest.approx(1.0, rel=1e-5)
    assert m.weight.grad.dtype == np.float32
    small = np.full((2, 3), 0.1, np.float32)
    m.weight.grad = small.copy()
    clip_grad_norm_(m.parameters(), 1.0)                  # below the limit: unchanged, to the bit
    np.testing.assert_array_equal(m.weight.grad, small)


def test_clip_grad_norm_never_waits_for_the_device(device):
    """Norm, factor and scaling stay on the device: no host synchronisation (checked on the GPU
    with cupyx.allow_synchronize, which the CuPy stand-in enforces)."""
    xp = backend.xp_for(device)
    m = nn.Linear(3, 2).to(device)
    m.weight.grad = xp.full((2, 3), 10.0, np.float32)
    no_sync = contextlib.nullcontext()
    if device == "gpu":
        cupyx = pytest.importorskip("cupyx")
        if not hasattr(cupyx, "allow_synchronize"):
            pytest.skip("this CuPy has no cupyx.allow_synchronize")
        no_sync = cupyx.allow_synchronize(False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                   # allow_synchronize is deprecated in CuPy
        with no_sync:
            total = clip_grad_norm_(m.parameters(), 1.0)
    assert float(total) == pytest.approx(np.sqrt(600))
    assert backend.to_numpy(m.weight.grad) == pytest.approx(np.full((2, 3), 1 / np.sqrt(6)), rel=1e-5)


def test_optimizer_rejects_non_parameters():
    with pytest.raises(ValueError, match="requires_grad=True"):
        AdamW([Tensor(np.zeros(3))])
    with pytest.raises(ValueError, match="empty parameter list"):
        AdamW([])
