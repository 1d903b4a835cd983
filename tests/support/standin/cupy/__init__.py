"""A strict stand-in for CuPy 14, for running tinyconvmixer's GPU code on a CPU-only machine.

Test-only. `TINYCONVMIXER_SIMULATE_GPU=1` makes tinyconvmixer's backend import this
package as `cupy` (see tests/README.md); then `device="gpu"` works without a GPU and
every GPU code path runs on NumPy arrays hidden behind CuPy's rules:

* the device array (`ndarray`, in _core.py) wraps a NumPy array and refuses what CuPy
  refuses (NumPy arrays mixed in, `_np.asarray(device)`, `__index__`, ...), returns
  what CuPy returns (0-d arrays from reductions, C-ordered results) and counts every
  host synchronisation;
* only the names, methods and keyword arguments that the real CuPy 14 has exist here:
  each call is bound to the signature recorded from the real wheel in cupy_api.json;
* RawModule / RawKernel compile the CUDA C with g++ and run it in
  tinyconvmixer/cuda/emulate.py, after converting the arguments as CuPy does
  (a Python int becomes a 64-bit integer, a float a double; grid and block must be
  tuples), so a kernel launched with the wrong argument types fails here;
* cuda.Device, cuda.runtime, the memory pools, streams and events, cupyx.scipy.special
  and cupyx.allow_synchronize behave as far as a single, synchronous device can.

What it cannot catch: asynchrony (everything here runs at once, in order), the GPU's
rounding (fused multiply-adds, other summation orders, TF32, fast-math), compile errors
that NVRTC would report but g++ does not (tests/test_nvrtc_compile.py compiles the
kernels with the real NVRTC), memory limits and speed.
"""

import importlib as _importlib
import sys as _sys
import types as _types

import numpy as _np

from . import _api
from ._core import ndarray
from ._core import check_parameters as _check_parameters, poison as _poison, synchronize as _synchronize
from ._core import unwrap as _unwrap, unwrap_all as _unwrap_all, wrap as _wrap

__version__ = _api.VERSION
__standin__ = True                    # lets tests tell the stand-in from the real CuPy

# Functions whose result's size depends on the data: CuPy waits for the GPU to know it.
_SYNCING = {"nonzero", "argwhere", "flatnonzero", "unique", "compress", "extract", "bincount",
            "trim_zeros", "unique_all", "unique_counts", "unique_inverse", "unique_values"}
# Results that keep the input's memory layout, as CuPy's do (order='K').
_KEEP_LAYOUT = {"empty_like", "zeros_like", "ones_like", "full_like", "copy", "asfortranarray"}


class ufunc:
    """cupy.ufunc: a NumPy ufunc behind the wall; results are fresh C-ordered device arrays.
    Its operands are device arrays and scalars: lists, None and host arrays are refused."""

    def __init__(self, module, name, np_ufunc, params):
        self._np, self._params = np_ufunc, params
        self.name = self.__name__ = name
        self._qualname = f"{module}.{name}"
        self.nin, self.nout = np_ufunc.nin, np_ufunc.nout

    def __repr__(self):
        return f"<ufunc '{self.name}'>"

    def __call__(self, *args, **kwargs):
        _api.check_call(self._qualname, self._params, args, kwargs)
        for x in args[:self.nin]:
            if isinstance(x, (list, tuple)) or x is None:
                raise TypeError(f"{self._qualname}: Unsupported type {type(x)}")
        return _call(self._qualname, self._np, args, kwargs)

    def _method(self, method, *args, **kwargs):
        qualname = f"{self._qualname}.{method}"
        _api.check_call(qualname, _api.CLASSES["cupy.ufunc"][method]["params"], args, kwargs)
        return _call(qualname, getattr(self._np, method), args, kwargs)

    def reduce(self, *args, **kwargs):
        return self._method("reduce", *args, **kwargs)

    def accumulate(self, *args, **kwargs):
        return self._method("accumulate", *args, **kwargs)

    def outer(self, *args, **kwargs):
        return self._method("outer", *args, **kwargs)

    def at(self, *args, **kwargs):
        return self._method("at", *args, **kwargs)

    def reduceat(self, *args, **kwargs):
        return self._method("reduceat", *args, **kwargs)


def _call(qualname, np_func, args, kwargs, keep_layout=False, allow_host=False):
    """Run a NumPy function on the arrays behind device arguments; wrap the result as CuPy would."""
    out = kwargs.get("out")
    if out is not None and not isinstance(out, (ndarray, tuple)):
        raise TypeError("Output arguments type must be cupy.ndarray")
    args, kwargs = _unwrap_all(args, kwargs, qualname, allow_host)
    result = np_func(*args, **kwargs)
    if out is not None and isinstance(out, ndarray) and result is out._a:
        return out
    inputs = [a for a in args if isinstance(a, _np.ndarray)]
    inputs += [a for seq in args if isinstance(seq, (list, tuple)) for a in seq if isinstance(a, _np.ndarray)]
    return _wrap(result, c_order=not keep_layout and "order" not in kwargs, inputs=inputs)


