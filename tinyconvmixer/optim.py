"""AdamW, the triangular learning-rate schedule, and gradient-norm clipping.

AdamW (Loshchilov & Hutter), exactly as torch.optim.AdamW computes it, for each
parameter p with gradient g at step t (starting at 1):

    p <- p * (1 - lr * weight_decay)              decoupled weight decay, applied first
    m <- m + (1 - beta1) * (g - m)                first moment  (= beta1 m + (1 - beta1) g)
    v <- beta2 * v + (1 - beta2) * g^2            second moment
    p <- p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

The divisions by (1 - beta^t) are the bias correction: m and v start at zero,
so early averages are too small by exactly that factor. The reference update,
adamw_updates, is whole-array operations in place on each parameter's device
(NumPy or CuPy): about ten kernels per parameter on the GPU. fast/cuda/adamw.py
registers a faster variant of it that updates every parameter in one kernel
launch: the same arithmetic in the same order (equal to the last bit or two, as
the GPU may fuse a multiply and an add).
"""

import math

import numpy as np

from .engine import backend, dispatch
from .engine.dispatch import replaceable


class Optimizer:
    """Holds parameter groups (dicts with "params" and settings such as "lr"),
    as in PyTorch: `opt.param_groups[0]["lr"] = 0.01` changes the learning rate."""

    def __init__(self, params, defaults):
        params = list(params)
        if not params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        self.param_groups = []
        for group in groups:
            group = {**defaults, **group, "params": list(group["params"])}
            for p in group["params"]:
                if not getattr(p, "requires_grad", False):
                    raise ValueError(f"{type(self).__name__}: every parameter must be a Tensor "
                                     f"with requires_grad=True, got {type(p).__name__}")
            self.param_groups.append(group)
        self.state = {}          # index of the parameter (over all groups) -> its state dict

    def _indexed_params(self):
        """(index, group, parameter) over all groups; the index keys the state."""
        i = 0
        for group in self.param_groups:
            for p in group["params"]:
                yield i, group, p
                i += 1

    @property
    def lr(self):
        """The learning rate of the first group; setting it sets every group's."""
        return self.param_groups[0]["lr"]

    @lr.setter
    def lr(self, value):
        for group in self.param_groups:
            group["lr"] = value

    def zero_grad(self):
        """Set every parameter's gradient to None (PyTorch's default)."""
        for _, _, p in self._indexed_params():
            p.grad = None

    def state_dict(self):
        """{"state": {index: {name: array or number}}, "param_groups": [settings]}.

        Arrays are the optimiser's own (no copy). Group settings omit "params";
        parameters are identified by their position, as in PyTorch.
        """
        groups = [{k: v for k, v in g.items() if k != "params"} for g in self.param_groups]
        return {"state": {i: dict(s) for i, s in self.state.items()}, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restore settings and state; arrays are copied onto each parameter's device and dtype."""
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError(f"optimizer state has {len(groups)} parameter groups, this optimizer "
                             f"has {len(self.param_groups)}")
        params = {i: p for i, _, p in self._indexed_params()}
        self.state = {}
        for i, s in state_dict["state"].items():
            p = params.get(int(i))
            if p is None:
                raise ValueError(f"optimizer state for parameter {i}, but there are only {len(params)}")
            xp = backend.get_array_module(p.data)
            self.state[int(i)] = {k: _copy_like(v, p, k, i, xp) for k, v in s.items()}
        for group, saved in zip(self.param_groups, groups):
            group.update({k: v for k, v in saved.items() if k != "params"})


def _copy_like(value, p, name, index, xp):
    """A saved state entry on p's device: arrays shaped like p, or plain numbers (step)."""
    if isinstance(value, (int, float)) or getattr(value, "ndim", None) == 0:
        return value.item() if hasattr(value, "item") else value       # the step count
    if tuple(value.shape) != tuple(p.shape):
        raise ValueError(f"optimizer state '{name}' of parameter {index} has shape "
                         f"{tuple(value.shape)}, the parameter has {tuple(p.shape)}")
    return xp.array(backend.to_device(value, p.device), dtype=p.dtype)   # a copy


class AdamW(Optimizer):
    """Adam with decoupled weight decay; arguments and defaults as torch.optim.AdamW."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        if lr < 0 or eps < 0 or weight_decay < 0 or not all(0 <= b < 1 for b in betas):
            raise ValueError(f"AdamW: invalid settings lr={lr}, betas={betas}, eps={eps}, "
                             f"weight_decay={weight_decay}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))

    def step(self):
        """Update every parameter that has a gradient (see the module docstring).

        All gradients are checked before any state changes; then one fused launch updates
        everything, or, where it cannot, the reference updates each parameter in turn.
        """
        todo = []
        for i, group, p in self._indexed_params():
            if p.grad is None:
                continue
            g = p.grad
            if g.shape != p.shape or backend.device_of(g) != p.device:
                raise ValueError(f"AdamW: gradient of parameter {i} has shape {g.shape} on "
                                 f"'{backend.device_of(g)}', the parameter {p.shape} on '{p.device}'")
            todo.append((i, group, p))
        entries = []             # (p, g, m, v, hyper, group) per parameter, hyper as in cuda/adamw.cu
        for i, group, p in todo:
            if i not in self.state:
                xp = backend.get_array_module(p.data)
                self.state[i] = {"step": 0, "exp_avg": xp.zeros_like(p.data),
                                 "exp_avg_sq": xp.zeros_like(p.data)}
            s = self.state[i]
            s["step"] += 1
            entries.append((p.data, p.grad, s["exp_avg"], s["exp_avg_sq"], _hyper(group, s["step"]), group))
        dispatch.pick(adamw_updates, entries)(entries)       # the reference, or a faster variant


def _hyper(group, t):
    """The numbers of step t for one parameter: (decay, beta1, beta2, eps, step_size, sqrt_bc2)."""
    lr, (beta1, beta2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
    return 1 - lr * wd, beta1, beta2, eps, lr / (1 - beta1 ** t), math.sqrt(1 - beta2 ** t)


@replaceable
def adamw_updates(entries):
    """The reference: each parameter's update in turn, in place, as whole-array xp operations.

    entries: (p, g, m, v, hyper, group) per parameter: its array, gradient and two
    moments, the numbers of this step (_hyper) and its parameter group."""
    for p, g, m, v, hyper, _ in entries:
        _adamw_update(p, g, m, v, hyper)


def _adamw_update(p, g, m, v, hyper):
    """One parameter's update (see the module docstring)."""
    decay, beta1, beta2, eps, step_size, sqrt_bc2 = hyper
    xp = backend.get_array_module(p)
    p *= decay                                             # decoupled weight decay
    m += (1 - beta1) * (g - m)
    v *= beta2
    v += (1 - beta2) * (g * g)
    p -= step_size * (m / (xp.sqrt(v) / sqrt_bc2 + eps))


def triangular_lr(t, epochs, lr_max):
    """The one-cycle "triangular" schedule of the ConvMixer CIFAR-10 recipe.

    t is the time in (fractional) epochs. The rate rises linearly from 0 to
    lr_max over the first 2/5 of training, falls to lr_max/20 at 4/5, then to 0.
    """
    return float(np.interp(t, [0, epochs * 2 / 5, epochs * 4 / 5, epochs],
                           [0, lr_max, lr_max / 20.0, 0]))


def clip_grad_norm_(params, max_norm, eps=1e-6):
    """Scale all gradients together so their joint L2 norm is at most max_norm.

    As PyTorch does: every gradient is multiplied by min(1, max_norm / (norm + 1e-6)),
    computed on the gradients' device, and the norm before clipping is returned as a
    0-d array there. Deciding "clip or not" on the host instead would make the CPU wait
    for the GPU at every step (float(norm) is a synchronisation); multiplying by exactly
    1 changes nothing.
    """
    params = [p for p in params if p.grad is not None]
    grads = [p.grad for p in params]
    if not grads:
        return np.zeros((), np.float64)
    xp = backend.get_array_module(grads[0])
    total = xp.sqrt(sum(xp.sum(g.astype(xp.float64) ** 2) for g in grads))
    coef = xp.minimum(max_norm / (total + eps), 1.0)
    for p in params:
        # Not in place: the engine may hand the same gradient array to two leaves.
        p.grad = p.grad * coef.astype(p.grad.dtype)
    return total
