"""Parameter and Module: the bookkeeping behind every layer, as in torch.nn.

A Module is a tree. Assigning an attribute registers it, in assignment order:

    self.weight = Parameter(...)     -> self._parameters["weight"]
    self.fn = Sequential(...)        -> self._modules["fn"]
    self.register_buffer("running_mean", array)  -> self._buffers["running_mean"]

As in PyTorch, a registered parameter can only be replaced by another
Parameter or removed with None: `self.weight = np.zeros(3)` is a TypeError
(it would otherwise quietly stop being trained).

Walking the tree gives dotted names ("3.0.fn.0.weight") exactly like PyTorch,
so a state dict maps 1:1 onto the same architecture written in PyTorch. A
module used twice shares its parameters: parameters() lists them once.
Parameters are Tensors (they get gradients); buffers are raw xp arrays
(state that is saved but not trained, e.g. BatchNorm's running statistics).
"""

from collections import OrderedDict, namedtuple

import numpy as np

from ..engine import Tensor, backend

IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class StateDictError(RuntimeError):
    """A state dict does not fit a module (missing/unexpected keys, wrong shapes)."""


class Parameter(Tensor):
    """A Tensor that is a trainable weight of a Module (requires_grad=True)."""

    def __init__(self, data, requires_grad=True):
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


