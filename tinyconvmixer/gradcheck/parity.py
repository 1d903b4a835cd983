"""Checks against an independent implementation: PyTorch's ops, and AdamW's definition.

A gradient check compares an op's backward with the same op's forward. It cannot
see a forward that computes the wrong function (a formula from the wrong paper,
an overflow, one window too few), nor a buffer updated wrongly (BatchNorm's
running statistics): backward agrees with such a forward, and no gradient depends
on the buffer. Comparing with someone else's implementation can. Each parity
case runs one op in tinyconvmixer and in PyTorch on the same float64 inputs and
compares the output, the gradient of every input for one random upstream
gradient, and the buffers after the forward pass.

An optimiser bug changes no gradient at all, so the AdamW checks look at the
weights after a few steps: with a zero loss gradient AdamW must shrink every
weight by exactly (1 - lr * weight_decay) per step (no PyTorch needed), and a
few steps must match torch.optim.AdamW.

PyTorch is optional: tinyconvmixer never imports it unless these checks run,
and without it they report SKIP.
"""

import contextlib
import importlib.util
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .. import functional as F
from ..engine import Tensor, backend
from ..optim import AdamW
from .check import InputReport

RTOL, ATOL = 1e-8, 1e-10    # float64 on both sides: only rounding may differ


def load_torch():
    """The torch module, or None when it is not installed (or installed but cannot be imported)."""
    try:
        if importlib.util.find_spec("torch") is None:
            return None
        import torch
    except ImportError:
        return None
    return torch


