"""The stand-in's RawModule and RawKernel: CUDA C run by tinyconvmixer's CPU emulator.

The source is compiled by tests/support/cuda_emulator.py (g++), which runs the CUDA
threads of a block on the CPU (as coroutines that take turns at __syncthreads(), or on
a few host threads for kernels without barriers) and checks each argument against the
C type the kernel declares. Before that, the arguments are converted exactly as CuPy converts
them (cupy/cuda/function.pyx, `_pointer`):

    device array         -> a pointer to its data (here: the NumPy buffer behind it)
    NumPy scalar          -> its bytes, as they are (np.int32(5) is a 4-byte int)
    Python int (or bool)  -> a 64-bit integer      } so `int n` given a Python int reads
    Python float          -> a double              } garbage on the GPU: here a TypeError
    anything else         -> TypeError("Unsupported type ...") (a NumPy array included)

and grid and block must be tuples, as CuPy's Cython signature demands. A zero in the
grid is refused here (CuPy would quietly launch one block: almost always a bug).
"""

import numpy as np

import cuda_emulator as emulate   # tests/support, on the path with the stand-in (simulate_gpu.py)

from . import _api
from ._core import ndarray


def _check_options(options):
    if not isinstance(options, tuple) or not all(isinstance(o, str) for o in options):
        raise TypeError(f"Argument 'options' has incorrect type (expected tuple of str, got "
                        f"{type(options).__name__})")


class RawModule:
    """cupy.RawModule(code=..., options=()): compiled at the first get_function, as in CuPy."""

    def __init__(self, *args, **kwargs):
        _api.check_call("cupy.RawModule", _api.CLASSES["cupy.RawModule"]["__init__"]["params"], args, kwargs)
        code = args[0] if args else kwargs.get("code")
        if kwargs.get("path") is not None:
            raise NotImplementedError("the CuPy stand-in compiles source code only (RawModule(path=) "
                                      "loads a cubin)")
        if not isinstance(code, str):
            raise TypeError(f"Argument 'code' has incorrect type (expected str, got {type(code).__name__})")
        self.code, self.options = code, kwargs.get("options", ())
        _check_options(self.options)
        self._module = emulate.RawModule(code=code, options=self.options)

    def get_function(self, name):
        return _Kernel(self._module.get_function(name), name)


class RawKernel:
    """cupy.RawKernel(code, name, options=()): one kernel, compiled at its first call."""

    def __init__(self, *args, **kwargs):
        _api.check_call("cupy.RawKernel", _api.CLASSES["cupy.RawKernel"]["__init__"]["params"], args, kwargs)
        names = ("code", "name", "options")
        given = dict(zip(names, args), **kwargs)
        self.code, self.name, self.options = given["code"], given["name"], given.get("options", ())
        _check_options(self.options)
        self._kernel = None

    def __call__(self, grid, block, args, **kwargs):
        if self._kernel is None:
            self._kernel = RawModule(code=self.code, options=self.options).get_function(self.name)
        return self._kernel(grid, block, args, **kwargs)


class _Kernel:
    """What RawModule.get_function returns: call it as kernel(grid, block, args, shared_mem=0)."""

    def __init__(self, kernel, name):
        self._kernel, self.name = kernel, name

    def __call__(self, grid, block, args, *, shared_mem=0, stream=None, enable_cooperative_groups=False):
        for what, dims in (("grid", grid), ("block", block)):
            if not isinstance(dims, tuple):
                raise TypeError(f"Argument '{what}' has incorrect type (expected tuple, got "
                                f"{type(dims).__name__})")
            if not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) for d in dims):
                raise TypeError(f"kernel '{self.name}': {what} {dims} must hold integers")
            if any(d < 1 for d in dims):
                raise ValueError(f"kernel '{self.name}': {what} {dims} has a dimension below 1. CuPy would "
                                 "launch it as 1 (one block or thread where none was meant): the stand-in "
                                 "refuses it")
        if enable_cooperative_groups:
            raise NotImplementedError("the CuPy stand-in does not model cooperative launches")
        self._kernel(grid, block, tuple(_pointer(a, self.name, i) for i, a in enumerate(args)),
                     shared_mem=shared_mem)


_NUMPY_SCALARS = {np.dtype(c).type for c in "?bhilqBHILQefdFD"}


def _pointer(arg, kernel, i):
    """A kernel argument as CuPy passes it (see the module docstring)."""
    if isinstance(arg, ndarray):
        return arg._a
    if type(arg) in _NUMPY_SCALARS:
        return arg
    if isinstance(arg, int):                       # bool included, as in CuPy
        return np.int64(arg)
    if isinstance(arg, float):
        return np.float64(arg)
    raise TypeError(f"kernel '{kernel}', argument {i}: Unsupported type {type(arg)}")