# Functions that copy host data over (CuPy applies asarray to it), and what else they take.
_TAKES_HOST = {"einsum", "take_along_axis", "copyto"}


def _function(module, name, np_func, params):
    qualname = f"{module}.{name}"

    def function(*args, **kwargs):
        _api.check_call(qualname, params, args, kwargs)
        _check_parameters(qualname, params, args, kwargs)
        if name in _SYNCING or (name == "where" and len(args) + len(kwargs) == 1):
            _synchronize(f"{qualname}() (its result's size depends on the data)")
        if name in _SPECIAL_CALLS:
            return _SPECIAL_CALLS[name](np_func, args, kwargs)
        return _call(qualname, np_func, args, kwargs, keep_layout=name in _KEEP_LAYOUT,
                     allow_host=name in _TAKES_HOST)

    function.__name__ = function.__qualname__ = name
    function.__doc__ = f"{qualname}{params}: NumPy's {name} behind the stand-in's checks."
    return function


def _empty(np_func, args, kwargs):
    """empty / empty_like: memory as the GPU leaves it, garbage (see _core.poison)."""
    result = _call("cupy." + np_func.__name__, np_func, args, kwargs, keep_layout=True)
    _poison(result._a)
    return result


def _broadcast_to(np_func, args, kwargs):
    """A broadcast view that can be written, as CuPy's can (NumPy's is read-only)."""
    view = _call("cupy.broadcast_to", np_func, args, kwargs, keep_layout=True)._a
    return _wrap(_np.lib.stride_tricks.as_strided(view, view.shape, view.strides), c_order=False)


def _take_along_axis(np_func, args, kwargs):
    """take_along_axis with CuPy's wrap-around of out-of-bounds indices (host indices copied over)."""
    a, indices, axis = _api.signature("(a, indices, axis)").bind(*args, **kwargs).args
    a, indices = _unwrap(a, "cupy.take_along_axis"), _unwrap(indices, "cupy.take_along_axis", allow_host=True)
    if axis is not None and a.shape[axis]:
        indices = indices % a.shape[axis]
    return _wrap(np_func(a, indices, axis))


def _take(np_func, args, kwargs):
    bound = _api.signature("(a, indices, axis=..., out=...)").bind(*args, **kwargs).arguments
    a = bound.pop("a")
    if not isinstance(a, ndarray):
        raise TypeError(f"cupy.take: Unsupported type {type(a)}")
    return a.take(bound.pop("indices"), **bound)


def _copyto(np_func, args, kwargs):
    """copyto: a host source only if it has one element (CuPy takes its value)."""
    bound = _api.signature("(dst, src, casting=..., where=...)").bind(*args, **kwargs).arguments
    if not isinstance(bound["dst"], ndarray):
        raise TypeError(f"cupy.copyto: the destination must be a cupy.ndarray, got {type(bound['dst'])}")
    if isinstance(bound["src"], _np.ndarray) and bound["src"].size != 1:
        raise TypeError(f"cupy.copyto: Unsupported type {type(bound['src'])} (a host array of "
                        f"{bound['src'].size} elements)")
    return _call("cupy.copyto", np_func, args, kwargs, allow_host=True)


_SPECIAL_CALLS = {"empty": _empty, "empty_like": _empty, "broadcast_to": _broadcast_to,
                  "take_along_axis": _take_along_axis, "take": _take, "copyto": _copyto}


def _not_modelled(qualname):
    def function(*args, **kwargs):
        raise NotImplementedError(f"the CuPy stand-in does not model {qualname}; add it to tests/standin "
                                  "if the project starts to use it")
    function.__name__ = qualname.rsplit(".", 1)[-1]
    return function


def _resolve(module, name, numpy_module, special):
    """The stand-in's object for module.name, made from CuPy's recorded entry."""
    entry = _api.module_entry(module, name)          # AttributeError if CuPy has no such name
    kind = entry["kind"]
    if name in special:
        return special[name]
    np_obj = getattr(numpy_module, name, None) if numpy_module is not None else None
    if kind in ("numpy type", "constant") and (np_obj is not None or name == "newaxis"):
        return np_obj
    if kind == "ufunc" and isinstance(np_obj, _np.ufunc):
        return ufunc(module, name, np_obj, entry["params"])
    if kind == "function" and callable(np_obj):
        return _function(module, name, np_obj, entry["params"])
    if kind == "module":
        return _submodule(f"{module}.{name}")
    return _not_modelled(f"{module}.{name}")