@contextlib.contextmanager
def one_thread(torch):
    """PyTorch on one thread for a while: on these tiny tensors its thread pool only costs
    (measured: the parity cases ran 20 times faster on the 2-core CI machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def compare(part, ours, theirs, rtol=RTOL, atol=ATOL):
    """An InputReport (see gradcheck.py) of our NumPy array against the reference one."""
    if ours is None:
        return InputReport(part, np.inf, np.inf, None, False, problem="no gradient")
    ours, theirs = np.asarray(ours, dtype=np.float64), np.asarray(theirs, dtype=np.float64)
    if ours.shape != theirs.shape:
        return InputReport(part, np.inf, np.inf, None, False,
                           problem=f"shape {ours.shape}, the reference has {theirs.shape}")
    err = np.nan_to_num(np.abs(ours - theirs), nan=np.inf).reshape(-1)
    if err.size == 0:
        return InputReport(part, 0.0, 0.0, (), True)
    scale = float(np.abs(np.nan_to_num(theirs)).max())
    bad = err > atol + rtol * scale
    index = lambda k: tuple(int(j) for j in np.unravel_index(k, ours.shape))   # noqa: E731
    max_abs, worst = float(err.max()), int(err.argmax())
    return InputReport(part, max_abs, max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else np.inf),
                       index(worst), not bad.any(),
                       first_bad_index=index(int(np.flatnonzero(bad)[0])) if bad.any() else None,
                       expected=float(theirs.reshape(-1)[worst]), actual=float(ours.reshape(-1)[worst]))


# ----- PyTorch parity of the ops -----------------------------------------------------------

@dataclass
class Spec:
    """One parity case, built: the same function in both libraries and its inputs."""
    ours: Callable        # Tensors -> Tensor
    theirs: Callable      # torch tensors -> torch tensor
    arrays: list          # float64 NumPy inputs, all of which get gradients
    names: list
    buffers: list = field(default_factory=list)   # (name, our array, torch tensor), compared after forward


@dataclass
class ParityCase:
    name: str
    build: Callable       # (numpy Generator, xp, torch) -> Spec


def run_case(case, xp, torch, seed=0):
    """Compare one case with PyTorch: a list of InputReports (output, gradients, buffers)."""
    with one_thread(torch):
        return _run_case(case, xp, torch, seed)


def _run_case(case, xp, torch, seed):
    rng = np.random.default_rng(seed)
    spec = case.build(rng, xp, torch)
    ours_in = [Tensor(xp.array(a), requires_grad=True) for a in spec.arrays]
    theirs_in = [torch.tensor(a, requires_grad=True) for a in spec.arrays]
    with np.errstate(all="ignore"):                   # an overflow shows as a difference below
        out = spec.ours(*ours_in)
        ref = spec.theirs(*theirs_in)
        reports = [compare("output", backend.to_numpy(out.data), ref.detach().numpy())]
        if reports[0].problem:                        # shapes differ: no common upstream gradient
            return reports
        u = rng.standard_normal(tuple(ref.shape))
        out.backward(Tensor(xp.asarray(u)))
        ref.backward(torch.tensor(u))
    for name, a, b in zip(spec.names, ours_in, theirs_in):
        reports.append(compare(name, None if a.grad is None else backend.to_numpy(a.grad), b.grad.numpy()))
    for name, a, b in spec.buffers:
        reports.append(compare(name, backend.to_numpy(a), b.numpy()))
    return reports


def _conv(name, x_shape, w_shape, **kw):
    def build(rng, xp, torch):
        arrays = [rng.standard_normal(x_shape), rng.standard_normal(w_shape), rng.standard_normal(w_shape[0])]
        return Spec(lambda x, w, b: F.conv2d(x, w, b, **kw),
                    lambda x, w, b: torch.nn.functional.conv2d(x, w, b, **kw), arrays, ["x", "weight", "bias"])
    return ParityCase(name, build)


def _bn(name, shape, training, channels_last=False):
    """channels_last: the input is given as NHWC and transposed to an NCHW view of NHWC
    memory, as ConvMixer's layers make it, so that BatchNorm takes its rows path."""
    def build(rng, xp, torch):
        C = shape[1]
        rm, rv = rng.standard_normal(C), rng.uniform(0.5, 2.0, C)
        ours_stats, theirs_stats = [xp.array(rm), xp.array(rv)], [torch.tensor(rm), torch.tensor(rv)]
        x = 2 + 3 * rng.standard_normal(shape)
        if channels_last:
            x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))

        def ours(x, w, b):
            x = x.transpose(0, 3, 1, 2) if channels_last else x
            return F.batch_norm(x, *ours_stats, w, b, training=training, momentum=0.3)

        def theirs(x, w, b):
            x = x.permute(0, 3, 1, 2) if channels_last else x
            return torch.nn.functional.batch_norm(x, *theirs_stats, w, b, training=training, momentum=0.3)
        return Spec(ours, theirs, [x, rng.standard_normal(C), rng.standard_normal(C)], ["x", "weight", "bias"],
                    [(n, a, b) for n, a, b in zip(("running_mean", "running_var"), ours_stats, theirs_stats)])
    return ParityCase(name, build)


def _gelu(name, approximate):
    def build(rng, xp, torch):
        return Spec(lambda x: F.gelu(x, approximate=approximate),
                    lambda x: torch.nn.functional.gelu(x, approximate=approximate),
                    [3 * rng.standard_normal((3, 4))], ["x"])
    return ParityCase(name, build)


def _cross_entropy(name, scale):
    def build(rng, xp, torch):
        target = rng.integers(0, 5, size=4)
        return Spec(lambda z: F.cross_entropy(z, xp.asarray(target)),
                    lambda z: torch.nn.functional.cross_entropy(z, torch.tensor(target)),
                    [scale * rng.standard_normal((4, 5))], ["logits"])
    return ParityCase(name, build)


def _same(name, fn, *shapes, torch_fn=None, positive=()):
    """A case whose function reads the same in both libraries (operators, .sum(0), .T)."""
    def build(rng, xp, torch):
        arrays = [rng.standard_normal(s) for s in shapes]
        for k in positive:
            arrays[k] = np.abs(arrays[k]) + 0.5
        return Spec(fn, torch_fn(torch) if torch_fn else fn, arrays, [f"input{k}" for k in range(len(arrays))])
    return ParityCase(name, build)


def _linear(rng, xp, torch):
    return Spec(F.linear, torch.nn.functional.linear,
                [rng.standard_normal((4, 5)), rng.standard_normal((3, 5)), rng.standard_normal(3)],
                ["x", "weight", "bias"])


