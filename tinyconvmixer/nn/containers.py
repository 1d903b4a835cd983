"""Modules that hold other modules: Sequential and Residual."""

from .module import Module


class Sequential(Module):
    """Apply modules one after another. Children are named "0", "1", ... as in PyTorch,
    so their parameters are called "0.weight", "3.0.fn.0.weight", ..."""

    def __init__(self, *modules):
        super().__init__()
        for i, m in enumerate(modules):
            self.add_module(str(i), m)

    def forward(self, x):
        for m in self._modules.values():
            x = m(x)
        return x

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, index):
        if not isinstance(index, int):
            raise TypeError(f"Sequential indices must be integers, got {type(index).__name__}")
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"Sequential index {index} out of range for {n} modules")
        return self._modules[str(index % n)]


class Residual(Module):
    """x + fn(x): a skip connection around `fn`.

    The attribute is named `fn` as in the ConvMixer paper's PyTorch code, so the
    keys read "...fn.0.weight" in both frameworks.
    """

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x) + x