# ----- creation and transfer: the functions that take host data ---------------------------------
def array(obj, dtype=None, copy=True, order="K", subok=False, ndmin=0, *, blocking=False):
    """cupy.array: a device copy of host or device data (no copy for a device array with copy=False)."""
    if isinstance(obj, ndarray) and not copy and (dtype is None or _np.dtype(dtype) == obj.dtype) and not ndmin:
        return obj
    host = _unwrap(obj, "cupy.array", allow_host=True)
    return _to_device(_np.array(host, dtype=dtype, order=order, ndmin=ndmin, copy=True))


def asarray(a, dtype=None, order=None, *, copy=None, blocking=False):
    """cupy.asarray: a device array as is, else a device copy of the host data."""
    if isinstance(a, ndarray):
        same_dtype = dtype is None or _np.dtype(dtype) == a.dtype
        layout_ok = (order in (None, "K", "A") or (order == "C" and a.flags.c_contiguous)
                     or (order == "F" and a.flags.f_contiguous))
        if copy is not True and same_dtype and layout_ok:
            return a
        if copy is False:
            raise ValueError("Unable to avoid copy while creating an array as requested")
        return _wrap(_np.array(a._a, dtype=dtype, order=order or "K", copy=True), c_order=False)
    if copy is False:
        raise ValueError("Unable to avoid copy while creating an array as requested "
                         "(host data always crosses to the device)")
    host = _unwrap(a, "cupy.asarray", allow_host=True)
    return _to_device(_np.array(host, dtype=dtype, order=order or "K", copy=True))


asanyarray = asarray


def _to_device(host):
    """Host memory copied to the "device": the copy never aliases the host array."""
    if not (host.flags.c_contiguous or host.flags.f_contiguous):
        host = _np.ascontiguousarray(host)
    if host.dtype.kind not in "biufc":
        raise ValueError(f"Unsupported dtype {host.dtype}")
    return _wrap(host, c_order=False)


def ascontiguousarray(a, dtype=None):
    if not isinstance(a, ndarray):
        raise TypeError(f"Argument 'a' has incorrect type (expected cupy._core.core._ndarray_base, got "
                        f"{type(a).__name__})")
    if a.flags.c_contiguous and (dtype is None or _np.dtype(dtype) == a.dtype):
        return a                               # already C-contiguous: the array itself (0-d stays 0-d)
    return _wrap(_np.array(a._a, dtype=dtype, order="C", copy=True), c_order=False)


def asnumpy(a, stream=None, order="C", out=None, *, blocking=True):
    """cupy.asnumpy: a host copy of a device array (a synchronisation); host data as it is."""
    if isinstance(a, ndarray):
        return a.get(order=order, out=out)
    return _np.asarray(a, order=order)


def get_array_module(*args):
    return _sys.modules[__name__] if any(isinstance(a, ndarray) for a in args) else _np


def get_default_memory_pool():
    from .cuda import _DEFAULT_POOL
    return _DEFAULT_POOL


def get_default_pinned_memory_pool():
    from .cuda import _DEFAULT_PINNED_POOL
    return _DEFAULT_PINNED_POOL


def is_available():
    return True


def _raw(name):
    return getattr(_importlib.import_module("cupy._rawkernel"), name)


_SPECIAL = {"ndarray": ndarray, "ufunc": ufunc, "array": array, "asarray": asarray, "asanyarray": asanyarray,
            "ascontiguousarray": ascontiguousarray, "asnumpy": asnumpy, "get_array_module": get_array_module,
            "get_default_memory_pool": get_default_memory_pool, "is_available": is_available,
            "get_default_pinned_memory_pool": get_default_pinned_memory_pool}


# ----- modules -------------------------------------------------------------------------------------
_NUMPY_OF = {"cupy": _np, "cupy.lib": _np.lib, "cupy.lib.stride_tricks": _np.lib.stride_tricks,
             "cupy.linalg": _np.linalg, "cupy.fft": _np.fft, "cupy.random": _np.random}


def _submodule(dotted):
    """cupy.<sub> as a module whose names resolve like cupy's own (lazily, from the API)."""
    if dotted in _sys.modules:
        return _sys.modules[dotted]
    if dotted == "cupy.cuda":
        return _importlib.import_module(dotted)
    module = _types.ModuleType(dotted, f"The stand-in's {dotted} (see tests/standin/cupy/__init__.py).")
    numpy_module = _NUMPY_OF.get(dotted)

    def __getattr__(name):
        if name.startswith("__"):
            raise AttributeError(name)
        value = _resolve(dotted, name, numpy_module, {})
        setattr(module, name, value)
        return value

    module.__getattr__ = __getattr__
    _sys.modules[dotted] = module
    return module


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    if name in ("RawModule", "RawKernel"):
        value = _raw(name)
    else:
        value = _resolve("cupy", name, _np, _SPECIAL)
    globals()[name] = value                 # resolved once: cupy.exp is cupy.exp
    return value


def __dir__():
    return sorted(_api.MODULES["cupy"])


for _name in ("lib", "lib.stride_tricks", "linalg", "fft", "random"):
    _submodule("cupy." + _name)
del _name
cuda = _importlib.import_module("cupy.cuda")