class Module:
    """Base class of all layers and models. Subclasses define forward()."""

    def __init__(self):
        # object.__setattr__ skips our own __setattr__, which needs these dicts.
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    # ----- registration ---------------------------------------------------------------
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}: call super().__init__() before "
                                 f"assigning attribute {name!r}")
        if isinstance(value, Parameter):
            registry = self._parameters
        elif name in self._parameters and value is not None:
            # As in PyTorch: a parameter is replaced by a Parameter or removed with None,
            # never silently turned into an untrained plain attribute.
            raise TypeError(f"cannot assign {type(value).__name__} to parameter {name!r} "
                            f"(Parameter or None expected)")
        elif isinstance(value, Module):
            registry = self._modules
        elif name in self._buffers:
            registry = self._buffers              # e.g. BatchNorm replacing a buffer array
        else:
            registry = None                       # a plain attribute (a number, a string, ...)
        for r in (self._parameters, self._buffers, self._modules):
            if r is not registry:
                r.pop(name, None)                 # a name lives in one place only
        if registry is None:
            object.__setattr__(self, name, value)
        else:
            self.__dict__.pop(name, None)
            registry[name] = value

    def __getattr__(self, name):
        # Only called when normal lookup fails: look in the registries.
        for registry in ("_parameters", "_buffers", "_modules"):
            d = self.__dict__.get(registry)
            if d is not None and name in d:
                return d[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute {name!r}")

    def register_buffer(self, name, array):
        """Register state that is saved in the state dict but not trained (a raw xp array)."""
        if isinstance(array, Tensor):
            raise TypeError(f"buffer {name!r} must be a raw array, not a Tensor")
        self._buffers[name] = array

    def add_module(self, name, module):
        """Register a submodule under any string name (Sequential uses "0", "1", ...)."""
        if not isinstance(module, Module):
            raise TypeError(f"add_module({name!r}): expected a Module, got {type(module).__name__}")
        self._modules[name] = module

    # ----- walking the tree ---------------------------------------------------------------
    def named_modules(self, prefix=""):
        """(name, module) for this module and all below it, pre-order (parents first)."""
        yield prefix, self
        for name, child in self._modules.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self):
        for _, m in self.named_modules():
            yield m

    def children(self):
        return iter(self._modules.values())

    def _named_members(self, registry):
        """(dotted name, value) of one registry over the tree, each object once.

        A module used twice (Sequential(lin, lin)) shares its weights; like
        PyTorch we list each one once, under its first name, so an optimiser
        given parameters() updates it once per step, not twice.
        """
        seen = set()
        for mod_name, m in self.named_modules():
            for name, value in getattr(m, registry).items():
                if id(value) not in seen:
                    seen.add(id(value))
                    yield (f"{mod_name}.{name}" if mod_name else name), value

    def named_parameters(self):
        """(dotted name, Parameter) in definition order, like PyTorch; a shared one once."""
        return self._named_members("_parameters")

    def parameters(self):
        for _, p in self.named_parameters():
            yield p

    def named_buffers(self):
        """(dotted name, buffer array) in definition order; a shared one once."""
        return self._named_members("_buffers")

    def buffers(self):
        for _, b in self.named_buffers():
            yield b

    # ----- modes and gradients ------------------------------------------------------------
    def train(self, mode=True):
        """Set training mode here and in every submodule (BatchNorm uses batch statistics)."""
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self):
        """Evaluation mode: BatchNorm uses its running statistics."""
        return self.train(False)

    def zero_grad(self):
        """Forget accumulated gradients (set them to None, PyTorch's default)."""
        for p in self.parameters():
            p.grad = None

    # ----- state dict ---------------------------------------------------------------------
    def state_dict(self):
        """name -> array for all parameters and buffers (PyTorch's order and names).

        For each module: its parameters, then its buffers, then its children.
        The arrays are the module's own (no copy, as in PyTorch): they change
        when training continues; copy them (or save them) for a snapshot.
        """
        sd = OrderedDict()
        for mod_name, m in self.named_modules():
            pre = f"{mod_name}." if mod_name else ""
            for name, p in m._parameters.items():
                sd[pre + name] = p.data
            for name, b in m._buffers.items():
                sd[pre + name] = b
        return sd

    def load_state_dict(self, state_dict, strict=True):
        """Copy arrays into this module's parameters and buffers, in place.

        Values may be NumPy or CuPy arrays, Tensors (their .data is taken), or
        anything np.asarray accepts, such as CPU torch tensors; they are copied
        onto this module's device and cast to each entry's dtype. Shapes must
        match. With strict=True the key sets must match exactly. Errors list
        every problem at once.
        """
        state_dict = {k: v.data if isinstance(v, Tensor) else v for k, v in state_dict.items()}
        own = self.state_dict()
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        wrong_shape = [f"{k}: checkpoint {tuple(np.shape(state_dict[k]))} vs model {tuple(own[k].shape)}"
                       for k in own if k in state_dict and tuple(np.shape(state_dict[k])) != tuple(own[k].shape)]
        problems = []
        if strict and missing:
            problems.append("missing key(s): " + ", ".join(missing))
        if strict and unexpected:
            problems.append("unexpected key(s): " + ", ".join(unexpected))
        if wrong_shape:
            problems.append("shape mismatch(es): " + "; ".join(wrong_shape))
        if problems:
            raise StateDictError(f"error(s) loading state dict into {type(self).__name__}:\n  "
                                 + "\n  ".join(problems))
        for key, target in own.items():
            if key in state_dict:
                value = state_dict[key]
                if backend.get_array_module(value) is np:
                    value = np.asarray(value)
                target[...] = backend.to_device(value, backend.device_of(target))   # casts dtype
        return IncompatibleKeys(missing, unexpected)

    # ----- devices and dtypes -------------------------------------------------------------
    def to(self, device=None, dtype=None):
        """Move all parameters, gradients and buffers to `device` and/or cast floats to `dtype`."""
        if device is not None:
            backend.check_device(device)

        def convert(a):
            if device is not None:
                a = backend.to_device(a, device)
            if dtype is not None and a.dtype.kind == "f":   # num_batches_tracked stays int64
                a = a.astype(dtype, copy=False)
            return a

        for m in self.modules():
            for p in m._parameters.values():
                p.data = convert(p.data)
                if p.grad is not None:
                    p.grad = convert(p.grad)
            for name in m._buffers:
                m._buffers[name] = convert(m._buffers[name])
        return self

    def double(self):
        return self.to(dtype=np.float64)

    def float(self):
        return self.to(dtype=np.float32)

    # ----- calling and printing -----------------------------------------------------------
    def forward(self, *args):
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args):
        return self.forward(*args)

    def extra_repr(self):
        """The settings shown inside the parentheses of repr (override in layers)."""
        return ""

    def __repr__(self):
        if not self._modules:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = [f"  ({name}): " + repr(m).replace("\n", "\n  ") for name, m in self._modules.items()]
        return f"{type(self).__name__}(\n" + "\n".join(lines) + "\n)"