def _log_softmax(rng, xp, torch):
    return Spec(lambda z: F.log_softmax(z, axis=1), lambda z: torch.nn.functional.log_softmax(z, dim=1),
                [3 * rng.standard_normal((3, 5))], ["x"])


PARITY_CASES = [
    _conv("conv2d k=3 padding=1", (2, 3, 5, 5), (4, 3, 3, 3), padding=1),
    _conv("conv2d k=3 stride=2", (2, 3, 7, 7), (4, 3, 3, 3), stride=2, padding=1),
    _conv("conv2d patch k=2 stride=2", (2, 3, 4, 4), (4, 3, 2, 2), stride=2),
    _conv("conv2d groups=2 padding=(1,2)", (1, 4, 5, 6), (6, 2, 3, 2), groups=2, padding=(1, 2)),
    _conv("conv2d depthwise same", (2, 3, 5, 5), (3, 1, 3, 3), groups=3, padding="same"),
    _gelu("gelu exact", "none"),
    _gelu("gelu tanh", "tanh"),
    _bn("batch_norm train", (4, 3, 3, 3), training=True),
    _bn("batch_norm train channels-last", (3, 4, 3, 2), training=True, channels_last=True),
    _bn("batch_norm eval", (3, 3, 2, 2), training=False),
    _same("global_avg_pool2d", F.global_avg_pool2d, (2, 3, 3, 4), torch_fn=lambda torch: lambda x: x.mean(dim=(2, 3))),
    ParityCase("linear", _linear),
    ParityCase("log_softmax", _log_softmax),
    _cross_entropy("cross_entropy", 3.0),
    _cross_entropy("cross_entropy logits ~1000", 1000.0),
    _same("tensor ops (broadcasting, reuse)",
          lambda a, b, c: (((a * b - a / b) ** 2 + c) @ (a.T + 1.0)).sum(0).mean(), (3, 4), (4,), (3, 1),
          positive=(1,)),
]


# ----- AdamW ------------------------------------------------------------------------------

def adamw_decay(xp, torch, seed=0):
    """With a zero loss gradient AdamW's moments stay 0, so its only change is the decoupled
    decay: after t steps every weight is exactly (1 - lr * wd)^t times what it was."""
    start = np.array([3.0, -2.0, 0.5, 1e-3])
    p = Tensor(xp.array(start), requires_grad=True)
    opt = AdamW([p], lr=0.1, weight_decay=0.5)
    for _ in range(5):
        p.grad = xp.zeros_like(p.data)
        opt.step()
    return [compare("weights", backend.to_numpy(p.data), start * (1 - 0.1 * 0.5) ** 5)]


def adamw_torch(xp, torch, seed=0):
    """Four steps on two parameters with random gradients, beside torch.optim.AdamW."""
    rng = np.random.default_rng(seed)
    starts = [rng.standard_normal((3, 4)), rng.standard_normal(4)]
    ours = [Tensor(xp.array(a), requires_grad=True) for a in starts]
    theirs = [torch.tensor(a, requires_grad=True) for a in starts]
    settings = dict(lr=0.05, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.2)
    opt, ref = AdamW(ours, **settings), torch.optim.AdamW(theirs, **settings)
    with one_thread(torch):
        for _ in range(4):
            for a, b in zip(ours, theirs):
                g = rng.standard_normal(a.shape)
                a.grad, b.grad = xp.asarray(g), torch.tensor(g)
            opt.step()
            ref.step()
    return [compare(f"param{k}", backend.to_numpy(a.data), b.detach().numpy())
            for k, (a, b) in enumerate(zip(ours, theirs))]


@dataclass
class OptimCase:
    name: str
    run: Callable          # (xp, torch, seed) -> [InputReport]
    needs_torch: bool


OPTIM_CASES = [
    OptimCase("adamw zero gradient: decay only", adamw_decay, needs_torch=False),
    OptimCase("adamw 4 steps vs torch.optim.AdamW", adamw_torch, needs_torch=True),
]
